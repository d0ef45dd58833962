"""Whole models on one NVIDIA GPU: flowc's CUDA target against PyTorch eager, torch.compile and TensorRT.

Median latency, samples/s, flowc's time over each baseline's, achieved TFLOP/s against the GPU's
peak, and every backend's outputs against torch's. TensorRT runs where `import tensorrt` works.

    python benchmarks/gpu.py [--models resnet50,bert-base,gpt2-small] [--batches 1,32] [--out PATH]
    python benchmarks/gpu.py --precision fp16      # every backend in fp16 (flowc: --precision fp16, fp32 inside kernels)

Each (model, batch, backend) runs in its own process, so a backend that fails on the GPU cannot
poison the CUDA context of the others. The models are ResNet-50, BERT-base and GPT-2 small, built
in plain torch / transformers (no downloads) and exported to ONNX once (benchmarks/models.py) into
--cache; see benchmarks/README.md. Without a usable GPU it exits with status 2 before exporting.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import models  # noqa: E402  (benchmarks/models.py; torch and transformers are imported lazily)
from cpu import DEFAULT_CACHE, child_env, compare, first_line, fmt_diff, timed, version  # noqa: E402  (benchmarks/cpu.py)

# flowc-steps: flowc's same build loaded with FLOWC_CUDA_GRAPHS=0, its compute steps launched one by
# one instead of replayed as a CUDA graph: flowc/x on its row is what the graph gains.
BACKENDS = ("torch", "torch.compile", "tensorrt", "flowc", "flowc-steps")
FLOWC_BACKENDS = ("flowc", "flowc-steps")
REFERENCE = "torch"
PRECISIONS = ("fp32", "fp16")
TOLERANCE = {"fp32": (1e-3, 1e-3), "fp16": (2e-2, 2e-2)}   # rtol, atol against torch eager at the same precision
NO_GPU_EXIT = 2

# Dense peaks in TFLOP/s from NVIDIA's data sheets (no sparsity): fp32 on the CUDA cores, tf32 and
# fp16/bf16 on the tensor cores. The first entry whose words all appear in the device name wins.
PEAKS = (
    (("H100", "NVL"), "H100 NVL", {"fp32": 60.0, "tf32": 417.5, "fp16": 835.5}),
    (("H100", "PCIE"), "H100 PCIe", {"fp32": 51.2, "tf32": 378.0, "fp16": 756.0}),
    (("H100",), "H100 SXM", {"fp32": 66.9, "tf32": 494.7, "fp16": 989.4}),
    (("H200", "NVL"), "H200 NVL", {"fp32": 60.0, "tf32": 417.5, "fp16": 835.5}),
    (("H200",), "H200 SXM", {"fp32": 66.9, "tf32": 494.7, "fp16": 989.4}),
    (("A100",), "A100", {"fp32": 19.5, "tf32": 156.0, "fp16": 312.0}),
)


# -- the models: ResNet-50, BERT-base, GPT-2 small ---------------------------------------

def resnet50(blocks=(3, 4, 6, 3), width: int = 64, classes: int = 1000):
    """torchvision's resnet50 written out (v1.5: the stride on the 3x3 conv): bottleneck stages of
    `blocks`, widths `width` x 1, 2, 4, 8, each expanded 4 times (64..2048 at the defaults)."""
    import torch
    from torch import nn

    def conv_bn(cin, cout, k, stride=1):
        return nn.Sequential(nn.Conv2d(cin, cout, k, stride, k // 2, bias=False), nn.BatchNorm2d(cout))

    class Bottleneck(nn.Module):
        def __init__(self, cin, mid, stride):
            super().__init__()
            self.a = conv_bn(cin, mid, 1)
            self.b = conv_bn(mid, mid, 3, stride)
            self.c = conv_bn(mid, 4 * mid, 1)
            self.down = conv_bn(cin, 4 * mid, 1, stride) if stride != 1 or cin != 4 * mid else nn.Identity()

        def forward(self, x):
            return torch.relu(self.c(torch.relu(self.b(torch.relu(self.a(x))))) + self.down(x))

    stages, cin = [], width
    for i, n in enumerate(blocks):
        mid = width * 2 ** i
        stages += [Bottleneck(4 * mid if j else cin, mid, 2 if i and not j else 1) for j in range(n)]
        cin = 4 * mid
    model = nn.Sequential(conv_bn(3, width, 7, 2), nn.ReLU(), nn.MaxPool2d(3, 2, 1), *stages,
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(1), nn.Linear(cin, classes))
    with torch.no_grad():
        models.vary_batchnorm(model)
    return model


def bert_base(layers: int = 12, hidden: int = 768, heads: int = 12, vocab: int = 30522):
    """`BertModel` with BERT-base's sizes at the defaults (110M parameters), taking (input_ids,
    attention_mask) and returning (last_hidden_state, pooler_output)."""
    from transformers import BertConfig, BertModel
    config = BertConfig(vocab_size=vocab, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                        intermediate_size=4 * hidden, max_position_embeddings=512, attn_implementation="eager")
    return models._positional(BertModel(config), ("last_hidden_state", "pooler_output"))


def gpt2_small(layers: int = 12, hidden: int = 768, heads: int = 12, vocab: int = 50257):
    """`GPT2LMHeadModel` with GPT-2 small's sizes at the defaults (124M parameters, the LM head tied
    to the embedding), no KV cache, returning (logits,)."""
    from transformers import GPT2Config, GPT2LMHeadModel
    config = GPT2Config(vocab_size=vocab, n_embd=hidden, n_layer=layers, n_head=heads, n_positions=1024,
                        use_cache=False, bos_token_id=vocab - 1, eos_token_id=vocab - 1, attn_implementation="eager")
    return models._positional(GPT2LMHeadModel(config), ("logits",))


GPU_MODELS: dict[str, models.BenchModel] = {m.name: m for m in (
    models.BenchModel("resnet50", "ResNet-50 (25.6M params), bottlenecks [3,4,6,3], widths 64..2048, 224x224",
                      models._seeded(resnet50), models._image_inputs, ("y",), (1, 32, 128)),
    models.BenchModel("bert-base", f"BERT-base encoder (110M params): 12 layers, hidden 768, 12 heads, seq "
                      f"{models.SEQ_LEN}", models._seeded(bert_base), models._token_inputs,
                      ("last_hidden_state", "pooler_output"), (1, 32)),
    models.BenchModel("gpt2-small", f"GPT-2 small LM (124M params): 12 layers, hidden 768, 12 heads, seq "
                      f"{models.SEQ_LEN}, vocab 50257, no KV cache", models._seeded(gpt2_small), models._token_inputs,
                      ("logits",), (1, 32)),
)}
# They join models.py's registry, so that its export_all, load_torch and inputs serve them too.
models.MODELS.update(GPU_MODELS)


def count_flops(module, feeds: dict[str, np.ndarray]) -> int:
    """FLOPs of one forward pass on the CPU, as torch.utils.flop_counter counts them: 2 per
    multiply-add of convolutions, matmuls and attention; elementwise ops, normalisations, pooling
    and softmax are not counted (about 1% or less of these models)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        module(*(torch.from_numpy(a) for a in feeds.values()))
    return int(counter.get_total_flops())


def peak_for(device_name: str) -> tuple[str, dict[str, float]] | None:
    """(label, {"fp32", "tf32", "fp16": TFLOP/s}) for a device name as torch.cuda.get_device_name
    spells it, or None for a GPU not in PEAKS."""
    upper = device_name.upper()
    return next(((label, peaks) for words, label, peaks in PEAKS if all(w in upper for w in words)), None)


def computes_in(backend: str, precision: str, tf32: bool) -> str:
    """The peak a backend's row is measured against. flowc's CUDA target in fp32 runs on the CUDA
    cores (cuBLASLt with CUBLAS_COMPUTE_32F, no TF32); in fp16 its GEMMs take f16 operands on the
    tensor cores, accumulating in f32. The baselines use tensor cores in fp16, and in fp32 with --tf32."""
    if precision == "fp16":
        return "fp16"
    return "tf32" if tf32 and backend not in FLOWC_BACKENDS else "fp32"


# -- in the worker process: one backend, one model, one batch ------------------------------

@dataclass
class Runner:
    host: Callable[[], dict[str, np.ndarray]]    # numpy in, numpy out: the contract of flowc's run()
    on_gpu: Callable[[], object] | None           # inputs already on the GPU, outputs left there
    sync: Callable[[], None]                      # waits for the GPU; flowc's run() returns when done
    info: dict


def _torch_runner(job, feeds, compile_mode: str | None) -> Runner:
    import torch
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = job["tf32"]
    torch.backends.cudnn.benchmark = True        # cuDNN's fastest convolutions, found during the warm-up
    module = models.load_torch(job["model"], job["cache"])
    if hasattr(getattr(module, "model", None), "set_attn_implementation"):
        module.model.set_attn_implementation("sdpa")   # exported with eager attention, timed with the fused one
    dtype = torch.float16 if job["precision"] == "fp16" else torch.float32
    module = module.to("cuda", dtype)
    fn = torch.compile(module, mode=compile_mode) if compile_mode else module
    names = models.MODELS[job["model"]].output_names

    def to_gpu(a: np.ndarray):
        t = torch.from_numpy(a).to("cuda")
        return t.to(dtype) if t.is_floating_point() else t

    def call(args):
        with torch.inference_mode():
            out = fn(*args)
        return out if isinstance(out, (tuple, list)) else (out,)

    args = [to_gpu(a) for a in feeds.values()]
    return Runner(host=lambda: {n: t.cpu().numpy() for n, t in zip(names, call([to_gpu(a) for a in feeds.values()]))},
                  on_gpu=lambda: call(args), sync=torch.cuda.synchronize, info={})


def setup_torch(job, feeds) -> Runner:
    return _torch_runner(job, feeds, None)


def setup_torch_compile(job, feeds) -> Runner:
    return _torch_runner(job, feeds, job["compile_mode"])


def setup_tensorrt(job, feeds) -> Runner:
    import tensorrt as trt
    import torch
    logger = trt.Logger(trt.Logger.ERROR)

    def build():
        builder = trt.Builder(logger)
        network = builder.create_network(0)
        parser = trt.OnnxParser(network, logger)
        if not parser.parse_from_file(job["onnx"]):
            raise RuntimeError("TensorRT's ONNX parser: " + "; ".join(str(parser.get_error(i))
                                                                      for i in range(parser.num_errors)))
        config = builder.create_builder_config()
        profile = builder.create_optimization_profile()
        for name, a in feeds.items():
            profile.set_shape(name, a.shape, a.shape, a.shape)
        config.add_optimization_profile(profile)
        if job["precision"] == "fp16":
            config.set_flag(trt.BuilderFlag.FP16)
        if not job["tf32"]:
            config.clear_flag(trt.BuilderFlag.TF32)   # on by default; off, fp32 is fp32 as in the other rows
        plan = builder.build_serialized_network(network, config)
        if plan is None:
            raise RuntimeError("TensorRT built no engine for this network (its log says why)")
        return trt.Runtime(logger).deserialize_cuda_engine(plan)

    engine, build_s = timed(build)
    context = engine.create_execution_context()
    for name, a in feeds.items():
        context.set_input_shape(name, a.shape)
    dtypes = {trt.float32: torch.float32, trt.float16: torch.float16, trt.int32: torch.int32,
              trt.int64: torch.int64, trt.bool: torch.bool}
    buffers = {}
    for i in range(engine.num_io_tensors):
        name = engine.get_tensor_name(i)
        buffers[name] = torch.empty(tuple(context.get_tensor_shape(name)), device="cuda",
                                    dtype=dtypes[engine.get_tensor_dtype(name)])
        context.set_tensor_address(name, buffers[name].data_ptr())
    stream = torch.cuda.Stream()
    names = models.MODELS[job["model"]].output_names

    def on_gpu():
        context.execute_async_v3(stream.cuda_stream)

    def host():
        with torch.cuda.stream(stream):
            for name, a in feeds.items():
                buffers[name].copy_(torch.from_numpy(a))
            on_gpu()
            return {n: buffers[n].cpu().numpy() for n in names}   # .cpu() waits for the stream
    return Runner(host, on_gpu, stream.synchronize, {"setup_s": build_s})


def compile_flowc(job, feeds) -> dict:
    """The compile, in a process of its own (no GPU needed). The folder is kept in --cache, so a
    second run of the benchmark finds the CUDA build already done and its setup_s is far smaller."""
    import flowc
    shapes = {name: list(a.shape) for name, a in feeds.items()}
    fresh = not Path(job["flowc_dir"]).exists()
    _, compile_s = timed(lambda: flowc.compile(job["onnx"], target="cuda", arch=job["arch"],
                                               precision=job["precision"], input_shapes=shapes,
                                               out_dir=job["flowc_dir"]))
    return {"setup_s": compile_s, "fresh_compile": fresh}


def setup_flowc(job, feeds) -> Runner:
    import flowc
    if job["backend"] == "flowc-steps":
        os.environ["FLOWC_CUDA_GRAPHS"] = "0"   # read at load
    model, load_s = timed(lambda: flowc.load(job["flowc_dir"]))
    return Runner(lambda: model.run(feeds), None, lambda: None, {"load_s": load_s})


SETUP = {"torch": setup_torch, "torch.compile": setup_torch_compile, "tensorrt": setup_tensorrt,
         "flowc": setup_flowc, "flowc-steps": setup_flowc}


def time_calls(call, sync, runs: int, warmup: int) -> list[float]:
    """Seconds per call of `runs` calls after `warmup` untimed ones, the GPU idle before each."""
    for _ in range(warmup):
        call()
    sync()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        call()
        sync()
        times.append(time.perf_counter() - start)
    return times


def stats(times: list[float], prefix: str = "") -> dict:
    ms = np.array(times) * 1e3
    return {f"{prefix}median_ms": float(np.median(ms)), f"{prefix}p90_ms": float(np.percentile(ms, 90))}


def run_backend(job) -> dict:
    feeds = models.inputs(job["model"], job["batch"])
    runner = SETUP[job["backend"]](job, feeds)
    result = dict(runner.info)
    outputs, first_s = timed(runner.host)            # torch.compile compiles here
    if job["backend"] == "torch.compile":
        result["setup_s"] = first_s
    np.savez(job["outputs"], **{name: np.asarray(a) for name, a in outputs.items()})
    del outputs
    if runner.on_gpu is not None:
        result.update(stats(time_calls(runner.on_gpu, runner.sync, job["runs"], job["warmup"]), "on_gpu_"))
    result.update(stats(time_calls(runner.host, runner.sync, job["runs"], job["warmup"])), status="ok",
                  runs=job["runs"])
    return result


def probe_flowc(job) -> dict:
    """Compile, load and run a one-op model for target cuda: is there a GPU flowc's runtime can use?
    The build is cached in --cache."""
    import flowc

    def relu_graph():
        b = flowc.GraphBuilder("gpu_probe")
        b.output(b.op("Relu", b.input("x", "f32", [2, 8])), name="y")
        return b.build()
    try:
        flowc.compile(relu_graph(), target="cuda", arch=job["arch"], out_dir=job["flowc_dir"])
    except flowc.CompileError as e:
        return {"compile_error": str(e)}
    try:
        x = np.linspace(-1, 1, 16, dtype=np.float32).reshape(2, 8)
        y = flowc.load(job["flowc_dir"]).run({"x": x})["y"]
    except flowc.CompileError as e:
        return {"load_error": str(e)}
    return {} if np.array_equal(y, np.maximum(x, 0)) else {"run_error": "flowc's probe (Relu on 2x8) is wrong"}


def prepare(job) -> dict:
    """Export the models (where the cache is stale) and count each one's FLOPs per sample."""
    exported = models.export_all(job["models"], job["cache"])
    flops = {name: count_flops(models.MODELS[name].build(), models.inputs(name, 1)) for name in job["models"]}
    return {"exported": exported, "flops_per_sample": flops}


def worker(job: dict) -> dict:
    if job["kind"] == "prepare":
        return prepare(job)
    if job["kind"] == "probe":
        return probe_flowc(job)
    try:
        if job["kind"] == "flowc-compile":
            return compile_flowc(job, models.inputs(job["model"], job["batch"]))
        return run_backend(job)
    except Exception as e:   # noqa: BLE001  (any backend failure is a table entry, not a crash)
        flowc = sys.modules.get("flowc")   # what flowc's compile refuses (an op, a precision) it does not do yet
        refused = job["kind"] == "flowc-compile" and flowc is not None and isinstance(e, flowc.CompileError)
        return {"status": ("not supported yet: " + str(e).strip().splitlines()[0]) if refused
                else "error: " + first_line(e), "error": str(e)[:4000]}


# -- in the parent: checks, jobs, comparison, table ----------------------------------------

def gpu_missing() -> str | None:
    """Why torch cannot use a GPU here, or None when it can."""
    import torch
    if torch.cuda.is_available():
        return None
    build = "a CPU-only build" if torch.version.cuda is None else f"built for CUDA {torch.version.cuda}"
    return f"torch.cuda.is_available() is False (torch {torch.__version__}, {build})"


def read_probe(probe: dict) -> tuple[str | None, str | None]:
    """From probe_flowc's result: why flowc's runtime has no GPU (the run stops), and why flowc's rows
    will not run (the baselines go on), each None when not so."""
    if "no usable NVIDIA GPU" in probe.get("load_error", ""):
        return probe["load_error"].strip().splitlines()[0], None
    problem = probe.get("compile_error") or probe.get("load_error") or probe.get("run_error") \
        or probe.get("status")   # the last: the probe's process failed
    if problem:
        return None, "n/a: " + problem.strip().splitlines()[0]
    return None, None


def run_worker(job: dict, scratch: Path, timeout: float) -> dict:
    scratch.mkdir(parents=True, exist_ok=True)
    job_path, result_path = scratch / "job.json", scratch / "result.json"
    job_path.write_text(json.dumps(job))
    cmd = [sys.executable, __file__, "--worker", str(job_path), str(result_path)]
    try:
        proc = subprocess.run(cmd, env=child_env(job.get("threads", 4), scratch / "inductor"), check=False,
                              capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"status": f"error: timed out after {timeout:.0f} s"}
    if proc.returncode != 0 or not result_path.is_file():
        tail = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
        return {"status": f"error: worker exited with {proc.returncode}: {tail}", "error": proc.stderr[-4000:]}
    return json.loads(result_path.read_text())


def bench_config(name: str, batch: int, args, work: Path, flowc_refusal: str | None) -> list[dict]:
    base = {"model": name, "batch": batch, "cache": str(args.cache), "onnx": str(models.paths(name, args.cache)[0]),
            "precision": args.precision, "tf32": args.tf32, "compile_mode": args.compile_mode, "arch": args.arch,
            "runs": args.runs, "warmup": args.warmup,
            "flowc_dir": str(args.cache / "flowc-cuda" / f"{name}-b{batch}-{args.arch}-{args.precision}")}
    rows = []
    compiled = None   # flowc's compile, once for both of its rows
    for backend in args.backends:
        scratch = work / f"{name}-b{batch}-{backend}"
        job = dict(base, kind="run", backend=backend, outputs=str(scratch / "outputs.npz"))
        start = time.perf_counter()
        result = {}
        if backend in FLOWC_BACKENDS:
            if flowc_refusal:
                result = {"status": flowc_refusal}
            elif compiled is None:
                compiled = run_worker(dict(job, kind="flowc-compile"), scratch / "compile", args.timeout)
                result = dict(compiled)   # flowc's run adds to its own copy
            else:
                result = {key: compiled[key] for key in ("status", "error") if key in compiled}
        if result.get("status", "ok") == "ok":
            result.update(run_worker(job, scratch, args.timeout))
        row = {"model": name, "batch": batch, "backend": backend, **result, "wall_s": time.perf_counter() - start}
        row["ok"] = row.get("status") == "ok"
        row["outputs"] = job["outputs"]
        rows.append(row)
        print(f"  {name} batch {batch} {backend}: {row['status']} ({row['wall_s']:.1f} s)", file=sys.stderr, flush=True)
    derive(rows, args)
    ref = next((r for r in rows if r["backend"] == REFERENCE and r["ok"]), None)
    for r in rows:
        if r["ok"] and ref is not None and r is not ref:
            r["max_abs_diff"], r["within_tolerance"] = compare(Path(r["outputs"]), Path(ref["outputs"]),
                                                               *TOLERANCE[args.precision])
    for r in rows:   # GPT-2's logits at batch 32 are 823 MB a backend
        Path(r.pop("outputs")).unlink(missing_ok=True)
    return rows


def derive(rows: list[dict], args) -> None:
    """Samples/s, TFLOP/s against the peak each backend computes in, and flowc's time over each other's."""
    flowc = next((r for r in rows if r["backend"] == "flowc" and r["ok"]), None)
    for r in rows:
        if not r["ok"]:
            continue
        flops = args.flops[r["model"]] * r["batch"]
        r["samples_per_s"] = r["batch"] / (r["median_ms"] / 1e3)
        r["tflops"] = flops / (r["median_ms"] / 1e3) / 1e12
        if "on_gpu_median_ms" in r:
            r["on_gpu_tflops"] = flops / (r["on_gpu_median_ms"] / 1e3) / 1e12
        r["computes_in"] = computes_in(r["backend"], args.precision, args.tf32)
        if args.peaks is not None:
            r["peak_tflops"] = args.peaks[r["computes_in"]]
            r["fraction_of_peak"] = r["tflops"] / r["peak_tflops"]
        if flowc is not None and r is not flowc:
            r["flowc_over_this"] = flowc["median_ms"] / r["median_ms"]


def table(rows: list[dict], header: list[str], args) -> str:
    columns = (f"{'model':<11}{'batch':>5}  {'backend':<14}{'median ms':>10}{'on-GPU ms':>10}{'samples/s':>11}"
               f"{'flowc/x':>8}{'TFLOP/s':>9}{'% peak':>8}{'setup s':>9}  max|diff| vs torch")
    lines = [*header, "", columns, "-" * len(columns)]
    last = None
    for r in rows:
        key = (r["model"], r["batch"])
        lead = f"{r['model']:<11}{r['batch']:>5}  " if key != last else " " * 18
        if last is not None and key != last:
            lines.append("")
        last = key
        if not r["ok"]:
            lines.append(f"{lead}{r['backend']:<14}{r['status']}")
            continue
        on_gpu = f"{r['on_gpu_median_ms']:.2f}" if "on_gpu_median_ms" in r else "-"
        ratio = f"{r['flowc_over_this']:.2f}" if "flowc_over_this" in r else "-"
        peak = f"{100 * r['fraction_of_peak']:.1f}" if "fraction_of_peak" in r else "-"
        setup = f"{r['setup_s']:.1f}" if r.get("setup_s") is not None else "-"
        lines.append(f"{lead}{r['backend']:<14}{r['median_ms']:>10.2f}{on_gpu:>10}{r['samples_per_s']:>11.1f}"
                     f"{ratio:>8}{r['tflops']:>9.2f}{peak:>8}{setup:>9}  {fmt_diff(r, REFERENCE)}")
    rtol, atol = TOLERANCE[args.precision]
    lines += ["",
              ("median ms: numpy in, numpy out (host copies included, as flowc's run() does); on-GPU ms: inputs "
               "already on the GPU, outputs left there (torch and TensorRT)"),
              ("flowc/x: flowc's median over this row's (above 1.00: flowc is slower); samples/s and TFLOP/s from "
               "the median ms"),
              (f"% peak: of the {'GPU' if args.peaks is None else args.peak_label}'s dense peak in what the row "
               f"computes in (flowc: {computes_in('flowc', args.precision, args.tf32)}; others: "
               f"{computes_in('torch', args.precision, args.tf32)})"),
              ("setup s: torch.compile: first call (compile); tensorrt: engine build; flowc: flowc.compile "
               "(nvcc included unless cached in --cache)"),
              ("flowc-steps: flowc's build with FLOWC_CUDA_GRAPHS=0, its compute steps launched one by one; "
               "flowc: replayed as a CUDA graph"),
              f"MISMATCH: outside rtol {rtol:g}, atol {atol:g} of torch eager's outputs",
              "GFLOP per sample (2 per multiply-add of convolutions and matmuls; torch.utils.flop_counter): "
              + ", ".join(f"{n} {f / 1e9:.2f}" for n, f in args.flops.items()), "",
              "flowc / baseline, median latency (below 1.00: flowc is faster):"]
    for r in rows:
        if r["backend"] != "flowc":
            continue
        ratios = [f"{o['backend']} {o['flowc_over_this']:.2f}" for o in rows
                  if (o["model"], o["batch"]) == (r["model"], r["batch"]) and "flowc_over_this" in o]
        what = "  ".join(ratios) if ratios else r["status"] if not r["ok"] else "no baseline ran"
        lines.append(f"  {r['model']:<11} batch {r['batch']:<4} {what}")
    return "\n".join(lines)


def tensorrt_missing() -> str | None:
    try:
        import tensorrt  # noqa: F401
    except Exception as e:   # noqa: BLE001  (an ImportError, or a library that fails to load)
        return first_line(e)
    return None


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=",".join(GPU_MODELS),
                    help=f"comma-separated, from {', '.join(GPU_MODELS)} (default: all)")
    ap.add_argument("--batches", default=None, help="comma-separated batch sizes instead of each model's own "
                    "(resnet50: 1,32,128; bert-base, gpt2-small: 1,32)")
    ap.add_argument("--precision", choices=PRECISIONS, default="fp32",
                    help="fp32 (default) or fp16, every backend; flowc stores f16 and computes in f32 inside kernels")
    ap.add_argument("--runs", type=int, default=50, help="timed runs per config; the median is reported (default 50)")
    ap.add_argument("--warmup", type=int, default=10, help="untimed runs before them (default 10)")
    ap.add_argument("--out", type=Path, help="also write every number here (JSON)")
    ap.add_argument("--arch", default=None, help="GPU architecture flowc compiles for, e.g. sm_90 "
                    "(default: the GPU's own)")
    ap.add_argument("--backends", default=",".join(BACKENDS), help=f"comma-separated, from {', '.join(BACKENDS)}")
    ap.add_argument("--tf32", action="store_true", help="let torch and TensorRT use TF32 tensor cores in fp32 "
                    "(default: off, the fp32 flowc computes in)")
    ap.add_argument("--compile-mode", default="default", choices=("default", "reduce-overhead", "max-autotune"),
                    help="torch.compile's mode (default: default)")
    ap.add_argument("--cache", type=Path, default=DEFAULT_CACHE,
                    help="where the exported models and flowc's compiled ones are kept")
    ap.add_argument("--timeout", type=float, default=1800, help="seconds before a worker process is stopped")
    ap.add_argument("--worker", nargs=2, metavar=("JOB", "RESULT"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.worker:
        job_path, result_path = args.worker
        Path(result_path).write_text(json.dumps(worker(json.loads(Path(job_path).read_text()))))
        return 0

    names = [n for n in args.models.split(",") if n]
    requested = [b for b in args.backends.split(",") if b]
    unknown = [n for n in names if n not in GPU_MODELS] + [b for b in requested if b not in BACKENDS]
    if unknown or not names or not requested:
        ap.error(f"unknown model or backend {', '.join(unknown)}; models: {', '.join(GPU_MODELS)}; "
                 f"backends: {', '.join(BACKENDS)}")
    args.backends = [b for b in BACKENDS if b in requested]   # torch first: the others are compared with it
    try:
        batches = [int(b) for b in args.batches.split(",")] if args.batches else None
    except ValueError:
        ap.error(f"--batches {args.batches!r}: give comma-separated positive ints, e.g. 1,32")
    if (batches is not None and min(batches, default=0) < 1) or args.runs < 1 or args.warmup < 0:
        ap.error("batches and --runs must be positive, --warmup not negative")

    missing = gpu_missing()   # before anything slow: exporting takes minutes
    if missing:
        print(f"gpu.py: no usable NVIDIA GPU: {missing}; this benchmark needs one, nothing was run", file=sys.stderr)
        return NO_GPU_EXIT
    import torch
    device = torch.cuda.get_device_name(0)
    major, minor = torch.cuda.get_device_capability(0)
    args.arch = args.arch or f"sm_{major}{minor}"
    from flowc import CompileError
    from flowc.codegen.cuda import arch_list
    try:
        arch_list(args.arch)
    except CompileError as e:
        ap.error(str(e))
    found = peak_for(device)
    args.peak_label, args.peaks = found if found else (None, None)
    args.cache = args.cache.resolve()
    notes = []
    if "tensorrt" in args.backends and (why := tensorrt_missing()):
        args.backends.remove("tensorrt")
        notes.append(f"tensorrt: skipped (import tensorrt failed: {why})")
    if found is None:
        notes.append(f"no peak known for {device!r}: % peak is left out (add the GPU to PEAKS in benchmarks/gpu.py)")
    for note in notes:
        print(note, file=sys.stderr, flush=True)

    with tempfile.TemporaryDirectory(prefix="flowc-gpu-bench-") as tmp:
        work = Path(tmp)
        flowc_refusal = None
        if any(b in args.backends for b in FLOWC_BACKENDS):
            probe = run_worker({"kind": "probe", "arch": args.arch, "flowc_dir": str(args.cache / f"flowc-probe-{args.arch}")},
                               work / "probe", args.timeout)
            no_gpu, flowc_refusal = read_probe(probe)
            if no_gpu:
                print(f"gpu.py: no usable NVIDIA GPU for flowc: {no_gpu}", file=sys.stderr)
                return NO_GPU_EXIT
            if flowc_refusal:
                print(f"flowc: {flowc_refusal}", file=sys.stderr, flush=True)

        start = time.perf_counter()
        prepared = run_worker({"kind": "prepare", "models": names, "cache": str(args.cache),
                               "threads": os.cpu_count()}, work / "prepare", args.timeout)
        if "flops_per_sample" not in prepared:
            print(f"gpu.py: exporting the models failed: {prepared.get('status')}\n{prepared.get('error', '')}",
                  file=sys.stderr)
            return 1
        args.flops = prepared["flops_per_sample"]
        print(f"models in {args.cache} (exported now: {', '.join(prepared['exported']) or 'none'}, "
              f"{time.perf_counter() - start:.1f} s)", file=sys.stderr, flush=True)

        rows = []
        for name in names:
            for batch in batches or GPU_MODELS[name].batches:
                rows += bench_config(name, batch, args, work, flowc_refusal)

    peaks = "unknown" if found is None else \
        f"{args.peak_label}: fp32 {args.peaks['fp32']:g}, tf32 {args.peaks['tf32']:g}, fp16/bf16 {args.peaks['fp16']:g}"
    header = [f"flowc GPU benchmark: {device} (dense peak TFLOP/s, {peaks}); flowc compiled for {args.arch}",
              (f"torch {version('torch')} (CUDA {torch.version.cuda}), transformers {version('transformers')}, "
               f"tensorrt {version('tensorrt')}, flowc {version('flowc')}"),
              (f"precision {args.precision}{' (TF32 allowed)' if args.tf32 else ''}; torch.compile mode "
               f"{args.compile_mode}; the median of {args.runs} timed runs, {args.warmup} untimed before them"), *notes]
    print(table(rows, header, args))
    if args.out:
        args.out.write_text(json.dumps({
            "header": header, "device": device, "peak": args.peak_label, "peak_tflops": args.peaks,
            "precision": args.precision, "tf32": args.tf32, "arch": args.arch, "runs": args.runs,
            "warmup": args.warmup, "compile_mode": args.compile_mode, "tolerance": TOLERANCE[args.precision],
            "flops_per_sample": args.flops, "notes": notes, "results": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

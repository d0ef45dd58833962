"""Whole models on the CPU, 2 threads each: flowc (target "cpu") against onnxruntime, PyTorch eager
and torch.compile. Median and p90 steady-state latency, the ratio to onnxruntime, compile / setup
time, peak RSS, and every backend's outputs against onnxruntime's.

    python benchmarks/cpu.py [--models mlp,resnet18,bert,gpt2] [--quick] [--json PATH]

Each (model, batch, backend) runs in its own process with OMP/OpenBLAS/MKL at --threads, so no two
thread pools ever spin against each other and each peak RSS belongs to one backend. The models are
exported once to ONNX (benchmarks/models.py) into --cache; see benchmarks/README.md.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import models  # noqa: E402  (benchmarks/models.py; torch and transformers are imported lazily)

BACKENDS = ("onnxruntime", "flowc", "torch", "torch.compile")
REFERENCE = "onnxruntime"
RTOL, ATOL = 1e-3, 1e-4          # the tolerance flowc's CPU target promises against onnxruntime
DEFAULT_CACHE = Path(__file__).resolve().parents[1] / ".cache" / "bench-models"
SETUP_MEANING = {"onnxruntime": "session creation", "flowc": "cold compile",
                 "torch": "-", "torch.compile": "first call (compile)"}


# -- in the worker process: one backend, one model, one batch ------------------------------

def timed(fn):
    start = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - start


def setup_onnxruntime(job, feeds):
    import onnxruntime as ort
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = job["threads"]
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    session, setup_s = timed(lambda: ort.InferenceSession(job["onnx"], opts, providers=["CPUExecutionProvider"]))
    return (lambda: session.run(None, feeds)), {"setup_s": setup_s}


def compile_flowc(job, feeds):
    """The cold compile, in a process of its own: a deployed model never pays for it."""
    import flowc
    shapes = {name: list(a.shape) for name, a in feeds.items()}

    def compile_():
        return flowc.compile(job["onnx"], target=job["flowc_target"], out_dir=job["flowc_dir"], input_shapes=shapes)
    _, cold_s = timed(compile_)
    _, recompile_s = timed(compile_)     # unchanged model, same folder: what the content-hash cache saves
    return {"setup_s": cold_s, "recompile_s": recompile_s}


def setup_flowc(job, feeds):
    import flowc
    model, load_s = timed(lambda: flowc.load(job["flowc_dir"]))
    return (lambda: list(model.run(feeds).values())), {"load_s": load_s}


def _torch_module(job, feeds):
    import torch
    torch.set_num_threads(job["threads"])
    torch.set_num_interop_threads(1)
    module = models.load_torch(job["model"], job["cache"])
    return torch, module, [torch.from_numpy(a) for a in feeds.values()]


def _as_list(out):
    return [t.numpy() for t in out] if isinstance(out, (tuple, list)) else [out.numpy()]


def setup_torch(job, feeds):
    torch, module, args = _torch_module(job, feeds)

    def run():
        with torch.inference_mode():
            return _as_list(module(*args))
    return run, {}


def setup_torch_compile(job, feeds):
    torch, module, args = _torch_module(job, feeds)
    compiled = torch.compile(module)

    def run():
        with torch.inference_mode():
            return _as_list(compiled(*args))
    _, first_s = timed(run)
    return run, {"setup_s": first_s}


SETUP = {"onnxruntime": setup_onnxruntime, "flowc": setup_flowc, "torch": setup_torch,
         "torch.compile": setup_torch_compile}


def measure(run, seconds: float, warmup_s: float, min_reps: int) -> tuple[list[np.ndarray], list[float], float]:
    """The outputs of the first call, the latency of each timed call after a warm-up, and how many
    cores other processes kept busy meanwhile (on a shared machine they, not the backend, set the p90)."""
    outputs = [np.array(o) for o in run()]
    start = time.perf_counter()
    while time.perf_counter() - start < warmup_s:
        run()
    times: list[float] = []
    busy, own = machine_busy_s(), own_cpu_s()
    start = time.perf_counter()
    while len(times) < min_reps or (time.perf_counter() - start < seconds and len(times) < 100_000):
        t = time.perf_counter()
        run()
        times.append(time.perf_counter() - t)
    wall = time.perf_counter() - start
    others = (machine_busy_s() - busy) - (own_cpu_s() - own)
    return outputs, times, max(others, 0.0) / wall


def machine_busy_s() -> float:
    """CPU seconds all cores have spent busy since boot (0 where /proc/stat is missing)."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    except OSError:
        return 0.0
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(f) for f in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def own_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024   # Linux reports KiB


def first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0] if text else ''}".rstrip(": ")


def worker(job: dict) -> dict:
    if job["kind"] == "export":
        return {"exported": models.export_all(job["models"], job["cache"])}
    feeds = models.inputs(job["model"], job["batch"])
    result: dict = {}
    try:
        if job["kind"] == "flowc-compile":
            result.update(compile_flowc(job, feeds))
        else:
            run, info = SETUP[job["backend"]](job, feeds)
            result.update(info)
            outputs, times, others = measure(run, job["seconds"], job["warmup_s"], job["min_reps"])
            np.savez(job["outputs"], *outputs)
            ms = np.array(times) * 1e3
            result.update(status="ok", median_ms=float(np.median(ms)), p90_ms=float(np.percentile(ms, 90)),
                          reps=len(times), other_load=others)
    except Exception as e:   # noqa: BLE001  (any backend failure is a table entry, not a crash)
        flowc = sys.modules.get("flowc")
        na = job["backend"] == "flowc" and flowc is not None and isinstance(e, flowc.CompileError)
        result.update(status=("n/a: " + str(e).strip().splitlines()[0]) if na else "error: " + first_line(e),
                      error=str(e)[:4000])
    result["peak_rss_mb"] = peak_rss_mb()
    return result


# -- in the parent: jobs, comparison, table -----------------------------------------------

def child_env(threads: int, scratch: Path) -> dict:
    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[var] = str(threads)
    env["TORCHINDUCTOR_CACHE_DIR"] = str(scratch)   # a fresh cache: torch.compile's first call is cold too
    env["PYTHONWARNINGS"] = "ignore"
    return env


def run_worker(job: dict, scratch: Path, threads: int, timeout: float) -> dict:
    scratch.mkdir(parents=True, exist_ok=True)
    job_path, result_path = scratch / "job.json", scratch / "result.json"
    job_path.write_text(json.dumps(job))
    cmd = [sys.executable, __file__, "--worker", str(job_path), str(result_path)]
    try:
        proc = subprocess.run(cmd, env=child_env(threads, scratch / "inductor"), check=False,
                              capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"status": f"error: timed out after {timeout:.0f} s"}
    if proc.returncode != 0 or not result_path.is_file():
        tail = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
        return {"status": f"error: worker exited with {proc.returncode}: {tail}", "error": proc.stderr[-4000:]}
    return json.loads(result_path.read_text())


def compare(outputs: Path, reference: Path, rtol: float = RTOL, atol: float = ATOL) -> tuple[float, bool]:
    """The max abs difference over all outputs (matched by name), and whether all are within rtol/atol."""
    with np.load(outputs) as got, np.load(reference) as want:
        if sorted(got.files) != sorted(want.files):
            return float("nan"), False
        diffs, close = [], True
        for key in want.files:
            g, w = got[key].astype(np.float64), want[key].astype(np.float64)
            if g.shape != w.shape:
                return float("nan"), False
            diffs.append(float(np.max(np.abs(g - w))) if g.size else 0.0)
            close &= bool(np.allclose(g, w, rtol=rtol, atol=atol))
        return max(diffs, default=0.0), close


def bench_config(name: str, batch: int, args, work: Path) -> list[dict]:
    onnx_path = models.paths(name, args.cache)[0]
    base = {"model": name, "batch": batch, "threads": args.threads, "cache": str(args.cache),
            "onnx": str(onnx_path), "flowc_target": args.flowc_target, "seconds": args.seconds,
            "warmup_s": args.warmup, "min_reps": args.min_reps}
    rows = []
    for backend in args.backends:
        scratch = work / f"{name}-b{batch}-{backend}"
        job = dict(base, kind="run", backend=backend, outputs=str(scratch / "outputs.npz"),
                   flowc_dir=str(scratch / "flowc"))
        start = time.perf_counter()
        extra = {}
        if backend == "flowc":
            extra = run_worker(dict(job, kind="flowc-compile"), scratch / "compile", args.threads, args.timeout)
            extra["compile_peak_rss_mb"] = extra.pop("peak_rss_mb", None)
        if extra.get("status", "ok").startswith(("n/a", "error")):
            result = extra
        else:
            result = dict(extra, **run_worker(job, scratch, args.threads, args.timeout))
        row = {"model": name, "batch": batch, "backend": backend, **result, "wall_s": time.perf_counter() - start}
        row["ok"] = row.get("status") == "ok"
        row["outputs"] = job["outputs"]
        rows.append(row)
        print(f"  {name} batch {batch} {backend}: {row['status']} ({row['wall_s']:.1f} s)", file=sys.stderr, flush=True)
    ref = next((r for r in rows if r["backend"] == REFERENCE and r["ok"]), None)
    for r in rows:
        if r["ok"] and ref is not None:
            r["ratio_to_ort"] = r["median_ms"] / ref["median_ms"]
            if r is not ref:
                r["max_abs_diff"], r["within_tolerance"] = compare(Path(r["outputs"]), Path(ref["outputs"]))
    for r in rows:
        del r["outputs"]
    return rows


def fmt_diff(r: dict, reference: str = REFERENCE) -> str:
    """A row's max abs difference against the `reference` backend's outputs, for the table."""
    if r["backend"] == reference:
        return "(reference)"
    if "max_abs_diff" not in r:
        return "-"
    return f"{r['max_abs_diff']:.1e}" + ("" if r["within_tolerance"] else "  MISMATCH")


def table(rows: list[dict], header: list[str]) -> str:
    columns = (f"{'model':<10}{'batch':>5}  {'backend':<14}{'median ms':>10}{'p90 ms':>10}{'x ORT':>7}"
               f"{'setup s':>9}{'peak MB':>9}{'others':>8}  max|diff| vs ORT")
    lines = [*header, "", columns, "-" * len(columns)]
    last = None
    for r in rows:
        key = (r["model"], r["batch"])
        lead = f"{r['model']:<10}{r['batch']:>5}  " if key != last else " " * 17
        if last is not None and key != last:
            lines.append("")
        last = key
        setup = f"{r['setup_s']:.2f}" if r.get("setup_s") is not None else "-"
        if not r["ok"]:
            lines.append(f"{lead}{r['backend']:<14}{r['status']}")
            continue
        ratio = f"{r['ratio_to_ort']:.2f}" if "ratio_to_ort" in r else "-"
        lines.append(f"{lead}{r['backend']:<14}{r['median_ms']:>10.2f}{r['p90_ms']:>10.2f}{ratio:>7}"
                     f"{setup:>9}{r['peak_rss_mb']:>9.0f}{r['other_load']:>8.2f}  {fmt_diff(r)}")
    backends = {r["backend"] for r in rows}
    lines += ["", "setup s: " + "; ".join(f"{b}: {m}" for b, m in SETUP_MEANING.items() if b in backends),
              ("peak MB: RSS high-water mark of the process running that backend (flowc: the process that "
               "loads and runs, not the one that compiles)"),
              (f"others: cores that other processes kept busy while the backend was timed (of {os.cpu_count()}); "
               "above ~0.1 the latencies are inflated: run again on a quiet machine"),
              f"MISMATCH: outside rtol {RTOL:g}, atol {ATOL:g} of onnxruntime's outputs", "",
              "flowc / onnxruntime, median latency (below 1.00: flowc is faster):"]
    for r in rows:
        if r["backend"] == "flowc":
            what = f"{r['ratio_to_ort']:.2f}" if "ratio_to_ort" in r else r["status"]
            lines.append(f"  {r['model']:<10} batch {r['batch']:<3} {what}")
    return "\n".join(lines)


def version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=",".join(models.MODELS),
                    help=f"comma-separated, from {', '.join(models.MODELS)} (default: all)")
    ap.add_argument("--backends", default=",".join(BACKENDS), help=f"comma-separated, from {', '.join(BACKENDS)}")
    ap.add_argument("--batches", default=None, help="comma-separated batch sizes instead of each model's own")
    ap.add_argument("--quick", action="store_true", help="a smoke run: a few repetitions, no steady-state claim")
    ap.add_argument("--seconds", type=float, default=2.5, help="timed seconds per config (default 2.5)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--flowc-target", default="cpu", help="flowc target to compile for (default cpu)")
    ap.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="where the exported models are kept")
    ap.add_argument("--timeout", type=float, default=900, help="seconds before a worker process is stopped")
    ap.add_argument("--json", type=Path, help="also write every measurement here")
    ap.add_argument("--worker", nargs=2, metavar=("JOB", "RESULT"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.worker:
        job_path, result_path = args.worker
        result = worker(json.loads(Path(job_path).read_text()))
        Path(result_path).write_text(json.dumps(result))
        return 0

    names = [n for n in args.models.split(",") if n]
    args.backends = [b for b in args.backends.split(",") if b]
    unknown = [n for n in names if n not in models.MODELS] + [b for b in args.backends if b not in BACKENDS]
    if unknown:
        ap.error(f"unknown model or backend {', '.join(unknown)}; models: {', '.join(models.MODELS)}; "
                 f"backends: {', '.join(BACKENDS)}")
    if REFERENCE in args.backends:   # first, so that the others are compared with it
        args.backends.remove(REFERENCE)
        args.backends.insert(0, REFERENCE)
    args.cache = args.cache.resolve()
    args.seconds, args.warmup, args.min_reps = (0.2, 0.0, 3) if args.quick else (args.seconds, 0.5, 10)

    header = [(f"flowc CPU benchmark: {cpu_name()}, {os.cpu_count()} cores; {args.threads} threads per backend, "
               "each backend in its own process"),
              (f"onnxruntime {version('onnxruntime')}, torch {version('torch')}, transformers "
               f"{version('transformers')}, flowc {version('flowc')} (target {args.flowc_target!r})"),
              f"{'quick smoke run' if args.quick else f'{args.seconds:g} s timed per config after 0.5 s warm-up'}"]
    with tempfile.TemporaryDirectory(prefix="flowc-bench-") as tmp:
        work = Path(tmp)
        start = time.perf_counter()
        exported = run_worker({"kind": "export", "models": names, "cache": str(args.cache)}, work / "export",
                              args.threads, args.timeout)
        if "exported" not in exported:
            print(f"cpu.py: exporting the models failed: {exported.get('status')}\n{exported.get('error', '')}",
                  file=sys.stderr)
            return 1
        print(f"models in {args.cache} (exported now: {', '.join(exported['exported']) or 'none'}, "
              f"{time.perf_counter() - start:.1f} s)", file=sys.stderr, flush=True)
        rows = []
        for name in names:
            batches = [int(b) for b in args.batches.split(",")] if args.batches else models.MODELS[name].batches
            for batch in batches:
                rows += bench_config(name, batch, args, work)
    print(table(rows, header))
    if args.json:
        args.json.write_text(json.dumps({"header": header, "threads": args.threads, "quick": args.quick,
                                         "rtol": RTOL, "atol": ATOL, "results": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

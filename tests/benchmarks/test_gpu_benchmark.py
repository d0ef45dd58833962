"""benchmarks/gpu.py where no GPU is needed: its options, the clear exit it makes without a GPU,
the models it builds, the FLOPs it counts and the table it prints. The timed runs themselves need
an NVIDIA GPU and are not made here; speed is never asserted (benchmarks/README.md)."""
from __future__ import annotations

import importlib.util
import subprocess
import sys
from argparse import Namespace
from pathlib import Path

import numpy as np
import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
SCRIPT = BENCHMARKS / "gpu.py"


@pytest.fixture(scope="module")
def bench():
    """benchmarks/gpu.py as a module. tests/ has a models.py and a gpu.py of its own, so the
    benchmark and the models.py and cpu.py it imports are loaded under their own names, and
    sys.path and the tests' modules are put back afterwards."""
    saved_path = list(sys.path)
    saved = {name: sys.modules.pop(name) for name in ("models", "cpu") if name in sys.modules}
    try:
        spec = importlib.util.spec_from_file_location("gpu_benchmark", SCRIPT)
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module   # its dataclasses look their module up there
        spec.loader.exec_module(module)
    finally:
        sys.path[:] = saved_path
        for name in ("models", "cpu", spec.name):
            sys.modules.pop(name, None)
        sys.modules.update(saved)
    return module


def test_help_lists_the_options():
    proc = subprocess.run([sys.executable, str(SCRIPT), "--help"], check=False, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    for option in ("--models", "--batches", "--precision", "--runs", "--warmup", "--out", "--arch"):
        assert option in proc.stdout, option
    assert "fp16" in proc.stdout


def test_without_a_gpu_it_exits_2_with_one_line_before_exporting(tmp_path):
    import torch
    if torch.cuda.is_available():
        pytest.skip("torch sees a GPU here: the benchmark would run")
    cache = tmp_path / "cache"
    proc = subprocess.run([sys.executable, str(SCRIPT), "--models", "resnet50", "--cache", str(cache),
                           "--out", str(tmp_path / "gpu.json")], check=False, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stdout == ""
    (line,) = proc.stderr.splitlines()
    assert line.startswith("gpu.py: no usable NVIDIA GPU: torch.cuda.is_available() is False"), line
    assert not cache.exists() and not (tmp_path / "gpu.json").exists()   # nothing exported, nothing written


def test_probe_results_stop_the_run_or_only_flowcs_rows(bench):
    """What flowc's one-op probe reports (texts as flowc gives them), and what the run does with it."""
    no_gpu = ("loading /c/flowc-probe-sm_90: target cuda: no usable NVIDIA GPU (cudaGetDeviceCount: CUDA driver "
              "version is insufficient for CUDA runtime version, cudaErrorInsufficientDriver); this model was "
              "compiled for --target cuda and needs an NVIDIA GPU with its driver")
    why, refusal = bench.read_probe({"load_error": no_gpu})
    assert why == no_gpu and refusal is None
    nvcc = "target cuda builds with nvcc, which is neither $CUDACXX nor on PATH: install the CUDA toolkit"
    assert bench.read_probe({"compile_error": nvcc}) == (None, "n/a: " + nvcc)
    assert bench.read_probe({}) == (None, None)


def test_resnet50_counts_2_flops_per_multiply_add(bench):
    """torchvision's resnet50 is 4.09 G multiply-adds per 224x224 image (convolutions and the
    classifier); counted as 2 FLOPs each, 8.18 GFLOP."""
    flops = bench.count_flops(bench.models.MODELS["resnet50"].build(), bench.models.inputs("resnet50", 1))
    assert flops == pytest.approx(2 * 4.089e9, rel=0.005)
    assert bench.count_flops(bench.resnet50(), {"x": np.zeros((2, 3, 224, 224), np.float32)}) == 2 * flops


def test_full_size_models_have_the_originals_parameters(bench):
    import torch
    expected = {"resnet50": 25_557_032, "bert-base": 109_482_240, "gpt2-small": 124_439_808}   # torchvision, HF
    for name, count in expected.items():
        with torch.device("meta"):   # shapes only: no memory, no initialisation
            module = bench.models.MODELS[name].build()
        assert sum(p.numel() for p in module.parameters()) == count, name


def test_builders_give_the_right_shapes_at_tiny_sizes(bench):
    import torch
    rng = np.random.default_rng(0)
    with torch.no_grad():
        torch.manual_seed(0)
        cnn = bench.resnet50(blocks=(1, 1, 1, 1), width=8, classes=10).eval()
        assert cnn(torch.zeros(2, 3, 64, 64)).shape == (2, 10)
        assert cnn[-1].in_features == 8 * 8 * 4     # the last stage's width, expanded 4 times
        ids = torch.from_numpy(rng.integers(0, 100, (2, 8)))
        mask = torch.ones(2, 8, dtype=torch.int64)
        hidden, pooled = bench.bert_base(layers=2, hidden=32, heads=2, vocab=100).eval()(ids, mask)
        assert (hidden.shape, pooled.shape) == ((2, 8, 32), (2, 32))
        (logits,) = bench.gpt2_small(layers=2, hidden=32, heads=2, vocab=100).eval()(ids, mask)
        assert logits.shape == (2, 8, 100)


def test_peaks_by_device_name(bench):
    assert bench.peak_for("NVIDIA H100 80GB HBM3") == ("H100 SXM", {"fp32": 66.9, "tf32": 494.7, "fp16": 989.4})
    assert bench.peak_for("NVIDIA H100 PCIe")[0] == "H100 PCIe"
    assert bench.peak_for("NVIDIA H200")[0] == "H200 SXM"
    assert bench.peak_for("NVIDIA GeForce RTX 4090") is None


def test_table_of_measured_refused_and_failed_rows(bench):
    """What a run prints, from rows as its workers return them (no GPU involved)."""
    args = Namespace(flops={"resnet50": 8e9}, precision="fp16", tf32=False, peaks={"fp32": 50.0, "tf32": 400.0,
                     "fp16": 800.0}, peak_label="H100 SXM")
    rows = [{"model": "resnet50", "batch": 32, "backend": "torch", "status": "ok", "median_ms": 4.0,
             "on_gpu_median_ms": 3.2},
            {"model": "resnet50", "batch": 32, "backend": "torch.compile", "status": "ok", "median_ms": 2.0,
             "on_gpu_median_ms": 1.6, "setup_s": 40.0, "max_abs_diff": 0.5, "within_tolerance": False},
            {"model": "resnet50", "batch": 32, "backend": "tensorrt", "status": "error: RuntimeError: no engine"},
            {"model": "resnet50", "batch": 32, "backend": "flowc", "status": "not supported yet: op NonMaxSuppression "
             "(node \"nms\") is not supported by target cuda yet"}]
    for r in rows:
        r["ok"] = r["status"] == "ok"
    bench.derive(rows, args)
    torch_row = rows[0]
    assert torch_row["samples_per_s"] == pytest.approx(8000.0)
    assert torch_row["tflops"] == pytest.approx(64.0) and torch_row["fraction_of_peak"] == pytest.approx(0.08)
    assert "flowc_over_this" not in torch_row   # flowc did not run
    lines = bench.table(rows, ["header"], args).splitlines()
    assert any(line.split()[:3] == ["resnet50", "32", "torch"] and line.endswith("(reference)") for line in lines)
    assert any("torch.compile" in line and line.endswith("MISMATCH") for line in lines)
    assert any(line.split()[:2] == ["tensorrt", "error:"] for line in lines)
    flowc = [line for line in lines if line.split()[:1] == ["flowc"]]
    assert flowc and "not supported yet" in flowc[0]


def test_each_row_is_measured_against_the_peak_of_what_it_computes_in(bench):
    assert bench.computes_in("flowc", "fp32", tf32=True) == "fp32"      # flowc never uses TF32
    assert bench.computes_in("torch", "fp32", tf32=True) == "tf32"
    assert bench.computes_in("flowc", "fp16", tf32=False) == bench.computes_in("torch", "fp16", tf32=False) == "fp16"

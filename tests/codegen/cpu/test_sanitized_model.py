"""The runtime, the kernels and a model built with AddressSanitizer and UBSan (plain CMake,
-DFLOWC_SANITIZE=ON), the C example run on a model under them: no report, leaks included, and
the answers of flowc.ir.run."""
from __future__ import annotations

import json
import os
import re
import subprocess

import numpy as np

import flowc
from flowc.api import import_model
from flowc.codegen import cpu
from flowc.ir.passes import optimize

from models import model_inputs

SANITIZER_ENV = {
    "ASAN_OPTIONS": "detect_leaks=1:abort_on_error=0:exitcode=23",
    "UBSAN_OPTIONS": "halt_on_error=1:print_stacktrace=1",
}
REPORT = re.compile(r"ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:|SUMMARY: \w+Sanitizer")


def _run(command, **kwargs):
    result = subprocess.run(command, capture_output=True, text=True, **kwargs)
    assert result.returncode == 0, f"{command}:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


def test_model_under_asan_and_ubsan(exported_model, tmp_path, toolchain):
    inputs = model_inputs("resnet", seed=7)
    graph = optimize(import_model(str(exported_model("resnet", 18)), {k: v.shape for k, v in inputs.items()}))
    project = tmp_path / "project"
    cpu.emit(graph, project)
    build = project / "build"
    _run(["cmake", "-S", str(project), "-B", str(build), "-DCMAKE_BUILD_TYPE=Release", "-DFLOWC_SANITIZE=ON",
          "-DCMAKE_EXPORT_COMPILE_COMMANDS=ON"])
    # every translation unit instrumented: the runtime and the kernels as well as the model
    commands = json.loads((build / "compile_commands.json").read_text())
    units = {os.path.basename(c["file"]): c["command"] for c in commands}
    for unit in ("engine.cc", "thread_pool.cc", "conv.cpp", "gemm.cpp", "model.cc", "model.cpp", "main.c"):
        assert "-fsanitize=address,undefined" in units[unit], unit
    _run(["cmake", "--build", str(build), "-j", str(max(2, os.cpu_count() or 2))])

    files = []
    for name in (v.name for v in graph.inputs):
        files.append(tmp_path / f"in{len(files)}.npy")
        np.save(files[-1], inputs[name])
    out = tmp_path / "out"
    out.mkdir()
    env = dict(os.environ, **SANITIZER_ENV)
    env.pop("LD_PRELOAD", None)
    run = subprocess.run([str(build / "main"), str(project), *map(str, files), "--out", str(out)],
                         capture_output=True, text=True, timeout=300, env=env)
    assert not REPORT.search(run.stderr), run.stderr[-6000:]
    assert run.returncode == 0, run.stderr[-6000:]

    want = flowc.ir.run(graph, inputs)
    for j, v in enumerate(graph.outputs):
        shape = ",".join(map(str, want[v.name].shape))
        assert re.search(rf'^"{re.escape(v.name)}" f32\[{shape}\]:', run.stdout, re.M), run.stdout
        np.testing.assert_allclose(np.load(out / f"output{j}.npy"), want[v.name], rtol=1e-4, atol=1e-5)

    # the sanitizers are live in this build: a bad input is refused cleanly, not by a report
    np.save(tmp_path / "wrong.npy", inputs["x"][:1])
    bad = subprocess.run([str(build / "main"), str(project), str(tmp_path / "wrong.npy")],
                         capture_output=True, text=True, timeout=120, env=env)
    assert bad.returncode != 0 and "expected shape" in bad.stderr and not REPORT.search(bad.stderr)
    for binary in (build / "main", build / "libflowc_model.so"):
        assert b"__asan_init" in binary.read_bytes() and b"__ubsan_handle" in binary.read_bytes(), binary

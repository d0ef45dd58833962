"""The emitted project on its own: plain CMake, the C example as a subprocess, hostile names,
clean refusals, and the build cache."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import time

import numpy as np
import pytest

import flowc
from flowc.codegen import cpu
from flowc.errors import CompileError
from flowc.frontend.builder import GraphBuilder
from flowc.ir.passes import optimize

from models import model_inputs


def test_plain_cmake_build_and_c_example(compiled, tmp_path, toolchain):
    graph, model = compiled("bert")     # two i64 inputs, two outputs
    project = tmp_path / "project"
    shutil.copytree(model.path, project, ignore=shutil.ignore_patterns("build"))
    for command in (["cmake", "-S", str(project), "-B", str(project / "build"), "-DCMAKE_BUILD_TYPE=Release"],
                    ["cmake", "--build", str(project / "build"), "-j", "2"]):
        result = subprocess.run(command, capture_output=True, text=True)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    inputs = model_inputs("bert", seed=5)
    files = []
    for name, array in inputs.items():
        files.append(tmp_path / f"in{len(files)}.npy")
        np.save(files[-1], array)
    out = tmp_path / "out"
    out.mkdir()
    run = subprocess.run([str(project / "build" / "main"), str(project), *map(str, files), "--out", str(out)],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    want = flowc.ir.run(graph, inputs)
    for j, v in enumerate(graph.outputs):
        assert re.search(rf'^"{re.escape(v.name)}" f32\[{",".join(map(str, want[v.name].shape))}\]:', run.stdout, re.M)
        np.testing.assert_allclose(np.load(out / f"output{j}.npy"), want[v.name], rtol=1e-4, atol=1e-5)
    np.save(tmp_path / "wrong.npy", inputs["input_ids"].astype(np.float32))
    bad = subprocess.run([str(project / "build" / "main"), str(project), str(tmp_path / "wrong.npy"), str(files[1])],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode != 0 and "expected dtype i64" in bad.stderr


HOSTILE = ['x"; system("rm -rf /"); //', "a\nb */ #include <evil>", "..\\..//../etc/passwd", "ünïcödé ✓ \\",
           "??=trigraph */ /*", "\x01\x7f"]


def hostile_graph():
    b = GraphBuilder(HOSTILE[0] + HOSTILE[1])
    x = b.input(HOSTILE[0], "f32", [2, 3])
    y = b.input(HOSTILE[3], "f32", [2, 3])
    w = b.const(np.arange(3, dtype=np.float32), name=HOSTILE[2])
    s = b.op("Add", x, w, name=HOSTILE[1])
    t = b.op("Mul", s, y, name=HOSTILE[4])
    u = b.op("Relu", t, name=HOSTILE[5])
    b.output(b.op("Tanh", u, name=HOSTILE[2] + "n"), name=HOSTILE[1] + "out")
    b.output(s, name=HOSTILE[4] + "s")
    return b.build()


def test_hostile_names_compile_and_run(tmp_path, toolchain):
    graph = optimize(hostile_graph())
    out = tmp_path / "model"
    cpu.emit(graph, out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]
    model = cpu.load(out)
    assert model.input_names == [v.name for v in graph.inputs]
    assert model.output_names == [v.name for v in graph.outputs]
    rng = np.random.default_rng(0)
    inputs = {v.name: rng.standard_normal((2, 3)).astype(np.float32) for v in graph.inputs}
    got, want = model.run(inputs), flowc.ir.run(graph, inputs)
    for name in want:
        np.testing.assert_allclose(got[name], want[name], rtol=1e-5, atol=1e-6)
    source = (out / "model.cpp").read_text()
    # names reach the source only as escaped string literals: no quote, comment end or path survives
    for fragment in ('system("', "*/", "<evil>", "../", "\\.."):
        assert fragment not in source


def test_unsupported_op_is_a_clean_compile_error(tmp_path):
    b = GraphBuilder("g")
    x = b.input("x", "f32", [2, 5])
    b.output(b.op("EyeLike", x, name="eye"), name="y")
    with pytest.raises(CompileError, match=r'^op EyeLike \(node "eye"\) is not supported by target cpu yet$'):
        cpu.emit(b.build(), tmp_path / "m")


def test_symbolic_shapes_are_refused_naming_the_tensor(tmp_path):
    b = GraphBuilder("g")
    x = b.input("x", "f32", ["B", 4])
    b.output(b.op("Relu", x), name="y")
    with pytest.raises(CompileError, match=r'tensor "x" has type f32\[B,4\]: target cpu needs static shapes'):
        cpu.emit(b.build(), tmp_path / "m")


def test_unchanged_model_rebuilds_from_cache(compiled, report_section):
    graph, model = compiled("resnet")
    start = time.perf_counter()
    cpu.emit(graph, model.path)
    library = cpu.build(model.path)
    seconds = time.perf_counter() - start
    assert library.is_file() and seconds < 1.0
    report_section("cpu target: cached recompile", f"resnet: emit + build of an unchanged model {seconds:.3f} s")


def test_build_failure_shows_compiler_errors(tmp_path, toolchain):
    b = GraphBuilder("g")
    x = b.input("x", "f32", [2, 3])
    b.output(b.op("Relu", x), name="y")
    out = tmp_path / "m"
    cpu.emit(b.build(), out)
    (out / "model.cpp").write_text((out / "model.cpp").read_text() + "\nthis is not C++;\n")
    with pytest.raises(CompileError, match=r"cmake build failed[\s\S]*error"):
        cpu.build(out)


def test_profile_lists_every_step_when_asked(compiled, tmp_path):
    graph, model = compiled("tinycnn")
    image = tmp_path / "image.npy"
    np.save(image, model_inputs("tinycnn")["image"])
    main = [str(model.path / "build" / "main"), str(model.path), str(image)]
    plain = subprocess.run(main, capture_output=True, text=True, timeout=60)
    assert plain.returncode == 0 and "flowc profile" not in plain.stderr
    run = subprocess.run(main, capture_output=True, text=True, timeout=60, env={**os.environ, "FLOWC_PROFILE": "1"})
    assert run.returncode == 0, run.stderr
    assert "flowc profile: 1 requests" in run.stderr
    rows = re.findall(r"^\s+(\d+)\s+([\d.]+)\s+([\d.]+)  (.+)$", run.stderr, re.M)
    assert len(rows) >= len(graph.nodes) // 2 and abs(sum(float(r[2]) for r in rows) - 100) < 1

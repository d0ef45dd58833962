"""The runtime cache of flowc's own build: the runtime and kernel objects built once per hash of
their sources and options, published whole or not at all, and used by later models so that only
the model's own sources compile; without it (plain CMake) the project builds from its sources.
And what a build reports of its progress, and to whom."""
from __future__ import annotations

import importlib
import logging
import os
import threading

import numpy as np
import pytest

import flowc
from flowc.codegen import cpu
from flowc.frontend.builder import GraphBuilder
from flowc.ir.passes import optimize

cpu_build = importlib.import_module("flowc.codegen.cpu.build")   # the module (cpu.build is its function)


def _graph(op: str):
    b = GraphBuilder(f"tiny-{op}")
    x = b.input("x", "f32", [2, 5])
    w = b.const(np.linspace(-1, 1, 5, dtype=np.float32), name="w")
    b.output(b.op(op, b.op("Add", x, w)), name="y")
    return optimize(b.build())


def _cmake_cache(project) -> dict[str, str]:
    out = {}
    for line in (project / "build" / "CMakeCache.txt").read_text().splitlines():
        if ":" in line and "=" in line and not line.startswith(("//", "#")):
            name, value = line.split("=", 1)
            out[name.split(":", 1)[0]] = value
    return out


def _compiled_runtime_sources(project) -> list[str]:
    """Runtime and kernel objects compiled in the project's own build folder."""
    return sorted(p.name for p in (project / "build" / "runtime").rglob("*.o"))


def _entries(cache) -> list:
    return sorted(p for p in (cache / cpu_build.CACHE_SUBDIR).iterdir() if not p.name.startswith("."))


def _check_runs(project, graph):
    model = cpu.load(project)
    x = np.random.default_rng(0).standard_normal((2, 5)).astype(np.float32)
    np.testing.assert_allclose(model.run({"x": x})["y"], flowc.ir.run(graph, {"x": x})["y"], rtol=1e-5, atol=1e-6)


@pytest.fixture(scope="module")
def warm_cache(tmp_path_factory, toolchain):
    """A runtime cache filled by one cold build (project A, built from its own sources)."""
    cache = tmp_path_factory.mktemp("flowc-cache")
    project = tmp_path_factory.mktemp("cache-a") / "a"
    graph = _graph("Relu")
    cpu.emit(graph, project)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FLOWC_CACHE_DIR", str(cache))
        cpu.build(project)
    return cache, project, graph


def test_cold_build_compiles_from_source_and_fills_the_cache(warm_cache):
    cache, project, graph = warm_cache
    assert _cmake_cache(project)["FLOWC_PREBUILT_RUNTIME"] == ""
    assert "engine.cc.o" in _compiled_runtime_sources(project)
    (entry,) = _entries(cache)
    assert (entry / "KEY").read_text() == entry.name
    assert oct((cache / cpu_build.CACHE_SUBDIR).stat().st_mode & 0o777) == oct(0o700)
    for target in cpu_build.RUNTIME_TARGETS:
        assert (entry / f"{target}.objects").read_text().split()
    assert not [p for p in (cache / cpu_build.CACHE_SUBDIR).iterdir() if p.name.startswith((".tmp", ".trash"))]
    _check_runs(project, graph)


def test_next_model_compiles_only_its_own_sources(warm_cache, tmp_path, monkeypatch):
    cache, _, _ = warm_cache
    monkeypatch.setenv("FLOWC_CACHE_DIR", str(cache))
    graph = _graph("Tanh")
    project = tmp_path / "b"
    cpu.emit(graph, project)
    cpu.build(project)
    (entry,) = _entries(cache)
    assert _cmake_cache(project)["FLOWC_PREBUILT_RUNTIME"] == str(entry)
    assert _compiled_runtime_sources(project) == []          # archived from the cache's objects
    _check_runs(project, graph)

    # the cache goes away (or another one is named): the next change builds from source again
    monkeypatch.setenv("FLOWC_CACHE_DIR", str(tmp_path / "other-cache"))
    graph = _graph("Sigmoid")
    cpu.emit(graph, project)
    cpu.build(project)
    assert _cmake_cache(project)["FLOWC_PREBUILT_RUNTIME"] == ""
    assert "engine.cc.o" in _compiled_runtime_sources(project)
    assert len(_entries(tmp_path / "other-cache")) == 1
    _check_runs(project, graph)


def test_key_follows_sources_options_and_compiler(warm_cache, tmp_path, monkeypatch):
    _, project, _ = warm_cache
    options = ["-DCMAKE_BUILD_TYPE=Release", "-DFLOWC_NATIVE=OFF"]
    key = cpu_build.runtime_key(project, options)
    assert cpu_build.runtime_key(project, options) == key
    assert cpu_build.runtime_key(project, ["-DCMAKE_BUILD_TYPE=Release", "-DFLOWC_NATIVE=ON"]) != key
    monkeypatch.setenv("CXXFLAGS", "-O1")
    assert cpu_build.runtime_key(project, options) != key
    monkeypatch.delenv("CXXFLAGS")
    # the model's own sources do not matter; the runtime's do
    other = tmp_path / "other"
    cpu.emit(_graph("Exp"), other)
    assert cpu_build.runtime_key(other, options) == key
    engine = other / "runtime" / "core" / "engine.cc"
    engine.write_text(engine.read_text() + "\n// changed\n")
    assert cpu_build.runtime_key(other, options) != key


def test_incomplete_entries_are_never_used(warm_cache, tmp_path):
    cache, _, _ = warm_cache
    (entry,) = _entries(cache)
    assert cpu_build._cached_entry(entry) == entry
    broken = tmp_path / entry.name
    broken.mkdir()
    assert cpu_build._cached_entry(broken) is None                       # no KEY: unfinished
    (broken / "KEY").write_text(entry.name)
    assert cpu_build._cached_entry(broken) is None                       # no object lists
    for target in cpu_build.RUNTIME_TARGETS:
        (broken / f"{target}.objects").write_text((entry / f"{target}.objects").read_text())
    assert cpu_build._cached_entry(broken) is None                       # lists name missing objects
    (tmp_path / "wrong").mkdir()
    (tmp_path / "wrong" / "KEY").write_text("0" * 24)
    assert cpu_build._cached_entry(tmp_path / "wrong") is None           # KEY not its name


def test_concurrent_publishers_leave_one_whole_entry(warm_cache, tmp_path):
    _, project, _ = warm_cache
    cache = tmp_path / "cache"
    cache.mkdir(mode=0o700)
    # a broken leftover under the key is replaced, never trusted
    (cache / "k").mkdir()
    (cache / "k" / "KEY").write_text("k")
    errors = []

    def publish():
        try:
            cpu_build._publish_runtime(project / "build", cache, "k")
        except Exception as e:   # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=publish) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert cpu_build._cached_entry(cache / "k") == cache / "k"
    assert sorted(p.name for p in cache.iterdir() if p.is_dir()) == ["k"]   # no private folders left


def test_unsafe_cache_folder_is_not_used(tmp_path, monkeypatch):
    shared = tmp_path / "shared"
    (shared / cpu_build.CACHE_SUBDIR).mkdir(parents=True)
    os.chmod(shared / cpu_build.CACHE_SUBDIR, 0o777)
    monkeypatch.setenv("FLOWC_CACHE_DIR", str(shared))
    assert cpu_build.runtime_cache_dir() is None
    (tmp_path / "target").mkdir(mode=0o700)
    monkeypatch.setenv("FLOWC_CACHE_DIR", str(tmp_path / "elsewhere"))
    (tmp_path / "elsewhere").mkdir()
    os.symlink(tmp_path / "target", tmp_path / "elsewhere" / cpu_build.CACHE_SUBDIR)
    assert cpu_build.runtime_cache_dir() is None                         # a link planted in its place
    monkeypatch.setenv("FLOWC_CACHE_DIR", str(tmp_path / "fresh" / "deep"))
    folder = cpu_build.runtime_cache_dir()
    assert folder == tmp_path / "fresh" / "deep" / cpu_build.CACHE_SUBDIR
    assert folder.stat().st_mode & 0o777 == 0o700


def test_build_reports_progress_to_its_callback_else_to_the_log(warm_cache, tmp_path, monkeypatch, capfd, caplog):
    cache, _, _ = warm_cache
    monkeypatch.setenv("FLOWC_CACHE_DIR", str(cache))
    project = tmp_path / "p"
    cpu.emit(_graph("Exp"), project)
    steps = []
    cpu.build(project, progress=lambda percent, what: steps.append((percent, what)))
    assert steps[0] == (None, f"building {project} (cmake, 2 jobs, runtime from the cache)")
    assert all(0 <= percent <= 100 for percent, _ in steps[1:])
    assert {"model.cpp", "runtime/api/model.cc", "link libflowc_model.so"} <= {what for _, what in steps}
    steps.clear()
    with cpu_build.progress_to(lambda percent, what: steps.append((percent, what))):
        cpu.build(project)                                       # up to date: nothing to report
    assert steps == []
    # no callback: the "flowc" logger has the lines, stderr nothing
    cpu.emit(_graph("Sigmoid"), project)
    with caplog.at_level(logging.DEBUG, logger="flowc"):
        cpu.build(project)
    assert capfd.readouterr().err == ""
    messages = [(r.levelno, r.getMessage()) for r in caplog.records]
    assert (logging.INFO, f"building {project} (cmake, 2 jobs, runtime from the cache)") in messages
    assert any(level == logging.DEBUG and message.endswith("] model.cpp") for level, message in messages)


@pytest.mark.parametrize("line,step", [
    ("[ 42%] Building CXX object runtime/kernels/cpu/CMakeFiles/flowc_kernels_cpu.dir/gemm.cpp.o\n",
     (42, "runtime/kernels/cpu/gemm.cpp")),
    ("[  4%] Building CXX object CMakeFiles/flowc_model.dir/model.cpp.o", (4, "model.cpp")),
    ("[ 85%] Building CXX object CMakeFiles/flowc_model.dir/runtime/api/model.cc.o", (85, "runtime/api/model.cc")),
    ("[ 95%] Building C object CMakeFiles/main.dir/main.c.o", (95, "main.c")),
    ("[ 90%] Linking CXX shared library libflowc_model.so", (90, "link libflowc_model.so")),
    ("[3/20] Building CXX object runtime/CMakeFiles/flowc_runtime.dir/base/arena.cc.o",   # Ninja
     (15, "runtime/base/arena.cc")),
    ("[20/20] Linking CXX static library runtime/libflowc_runtime.a", (100, "link libflowc_runtime.a")),
    ("[ 61%] Built target flowc_runtime", None),
    ("-- Configuring done", None),
    ("gemm.cpp:12:3: warning: unused variable [-Wunused-variable]", None),
])
def test_build_step_of_a_cmake_line(line, step):
    assert cpu_build.build_step(line) == step

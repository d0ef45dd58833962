"""install.sh's prebuild_runtime: after it, a model's build finds the runtime in the cache."""
from __future__ import annotations

import importlib

cpu_build = importlib.import_module("flowc.codegen.cpu.build")   # the package's `build` is the function


def test_prebuild_fills_the_runtime_cache(tmp_path, monkeypatch, toolchain):
    monkeypatch.setenv("FLOWC_CACHE_DIR", str(tmp_path / "cache"))
    cache = cpu_build.runtime_cache_dir()
    assert cache is not None and not any(cache.iterdir())
    assert cpu_build.prebuild_runtime() > 0
    entries = [p for p in cache.iterdir() if p.is_dir()]
    assert len(entries) == 1 and cpu_build._cached_entry(entries[0]) is not None

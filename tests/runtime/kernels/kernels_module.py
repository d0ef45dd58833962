"""Builds and imports `_flowc_kernels_test`, the pybind11 module over runtime/kernels/cpu.

The build lives in <repo>/.cache/build-kernels/<hash>, the hash covering every source it
compiles and the CMake options, so an unchanged tree imports the module without rebuilding.
FLOWC_KERNELS_SANITIZE=1 builds and loads the module with AddressSanitizer and UBSan, which only a
Python that preloads the ASan runtime can import (see test_kernels_sanitized.py).
"""
from __future__ import annotations

import hashlib
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
HERE = Path(__file__).resolve().parent
KERNELS = REPO / "runtime" / "kernels" / "cpu"
NAME = "_flowc_kernels_test"


def _sources() -> list[Path]:
    files = [p for p in KERNELS.rglob("*") if p.is_file() and p.suffix in {".h", ".cpp", ".txt"}]
    return sorted(files + [HERE / "module.cpp", HERE / "CMakeLists.txt"])


def _options(native: bool, sanitize: bool) -> list[str]:
    import pybind11

    return [
        "-DCMAKE_BUILD_TYPE=Release",
        f"-DFLOWC_SOURCE_DIR={REPO}",
        f"-DFLOWC_NATIVE={'ON' if native else 'OFF'}",
        f"-DFLOWC_SANITIZE={'ON' if sanitize else 'OFF'}",
        f"-Dpybind11_DIR={pybind11.get_cmake_dir()}",
        f"-DPython_EXECUTABLE={sys.executable}",
        f"-DPYTHON_EXECUTABLE={sys.executable}",
    ]


def build(native: bool | None = None, sanitize: bool | None = None) -> Path:
    """The folder holding the built module (FLOWC_NATIVE=1 in the environment builds -march=native,
    FLOWC_KERNELS_SANITIZE=1 with the sanitizers)."""
    if native is None:
        native = os.environ.get("FLOWC_NATIVE", "0") == "1"
    if sanitize is None:
        sanitize = os.environ.get("FLOWC_KERNELS_SANITIZE", "0") == "1"
    h = hashlib.sha256()
    for opt in _options(native, sanitize):
        h.update(opt.encode())
    for p in _sources():
        h.update(str(p.relative_to(REPO)).encode())
        h.update(p.read_bytes())
    out = REPO / ".cache" / "build-kernels" / h.hexdigest()[:16]
    if not list(out.glob(f"{NAME}*.so")):
        out.mkdir(parents=True, exist_ok=True)
        run = lambda cmd: subprocess.run(cmd, cwd=out, check=True, capture_output=True, text=True)  # noqa: E731
        try:
            run(["cmake", "-S", str(HERE), "-B", str(out)] + _options(native, sanitize))
            run(["cmake", "--build", str(out), "-j", str(os.cpu_count() or 2)])
        except subprocess.CalledProcessError as e:
            raise RuntimeError(f"building {NAME} failed: {' '.join(e.cmd)}\n{e.stdout}\n{e.stderr}") from None
    return out


def load(native: bool | None = None):
    """The `_flowc_kernels_test` module, built first if its sources changed."""
    if NAME in sys.modules:
        return sys.modules[NAME]
    folder = build(native)
    path = next(folder.glob(f"{NAME}*.so"))
    spec = importlib.util.spec_from_file_location(NAME, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    sys.modules[NAME] = module
    return module

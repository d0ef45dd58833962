"""The layout and row kernels' tests again, on the kernels and the module built with AddressSanitizer
and UBSan (FLOWC_KERNELS_SANITIZE=1) and imported by a Python that preloads the ASan runtime: no
report. Pads whose crop reached past the other side's pad once wrote outside their row."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import kernels_module

HERE = Path(__file__).resolve().parent
REPORT = re.compile(r"ERROR: AddressSanitizer|runtime error:|SUMMARY: \w+Sanitizer")


def _preloads(build_dir: Path) -> list[str]:
    """libasan first, then libstdc++ (ASan finds __cxa_throw only in a library loaded when it starts),
    as the compiler of `build_dir` names them; skips where it has no ASan runtime."""
    cxx = re.search(r"^CMAKE_CXX_COMPILER:\w+=(.+)$", (build_dir / "CMakeCache.txt").read_text(), re.M).group(1)
    paths = [subprocess.run([cxx, f"-print-file-name={name}"], capture_output=True, text=True).stdout.strip()
             for name in ("libasan.so", "libstdc++.so")]
    if not all(os.path.isabs(p) and os.path.exists(p) for p in paths):
        pytest.skip(f"{cxx} names no libasan.so and libstdc++.so to preload into Python (got {paths})")
    return paths


@pytest.mark.slow
def test_layout_and_row_kernels_under_asan_and_ubsan(toolchain):
    build_dir = kernels_module.build(sanitize=True)
    env = dict(os.environ, LD_PRELOAD=" ".join(_preloads(build_dir)), FLOWC_KERNELS_SANITIZE="1",
               ASAN_OPTIONS="detect_leaks=0:exitcode=23",     # Python itself keeps memory until exit
               UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1")
    # --capture=sys: a report goes to file descriptor 2, which the subprocess pipe then holds
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "--capture=sys", "-p", "no:cacheprovider",
                          str(HERE / "test_kernels_layout.py"), str(HERE / "test_kernels_rows.py")],
                         capture_output=True, text=True, env=env, timeout=900, cwd=HERE)
    output = run.stdout + run.stderr
    assert not REPORT.search(output), output[-8000:]
    assert run.returncode == 0 and " passed" in output, output[-8000:]

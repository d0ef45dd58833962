"""Build an emitted CPU project with CMake, cached by a hash of its sources.

The build folder is `out_dir/build`. Its stamp holds the hash of every source and option; when
it matches and the library is there, `build` returns at once. Otherwise CMake configures (once)
and builds only what changed. The library is copied to a name carrying the hash, so a process
that loaded an older build never gets the stale one back from the dynamic loader's cache.
"""
from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from flowc.errors import CompileError, quote_name

log = logging.getLogger("flowc")
STAMP = ".flowc-build-hash"
SOURCE_SUFFIXES = {".h", ".c", ".cc", ".cpp", ".txt", ".bin"}


def source_hash(out_dir: Path, options: list[str]) -> str:
    h = hashlib.sha256()
    for opt in options:
        h.update(opt.encode() + b"\0")
    build = out_dir / "build"
    for p in sorted(p for p in out_dir.rglob("*") if p.is_file() and build not in p.parents
                    and p.suffix in SOURCE_SUFFIXES and p.name != "weights.bin"):
        h.update(str(p.relative_to(out_dir)).encode() + b"\0")
        h.update(p.read_bytes())
    return h.hexdigest()[:16]


def build(out_dir, *, native: bool = False, jobs: int = 2, progress: bool | None = None) -> Path:
    """Build the project in `out_dir` (Release, `jobs` parallel jobs); returns the shared library."""
    out_dir = Path(out_dir)
    if not (out_dir / "CMakeLists.txt").is_file():
        raise CompileError(f"{quote_name(str(out_dir))} holds no emitted project (no CMakeLists.txt); "
                           "run flowc.codegen.cpu.emit first")
    if not shutil.which("cmake"):
        raise CompileError("cmake is not installed; target cpu builds with CMake (apt install cmake)")
    options = ["-DCMAKE_BUILD_TYPE=Release", f"-DFLOWC_NATIVE={'ON' if native else 'OFF'}"]
    digest = source_hash(out_dir, options)
    build_dir = out_dir / "build"
    stamp = build_dir / STAMP
    library = build_dir / f"libflowc_model.{digest}.so"
    if stamp.is_file() and stamp.read_text() == digest and library.is_file():
        return library
    if progress is None:
        progress = sys.stderr.isatty()
    start = time.perf_counter()
    build_dir.mkdir(parents=True, exist_ok=True)
    if not (build_dir / "CMakeCache.txt").is_file():
        _run(["cmake", "-S", str(out_dir), "-B", str(build_dir), *options], "configure", progress)
    else:
        _run(["cmake", *options, str(build_dir)], "configure", progress)
    _run(["cmake", "--build", str(build_dir), "-j", str(jobs)], "build", progress)
    for old in build_dir.glob("libflowc_model.*.so"):
        old.unlink()
    built = build_dir / "libflowc_model.so"
    if not built.is_file():
        raise CompileError(f"the build of {quote_name(str(out_dir))} made no libflowc_model.so")
    shutil.copy2(built, library)
    stamp.write_text(digest)
    log.info("built %s in %.1f s", out_dir, time.perf_counter() - start)
    return library


def _run(command: list[str], stage: str, progress: bool) -> None:
    """Run a CMake stage, echoing its lines when `progress`; a failure raises CompileError with
    the compiler's first error lines."""
    env = dict(os.environ, CLICOLOR="0")
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    lines = []
    for line in proc.stdout:
        lines.append(line.rstrip("\n"))
        if progress:
            print(f"flowc: {line}", end="", file=sys.stderr)
        elif line.startswith("[") and "%]" in line:
            log.debug("%s", line.rstrip())
    if proc.wait() != 0:
        errors = [ln for ln in lines if "error" in ln.lower()][:12] or lines[-20:]
        raise CompileError(f"cmake {stage} failed ({' '.join(command)}):\n" + "\n".join(errors))

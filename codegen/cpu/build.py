"""Build an emitted CPU project with CMake, cached by a hash of its sources.

The build folder is `out_dir/build`. Its stamp holds the hash of every source and option; when
it matches and the library is there, `build` returns at once. Otherwise CMake configures (once)
and builds only what changed. The library is copied to a name carrying the hash, so a process
that loaded an older build never gets the stale one back from the dynamic loader's cache.

The runtime cache: the objects of the runtime and kernel libraries (`runtime/` of the project,
the same for every model) are kept in `$FLOWC_CACHE_DIR` (default `~/.cache/flowc`), one
folder per hash of those sources, the CMakeLists, the options, the compiler and the MPI. When the
folder is there, the project is configured with `-DFLOWC_PREBUILT_RUNTIME=<folder>` and only
model.cpp, the C API and main.c compile; when it is not, the project builds everything from
its own sources, as plain CMake does, and its runtime objects are then published in the cache:
copied into a private folder first, which is renamed into place in one step, so a reader never
sees a half-written entry and of concurrent builders the first to finish wins.

Progress: a build that has work to do calls `progress(None, "building DIR (cmake, N jobs)")` as
it starts, then `progress(percent, what)` for each source CMake compiles and each library it
links. The callback is `build`'s `progress` argument, or the one a caller set around its calls
with `progress_to` (the flowc command does, so `flowc compile` shows its builds); without one,
the lines go to the "flowc" logger (the start at INFO, the steps at DEBUG) and never to stderr.
"""
from __future__ import annotations

import hashlib
import logging
import os
import platform
import re
import secrets
import shutil
import stat
import subprocess
import time
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from flowc.errors import CompileError, quote_name

log = logging.getLogger("flowc")
STAMP = ".flowc-build-hash"
SOURCE_SUFFIXES = {".h", ".c", ".cc", ".cpp", ".cu", ".cuh", ".cmake", ".txt", ".bin"}
# The weights (one file, or one per rank of a mesh): read at load, so no part of the build.
WEIGHTS_FILE = re.compile(r"weights(\.r\d+)?\.bin")
KEY_FILE = "KEY"


@dataclass(frozen=True)
class RuntimeParts:
    """The runtime libraries a kind of project keeps in the runtime cache (the CPU target's, the
    CUDA target's): their CMake targets, the cache's subfolder, and the compilers besides the C++
    one whose identity goes into the key."""
    targets: tuple[str, ...]
    subdir: str
    format: bytes
    tools: tuple[str, ...] = ()


CPU_RUNTIME = RuntimeParts(("flowc_runtime", "flowc_kernels_cpu"), "cpu-runtime",   # as in templates/CMakeLists.txt
                           b"flowc cpu runtime objects 1")
RUNTIME_TARGETS, CACHE_SUBDIR = CPU_RUNTIME.targets, CPU_RUNTIME.subdir

# progress(None, message) as a build starts, then progress(percent, what) for each step
BuildProgress = Callable[[int | None, str], None]
_progress_here: ContextVar[BuildProgress | None] = ContextVar("flowc_build_progress", default=None)


@contextmanager
def progress_to(progress: BuildProgress) -> Iterator[None]:
    """Send the progress of the builds started in this context (this thread or task) to
    `progress`, including those that flowc.compile and flowc.load start."""
    token = _progress_here.set(progress)
    try:
        yield
    finally:
        _progress_here.reset(token)


def source_hash(out_dir: Path, options: list[str]) -> str:
    h = hashlib.sha256()
    for opt in options:
        h.update(opt.encode() + b"\0")
    build = out_dir / "build"
    for p in sorted(p for p in out_dir.rglob("*") if p.is_file() and build not in p.parents
                    and p.suffix in SOURCE_SUFFIXES and not WEIGHTS_FILE.fullmatch(p.name)):
        h.update(str(p.relative_to(out_dir)).encode() + b"\0")
        h.update(p.read_bytes())
    return h.hexdigest()[:16]


def build(out_dir, *, native: bool = False, jobs: int = 2, progress: BuildProgress | None = None,
          runtime_cache: bool = True, parts: RuntimeParts = CPU_RUNTIME) -> Path:
    """Build the project in `out_dir` (Release, `jobs` parallel jobs); returns the shared library.

    With `runtime_cache` (and a usable cache folder) the runtime and kernels come prebuilt from
    the runtime cache, or are put there by this build. `progress` sees the build start and each
    of its steps (see the module's docstring); an up-to-date project reports nothing."""
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
    progress = progress or _progress_here.get() or _log_progress
    start = time.perf_counter()
    build_dir.mkdir(parents=True, exist_ok=True)
    cache = runtime_cache_dir(parts.subdir) if runtime_cache else None
    key = runtime_key(out_dir, options, build_dir, parts) if cache else None
    prebuilt = _cached_entry(cache / key, parts.targets) if cache else None
    configure = [*options, f"-DFLOWC_PREBUILT_RUNTIME={prebuilt or ''}"]
    progress(None, f"building {out_dir} (cmake, {jobs} jobs{', runtime from the cache' if prebuilt else ''})")
    if not (build_dir / "CMakeCache.txt").is_file():
        _run(["cmake", "-S", str(out_dir), "-B", str(build_dir), *configure], "configure")
    else:
        _run(["cmake", *configure, str(build_dir)], "configure")
    _run(["cmake", "--build", str(build_dir), "-j", str(jobs)], "build", progress)
    if cache and not prebuilt:
        # keyed by the compiler this configure settled on
        _publish_runtime(build_dir, cache, runtime_key(out_dir, options, build_dir, parts), parts.targets)
    for old in build_dir.glob("libflowc_model.*.so"):
        old.unlink()
    built = build_dir / "libflowc_model.so"
    if not built.is_file():
        raise CompileError(f"the build of {quote_name(str(out_dir))} made no libflowc_model.so")
    shutil.copy2(built, library)
    stamp.write_text(digest)
    log.info("built %s in %.1f s", out_dir, time.perf_counter() - start)
    return library


# -- the runtime cache ------------------------------------------------------------------


def prebuild_runtime() -> float:
    """Build the runtime and kernel objects into the runtime cache now (install.sh does, once),
    so that the first model compiled on this machine builds only its own model.cpp; seconds taken."""
    import tempfile

    import numpy as np

    from flowc.frontend.builder import GraphBuilder

    from .emit import emit
    start = time.perf_counter()
    b = GraphBuilder("prebuild")
    b.output(b.op("Relu", b.input("x", "f32", [1, 4])) * np.float32(2), name="y")
    with tempfile.TemporaryDirectory(prefix="flowc-prebuild-") as folder:
        emit(b.build(), folder)
        build(folder)
    return time.perf_counter() - start


def runtime_cache_dir(subdir: str = CACHE_SUBDIR) -> Path | None:
    """The folder of the runtime cache, created private to this user; None (and a warning) when
    it cannot be made or is not safe to use (not a folder of ours, or writable by others)."""
    root = os.environ.get("FLOWC_CACHE_DIR")
    if not root:
        xdg = os.environ.get("XDG_CACHE_HOME")
        root = Path(xdg) / "flowc" if xdg and os.path.isabs(xdg) else Path.home() / ".cache" / "flowc"
    folder = Path(root).expanduser() / subdir
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        st = folder.lstat()
    except OSError as e:
        log.warning("runtime cache %s unusable (%s): building the runtime from source", folder, e.strerror or e)
        return None
    if not stat.S_ISDIR(st.st_mode) or (hasattr(os, "getuid") and st.st_uid != os.getuid()) \
            or st.st_mode & 0o022:
        log.warning("runtime cache %s is not a folder of this user's that only it can write: "
                    "building the runtime from source", folder)
        return None
    return folder


def runtime_key(out_dir: Path, options: list[str], build_dir: Path | None = None,
                parts: RuntimeParts = CPU_RUNTIME) -> str:
    """A hash of what the runtime objects depend on: the project's runtime/ sources and
    CMakeLists.txt, the options, the compilers (and their flags) CMake uses, the MPI it finds."""
    h = hashlib.sha256(parts.format + b"\0")
    for opt in options:
        h.update(opt.encode() + b"\0")
    files = [out_dir / "CMakeLists.txt"] + sorted(p for p in (out_dir / "runtime").rglob("*") if p.is_file())
    for p in files:
        h.update(str(p.relative_to(out_dir)).encode() + b"\0")
        h.update(hashlib.sha256(p.read_bytes()).digest())
    for var in ("CXX", "CC", "CXXFLAGS", "CFLAGS", "CPPFLAGS"):
        h.update(f"{var}={os.environ.get(var, '')}".encode() + b"\0")
    compiler = _configured_compiler(build_dir) or os.environ.get("CXX", "").split(" ")[0] or "c++"
    for tool in (compiler, *parts.tools):
        h.update(_identity(tool).encode())
    h.update(f"{platform.system()} {platform.machine()}".encode())
    h.update(_mpi_probe().encode())
    return h.hexdigest()[:24]


def _identity(tool: str) -> str:
    """Which file `tool` (a name on PATH or a path) is, and its size and time."""
    path = shutil.which(tool) or tool
    try:
        real = os.path.realpath(path)
        st = os.stat(real)
        return f"{real}\0{st.st_size}\0{st.st_mtime_ns}\0"
    except OSError:
        return path + "\0"


def _mpi_probe() -> str:
    """Which MPI CMake's FindMPI would find (through its compiler wrapper), as text for the key:
    the runtime compiles its MPI communicator only when there is one, so installing or changing
    MPI must not reuse objects built without it."""
    hints = "".join(f"{var}={os.environ.get(var, '')}\0" for var in ("MPI_HOME", "MPICC"))
    wrapper = shutil.which(os.environ.get("MPICC") or "mpicc")
    if not wrapper:
        return hints + "mpi=none"
    try:
        real = os.path.realpath(wrapper)
        st = os.stat(real)
        return f"{hints}mpi={real}\0{st.st_size}\0{st.st_mtime_ns}"
    except OSError:
        return f"{hints}mpi={wrapper}"


def _configured_compiler(build_dir: Path | None) -> str | None:
    """The C++ compiler a configured build folder is bound to (CMake keeps its first choice)."""
    try:
        text = (build_dir / "CMakeCache.txt").read_text(errors="replace") if build_dir else ""
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("CMAKE_CXX_COMPILER:"):
            return line.split("=", 1)[1].strip() or None
    return None


def _cached_entry(entry: Path, targets: tuple[str, ...] = RUNTIME_TARGETS) -> Path | None:
    """`entry` when it is a complete cache entry for its key, else None."""
    try:
        if (entry / KEY_FILE).read_text() != entry.name:
            return None
        for target in targets:
            names = (entry / f"{target}.objects").read_text().split()
            if not names or not all((entry / target / n).is_file() for n in names):
                return None
    except OSError:
        return None
    return entry


def _publish_runtime(build_dir: Path, cache: Path, key: str, targets: tuple[str, ...] = RUNTIME_TARGETS) -> None:
    """Copy the runtime objects this build made into the cache under `key`: into a private
    folder first, then renamed into place at once (if another builder got there first, its
    entry stays and ours goes). A failure only costs the next build its head start."""
    entry = cache / key
    tmp = cache / f".tmp-{key}-{os.getpid()}-{secrets.token_hex(4)}"
    lock = None
    try:
        tmp.mkdir(mode=0o700)
        for target in targets:
            listing = build_dir / "flowc-objects" / f"{target}.txt"
            objects = [Path(line) for line in listing.read_text().split("\n") if line.strip()]
            (tmp / target).mkdir()
            names = []
            for i, obj in enumerate(objects):
                names.append(f"{i:03d}-{obj.name}")
                shutil.copyfile(obj, tmp / target / names[-1])
            (tmp / f"{target}.objects").write_text("".join(n + "\n" for n in names))
        (tmp / KEY_FILE).write_text(key)
        lock = _lock(cache / f".lock-{key}")      # publishers one at a time; readers never wait
        if _cached_entry(entry, targets) is not None:
            return
        if entry.exists() or entry.is_symlink():
            # a broken entry (not ours to trust): move it aside, then drop it
            trash = cache / f".trash-{key}-{os.getpid()}-{secrets.token_hex(4)}"
            os.rename(entry, trash)
            if trash.is_symlink():
                trash.unlink()
            shutil.rmtree(trash, ignore_errors=True)
        os.rename(tmp, entry)
        log.info("runtime objects cached in %s", entry)
    except OSError as e:
        if _cached_entry(entry, targets) is None:
            log.warning("could not cache the runtime objects in %s: %s", entry, e.strerror or e)
    finally:
        if lock is not None:
            lock.close()
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    _sweep(cache)


def _lock(path: Path):
    """An open file holding an exclusive lock on `path` (where the platform has flock)."""
    handle = open(os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o600), "r+b")
    try:
        import fcntl
    except ImportError:      # no flock: the rename alone keeps entries whole
        return handle
    fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
    return handle


def _sweep(cache: Path, older_than: float = 3600.0) -> None:
    """Drop private folders that crashed builders left behind."""
    now = time.time()
    for p in cache.glob(".*-*"):
        try:
            if p.name.startswith((".tmp-", ".trash-")) and now - p.lstat().st_mtime > older_than:
                shutil.rmtree(p, ignore_errors=True)
        except OSError:
            pass


def _run(command: list[str], stage: str, progress: BuildProgress | None = None) -> None:
    """Run a CMake stage, passing each step it reports to `progress`; a failure raises
    CompileError with the compiler's first error lines."""
    env = dict(os.environ, CLICOLOR="0")
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    lines = []
    for line in proc.stdout:
        lines.append(line.rstrip("\n"))
        step = build_step(line) if progress is not None else None
        if step is not None:
            progress(*step)
    if proc.wait() != 0:
        errors = [ln for ln in lines if "error" in ln.lower()][:12] or lines[-20:]
        raise CompileError(f"cmake {stage} failed ({' '.join(command)}):\n" + "\n".join(errors))


_MAKE_STEP = re.compile(r"\[\s*(\d+)%\]\s+(.*)")      # Unix Makefiles: "[ 42%] Building CXX object ..."
_NINJA_STEP = re.compile(r"\[(\d+)/(\d+)\]\s+(.*)")   # Ninja: "[3/20] Building CXX object ..."
_OBJECT = re.compile(r"(?:(.*)/)?CMakeFiles/[^/]+\.dir/(.+)\.(?:o|obj)")


def build_step(line: str) -> tuple[int, str] | None:
    """(percent, what) of a CMake build line that compiles a source or links a library, e.g.
    "[ 42%] Building CXX object runtime/kernels/cpu/CMakeFiles/k.dir/gemm.cpp.o" gives
    (42, "runtime/kernels/cpu/gemm.cpp") and "[ 90%] Linking CXX shared library libm.so" gives
    (90, "link libm.so"); None for any other line."""
    line = line.strip()
    if m := _MAKE_STEP.fullmatch(line):
        percent, action = int(m[1]), m[2]
    elif m := _NINJA_STEP.fullmatch(line):
        percent, action = 100 * int(m[1]) // max(int(m[2]), 1), m[3]
    else:
        return None
    words = action.split()
    if len(words) < 2 or words[0] not in ("Building", "Linking"):
        return None
    if words[0] == "Linking":
        return percent, f"link {Path(words[-1]).name}"
    obj = _OBJECT.fullmatch(words[-1])
    return percent, "/".join(part for part in obj.groups() if part) if obj else words[-1]


def _log_progress(percent: int | None, what: str) -> None:
    if percent is None:
        log.info("%s", what)
    else:
        log.debug("build [%3d%%] %s", percent, what)

"""Fixtures shared by every test folder, and the summaries printed at the end of a run."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

# The verifier runs after every pass in every test (and in the CLI subprocesses they start).
os.environ["FLOWC_DEBUG"] = "1"

import models  # noqa: E402
from gpu import gpu_missing  # noqa: E402

_REPORTS = pytest.StashKey[list]()


def _missing_tools() -> str | None:
    if not shutil.which("cmake"):
        return "cmake is not installed"
    if not any(shutil.which(c) for c in filter(None, [os.environ.get("CXX"), "c++", "g++", "clang++"])):
        return "no C++ compiler (c++, g++ or clang++) on PATH"
    if not any(shutil.which(c) for c in filter(None, [os.environ.get("CC"), "cc", "gcc", "clang"])):
        return "no C compiler (cc, gcc or clang) on PATH"
    return None


def pytest_collection_modifyitems(config, items):
    """Tests marked `gpu` are skipped, with the reason, where there is no GPU."""
    gpu_tests = [item for item in items if "gpu" in item.keywords]
    missing = gpu_missing() if gpu_tests else None
    for item in gpu_tests if missing else []:
        item.add_marker(pytest.mark.skip(reason=f"needs an NVIDIA GPU: {missing}"))


@pytest.fixture(scope="session")
def toolchain():
    """Skips a test that builds C/C++ where CMake or a compiler is missing."""
    missing = _missing_tools()
    if missing:
        pytest.skip(f"needs CMake and a C/C++ toolchain: {missing}")


@pytest.fixture(scope="session")
def exported_model(tmp_path_factory):
    """`exported_model(name, opset)`: the path of `models.MODELS[name]` exported at `opset`,
    written once per run, on first use."""
    folder: Path | None = None
    cache: dict[tuple[str, int], Path] = {}

    def get(name: str, opset: int) -> Path:
        nonlocal folder
        if (name, opset) not in cache:
            folder = folder or tmp_path_factory.mktemp("torch-models")
            cache[name, opset] = models.export(models.MODELS[name], folder, opset)
        return cache[name, opset]

    return get


@pytest.fixture
def report_section(request):
    """`report_section(title, text)`: printed in the terminal summary, whatever -s says."""
    def add(title: str, text: str) -> None:
        request.config.stash.setdefault(_REPORTS, []).append((title, text))
    return add


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    for title, text in config.stash.get(_REPORTS, []):
        terminalreporter.write_sep("=", title)
        terminalreporter.write_line(text)

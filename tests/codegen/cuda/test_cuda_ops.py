"""The CPU target's single-op cases (tests/codegen/cpu/test_ops.py and test_more_ops.py) on
target cuda: built with nvcc everywhere, and where there is a GPU run against the numpy
reference (f32 at rtol 1e-4, atol 1e-5, other dtypes exactly)."""
from __future__ import annotations

import importlib.util
import inspect
from pathlib import Path

import pytest

import cases

CPU_TESTS = Path(__file__).resolve().parents[1] / "cpu"


def _case_tests():
    """The CPU op tests that build Cases and check them: (id, function)."""
    out = []
    for file in ("test_ops.py", "test_more_ops.py"):
        spec = importlib.util.spec_from_file_location(f"cpu_{file[:-3]}", CPU_TESTS / file)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        for name, fn in vars(module).items():
            if name.startswith("test_") and inspect.isfunction(fn) and "Cases(" in inspect.getsource(fn):
                out.append(pytest.param(fn, id=f"{file[:-3]}.{name}"))
    return out


CASES = _case_tests()


def _run(case, tmp_path) -> None:
    arguments = {"tmp_path": tmp_path, "toolchain": None}
    case(**{p: arguments[p] for p in inspect.signature(case).parameters})


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES)
def test_op_cases_build_for_cuda(case, tmp_path, cuda_toolchain, monkeypatch):
    """Every case's CUDA project compiles with nvcc (sm_90) and links: no GPU needed."""
    monkeypatch.setattr(cases.Cases, "target", "cuda")
    monkeypatch.setattr(cases.Cases, "run", False)
    _run(case, tmp_path)


@pytest.mark.gpu
@pytest.mark.parametrize("case", CASES)
def test_op_cases_on_cuda(case, tmp_path, cuda_toolchain, monkeypatch):
    monkeypatch.setattr(cases.Cases, "target", "cuda")
    _run(case, tmp_path)

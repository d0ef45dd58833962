"""The kernel module, built once per source hash (see kernels_module.py), for every kernel test."""
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
# single_op: one-node graphs run by flowc.ir.run, the references for conv, pooling and norms.
sys.path.insert(0, str(Path(__file__).parents[2] / "ir" / "ops"))
import kernels_module  # noqa: E402


@pytest.fixture(scope="session")
def K():
    return kernels_module.load()

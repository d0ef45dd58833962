"""Dims (fixed, symbolic, unknown), their arithmetic and broadcasting; tensor types."""
import numpy as np
import pytest

from flowc import ir
from flowc.ir.types import (UNKNOWN, broadcast_dim, dim_add, dim_div, dim_mul, dim_sub, dims_product,
                            substitute_dim, tensor_type)


@pytest.mark.parametrize("a,b,product", [
    (2, 3, 6), ("B", 4, "4*B"), ("4*B", "S", "4*B*S"), ("B", 0, 0), (UNKNOWN, 2, UNKNOWN), ("B", 1, "B"),
])
def test_dim_mul(a, b, product):
    assert dim_mul(a, b) == product


@pytest.mark.parametrize("a,b,quotient", [
    (6, 3, 2), ("4*B*S", "S", "4*B"), ("4*B", 2, "2*B"), ("4*B", 3, UNKNOWN), ("B", "S", UNKNOWN), (6, 0, UNKNOWN),
])
def test_dim_div_is_exact_or_unknown(a, b, quotient):
    assert dim_div(a, b) == quotient


def test_dim_add_sub():
    assert dim_add(2, 3) == 5 and dim_add("B", 0) == "B" and dim_add("B", 1) == UNKNOWN
    assert dim_sub("B", "B") == 0 and dim_sub(UNKNOWN, UNKNOWN) == UNKNOWN


@pytest.mark.parametrize("a,b,out", [(1, "B", "B"), ("B", "B", "B"), ("B", 5, 5), ("B", "S", UNKNOWN),
                                     (UNKNOWN, UNKNOWN, UNKNOWN), (3, 3, 3)])
def test_broadcast_dim(a, b, out):
    assert broadcast_dim(a, b) == out


def test_broadcast_dim_mismatch():
    with pytest.raises(ValueError, match="dims 3 and 4 do not broadcast"):
        broadcast_dim(3, 4)


def test_substitute_binds_symbols():
    assert substitute_dim("4*B*S", {"B": 2}) == "8*S"
    assert substitute_dim("B", {"B": 7}) == 7
    assert dims_product([2, "B", 3]) == "6*B"


def test_tensor_type_text_and_sizes():
    t = tensor_type("f16", ["B", 3, 4])
    assert str(t) == "f16[B,3,4]" and t.rank == 3 and not t.is_static
    assert tensor_type("i64", []).numel() == 1
    assert tensor_type("f32", [2, 3]).nbytes() == 24
    assert str(tensor_type("f32", None)) == "f32[*]"


def test_dtype_lookup():
    assert ir.dtype(np.float32).name == "f32" and ir.dtype("bf16").itemsize == 2
    with pytest.raises(ValueError, match="unsupported element type 'complex64'"):
        ir.dtype("complex64")

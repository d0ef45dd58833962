"""Dims (fixed, symbolic, unknown), their arithmetic and broadcasting; element and tensor types."""
import ml_dtypes
import numpy as np
import pytest

from flowc import ir
from flowc.ir.ops.rules import DTYPE_CLASSES
from flowc.ir.types import (UNKNOWN, broadcast_dim, dim_add, dim_div, dim_mul, dim_sub, dims_product,
                            dtype_from_onnx, substitute_dim, tensor_type)


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


# name, numpy type, ONNX TensorProto code, kind, bits as ONNX stores them, storage-only
NEW_DTYPES = [
    ("i16", np.int16, 5, "int", 16, False),
    ("u16", np.uint16, 4, "int", 16, False),
    ("u32", np.uint32, 12, "int", 32, False),
    ("u64", np.uint64, 13, "int", 64, False),
    ("f8e4m3fn", ml_dtypes.float8_e4m3fn, 17, "float", 8, True),
    ("f8e4m3fnuz", ml_dtypes.float8_e4m3fnuz, 18, "float", 8, True),
    ("f8e5m2", ml_dtypes.float8_e5m2, 19, "float", 8, True),
    ("f8e5m2fnuz", ml_dtypes.float8_e5m2fnuz, 20, "float", 8, True),
    ("f8e8m0", ml_dtypes.float8_e8m0fnu, 24, "float", 8, True),
    ("f4e2m1", ml_dtypes.float4_e2m1fn, 23, "float", 4, True),
    ("i4", ml_dtypes.int4, 22, "int", 4, True),
    ("u4", ml_dtypes.uint4, 21, "int", 4, True),
    ("i2", ml_dtypes.int2, 26, "int", 2, True),
    ("u2", ml_dtypes.uint2, 25, "int", 2, True),
]


@pytest.mark.parametrize("name,np_type,onnx_code,kind,bits,storage_only", NEW_DTYPES, ids=[r[0] for r in NEW_DTYPES])
def test_new_dtypes_are_found_by_name_numpy_type_and_onnx_code(name, np_type, onnx_code, kind, bits, storage_only):
    d = ir.dtype(name)
    assert ir.dtype(np.dtype(np_type)) is d and dtype_from_onnx(onnx_code) is d and str(d) == name
    assert (d.np, d.onnx, d.kind, d.bits, d.storage_only) == (np.dtype(np_type), onnx_code, kind, bits, storage_only)
    # ops compute in the ordinary types only: storage-only ones are neither float nor int to them
    assert d.is_float == (kind == "float" and not storage_only)
    assert d.is_int == (kind == "int" and not storage_only)


def test_dtype_classes_hold_the_new_integers_and_no_storage_type():
    floats, ints, numeric = (DTYPE_CLASSES[c][0] for c in ("float", "int", "numeric"))
    assert {"i16", "u16", "u32", "u64"} <= ints <= numeric
    assert floats == {"f32", "f16", "bf16", "f64"}
    storage = {d.name for d in ir.DTYPES.values() if d.storage_only}
    assert storage == {"f8e4m3fn", "f8e4m3fnuz", "f8e5m2", "f8e5m2fnuz", "f8e8m0", "f4e2m1", "i4", "u4", "i2", "u2"}
    assert not storage & set().union(*(names for names, _ in DTYPE_CLASSES.values()))


def test_sub_byte_types_pack_as_onnx_stores_them():
    assert tensor_type("i4", [5]).nbytes() == 3          # two per byte, the last half padded
    assert tensor_type("f4e2m1", [3, 4]).nbytes() == 6
    assert tensor_type("u2", [5]).nbytes() == 2          # four per byte
    assert tensor_type("u64", [2]).nbytes() == 16 and tensor_type("f8e5m2", [7]).nbytes() == 7
    assert tensor_type("i4", ["B", 2]).nbytes() is None
    assert ir.dtype("i4").itemsize == 1                   # in memory, numpy keeps one per byte


def test_unknown_dtype_lists_every_supported_one():
    with pytest.raises(ValueError) as e:
        ir.dtype("f6e2m3")
    assert str(e.value) == ("unsupported element type 'f6e2m3'; flowc supports f32, f16, bf16, f64, i64, i32, i16, "
                            "i8, u64, u32, u16, u8, bool, f8e4m3fn, f8e4m3fnuz, f8e5m2, f8e5m2fnuz, f8e8m0, f4e2m1, "
                            "i4, u4, i2, u2")

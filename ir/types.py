"""Element types, dimensions (fixed or symbolic) and tensor types."""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Iterable, Union

import ml_dtypes
import numpy as np


@dataclass(frozen=True)
class DType:
    name: str           # the IR spelling: f32, i64, ...
    np: np.dtype
    onnx: int           # onnx.TensorProto.DataType
    kind: str           # "float", "int" or "bool": what its values are
    bits: int = 0       # bits per element as ONNX stores it (sub-byte types pack); 0: 8 * itemsize
    storage_only: bool = False   # held, moved and cast, but no op computes on it

    def __post_init__(self):
        object.__setattr__(self, "np", np.dtype(self.np))
        object.__setattr__(self, "bits", self.bits or 8 * self.np.itemsize)

    def __str__(self) -> str:
        return self.name

    def __repr__(self) -> str:
        return self.name

    @property
    def itemsize(self) -> int:
        """Bytes per element in memory (numpy's; sub-byte types take a byte each)."""
        return self.np.itemsize

    def packed_bytes(self, count: int) -> int:
        """Bytes of `count` elements as ONNX stores them: sub-byte types packed, padded to a byte."""
        return (count * self.bits + 7) // 8

    @property
    def is_float(self) -> bool:
        """A float type ops compute in (not a storage-only one)."""
        return self.kind == "float" and not self.storage_only

    @property
    def is_int(self) -> bool:
        """An integer type ops compute in (not a storage-only one)."""
        return self.kind == "int" and not self.storage_only


f32 = DType("f32", np.float32, 1, "float")
f16 = DType("f16", np.float16, 10, "float")
bf16 = DType("bf16", ml_dtypes.bfloat16, 16, "float")
f64 = DType("f64", np.float64, 11, "float")
i64 = DType("i64", np.int64, 7, "int")
i32 = DType("i32", np.int32, 6, "int")
i16 = DType("i16", np.int16, 5, "int")
i8 = DType("i8", np.int8, 3, "int")
u64 = DType("u64", np.uint64, 13, "int")
u32 = DType("u32", np.uint32, 12, "int")
u16 = DType("u16", np.uint16, 4, "int")
u8 = DType("u8", np.uint8, 2, "int")
boolean = DType("bool", np.bool_, 9, "bool")
# storage-only: weights and activations of quantized models, converted by Cast before any arithmetic
f8e4m3fn = DType("f8e4m3fn", ml_dtypes.float8_e4m3fn, 17, "float", storage_only=True)
f8e4m3fnuz = DType("f8e4m3fnuz", ml_dtypes.float8_e4m3fnuz, 18, "float", storage_only=True)
f8e5m2 = DType("f8e5m2", ml_dtypes.float8_e5m2, 19, "float", storage_only=True)
f8e5m2fnuz = DType("f8e5m2fnuz", ml_dtypes.float8_e5m2fnuz, 20, "float", storage_only=True)
f8e8m0 = DType("f8e8m0", ml_dtypes.float8_e8m0fnu, 24, "float", storage_only=True)
f4e2m1 = DType("f4e2m1", ml_dtypes.float4_e2m1fn, 23, "float", bits=4, storage_only=True)
i4 = DType("i4", ml_dtypes.int4, 22, "int", bits=4, storage_only=True)
u4 = DType("u4", ml_dtypes.uint4, 21, "int", bits=4, storage_only=True)
i2 = DType("i2", ml_dtypes.int2, 26, "int", bits=2, storage_only=True)
u2 = DType("u2", ml_dtypes.uint2, 25, "int", bits=2, storage_only=True)

DTYPES: dict[str, DType] = {d.name: d for d in (
    f32, f16, bf16, f64, i64, i32, i16, i8, u64, u32, u16, u8, boolean,
    f8e4m3fn, f8e4m3fnuz, f8e5m2, f8e5m2fnuz, f8e8m0, f4e2m1, i4, u4, i2, u2)}
_BY_NUMPY = {d.np: d for d in DTYPES.values()}
_BY_ONNX = {d.onnx: d for d in DTYPES.values()}


def dtype(x) -> DType:
    """A DType from a DType, its IR name ("f32") or a numpy dtype."""
    if isinstance(x, DType):
        return x
    if isinstance(x, str) and x in DTYPES:
        return DTYPES[x]
    try:
        return _BY_NUMPY[np.dtype(x)]
    except (TypeError, KeyError):
        raise ValueError(f"unsupported element type {x!r}; flowc supports {dtype_names()}") from None


def dtype_names() -> str:
    """Every element type's IR name, as error messages list them."""
    return ", ".join(DTYPES)


def dtype_from_onnx(code: int) -> DType | None:
    return _BY_ONNX.get(code)


# A dimension is an int, a symbol ("B"), a product of symbols with a coefficient
# ("128*B"), or "?" (unknown, equal to nothing, not even another "?").
Dim = Union[int, str]
UNKNOWN = "?"
_SYMBOL = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def _monomial(d: Dim) -> tuple[int, tuple[str, ...]] | None:
    """(coefficient, sorted symbols) of a product dim, None when unknown."""
    if isinstance(d, int):
        return d, ()
    if d == UNKNOWN:
        return None
    coeff, syms = 1, []
    for part in d.split("*"):
        if part.isdigit():
            coeff *= int(part)
        else:
            syms.append(part)
    return coeff, tuple(sorted(syms))


def _from_monomial(coeff: int, syms: Iterable[str]) -> Dim:
    syms = sorted(syms)
    if not syms:
        return coeff
    if coeff == 0:
        return 0
    return "*".join(([str(coeff)] if coeff != 1 else []) + syms)


def is_symbol_name(text: str) -> bool:
    return bool(_SYMBOL.match(text))


def dim_mul(a: Dim, b: Dim) -> Dim:
    ma, mb = _monomial(a), _monomial(b)
    if ma is None or mb is None:
        return 0 if 0 in (a, b) else UNKNOWN
    return _from_monomial(ma[0] * mb[0], ma[1] + mb[1])


def dim_div(a: Dim, b: Dim) -> Dim:
    """a / b where it divides exactly, UNKNOWN otherwise."""
    ma, mb = _monomial(a), _monomial(b)
    if ma is None or mb is None or mb[0] == 0:
        return UNKNOWN
    syms = list(ma[1])
    for s in mb[1]:
        if s not in syms:
            return UNKNOWN
        syms.remove(s)
    if ma[0] % mb[0]:
        return UNKNOWN
    return _from_monomial(ma[0] // mb[0], syms)


def dim_add(a: Dim, b: Dim) -> Dim:
    if isinstance(a, int) and isinstance(b, int):
        return a + b
    if a == 0:
        return b
    if b == 0:
        return a
    return UNKNOWN


def dim_sub(a: Dim, b: Dim) -> Dim:
    if isinstance(a, int) and isinstance(b, int):
        return a - b
    if b == 0:
        return a
    if a == b and a != UNKNOWN:
        return 0
    return UNKNOWN


def dims_product(dims: Iterable[Dim]) -> Dim:
    out: Dim = 1
    for d in dims:
        out = dim_mul(out, d)
    return out


def same_dim(a: Dim, b: Dim) -> bool:
    """True when a and b are known to be equal."""
    return a == b and a != UNKNOWN


def broadcast_dim(a: Dim, b: Dim) -> Dim:
    """numpy broadcasting of one dim; raises ValueError when they cannot match."""
    if a == 1:
        return b
    if b == 1:
        return a
    if isinstance(a, int) and isinstance(b, int):
        if a != b:
            raise ValueError(f"dims {a} and {b} do not broadcast")
        return a
    if same_dim(a, b):
        return a
    if isinstance(a, int):   # the symbol must be 1 or a
        return a
    if isinstance(b, int):
        return b
    return UNKNOWN


def dim_symbols(d: Dim) -> tuple[str, ...]:
    """The symbols a dim is made of: () for a size or an unknown dim."""
    m = _monomial(d)
    return () if m is None else m[1]


def substitute_dim(d: Dim, binding: dict[str, int]) -> Dim:
    m = _monomial(d)
    if m is None or not m[1]:
        return d
    coeff, rest = m[0], []
    for s in m[1]:
        if s in binding:
            coeff *= binding[s]
        else:
            rest.append(s)
    return _from_monomial(coeff, rest)


def format_dim(d: Dim) -> str:
    if isinstance(d, int) or d == UNKNOWN:
        return str(d)
    m = _monomial(d)
    if m is not None and m[1] and all(is_symbol_name(s) for s in m[1]):
        return d
    return json.dumps(d)   # escapes control and non-ASCII characters: one line, reads back


@dataclass(frozen=True)
class TensorType:
    dtype: DType
    shape: tuple[Dim, ...] | None   # None: rank unknown

    def __post_init__(self):
        if self.shape is not None:
            object.__setattr__(self, "shape", tuple(self.shape))

    @property
    def rank(self) -> int | None:
        return None if self.shape is None else len(self.shape)

    @property
    def is_static(self) -> bool:
        return self.shape is not None and all(isinstance(d, int) for d in self.shape)

    def numel(self) -> Dim:
        return UNKNOWN if self.shape is None else dims_product(self.shape)

    def nbytes(self) -> int | None:
        """Bytes as ONNX stores the tensor (sub-byte types packed); None when the size is symbolic."""
        n = self.numel()
        return self.dtype.packed_bytes(n) if isinstance(n, int) else None

    def with_shape(self, shape) -> "TensorType":
        return TensorType(self.dtype, None if shape is None else tuple(shape))

    def with_dtype(self, dt) -> "TensorType":
        return TensorType(dtype(dt), self.shape)

    def __str__(self) -> str:
        if self.shape is None:
            return f"{self.dtype}[*]"
        return f"{self.dtype}[{','.join(format_dim(d) for d in self.shape)}]"

    __repr__ = __str__


INT64_MAX = 2 ** 63 - 1


def tensor_type(dt, shape) -> TensorType:
    """A TensorType from a dtype and a shape of ints and symbols; TypeError/ValueError on a dim
    that is neither a size (0 to 2**63-1) nor a name."""
    return TensorType(dtype(dt), None if shape is None else tuple(_checked_dim(d) for d in shape))


def _checked_dim(d) -> Dim:
    if isinstance(d, (int, np.integer)) and not isinstance(d, (bool, np.bool_)):
        if not 0 <= d <= INT64_MAX:
            raise ValueError(f"dimension {d} is out of range (0 to 2**63-1)")
        return int(d)
    if isinstance(d, str) and d:
        return d
    raise TypeError(f"a dimension is a non-negative int or a symbol name, got {d!r}")


def exact_array(values, dt: DType) -> np.ndarray:
    """`values` (numbers and bools, nested lists or an array) as an array of `dt`, with no value
    changed: ValueError unless ints are integers in range, bools true or false, and floats
    within range (rounding to the nearest float is fine, overflowing to inf or nan is not)."""
    src = np.asarray(values, dtype=object)
    out = np.array([_exact_scalar(x, dt) for x in src.reshape(-1)], dtype=dt.np)
    return out.reshape(src.shape)


def _exact_scalar(x, dt: DType):
    is_bool = isinstance(x, (bool, np.bool_))
    if dt.kind == "bool":
        if not is_bool:
            raise ValueError(f"{x!r} is not a bool (true or false)")
        return bool(x)
    if is_bool or not isinstance(x, (int, float, np.integer, np.floating)):
        raise ValueError(f"{x!r} is not a number")
    if dt.kind == "int":
        if isinstance(x, (float, np.floating)) and not float(x).is_integer():
            raise ValueError(f"{x!r} is not an integer")
        info = ml_dtypes.iinfo(dt.np)
        if not info.min <= int(x) <= info.max:
            raise ValueError(f"{int(x)} is out of the range of {dt} ({info.min} to {info.max})")
        return int(x)
    try:
        f = float(x)
    except OverflowError:
        raise ValueError(f"{x} overflows {dt}") from None
    with np.errstate(all="ignore"):
        y = float(dt.np.type(f))
    if math.isnan(f) != math.isnan(y) or (math.isinf(f) and y != f):
        raise ValueError(f"{f} is not representable in {dt}")
    if math.isfinite(f) and (not math.isfinite(y) or abs(f) > 2 * float(ml_dtypes.finfo(dt.np).max)):
        raise ValueError(f"{x!r} overflows {dt} (largest {ml_dtypes.finfo(dt.np).max})")
    return f


def normalize_axis(axis: int, rank: int) -> int:
    if not -rank <= axis < max(rank, 1):
        raise ValueError(f"axis {axis} is out of range for rank {rank}")
    return axis % rank if rank else 0

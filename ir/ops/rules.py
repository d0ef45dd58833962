"""Shape and dtype rules that several op families share."""
from __future__ import annotations

import numpy as np

from flowc.errors import quote_name

from ..graph import Node
from ..types import DTYPES, Dim, TensorType, broadcast_dim, dtype, normalize_axis


def in_type(node: Node, i: int) -> TensorType:
    return node.inputs[i].type


def broadcast_shapes(node: Node, shapes: list[tuple[Dim, ...] | None]) -> tuple[Dim, ...] | None:
    if any(s is None for s in shapes):
        return None
    rank = max((len(s) for s in shapes), default=0)
    out = []
    for axis in range(rank):
        d: Dim = 1
        for s in shapes:
            k = axis - (rank - len(s))
            if k >= 0:
                try:
                    d = broadcast_dim(d, s[k])
                except ValueError:
                    raise node.error("input shapes " + " and ".join(
                        format_shape(s) for s in shapes) + " do not broadcast") from None
        out.append(d)
    return tuple(out)


def format_shape(shape) -> str:
    """Dims as error messages print them: [B,3]."""
    return "[" + ",".join(str(d) for d in shape) + "]"


def same_dtypes(node: Node, indices=None) -> None:
    """Raise when the given inputs (all present ones by default) differ in dtype."""
    vals = [v for i, v in enumerate(node.inputs) if v is not None and (indices is None or i in indices)]
    kinds = {v.type.dtype for v in vals}
    if len(kinds) > 1:
        raise node.error("inputs must share one dtype, got " + ", ".join(
            f"{quote_name(v.name)}: {v.type.dtype}" for v in vals))


def broadcast_infer(node: Node) -> list[TensorType]:
    """Output of the first input's dtype with all inputs' shapes broadcast."""
    same_dtypes(node)
    shape = broadcast_shapes(node, [v.type.shape for v in node.inputs if v is not None])
    return [TensorType(in_type(node, 0).dtype, shape)]


def compare_infer(node: Node) -> list[TensorType]:
    same_dtypes(node)
    shape = broadcast_shapes(node, [v.type.shape for v in node.inputs])
    return [TensorType(dtype("bool"), shape)]


def same_as_input(node: Node) -> list[TensorType]:
    return [in_type(node, 0)]


def _names(keep) -> frozenset[str]:
    return frozenset(d.name for d in DTYPES.values() if keep(d))


# dtype classes of ONNX type constraints, each with how an error names it; storage-only
# types (f8e4m3fn, i4, ...) are in none of them
DTYPE_CLASSES = {
    "float": (_names(lambda d: d.is_float), "a float"),
    "int": (_names(lambda d: d.is_int), "an integer"),
    "numeric": (_names(lambda d: d.is_float or d.is_int), "a numeric"),
    "bool": (_names(lambda d: d.kind == "bool"), "a bool"),
}


def require_dtype(node: Node, cls: str | None, indices=(0,)) -> None:
    """Raise unless the given inputs (those present) have a dtype of class `cls` (None: any)."""
    if cls is None:
        return
    names, article = DTYPE_CLASSES[cls]
    for i in indices:
        v = node.input(i)
        if v is not None and v.type.dtype.name not in names:
            raise node.error(f"input {quote_name(v.name)} must be {article} tensor, got {v.type}")


def require_float(node: Node, i: int = 0) -> None:
    require_dtype(node, "float", (i,))


def axis_of(node: Node, rank: int | None, key: str = "axis") -> int:
    """The node's axis attribute normalised to [0, rank)."""
    axis = node.attr(key)
    if rank is None:
        raise node.error("needs an input of known rank")
    try:
        return normalize_axis(axis, rank)
    except ValueError as e:
        raise node.error(str(e)) from None


def compute_dtype(dt: np.dtype) -> np.dtype:
    """The dtype the reference computes in: low-precision floats widen to f32."""
    if dt.kind == "f" and dt.itemsize < 4 or dt.name == "bfloat16":
        return np.dtype(np.float32)
    return dt


def widen(x: np.ndarray) -> np.ndarray:
    return x.astype(compute_dtype(x.dtype), copy=False)


def static_or_error(node: Node, value, what: str) -> tuple[int, ...]:
    """Concrete ints of a statically known input, or a CompileError saying it must be static."""
    if value is None or any(not isinstance(d, int) for d in value):
        raise node.error(f"{what} must be known at compile time (it is computed at run time here)")
    return tuple(value)


def broadcasts_to(node: Node, i: int, target: tuple[Dim, ...] | None, what: str) -> None:
    """Raise unless input i, when present, broadcasts one way (numpy rules) to `target`."""
    v = node.input(i)
    if v is None or v.type.shape is None or target is None:
        return
    shape = v.type.shape
    if len(shape) > len(target) or any(isinstance(d, int) and isinstance(t, int) and d not in (1, t)
                                       for d, t in zip(reversed(shape), reversed(target))):
        raise node.error(f"{what} {quote_name(v.name)} is {v.type}, which does not broadcast to "
                         f"{format_shape(target)}")

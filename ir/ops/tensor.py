"""Tensor and shape ops: reshaping, indexing, scattering, casting and shape arithmetic.

Shape inputs (Reshape's shape, Expand's shape, Slice's bounds, ...) are read
with `known_ints`, so symbolic contents such as (B, 128, -1) give symbolic
output dims; where only their length is known, the output has "?" dims. The
`sym` rules carry known shape contents through Shape -> Gather -> Unsqueeze ->
Concat -> Reshape chains.
"""
from __future__ import annotations

import math

import ml_dtypes
import numpy as np

from flowc.errors import quote_name

from ..infer import known_array, known_ints
from ..registry import REQUIRED, defop
from ..sbp import (B, P, S, Signature, broadcast_signatures, elementwise_signatures, keep_axes_signatures,
                   operand_sbps, replicated, reshape_signatures)
from ..types import UNKNOWN, TensorType, dim_div, dim_mul, dims_product, dtype, i64
from .rules import axis_of, broadcast_shapes, format_shape, in_type, same_dtypes

OPEN_END = 2 ** 31 - 1   # a slice bound this large means "to the end": no real dim reaches it


# -- shared helpers -------------------------------------------------------------

def _require_one_element(node, i: int, what: str) -> None:
    v = node.inputs[i]
    if isinstance(v.type.numel(), int) and v.type.numel() != 1:
        raise node.error(f"{what} {quote_name(v.name)} must hold one element, got {v.type}")


def _require_int(node, i: int, what: str) -> None:
    v = node.inputs[i]
    if not v.type.dtype.is_int:
        raise node.error(f"{what} {quote_name(v.name)} must be an integer tensor, got {v.type}")


def _shape_input(node, i: int, what: str):
    """A 1-D integer input's contents, possibly symbolic; "?" entries when only its length is
    known; None when not even that is."""
    _require_int(node, i, what)
    v = node.inputs[i]
    if v.type.rank not in (None, 1):
        raise node.error(f"{what} {quote_name(v.name)} must be 1-D, got {v.type}")
    known = known_ints(v)
    if known is not None:
        return known
    if v.type.shape is not None and isinstance(v.type.shape[0], int):
        return (UNKNOWN,) * v.type.shape[0]
    return None


def _all_int(values) -> bool:
    return all(isinstance(d, int) for d in values)


def _norm_axes(node, axes, rank: int) -> list[int]:
    for a in axes:
        if not -rank <= a < rank:
            raise node.error(f"axes {list(axes)}: axis {a} is out of range for rank {rank}")
    out = [a % rank for a in axes]
    if len(set(out)) != len(out):
        raise node.error(f"axes {list(axes)} name an axis twice")
    return out


def _choice(node, key: str, choices: tuple[str, ...]) -> str:
    value = node.attr(key)
    if value not in choices:
        raise node.error(f"attribute {key!r} must be one of {', '.join(choices)}, got {value!r}")
    return value


def _merge_dim(node, a, b, axis: int):
    """Two dims that must be equal: the better known of them."""
    if a == b or b == UNKNOWN:
        return a
    if a == UNKNOWN:
        return b
    if isinstance(a, int) and isinstance(b, int):
        raise node.error(f"inputs differ in axis {axis}: {a} vs {b}")
    return b if isinstance(b, int) else a


def _dim_sum(dims):
    """Sum of dims; multiples of one symbolic dim add up (B + B = 2*B)."""
    if _all_int(dims):
        return sum(dims)
    ratios = [dim_div(d, dims[0]) for d in dims]
    if _all_int(ratios):
        return dim_mul(sum(ratios), dims[0])
    return UNKNOWN


def _pass_sym(n):
    """Ops that keep the element order: known contents flow through unchanged."""
    return [known_ints(n.inputs[0])]


# -- Shape and Size -----------------------------------------------------------------

def _shape_dims(node, dims):
    return dims[node.attr("start"):node.attr("end")]   # slicing clamps exactly as ONNX specifies


def _shape_infer(node):
    t = in_type(node, 0)
    n = UNKNOWN if t.shape is None else len(_shape_dims(node, t.shape))
    return [TensorType(i64, (n,))]


def _shape_sym(n):
    shape = in_type(n, 0).shape
    return [None if shape is None else _shape_dims(n, shape)]


defop("Shape", family="tensor", summary="The input's shape as an i64 vector, sliced to [start, end).",
      inputs=("data",), outputs=("shape",), attrs={"start": ("int", 0), "end": ("int", None)},
      infer=_shape_infer, ref=lambda n, x: np.array(_shape_dims(n, x.shape), dtype=np.int64),
      sym=_shape_sym, storage=True)


def _size_sym(n):
    t = in_type(n, 0)
    return [None if t.shape is None else (t.numel(),)]


defop("Size", family="tensor", summary="The input's element count as an i64 scalar.",
      inputs=("data",), outputs=("size",), infer=lambda n: [TensorType(i64, ())],
      ref=lambda n, x: np.array(x.size, dtype=np.int64), sym=_size_sym, storage=True)


# -- Reshape, Flatten, Squeeze, Unsqueeze ---------------------------------------------

def _reshape_dims(node, dims, target):
    """Output dims of reshaping `dims` (None: rank unknown) to the shape input's contents."""
    allowzero = node.attr("allowzero")
    shown = format_shape(target)
    if sum(1 for d in target if d == -1) > 1:
        raise node.error(f"shape {shown} has more than one -1")
    if any(isinstance(d, int) and d < -1 for d in target):
        raise node.error(f"shape {shown} has a negative entry other than -1")
    if allowzero and 0 in target and -1 in target:
        raise node.error(f"shape {shown} holds both 0 and -1, which allowzero=1 forbids")
    out = list(target)
    for i, d in enumerate(target):
        if d == 0 and not allowzero:   # 0 copies the input's dim
            if dims is not None and i >= len(dims):
                raise node.error(f"shape {shown}: entry {i} is 0 (copy the input's dim), but the input "
                                 f"has rank {len(dims)}")
            out[i] = UNKNOWN if dims is None else dims[i]
    total = UNKNOWN if dims is None else dims_product(dims)
    if -1 in out:
        i = out.index(-1)
        rest = dims_product(out[:i] + out[i + 1:])
        if isinstance(total, int) and isinstance(rest, int) and (rest == 0 or total % rest):
            raise node.error(f"cannot reshape {format_shape(dims)} ({total} elements) to {shown}: "
                             f"the other entries multiply to {rest}")
        out[i] = dim_div(total, rest)
    elif isinstance(total, int) and isinstance(dims_product(out), int) and total != dims_product(out):
        raise node.error(f"cannot reshape {format_shape(dims)} ({total} elements) to {shown} "
                         f"({dims_product(out)} elements)")
    return out


def _reshape_infer(node):
    t = in_type(node, 0)
    target = _shape_input(node, 1, "shape")
    return [t.with_shape(None if target is None else _reshape_dims(node, t.shape, target))]


# Ops whose output is the input's bytes under another shape: a backend aliases the buffer and
# runs nothing, and the cost model charges nothing for them.
VIEW_OPS = frozenset({"Reshape", "Flatten", "Squeeze", "Unsqueeze"})


def _reshape_ref(n, x, shape):
    return x.reshape(_reshape_dims(n, x.shape, tuple(int(d) for d in shape)))


defop("Reshape", family="tensor",
      summary="The data with a new shape; -1 is inferred, 0 copies the input's dim unless allowzero=1.",
      inputs=("data", "shape"), outputs=("reshaped",), attrs={"allowzero": ("int", 0)},
      infer=_reshape_infer, ref=_reshape_ref, sym=_pass_sym, storage=True,
      sbp=reshape_signatures, shape_input=1)


def _flatten_axis(node, rank: int) -> int:
    axis = node.attr("axis")
    if not -rank <= axis <= rank:
        raise node.error(f"axis {axis} is out of range for rank {rank} (accepted: {-rank} to {rank})")
    return axis + rank if axis < 0 else axis


def _flatten_infer(node):
    t = in_type(node, 0)
    if t.shape is None:
        return [t.with_shape((UNKNOWN, UNKNOWN))]
    axis = _flatten_axis(node, t.rank)
    return [t.with_shape((dims_product(t.shape[:axis]), dims_product(t.shape[axis:])))]


def _flatten_ref(n, x):
    axis = _flatten_axis(n, x.ndim)
    return x.reshape(math.prod(x.shape[:axis]), math.prod(x.shape[axis:]))


defop("Flatten", family="tensor", summary="A 2-D view: dims before axis multiply into rows, the rest into columns.",
      inputs=("input",), outputs=("output",), attrs={"axis": ("int", 1)}, infer=_flatten_infer,
      ref=_flatten_ref, storage=True, sbp=reshape_signatures)


def _squeeze_infer(node):
    t = in_type(node, 0)
    if node.input(1) is None:
        if t.shape is None or not t.is_static:   # a symbolic dim may or may not be 1
            return [t.with_shape(None)]
        return [t.with_shape(d for d in t.shape if d != 1)]
    axes = _shape_input(node, 1, "axes")
    if t.shape is None or axes is None:
        return [t.with_shape(None)]
    if not _all_int(axes):   # which axes go is known only at run time
        return [t.with_shape((UNKNOWN,) * (t.rank - len(axes)))]
    axes = _norm_axes(node, axes, t.rank)
    for a in axes:
        if isinstance(t.shape[a], int) and t.shape[a] != 1:
            raise node.error(f"cannot squeeze axis {a} of {t}: its size is {t.shape[a]}, not 1")
    return [t.with_shape(d for i, d in enumerate(t.shape) if i not in axes)]


def _squeeze_ref(n, x, axes=None):
    return np.squeeze(x, axis=None if axes is None else tuple(_norm_axes(n, axes.tolist(), x.ndim)))


defop("Squeeze", family="tensor", summary="Removes the given size-1 axes (all of them without axes).",
      inputs=("data", "axes?"), outputs=("squeezed",), infer=_squeeze_infer, ref=_squeeze_ref,
      sbp=reshape_signatures,
      sym=_pass_sym, storage=True)


def _unsqueeze_infer(node):
    t = in_type(node, 0)
    axes = _shape_input(node, 1, "axes")
    if t.shape is None or axes is None:
        return [t.with_shape(None)]
    rank = t.rank + len(axes)
    if not _all_int(axes):   # where the new axes go is known only at run time
        return [t.with_shape((UNKNOWN,) * rank)]
    axes = _norm_axes(node, axes, rank)
    dims = iter(t.shape)
    return [t.with_shape(1 if i in axes else next(dims) for i in range(rank))]


def _unsqueeze_ref(n, x, axes):
    return np.expand_dims(x, tuple(_norm_axes(n, axes.tolist(), x.ndim + axes.size)))


defop("Unsqueeze", family="tensor", summary="Inserts size-1 axes at the given positions of the output.",
      inputs=("data", "axes"), outputs=("expanded",), infer=_unsqueeze_infer, ref=_unsqueeze_ref,
      sbp=reshape_signatures,
      sym=_pass_sym, storage=True)


# -- Concat, Split, Slice ----------------------------------------------------------

def _concat_infer(node):
    same_dtypes(node)
    t = in_type(node, 0)
    shapes = [v.type.shape for v in node.inputs if v.type.shape is not None]
    if not shapes:
        return [t.with_shape(None)]
    rank = len(shapes[0])
    if rank == 0 or any(len(s) != rank for s in shapes):
        raise node.error("inputs must have one rank of at least 1, got "
                         + ", ".join(f"{quote_name(v.name)}: {v.type}" for v in node.inputs))
    axis = axis_of(node, rank)
    out = list(shapes[0])
    for s in shapes[1:]:
        out = [d if i == axis else _merge_dim(node, d, s[i], i) for i, d in enumerate(out)]
    out[axis] = _dim_sum([UNKNOWN if v.type.shape is None else v.type.shape[axis] for v in node.inputs])
    return [t.with_shape(out)]


def _concat_sym(n):
    parts = [known_ints(v) for v in n.inputs]
    if any(p is None or v.type.rank != 1 for p, v in zip(parts, n.inputs)):
        return [None]
    return [sum(parts, ())]


def _concat_signatures(node):
    """Every input split alike on an axis other than the joined one; partial sums join."""
    rank = in_type(node, 0).rank or 0
    axis = node.attr("axis") % rank if rank else 0
    sigs = replicated(node)
    for a in range(rank):
        if a != axis:
            sigs.append(Signature(tuple(S(a) for _ in node.inputs), (S(a),)))
    sigs.append(Signature(tuple(P for _ in node.inputs), (P,)))
    return sigs


defop("Concat", family="tensor", summary="Joins the inputs along axis.", inputs=("inputs+",),
      outputs=("concat_result",), attrs={"axis": ("int", REQUIRED)}, infer=_concat_infer,
      ref=lambda n, *xs: np.concatenate(xs, axis=n.attr("axis")), sym=_concat_sym, sbp=_concat_signatures)


def _split_sizes(node, dim, split):
    """Part sizes along the axis; `split` is the split input's contents, None when absent."""
    n = len(node.outputs)
    num = node.attr("num_outputs")
    if split is not None:
        if num is not None:
            raise node.error("give the split input or num_outputs, not both")
        if len(split) != n:
            raise node.error(f"split {format_shape(split)} has {len(split)} entries for {n} outputs")
        if any(isinstance(s, int) and s < 0 for s in split):
            raise node.error(f"split {format_shape(split)} has a negative size")
        if isinstance(dim, int) and _all_int(split) and sum(split) != dim:
            raise node.error(f"split {format_shape(split)} adds up to {sum(split)}, the axis has {dim}")
        return list(split)
    if num is not None and num != n:
        raise node.error(f"num_outputs is {num}, the node has {n} outputs")
    if not isinstance(dim, int):
        return [dim_div(dim, n)] * n   # equal parts when the symbolic dim divides, else unknown
    part = -(-dim // n)           # equal parts, the last one smaller
    if part * (n - 1) > dim:
        raise node.error(f"cannot split an axis of {dim} into {n} parts of {part} and a smaller last one")
    return [part] * (n - 1) + [dim - part * (n - 1)]


def _split_infer(node):
    t = in_type(node, 0)
    n = len(node.outputs)
    if t.shape is None:
        return [t] * n
    axis = axis_of(node, t.rank)
    if node.input(1) is None:
        sizes = _split_sizes(node, t.shape[axis], None)
    else:
        split = _shape_input(node, 1, "split")
        sizes = [UNKNOWN] * n if split is None else _split_sizes(node, t.shape[axis], split)
    return [t.with_shape(t.shape[:axis] + (s,) + t.shape[axis + 1:]) for s in sizes]


def _split_ref(n, x, split=None):
    axis = axis_of(n, x.ndim)
    sizes = _split_sizes(n, x.shape[axis], None if split is None else split.tolist())
    return tuple(np.split(x, np.cumsum(sizes)[:-1], axis=axis))


def _split_signatures(node):
    """Split on any axis but the one cut into parts; partial sums stay partial."""
    rank = in_type(node, 0).rank
    sigs = replicated(node)
    if rank is None:
        return sigs
    axis = axis_of(node, rank)
    sigs += [Signature(operand_sbps(node, S(a)), tuple(S(a) for _ in node.outputs))
             for a in range(rank) if a != axis]
    sigs.append(Signature(operand_sbps(node, P), tuple(P for _ in node.outputs)))
    return sigs


defop("Split", family="tensor",
      summary="Splits along axis by the split sizes, or into equal parts (the last one smaller).",
      inputs=("input", "split?"), outputs=("outputs*",),
      attrs={"axis": ("int", 0), "num_outputs": ("int", None)}, infer=_split_infer, ref=_split_ref,
      sbp=_split_signatures)


def _slice_params(node, rank, starts, ends, axes, steps):
    """(axis, start, end, step) for each sliced axis, checked."""
    if axes is None:
        axes = tuple(range(len(starts)))
    if steps is None:
        steps = (1,) * len(starts)
    if not len(starts) == len(ends) == len(axes) == len(steps):
        raise node.error(f"starts, ends, axes and steps must have one length, got {len(starts)}, "
                         f"{len(ends)}, {len(axes)} and {len(steps)}")
    if 0 in steps:
        raise node.error(f"steps {list(steps)} hold a 0")
    return zip(_norm_axes(node, axes, rank), starts, ends, steps)


def _slice_bounds(dim: int, start: int, end: int, step: int) -> slice:
    """ONNX's clamping (start to [0, dim-1] when stepping back, unlike Python's -1), as a numpy slice."""
    hi = dim - 1 if step < 0 else dim
    start = min(max(start + dim if start < 0 else start, 0), hi)
    end = min(max(end + dim if end < 0 else end, -1 if step < 0 else 0), hi)
    return slice(start, None if end < 0 else end, step)


def _slice_len(dim, start, end, step):
    if _all_int((dim, start, end, step)):
        return len(range(dim)[_slice_bounds(dim, start, end, step)])
    whole_forward = step == 1 and start == 0 and (end == dim or isinstance(end, int) and end >= OPEN_END)
    whole_backward = step == -1 and isinstance(start, int) and (start == -1 or start >= OPEN_END) \
        and isinstance(end, int) and end <= -OPEN_END
    return dim if whole_forward or whole_backward else UNKNOWN


def _slice_infer(node):
    t = in_type(node, 0)
    names = ("starts", "ends", "axes", "steps")
    params = [None if node.input(i) is None else _shape_input(node, i, names[i - 1]) for i in range(1, 5)]
    starts, ends, axes, steps = params
    if t.shape is None:
        return [t]
    if starts is None or ends is None or any(node.input(i) is not None and params[i - 1] is None for i in (3, 4)) \
            or axes is not None and not _all_int(axes):   # which axes are sliced is known at run time
        return [t.with_shape((UNKNOWN,) * t.rank)]
    out = list(t.shape)
    for axis, start, end, step in _slice_params(node, t.rank, starts, ends, axes, steps):
        out[axis] = _slice_len(t.shape[axis], start, end, step)
    return [t.with_shape(out)]


def _slice_index(node, shape, starts, ends, axes, steps):
    index = [slice(None)] * len(shape)
    for axis, start, end, step in _slice_params(node, len(shape), starts, ends, axes, steps):
        index[axis] = _slice_bounds(shape[axis], start, end, step)
    return tuple(index)


def _slice_ref(n, x, starts, ends, axes=None, steps=None):
    lists = [None if a is None else tuple(a.tolist()) for a in (starts, ends, axes, steps)]
    return x[_slice_index(n, x.shape, *lists)]


def _slice_sym(n):
    data = known_ints(n.inputs[0])
    params = [known_ints(n.input(i)) for i in range(1, 5)]
    if data is None or in_type(n, 0).rank != 1 or any(
            n.input(i) is not None and (p is None or not _all_int(p)) for i, p in zip(range(1, 5), params)):
        return [None]
    return [data[_slice_index(n, (len(data),), *params)[0]]]


def _slice_signatures(node):
    """Split on the axes the slice leaves whole (its bounds are the same numbers on every device,
    so an axis it cuts must stay whole); partial sums stay partial."""
    t = in_type(node, 0)
    sigs = replicated(node)
    params = [None if node.input(i) is None else known_ints(node.input(i)) for i in range(1, 5)]
    if t.shape is None or not t.is_static or any(node.input(i) is not None and (p is None or not _all_int(p))
                                                 for i, p in zip(range(1, 5), params)):
        return sigs
    whole = set(range(t.rank))
    for axis, start, end, step in _slice_params(node, t.rank, *params):
        if _slice_bounds(t.shape[axis], start, end, step) != slice(0, t.shape[axis], 1):
            whole.discard(axis)
    sigs += [Signature(operand_sbps(node, S(a)), (S(a),)) for a in sorted(whole)]
    sigs.append(Signature(operand_sbps(node, P), (P,)))
    return sigs


defop("Slice", family="tensor", summary="data[starts:ends:steps] on the given axes, bounds clamped.",
      inputs=("data", "starts", "ends", "axes?", "steps?"), outputs=("output",), infer=_slice_infer,
      ref=_slice_ref, sym=_slice_sym, sbp=_slice_signatures)


# -- Expand, Tile, ConstantOfShape, Range --------------------------------------------

def _expand_infer(node):
    t = in_type(node, 0)
    target = _shape_input(node, 1, "shape")
    if t.shape is None or target is None:
        return [t.with_shape(None)]
    return [t.with_shape(broadcast_shapes(node, [t.shape, target]))]


def _expand_sym(n):
    data, out = known_ints(n.inputs[0]), n.outputs[0].type
    if data is None or out.rank != 1:
        return [None]
    return [data * out.shape[0] if len(data) == 1 else data]


defop("Expand", family="tensor", summary="The input broadcast to the given shape (numpy rules both ways).",
      inputs=("input", "shape"), outputs=("output",), infer=_expand_infer,
      ref=lambda n, x, shape: np.broadcast_to(x, np.broadcast_shapes(x.shape, tuple(shape.tolist()))).copy(),
      sym=_expand_sym, sbp=lambda n: broadcast_signatures(n, [(P, B)], whole=(1,)), shape_input=1)


def _tile_infer(node):
    t = in_type(node, 0)
    repeats = _shape_input(node, 1, "repeats")
    if repeats is None:
        return [t.with_shape(None if t.shape is None else (UNKNOWN,) * t.rank)]
    if t.shape is None:
        return [t.with_shape((UNKNOWN,) * len(repeats))]
    if len(repeats) != t.rank:
        raise node.error(f"repeats {format_shape(repeats)} has {len(repeats)} entries for an input of rank {t.rank}")
    if any(isinstance(r, int) and r < 0 for r in repeats):
        raise node.error(f"repeats {format_shape(repeats)} has a negative entry")
    return [t.with_shape(dim_mul(d, r) for d, r in zip(t.shape, repeats))]


def _tile_signatures(node):
    """Split on the axes repeated once (a split axis repeated would interleave the pieces);
    partial sums stay partial."""
    repeats = known_ints(node.inputs[1])
    sigs = replicated(node)
    if repeats is None or in_type(node, 0).rank != len(repeats):
        return sigs
    sigs += [Signature((S(a), B), (S(a),)) for a, r in enumerate(repeats) if r == 1]
    sigs.append(Signature((P, B), (P,)))
    return sigs


defop("Tile", family="tensor", summary="The input repeated repeats[i] times along each axis i.",
      inputs=("input", "repeats"), outputs=("output",), infer=_tile_infer,
      ref=lambda n, x, repeats: np.tile(x, repeats.tolist()), sbp=_tile_signatures)


def _fill_value(node) -> np.ndarray:
    value = node.attr("value")
    if value is None:
        return np.zeros(1, np.float32)
    if value.size != 1:
        raise node.error(f"value must hold one element, got a tensor of shape {list(value.shape)}")
    return value.reshape(1)


def _constant_of_shape_infer(node):
    fill = dtype(_fill_value(node).dtype)
    dims = _shape_input(node, 0, "input")
    if dims is not None and any(isinstance(d, int) and d < 0 for d in dims):
        raise node.error(f"shape {format_shape(dims)} has a negative entry")
    return [TensorType(fill, dims)]


defop("ConstantOfShape", family="tensor", summary="A tensor of the given shape filled with value (default f32 0).",
      inputs=("input",), outputs=("output",), attrs={"value": ("tensor", None)},
      infer=_constant_of_shape_infer,
      ref=lambda n, shape: np.broadcast_to(_fill_value(n).reshape(()), tuple(shape.tolist())).copy(),
      storage=True)


_RANGE_STASH = {1: np.dtype(np.float32), 11: np.dtype(np.float64)}   # stash_type's ONNX dtype codes


def _range_infer(node):
    same_dtypes(node)
    for i, what in enumerate(("start", "limit", "delta")):
        _require_one_element(node, i, what)
    t = in_type(node, 0)
    if t.dtype.name == "bool":
        raise node.error(f"inputs must be numbers, got {t}")
    if node.attr("stash_type") not in _RANGE_STASH:
        raise node.error(f"stash_type must be 1 (float) or 11 (double), got {node.attr('stash_type')}")
    values = [known_array(v) for v in node.inputs]
    if all(a is not None for a in values):
        return [TensorType(t.dtype, (_range_count(node, *(a.item() for a in values)),))]
    start, limit, delta = (known_ints(v) or (UNKNOWN,) for v in node.inputs)
    counts_to_limit = start == (0,) and delta == (1,)   # arange(n): n elements, n possibly symbolic
    return [TensorType(t.dtype, (limit[0] if counts_to_limit else UNKNOWN,))]


def _range_count(node, start, limit, delta) -> int:
    """max(ceil((limit - start) / delta), 0), as numpy's arange computes it."""
    if delta == 0:
        raise node.error("delta must not be 0")
    if isinstance(start + limit + delta, int):
        return max(-((start - limit) // delta), 0)
    return max(math.ceil((limit - start) / delta), 0)


def _range_ref(n, start, limit, delta):
    dt = start.dtype
    start, limit, delta = start.item(), limit.item(), delta.item()
    _range_count(n, start, limit, delta)
    if dt.kind == "f" and dt.itemsize < 4 or dt.name == "bfloat16":   # stepped in stash_type's precision
        work = _RANGE_STASH[n.attr("stash_type")]
        return np.arange(start, limit, delta, dtype=work).astype(dt)
    return np.arange(start, limit, delta).astype(dt)


defop("Range", family="tensor", summary="start, start + delta, ... up to limit (exclusive).",
      inputs=("start", "limit", "delta"), outputs=("output",), attrs={"stash_type": ("int", 1)},
      infer=_range_infer, ref=_range_ref)


# -- Cast, CastLike -----------------------------------------------------------------
#
# Between the types ops compute in, a cast is numpy's: floats out of range become +-inf, integers
# wrap, and float to integer out of range is undefined in ONNX. Storage-only types are read exactly
# (floats as f32, integers as i8) and written by the rules of their format, in _CAST_INTO.

CAST_ROUND_MODES = ("up", "down", "nearest")   # for f8e8m0 targets only


def _to_float8(x, to, saturate, round_mode):
    """Round to nearest even; with saturate, finite values beyond the largest and +-inf clamp to it,
    else they become inf (f8e5m2) or NaN. fnuz formats have no -0 (it becomes 0) and one NaN."""
    v, top = x.astype(np.float64), float(ml_dtypes.finfo(to.np).max)
    return (np.clip(v, -top, top) if saturate else v).astype(to.np)   # NaN stays NaN


def _to_float4(x, to, saturate, round_mode):
    """Round to nearest even, always saturating (+-inf to +-6); NaN, which f4e2m1 lacks, becomes 0
    as in ONNX's reference and conformance data."""
    v, top = x.astype(np.float64), float(ml_dtypes.finfo(to.np).max)
    return np.clip(np.where(np.isnan(v), 0, v), -top, top).astype(to.np)


def _to_e8m0(x, to, saturate, round_mode):
    """A power of two, 2^-127 to 2^127 (the byte is the biased exponent; 0xFF is NaN): the one at or
    below x (down), at or above (up), or the nearer, ties up (nearest). Out of range (0 included),
    saturate clamps and otherwise gives NaN. Negative x is unspecified in ONNX: its magnitude counts."""
    v = np.abs(x.astype(np.float64))
    with np.errstate(invalid="ignore"):
        mantissa, exponent = np.frexp(v)          # v = mantissa * 2^exponent, mantissa in [0.5, 1)
    k = exponent.astype(np.int64) - 1             # floor(log2 v)
    if round_mode == "up":
        k += mantissa > 0.5
    elif round_mode == "nearest":
        k += mantissa >= 0.75
    k = np.where(np.isinf(v), 128, np.where(v == 0, -128, k))
    out_of_range = (k < -127) | (k > 127)
    code = np.clip(k, -127, 127) + 127
    code = np.where(np.isnan(v) | (out_of_range & (not saturate)), 0xFF, code)
    return code.astype(np.uint8).view(to.np)


def _to_small_int(x, to, saturate, round_mode):
    """ONNX's int4/int2 rule: round to nearest even, then keep the low bits (two's complement for
    signed types), as integer casts wrap; NaN and +-inf, undefined, give 0."""
    if x.dtype.kind in "iub":
        v = x.astype(np.int64)   # u64 wraps to i64 keeping its low bits
    else:
        r = np.fmod(np.rint(x.astype(np.float64)), 2.0 ** to.bits)
        v = np.where(np.isfinite(r), r, 0).astype(np.int64)
    v &= (1 << to.bits) - 1
    if ml_dtypes.iinfo(to.np).min < 0:
        v = np.where(v >= 1 << (to.bits - 1), v - (1 << to.bits), v)
    return v.astype(to.np)


# storage-only target -> f(x, to, saturate, round_mode); x is in a type numpy computes in
_CAST_INTO = {
    "f8e4m3fn": _to_float8, "f8e4m3fnuz": _to_float8, "f8e5m2": _to_float8, "f8e5m2fnuz": _to_float8,
    "f8e8m0": _to_e8m0, "f4e2m1": _to_float4,
    "i4": _to_small_int, "u4": _to_small_int, "i2": _to_small_int, "u2": _to_small_int,
}


def _cast_infer(node, to):
    _choice(node, "round_mode", CAST_ROUND_MODES)
    return [in_type(node, 0).with_dtype(to)]


def _cast_ref(n, x, to):
    """x converted to dtype `to` as ONNX's Cast does, with its saturate and round_mode attributes."""
    to, source = dtype(to), dtype(x.dtype)
    if source.storage_only:
        x = x.astype(np.float32 if source.kind == "float" else np.int8)   # exact
    with np.errstate(invalid="ignore", over="ignore"):   # out-of-range casts are undefined in ONNX
        if to.name in _CAST_INTO:
            return _CAST_INTO[to.name](x, to, bool(n.attr("saturate")), n.attr("round_mode"))
        return x.astype(to.np)


def _cast_sym(n, to):
    # symbolic dims survive a cast between integer types; concrete contents are evaluated
    data = known_ints(n.inputs[0])
    if data is None or _all_int(data) or to.name not in ("i32", "i64"):
        return [None]
    return [data]


CAST_ATTRS = {"saturate": ("int", 1), "round_mode": ("str", "up")}   # for f8* targets; round_mode for f8e8m0

defop("Cast", family="tensor", summary="The input converted to dtype `to`.", inputs=("input",),
      outputs=("output",), attrs={"to": ("dtype", REQUIRED), **CAST_ATTRS},
      infer=lambda n: _cast_infer(n, n.attr("to")), ref=lambda n, x: _cast_ref(n, x, n.attr("to")),
      sym=lambda n: _cast_sym(n, n.attr("to")), storage=True, sbp=elementwise_signatures)
defop("CastLike", family="tensor", summary="The input converted to the dtype of target_type.",
      inputs=("input", "target_type"), outputs=("output",), attrs=CAST_ATTRS,
      infer=lambda n: _cast_infer(n, in_type(n, 1).dtype), ref=lambda n, x, like: _cast_ref(n, x, like.dtype),
      sym=lambda n: _cast_sym(n, in_type(n, 1).dtype), storage=True,
      sbp=lambda n: keep_axes_signatures(n, range(in_type(n, 0).rank or 0)))


# -- Transpose, Trilu, EyeLike, DepthToSpace, SpaceToDepth ----------------------------------

def _perm(node, rank: int) -> tuple[int, ...]:
    perm = node.attr("perm")
    if perm is None:
        return tuple(reversed(range(rank)))
    if sorted(perm) != list(range(rank)):
        raise node.error(f"perm {list(perm)} is not a permutation of the input's {rank} axes")
    return perm


def _transpose_infer(node):
    t = in_type(node, 0)
    if t.shape is None:
        perm = node.attr("perm")
        return [t.with_shape(None if perm is None else (UNKNOWN,) * len(perm))]
    return [t.with_shape(t.shape[p] for p in _perm(node, t.rank))]


def _transpose_signatures(node):
    """Output axis a is input axis perm[a]: a split moves with it; partial sums stay partial."""
    rank = in_type(node, 0).rank
    sigs = replicated(node)
    if rank is None:
        return sigs
    perm = _perm(node, rank)
    sigs += [Signature((S(perm[a]),), (S(a),)) for a in range(rank)]
    sigs.append(Signature((P,), (P,)))
    return sigs


defop("Transpose", family="tensor", summary="The axes permuted by perm (reversed by default).",
      inputs=("data",), outputs=("transposed",), attrs={"perm": ("ints", None)}, infer=_transpose_infer,
      ref=lambda n, x: np.transpose(x, _perm(n, x.ndim)), storage=True, sbp=_transpose_signatures)


def _trilu_infer(node):
    t = in_type(node, 0)
    if t.rank is not None and t.rank < 2:
        raise node.error(f"input must have rank 2 or more, got {t}")
    if node.input(1) is not None:
        _require_int(node, 1, "k")
        if in_type(node, 1).rank not in (None, 0):
            raise node.error(f"k must be a scalar, got {in_type(node, 1)}")
    return [t]


def _trilu_ref(n, x, k=None):
    k = 0 if k is None else int(k)
    return np.triu(x, k) if n.attr("upper") else np.tril(x, k)


defop("Trilu", family="tensor",
      summary="The upper (upper=1) or lower triangle of the last two axes from diagonal k; the rest zero.",
      inputs=("input", "k?"), outputs=("output",), attrs={"upper": ("int", 1)}, infer=_trilu_infer,
      ref=_trilu_ref, sbp=lambda n: keep_axes_signatures(n, range((in_type(n, 0).rank or 2) - 2), partial=True))


def _eye_like_infer(node):
    t = in_type(node, 0)
    if t.rank not in (None, 2):
        raise node.error(f"input must have rank 2, got {t}")
    return [TensorType(node.attr("dtype") or t.dtype, t.shape if t.shape is not None else (UNKNOWN, UNKNOWN))]


defop("EyeLike", family="tensor", summary="Ones on diagonal k of a matrix shaped like the input, zeros elsewhere.",
      inputs=("input",), outputs=("output",), attrs={"dtype": ("dtype", None), "k": ("int", 0)},
      infer=_eye_like_infer,
      ref=lambda n, x: np.eye(*x.shape, k=n.attr("k"), dtype=(n.attr("dtype") or dtype(x.dtype)).np))


def _blocks(node) -> tuple[int, str]:
    b = node.attr("blocksize")
    if b < 1:
        raise node.error(f"blocksize must be positive, got {b}")
    return b, _choice(node, "mode", ("DCR", "CRD"))


def _nchw(node):
    t = in_type(node, 0)
    if t.rank not in (None, 4):
        raise node.error(f"input must be 4-D (N, C, H, W), got {t}")
    return t, (UNKNOWN,) * 4 if t.shape is None else t.shape


def _depth_to_space_infer(node):
    t, (n, c, h, w) = _nchw(node)
    b, _ = _blocks(node)
    if isinstance(c, int) and c % (b * b):
        raise node.error(f"channels ({c}) must be a multiple of blocksize^2 ({b * b})")
    return [t.with_shape((n, dim_div(c, b * b), dim_mul(h, b), dim_mul(w, b)))]


def _depth_to_space_ref(node, x):
    b, mode = _blocks(node)
    n, c, h, w = x.shape
    if mode == "DCR":
        y = x.reshape(n, b, b, c // (b * b), h, w).transpose(0, 3, 4, 1, 5, 2)
    else:
        y = x.reshape(n, c // (b * b), b, b, h, w).transpose(0, 1, 4, 2, 5, 3)
    return y.reshape(n, c // (b * b), h * b, w * b)


defop("DepthToSpace", family="tensor",
      summary="Moves blocksize^2 channel groups into blocksize x blocksize spatial blocks (DCR or CRD order).",
      inputs=("input",), outputs=("output",), attrs={"blocksize": ("int", REQUIRED), "mode": ("str", "DCR")},
      infer=_depth_to_space_infer, ref=_depth_to_space_ref, sbp=lambda n: keep_axes_signatures(n, (0,), partial=True))


def _space_to_depth_infer(node):
    t, (n, c, h, w) = _nchw(node)
    b, _ = _blocks(node)
    for what, d in (("height", h), ("width", w)):
        if isinstance(d, int) and d % b:
            raise node.error(f"{what} ({d}) must be a multiple of blocksize ({b})")
    return [t.with_shape((n, dim_mul(c, b * b), dim_div(h, b), dim_div(w, b)))]


def _space_to_depth_ref(node, x):
    b, mode = _blocks(node)
    n, c, h, w = x.shape
    y = x.reshape(n, c, h // b, b, w // b, b)
    y = y.transpose(0, 3, 5, 1, 2, 4) if mode == "DCR" else y.transpose(0, 1, 3, 5, 2, 4)
    return y.reshape(n, c * b * b, h // b, w // b)


defop("SpaceToDepth", family="tensor",
      summary="Moves blocksize x blocksize spatial blocks into channels (DCR or CRD order); DepthToSpace's inverse.",
      inputs=("input",), outputs=("output",), attrs={"blocksize": ("int", REQUIRED), "mode": ("str", "DCR")},
      infer=_space_to_depth_infer, ref=_space_to_depth_ref, sbp=lambda n: keep_axes_signatures(n, (0,), partial=True))


# -- Gather, GatherElements, GatherND --------------------------------------------------

def _gather_infer(node):
    t, it = in_type(node, 0), in_type(node, 1)
    _require_int(node, 1, "indices")
    if t.shape is None or it.shape is None:
        return [t.with_shape(None)]
    if t.rank == 0:
        raise node.error(f"data must have rank 1 or more, got {t}")
    axis = axis_of(node, t.rank)
    return [t.with_shape(t.shape[:axis] + it.shape + t.shape[axis + 1:])]


def _gather_sym(n):
    data, indices = known_ints(n.inputs[0]), known_ints(n.inputs[1])
    if data is None or indices is None or in_type(n, 0).rank != 1 or not _all_int(indices):
        return [None]
    return [tuple(data[i] for i in indices)]   # Python's negative indexing is ONNX's


def _gather_signatures(node):
    """Data split off the gathered axis with whole indices, or whole data with split indices:
    the output's axes are data[:axis] + indices + data[axis + 1:]. Partial data, partial output."""
    rank, irank = in_type(node, 0).rank, in_type(node, 1).rank
    sigs = replicated(node)
    if rank is None or irank is None:
        return sigs
    axis = axis_of(node, rank)
    for d in range(rank):
        if d != axis:
            sigs.append(Signature((S(d), B), (S(d if d < axis else d - 1 + irank),)))
    sigs += [Signature((B, S(k)), (S(axis + k),)) for k in range(irank)]
    sigs.append(Signature((P, B), (P,)))
    return sigs


defop("Gather", family="tensor", summary="Slices of data along axis picked by indices (negative ones count back).",
      inputs=("data", "indices"), outputs=("output",), attrs={"axis": ("int", 0)}, infer=_gather_infer,
      ref=lambda n, x, i: np.take(x, i, axis=axis_of(n, x.ndim)), sym=_gather_sym, sbp=_gather_signatures)


def _same_rank(node, names: tuple[str, ...]) -> int | None:
    ranks = {in_type(node, i).rank for i in range(len(names))} - {None}
    if len(ranks) > 1:
        raise node.error(f"{' and '.join(names)} must have one rank, got " + ", ".join(
            f"{quote_name(v.name)}: {v.type}" for v in node.inputs))
    return ranks.pop() if ranks else None


def _gather_elements_infer(node):
    _require_int(node, 1, "indices")
    rank = _same_rank(node, ("data", "indices"))
    if rank is not None:
        axis_of(node, rank)
    return [in_type(node, 1).with_dtype(in_type(node, 0).dtype)]


def _elements_index(node, indices, shape) -> tuple:
    """The index of data that indices[i, j, ...] addresses: itself, but indices' value along axis."""
    axis = axis_of(node, len(shape))
    index = list(np.indices(indices.shape, sparse=True))
    index[axis] = np.where(indices < 0, indices + shape[axis], indices)
    return tuple(index)


def _gather_elements_signatures(node):
    """Indices split along the gathered axis with whole data (their values pick the rows); both
    split alike on another axis where they have one size there (a position there addresses data
    itself); partial data, partial output."""
    t, it = in_type(node, 0), in_type(node, 1)
    sigs = replicated(node)
    if t.shape is None or it.shape is None:
        return sigs
    axis = axis_of(node, t.rank)
    sigs.append(Signature((B, S(axis)), (S(axis),)))
    sigs += [Signature((S(a), S(a)), (S(a),)) for a in range(t.rank) if a != axis and t.shape[a] == it.shape[a]]
    sigs.append(Signature((P, B), (P,)))
    return sigs


defop("GatherElements", family="tensor",
      summary="out[i][j] = data[indices[i][j]][j] (for axis 0): elements picked along axis.",
      inputs=("data", "indices"), outputs=("output",), attrs={"axis": ("int", 0)},
      infer=_gather_elements_infer, ref=lambda n, x, indices: x[_elements_index(n, indices, x.shape)],
      sbp=_gather_elements_signatures)


def _gather_nd_infer(node):
    t, it = in_type(node, 0), in_type(node, 1)
    _require_int(node, 1, "indices")
    if t.shape is None or it.shape is None:
        return [t.with_shape(None)]
    b = node.attr("batch_dims")
    if it.rank == 0 or t.rank == 0 or not 0 <= b < min(t.rank, it.rank):
        raise node.error(f"batch_dims ({b}) must be at least 0 and below the ranks of data ({t}) and "
                         f"indices ({it}), which must be 1 or more")
    k = it.shape[-1]
    if not isinstance(k, int):   # the index tuples' length fixes the output's rank
        return [t.with_shape(None)]
    if b + k > t.rank:
        raise node.error(f"indices' last dim ({k}) indexes past the rank of data {t} after {b} batch dims")
    return [t.with_shape(it.shape[:-1] + t.shape[b + k:])]


def _gather_nd_ref(n, x, indices):
    b, k = n.attr("batch_dims"), indices.shape[-1]
    batch = math.prod(x.shape[:b])
    data = x.reshape((batch,) + x.shape[b:])
    index = indices.reshape(batch, math.prod(indices.shape[b:-1]), k)
    picked = [d[tuple(i.T)] for d, i in zip(data, index)]
    return np.stack(picked).reshape(indices.shape[:-1] + x.shape[b + k:])


def _gather_nd_signatures(node):
    """The output is indices.shape[:-1] + data.shape[b + k:]: the batch axes split on both, the
    other index positions on indices, the trailing data axes on data; partial data, partial output."""
    t, it = in_type(node, 0), in_type(node, 1)
    sigs = replicated(node)
    if t.shape is None or it.shape is None or not isinstance(it.shape[-1], int):
        return sigs
    b, k = node.attr("batch_dims"), it.shape[-1]
    sigs += [Signature((S(a), S(a)), (S(a),)) for a in range(b)]
    sigs += [Signature((B, S(a)), (S(a),)) for a in range(b, it.rank - 1)]
    sigs += [Signature((S(a), B), (S(it.rank - 1 + a - b - k),)) for a in range(b + k, t.rank)]
    sigs.append(Signature((P, B), (P,)))
    return sigs


defop("GatherND", family="tensor",
      summary="Slices of data addressed by the k-tuples in indices' last axis, after batch_dims shared axes.",
      inputs=("data", "indices"), outputs=("output",), attrs={"batch_dims": ("int", 0)},
      infer=_gather_nd_infer, ref=_gather_nd_ref, sbp=_gather_nd_signatures)


# -- ScatterND, ScatterElements, NonZero, OneHot ------------------------------------------

_SCATTER_REDUCE = {"add": np.add, "mul": np.multiply, "max": np.maximum, "min": np.minimum}


def _scatter_check(node, want_updates):
    """Checks shared by the scatters: dtypes, the reduction, updates' shape when known."""
    _require_int(node, 1, "indices")
    same_dtypes(node, indices=(0, 2))
    _choice(node, "reduction", ("none",) + tuple(_SCATTER_REDUCE))
    got = in_type(node, 2).shape
    if want_updates is not None and got is not None and (len(got) != len(want_updates) or any(
            isinstance(a, int) and isinstance(b, int) and a != b for a, b in zip(got, want_updates))):
        raise node.error(f"updates must have shape {format_shape(want_updates)}, got {in_type(node, 2)}")
    return [in_type(node, 0)]


def _scatter(n, out, index, updates):
    reduction = n.attr("reduction")
    if reduction == "none":
        out[index] = updates
    else:
        _SCATTER_REDUCE[reduction].at(out, index, updates)   # .at: repeated indices all count
    return out


def _scatter_nd_infer(node):
    t, it = in_type(node, 0), in_type(node, 1)
    want = None
    if t.shape is not None and it.shape is not None:
        k = it.shape[-1] if it.rank else 0
        if it.rank == 0 or isinstance(k, int) and k > t.rank:
            raise node.error(f"indices {it} must have rank 1 or more and a last dim of at most data's rank ({t})")
        if isinstance(k, int):
            want = it.shape[:-1] + t.shape[k:]
    return _scatter_check(node, want)


def _scatter_nd_ref(n, data, indices, updates):
    k = indices.shape[-1]
    index = indices.reshape(-1, k)
    return _scatter(n, data.copy(), tuple(index.T), updates.reshape(index.shape[:1] + data.shape[k:]))


SCATTER_REDUCTION = {"reduction": ("str", "none")}

defop("ScatterND", family="tensor",
      summary="A copy of data with the slices addressed by indices' k-tuples set to (or reduced with) updates.",
      inputs=("data", "indices", "updates"), outputs=("output",), attrs=SCATTER_REDUCTION,
      infer=_scatter_nd_infer, ref=_scatter_nd_ref)


def _scatter_elements_infer(node):
    rank = _same_rank(node, ("data", "indices", "updates"))
    if rank is not None:
        axis_of(node, rank)
    return _scatter_check(node, in_type(node, 1).shape)


def _scatter_elements_ref(n, data, indices, updates):
    return _scatter(n, data.copy(), _elements_index(n, indices, data.shape), updates)


defop("ScatterElements", family="tensor",
      summary="A copy of data with out[indices[i][j]][j] = updates[i][j] (for axis 0), or reduced with it.",
      inputs=("data", "indices", "updates"), outputs=("output",),
      attrs={"axis": ("int", 0), **SCATTER_REDUCTION}, infer=_scatter_elements_infer, ref=_scatter_elements_ref)


def _nonzero_infer(node):
    t = in_type(node, 0)
    x = known_array(node.inputs[0])
    count = UNKNOWN if x is None else int(np.count_nonzero(x))   # data-dependent unless constant
    return [TensorType(i64, (UNKNOWN if t.rank is None else t.rank, count))]


def _nonzero_ref(n, x):
    if x.ndim == 0:   # numpy refuses 0-d nonzero: a scalar has no coordinates, one column if nonzero
        return np.zeros((0, int(bool(x))), np.int64)
    return np.array(np.nonzero(x), dtype=np.int64).reshape(x.ndim, -1)


defop("NonZero", family="tensor", summary="The coordinates of the nonzero elements, one column each (row-major).",
      inputs=("X",), outputs=("Y",), infer=_nonzero_infer, ref=_nonzero_ref)


def _one_hot_axis(node, rank: int) -> int:
    axis = node.attr("axis")
    if not -rank - 1 <= axis <= rank:
        raise node.error(f"axis {axis} is out of range for indices of rank {rank} (accepted: {-rank - 1} to {rank})")
    return axis if axis >= 0 else axis + rank + 1


def _one_hot_infer(node):
    t, values = in_type(node, 0), in_type(node, 2)
    if t.dtype.name == "bool":
        raise node.error(f"indices must be numbers, got {t}")
    if values.shape is not None and (values.rank != 1 or values.shape[0] not in (2, UNKNOWN)):
        raise node.error(f"values must be [off_value, on_value] (shape [2]), got {values}")
    _require_one_element(node, 1, "depth")
    depth = known_array(node.inputs[1])
    depth = UNKNOWN if depth is None else _one_hot_depth(node, depth)
    if t.shape is None:
        return [values.with_shape(None)]
    axis = _one_hot_axis(node, t.rank)
    return [values.with_shape(t.shape[:axis] + (depth,) + t.shape[axis:])]


def _one_hot_depth(node, depth: np.ndarray) -> int:
    d = int(depth.reshape(-1)[0])   # a float depth counts as its integer part
    if d < 1:
        raise node.error(f"depth must be positive, got {d}")
    return d


def _one_hot_ref(n, indices, depth, values):
    depth = _one_hot_depth(n, depth)
    axis = _one_hot_axis(n, indices.ndim)
    idx = indices.astype(np.int64)
    idx = np.where(idx < 0, idx + depth, idx)   # -depth..-1 count back; others match no class
    classes = np.arange(depth).reshape([depth if i == axis else 1 for i in range(indices.ndim + 1)])
    return np.where(np.expand_dims(idx, axis) == classes, values[1], values[0]).astype(values.dtype)


def _one_hot_signatures(node):
    """Indices split on any axis; the output has the new axis inserted at `axis`."""
    rank = in_type(node, 0).rank
    sigs = replicated(node)
    if rank is None:
        return sigs
    axis = _one_hot_axis(node, rank)
    sigs += [Signature((S(a), B, B), (S(a if a < axis else a + 1),)) for a in range(rank)]
    return sigs


defop("OneHot", family="tensor",
      summary="values[1] where the new axis' position equals the index, values[0] elsewhere.",
      inputs=("indices", "depth", "values"), outputs=("output",), attrs={"axis": ("int", -1)},
      infer=_one_hot_infer, ref=_one_hot_ref, sbp=_one_hot_signatures)

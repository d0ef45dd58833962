"""Reductions: Reduce* over an axes input, ArgMax/ArgMin, the softmax family, CumSum and TopK.

The Reduce* ops share one shape rule and differ in a table row. Their axes
(opset 18 form: an optional i64 input; the importer moves older opsets'
attribute there) may be known only at run time: the output then keeps its rank
with unknown dims when keepdims=1, and loses as many dims as the axes input
holds otherwise. Empty axes reduce everything, or nothing with
noop_with_empty_axes=1; a reduction over no elements gives the op's identity.
"""
from __future__ import annotations

import functools
import math

import numpy as np

from ..infer import known_ints
from ..registry import defop
from ..sbp import B, P, S, Signature, keep_axes_signatures, replicated
from ..types import UNKNOWN, dim_add, dim_mul
from .rules import in_type, require_dtype, widen


def _check_axes(node, axes, rank: int) -> tuple[int, ...]:
    """`axes` normalised to [0, rank) and sorted; CompileError when out of range or repeated."""
    out = []
    for a in axes:
        if not -rank <= a < rank:
            raise node.error(f"axis {a} is out of range for an input of rank {rank}")
        if a % rank in out:
            raise node.error(f"axes {list(axes)} name axis {a % rank} twice")
        out.append(a % rank)
    return tuple(sorted(out))


def _one_axis(node, rank: int | None, axis: int) -> int | None:
    """A single axis normalised to [0, rank); None when the rank is unknown."""
    if rank is None:
        return None
    if rank == 0:
        raise node.error(f"needs an input of rank 1 or more, got {in_type(node, 0)}")
    return _check_axes(node, (axis,), rank)[0]


# -- Reduce* ------------------------------------------------------------------

def _reduce_axes(node, rank: int) -> tuple[int, ...] | None:
    """The axes reduced, normalised; None when they are known only at run time."""
    v = node.input(1)
    axes = () if v is None or v.type.shape == (0,) else known_ints(v)
    if axes is None or not all(isinstance(a, int) for a in axes):
        return None
    if not axes:
        return () if node.attr("noop_with_empty_axes") else tuple(range(rank))
    return _check_axes(node, axes, rank)


def _reduce_infer(cls):
    def infer(node):
        require_dtype(node, cls)
        x = in_type(node, 0)
        axes_in = node.input(1)
        if axes_in is not None and (axes_in.type.dtype.name != "i64" or axes_in.type.rank not in (None, 1)):
            raise node.error(f"axes must be a 1-D i64 tensor, got {axes_in.type}")
        return [x.with_shape(_reduced_shape(node, x.shape))]
    return infer


def _reduced_shape(node, shape):
    if shape is None:
        return None
    keep = node.attr("keepdims")
    axes = _reduce_axes(node, len(shape))
    if axes is not None:
        return tuple(1 if i in axes else d for i, d in enumerate(shape) if keep or i not in axes)
    if keep:   # any dim may become 1
        return tuple(d if d == 1 else UNKNOWN for d in shape)
    count = (node.inputs[1].type.shape or [UNKNOWN])[0]
    if not isinstance(count, int):
        return None
    if count > len(shape):
        raise node.error(f"axes holds {count} axes, more than the input's rank {len(shape)}")
    return (UNKNOWN,) * (len(shape) - count)


def _reduce_ref(fn):
    def ref(n, x, axes=None):
        if axes is None or axes.size == 0:
            axes = () if n.attr("noop_with_empty_axes") else range(x.ndim)
        axes = tuple(int(a) for a in axes)   # numpy rejects out-of-range and repeated axes
        with np.errstate(divide="ignore", invalid="ignore"):   # log(0) and 0/0 over no elements are by design
            return np.asarray(fn(widen(x), axes, bool(n.attr("keepdims")))).astype(x.dtype)
    return ref


def _lowest(dt):
    return False if dt == np.bool_ else np.iinfo(dt).min if dt.kind in "iu" else -np.inf


def _highest(dt):
    return True if dt == np.bool_ else np.iinfo(dt).max if dt.kind in "iu" else np.inf


def _mean(x, axes, keep):
    count = math.prod(x.shape[a] for a in axes)
    return np.sum(x, axis=axes, keepdims=keep, dtype=x.dtype) / count   # 0 / 0: NaN over no elements


def _log_sum_exp(x, axes, keep):
    finite = np.where(np.isinf(x), -np.inf, x)
    m = np.max(finite, axis=axes, keepdims=True, initial=-np.inf)
    m = np.where(np.isneginf(m), 0, m)   # all -inf or +inf, or no elements: shift by nothing
    out = np.log(np.sum(np.exp(x - m), axis=axes, keepdims=True)) + m
    return out if keep else np.squeeze(out, axis=axes)


# name -> (summary, dtype class, f(x, axes, keepdims) on a widened array)
REDUCE = {
    "ReduceSum": ("Sum over the axes.", "numeric",
                  lambda x, a, k: np.sum(x, axis=a, keepdims=k, dtype=x.dtype)),
    "ReduceMean": ("Mean over the axes.", "numeric", _mean),
    "ReduceMax": ("Largest value over the axes; the dtype's lowest over no elements.", None,
                  lambda x, a, k: np.max(x, axis=a, keepdims=k, initial=_lowest(x.dtype))),
    "ReduceMin": ("Smallest value over the axes; the dtype's highest over no elements.", None,
                  lambda x, a, k: np.min(x, axis=a, keepdims=k, initial=_highest(x.dtype))),
    "ReduceProd": ("Product over the axes.", "numeric",
                   lambda x, a, k: np.prod(x, axis=a, keepdims=k, dtype=x.dtype)),
    "ReduceL1": ("Sum of absolute values over the axes.", "numeric",
                 lambda x, a, k: np.sum(np.abs(x), axis=a, keepdims=k, dtype=x.dtype)),
    "ReduceL2": ("Square root of the sum of squares over the axes.", "numeric",
                 lambda x, a, k: np.sqrt(np.sum(np.square(x), axis=a, keepdims=k, dtype=x.dtype))),
    "ReduceSumSquare": ("Sum of squares over the axes.", "numeric",
                        lambda x, a, k: np.sum(np.square(x), axis=a, keepdims=k, dtype=x.dtype)),
    "ReduceLogSum": ("Log of the sum over the axes.", "float",
                     lambda x, a, k: np.log(np.sum(x, axis=a, keepdims=k))),
    "ReduceLogSumExp": ("Log of the sum of exponentials over the axes, computed stably.", "float", _log_sum_exp),
}


def _fold_sym(combine):
    """Sum or product of a 1-D shape vector whose dims may be symbolic."""
    def sym(n):
        dims = known_ints(n.inputs[0])
        if dims is None or in_type(n, 0).rank != 1 or _reduce_axes(n, 1) != (0,):
            return [None]
        return [(functools.reduce(combine, dims),)] if dims else [None]
    return sym


def _reduce_signatures(split_to_partial: bool, linear: bool):
    """Kept axes split alike. A sum of terms over a split reduced axis is a partial sum
    (`split_to_partial`: ReduceSum, ReduceL1, ReduceSumSquare); a linear reduction of partial sums
    is one (`linear`: ReduceSum, ReduceMean). ReduceMean over a split axis is not: each device
    divides its sum by its own count, so the pieces add up to n times the mean."""
    def sbp(node):
        sigs = replicated(node)
        rank = in_type(node, 0).rank
        axes = None if rank is None else _reduce_axes(node, rank)
        if axes is None:
            return sigs
        rest = tuple(None if v is None else B for v in node.inputs[1:])
        keep = node.attr("keepdims")
        kept = [a for a in range(rank) if a not in axes]
        for a in kept:
            sigs.append(Signature((S(a),) + rest, (S(a if keep else kept.index(a)),)))
        if split_to_partial:
            sigs += [Signature((S(a),) + rest, (P,)) for a in axes]
        if linear:
            sigs.append(Signature((P,) + rest, (P,)))
        return sigs
    return sbp


for _name, (_summary, _cls, _fn) in REDUCE.items():
    defop(_name, family="reduce", summary=_summary, inputs=("data", "axes?"), outputs=("reduced",),
          attrs={"keepdims": ("int", 1), "noop_with_empty_axes": ("int", 0)}, infer=_reduce_infer(_cls),
          ref=_reduce_ref(_fn), sym={"ReduceSum": _fold_sym(dim_add), "ReduceProd": _fold_sym(dim_mul)}.get(_name),
          sbp=_reduce_signatures(_name in ("ReduceSum", "ReduceL1", "ReduceSumSquare"),
                                 _name in ("ReduceSum", "ReduceMean")))


# -- ArgMax / ArgMin ----------------------------------------------------------

def _arg_infer(node):
    require_dtype(node, "numeric")
    x = in_type(node, 0)
    axis = _one_axis(node, x.rank, node.attr("axis"))
    if axis is None:
        return [x.with_dtype("i64")]
    if x.shape[axis] == 0:
        raise node.error(f"axis {axis} of {x} is empty: there is no index to return")
    shape = list(x.shape)
    if node.attr("keepdims"):
        shape[axis] = 1
    else:
        del shape[axis]
    return [x.with_dtype("i64").with_shape(shape)]


def _arg_ref(fn):
    def ref(n, x):
        axis = n.attr("axis") % x.ndim
        w = widen(x)
        if n.attr("select_last_index"):
            idx = w.shape[axis] - 1 - fn(np.flip(w, axis), axis=axis)
        else:
            idx = fn(w, axis=axis)
        if n.attr("keepdims"):
            idx = np.expand_dims(idx, axis)
        return np.asarray(idx, np.int64)
    return ref


def _arg_signatures(node):
    """Split on the other axes (the output loses `axis` unless keepdims)."""
    rank = in_type(node, 0).rank
    sigs = replicated(node)
    if not rank:
        return sigs
    axis = _one_axis(node, rank, node.attr("axis"))
    keep = node.attr("keepdims")
    sigs += [Signature((S(a),), (S(a if keep or a < axis else a - 1),)) for a in range(rank) if a != axis]
    return sigs


ARG = {
    "ArgMax": ("Index of the largest value along axis; of the first (or last) one on ties.", np.argmax),
    "ArgMin": ("Index of the smallest value along axis; of the first (or last) one on ties.", np.argmin),
}

for _name, (_summary, _fn) in ARG.items():
    defop(_name, family="reduce", summary=_summary, inputs=("data",), outputs=("reduced",),
          attrs={"axis": ("int", 0), "keepdims": ("int", 1), "select_last_index": ("int", 0)},
          infer=_arg_infer, ref=_arg_ref(_fn), sbp=_arg_signatures)


# -- softmax family -------------------------------------------------------------

def _softmax(x, axis):
    e = np.exp(x - np.max(x, axis=axis, keepdims=True))
    return e / np.sum(e, axis=axis, keepdims=True)


def _log_softmax(x, axis):
    s = x - np.max(x, axis=axis, keepdims=True)
    return s - np.log(np.sum(np.exp(s), axis=axis, keepdims=True))


def _hardmax(x, axis):
    out = np.zeros_like(x)
    np.put_along_axis(out, np.expand_dims(np.argmax(x, axis=axis), axis), 1, axis=axis)
    return out


def _along_axis_infer(node):
    require_dtype(node, "float")
    x = in_type(node, 0)
    _one_axis(node, x.rank, node.attr("axis"))
    return [x]


# name -> (summary, f(x, axis) on a non-empty widened array)
ALONG_AXIS = {
    "Softmax": ("e^x / sum(e^x) along axis.", _softmax),
    "LogSoftmax": ("log(softmax(x)) along axis, computed stably.", _log_softmax),
    "Hardmax": ("1 at the first largest value along axis, 0 elsewhere.", _hardmax),
}

for _name, (_summary, _fn) in ALONG_AXIS.items():
    defop(_name, family="reduce", summary=_summary, inputs=("input",), outputs=("output",),
          attrs={"axis": ("int", -1)}, infer=_along_axis_infer,
          sbp=lambda n: keep_axes_signatures(n, [a for a in range(in_type(n, 0).rank or 0)
                                                 if a != n.attr("axis") % in_type(n, 0).rank]),
          ref=(lambda fn: lambda n, x: x.copy() if x.size == 0
               else np.asarray(fn(widen(x), n.attr("axis") % x.ndim)).astype(x.dtype))(_fn))


# -- CumSum ---------------------------------------------------------------------

def _scalar_input_infer(node, i: int, what: str, dtypes: tuple[str, ...]) -> int | None:
    """The statically known value of a one-element integer input, checked."""
    t = in_type(node, i)
    if t.dtype.name not in dtypes or (isinstance(t.numel(), int) and t.numel() != 1) or (t.rank or 0) > 1:
        raise node.error(f"{what} must be a one-element {' or '.join(dtypes)} tensor, got {t}")
    known = known_ints(node.inputs[i])
    return known[0] if known and isinstance(known[0], int) else None


def _cumsum_infer(node):
    require_dtype(node, "numeric")
    x = in_type(node, 0)
    axis = _scalar_input_infer(node, 1, "axis", ("i64", "i32"))
    if axis is not None:
        _one_axis(node, x.rank, axis)
    elif x.rank == 0:
        raise node.error(f"needs an input of rank 1 or more, got {x}")
    return [x]


def _cumsum(n, x, axis):
    axis = int(axis.reshape(-1)[0])
    if not -x.ndim <= axis < x.ndim:
        raise ValueError(f"axis {axis} is out of range for an input of rank {x.ndim}")
    w = np.flip(widen(x), axis) if n.attr("reverse") else widen(x)
    out = np.cumsum(w, axis=axis, dtype=w.dtype)
    if n.attr("exclusive"):   # shift by one: each sum leaves out its own element
        out = np.roll(out, 1, axis)
        out[(slice(None),) * (axis % x.ndim) + (slice(0, 1),)] = 0
    return (np.flip(out, axis) if n.attr("reverse") else out).astype(x.dtype)


def _cumsum_signatures(node):
    """Split on the axes the sums do not run along; partial sums stay partial (it is linear)."""
    rank = in_type(node, 0).rank
    axis = known_ints(node.inputs[1])
    if not rank or axis is None or not isinstance(axis[0], int):
        return replicated(node)
    axis = _one_axis(node, rank, axis[0])
    return keep_axes_signatures(node, [a for a in range(rank) if a != axis], partial=True)


defop("CumSum", family="reduce", summary="Running sum along axis; exclusive leaves out each element, "
      "reverse runs from the end.", inputs=("x", "axis"), outputs=("y",),
      attrs={"exclusive": ("int", 0), "reverse": ("int", 0)}, infer=_cumsum_infer, ref=_cumsum,
      sbp=_cumsum_signatures)


# -- TopK -------------------------------------------------------------------------

def _topk_infer(node):
    require_dtype(node, "numeric")
    x = in_type(node, 0)
    k = _scalar_input_infer(node, 1, "K", ("i64",))
    axis = _one_axis(node, x.rank, node.attr("axis"))
    if k is not None and k < 0:
        raise node.error(f"K must be >= 0, got {k}")
    if axis is None:
        return [x, x.with_dtype("i64")]
    n = x.shape[axis]
    if k is not None and isinstance(n, int) and k > n:
        raise node.error(f"K={k} is larger than axis {axis} of {x}")
    shape = list(x.shape)
    shape[axis] = k if k is not None else UNKNOWN
    return [x.with_shape(shape), x.with_dtype("i64").with_shape(shape)]


def _topk(n, x, k):
    k = int(k.reshape(-1)[0])
    axis = n.attr("axis") % x.ndim
    if not 0 <= k <= x.shape[axis]:
        raise ValueError(f"K={k} is out of range for axis {axis} of size {x.shape[axis]}")
    # sort by value, ties by index: ascending for the smallest, reversed afterwards for the largest
    position = np.indices(x.shape)[axis]
    order = np.lexsort((-position if n.attr("largest") else position, widen(x)), axis=axis)
    if n.attr("largest"):
        order = np.flip(order, axis)
    order = np.take(order, np.arange(k), axis=axis)
    return np.take_along_axis(x, order, axis=axis), order.astype(np.int64)


defop("TopK", family="reduce", summary="The k largest (or smallest) values along axis and their indices, "
      "sorted; ties go to the lower index.", inputs=("X", "K"), outputs=("Values", "Indices"),
      attrs={"axis": ("int", -1), "largest": ("int", 1), "sorted": ("int", 1)}, infer=_topk_infer, ref=_topk,
      sbp=lambda n: keep_axes_signatures(n, [a for a in range(in_type(n, 0).rank or 0)
                                             if a != _one_axis(n, in_type(n, 0).rank, n.attr("axis"))]))

"""Neural-network ops: convolution, pooling, normalization, resize, pad, dropout.

Sliding-window ops share one geometry rule (`_window`) for output sizes and
padding, and one way of evaluating windows (`_taps`): one strided view of the
padded input per kernel tap, so the references loop over kernel taps, never
over output pixels.
"""
from __future__ import annotations

import itertools
import math

import numpy as np

from flowc.errors import quote_name

from ..graph import Node
from ..infer import known_array, known_ints
from ..registry import REQUIRED, defop
from ..sbp import B, P, S, Signature, keep_axes_signatures, operand_sbps, replicated, split_count
from ..types import UNKNOWN, Dim, TensorType, dim_add, dim_mul, dtype_from_onnx, normalize_axis, same_dim
from .rules import (axis_of, broadcasts_to, compute_dtype, in_type, require_dtype, require_float, same_as_input,
                    same_dtypes, widen)

AUTO_PADS = ("NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID")
WINDOW_ATTRS = {"auto_pad": ("str", "NOTSET"), "kernel_shape": ("ints", None), "pads": ("ints", None),
                "strides": ("ints", None), "dilations": ("ints", None)}
POOL_ATTRS = {**WINDOW_ATTRS, "kernel_shape": ("ints", REQUIRED), "ceil_mode": ("int", 0)}


def _f32(value: float) -> float:
    """A float default as ONNX stores it (float32), so that imported defaults read as defaults."""
    return float(np.float32(value))


def _ranked(node: Node, i: int, least: int, what: str) -> TensorType:
    """Input i's type; an error when its rank is known and below `least`."""
    t = in_type(node, i)
    if t.shape is not None and len(t.shape) < least:
        raise node.error(f"{what} {quote_name(node.inputs[i].name)} must have rank >= {least}, got {t}")
    return t


def _per_axis(node: Node, key: str, n: int, default: int = 1) -> tuple[int, ...]:
    value = node.attr(key)
    if value is None:
        return (default,) * n
    if len(value) != n:
        raise node.error(f"{key} has {len(value)} values, expected {n} (one per spatial axis)")
    return value


def _check_channels(node: Node, i: int, channels: Dim, what: str) -> None:
    """Input i, when present, must be a vector of `channels` elements."""
    v = node.input(i)
    if v is None or v.type.shape is None:
        return
    shape = v.type.shape
    if len(shape) != 1 or (isinstance(shape[0], int) and isinstance(channels, int) and shape[0] != channels):
        raise node.error(f"{what} {quote_name(v.name)} must have shape [{channels}] (one per channel), got {v.type}")


# -- window geometry ----------------------------------------------------------

def _window(node: Node, spatial, kernel, ceil_mode: bool = False):
    """(output dims, begin pads, end pads) of a window sliding over the `spatial` dims.

    A dim that depends on a symbol is "?" (or the symbol itself where the window
    keeps the size); a pad that depends on one is None (the reference sees ints).
    """
    n = len(kernel)
    strides, dilations = _per_axis(node, "strides", n), _per_axis(node, "dilations", n)
    auto_pad = node.attr("auto_pad")
    if auto_pad not in AUTO_PADS:
        raise node.error(f"auto_pad must be one of {', '.join(AUTO_PADS)}, got {auto_pad!r}")
    pads = node.attr("pads") or (0,) * (2 * n)
    if len(pads) != 2 * n:
        raise node.error(f"pads has {len(pads)} values, expected {2 * n} (begin and end per spatial axis)")
    if min(strides + dilations + tuple(kernel), default=1) < 1 or min(pads, default=0) < 0:
        raise node.error(f"kernel {list(kernel)}, strides {list(strides)} and dilations {list(dilations)} must "
                         f"be positive and pads {list(pads)} not negative")
    ceil_mode = ceil_mode and auto_pad == "NOTSET"   # SAME and VALID fix the output size themselves
    out, begin, end = [], [], []
    for i, size in enumerate(spatial):
        span, s = dilations[i] * (kernel[i] - 1) + 1, strides[i]
        if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
            if not isinstance(size, int):
                out.append(size if s == 1 else UNKNOWN)
                begin.append(None)
                end.append(None)
                continue
            o = -(-size // s)
            total = max(0, (o - 1) * s + span - size)
            small = total // 2
            pb, pe = (small, total - small) if auto_pad == "SAME_UPPER" else (total - small, small)
        else:
            pb, pe = (0, 0) if auto_pad == "VALID" else (pads[i], pads[i + n])
            if isinstance(size, int):
                room = size + pb + pe - span
                if room < 0:
                    raise node.error(f"spatial axis {i} has size {size}, smaller than the window "
                                     f"(kernel {kernel[i]}, dilation {dilations[i]}) with pads {pb}+{pe}")
                o = (-(-room // s) if ceil_mode else room // s) + 1
                if ceil_mode and (o - 1) * s >= size + pb:   # the last window would start in the end padding
                    o -= 1
            else:
                o = dim_add(size, pb + pe - span + 1) if s == 1 and not ceil_mode else UNKNOWN
        out.append(o)
        begin.append(pb)
        end.append(pe)
    return tuple(out), tuple(begin), tuple(end)


def _taps(x: np.ndarray, out, begin, end, kernel, strides, dilations, fill) -> list[np.ndarray]:
    """One strided view of the padded `x` per kernel tap (row-major over the kernel), each of the output's
    spatial shape; the last len(kernel) axes of `x` are the spatial ones."""
    n = len(kernel)
    widths = [(0, 0)] * (x.ndim - n)
    for i in range(n):
        covered = (out[i] - 1) * strides[i] + dilations[i] * (kernel[i] - 1) + 1
        widths.append((begin[i], max(covered - x.shape[x.ndim - n + i] - begin[i], 0)))
    xp = np.pad(x, widths, constant_values=fill)
    return [xp[(Ellipsis,) + tuple(slice(o * d, o * d + (m - 1) * s + 1, s)
                                   for o, d, m, s in zip(offsets, dilations, out, strides))]
            for offsets in itertools.product(*(range(k) for k in kernel))]


# -- convolution -----------------------------------------------------------------

def _kernel(node: Node, w: TensorType, spatial_rank: int) -> tuple[Dim, ...]:
    """The kernel's spatial dims: W's, checked against kernel_shape when both are given."""
    given = node.attr("kernel_shape")
    ws = w.shape[2:] if w.shape is not None else (UNKNOWN,) * spatial_rank
    if given is None:
        return tuple(ws)
    if len(given) != spatial_rank:
        raise node.error(f"kernel_shape has {len(given)} values, expected {spatial_rank} (one per spatial axis)")
    if any(isinstance(d, int) and d != k for d, k in zip(ws, given)):
        raise node.error(f"kernel_shape {list(given)} does not match the weight "
                         f"{quote_name(node.inputs[1].name)}: {w}")
    return tuple(given)


def _conv_operands(node: Node, weight_layout: str):
    """(input type, weight type, group) of a Conv or ConvTranspose, checked; the types' ranks
    are known and equal unless either shape is unknown."""
    require_float(node)
    same_dtypes(node)
    x = _ranked(node, 0, 3, "input")
    w = _ranked(node, 1, 3, "weight")
    group = node.attr("group")
    if group < 1:
        raise node.error(f"group must be positive, got {group}")
    if x.shape is not None and w.shape is not None and len(w.shape) != len(x.shape):
        raise node.error(f"input {quote_name(node.inputs[0].name)} is {x} and weight "
                         f"{quote_name(node.inputs[1].name)} is {w}: expected the same rank "
                         f"([N,C,spatial...] and {weight_layout})")
    return x, w, group


def _conv_output(node: Node, x, w, channels, window):
    """[N, channels, spatial...] with the spatial dims `window` gives (unknown when the kernel is)."""
    _check_channels(node, 2, channels, "bias")
    kernel = _kernel(node, w, len(x.shape) - 2)
    if not all(isinstance(k, int) for k in kernel):
        return [x.with_shape((x.shape[0], channels) + (UNKNOWN,) * len(kernel))]
    out, _, _ = window(node, x.shape[2:], kernel)
    return [x.with_shape((x.shape[0], channels) + out)]


def _conv_infer(node: Node):
    x, w, group = _conv_operands(node, "[M,C/group,kernel...]")
    if x.shape is None or w.shape is None:
        return [TensorType(x.dtype, None)]
    c, m, cg = x.shape[1], w.shape[0], w.shape[1]
    if isinstance(c, int) and isinstance(cg, int) and c != cg * group:
        raise node.error(f"input {quote_name(node.inputs[0].name)} has {c} channels, but weight "
                         f"{quote_name(node.inputs[1].name)}: {w} expects {cg} per group x group {group} = "
                         f"{cg * group}")
    if isinstance(m, int) and m % group:
        raise node.error(f"weight {quote_name(node.inputs[1].name)} has {m} output channels, "
                         f"not divisible by group {group}")
    return _conv_output(node, x, w, m, _window)


def _conv(node: Node, x, w, b=None):
    kernel = w.shape[2:]
    out, begin, end = _window(node, x.shape[2:], kernel)
    g = node.attr("group")
    n, c, m = x.shape[0], x.shape[1], w.shape[0]
    taps = _taps(widen(x), out, begin, end, kernel, _per_axis(node, "strides", len(kernel)),
                 _per_axis(node, "dilations", len(kernel)), 0)
    # im2col: [N, C, taps, pixels] grouped, times W as [group, M/group, C/group * taps]
    cols = np.stack(taps, axis=2).reshape(n, g, c // g * len(taps), -1)
    y = np.matmul(widen(w).reshape(g, m // g, -1), cols).reshape((n, m) + out)
    if b is not None:
        y = y + widen(b).reshape((m,) + (1,) * len(out))
    return y.astype(x.dtype)


def _conv_signatures(w_in: int, w_out: int):
    """A convolution's signatures; `w_in` and `w_out` are W's input- and output-channel axes
    (Conv: W is [M, C/group, ...]; ConvTranspose: [C, M/group, ...]). Batch split with W whole;
    with one group, output channels (W and bias split) or input channels (X and W split alike:
    a partial sum, the bias kept by one member); with several, whole groups per device (X's
    channels and W and the bias split alike, `_conv_local_attrs` scales group); and partial sums
    through X or W, the bias partial too, since it is added once."""
    def sbp(node):
        sigs = replicated(node)
        if node.inputs[0].type.rank is None or node.inputs[1].type.rank is None:
            return sigs
        sigs.append(Signature(operand_sbps(node, S(0), B, B), (S(0),)))
        if node.attr("group") == 1:
            sigs.append(Signature(operand_sbps(node, B, S(w_out), S(0)), (S(1),)))
            sigs.append(Signature(operand_sbps(node, S(1), S(w_in), P), (P,)))
        else:
            sigs.append(Signature(operand_sbps(node, S(1), S(0), S(0)), (S(1),)))
        sigs.append(Signature(operand_sbps(node, P, B, P), (P,)))
        sigs.append(Signature(operand_sbps(node, B, P, P), (P,)))
        return sigs
    return sbp


def _conv_local_attrs(node, ins, outs, mesh):
    """A device holding 1/k of a grouped convolution's channels runs group/k whole groups."""
    group, pieces = node.attr("group"), split_count(ins[0], 1, mesh)
    if group == 1 or pieces == 1:
        return node.attrs
    if group % pieces:
        return None
    return {**node.attrs, "group": group // pieces}


def conv_flops(node, ins, outs) -> float:
    """2 * output elements * W's elements per output channel: a multiply-add per tap."""
    return 2.0 * float(outs[0].numel()) * float(np.prod(ins[1].shape[1:]))


defop("Conv", family="nn", summary="N-d convolution (cross-correlation) with groups, strides, dilations, pads.",
      inputs=("X", "W", "B?"), attrs={**WINDOW_ATTRS, "group": ("int", 1)}, infer=_conv_infer, ref=_conv,
      sbp=_conv_signatures(w_in=1, w_out=0), flops=conv_flops, local_attrs=_conv_local_attrs)


def _transpose_window(node: Node, spatial, kernel):
    """(output dims, begin pads, end pads) of a transposed convolution; pads are None where unknown."""
    n = len(kernel)
    strides, dilations = _per_axis(node, "strides", n), _per_axis(node, "dilations", n)
    output_padding = _per_axis(node, "output_padding", n, 0)
    auto_pad = node.attr("auto_pad")
    if auto_pad not in AUTO_PADS:
        raise node.error(f"auto_pad must be one of {', '.join(AUTO_PADS)}, got {auto_pad!r}")
    pads = node.attr("pads") or (0,) * (2 * n)
    if len(pads) != 2 * n:
        raise node.error(f"pads has {len(pads)} values, expected {2 * n} (begin and end per spatial axis)")
    shape = node.attr("output_shape")
    if shape is not None and len(shape) not in (n, n + 2):
        raise node.error(f"output_shape has {len(shape)} values, expected {n} (one per spatial axis)")
    shape = shape[-n:] if shape is not None else None
    if min(strides + dilations + tuple(kernel), default=1) < 1:
        raise node.error(f"kernel {list(kernel)}, strides {list(strides)} and dilations {list(dilations)} "
                         "must be positive")
    out, begin, end = [], [], []
    for i, size in enumerate(spatial):
        s = strides[i]
        extra = output_padding[i] + dilations[i] * (kernel[i] - 1) + 1 - s   # full size = s * size + extra
        if shape is not None or auto_pad in ("SAME_UPPER", "SAME_LOWER"):
            # the output size is given (SAME: s * size); the padding is what the full result exceeds it by
            total = extra if shape is None else (s * size + extra - shape[i] if isinstance(size, int) else None)
            if total is None:
                pb = pe = None
            else:
                pb = total // 2 if auto_pad == "SAME_UPPER" else total - total // 2
                pe = total - pb
            out.append(dim_mul(size, s) if shape is None else shape[i])
        else:
            pb, pe = (0, 0) if auto_pad == "VALID" else (pads[i], pads[i + n])
            o = dim_add(dim_mul(size, s), extra - pb - pe)
            if isinstance(o, int) and o < 1:
                raise node.error(f"spatial axis {i}: the output size {o} is not positive "
                                 f"(input {size}, stride {s}, kernel {kernel[i]}, pads {pb}+{pe})")
            out.append(o)
        begin.append(pb)
        end.append(pe)
    return tuple(out), tuple(begin), tuple(end)


def _conv_transpose_infer(node: Node):
    x, w, group = _conv_operands(node, "[C,M/group,kernel...]")
    if x.shape is None or w.shape is None:
        return [TensorType(x.dtype, None)]
    c, wc = x.shape[1], w.shape[0]
    if isinstance(c, int) and isinstance(wc, int) and (c != wc or c % group):
        raise node.error(f"input {quote_name(node.inputs[0].name)} has {c} channels, but weight "
                         f"{quote_name(node.inputs[1].name)}: {w} expects {wc}, divisible by group {group}")
    m = dim_mul(w.shape[1], group)
    return _conv_output(node, x, w, m, _transpose_window)


def _conv_transpose(node: Node, x, w, b=None):
    kernel, spatial = w.shape[2:], x.shape[2:]
    k = len(kernel)
    out, begin, _ = _transpose_window(node, spatial, kernel)
    strides, dilations = _per_axis(node, "strides", k), _per_axis(node, "dilations", k)
    g = node.attr("group")
    n, c, mg = x.shape[0], x.shape[1], w.shape[1]
    taps = int(np.prod(kernel))
    # each input pixel spreads W over the output: cols[n, m, tap, pixel], then col2im by strided adds
    wt = widen(w).reshape(g, c // g, mg * taps).transpose(0, 2, 1)
    cols = np.matmul(wt, widen(x).reshape(n, g, c // g, -1)).reshape((n, g * mg, taps) + spatial)
    full = [(size - 1) * s + d * (kk - 1) + 1 for size, s, d, kk in zip(spatial, strides, dilations, kernel)]
    shift = [max(0, -pb) for pb in begin]   # negative pads put zeros before the full result
    buf = np.zeros((n, g * mg) + tuple(max(f, pb + o) + sh for f, pb, o, sh in zip(full, begin, out, shift)),
                   cols.dtype)
    for t, offsets in enumerate(itertools.product(*(range(kk) for kk in kernel))):
        buf[(Ellipsis,) + tuple(slice(o * d + sh, o * d + sh + (size - 1) * s + 1, s) for o, d, sh, size, s
                                in zip(offsets, dilations, shift, spatial, strides))] += cols[:, :, t]
    y = buf[(Ellipsis,) + tuple(slice(pb + sh, pb + sh + o) for pb, sh, o in zip(begin, shift, out))]
    if b is not None:
        y = y + widen(b).reshape((g * mg,) + (1,) * k)
    return y.astype(x.dtype)


def conv_transpose_flops(node, ins, outs) -> float:
    """2 * input elements * W's elements per input channel: each input spreads over that many taps."""
    return 2.0 * float(ins[0].numel()) * float(np.prod(ins[1].shape[1:]))


defop("ConvTranspose", family="nn", summary="N-d transposed convolution (the gradient of Conv) with groups.",
      inputs=("X", "W", "B?"),
      attrs={**WINDOW_ATTRS, "group": ("int", 1), "output_padding": ("ints", None), "output_shape": ("ints", None)},
      infer=_conv_transpose_infer, ref=_conv_transpose, sbp=_conv_signatures(w_in=0, w_out=1),
      flops=conv_transpose_flops, local_attrs=_conv_local_attrs)


# -- pooling -----------------------------------------------------------------------

def _pool_window(node: Node, spatial_rank: int):
    kernel = node.attr("kernel_shape")
    if len(kernel) != spatial_rank:
        raise node.error(f"kernel_shape has {len(kernel)} values, but the input has {spatial_rank} spatial axes")
    return kernel


def _pool_infer(node: Node):
    require_float(node)
    return [_pooled(node)]


def _pooled(node: Node) -> TensorType:
    t = _ranked(node, 0, 3, "input")
    if t.shape is None:
        return t
    kernel = _pool_window(node, len(t.shape) - 2)
    out, _, _ = _window(node, t.shape[2:], kernel, bool(node.attr("ceil_mode")))
    return t.with_shape(t.shape[:2] + out)


def _max_pool_infer(node: Node):
    t = in_type(node, 0)
    if not (t.dtype.is_float or t.dtype.name in ("i8", "u8")):
        raise node.error(f"input {quote_name(node.inputs[0].name)} must be a float, i8 or u8 tensor, got {t}")
    if node.attr("storage_order") not in (0, 1):
        raise node.error(f"storage_order must be 0 (row major) or 1 (column major), got {node.attr('storage_order')}")
    y = _pooled(node)
    return [y, y.with_dtype("i64")]


def _pool_taps(node: Node, x: np.ndarray, fill):
    kernel = _pool_window(node, x.ndim - 2)
    n = len(kernel)
    out, begin, end = _window(node, x.shape[2:], kernel, bool(node.attr("ceil_mode")))
    strides, dilations = _per_axis(node, "strides", n), _per_axis(node, "dilations", n)
    return _taps(x, out, begin, end, kernel, strides, dilations, fill), (out, begin, end, kernel, strides, dilations)


def _max_pool(node: Node, x):
    fill = -np.inf if x.dtype.kind == "f" or x.dtype.name == "bfloat16" else np.iinfo(x.dtype).min
    taps, (out, begin, _, kernel, strides, dilations) = _pool_taps(node, x, fill)
    y = taps[0]
    if len(node.outputs) < 2:
        for v in taps[1:]:
            y = np.maximum(y, v)
        return y.astype(x.dtype)
    # Indices: flat positions in X, the first maximum in row-major tap order winning ties
    spatial = x.shape[2:]
    axes = list(range(len(spatial)))
    if node.attr("storage_order"):
        axes.reverse()   # column major: the first spatial axis varies fastest
    steps, step = [0] * len(spatial), 1
    for i in reversed(axes):
        steps[i], step = step, step * spatial[i]
    base = np.arange(x.shape[0] * x.shape[1], dtype=np.int64).reshape(x.shape[:2] + (1,) * len(spatial)) * step
    best, index = y, None
    for t, offsets in enumerate(itertools.product(*(range(k) for k in kernel))):
        flat = sum((np.arange(m) * s + o * d - pb).reshape((m,) + (1,) * (len(spatial) - 1 - i)) * st
                   for i, (m, s, o, d, pb, st) in enumerate(zip(out, strides, offsets, dilations, begin, steps)))
        if t == 0:
            index = np.broadcast_to(base + flat, y.shape).copy()
            continue
        better = taps[t] > best
        best = np.where(better, taps[t], best)
        index = np.where(better, base + flat, index)
    return best.astype(x.dtype), index


def _pool_signatures(partial: bool = False):
    """Windows slide over each (sample, channel) alone: batch or channels split; a mean of partial
    sums is partial (`partial`). Not with MaxPool's Indices, which count from the whole tensor."""
    def sbp(node):
        if len(node.outputs) > 1:
            return replicated(node)
        return keep_axes_signatures(node, (0, 1), partial=partial)
    return sbp


defop("MaxPool", family="nn", summary="Max over sliding windows; Indices gives flat positions of the maxima.",
      inputs=("X",), outputs=("Y", "Indices?"), attrs={**POOL_ATTRS, "storage_order": ("int", 0)},
      infer=_max_pool_infer, ref=_max_pool, sbp=_pool_signatures())


def _window_counts(out, begin, end, kernel, strides, dilations, spatial, include_pad: bool) -> np.ndarray:
    """How many taps of each window fall inside the input (or the explicit padding, with include_pad)."""
    counts = np.ones((), np.int64)
    for m, pb, pe, k, s, d, size in zip(out, begin, end, kernel, strides, dilations, spatial):
        pos = np.arange(m)[:, None] * s + np.arange(k)[None, :] * d    # padded coordinates
        lo, hi = (0, size + pb + pe) if include_pad else (pb, pb + size)
        axis = ((pos >= lo) & (pos < hi)).sum(axis=1)
        counts = counts[..., None] * axis.reshape((m,))
    return counts


def _average_pool(node: Node, x):
    taps, geometry = _pool_taps(node, widen(x), 0)
    counts = _window_counts(*geometry, x.shape[2:], bool(node.attr("count_include_pad")))
    return (sum(taps[1:], taps[0]) / counts).astype(x.dtype)


defop("AveragePool", family="nn", summary="Mean over sliding windows, padding counted or not.",
      inputs=("X",), attrs={**POOL_ATTRS, "count_include_pad": ("int", 0)}, infer=_pool_infer, ref=_average_pool,
      sbp=_pool_signatures(partial=True))


def _lp(node: Node) -> int:
    p = node.attr("p")
    if p < 1:
        raise node.error(f"p must be positive, got {p}")
    return p


def _lp_pool(node: Node, x):
    p = _lp(node)
    taps, _ = _pool_taps(node, np.abs(widen(x)) ** p, 0)
    return (sum(taps[1:], taps[0]) ** (1 / p)).astype(x.dtype)


def _lp_infer(infer):
    """`infer` after checking the p attribute."""
    def checked(node: Node):
        _lp(node)
        return infer(node)
    return checked


defop("LpPool", family="nn", summary="Lp norm over sliding windows (padding counts as zeros).",
      inputs=("X",), attrs={**POOL_ATTRS, "p": ("int", 2)}, infer=_lp_infer(_pool_infer), ref=_lp_pool,
      sbp=_pool_signatures())


def _global_infer(node: Node):
    require_float(node)
    t = _ranked(node, 0, 3, "input")
    return [t if t.shape is None else t.with_shape(t.shape[:2] + (1,) * (len(t.shape) - 2))]


def _global(reduce):
    return lambda n, x: np.asarray(reduce(n, widen(x), tuple(range(2, x.ndim)))).astype(x.dtype)


GLOBAL_POOLS = {
    "GlobalAveragePool": ("Mean over all spatial axes.", {}, lambda n, x, axes: x.mean(axes, keepdims=True)),
    "GlobalMaxPool": ("Max over all spatial axes.", {}, lambda n, x, axes: x.max(axes, keepdims=True)),
    "GlobalLpPool": ("Lp norm over all spatial axes.", {"p": ("int", 2)},
                     lambda n, x, axes: (np.abs(x) ** _lp(n)).sum(axes, keepdims=True) ** (1 / _lp(n))),
}

for _name, (_summary, _attrs, _reduce) in GLOBAL_POOLS.items():
    defop(_name, family="nn", summary=_summary, inputs=("X",), attrs=_attrs,
          infer=_lp_infer(_global_infer) if "p" in _attrs else _global_infer, ref=_global(_reduce),
          sbp=_pool_signatures(partial=_name == "GlobalAveragePool"))


# -- normalization -------------------------------------------------------------------

def _params(*arrays) -> list[np.ndarray]:
    """Arrays widened to one compute dtype (parameters may be wider than X)."""
    ct = np.result_type(*(compute_dtype(a.dtype) for a in arrays))
    return [a.astype(ct, copy=False) for a in arrays]


def _per_channel(a: np.ndarray, rank: int) -> np.ndarray:
    return a.reshape((-1,) + (1,) * (rank - 2))


def _batch_norm_infer(node: Node):
    if node.attr("training_mode"):
        raise node.error("training_mode=1 (batch statistics and running-stat updates) is not supported; "
                         "export the model in eval mode")
    if len(node.outputs) > 1:
        raise node.error("running_mean and running_var are outputs of training mode only; "
                         "in inference mode the node has one output")
    require_dtype(node, "float", range(5))
    t = _ranked(node, 0, 2, "input")
    channels = t.shape[1] if t.shape is not None else UNKNOWN
    for i, what in enumerate(("scale", "bias", "mean", "variance"), start=1):
        _check_channels(node, i, channels, what)
    return [t]


def _batch_norm(node: Node, x, scale, b, mean, var):
    xs, scale, b, mean, var = _params(x, scale, b, mean, var)
    inv = scale / np.sqrt(var + node.attr("epsilon"))
    y = (xs - _per_channel(mean, x.ndim)) * _per_channel(inv, x.ndim) + _per_channel(b, x.ndim)
    return y.astype(x.dtype)


def _per_channel_signatures(node, axes) -> list:
    """X split on `axes` with the per-channel parameters whole, or on the channels with them split
    alike."""
    sigs = replicated(node)
    if in_type(node, 0).rank is None:
        return sigs
    sigs += [Signature(operand_sbps(node, S(a)), (S(a),)) for a in axes]
    sigs.append(Signature(operand_sbps(node, S(1), *[S(0)] * (len(node.inputs) - 1)), (S(1),)))
    return sigs


defop("BatchNormalization", family="nn",
      summary="(x - mean) / sqrt(var + epsilon) * scale + B per channel, with stored statistics (inference).",
      inputs=("X", "scale", "B", "input_mean", "input_var"), outputs=("Y", "running_mean?", "running_var?"),
      attrs={"epsilon": ("float", _f32(1e-5)), "momentum": ("float", _f32(0.9)), "training_mode": ("int", 0)},
      infer=_batch_norm_infer, ref=_batch_norm,
      sbp=lambda n: _per_channel_signatures(n, [a for a in range(in_type(n, 0).rank or 0) if a != 1]))


def _instance_norm_infer(node: Node):
    require_dtype(node, "float", range(3))
    t = _ranked(node, 0, 3, "input")
    channels = t.shape[1] if t.shape is not None else UNKNOWN
    _check_channels(node, 1, channels, "scale")
    _check_channels(node, 2, channels, "bias")
    return [t]


def _normalize(x: np.ndarray, axes, epsilon: float):
    """(normalized x, mean, 1 / std) over `axes`, in x's dtype."""
    mean = x.mean(axes, keepdims=True)
    diff = x - mean
    inv_std = 1 / np.sqrt((diff * diff).mean(axes, keepdims=True) + epsilon)
    return diff * inv_std, mean, inv_std


def _instance_norm(node: Node, x, scale, b):
    xs, scale, b = _params(x, scale, b)
    y, _, _ = _normalize(xs, tuple(range(2, x.ndim)), node.attr("epsilon"))
    return (y * _per_channel(scale, x.ndim) + _per_channel(b, x.ndim)).astype(x.dtype)


defop("InstanceNormalization", family="nn",
      summary="Normalize each (sample, channel) over its spatial axes, then scale and shift per channel.",
      inputs=("input", "scale", "B"), outputs=("output",), attrs={"epsilon": ("float", _f32(1e-5))},
      infer=_instance_norm_infer, ref=_instance_norm, sbp=lambda n: _per_channel_signatures(n, (0,)))


def _stash_dtype(node: Node):
    code = node.attr("stash_type")
    dt = dtype_from_onnx(code)
    if dt is None or not dt.is_float:
        raise node.error(f"stash_type must name a float element type (1 = f32, 10 = f16, 11 = f64, 16 = bf16), "
                         f"got {code}")
    return dt


def _layer_norm_infer(node: Node):
    require_dtype(node, "float", range(3))
    same_dtypes(node)
    stash = _stash_dtype(node)
    t = in_type(node, 0)
    if t.shape is None:
        return [t, TensorType(stash, None), TensorType(stash, None)]
    axis = axis_of(node, len(t.shape))
    broadcasts_to(node, 1, t.shape[axis:], "scale")
    broadcasts_to(node, 2, t.shape[axis:], "bias")
    stats = t.shape[:axis] + (1,) * (len(t.shape) - axis)
    return [t, TensorType(stash, stats), TensorType(stash, stats)]


def _layer_norm(node: Node, x, scale, b=None):
    stash = _stash_dtype(node).np
    axis = axis_of(node, x.ndim)
    y, mean, inv_std = _normalize(x.astype(compute_dtype(stash)), tuple(range(axis, x.ndim)), node.attr("epsilon"))
    y = y * widen(scale) + (0 if b is None else widen(b))
    return y.astype(x.dtype), mean.astype(stash), inv_std.astype(stash)


defop("LayerNormalization", family="nn",
      summary="Normalize over the axes from `axis` on, then scale and shift; Mean and InvStdDev optional.",
      inputs=("X", "Scale", "B?"), outputs=("Y", "Mean?", "InvStdDev?"),
      attrs={"axis": ("int", -1), "epsilon": ("float", _f32(1e-5)), "stash_type": ("int", 1)},
      infer=_layer_norm_infer, ref=_layer_norm,
      sbp=lambda n: keep_axes_signatures(n, range(axis_of(n, in_type(n, 0).rank or 0))))


def _group_norm_infer(node: Node):
    require_dtype(node, "float", range(3))
    same_dtypes(node)
    _stash_dtype(node)
    t = _ranked(node, 0, 3, "input")
    groups = node.attr("num_groups")
    channels = t.shape[1] if t.shape is not None else UNKNOWN
    if groups < 1 or isinstance(channels, int) and channels % groups:
        raise node.error(f"num_groups {groups} must be positive and divide the {channels} channels of "
                         f"{quote_name(node.inputs[0].name)}: {t}")
    for i, what in ((1, "scale"), (2, "bias")):
        shape = in_type(node, i).shape
        if shape is not None and len(shape) == 1 and same_dim(shape[0], groups) and not same_dim(shape[0], channels):
            raise node.error(f"{what} {quote_name(node.inputs[i].name)} has num_groups={groups} elements, the "
                             f"opset-18 form; since opset 21 it has one per channel ({channels})")
        _check_channels(node, i, channels, what)
    return [t]


def _group_norm(node: Node, x, scale, b):
    grouped = x.astype(compute_dtype(_stash_dtype(node).np)).reshape((x.shape[0], node.attr("num_groups"), -1))
    y, _, _ = _normalize(grouped, (2,), node.attr("epsilon"))
    y = y.reshape(x.shape) * _per_channel(widen(scale), x.ndim) + _per_channel(widen(b), x.ndim)
    return y.astype(x.dtype)


def _group_norm_local_attrs(node, ins, outs, mesh):
    """A device holding 1/k of the channels normalises num_groups/k whole groups."""
    groups, pieces = node.attr("num_groups"), split_count(ins[0], 1, mesh)
    if pieces == 1:
        return node.attrs
    if groups % pieces:
        return None
    return {**node.attrs, "num_groups": groups // pieces}


defop("GroupNormalization", family="nn",
      summary="Normalize each sample over groups of channels (and space), then scale and shift per channel.",
      inputs=("X", "scale", "bias"),
      attrs={"num_groups": ("int", REQUIRED), "epsilon": ("float", _f32(1e-5)), "stash_type": ("int", 1)},
      infer=_group_norm_infer, ref=_group_norm, sbp=lambda n: _per_channel_signatures(n, (0,)),
      local_attrs=_group_norm_local_attrs)


def _lrn_infer(node: Node):
    require_float(node)
    if node.attr("size") < 1:
        raise node.error(f"size must be positive, got {node.attr('size')}")
    _ranked(node, 0, 2, "input")
    return same_as_input(node)


def _lrn(node: Node, x):
    size = node.attr("size")
    xs = widen(x)
    lo = (size - 1) // 2
    sq = np.pad(xs * xs, [(0, 0), (lo, size - 1 - lo)] + [(0, 0)] * (x.ndim - 2))
    c = x.shape[1]
    window = sum(sq[:, i:i + c] for i in range(size))
    y = xs / (node.attr("bias") + node.attr("alpha") / size * window) ** node.attr("beta")
    return y.astype(x.dtype)


defop("LRN", family="nn", summary="Local response normalization across nearby channels.",
      inputs=("X",), attrs={"size": ("int", REQUIRED), "alpha": ("float", _f32(1e-4)), "beta": ("float", 0.75),
                            "bias": ("float", 1.0)},
      infer=_lrn_infer, ref=_lrn,
      sbp=lambda n: keep_axes_signatures(n, [a for a in range(in_type(n, 0).rank or 0) if a != 1]))


def _lp_norm_infer(node: Node):
    require_float(node)
    if node.attr("p") not in (1, 2):
        raise node.error(f"p must be 1 or 2, got {node.attr('p')}")
    t = in_type(node, 0)
    if t.shape is not None:
        axis_of(node, len(t.shape))
    return [t]


def _lp_norm(node: Node, x):
    xs = widen(x)
    axis = axis_of(node, x.ndim)
    norm = np.abs(xs).sum(axis, keepdims=True) if node.attr("p") == 1 else np.sqrt((xs * xs).sum(axis, keepdims=True))
    return (xs / np.where(norm == 0, 1, norm)).astype(x.dtype)   # a zero vector stays zero


defop("LpNormalization", family="nn", summary="x divided by its L1 or L2 norm along `axis` (0 where the norm is 0).",
      inputs=("input",), outputs=("output",), attrs={"axis": ("int", -1), "p": ("int", 2)},
      infer=_lp_norm_infer, ref=_lp_norm,
      sbp=lambda n: keep_axes_signatures(n, [a for a in range(in_type(n, 0).rank or 0)
                                             if a != axis_of(n, in_type(n, 0).rank)]))


# -- dropout -------------------------------------------------------------------------

def _dropout_infer(node: Node):
    require_float(node)
    ratio = node.input(1)
    if ratio is not None and not ratio.type.dtype.is_float:
        raise node.error(f"ratio {quote_name(ratio.name)} must be a float scalar, got {ratio.type}")
    mode = node.input(2)
    if mode is not None and mode.type.dtype.name != "bool":
        raise node.error(f"training_mode {quote_name(mode.name)} must be a bool scalar, got {mode.type}")
    training = known_array(mode)
    r = known_array(ratio) if ratio is not None else np.float32(0.5)
    if training is not None and training.any() and r is not None and r.any():
        raise _random_dropout_error(node)
    t = in_type(node, 0)
    return [t, t.with_dtype("bool")]


def _random_dropout_error(node: Node):
    return node.error("training_mode=True drops elements at random, which flowc does not support; "
                     "export the model in eval mode")


def _dropout(node: Node, x, ratio=None, training=None):
    if training is not None and training.any() and (ratio is None or ratio.any()):
        raise _random_dropout_error(node)
    return x, np.ones(x.shape, bool)


def _dropout_signatures(node):
    """The identity on the data (partial sums too); the mask, all true, lies like the data or whole."""
    sigs = replicated(node)
    rank = in_type(node, 0).rank
    if rank is None:
        return sigs
    sigs += [Signature(operand_sbps(node, S(a)), tuple(S(a) for _ in node.outputs)) for a in range(rank)]
    sigs.append(Signature(operand_sbps(node, P), (P,) + (B,) * (len(node.outputs) - 1)))
    return sigs


defop("Dropout", family="nn", summary="Identity at inference (mask all True); random dropping is unsupported.",
      inputs=("data", "ratio?", "training_mode?"), outputs=("output", "mask?"), attrs={"seed": ("int", None)},
      infer=_dropout_infer, ref=_dropout, sbp=_dropout_signatures)


# -- pad -----------------------------------------------------------------------------

PAD_MODES = ("constant", "reflect", "edge", "wrap")


def _normalize_axes(node: Node, axes, rank: int) -> list[int]:
    try:
        out = [normalize_axis(a, rank) for a in axes]
    except ValueError as e:
        raise node.error(str(e)) from None
    if len(set(out)) != len(out):
        raise node.error(f"axes {list(axes)} name an axis twice")
    return out


def _pad_widths(node: Node, rank: int, pads, axes) -> list[tuple[Dim, Dim]]:
    """(begin, end) per axis from the contents of the pads and axes inputs."""
    axes = list(range(rank)) if axes is None else _normalize_axes(node, axes, rank)
    if len(pads) != 2 * len(axes):
        raise node.error(f"pads has {len(pads)} values, expected {2 * len(axes)} (begin and end for each of "
                         f"{len(axes)} axes)")
    widths = [(0, 0)] * rank
    for i, a in enumerate(axes):
        widths[a] = (pads[i], pads[i + len(axes)])
    return widths


def _pad_infer(node: Node):
    t = in_type(node, 0)
    if node.attr("mode") not in PAD_MODES:
        raise node.error(f"mode must be one of {', '.join(PAD_MODES)}, got {node.attr('mode')!r}")
    if not in_type(node, 1).dtype.is_int:
        raise node.error(f"pads {quote_name(node.inputs[1].name)} must be an integer tensor, got {in_type(node, 1)}")
    value = node.input(2)
    if value is not None and value.type.dtype != t.dtype:
        raise node.error(f"constant_value {quote_name(value.name)} is {value.type}, expected {t.dtype} like the data")
    if t.shape is None:
        return [t]
    pads, axes = known_ints(node.inputs[1]), known_ints(node.input(3))
    if node.input(3) is not None and axes is None:   # axes computed at run time: any axis may change
        return [t.with_shape((UNKNOWN,) * len(t.shape))]
    if pads is None:
        padded = _normalize_axes(node, axes, len(t.shape)) if axes is not None else range(len(t.shape))
        return [t.with_shape(UNKNOWN if a in padded else d for a, d in enumerate(t.shape))]
    shape = [dim_add(dim_add(d, b), e) for d, (b, e) in zip(t.shape, _pad_widths(node, len(t.shape), pads, axes))]
    if any(isinstance(d, int) and d < 0 for d in shape):
        raise node.error(f"pads {list(pads)} crop {t} below size 0")
    return [t.with_shape(shape)]


def _pad(node: Node, x, pads, value=None, axes=None):
    widths = _pad_widths(node, x.ndim, [int(p) for p in pads.reshape(-1)],
                         None if axes is None else [int(a) for a in axes.reshape(-1)])
    grow = [(max(b, 0), max(e, 0)) for b, e in widths]
    mode = node.attr("mode")
    if mode == "constant":   # pad, then let the negative pads crop (even past the other side's pad)
        fill = value.reshape(-1)[0] if value is not None and value.size else 0
        y = np.pad(x, grow, constant_values=fill)
        return y[tuple(slice(max(-b, 0), size - max(-e, 0)) for (b, e), size in zip(widths, y.shape))]
    kept = [size - max(-b, 0) - max(-e, 0) for (b, e), size in zip(widths, x.shape)]
    if any(k < 0 or (k == 0 and w != (0, 0)) for k, w in zip(kept, grow)):
        raise node.error(f"mode {mode!r} cannot pad an axis cropped to nothing (sizes left after the negative "
                         f"pads: {kept})")
    # the other modes read x itself: the negative pads crop it first
    x = x[tuple(slice(max(-b, 0), size - max(-e, 0)) for (b, e), size in zip(widths, x.shape))]
    return np.pad(x, grow, mode=mode)


def _pad_signatures(node):
    """Split on the axes left unpadded; partial sums stay partial unless a nonzero constant is
    added at the border (the other modes copy elements)."""
    t = in_type(node, 0)
    sigs = replicated(node)
    pads, axes = known_ints(node.inputs[1]), known_ints(node.input(3))
    if t.shape is None or pads is None or not all(isinstance(p, int) for p in pads) or \
            node.input(3) is not None and (axes is None or not all(isinstance(a, int) for a in axes)):
        return sigs
    widths = _pad_widths(node, len(t.shape), pads, axes if node.input(3) is not None else None)
    sigs += [Signature(operand_sbps(node, S(a)), (S(a),)) for a, w in enumerate(widths) if w == (0, 0)]
    fill = None if node.input(2) is None else known_array(node.inputs[2])
    if node.attr("mode") != "constant" or node.input(2) is None or fill is not None and not fill.any():
        sigs.append(Signature(operand_sbps(node, P), (P,)))
    return sigs


defop("Pad", family="nn", summary="Pad (or crop, with negative pads) with a constant, reflection, edge or wrap.",
      inputs=("data", "pads", "constant_value?", "axes?"), outputs=("output",),
      attrs={"mode": ("str", "constant")}, infer=_pad_infer, ref=_pad, storage=True, sbp=_pad_signatures)


# -- resize --------------------------------------------------------------------------

RESIZE_MODES = ("nearest", "linear", "cubic")
COORDINATE_MODES = ("half_pixel", "half_pixel_symmetric", "pytorch_half_pixel", "align_corners", "asymmetric",
                    "tf_crop_and_resize")
NEAREST_MODES = ("round_prefer_floor", "round_prefer_ceil", "floor", "ceil")
ASPECT_POLICIES = ("stretch", "not_larger", "not_smaller")


def _present(v):
    """An optional input, None when omitted or given as an empty tensor (as exporters do)."""
    if v is None or v.type.shape is not None and 0 in v.type.shape:
        return None
    return v


def _resize_axes(node: Node, rank: int) -> list[int]:
    axes = node.attr("axes")
    return list(range(rank)) if axes is None else _normalize_axes(node, axes, rank)


def _resize_check(node: Node) -> None:
    for key, allowed in (("mode", RESIZE_MODES), ("coordinate_transformation_mode", COORDINATE_MODES),
                         ("nearest_mode", NEAREST_MODES), ("keep_aspect_ratio_policy", ASPECT_POLICIES)):
        if node.attr(key) not in allowed:
            raise node.error(f"{key} must be one of {', '.join(allowed)}, got {node.attr(key)!r}")
    if node.attr("antialias") and node.attr("mode") == "nearest":
        raise node.error("antialias applies to modes linear and cubic only, not nearest")
    if node.attr("coordinate_transformation_mode") == "tf_crop_and_resize" and _present(node.input(1)) is None:
        raise node.error("coordinate_transformation_mode tf_crop_and_resize needs the roi input")


def _resize_plan(node: Node, shape, scales, sizes):
    """(output dims, scale per axis) from known scales or sizes; entries are None where unknown."""
    axes = _resize_axes(node, len(shape))
    given = scales if scales is not None else sizes
    if len(given) != len(axes):
        what = "scales" if scales is not None else "sizes"
        raise node.error(f"{what} has {len(given)} values, expected {len(axes)} (one per resized axis)")
    out, factor = list(shape), [1.0] * len(shape)
    if scales is not None:
        if min(scales) <= 0:
            raise node.error(f"scales must be positive, got {[float(s) for s in scales]}")
        for a, s in zip(axes, scales):
            d = shape[a]
            factor[a] = float(s)
            out[a] = int(float(s) * d) if isinstance(d, int) else \
                dim_mul(d, int(s)) if float(s).is_integer() else UNKNOWN
        return out, factor
    policy = node.attr("keep_aspect_ratio_policy")
    if policy == "stretch":
        for a, s in zip(axes, sizes):
            out[a] = s
            factor[a] = s / shape[a] if isinstance(s, int) and isinstance(shape[a], int) and shape[a] else None
        return out, factor
    if not all(isinstance(shape[a], int) and isinstance(s, int) for a, s in zip(axes, sizes)):
        return [UNKNOWN if a in axes else d for a, d in enumerate(shape)], [None] * len(shape)
    pick = min if policy == "not_larger" else max
    scale = pick(s / shape[a] for a, s in zip(axes, sizes))
    for a in axes:
        out[a], factor[a] = int(scale * shape[a] + 0.5), scale
    return out, factor


def _resize_infer(node: Node):
    _resize_check(node)
    t = in_type(node, 0)
    if not (t.dtype.is_float or t.dtype.is_int):
        raise node.error(f"input {quote_name(node.inputs[0].name)} must be a numeric tensor, got {t}")
    scales_v, sizes_v = _present(node.input(2)), _present(node.input(3))
    if (scales_v is None) == (sizes_v is None):
        raise node.error("exactly one of scales and sizes must be given, got "
                         + ("both" if scales_v is not None else "neither"))
    if t.shape is None:
        return [t]
    if scales_v is not None:
        scales = known_array(scales_v)
        plan = None if scales is None else _resize_plan(node, t.shape, tuple(scales.reshape(-1)), None)
    else:
        sizes = known_ints(sizes_v)
        plan = None if sizes is None else _resize_plan(node, t.shape, None, sizes)
    if plan is None:
        axes = _resize_axes(node, len(t.shape))
        return [t.with_shape(UNKNOWN if a in axes else d for a, d in enumerate(t.shape))]
    return [t.with_shape(plan[0])]


def _source_coords(node: Node, out: int, size: int, scale: float, roi) -> np.ndarray:
    """The input coordinate each output index samples, per coordinate_transformation_mode.

    In f32, as onnxruntime and torch compute it: nearest rounding of exact halves depends on it.
    """
    mode = node.attr("coordinate_transformation_mode")
    y = np.arange(out, dtype=np.float32)
    scale, size = np.float32(scale), np.float32(size)
    if mode == "half_pixel":
        return (y + 0.5) / scale - 0.5
    if mode == "half_pixel_symmetric":
        return size / 2 * (1 - out / (scale * size)) + (y + 0.5) / scale - 0.5
    if mode == "pytorch_half_pixel":
        return (y + 0.5) / scale - 0.5 if out > 1 else np.zeros(out, np.float32)
    if mode == "align_corners":
        # the resized length is scale * size, fractional when scales are given, as the ONNX
        # conformance tests have it (onnxruntime and torch use the rounded output length)
        length = scale * size
        return y * (size - 1) / (length - 1) if out > 1 else np.zeros(out, np.float32)
    if mode == "asymmetric":
        return y / scale
    start, end = np.float32(roi[0]), np.float32(roi[1])   # tf_crop_and_resize
    if out == 1:
        return np.full(out, (start + end) / 2 * (size - 1), np.float32)
    return start * (size - 1) + y * (end - start) * (size - 1) / np.float32(out - 1)


def _cubic(t: np.ndarray, a: float) -> np.ndarray:
    t = np.abs(t)
    near = ((a + 2) * t - (a + 3)) * t * t + 1
    far = ((a * t - 5 * a) * t + 8 * a) * t - 4 * a
    return np.where(t <= 1, near, np.where(t < 2, far, 0.0))


def _resize_axis(node: Node, x: np.ndarray, axis: int, out: int, scale: float, roi) -> np.ndarray:
    size = x.shape[axis]
    src = _source_coords(node, out, size, scale, roi)
    mode = node.attr("mode")
    if mode == "nearest":
        rounding = node.attr("nearest_mode")
        frac = src - np.floor(src)
        up = {"floor": np.zeros_like(src, bool), "ceil": frac > 0,
              "round_prefer_floor": frac > 0.5, "round_prefer_ceil": frac >= 0.5}[rounding]
        taps = (np.floor(src) + up).astype(np.int64)[:, None]
        weights = np.ones((out, 1))
    else:
        reach = 1 if mode == "linear" else 2
        shrink = min(scale, 1.0) if node.attr("antialias") else 1.0   # antialiasing widens the filter
        n = 2 - 2 * (math.floor(-reach / shrink) + 1)
        taps = (np.ceil(src) - n // 2).astype(np.int64)[:, None] + np.arange(n)
        dist = (taps - src[:, None]) * shrink
        weights = np.maximum(0, 1 - np.abs(dist)) if mode == "linear" else _cubic(dist, node.attr("cubic_coeff_a"))
        if node.attr("antialias"):
            weights = weights / weights.sum(axis=1, keepdims=True)
        if node.attr("exclude_outside"):
            weights = np.where((taps < 0) | (taps >= size), 0.0, weights)
            total = weights.sum(axis=1, keepdims=True)
            weights = weights / np.where(total == 0, 1.0, total)
    picked = np.take(x, np.clip(taps, 0, size - 1), axis=axis)
    if mode == "nearest":
        y = np.squeeze(picked, axis + 1)
    else:
        w = weights.astype(x.dtype).reshape((out, weights.shape[1]) + (1,) * (x.ndim - axis - 1))
        y = (picked * w).sum(axis=axis + 1)
    if node.attr("coordinate_transformation_mode") == "tf_crop_and_resize":
        outside = ((src < 0) | (src > size - 1)).reshape((out,) + (1,) * (x.ndim - axis - 1))
        y = np.where(outside, np.asarray(node.attr("extrapolation_value"), x.dtype), y)
    return y


def _resize(node: Node, x, roi=None, scales=None, sizes=None):
    if scales is not None and scales.size:
        out, factor = _resize_plan(node, x.shape, tuple(float(s) for s in scales.reshape(-1)), None)
    else:
        out, factor = _resize_plan(node, x.shape, None, tuple(int(s) for s in sizes.reshape(-1)))
    axes = _resize_axes(node, x.ndim)
    box = {}
    if node.attr("coordinate_transformation_mode") == "tf_crop_and_resize":
        roi = np.asarray(roi, np.float64).reshape(-1)
        if roi.size not in (2 * len(axes), 2 * x.ndim):
            raise node.error(f"roi has {roi.size} values, expected {2 * len(axes)} (start and end per resized axis)")
        listed = axes if roi.size == 2 * len(axes) else list(range(x.ndim))
        box = {a: (roi[i], roi[i + len(listed)]) for i, a in enumerate(listed)}
    y = x   # nearest is a gather, exact in any dtype; the others interpolate in a float
    if node.attr("mode") != "nearest":
        y = x.astype(np.float32 if x.dtype.kind in "iub" else compute_dtype(x.dtype), copy=False)
    for a in axes:
        if out[a] != x.shape[a] or factor[a] != 1 or box.get(a, (0, 1)) != (0, 1):
            y = _resize_axis(node, y, a, out[a], factor[a], box.get(a))
    if y.dtype != x.dtype and x.dtype.kind in "iu":
        info = np.iinfo(x.dtype)
        y = np.clip(np.rint(y), info.min, info.max)
    return y.astype(x.dtype)


def _resize_signatures(node):
    """Split on the axes that scales leave alone (not with sizes, which name whole dims). Every mode
    is linear in X (a gather, or fixed weights), so partial sums stay partial; not
    tf_crop_and_resize, which fills the outside with a constant."""
    t = in_type(node, 0)
    sigs = replicated(node)
    if t.shape is None or node.attr("coordinate_transformation_mode") == "tf_crop_and_resize":
        return sigs
    scales_v = _present(node.input(2))
    scales = None if scales_v is None else known_array(scales_v)
    if scales is not None:
        out, factor = _resize_plan(node, t.shape, tuple(float(s) for s in scales.reshape(-1)), None)
        sigs += [Signature(operand_sbps(node, S(a)), (S(a),)) for a in range(len(t.shape))
                 if out[a] == t.shape[a] and factor[a] == 1]
    sigs.append(Signature(operand_sbps(node, P), (P,)))
    return sigs


defop("Resize", family="nn",
      summary="Resize by scales or to sizes: nearest, (bi/tri)linear or cubic, ONNX coordinate modes.",
      inputs=("X", "roi?", "scales?", "sizes?"),
      attrs={"mode": ("str", "nearest"), "coordinate_transformation_mode": ("str", "half_pixel"),
             "nearest_mode": ("str", "round_prefer_floor"), "cubic_coeff_a": ("float", -0.75),
             "exclude_outside": ("int", 0), "extrapolation_value": ("float", 0.0), "antialias": ("int", 0),
             "axes": ("ints", None), "keep_aspect_ratio_policy": ("str", "stretch")},
      infer=_resize_infer, ref=_resize, sbp=_resize_signatures)

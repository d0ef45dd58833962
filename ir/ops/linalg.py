"""Linear algebra: MatMul (numpy semantics), Gemm, Einsum, MatMulInteger."""
from __future__ import annotations

import numpy as np

from flowc.errors import quote_name

from ..graph import Node
from ..registry import REQUIRED, defop
from ..sbp import B, P, S, Signature, matmul_signatures, operand_sbps, replicated
from ..types import Dim, TensorType, broadcast_dim, dtype
from .rules import broadcast_shapes, broadcasts_to, in_type, require_dtype, same_dtypes, widen


def _matmul_shape(node: Node, a: TensorType, b: TensorType) -> tuple[Dim, ...] | None:
    """numpy matmul: a 1-D operand gains a unit axis that the result drops; batch axes broadcast."""
    if a.shape is None or b.shape is None:
        return None
    if not a.shape or not b.shape:
        raise node.error(f"operands must have rank >= 1, got {a} and {b}")
    sa = a.shape if len(a.shape) > 1 else (1,) + a.shape
    sb = b.shape if len(b.shape) > 1 else b.shape + (1,)
    if isinstance(sa[-1], int) and isinstance(sb[-2], int) and sa[-1] != sb[-2]:
        raise node.error(f"{quote_name(node.inputs[0].name)}: {a} times {quote_name(node.inputs[1].name)}: {b}: "
                         f"the contracted dims differ ({sa[-1]} vs {sb[-2]})")
    batch = broadcast_shapes(node, [sa[:-2], sb[:-2]])
    return batch + sa[-2:-1] * (len(a.shape) > 1) + sb[-1:] * (len(b.shape) > 1)


def _matmul_infer(node: Node):
    require_dtype(node, "numeric", (0, 1))
    same_dtypes(node)
    a, b = in_type(node, 0), in_type(node, 1)
    return [a.with_shape(_matmul_shape(node, a, b))]


def _matmul(node: Node, a, b):
    return np.matmul(widen(a), widen(b)).astype(a.dtype)


def matmul_flops(node: Node, ins, outs) -> float:
    """2 M N K: a multiply and an add per output element and contracted index."""
    return 2.0 * float(outs[0].numel()) * float(ins[0].shape[-1])


defop("MatMul", family="linalg", summary="Matrix product with numpy semantics (1-D operands, broadcast batches).",
      inputs=("A", "B"), infer=_matmul_infer, ref=_matmul, sbp=matmul_signatures, flops=matmul_flops)


def _gemm_infer(node: Node):
    require_dtype(node, "numeric", (0, 1, 2))
    same_dtypes(node)
    a, b = in_type(node, 0), in_type(node, 1)
    for t, v in ((a, node.inputs[0]), (b, node.inputs[1])):
        if t.shape is not None and len(t.shape) != 2:
            raise node.error(f"input {quote_name(v.name)} must be a matrix, got {t}")
    if a.shape is None or b.shape is None:
        return [a.with_shape(None)]
    m, ka = a.shape[::-1] if node.attr("transA") else a.shape
    kb, n = b.shape[::-1] if node.attr("transB") else b.shape
    if isinstance(ka, int) and isinstance(kb, int) and ka != kb:
        raise node.error(f"A {quote_name(node.inputs[0].name)}: {a} (transA={node.attr('transA')}) and "
                         f"B {quote_name(node.inputs[1].name)}: {b} (transB={node.attr('transB')}) "
                         f"contract dims {ka} and {kb}, which differ")
    broadcasts_to(node, 2, (m, n), "C")
    return [a.with_shape((m, n))]


def _gemm(node: Node, a, b, c=None):
    wa, wb = widen(a), widen(b)
    y = np.matmul(wa.T if node.attr("transA") else wa, wb.T if node.attr("transB") else wb)
    if node.attr("alpha") != 1:
        y = node.attr("alpha") * y
    if c is not None:
        y = y + node.attr("beta") * widen(c)
    return y.astype(a.dtype)


def _gemm_signatures(node: Node):
    """MatMul's, through the transposes: rows of A' (with C's rows), columns of B' (with C's
    columns), or the contracted axis of both (a partial sum, C kept by one member); a partial
    operand times a whole one, C partial."""
    c = node.input(2)
    ta, tb = node.attr("transA"), node.attr("transB")

    def c_split(axis: int):   # C broadcasts to [M, N]
        if c is None:
            return None
        k = axis - (2 - c.type.rank)
        return S(k) if k >= 0 and c.type.shape[k] != 1 else B

    sigs = replicated(node)
    if c is not None and c.type.shape is None:
        return sigs
    sigs.append(Signature(operand_sbps(node, S(1 if ta else 0), B, c_split(0)), (S(0),)))
    sigs.append(Signature(operand_sbps(node, B, S(0 if tb else 1), c_split(1)), (S(1),)))
    sigs.append(Signature(operand_sbps(node, S(0 if ta else 1), S(1 if tb else 0), P), (P,)))
    sigs.append(Signature(operand_sbps(node, P, B, P), (P,)))
    sigs.append(Signature(operand_sbps(node, B, P, P), (P,)))
    return sigs


def gemm_flops(node: Node, ins, outs) -> float:
    """2 M N K, K read from A as stored (transposed or not); C's additions are in the noise."""
    return 2.0 * float(outs[0].numel()) * float(ins[0].shape[0 if node.attr("transA") else 1])


defop("Gemm", family="linalg", summary="alpha * A' B' + beta * C on matrices, A' and B' optionally transposed.",
      inputs=("A", "B", "C?"),
      attrs={"alpha": ("float", 1.0), "beta": ("float", 1.0), "transA": ("int", 0), "transB": ("int", 0)},
      infer=_gemm_infer, ref=_gemm, sbp=_gemm_signatures, flops=gemm_flops)


# -- einsum ----------------------------------------------------------------------

ELLIPSIS = "."   # one label standing for "..."


def _labels(node: Node, term: str) -> list[str]:
    if term.count("...") > 1 or "." in term.replace("...", ""):
        raise node.error(f"term {term!r} of equation {node.attr('equation')!r} has a malformed ellipsis")
    labels = list(term.replace("...", ELLIPSIS))
    bad = [c for c in labels if c != ELLIPSIS and not (c.isascii() and c.isalpha())]
    if bad:
        raise node.error(f"equation {node.attr('equation')!r} has {bad[0]!r}; labels are ASCII letters")
    return labels


def _einsum_terms(node: Node) -> tuple[list[list[str]], list[str]]:
    """The input terms and the output term (explicit, or numpy's implicit one), ellipsis as one label."""
    eq = node.attr("equation").replace(" ", "")
    lhs, arrow, rhs = eq.partition("->")
    inputs = [_labels(node, t) for t in lhs.split(",")]
    if len(inputs) != len(node.inputs):
        raise node.error(f"equation {node.attr('equation')!r} has {len(inputs)} input terms, "
                         f"the node has {len(node.inputs)} inputs")
    used = [c for t in inputs for c in t]
    if arrow:
        output = _labels(node, rhs)
        extra = [c for c in output if c not in used]
        if extra or len(set(output)) != len(output):
            raise node.error(f"output term {rhs!r} of equation {node.attr('equation')!r} must name each label "
                             "of the inputs at most once")
    else:
        output = [ELLIPSIS] * (ELLIPSIS in used) + sorted(c for c in set(used) if used.count(c) == 1
                                                         and c != ELLIPSIS)
    return inputs, output


def _spell(term: list[str]) -> str:
    return "".join(term).replace(ELLIPSIS, "...")


def _einsum_infer(node: Node):
    if not node.inputs:
        raise node.error("takes at least one input")
    require_dtype(node, "numeric", range(len(node.inputs)))
    same_dtypes(node)
    inputs, output = _einsum_terms(node)
    t0 = in_type(node, 0)
    if any(v.type.shape is None for v in node.inputs):
        return [t0.with_shape(None)]
    dims: dict[str, Dim] = {}
    ellipses = []
    for term, v in zip(inputs, node.inputs):
        shape = v.type.shape
        named = len(term) - (ELLIPSIS in term)
        if len(shape) < named or ELLIPSIS not in term and len(shape) != named:
            raise node.error(f"term {_spell(term)!r} does not fit "
                             f"{quote_name(v.name)}: {v.type}")
        k = term.index(ELLIPSIS) if ELLIPSIS in term else len(term)
        rest = len(shape) - named
        ellipses.append(shape[k:k + rest])
        for c, d in zip(term[:k] + term[k + 1:], shape[:k] + shape[k + rest:]):
            try:
                dims[c] = broadcast_dim(dims.get(c, 1), d)
            except ValueError:
                raise node.error(f"label {c!r} is {dims[c]} in one operand and {d} in "
                                 f"{quote_name(v.name)}: {v.type}") from None
    batch = broadcast_shapes(node, ellipses)
    shape = []
    for c in output:
        shape.extend(batch if c == ELLIPSIS else [dims[c]])
    return [t0.with_shape(shape)]


def _einsum(node: Node, *arrays):
    inputs, output = _einsum_terms(node)
    equation = ",".join(map(_spell, inputs)) + "->" + _spell(output)   # explicit: no reliance on numpy's order
    return np.asarray(np.einsum(equation, *(widen(a) for a in arrays), optimize=True)).astype(arrays[0].dtype)


def _einsum_signatures(node: Node):
    """Per label (not the ellipsis, nor one a term repeats): every operand holding it split there
    (whole where its dim is 1 and broadcasts), the others whole; the output split there, or a
    partial sum when the label is summed over. A sum of products is linear in each operand: one
    partial with the others whole gives a partial sum."""
    sigs = replicated(node)
    if any(v.type.shape is None for v in node.inputs):
        return sigs
    inputs, output = _einsum_terms(node)
    ellipsis = [len(v.type.shape) - len(t) + 1 if ELLIPSIS in t else 0 for t, v in zip(inputs, node.inputs)]
    out_ellipsis = max(ellipsis, default=0)

    def axis_of_label(term, label, width):
        """The tensor axis of `label` in `term`, whose ellipsis spans `width` axes."""
        i = term.index(label)
        return i if ELLIPSIS not in term[:i] else i - 1 + width

    labels = sorted({c for t in inputs for c in t} - {ELLIPSIS})
    for c in labels:
        if any(t.count(c) > 1 for t in inputs):
            continue
        ins = []
        for t, v, width in zip(inputs, node.inputs, ellipsis):
            a = axis_of_label(t, c, width) if c in t else None
            ins.append(S(a) if a is not None and v.type.shape[a] != 1 else B)
        if all(s == B for s in ins):
            continue
        out = S(axis_of_label(output, c, out_ellipsis)) if c in output else P
        sigs.append(Signature(tuple(ins), (out,)))
    for i in range(len(node.inputs)):
        sigs.append(Signature(tuple(P if j == i else B for j in range(len(node.inputs))), (P,)))
    return sigs


defop("Einsum", family="linalg", summary="Einstein summation (numpy einsum), with ellipsis broadcasting.",
      inputs=("Inputs*",), outputs=("Output",), attrs={"equation": ("str", REQUIRED)},
      infer=_einsum_infer, ref=_einsum, sbp=_einsum_signatures)


# -- integer matmul ----------------------------------------------------------------

def _matmul_integer_infer(node: Node):
    a, b = in_type(node, 0), in_type(node, 1)
    for t, v in ((a, node.inputs[0]), (b, node.inputs[1])):
        if t.dtype.name not in ("i8", "u8"):
            raise node.error(f"input {quote_name(v.name)} must be an i8 or u8 tensor, got {t}")
    for i, operand in ((2, 0), (3, 1)):
        zp = node.input(i)
        if zp is not None and zp.type.dtype != in_type(node, operand).dtype:
            raise node.error(f"zero point {quote_name(zp.name)} is {zp.type}, expected "
                             f"{in_type(node, operand).dtype} like {quote_name(node.inputs[operand].name)}")
    return [TensorType(dtype("i32"), _matmul_shape(node, a, b))]


def _matmul_integer(node: Node, a, b, a_zero=None, b_zero=None):
    a = a.astype(np.int32)
    b = b.astype(np.int32)
    if a_zero is not None:
        # a per-row zero point of A has one value per row, i.e. per entry of A's second-to-last axis
        a = a - (a_zero.astype(np.int32).reshape(-1, 1) if a_zero.size > 1 else a_zero.astype(np.int32))
    if b_zero is not None:
        b = b - b_zero.astype(np.int32)
    return np.matmul(a, b).astype(np.int32)


defop("MatMulInteger", family="linalg", summary="Integer matmul of (A - a_zero_point) and (B - b_zero_point) in i32.",
      inputs=("A", "B", "a_zero_point?", "b_zero_point?"), infer=_matmul_integer_infer, ref=_matmul_integer)

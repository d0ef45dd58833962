"""SBP: how one logical tensor lies over a device mesh, as OneFlow describes it.

On each mesh axis a tensor is either Split along one of its own axes (S(k): member i of
the axis's group holds the i-th of n equal chunks), Broadcast (B: every member holds all of
it) or a Partial sum (P: the members' tensors add up to it). A tensor on a 2-D mesh has one
SBP per mesh axis, applied in mesh-axis order: (S(0), S(0)) on 2x2 cuts axis 0 in two, then
each half in two again.

An op declares the SBP signatures it can compute in (`sbp=` in its `defop`): for each, the
SBP of every input and output on one mesh axis. A signature on a mesh is one 1-D signature
per mesh axis. The builders here cover the shapes most ops share.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np

from flowc.errors import CompileError


@dataclass(frozen=True, order=True)
class Sbp:
    kind: str        # "S", "B" or "P"
    axis: int = -1   # the tensor axis of an S

    def __str__(self) -> str:
        return f"S({self.axis})" if self.kind == "S" else self.kind

    __repr__ = __str__

    @property
    def is_split(self) -> bool:
        return self.kind == "S"


B = Sbp("B")
P = Sbp("P")


def S(axis: int) -> Sbp:
    return Sbp("S", axis)


NdSbp = tuple  # tuple[Sbp, ...], one per mesh axis


@dataclass(frozen=True)
class Signature:
    """One way an op computes on one mesh axis: an Sbp per input (None for an omitted one)
    and per output."""
    ins: tuple[Sbp | None, ...]
    outs: tuple[Sbp, ...]

    def __str__(self) -> str:
        ins = ", ".join("-" if s is None else str(s) for s in self.ins)
        return f"{ins} -> {', '.join(map(str, self.outs))}"


_ONE = re.compile(r"\s*(?:S\s*\(\s*(-?\d+)\s*\)|(B)|(P))\s*")


def parse_sbp(text: str, mesh_rank: int | None = None) -> NdSbp:
    """"S(0)", "B", "P", or one per mesh axis: "(S(0), B)", "S(0),B", "[S(0), B]". A single SBP
    given for a mesh of several axes applies on every axis."""
    body = text.strip()
    if body[:1] in "([" and body[-1:] in ")]" and not re.fullmatch(r"S\s*\(\s*-?\d+\s*\)", body):
        body = body[1:-1]
    parts = [p for p in body.split(",")] if body.strip() else []
    out = []
    for part in parts:
        m = _ONE.fullmatch(part)
        if not m:
            raise CompileError(f"SBP {text!r}: {part.strip()!r} is not S(axis), B or P")
        out.append(S(int(m.group(1))) if m.group(1) is not None else B if m.group(2) else P)
    if not out:
        raise CompileError(f"SBP {text!r} is empty; write S(axis), B or P per mesh axis")
    if mesh_rank is not None:
        if len(out) == 1:
            out = out * mesh_rank
        elif len(out) != mesh_rank:
            raise CompileError(f"SBP {text!r} has {len(out)} parts for a mesh of {mesh_rank} axes")
    return tuple(out)


def format_sbp(nd: NdSbp) -> str:
    return str(nd[0]) if len(nd) == 1 else "(" + ", ".join(map(str, nd)) + ")"


# -- local shapes and pieces ------------------------------------------------------------

def local_shape(shape: Sequence[int], nd: NdSbp, mesh: Sequence[int]) -> tuple[int, ...] | None:
    """The shape each rank holds, or None when a split does not divide its axis evenly."""
    out = list(shape)
    for sbp, n in zip(nd, mesh):
        if sbp.is_split:
            if not 0 <= sbp.axis < len(out) or out[sbp.axis] % n:
                return None
            out[sbp.axis] //= n
    return tuple(out)


def local_piece(array: np.ndarray, nd: NdSbp, mesh: Sequence[int], coords: Sequence[int]) -> np.ndarray:
    """What the rank at `coords` holds of the logical `array`: splits taken in mesh-axis order,
    a partial sum kept whole by the first member of its group and zero on the others."""
    piece = np.asarray(array)
    for sbp, n, c in zip(nd, mesh, coords):
        if sbp.is_split:
            size = piece.shape[sbp.axis] // n
            piece = np.take(piece, range(c * size, (c + 1) * size), axis=sbp.axis)
        elif sbp.kind == "P" and c != 0:
            piece = np.zeros_like(piece)
    return np.array(piece, copy=False, order="C") if piece.ndim else piece   # ascontiguousarray makes 0-d 1-d


def assemble(pieces: dict[tuple[int, ...], np.ndarray], nd: NdSbp, mesh: Sequence[int]) -> np.ndarray:
    """The logical tensor from every rank's piece (keyed by coords): the inverse of `local_piece`,
    summing partial axes and concatenating split ones, last mesh axis first."""
    current = dict(pieces)
    for k in reversed(range(len(mesh))):
        merged: dict[tuple[int, ...], np.ndarray] = {}
        for coords in current:
            key = coords[:k]
            if key in merged:
                continue
            group = [current[key + (i,)] for i in range(mesh[k])]
            if nd[k].is_split:
                value = np.concatenate(group, axis=nd[k].axis)
            elif nd[k].kind == "P":
                value = sum(group[1:], group[0].copy())
            else:
                value = group[0]
            merged[key] = value
        current = merged
    return current[()]


def mesh_coords(mesh: Sequence[int]) -> list[tuple[int, ...]]:
    """Every rank's coordinates, in rank order (row-major)."""
    return [tuple(int(c) for c in idx) for idx in np.ndindex(*mesh)]


# -- signature builders ---------------------------------------------------------------

def replicated(node) -> list[Signature]:
    """Every input and output whole on every device: valid for any op."""
    return [Signature(tuple(None if v is None else B for v in node.inputs), tuple(B for _ in node.outputs))]


def operand_sbps(node, *sbps: Sbp | None) -> tuple[Sbp | None, ...]:
    """A signature's inputs: `sbps` for the node's first inputs, B for the rest, None for the
    omitted ones."""
    return tuple(None if v is None else sbps[i] if i < len(sbps) else B for i, v in enumerate(node.inputs))


def _rank(v) -> int | None:
    return None if v is None or v.type is None or v.type.shape is None else len(v.type.shape)


def broadcast_signatures(node, partial: Iterable[tuple[Sbp | None, ...]] = (),
                         whole: Iterable[int] = ()) -> list[Signature]:
    """An elementwise op with numpy broadcasting and one output: split any output axis, each
    input split on its matching axis (B where it broadcasts there). `partial` lists the input
    patterns that make a partial-sum output (linear ops: (P, P) for Add, (P, B) for Mul).
    Inputs listed in `whole` are not broadcast operands (Expand's shape) and stay B."""
    out = node.outputs[0]
    rank = _rank(out)
    sigs = replicated(node)
    if rank is None or len(node.outputs) != 1:
        return sigs
    whole = set(whole)
    for axis in range(rank):
        if out.type.shape[axis] == 1:
            continue
        ins = []
        for i, v in enumerate(node.inputs):
            if v is None or i in whole:
                ins.append(None if v is None else B)
                continue
            k = axis - (rank - _rank(v))
            ins.append(S(k) if k >= 0 and v.type.shape[k] != 1 else B)
        sigs.append(Signature(tuple(ins), (S(axis),)))
    for pattern in partial:
        sigs.append(Signature(tuple(pattern), (P,)))
    return sigs


def elementwise_signatures(node) -> list[Signature]:
    return broadcast_signatures(node)


def linear_signatures(node) -> list[Signature]:
    """Additive in every input at once (Add, Sub, Neg, Identity, Sum): partial sums stay partial."""
    return broadcast_signatures(node, [tuple(None if v is None else P for v in node.inputs)])


def scaling_signatures(node, linear_inputs: Sequence[int]) -> list[Signature]:
    """Linear in any one of `linear_inputs` when the others are whole (Mul: either side; Div:
    the numerator)."""
    patterns = []
    for i in linear_inputs:
        patterns.append(tuple(None if v is None else P if j == i else B for j, v in enumerate(node.inputs)))
    return broadcast_signatures(node, patterns)


def keep_axes_signatures(node, axes: Iterable[int], partial: bool = False,
                         extra_inputs: str = "B") -> list[Signature]:
    """One data input and one output of the same rank that are split alike on `axes` (the axes
    the op computes along independently: all but the normalised axis of a softmax, the leading
    axes of a layer norm). Other inputs (scale, bias) stay whole. `partial`: P in, P out."""
    sigs = replicated(node)
    rest = tuple(None if v is None else B for v in node.inputs[1:])
    for axis in axes:
        sigs.append(Signature((S(axis),) + rest, tuple(S(axis) for _ in node.outputs)))
    if partial:
        sigs.append(Signature((P,) + rest, tuple(P for _ in node.outputs)))
    return sigs


def reshape_signatures(node, partial: bool = True) -> list[Signature]:
    """A reshape (Reshape, Flatten, Squeeze, Unsqueeze) keeps a split when the axis it cuts
    starts at the same flat offset before and after: the products of the dims in front agree."""
    x, y = node.inputs[0], node.outputs[0]
    sigs = replicated(node)
    if not (x.type.is_static and y.type.is_static):
        return sigs
    rest = tuple(None if v is None else B for v in node.inputs[1:])
    xs, ys = x.type.shape, y.type.shape
    for a in range(len(xs)):
        if xs[a] == 1:
            continue
        prefix = int(np.prod(xs[:a], dtype=np.int64))
        for b in range(len(ys)):
            if ys[b] != 1 and int(np.prod(ys[:b], dtype=np.int64)) == prefix:
                sigs.append(Signature((S(a),) + rest, (S(b),)))
                break
    if partial:
        sigs.append(Signature((P,) + rest, (P,)))
    return sigs


def matmul_signatures(node) -> list[Signature]:
    """numpy matmul, both operands of rank 2 or more: batch axes split alike, rows of A, columns
    of B, or the contracted axis on both (a partial sum); a partial operand times a whole one."""
    a, b = node.inputs[0], node.inputs[1]
    sigs = replicated(node)
    ra, rb, ro = _rank(a), _rank(b), _rank(node.outputs[0])
    if ra is None or rb is None or ra < 2 or rb < 2:
        return sigs
    for axis in range(ro - 2):   # batch axes
        ka, kb = axis - (ro - ra), axis - (ro - rb)
        sa = S(ka) if ka >= 0 and a.type.shape[ka] != 1 else B
        sb = S(kb) if kb >= 0 and b.type.shape[kb] != 1 else B
        if sa != B or sb != B:
            sigs.append(Signature((sa, sb), (S(axis),)))
    sigs.append(Signature((S(ra - 2), B), (S(ro - 2),)))
    sigs.append(Signature((B, S(rb - 1)), (S(ro - 1),)))
    sigs.append(Signature((S(ra - 1), S(rb - 2)), (P,)))
    sigs.append(Signature((P, B), (P,)))
    sigs.append(Signature((B, P), (P,)))
    return sigs


def split_count(nd: NdSbp | None, axis: int, mesh: Sequence[int]) -> int:
    """Into how many pieces `nd` cuts tensor axis `axis` on `mesh`."""
    count = 1
    for sbp, n in zip(nd or (), mesh):
        if sbp.is_split and sbp.axis == axis:
            count *= n
    return count


def valid_nd_signatures(node, sigs: Sequence[Signature], mesh: Sequence[int]):
    """The 1-D signatures combined over the mesh's axes, keeping those whose every split divides
    evenly and whose partial sums are of float tensors. Yields (ins, outs) as tuples of NdSbp.

    An op whose local computation needs other attributes than the logical one (a grouped Conv
    split by groups runs `group / pieces` groups per device) names them with a `local_attrs`
    hook in its registry entry: local_attrs(node, ins, outs, mesh) -> the attributes each
    device runs with, or None where the combination cannot be computed (the groups do not
    divide); build_physical gives the device's node those attributes."""
    import itertools

    local_attrs = node.opdef.extra.get("local_attrs")
    values = list(node.inputs) + list(node.outputs)
    for combo in itertools.product(sigs, repeat=len(mesh)):
        ins = tuple(None if node.inputs[i] is None else tuple(s.ins[i] for s in combo)
                    for i in range(len(node.inputs)))
        outs = tuple(tuple(s.outs[o] for s in combo) for o in range(len(node.outputs)))
        ok = True
        for v, nd in zip(values, ins + outs):
            if v is None or nd is None:
                continue
            t = v.type
            if any(s.kind == "P" for s in nd) and not t.dtype.is_float:
                ok = False
                break
            if any(s.is_split for s in nd) and (not t.is_static or local_shape(t.shape, nd, mesh) is None):
                ok = False
                break
        if ok and local_attrs is not None and local_attrs(node, ins, outs, tuple(mesh)) is None:
            ok = False
        if ok:
            yield ins, outs


__all__ = ["B", "P", "S", "NdSbp", "Sbp", "Signature", "assemble", "broadcast_signatures", "elementwise_signatures",
           "format_sbp", "keep_axes_signatures", "linear_signatures", "local_piece", "local_shape", "matmul_signatures",
           "mesh_coords", "operand_sbps", "parse_sbp", "replicated", "reshape_signatures", "scaling_signatures",
           "split_count", "valid_nd_signatures"]

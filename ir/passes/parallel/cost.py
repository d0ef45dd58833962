"""The cost model: seconds of compute for an op on its local shapes, and of the boxing that
turns one SBP into another, both on the mesh's profiles.

Compute is a roofline: the larger of arithmetic time and memory time, plus the device's
per-step overhead; an op with no `flops` rule counts one operation per output element.
Collectives follow the ring algorithms NCCL and MPI use: an all-reduce moves 2 (n-1)/n of the
tensor over each link, an all-gather or reduce-scatter (n-1)/n of the whole, an all-to-all
(n-1)/n of the local piece, each with n-1 message latencies.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from ...sbp import B, NdSbp, local_shape
from ...ops.tensor import VIEW_OPS
from ...types import TensorType
from .mesh import Mesh


def nbytes(t: TensorType, shape: Sequence[int] | None = None) -> int:
    n = 1
    for d in (t.shape if shape is None else shape):
        n *= d
    return t.dtype.packed_bytes(n)


def compute_time(node, ins: Sequence[TensorType | None], outs: Sequence[TensorType], mesh: Mesh,
                 overhead: bool = True) -> float:
    """Seconds for `node` on one device, its operands at these (local) types; nothing for a view."""
    if node.op in VIEW_OPS:
        return 0.0
    flops_rule = node.opdef.flops
    if flops_rule is not None:
        flops = float(flops_rule(node, ins, outs))
    else:
        flops = float(sum(t.numel() for t in outs))
    moved = sum(nbytes(t) for t in list(ins) + list(outs) if t is not None)
    dev = mesh.device
    rate = dev.half_flops if dev.half_flops and outs and outs[0].dtype.name in ("f16", "bf16") else dev.flops
    return max(flops / rate, moved / dev.bandwidth) + (dev.overhead if overhead else 0.0)


@dataclass(frozen=True)
class Step:
    """One collective or local move of a boxing, on one mesh axis."""
    op: str                      # AllReduce, AllGather, ReduceScatter, AllToAll, LocalSlice, KeepFirst
    mesh_axis: int
    attrs: tuple = ()            # (name, value) pairs besides mesh_axis and size
    before: NdSbp = ()
    after: NdSbp = ()

    def __str__(self) -> str:
        extra = "".join(f", {k}={v}" for k, v in self.attrs)
        return f"{self.op}[mesh_axis={self.mesh_axis}{extra}]"


def boxing_steps(src: NdSbp, dst: NdSbp) -> list[Step]:
    """The moves from `src` to `dst`. Where one mesh axis changes and no later axis splits the
    same tensor axis, one collective does it; otherwise every axis from the first that differs
    is undone to B (last axis first) and rebuilt (first axis first), which keeps each move
    acting on the piece that mesh-axis order says it should."""
    src, dst = tuple(src), tuple(dst)
    if src == dst:
        return []
    differ = [k for k in range(len(src)) if src[k] != dst[k]]
    k0 = differ[0]
    if len(differ) == 1:
        step = _direct(src, dst, k0)
        if step is not None:
            return step
    steps: list[Step] = []
    current = list(src)
    for k in reversed(range(k0, len(src))):
        if current[k] != B:
            steps += _direct(tuple(current), tuple(current[:k] + [B] + current[k + 1:]), k)
            current[k] = B
    for k in range(k0, len(src)):
        if dst[k] != B:
            steps += _direct(tuple(current), tuple(current[:k] + [dst[k]] + current[k + 1:]), k)
            current[k] = dst[k]
    return steps


def _direct(src: NdSbp, dst: NdSbp, k: int) -> list[Step] | None:
    """One axis's move as one or two steps, or None when a later mesh axis splits a tensor axis
    that the move touches (the pieces would come out in the wrong order)."""
    a, b = src[k], dst[k]
    touched = {s.axis for s in (a, b) if s.is_split}
    if any(s.is_split and s.axis in touched for s in src[k + 1:]):
        return None
    if a.kind == "P" and b == B:
        return [Step("AllReduce", k, (), src, dst)]
    if a.kind == "P" and b.is_split:
        return [Step("ReduceScatter", k, (("axis", b.axis),), src, dst)]
    if a.is_split and b == B:
        return [Step("AllGather", k, (("axis", a.axis),), src, dst)]
    if a.is_split and b.is_split:
        return [Step("AllToAll", k, (("split_axis", b.axis), ("concat_axis", a.axis)), src, dst)]
    if a == B and b.is_split:
        return [Step("LocalSlice", k, (("axis", b.axis),), src, dst)]
    if a == B and b.kind == "P":
        return [Step("KeepFirst", k, (), src, dst)]
    if a.is_split and b.kind == "P":   # gather, then keep on the first member
        mid = src[:k] + (B,) + src[k + 1:]
        return [Step("AllGather", k, (("axis", a.axis),), src, mid), Step("KeepFirst", k, (), mid, dst)]
    raise AssertionError((src, dst))


def step_time(step: Step, t: TensorType, mesh: Mesh) -> float:
    """Seconds for one step on a tensor of logical type `t`: the link's share, and a copy on the
    device where the pieces are not contiguous blocks (a split off the leading axis is packed)."""
    n = mesh.shape[step.mesh_axis]
    link = mesh.links[step.mesh_axis]
    shape = local_shape(t.shape, step.before, mesh.shape)
    local = nbytes(t, shape)
    attrs = dict(step.attrs)
    axis = attrs.get("axis", attrs.get("split_axis"))
    strided = axis is not None and any(d > 1 for d in shape[:axis])
    copy = local / mesh.device.bandwidth
    if step.op == "AllReduce":
        return 2 * (n - 1) / n * local / link.bandwidth + 2 * (n - 1) * link.latency
    if step.op == "AllGather":
        return (n - 1) * local / link.bandwidth + (n - 1) * link.latency + (n * copy if strided else 0)
    if step.op == "ReduceScatter":
        return (n - 1) / n * local / link.bandwidth + (n - 1) * link.latency + (copy if strided else 0)
    if step.op == "AllToAll":
        return (n - 1) / n * local / link.bandwidth + (n - 1) * link.latency + 2 * copy
    if step.op == "LocalSlice":
        return copy / n + mesh.device.overhead
    return copy + mesh.device.overhead   # KeepFirst: a copy, or zeros


def boxing_time(src: NdSbp, dst: NdSbp, t: TensorType, mesh: Mesh) -> float:
    return sum(step_time(s, t, mesh) for s in boxing_steps(src, dst))


def boxing_bytes(src: NdSbp, dst: NdSbp, t: TensorType, mesh: Mesh) -> int:
    """Bytes one device sends for the boxing (ring algorithms)."""
    total = 0.0
    for s in boxing_steps(src, dst):
        n = mesh.shape[s.mesh_axis]
        local = nbytes(t, local_shape(t.shape, s.before, mesh.shape))
        total += {"AllReduce": 2 * (n - 1) / n * local, "AllGather": (n - 1) * local,
                  "ReduceScatter": (n - 1) / n * local, "AllToAll": (n - 1) / n * local}.get(s.op, 0)
    return int(total)


__all__ = ["Step", "boxing_bytes", "boxing_steps", "boxing_time", "compute_time", "nbytes", "step_time"]

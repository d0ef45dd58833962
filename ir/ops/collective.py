"""Collectives and the rank-local moves of boxing: the ops of a device's physical graph.

A parallel plan's physical graph is the same on every rank (SPMD); these ops change how a
tensor lies over one mesh axis (`mesh_axis`, whose group has `size` members). Their shape
rules work on local shapes. They have no single-device meaning: the numpy reference runs
them across every rank's graph at once (ir/passes/parallel/simulate.py), the runtime
through its communicator (runtime/include/flowc/comm.h).
"""
from __future__ import annotations

from ..registry import REQUIRED, defop
from .rules import axis_of, in_type

GROUP = {"mesh_axis": ("int", REQUIRED), "size": ("int", REQUIRED)}


def _needs_group(node, *arrays):
    raise node.error("a collective runs across every rank of its mesh axis: evaluate the physical "
                     "graphs together with ir.passes.parallel.simulate")


def _resized(grow: str | None, shrink: str | None):
    """Shape rule: the axis named by attribute `grow` gets `size` times larger, `shrink`'s smaller."""
    def infer(node):
        t = in_type(node, 0)
        n = node.attr("size")
        if n < 1:
            raise node.error(f"group size must be positive, got {n}")
        if t.shape is None:
            return [t]
        shape = list(t.shape)
        if shrink is not None:
            a = axis_of(node, len(shape), shrink)
            if not isinstance(shape[a], int) or shape[a] % n:
                raise node.error(f"axis {a} of {t} does not split into {n} equal parts")
            shape[a] //= n
        if grow is not None:
            a = axis_of(node, len(shape), grow)
            shape[a] = shape[a] * n if isinstance(shape[a], int) else shape[a]
        return [t.with_shape(shape)]
    return infer


def _collective(name: str, summary: str, grow: str | None = None, shrink: str | None = None) -> None:
    attrs = dict(GROUP)
    for key in {grow, shrink} - {None}:
        attrs[key] = ("int", REQUIRED)
    defop(name, family="collective", summary=summary, inputs=("X",), attrs=attrs,
          infer=_resized(grow, shrink), ref=_needs_group, onnx=False)


_collective("AllReduce", "Partial sums to the whole: every member gets the sum over its group.")
_collective("AllGather", "Split to whole: the members' pieces joined along axis, in group order.", grow="axis")
_collective("ReduceScatter", "Partial sums to a split: member i gets the i-th piece of the sum along axis.",
            shrink="axis")
_collective("AllToAll", "One split to another: cut along split_axis, swap pieces, join along concat_axis.",
            grow="concat_axis", shrink="split_axis")
_collective("LocalSlice", "Whole to split, with no communication: member i keeps the i-th piece along axis.",
            shrink="axis")
_collective("KeepFirst", "Whole to partial sums, with no communication: the first member keeps the "
            "tensor, the others hold zeros.")

"""Collectives and the rank-local moves of boxing: the ops of a device's physical graph.

A parallel plan's physical graph is the same on every rank (SPMD); these ops change how a
tensor lies over one mesh axis (`mesh_axis`, whose group has `size` members). Their shape
rules work on local shapes. They have no single-device meaning: the numpy reference runs
them across every rank's graph at once (ir/passes/parallel/simulate.py), the runtime
through its communicator (runtime/include/flowc/comm.h). `Boxing`, at the end, is the logical
graph's view of a whole boxing: one node per value and target SBP, identity on one device.
"""
from __future__ import annotations

from flowc.errors import CompileError, quote_name

from ..registry import REQUIRED, defop
from ..sbp import format_sbp, parse_sbp
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


# -- the logical view ------------------------------------------------------------------------
# In a graph annotated with a plan (ir/passes/parallel/annotate.py) the whole boxing of one
# value to one SBP is a single Boxing node: the same tensor, laid out anew over the mesh.

def _boxing_infer(node):
    layouts = {}
    for key in ("from", "to"):
        try:
            layouts[key] = parse_sbp(node.attr(key))
        except CompileError as e:
            raise node.error(f"attribute {key!r}: {e}") from None
    if len(layouts["from"]) != len(layouts["to"]):
        raise node.error(f"from={node.attr('from')!r} and to={node.attr('to')!r} name different meshes")
    x = node.inputs[0]
    if x.sbp is not None and tuple(x.sbp) != layouts["from"]:
        raise node.error(f"boxes from {node.attr('from')}, but its input {quote_name(x.name)} lies as "
                         f"{format_sbp(x.sbp)}")
    return [in_type(node, 0)]


defop("Boxing", family="boxing", inputs=("X",),
      summary="A tensor moved from one SBP to another: the collectives in `steps`, one after another. "
              "The same tensor on one device.",
      attrs={"from": ("str", REQUIRED), "to": ("str", REQUIRED), "steps": ("strs", ())},
      infer=_boxing_infer, ref=lambda node, x: x, sym=lambda node: [node.inputs[0].sym], storage=True, onnx=False)

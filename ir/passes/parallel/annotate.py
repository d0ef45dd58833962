"""A plan drawn on the logical graph: what `flowc viz --devices N` shows and the IR text prints.

`annotate(plan)` copies the plan's graph and records on every value the SBP it is produced
in (`%h: f32[8,512] @ S(1)`). Where a consumer reads a value in another SBP, a `Boxing` node
(ir/ops/collective.py) stands on the edge, naming the collectives that the physical graph runs
there; one per value and target SBP, shared by every consumer that reads that SBP, placed
before the first of them. A hinted value is boxed to its hint first, and consumers read it
from there; graph outputs leave whole (B) under their own names. Constants need no boxing,
since the compiler cuts them for each device: a constant read in several SBPs becomes one
constant per SBP (`w`, `w.S1`), sharing its data.

The result is the same computation on one device (a Boxing is the identity there), so
`ir.run` gives the original graph's outputs.
"""
from __future__ import annotations

from ...graph import Graph, Value
from ...sbp import B, NdSbp, format_sbp
from .cost import boxing_steps
from .search import Plan


def annotate(plan: Plan) -> Graph:
    """The plan's graph, copied, with every value's `sbp` set and Boxing nodes on the edges
    where a value changes SBP."""
    src, mesh = plan.graph, plan.mesh.shape
    whole = (B,) * len(mesh)
    g = src.copy()
    copy_of: dict[Value, Value] = dict(zip(src.values(), g.values()))
    copied_nodes, g.nodes = g.nodes, []
    boxed: dict[tuple[Value, NdSbp], Value] = {}    # (original value, SBP) -> the value in that SBP

    def box(value: Value, original: Value, src_sbp: NdSbp, dst: NdSbp) -> Value:
        steps = tuple(_step_text(s, mesh) for s in boxing_steps(src_sbp, dst))
        node = g.add_node("Boxing", [value], attrs={"from": format_sbp(src_sbp), "to": format_sbp(dst),
                                                    "steps": steps},
                          output_names=[g.fresh_name(f"{original.name}.{_suffix(dst)}")])
        node.outputs[0].sbp = dst
        return node.outputs[0]

    def constant(c: Value, nd: NdSbp) -> Value:
        if (c, nd) not in boxed:
            first = copy_of[c]
            if first.sbp is None:
                first.sbp = nd
                boxed[(c, nd)] = first
            else:
                cut = g.add_const(first.const, g.fresh_name(f"{c.name}.{_suffix(nd)}"), first.type)
                cut.sbp = nd
                boxed[(c, nd)] = cut
        return boxed[(c, nd)]

    def seen(v: Value) -> Value:
        """`v` as its consumers read it: a hinted value boxed from how it is produced to its hint."""
        nd = plan.seen(v)
        if (v, nd) not in boxed:
            boxed[(v, nd)] = box(copy_of[v], v, plan.held(v), nd)
        return boxed[(v, nd)]

    def read(v: Value, nd: NdSbp) -> Value:
        if v.is_const:
            return constant(v, nd)
        if nd == plan.seen(v):
            return seen(v)
        if (v, nd) not in boxed:
            boxed[(v, nd)] = box(seen(v), v, plan.seen(v), nd)
        return boxed[(v, nd)]

    def produced(v: Value, nd: NdSbp) -> None:
        copy_of[v].sbp = nd
        if plan.seen(v) == nd:   # a hinted value is read from its hint, whatever a consumer wants
            boxed[(v, nd)] = copy_of[v]

    for v in src.inputs:
        produced(v, plan.held(v))
    for c in src.constants:
        if c in src.outputs:
            constant(c, whole)   # an output constant keeps its name in B
    for node, new in zip(src.nodes, copied_nodes):
        cand = plan.chosen(node)
        new.inputs = [None if v is None else read(v, nd) for v, nd in zip(node.inputs, cand.ins)]
        g.nodes.append(new)
        for v, nd in zip(node.outputs, cand.outs):
            produced(v, nd)
    for c in src.constants:
        if copy_of[c].sbp is None:   # read by no one
            copy_of[c].sbp = whole

    outputs = []
    for v in src.outputs:
        out = copy_of[v] if v.producer is None and not v.is_const else read(v, whole)   # inputs arrive whole
        if out is not copy_of[v]:   # the boxed value takes the output's name
            g.rename(copy_of[v], g.fresh_name(f"{v.name}.{_suffix(copy_of[v].sbp)}"))
            g.rename(out, v.name)
        outputs.append(out)
    g.outputs = outputs
    return g


def _step_text(step, mesh: tuple[int, ...]) -> str:
    """A boxing step as the physical graph's collective op reads: `AllGather[mesh_axis=0, size=4, axis=1]`."""
    attrs = [("mesh_axis", step.mesh_axis), ("size", mesh[step.mesh_axis])] + list(step.attrs)
    return f"{step.op}[" + ", ".join(f"{k}={v}" for k, v in attrs) + "]"


def _suffix(nd: NdSbp) -> str:
    """An SBP as a name suffix: S0, B, S0_B."""
    return "_".join(str(s).replace("(", "").replace(")", "") for s in nd)


__all__ = ["annotate"]

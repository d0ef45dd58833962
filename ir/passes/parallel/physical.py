"""From a plan to what each device runs: one physical graph, the same on every rank (SPMD).

Each value gets its local shape; boxing becomes collective ops (ir/ops/collective.py) on the
edges where a producer's SBP differs from what a consumer reads; constants are cut for each
rank at compile time, so the graph holds rank 0's pieces and `rank_constants(r)` gives any
rank's. Graph inputs arrive whole on every rank and the outputs leave whole. An op whose
shape operand names its output shape (`shape_input` in its registry entry: Reshape, Expand)
reads the local shape instead; one whose attributes change with the pieces it gets
(`local_attrs`: a grouped Conv split by groups) runs with the attributes that hook gives.

`annotate.py` draws the same plan on the logical graph instead: every value's SBP recorded
and a Boxing node where a value changes SBP, which is what `flowc viz` shows.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from flowc.errors import CompileError, describe_node, quote_name

from ...graph import Graph, Value
from ...sbp import B, NdSbp, format_sbp, local_piece, local_shape, mesh_coords
from ...types import TensorType
from .cost import boxing_steps
from .search import Plan


@dataclass
class PhysicalGraph:
    graph: Graph                          # rank 0's constants; the same ops on every rank
    mesh: tuple[int, ...]
    pieces: dict[str, tuple[np.ndarray, NdSbp]] = field(default_factory=dict)   # const name -> (logical, SBP)
    stored: list[dict[str, np.ndarray]] | None = None   # read back from an artifact: each rank's constants

    @property
    def ranks(self) -> int:
        return int(np.prod(self.mesh))

    def rank_constants(self, rank: int) -> dict[str, np.ndarray]:
        """Every constant's data on `rank` (row-major coordinates of the mesh)."""
        if self.stored is not None:
            return self.stored[rank]
        coords = mesh_coords(self.mesh)[rank]
        out = {}
        for c in self.graph.constants:
            if c.name in self.pieces:
                full, nd = self.pieces[c.name]
                out[c.name] = local_piece(full, nd, self.mesh, coords)
            else:
                out[c.name] = c.const
        return out


def build_physical(plan: Plan) -> PhysicalGraph:
    graph, mesh = plan.graph, plan.mesh.shape
    phys = Graph(graph.name)
    out = PhysicalGraph(phys, mesh)
    origin = mesh_coords(mesh)[0]
    held: dict[Value, Value] = {}                      # logical value -> its physical value as produced
    boxed: dict[tuple[Value, NdSbp], Value] = {}       # (logical value, SBP) -> physical value in that SBP

    for v in graph.inputs:
        held[v] = phys.add_input(v.name, v.type)
        if v not in plan.hints:
            boxed[(v, plan.held(v))] = held[v]

    def constant(c: Value, nd: NdSbp) -> Value:
        key = (c, nd)
        if key not in boxed:
            name = c.name if all(s.kind == "B" for s in nd) else phys.fresh_name(f"{c.name}.{_suffix(nd)}")
            value = phys.add_const(local_piece(c.const, nd, mesh, origin), name)
            if name != c.name:
                out.pieces[name] = (c.const, nd)
            boxed[key] = value
        return boxed[key]

    def box(v: Value, start: Value, src: NdSbp, dst: NdSbp) -> Value:
        """`start` (logical `v` in `src`) moved to `dst` by the collectives of its boxing."""
        for step in boxing_steps(src, dst):
            node = phys.add_node(step.op, [start], attrs={"mesh_axis": step.mesh_axis,
                                                          "size": mesh[step.mesh_axis], **dict(step.attrs)},
                                 output_names=[phys.fresh_name(f"{v.name}.{_suffix(step.after)}")])
            start = node.outputs[0]
        return start

    def read(v: Value, nd: NdSbp) -> Value:
        """`v` as the SBP `nd`, boxing inserted once per (value, SBP)."""
        if v.is_const:
            return constant(v, nd)
        key = (v, nd)
        if key not in boxed:
            seen = (v, plan.seen(v))
            if seen not in boxed:   # a hinted value: box from how it is produced to the hint
                boxed[seen] = box(v, held[v], plan.held(v), plan.hints[v])
            boxed[key] = box(v, boxed[seen], plan.seen(v), nd)
        return boxed[key]

    for node in graph.nodes:
        cand = plan.chosen(node)
        shape_input = node.opdef.extra.get("shape_input")
        local_attrs = node.opdef.extra.get("local_attrs")
        attrs = node.attrs if local_attrs is None else local_attrs(node, cand.ins, cand.outs, mesh)
        inputs = []
        for i, (v, nd) in enumerate(zip(node.inputs, cand.ins)):
            if v is None:
                inputs.append(None)
            elif i == shape_input:
                local = local_shape(node.outputs[0].type.shape, cand.outs[0], mesh)
                inputs.append(phys.add_const(np.array(local, np.int64), phys.fresh_name(f"{v.name}.local")))
            else:
                inputs.append(read(v, nd))
        new = phys.add_node(node.op, inputs, num_outputs=len(node.outputs), attrs=attrs, name=node.name,
                            output_names=[v.name for v in node.outputs])
        for v, pv, nd in zip(node.outputs, new.outputs, cand.outs):
            want = local_shape(v.type.shape, nd, mesh)
            if pv.type.shape != want:
                raise CompileError(f"{describe_node(node)}: signature {cand.signature()} gives {quote_name(v.name)} "
                                   f"the local shape {list(pv.type.shape)} where {list(want)} was planned "
                                   "(flowc bug in the op's SBP rule)")
            held[v] = pv
            if v not in plan.hints:
                boxed[(v, nd)] = pv

    whole = (B,) * len(mesh)
    phys.outputs = []
    for v in graph.outputs:
        # a graph input given back arrives whole on every rank, whatever its consumers read it as
        pv = held[v] if v in held and v.producer is None else read(v, whole)
        if pv.name != v.name and not v.is_const and v.producer is not None:
            phys.rename(held[v], phys.fresh_name(f"{v.name}.local"))   # the output keeps the model's name
            phys.rename(pv, v.name)
        phys.outputs.append(pv)
    return out


def _suffix(nd: NdSbp) -> str:
    return format_sbp(nd).replace(" ", "").replace("(", "").replace(")", "")


def local_type(t: TensorType, nd: NdSbp, mesh: tuple[int, ...]) -> TensorType:
    return t.with_shape(local_shape(t.shape, nd, mesh))

"""Mesh artifacts for target cpu: one project that every rank of a device mesh runs (SPMD).

A parallel plan's physical graph (ir/passes/parallel) is the same on every rank but for the
data of its constants. The graph is lowered once per distinct set of rank constants, since
lowering may fold a constant into code (a one-element bias becomes a literal of a fused loop)
or into another constant (decompose); the lowered graphs must have the same nodes, tensors
and weight layout. They are emitted on one order and one memory plan, and each rank's
constants go to its own weights file, `weights.r<rank>.bin`, at the same offsets. A step
whose code is the same on every rank (nearly all) is written once; one whose code differs
switches on the rank (`ctx->rank`) between the variants, so the code never guesses.
"""
from __future__ import annotations

import hashlib
from typing import Sequence

import numpy as np

from flowc.errors import CompileError, quote_name
from flowc.ir.graph import Graph
from flowc.ir.infer import infer_graph
from flowc.ir.passes.parallel import PhysicalGraph


def weights_file(rank: int) -> str:
    return f"weights.r{rank}.bin"


def rank_graphs(physical: PhysicalGraph) -> tuple[list[list[int]], list[Graph]]:
    """The ranks grouped by equal constants, and for each group the physical graph holding
    its constants (inferred again, so that known contents follow the data)."""
    graph = physical.graph
    groups: dict[tuple, list[int]] = {}
    data: dict[tuple, dict] = {}
    for rank in range(physical.ranks):
        consts = physical.rank_constants(rank)
        key = tuple(_digest(consts[c.name]) for c in graph.constants if consts[c.name] is not c.const)
        groups.setdefault(key, []).append(rank)
        data.setdefault(key, consts)
    graphs = []
    for key in groups:
        g = graph.copy()
        for c in g.constants:
            array = np.asarray(data[key][c.name])
            if array.shape != tuple(c.type.shape) or array.dtype != c.type.dtype.np:
                raise CompileError(f"constant {quote_name(c.name)} is {array.dtype}{list(array.shape)} on ranks "
                                   f"{groups[key]} and {c.type} on rank 0; a mesh model needs the same shapes on "
                                   "every rank (flowc bug in the physical graph)")
            c.const = array
        graphs.append(infer_graph(g))
    return list(groups.values()), graphs


def _digest(array) -> bytes:
    a = np.ascontiguousarray(array)
    return hashlib.blake2b(a.tobytes(), digest_size=16).digest() + str((a.dtype, a.shape)).encode()


def check_same_structure(graphs: Sequence[Graph], groups: Sequence[Sequence[int]]) -> None:
    """The lowered graphs of every rank run the same ops on tensors of the same names and types."""
    first = graphs[0]
    for g, ranks in zip(graphs[1:], groups[1:]):
        if len(g.nodes) != len(first.nodes):
            raise _differs(f"{len(g.nodes)} steps on rank {ranks[0]}, {len(first.nodes)} on rank {groups[0][0]}")
        for n0, n1 in zip(first.nodes, g.nodes):
            if n0.op != n1.op or [(v.name, v.type) for v in n0.outputs] != [(v.name, v.type) for v in n1.outputs]:
                raise _differs(f"node {quote_name(n1.name or n1.outputs[0].name)} ({n1.op}) on rank {ranks[0]} "
                               f"is {quote_name(n0.name or n0.outputs[0].name)} ({n0.op}) on rank {groups[0][0]}")


def check_same_weights(weights: Sequence, groups: Sequence[Sequence[int]]) -> None:
    """Every rank's weights file has the same constants at the same offsets."""
    first = weights[0]
    for w, ranks in zip(weights[1:], groups[1:]):
        if w.names != first.names or [len(c) for c in w.chunks] != [len(c) for c in first.chunks]:
            raise _differs(f"the weights of rank {ranks[0]} are not laid out as rank {groups[0][0]}'s")


def _differs(what: str) -> CompileError:
    return CompileError(f"mesh model: the lowered graph differs between ranks ({what}); flowc bug: lowering "
                        "must not depend on the data a rank's constants hold")


def merge_steps(variants: Sequence[Sequence[tuple[str, list[str]]]], groups: Sequence[Sequence[int]]
                ) -> list[tuple[str, list[str]]]:
    """One step list for every rank: a step's body where all variants agree, else a switch on
    the rank between the distinct bodies (the most common one as the default)."""
    merged = []
    for steps in zip(*variants):
        name = steps[0][0]
        bodies: dict[tuple[str, ...], list[int]] = {}
        for (_, body), ranks in zip(steps, groups):
            bodies.setdefault(tuple(body), []).extend(ranks)
        if len(bodies) == 1:
            merged.append((name, list(steps[0][1])))
            continue
        ordered = sorted(bodies.items(), key=lambda kv: (-len(kv[1]), min(kv[1])))
        lines = ["switch (ctx->rank) {"]
        for i, (body, ranks) in enumerate(reversed(ordered)):
            last = i == len(ordered) - 1
            label = "default:" if last else " ".join(f"case {r}:" for r in sorted(ranks))
            lines += [f"  {label} {{"] + ["    " + line for line in body] + ["    break;", "  }"]
        merged.append((name, lines + ["}"]))
    return merged

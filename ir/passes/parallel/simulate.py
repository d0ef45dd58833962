"""Run a physical graph on every rank of its mesh at once, in numpy: the reference for plans.

Ranks step through the same graph together; an ordinary op runs its numpy reference on each
rank's operands, a collective combines the operands of each group of its mesh axis. The
outputs of every rank are returned, so a test can check that each one equals the
single-device reference.
"""
from __future__ import annotations

import numpy as np

from flowc.errors import CompileError, describe_node

from ...interpreter import check_inputs
from ...ops.rules import widen
from ...sbp import mesh_coords
from .physical import PhysicalGraph


def simulate(physical: PhysicalGraph, feeds: dict[str, np.ndarray]) -> list[dict[str, np.ndarray]]:
    """Each rank's outputs by name, for the same (whole) inputs on every rank."""
    graph, mesh = physical.graph, physical.mesh
    coords = mesh_coords(mesh)
    feeds = check_inputs(graph, feeds)
    envs: list[dict[int, np.ndarray]] = []
    for rank in range(len(coords)):
        data = physical.rank_constants(rank)
        env = {id(c): data[c.name] for c in graph.constants}
        env.update({id(v): np.asarray(feeds[v.name]) for v in graph.inputs})
        envs.append(env)
    for node in graph.nodes:
        args = [[None if v is None else env[id(v)] for v in node.inputs] for env in envs]
        if node.opdef.family == "collective":
            results = _collective(node, [a[0] for a in args], coords, mesh)
        else:
            with np.errstate(all="ignore"):
                results = [node.opdef.ref(node, *a) for a in args]
        for env, result in zip(envs, results):
            result = result if isinstance(result, (tuple, list)) else (result,)
            for v, r in zip(node.outputs, result):
                r = np.asarray(r)
                if r.dtype != v.type.dtype.np or tuple(r.shape) != tuple(v.type.shape):
                    raise CompileError(f"{describe_node(node)}: gave {r.dtype}{list(r.shape)} for {v!r} (flowc bug)")
                env[id(v)] = r
    return [{v.name: env[id(v)] for v in graph.outputs} for env in envs]


def _collective(node, xs: list[np.ndarray], coords, mesh) -> list[np.ndarray]:
    k = node.attr("mesh_axis")
    n = mesh[k]
    out: list[np.ndarray | None] = [None] * len(xs)
    groups: dict[tuple, list[int]] = {}
    for rank, c in enumerate(coords):
        groups.setdefault(c[:k] + c[k + 1:], []).append(rank)
    for members in groups.values():
        members.sort(key=lambda r: coords[r][k])
        parts = [xs[r] for r in members]
        for i, r in enumerate(members):
            out[r] = _one(node, parts, i, n)
    return out


def _one(node, parts: list[np.ndarray], i: int, n: int) -> np.ndarray:
    """Member i's result of `node` on the group's operands, summing in group order."""
    op = node.op
    if op == "AllReduce":
        return _sum(parts)
    if op == "AllGather":
        return np.concatenate(parts, axis=node.attr("axis"))
    if op == "ReduceScatter":
        return np.array_split(_sum(parts), n, axis=node.attr("axis"))[i]
    if op == "AllToAll":
        split, concat = node.attr("split_axis"), node.attr("concat_axis")
        return np.concatenate([np.array_split(p, n, axis=split)[i] for p in parts], axis=concat)
    if op == "LocalSlice":
        return np.ascontiguousarray(np.array_split(parts[i], n, axis=node.attr("axis"))[i])
    if op == "KeepFirst":
        return parts[i] if i == 0 else np.zeros_like(parts[i])
    raise CompileError(f"{describe_node(node)}: the simulator does not know collective {op}")


def _sum(parts: list[np.ndarray]) -> np.ndarray:
    """The members' parts summed in group order; half floats in f32, rounded once at the end,
    as the communicators sum them."""
    total = widen(parts[0]).copy()
    for p in parts[1:]:
        total = total + widen(p)
    return total.astype(parts[0].dtype)

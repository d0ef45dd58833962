"""Plans forced or searched, run on every rank in the simulator, checked against the one-device graph.

Partial sums made from whole tensors (constants read as P, and KeepFirst in boxing) are shared
out among the members of each group at random, where the physical graph keeps them whole on the
first member and zeros elsewhere: so that an op declared linear where it is not gives a wrong sum
instead of passing by luck, as relu(x) + relu(0) is relu(x) but relu(x/2 + e) + relu(x/2 - e) is not.
"""
from __future__ import annotations

import numpy as np

from flowc import ir
from flowc.ir.passes.parallel import Plan, build_physical, candidates_for, make_mesh, parse_hints, simulate
from flowc.ir.sbp import local_piece, mesh_coords

RTOL, ATOL = 1e-5, 1e-6   # f32, sums reordered: ATOL per unit of the output's largest magnitude


def random_partial_pieces(full: np.ndarray, nd, mesh, seed: int) -> list[np.ndarray]:
    """Each rank's piece of `full` laid out as `nd`: splits as `local_piece` takes them, each
    partial sum shared out as piece/n plus noise that adds up to zero over the group."""
    out = []
    for coords in mesh_coords(mesh):
        piece = np.asarray(full)
        for k, (sbp, n, c) in enumerate(zip(nd, mesh, coords)):
            if sbp.is_split:
                size = piece.shape[sbp.axis] // n
                piece = np.take(piece, range(c * size, (c + 1) * size), axis=sbp.axis)
            elif sbp.kind == "P":   # the same shares wherever the piece is the same (B stays B)
                pieces_so_far = [c for s, c in zip(nd[:k], coords[:k]) if s.is_split]
                noise = np.random.default_rng([seed, k, *pieces_so_far]).standard_normal((n,) + piece.shape)
                noise -= noise.mean(axis=0)
                scale = np.abs(piece).astype(np.float64) + 0.5
                piece = (piece / n + noise[c] * scale).astype(piece.dtype)
        out.append(np.ascontiguousarray(piece))
    return out


def physical_with_random_partials(plan: Plan, seed: int = 0):
    """build_physical(plan), with each partial sum made from a whole tensor (a constant read as
    P, a KeepFirst of boxing) shared out at random over its group; constants are stored per rank."""
    phys = build_physical(plan)
    ranks = [dict() for _ in range(phys.ranks)]
    for i, c in enumerate(phys.graph.constants):
        full, nd = phys.pieces.get(c.name, (c.const, None))
        if nd is not None and any(s.kind == "P" for s in nd):
            pieces = random_partial_pieces(full, nd, phys.mesh, seed * 1000 + i)
        elif nd is not None:
            pieces = [local_piece(full, nd, phys.mesh, coords) for coords in mesh_coords(phys.mesh)]
        else:
            pieces = [c.const] * phys.ranks
        for r, piece in enumerate(pieces):
            ranks[r][c.name] = piece
    coords = mesh_coords(phys.mesh)
    for i, node in enumerate(phys.graph.nodes):
        if node.op != "KeepFirst":
            continue
        # member i of each group keeps x * w_i, the w_i adding up to one (the same on every group,
        # so that what is whole on another mesh axis stays whole)
        k, n, t = node.attr("mesh_axis"), node.attr("size"), node.outputs[0].type
        share = phys.graph.add_const(np.ones(t.shape, t.dtype.np), phys.graph.fresh_name(f"{node.outputs[0].name}.w"))
        node.op, node.inputs, node.attrs = "Mul", [node.inputs[0], share], {}
        noise = np.random.default_rng([seed, i]).standard_normal((n,) + t.shape)
        for r, c in enumerate(coords):
            ranks[r][share.name] = (1 / n + noise[c[k]] - noise.mean(axis=0)).astype(t.dtype.np)
    phys.stored = ranks
    return phys


def forced_plan(graph: ir.Graph, mesh, choice: dict | None = None, hints=None, cands: dict | None = None) -> Plan:
    """The plan taking candidate `choice[node]` (default: the replicated one, 0) for every node;
    `cands`: the nodes' candidates on `mesh`, where already known."""
    mesh = make_mesh(tuple(mesh)) if not hasattr(mesh, "shape") else mesh
    cands = cands or {n: candidates_for(n, mesh) for n in graph.nodes}
    picked = {n: (choice or {}).get(n, 0) for n in graph.nodes}
    return Plan(graph, mesh, cands, picked, parse_hints(graph, hints, mesh))


def assert_ranks_match(plan: Plan, feeds: dict, want: dict | None = None, seed: int = 0,
                       rtol: float = RTOL, atol: float = ATOL) -> None:
    """Every rank's outputs under `plan` equal the one-device graph's (`want`, or ir.run's)."""
    want = ir.run(plan.graph, feeds) if want is None else want
    phys = physical_with_random_partials(plan, seed)
    for rank, got in enumerate(simulate(phys, feeds)):
        for name, value in want.items():
            g = got[name]
            assert g.dtype == value.dtype and g.shape == value.shape, (rank, name, g.dtype, g.shape, value.shape)
            if value.dtype.kind in "biu":
                np.testing.assert_array_equal(g, value, err_msg=f"rank {rank} output {name}")
            else:
                scale = max(1.0, float(np.max(np.abs(value), initial=0.0, where=np.isfinite(value))))
                np.testing.assert_allclose(g.astype(np.float64), value.astype(np.float64), rtol=rtol,
                                           atol=atol * scale, err_msg=f"rank {rank} output {name}")

"""Boxing: every change of SBP of a 3-D tensor, on meshes 2, 4, 2x2 and 2x3, through `boxing_steps`
and the collectives of the simulator, leaves each rank the piece the target SBP says it holds."""
import itertools

import numpy as np
import pytest

from flowc import ir
from flowc.ir.passes.parallel import boxing_steps, candidates_for, make_mesh, simulate
from flowc.ir.sbp import B, P, S, assemble, local_piece, local_shape, mesh_coords

from plan_check import assert_ranks_match, forced_plan, physical_with_random_partials

ONE = [S(0), S(1), S(2), B, P]
MESHES = [(2,), (4,), (2, 2), (2, 3)]
SHAPE = (12, 12, 12)


def two_identities(shape):
    """c -> Identity "src" -> Identity "dst" -> output: the first produces the source SBP, the
    second reads the target one, so the plan boxes between them."""
    g = ir.Graph("boxing")
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    c = g.add_const(x, "c")
    first = g.add_node("Identity", [c], name="src", output_names=["a"])
    second = g.add_node("Identity", first.outputs, name="dst", output_names=["b"])
    g.outputs = [second.outputs[0]]
    return g, x, first, second


@pytest.mark.parametrize("mesh_shape", MESHES, ids=lambda m: "x".join(map(str, m)))
def test_every_pair_of_sbps(mesh_shape):
    mesh = make_mesh(mesh_shape)
    graph, x, first, second = two_identities(SHAPE)
    cands = {n: candidates_for(n, mesh) for n in (first, second)}
    making = {c.outs[0]: j for j, c in enumerate(cands[first]) if c.ins == c.outs}    # Identity: S -> S, P -> P
    reading = {c.ins[0]: j for j, c in enumerate(cands[second]) if c.ins == c.outs}
    layouts = list(itertools.product(ONE, repeat=len(mesh_shape)))
    assert set(making) == set(reading) == set(layouts)
    for src, dst in itertools.product(layouts, layouts):
        where = f"{src} -> {dst} on {mesh_shape}"
        plan = forced_plan(graph, mesh, {first: making[src], second: reading[dst]}, cands=cands)
        phys = physical_with_random_partials(plan, seed=hash((src, dst)) % 1000)
        boxed = next(n for n in phys.graph.nodes if n.name == "dst").inputs[0]
        steps = [n for n in phys.graph.nodes if n.opdef.family == "collective"]
        assert len(steps) >= len(boxing_steps(src, dst)), where
        phys.graph.outputs.append(boxed)
        ranks = simulate(phys, {})
        pieces = {c: r[boxed.name] for c, r in zip(mesh_coords(mesh_shape), ranks)}
        assert all(p.shape == local_shape(SHAPE, dst, mesh_shape) for p in pieces.values()), where
        np.testing.assert_allclose(assemble(pieces, dst, mesh_shape), x, rtol=1e-5, atol=1e-5, err_msg=where)
        if all(s.kind != "P" for s in dst):   # splits and copies are exact: each rank has its very piece
            for c, p in pieces.items():
                np.testing.assert_allclose(p, local_piece(x, dst, mesh_shape, c), rtol=1e-5, atol=1e-5,
                                           err_msg=f"{where}, rank {c}")
        for r in ranks:
            np.testing.assert_allclose(r["b"], x, rtol=1e-5, atol=1e-5, err_msg=where)


@pytest.mark.parametrize("mesh_shape", MESHES, ids=lambda m: "x".join(map(str, m)))
def test_uneven_splits_are_not_offered(mesh_shape):
    """On a tensor of 6x4x3 the layouts that do not divide have no candidate: the search can never
    ask for them."""
    graph, x, first, second = two_identities((6, 4, 3))
    offered = {c.outs[0] for c in candidates_for(first, make_mesh(mesh_shape))}
    for nd in itertools.product(ONE, repeat=len(mesh_shape)):
        assert (nd in offered) == (local_shape((6, 4, 3), nd, mesh_shape) is not None), nd


def test_one_collective_per_change_on_one_axis():
    """On a 1-D mesh each change is one collective (S to P: gather, then keep on one member)."""
    want = {("S", "B"): ["AllGather"], ("S", "S"): ["AllToAll"], ("P", "B"): ["AllReduce"],
            ("P", "S"): ["ReduceScatter"], ("B", "S"): ["LocalSlice"], ("B", "P"): ["KeepFirst"],
            ("S", "P"): ["AllGather", "KeepFirst"]}
    for a, b in itertools.product(ONE, ONE):
        ops = [s.op for s in boxing_steps((a,), (b,))]
        assert ops == ([] if a == b else want[a.kind, b.kind]), (a, b)


def test_steps_chain_from_source_to_target():
    for src, dst in itertools.product(itertools.product(ONE, repeat=2), repeat=2):
        steps = boxing_steps(src, dst)
        current = tuple(src)
        for s in steps:
            assert s.before == current and s.after[:s.mesh_axis] + s.after[s.mesh_axis + 1:] == \
                current[:s.mesh_axis] + current[s.mesh_axis + 1:], (src, dst, steps)
            current = s.after
        assert current == tuple(dst), (src, dst, steps)


@pytest.mark.parametrize("mesh_shape", [(2,), (2, 2)], ids=lambda m: "x".join(map(str, m)))
def test_hinted_values_are_boxed_to_the_hint(mesh_shape):
    """A graph input hinted to an SBP, read by a consumer in another: boxed to the hint first, then
    to what the consumer reads; every rank still computes the whole answer."""
    mesh = make_mesh(mesh_shape)
    g = ir.Graph("hinted")
    x = g.add_input("x", ir.tensor_type("f32", [4, 8, 12]))
    node = g.add_node("Identity", [x], name="id", output_names=["y"])
    g.outputs = [node.outputs[0]]
    feeds = {"x": np.random.default_rng(2).standard_normal((4, 8, 12)).astype(np.float32)}
    cands = {node: candidates_for(node, mesh)}
    for hint in itertools.product(ONE, repeat=len(mesh_shape)):
        for j in range(len(cands[node])):
            plan = forced_plan(g, mesh, {node: j}, hints={"x": hint}, cands=cands)
            assert plan.seen(x) == hint
            assert_ranks_match(plan, feeds, {"y": feeds["x"]}, seed=j)

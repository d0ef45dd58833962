"""split_projections: a fused projection cut by Split becomes one projection per part, so
that the search can split each by columns (Megatron's heads) instead of gathering it."""
import numpy as np

import flowc
from flowc.ir.passes import optimize
from flowc.ir.passes.parallel import make_mesh, search
from flowc.ir.passes.parallel.prepare import split_projections


def fused_qkv(batch: int = 2, seq: int = 4, d: int = 512):
    """x @ Wqkv + b, reshaped back to [batch, seq, 3d] as exporters write it, Split in three, each
    part through its own ReLU and row projection, the three summed."""
    rng = np.random.default_rng(0)
    b = flowc.GraphBuilder("qkv")
    x = b.input("x", "f32", [batch * seq, d])
    fused = b.matmul(x, (rng.standard_normal((d, 3 * d)) * 0.05).astype(np.float32)) \
        + rng.standard_normal(3 * d).astype(np.float32)
    fused = b.reshape(fused, np.array([batch, seq, 3 * d], np.int64))
    q, k, v = b.split(fused, axis=2, num_outputs=3, outputs=["q", "k", "v"])
    parts = [b.relu(t) @ (rng.standard_normal((d, d)) * 0.05).astype(np.float32) for t in (q, k, v)]
    b.output(parts[0] + parts[1] + parts[2], name="y")
    return optimize(b.build())


def test_parts_compute_what_the_fused_projection_did():
    graph = fused_qkv()
    x = np.random.default_rng(1).standard_normal((8, 512)).astype(np.float32)
    want = flowc.ir.run(graph, {"x": x})["y"]
    split = split_projections(graph.copy())
    flowc.ir.verify(split)
    assert [n.op for n in split.nodes].count("Split") == 0
    assert [n.op for n in split.nodes].count("MatMul") == 6
    assert {"q", "k", "v"} <= {v.name for n in split.nodes for v in n.outputs}   # hints still name them
    np.testing.assert_allclose(flowc.ir.run(split, {"x": x})["y"], want, rtol=1e-5, atol=1e-5)


def test_a_split_that_is_not_a_projection_is_left_alone():
    b = flowc.GraphBuilder("plain")
    x = b.input("x", "f32", [4, 6])
    lo, hi = b.split(x, axis=1, num_outputs=2)
    b.output(lo + hi, name="y")
    graph = optimize(b.build())
    assert [n.op for n in split_projections(graph.copy()).nodes] == [n.op for n in graph.nodes]


def test_the_search_splits_each_part_by_columns():
    """At 8 rows the weights dominate: every part's projection is column-split, the row projections
    after it row-split into partial sums, with no gather of the fused product."""
    graph = fused_qkv()
    plan = search(graph, make_mesh((4,)))
    assert graph is not plan.graph and any(n.op == "Split" for n in graph.nodes)   # the caller's graph is kept
    signatures = [plan.chosen(n).signature() for n in plan.graph.nodes if n.op == "MatMul"]
    assert signatures.count("B, S(1) -> S(1)") == 3 and signatures.count("S(2), S(0) -> P") == 3, signatures

"""The plans the search must find (issue 6, point 6), asserted on the signatures it picks:
Megatron-style tensor parallelism when the batch is small and the weights dominate, data
parallelism when the batch is large, the weights split when a per-device memory limit forces
it; each plan then runs on every rank in the simulator against the one-device graph.

The sizes make these the right answers under the cost model (cost.py, mesh.py), not just the
ones it happens to give. On CPU processes over shared memory (target "cpu") a device computes
50 GFLOP/s and reads 10 GB/s, and each step of a collective costs 5 us plus 5 GB/s:
- At 4 rows a GEMM is memory-bound: it streams its whole weight (1 to 4 MiB here, 100 to 400 us)
  for 4 rows of arithmetic. Splitting the weights n ways saves (n-1)/n of that stream; the one
  reduction per pair of GEMMs Megatron needs moves a few KiB (tens of us). Splitting the rows
  instead (sequence parallelism) saves no weight traffic.
- At 128 to 512 rows the same GEMMs are compute-bound (milliseconds): any split divides the
  arithmetic alike, so the plan that communicates least wins. Data parallelism moves nothing
  until the output is gathered; Megatron would reduce a [rows, hidden] activation per pair of
  GEMMs on top of the same output gather.
- A memory limit below the replicated weights leaves no data-parallel plan: the weights split.
The 2x4 case is two nodes of four H100s (target "cuda"): 60 TFLOP/s and 3 TB/s per device,
NVLink (450 GB/s, 3 us a step) within a node, InfiniBand (50 GB/s, 5 us) between the nodes.
"""
from collections import Counter
from functools import cache

import numpy as np
import pytest

import flowc
from flowc.ir.passes import optimize
from flowc.ir.passes.parallel import build_physical, make_mesh, search
from flowc.ir.sbp import S

from plan_check import assert_ranks_match

MIB = 2**20


def weights(rng, *shape):
    return rng.standard_normal(shape, dtype=np.float32) * np.float32(shape[0] ** -0.5)


def linear(b, rng, x, n_in, n_out, name):
    """x @ W + bias, the MatMul's output named `name` (what the tests look the node up by)."""
    return b.matmul(x, weights(rng, n_in, n_out), outputs=[name]) + weights(rng, n_out)


@cache
def mlp(batch: int, hidden: int = 512, ffn: int = 2048, layers: int = 1):
    """`layers` residual blocks x + (gelu(x @ W1 + b1) @ W2 + b2) on x [batch, hidden] (one
    block: no residual); the MatMuls are fc1.<i> and fc2.<i>."""
    rng = np.random.default_rng(batch)
    b = flowc.GraphBuilder("mlp")
    x = b.input("x", "f32", [batch, hidden])
    for i in range(layers):
        y = linear(b, rng, b.gelu(linear(b, rng, x, hidden, ffn, f"fc1.{i}")), ffn, hidden, f"fc2.{i}")
        x = y if layers == 1 else x + y
    b.output(x, name="y")
    return optimize(b.build())


@cache
def block(batch: int, seq: int, hidden: int = 256, heads: int = 4, ffn: int = 1024):
    """A post-LayerNorm transformer block: separate Q, K and V projections, heads reshaped and
    transposed, softmax attention, the output projection o, residual, LayerNorm, a GELU MLP
    (fc1, fc2), residual, LayerNorm."""
    rng = np.random.default_rng(batch * 100 + seq)
    b = flowc.GraphBuilder("block")
    x = b.input("x", "f32", [batch, seq, hidden])
    head = hidden // heads

    def split_heads(t):
        return b.transpose(b.reshape(t, np.array([batch, seq, heads, head], np.int64)), perm=[0, 2, 1, 3])

    def norm(t):
        return b.layer_normalization(t, 1 + weights(rng, hidden) / 10, weights(rng, hidden) / 10, axis=-1)

    q, k, v = (split_heads(linear(b, rng, x, hidden, hidden, n)) for n in "qkv")
    scores = b.softmax((q @ b.transpose(k, perm=[0, 1, 3, 2])) * np.float32(head ** -0.5), axis=-1)
    attended = b.reshape(b.transpose(scores @ v, perm=[0, 2, 1, 3]), np.array([batch, seq, hidden], np.int64))
    h = norm(x + linear(b, rng, attended, hidden, hidden, "o"))
    y = norm(h + linear(b, rng, b.gelu(linear(b, rng, h, hidden, ffn, "fc1")), ffn, hidden, "fc2"))
    b.output(y, name="y")
    return optimize(b.build())


def feeds(graph):
    x = graph.inputs[0]
    return {x.name: np.random.default_rng(1).standard_normal(x.type.shape).astype(np.float32)}


def signature(plan, name: str) -> str:
    """The signature of the node whose output is `name`."""
    return next(plan.chosen(n).signature() for n in plan.graph.nodes if n.outputs[0].name == name)


def collectives(plan) -> Counter:
    return Counter(n.op for n in build_physical(plan).graph.nodes if n.opdef.family == "collective")


def reductions(plan) -> int:
    """How many times partial sums are reduced: all-reduces and reduce-scatters."""
    counts = collectives(plan)
    return counts["AllReduce"] + counts["ReduceScatter"]


def replicated_weight_bytes(graph) -> int:
    return sum(c.const.nbytes for c in graph.constants)


def only_batch_splits(plan) -> bool:
    """Every op splits its outputs on axis 0 on every mesh axis: data parallelism, no partial sums."""
    return all(all(nd == (S(0),) * len(plan.mesh.shape) for nd in plan.chosen(n).outs) for n in plan.graph.nodes)


COLUMN, ROW = "B, S(1) -> S(1)", "S(1), S(0) -> P"             # Megatron's pair on [rows, hidden]
COLUMN_3D, ROW_3D = "B, S(1) -> S(2)", "S(2), S(0) -> P"       # the same on [batch, seq, hidden]


# -- MLP ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("n", [2, 4])
def test_mlp_at_small_batch_is_megatron(n):
    # 4 rows: 4 MiB of weights at 10 GB/s per device (~420 us) against an all-reduce of 8 KiB
    graph = mlp(4)
    plan = search(graph, make_mesh((n,), target="cpu"))
    assert (signature(plan, "fc1.0"), signature(plan, "fc2.0")) == (COLUMN, ROW)
    assert reductions(plan) == 1 and not collectives(plan)["AllToAll"]
    assert plan.weight_bytes() < replicated_weight_bytes(graph) / n * 1.01
    assert_ranks_match(plan, feeds(graph))


@pytest.mark.parametrize("n", [2, 4])
def test_mlp_at_large_batch_is_data_parallel(n):
    # 256 rows: 537 MFLOP per GEMM (~10 ms) is split alike either way; Megatron's all-reduce of
    # [256, 512] (0.5 MiB, ~100-160 us) would come on top of gathering the output
    graph = mlp(256)
    plan = search(graph, make_mesh((n,), target="cpu"))
    assert (signature(plan, "fc1.0"), signature(plan, "fc2.0")) == ("S(0), B -> S(0)",) * 2
    assert only_batch_splits(plan)
    assert set(collectives(plan)) == {"LocalSlice", "AllGather"}   # the input cut, the output gathered
    assert plan.weight_bytes() == replicated_weight_bytes(graph)
    assert_ranks_match(plan, feeds(graph))


@pytest.mark.parametrize("n, limit_mib", [(2, 6.5), (4, 4)])
def test_mlp_under_a_memory_limit_splits_the_weights(n, limit_mib):
    # 8 MiB of weights do not fit; splitting both matrices does (one alone leaves 6 / 5 MiB)
    graph = mlp(256)
    limit = limit_mib * MIB
    assert replicated_weight_bytes(graph) > limit
    plan = search(graph, make_mesh((n,), target="cpu"), memory_limit=limit)
    assert (signature(plan, "fc1.0"), signature(plan, "fc2.0")) == (COLUMN, ROW)
    assert plan.weight_bytes() <= plan.memory_bytes() <= limit
    assert_ranks_match(plan, feeds(graph))


# -- transformer block ---------------------------------------------------------------------------

@pytest.mark.parametrize("n", [2, 4])
def test_block_at_small_batch_is_megatron(n):
    # 1 x 4 tokens: every projection is memory-bound (256 KiB to 1 MiB of weights per 4 rows).
    # Megatron: Q, K, V and fc1 column-split, o and fc2 row-split, attention split by heads,
    # one reduction of partial sums per pair (or a reduce-scatter, the residual and LayerNorm
    # on a slice of the sequence, then an all-gather: the same bytes as an all-reduce)
    graph = block(1, 4)
    plan = search(graph, make_mesh((n,), target="cpu"))
    assert [signature(plan, name) for name in ("q", "k", "v", "o", "fc1", "fc2")] == \
        [COLUMN_3D] * 3 + [ROW_3D, COLUMN_3D, ROW_3D]
    softmax = next(node for node in graph.nodes if node.op == "Softmax")
    assert plan.chosen(softmax).outs[0] == (S(1),)   # [batch, heads, seq, seq] split by heads
    assert reductions(plan) == 2 and not collectives(plan)["AllToAll"]
    assert plan.weight_bytes() < replicated_weight_bytes(graph) / n * 1.05
    assert_ranks_match(plan, feeds(graph))


@pytest.mark.parametrize("n", [2, 4])
def test_block_at_large_batch_is_data_parallel(n):
    # 16 x 8 tokens: compute-bound (fc1: 67 MFLOP, 1.3 ms, against 0.1 ms to read its weights);
    # splitting the batch keeps every sample's attention whole and moves nothing until the end
    graph = block(16, 8)
    plan = search(graph, make_mesh((n,), target="cpu"))
    assert only_batch_splits(plan)
    assert set(collectives(plan)) == {"LocalSlice", "AllGather"}
    assert_ranks_match(plan, feeds(graph))


@pytest.mark.parametrize("n, limit_mib", [(2, 2.1), (4, 1.1)])
def test_block_under_a_memory_limit_is_megatron(n, limit_mib):
    # the batch above, data parallel when free; the limit leaves room for the six weight
    # matrices split n ways and 0.56 / 0.28 MiB of activations, not for any one of them whole
    # (the smallest would add 128 / 192 KiB): Megatron splits them with least communication
    graph = block(16, 8)
    limit = limit_mib * MIB
    plan = search(graph, make_mesh((n,), target="cpu"), memory_limit=limit)
    assert [signature(plan, name) for name in ("q", "k", "v", "o", "fc1", "fc2")] == \
        [COLUMN_3D] * 3 + [ROW_3D, COLUMN_3D, ROW_3D]
    assert plan.weight_bytes() <= plan.memory_bytes() <= limit
    assert_ranks_match(plan, feeds(graph))


# -- 2-D meshes ----------------------------------------------------------------------------------

def test_2x2_mlp_small_batch_is_megatron_over_all_four_devices():
    # as on four devices in a row: each device streams a quarter of each weight; the partial
    # sums are reduced over one mesh axis, then the other
    plan = search(mlp(4), make_mesh((2, 2), target="cpu"))
    assert signature(plan, "fc1.0") == "(B, B), (S(1), S(1)) -> (S(1), S(1))"
    assert signature(plan, "fc2.0") == "(S(1), S(1)), (S(0), S(0)) -> (P, P)"
    assert_ranks_match(plan, feeds(mlp(4)))


def test_2x2_mlp_large_batch_is_data_parallel_over_all_four_devices():
    # the batch split in four: (S(0), S(0)) everywhere, only the output gathered
    plan = search(mlp(256), make_mesh((2, 2), target="cpu"))
    assert only_batch_splits(plan)
    assert_ranks_match(plan, feeds(mlp(256)))


def test_2x2_mlp_under_a_memory_limit_is_data_parallel_over_one_axis_and_megatron_over_the_other():
    # 6 MiB per device: the 8 MiB of weights must be halved (4 MiB and 1 MiB of activations), not
    # quartered. Megatron over one mesh axis with the batch split over the other then reduces
    # half the rows over pairs, where Megatron over all four devices would reduce all of them
    # over both axes. The two axes' links are alike, so either may take either role.
    graph = mlp(256)
    limit = 6 * MIB
    plan = search(graph, make_mesh((2, 2), target="cpu"), memory_limit=limit)
    assert (signature(plan, "fc1.0"), signature(plan, "fc2.0")) in {
        ("(S(0), B), (B, S(1)) -> (S(0), S(1))", "(S(0), S(1)), (B, S(0)) -> (S(0), P)"),
        ("(B, S(0)), (S(1), B) -> (S(1), S(0))", "(S(1), S(0)), (S(0), B) -> (P, S(0))")}
    assert plan.weight_bytes() <= plan.memory_bytes() <= limit
    assert_ranks_match(plan, feeds(graph))


def test_2x4_deep_mlp_under_a_memory_limit_is_megatron_within_nodes_and_data_parallel_across():
    # Two nodes of four H100s: InfiniBand between them (mesh axis 0), NVLink within (axis 1).
    # Eight residual MLP blocks at 512 rows: unconstrained, data parallelism over all eight.
    # With 10 MiB per device the 32 MiB of weights must be quartered (halved they need 16 MiB;
    # quartered 8 MiB and 1.5 MiB of activations, too little room left to keep any matrix
    # whole): Megatron over the four NVLink devices of a node, each node working on half of
    # the batch. Megatron over all eight would reduce every block's activations across
    # InfiniBand too; nodes holding replicas instead of halves would double each device's
    # arithmetic to save gathering the output across nodes.
    graph = mlp(512, hidden=256, ffn=2048, layers=8)
    mesh = make_mesh((2, 4), target="cuda")
    assert only_batch_splits(search(graph, mesh))
    limit = 10 * MIB
    plan = search(graph, mesh, memory_limit=limit)
    for i in range(8):
        assert signature(plan, f"fc1.{i}") == "(S(0), B), (B, S(1)) -> (S(0), S(1))"
        assert signature(plan, f"fc2.{i}") == "(S(0), S(1)), (B, S(0)) -> (S(0), P)"
    assert plan.weight_bytes() <= plan.memory_bytes() <= limit
    assert_ranks_match(plan, feeds(graph))

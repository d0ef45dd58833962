"""Parallel plans the target tests share (target cpu's and target cuda's mesh artifacts): small
graphs, the plans and hints that make them communicate, inputs, and the checks and launcher
helpers. Not a test module: tests import it (the cuda tests through the conftest's path)."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import numpy as np

from flowc.frontend.builder import GraphBuilder
from flowc.ir.passes import optimize
from flowc.ir.passes.parallel import PhysicalGraph, build_physical, make_mesh, search

RTOL, ATOL = 1e-4, 1e-5   # f32
MPI_ENV = {"OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1"}


def _weights(rng, *shape):
    """Scaled so that activations stay near 1 (errors of reordered sums stay near f32's epsilon)."""
    return (rng.standard_normal(shape) / np.sqrt(shape[0] if len(shape) > 1 else 10)).astype(np.float32)


def mlp(batch: int, hidden: int, ff: int):
    rng = np.random.default_rng(1)
    b = GraphBuilder("mlp")
    x = b.input("x", "f32", [batch, hidden])
    y = b.relu(x @ _weights(rng, hidden, ff) + _weights(rng, ff)) @ _weights(rng, ff, hidden) + _weights(rng, hidden)
    b.output(y, name="y")
    return optimize(b.build())


def transformer_block(batch: int, seq: int, d: int, ff: int, heads: int = 4):
    """Pre-norm self-attention and a GELU MLP, each with a residual."""
    rng = np.random.default_rng(2)
    b = GraphBuilder("block")
    x = b.input("x", "f32", [batch, seq, d])

    def norm(t):
        return b.layer_normalization(t, 1 + _weights(rng, d), _weights(rng, d), axis=-1)

    def split_heads(t):
        return b.transpose(b.reshape(t, np.array([batch, seq, heads, d // heads], np.int64)), perm=[0, 2, 1, 3])

    h = norm(x)
    q, k, v = (split_heads(h @ _weights(rng, d, d) + _weights(rng, d)) for _ in range(3))
    scores = b.matmul(q, b.transpose(k, perm=[0, 1, 3, 2])) * np.float32(1 / np.sqrt(d // heads))
    a = b.transpose(b.matmul(b.softmax(scores, axis=-1), v), perm=[0, 2, 1, 3])
    x = x + (b.reshape(a, np.array([batch, seq, d], np.int64)) @ _weights(rng, d, d) + _weights(rng, d))
    x = x + (b.gelu(norm(x) @ _weights(rng, d, ff) + _weights(rng, ff)) @ _weights(rng, ff, d) + _weights(rng, d))
    b.output(x, name="y")
    return optimize(b.build())


def collective_chain():
    """Every collective on a 2x2 mesh, at axes that make the steps pack and unpack member
    blocks; its outputs differ between ranks (the pieces each holds)."""
    b = GraphBuilder("chain")
    x = b.input("x", "f32", [4, 6, 8])
    n = b.input("n", "i64", [3, 2])
    a = b.op("LocalSlice", x, mesh_axis=0, size=2, axis=1)                           # [4, 3, 8]
    t = b.op("AllToAll", a, mesh_axis=1, size=2, split_axis=2, concat_axis=1)        # [4, 6, 4]
    g = b.op("AllGather", t, mesh_axis=0, size=2, axis=2)                            # [4, 6, 8]
    p = b.op("KeepFirst", g * 2.0, mesh_axis=1, size=2)
    s = b.op("ReduceScatter", p, mesh_axis=1, size=2, axis=1)                        # [4, 3, 8]
    r = b.op("AllReduce", s, mesh_axis=0, size=2)
    w = b.op("AllGather", r + 1.0, mesh_axis=1, size=2, axis=0)                      # [8, 3, 8]
    f = b.op("ReduceScatter", b.op("KeepFirst", w, mesh_axis=0, size=2), mesh_axis=0, size=2, axis=0)
    m = b.op("AllReduce", b.op("KeepFirst", n, mesh_axis=1, size=2), mesh_axis=1, size=2)
    for name, value in [("sliced", a), ("swapped", t), ("scattered", s), ("gathered", w), ("rows", f), ("ints", m)]:
        b.output(value, name=name)
    return PhysicalGraph(b.build(), (2, 2))


# name -> (graph builder and its arguments, mesh, hints, collectives the plan must hold)
PLANS = {
    "mlp-megatron-4": (mlp, (2, 256, 1024), (4,), None, {"AllReduce"}),
    "mlp-data-2": (mlp, (256, 16, 32), (2,), None, {"LocalSlice[0]", "AllGather[0]"}),
    "mlp-scatter-cols-4": (mlp, (4, 16, 32), (4,), {"3": "S(1)", "5": "S(1)"}, {"ReduceScatter[1]", "AllGather[1]"}),
    "mlp-one-column-each-4": (mlp, (4, 16, 4), (4,), {"3": "S(1)", "5": "P"}, {"ReduceScatter[0]", "AllGather[0]"}),
    "mlp-all-to-all-4": (mlp, (4, 16, 32), (4,), {"x": "S(0)", "3": "S(1)"},
                         {"LocalSlice[0]", "AllToAll", "AllGather[1]"}),
    "mlp-partial-input-4": (mlp, (4, 16, 32), (4,), {"x": "P"}, {"KeepFirst", "ReduceScatter[0]", "AllGather[0]"}),
    "block-tensor-4": (transformer_block, (1, 4, 128, 512), (4,), None, {"ReduceScatter[1]", "AllGather[1]"}),
    "block-data-2": (transformer_block, (16, 8, 32, 64), (2,), None, {"LocalSlice[0]", "AllGather[0]"}),
    "block-mesh-2x2": (transformer_block, (2, 4, 128, 512), (2, 2), None, {"AllReduce", "ReduceScatter[0]",
                                                                            "AllGather[0]"}),
}


def plan(name: str):
    """(logical graph or None, physical graph) of PLANS[name], or of the collective chain for
    "chain"; the plans are searched on the CPU profile, whose choices PLANS describes."""
    if name == "chain":
        return None, collective_chain()
    build, args, mesh, hints, _ = PLANS[name]
    graph = build(*args)
    return graph, build_physical(search(graph, make_mesh(mesh), hints=hints))


def collectives(graph) -> set[str]:
    """The collectives of a physical graph, by op and, for those with an axis, as Op[axis] too."""
    out = set()
    for node in graph.nodes:
        if node.opdef.family == "collective":
            out.add(node.op)
            if "axis" in node.attrs:
                out.add(f"{node.op}[{node.attrs['axis']}]")
    return out


def inputs_for(graph, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    out = {}
    for v in graph.inputs:
        shape = tuple(v.type.shape)
        out[v.name] = (rng.standard_normal(shape).astype(np.float32) if v.type.dtype.name == "f32"
                       else rng.integers(-50, 50, shape).astype(v.type.dtype.np))
    return out


def assert_outputs(got: dict, want: dict, what: str) -> None:
    assert list(got) == list(want), what
    for key, expected in want.items():
        assert got[key].dtype == expected.dtype and got[key].shape == expected.shape, f"{what}: {key}"
        np.testing.assert_allclose(got[key], expected, rtol=RTOL, atol=ATOL, err_msg=f"{what}: output {key}")


def run_mpi(mpirun: str, ranks: int, command: list[str], cwd: Path) -> None:
    env = dict(os.environ, **MPI_ENV, FLOWC_SPIN_US="0")
    proc = subprocess.run([mpirun, "-np", str(ranks), "--oversubscribe", *command], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"mpirun failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"

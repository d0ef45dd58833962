"""Mesh artifacts on target cpu: parallel plans of an MLP and a transformer block compiled once
for every rank, run through the local communicator (every rank in this process) and through
MPI processes (`mpirun -np N`), each answer checked against the single-device reference; and
a hand-built chain of every collective, at layouts that need packing, against the simulator."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import flowc
from flowc.codegen import cpu
from flowc.errors import CompileError
from flowc.frontend.builder import GraphBuilder
from flowc.ir.passes import optimize
from flowc.ir.passes.parallel import PhysicalGraph, build_physical, make_mesh, search, simulate

from models import run_in_threads

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


def collectives(graph) -> set[str]:
    """The collectives of a physical graph, by op and, for those with an axis, as Op[axis] too."""
    out = set()
    for node in graph.nodes:
        if node.opdef.family == "collective":
            out.add(node.op)
            if "axis" in node.attrs:
                out.add(f"{node.op}[{node.attrs['axis']}]")
    return out


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory, toolchain):
    """name -> (logical graph or None, physical graph, folder, model on the local communicator),
    each emitted and built once."""
    done = {}

    def get(name: str):
        if name not in done:
            if name == "chain":
                graph, physical = None, collective_chain()
            else:
                build, args, mesh, hints, _ = PLANS[name]
                graph = build(*args)
                physical = build_physical(search(graph, make_mesh(mesh), hints=hints))
            out = tmp_path_factory.mktemp(name)
            cpu.emit(physical.graph, out, physical=physical)
            done[name] = (graph, physical, out, cpu.load(out, comm="local"))
        return done[name]
    return get


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


@pytest.mark.parametrize("name", list(PLANS))
def test_plan_on_local_communicator_matches_reference(artifacts, name):
    graph, physical, out, model = artifacts(name)
    assert PLANS[name][4] <= collectives(physical.graph), "the plan is not the one this test is about"
    assert model.ranks == physical.ranks and model.rank is None
    assert sorted(p.name for p in out.glob("weights*.bin")) == [f"weights.r{r}.bin" for r in range(physical.ranks)]
    for seed in (0, 1):
        feeds = inputs_for(graph, seed)
        assert_outputs(model.run(feeds), flowc.ir.run(graph, feeds), f"{name}, seed {seed}")


def test_collective_chain_matches_simulator(artifacts):
    """Rank 0's outputs (the local communicator returns them) as the simulator computes them."""
    _, physical, out, model = artifacts("chain")
    assert {"LocalSlice[1]", "AllToAll", "AllGather[2]", "KeepFirst", "AllGather[0]", "ReduceScatter[1]",
            "ReduceScatter[0]", "AllReduce"} <= collectives(physical.graph)
    text = (out / "model.cpp").read_text()
    assert text.count("flowc::steps::pack_blocks") == 2 and text.count("flowc::steps::unpack_blocks") == 2
    feeds = inputs_for(physical.graph)
    assert_outputs(model.run(feeds), simulate(physical, feeds)[0], "chain, rank 0")


def test_every_collective_is_covered():
    kinds = set().union(*(PLANS[name][4] for name in PLANS))
    assert {"AllReduce", "AllGather[0]", "AllGather[1]", "ReduceScatter[0]", "ReduceScatter[1]", "AllToAll",
            "LocalSlice[0]", "KeepFirst"} <= kinds


def test_steps_that_differ_between_ranks_switch_on_the_rank(artifacts):
    """A one-element bias per rank becomes a literal of the fused loop: each rank has its own."""
    graph, physical, out, model = artifacts("mlp-one-column-each-4")
    text = (out / "model.cpp").read_text()
    assert "switch (ctx->rank) {" in text and "case 1:" in text and "default:" in text
    sizes = {(out / f"weights.r{r}.bin").stat().st_size for r in range(4)}
    assert len(sizes) == 1


def test_collectives_run_on_the_comm_stream(artifacts):
    """Stream 1 runs the steps that call the communicator; LocalSlice and KeepFirst compute on 0."""
    _, physical, out, _ = artifacts("mlp-partial-input-4")
    text = (out / "model.cpp").read_text()
    assert "d.plan.comm_stream = 1;" in text and "d.plan.num_streams = 2;" in text
    streams = [int(s) for s in re.findall(r"^    \{.*, s\d+, (\d+), ", text, re.M)]
    talking = [n.opdef.family == "collective" and n.op not in ("LocalSlice", "KeepFirst")
               for n in physical.graph.nodes]
    assert streams.count(1) == sum(talking) == 2 and streams[0] == 0   # KeepFirst, then ReduceScatter


def test_concurrent_requests_on_a_mesh(artifacts):
    """Requests from several threads pipeline through every rank's engine in one order."""
    graph, _, _, model = artifacts("mlp-all-to-all-4")
    requests = [inputs_for(graph, 10 + i) for i in range(6)]
    answers = [flowc.ir.run(graph, r)["y"] for r in requests]
    failures = []

    def caller(t: int) -> None:
        for i in range(10):
            k = (t * 10 + i) % len(requests)
            if not np.allclose(model.run(requests[k])["y"], answers[k], rtol=RTOL, atol=ATOL):
                failures.append((t, i, k))

    run_in_threads(caller)
    assert not failures


def test_dynamic_batch_with_a_mesh_is_refused(tmp_path):
    physical = build_physical(search(mlp(4, 16, 32), make_mesh((2,))))
    with pytest.raises(CompileError, match=r"max_batch=4 with a device mesh \(2\): a parallel plan splits fixed "
                                           r"shapes; compile it for one batch \(input_shapes=\)"):
        cpu.emit(physical.graph, tmp_path, max_batch=4, physical=physical)
    assert not any(tmp_path.iterdir())


# -- MPI processes ---------------------------------------------------------------------------

DRIVER = """
import sys
import numpy as np
from flowc.codegen import cpu

model = cpu.load(sys.argv[1], comm="mpi")
with np.load(sys.argv[2]) as feeds:
    outputs = model.run(dict(feeds))
np.savez(f"{sys.argv[3]}/rank{model.rank}-of-{model.ranks}.npz", **outputs)
"""


@pytest.fixture(scope="module")
def mpirun():
    path = shutil.which("mpirun")
    if path is None:
        pytest.skip("mpirun is not installed (apt-get install openmpi-bin libopenmpi-dev)")
    return path


def run_mpi(mpirun: str, ranks: int, command: list[str], cwd: Path) -> None:
    env = dict(os.environ, **MPI_ENV, FLOWC_SPIN_US="0")
    proc = subprocess.run([mpirun, "-np", str(ranks), "--oversubscribe", *command], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"mpirun failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"


@pytest.mark.parametrize("name", ["chain", "block-mesh-2x2", "mlp-all-to-all-4"])
def test_same_artifact_under_mpirun(artifacts, mpirun, tmp_path, name):
    """Every process runs its own rank; each gets its rank's outputs (whole ones for a plan)."""
    graph, physical, out, _ = artifacts(name)
    feeds = inputs_for(graph or physical.graph, seed=3)
    np.savez(tmp_path / "feeds.npz", **feeds)
    (tmp_path / "driver.py").write_text(DRIVER)
    run_mpi(mpirun, physical.ranks, [sys.executable, str(tmp_path / "driver.py"), str(out),
                                     str(tmp_path / "feeds.npz"), str(tmp_path)], tmp_path)
    want = simulate(physical, feeds) if graph is None else [flowc.ir.run(graph, feeds)] * physical.ranks
    for r in range(physical.ranks):
        with np.load(tmp_path / f"rank{r}-of-{physical.ranks}.npz") as got:
            assert_outputs({k: got[k] for k in got.files}, want[r], f"{name} under MPI, rank {r}")


def test_c_example_under_mpirun(artifacts, mpirun, tmp_path):
    """The artifact's own main program, one process per rank: rank 0 writes the outputs."""
    graph, physical, out, _ = artifacts("mlp-megatron-4")
    feeds = inputs_for(graph, seed=4)
    np.save(tmp_path / "x.npy", feeds["x"])
    main = next(out.glob("build/main"))
    run_mpi(mpirun, physical.ranks, [str(main), str(out), str(tmp_path / "x.npy"), "--out", str(tmp_path)], tmp_path)
    np.testing.assert_allclose(np.load(tmp_path / "output0.npy"), flowc.ir.run(graph, feeds)["y"], rtol=RTOL, atol=ATOL)


# -- the exported test models, compiled through flowc.compile for 2 and 4 ranks ---------------------

MODEL_DRIVER = """
import sys
import numpy as np
import flowc

model = flowc.load(sys.argv[1])   # under mpirun: this process's rank over MPI
with np.load(sys.argv[2]) as feeds:
    outputs = model.run(dict(feeds))
np.savez(f"{sys.argv[3]}/rank{model._compiled.rank}.npz", **outputs)
"""

# (model, mesh, hints): hints make each small model really split (the search alone would keep
# most of these replicated, as their weights are tiny)
MODEL_PLANS = [
    ("mlp", {"devices": 2}, {"x": "S(1)"}),
    ("resnet", {"devices": 2}, {"x": "S(0)"}),
    ("bert", {"devices": 4}, {"input_ids": "S(0)", "attention_mask": "S(0)"}),
    ("gpt2", {"devices": 2}, {"input_ids": "S(1)"}),
    ("gpt2", {"mesh": "2x2"}, {"input_ids": "(S(0), S(1))"}),
]


@pytest.mark.parametrize("name,mesh,hints", MODEL_PLANS,
                         ids=[f"{m}-{'x'.join(str(v) for v in k.values())}" for m, k, _ in MODEL_PLANS])
def test_exported_model_on_several_ranks_matches_onnxruntime(exported_model, toolchain, mpirun, tmp_path, name,
                                                             mesh, hints):
    """In one process (the local communicator), then one process per rank under mpirun."""
    import onnxruntime as ort

    import models
    path = exported_model(name, 18)
    spec = models.MODELS[name]
    feeds = spec.inputs(4, np.random.default_rng(5))
    artifact = flowc.compile(path, target="cpu", out_dir=tmp_path / "a", sbp=hints,
                             input_shapes={k: list(v.shape) for k, v in feeds.items()}, **mesh)
    assert any(n.opdef.family == "collective" for n in artifact.graph.nodes), "the plan should communicate"
    want = dict(zip(spec.output_names, ort.InferenceSession(str(path)).run(None, feeds)))
    got = flowc.load(artifact.path).run(feeds)
    for key, value in want.items():
        np.testing.assert_allclose(got[key], value, rtol=RTOL, atol=1e-4, err_msg=f"{name} local {key}")
    np.savez(tmp_path / "feeds.npz", **feeds)
    (tmp_path / "driver.py").write_text(MODEL_DRIVER)
    ranks = artifact.plan.mesh.size
    run_mpi(mpirun, ranks, [sys.executable, str(tmp_path / "driver.py"), str(artifact.path),
                            str(tmp_path / "feeds.npz"), str(tmp_path)], tmp_path)
    for r in range(ranks):
        with np.load(tmp_path / f"rank{r}.npz") as outputs:
            for key, value in want.items():
                np.testing.assert_allclose(outputs[key], value, rtol=RTOL, atol=1e-4, err_msg=f"{name} MPI rank {r}")

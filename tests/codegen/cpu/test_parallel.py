"""Mesh artifacts on target cpu: parallel plans of an MLP and a transformer block compiled once
for every rank, run through the local communicator (every rank in this process) and through
MPI processes (`mpirun -np N`), each answer checked against the single-device reference; and
a hand-built chain of every collective, at layouts that need packing, against the simulator."""
from __future__ import annotations

import re
import shutil
import sys

import numpy as np
import pytest

import flowc
from flowc.codegen import cpu
from flowc.errors import CompileError
from flowc.ir.passes.parallel import build_physical, make_mesh, search, simulate

from models import run_in_threads
from plans import PLANS, plan, RTOL, ATOL, assert_outputs, collectives, inputs_for, mlp, run_mpi


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory, toolchain):
    """name -> (logical graph or None, physical graph, folder, model on the local communicator),
    each emitted and built once."""
    done = {}

    def get(name: str):
        if name not in done:
            graph, physical = plan(name)
            out = tmp_path_factory.mktemp(name)
            cpu.emit(physical.graph, out, physical=physical)
            done[name] = (graph, physical, out, cpu.load(out, comm="local"))
        return done[name]
    return get


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

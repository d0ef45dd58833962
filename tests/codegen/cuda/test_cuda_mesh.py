"""Mesh artifacts on target cuda: the CPU target's parallel plans (plans.py) emitted for GPUs.

Without a GPU (CI): they build with nvcc against NCCL; the collectives sit on the comm stream,
which the CUDA device maps onto the compute stream; steps whose kernels differ between ranks
switch on the rank; loading fails clearly. On a GPU (marked `gpu`): every rank in one process on
one GPU (the local communicator staged through host memory: several virtual devices on one GPU)
and one process per rank under mpirun (MPI, staged), against the single-device reference and
onnxruntime. NCCL itself needs a GPU per rank (it refuses two ranks on one GPU); its own test is
tests/runtime/test_nccl_communicator.cc. An MLP in fp16 and bf16 whose partial sums are stored in
half sums them as FLOWC_COMM_F16 or FLOWC_COMM_BF16, and builds; on a GPU, against its plan
simulated on numpy."""
from __future__ import annotations

import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
from flowc.codegen import cuda
from flowc.frontend.builder import GraphBuilder
from flowc.ir.passes import optimize
from flowc.ir.passes.parallel import build_physical, make_mesh, search, simulate
from gpu import gpu_missing
from plans import ATOL, PLANS, plan, RTOL, assert_outputs, collectives, inputs_for, mlp, run_mpi

import flowc
from flowc.errors import CompileError

BUILT = ["chain", "block-mesh-2x2"]          # built in CI: every collective, and a 2-D plan


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory, cuda_toolchain):
    """name -> (logical graph or None, physical graph, folder), each emitted and built once."""
    done = {}

    def get(name: str):
        if name not in done:
            graph, physical = plan(name)     # the CPU profile's plan (the H100's keeps these small ones whole)
            assert name == "chain" or PLANS[name][4] <= collectives(physical.graph), f"{name}: not the plan meant"
            out = tmp_path_factory.mktemp(f"cuda-{name}")
            cuda.emit(physical.graph, out, arch="sm_80,sm_90", physical=physical)
            cuda.build(out)
            done[name] = (graph, physical, out)
        return done[name]
    return get


@pytest.mark.parametrize("name", BUILT)
def test_mesh_project_builds_with_nccl(artifacts, name):
    _, physical, out = artifacts(name)
    source = (out / "model.cu").read_text()
    assert "d.plan.comm_stream = 3;" in source and "d.plan.num_streams = 4;" in source
    steps = re.findall(r"\{\"[^\"]*\", s\d+, (\d), ", source)
    comm = [i for i, stream in enumerate(steps) if stream == "3"]
    assert comm and steps[0] == "1" and steps[-1] == "2", steps
    assert sorted(p.name for p in out.glob("weights*.bin")) == [f"weights.r{r}.bin" for r in range(physical.ranks)]
    library = next(out.glob("build/libflowc_model.so"))
    linked = subprocess.run(["ldd", str(library)], capture_output=True, text=True).stdout
    assert "libcudart.so.13" in linked and "libcublasLt.so.13" in linked, linked
    try:
        import nvidia.nccl  # noqa: F401  (pip install "flowc[cuda]")
    except ImportError:
        pytest.skip("the NCCL wheel is not installed: the project builds without the NCCL communicator")
    assert "libnccl.so.2" in linked and "=> not found" not in linked, linked


def test_every_collective_has_a_cuda_step(artifacts):
    _, _, out = artifacts("chain")
    source = (out / "model.cu").read_text()
    for call in ("flowc_comm_all_reduce", "flowc_comm_all_gather", "flowc_comm_reduce_scatter",
                 "flowc_comm_all_to_all", "flowc_cuda_pack_blocks", "flowc_cuda_unpack_blocks",
                 "flowc_cuda_copy_block", "cudaMemsetAsync(dst, 0"):
        assert call in source, call


def test_kernels_that_differ_between_ranks_switch_on_the_rank(tmp_path):
    """A column split hands each rank one scale of Mul(x, [2, 3]), which lowering folds into the
    generated kernel as a literal: rank 1 gets its own kernel and its step switches to it."""
    b = GraphBuilder("g")
    x = b.input("x", "f32", [4, 2])
    b.output(b.op("Tanh", b.op("Mul", x, b.const(np.array([2.0, 3.0], np.float32)))), name="y")
    graph = optimize(b.build())
    physical = build_physical(search(graph, make_mesh((2,), target="cuda"), hints={"x": "S(1)"}))
    cuda.emit(physical.graph, tmp_path, physical=physical)
    source = (tmp_path / "model.cu").read_text()
    kernels = re.findall(r"__global__ void __launch_bounds__\(\d+\) (\w+)\(", source)
    assert kernels == ["k1", "k1_r1"], kernels
    body0, body1 = (re.search(rf"__global__[^\n]* {k}\(.*?\n}}\n", source, re.S).group(0) for k in kernels)
    assert body0.replace("k1(", "") != body1.replace("k1_r1(", ""), "the two kernels should fold different scales"
    switch = source[source.index("switch (ctx->rank)"):]
    assert "case 1:" in switch and "k1_r1<<<" in switch and "default:" in switch


# Plans whose partial sums are stored in half: name -> (precision, SBP hints, the collective that
# sums them). The H100 profile keeps an MLP this small whole; a memory limit under its 64 KiB of
# half weights makes the plan split them (the second matmul then makes partial sums), and the
# hint that its output "5" (a name the precision pass keeps) be whole makes the sum one all-reduce
# rather than a reduce-scatter and an all-gather.
HALF_MLP = (4, 64, 256)
HALF_PLANS = {"fp16-all-reduce": ("fp16", {"5": "B"}, "AllReduce"),
              "fp16-reduce-scatter": ("fp16", None, "ReduceScatter"),
              "bf16-all-reduce": ("bf16", {"5": "B"}, "AllReduce")}
HALF_TOLERANCE = {"fp16": 1e-2, "bf16": 5e-2}   # of the largest magnitude, as tests/codegen/cuda/test_cuda_precision.py


@pytest.fixture(scope="module")
def half_artifacts(tmp_path_factory, cuda_toolchain):
    """name -> the artifact of HALF_PLANS[name], compiled for 2 GPUs and built (sm_90) once."""
    done = {}

    def get(name: str):
        if name not in done:
            precision, hints, _ = HALF_PLANS[name]
            done[name] = flowc.compile(mlp(*HALF_MLP), target="cuda", devices=2, precision=precision, sbp=hints,
                                       memory_limit="40KiB", out_dir=tmp_path_factory.mktemp(f"cuda-{name}"))
        return done[name]
    return get


@pytest.mark.parametrize("name", HALF_PLANS)
def test_partial_sums_in_half_are_summed_in_half(half_artifacts, name):
    precision, _, op = HALF_PLANS[name]
    artifact = half_artifacts(name)
    half = {"fp16": "f16", "bf16": "bf16"}[precision]
    assert [(v.name, v.type.dtype.name) for v in artifact.graph.inputs] == [("x", "f32")]
    summed = [str(n.inputs[0].type) for n in artifact.graph.nodes if n.op == op]
    assert summed == [f"{half}[4,64]"], f"{name}: not the plan meant: {summed}"
    call = {"AllReduce": "all_reduce", "ReduceScatter": "reduce_scatter"}[op]
    source = (artifact.path / "model.cu").read_text()
    assert len(re.findall(rf"flowc_comm_{call}\(ctx, 0, FLOWC_COMM_{half.upper()}, ", source)) == 1
    assert list(artifact.path.glob("build/libflowc_model.so")), "the project did not build"


def test_loading_without_a_gpu_fails_clearly(artifacts, monkeypatch):
    if gpu_missing() is None:
        pytest.skip("a GPU is here: the gpu tests run the mesh models")
    _, _, out = artifacts("chain")
    with pytest.raises(CompileError, match="target cuda: no usable NVIDIA GPU"):
        cuda.load(out, comm="local")
    with pytest.raises(CompileError, match="NCCL needs one process per GPU"):
        cuda.load(out, comm="nccl")     # no launcher started this process
    monkeypatch.setenv("FLOWC_COMM", "gloo")
    with pytest.raises(CompileError, match="FLOWC_COMM is 'gloo'; use local, mpi or nccl"):
        cuda.load(out)


# -- on a GPU ----------------------------------------------------------------------------------

GPU_PLANS = ["chain", "mlp-megatron-4", "mlp-all-to-all-4", "mlp-partial-input-4", "block-tensor-4",
             "block-mesh-2x2"]


@pytest.mark.gpu
@pytest.mark.parametrize("name", GPU_PLANS)
def test_plan_on_one_gpu_matches_reference(artifacts, name):
    """Every rank in this process, all on GPU 0 (the local communicator, staged)."""
    graph, physical, out = artifacts(name)
    model = cuda.load(out, comm="local")
    assert model.ranks == physical.ranks and model.rank is None
    for seed in (0, 1):
        feeds = inputs_for(graph or physical.graph, seed)
        want = simulate(physical, feeds)[0] if graph is None else flowc.ir.run(graph, feeds)
        assert_outputs(model.run(feeds), want, f"{name} on one GPU, seed {seed}")


@pytest.mark.gpu
@pytest.mark.parametrize("name", HALF_PLANS)
def test_half_plan_on_one_gpu_matches_reference(half_artifacts, name):
    """Both ranks on GPU 0 (the local communicator, staged): against the plan in half simulated on
    numpy (a tenth of the tolerance: only the order of f32 sums differs) and the f32 model."""
    precision = HALF_PLANS[name][0]
    artifact = half_artifacts(name)
    physical = build_physical(artifact.plan)
    model = cuda.load(artifact.path, comm="local")
    for seed in (0, 1):
        feeds = inputs_for(physical.graph, seed)
        got = model.run(feeds)
        for want, tol in ((simulate(physical, feeds)[0], HALF_TOLERANCE[precision] / 10),
                          (flowc.ir.run(mlp(*HALF_MLP), feeds), HALF_TOLERANCE[precision])):
            for key, value in want.items():
                np.testing.assert_allclose(got[key], value, rtol=tol, atol=tol * float(np.max(np.abs(value))),
                                           err_msg=f"{name} on one GPU, seed {seed}: {key}")


DRIVER = """
import sys
import numpy as np
from flowc.codegen import cuda

model = cuda.load(sys.argv[1], comm="mpi")
with np.load(sys.argv[2]) as feeds:
    outputs = model.run(dict(feeds))
np.savez(f"{sys.argv[3]}/rank{model.rank}-of-{model.ranks}.npz", **outputs)
"""


@pytest.mark.gpu
@pytest.mark.parametrize("name", ["chain", "block-mesh-2x2"])
def test_same_artifact_under_mpirun_on_one_gpu(artifacts, tmp_path, name):
    """One process per rank, all on GPU 0 (MPI, staged); each gets its rank's outputs."""
    mpirun = shutil.which("mpirun")
    if mpirun is None:
        pytest.skip("mpirun is not installed (apt-get install openmpi-bin libopenmpi-dev)")
    graph, physical, out = artifacts(name)
    feeds = inputs_for(graph or physical.graph, seed=3)
    np.savez(tmp_path / "feeds.npz", **feeds)
    (tmp_path / "driver.py").write_text(DRIVER)
    run_mpi(mpirun, physical.ranks, [sys.executable, str(tmp_path / "driver.py"), str(out),
                                     str(tmp_path / "feeds.npz"), str(tmp_path)], tmp_path)
    want = simulate(physical, feeds) if graph is None else [flowc.ir.run(graph, feeds)] * physical.ranks
    for r in range(physical.ranks):
        with np.load(tmp_path / f"rank{r}-of-{physical.ranks}.npz") as got:
            assert_outputs({k: got[k] for k in got.files}, want[r], f"{name} under MPI on one GPU, rank {r}")


@pytest.mark.gpu
@pytest.mark.parametrize("name,mesh,hints", [("mlp", {"devices": 2}, {"x": "S(1)"}),
                                             ("gpt2", {"mesh": "2x2"}, {"input_ids": "(S(0), S(1))"})])
def test_exported_model_on_a_mesh_of_one_gpu_matches_onnxruntime(exported_model, cuda_toolchain, tmp_path, name,
                                                                  mesh, hints):
    import models
    import onnxruntime as ort
    path = exported_model(name, 18)
    spec = models.MODELS[name]
    feeds = spec.inputs(4, np.random.default_rng(5))
    artifact = flowc.compile(path, target="cuda", out_dir=tmp_path / "a", sbp=hints,
                             input_shapes={k: list(v.shape) for k, v in feeds.items()}, **mesh)
    assert any(n.opdef.family == "collective" for n in artifact.graph.nodes), "the plan should communicate"
    want = dict(zip(spec.output_names, ort.InferenceSession(str(path)).run(None, feeds)))
    got = cuda.load(artifact.path, comm="local").run(feeds)
    for key, value in want.items():
        np.testing.assert_allclose(got[key], value, rtol=max(RTOL, 1e-3), atol=max(ATOL, 1e-4),
                                   err_msg=f"{name} on a mesh of one GPU: {key}")

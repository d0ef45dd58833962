"""Target cuda without a GPU: the project it writes, its build with nvcc for sm_80 and sm_90
against cuBLASLt, and the clear error a model gives where there is no GPU to run it."""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

import numpy as np
import pytest

import flowc
from flowc.codegen import cuda
from flowc.errors import CompileError
from flowc.frontend.builder import GraphBuilder

from gpu import gpu_missing

REPO = Path(__file__).resolve().parents[3]
EXAMPLES = REPO / "examples" / "models"


@pytest.fixture(scope="module")
def built(cuda_toolchain, tmp_path_factory):
    """The shipped CNN and transformer compiled for target cuda, sm_80 and sm_90, built once."""
    out = {}
    for name, shapes in (("tinycnn", {"image": [2, 3, 32, 32]}), ("tinyformer", {"x": [2, 8, 32]})):
        folder = tmp_path_factory.mktemp(f"cuda-{name}")
        out[name] = flowc.compile(str(EXAMPLES / f"{name}.onnx"), target="cuda", arch="sm_80,sm_90",
                                  out_dir=folder, input_shapes=shapes)
    return out


@pytest.mark.slow
@pytest.mark.parametrize("name", ["tinycnn", "tinyformer"])
def test_project_builds_for_sm80_and_sm90_against_cublaslt(built, name):
    artifact = built[name]
    build = artifact.path / "build"
    flags = "".join(p.read_text() for p in build.rglob("flags.make"))
    for sm in ("80", "90"):
        assert re.search(rf"arch=compute_{sm},code=\[?[^ ]*sm_{sm}", flags), f"no sm_{sm} code in the build flags"
    library = next(build.glob("libflowc_model.*.so"))
    linked = subprocess.run(["ldd", str(library)], capture_output=True, text=True).stdout
    assert re.search(r"libcublasLt\.so\.\d+ => /", linked), linked
    assert re.search(r"libcudart\.so\.\d+ => /", linked), linked
    assert (build / "main").is_file()
    source = (artifact.path / "model.cu").read_text()
    assert "<<<" in source or "flowc_cuda_" in source


@pytest.mark.slow
def test_running_without_a_gpu_fails_clearly(built):
    if gpu_missing() is None:
        pytest.skip("a GPU is present: the model runs (tests/codegen/cuda/test_cuda_models.py)")
    with pytest.raises(CompileError, match="no usable NVIDIA GPU.*compiled for --target cuda"):
        flowc.load(built["tinycnn"].path)
    main = built["tinycnn"].path / "build" / "main"
    x = built["tinycnn"].path / "x.npy"
    np.save(x, np.zeros((2, 3, 32, 32), np.float32))
    done = subprocess.run([str(main), str(built["tinycnn"].path), str(x)], capture_output=True, text=True, timeout=60)
    assert done.returncode != 0 and done.returncode < 128, (done.returncode, done.stderr)   # an error, not a crash
    assert "no usable NVIDIA GPU" in done.stderr


def _graph():
    b = GraphBuilder("g")
    x = b.input("x", "f32", [2, 8])
    b.output(b.op("Relu", x), name="y")
    return b.build()


@pytest.mark.parametrize("kwargs,message", [
    ({"arch": "sm_70"}, "arch 'sm_70' is not a GPU architecture target cuda builds for"),
    ({"arch": ""}, "arch is empty"),
])
def test_refusals(tmp_path, kwargs, message):
    with pytest.raises(CompileError, match=re.escape(message)):
        cuda.emit(_graph(), tmp_path / "m", **kwargs)


def test_a_half_tensor_of_an_op_without_half_kernel_is_refused(tmp_path):
    b = GraphBuilder("g")
    values, _ = b.top_k(b.input("x", "f16", [2, 8]), np.array([3]), outputs=["values", "indices"])
    b.output(values, name="values")
    with pytest.raises(CompileError, match=re.escape('TopK node producing "values": target cuda runs TopK on f32 only (its '
                                                     "kernel flowc_topk_f32 has no f16 variant)")):
        cuda.emit(b.build(), tmp_path / "m")


def test_vector_matmul_keeps_its_bias_out_of_the_gemm(tmp_path):
    """A[4, 8] @ b[8] + bias[4]: the GEMM has N = 1, so the bias (one per row) is no cuBLASLt
    column bias; the generic epilogue adds it."""
    b = GraphBuilder("g")
    x = b.input("x", "f32", [4, 8])
    y = b.op("Add", b.op("MatMul", x, b.const(np.ones(8, np.float32))), b.const(np.arange(4, dtype=np.float32)))
    b.output(y, name="y")
    cuda.emit(flowc.ir.passes.optimize(b.build()), tmp_path / "m")
    source = (tmp_path / "m" / "model.cu").read_text()
    gemm = next(line for line in source.split("\n") if "flowc_cuda_gemm_f32(" in line)
    assert "nullptr, FLOWC_CUDA_EPILOGUE_NONE" in gemm and "__global__" in source


def test_emitting_again_for_another_arch_builds_for_it(tmp_path, cuda_toolchain):
    """The architectures are not kept in CMake's cache: a project emitted again for another
    --arch is configured for that one."""
    for arch, sm in (("sm_90", "90"), ("sm_80", "80")):
        cuda.emit(_graph(), tmp_path / "m", arch=arch)
        subprocess.run(["cmake", "-S", str(tmp_path / "m"), "-B", str(tmp_path / "m" / "b")], check=True,
                       capture_output=True)
        flags = "".join(p.read_text() for p in (tmp_path / "m" / "b").rglob("flags.make"))
        assert f"arch=compute_{sm}" in flags and ("compute_90" in flags) == (sm == "90"), arch


def test_project_layout_and_plan(tmp_path):
    """Upload on stream 1, compute on 0, download on 2; the runtime's CUDA parts are copied."""
    result = cuda.emit(_graph(), tmp_path / "m", arch="sm_80")
    source = (tmp_path / "m" / "model.cu").read_text()
    assert '{"upload inputs", s0, 1,' in source and '"download outputs"' in source and "d.plan.num_streams = 3;" in source
    assert 'd.device = "cuda";' in source
    assert 'set(CMAKE_CUDA_ARCHITECTURES "80")' in (tmp_path / "m" / "CMakeLists.txt").read_text()
    for part in ("runtime/kernels/cuda/kernels.h", "runtime/device/cuda/cuda_device.cc", "runtime/cmake/FlowcCuda.cmake"):
        assert (tmp_path / "m" / part).is_file(), part
    assert result.ops_after == 3   # upload, Relu, download


def _chain():
    """Relu, then a product: two compute steps."""
    b = GraphBuilder("g")
    x = b.input("x", "f32", [4, 8])
    b.output(b.op("MatMul", b.op("Relu", x), b.const(np.ones((8, 3), np.float32))), name="y")
    return flowc.ir.passes.optimize(b.build())


def _plan_steps(source: str) -> list[str]:
    table = source[source.index("const flowc_plan_step kSteps"):]
    return re.findall(r'^    \{"([^"]*)", s\d+,', table[:table.index("};")], re.M)


def test_compute_steps_replay_as_one_cuda_graph(tmp_path):
    """On one GPU the compute steps become functions, each under its node's name, that one step
    between the copy actors runs through run_graph (captured per arena slot, then replayed)."""
    result = cuda.emit(_chain(), tmp_path / "m")
    source = (tmp_path / "m" / "model.cu").read_text()
    assert _plan_steps(source) == ["upload inputs", "compute steps as a CUDA graph", "download outputs"]
    table = re.search(r"kComputeSteps\[(\d+)\] = \{\n(.*?)\n\};", source, re.S)
    names = re.findall(r'\{"([^"]*)", c\d+\}', table.group(2))
    assert int(table.group(1)) == len(names) == 2 and names[-1] == "y", names   # steps are named by node (or output)
    assert f"flowc::cuda::run_graph(ctx, kComputeSteps, {len(names)})" in source
    assert '#include "runtime/device/cuda/cuda_graph.h"' in source
    # the graph holds no event: the step waits for the upload before it and signals the download after
    compute = source[source.index("int s1("):source.index("int s2(")]
    assert compute.index("cudaStreamWaitEvent") < compute.index("run_graph") < compute.index("cudaEventRecord")
    assert "cudaStreamWaitEvent" not in source[source.index("int c1("):source.index("kComputeSteps")]
    assert result.ops_after == 4   # upload, Relu, MatMul, download

    cuda.emit(_chain(), tmp_path / "apart", graphs=False)
    apart = (tmp_path / "apart" / "model.cu").read_text()
    assert len(_plan_steps(apart)) == 4 and "run_graph" not in apart


def test_a_step_that_waits_for_the_host_keeps_every_step_an_actor(tmp_path):
    """A pad value computed on the device is read back to the host, which a graph cannot hold."""
    b = GraphBuilder("g")
    x = b.input("x", "f32", [2, 3])
    value = b.op("Exp", b.input("v", "f32", []))
    b.output(b.op("Pad", b.op("Relu", x), b.const(np.array([0, 1, 0, 1], np.int64)), value), name="y")
    cuda.emit(flowc.ir.passes.optimize(b.build()), tmp_path / "m")
    source = (tmp_path / "m" / "model.cu").read_text()
    assert "cudaMemcpyAsync (pad value)" in source and "run_graph" not in source
    assert len(_plan_steps(source)) > 3


def test_dynamic_batch_kernels_take_the_batch(tmp_path):
    """max_batch: the steps' sizes are expressions of ctx->batch as on the CPU, and each generated
    kernel and attention functor takes the batch, its sizes expressions of it; the staging is
    laid out for the bound; no CUDA graph (one would be needed per batch)."""
    graph = flowc.api.import_model(str(EXAMPLES / "tinyformer.onnx"))
    result = cuda.emit(flowc.ir.passes.optimize(graph), tmp_path / "m", max_batch=8)
    source = (tmp_path / "m" / "model.cu").read_text()
    assert result.max_batch == 8 and "d.max_batch = 8;" in source and "run_graph" not in source
    kernels = re.findall(r"__global__ void __launch_bounds__\(\d+\) (k\d+)\(const int(?:32|64)_t batch, ", source)
    assert kernels and re.search(r"i < \(\d+ \* batch\)", source)
    for name in kernels:
        assert re.search(rf"{name}<<<flowc::cuda::grid_for\(\(\d+ \* ctx->batch\), 256\), 256, 0, cu.stream>>>\(ctx->batch, ",
                         source), name
    assert re.search(r"struct Epik\d+ \{\n  const int64_t batch;", source)
    assert "std::memcpy(staging + 0, ctx->inputs[0], (1024 * ctx->batch));" in source


@pytest.mark.slow
def test_dynamic_batch_project_builds(tmp_path, cuda_toolchain):
    artifact = flowc.compile(str(EXAMPLES / "tinycnn.onnx"), target="cuda", arch="sm_80,sm_90", out_dir=tmp_path / "m",
                             max_batch=4)
    assert artifact.emit.max_batch == 4 and next((tmp_path / "m" / "build").glob("libflowc_model.*.so"))
    assert "ctx->batch" in (tmp_path / "m" / "model.cu").read_text()


def test_dynamic_batch_merges_what_the_cpu_target_merges(tmp_path):
    """A step with one scratch buffer (i32 indices widened) asks for its size unrounded, which is
    affine in the batch; the int32-or-int64 indexing of a kernel is decided at the bound, not at
    the larger sample points the merge reads (2 * 300 + 3 rows of 2^22 pass 2^31 elements)."""
    b = GraphBuilder("g")
    ids = b.input("ids", "i64", ["N", 3])
    wide = b.input("wide", "f32", ["N", 1])
    b.output(b.op("Gather", b.const(np.ones((10, 4), np.float32)), b.op("Cast", ids, to="i32")), name="y")
    b.output(b.op("Relu", b.op("Expand", wide, b.const(np.array([1, 1 << 22], np.int64)))), name="z")
    cuda.emit(flowc.ir.passes.optimize(b.build()), tmp_path / "m", max_batch=300)
    source = (tmp_path / "m" / "model.cu").read_text()
    assert "flowc::cuda::workspace(ctx, (24 * ctx->batch), &cu)" in source
    assert re.search(r"k\d+\(const int32_t batch, float\* y, .*\n  for \(int32_t i = .*i < \(4194304 \* batch\)", source)

"""Target cuda with precision fp16 and bf16: tensors stored in half, every kernel computing in f32.

Without a GPU: one graph that uses every kernel with a half variant (and ops that have none,
which stay f32 between casts) emits calls of the half kernels and builds with nvcc for sm_80 and
sm_90; a test model builds in each precision. With a GPU: that graph against the numpy reference
of the same half graph and of the f32 graph, and the test models against onnxruntime.
Tolerances relative to each output's largest magnitude, as tests/ir/passes/test_precision.py:
fp16 1e-2, bf16 5e-2; against the reference of the same half graph a tenth of those, the two
differing only in the order f32 sums are taken."""
from __future__ import annotations

import re

import numpy as np
import onnxruntime
import pytest

import flowc
from flowc.codegen import cuda
from flowc.codegen.cuda.emit import HALF_KERNELS
from flowc.ir.interpreter import run
from flowc.ir.passes import optimize
from flowc.ir.passes.precision import lower_precision
from models import TINYCNN, model_inputs

HALF = ("fp16", "bf16")
TOLERANCE = {"fp16": 1e-2, "bf16": 5e-2}
MODELS = ["mlp", "resnet", "vit", "bert", "gpt2", "tinycnn"]


def kernels_graph() -> flowc.ir.Graph:
    """Every library kernel with a half variant, generated elementwise code, data movement, and
    a linear Resize (f32 only, with the Pad after it) at the end."""
    rng = np.random.default_rng(0)
    f = lambda *shape: rng.standard_normal(shape).astype(np.float32)   # noqa: E731
    b = flowc.GraphBuilder("half_kernels")
    # a 1x1 convolution starts half (ir/passes/precision.py); the ops after it follow
    x = b.conv(b.input("x", "f32", [2, 4, 8, 8]), f(4, 4, 1, 1), None)
    b.output(b.relu(b.conv(x, f(6, 4, 3, 3), f(6), pads=[1, 1, 1, 1])), name="conv_relu")
    b.output(b.conv(x, f(4, 1, 3, 3), None, group=4, strides=[2, 2]), name="depthwise")
    b.output(b.max_pool(x, kernel_shape=[2, 2], strides=[2, 2]), name="maxpool")
    b.output(b.average_pool(x, kernel_shape=[3, 3], pads=[1, 1, 1, 1]), name="avgpool")
    b.output(b.global_average_pool(x), name="gap")
    b.output(b.softmax(x, axis=-1), name="softmax")
    b.output(b.softmax(x, axis=1), name="softmax_strided")
    b.output(b.log_softmax(x, axis=-1), name="log_softmax")
    b.output(b.layer_normalization(x, f(8), f(8), axis=-1), name="layer_norm")
    b.output(b.group_normalization(x, f(4), f(4), num_groups=2), name="group_norm")
    b.output(b.reduce_sum(x, np.array([2, 3]), keepdims=0), name="sum_trailing")
    b.output(b.reduce_mean(x, np.array([1]), keepdims=1), name="mean_middle")
    b.output(b.reduce_l2(x, np.array([1, 3]), keepdims=0), name="l2_moved")
    rows = b.reshape(x, np.array([2, 4, 64]))
    b.output(b.gelu(b.matmul(rows, f(64, 16)) + f(16), approximate="tanh"), name="matmul_gelu")
    scores = b.matmul(x, b.transpose(x, perm=[0, 1, 3, 2])) * np.float32(0.35) + f(8, 8)
    b.output(b.matmul(b.softmax(scores, axis=-1), x), name="attention")
    b.output(b.tanh(x) * b.sigmoid(x) + b.erf(x), name="elementwise")
    b.output(b.concat(b.slice(x, np.array([1]), np.array([3]), np.array([1])), b.gather(x, np.array([0, 3]), axis=1),
                      axis=1), name="moved")
    up = b.resize(b.relu(x), None, np.array([1, 1, 2, 2], np.float32), mode="linear")
    b.output(b.pad(up, np.array([0, 0, 1, 1, 0, 0, 1, 1]), np.float32(0.5)), name="resized_padded")
    return b.build()


def _half_graph(precision: str):
    return lower_precision(optimize(kernels_graph()), precision, cuda.half_code)


def _within(got: dict, want: dict, tol: float, what: str) -> float:
    worst = 0.0
    for key, expected in want.items():
        scale = max(float(np.max(np.abs(expected))), 1e-6)
        np.testing.assert_allclose(got[key], expected, rtol=tol, atol=tol * scale, err_msg=f"{what}: {key}")
        worst = max(worst, float(np.max(np.abs(got[key] - expected))) / scale)
    return worst


@pytest.mark.parametrize("precision", HALF)
def test_every_half_kernel_is_called(precision, tmp_path):
    g = _half_graph(precision)
    suffix = {"fp16": "f16", "bf16": "bf16"}[precision]
    cuda.emit(g, tmp_path, arch="sm_90")
    code = (tmp_path / "model.cu").read_text()
    called = set(re.findall(r"\b(flowc_cuda_\w+_" + suffix + r")\(", code))
    assert called <= HALF_KERNELS
    expected = {f"flowc_cuda_{k}_{suffix}" for k in (
        "gemm", "conv2d", "conv2d_workspace", "maxpool2d", "avgpool2d", "global_avgpool", "softmax", "log_softmax",
        "softmax_strided", "layer_norm", "group_norm", "reduce_trailing", "reduce_middle", "attention")}
    assert expected <= called, expected - called
    assert "flowc_cuda_resize_f32(" in code           # no half Resize: f32 between casts
    assert ("__half" if precision == "fp16" else "__nv_bfloat16") in code


@pytest.mark.slow
def test_half_projects_build_for_sm80_and_sm90(tmp_path, cuda_toolchain):
    """The kernels graph in both precisions and a test model, built with nvcc and linked."""
    for precision in HALF:
        flowc.compile(kernels_graph(), target="cuda", arch="sm_80,sm_90", precision=precision,
                      out_dir=tmp_path / f"kernels-{precision}")
    shapes = {k: list(v.shape) for k, v in model_inputs("tinycnn").items()}
    flowc.compile(str(TINYCNN), target="cuda", arch="sm_80,sm_90", precision="fp16", input_shapes=shapes,
                  out_dir=tmp_path / "tinycnn-fp16")


@pytest.mark.gpu
@pytest.mark.parametrize("precision", HALF)
def test_half_kernels_match_the_reference(precision, tmp_path, cuda_toolchain, report_section):
    x = {"x": np.random.default_rng(3).standard_normal((2, 4, 8, 8)).astype(np.float32)}
    model = flowc.load(flowc.compile(kernels_graph(), target="cuda", arch="sm_80,sm_90", precision=precision,
                                     out_dir=tmp_path / precision).path)
    got = model.run(x)
    same_graph = _within(got, run(_half_graph(precision), x), TOLERANCE[precision] / 10, "half reference")
    against_f32 = _within(got, run(optimize(kernels_graph()), x), TOLERANCE[precision], "f32 reference")
    report_section(f"cuda {precision} kernels", f"max |error| / max |reference|: {same_graph:.2g} against the "
                                                f"{precision} reference, {against_f32:.2g} against f32")


@pytest.mark.gpu
@pytest.mark.parametrize("precision", HALF)
@pytest.mark.parametrize("name", MODELS)
def test_models_in_half_match_onnxruntime(name, precision, exported_model, tmp_path, cuda_toolchain, report_section):
    path = TINYCNN if name == "tinycnn" else exported_model(name, 18)
    inputs = model_inputs(name, seed=1)
    shapes = {k: list(v.shape) for k, v in inputs.items()}
    model = flowc.load(flowc.compile(str(path), target="cuda", arch="sm_80,sm_90", precision=precision,
                                     input_shapes=shapes, out_dir=tmp_path / name).path)
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    want = dict(zip([o.name for o in session.get_outputs()], session.run(None, inputs)))
    worst = _within(model.run(inputs), want, TOLERANCE[precision], f"{name} {precision}")
    report_section(f"cuda {precision}: {name}", f"max |error| / max |onnxruntime f32|: {worst:.2g}")


def test_the_graph_in_half_is_what_the_reference_checks():
    """The GPU tests' oracle: the half graph's reference is close to the f32 one (fp16)."""
    x = {"x": np.random.default_rng(3).standard_normal((2, 4, 8, 8)).astype(np.float32)}
    _within(run(_half_graph("fp16"), x), run(optimize(kernels_graph()), x), TOLERANCE["fp16"], "fp16 reference")

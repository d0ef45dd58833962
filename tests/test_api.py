"""flowc.compile / flowc.load: the artifact round trip, shape pinning, targets and errors."""
import json
import os
import subprocess
import sys
from pathlib import Path

import ml_dtypes
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import flowc
from flowc import ir
from flowc.frontend.onnx import load as import_onnx

RNG = np.random.default_rng(0)


def mlp_proto(name="mlp", batch="B") -> onnx.ModelProto:
    """x[B,16] -> MatMul, Add, Relu, MatMul, Add -> y[B,10], as exporters write it; same weights each call."""
    rng = np.random.default_rng(1)
    weights = {"w1": rng.standard_normal((16, 32)), "b1": rng.standard_normal(32),
               "w2": rng.standard_normal((32, 10)), "b2": rng.standard_normal(10)}
    inits = [numpy_helper.from_array(a.astype(np.float32), k) for k, a in weights.items()]
    nodes = [helper.make_node("MatMul", ["x", "w1"], ["h0"], name="fc1/MatMul"),
             helper.make_node("Add", ["h0", "b1"], ["h1"], name="fc1/Add"),
             helper.make_node("Relu", ["h1"], ["h2"], name="relu"),
             helper.make_node("MatMul", ["h2", "w2"], ["h3"], name="fc2/MatMul"),
             helper.make_node("Add", ["h3", "b2"], ["y"], name="fc2/Add")]
    graph = helper.make_graph(nodes, name, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 16])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, 10])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def two_input_graph() -> ir.Graph:
    b = flowc.GraphBuilder("pair")
    x = b.input("x", "f32", ["B", 4])
    y = b.input("y", "f32", ["B", 4])
    b.output(b.relu(x * y + 1.0), name="z")
    return b.build()


@pytest.fixture
def mlp_path(tmp_path) -> Path:
    path = tmp_path / "mlp.onnx"
    onnx.save(mlp_proto(), str(path))
    return path


# -- round trip ------------------------------------------------------------------------------

@pytest.mark.parametrize("given_as", ["path", "proto", "graph"])
def test_compile_load_run_matches_the_interpreter(tmp_path, mlp_path, given_as):
    model = {"path": mlp_path, "proto": mlp_proto(), "graph": import_onnx(mlp_path)}[given_as]
    artifact = flowc.compile(model, target="reference", out_dir=tmp_path / "out")
    assert artifact.path == tmp_path / "out" and artifact.target == "reference"
    loaded = flowc.load(artifact.path)
    x = RNG.standard_normal((3, 16)).astype(np.float32)
    got = loaded.run({"x": x})
    want = ir.run(import_onnx(mlp_path), {"x": x})
    assert list(got) == ["y"]
    np.testing.assert_allclose(got["y"], want["y"], rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(got["y"], ir.run(artifact.graph, {"x": x})["y"])


def test_model_describes_its_inputs_and_outputs(tmp_path, mlp_path):
    model = flowc.load(flowc.compile(mlp_path, target="reference", out_dir=tmp_path / "out").path)
    assert model.input_names == ["x"] and model.output_names == ["y"]
    assert model.inputs == [("x", "f32", ("B", 16))]
    assert model.outputs == [("y", "f32", ("B", 10))]
    assert model.inputs[0].dtype == "f32" and model.target == "reference"


def test_a_graph_given_is_not_changed(tmp_path):
    graph = two_input_graph()
    before = ir.print_graph(graph)
    artifact = flowc.compile(graph, target="reference", out_dir=tmp_path / "out", input_shapes={"x": [2, 4]})
    assert ir.print_graph(graph) == before
    assert artifact.graph is not graph


def test_progress_sees_every_stage_in_order(tmp_path, mlp_path):
    stages = []
    flowc.compile(mlp_path, target="reference", out_dir=tmp_path / "out",
                  progress=lambda stage, seconds, graph: stages.append((stage, seconds >= 0, type(graph))))
    names = [p.name for p in ir.passes.PIPELINE]
    assert [s for s, _, _ in stages] == ["import", *names, "write"]
    assert all(ok and kind is ir.Graph for _, ok, kind in stages)


# -- the artifact folder ---------------------------------------------------------------------

def test_artifact_holds_three_files(tmp_path, mlp_path):
    out = tmp_path / "out"
    artifact = flowc.compile(mlp_path, target="reference", out_dir=out)
    assert sorted(p.name for p in out.iterdir()) == ["artifact.json", "model.fir", "weights.npz"]
    assert artifact.emit is None   # the emitter's report is target cpu's
    manifest = json.loads((out / "artifact.json").read_text())
    assert manifest == {
        "format": "flowc-artifact", "format_version": 1, "flowc_version": flowc.__version__,
        "target": "reference", "devices": 1, "max_batch": None, "graph": "model.fir", "weights": "weights.npz",
        "inputs": [{"name": "x", "dtype": "f32", "shape": ["B", 16]}],
        "outputs": [{"name": "y", "dtype": "f32", "shape": ["B", 10]}],
    }
    text = (out / "model.fir").read_text()
    assert text == ir.print_graph(artifact.graph)
    with np.load(out / "weights.npz", allow_pickle=False) as npz:
        weights = {k: npz[k] for k in npz.files}
    assert ir.print_graph(ir.parse(text, weights)) == text
    assert sum(a.size for a in weights.values()) >= 16 * 32 + 32 * 10


def test_out_dir_none_makes_a_fresh_folder(mlp_path):
    first = flowc.compile(mlp_path, target="reference")
    second = flowc.compile(mlp_path, target="reference")
    assert first.path != second.path
    assert (first.path / "artifact.json").is_file() and flowc.load(first.path).output_names == ["y"]


def test_bf16_weights_round_trip(tmp_path):
    b = flowc.GraphBuilder("half")
    x = b.input("x", "bf16", [20])
    w = np.linspace(-2, 2, 20).astype(ml_dtypes.bfloat16)
    b.output(x + w, name="y")
    model = flowc.load(flowc.compile(b.build(), target="reference", out_dir=tmp_path / "out").path)
    x = np.ones(20, ml_dtypes.bfloat16)
    got = model.run({"x": x})["y"]
    assert got.dtype == ml_dtypes.bfloat16
    want = (x.astype(np.float32) + w.astype(np.float32)).astype(ml_dtypes.bfloat16)
    np.testing.assert_array_equal(got.astype(np.float32), want.astype(np.float32))


HOSTILE = "../../escaped \"name\"\n<&>\\"

WRITE_CHECK = """
import sys, numpy as np, flowc
b = flowc.GraphBuilder(sys.argv[2])
x = b.input(sys.argv[2] + "/in", "f32", [40])
h = b.relu(x * b.const(np.arange(40, dtype=np.float32), name="/etc/" + sys.argv[2]))
b.output(h, name="../" + sys.argv[2])
model = flowc.load(flowc.compile(b.build(), target="reference", out_dir=sys.argv[1]).path)
print(model.output_names)
"""


def test_nothing_is_written_outside_out_dir(tmp_path):
    cwd, tmp, home = tmp_path / "cwd", tmp_path / "tmp", tmp_path / "home"
    for d in (cwd, tmp, home):
        d.mkdir()
    env = dict(os.environ, TMPDIR=str(tmp), HOME=str(home))
    out = tmp_path / "out"
    done = subprocess.run([sys.executable, "-c", WRITE_CHECK, str(out), HOSTILE], cwd=cwd, env=env,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == repr(["../" + HOSTILE])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cwd", "home", "out", "tmp"]
    assert [list(d.iterdir()) for d in (cwd, tmp, home)] == [[], [], []]
    assert sorted(p.name for p in out.iterdir()) == ["artifact.json", "model.fir", "weights.npz"]


# -- input_shapes ------------------------------------------------------------------------------

def test_input_shapes_bind_symbolic_dims_everywhere(tmp_path, mlp_path):
    artifact = flowc.compile(mlp_path, target="reference", out_dir=tmp_path / "out", input_shapes={"x": [8, 16]})
    graph = artifact.graph
    assert str(graph.inputs[0].type) == "f32[8,16]" and str(graph.outputs[0].type) == "f32[8,10]"
    assert "B" not in ir.print_graph(graph)
    model = flowc.load(artifact.path)
    assert model.inputs == [("x", "f32", (8, 16))]
    with pytest.raises(flowc.InputError) as e:
        model.run({"x": np.zeros((3, 16), np.float32)})
    assert str(e.value) == 'input "x": expected shape [8, 16], got [3, 16] (axis 0 should be 8)'


def test_a_symbol_bound_by_one_input_binds_the_others(tmp_path):
    artifact = flowc.compile(two_input_graph(), target="reference", out_dir=tmp_path / "out",
                             input_shapes={"x": [5, 4]})
    assert [str(v.type) for v in artifact.graph.inputs] == ["f32[5,4]", "f32[5,4]"]


BAD_SHAPES = [
    ({"w": [8, 4]}, 'input_shapes names "w", which is not an input; the model\'s inputs are '
                    '"x": f32[B,4], "y": f32[B,4]'),
    ({"x": [8, 4, 1]}, 'input_shapes: input "x" has shape [B, 4] (rank 2), got [8, 4, 1] (rank 3)'),
    ({"x": [8, 5]}, 'input_shapes: input "x" expects shape [B, 4], got [8, 5] (axis 1 should be 4)'),
    ({"x": [8, 4], "y": [9, 4]}, 'input_shapes: input "y" expects shape [B, 4] with B=8 (bound by an earlier '
                                 'input), got [9, 4]'),
    ({"x": [8, -1]}, 'input_shapes: input "x": expected a list of non-negative ints, got [8, -1]'),
    ({"x": "8,4"}, "input_shapes: input \"x\": expected a list of non-negative ints, got '8,4'"),
]


@pytest.mark.parametrize("shapes,message", BAD_SHAPES)
def test_bad_input_shapes_are_named(tmp_path, shapes, message):
    with pytest.raises(flowc.CompileError) as e:
        flowc.compile(two_input_graph(), target="reference", out_dir=tmp_path / "out", input_shapes=shapes)
    assert str(e.value) == message
    assert not (tmp_path / "out").exists()


# -- targets ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs,message", [
    ({}, 'tensor "x" has type f32[B,16]: target cpu needs static shapes; pin the input shapes (input_shapes= in flowc.compile, --input-shape NAME=D0,D1,... for flowc compile) or bound a symbolic batch (max_batch=N, --max-batch N)'),
    ({"target": "cuda"}, 'tensor "x" has type f32[B,16]: target cuda needs static shapes; pin the input shapes (input_shapes= in flowc.compile, --input-shape NAME=D0,D1,... for flowc compile)'),
    ({"target": "cuda", "arch": "sm_70"}, "arch 'sm_70' is not a GPU architecture target cuda builds for; use one or more of sm_80, sm_86, sm_89, sm_90, sm_90a (comma-separated)"),
    ({"target": "tpu"}, "unknown target 'tpu'; targets: reference, cpu, cuda (available now: reference, cpu, cuda)"),
    ({"target": "reference", "devices": 0}, "devices must be a positive int, got 0"),
])
def test_targets_not_available_are_refused(tmp_path, mlp_path, kwargs, message):
    with pytest.raises(flowc.CompileError) as e:
        flowc.compile(mlp_path, out_dir=tmp_path / "out", **kwargs)
    assert str(e.value) == message
    assert not (tmp_path / "out").exists()


# -- several devices ----------------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs", [
    {"devices": 2}, {"devices": 4}, {"mesh": "2x2"}, {"mesh": (2, 4)}, {"devices": 4, "mesh": "4"},
    {"devices": 2, "sbp": {"x": "S(1)"}}, {"mesh": "2x2", "sbp": {"x": "(S(0), B)"}},
    {"devices": 4, "memory_limit": "8KiB"}, {"devices": 2, "links": "pcie"},
    {"devices": 4, "device_profile": "h100", "links": "nvlink"},
])
def test_a_plan_on_several_devices_computes_what_one_device_does(tmp_path, mlp_path, kwargs):
    x = np.random.default_rng(2).standard_normal((8, 16)).astype(np.float32)
    want = flowc.load(flowc.compile(mlp_path, target="reference", out_dir=tmp_path / "one",
                                    input_shapes={"x": [8, 16]}).path).run({"x": x})["y"]
    artifact = flowc.compile(mlp_path, target="reference", out_dir=tmp_path / "many", input_shapes={"x": [8, 16]},
                             **kwargs)
    model = flowc.load(artifact.path)
    np.testing.assert_allclose(model.run({"x": x})["y"], want, rtol=1e-5, atol=1e-5)
    manifest = json.loads((artifact.path / "artifact.json").read_text())
    assert manifest["mesh"] == list(artifact.plan.mesh.shape) and model.mesh == artifact.plan.mesh.shape
    assert manifest["devices"] == artifact.plan.mesh.size
    assert "predicted" in (artifact.path / "plan.txt").read_text()
    ranks = artifact.plan.mesh.size
    assert sorted(p.name for p in artifact.path.glob("weights.r*.npz")) == sorted(f"weights.r{r}.npz" for r in range(ranks))
    if "memory_limit" in kwargs:
        assert artifact.plan.weight_bytes() <= 8 * 1024


@pytest.mark.parametrize("kwargs,message", [
    ({"devices": 3, "mesh": "2x2"}, "devices=3 but mesh 2x2 has 4 devices"),
    ({"mesh": "2by2"}, "mesh '2by2': write devices per axis joined by x, e.g. 4 or 2x4"),
    ({"mesh": "0x2"}, "mesh '0x2': every axis needs a positive number of devices"),
    ({"sbp": {"x": "S(0)"}}, "sbp, memory_limit, links, device_profile and topology describe a plan over several devices; "
                             'give devices=N or mesh="AxB" too'),
    ({"devices": 2, "sbp": {"q": "S(0)"}}, 'SBP hint for "q": it is not a tensor of the optimised graph; '
                                           "hint a graph input or an op's output"),
    ({"devices": 2, "sbp": {"x": "S(7)"}}, 'SBP hint "x"=S(7): f32[8,16] does not split evenly on mesh 2'),
    ({"devices": 2, "sbp": {"x": "Q"}}, "SBP 'Q': 'Q' is not S(axis), B or P"),
    ({"devices": 2, "memory_limit": "lots"}, "memory limit 'lots': give a positive number of bytes or a size like \"8GiB\""),
    ({"devices": 2, "links": "carrier-pigeon"},
     "unknown link profile 'carrier-pigeon'; built in: nvlink, pcie, infiniband, shm"),
    ({"devices": 2, "sbp": {"x": 0}}, 'SBP hint for "x": expected a string like "S(0)" or "(S(0), B)", or a tuple of '
                                      "ir.sbp.Sbp, got 0"),
    ({"devices": 2, "device_profile": "tpu"}, "unknown device profile 'tpu'; built in: h100, cpu"),
    ({"devices": 2, "max_batch": 8}, "max_batch with several devices is not supported: the plan splits fixed "
                                     "shapes; pin the batch with input_shapes"),
])
def test_bad_parallel_options_are_named(tmp_path, mlp_path, kwargs, message):
    shapes = None if "max_batch" in kwargs else {"x": [8, 16]}
    with pytest.raises(flowc.CompileError) as e:
        flowc.compile(mlp_path, target="reference", out_dir=tmp_path / "out", input_shapes=shapes, **kwargs)
    assert str(e.value) == message
    assert not (tmp_path / "out").exists()


def test_a_memory_limit_no_plan_fits_names_the_weights(tmp_path, mlp_path):
    with pytest.raises(flowc.CompileError) as e:
        flowc.compile(mlp_path, target="reference", out_dir=tmp_path / "out", input_shapes={"x": [8, 16]},
                      devices=2, memory_limit=64)
    assert str(e.value).startswith("no plan on mesh 2 fits the memory limit of 0.0 MiB per device")
    assert "largest weights:" in str(e.value) and "f32[16,32]" in str(e.value)


# -- running: input errors -------------------------------------------------------------------------

@pytest.fixture
def pair_model(tmp_path):
    return flowc.load(flowc.compile(two_input_graph(), target="reference", out_dir=tmp_path / "pair").path)


BAD_INPUTS = [
    ({"x": np.zeros((1, 4), np.float32)}, 'missing input "y"; the model takes "x": f32[B,4], "y": f32[B,4]'),
    ({"x": np.zeros((1, 4), np.float64), "y": np.zeros((1, 4), np.float32)},
     'input "x": expected dtype f32 (float32), got float64'),
    ({"x": np.zeros((1, 4), np.float32), "y": np.zeros((2, 4), np.float32)},
     'input "y": expected shape [B, 4], got [2, 4] (axis 0 should be B=1)'),
    ({"x": np.zeros((1, 4), np.float32), "y": np.zeros((1, 4), np.float32), "q": 0},
     'unknown input "q"; the model takes "x", "y"'),
]


@pytest.mark.parametrize("feeds,message", BAD_INPUTS)
def test_run_names_the_bad_input(pair_model, feeds, message):
    with pytest.raises(flowc.InputError) as e:
        pair_model.run(feeds)
    assert str(e.value) == message


def test_run_binds_the_batch_per_call(pair_model):
    for batch in (1, 7):
        x = RNG.standard_normal((batch, 4)).astype(np.float32)
        np.testing.assert_allclose(pair_model.run({"x": x, "y": x})["z"], np.maximum(x * x + 1, 0), rtol=1e-6)


# -- loading: broken artifacts ------------------------------------------------------------------------

def test_load_a_missing_folder(tmp_path):
    with pytest.raises(flowc.CompileError) as e:
        flowc.load(tmp_path / "nope")
    assert str(e.value) == (f'artifact "{tmp_path / "nope"}" does not exist; compile the model first '
                            f'(flowc compile MODEL -o "{tmp_path / "nope"}")')


def test_load_a_folder_that_is_no_artifact(tmp_path):
    with pytest.raises(flowc.CompileError, match="has no artifact.json; compile the model first"):
        flowc.load(tmp_path)


@pytest.mark.parametrize("damage,message", [
    (lambda out: (out / "artifact.json").write_text("{not json"),
     "artifact.json is not valid JSON"),
    (lambda out: (out / "artifact.json").write_text("[1, 2]"),
     "artifact.json is not a flowc artifact manifest"),
    (lambda out: _edit_manifest(out, format_version=99),
     "artifact format version 99, this flowc (0.1.0) reads version 1; compile the model again"),
    (lambda out: _edit_manifest(out, target="tpu"), "target 'tpu' cannot be run by flowc 0.1.0"),
    (lambda out: _edit_manifest(out, outputs=[]),
     "the outputs in artifact.json do not match model.fir; compile the model again"),
    (lambda out: (out / "weights.npz").write_bytes(b"garbage"), "cannot read its graph and weights"),
    (lambda out: (out / "model.fir").unlink(), "cannot read its graph and weights"),
    (lambda out: np.savez(out / "weights.npz"), "model.fir: IR text, line 2, column 42: resource 0 is not among the resources given"),
    (lambda out: (out / "model.fir").write_text("graph g( {"),
     "model.fir: IR text, line 1, column 10: expected a value (%name), got '{'"),
])
def test_load_a_damaged_artifact(tmp_path, mlp_path, damage, message):
    out = flowc.compile(mlp_path, target="reference", out_dir=tmp_path / "out").path
    damage(out)
    with pytest.raises(flowc.CompileError) as e:
        flowc.load(out)
    assert str(e.value).startswith(f'artifact "{out}": ')
    assert message in str(e.value)


def _edit_manifest(out: Path, **changes) -> None:
    manifest = json.loads((out / "artifact.json").read_text())
    manifest.update(changes)
    (out / "artifact.json").write_text(json.dumps(manifest))


# -- arguments and graphs given to compile --------------------------------------------------------

@pytest.mark.parametrize("kwargs,message", [
    (dict(target=[]), "unknown target []; targets: reference, cpu, cuda (available now: reference, cpu, cuda)"),
    (dict(out_dir=5), "out_dir must be a path (str or os.PathLike), got int"),
    (dict(input_shapes=[("x", [1, 4])]),
     'input_shapes must be a mapping of input name -> shape, e.g. {"x": [8, 784]}, got list'),
    (dict(input_shapes={"x": [2 ** 63, 4]}),
     'input_shapes: input "x": [9223372036854775808, 4] has a dimension over 2**63-1'),
])
def test_compile_checks_its_arguments(tmp_path, kwargs, message):
    kwargs = {"target": "reference", "out_dir": tmp_path / "out", **kwargs}
    with pytest.raises(flowc.CompileError) as e:
        flowc.compile(two_input_graph(), **kwargs)
    assert str(e.value) == message


def test_an_output_folder_that_cannot_be_written_is_named(tmp_path):
    (tmp_path / "file").write_text("")
    for out, reason in [(tmp_path / "file" / "x", "Not a directory"), (f"{tmp_path}/a\0b\nc", "embedded null byte")]:
        with pytest.raises(flowc.CompileError) as e:
            flowc.compile(two_input_graph(), target="reference", out_dir=out)
        assert str(e.value) == f"output folder {flowc.errors.quote_name(str(out))} cannot be written: {reason}"
        assert "\0" not in str(e.value) and "\n" not in str(e.value)


def test_load_checks_its_argument_and_quotes_the_path():
    with pytest.raises(flowc.CompileError, match="^flowc.load takes the path of an artifact folder, got NoneType$"):
        flowc.load(None)
    with pytest.raises(flowc.CompileError) as e:
        flowc.load("a\0b")
    assert str(e.value) == r'artifact "a\x00b" does not exist; compile the model first (flowc compile MODEL -o "a\x00b")'


def _broken(how: str) -> ir.Graph:
    g = two_input_graph()
    if how == "out of order":
        g.nodes.reverse()
    elif how == "output not in the graph":
        g.outputs = [ir.Value("ghost", g.outputs[0].type)]
    elif how == "no outputs":
        g.outputs = []
    elif how == "constant without data":
        g.constants[0].const = None
    return g


@pytest.mark.parametrize("how,message", [
    ("out of order", 'Relu node producing "z": input "1" is not defined before the node (undefined or out of order)'),
    ("output not in the graph", 'graph "pair": output "ghost" is not defined'),
    ("no outputs", 'graph "pair": the graph has no outputs'),
    ("constant without data", 'constant "c" has no data; give ir.parse the resources that ir.graph_resources '
                              "returned with the text"),
])
def test_compile_verifies_a_graph_it_is_given(tmp_path, how, message):
    with pytest.raises(flowc.CompileError) as e:
        flowc.compile(_broken(how), target="reference", out_dir=tmp_path / "out")
    assert str(e.value) == message
    assert not (tmp_path / "out").exists()


def test_the_onnx_frontend_is_reachable_after_import_flowc():
    done = subprocess.run([sys.executable, "-c", "import flowc; print(flowc.frontend.onnx.load.__name__)"],
                          capture_output=True, text=True)
    assert done.stdout == "load\n", done.stderr


def test_cpu_target_compiles_builds_and_matches_the_interpreter(tmp_path, mlp_path):
    artifact = flowc.compile(mlp_path, out_dir=tmp_path / "out", input_shapes={"x": [3, 16]})
    assert artifact.target == "cpu"
    emitted = artifact.emit   # what the emitter reports, for flowc compile --report
    assert emitted.ops_before == len(artifact.graph.nodes) and 0 < emitted.ops_after <= emitted.ops_before
    plan = emitted.memory
    assert 0 < plan.lower_bound_bytes <= plan.peak_bytes <= plan.no_reuse_bytes
    assert emitted.weight_bytes >= 4 * (16 * 32 + 32 + 32 * 10 + 10)
    for name in ("CMakeLists.txt", "model.cpp", "model.h", "main.c", "weights.bin", "model.fir", "artifact.json"):
        assert (artifact.path / name).is_file(), name
    assert not (artifact.path / "weights.npz").exists()
    model = flowc.load(artifact.path)
    x = np.random.default_rng(3).standard_normal((3, 16)).astype(np.float32)
    want = flowc.ir.run(artifact.graph, {"x": x})
    got = model.run({"x": x})
    for name in model.output_names:
        np.testing.assert_allclose(got[name], want[name], rtol=1e-4, atol=1e-5)
    with pytest.raises(flowc.InputError, match='input "x"'):
        model.run({"x": np.zeros((2, 16), np.float32)})

"""The Python graph builder: the same IR as the ONNX importer, operators, registry ops, errors."""
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import flowc
from flowc import ir
from flowc.frontend.builder import UnknownOpError
from flowc.frontend.onnx import load as import_onnx

rng = np.random.default_rng(0)
W1, B1 = rng.standard_normal((16, 32)).astype(np.float32), rng.standard_normal(32).astype(np.float32)
W2, B2 = rng.standard_normal((32, 10)).astype(np.float32), rng.standard_normal(10).astype(np.float32)


def mlp_onnx(tensor_names, node_names=("", "", "", "", "")) -> onnx.ModelProto:
    inits = [numpy_helper.from_array(a, k) for k, a in (("w1", W1), ("b1", B1), ("w2", W2), ("b2", B2))]
    h0, h1, h2, h3 = tensor_names
    nodes = [helper.make_node("MatMul", ["x", "w1"], [h0], name=node_names[0]),
             helper.make_node("Add", [h0, "b1"], [h1], name=node_names[1]),
             helper.make_node("Relu", [h1], [h2], name=node_names[2]),
             helper.make_node("MatMul", [h2, "w2"], [h3], name=node_names[3]),
             helper.make_node("Add", [h3, "b2"], ["y"], name=node_names[4])]
    graph = helper.make_graph(nodes, "mlp", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["B", 16])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["B", 10])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


def assert_round_trips(graph: ir.Graph) -> None:
    text = ir.print_graph(graph)
    assert ir.print_graph(ir.parse(text, ir.graph_resources(graph))) == text


# -- the same IR as the importer ----------------------------------------------------------------

def test_mlp_with_operators_prints_as_the_imported_onnx_mlp(tmp_path):
    b = flowc.GraphBuilder("mlp")
    x = b.input("x", "f32", ["B", 16])
    w1, b1, w2, b2 = b.const(W1, "w1"), b.const(B1, "b1"), b.const(W2, "w2"), b.const(B2, "b2")
    h = b.relu(x @ w1 + b1)
    b.output(h @ w2 + b2, name="y")
    built = b.build()
    path = tmp_path / "mlp.onnx"
    onnx.save(mlp_onnx(["0", "1", "2", "3"]), str(path))
    imported = import_onnx(path)
    assert ir.print_graph(built) == ir.print_graph(imported)
    assert_round_trips(built)
    x = rng.standard_normal((3, 16)).astype(np.float32)
    np.testing.assert_array_equal(ir.run(built, {"x": x})["y"], ir.run(imported, {"x": x})["y"])


def test_named_nodes_and_tensors_print_as_the_imported_onnx_mlp():
    names = ["fc1/MatMul", "fc1/Add", "act/Relu", "fc2/MatMul", "fc2/Add"]
    b = flowc.GraphBuilder("mlp")
    x = b.input("x", "f32", ["B", 16])
    w1, b1, w2, b2 = b.const(W1, "w1"), b.const(B1, "b1"), b.const(W2, "w2"), b.const(B2, "b2")
    h = b.matmul(x, w1, name=names[0], outputs=["h0"])
    h = b.add(h, b1, name=names[1], outputs=["h1"])
    h = b.relu(h, name=names[2], outputs=["h2"])
    h = b.matmul(h, w2, name=names[3], outputs=["h3"])
    b.output(b.add(h, b2, name=names[4]), name="y")
    imported = import_onnx(mlp_onnx(["h0", "h1", "h2", "h3"], names))
    assert ir.print_graph(b.build()) == ir.print_graph(imported)
    assert 'loc("fc1/MatMul")' in ir.print_graph(imported)


def test_numpy_operands_become_constants_once():
    b = flowc.GraphBuilder("g")
    x = b.input("x", "f32", [2, 16])
    h = b.matmul(x, W1)
    b.output(b.add(b.matmul(x, W1), h))
    graph = b.build()
    assert [(v.name, str(v.type)) for v in graph.constants] == [("c", "f32[16,32]")]


# -- operators and eager types ------------------------------------------------------------------

def test_operators_and_scalars():
    b = flowc.GraphBuilder("ops")
    x = b.input("x", "f32", ["N", 4])
    m = np.full((4, 4), 0.5, np.float32)
    results = {"add": x + 1, "radd": 2.0 + x, "sub": x - np.float32(3), "rsub": 1 - x, "mul": x * 2,
               "div": x / 4, "rdiv": 1 / (x + 10), "neg": -x, "matmul": x @ m, "rmatmul": m @ b.transpose(x)}
    for name, t in results.items():
        b.output(t, name=name)
    graph = b.build()
    assert str(results["rmatmul"].type) == "f32[4,N]" and str(results["add"].type) == "f32[N,4]"
    assert all(str(v.type) == "f32[]" for v in graph.constants if v.const.ndim == 0)
    xv = np.arange(8, dtype=np.float32).reshape(2, 4)
    got = ir.run(graph, {"x": xv})
    want = {"add": xv + 1, "radd": 2 + xv, "sub": xv - 3, "rsub": 1 - xv, "mul": xv * 2, "div": xv / 4,
            "rdiv": 1 / (xv + 10), "neg": -xv, "matmul": xv @ m, "rmatmul": m @ xv.T}
    for name in want:
        np.testing.assert_allclose(got[name], want[name], rtol=1e-6, err_msg=name)


def test_integer_tensors_take_integer_scalars():
    b = flowc.GraphBuilder("ints")
    i = b.input("i", "i32", [3])
    t = i * 3 + 1
    assert str(t.type) == "i32[3]"


def test_types_are_inferred_as_ops_are_added():
    b = flowc.GraphBuilder("eager")
    x = b.input("x", "f32", ["B", 3, 32, 32])
    y = b.conv(x, np.zeros((8, 3, 3, 3), np.float32), strides=[2, 2], pads=[1, 1, 1, 1])
    assert str(y.type) == "f32[B,8,16,16]" and y.shape == ("B", 8, 16, 16) and y.dtype.name == "f32"


# -- registry ops ----------------------------------------------------------------------------------

def test_every_registry_op_is_a_snake_case_method():
    b = flowc.GraphBuilder("g")
    for name in ("layer_normalization", "LayerNormalization", "layernormalization", "matmul", "mat_mul",
                 "reduce_mean", "global_average_pool", "is_nan", "prelu"):
        assert callable(getattr(b, name)), name
    assert {"layer_normalization", "mat_mul", "relu"} <= set(dir(b))


def test_split_returns_a_tuple():
    b = flowc.GraphBuilder("split")
    x = b.input("x", "f32", ["B", 6])
    p, q = b.split(x, axis=1, num_outputs=2)
    r = b.split(x, np.array([1, 2, 3]), axis=1)
    assert [str(t.type) for t in (p, q)] == ["f32[B,3]", "f32[B,3]"]
    assert [str(t.type) for t in r] == ["f32[B,1]", "f32[B,2]", "f32[B,3]"]


def test_layer_normalization_with_its_optional_outputs():
    b = flowc.GraphBuilder("ln")
    x = b.input("x", "f32", ["B", 8])
    gamma, beta = np.ones(8, np.float32), np.zeros(8, np.float32)
    y = b.layer_normalization(x, gamma, beta, axis=-1, epsilon=1e-5)
    assert str(y.type) == "f32[B,8]" and y.value.producer.attrs == {"epsilon": 1e-5}
    y2, mean, inv_std = b.layer_normalization(x, gamma, outputs=3)
    assert [str(t.type) for t in (y2, mean, inv_std)] == ["f32[B,8]", "f32[B,1]", "f32[B,1]"]


def test_attributes_are_converted_by_the_schema():
    b = flowc.GraphBuilder("attrs")
    x = b.input("x", "f32", [2, 3])
    assert str(b.cast(x, to="f16").type) == "f16[2,3]"
    assert str(b.cast(x, to=np.int32).type) == "i32[2,3]"
    t = b.transpose(x, perm=np.array([1, 0]))
    assert t.value.producer.attrs == {"perm": (1, 0)}


def test_optional_inputs_may_be_omitted_with_none():
    b = flowc.GraphBuilder("clip")
    x = b.input("x", "f32", [4])
    y = b.clip(x, None, np.float32(6))
    assert y.value.producer.inputs[1] is None
    b.output(y, name="y")
    got = ir.run(b.build(), {"x": np.array([-1, 2, 7, 9], np.float32)})["y"]
    np.testing.assert_array_equal(got, [-1, 2, 6, 6])


# -- outputs ---------------------------------------------------------------------------------------

def test_outputs_of_inputs_and_constants_get_an_identity():
    b = flowc.GraphBuilder("pass")
    x = b.input("x", "f32", [2])
    b.output(x)
    b.output(x, name="x_again")
    b.output(b.const(np.ones(2, np.float32), name="k"), name="ones")
    graph = b.build()
    assert [v.name for v in graph.outputs] == ["x", "x_again", "ones"]
    assert [n.op for n in graph.nodes] == ["Identity", "Identity"]


# -- errors ------------------------------------------------------------------------------------------

@pytest.fixture
def builder():
    b = flowc.GraphBuilder("errors")
    return b, b.input("x", "f32", ["B", 4])


@pytest.mark.parametrize("call,message", [
    (lambda b, x: b.relu(x, alpha=1.0), "Relu node: unknown attribute 'alpha' (known: none)"),
    (lambda b, x: b.leaky_relu(x, alpha="big"),
     "LeakyRelu node: attribute 'alpha' should be float: expected a float, got 'big'"),
    (lambda b, x: b.add(x, np.ones(5, np.float32)),
     'Add node producing "0": input shapes [B,4] and [5] do not broadcast'),
    (lambda b, x: b.add(x, np.ones(4, np.float64)),
     'Add node producing "0": inputs must share one dtype, got "x": f32, "c": f64'),
    (lambda b, x: b.relu(x, x), 'Relu node producing "0": takes 1 input (X), got 2'),
    (lambda b, x: b.split(x, axis=1),
     "Split: the number of outputs is not known; give num_outputs= (or the output names with outputs=[...])"),
    (lambda b, x: b.relu(object()), "cannot use a object as an operand; give a Tensor from this builder, "
                                    "a numpy array or a Python number or list"),
    (lambda b, x: b.relu(x, outputs=["x"]), 'graph "errors": tensor "x" is defined twice'),
    (lambda b, x: b.output(x, name="x") and b.output(x), 'tensor "x" is already an output of graph "errors"'),
    (lambda b, x: b.input("x", "f32", [1]), 'graph "errors": tensor "x" is defined twice'),
    (lambda b, x: flowc.GraphBuilder("other").relu(x),
     'tensor "x" belongs to another GraphBuilder (graph "errors")'),
])
def test_bad_calls_raise_clear_errors(builder, call, message):
    b, x = builder
    with pytest.raises(flowc.CompileError) as e:
        call(b, x)
    assert str(e.value) == message


def test_an_unknown_dtype_is_named(builder):
    b, _ = builder
    with pytest.raises(flowc.CompileError, match="^input \"q\": unsupported element type 'f12'; flowc supports f32, "):
        b.input("q", "f12", [1])


def test_an_unknown_op_suggests_close_names(builder):
    b, x = builder
    with pytest.raises(UnknownOpError) as e:
        b.layer_normalisation(x)
    assert str(e.value).startswith("GraphBuilder has no op 'layer_normalisation'; did you mean "
                                   "layer_normalization")
    assert str(e.value).endswith("? (ops are the registry's, in snake_case: flowc.ir.all_ops())")
    assert isinstance(e.value, flowc.CompileError) and not hasattr(b, "no_such_op")


def test_a_failed_call_leaves_the_graph_as_it_was(builder):
    b, x = builder
    before = ir.print_graph(b.graph)
    with pytest.raises(flowc.CompileError):
        b.add(x, np.ones(5, np.float32))
    with pytest.raises(flowc.CompileError):
        b.split(x, np.array([1, 1]), axis=0, outputs=["p", "x"])
    assert ir.print_graph(b.graph) == before
    b.output(b.add(x, np.ones(4, np.float32)), name="p")
    assert [v.name for v in b.build().outputs] == ["p"]


def test_a_built_builder_is_closed(builder):
    b, x = builder
    b.output(x)
    b.build()
    with pytest.raises(flowc.CompileError, match='graph "errors" is already built; start a new GraphBuilder'):
        b.relu(x)


def test_build_verifies_the_graph():
    with pytest.raises(flowc.CompileError, match='graph "empty": the graph has no outputs'):
        flowc.GraphBuilder("empty").build()


@pytest.mark.parametrize("dt,number,message", [
    ("i64", 2.5, 'the number 2.5 cannot be used with tensor "x" (i64[2]) as i64: 2.5 is not an integer; '
                 "cast the tensor first"),
    ("u8", -1, 'the number -1 cannot be used with tensor "x" (u8[2]) as u8: -1 is out of the range of u8 (0 to 255); '
                "cast the tensor first"),
    ("f16", 1e10, 'the number 10000000000.0 cannot be used with tensor "x" (f16[2]) as f16: '
                  "10000000000.0 overflows f16 (largest 65504.0); cast the tensor first"),
])
def test_numbers_a_tensor_dtype_cannot_hold_are_refused(dt, number, message):
    b = flowc.GraphBuilder("scalars")
    x = b.input("x", dt, [2])
    with pytest.raises(flowc.CompileError) as e:
        x * number
    assert str(e.value) == message
    assert (x * 2.0).dtype.name == dt   # a whole float is exact in an integer tensor


@pytest.mark.parametrize("shape,message", [
    ([1.5], 'input "x": a dimension is a non-negative int or a symbol name, got 1.5'),
    ([None], 'input "x": a dimension is a non-negative int or a symbol name, got None'),
    ([-4], 'input "x": dimension -4 is out of range (0 to 2**63-1)'),
    ([2 ** 63], 'input "x": dimension 9223372036854775808 is out of range (0 to 2**63-1)'),
])
def test_input_dims_must_be_sizes_or_names(shape, message):
    with pytest.raises(flowc.CompileError) as e:
        flowc.GraphBuilder("dims").input("x", "f32", shape)
    assert str(e.value) == message


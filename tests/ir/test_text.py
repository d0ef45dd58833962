"""The IR text form: print -> parse -> print is the identity; parse errors are exact."""
import numpy as np
import pytest

import flowc
from flowc import ir
from flowc.ir import tensor_type


def roundtrip(graph: ir.Graph) -> str:
    text = ir.print_graph(graph)
    again = ir.parse(text, ir.graph_resources(graph))
    assert ir.print_graph(again) == text
    ir.verify(again)
    return text


def test_printed_form_is_for_people():
    g = ir.Graph("mlp")
    x = g.add_input("x", tensor_type("f32", ["B", 4]))
    b = g.add_const(np.array([0.5, -1.0, 2.0, 0.25], np.float32), "b")
    w = g.add_const(np.ones((4, 32), np.float32), "w")
    s = g.add_node("Add", [x, b], name="/fc/Add").outputs[0]
    y = g.add_node("LeakyRelu", [s], attrs={"alpha": 0.2}, output_names=["y"]).outputs[0]
    g.add_node("Mul", [s, s], output_names=["unused"])
    g.outputs = [y]
    del w
    assert roundtrip(g) == (
        "graph mlp(%x: f32[B,4]) {\n"
        "  %b: f32[4] = const dense<[0.5, -1.0, 2.0, 0.25]>\n"
        "  %w: f32[4,32] = const dense_resource<1>\n"
        '  %0: f32[B,4] = Add(%x, %b) loc("/fc/Add")\n'
        "  %y: f32[B,4] = LeakyRelu[alpha=0.2](%0)\n"
        "  %unused: f32[B,4] = Mul(%0, %0)\n"
        "  return %y\n"
        "}\n")


@pytest.mark.parametrize("name", [
    'quote"d', "new\nline", "back\\slash", "../../etc/passwd", "onnx::MatMul_12", "/layer.0/attn/Softmax",
    "tab\there", "uni\u00e9\u4e2d", "%percent", "", " ", "}", "graph", "inf", "_", "-", "0",
])
def test_any_name_round_trips(name):
    g = ir.Graph(name or "g")
    x = g.add_input(name or "x", tensor_type("f32", [name if name and name.isidentifier() else "N", 2]))
    y = g.add_node("Relu", [x], name=name, output_names=[name + "out"]).outputs[0]
    g.outputs = [y]
    roundtrip(g)


@pytest.mark.parametrize("dt", ["f32", "f16", "bf16", "f64", "i64", "i32", "i8", "u8", "bool"])
def test_inline_constants_of_every_dtype_read_back_exactly(dt):
    g = ir.Graph("c")
    d = ir.dtype(dt)
    if d.is_float:
        values = np.array([0.1, -2.5, 1e-20, 3.4e38 if dt != "f16" else 65504, np.inf, -np.inf, np.nan, 0.0])
    elif dt == "bool":
        values = np.array([True, False, True])
    else:
        values = np.array([0, 1, -1 if dt[0] == "i" else 255, 127])
    c = g.add_const(values.astype(d.np), "c")
    g.outputs = [g.add_node("Identity", [c]).outputs[0]]
    text = roundtrip(g)
    again = ir.parse(text)
    np.testing.assert_array_equal(again.constants[0].const.astype(np.float64), c.const.astype(np.float64))
    assert again.constants[0].const.dtype == d.np


def test_attributes_of_every_kind_round_trip():
    g = ir.Graph("attrs")
    x = g.add_input("x", tensor_type("f32", [2, 3]))
    y = g.add_node("HardSigmoid", [x], attrs={"alpha": 1e-5, "beta": 0.1}).outputs[0]
    z = g.add_node("Gelu", [y], attrs={"approximate": "tanh"}).outputs[0]
    g.outputs = [z]
    text = roundtrip(g)
    assert "HardSigmoid[alpha=1e-05, beta=0.1]" in text
    assert 'Gelu[approximate="tanh"]' in text


def test_default_attributes_are_not_printed():
    g = ir.Graph("d")
    x = g.add_input("x", tensor_type("f32", [2]))
    g.outputs = [g.add_node("LeakyRelu", [x], attrs={"alpha": 0.01}).outputs[0]]
    assert "LeakyRelu(%x)" in roundtrip(g)


def test_symbolic_and_unknown_dims_round_trip():
    g = ir.Graph("dims")
    x = g.add_input("x", tensor_type("f32", ["batch_size", "128*S", "?", "odd name"]))
    g.outputs = [g.add_node("Relu", [x]).outputs[0]]
    text = roundtrip(g)
    assert 'f32[batch_size,128*S,?,"odd name"]' in text


def test_large_constants_refer_to_resources():
    g = ir.Graph("r")
    w = g.add_const(np.arange(100, dtype=np.float32), "w")
    g.outputs = [g.add_node("Neg", [w]).outputs[0]]
    text = ir.print_graph(g)
    assert "%w: f32[100] = const dense_resource<0>" in text
    without = ir.parse(text)
    assert without.constants[0].const is None
    assert ir.print_graph(without) == text
    with pytest.raises(flowc.CompileError, match='constant "w" has no data'):
        ir.run(without, {})
    full = ir.parse(text, ir.graph_resources(g))
    np.testing.assert_array_equal(ir.run(full, {})[g.outputs[0].name], -np.arange(100, dtype=np.float32))


PARSE_ERRORS = [
    ("graph g(%x: f32[2]) {\n  %y: f32[2] = Foo(%x)\n  return %y\n}\n",
     "IR text, line 2, column 16: unknown op 'Foo'"),
    ("graph g(%x: f32[2]) {\n  %y: f32[2] = Relu(%z)\n  return %y\n}\n",
     "IR text, line 2, column 21: value %z is used before it is defined"),
    ("graph g(%x: f33[2]) {\n  return %x\n}\n",
     "IR text, line 1, column 13: expected an element type (f32, f16, bf16, f64, i64, i32, i8, u8, bool), got 'f33'"),
    ("graph g(%x: f32[2]) {\n  %y: f32[2] = Relu(%x)\n  return %y\n",
     "IR text, line 4, column 1: expected '}', got end of text"),
    ("graph g(%x: f32[2]) {\n  %x: f32[2] = Relu(%x)\n  return %x\n}\n",
     'IR text, line 2, column 3: graph "g": tensor "x" is defined twice'),
    ("graph g() {\n  %c: f32[3] = const dense<[1.0, 2.0]>\n  return %c\n}\n",
     "IR text, line 2, column 28: 2 elements do not fill f32[3]"),
    ("graph g(%x: f32[2]) {\n  %y: f32[2] = LeakyRelu[beta=1.0](%x)\n  return %y\n}\n",
     "IR text, line 2, column 3: LeakyRelu node: unknown attribute 'beta' (known: alpha)"),
    ("graph g(%x: f32[2]) {\n  %y: f32[2] = Relu(%x) $\n}\n",
     "IR text, line 2, column 25: unexpected character '$'"),
]


@pytest.mark.parametrize("text,message", PARSE_ERRORS)
def test_parse_errors_name_line_column_and_problem(text, message):
    with pytest.raises(flowc.CompileError) as e:
        ir.parse(text)
    assert str(e.value) == message

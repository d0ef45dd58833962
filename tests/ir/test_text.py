"""The IR text form: print -> parse -> print is the identity; parse errors are exact."""
import ml_dtypes
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


def _extremes(d: ir.DType) -> np.ndarray:
    """Values of dtype d at its edges: largest, smallest, subnormal, +-inf, NaN and -0 where it has them."""
    if d.kind == "bool":
        return np.array([True, False, True])
    if d.kind == "int":
        info = ml_dtypes.iinfo(d.np)
        return np.array([0, 1, int(info.min), int(info.max), int(info.max) // 3], dtype=object).astype(d.np)
    info = ml_dtypes.finfo(d.np)
    wanted = [0.1, -2.5, 1e-20, float(info.max), -float(info.max), float(info.tiny), float(info.smallest_subnormal),
              np.inf, -np.inf, np.nan, -0.0, 0.0]
    with np.errstate(over="ignore", invalid="ignore"):   # formats without inf or NaN saturate or give NaN
        return np.array(wanted).astype(d.np)


@pytest.mark.parametrize("dt", list(ir.DTYPES))
def test_inline_constants_of_every_dtype_read_back_exactly(dt):
    d = ir.dtype(dt)
    g = ir.Graph("c")
    c = g.add_const(_extremes(d), "c")
    g.outputs = [g.add_node("Identity", [c]).outputs[0]]
    text = roundtrip(g)
    again = ir.parse(text).constants[0].const
    assert again.dtype == d.np
    if d.kind != "float":
        np.testing.assert_array_equal(again, c.const)
        return
    nan = np.isnan(c.const.astype(np.float64))   # NaN reads back as NaN; its sign and payload are not kept
    assert np.array_equal(np.isnan(again.astype(np.float64)), nan)
    bits = np.dtype(f"u{d.itemsize}")
    np.testing.assert_array_equal(again.view(bits)[~nan], c.const.view(bits)[~nan])   # -0 included


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
     "IR text, line 1, column 13: expected an element type (f32, f16, bf16, f64, i64, i32, i16, i8, u64, u32, "
     "u16, u8, bool, f8e4m3fn, f8e4m3fnuz, f8e5m2, f8e5m2fnuz, f8e8m0, f4e2m1, i4, u4, i2, u2), got 'f33'"),
    ("graph g(%x: f32[2]) {\n  %y: f32[2] = Relu(%x)\n  return %y\n",
     "IR text, line 4, column 1: expected '}', got end of text"),
    ("graph g(%x: f32[2]) {\n  %x: f32[2] = Relu(%x)\n  return %x\n}\n",
     'IR text, line 2, column 3: graph "g": tensor "x" is defined twice'),
    ("graph g() {\n  %c: f32[3] = const dense<[1.0, 2.0]>\n  return %c\n}\n",
     "IR text, line 2, column 28: 2 elements do not fill f32[3]"),
    ("graph g(%x: f32[2]) {\n  %y: f32[2] = LeakyRelu[beta=1.0](%x)\n  return %y\n}\n",
     "IR text, line 2, column 3: LeakyRelu node producing \"y\": unknown attribute 'beta' (known: alpha)"),
    ("graph g(%x: f32[2]) {\n  %y: f32[2] = Relu(%x) $\n}\n",
     "IR text, line 2, column 25: unexpected character '$'"),
]


@pytest.mark.parametrize("text,message", PARSE_ERRORS)
def test_parse_errors_name_line_column_and_problem(text, message):
    with pytest.raises(flowc.CompileError) as e:
        ir.parse(text)
    assert str(e.value) == message


def _relu_text(result="%y: f32[2]", operands="%x", arg_type="f32[2]"):
    return f"graph g(%x: {arg_type}) {{\n  {result} = Relu({operands})\n  return %y\n}}\n"


def _const_text(body):
    return f"graph g() {{\n  %c: {body}\n  return %c\n}}\n"


MALFORMED = [   # read, these would have been graphs that are not what the text says
    (_relu_text(operands="%x, %x"), 'IR text, line 2, column 3: Relu node producing "y": takes 1 input (X), got 2'),
    (_relu_text(operands=""), 'IR text, line 2, column 3: Relu node producing "y": takes 1 input (X), got 0'),
    (_relu_text(operands="_"), 'IR text, line 2, column 3: Relu node producing "y": takes 1 input (X), got 0'),
    (_relu_text(result="%y: i64[7,7]"),
     'IR text, line 2, column 3: Relu node producing "y": output "y" is typed i64[7,7], but its inputs give f32[2]'),
    (_relu_text(result="%y: f32[-3]", arg_type="f32[-3]"),
     "IR text, line 1, column 17: expected a dimension (0 to 2**63-1), got '-3'"),
    (_const_text("i64[2] = const dense<[1.5, 2.7]>"),
     "IR text, line 2, column 28: an element of i64[2]: 1.5 is not an integer"),
    (_const_text("bool[2] = const dense<[2, -1]>"),
     "IR text, line 2, column 29: an element of bool[2]: 2 is not a bool (true or false)"),
    (_const_text("f16[1] = const dense<[1e10]>"),
     "IR text, line 2, column 28: an element of f16[1]: 10000000000.0 overflows f16 (largest 65504.0)"),
    (_const_text("u8[1] = const dense<[-1]>"),
     "IR text, line 2, column 27: an element of u8[1]: -1 is out of the range of u8 (0 to 255)"),
    ("graph g(%x: f32[2]) {\n  %y: f32[2] = Relu(%x)\n  return %y, %y\n}\n",
     'IR text, line 3, column 3: graph "g": tensor "y" is listed twice among the graph outputs; '
     "list it once, or give it a second name with an Identity"),
]


@pytest.mark.parametrize("text,message", MALFORMED)
def test_parse_verifies_what_it_reads(text, message):
    with pytest.raises(flowc.CompileError) as e:
        ir.parse(text)
    assert str(e.value) == message


def test_parse_keeps_infinities_written_as_inf():
    g = ir.parse(_const_text("f16[2] = const dense<[inf, -inf]>"))
    assert list(g.constants[0].const) == [np.inf, -np.inf]

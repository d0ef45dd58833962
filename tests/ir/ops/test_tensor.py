"""Tensor and shape ops: inferred types (symbolic dims included), references against numpy, exact errors."""
import ml_dtypes
import numpy as np
import pytest

import flowc
from flowc import ir
from flowc.ir import tensor_type

I64_MAX, I64_MIN = np.iinfo(np.int64).max, np.iinfo(np.int64).min


def ty(text: str) -> ir.TensorType:
    """'f32[B,4]' -> its TensorType; '[*]' is an unknown rank."""
    name, dims = text[:-1].split("[")
    if dims == "*":
        return tensor_type(name, None)
    return tensor_type(name, [int(d) if d.lstrip("-").isdigit() else d for d in dims.split(",") if d])


def i64(*values) -> np.ndarray:
    return np.array(values, np.int64)


def roundtrip(g: ir.Graph) -> None:
    text = ir.print_graph(g)
    assert ir.print_graph(ir.parse(text, ir.graph_resources(g))) == text
    ir.verify(g)


def build(op, *inputs, outputs=None, **attrs):
    """A graph of one `op` node named "n": TensorType operands become graph inputs, arrays constants."""
    g = ir.Graph("t")
    values = []
    for i, x in enumerate(inputs):
        if x is None:
            values.append(None)
        elif isinstance(x, ir.TensorType):
            values.append(g.add_input(f"x{i}", x))
        else:
            values.append(g.add_const(np.asarray(x), f"c{i}"))
    node = g.add_node(op, values, num_outputs=outputs, attrs=attrs, name="n")
    g.outputs = list(node.outputs)
    return g, node


def out_types(op, *inputs, **kw):
    g, node = build(op, *inputs, **kw)
    roundtrip(g)
    return [str(v.type) for v in node.outputs]


# -- inferred types ------------------------------------------------------------------

INFER = [
    ("Reshape", [ty("f32[B,S,768]"), i64(0, 0, 12, 64)], {}, ["f32[B,S,12,64]"]),
    ("Reshape", [ty("f32[B,S,768]"), i64(-1, 768)], {}, ["f32[B*S,768]"]),
    ("Reshape", [ty("f32[B,S,12,64]"), i64(0, 0, -1)], {}, ["f32[B,S,768]"]),
    ("Reshape", [ty("f32[B,7]"), i64(-1, 2)], {}, ["f32[?,2]"]),
    ("Reshape", [ty("f32[2,3,4]"), i64(4, -1)], {}, ["f32[4,6]"]),
    ("Reshape", [ty("f32[0,3]"), i64(0, 3)], {"allowzero": 1}, ["f32[0,3]"]),
    ("Reshape", [ty("f32[B,6]"), ty("i64[3]")], {}, ["f32[?,?,?]"]),
    ("Reshape", [ty("f32[B,6]"), ty("i64[N]")], {}, ["f32[*]"]),
    ("Transpose", [ty("f32[B,3,4]")], {"perm": [2, 0, 1]}, ["f32[4,B,3]"]),
    ("Transpose", [ty("f32[B,3,4]")], {}, ["f32[4,3,B]"]),
    ("Transpose", [ty("f32[*]")], {"perm": [1, 0]}, ["f32[?,?]"]),
    ("Flatten", [ty("f32[B,3,4]")], {}, ["f32[B,12]"]),
    ("Flatten", [ty("f32[B,3,4]")], {"axis": 2}, ["f32[3*B,4]"]),
    ("Flatten", [ty("f32[B,3,4]")], {"axis": 0}, ["f32[1,12*B]"]),
    ("Flatten", [ty("f32[B,3,4]")], {"axis": -3}, ["f32[1,12*B]"]),
    ("Squeeze", [ty("f32[1,B,1]"), i64(0, -1)], {}, ["f32[B]"]),
    ("Squeeze", [ty("f32[1,3,1]")], {}, ["f32[3]"]),
    ("Squeeze", [ty("f32[1,B]")], {}, ["f32[*]"]),
    ("Squeeze", [ty("f32[1,B,1]"), ty("i64[2]")], {}, ["f32[?]"]),
    ("Unsqueeze", [ty("f32[B,4]"), i64(0, -1)], {}, ["f32[1,B,4,1]"]),
    ("Unsqueeze", [ty("f32[B,4]"), i64(3, 1)], {}, ["f32[B,1,4,1]"]),
    ("Unsqueeze", [ty("f32[B,4]"), ty("i64[1]")], {}, ["f32[?,?,?]"]),
    ("Concat", [ty("f32[B,4]"), ty("f32[B,6]")], {"axis": 1}, ["f32[B,10]"]),
    ("Concat", [ty("f32[B,4]"), ty("f32[B,4]"), ty("f32[2*B,4]")], {"axis": 0}, ["f32[4*B,4]"]),
    ("Concat", [ty("f32[B,4]"), ty("f32[3,4]")], {"axis": 0}, ["f32[?,4]"]),
    ("Concat", [ty("f32[?,4]"), ty("f32[3,2]"), ty("f32[*]")], {"axis": -1}, ["f32[3,?]"]),
    ("Split", [ty("f32[B,10]"), i64(3, 7)], {"axis": 1}, ["f32[B,3]", "f32[B,7]"]),
    ("Split", [ty("f32[7]")], {"num_outputs": 3}, ["f32[3]", "f32[3]", "f32[1]"]),
    ("Split", [ty("f32[2*B,4]")], {"num_outputs": 2}, ["f32[B,4]", "f32[B,4]"]),
    ("Split", [ty("f32[B,4]")], {}, ["f32[?,4]", "f32[?,4]"]),
    ("Split", [ty("f32[B,6]"), ty("i64[2]")], {"axis": -1}, ["f32[B,?]", "f32[B,?]"]),
    ("Slice", [ty("f32[B,10]"), i64(2), i64(-1), i64(1)], {}, ["f32[B,7]"]),
    ("Slice", [ty("f32[B,10]"), i64(0, 1), i64(I64_MAX, 9), None, i64(1, 3)], {}, ["f32[B,3]"]),
    ("Slice", [ty("f32[B,10]"), i64(-1), i64(I64_MIN), i64(0), i64(-1)], {}, ["f32[B,10]"]),
    ("Slice", [ty("f32[B,10]"), i64(1), i64(I64_MAX), i64(0)], {}, ["f32[?,10]"]),
    ("Slice", [ty("f32[B,10]"), ty("i64[1]"), i64(5), i64(1)], {}, ["f32[B,?]"]),
    ("Slice", [ty("f32[B,10]"), i64(0), i64(5), ty("i64[1]")], {}, ["f32[?,?]"]),
    ("Gather", [ty("f32[B,5,6]"), ty("i64[2,3]")], {"axis": 1}, ["f32[B,2,3,6]"]),
    ("Gather", [ty("f32[B,5,6]"), np.int64(-1)], {"axis": -1}, ["f32[B,5]"]),
    ("GatherElements", [ty("f32[B,5]"), ty("i64[B,2]")], {"axis": 1}, ["f32[B,2]"]),
    ("GatherND", [ty("f32[2,3,4]"), ty("i64[5,1]")], {}, ["f32[5,3,4]"]),
    ("GatherND", [ty("f32[B,3,4]"), ty("i64[B,5,2]")], {"batch_dims": 1}, ["f32[B,5]"]),
    ("ScatterND", [ty("f32[B,4]"), ty("i64[3,1]"), ty("f32[3,4]")], {}, ["f32[B,4]"]),
    ("ScatterElements", [ty("f32[B,4]"), ty("i64[B,2]"), ty("f32[B,2]")], {"axis": 1}, ["f32[B,4]"]),
    ("Expand", [ty("f32[3,1]"), i64(2, 1, 6)], {}, ["f32[2,3,6]"]),
    ("Expand", [ty("f32[B,1]"), ty("i64[3]")], {}, ["f32[?,?,?]"]),
    ("Expand", [ty("f32[1,4]"), ty("i64[2]")], {}, ["f32[?,4]"]),
    ("Tile", [ty("f32[B,3]"), i64(2, 2)], {}, ["f32[2*B,6]"]),
    ("Tile", [ty("f32[B,3]"), ty("i64[2]")], {}, ["f32[?,?]"]),
    ("Range", [np.int64(0), np.int64(10), np.int64(3)], {}, ["i64[4]"]),
    ("Range", [np.float32(1), np.float32(0), np.float32(-0.25)], {}, ["f32[4]"]),
    ("Range", [np.int32(0), ty("i32[]"), np.int32(1)], {}, ["i32[?]"]),
    ("Trilu", [ty("f32[B,4,5]"), np.int64(1)], {"upper": 0}, ["f32[B,4,5]"]),
    ("Shape", [ty("f32[B,3,4]")], {}, ["i64[3]"]),
    ("Shape", [ty("f32[B,3,4]")], {"start": 1}, ["i64[2]"]),
    ("Shape", [ty("f32[B,3,4]")], {"start": -1}, ["i64[1]"]),
    ("Shape", [ty("f32[B,3,4]")], {"start": 2, "end": 1}, ["i64[0]"]),
    ("Shape", [ty("f32[B,3,4]")], {"start": -10, "end": 10}, ["i64[3]"]),
    ("Shape", [ty("f32[*]")], {}, ["i64[?]"]),
    ("Size", [ty("f32[B,3]")], {}, ["i64[]"]),
    ("ConstantOfShape", [i64(2, 3)], {"value": np.array([7], np.int32)}, ["i32[2,3]"]),
    ("ConstantOfShape", [i64()], {}, ["f32[]"]),
    ("ConstantOfShape", [ty("i64[2]")], {}, ["f32[?,?]"]),
    ("Cast", [ty("f32[B,3]")], {"to": "i64"}, ["i64[B,3]"]),
    ("CastLike", [ty("f32[B]"), ty("f16[1]")], {}, ["f16[B]"]),
    ("NonZero", [ty("f32[B,3]")], {}, ["i64[2,?]"]),
    ("NonZero", [np.array([[1, 0], [2, 3]], np.float32)], {}, ["i64[2,3]"]),
    ("OneHot", [ty("i64[B,3]"), np.int64(5), np.array([0, 1], np.float32)], {}, ["f32[B,3,5]"]),
    ("OneHot", [ty("i64[B,3]"), np.float32(5.5), ty("i32[2]")], {"axis": 0}, ["i32[5,B,3]"]),
    ("OneHot", [ty("i64[B]"), ty("i64[1]"), ty("f16[2]")], {"axis": -2}, ["f16[?,B]"]),
    ("DepthToSpace", [ty("f32[B,8,H,W]")], {"blocksize": 2}, ["f32[B,2,2*H,2*W]"]),
    ("SpaceToDepth", [ty("f32[B,2,4,6]")], {"blocksize": 2, "mode": "CRD"}, ["f32[B,8,2,3]"]),
    ("EyeLike", [ty("f32[3,4]")], {"dtype": "i64"}, ["i64[3,4]"]),
    ("EyeLike", [ty("bool[N,N]")], {}, ["bool[N,N]"]),
]


@pytest.mark.parametrize("op,inputs,attrs,want", INFER, ids=[f"{c[0]}-{i}" for i, c in enumerate(INFER)])
def test_inferred_types(op, inputs, attrs, want):
    assert out_types(op, *inputs, outputs=len(want), **attrs) == want


# -- shape arithmetic with a symbolic batch -------------------------------------------------

def shape_graph():
    """What torch exports for x.view(b, s, 12, 64) and friends, x being [B,S,768]."""
    g = ir.Graph("heads")
    x = g.add_input("x", ty("f32[B,S,768]"))

    def node(op, *inputs, **attrs):
        ins = [v if isinstance(v, ir.Value) else g.add_const(np.asarray(v)) for v in inputs]
        return g.add_node(op, ins, attrs=attrs).outputs[0]

    shape = node("Shape", x)
    b, s = node("Gather", shape, np.int64(0)), node("Gather", shape, np.int64(1))
    heads = node("Concat", node("Unsqueeze", b, i64(0)), node("Unsqueeze", s, i64(0)), i64(12, 64), axis=0)
    split = node("Reshape", x, heads)
    tokens = node("Cast", node("Mul", b, s), to="i64")
    flat = node("Reshape", split, node("Concat", node("Unsqueeze", tokens, i64(0)), i64(-1), axis=0))
    back = node("Reshape", flat, node("Concat", node("Slice", shape, i64(0), i64(-1)), i64(-1), axis=0))
    positions = node("Range", np.int64(0), s, np.int64(1))
    mask = node("ConstantOfShape", node("Shape", x, end=2), value=np.array([True]))
    bias = node("Expand", g.add_const(np.ones((1, 1, 768), np.float32), "bias"), shape)
    g.outputs = [split, flat, back, positions, mask, bias]
    return g, heads


def test_shape_arithmetic_types_a_symbolic_batch():
    g, heads = shape_graph()
    roundtrip(g)
    assert heads.sym == ("B", "S", 12, 64)
    assert [str(v.type) for v in g.outputs] == [
        "f32[B,S,12,64]", "f32[B*S,768]", "f32[B,S,768]", "i64[S]", "bool[B,S]", "f32[B,S,768]"]
    x = np.random.default_rng(0).standard_normal((2, 5, 768)).astype(np.float32)
    split, flat, back, positions, mask, bias = ir.run(g, {"x": x}).values()
    np.testing.assert_array_equal(split, x.reshape(2, 5, 12, 64))
    np.testing.assert_array_equal(flat, x.reshape(10, 768))
    np.testing.assert_array_equal(back, x)
    np.testing.assert_array_equal(positions, np.arange(5))
    assert mask.shape == (2, 5) and mask.all() and bias.shape == (2, 5, 768)


def test_shape_and_size_know_their_contents():
    assert build("Shape", ty("f32[B,3,S]"), start=1)[1].outputs[0].sym == (3, "S")
    assert build("Size", ty("f32[B,3]"))[1].outputs[0].sym == ("3*B",)


def test_contents_flow_through_gather_squeeze_slice_and_cast():
    g = ir.Graph("t")
    x = g.add_input("x", ty("f32[B,S,4]"))
    shape = g.add_node("Shape", [x]).outputs[0]
    last_two = g.add_node("Slice", [shape, g.add_const(i64(-2)), g.add_const(i64(I64_MAX))]).outputs[0]
    picked = g.add_node("Gather", [shape, g.add_const(i64(1, 0))]).outputs[0]
    one = g.add_node("Slice", [shape, g.add_const(i64(0)), g.add_const(i64(1))]).outputs[0]
    scalar = g.add_node("Squeeze", [one, g.add_const(i64(0))]).outputs[0]
    narrow = g.add_node("Cast", [picked], attrs={"to": "i32"}).outputs[0]
    wide = g.add_node("Expand", [scalar, g.add_const(i64(3))]).outputs[0]
    assert last_two.sym == ("S", 4) and picked.sym == ("S", "B") and scalar.sym == ("B",)
    assert narrow.sym == ("S", "B") and wide.sym == ("B", "B", "B")


def test_slice_to_a_symbolic_end():
    # x[:, :s] keeps s; a fixed-size table sliced to s may be shorter than s (min(s, 32)): unknown
    g = ir.Graph("t")
    x = g.add_input("x", ty("f32[B,S]"))
    s = g.add_node("Gather", [g.add_node("Shape", [x]).outputs[0], g.add_const(i64(1))]).outputs[0]
    start, axis = g.add_const(i64(0)), g.add_const(i64(1))
    table = g.add_const(np.zeros((1, 32), np.float32))
    own = g.add_node("Slice", [x, start, s, axis]).outputs[0]
    positions = g.add_node("Slice", [table, start, s, axis]).outputs[0]
    assert (str(own.type), str(positions.type)) == ("f32[B,S]", "f32[1,?]")


# -- references against numpy ------------------------------------------------------------

rng = np.random.default_rng(7)
X = rng.standard_normal((2, 3, 4)).astype(np.float32)
IDX = np.array([[0, 2], [-1, 1]], np.int64)

REFERENCE = [
    ("Reshape", [X, i64(0, -1)], {}, lambda: X.reshape(2, 12)),
    ("Reshape", [np.zeros((0, 3), np.float32), i64(3, 0)], {"allowzero": 1}, lambda: np.zeros((3, 0), np.float32)),
    ("Transpose", [X], {"perm": [1, 2, 0]}, lambda: X.transpose(1, 2, 0)),
    ("Flatten", [X], {"axis": -1}, lambda: X.reshape(6, 4)),
    ("Squeeze", [X[:1, :, :1]], {}, lambda: X[0, :, 0]),
    ("Unsqueeze", [X, i64(-1, 1)], {}, lambda: X[:, None, :, :, None]),
    ("Concat", [X, X[:, :1]], {"axis": 1}, lambda: np.concatenate([X, X[:, :1]], 1)),
    ("Slice", [X, i64(-1, 0), i64(I64_MIN, 9), i64(2, 1), i64(-2, 2)], {}, lambda: X[:, 0::2, ::-2]),
    ("Slice", [X, i64(-8), i64(-8), i64(2), i64(-1)], {}, lambda: X[:, :, :1]),   # start clamps to 0, not -1
    ("Gather", [X, IDX], {"axis": 2}, lambda: np.take(X, IDX % 4, axis=2)),
    ("GatherElements", [X[0], np.array([[2, 0, -1, 1]], np.int64)], {},
     lambda: np.array([[X[0, 2, 0], X[0, 0, 1], X[0, 2, 2], X[0, 1, 3]]], np.float32)),
    ("GatherElements", [X[0], np.array([[3], [-4]], np.int64)], {"axis": 1},   # indices narrower than data
     lambda: np.array([[X[0, 0, 3]], [X[0, 1, 0]]], np.float32)),
    ("GatherND", [X, np.array([[1, 2], [0, -1]], np.int64)], {}, lambda: np.stack([X[1, 2], X[0, -1]])),
    ("GatherND", [X, np.array([[[2]], [[0]]], np.int64)], {"batch_dims": 1}, lambda: np.stack([X[0, 2:3], X[1, 0:1]])),
    ("Expand", [X[:, :1], i64(3, 1, 1, 1)], {}, lambda: np.broadcast_to(X[:, :1], (3, 2, 1, 4))),
    ("Tile", [X[0], i64(2, 1)], {}, lambda: np.tile(X[0], (2, 1))),
    ("Trilu", [X, np.int64(-1)], {}, lambda: np.triu(X, -1)),
    ("Trilu", [X], {"upper": 0}, lambda: np.tril(X)),
    ("Shape", [X], {"start": -2}, lambda: i64(3, 4)),
    ("Size", [X], {}, lambda: np.array(24, np.int64)),
    ("ConstantOfShape", [i64(2, 1)], {"value": np.array([1.5], np.float16)}, lambda: np.full((2, 1), 1.5, np.float16)),
    ("Cast", [np.array([-1.7, 0.0, np.nan, 2.5], np.float32)], {"to": "bool"}, lambda: np.array([1, 0, 1, 1], bool)),
    ("Cast", [np.array([300, -1], np.int64)], {"to": "u8"}, lambda: np.array([44, 255], np.uint8)),
    ("CastLike", [X, np.zeros(1, np.float16)], {}, lambda: X.astype(np.float16)),
    ("NonZero", [np.array([[0, 3], [2, 0]], np.int32)], {}, lambda: i64(0, 1, 1, 0).reshape(2, 2)),
    ("NonZero", [np.array(5, np.int32)], {}, lambda: np.zeros((0, 1), np.int64)),
    ("OneHot", [np.array([[1, -1], [7, 0]], np.int64), np.int64(3), np.array([0, 5], np.int32)], {"axis": 1},
     lambda: np.array([[[0, 0], [5, 0], [0, 5]], [[0, 5], [0, 0], [0, 0]]], np.int32)),
    ("EyeLike", [X[0]], {"k": 1, "dtype": "i32"}, lambda: np.eye(3, 4, 1, dtype=np.int32)),
    ("Range", [np.float16(0), np.float16(1), np.float16(0.3)], {},   # stepped in f32, as ONNX's stash_type=1 says
     lambda: (np.arange(4, dtype=np.float32) * np.float32(np.float16(0.3))).astype(np.float16)),
    ("Range", [np.int32(5), np.int32(-2), np.int32(-3)], {}, lambda: np.array([5, 2, -1], np.int32)),
]


@pytest.mark.parametrize("op,inputs,attrs,want", REFERENCE, ids=[f"{c[0]}-{i}" for i, c in enumerate(REFERENCE)])
def test_reference(op, inputs, attrs, want):
    # the data is a graph input so the interpreter, not inference, computes the result
    g, node = build(op, ty(f"{ir.dtype(inputs[0].dtype)}[{','.join(map(str, inputs[0].shape))}]"),
                    *inputs[1:], **attrs)
    got = ir.run(g, {"x0": inputs[0]})[node.outputs[0].name]
    expected = want()
    assert got.dtype == expected.dtype
    np.testing.assert_array_equal(got, expected)


def test_split_reference():
    g, node = build("Split", ty("f32[2,3,4]"), i64(1, 0, 3), axis=-1, outputs=3)
    parts = list(ir.run(g, {"x0": X}).values())
    assert [p.shape for p in parts] == [(2, 3, 1), (2, 3, 0), (2, 3, 3)]
    np.testing.assert_array_equal(np.concatenate(parts, -1), X)


@pytest.mark.parametrize("mode", ["DCR", "CRD"])
def test_depth_to_space_inverts_space_to_depth(mode):
    g = ir.Graph("t")
    x = g.add_input("x", ty("f32[1,2,4,6]"))
    deep = g.add_node("SpaceToDepth", [x], attrs={"blocksize": 2, "mode": mode}).outputs[0]
    g.outputs = [g.add_node("DepthToSpace", [deep], attrs={"blocksize": 2, "mode": mode}).outputs[0]]
    data = np.arange(48, dtype=np.float32).reshape(1, 2, 4, 6)
    assert str(deep.type) == "f32[1,8,2,3]"
    np.testing.assert_array_equal(list(ir.run(g, {"x": data}).values())[0], data)


def test_depth_to_space_dcr_order():
    # the first output row takes channels 0 and 2 in DCR order (depth outermost), 0 and 1 in CRD order
    data = np.arange(8, dtype=np.float32).reshape(1, 8, 1, 1)
    for mode, row in (("DCR", [0, 2]), ("CRD", [0, 1])):
        g, node = build("DepthToSpace", ty("f32[1,8,1,1]"), blocksize=2, mode=mode)
        assert ir.run(g, {"x0": data})[node.outputs[0].name][0, 0, 0].tolist() == row


@pytest.mark.parametrize("reduction,want", [
    ("add", [[1, 1], [10, 14], [1, 1]]), ("mul", [[1, 1], [20, 42], [1, 1]]),
    ("max", [[1, 1], [5, 7], [1, 1]]), ("min", [[1, 1], [1, 1], [1, 1]]),
])
def test_scatter_nd_reductions(reduction, want):
    # both index tuples address row 1: every update is reduced into it
    g, node = build("ScatterND", ty("f32[3,2]"), np.array([[1], [-2]], np.int64),
                    np.array([[4, 6], [5, 7]], np.float32), reduction=reduction)
    got = ir.run(g, {"x0": np.ones((3, 2), np.float32)})[node.outputs[0].name]
    np.testing.assert_array_equal(got, np.array(want, np.float32))


def test_scatter_nd_replaces_slices():
    g, node = build("ScatterND", ty("f32[3,2]"), np.array([[2], [0]], np.int64), np.array([[5, 6], [3, 3]], np.float32))
    got = ir.run(g, {"x0": np.ones((3, 2), np.float32)})[node.outputs[0].name]
    np.testing.assert_array_equal(got, np.array([[3, 3], [1, 1], [5, 6]], np.float32))


def test_scatter_elements_with_duplicates_adds_them():
    g, node = build("ScatterElements", ty("f32[1,5]"), np.array([[1, 1, -1]], np.int64),
                    np.array([[1.5, 2.5, 4.0]], np.float32), axis=1, reduction="add")
    got = ir.run(g, {"x0": np.ones((1, 5), np.float32)})[node.outputs[0].name]
    np.testing.assert_array_equal(got, np.array([[1, 5, 1, 1, 5]], np.float32))


@pytest.mark.parametrize("start,limit,delta,count", [
    (3, 9, 3, 2), (10, 4, -2, 3), (0, 0, 1, 0), (5, 9, -1, 0), (0.0, 1.0, 0.1, 10),
    (1.5, -2.0, -0.7, 6),   # ONNX's reference divides in f64: 3.5 / 0.699999988 is just over 5
])
def test_range_length_is_inferred_from_constants(start, limit, delta, count):
    dt = np.float32 if isinstance(start, float) else np.int64
    g, node = build("Range", ty(f"{ir.dtype(dt)}[]"), dt(limit), dt(delta))
    assert str(node.outputs[0].type) == f"{ir.dtype(dt)}[?]"
    g, node = build("Range", dt(start), dt(limit), dt(delta))
    assert node.outputs[0].type.shape == (count,)
    assert len(ir.run(g, {})[node.outputs[0].name]) == count


# -- errors ---------------------------------------------------------------------------------

ERRORS = [
    (("Reshape", ty("f32[2,3]"), i64(4, 2)), "cannot reshape [2,3] (6 elements) to [4,2] (8 elements)"),
    (("Reshape", ty("f32[2,3]"), i64(4, -1)), "cannot reshape [2,3] (6 elements) to [4,-1]: the other entries "
                                              "multiply to 4"),
    (("Reshape", ty("f32[2,3]"), i64(-1, -1)), "shape [-1,-1] has more than one -1"),
    (("Reshape", ty("f32[2,3]"), i64(-2, 3)), "shape [-2,3] has a negative entry other than -1"),
    (("Reshape", ty("f32[6]"), i64(6, 0)), "shape [6,0]: entry 1 is 0 (copy the input's dim), but the input has "
                                           "rank 1"),
    (("Reshape", ty("f32[0,3]"), i64(0, -1), {"allowzero": 1}), "shape [0,-1] holds both 0 and -1, which "
                                                                "allowzero=1 forbids"),
    (("Reshape", ty("f32[6]"), np.array([6.0], np.float32)), 'shape "c1" must be an integer tensor, got f32[1]'),
    (("Reshape", ty("f32[6]"), np.array([[6]], np.int64)), 'shape "c1" must be 1-D, got i64[1,1]'),
    (("Transpose", ty("f32[2,3]"), {"perm": [0, 0]}), "perm [0, 0] is not a permutation of the input's 2 axes"),
    (("Flatten", ty("f32[2,3]"), {"axis": 3}), "axis 3 is out of range for rank 2 (accepted: -2 to 2)"),
    (("Squeeze", ty("f32[1,3]"), i64(1)), "cannot squeeze axis 1 of f32[1,3]: its size is 3, not 1"),
    (("Squeeze", ty("f32[1,3]"), i64(2)), "axes [2]: axis 2 is out of range for rank 2"),
    (("Unsqueeze", ty("f32[3]"), i64(0, -3)), "axes [0, -3] name an axis twice"),
    (("Concat", ty("f32[2,3]"), ty("f32[2,4]"), {"axis": 0}), "inputs differ in axis 1: 3 vs 4"),
    (("Concat", ty("f32[2,3]"), ty("f32[3]"), {"axis": 0}),
     'inputs must have one rank of at least 1, got "x0": f32[2,3], "x1": f32[3]'),
    (("Concat", ty("f32[2]"), ty("i64[2]"), {"axis": 0}), 'inputs must share one dtype, got "x0": f32, "x1": i64'),
    (("Concat", ty("f32[2]"), ty("f32[2]"), {"axis": 1}), "axis 1 is out of range for rank 1"),
    (("Split", ty("f32[6]"), i64(2, 4), {"num_outputs": 2}, 2), "give the split input or num_outputs, not both"),
    (("Split", ty("f32[6]"), i64(2, 3), 2), "split [2,3] adds up to 5, the axis has 6"),
    (("Split", ty("f32[6]"), i64(2, 3, 1), 2), "split [2,3,1] has 3 entries for 2 outputs"),
    (("Split", ty("f32[6]"), {"num_outputs": 3}, 2), "num_outputs is 3, the node has 2 outputs"),
    (("Split", ty("f32[5]"), {}, 4), "cannot split an axis of 5 into 4 parts of 2 and a smaller last one"),
    (("Slice", ty("f32[5]"), i64(0), i64(3), i64(0), i64(0)), "steps [0] hold a 0"),
    (("Slice", ty("f32[5]"), i64(0, 1), i64(3)), "starts, ends, axes and steps must have one length, got 2, 1, 2 "
                                                 "and 2"),
    (("Gather", ty("f32[5]"), ty("f32[2]")), 'indices "x1" must be an integer tensor, got f32[2]'),
    (("Gather", ty("f32[5]"), ty("i64[2]"), {"axis": 1}), "axis 1 is out of range for rank 1"),
    (("GatherElements", ty("f32[5,2]"), ty("i64[2]")), 'data and indices must have one rank, got "x0": f32[5,2], '
                                                        '"x1": i64[2]'),
    (("GatherND", ty("f32[5,2]"), ty("i64[2,3]")), "indices' last dim (3) indexes past the rank of data f32[5,2] "
                                                   "after 0 batch dims"),
    (("ScatterND", ty("f32[5,2]"), ty("i64[3,1]"), ty("f32[3]")), "updates must have shape [3,2], got f32[3]"),
    (("ScatterND", ty("f32[5]"), ty("i64[3,1]"), ty("f32[3]"), {"reduction": "sum"}),
     "attribute 'reduction' must be one of none, add, mul, max, min, got 'sum'"),
    (("ScatterElements", ty("f32[5]"), ty("i64[2]"), ty("i64[2]")),
     'inputs must share one dtype, got "x0": f32, "x2": i64'),
    (("Expand", ty("f32[2,3]"), i64(4)), "input shapes [2,3] and [4] do not broadcast"),
    (("Tile", ty("f32[2,3]"), i64(2)), "repeats [2] has 1 entries for an input of rank 2"),
    (("Range", np.int64(0), np.int64(5), np.int64(0)), "delta must not be 0"),
    (("Range", np.int64(0), np.int64(5), i64(1, 2)), 'delta "c2" must hold one element, got i64[2]'),
    (("OneHot", ty("i64[3]"), ty("i64[2]"), ty("f32[2]")), 'depth "x1" must hold one element, got i64[2]'),
    (("Range", np.int64(0), np.int32(5), np.int64(1)), 'inputs must share one dtype, got "c0": i64, "c1": i32, '
                                                       '"c2": i64'),
    (("ConstantOfShape", i64(2, -1)), "shape [2,-1] has a negative entry"),
    (("ConstantOfShape", i64(2), {"value": np.zeros(2, np.float32)}),
     "value must hold one element, got a tensor of shape [2]"),
    (("Cast", ty("f32[2]"), {"to": "i64", "round_mode": "sideways"}),
     "attribute 'round_mode' must be one of up, down, nearest, got 'sideways'"),
    (("Trilu", ty("f32[3]")), "input must have rank 2 or more, got f32[3]"),
    (("OneHot", ty("i64[3]"), np.int64(4), ty("f32[3]")), "values must be [off_value, on_value] (shape [2]), "
                                                          "got f32[3]"),
    (("OneHot", ty("i64[3]"), np.int64(0), ty("f32[2]")), "depth must be positive, got 0"),
    (("OneHot", ty("i64[3]"), np.int64(4), ty("f32[2]"), {"axis": 2}),
     "axis 2 is out of range for indices of rank 1 (accepted: -2 to 1)"),
    (("DepthToSpace", ty("f32[1,6,2,2]"), {"blocksize": 2}), "channels (6) must be a multiple of blocksize^2 (4)"),
    (("DepthToSpace", ty("f32[6,2,2]"), {"blocksize": 2}), "input must be 4-D (N, C, H, W), got f32[6,2,2]"),
    (("SpaceToDepth", ty("f32[1,1,3,4]"), {"blocksize": 2}), "height (3) must be a multiple of blocksize (2)"),
    (("SpaceToDepth", ty("f32[1,1,4,4]"), {"blocksize": 0}), "blocksize must be positive, got 0"),
    (("SpaceToDepth", ty("f32[1,1,4,4]"), {"blocksize": 2, "mode": "RCD"}),
     "attribute 'mode' must be one of DCR, CRD, got 'RCD'"),
    (("EyeLike", ty("f32[3]")), "input must have rank 2, got f32[3]"),
    (("Concat", ty("i4[2]"), ty("i4[2]"), {"axis": 0}),
     'input "x0" is i4[2]: Concat does not take the storage-only type i4; Cast it to i32 first'),
    (("Gather", ty("f8e5m2[5]"), i64(1)),
     'input "x0" is f8e5m2[5]: Gather does not take the storage-only type f8e5m2; Cast it to f32 first'),
    (("EyeLike", ty("f32[3,3]"), {"dtype": "f8e4m3fn"}),
     'output "0" would be f8e4m3fn[3,3]: EyeLike does not produce the storage-only type f8e4m3fn; '
     'produce f32 and Cast that'),
]


def _error_case(spec):
    op, *rest = spec
    num_outputs = rest.pop() if rest and isinstance(rest[-1], int) else None
    attrs = rest.pop() if rest and isinstance(rest[-1], dict) else {}
    return op, rest, attrs, num_outputs


@pytest.mark.parametrize("spec,message", ERRORS, ids=[e[0][0] for e in ERRORS])
def test_errors(spec, message):
    op, inputs, attrs, num_outputs = _error_case(spec)
    with pytest.raises(flowc.CompileError) as e:
        build(op, *inputs, outputs=num_outputs, **attrs)
    assert str(e.value) == f'{op} node "n": {message}'


def test_cast_needs_a_target():
    with pytest.raises(flowc.CompileError) as e:
        build("Cast", ty("f32[2]"))
    assert str(e.value) == "Cast node \"n\": required attribute 'to' is missing"


def test_reshape_checks_the_run_time_shape():
    g, node = build("Reshape", ty("f32[B,6]"), i64(4, -1))
    assert str(node.outputs[0].type) == "f32[4,?]"
    with pytest.raises(flowc.CompileError) as e:
        ir.run(g, {"x0": np.zeros((1, 6), np.float32)})
    assert str(e.value) == ('Reshape node "n": cannot reshape [1,6] (6 elements) to [4,-1]: '
                            "the other entries multiply to 4")


# -- Cast to and from the storage-only and wider integer types ------------------------------

NAN, INF = float("nan"), float("inf")


def f32(*values) -> np.ndarray:
    return np.array(values, np.float32)


# (input, to, attrs, expected values), each worked out by hand from ONNX's Cast tables (opsets 21-28) and
# the formats: e4m3fn max 448, e4m3fnuz max 240, e5m2(fnuz) max 57344, f4e2m1 {0, .5, 1, 1.5, 2, 3, 4, 6},
# e8m0 the powers of two 2^-127..2^127; fnuz formats have no -0; rounding is to nearest even
CASTS = [
    (f32(0.0, -0.0, NAN, INF, -INF, 1e6, -1e6, 464, 470, 0.47892547, 2 ** -10, 3 * 2 ** -10), "f8e4m3fn", {},
     [0.0, -0.0, NAN, 448, -448, 448, -448, 448, 448, 0.46875, 0.0, 2 ** -8]),
    (f32(0.0, -0.0, NAN, INF, -INF, 1e6, 464, 470), "f8e4m3fn", {"saturate": 0},
     [0.0, -0.0, NAN, NAN, NAN, NAN, 448, NAN]),      # 464 ties to 448 (even); 470 rounds to 480 > max
    (f32(-0.0, NAN, INF, -1e6, 248, 0.47892547, -1e-7), "f8e4m3fnuz", {},
     [0.0, NAN, 240, -240, 240, 0.46875, 0.0]),
    (f32(-0.0, INF, -INF, 248, 244), "f8e4m3fnuz", {"saturate": 0},
     [0.0, NAN, NAN, NAN, 240]),                      # 248 ties to 256 (even), past the max
    (f32(INF, -INF, 61440, 1e6, -0.0, NAN, 0.47892547), "f8e5m2", {},
     [57344, -57344, 57344, 57344, -0.0, NAN, 0.5]),
    (f32(INF, -INF, 61440, 60000, 1e6), "f8e5m2", {"saturate": 0},
     [INF, -INF, INF, 57344, INF]),                   # 61440 ties to 65536 (even): overflow
    (f32(INF, -1e6, -0.0, NAN), "f8e5m2fnuz", {}, [57344, -57344, 0.0, NAN]),
    (f32(INF, -INF, 61440, -0.0), "f8e5m2fnuz", {"saturate": 0}, [NAN, NAN, NAN, 0.0]),
    (f32(0.0, 0.124, 0.25, 1.1, 1.5, 3, 1.5 * 2.0 ** 127, INF, NAN, 2 ** -130), "f8e8m0", {},
     [2 ** -127, 0.125, 0.25, 2, 2, 4, 2 ** 127, 2 ** 127, NAN, 2 ** -127]),          # round up, saturate
    (f32(0.124, 1.1, 1.5, 3.9, 2 ** -130), "f8e8m0", {"round_mode": "down"}, [0.0625, 1, 1, 2, 2 ** -127]),
    (f32(1.4, 1.5, 1.6, 3, 5.9, 6), "f8e8m0", {"round_mode": "nearest"}, [1, 2, 2, 4, 4, 8]),   # ties up
    (np.array([0.0, INF, 2.0 ** 128, 2.0 ** -130, 1.0, NAN]), "f8e8m0", {"saturate": 0, "round_mode": "nearest"},
     [NAN, NAN, NAN, NAN, 1, NAN]),
    (f32(0.25, 0.75, 2.5, 3.5, 5, 1e6, -INF, NAN, -0.0), "f4e2m1", {}, [0.0, 1, 2, 4, 4, 6, -6, 0.0, -0.0]),
    (f32(9, -INF), "f4e2m1", {"saturate": 0}, [6, -6]),                               # f4e2m1 always saturates
    (f32(-9, -8, 7, 8, 15, 1.5, 2.5, -2.5, 7.6, NAN, INF), "i4", {}, [7, -8, 7, -8, -1, 2, 2, -2, -8, 0, 0]),
    (f32(-1, 16, 17, 15.5, 3.5), "u4", {}, [15, 0, 1, 0, 4]),                          # round, keep the low bits
    (f32(-3, -2, 1, 2, 3), "i2", {}, [1, -2, 1, -2, -1]),
    (f32(-1, 4, 5, 2.5), "u2", {}, [3, 0, 1, 2]),
    (np.array([300, -9, 2 ** 40 + 5], np.int64), "i4", {}, [-4, 7, 5]),
    (np.array([2 ** 64 - 1], np.uint64), "u4", {}, [15]),
    (np.array([True, False]), "i4", {}, [1, 0]),
    (np.array([-8, -1, 7], ml_dtypes.int4), "f32", {}, [-8, -1, 7]),
    (np.array([-8, -1, 7], ml_dtypes.int4), "u8", {}, [248, 255, 7]),
    (np.array([-8, -1, 7], ml_dtypes.int4), "i2", {}, [0, -1, -1]),
    (np.array([-8, -1, 7], ml_dtypes.int4), "u4", {}, [8, 15, 7]),
    (np.array([15, 8], ml_dtypes.uint4), "i4", {}, [-1, -8]),
    (np.array([3, 1], ml_dtypes.uint2), "f16", {}, [3, 1]),
    (np.array([448, -0.0, NAN, 2 ** -9], ml_dtypes.float8_e4m3fn), "f32", {}, [448, -0.0, NAN, 2 ** -9]),
    (np.array([448, -0.0, 2 ** -9], ml_dtypes.float8_e4m3fn), "i32", {}, [448, 0, 0]),
    (np.array([448, -0.0, NAN, 2 ** -9], ml_dtypes.float8_e4m3fn), "bool", {}, [1, 0, 1, 1]),
    (np.array([448, -0.0, NAN], ml_dtypes.float8_e4m3fn), "f8e4m3fnuz", {}, [240, 0.0, NAN]),
    (np.array([57344, INF, -INF], ml_dtypes.float8_e5m2), "f8e4m3fn", {}, [448, 448, -448]),
    (np.array([57344, INF, -INF], ml_dtypes.float8_e5m2), "f8e4m3fn", {"saturate": 0}, [NAN, NAN, NAN]),
    (np.array([2.0 ** -127, 2.0 ** 127, NAN], ml_dtypes.float8_e8m0fnu), "f32", {}, [2.0 ** -127, 2.0 ** 127, NAN]),
    (np.array([2.0 ** -127, 2.0 ** 127, 0.5], ml_dtypes.float8_e8m0fnu), "f16", {}, [0.0, INF, 0.5]),
    (np.array([6, -0.5, 1.5], ml_dtypes.float4_e2m1fn), "i4", {}, [6, 0, 2]),
    (np.array([6, -0.5], ml_dtypes.float4_e2m1fn), "f8e8m0", {}, [8, 0.5]),
    (np.array([300, -129], np.int16), "i8", {}, [44, 127]),
    (np.array([70000], np.uint32), "i16", {}, [70000 - 65536]),
    (np.array([2 ** 64 - 1], np.uint64), "f32", {}, [2.0 ** 64]),
    (f32(65535, 3.7), "u16", {}, [65535, 3]),
    (np.array([-1, 2], np.int16), "u64", {}, [2 ** 64 - 1, 2]),
]


@pytest.mark.parametrize("x,to,attrs,want", CASTS,
                         ids=[f"{ir.dtype(c[0].dtype)}-{c[1]}-{i}" for i, c in enumerate(CASTS)])
def test_cast(x, to, attrs, want):
    g, node = build("Cast", ty(f"{ir.dtype(x.dtype)}[{len(x)}]"), to=to, **attrs)
    roundtrip(g)
    got = ir.run(g, {"x0": x})[node.outputs[0].name]
    assert got.dtype == ir.dtype(to).np
    if ir.dtype(to).kind == "int":
        np.testing.assert_array_equal(got.astype(object), np.array(want, dtype=object))
        return
    got, want = got.astype(np.float64), np.array(want, np.float64)
    np.testing.assert_array_equal(got, want)   # NaN equal to NaN
    assert (np.signbit(got) == np.signbit(want))[~np.isnan(want)].all(), "the sign of a zero differs"


def test_cast_like_takes_saturate_and_the_target_dtype():
    g, node = build("CastLike", ty("f32[3]"), np.zeros(1, ml_dtypes.float8_e4m3fn), saturate=0)
    assert str(node.outputs[0].type) == "f8e4m3fn[3]"
    got = ir.run(g, {"x0": f32(1e6, 1.0, -0.0)})[node.outputs[0].name]
    np.testing.assert_array_equal(got.astype(np.float32), f32(NAN, 1.0, -0.0))


@pytest.mark.parametrize("dt", list(ir.DTYPES))
def test_every_dtype_casts_there_and_back(dt):
    values = f32(1.0, 0.5) if ir.dtype(dt).kind == "float" else f32(1.0, 0.0)
    g = ir.Graph("there_and_back")
    there = g.add_node("Cast", [g.add_input("x", ty("f32[2]"))], attrs={"to": dt}).outputs[0]
    g.outputs = [g.add_node("Cast", [there], attrs={"to": "f32"}).outputs[0]]
    roundtrip(g)
    np.testing.assert_array_equal(ir.run(g, {"x": values})[g.outputs[0].name], values)


STORAGE = [d.name for d in ir.DTYPES.values() if d.storage_only]


@pytest.mark.parametrize("dt", STORAGE)
def test_storage_types_move_through_data_movement_ops(dt):
    cast, node = build("Cast", ty("f32[2,3]"), to=dt)
    x = ir.run(cast, {"x0": np.arange(6).reshape(2, 3).astype(np.float32)})[node.outputs[0].name]
    g = ir.Graph("moves")
    v = g.add_input("x", ty(f"{dt}[2,3]"))
    for op, extra, attrs in [("Transpose", [], {}), ("Unsqueeze", [i64(1)], {}), ("Squeeze", [i64(1)], {}),
                             ("Reshape", [i64(1, 3, 2)], {}), ("Flatten", [], {"axis": 2}), ("Identity", [], {}),
                             ("Pad", [i64(0, 0, 1, 1)], {"mode": "edge"})]:
        v = g.add_node(op, [v] + [g.add_const(e) for e in extra], attrs=attrs).outputs[0]
    shape = g.add_node("Shape", [v]).outputs[0]
    g.outputs = [v, shape, g.add_node("Size", [v]).outputs[0]]
    roundtrip(g)
    assert str(v.type) == f"{dt}[4,3]"
    got = ir.run(g, {"x": x})
    want = np.pad(x.T, ((0, 1), (0, 1)), mode="edge")
    assert got[v.name].dtype == x.dtype
    np.testing.assert_array_equal(got[v.name].view(np.uint8), want.view(np.uint8))
    np.testing.assert_array_equal(got[shape.name], i64(4, 3))


def test_constant_of_shape_fills_a_storage_type():
    g, node = build("ConstantOfShape", i64(2, 2), value=np.array([-3], ml_dtypes.int4))
    assert str(node.outputs[0].type) == "i4[2,2]"
    np.testing.assert_array_equal(ir.run(g, {})[node.outputs[0].name].astype(np.int8), np.full((2, 2), -3))

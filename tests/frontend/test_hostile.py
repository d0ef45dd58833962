"""Broken and hostile models: each is refused with a flowc.CompileError that names the problem
(or an InputError at run time), never another exception, never a hang, never a file
read or written outside the test's own folder. Hostile names import and round-trip."""
from __future__ import annotations

import os
import re
import signal

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import flowc
from flowc.frontend.onnx import load
from hostile_names import HOSTILE_NAMES

TIME_LIMIT_S = 20


@pytest.fixture(autouse=True)
def time_limit():
    """A hang fails its test instead of the run (a hang inside C code ends when it returns)."""
    def expire(signum, frame):
        pytest.fail(f"still running after {TIME_LIMIT_S} s", pytrace=False)
    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, TIME_LIMIT_S)
    yield
    signal.setitimer(signal.ITIMER_REAL, 0)
    signal.signal(signal.SIGALRM, previous)


@pytest.fixture(autouse=True)
def writes_nothing_outside_tmp():
    before = sorted(os.listdir(os.getcwd()))
    yield
    assert sorted(os.listdir(os.getcwd())) == before, "a test wrote into the working directory"


# -- building models -------------------------------------------------------------

def tensor_info(name, shape=("B", 3), elem=TensorProto.FLOAT):
    return helper.make_tensor_value_info(name, elem, shape)


def make_model(nodes, inputs=None, outputs=None, initializers=(), opset=17, name="g", domains=()):
    inputs = [tensor_info("x")] if inputs is None else inputs
    outputs = [tensor_info("y")] if outputs is None else outputs
    graph = helper.make_graph(nodes, name, inputs, outputs, list(initializers))
    opsets = [helper.make_opsetid("", opset)] + [helper.make_opsetid(d, 1) for d in domains]
    return helper.make_model(graph, opset_imports=opsets)


def good_model():
    w = numpy_helper.from_array(np.arange(3, dtype=np.float32), "w")
    return make_model([helper.make_node("Add", ["x", "w"], ["y"], name="add")], initializers=[w])


def relu(src="x", dst="y", name="n", **attrs):
    return helper.make_node("Relu", [src], [dst], name=name, **attrs)


def write(folder, data, filename="model.onnx"):
    path = folder / filename
    path.write_bytes(data if isinstance(data, bytes) else data.SerializeToString())
    return path


def refused(source, *fragments, **kw) -> str:
    """The CompileError's message for importing `source`; it must hold every fragment, on one line."""
    with pytest.raises(flowc.CompileError) as info:
        load(source, **kw)
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} is not in the message: {message}"
    assert "\n" not in message, f"the message spans lines: {message!r}"
    return message


def _nested_graphs(depth: int) -> bytes:
    """A ModelProto's bytes whose graph nests `depth` subgraphs (node.attribute.g), beyond parsers' limits."""
    def field(number, payload):
        size, varint = len(payload), bytearray()
        while True:
            varint.append((size & 0x7F) | (0x80 if size > 0x7F else 0))
            size >>= 7
            if not size:
                break
        return bytes([number << 3 | 2]) + bytes(varint) + payload
    graph = b""
    for _ in range(depth):
        graph = field(1, field(5, field(6, graph)))   # GraphProto.node / NodeProto.attribute / AttributeProto.g
    return field(7, graph)                            # ModelProto.graph


# -- files that are not models ---------------------------------------------------------

def test_truncated_file(tmp_path):
    data = good_model().SerializeToString()
    refused(write(tmp_path, data[:-7]), "model.onnx", "is not a valid ONNX model (truncated or not protobuf)")


def test_empty_file(tmp_path):
    refused(write(tmp_path, b""), "is not a valid ONNX model: it has no graph")


def test_random_bytes(tmp_path):
    refused(write(tmp_path, np.random.default_rng(0).bytes(4096)), "is not a valid ONNX model")


def test_text_file(tmp_path):
    path = tmp_path / "model.onnx"
    path.write_text(onnx.printer.to_text(good_model()))
    refused(path, "is not a valid ONNX model")


def test_graph_proto_instead_of_a_model(tmp_path):
    refused(write(tmp_path, good_model().graph), "is not a valid ONNX model: it has no graph")


def test_tensor_proto_instead_of_a_model(tmp_path):
    refused(write(tmp_path, numpy_helper.from_array(np.ones(3, np.float32), "w")), "is not a valid ONNX model")


def test_protobuf_nested_beyond_the_parser_limit():
    refused(_nested_graphs(300), "the bytes given is not a valid ONNX model")


def test_folder_instead_of_a_file(tmp_path):
    refused(tmp_path, "is not a file")


def test_missing_file(tmp_path):
    refused(tmp_path / "nope.onnx", "nope.onnx", "does not exist")


def test_file_name_too_long(tmp_path):
    refused(tmp_path / ("x" * 5000), "cannot be read", "File name too long")


def test_not_a_path():
    refused(42, "expected a path to an .onnx file or an onnx.ModelProto, got int")


# -- graphs that are not well formed ------------------------------------------------------

def test_cycle_between_nodes():
    nodes = [relu("b", "a", name="first"), relu("a", "b", name="second"), relu("a", "y", name="out")]
    refused(make_model(nodes), "the graph has a cycle through tensor")


def test_node_reading_its_own_output():
    refused(make_model([relu("y", "y")]), 'Relu node "n": the graph has a cycle through tensor "y"')


def test_node_reading_a_missing_tensor():
    nodes = [helper.make_node("Add", ["x", "ghost"], ["y"], name="add")]
    refused(make_model(nodes), 'Add node "add": input "ghost" is not produced by any node, initializer or graph input')


def test_two_nodes_define_one_tensor():
    nodes = [relu(name="a"), relu(name="b")]
    refused(make_model(nodes), 'tensor "y" is defined twice (again by Relu node "b")')


def test_node_redefines_a_graph_input():
    refused(make_model([relu("x", "x")], outputs=[tensor_info("x")]), 'tensor "x" is defined twice')


def test_two_graph_inputs_share_a_name():
    refused(make_model([relu()], inputs=[tensor_info("x"), tensor_info("x")]), 'tensor "x" is defined twice')


def test_two_initializers_share_a_name():
    w = numpy_helper.from_array(np.ones(3, np.float32), "w")
    nodes = [helper.make_node("Add", ["x", "w"], ["y"])]
    refused(make_model(nodes, initializers=[w, w]), 'tensor "w" is defined twice')


def test_graph_output_produced_by_nothing():
    refused(make_model([relu()], outputs=[tensor_info("nope")]), 'graph output "nope" is not produced')


def test_graph_without_outputs():
    refused(make_model([relu()], outputs=[]), 'graph "g" has no outputs')


def test_one_tensor_listed_twice_among_outputs():
    refused(make_model([relu()], outputs=[tensor_info("y"), tensor_info("y")]), "listed twice among the graph outputs")


def test_input_without_a_name():
    refused(make_model([relu("", "y")], inputs=[tensor_info("")]), "empty name")


def test_required_operand_omitted():
    nodes = [helper.make_node("Add", ["x", ""], ["y"], name="add")]
    refused(make_model(nodes), 'Add node "add"', "got 1")


def test_too_many_operands():
    refused(make_model([helper.make_node("Relu", ["x", "x"], ["y"], name="n")]), 'Relu node "n"', "got 2")


def test_long_chain_in_reverse_order_imports_without_recursion():
    n = 5000
    nodes = [relu(f"t{i}", f"t{i + 1}", name=f"r{i}") for i in range(n)][::-1]
    graph = load(make_model(nodes, inputs=[tensor_info("t0")], outputs=[tensor_info(f"t{n}")]))
    x = np.array([[-1.0, 0.5, 2.0]], np.float32)
    np.testing.assert_array_equal(flowc.ir.run(graph, {"t0": x})[f"t{n}"], np.maximum(x, 0))


# -- ops, domains and opsets ---------------------------------------------------------------

def test_unknown_op():
    nodes = [helper.make_node("FooBar", ["x"], ["y"], name="n")]
    refused(make_model(nodes), "FooBar node \"n\": op 'FooBar' (opset 17) is not supported; flowc supports: ")


def test_unknown_domain():
    nodes = [helper.make_node("Relu", ["x"], ["y"], name="n", domain="com.example")]
    refused(make_model(nodes, domains=["com.example"]), "Relu node \"n\": op 'Relu' of domain 'com.example' "
                                                        "is not supported")


def test_no_default_domain_opset():
    model = make_model([relu()])
    del model.opset_import[:]
    model.opset_import.append(helper.make_opsetid("com.example", 1))
    refused(model, "imports no opset of the default ONNX domain; flowc supports opsets 13 to 28")


def test_opset_from_the_future():
    refused(make_model([relu()], opset=30), "the model uses opset 30 of the default ONNX domain; "
                                           "flowc supports opsets 13 to 28")


def test_old_opset_is_upgraded():
    graph = load(make_model([relu()], opset=5))
    x = np.array([[-1.0, 0.5, 2.0]], np.float32)
    np.testing.assert_array_equal(flowc.ir.run(graph, {"x": x})["y"], np.maximum(x, 0))


def test_unknown_op_of_an_old_opset_is_named_before_the_converter_runs():
    nodes = [helper.make_node("FooBar", ["x"], ["y"], name="n")]
    refused(make_model(nodes, opset=5), "FooBar node \"n\": op 'FooBar' (opset 5) is not supported; flowc supports: ")


def test_unknown_op_of_a_nameless_node_is_named_by_its_output():
    nodes = [helper.make_node("FooBar", ["x"], ["y"])]
    refused(make_model(nodes), "FooBar node producing \"y\": op 'FooBar' (opset 17) is not supported")


def test_negative_opset_the_converter_cannot_upgrade():
    refused(make_model([relu()], opset=-3), "the model uses opset -3; flowc supports opsets 13 to 28, "
                                            "and onnx's version converter could not upgrade it: ")


# -- attributes --------------------------------------------------------------------------------

def test_string_attribute_where_an_int_is_expected():
    nodes = [helper.make_node("Mod", ["x", "x"], ["y"], name="n", fmod="yes")]
    refused(make_model(nodes), "Mod node \"n\": attribute 'fmod' should be int: expected an int, got 'yes'")


def test_float_attribute_where_an_int_is_expected():
    nodes = [helper.make_node("Mod", ["x", "x"], ["y"], name="n", fmod=1.5)]
    refused(make_model(nodes), "Mod node \"n\": attribute 'fmod' should be int")


def test_attribute_without_a_type():
    node = helper.make_node("Mod", ["x", "x"], ["y"], name="n")
    node.attribute.add().name = "fmod"
    refused(make_model([node]), "Mod node \"n\": attribute 'fmod' should be int")


def test_unknown_attribute():
    refused(make_model([relu(foo=1)]), "Relu node \"n\": unknown attribute 'foo' (known: none)")


def test_graph_attribute():
    node = relu(body=helper.make_graph([], "body", [], []))
    refused(make_model([node]), "Relu node \"n\": attribute 'body' of type GRAPH is not supported")


def test_attribute_referring_to_a_function_attribute():
    node = helper.make_node("Mod", ["x", "x"], ["y"], name="n")
    node.attribute.append(helper.make_attribute_ref("fmod", onnx.AttributeProto.INT))
    refused(make_model([node]), "attribute 'fmod' refers to a function attribute")


# -- tensors and types ------------------------------------------------------------------------

def initializer(name="w", dims=(3,), raw: bytes | None = None, floats=None, elem=TensorProto.FLOAT):
    t = TensorProto(name=name, data_type=elem, dims=list(dims))
    if raw is not None:
        t.raw_data = raw
    if floats is not None:
        t.float_data.extend(floats)
    return t


def add_w(*initializers, **kw):
    return make_model([helper.make_node("Add", ["x", "w"], ["y"])], initializers=initializers, **kw)


def test_absurd_initializer_shape_with_tiny_data():
    refused(add_w(initializer(dims=(10 ** 12, 10 ** 12), raw=b"\0" * 4)),
            'initializer "w": shape [1000000000000, 1000000000000] needs 4000000000000000000000000 bytes, '
            "its data holds 4")


def test_absurd_initializer_shape_with_typed_data():
    refused(add_w(initializer(dims=(10 ** 12,), floats=[1.0])),
            'initializer "w": shape [1000000000000] needs 1000000000000 elements, its data holds 1')


def test_negative_initializer_dims():
    refused(add_w(initializer(dims=(-1, 3), floats=[1.0] * 3)), 'initializer "w" has a negative dimension [-1, 3]')


def test_negative_input_dim():
    refused(make_model([relu()], inputs=[tensor_info("x", (-3, 3))]), 'input "x" has a negative dimension -3')


def test_initializer_data_shorter_than_its_shape():
    refused(add_w(initializer(dims=(2, 2), raw=b"\0" * 12)),
            'initializer "w": shape [2, 2] needs 16 bytes, its data holds 12')


def test_initializer_typed_data_longer_than_its_shape():
    refused(add_w(initializer(dims=(2, 2), floats=[1.0] * 5)),
            'initializer "w": shape [2, 2] needs 4 elements, its data holds 5')


def test_string_initializer():
    t = helper.make_tensor("w", TensorProto.STRING, [1], [b"hi"])
    refused(add_w(t), 'initializer "w" has element type STRING; flowc supports')


def test_unknown_element_type_code():
    refused(add_w(initializer(elem=999, raw=b"\0" * 12)), 'initializer "w" has element type 999')


def test_sequence_input():
    seq = helper.make_tensor_sequence_value_info("x", TensorProto.FLOAT, [3])
    refused(make_model([relu()], inputs=[seq]), 'input "x" is a sequence_type; flowc supports tensors only')


def test_complex_input():
    refused(make_model([relu()], inputs=[tensor_info("x", elem=TensorProto.COMPLEX64)]),
            'input "x" has element type COMPLEX64')


def test_sparse_initializer():
    values = numpy_helper.from_array(np.ones(1, np.float32), "w")
    sparse = helper.make_sparse_tensor(values, numpy_helper.from_array(np.array([0], np.int64), "i"), [3])
    model = add_w()
    model.graph.sparse_initializer.append(sparse)
    refused(model, 'sparse initializers are not supported (tensor "w")')


def test_constant_with_a_sparse_value():
    values = numpy_helper.from_array(np.ones(1, np.float32), "v")
    sparse = helper.make_sparse_tensor(values, numpy_helper.from_array(np.array([0], np.int64), "i"), [3])
    nodes = [helper.make_node("Constant", [], ["w"], name="c", sparse_value=sparse),
             helper.make_node("Add", ["x", "w"], ["y"])]
    refused(make_model(nodes), "Constant node \"c\": Constant with attribute 'sparse_value' is not supported")


def test_constant_with_a_string_value():
    nodes = [helper.make_node("Constant", [], ["w"], name="c", value_string="hi"), relu("w", "y")]
    refused(make_model(nodes), "Constant node \"c\": Constant with attribute 'value_string' is not supported")


def test_constant_without_a_value():
    nodes = [helper.make_node("Constant", [], ["w"], name="c"), relu("w", "y")]
    refused(make_model(nodes), 'Constant node "c": a Constant node needs exactly one value attribute and one output')


# -- external data -------------------------------------------------------------------------------

def external(location, **more):
    t = TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[3], data_location=TensorProto.EXTERNAL)
    for key, value in {"location": location, **more}.items():
        entry = t.external_data.add()
        entry.key, entry.value = key, str(value)
    return add_w(t)


@pytest.fixture
def model_folder(tmp_path):
    """`tmp_path/model/` holding good weights `w.bin`; `tmp_path/secret.bin` lies outside it."""
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "w.bin").write_bytes(np.arange(3, dtype=np.float32).tobytes())
    (tmp_path / "secret.bin").write_bytes(np.full(3, 7, np.float32).tobytes())
    return folder


def test_external_data_inside_the_folder_is_read(model_folder):
    graph = load(write(model_folder, external("w.bin")))
    x = np.zeros((1, 3), np.float32)
    np.testing.assert_array_equal(flowc.ir.run(graph, {"x": x})["y"], [[0, 1, 2]])


@pytest.mark.parametrize("location", ["../../etc/passwd", "../secret.bin", "sub/../../secret.bin", ".."])
def test_external_data_escaping_the_folder(model_folder, location):
    refused(write(model_folder, external(location)), f'external data location "{location}" points outside '
                                                     "the model's folder")


@pytest.mark.parametrize("location", ["/etc/passwd", "ABSOLUTE", "\\\\server\\share", ""])
def test_external_data_at_an_absolute_path(model_folder, location):
    location = str(model_folder.parent / "secret.bin") if location == "ABSOLUTE" else location
    refused(write(model_folder, external(location)), "must be a relative path inside the model's folder")


@pytest.mark.parametrize("target", ["../secret.bin", "/etc/passwd"])
def test_external_data_through_a_symlink_out_of_the_folder(model_folder, target):
    (model_folder / "link.bin").symlink_to(target)
    refused(write(model_folder, external("link.bin")), "points outside the model's folder")


def test_external_data_through_a_symlink_loop(model_folder):
    (model_folder / "loop.bin").symlink_to("loop.bin")
    refused(write(model_folder, external("loop.bin")), 'external data location "loop.bin" cannot be resolved')


def test_external_data_location_with_a_nul_byte(model_folder):
    refused(write(model_folder, external("w.bin\0../../etc/passwd")), "cannot be resolved: embedded null byte")


def test_external_data_location_too_long(model_folder):
    refused(write(model_folder, external("x" * 5000)), "cannot be resolved", "File name too long")


def test_missing_external_file(model_folder):
    refused(write(model_folder, external("nope.bin")), 'initializer "w": external data file "nope.bin" does not exist')


def test_external_data_is_a_folder(model_folder):
    (model_folder / "sub").mkdir()
    refused(write(model_folder, external("sub")), 'external data file "sub" does not exist')


def test_external_data_offset_beyond_the_end(model_folder):
    refused(write(model_folder, external("w.bin", offset=100)),
            'initializer "w": external data needs 12 bytes at offset 100 of "w.bin", which holds 12 bytes')


def test_external_data_negative_offset(model_folder):
    refused(write(model_folder, external("w.bin", offset=-4)), "needs 12 bytes at offset -4")


def test_external_data_length_disagreeing_with_the_shape(model_folder):
    refused(write(model_folder, external("w.bin", length=10 ** 12)), "(length given: 1000000000000)")


def test_external_data_offset_not_an_integer(model_folder):
    refused(write(model_folder, external("w.bin", offset="1e3")), "external data offset/length are not integers")


def test_external_data_of_an_absurd_shape(model_folder):
    model = external("w.bin")
    model.graph.initializer[0].dims[:] = [10 ** 12]
    refused(write(model_folder, model), "external data needs 4000000000000 bytes at offset 0")


def test_external_data_without_a_folder():
    refused(external("w.bin"), 'initializer "w" keeps its data in an external file; load the model from its path')


# -- hostile names: they import, run and round-trip through the IR text ------------------------

def hostile_model(h: str) -> onnx.ModelProto:
    """`h` as graph, input, dim, node, initializer and output names, with big and small constants."""
    big = numpy_helper.from_array(np.arange(20, dtype=np.float32), h + "big")
    small = numpy_helper.from_array(np.array([2.0], np.float32), h + "small")
    nodes = [helper.make_node("Add", [h + "in", h + "big"], [h + "mid"], name=h),
             helper.make_node("Relu", [h + "mid"], [h]),
             helper.make_node("Mul", [h, h + "small"], [h + "out"], name=h + "mul")]
    return make_model(nodes, inputs=[tensor_info(h + "in", (h, 20))],
                      outputs=[tensor_info(h, None), tensor_info(h + "out", None)], initializers=[big, small], name=h)


def hostile_expected(h: str, x: np.ndarray) -> dict[str, np.ndarray]:
    y = np.maximum(x + np.arange(20, dtype=np.float32), 0)
    return {h: y, h + "out": 2 * y}


@pytest.mark.parametrize("h", HOSTILE_NAMES, ids=ascii)
def test_hostile_names_import_and_round_trip(h):
    graph = load(hostile_model(h))
    text = str(graph)
    assert len(text.splitlines()) == 1 + 2 + 3 + 2, f"a name broke a line of the IR text:\n{text}"
    again = flowc.ir.parse(text, flowc.ir.graph_resources(graph))
    assert str(again) == text
    assert [v.type for v in again.inputs] == [v.type for v in graph.inputs]
    assert [v.name for v in again.outputs] == [h, h + "out"]
    x = np.linspace(-30, 10, 40, dtype=np.float32).reshape(2, 20)
    for g in (graph, again):
        got = flowc.ir.run(g, {h + "in": x})
        for key, want in hostile_expected(h, x).items():
            np.testing.assert_allclose(got[key], want)


@pytest.mark.parametrize("h", HOSTILE_NAMES, ids=ascii)
def test_hostile_names_stay_on_one_line_in_errors(h):
    nodes = [helper.make_node("Add", ["x", h], ["y"], name=h)]
    message = refused(make_model(nodes), "is not produced by any node")
    assert message.isprintable(), f"unescaped characters in {message!r}"


@pytest.mark.parametrize("h", HOSTILE_NAMES, ids=ascii)
def test_hostile_names_compile_into_out_dir_only(tmp_path, h):
    out = tmp_path / "deep" / "out"
    out.parent.mkdir()
    (tmp_path / "model.onnx").write_bytes(hostile_model(h).SerializeToString())
    artifact = flowc.compile(str(tmp_path / "model.onnx"), target="reference", out_dir=out)
    written = {p for p in tmp_path.rglob("*") if not p.is_dir()} - {tmp_path / "model.onnx"}
    assert written, "compile wrote nothing into out_dir"
    assert all(out in p.parents for p in written), f"written outside out_dir: {sorted(map(str, written))}"
    assert sorted(os.listdir(tmp_path)) == ["deep", "model.onnx"]
    x = np.linspace(-30, 10, 60, dtype=np.float32).reshape(3, 20)
    got = flowc.load(artifact.path).run({h + "in": x})
    for key, want in hostile_expected(h, x).items():
        np.testing.assert_allclose(got[key], want)


def test_made_up_names_avoid_tensors_the_model_defines_later():
    # opset 13 keeps ReduceMean's axes as an attribute; the importer makes a constant for them
    nodes = [helper.make_node("ReduceMean", ["x"], ["m"], name="r", axes=[1], keepdims=0),
             helper.make_node("Relu", ["m"], ["r_axes"], name="later")]
    graph = load(make_model(nodes, outputs=[tensor_info("r_axes", None)], opset=13))
    x = np.array([[-3.0, 0.0, 6.0], [3.0, 3.0, 3.0]], np.float32)
    np.testing.assert_allclose(flowc.ir.run(graph, {"x": x})["r_axes"], [1.0, 3.0])


def test_omitted_output_name_avoids_tensors_the_model_defines_later():
    nodes = [helper.make_node("Split", ["x"], ["a", "", "c"], name="s", axis=1, num_outputs=3),
             helper.make_node("Add", ["a", "c"], ["s_unused"], name="later")]
    graph = load(make_model(nodes, outputs=[tensor_info("s_unused", None)], opset=18))
    x = np.array([[1.0, 2.0, 3.0]], np.float32)
    np.testing.assert_allclose(flowc.ir.run(graph, {"x": x})["s_unused"], [[4.0]])


# -- outputs that are inputs or constants --------------------------------------------------------

def passthrough_model():
    w = numpy_helper.from_array(np.arange(3, dtype=np.float32), "w")
    return make_model([relu()], outputs=[tensor_info("x"), tensor_info("y"), tensor_info("w", (3,))],
                      initializers=[w])


def test_graph_output_that_is_a_graph_input():
    graph = load(passthrough_model())
    x = np.array([[-1.0, 0.5, 2.0]], np.float32)
    got = flowc.ir.run(graph, {"x": x})
    assert list(got) == ["x", "y", "w"]
    np.testing.assert_array_equal(got["x"], x)
    np.testing.assert_array_equal(got["y"], np.maximum(x, 0))
    np.testing.assert_array_equal(got["w"], [0, 1, 2])


def test_graph_output_that_is_a_graph_input_compiles(tmp_path):
    artifact = flowc.compile(passthrough_model(), target="reference", out_dir=tmp_path / "out")
    x = np.array([[-1.0, 0.5, 2.0]], np.float32)
    got = flowc.load(artifact.path).run({"x": x})
    assert list(got) == ["x", "y", "w"]
    np.testing.assert_array_equal(got["x"], x)
    np.testing.assert_array_equal(got["y"], np.maximum(x, 0))
    np.testing.assert_array_equal(got["w"], [0, 1, 2])


# -- wrong inputs at run time -----------------------------------------------------------------------

def two_input_model():
    return make_model([helper.make_node("Add", ["a", "b"], ["y"])], inputs=[tensor_info("a"), tensor_info("b")])


A = np.ones((2, 3), np.float32)
WRONG_INPUTS = [
    pytest.param({"a": A}, 'missing input "b"; the model takes "a": f32[B,3], "b": f32[B,3]', id="missing"),
    pytest.param({"a": A, "b": A, "c": A}, 'unknown input "c"; the model takes "a", "b"', id="extra"),
    pytest.param({"a": A.astype(np.float64), "b": A}, 'input "a": expected dtype f32 (float32), got float64',
                 id="dtype"),
    pytest.param({"a": np.ones(3, np.float32), "b": A}, 'input "a": expected shape [B, 3] (rank 2), got [3]',
                 id="rank"),
    pytest.param({"a": np.ones((2, 4), np.float32), "b": A},
                 'input "a": expected shape [B, 3], got [2, 4] (axis 1 should be 3)', id="dim"),
    pytest.param({"a": A, "b": np.ones((4, 3), np.float32)},
                 'input "b": expected shape [B, 3], got [4, 3] (axis 0 should be B=2)', id="symbolic-dim"),
    pytest.param([A, A], "inputs must be a dict of name -> array, got list", id="not-a-dict"),
]


@pytest.mark.parametrize("feeds, message", WRONG_INPUTS)
def test_wrong_inputs_to_the_interpreter(feeds, message):
    graph = load(two_input_model())
    with pytest.raises(flowc.InputError, match=re.escape(message)) as info:
        flowc.ir.run(graph, feeds)
    assert str(info.value) == message


@pytest.mark.parametrize("feeds, message", WRONG_INPUTS)
def test_wrong_inputs_to_a_compiled_model(tmp_path, feeds, message):
    model = flowc.load(flowc.compile(two_input_model(), target="reference", out_dir=tmp_path / "out").path)
    with pytest.raises(flowc.InputError) as info:
        model.run(feeds)
    assert str(info.value) == message


def test_wrong_input_with_a_hostile_name():
    h = 'in"\n\\put'
    graph = load(make_model([relu(h, "y")], inputs=[tensor_info(h)]))
    with pytest.raises(flowc.InputError) as info:
        flowc.ir.run(graph, {})
    assert str(info.value) == 'missing input "in\\"\\n\\\\put"; the model takes "in\\"\\n\\\\put": f32[B,3]'


@pytest.mark.parametrize("opset", [11, 17])
def test_flowc_internal_ops_are_not_accepted_from_onnx_files(opset):
    from onnx import TensorProto as T
    from onnx import helper as h
    node = h.make_node("FusedElementwise", ["x"], ["y"], name="sneaky", program="y = Relu x0")
    m = h.make_model(h.make_graph([node], "g", [h.make_tensor_value_info("x", T.FLOAT, [2])],
                                  [h.make_tensor_value_info("y", T.FLOAT, None)]),
                     opset_imports=[h.make_opsetid("", opset)])
    with pytest.raises(flowc.CompileError) as e:
        flowc.frontend.onnx.load(m)
    assert str(e.value).startswith(f"FusedElementwise node \"sneaky\": op 'FusedElementwise' (opset {opset}) "
                                   "is not supported; flowc supports: Abs, ")
    assert "FusedMatMul" not in str(e.value)

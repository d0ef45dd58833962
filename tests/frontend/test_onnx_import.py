"""The ONNX importer: names kept, constants, opset forms upgraded, external data, checked against onnxruntime."""
import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto as T
from onnx import helper as h
from onnx import numpy_helper

import flowc
from flowc.frontend.onnx import load

rng = np.random.default_rng(0)


def model(nodes, inputs, outputs, inits=(), opset=17):
    g = h.make_graph(nodes, "g", inputs, outputs, list(inits))
    return h.make_model(g, opset_imports=[h.make_opsetid("", opset)])


def same_as_onnxruntime(m, feeds, rtol=1e-5, atol=1e-6):
    want = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, feeds)
    graph = load(m)
    got = flowc.ir.run(graph, feeds)
    for v, w in zip(graph.outputs, want):
        np.testing.assert_allclose(got[v.name], w, rtol=rtol, atol=atol)
    return graph


def test_names_initializers_and_constant_nodes_are_kept():
    w = numpy_helper.from_array(rng.standard_normal((3, 4)).astype(np.float32), "fc.weight")
    m = model([h.make_node("Constant", [], ["two"], value_float=2.0, name="const"),
               h.make_node("MatMul", ["x", "fc.weight"], ["h"], name="/fc/MatMul"),
               h.make_node("Mul", ["h", "two"], ["y"], name="/scale/Mul")],
              [h.make_tensor_value_info("x", T.FLOAT, ["batch", 3])], [h.make_tensor_value_info("y", T.FLOAT, None)],
              [w])
    g = same_as_onnxruntime(m, {"x": rng.standard_normal((5, 3)).astype(np.float32)})
    text = str(g)
    assert "%fc.weight: f32[3,4] = const dense<" in text
    assert "%two: f32[] = const dense<[2.0]>" in text
    assert '%h: f32[batch,4] = MatMul(%x, %fc.weight) loc("/fc/MatMul")' in text


@pytest.mark.parametrize("opset", [13, 17])
def test_reduce_axes_attribute_becomes_an_input_before_opset_18(opset):
    m = model([h.make_node("ReduceMean", ["x"], ["y"], axes=[1], keepdims=0, name="mean")],
              [h.make_tensor_value_info("x", T.FLOAT, [2, 5, 3])], [h.make_tensor_value_info("y", T.FLOAT, None)],
              opset=opset)
    g = same_as_onnxruntime(m, {"x": rng.standard_normal((2, 5, 3)).astype(np.float32)})
    assert "ReduceMean[keepdims=0](%x, %mean_axes)" in str(g)


def test_group_norm_scale_per_group_before_opset_21():
    s = numpy_helper.from_array(rng.standard_normal(3).astype(np.float32), "s")
    b = numpy_helper.from_array(rng.standard_normal(3).astype(np.float32), "b")
    m = model([h.make_node("GroupNormalization", ["x", "s", "b"], ["y"], num_groups=3)],
              [h.make_tensor_value_info("x", T.FLOAT, [2, 6, 4])], [h.make_tensor_value_info("y", T.FLOAT, None)],
              [s, b], opset=18)
    same_as_onnxruntime(m, {"x": rng.standard_normal((2, 6, 4)).astype(np.float32)})


def test_old_opset_is_upgraded_by_the_version_converter():
    m = model([h.make_node("Unsqueeze", ["x"], ["y"], axes=[0]), h.make_node("Relu", ["y"], ["z"])],
              [h.make_tensor_value_info("x", T.FLOAT, [3])], [h.make_tensor_value_info("z", T.FLOAT, None)],
              opset=11)
    g = load(m)
    x = np.array([-1, 0, 2], np.float32)
    np.testing.assert_array_equal(flowc.ir.run(g, {"x": x})["z"], np.maximum(x, 0)[None])


def test_newer_opset_than_supported_is_refused():
    m = model([h.make_node("Relu", ["x"], ["y"])], [h.make_tensor_value_info("x", T.FLOAT, [3])],
              [h.make_tensor_value_info("y", T.FLOAT, None)], opset=29)
    with pytest.raises(flowc.CompileError) as e:
        load(m)
    assert str(e.value) == "the model uses opset 29 of the default ONNX domain; flowc supports opsets 13 to 28"


def test_external_data_inside_the_folder_is_read(tmp_path):
    w = rng.standard_normal((64, 64)).astype(np.float32)
    m = model([h.make_node("MatMul", ["x", "w"], ["y"])], [h.make_tensor_value_info("x", T.FLOAT, [1, 64])],
              [h.make_tensor_value_info("y", T.FLOAT, None)], [numpy_helper.from_array(w, "w")])
    onnx.save_model(m, str(tmp_path / "m.onnx"), save_as_external_data=True, location="weights.bin",
                    size_threshold=0)
    g = load(tmp_path / "m.onnx")
    x = rng.standard_normal((1, 64)).astype(np.float32)
    np.testing.assert_allclose(flowc.ir.run(g, {"x": x})["y"], x @ w, rtol=1e-5)
    with pytest.raises(flowc.CompileError, match="keeps its data in an external file"):
        load(onnx.load(str(tmp_path / "m.onnx"), load_external_data=False))


def test_example_model_imports_and_matches_onnxruntime():
    from pathlib import Path
    path = Path(__file__).resolve().parents[2] / "examples" / "models" / "tinycnn.onnx"
    x = rng.standard_normal((2, 3, 32, 32)).astype(np.float32)
    want = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"image": x})[0]
    got = flowc.ir.run(load(path), {"image": x})["logits"]
    np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-4)


def test_dim_params_stay_opaque_names():
    """"N*M" and "12" are names in ONNX, not a product and a number; each gets its own symbol."""
    m = model([h.make_node("Relu", ["x"], ["z"]), h.make_node("Relu", ["y"], ["w"])],
              [h.make_tensor_value_info("x", T.FLOAT, ["N*M", 4]),
               h.make_tensor_value_info("y", T.FLOAT, ["12", "_N_M", "N*M", "batch"])],
              [h.make_tensor_value_info("z", T.FLOAT, None), h.make_tensor_value_info("w", T.FLOAT, None)])
    g = load(m)
    assert [str(v.type) for v in g.inputs] == ["f32[_N_M,4]", "f32[_12,_N_M_1,_N_M,batch]"]
    out = flowc.ir.run(g, {"x": np.ones((6, 4), np.float32), "y": np.ones((2, 3, 6, 5), np.float32)})
    assert out["w"].shape == (2, 3, 6, 5)
    with pytest.raises(flowc.InputError, match="_N_M"):    # both inputs share N*M
        flowc.ir.run(g, {"x": np.ones((6, 4), np.float32), "y": np.ones((2, 3, 7, 5), np.float32)})

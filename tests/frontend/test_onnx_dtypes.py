"""Every element type flowc holds imports from ONNX exactly: raw and typed-field initializers,
sub-byte types packed as ONNX packs them (an odd count leaves a padded half byte)."""
from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest
from onnx import helper, numpy_helper

import flowc
from flowc import ir
from flowc.frontend.onnx import load


def _values(d: ir.DType) -> np.ndarray:
    """Five values of d, its extremes among them (an odd count, to pad the packed types)."""
    if d.kind == "bool":
        return np.array([True, False, True, True, False])
    if d.kind == "int":
        info = ml_dtypes.iinfo(d.np)
        return np.array([0, 1, int(info.min), int(info.max), int(info.max) // 2], dtype=object).astype(d.np)
    info = ml_dtypes.finfo(d.np)
    small = [float(info.smallest_subnormal), float(info.tiny)]
    if d.name == "f8e8m0":   # onnx's make_tensor writes it through f32, where 2^-127 is subnormal and rounds up
        small = [2.0 ** -126, 2.0 ** -100]
    return np.array([1.0, 0.5, float(info.max), *small]).astype(d.np)


def _identity_of(w) -> object:
    out = helper.make_tensor_value_info("y", w.data_type, list(w.dims))
    graph = helper.make_graph([helper.make_node("Identity", ["w"], ["y"])], "g", [], [out], [w])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 25)])


@pytest.mark.parametrize("raw", [True, False], ids=["raw", "typed"])
@pytest.mark.parametrize("dt", list(ir.DTYPES))
def test_initializers_of_every_dtype_import_exactly(dt, raw):
    d = ir.dtype(dt)
    values = _values(d)
    w = numpy_helper.from_array(values, "w") if raw else helper.make_tensor("w", d.onnx, values.shape, values)
    assert w.HasField("raw_data") == raw
    graph = load(_identity_of(w))
    assert str(graph.outputs[0].type) == f"{dt}[5]"
    got = ir.run(graph, {})["y"]
    assert got.dtype == d.np
    np.testing.assert_array_equal(got.view(np.uint8), values.view(np.uint8))


@pytest.mark.parametrize("dt,nbytes", [("i4", 3), ("u2", 2), ("f4e2m1", 3), ("u16", 10)])
def test_raw_data_of_the_wrong_packed_length_is_refused(dt, nbytes):
    w = numpy_helper.from_array(_values(ir.dtype(dt)), "w")
    w.raw_data = w.raw_data + b"\0"
    with pytest.raises(flowc.CompileError) as e:
        load(_identity_of(w))
    assert str(e.value) == f'initializer "w": shape [5] needs {nbytes} bytes, its data holds {nbytes + 1}'


def test_a_storage_type_reaching_arithmetic_is_a_clean_error():
    x = helper.make_tensor_value_info("x", ir.dtype("f8e4m3fn").onnx, [2])
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"], name="act")], "g", [x],
                              [helper.make_tensor_value_info("y", ir.dtype("f8e4m3fn").onnx, [2])])
    with pytest.raises(flowc.CompileError) as e:
        load(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 25)]))
    assert str(e.value) == ('Relu node "act": input "x" is f8e4m3fn[2]: Relu does not take the storage-only '
                            'type f8e4m3fn; Cast it to f32 first')

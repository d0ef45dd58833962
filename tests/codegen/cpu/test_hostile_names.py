"""The hostile-name corpus through target cpu: every name in one model (graph, inputs, the batch
dim, nodes, initializers, outputs), compiled with a dynamic batch into a C++ project that must
build, run right and stay inside its output folder."""
from __future__ import annotations

import os
import re

import numpy as np
from onnx import TensorProto, helper, numpy_helper

import flowc
from hostile_names import HOSTILE_NAMES


def hostile_model():
    dim = HOSTILE_NAMES[0]
    nodes, inputs, outputs, inits = [], [], [], []
    for i, h in enumerate(HOSTILE_NAMES):
        inits += [numpy_helper.from_array(np.arange(20, dtype=np.float32) + i, h + "big"),
                  numpy_helper.from_array(np.array([i + 0.5], np.float32), h + "small")]
        nodes += [helper.make_node("Add", [h + "in", h + "big"], [h + "mid"], name=h),
                  helper.make_node("Relu", [h + "mid"], [h]),
                  helper.make_node("Mul", [h, h + "small"], [h + "out"], name=h + "mul")]
        inputs.append(helper.make_tensor_value_info(h + "in", TensorProto.FLOAT, [dim, 20]))
        outputs += [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in (h, h + "out")]
    graph = helper.make_graph(nodes, "".join(HOSTILE_NAMES), inputs, outputs, inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_hostile_names_build_run_and_stay_in_out_dir(tmp_path, toolchain):
    tensors = [h + s for h in HOSTILE_NAMES for s in ("in", "big", "small", "mid", "", "out")]
    assert len(set(tensors)) == len(tensors)
    (tmp_path / "model.onnx").write_bytes(hostile_model().SerializeToString())
    out = tmp_path / "deep" / "out"
    out.parent.mkdir()
    artifact = flowc.compile(str(tmp_path / "model.onnx"), target="cpu", out_dir=out, max_batch=3)
    written = {p for p in tmp_path.rglob("*") if not p.is_dir()} - {tmp_path / "model.onnx"}
    assert written and all(out in p.parents for p in written), sorted(map(str, written - set(out.rglob("*"))))
    assert sorted(os.listdir(tmp_path)) == ["deep", "model.onnx"]
    # names reach the code only as escaped string literals (comments keep letters and a few marks)
    code = re.sub(r'"(?:[^"\\\n]|\\.)*"|//[^\n]*', "", (out / "model.cpp").read_text())
    for fragment in ("abort", "#define x", "../", "??/", 'quote"d'):
        assert fragment not in code
    model = flowc.load(artifact.path)
    for batch in (1, 3):
        feeds = {h + "in": np.linspace(-30, 10, 20 * batch, dtype=np.float32).reshape(batch, 20) + i
                 for i, h in enumerate(HOSTILE_NAMES)}
        got = model.run(feeds)
        for i, h in enumerate(HOSTILE_NAMES):
            y = np.maximum(feeds[h + "in"] + np.arange(20, dtype=np.float32) + i, 0)
            np.testing.assert_allclose(got[h], y, rtol=1e-6, err_msg=ascii(h))
            np.testing.assert_allclose(got[h + "out"], y * np.float32(i + 0.5), rtol=1e-6, err_msg=ascii(h))

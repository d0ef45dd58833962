"""The whole logical pipeline on a model as torch.onnx exports it below opset 17 (LayerNorm and
GELU decomposed, Linear as Gemm, a reshape through a Shape -> Gather -> Concat chain with a
symbolic batch): the ops it leaves, the values it keeps, and that running it again changes nothing."""
import io
import warnings
from collections import Counter

import numpy as np
import pytest

from flowc import ir
from flowc.frontend.onnx import load
from flowc.ir.passes import PIPELINE, optimize

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")


def exported_block() -> ir.Graph:
    from torch import nn

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.ln = nn.LayerNorm(16)
            self.fc1, self.fc2 = nn.Linear(16, 32), nn.Linear(32, 16)
            self.act = nn.GELU()

        def forward(self, x):
            y = (x + self.fc2(self.act(self.fc1(self.ln(x))))).reshape(x.shape[0], 4, 4).transpose(1, 2)
            return y.reshape(x.shape[0], -1)

    torch.manual_seed(0)
    f = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(Block().eval(), torch.randn(2, 16), f, opset_version=14, dynamo=False,
                          input_names=["x"], output_names=["y"], dynamic_axes={"x": {0: "B"}, "y": {0: "B"}})
    return load(onnx.load_from_string(f.getvalue()))


def test_pipeline_order():
    assert [p.name for p in PIPELINE] == [
        "infer-shapes", "eliminate-dead-code", "fold-constants", "eliminate-common-subexpressions",
        "canonicalize", "fold-constants", "eliminate-common-subexpressions"]


def test_pipeline_on_an_exported_block():
    graph = exported_block()
    x = np.random.default_rng(0).standard_normal((3, 16)).astype(np.float32)
    want = ir.run(graph, {"x": x})["y"]
    out = optimize(graph, verify_each=True)
    assert Counter(n.op for n in out.nodes) == Counter({
        "LayerNormalization": 1, "MatMul": 2, "Add": 3, "Gelu": 1, "Reshape": 2, "Transpose": 1,
        # the batch dim stays dynamic: Shape -> Gather -> Unsqueeze, then one Concat per Reshape
        "Shape": 1, "Gather": 1, "Unsqueeze": 1, "Concat": 2})
    np.testing.assert_allclose(ir.run(out, {"x": x})["y"], want, rtol=1e-5, atol=1e-6)
    text = ir.print_graph(out)
    assert ir.print_graph(optimize(out, verify_each=True)) == text

"""print -> parse -> print is the identity for every graph the tests import, before and after the pipeline."""
import sys
from pathlib import Path

import pytest

import flowc
from flowc import ir
from flowc.frontend.onnx import load

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "frontend"))
import onnx_node_suite  # noqa: E402


def assert_roundtrip(graph: ir.Graph) -> None:
    text = ir.print_graph(graph)
    again = ir.parse(text, ir.graph_resources(graph))
    assert ir.print_graph(again) == text
    ir.verify(again)


def test_every_node_suite_graph_round_trips():
    root = onnx_node_suite.ensure_data()
    checked = 0
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        try:
            graph = load(folder / "model.onnx")
        except flowc.CompileError:
            continue   # unsupported cases are counted by the node-suite test
        assert_roundtrip(graph)
        try:
            ir.passes.optimize(graph, verify_each=True)
        except flowc.CompileError:
            continue   # e.g. a fold that fails on purpose-built bad data
        assert_roundtrip(graph)
        checked += 1
    assert checked > 1000


@pytest.mark.parametrize("name", ["mlp", "resnet", "vit", "bert", "gpt2"])
def test_torch_models_round_trip(exported_model, name):
    graph = load(exported_model(name, 18))
    assert_roundtrip(graph)
    assert_roundtrip(ir.passes.optimize(graph, verify_each=True))

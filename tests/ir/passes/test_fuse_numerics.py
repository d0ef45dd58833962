"""Fusion keeps values: the torch-exported models through the pipeline and then LOWERING, run by the
reference interpreter before and after; BatchNorm folded into Conv on random parameters."""
from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from flowc import ir
from flowc.frontend.onnx import load
from flowc.ir import tensor_type
from flowc.ir.passes import PIPELINE, get_pass, optimize, run_passes
from flowc.ir.passes.fuse import LOWERING
from models import MODELS

RTOL, ATOL = 1e-5, 1e-6
# what fusion must at least make of each model (its matmuls and convs with their epilogues)
FUSED_AT_LEAST = {"mlp": {"FusedMatMul": 3}, "resnet": {"FusedConv": 7, "FusedMatMul": 1},
                  "vit": {"FusedMatMul": 6}, "bert": {"FusedMatMul": 15}, "gpt2": {"FusedMatMul": 2}}


def test_lowering_passes_are_registered_and_not_in_the_pipeline():
    assert [p.name for p in LOWERING] == ["decompose", "fuse-epilogues", "fuse-attention", "fuse-elementwise",
                                            "absorb-transposes"]
    assert all(get_pass(p.name) is p for p in LOWERING)
    assert not set(LOWERING) & set(PIPELINE)


@pytest.mark.parametrize("name", list(MODELS))
@pytest.mark.parametrize("opset", [17, 18])
def test_torch_models_keep_their_values(exported_model, report_section, name, opset):
    graph = optimize(load(exported_model(name, opset)), verify_each=True)
    before = Counter(n.op for n in graph.nodes)
    feeds = MODELS[name].inputs(3, np.random.default_rng(0))
    want = ir.run(graph, feeds)
    fused = run_passes(graph, LOWERING, verify_each=True)
    after = Counter(n.op for n in fused.nodes)
    got = ir.run(fused, feeds)
    assert list(got) == list(want)
    for key in want:
        np.testing.assert_allclose(got[key], want[key], rtol=RTOL, atol=ATOL, err_msg=f"{name}, output {key}")
    for op, least in FUSED_AT_LEAST[name].items():
        assert after[op] >= least, f"{name}: {after}"
    text = ir.print_graph(fused)
    assert ir.print_graph(ir.parse(text, ir.graph_resources(fused))) == text
    report_section(f"fusion: {name} opset {opset}",
                   f"{sum(before.values())} nodes -> {sum(after.values())}: "
                   + ", ".join(f"{op} {k}" for op, k in sorted(after.items()) if op.startswith("Fused")))


# -- BatchNorm folded into Conv (canonicalize) --------------------------------------------------------

def conv_batch_norm(*, bias: bool, group: int = 1, const_weight: bool = True, shared: bool = False):
    rng = np.random.default_rng(3)
    g = ir.Graph("g")
    x = g.add_input("x", tensor_type("f32", ["B", 4, 7, 6]))
    w = rng.standard_normal((8, 4 // group, 3, 3)).astype(np.float32)
    ins = [x, g.add_const(w, "w") if const_weight else g.add_input("w", tensor_type("f32", w.shape))]
    if bias:
        ins.append(g.add_const(rng.standard_normal(8).astype(np.float32), "b"))
    c = g.add_node("Conv", ins, attrs={"group": group, "pads": (1, 0, 1, 0)}, name="/conv").outputs[0]
    params = [rng.standard_normal(8), rng.standard_normal(8), rng.standard_normal(8), rng.random(8) + 0.1]
    bn = g.add_node("BatchNormalization", [c] + [g.add_const(p.astype(np.float32)) for p in params],
                    attrs={"epsilon": 1e-3}, name="/bn").outputs[0]
    g.outputs = [bn, c] if shared else [bn]
    return ir.verify(g)


def check_fold(graph: ir.Graph, folded: bool) -> None:
    rng = np.random.default_rng(0)
    feeds = {v.name: rng.standard_normal([d if isinstance(d, int) else 2 for d in v.type.shape]).astype(np.float32)
             for v in graph.inputs}
    want = ir.run(graph, feeds)
    out = run_passes(graph, [get_pass("canonicalize")], verify_each=True)
    ops = Counter(n.op for n in out.nodes)
    assert ops == (Counter({"Conv": 1}) if folded else Counter({"Conv": 1, "BatchNormalization": 1}))
    if folded:
        assert [n.name for n in out.nodes] == ["/conv"]
    got = ir.run(out, feeds)
    for key in want:
        np.testing.assert_allclose(got[key], want[key], rtol=RTOL, atol=1e-5, err_msg=key)


@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("group", [1, 2, 4])
def test_batch_norm_folds_into_conv(bias, group):
    check_fold(conv_batch_norm(bias=bias, group=group), folded=True)


def test_batch_norm_stays_when_the_weights_are_not_constant():
    check_fold(conv_batch_norm(bias=True, const_weight=False), folded=False)


def test_batch_norm_stays_when_the_conv_result_is_read_elsewhere():
    check_fold(conv_batch_norm(bias=True, shared=True), folded=False)

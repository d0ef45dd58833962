"""The test models compiled for 2 and 4 devices (and a 2x2 mesh), every rank simulated in numpy:
each plan the search finds, and plans forced by hints, compute what onnxruntime computes."""
import numpy as np
import onnxruntime as ort
import pytest

import flowc
import models

BATCH = 4

# (model, opset, mesh kwargs, hints): hints force splits the search would not pick for models this small
CASES = [
    ("mlp", 18, {"devices": 2}, None),
    ("mlp", 18, {"devices": 4}, {"x": "S(0)"}),
    ("resnet", 17, {"devices": 2}, {"x": "S(0)"}),
    ("resnet", 18, {"devices": 4}, None),
    ("resnet", 18, {"mesh": "2x2"}, {"x": "(S(0), S(2))"}),
    ("bert", 18, {"devices": 2}, {"input_ids": "S(0)"}),
    ("bert", 17, {"devices": 4}, None),
    ("gpt2", 18, {"devices": 2}, {"input_ids": "S(1)"}),
    ("gpt2", 17, {"devices": 4}, {"input_ids": "S(0)"}),
    ("gpt2", 18, {"mesh": "2x2"}, {"input_ids": "(S(0), B)"}),
]


@pytest.mark.parametrize("name,opset,mesh,hints", CASES,
                         ids=[f"{c[0]}-opset{c[1]}-{'x'.join(str(v) for v in c[2].values())}-{'hinted' if c[3] else 'searched'}"
                              for c in CASES])
def test_every_rank_matches_onnxruntime(tmp_path, exported_model, name, opset, mesh, hints):
    path = exported_model(name, opset)
    spec = models.MODELS[name]
    feeds = spec.inputs(BATCH, np.random.default_rng(3))
    shapes = {k: list(v.shape) for k, v in feeds.items()}
    artifact = flowc.compile(path, target="reference", out_dir=tmp_path / "a", input_shapes=shapes, sbp=hints,
                             **mesh)
    want = dict(zip(spec.output_names, ort.InferenceSession(str(path)).run(None, feeds)))
    from flowc.ir.passes.parallel import PhysicalGraph, simulate
    ranks = simulate(PhysicalGraph(artifact.graph, artifact.plan.mesh.shape,
                                   stored=[flowc.load(artifact.path)._physical.rank_constants(r)
                                           for r in range(artifact.plan.mesh.size)]), feeds)
    for rank, outputs in enumerate(ranks):
        for key, value in want.items():
            np.testing.assert_allclose(outputs[key], value, rtol=1e-4, atol=1e-4, err_msg=f"rank {rank} {key}")
    if hints:   # the hint holds in the plan
        for tensor, sbp in hints.items():
            value = next(v for v in artifact.plan.graph.inputs if v.name == tensor)
            assert artifact.plan.seen(value) == flowc.ir.sbp.parse_sbp(sbp, len(artifact.plan.mesh.shape))

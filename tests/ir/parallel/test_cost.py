"""The cost model's arithmetic: `flops` rules at local shapes, and a split dividing the work."""
import numpy as np
import pytest

from flowc import ir
from flowc.ir.passes.parallel import candidates_for, make_mesh
from flowc.ir.sbp import B, S


def node_of(op, *shapes, attrs=None):
    g = ir.Graph(op)
    values = [g.add_const(np.zeros(s, np.float32), f"in{i}") for i, s in enumerate(shapes)]
    return g.add_node(op, values, attrs=attrs or {}, name="n")


@pytest.mark.parametrize("op,shapes,attrs,flops", [
    ("MatMul", [(4, 6), (6, 8)], {}, 2 * 4 * 8 * 6),
    ("Gemm", [(6, 4), (8, 6), (8,)], {"transA": 1, "transB": 1}, 2 * 4 * 8 * 6),
    # 2 * output elements [2, 8, 5, 5] * W's elements per output channel (4 * 3 * 3)
    ("Conv", [(2, 4, 5, 5), (8, 4, 3, 3)], {"pads": [1, 1, 1, 1]}, 2 * (2 * 8 * 5 * 5) * (4 * 3 * 3)),
    ("Conv", [(2, 8, 5, 5), (8, 2, 3, 3)], {"group": 4}, 2 * (2 * 8 * 3 * 3) * (2 * 3 * 3)),
    # 2 * input elements [2, 4, 3, 3] * W's elements per input channel (6 * 2 * 2)
    ("ConvTranspose", [(2, 4, 3, 3), (4, 6, 2, 2)], {"strides": [2, 2]}, 2 * (2 * 4 * 3 * 3) * (6 * 2 * 2)),
])
def test_flops(op, shapes, attrs, flops):
    node = node_of(op, *shapes, attrs=attrs)
    ins = [v.type for v in node.inputs]
    assert node.opdef.flops(node, ins, [v.type for v in node.outputs]) == flops


def test_a_split_divides_the_arithmetic():
    """A conv big enough to be compute-bound takes about half the time on each of two devices
    when its batch or its output channels are split."""
    node = node_of("Conv", (8, 64, 32, 32), (128, 64, 3, 3), attrs={"pads": [1, 1, 1, 1]})
    cands = {(c.ins[0], c.ins[1]): c.compute for c in candidates_for(node, make_mesh((2,)))}
    whole = cands[(B,), (B,)]
    assert cands[(S(0),), (B,)] == pytest.approx(whole / 2, rel=0.05)
    assert cands[(B,), (S(0),)] == pytest.approx(whole / 2, rel=0.05)

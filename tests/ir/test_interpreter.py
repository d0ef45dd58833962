"""The reference interpreter: input checking with exact messages, evaluation, memory release."""
import numpy as np
import pytest

import flowc
from flowc import ir
from flowc.ir import tensor_type


def two_input_graph():
    g = ir.Graph("g")
    a = g.add_input("a", tensor_type("f32", ["B", 3]))
    b = g.add_input("b", tensor_type("f32", ["B", 3]))
    s = g.add_node("Add", [a, b]).outputs[0]
    g.outputs = [g.add_node("Relu", [s], output_names=["out"]).outputs[0]]
    return g


def test_runs_and_binds_symbolic_dims():
    a = np.array([[1, -2, 3]], np.float32)
    out = ir.run(two_input_graph(), {"a": a, "b": a})
    np.testing.assert_array_equal(out["out"], np.maximum(2 * a, 0))


BAD_INPUTS = [
    ({"a": np.zeros((1, 3), np.float32)},
     'missing input "b"; the model takes "a": f32[B,3], "b": f32[B,3]'),
    ({"a": np.zeros((1, 3), np.float32), "b": np.zeros((1, 3), np.float32), "c": 1},
     'unknown input "c"; the model takes "a", "b"'),
    ({"a": np.zeros((1, 3), np.float64), "b": np.zeros((1, 3), np.float32)},
     'input "a": expected dtype f32 (float32), got float64'),
    ({"a": np.zeros((3,), np.float32), "b": np.zeros((1, 3), np.float32)},
     'input "a": expected shape [B, 3] (rank 2), got [3]'),
    ({"a": np.zeros((1, 4), np.float32), "b": np.zeros((1, 3), np.float32)},
     'input "a": expected shape [B, 3], got [1, 4] (axis 1 should be 3)'),
    ({"a": np.zeros((2, 3), np.float32), "b": np.zeros((5, 3), np.float32)},
     'input "b": expected shape [B, 3], got [5, 3] (axis 0 should be B=2)'),
]


@pytest.mark.parametrize("feeds,message", BAD_INPUTS)
def test_bad_inputs_are_named(feeds, message):
    with pytest.raises(flowc.InputError) as e:
        ir.run(two_input_graph(), feeds)
    assert str(e.value) == message


def test_not_a_dict():
    with pytest.raises(flowc.InputError, match="inputs must be a dict of name -> array, got list"):
        ir.run(two_input_graph(), [np.zeros(3)])


def test_intermediates_are_released():
    g = ir.Graph("chain")
    x = g.add_input("x", tensor_type("f32", [4]))
    v = x
    for _ in range(5):
        v = g.add_node("Neg", [v]).outputs[0]
    g.outputs = [v]
    from flowc.ir.interpreter import _last_uses
    last = _last_uses(g)
    assert len(last) == 4   # every intermediate but the output dies at its consumer
    np.testing.assert_array_equal(ir.run(g, {"x": np.ones(4, np.float32)})[v.name], -np.ones(4, np.float32))


def test_sizes_that_break_an_assumption_of_inference_are_input_errors():
    # inference types A + 3 as 3, assuming A is 1 or 3: A=2 is the caller's mistake, not flowc's
    g = ir.Graph("g")
    x = g.add_input("x", tensor_type("f32", ["A", 4]))
    z = g.add_input("z", tensor_type("f32", [3, 4]))
    g.outputs = [g.add_node("Add", [x, z], name="n").outputs[0]]
    ones = np.ones((3, 4), np.float32)
    assert ir.run(g, {"x": np.ones((1, 4), np.float32), "z": ones})[g.outputs[0].name].shape == (3, 4)
    with pytest.raises(flowc.InputError) as e:
        ir.run(g, {"x": np.ones((2, 4), np.float32), "z": ones})
    assert str(e.value) == ('input "x" axis 0 (A=2): these sizes do not fit the model: Add node "n" on '
                            "f32[A,4], f32[3,4] fails with them: operands could not be broadcast together "
                            "with shapes (2,4) (3,4) ")

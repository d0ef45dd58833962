"""codegen.schedule: the static order, liveness on it, and in-place candidates, from IR text."""
import pytest

from flowc import CompileError, ir
from flowc.codegen.schedule import InplaceCandidate, TensorLife, schedule

CHAIN = """graph chain(%x: f32[4,16]) {
  %shape: i64[1] = const dense<[64]>
  %a: f32[4,16] = Relu(%x)
  %b: f32[64] = Reshape(%a, %shape)
  %c: f32[64] = Exp(%b)
  %d: f32[64] = Add(%b, %c)
  %y: f32[64] = Neg(%d)
  return %y
}"""


def test_liveness_and_inplace_candidates_on_a_chain():
    s = schedule(ir.parse(CHAIN))
    assert [st.node.op for st in s.steps] == ["Relu", "Reshape", "Exp", "Add", "Neg"]
    assert {st.stream for st in s.steps} == {0}
    # y is a graph output: the caller's buffer, neither planned nor written in place
    assert s.caller_outputs == ("y",)
    assert s.tensors == (TensorLife("a", 256, 0, 1), TensorLife("b", 256, 1, 3),
                         TensorLife("c", 256, 2, 3), TensorLife("d", 256, 3, 4))
    # Exp cannot overwrite b, which Add still reads; Add may take either of its dying inputs
    assert s.inplace == (InplaceCandidate("b", "a"), InplaceCandidate("d", "b"), InplaceCandidate("d", "c"))


def test_no_inplace_over_a_broadcast_input_of_equal_bytes():
    s = schedule(ir.parse("""graph g(%x: f32[2], %e: f64[1]) {
  %a: f32[2] = Neg(%x)
  %b: f64[1] = Neg(%e)
  %p: f32[2] = Pow(%a, %b)
  %y: f32[2] = Neg(%p)
  return %y
}"""))
    # b has p's 8 bytes but is one f64 read for both elements: only a, element for element, qualifies
    assert s.inplace == (InplaceCandidate("p", "a"),)


def test_unread_output_lives_one_step():
    s = schedule(ir.parse("""graph g(%x: f32[3,4]) {
  %v: f32[3,2], %w: f32[3,2] = Split[axis=1, num_outputs=2](%x)
  %y: f32[3,2] = Relu(%v)
  return %y
}"""))
    assert s.tensors == (TensorLife("v", 24, 0, 1), TensorLife("w", 24, 0, 0))


TWO_BRANCHES = """graph g(%x: f32[256]) {
  %ax: i64[1] = const dense<[0]>
  %a: f32[256] = Relu(%x)
  %b: f32[256] = Neg(%x)
  %c: f32[1] = ReduceSum(%a, %ax)
  %d: f32[1] = ReduceSum(%b, %ax)
  %y: f32[1] = Add(%c, %d)
  return %y
}"""


def test_memory_order_reduces_live_peak():
    graph = ir.parse(TWO_BRANCHES)
    as_written = schedule(graph, reorder=False)
    assert as_written.order == "graph"
    assert as_written.live_peak_bytes == 1024 + 1024 + 4   # a, b and c at the first ReduceSum
    greedy = schedule(graph)
    assert greedy.order == "memory"
    assert [st.node.outputs[0].name for st in greedy.steps] == ["a", "c", "b", "d", "y"]
    assert greedy.live_peak_bytes == 4 + 1024 + 4          # c, b and d


def test_graph_order_kept_when_reordering_does_not_help():
    s = schedule(ir.parse(CHAIN))
    assert s.order == "graph"


def test_symbolic_dim_names_the_tensor():
    graph = ir.parse("""graph g(%x: f32[B,4]) {
  %a: f32[B,4] = Relu(%x) loc("/relu")
  %y: f32[B,4] = Neg(%a)
  return %y
}""")
    with pytest.raises(CompileError) as e:
        schedule(graph)
    assert str(e.value) == ('cannot plan memory for tensor "a" of Relu node "/relu": its type f32[B,4] has '
                            "no static size; pin the input shapes first (input_shapes= in flowc.compile, "
                            "or flowc.api.pin_input_shapes)")


def test_graph_out_of_order_is_refused():
    graph = ir.parse(CHAIN)
    graph.nodes.reverse()
    with pytest.raises(CompileError, match='input "d" is used before its producer runs'):
        schedule(graph, reorder=False)

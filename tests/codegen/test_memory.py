"""codegen.memory: arena offsets that never overlap while alive, against the live-set bound."""
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flowc import ir
from flowc.api import pin_input_shapes
from flowc.codegen.memory import ALIGNMENT, align, plan_memory
from flowc.codegen.schedule import TensorLife, schedule
from flowc.frontend.onnx import load
from flowc.ir.passes import optimize
from models import MODELS, OPSETS
from test_schedule import CHAIN


def assert_valid_plan(tensors, candidates, plan) -> None:
    """Every property a plan must have, checked pair by pair against its input."""
    by_name = {t.name: t for t in tensors}
    offered = {(c.output, c.input) if hasattr(c, "output") else tuple(c) for c in candidates}
    shared = set(plan.inplace) | {(b, a) for a, b in plan.inplace}
    for out, src in plan.inplace:
        o, s = by_name[out], by_name[src]
        assert (out, src) in offered
        assert s.last == o.first and s.first < o.first and s.nbytes == o.nbytes, (out, src)
        assert plan.offsets[out] == plan.offsets[src]
    assert len({o for o, _ in plan.inplace}) == len({s for _, s in plan.inplace}) == len(plan.inplace)
    assert set(plan.offsets) == set(by_name)
    for t in tensors:
        assert plan.offsets[t.name] % ALIGNMENT == 0
        assert plan.offsets[t.name] + align(t.nbytes) <= plan.peak_bytes
    for i, a in enumerate(tensors):
        for b in tensors[i + 1:]:
            alive_together = a.first <= b.last and b.first <= a.last
            oa, ob = plan.offsets[a.name], plan.offsets[b.name]
            overlap = a.nbytes and b.nbytes and oa < ob + b.nbytes and ob < oa + a.nbytes
            if alive_together and overlap:
                assert (a.name, b.name) in shared, f"{a} and {b} overlap at {oa}, {ob}"
    assert plan.lower_bound_bytes <= plan.peak_bytes <= plan.no_reuse_bytes
    assert plan.lower_bound_bytes == _live_set_bound(tensors, plan)
    assert plan.no_reuse_bytes == sum(align(t.nbytes) for t in tensors)


def _live_set_bound(tensors, plan) -> int:
    """The bound by brute force: aligned sizes alive at each step, a buffer handed over in place counted once."""
    by_name = {t.name: t for t in tensors}
    steps = {s for t in tensors for s in range(t.first, t.last + 1)}
    return max((sum(align(t.nbytes) for t in tensors if t.first <= s <= t.last)
                - sum(align(by_name[src].nbytes) for _, src in plan.inplace if by_name[src].last == s)
                for s in steps), default=0)


@st.composite
def interval_sets(draw):
    """Tensors on steps 0..40, some continuing a dying one at equal size (legal in place), and
    candidates mixing those with arbitrary, mostly illegal pairs."""
    tensors, candidates = [], []
    for i in range(draw(st.integers(0, 30))):
        earlier = [t for t in tensors if t.last > t.first]
        if earlier and draw(st.booleans()):
            src = draw(st.sampled_from(earlier))
            t = TensorLife(f"t{i}", src.nbytes, src.last, src.last + draw(st.integers(0, 6)))
            candidates.append((t.name, src.name))
        else:
            first = draw(st.integers(0, 40))
            t = TensorLife(f"t{i}", draw(st.integers(0, 5000)), first, first + draw(st.integers(0, 10)))
        tensors.append(t)
    if tensors:
        names = st.sampled_from([t.name for t in tensors])
        candidates += draw(st.lists(st.tuples(names, names), max_size=10))
    return tensors, draw(st.permutations(candidates))


@settings(max_examples=300, deadline=None)
@given(interval_sets())
def test_random_plans_are_valid(case):
    tensors, candidates = case
    plan = plan_memory(tensors, inplace=candidates)
    assert_valid_plan(tensors, candidates, plan)
    assert plan == plan_memory(tensors, inplace=candidates)   # deterministic


def test_exact_offsets_three_tensors():
    tensors = [TensorLife("A", 100, 0, 1), TensorLife("B", 200, 1, 2), TensorLife("C", 100, 2, 3)]
    plan = plan_memory(tensors)
    # B is placed first (largest); A and C never meet, so both sit above it
    assert plan.offsets == {"A": 256, "B": 0, "C": 256}
    assert (plan.peak_bytes, plan.lower_bound_bytes, plan.no_reuse_bytes) == (384, 384, 512)
    assert plan.ordering == "size"


def test_smallest_arena_over_orderings_is_kept():
    tensors = [TensorLife("t0", 64, 2, 3), TensorLife("t1", 192, 0, 0),
               TensorLife("t2", 128, 0, 2), TensorLife("t3", 192, 3, 4)]
    # by size: t1 and t3 at 0, t2 above t1, t0 above t2: 384 bytes; by start, t0 fits under t2
    plan = plan_memory(tensors)
    assert plan.ordering == "start"
    assert plan.offsets == {"t0": 0, "t1": 0, "t2": 192, "t3": 64}
    assert (plan.peak_bytes, plan.lower_bound_bytes) == (320, 320)


def test_chain_plans_in_place():
    s = schedule(ir.parse(CHAIN))
    plan = plan_memory(s.tensors, inplace=s.inplace)
    # a, its reshape b and d = b + c share one buffer; c, alive beside b, has its own
    assert plan.inplace == (("b", "a"), ("d", "b"))
    assert plan.offsets == {"a": 0, "b": 0, "c": 256, "d": 0}
    assert (plan.peak_bytes, plan.lower_bound_bytes, plan.no_reuse_bytes) == (512, 512, 1024)


def test_illegal_inplace_candidates_are_ignored():
    tensors = [TensorLife("src", 256, 0, 2), TensorLife("same_step", 256, 0, 1),
               TensorLife("bigger", 320, 2, 3), TensorLife("early", 256, 1, 3), TensorLife("ok", 256, 2, 4),
               TensorLife("second", 256, 2, 4)]
    candidates = [("same_step", "src"), ("bigger", "src"), ("early", "src"), ("ok", "src"),
                  ("second", "src"), ("src", "ok"), ("missing", "src")]
    plan = plan_memory(tensors, inplace=candidates)
    assert plan.inplace == (("ok", "src"),)   # src is handed over once; the others break a rule
    assert_valid_plan(tensors, candidates, plan)


def test_duplicate_tensor_is_refused():
    with pytest.raises(ValueError, match="tensor 'a' is given twice"):
        plan_memory([TensorLife("a", 4, 0, 1), TensorLife("a", 4, 2, 3)])


def _bert_base_like(layers=12, seq=128, hidden=768, heads=12, ffn=3072):
    """Lifetimes shaped like a BERT-base encoder at batch 1: a residual stream, per-head
    attention tensors and the feed-forward block, about 85 tensors a layer."""
    tensors, step = [], 0

    def add(name, nbytes, span):
        tensors.append(TensorLife(f"{name}{len(tensors)}", nbytes, step, step + span))

    add("mask", 4 * seq * seq, layers * 90)
    for _ in range(layers):
        add("residual", 4 * seq * hidden, 90)
        for _ in range(3):
            for h in range(heads):
                add("qkv_head", 4 * seq * hidden // heads, 20 + h)
                step += 1
        for _ in range(heads * 3):
            add("scores", 4 * seq * seq, 2)
            step += 1
        for size, span in ((4 * seq * ffn, 3), (4 * seq * ffn, 1), (4 * seq * hidden, 2), (4 * seq * hidden, 1)):
            add("ffn", size, span)
            step += 1
        for _ in range(8):   # layer norms, bias adds, the residual adds
            add("norm", 4 * seq * hidden, 1)
            step += 1
    return tensors


def test_bert_base_sized_plan_is_fast():
    tensors = _bert_base_like()
    assert len(tensors) >= 1000
    start = time.perf_counter()
    plan = plan_memory(tensors)
    seconds = time.perf_counter() - start
    assert seconds < 1.0, f"{len(tensors)} tensors planned in {seconds:.2f} s"
    assert plan.peak_bytes <= 1.15 * plan.lower_bound_bytes


@pytest.mark.parametrize("name,opset", [pytest.param(n, o, id=f"{n}-opset{o}") for n in MODELS for o in OPSETS])
def test_torch_models_plan_near_the_bound(name, opset, exported_model, report_section):
    path = exported_model(name, opset)
    rows = [f"{'batch':>5} {'peak':>9} {'bound':>9} {'no reuse':>9}  ordering"]
    for batch in (1, 8):
        graph = load(path)
        pin_input_shapes(graph, {v.name: (batch, *v.type.shape[1:]) for v in graph.inputs})
        graph = optimize(graph)
        s = schedule(graph)
        steps = {st.node: i for i, st in enumerate(s.steps)}
        assert all(steps[v.producer] < i for i, st in enumerate(s.steps)
                   for v in st.node.inputs if v is not None and v.producer is not None)
        plan = plan_memory(s.tensors, inplace=s.inplace)
        assert_valid_plan(list(s.tensors), s.inplace, plan)
        rows.append(f"{batch:>5} {plan.peak_bytes:>9} {plan.lower_bound_bytes:>9} {plan.no_reuse_bytes:>9}  "
                    f"{plan.ordering}")
        assert plan.peak_bytes <= 1.15 * plan.lower_bound_bytes, plan.summary()
    report_section(f"memory plan of {name}-opset{opset} (bytes)", "\n".join(rows))

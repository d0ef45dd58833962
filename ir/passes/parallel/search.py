"""The SBP search: one signature per op, chosen to minimise compute plus communication.

Every op offers the signatures its registry entry declares (combined over the mesh's axes,
keeping those whose splits divide evenly); an op that declares none runs replicated. The cost
of a plan is the compute time of every op on its local shapes plus the time of every boxing
(counted once per value and target SBP, however many consumers share it). Constants cost no
communication: the compiler cuts them for each device. Graph inputs arrive whole (B) on every
device and outputs leave whole.

The search is iterated conditional modes from several starting plans (greedy, replicated,
data parallel; on a 2-D mesh also the best of those with the batch split over one mesh axis):
each op in turn takes the signature that is cheapest given its neighbours' choices, until a
sweep changes nothing; the cheapest result wins. A per-device memory limit puts a price on
the bytes of weights each device keeps, raised until the plan fits, then lowered again as far
as it still fits. User hints fix the SBP in which consumers see a tensor.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Mapping

from flowc.errors import CompileError, quote_name

from ...graph import Graph, Node, Value
from ...sbp import B, NdSbp, Sbp, S, format_sbp, local_shape, parse_sbp, replicated, valid_nd_signatures
from ...types import TensorType
from .cost import boxing_bytes, boxing_time, compute_time, nbytes
from .mesh import Mesh
from .prepare import split_projections


@dataclass
class Candidate:
    ins: tuple[NdSbp | None, ...]
    outs: tuple[NdSbp, ...]
    compute: float

    def signature(self) -> str:
        ins = ", ".join("-" if s is None else format_sbp(s) for s in self.ins)
        return f"{ins} -> {', '.join(format_sbp(s) for s in self.outs)}"


@dataclass
class Explained:
    node: Node
    chosen: Candidate
    cost: float                     # compute plus the boxing on its inputs and outputs, at the chosen plan
    runner_up: Candidate | None
    runner_up_cost: float | None


@dataclass
class Plan:
    """A graph's parallel plan: a signature per node, the SBP consumers see each value in."""
    graph: Graph
    mesh: Mesh
    candidates: dict[Node, list[Candidate]]
    choice: dict[Node, int]
    hints: dict[Value, NdSbp]
    memory_price: float = 0.0
    explained: list[Explained] = field(default_factory=list)
    consumers: dict[Value, list[tuple[Node, int]]] = field(init=False, repr=False)

    def __post_init__(self):
        self.consumers = consumers_of(self.graph)

    def chosen(self, node: Node) -> Candidate:
        return self.candidates[node][self.choice[node]]

    def held(self, v: Value) -> NdSbp:
        """The SBP `v` is produced in (graph inputs: whole)."""
        if v.producer is None:
            return (B,) * len(self.mesh.shape)
        return self.chosen(v.producer).outs[v.producer.outputs.index(v)]

    def seen(self, v: Value) -> NdSbp:
        """The SBP consumers read `v` from: its hint, else as produced."""
        return self.hints.get(v, self.held(v))

    def required(self, v: Value) -> list[NdSbp]:
        """The distinct SBPs `v`'s consumers (and the graph's outputs: B) need, in first-use order."""
        wants: list[NdSbp] = []
        for node, i in self.consumers.get(v, ()):
            nd = self.chosen(node).ins[i]
            if nd not in wants:
                wants.append(nd)
        if v in self.graph.outputs and (B,) * len(self.mesh.shape) not in wants:
            wants.append((B,) * len(self.mesh.shape))
        return wants

    # -- what the plan costs ------------------------------------------------------------
    def compute_seconds(self) -> float:
        return sum(self.chosen(n).compute for n in self.graph.nodes)

    def boxings(self) -> list[tuple[Value, NdSbp, NdSbp]]:
        """Every boxing the plan runs, as (value, from, to): a hinted value to its hint, then to
        each SBP its consumers (and the graph's outputs) need."""
        out = []
        for v in _activations(self.graph):
            if v in self.hints and self.held(v) != self.hints[v]:
                out.append((v, self.held(v), self.hints[v]))
            out += [(v, self.seen(v), y) for y in self.required(v) if y != self.seen(v)]
        return out

    def comm_seconds(self) -> float:
        return sum(boxing_time(src, dst, v.type, self.mesh) for v, src, dst in self.boxings())

    def comm_bytes(self) -> int:
        """Bytes each device sends per request."""
        return sum(boxing_bytes(src, dst, v.type, self.mesh) for v, src, dst in self.boxings())

    def latency(self) -> float:
        """Predicted seconds per request: the ops and boxings of one device, one after another."""
        return self.compute_seconds() + self.comm_seconds()

    def weight_bytes(self) -> int:
        """Bytes of constants each device keeps (one copy per SBP its consumers read them in)."""
        total = 0
        for c in self.graph.constants:
            for y in self.required(c):
                total += nbytes(c.type, local_shape(c.type.shape, y, self.mesh.shape))
        return total

    def activation_bytes(self) -> int:
        """The most bytes of intermediate tensors live at once on a device, in graph order."""
        last = {}
        for i, node in enumerate(self.graph.nodes):
            for v in node.inputs:
                if v is not None and not v.is_const:
                    last[v] = i
        live, peak = 0, 0
        for v in self.graph.inputs:
            live += nbytes(v.type)
        for i, node in enumerate(self.graph.nodes):
            for v in node.outputs:
                live += nbytes(v.type, local_shape(v.type.shape, self.held(v), self.mesh.shape))
            peak = max(peak, live)
            for v in {u for u in node.inputs if u is not None and not u.is_const and last.get(u) == i}:
                if v not in self.graph.outputs:
                    live -= nbytes(v.type, local_shape(v.type.shape, self.held(v), self.mesh.shape))
        return max(peak, live)

    def memory_bytes(self) -> int:
        return self.weight_bytes() + self.activation_bytes()


def _activations(graph: Graph) -> list[Value]:
    return list(graph.inputs) + [v for n in graph.nodes for v in n.outputs]


def consumers_of(graph: Graph) -> dict[Value, list[tuple[Node, int]]]:
    """(node, input index) of every use of each value, in graph order."""
    out: dict[Value, list[tuple[Node, int]]] = {}
    for node in graph.nodes:
        for i, v in enumerate(node.inputs):
            if v is not None:
                out.setdefault(v, []).append((node, i))
    return out


# -- the search ------------------------------------------------------------------------

def candidates_for(node: Node, mesh: Mesh, fused: bool = False) -> list[Candidate]:
    """The node's valid signatures on `mesh` with their compute time; replicated first. `fused`:
    the backend runs it inside its producer's kernel, so it costs no step overhead."""
    rule = node.opdef.sbp
    sigs = rule(node) if rule is not None else replicated(node)
    out, seen = [], set()
    for ins, outs in valid_nd_signatures(node, sigs, mesh.shape):
        if (ins, outs) in seen:
            continue
        seen.add((ins, outs))
        in_types = [None if v is None else _local(v.type, nd, mesh) for v, nd in zip(node.inputs, ins)]
        out_types = [_local(v.type, nd, mesh) for v, nd in zip(node.outputs, outs)]
        out.append(Candidate(ins, outs, compute_time(node, in_types, out_types, mesh, overhead=not fused)))
    if not out:
        raise CompileError(f"{node!r}: no valid SBP signature on mesh {mesh} (flowc bug: replicated always is)")
    return out


def all_candidates(graph: Graph, mesh: Mesh, consumers: dict | None = None) -> dict[Node, list[Candidate]]:
    """Every node's candidates, priced as the backend will run it (fused ops without overhead)."""
    consumers = consumers_of(graph) if consumers is None else consumers
    return {n: candidates_for(n, mesh, fuses_into_producer(n, consumers)) for n in graph.nodes}


# what the backends' fusion (ir/passes/fuse.py) folds into the kernel before it: epilogues of a
# MatMul or Conv and chains of elementwise ops
_FUSING_PRODUCERS = frozenset({"MatMul", "Conv", "Gemm"})


def fuses_into_producer(node: Node, consumers: dict) -> bool:
    """An elementwise op whose first operand is an op's output read by it alone: fusion runs it in
    that op's kernel (a step it does not pay for). Where the plan boxes between them it would not
    fuse; the search does not model that."""
    if node.opdef.family != "elementwise" or not node.inputs or node.inputs[0] is None:
        return False
    x = node.inputs[0]
    producer = x.producer
    if producer is None or len(consumers.get(x, ())) != 1:
        return False
    return producer.opdef.family == "elementwise" or producer.op in _FUSING_PRODUCERS


def _local(t: TensorType, nd: NdSbp, mesh: Mesh) -> TensorType:
    return t.with_shape(local_shape(t.shape, nd, mesh.shape))


def parse_hints(graph: Graph, hints: Mapping[str, str | NdSbp] | None, mesh: Mesh) -> dict[Value, NdSbp]:
    out: dict[Value, NdSbp] = {}
    values = {v.name: v for v in _activations(graph)}
    for name, text in (hints or {}).items():
        v = values.get(name)
        if v is None:
            what = "a constant (the compiler cuts weights itself)" if any(c.name == name for c in graph.constants) \
                else "not a tensor of the optimised graph"
            raise CompileError(f"SBP hint for {quote_name(name)}: it is {what}; hint a graph input or an op's output")
        if isinstance(text, str):
            nd = parse_sbp(text, len(mesh.shape))
        elif isinstance(text, (tuple, list)) and text and all(isinstance(s, Sbp) for s in text):
            nd = tuple(text)
        else:
            raise CompileError(f"SBP hint for {quote_name(name)}: expected a string like \"S(0)\" or \"(S(0), B)\", "
                               f"or a tuple of ir.sbp.Sbp, got {text!r}")
        if len(nd) != len(mesh.shape):
            raise CompileError(f"SBP hint {quote_name(name)}={format_sbp(nd)}: {len(nd)} parts for mesh {mesh}")
        if any(s.kind == "P" for s in nd) and not v.type.dtype.is_float:
            raise CompileError(f"SBP hint {quote_name(name)}={format_sbp(nd)}: {v.type} is not a float tensor, "
                               "so it cannot be held as partial sums")
        if local_shape(v.type.shape, nd, mesh.shape) is None:
            raise CompileError(f"SBP hint {quote_name(name)}={format_sbp(nd)}: {v.type} does not split evenly "
                               f"on mesh {mesh}")
        out[v] = nd
    return out


class _Search:
    def __init__(self, graph: Graph, mesh: Mesh, hints: dict[Value, NdSbp], price: float):
        self.graph, self.mesh, self.hints, self.price = graph, mesh, hints, price
        self.consumers = consumers_of(graph)
        self.cands = all_candidates(graph, mesh, self.consumers)
        self.outputs = set(graph.outputs)
        self.whole = (B,) * len(mesh.shape)
        self.choice: dict[Node, int] = {}
        self._box: dict = {}

    def box(self, src: NdSbp, dst: NdSbp, v: Value) -> float:
        key = (src, dst, v)   # a Value hashes by identity, far faster than its TensorType
        cost = self._box.get(key)
        if cost is None:
            cost = self._box[key] = boxing_time(src, dst, v.type, self.mesh)
        return cost

    def held(self, v: Value) -> NdSbp | None:
        if v.producer is None:
            return self.whole
        j = self.choice.get(v.producer)
        return None if j is None else self.cands[v.producer][j].outs[v.producer.outputs.index(v)]

    def value_cost(self, v: Value, held: NdSbp | None = None, node: Node | None = None,
                   cand: Candidate | None = None) -> float:
        """Boxing (for a constant: memory) cost of `v` under the current choices, with `node`
        taking `cand` and `v` produced in `held` where given."""
        wants = []
        for other, i in self.consumers.get(v, ()):
            if other is node:
                nd = cand.ins[i]
            else:
                j = self.choice.get(other)
                if j is None:
                    continue
                nd = self.cands[other][j].ins[i]
            if nd not in wants:
                wants.append(nd)
        if v in self.outputs and self.whole not in wants:
            wants.append(self.whole)
        if v.is_const:
            if not self.price:
                return 0.0
            return self.price * sum(nbytes(v.type, local_shape(v.type.shape, y, self.mesh.shape)) for y in wants)
        held = held if held is not None else self.held(v)
        if held is None:
            return 0.0
        cost = 0.0
        if v in self.hints:
            cost += self.box(held, self.hints[v], v)
            held = self.hints[v]
        return cost + sum(self.box(held, y, v) for y in wants)

    def local_cost(self, node: Node, j: int) -> float:
        cand = self.cands[node][j]
        cost = cand.compute
        for i, v in enumerate(node.inputs):
            if v is None or v in node.inputs[:i]:
                continue
            cost += self.value_cost(v, node=node, cand=cand)   # every use here takes cand's SBP
        for o, v in enumerate(node.outputs):
            cost += self.value_cost(v, held=cand.outs[o])
        return cost

    def best(self, node: Node) -> int:
        costs = [self.local_cost(node, j) for j in range(len(self.cands[node]))]
        current = self.choice.get(node)
        best = min(range(len(costs)), key=lambda j: (costs[j], j))
        if current is not None and costs[current] <= costs[best] * (1 + 1e-9):
            return current
        return best

    def greedy(self) -> None:
        self.choice = {}
        for node in self.graph.nodes:
            self.choice[node] = self.best(node)

    def seed(self, pick: Callable[[Node, list[Candidate]], int]) -> None:
        self.choice = {n: pick(n, self.cands[n]) for n in self.graph.nodes}

    def refine(self, max_sweeps: int = 20) -> None:
        order = list(self.graph.nodes)
        for sweep in range(max_sweeps):
            changed = False
            for node in (order if sweep % 2 == 0 else reversed(order)):
                j = self.best(node)
                if j != self.choice[node]:
                    self.choice[node] = j
                    changed = True
            if not changed:
                return

    def total(self) -> float:
        cost = sum(self.cands[n][self.choice[n]].compute for n in self.graph.nodes)
        for v in _activations(self.graph):
            cost += self.value_cost(v)
        for c in self.graph.constants:
            cost += self.value_cost(c)
        return cost


def _data_parallel(node: Node, cands: list[Candidate]) -> int:
    """The signature splitting the first axis of the first output on every mesh axis, if any."""
    for j, c in enumerate(cands):
        if c.outs and all(s.is_split and s.axis == 0 for s in c.outs[0]):
            return j
    return 0


def search(graph: Graph, mesh: Mesh, hints: Mapping[str, str | NdSbp] | None = None,
           memory_limit: float | None = None) -> Plan:
    """The cheapest plan found for `graph` (static shapes, optimised) on `mesh`. The plan's graph is
    a copy with fused projections split into parts (prepare.split_projections) when it has any."""
    for v in _activations(graph) + list(graph.constants):
        if v.type is None or not v.type.is_static:
            raise CompileError(f"tensor {quote_name(v.name)} has type {v.type}: a plan over several devices needs "
                               "static shapes; pin the input shapes (input_shapes= in flowc.compile, "
                               "--input-shape NAME=D0,D1,... for flowc compile)")
    if any(n.op == "Split" for n in graph.nodes):
        graph = split_projections(graph.copy())
    parsed = parse_hints(graph, hints, mesh)
    s = _Search(graph, mesh, parsed, 0.0)   # its candidates and boxing costs serve every price
    plan = _search_once(s, 0.0)
    if memory_limit is not None and plan.memory_bytes() > memory_limit:
        plan = _fit(s, memory_limit, plan)
    plan.explained = _explain(graph, mesh, parsed, plan)
    return plan


def _fit(s: _Search, limit: float, unpriced: Plan) -> Plan:
    """The fastest plan found within `limit`: the price of a weight byte rises tenfold until a plan
    fits, then is bisected (geometrically) down towards the last price that did not fit, since a
    price set too high splits weights the limit did not need split and pays in communication
    (on a 2x2 mesh: Megatron over all four devices where data x tensor parallelism fits)."""
    graph, mesh = s.graph, s.mesh
    base = 1.0 / mesh.device.bandwidth
    low, high, plan = 0.0, None, unpriced
    for attempt in range(12):
        price = base * 10.0 ** attempt
        plan = _search_once(s, price)
        if plan.memory_bytes() <= limit:
            high = price
            break
        low = price
    if high is None:
        biggest = sorted(graph.constants, key=lambda c: -nbytes(c.type))[:3]
        raise CompileError(
            f"no plan on mesh {mesh} fits the memory limit of {limit / 2**20:.1f} MiB per device: the best needs "
            f"{plan.memory_bytes() / 2**20:.1f} MiB ({plan.weight_bytes() / 2**20:.1f} MiB of weights); largest "
            "weights: " + ", ".join(f"{quote_name(c.name)} {c.type}" for c in biggest)
            + "; use more devices or raise the limit")
    best = plan
    low = low or high / 1000
    for _ in range(6):
        price = (low * high) ** 0.5
        plan = _search_once(s, price)
        if plan.memory_bytes() <= limit:
            high = price
            if plan.latency() < best.latency():
                best = plan
        else:
            low = price
    return best


def _search_once(s: _Search, price: float) -> Plan:
    s.price = price
    results = []
    for start in ("greedy", "replicated", "data-parallel"):
        if start == "greedy":
            s.greedy()
        elif start == "replicated":
            s.seed(lambda n, c: 0)
        else:
            s.seed(_data_parallel)
        s.refine()
        results.append((s.total(), len(results), dict(s.choice)))
    best = min(results, key=lambda r: (r[0], r[1]))[2]
    for axis in range(len(s.mesh.shape) if len(s.mesh.shape) > 1 else 0):
        s.seed(lambda n, c, axis=axis: _batch_on_axis(c, best[n], axis))
        if s.choice != best:
            s.refine()
            results.append((s.total(), len(results), dict(s.choice)))
    _, _, choice = min(results, key=lambda r: (r[0], r[1]))
    return Plan(s.graph, s.mesh, s.cands, choice, s.hints, price)


def _batch_on_axis(cands: list[Candidate], j: int, axis: int) -> int:
    """Candidate j with the batch split over mesh `axis` instead (its first output's axis 0; else
    whole there), the other mesh axes as they were: the step from tensor parallelism over the
    whole mesh to data parallelism over one axis and tensor parallelism over the other, which
    no single op's change makes."""
    def elsewhere(c: Candidate) -> list:
        return [None if nd is None else nd[:axis] + nd[axis + 1:] for nd in c.ins + c.outs]

    def whole(c: Candidate) -> bool:
        return all(nd is None or nd[axis] == B for nd in c.ins + c.outs)

    keep = elsewhere(cands[j])
    for wanted in (lambda c: c.outs[0][axis] == S(0), whole):
        for k, c in enumerate(cands):
            if c.outs and wanted(c) and elsewhere(c) == keep:
                return k
    return j


def _explain(graph: Graph, mesh: Mesh, hints: dict[Value, NdSbp], plan: Plan) -> list[Explained]:
    s = _Search(graph, mesh, hints, plan.memory_price)
    s.cands, s.choice = plan.candidates, dict(plan.choice)
    rows = []
    for node in graph.nodes:
        costs = [s.local_cost(node, j) for j in range(len(s.cands[node]))]
        j = plan.choice[node]
        others = [k for k in range(len(costs)) if k != j]
        r = min(others, key=lambda k: (costs[k], k)) if others else None
        rows.append(Explained(node, s.cands[node][j], costs[j], None if r is None else s.cands[node][r],
                              None if r is None else costs[r]))
    return rows


__all__ = ["Candidate", "Explained", "Plan", "all_candidates", "candidates_for", "parse_hints", "search"]

"""A static execution order for a graph, and liveness on that order.

`schedule(graph)` picks the order (one stream for now), then gives every
intermediate value its size and lifetime in steps, and lists the outputs that
may be written in place over a dying input. `codegen/memory.py` turns that
into arena offsets.
"""
from __future__ import annotations

from dataclasses import dataclass

from flowc.errors import CompileError, describe_node, quote_name
from flowc.ir.graph import Graph, Node, Value
from flowc.ir.ops.tensor import VIEW_OPS as ALIAS_OPS   # the output shares the input's buffer

from .memory import live_peak_bytes

# Beyond the elementwise family: fused chains of its ops read element i of every input
# before writing element i, so they may write over an input too.
ELEMENTWISE_OPS = frozenset({"FusedElementwise"})


@dataclass(frozen=True)
class Step:
    node: Node
    stream: int = 0     # the worker that runs it; one stream until the multi-stream planner comes


@dataclass(frozen=True)
class TensorLife:
    """An intermediate value: its size and the steps it is alive, both ends included."""
    name: str
    nbytes: int
    first: int          # the step that writes it
    last: int           # the last step that reads it (`first` when nothing does)


@dataclass(frozen=True)
class InplaceCandidate:
    """`output` may take `input`'s buffer: `input` dies at the step that writes `output`."""
    output: str
    input: str


@dataclass(frozen=True)
class Schedule:
    steps: tuple[Step, ...]
    tensors: tuple[TensorLife, ...]           # planned in the arena, in step order
    inplace: tuple[InplaceCandidate, ...]
    caller_outputs: tuple[str, ...]           # graph outputs: written to the caller's buffers, not planned
    order: str                                # "graph", "memory" or "given": which ordering was kept

    @property
    def live_peak_bytes(self) -> int:
        """The largest sum of sizes of intermediates alive at one step."""
        return live_peak_bytes(self.tensors)


def schedule(graph: Graph, *, reorder: bool = True, order: list[Node] | None = None) -> Schedule:
    """Order `graph`'s nodes and compute liveness. With `reorder`, a memory-greedy order is
    also tried and kept when its live-set peak is lower; either way the order is topological.
    `order` (all the nodes, topological) is taken as it is instead."""
    sizes = _intermediate_sizes(graph)
    if order is not None:
        return _liveness(graph, _checked_order(graph, order, " in the order given"), sizes, "given")
    best = _liveness(graph, _checked_order(graph, graph.nodes, "; call graph.topo_sort() first"), sizes,
                     "graph")
    if reorder:
        greedy = _liveness(graph, _memory_greedy(graph, sizes), sizes, "memory")
        if greedy.live_peak_bytes < best.live_peak_bytes:
            best = greedy
    return best


def _intermediate_sizes(graph: Graph) -> dict[Value, int]:
    """Bytes of every node output that is not a graph output; CompileError when not static."""
    outputs = set(map(id, graph.outputs))
    sizes = {}
    for node in graph.nodes:
        for v in node.outputs:
            if id(v) in outputs:
                continue
            n = v.type.nbytes() if v.type is not None else None
            if n is None:
                raise CompileError(
                    f"cannot plan memory for tensor {quote_name(v.name)} of {describe_node(node)}: its type "
                    f"{v.type} has no static size; pin the input shapes first "
                    "(input_shapes= in flowc.compile, or flowc.api.pin_input_shapes)")
            sizes[v] = n
    return sizes


def _consumers(graph: Graph) -> dict[Value, list[Node]]:
    """Each value's distinct consumer nodes, in graph order."""
    users: dict[Value, list[Node]] = {}
    for node in graph.nodes:
        for v in dict.fromkeys(v for v in node.inputs if v is not None):
            users.setdefault(v, []).append(node)
    return users


def _predecessor_counts(graph: Graph) -> dict[Node, int]:
    return {n: len({v.producer for v in n.inputs if v is not None and v.producer is not None})
            for n in graph.nodes}


def _checked_order(graph: Graph, order: list[Node], hint: str = "") -> list[Node]:
    """`order`, checked to hold each node of the graph once, after the producers of its inputs."""
    if sorted(map(id, order)) != sorted(map(id, graph.nodes)):
        raise CompileError(f"the order given for graph {quote_name(graph.name)} is not a permutation of its nodes")
    done: set[Node] = set()
    for n in order:
        for v in n.inputs:
            if v is not None and v.producer is not None and v.producer not in done:
                raise n.error(f"input {quote_name(v.name)} is used before its producer runs{hint}")
        done.add(n)
    return list(order)


def _memory_greedy(graph: Graph, sizes: dict[Value, int]) -> list[Node]:
    """A topological order that runs next the ready node freeing the most bytes net of what
    it allocates; ties go to graph order, so the result is deterministic and stays close to it."""
    users = _consumers(graph)
    waiting = _predecessor_counts(graph)
    position = {n: i for i, n in enumerate(graph.nodes)}
    pending = {v: len(us) for v, us in users.items()}          # consumers not yet run
    ready = [n for n in graph.nodes if waiting[n] == 0]
    order = []

    def gain(node: Node) -> int:
        freed = sum(sizes.get(v, 0) for v in dict.fromkeys(node.inputs) if v is not None and pending[v] == 1)
        return freed - sum(sizes.get(v, 0) for v in node.outputs)

    while ready:
        node = max(ready, key=lambda n: (gain(n), -position[n]))
        ready.remove(node)
        order.append(node)
        for v in dict.fromkeys(v for v in node.inputs if v is not None):
            pending[v] -= 1
        for succ in dict.fromkeys(u for v in node.outputs for u in users.get(v, [])):
            waiting[succ] -= 1
            if waiting[succ] == 0:
                ready.append(succ)
    if len(order) != len(graph.nodes):
        raise CompileError(f"graph {quote_name(graph.name)} has a cycle; it cannot be scheduled")
    return order


def _liveness(graph: Graph, order: list[Node], sizes: dict[Value, int], label: str) -> Schedule:
    step_of = {n: i for i, n in enumerate(order)}
    first = {v: step_of[v.producer] for v in sizes}
    last = dict(first)
    for node in order:
        for v in node.inputs:
            if v in last:
                last[v] = max(last[v], step_of[node])
    tensors = tuple(TensorLife(v.name, sizes[v], first[v], last[v]) for v in sizes)
    inplace = tuple(c for node in order for c in _inplace_candidates(node, step_of[node], sizes, last))
    return Schedule(tuple(Step(n) for n in order), tuple(sorted(tensors, key=lambda t: t.first)),
                    inplace, tuple(v.name for v in graph.outputs), label)


def _inplace_candidates(node: Node, step: int, sizes: dict[Value, int], last: dict[Value, int]):
    """Outputs of an elementwise or alias node that may overwrite an input dying here.

    Same element width and count, not just equal bytes: a broadcast input of a wider type
    (Pow(f32[2], f64[1])) has the output's byte size but is still read while it is written.
    """
    if node.op in ALIAS_OPS:
        sources = node.inputs[:1]
    elif node.op in ELEMENTWISE_OPS or node.opdef.family == "elementwise":
        sources = list(dict.fromkeys(v for v in node.inputs if v is not None))
    else:
        return
    for out in node.outputs:
        if out not in sizes:
            continue
        for src in sources:
            if (src in sizes and last[src] == step and sizes[src] == sizes[out]
                    and src.type.dtype.bits == out.type.dtype.bits
                    and src.type.numel() == out.type.numel()):
                yield InplaceCandidate(out.name, src.name)

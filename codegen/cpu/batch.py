"""Dynamic batch for target cpu: one project that runs any batch from 1 to a bound.

The emitter writes code for static shapes. A model whose inputs lead with a symbolic batch
dim is specialised (pinned and optimised again) at three batch sizes, lowered and emitted at
each, all on the memory plan of the bound, so that the three step texts differ only in
numbers that depend on the batch. Each such number must be affine in the batch,
`a * batch + c` with `a >= 0`, through all three points; it is written as that expression of
the request's batch (`ctx->batch`), and everything else must be the same text. Whatever
depends on the batch otherwise (the graph's structure, a folded constant, a non-linear
size) is refused with a CompileError that names the step, so the code never guesses.

Shapes only shrink below the bound, so the bound's arena plan holds for every batch.
"""
from __future__ import annotations

import re
from typing import Sequence

from flowc.errors import CompileError, describe_node, quote_name
from flowc.ir.graph import Graph, Node
from flowc.ir.infer import infer_graph
from flowc.ir.passes import PIPELINE, fold_constants, fold_constants_no_growth, run_passes
from flowc.ir.types import _monomial, is_symbol_name, substitute_dim

# C tokens: string literals and comments whole, numbers (hex floats included), identifiers
_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|//.*|0[xX][0-9a-fA-F.]+(?:[pP][-+]?\d+)?[fFlLuU]*'
                    r'|\d+\.\d*(?:[eE][-+]?\d+)?[fF]?|\d+[eE][-+]?\d+[fF]?|\d+[uUlL]*|[A-Za-z_]\w*|\s+|.')
_INTEGER = re.compile(r"(\d+)([uUlL]*)")


def batch_symbol(graph: Graph, max_batch: int) -> str:
    """The symbol every input with a symbolic leading dim shares: the batch."""
    if isinstance(max_batch, bool) or not isinstance(max_batch, int) or max_batch < 1:
        raise CompileError(f"max_batch must be a positive int, got {max_batch!r}")
    symbols = {}
    for v in graph.inputs:
        shape = v.type.shape if v.type is not None else None
        if shape and isinstance(shape[0], str) and is_symbol_name(shape[0]):
            symbols.setdefault(shape[0], v)
    if len(symbols) != 1:
        inputs = ", ".join(f"{quote_name(v.name)}: {v.type}" for v in graph.inputs)
        if not symbols:
            raise CompileError(f"max_batch={max_batch}: no input has a symbolic leading (batch) dim, so there is "
                               f"no batch to bound; the inputs are {inputs}")
        raise CompileError(f"max_batch={max_batch}: the inputs lead with different symbols "
                           f"({', '.join(map(repr, symbols))}), so which one is the batch is unclear; pin all "
                           f"but one with input_shapes (inputs: {inputs})")
    symbol = next(iter(symbols))
    for v in graph.inputs:
        for axis, d in enumerate(v.type.shape or ()):
            if isinstance(d, str) and d != symbol:
                raise CompileError(f"input {quote_name(v.name)} has type {v.type}: dim {axis} ({d}) is symbolic "
                                   f"and is not the batch {symbol}; target cpu needs it pinned (input_shapes=)")
    return symbol


# Ops whose result is not linear in their operands: fed the batch size, they can make a
# graph behave differently at some batches (Equal(N, 1)) in ways three sample points miss.
_NONLINEAR = frozenset({"Equal", "Less", "LessOrEqual", "Greater", "GreaterOrEqual", "Not", "And", "Or", "Xor",
                        "Where", "Mod", "Div", "Min", "Max", "Clip", "Abs", "Sign", "If", "Loop"})
# Operands whose values pass on to the results: a batch size there is a batch size after.
_CARRY = {"Gather": (0,), "Slice": (0,), "Squeeze": (0,), "Unsqueeze": (0,), "Reshape": (0,), "Flatten": (0,),
          "Cast": (0,), "Identity": (0,), "Expand": (0,), "Tile": (0,), "Neg": (0,), "Concat": None, "Add": None,
          "Sub": None, "Mul": None, "Range": None}
# Operands that only say a shape (checked affine on its own), whatever values led to them.
_SHAPE_OPERANDS = {"Shape": (0,), "Size": (0,), "Expand": (1,), "Reshape": (1,), "ConstantOfShape": (0,),
                   "Tile": (1,)}


def check_batch_uses(graph: Graph, symbol: str) -> None:
    """What three sample points can vouch for: every tensor of the optimised symbolic graph has a
    known rank and dims that are constants or multiples of the batch, and the batch size, read
    by Shape, reaches no comparison or other non-linear op whose result is used for more than a
    shape."""
    for v in list(graph.inputs) + [o for n in graph.nodes for o in n.outputs]:
        shape = v.type.shape if v.type is not None else None
        if shape is None:
            raise _symbolic_error(v, "its rank is not known")
        for d in shape:
            m = _monomial(d)
            if m is None or m[1] not in ((), (symbol,)):
                raise _symbolic_error(v, f"dim {d} is not a constant or a multiple of the batch {symbol}")
    users = graph.users()
    sized: set[int] = set()   # values that hold the batch size, or numbers made from it
    for node in graph.nodes:
        if node.op in ("Shape", "Size"):
            if any(symbol in (_monomial(d) or (0, ()))[1] for d in node.inputs[0].type.shape):
                sized.update(id(o) for o in node.outputs)
            continue
        fed = [i for i, v in enumerate(node.inputs) if v is not None and id(v) in sized]
        if not fed:
            continue
        if node.op in _NONLINEAR:
            if not _only_shapes_read(graph, users, node):
                raise CompileError(f"dynamic batch: {describe_node(node)} computes on the batch size, which "
                                   "code compiled for a range of batches cannot follow; compile it for one batch "
                                   "(input_shapes=) instead of max_batch")
            sized.update(id(o) for o in node.outputs)
        elif node.op in _CARRY and (_CARRY[node.op] is None or any(i in _CARRY[node.op] for i in fed)):
            sized.update(id(o) for o in node.outputs)


def _only_shapes_read(graph: Graph, users, node: Node) -> bool:
    """`node`'s results, and what is computed from their values, end as shapes only (a broadcast
    computed with Max, a -1 replaced with Where), never as data or a graph output."""
    frontier, seen = list(node.outputs), set()
    while frontier:
        v = frontier.pop()
        if id(v) in seen:
            continue
        seen.add(id(v))
        if v in graph.outputs:
            return False
        for u in users.get(v, []):
            positions = [i for i, x in enumerate(u.inputs) if x is v]
            if all(i in _SHAPE_OPERANDS.get(u.op, ()) for i in positions):
                continue
            carried = _CARRY.get(u.op, ()) if u.op not in _NONLINEAR else None
            if u.op in _NONLINEAR or carried is None or any(i in carried for i in positions):
                frontier.extend(u.outputs)
            else:
                return False
    return True


def _symbolic_error(v, what: str) -> CompileError:
    return CompileError(f"dynamic batch: tensor {quote_name(v.name)} has type {v.type}: {what}, so its size "
                        "at every batch cannot be known from the bound; compile it for one batch "
                        "(input_shapes=) instead of max_batch")


def check_small_batches(graph: Graph, symbol: str, max_batch: int) -> None:
    """Shape inference at the small batches the sample points do not cover, where a graph may
    be invalid (a TopK of more rows than the batch has)."""
    for b in range(1, min(max_batch, 3)):
        g = graph.copy()
        for v in g.inputs:
            if v.type is not None and v.type.shape is not None:
                v.type = v.type.with_shape(substitute_dim(d, {symbol: b}) for d in v.type.shape)
        try:
            infer_graph(g)
        except CompileError as e:
            raise CompileError(f"dynamic batch: at batch {b}, {e}; bound the batch from below by compiling "
                               "for one batch (input_shapes=) instead of max_batch") from None


def sample_points(max_batch: int) -> tuple[int, int, int]:
    """The bound first (its memory plan is the one kept), then two larger sizes, spread apart
    so that a number that is not affine in the batch shows it."""
    return (max_batch, max_batch + 1, 2 * max_batch + 3)


# The pipeline again, folding no result larger than its inputs: an Expand or Range that
# the batch sizes (a class token per row, position ids) stays a kernel, not a weight.
SPECIALIZE = [fold_constants_no_growth if p is fold_constants else p for p in PIPELINE]


def specialize(graph: Graph, symbol: str, batch: int) -> Graph:
    """`graph` with `symbol` bound to `batch` in its inputs, inferred and optimised again
    (shape computations fold to constants)."""
    g = graph.copy()
    for v in g.inputs:
        if v.type is not None and v.type.shape is not None:
            v.type = v.type.with_shape(substitute_dim(d, {symbol: batch}) for d in v.type.shape)
    infer_graph(g)
    return run_passes(g, SPECIALIZE)


def check_same_structure(graphs: Sequence[Graph], batches: Sequence[int]) -> None:
    """The lowered graphs at the sample points run the same ops on the same tensors."""
    first = graphs[0]
    for g, b in zip(graphs[1:], batches[1:]):
        if len(g.nodes) != len(first.nodes):
            raise _structure_error(f"it has {len(first.nodes)} steps at batch {batches[0]} and {len(g.nodes)} "
                                   f"at batch {b}")
        for n0, n1 in zip(first.nodes, g.nodes):
            names0 = [v.name for v in n0.outputs]
            if n0.op != n1.op or names0 != [v.name for v in n1.outputs]:
                raise _structure_error(f"node {quote_name(n0.name or names0[0])} ({n0.op}) at batch {batches[0]} "
                                       f"is {quote_name(n1.name or n1.outputs[0].name)} ({n1.op}) at batch {b}")
        for kind in ("inputs", "outputs"):
            if [v.name for v in getattr(g, kind)] != [v.name for v in getattr(first, kind)]:
                raise _structure_error(f"its {kind} differ between batch {batches[0]} and batch {b}")


def _structure_error(what: str) -> CompileError:
    return CompileError(f"dynamic batch: the compiled graph depends on the batch size ({what}); compile it for "
                        "one batch (input_shapes=) instead of max_batch")


def affine(values: Sequence[int], batches: Sequence[int]) -> tuple[int, int] | None:
    """(a, c) with values[i] == a * batches[i] + c for all i and a >= 0, else None."""
    (v1, v2), (b1, b2) = values[1:3], batches[1:3]
    if (v2 - v1) % (b2 - b1):
        return None
    a = (v2 - v1) // (b2 - b1)
    c = v1 - a * b1
    if a < 0 or any(v != a * b + c for v, b in zip(values, batches)):
        return None
    return a, c


def per_batch(shapes: Sequence[Sequence[int]], batches: Sequence[int], what: str) -> tuple[int, ...] | None:
    """How much each dim of a tensor grows per batch row (None when none does)."""
    if len({len(s) for s in shapes}) != 1:
        raise _structure_error(f"{what} changes rank")
    growth = []
    for axis, dims in enumerate(zip(*shapes)):
        fit = affine(dims, batches)
        if fit is None or fit[0] + fit[1] < 0:
            raise _structure_error(f"dim {axis} of {what} is {list(dims)} at batch {list(batches)}, not "
                                   "a multiple of the batch plus a constant")
        growth.append(fit[0])
    return tuple(growth) if any(growth) else None


def merge_steps(variants: Sequence[Sequence[tuple[str, list[str]]]], batches: Sequence[int],
                batch: str = "ctx->batch") -> list[tuple[str, list[str]]]:
    """One step list from the step lists emitted at each sample point: numbers that differ
    become expressions of `batch` (the C expression of the request's batch there); any other
    difference is a CompileError. (Also merges other named code, CUDA kernels say.)"""
    first = variants[0]
    if any(len(v) != len(first) for v in variants):
        raise _structure_error("the number of steps differs")
    merged = []
    for index, steps in enumerate(zip(*variants)):
        name = steps[0][0]
        bodies = [body for _, body in steps]
        if any(len(b) != len(bodies[0]) for b in bodies):
            raise _step_error(name, "its code differs beyond its sizes")
        merged.append((name, [_merge_line(lines, batches, name, batch) for lines in zip(*bodies)]))
    return merged


def _merge_line(lines: Sequence[str], batches: Sequence[int], step: str, batch: str = "ctx->batch") -> str:
    if all(line == lines[0] for line in lines):
        return lines[0]
    tokens = [_TOKEN.findall(line) for line in lines]
    if any(len(t) != len(tokens[0]) for t in tokens):
        raise _step_error(step, f"its code differs beyond its sizes: {lines[0].strip()!r}")
    out = []
    for column in zip(*tokens):
        if all(t == column[0] for t in column):
            out.append(column[0])
            continue
        matches = [_INTEGER.fullmatch(t) for t in column]
        if not all(matches) or len({m.group(2) for m in matches}) != 1:
            raise _step_error(step, f"{' / '.join(column)} in {lines[0].strip()!r} changes with the batch "
                                    "and is not an integer")
        values = [int(m.group(1)) for m in matches]
        fit = affine(values, batches)
        if fit is None or fit[0] + fit[1] < 0:
            raise _step_error(step, f"{values} at batch {list(batches)} in {lines[0].strip()!r} is not a "
                                    "multiple of the batch plus a constant")
        expr = _expression(*fit, batch)
        out.append(f"static_cast<uint64_t>({expr})" if "u" in matches[0].group(2).lower() else expr)
    line = "".join(out)
    stripped = line.lstrip()
    if stripped.startswith("static const "):   # initialised per call now, not once
        line = line[:len(line) - len(stripped)] + stripped[len("static "):]
    return line


def _expression(a: int, c: int, batch: str) -> str:
    term = batch if a == 1 else f"{a} * {batch}"
    if c == 0:
        return f"({term})" if a != 1 else term
    return f"({term} {'+' if c > 0 else '-'} {abs(c)})"


def _step_error(step: str, what: str) -> CompileError:
    return CompileError(f"dynamic batch: step {step} {what}; compile it for one batch (input_shapes=) instead "
                        "of max_batch")

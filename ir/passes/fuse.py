"""Fusion: the lowering passes that turn groups of ops into the fused ops of `ir/ops/fused.py`.

`fuse-epilogues` gives a MatMul or Conv the chain of elementwise ops after it (bias, activation,
residual add), `fuse-elementwise` turns what elementwise ops remain into one loop each. A fused
intermediate has the shape of the group's result (nothing is recomputed under broadcasting) and
no user outside the group; size-1 constants become literals of the program. The backends run
`LOWERING` after the logical pipeline.
"""
from __future__ import annotations

from typing import Any

from flowc.errors import CompileError

from ..graph import Graph, Node, Value
from ..infer import infer_node
from ..ops.fused import Literal, format_instruction
from .dead_code import eliminate_dead_code
from .decompose import decompose
from .manager import Pass, graph_pass
from .rewrite import replace_node

EPILOGUE_BASES = {"MatMul": "FusedMatMul", "Conv": "FusedConv"}


def _fusible(node: Node) -> bool:
    """An elementwise op that computes (Identity only moves data) one output of known shape."""
    return (node.opdef.family == "elementwise" and node.op != "Identity" and len(node.outputs) == 1
            and node.outputs[0].type.shape is not None)


def _literal_operands(node: Node, names: dict[int, str]) -> tuple[set[int], Any]:
    """Which operands of `node` become literals, and their dtype: size-1 constants that neither
    set the dtype (a literal takes that of the last other operand) nor widen the result's rank."""
    scalars = {i for i, v in enumerate(node.inputs)
               if v is not None and id(v) not in names and v.is_const and v.const.size == 1}
    rest = [v for i, v in enumerate(node.inputs) if v is not None and i not in scalars]
    if not scalars or not rest or any(v.type.rank is None for v in rest):
        return set(), None
    dt, rank = rest[-1].type.dtype, max(v.type.rank for v in rest)
    if all(node.inputs[i].type.dtype == dt and node.inputs[i].const.ndim <= rank for i in scalars):
        return scalars, dt
    return set(), None


def _program(nodes: list[Node], names: dict[int, str]) -> tuple[str, list[Value]]:
    """The program computing `nodes` (in order; the last gives the result) from the values `names`
    already names, and the extra inputs it reads, named x0, x1, ... in order of first use."""
    names = dict(names)
    extras: list[Value] = []
    lines = []
    for k, node in enumerate(nodes):
        literals, dt = _literal_operands(node, names)
        operands = []
        for i, v in enumerate(node.inputs):
            if v is None:
                operands.append(None)
            elif i in literals:
                operands.append(Literal(v.const.reshape(()).item()))
            else:
                if id(v) not in names:
                    names[id(v)] = f"x{len(extras)}"
                    extras.append(v)
                operands.append(names[id(v)])
        dst = "y" if k == len(nodes) - 1 else f"t{k}"
        names[id(node.outputs[0])] = dst
        lines.append(format_instruction(dst, node.op, node.attrs, operands, dt))
    return "; ".join(lines), extras


def _replace(graph: Graph, group: list[Node], op: str, inputs: list[Value | None], attrs: dict,
             name: str) -> bool:
    """Compute the last node of `group` with one `op` node named `name`, and drop the rest; refused
    (False) unless the new node gives exactly the type the group did."""
    result = group[-1].outputs[0]
    probe = Node(op, inputs, [Value(result.name, None)], attrs, name)
    try:
        infer_node(probe)
    except CompileError:
        return False
    if probe.outputs[0].type != result.type:
        return False
    replace_node(graph, group[-1], op, inputs, attrs).name = name
    graph.remove_nodes(group[:-1])
    return True


# -- epilogues ------------------------------------------------------------------------------------

def _epilogue_chain(graph: Graph, base: Node, users: dict[Value, list[Node]]) -> list[Node]:
    """The elementwise ops after `base`, each the only user of the one before, of its shape."""
    outputs = {id(v) for v in graph.outputs}
    v, chain = base.outputs[0], []
    while id(v) not in outputs and len(set(map(id, users.get(v, [])))) == 1:
        user = users[v][0]
        if not _fusible(user) or user.outputs[0].type.shape != base.outputs[0].type.shape:
            break
        chain.append(user)
        v = user.outputs[0]
    return chain


@graph_pass("fuse-epilogues", "MatMul and Conv absorb the elementwise ops after them (bias, activation, "
                              "residual add) as an epilogue: FusedMatMul, FusedConv.")
def fuse_epilogues(graph: Graph) -> Graph:
    users = graph.users()
    for base in list(graph.nodes):
        if base.op not in EPILOGUE_BASES or base.outputs[0].type.shape is None:
            continue
        chain = _epilogue_chain(graph, base, users)
        if not chain:
            continue
        epilogue, extras = _program(chain, {id(base.outputs[0]): "acc"})
        own = list(base.inputs) + [None] * (len(base.opdef.inputs) - len(base.inputs))
        if _replace(graph, [base] + chain, EPILOGUE_BASES[base.op], own + extras,
                    {**base.attrs, "epilogue": epilogue}, base.name):
            users = graph.users()
    return eliminate_dead_code(graph)     # constants that became literals


# -- elementwise groups ------------------------------------------------------------------------------

def _group(root: Node, users: dict[Value, list[Node]], outputs: set[int], taken: set[int]) -> list[Node]:
    """`root` and the elementwise ops it can absorb: producers of its operands (and theirs) whose
    result has root's shape and only users inside the group."""
    shape = root.outputs[0].type.shape
    group = {id(root): root}
    grew = True
    while grew:
        grew = False
        for node in list(group.values()):
            for v in node.inputs:
                p = None if v is None else v.producer
                if (p is None or id(p) in group or id(p) in taken or not _fusible(p) or id(v) in outputs
                        or v.type.shape != shape or not all(id(u) in group for u in users[v])):
                    continue
                group[id(p)] = p
                grew = True
    return list(group.values())


@graph_pass("fuse-elementwise", "Groups of elementwise ops whose intermediates nothing else reads become "
                                "one FusedElementwise: one loop over the output.")
def fuse_elementwise(graph: Graph) -> Graph:
    users = graph.users()
    outputs = {id(v) for v in graph.outputs}
    order = {id(n): i for i, n in enumerate(graph.nodes)}
    taken: set[int] = set()
    for root in reversed(list(graph.nodes)):
        if id(root) in taken or not _fusible(root):
            continue
        group = sorted(_group(root, users, outputs, taken), key=lambda n: order[id(n)])
        if len(group) < 2:
            continue
        program, inputs = _program(group, {})
        if _replace(graph, group, "FusedElementwise", inputs, {"program": program}, root.name):
            taken.update(id(n) for n in group)
    return eliminate_dead_code(graph)


IDENTITY_EPILOGUE = "y = Identity acc"


def _static_batch(*values: Value) -> bool:
    """All of rank r >= 3 with the same static dims before the last two (no broadcast between them)."""
    shapes = [v.type.shape for v in values]
    if any(s is None or len(s) < 3 or not all(isinstance(d, int) for d in s) for s in shapes):
        return False
    return len({len(s) for s in shapes}) == 1 and len({tuple(s[:-2]) for s in shapes}) == 1


@graph_pass("fuse-attention", "MatMul (scores, with their epilogue), Softmax over the last axis, MatMul by the "
                              "values: one FusedAttention, whose scores never leave the cache.")
def fuse_attention(graph: Graph) -> Graph:
    users = graph.users()
    outputs = {id(v) for v in graph.outputs}
    for node in list(graph.nodes):
        if node.op != "MatMul":
            continue
        soft = node.inputs[0].producer
        if soft is None or soft.op != "Softmax" or len(users.get(soft.outputs[0], [])) != 1 \
                or id(soft.outputs[0]) in outputs:
            continue
        scores = soft.inputs[0]
        rank = scores.type.rank
        if rank is None or soft.attr("axis") not in (-1, rank - 1):
            continue
        mm = scores.producer
        if mm is None or mm.op not in ("MatMul", "FusedMatMul") or mm.attrs.get("trans_b") \
                or len(users.get(scores, [])) != 1 or id(scores) in outputs:
            continue
        q, kt, v = mm.inputs[0], mm.inputs[1], node.inputs[1]
        if not _static_batch(q, kt, v) or scores.type.dtype.name not in ("f32", "f16", "bf16"):
            continue
        attrs = {"epilogue": mm.attrs.get("epilogue", IDENTITY_EPILOGUE)}
        if _replace(graph, [mm, soft, node], "FusedAttention", [q, kt, v, *mm.inputs[2:]], attrs, node.name):
            users = graph.users()
    return eliminate_dead_code(graph)


@graph_pass("absorb-transposes", "A MatMul by a transposed matrix reads the matrix as it is: FusedMatMul "
                                 "with trans_b, so no step transposes it (a tied LM head, for one).")
def absorb_transposes(graph: Graph) -> Graph:
    for node in list(graph.nodes):
        if node.op not in ("MatMul", "FusedMatMul") or node.attrs.get("trans_b"):
            continue
        t = node.inputs[1].producer
        if t is None or t.op != "Transpose" or t.inputs[0].type.rank != 2 or \
                list(t.attr("perm") or (1, 0)) != [1, 0]:
            continue
        attrs = {**node.attrs, "trans_b": 1}
        attrs.setdefault("epilogue", IDENTITY_EPILOGUE)
        inputs = [node.inputs[0], t.inputs[0], *node.inputs[2:]]
        replace_node(graph, node, "FusedMatMul", inputs, attrs)
    return eliminate_dead_code(graph)


LOWERING: list[Pass] = [
    decompose,           # ops a few others compute exactly become those others, which then fuse
    fuse_epilogues,      # first: a bias or activation belongs in the GEMM/conv that precedes it
    fuse_attention,      # attention's scores, softmax and values product, the scores' epilogue included
    fuse_elementwise,    # then what elementwise chains remain
    absorb_transposes,   # last: a GEMM reads B transposed in place of a transpose step
]

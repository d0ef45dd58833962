"""Fused ops: what the lowering passes make of elementwise chains and of MatMul/Conv epilogues.

Each holds a small program over its operands, one instruction per line (or per `;`):

    t0 = Mul x0 x1; t1 = Add t0 0.5; y = LeakyRelu[alpha=0.2] t1

An instruction applies one op of the elementwise family, with attributes written as in the
IR text, to earlier results, the op's sources (`x0`, `x1`, ... its inputs; `acc` and the extra
inputs `x0`, ... in an epilogue), scalar literals (a literal takes the dtype of the
instruction's last operand that is not one) or `_` for an omitted optional operand. The last
instruction gives the result, broadcast to the shape of all the sources. Types and values come
from each instruction's own registry record, so a fused graph computes what the unfused one did.
"""
from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from flowc.errors import CompileError, describe_node, quote_name

from ..graph import Node, Value
from ..infer import infer_node
from ..registry import REQUIRED, Attr, defop, get_op, has_op
from ..text import _Parser, format_attr, format_scalar
from ..types import TensorType
from .rules import broadcast_shapes, widen

_STRING_OR_BREAK = re.compile(r'"(?:[^"\\\n]|\\.)*"|[;\n]')


@dataclass(frozen=True)
class Literal:
    value: int | float | bool

    def array(self, dt: np.dtype) -> np.ndarray:
        return np.array(self.value, dtype=dt)


Operand = str | Literal | None     # a source or earlier result, a scalar literal, an omitted operand


@dataclass(frozen=True)
class Instruction:
    line: int
    text: str
    dst: str
    op: str
    attrs: tuple[tuple[str, Any], ...]
    operands: tuple[Operand, ...]

    def node(self, inputs=(), outputs=()) -> Node:
        """A node applying this instruction's op, for its registry rule and reference."""
        return Node(self.op, list(inputs), list(outputs), dict(self.attrs), "")


class ProgramError(Exception):
    def __init__(self, line: int, text: str, message: str):
        super().__init__(message)
        self.line, self.text, self.message = line, text, message


class _LineParser(_Parser):
    """The IR text's tokens and attribute syntax, errors located by column within one line."""

    def _fail_at(self, pos: int, message: str):
        raise CompileError(f"column {pos + 1}: {message}")


def format_instruction(dst: str, op: str, attrs: dict[str, Any], operands: list[Operand], dt=None) -> str:
    """One instruction as a program spells it; a literal is printed exactly in `dt`."""
    head = op + ("[" + ", ".join(f"{k}={format_attr(v)}" for k, v in attrs.items()) + "]" if attrs else "")
    words = ["_" if a is None else format_scalar(a.value, dt) if isinstance(a, Literal) else a for a in operands]
    return f"{dst} = {head} " + " ".join(words)


def _lines(program: str) -> list[str]:
    """The program split at `;` and newlines outside string attributes."""
    lines, start = [], 0
    for m in _STRING_OR_BREAK.finditer(program):
        if m.group() in (";", "\n"):
            lines.append(program[start:m.start()])
            start = m.end()
    return lines + [program[start:]]


@functools.lru_cache(maxsize=4096)
def parse_program(program: str, sources: tuple[str, ...]) -> tuple[Instruction, ...]:
    """The program's instructions, checked: known elementwise ops and attributes, every name
    defined before use and once. Raises ProgramError naming the line."""
    defined = set(sources)
    out = []
    for number, text in enumerate(_lines(program), start=1):
        text = text.strip()
        if not text:
            continue
        try:
            ins = _parse_line(number, text, defined, sources)
        except CompileError as e:
            raise ProgramError(number, text, str(e)) from None
        defined.add(ins.dst)
        out.append(ins)
    if not out:
        raise ProgramError(0, program, "the program has no instructions")
    return tuple(out)


def _parse_line(number: int, text: str, defined: set[str], sources: tuple[str, ...]) -> Instruction:
    p = _LineParser(text, None)
    dst = p.expect_kind("ident", "a result name")
    if dst in defined or dst in ("_", "true", "false"):
        p.fail_at(0, f"{quote_name(dst)} is " + ("a source" if dst in sources else
                                                  "defined twice" if dst in defined else "reserved"))
    p.expect("=")
    op_at = p.i
    op = p.expect_kind("ident", "an op name")
    if not has_op(op) or get_op(op).family != "elementwise":
        p.fail_at(op_at, f"{quote_name(op)} is not an op of the elementwise family")
    attrs = p.attr_list()
    try:
        attrs = get_op(op).normalize_attrs(attrs, op, "")
    except CompileError as e:
        raise CompileError(_unprefixed(e, f"{op} node")) from None
    operands: list[Operand] = []
    while not p.peek(kind="eof"):
        at = p.i
        kind, word = p.tokens[at][:2]
        if kind == "number" or word in ("true", "false"):
            operands.append(Literal(p.scalar()))
        elif kind == "ident":
            p.next()
            if word != "_" and word not in defined:
                p.fail_at(at, f"{quote_name(word)} is not defined (sources: {', '.join(sources)}; "
                              "then earlier results)")
            operands.append(None if word == "_" else word)
        else:
            p.fail("expected an operand (a name, a number or _)")
    if not operands:
        p.fail("expected an operand (a name, a number or _)")
    if not any(isinstance(a, str) for a in operands):
        p.fail_at(op_at, "needs an operand that is a name (a literal takes the dtype of the last one)")
    return Instruction(number, text, dst, op, tuple(attrs.items()), tuple(operands))


def _unprefixed(e: CompileError, prefix: str) -> str:
    """The message of `e` without the `prefix: ` naming a probe node."""
    return str(e).removeprefix(prefix + ": ")


def _literal_dtype(operands, dtypes: list) -> Any:
    """The dtype a literal of this instruction takes: that of its last operand not a literal."""
    return [d for a, d in zip(operands, dtypes) if d is not None][-1]


def _program(node: Node, attr: str, sources: tuple[str, ...]) -> tuple[Instruction, ...]:
    try:
        return parse_program(node.attr(attr), sources)
    except ProgramError as e:
        where = f"{attr} line {e.line}, {quote_name(e.text)}: " if e.line else f"{attr}: "
        raise node.error(where + e.message) from None


def program_type(node: Node, attr: str, sources: dict[str, TensorType]) -> TensorType:
    """The type of program `attr` over `sources`: the last instruction's dtype, all sources'
    shapes broadcast. Each instruction is typed by its op's own rule."""
    program = _program(node, attr, tuple(sources))
    types = dict(sources)
    for ins in program:
        ops = [None if a is None else types[a] if isinstance(a, str) else None for a in ins.operands]
        lit = _literal_dtype(ins.operands, [t.dtype if t is not None else None for t in ops])
        inputs = [None if a is None else Value(a, types[a]) if isinstance(a, str)
                  else Value(format_scalar(a.value, lit), TensorType(lit, ())) for a in ins.operands]
        probe = ins.node(inputs, [Value(ins.dst, None)])
        try:
            infer_node(probe)
        except CompileError as e:
            message = _unprefixed(e, describe_node(probe))
            raise node.error(f"{attr} line {ins.line}, {quote_name(ins.text)}: {message}") from None
        types[ins.dst] = probe.outputs[0].type
    result = types[program[-1].dst]
    return result.with_shape(broadcast_shapes(node, [t.shape for t in sources.values()] + [result.shape]))


def program_value(node: Node, attr: str, sources: dict[str, np.ndarray]) -> np.ndarray:
    """Program `attr` evaluated on `sources`, each instruction by its op's numpy reference."""
    program = _program(node, attr, tuple(sources))
    env = dict(sources)
    for ins in program:
        lit = _literal_dtype(ins.operands, [env[a].dtype if isinstance(a, str) else None for a in ins.operands])
        args = [None if a is None else env[a] if isinstance(a, str) else a.array(lit) for a in ins.operands]
        op = ins.node()
        env[ins.dst] = np.asarray(op.opdef.ref(op, *args))
    shape = np.broadcast_shapes(*(a.shape for a in sources.values()), env[program[-1].dst].shape)
    return np.broadcast_to(env[program[-1].dst], shape).copy()


def _inputs(values) -> dict:
    return {f"x{i}": v for i, v in enumerate(values)}


# -- FusedElementwise -------------------------------------------------------------------------

def _elementwise_infer(node: Node):
    if not node.inputs or any(v is None for v in node.inputs):
        raise node.error("takes one or more inputs, none omitted")
    return [program_type(node, "program", _inputs(v.type for v in node.inputs))]


defop("FusedElementwise", family="fused", onnx=False,
      summary="A chain or DAG of elementwise ops as one loop over the output: a program over x0, x1, ...",
      inputs=("inputs*",), attrs={"program": ("str", REQUIRED)}, infer=_elementwise_infer,
      ref=lambda n, *xs: program_value(n, "program", _inputs(xs)))


# -- FusedMatMul, FusedConv: the op, then an epilogue on its result before it is stored -----------

def _epilogue_op(base: str, own: int):
    """infer and ref of `base` with an epilogue over `acc` (base's result) and the extra inputs
    after base's `own` operands. A `trans_b` attribute (FusedMatMul) reads operand 1, a matrix,
    transposed."""
    def probe(node: Node, outputs=()) -> Node:
        attrs = {k: v for k, v in node.attrs.items() if k not in ("epilogue", "trans_b")}
        inputs = list(node.inputs[:own])
        if node.attrs.get("trans_b"):
            b = inputs[1]
            if b.type is None or b.type.rank != 2:
                raise node.error(f"trans_b needs a matrix B, got {b.type}")
            inputs[1] = Value(b.name, b.type.with_shape(reversed(b.type.shape)))
        return Node(base, inputs, list(outputs), attrs, node.name)

    def infer(node: Node):
        extras = node.inputs[own:]
        if any(v is None for v in extras):
            raise node.error("an extra input of the epilogue is omitted")
        op = probe(node, [Value("acc", None)])
        try:
            acc = get_op(base).infer(op)[0]
        except CompileError as e:
            raise node.error(f"{base}: {_unprefixed(e, describe_node(op))}") from None
        return [program_type(node, "epilogue", {"acc": acc, **_inputs(v.type for v in extras)})]

    def ref(node: Node, *arrays):
        operands = list(arrays[:own])
        if node.attrs.get("trans_b"):
            operands[1] = np.ascontiguousarray(operands[1].T)
        acc = get_op(base).ref(probe(node), *operands)
        return program_value(node, "epilogue", {"acc": acc, **_inputs(arrays[own:])})

    return infer, ref


_EPILOGUE = {"epilogue": ("str", REQUIRED)}
_matmul_infer, _matmul_ref = _epilogue_op("MatMul", 2)
_conv_infer, _conv_ref = _epilogue_op("Conv", 3)

defop("FusedMatMul", family="fused", onnx=False,
      summary="MatMul (of A and B, or of A and the transpose of a matrix B with trans_b), then an epilogue "
              "program over acc (the product) and the extra inputs x0, x1, ...",
      inputs=("A", "B", "extra*"), attrs={**_EPILOGUE, "trans_b": ("int", 0)}, infer=_matmul_infer,
      ref=_matmul_ref)

defop("FusedConv", family="fused", onnx=False,
      summary="Conv, then an epilogue program over acc (the convolution) and the extra inputs x0, x1, ...",
      inputs=("X", "W", "B?", "extra*"),
      attrs={**{k: Attr(a.kind, a.default) for k, a in get_op("Conv").attrs.items()}, **_EPILOGUE},
      infer=_conv_infer, ref=_conv_ref)


# -- FusedAttention: softmax(epilogue(A @ B)) @ C in one pass over row blocks --------------------

def _attention_probes(node: Node):
    """The MatMul of scores, and the epilogue's sources, as the unfused graph computes them."""
    q, kt, v = node.inputs[:3]
    return Node("MatMul", [q, kt], [Value("acc", None)], {}, node.name), v, node.inputs[3:]


def _attention_infer(node: Node):
    if any(v is None for v in node.inputs):
        raise node.error("takes A, B, C and the epilogue's extra inputs, none omitted")
    scores_op, v, extras = _attention_probes(node)
    try:
        acc = get_op("MatMul").infer(scores_op)[0]
    except CompileError as e:
        raise node.error(f"A @ B: {_unprefixed(e, describe_node(scores_op))}") from None
    scores = program_type(node, "epilogue", {"acc": acc, **_inputs(x.type for x in extras)})
    if scores.shape != acc.shape:
        raise node.error(f"the epilogue broadcasts the scores {acc} to {scores}")
    product = Node("MatMul", [Value("scores", scores), v], [Value("y", None)], {}, node.name)
    try:
        return get_op("MatMul").infer(product)
    except CompileError as e:
        raise node.error(f"softmax(scores) @ C: {_unprefixed(e, describe_node(product))}") from None


def _attention_ref(node: Node, q, kt, v, *extras):
    scores_op, _, _ = _attention_probes(node)
    acc = get_op("MatMul").ref(scores_op, q, kt)
    scores = widen(program_value(node, "epilogue", {"acc": acc, **_inputs(extras)}))
    shifted = np.exp(scores - scores.max(axis=-1, keepdims=True))
    return np.matmul(shifted / shifted.sum(axis=-1, keepdims=True), widen(v)).astype(v.dtype)


defop("FusedAttention", family="fused", onnx=False,
      summary="softmax(epilogue(A @ B)) @ C, the softmax over the last axis: attention's QK^T, scale and mask, "
              "softmax and xV as one op, computed a block of rows at a time",
      inputs=("A", "B", "C", "extra*"), attrs=_EPILOGUE, infer=_attention_infer, ref=_attention_ref)

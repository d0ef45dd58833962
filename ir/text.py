"""The IR's text form, meant for people; `parse(print_graph(g))` prints back identically.

    graph mlp(%x: f32[B,784]) {
      %w1: f32[784,128] = const dense_resource<0>
      %b1: f32[2] = const dense<[0.5, -1.0]>
      %0: f32[B,128] = MatMul(%x, %w1)
      %h: f32[B,128] = Relu(%0) loc("/fc1/Relu")
      %p: f32[B,64], %q: f32[B,64] = Split[axis=1, num_outputs=2](%h)
      return %p, %q
    }

One op per line, every value typed, attributes in `[k=v]`, an omitted optional
operand written `_`, the source node's name in `loc(...)`. Constants of at
most `inline_limit` elements are printed inline; larger ones refer by index to
`graph_resources(g)`, which `parse(text, resources)` takes back (ml_dtypes types such as bf16
also as their unsigned-int bits, as an .npz holds them). `parse` verifies what it reads.

In a graph annotated with a parallel plan (ir/passes/parallel/annotate.py) each type is
followed by the value's SBP: `%h: f32[B,128] @ S(0)` on a 1-D mesh, `@ (S(0), B)` on a 2-D one.
"""
from __future__ import annotations

import json
import re
from typing import Any

import numpy as np

from flowc.errors import CompileError

from .graph import Graph, Node, Value
from .registry import get_op
from .sbp import B, P, NdSbp, S, Sbp, format_sbp
from .types import DTYPES, INT64_MAX, TensorType, dtype, dtype_names, exact_array, is_symbol_name
from .verify import check_node_types, verify

INLINE_LIMIT = 16
_BARE_VALUE = re.compile(r"[A-Za-z0-9_./\-]+\Z")
_RESERVED = {"inf", "nan", "_", "true", "false"}


# -- printing ------------------------------------------------------------------

def _string(text: str) -> str:
    return json.dumps(text, ensure_ascii=True)


def format_value_name(name: str) -> str:
    return "%" + (name if _BARE_VALUE.match(name) else _string(name))


def format_typed_value(v: Value) -> str:
    """`%name: type`, and ` @ sbp` when the value has one."""
    text = f"{format_value_name(v.name)}: {v.type}"
    return text if v.sbp is None else f"{text} @ {format_sbp(v.sbp)}"


def _format_name(name: str) -> str:
    return name if is_symbol_name(name) and name not in _RESERVED else _string(name)


def format_scalar(x, dt) -> str:
    if dt.name == "bool":
        return "true" if bool(x) else "false"
    if dt.kind == "float":
        f = float(x)
        if f != f:
            return "nan"
        if f in (float("inf"), float("-inf")):
            return "inf" if f > 0 else "-inf"
        if dt.name in ("f32", "f16"):
            return str(dt.np.type(x))   # numpy's shortest text that reads back exactly
        return repr(f)
    return str(int(x))


def _format_elements(array: np.ndarray) -> str:
    dt = dtype(array.dtype)
    return "[" + ", ".join(format_scalar(x, dt) for x in array.reshape(-1)) + "]"


def format_attr(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return format_scalar(value, DTYPES["f64"])
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, tuple):
        return "[" + ", ".join(format_attr(v) for v in value) + "]"
    if isinstance(value, np.ndarray):
        t = TensorType(dtype(value.dtype), value.shape)
        return f"tensor<{t}, {_format_elements(value)}>"
    return str(value)   # DType


def graph_resources(graph: Graph, inline_limit: int = INLINE_LIMIT) -> dict[str, np.ndarray]:
    """The data of the constants too large to print inline, keyed as the text refers to them."""
    return {str(i): v.const for i, v in enumerate(graph.constants)
            if v.const is not None and v.const.size > inline_limit}


def print_graph(graph: Graph, inline_limit: int = INLINE_LIMIT) -> str:
    args = ", ".join(format_typed_value(v) for v in graph.inputs)
    lines = [f"graph {_format_name(graph.name)}({args}) {{"]
    for i, v in enumerate(graph.constants):
        if v.const is not None and v.const.size <= inline_limit:
            body = f"dense<{_format_elements(v.const)}>"
        else:
            body = f"dense_resource<{i}>"
        lines.append(f"  {format_typed_value(v)} = const {body}")
    for n in graph.nodes:
        lines.append("  " + print_node(n))
    lines.append("  return " + ", ".join(format_value_name(v.name) for v in graph.outputs))
    lines.append("}")
    return "\n".join(lines) + "\n"


def print_node(n: Node) -> str:
    results = ", ".join(format_typed_value(v) for v in n.outputs)
    attrs = ""
    if n.attrs:
        attrs = "[" + ", ".join(f"{k}={format_attr(v)}" for k, v in n.attrs.items()) + "]"
    operands = ", ".join("_" if v is None else format_value_name(v.name) for v in n.inputs)
    loc = f" loc({_string(n.name)})" if n.name else ""
    return f"{results} = {n.op}{attrs}({operands}){loc}"


# -- parsing -------------------------------------------------------------------

_TOKEN = re.compile(r"""
   (?P<ws>\s+|\#[^\n]*)
  |(?P<value>%(?:"(?:[^"\\\n]|\\.)*"|[A-Za-z0-9_./\-]+))
  |(?P<string>"(?:[^"\\\n]|\\.)*")
  |(?P<number>-?(?:\d+\.\d*(?:[eE][-+]?\d+)?|\d+[eE][-+]?\d+|\d+|inf|nan)(?![A-Za-z0-9_.]))
  |(?P<ident>[A-Za-z_][A-Za-z0-9_.]*)
  |(?P<punct>->|[()\[\]{},:=<>*?@])
""", re.VERBOSE)


class _Parser:
    def __init__(self, text: str, resources: dict[str, np.ndarray] | None):
        self.tokens: list[tuple[str, str, int]] = []
        self.text = text
        self.resources = resources
        pos = 0
        while pos < len(text):
            m = _TOKEN.match(text, pos)
            if m is None:
                self._fail_at(pos, f"unexpected character {text[pos]!r}")
            if m.lastgroup != "ws":
                self.tokens.append((m.lastgroup, m.group(), pos))
            pos = m.end()
        self.tokens.append(("eof", "", len(text)))
        self.i = 0
        self.mesh_rank: tuple[int, str] | None = None   # mesh axes of the first SBP read, and its value

    # token helpers
    def _fail_at(self, pos: int, message: str):
        line = self.text.count("\n", 0, pos) + 1
        col = pos - (self.text.rfind("\n", 0, pos) + 1) + 1
        raise CompileError(f"IR text, line {line}, column {col}: {message}")

    def fail_at(self, index: int, message: str):
        """An error located at token `index`, without quoting the token."""
        self._fail_at(self.tokens[index][2], message)

    def fail(self, message: str):
        kind, text, pos = self.tokens[self.i]
        self._fail_at(pos, f"{message}, got {text!r}" if kind != "eof" else f"{message}, got end of text")

    def peek(self, text: str | None = None, kind: str | None = None) -> bool:
        k, t, _ = self.tokens[self.i]
        return (text is None or t == text) and (kind is None or k == kind)

    def next(self) -> tuple[str, str]:
        k, t, _ = self.tokens[self.i]
        self.i += 1
        return k, t

    def expect(self, text: str) -> None:
        if not self.peek(text):
            self.fail(f"expected {text!r}")
        self.i += 1

    def accept(self, text: str) -> bool:
        if self.peek(text):
            self.i += 1
            return True
        return False

    def expect_kind(self, kind: str, what: str) -> str:
        if not self.peek(kind=kind):
            self.fail(f"expected {what}")
        return self.next()[1]

    def string(self, text: str) -> str:
        """A JSON string token's text, decoded; CompileError at the token when it is malformed."""
        try:
            return json.loads(text)
        except ValueError as e:
            self.fail_at(self.i - 1, f"malformed string {text!r}: {e}")

    # grammar
    def name(self, what: str) -> str:
        if self.peek(kind="string"):
            return self.string(self.next()[1])
        if self.peek(kind="ident") or self.peek("inf") or self.peek("nan"):
            return self.next()[1]
        self.fail(f"expected {what}")

    def value_name(self) -> str:
        text = self.expect_kind("value", "a value (%name)")[1:]
        return self.string(text) if text.startswith('"') else text

    def dim(self):
        if self.accept("?"):
            return "?"
        if self.peek(kind="string"):
            return self.string(self.next()[1])
        parts = []
        while True:
            k, t = self.next()
            if k == "number" and t.lstrip("-").isdigit():
                if t.startswith("-") or int(t) > INT64_MAX:
                    self.i -= 1
                    self.fail("expected a dimension (0 to 2**63-1)")
                parts.append(t)
            elif k == "ident" or t in ("inf", "nan"):
                parts.append(t)
            else:
                self.i -= 1
                self.fail("expected a dimension")
            if not self.accept("*"):
                break
        if len(parts) == 1 and parts[0].lstrip("-").isdigit():
            return int(parts[0])
        return "*".join(parts)

    def type(self) -> TensorType:
        name = self.expect_kind("ident", "an element type")
        if name not in DTYPES:
            self.i -= 1
            self.fail(f"expected an element type ({dtype_names()})")
        self.expect("[")
        if self.accept("*"):
            self.expect("]")
            return TensorType(DTYPES[name], None)
        dims = []
        while not self.accept("]"):
            if dims:
                self.expect(",")
            dims.append(self.dim())
        return TensorType(DTYPES[name], tuple(dims))

    def typed_value(self) -> tuple[str, TensorType, NdSbp | None]:
        name = self.value_name()
        self.expect(":")
        t = self.type()
        if not self.accept("@"):
            return name, t, None
        start = self.i
        nd = self.sbp()
        self.check_sbp(start, name, t, nd)
        return name, t, nd

    def sbp(self) -> NdSbp:
        """`S(k)`, `B` or `P`, or one per mesh axis in parentheses: `(S(0), B)`."""
        if not self.accept("("):
            return (self.sbp_one(),)
        parts = [self.sbp_one()]
        while self.accept(","):
            parts.append(self.sbp_one())
        self.expect(")")
        return tuple(parts)

    def sbp_one(self) -> Sbp:
        k, t = self.next()
        if k == "ident" and t in ("B", "P"):
            return B if t == "B" else P
        if k == "ident" and t == "S":
            self.expect("(")
            k, t = self.next()
            if k != "number" or not t.isdigit():
                self.i -= 1
                self.fail("expected the split axis (0 or more)")
            self.expect(")")
            return S(int(t))
        self.i -= 1
        self.fail("expected an SBP: S(axis), B or P")

    def check_sbp(self, start: int, name: str, t: TensorType, nd: NdSbp) -> None:
        """The SBP fits its type, and has as many parts as every other SBP of the graph."""
        what = f"{format_value_name(name)}: {t} @ {format_sbp(nd)}"
        if t.shape is not None:
            for s in nd:
                if s.is_split and s.axis >= len(t.shape):
                    self.fail_at(start, f"{what} splits axis {s.axis}, but the tensor has rank {len(t.shape)}")
        if P in nd and not t.dtype.is_float:
            self.fail_at(start, f"{what}: only float tensors can be partial sums (P)")
        if self.mesh_rank is None:
            self.mesh_rank = (len(nd), name)
        elif self.mesh_rank[0] != len(nd):
            rank, first = self.mesh_rank
            self.fail_at(start, f"{what} names {len(nd)} mesh axes, but {format_value_name(first)} names {rank}; "
                                "every SBP of a graph is on the same mesh")

    def scalar(self):
        k, t = self.next()
        if k == "number":
            return float(t) if any(c in t for c in ".eEna") else int(t)
        if k == "ident" and t in ("true", "false"):
            return t == "true"
        self.i -= 1
        self.fail("expected a number")

    def elements(self, t: TensorType) -> np.ndarray:
        start = self.i
        self.expect("[")
        items = []
        while not self.accept("]"):
            if items:
                self.expect(",")
            items.append(self.scalar())
        if t.shape is None or not t.is_static:
            self.fail_at(start, "an inline constant needs a static shape")
        count = int(np.prod(t.shape, dtype=object))
        if len(items) != count:
            self.fail_at(start, f"{len(items)} elements do not fill {t}")
        try:
            return exact_array(items, t.dtype).reshape(t.shape)
        except ValueError as e:
            self.fail_at(start, f"an element of {t}: {e}")

    def attr_value(self):
        if self.peek("["):
            self.next()
            items = []
            while not self.accept("]"):
                if items:
                    self.expect(",")
                items.append(self.attr_value())
            return items
        if self.peek(kind="string"):
            return self.string(self.next()[1])
        if self.peek("tensor"):
            self.next()
            self.expect("<")
            t = self.type()
            self.expect(",")
            data = self.elements(t)
            self.expect(">")
            return data
        if self.peek(kind="ident") and self.tokens[self.i][1] in DTYPES:
            return DTYPES[self.next()[1]]
        return self.scalar()

    def attr_list(self) -> dict:
        """`[k=v, ...]` when present, else no attributes."""
        attrs = {}
        if self.accept("["):
            while not self.accept("]"):
                if attrs:
                    self.expect(",")
                key = self.expect_kind("ident", "an attribute name")
                self.expect("=")
                attrs[key] = self.attr_value()
        return attrs

    def graph(self) -> Graph:
        self.expect("graph")
        g = Graph(self.name("a graph name"))
        env: dict[str, Value] = {}
        self.expect("(")
        while not self.accept(")"):
            if g.inputs:
                self.expect(",")
            start = self.i
            name, t, nd = self.typed_value()
            env[name] = self.define(start, lambda: g.add_input(name, t))
            env[name].sbp = nd
        self.expect("{")
        while not self.peek("return"):
            self.statement(g, env)
        return_at = self.i
        self.expect("return")
        outs = [self.use(env)]
        while self.accept(","):
            outs.append(self.use(env))
        g.outputs = outs
        self.expect("}")
        if not self.peek(kind="eof"):
            self.fail("expected end of text after the graph")
        # each node's types were checked as it was read: what is left is the graph's structure
        return self.define(return_at, lambda: verify(g, check_types=False))

    def define(self, start: int, make) -> Value:
        """make(), with its CompileError located at token `start`."""
        try:
            return make()
        except CompileError as e:
            self.fail_at(start, str(e))

    def use(self, env: dict[str, Value]) -> Value:
        start = self.i
        name = self.value_name()
        if name not in env:
            self.fail_at(start, f"value {format_value_name(name)} is used before it is defined")
        return env[name]

    def statement(self, g: Graph, env: dict[str, Value]) -> None:
        start = self.i
        results = [self.typed_value()]
        while self.accept(","):
            results.append(self.typed_value())
        self.expect("=")
        if self.accept("const"):
            if len(results) != 1:
                self.fail("a constant defines one value")
            name, t, nd = results[0]
            data = self.constant_body(t)
            env[name] = self.define(start, lambda: g.add_const(data, name, t))
            env[name].sbp = nd
            return
        op_at = self.i
        op = self.expect_kind("ident", "an op name")
        try:
            get_op(op)
        except CompileError:
            self.fail_at(op_at, f"unknown op {op!r}")
        attrs = self.attr_list()
        self.expect("(")
        operands = []
        while not self.accept(")"):
            if operands:
                self.expect(",")
            if self.accept("_"):
                operands.append(None)
            else:
                operands.append(self.use(env))
        loc = ""
        if self.accept("loc"):
            self.expect("(")
            loc = self.string(self.expect_kind("string", "a node name"))
            self.expect(")")
        node = self.define(start if len(results) == 1 else op_at,
                           lambda: g.add_node(op, operands, attrs=attrs, name=loc,
                                              output_names=[n for n, _, _ in results], infer=False))
        for v, (name, t, nd) in zip(node.outputs, results):
            v.type, v.sbp = t, nd
            env[name] = v
        self.define(start if len(results) == 1 else op_at, lambda: check_node_types(node))
        from .infer import _infer_sym
        _infer_sym(node)

    def constant_body(self, t: TensorType):
        kind = self.expect_kind("ident", "dense<...> or dense_resource<...>")
        if kind == "dense":
            self.expect("<")
            data = self.elements(t)
            self.expect(">")
            return data
        if kind == "dense_resource":
            self.expect("<")
            key_at = self.i
            key = self.next()[1]
            self.expect(">")
            if self.resources is None:
                return None
            if key not in self.resources:
                self.fail_at(key_at, f"resource {key} is not among the resources given")
            data = np.asarray(self.resources[key])
            want = t.dtype.np
            if want.kind == "V" and data.dtype.kind == "u" and data.dtype.itemsize == want.itemsize:
                data = data.view(want)   # an ml_dtypes type (bf16) kept as its bits: npz cannot name it
            if data.dtype != t.dtype.np or (t.shape is not None and data.shape != tuple(t.shape)):
                self.fail_at(key_at, f"resource {key} holds {data.dtype}{list(data.shape)}, the text says {t}")
            return data
        self.i -= 1
        self.fail("expected dense<...> or dense_resource<...>")


def parse(text: str, resources: dict[str, np.ndarray] | None = None) -> Graph:
    """Read a graph from its text form; constants printed by reference take their data
    from `resources` (as `graph_resources` gives them) or stay without data."""
    return _Parser(text, resources).graph()

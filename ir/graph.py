"""Values, nodes and graphs: the data structures every pass works on."""
from __future__ import annotations

from typing import Any, Iterable, Iterator

import numpy as np

from flowc.errors import CompileError, describe_node, node_label, quote_name

from .types import Dim, TensorType, dtype, tensor_type


class Value:
    """A typed tensor: a graph input, a constant, or a node's output.

    `sym` holds the statically known contents of small integer tensors (shape
    arithmetic), dims possibly symbolic; it is derived by shape inference. `sbp`, in a
    graph annotated with a parallel plan, is how the tensor lies over the device mesh
    (an NdSbp, see ir/sbp.py); None elsewhere.
    """

    __slots__ = ("name", "type", "producer", "const", "sym", "sbp")

    def __init__(self, name: str, type: TensorType | None, producer: "Node | None" = None,
                 const: np.ndarray | None = None):
        self.name = name
        self.type = type
        self.producer = producer
        self.const = const
        self.sym: tuple[Dim, ...] | None = None
        self.sbp: tuple | None = None

    @property
    def is_const(self) -> bool:
        return self.producer is None and self.const is not None

    def __repr__(self) -> str:
        if self.sbp is None:
            return f"%{self.name}: {self.type}"
        from .sbp import format_sbp
        return f"%{self.name}: {self.type} @ {format_sbp(self.sbp)}"


class Node:
    """One op application. `inputs` may hold None for an omitted optional input."""

    __slots__ = ("op", "name", "inputs", "outputs", "attrs")

    def __init__(self, op: str, inputs: list[Value | None], outputs: list[Value],
                 attrs: dict[str, Any] | None = None, name: str = ""):
        self.op = op
        self.name = name
        self.inputs = list(inputs)
        self.outputs = list(outputs)
        self.attrs = dict(attrs or {})
        for v in self.outputs:
            v.producer = self

    @property
    def opdef(self):
        from .registry import get_op
        return get_op(self.op, self)

    def attr(self, key: str) -> Any:
        """The attribute's value, or its default from the op registry."""
        if key in self.attrs:
            return self.attrs[key]
        return self.opdef.attr_default(key, self)

    def input(self, i: int) -> Value | None:
        return self.inputs[i] if i < len(self.inputs) else None

    def error(self, message: str) -> CompileError:
        return CompileError(f"{describe_node(self)}: {message}")

    def __repr__(self) -> str:
        return f"<{describe_node(self)}>"


class Graph:
    """A function from named inputs to named outputs.

    `nodes` are kept in a topological order; constants are values with data
    and no producer, in the order they were added.
    """

    def __init__(self, name: str = "graph"):
        self.name = name
        self.inputs: list[Value] = []
        self.outputs: list[Value] = []
        self.constants: list[Value] = []
        self.nodes: list[Node] = []
        self._names: set[str] = set()
        self._counter = 0

    # -- names ---------------------------------------------------------------
    def fresh_name(self, hint: str = "") -> str:
        if hint and hint not in self._names:
            return hint
        while True:
            name = f"{hint}_{self._counter}" if hint else str(self._counter)
            self._counter += 1
            if name not in self._names:
                return name

    def _claim(self, name: str) -> str:
        if name in self._names:
            raise CompileError(f"graph {quote_name(self.name)}: tensor {quote_name(name)} is defined twice")
        self._names.add(name)
        return name

    def release_name(self, name: str) -> None:
        self._names.discard(name)

    # -- building ------------------------------------------------------------
    def add_input(self, name: str, type: TensorType) -> Value:
        v = Value(self._claim(name), type)
        self.inputs.append(v)
        return v

    def add_const(self, data, name: str | None = None, type: TensorType | None = None) -> Value:
        data = None if data is None else np.asarray(data)
        if type is None:
            type = tensor_type(dtype(data.dtype), data.shape)
        v = Value(self._claim(name if name is not None else self.fresh_name("c")), type, const=data)
        self.constants.append(v)
        return v

    def add_node(self, op: str, inputs: Iterable[Value | None], num_outputs: int | None = None,
                 attrs: dict[str, Any] | None = None, name: str = "",
                 output_names: list[str] | None = None, infer: bool = True) -> Node:
        """Append a node; its outputs are typed by shape inference when `infer`."""
        from .registry import get_op
        inputs = list(inputs)
        opdef = get_op(op)
        if output_names is None:
            n = num_outputs if num_outputs is not None else opdef.default_num_outputs()
            output_names = [self.fresh_name() for _ in range(n)]
        where = node_label(op, name, output_names[0] if output_names else None)
        attrs = opdef.normalize_attrs(attrs or {}, op, name, output_names[0] if output_names else None)
        if len(set(output_names)) != len(output_names):
            raise CompileError(f"{where}: output names repeat: " + ", ".join(quote_name(n) for n in output_names))
        for n in output_names:
            if n in self._names:
                raise CompileError(f"graph {quote_name(self.name)}: tensor {quote_name(n)} is defined twice")
        node = Node(op, inputs, [Value(n, None) for n in output_names], attrs, name)
        if infer:
            from .infer import infer_node
            infer_node(node)    # before anything is claimed: a node that fails leaves no trace
        for v in node.outputs:
            self._claim(v.name)
        self.nodes.append(node)
        return node

    def rename(self, value: Value, name: str) -> None:
        """Give `value` a new name; CompileError when another value has it."""
        if name == value.name:
            return
        if name in self._names:
            raise CompileError(f"graph {quote_name(self.name)}: tensor {quote_name(name)} is defined twice")
        self.release_name(value.name)
        value.name = self._claim(name)

    # -- queries -------------------------------------------------------------
    def values(self) -> Iterator[Value]:
        yield from self.inputs
        yield from self.constants
        for n in self.nodes:
            yield from n.outputs

    def value(self, name: str) -> Value:
        for v in self.values():
            if v.name == name:
                return v
        raise KeyError(name)

    def users(self) -> dict[Value, list[Node]]:
        uses: dict[Value, list[Node]] = {v: [] for v in self.values()}
        for n in self.nodes:
            for v in n.inputs:
                if v is not None:
                    uses.setdefault(v, []).append(n)
        return uses

    # -- rewriting -----------------------------------------------------------
    def replace_uses(self, old: Value, new: Value) -> None:
        """Every use of `old` now reads `new`; a graph output keeps its name."""
        for n in self.nodes:
            n.inputs = [new if v is old else v for v in n.inputs]
        if old in self.outputs:
            self._replace_output(old, new)

    def _replace_output(self, old: Value, new: Value) -> None:
        # The output name is the model's interface: give `new` that name if we can,
        # otherwise route it through an Identity that carries the name. `old`, now
        # unused, takes a fresh name, so removing its producer later cannot release
        # the name it handed over.
        name = old.name
        old.name = self._claim(self.fresh_name(name))
        self.release_name(name)
        if new.producer is not None and new not in self.inputs and new not in self.outputs:
            self.release_name(new.name)
            new.name = self._claim(name)
            self.outputs = [new if v is old else v for v in self.outputs]
            return
        ident = Node("Identity", [new], [Value(self._claim(name), new.type)])
        self.nodes.append(ident)
        self.outputs = [ident.outputs[0] if v is old else v for v in self.outputs]

    def remove_nodes(self, dead: Iterable[Node]) -> None:
        dead = set(map(id, dead))
        kept = []
        for n in self.nodes:
            if id(n) in dead:
                for v in n.outputs:
                    self.release_name(v.name)
            else:
                kept.append(n)
        self.nodes = kept

    def remove_constants(self, dead: Iterable[Value]) -> None:
        dead = set(map(id, dead))
        for v in self.constants:
            if id(v) in dead:
                self.release_name(v.name)
        self.constants = [v for v in self.constants if id(v) not in dead]

    def topo_sort(self) -> None:
        """Order nodes so that every value is defined before use; CompileError on a cycle."""
        defined = {id(v) for v in self.inputs} | {id(v) for v in self.constants}
        producer_of = {id(v): n for n in self.nodes for v in n.outputs}
        order, state = [], {}

        for root in self.nodes:
            if id(root) in state:
                continue
            stack = [(root, 0)]
            state[id(root)] = 1
            while stack:
                node, i = stack.pop()
                deps = [v for v in node.inputs if v is not None]
                while i < len(deps):
                    v = deps[i]
                    i += 1
                    if id(v) in defined:
                        continue
                    p = producer_of.get(id(v))
                    if p is None:
                        raise node.error(f"input {quote_name(v.name)} is not produced by any node, "
                                         "constant or graph input")
                    if state.get(id(p)) == 1:
                        raise node.error(f"the graph has a cycle through tensor {quote_name(v.name)}")
                    if state.get(id(p)) is None:
                        stack.append((node, i))
                        stack.append((p, 0))
                        state[id(p)] = 1
                        break
                else:
                    state[id(node)] = 2
                    defined.update(id(v) for v in node.outputs)
                    order.append(node)
        self.nodes = order

    def copy(self) -> "Graph":
        """A structural copy; constant arrays are shared, not copied."""
        g = Graph(self.name)
        g._counter = self._counter
        vmap: dict[int, Value] = {}

        def clone(v: Value) -> Value:
            nv = Value(v.name, v.type, const=v.const)
            nv.sym = v.sym
            nv.sbp = v.sbp
            g._names.add(v.name)
            vmap[id(v)] = nv
            return nv

        g.inputs = [clone(v) for v in self.inputs]
        g.constants = [clone(v) for v in self.constants]
        for n in self.nodes:
            ins = [None if v is None else vmap[id(v)] for v in n.inputs]
            outs = [clone(v) for v in n.outputs]
            g.nodes.append(Node(n.op, ins, outs, n.attrs, n.name))
        g.outputs = [vmap[id(v)] for v in self.outputs]
        return g

    def __str__(self) -> str:
        from .text import print_graph
        return print_graph(self)

    def __repr__(self) -> str:
        return f"<Graph {self.name!r}: {len(self.nodes)} nodes>"

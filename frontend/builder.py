"""The Python graph builder: write a model as code and get the `ir.Graph` the ONNX importer
would give for the same model.

    b = GraphBuilder("mlp")
    x = b.input("x", "f32", ["B", 784])
    h = b.relu(b.matmul(x, w1) + b1)          # numpy arrays become constants
    b.output(h, name="y")
    g = b.build()

Every op in the registry is a snake_case method (`b.layer_normalization(x, g, b, axis=-1)`,
`b.split(x, axis=1, num_outputs=2)`); attributes are keywords, checked by the registry.
Two keywords are the builder's own: `name` (the node's name, as in ONNX) and `outputs`
(output tensor names, or how many outputs to make). Types are inferred as each op is added.
"""
from __future__ import annotations

import difflib
import re
from typing import Sequence

import numpy as np

from flowc.errors import CompileError, quote_name
from flowc.ir import Graph, OpDef, TensorType, Value, all_ops, get_op, known_ints, tensor_type, verify
from flowc.ir.types import dtype, exact_array

# ops with variadic outputs whose count is the length of one input (Split: its `split` sizes)
VARIADIC_COUNT_INPUT = {"Split": 1}


class UnknownOpError(CompileError, AttributeError):
    """`GraphBuilder.<method>` names no op; an AttributeError too, so `hasattr` works."""


class Tensor:
    """A value of the graph being built; supports + - * / @ and unary -."""

    __array_ufunc__ = None   # `ndarray + tensor` calls our reflected operator, not numpy's

    def __init__(self, builder: "GraphBuilder", value: Value):
        self.builder = builder
        self.value = value

    @property
    def name(self) -> str:
        return self.value.name

    @property
    def type(self) -> TensorType:
        return self.value.type

    @property
    def shape(self):
        return self.value.type.shape

    @property
    def dtype(self):
        return self.value.type.dtype

    def _binary(self, op: str, other, reflected: bool = False) -> "Tensor":
        other = self.builder._operand(other, like=self)
        return self.builder.op(op, other, self) if reflected else self.builder.op(op, self, other)

    def __add__(self, other): return self._binary("Add", other)
    def __radd__(self, other): return self._binary("Add", other, reflected=True)
    def __sub__(self, other): return self._binary("Sub", other)
    def __rsub__(self, other): return self._binary("Sub", other, reflected=True)
    def __mul__(self, other): return self._binary("Mul", other)
    def __rmul__(self, other): return self._binary("Mul", other, reflected=True)
    def __truediv__(self, other): return self._binary("Div", other)
    def __rtruediv__(self, other): return self._binary("Div", other, reflected=True)
    def __matmul__(self, other): return self._binary("MatMul", other)
    def __rmatmul__(self, other): return self._binary("MatMul", other, reflected=True)
    def __neg__(self): return self.builder.op("Neg", self)

    def __repr__(self) -> str:
        return f"<Tensor %{self.value.name}: {self.value.type}>"


def _method_key(name: str) -> str:
    """`layer_normalization`, `LayerNormalization` and `layernormalization` all name one op."""
    return name.replace("_", "").lower()


class GraphBuilder:
    def __init__(self, name: str = "graph"):
        self.graph = Graph(name)
        self._arrays: dict[int, tuple[np.ndarray, Tensor]] = {}   # id(array) -> its constant
        self._built = False

    # -- graph inputs, constants, outputs ------------------------------------------
    def input(self, name: str, dtype, shape: Sequence[int | str] | None) -> Tensor:
        """A graph input; `shape` holds ints and symbols ("B"), None when the rank is unknown."""
        self._check_open()
        try:
            t = tensor_type(dtype, shape)
        except (TypeError, ValueError) as e:
            raise CompileError(f"input {quote_name(name)}: {e}") from None
        return Tensor(self, self.graph.add_input(name, t))

    def const(self, data, name: str | None = None) -> Tensor:
        """A constant. Python floats become f32, ints i64; arrays keep their dtype."""
        self._check_open()
        array = _as_array(data)
        try:
            dtype(array.dtype)
        except ValueError as e:
            raise CompileError(f"constant {quote_name(name or '')}: {e}") from None
        t = Tensor(self, self.graph.add_const(np.asarray(array, order="C"), name))
        if isinstance(data, np.ndarray):
            self._arrays[id(data)] = (data, t)
        return t

    def output(self, t: Tensor, name: str | None = None) -> Tensor:
        """Make `t` a graph output, renamed to `name` when given."""
        self._check_open()
        v = self._operand(t).value
        if name is None or name == v.name:
            if v in self.graph.outputs:
                raise CompileError(f"tensor {quote_name(v.name)} is already an output of graph "
                                   f"{quote_name(self.graph.name)}")
            self.graph.outputs.append(v)
            return Tensor(self, v)
        if v.producer is not None and v not in self.graph.outputs:
            self.graph.rename(v, name)
        else:   # an input, constant or existing output keeps its name: an Identity carries the new one
            v = self.op("Identity", Tensor(self, v), outputs=[name]).value
        self.graph.outputs.append(v)
        return Tensor(self, v)

    def build(self) -> Graph:
        """The finished graph, verified; the builder cannot be used after."""
        self._check_open()
        verify(self.graph)
        self._built = True
        return self.graph

    # -- ops -----------------------------------------------------------------------
    def op(self, op_type: str, *operands, name: str = "", outputs: int | Sequence[str] | None = None,
           **attrs) -> Tensor | tuple[Tensor, ...]:
        """Apply the op `op_type` to `operands` (Tensors, numpy arrays, Python numbers or lists,
        None for an omitted optional input); attributes as keywords. Returns a Tensor, or a
        tuple of them for ops with several (or a variable number of) outputs."""
        self._check_open()
        opdef = get_op(op_type)
        graph = self.graph
        n_nodes, n_consts = len(graph.nodes), len(graph.constants)
        try:
            attrs = opdef.normalize_attrs(attrs, op_type, name)
            inputs = [None if x is None else self._operand(x).value for x in operands]
            names = self._output_names(opdef, inputs, attrs, name, outputs)
            node = graph.add_node(op_type, inputs, attrs=attrs, name=name, output_names=names)
        except CompileError:
            self._roll_back(n_nodes, n_consts)
            raise
        results = tuple(Tensor(self, v) for v in node.outputs)
        several = len(results) > 1 or opdef.outputs[-1].endswith("*")
        return results if several else results[0]

    def _roll_back(self, n_nodes: int, n_consts: int) -> None:
        """Leave the graph as it was before a failed call, so that the caller may go on."""
        graph = self.graph
        graph.remove_nodes(graph.nodes[n_nodes:])
        added = graph.constants[n_consts:]
        self._arrays = {k: (a, t) for k, (a, t) in self._arrays.items() if t.value not in added}
        graph.remove_constants(added)

    def _output_names(self, opdef: OpDef, inputs: list, attrs: dict, name: str, outputs) -> list[str]:
        if outputs is not None and not isinstance(outputs, int):
            if isinstance(outputs, str):
                raise CompileError(f"{opdef.name}: outputs= takes a list of names or a count, "
                                   f"got the string {outputs!r}")
            return list(outputs)
        count = outputs if outputs is not None else opdef.default_num_outputs()
        if outputs is None and opdef.outputs[-1].endswith("*"):
            count = self._count_variadic_outputs(opdef, inputs, attrs)
        return [self.graph.fresh_name() for _ in range(count)]

    def _count_variadic_outputs(self, opdef: OpDef, inputs: list, attrs: dict) -> int:
        """How many outputs to make for an op whose outputs are variadic (Split)."""
        if attrs.get("num_outputs") is not None:
            return attrs["num_outputs"]
        sizes_input = VARIADIC_COUNT_INPUT.get(opdef.name)
        sizes = known_ints(inputs[sizes_input]) if sizes_input is not None and sizes_input < len(inputs) else None
        if sizes is None:
            raise CompileError(f"{opdef.name}: the number of outputs is not known; give num_outputs= "
                               "(or the output names with outputs=[...])")
        return len(sizes)

    def _operand(self, x, like: Tensor | None = None) -> Tensor:
        if isinstance(x, Tensor):
            if x.builder is not self:
                raise CompileError(f"tensor {quote_name(x.name)} belongs to another GraphBuilder "
                                   f"(graph {quote_name(x.builder.graph.name)})")
            return x
        if isinstance(x, Value):
            return Tensor(self, x)
        if isinstance(x, np.ndarray):
            known = self._arrays.get(id(x))
            return known[1] if known is not None else self.const(x)
        if like is not None and isinstance(x, (bool, int, float, np.generic)):   # `h * 2` takes h's dtype
            try:
                return self.const(exact_array(x, like.dtype))
            except ValueError as e:
                raise CompileError(f"the number {x!r} cannot be used with tensor {quote_name(like.name)} "
                                   f"({like.type}) as {like.dtype}: {e}; cast the tensor first") from None
        if isinstance(x, (bool, int, float, np.generic, list, tuple)):
            return self.const(x)
        raise CompileError(f"cannot use a {type(x).__name__} as an operand; give a Tensor from this "
                           "builder, a numpy array or a Python number or list")

    def _check_open(self) -> None:
        if self._built:
            raise CompileError(f"graph {quote_name(self.graph.name)} is already built; "
                               "start a new GraphBuilder")

    def __getattr__(self, method: str):
        if method.startswith("_"):
            raise AttributeError(method)
        op_type = _ops_by_method_key().get(_method_key(method))
        if op_type is None:
            close = difflib.get_close_matches(method, _method_names(), n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise UnknownOpError(f"GraphBuilder has no op {method!r}{hint} (ops are the registry's, "
                                 "in snake_case: flowc.ir.all_ops())")
        return lambda *operands, **kwargs: self.op(op_type, *operands, **kwargs)

    def __dir__(self):
        return list(super().__dir__()) + _method_names()


def _as_array(data) -> np.ndarray:
    """Python floats default to f32, as in ONNX models; numpy arrays are taken as they are."""
    if isinstance(data, np.ndarray):
        return data
    array = np.asarray(data)
    return array.astype(np.float32) if array.dtype == np.float64 else array


def _ops_by_method_key() -> dict[str, str]:
    return {_method_key(name): name for name in all_ops()}


def _method_names() -> list[str]:
    return [re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower() for name in all_ops()]


__all__ = ["GraphBuilder", "Tensor", "UnknownOpError"]

"""ONNX importer: a ModelProto of the default domain to an ir.Graph.

Opsets 13 to 21 are supported and tested. Newer ones, up to 28, are accepted:
past 21 the ops flowc defines changed only in the element types they allow
(float8, int4, ...) and in new optional attributes, which the registry
defines. Models older than opset 13 are upgraded with onnx's version converter
first. IR ops carry the semantics of the newest opset; the forms that changed
(reduction axes moving from attribute to input in opset 18) are rewritten here. Initializers and Constant nodes become graph
constants; names are kept. External data is read only from inside the
model's folder.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import onnx
from google.protobuf.message import DecodeError
from onnx import AttributeProto, TensorProto, numpy_helper

from flowc.errors import CompileError, node_label, quote_name
from flowc.ir import Graph, Value, all_ops, get_op, has_op, verify
from flowc.ir.types import UNKNOWN, TensorType, dtype_from_onnx, dtype_names, is_symbol_name

MIN_OPSET, MAX_OPSET = 13, 28
DEFAULT_DOMAINS = ("", "ai.onnx")
MAX_MODEL_BYTES = 2 ** 31 - 1     # protobuf's own limit

# ops whose `axes` moved from an attribute to an input in opset 18
_AXES_TO_INPUT_AT_18 = {"ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2",
                        "ReduceLogSum", "ReduceLogSumExp", "ReduceSumSquare"}


def load(model, *, base_dir: str | os.PathLike | None = None) -> Graph:
    """Import an ONNX model given as a path or an `onnx.ModelProto`.

    `base_dir` is where external tensor data is looked for when `model` is a
    ModelProto (for a path, it is the model's folder).
    """
    proto, folder = _read(model)
    if base_dir is not None:
        folder = Path(base_dir)
    opset = _default_opset(proto)
    if opset < MIN_OPSET:
        # the version converter's errors name no node: refuse first what it cannot turn into a
        # supported op (other domains, ops unknown to ONNX); the ops it renames are checked after
        for n in proto.graph.node:
            if n.domain not in DEFAULT_DOMAINS or not onnx.defs.has(n.op_type):
                _check_supported(n, opset)
        proto, opset = _upgrade_opset(proto, opset), MIN_OPSET
    return _Importer(proto, opset, folder).run()


def _read(model) -> tuple[onnx.ModelProto, Path | None]:
    if isinstance(model, onnx.ModelProto):
        return model, None
    if isinstance(model, (bytes, bytearray)):
        return _parse(bytes(model), "the bytes given"), None
    if not isinstance(model, (str, os.PathLike)):
        raise CompileError(f"expected a path to an .onnx file or an onnx.ModelProto, got {type(model).__name__}")
    path = Path(model)
    try:
        if not path.exists():
            raise CompileError(f"model file {quote_name(str(path))} does not exist")
        if not path.is_file():
            raise CompileError(f"model path {quote_name(str(path))} is not a file")
        size = path.stat().st_size
        if size > MAX_MODEL_BYTES:
            raise CompileError(f"model file {quote_name(str(path))} is {size} bytes, over protobuf's 2 GiB "
                               "limit; store the weights as external data")
        data, folder = path.read_bytes(), path.resolve().parent
    except (OSError, RuntimeError) as e:   # names too long, symlink loops, permissions
        raise CompileError(f"model file {quote_name(str(path))} cannot be read: {e}") from None
    return _parse(data, quote_name(str(path))), folder


def _parse(data: bytes, where: str) -> onnx.ModelProto:
    proto = onnx.ModelProto()
    try:
        proto.ParseFromString(data)
    except (DecodeError, RuntimeError, ValueError) as e:
        raise CompileError(f"{where} is not a valid ONNX model (truncated or not protobuf): {e}") from None
    if not proto.HasField("graph"):
        raise CompileError(f"{where} is not a valid ONNX model: it has no graph")
    return proto


def _default_opset(proto: onnx.ModelProto) -> int:
    versions = [o.version for o in proto.opset_import if o.domain in DEFAULT_DOMAINS]
    if not versions:
        raise CompileError("the model imports no opset of the default ONNX domain; "
                           f"flowc supports opsets {MIN_OPSET} to {MAX_OPSET}")
    v = max(versions)
    if v > MAX_OPSET:
        raise CompileError(f"the model uses opset {v} of the default ONNX domain; flowc supports opsets "
                           f"{MIN_OPSET} to {MAX_OPSET}")
    return v


def _where(n: onnx.NodeProto) -> str:
    return node_label(n.op_type, n.name, next((o for o in n.output if o), None))


def _check_supported(n: onnx.NodeProto, opset: int) -> None:
    if n.domain not in DEFAULT_DOMAINS:
        raise CompileError(f"{_where(n)}: op {n.op_type!r} of domain {n.domain!r} is not supported; "
                           f"flowc supports the default ONNX domain, opsets {MIN_OPSET} to {MAX_OPSET}")
    if n.op_type != "Constant" and not (has_op(n.op_type) and get_op(n.op_type).onnx):
        raise CompileError(f"{_where(n)}: op {n.op_type!r} (opset {opset}) is not supported; "
                           f"flowc supports: {', '.join(sorted(k for k, op in all_ops().items() if op.onnx))}")


def _upgrade_opset(proto: onnx.ModelProto, opset: int) -> onnx.ModelProto:
    from onnx import version_converter
    try:
        return version_converter.convert_version(proto, MIN_OPSET)
    except Exception as e:   # the converter raises bare RuntimeErrors and C++ errors
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CompileError(f"the model uses opset {opset}; flowc supports opsets {MIN_OPSET} to {MAX_OPSET}, "
                           f"and onnx's version converter could not upgrade it: {first}") from None


def _value_type(vi: onnx.ValueInfoProto, what: str, symbols: dict[str, str]) -> TensorType:
    """The type of a graph input; `symbols` maps the model's dim_params to flowc symbols."""
    t = vi.type
    if t.WhichOneof("value") != "tensor_type":
        raise CompileError(f"{what} {quote_name(vi.name)} is a {t.WhichOneof('value') or 'untyped value'}; "
                           "flowc supports tensors only")
    dt = dtype_from_onnx(t.tensor_type.elem_type)
    if dt is None:
        raise CompileError(f"{what} {quote_name(vi.name)} has {_unsupported(t.tensor_type.elem_type)}")
    if not t.tensor_type.HasField("shape"):
        return TensorType(dt, None)
    dims = []
    for d in t.tensor_type.shape.dim:
        if d.HasField("dim_value"):
            if d.dim_value < 0:
                raise CompileError(f"{what} {quote_name(vi.name)} has a negative dimension {d.dim_value}")
            dims.append(int(d.dim_value))
        elif d.HasField("dim_param") and d.dim_param:
            dims.append(_symbol(d.dim_param, symbols))
        else:
            dims.append(UNKNOWN)
    return TensorType(dt, tuple(dims))


def _symbol(param: str, symbols: dict[str, str]) -> str:
    """A flowc symbol for an ONNX dim_param. A dim_param is an opaque name: "N*M" or "12" must
    not read as a product or a number, so any but a plain identifier gets one made of its
    letters, distinct from every other dim_param's."""
    if param not in symbols:
        name = param if is_symbol_name(param) else "_" + re.sub(r"[^A-Za-z0-9_]", "_", param)
        taken = set(symbols.values())
        base, k = name, 1
        while name in taken:
            name, k = f"{base}_{k}", k + 1
        symbols[param] = name
    return symbols[param]


def _unsupported(code) -> str:
    """What an error says of an ONNX element type flowc lacks: its name, and the types flowc has."""
    name = TensorProto.DataType.Name(code) if code in TensorProto.DataType.values() else str(code)
    return f"element type {name}; flowc supports {dtype_names()}"


class _Importer:
    def __init__(self, proto: onnx.ModelProto, opset: int, folder: Path | None):
        self.proto = proto
        self.opset = opset
        self.folder = folder
        self.graph = Graph(proto.graph.name or "model")
        self.symbols: dict[str, str] = {}    # dim_param -> flowc symbol
        self.env: dict[str, Value] = {}
        gp = proto.graph
        # names flowc makes up must not take one that a later node of the model defines
        self.onnx_names = {v.name for v in gp.input} | {t.name for t in gp.initializer} | \
            {o for n in gp.node for o in n.output}

    def run(self) -> Graph:
        gp = self.proto.graph
        if len(gp.sparse_initializer):
            raise CompileError("sparse initializers are not supported (tensor "
                               f"{quote_name(gp.sparse_initializer[0].values.name)})")
        init_names = {t.name for t in gp.initializer}
        for vi in gp.input:
            if vi.name in init_names:
                continue   # an initializer listed as an input (IR < 4): a constant
            self._define(vi.name, lambda vi=vi: self.graph.add_input(vi.name, _value_type(vi, "input", self.symbols)))
        for t in gp.initializer:
            self._define(t.name, lambda t=t: self.graph.add_const(self._tensor(t, "initializer"), t.name))
        for node in self._ordered(gp.node):
            self._node(node)
        if not gp.output:
            raise CompileError(f"graph {quote_name(self.graph.name)} has no outputs")
        for vi in gp.output:
            if vi.name not in self.env:
                raise CompileError(f"graph output {quote_name(vi.name)} is not produced by any node, "
                                   "initializer or input")
            self.graph.outputs.append(self.env[vi.name])
        return verify(self.graph, check_types=False)

    def _define(self, name: str, make) -> Value:
        if not name:
            raise CompileError("a graph input or initializer has an empty name")
        if name in self.env:
            raise CompileError(f"tensor {quote_name(name)} is defined twice")
        v = make()
        self.env[name] = v
        return v

    # -- tensors ---------------------------------------------------------------
    def _tensor(self, t: TensorProto, what: str) -> np.ndarray:
        dt = dtype_from_onnx(t.data_type)
        if dt is None:
            raise CompileError(f"{what} {quote_name(t.name)} has {_unsupported(t.data_type)}")
        if any(d < 0 for d in t.dims):
            raise CompileError(f"{what} {quote_name(t.name)} has a negative dimension {list(t.dims)}")
        count = int(np.prod([int(d) for d in t.dims], dtype=object)) if t.dims else 1
        nbytes = dt.packed_bytes(count)
        if t.data_location == TensorProto.EXTERNAL:
            t = self._external(t, what, nbytes)
        elif t.HasField("raw_data") and len(t.raw_data) != nbytes:
            raise CompileError(f"{what} {quote_name(t.name)}: shape {list(t.dims)} needs "
                               f"{nbytes} bytes, its data holds {len(t.raw_data)}")
        elif not t.HasField("raw_data"):
            held = max(len(t.float_data), len(t.int32_data), len(t.int64_data), len(t.double_data),
                       len(t.uint64_data))
            # sub-byte types keep one byte of packed elements per entry
            entries, unit = (count, "elements") if dt.bits >= 8 else (nbytes, "packed bytes")
            if held != entries:
                raise CompileError(f"{what} {quote_name(t.name)}: shape {list(t.dims)} needs {entries} "
                                   f"{unit}, its data holds {held}")
        try:
            array = numpy_helper.to_array(t)
        except Exception as e:   # onnx raises many types on malformed tensors
            raise CompileError(f"{what} {quote_name(t.name)} cannot be read: {e}") from None
        return np.asarray(array.astype(dt.np, copy=False), order="C")

    def _external(self, t: TensorProto, what: str, nbytes: int) -> TensorProto:
        info = {e.key: e.value for e in t.external_data}
        where = f"{what} {quote_name(t.name)}"
        if self.folder is None:
            raise CompileError(f"{where} keeps its data in an external file; load the model from its path "
                               "(or pass base_dir) so flowc knows the folder")
        location = info.get("location", "")
        if not location or os.path.isabs(location) or location.startswith(("/", "\\")):
            raise CompileError(f"{where}: external data location {quote_name(location)} must be a relative "
                               "path inside the model's folder")
        try:
            base = self.folder.resolve()
            path = (base / location).resolve()
            inside = os.path.commonpath([base, path]) == str(base)
            exists = inside and path.is_file()
        except (OSError, ValueError, RuntimeError) as e:   # NUL bytes, names too long, symlink loops
            raise CompileError(f"{where}: external data location {quote_name(location)} cannot be "
                               f"resolved: {e}") from None
        if not inside:
            raise CompileError(f"{where}: external data location {quote_name(location)} points outside the "
                               "model's folder")
        if not exists:
            raise CompileError(f"{where}: external data file {quote_name(location)} does not exist")
        try:
            offset = int(info.get("offset", 0))
            length = int(info.get("length", nbytes))
        except ValueError:
            raise CompileError(f"{where}: external data offset/length are not integers") from None
        try:
            size = path.stat().st_size
            if offset < 0 or length != nbytes or offset + length > size:
                raise CompileError(f"{where}: external data needs {nbytes} bytes at offset {offset} of "
                                   f"{quote_name(location)}, which holds {size} bytes (length given: {length})")
            with open(path, "rb") as f:
                f.seek(offset)
                raw = f.read(length)
        except OSError as e:
            raise CompileError(f"{where}: external data file {quote_name(location)} cannot be read: {e}") from None
        copy = TensorProto()
        copy.CopyFrom(t)
        del copy.external_data[:]
        copy.data_location = TensorProto.DEFAULT
        copy.raw_data = raw
        return copy

    # -- nodes -------------------------------------------------------------------
    def _ordered(self, nodes) -> list[onnx.NodeProto]:
        """The nodes in a topological order; CompileError on a cycle or a missing tensor."""
        producer = {}
        for n in nodes:
            for o in n.output:
                if o:
                    if o in producer or o in self.env:
                        raise CompileError(f"tensor {quote_name(o)} is defined twice "
                                           f"(again by {_where(n)})")
                    producer[o] = n
        order, state = [], {}
        for root in nodes:
            if id(root) in state:
                continue
            stack = [(root, iter(root.input))]
            state[id(root)] = 1
            while stack:
                n, deps = stack[-1]
                for name in deps:
                    if not name or name in self.env:
                        continue
                    p = producer.get(name)
                    if p is None:
                        raise CompileError(f"{_where(n)}: input {quote_name(name)} "
                                           "is not produced by any node, initializer or graph input")
                    if state.get(id(p)) == 1:
                        raise CompileError(f"{_where(n)}: the graph has a cycle "
                                           f"through tensor {quote_name(name)}")
                    if id(p) not in state:
                        state[id(p)] = 1
                        stack.append((p, iter(p.input)))
                        break
                else:
                    stack.pop()
                    state[id(n)] = 2
                    order.append(n)
        return order

    def _fresh_name(self, hint: str) -> str:
        name = self.graph.fresh_name(hint)
        while name in self.onnx_names:
            name = self.graph.fresh_name(name + "_")
        return name

    def _node(self, n: onnx.NodeProto) -> None:
        _check_supported(n, self.opset)
        if n.op_type == "Constant":
            self._constant(n)
            return
        attrs = {a.name: self._attr(n, a) for a in n.attribute}
        inputs = [self.env[name] if name else None for name in n.input]
        self._upgrade(n, attrs, inputs)
        outputs = list(n.output)
        while outputs and not outputs[-1]:
            outputs.pop()
        names = [o if o else self._fresh_name(f"{n.name or n.op_type}_unused") for o in outputs]
        node = self.graph.add_node(n.op_type, inputs, attrs=attrs, name=n.name, output_names=names)
        for name, v in zip(outputs, node.outputs):
            if name:
                self.env[name] = v

    def _upgrade(self, n: onnx.NodeProto, attrs: dict, inputs: list) -> None:
        """Rewrite the forms of older opsets into the IR's (the newest) form."""
        if n.op_type in _AXES_TO_INPUT_AT_18 and self.opset < 18 and "axes" in attrs:
            axes = np.array(attrs.pop("axes"), dtype=np.int64)
            inputs[1:] = [self.graph.add_const(axes, self._fresh_name(f"{n.name or n.op_type}_axes"))]
        if n.op_type == "GroupNormalization" and self.opset < 21 and len(inputs) == 3:
            self._group_params_per_channel(n, attrs, inputs)

    def _group_params_per_channel(self, n: onnx.NodeProto, attrs: dict, inputs: list) -> None:
        """Opsets 18-20 give GroupNormalization one scale and bias per group; 21 one per channel."""
        x = inputs[0]
        groups = attrs.get("num_groups")
        channels = x.type.shape[1] if x.type.shape is not None and len(x.type.shape) > 1 else None
        for i in (1, 2):
            v = inputs[i]
            if v is None or v.const is None or not isinstance(channels, int) or not isinstance(groups, int) \
                    or groups <= 0 or channels % groups or v.const.shape != (groups,):
                raise CompileError(f"{_where(n)}: opset {self.opset} gives scale and bias per group; flowc "
                                   "converts them to per channel (opset 21), which needs them constant with "
                                   "num_groups elements and a static channel count divisible by num_groups")
            inputs[i] = self.graph.add_const(np.repeat(v.const, channels // groups),
                                             self._fresh_name(f"{v.name}_per_channel"))

    def _attr(self, n: onnx.NodeProto, a: AttributeProto):
        if a.ref_attr_name:
            raise CompileError(f"{_where(n)}: attribute {a.name!r} refers to a function attribute, "
                               "which flowc does not support")
        spec = get_op(n.op_type).attrs.get(a.name)
        if a.type == AttributeProto.TENSOR:
            return self._tensor(a.t, f"{_where(n)} attribute {a.name!r}")
        if a.type in (AttributeProto.GRAPH, AttributeProto.GRAPHS, AttributeProto.SPARSE_TENSOR,
                      AttributeProto.TENSORS, AttributeProto.SPARSE_TENSORS, AttributeProto.TYPE_PROTO,
                      AttributeProto.TYPE_PROTOS):
            raise CompileError(f"{_where(n)}: attribute {a.name!r} of type "
                               f"{AttributeProto.AttributeType.Name(a.type)} is not supported")
        value = onnx.helper.get_attribute_value(a)
        if isinstance(value, list):
            value = [v.decode("utf-8", "replace") if isinstance(v, bytes) else v for v in value]
        elif isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        if spec is not None and spec.kind == "dtype":
            dt = dtype_from_onnx(value) if isinstance(value, int) else None
            if dt is None:
                raise CompileError(f"{_where(n)}: attribute {a.name!r} names {_unsupported(value)}")
            return dt
        return value

    def _constant(self, n: onnx.NodeProto) -> None:
        if len(n.attribute) != 1 or len(n.output) != 1 or not n.output[0]:
            raise CompileError(f"{_where(n)}: a Constant node needs exactly one value attribute "
                               "and one output")
        a = n.attribute[0]
        if a.name == "value":
            if a.type != AttributeProto.TENSOR:
                raise CompileError(f"{_where(n)}: attribute 'value' must be a tensor")
            data = self._tensor(a.t, f"{_where(n)} value")
        elif a.name == "value_float":
            data = np.array(a.f, dtype=np.float32)
        elif a.name == "value_floats":
            data = np.array(a.floats, dtype=np.float32)
        elif a.name == "value_int":
            data = np.array(a.i, dtype=np.int64)
        elif a.name == "value_ints":
            data = np.array(a.ints, dtype=np.int64)
        else:
            raise CompileError(f"{_where(n)}: Constant with attribute {a.name!r} is not supported")
        name = n.output[0]
        self._define(name, lambda: self.graph.add_const(data, name))

"""The op registry: each op is defined once, with everything flowc knows about it.

An `OpDef` holds the op's inputs and outputs, its typed attributes with their
defaults, its shape and dtype rule (`infer`), its numpy reference (`ref`) and,
for ops that compute shapes, its rule on statically known integer contents
(`sym`), the SBP signatures it computes in over a device mesh (`sbp`, see
ir/sbp.py) and its arithmetic at given shapes (`flops`, for the cost model).
Ops are defined in `ir/ops/<family>.py` with `defop`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from flowc.errors import CompileError, node_label

from .types import dtype

REQUIRED = object()   # an attribute default: the attribute must be given

ATTR_KINDS = ("int", "float", "str", "ints", "floats", "strs", "dtype", "tensor")


@dataclass
class Attr:
    kind: str
    default: Any = None      # None: optional without a default; REQUIRED: must be given

    def check(self, value: Any) -> Any:
        """`value` converted to this kind; raises TypeError/ValueError when it cannot be."""
        k = self.kind
        if k == "int":
            if isinstance(value, (bool, float)) or not isinstance(value, (int, np.integer)):
                raise TypeError(f"expected an int, got {value!r}")
            return int(value)
        if k == "float":
            if not isinstance(value, (int, float, np.number)) or isinstance(value, bool):
                raise TypeError(f"expected a float, got {value!r}")
            return float(value)
        if k == "str":
            if isinstance(value, bytes):
                value = value.decode("utf-8")
            if not isinstance(value, str):
                raise TypeError(f"expected a string, got {value!r}")
            return value
        if k in ("ints", "floats", "strs"):
            if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
                raise TypeError(f"expected a list, got {value!r}")
            item = Attr(k[:-1])
            return tuple(item.check(x) for x in value)
        if k == "dtype":
            return dtype(value)
        if k == "tensor":
            if not isinstance(value, np.ndarray):
                raise TypeError(f"expected a tensor, got {type(value).__name__}")
            dtype(value.dtype)
            return value
        raise AssertionError(k)

    def is_default(self, value: Any) -> bool:
        d = self.default
        if d is None or d is REQUIRED or self.kind == "tensor":
            return False
        if self.kind == "float":
            return value == d or (math.isnan(value) and math.isnan(d))
        return value == d


@dataclass
class OpDef:
    name: str
    family: str
    summary: str
    inputs: tuple[str, ...]          # "X", optional "B?", variadic "inputs*"
    outputs: tuple[str, ...]
    attrs: dict[str, Attr]
    infer: Callable                  # infer(node) -> list[TensorType]
    ref: Callable                    # ref(node, *arrays) -> array | tuple of arrays
    sym: Callable | None = None      # sym(node) -> list[tuple | None] of known int contents
    commutative: bool = False
    storage: bool = False            # takes and gives storage-only dtypes (f8e4m3fn, i4, ...): moves or casts them
    onnx: bool = True                # an ONNX op; False for flowc's own (fused) ops, which models may not name
    sbp: Callable | None = None      # sbp(node) -> list[ir.sbp.Signature]; None: only replicated (all B)
    flops: Callable | None = None    # flops(node, in_types, out_types) -> float at those (local) types
    extra: dict[str, Any] = field(default_factory=dict)   # hooks of later stages

    # -- arity ---------------------------------------------------------------
    def arity(self, names: tuple[str, ...]) -> tuple[int, int | None]:
        """(fewest, most) operands; most is None when the last one is variadic
        ("name*": any number, "name+": one or more)."""
        required = sum(1 for n in names if not n.endswith(("?", "*")))
        if names and names[-1].endswith(("*", "+")):
            return required, None
        return required, len(names)

    def default_num_outputs(self) -> int:
        return self.arity(self.outputs)[0] or 1

    # -- attributes ----------------------------------------------------------
    def attr_default(self, key: str, node=None) -> Any:
        spec = self.attrs.get(key)
        if spec is None:
            raise AssertionError(f"{self.name} has no attribute {key!r}")
        if spec.default is REQUIRED:
            where = f" ({node!r})" if node is not None else ""
            raise CompileError(f"{self.name}{where}: required attribute {key!r} is missing")
        return spec.default

    def normalize_attrs(self, attrs: dict[str, Any], op: str, node_name: str,
                        first_output: str | None = None) -> dict[str, Any]:
        """Attributes checked against their kinds, those equal to their default dropped."""
        where = node_label(op, node_name, first_output)
        out = {}
        for key, value in attrs.items():
            spec = self.attrs.get(key)
            if spec is None:
                known = ", ".join(self.attrs) or "none"
                raise CompileError(f"{where}: unknown attribute {key!r} (known: {known})")
            try:
                value = spec.check(value)
            except (TypeError, ValueError) as e:
                raise CompileError(f"{where}: attribute {key!r} should be {spec.kind}: {e}") from None
            if not spec.is_default(value):
                out[key] = value
        for key, spec in self.attrs.items():
            if spec.default is REQUIRED and key not in out:
                raise CompileError(f"{where}: required attribute {key!r} is missing")
        return out


_REGISTRY: dict[str, OpDef] = {}


def _parse_attrs(attrs: dict[str, Any]) -> dict[str, Attr]:
    out = {}
    for key, spec in attrs.items():
        if isinstance(spec, Attr):
            out[key] = spec
        else:
            kind, default = spec
            assert kind in ATTR_KINDS, kind
            out[key] = Attr(kind, default)
    return out


def defop(name: str, *, family: str, summary: str, inputs, outputs=("Y",), attrs=None,
          infer: Callable, ref: Callable, sym: Callable | None = None,
          commutative: bool = False, storage: bool = False, onnx: bool = True,
          sbp: Callable | None = None, flops: Callable | None = None, **extra) -> OpDef:
    """Define an op. `attrs` maps name -> (kind, default) or Attr."""
    if name in _REGISTRY:
        raise AssertionError(f"op {name} is defined twice")
    op = OpDef(name, family, summary, tuple(inputs), tuple(outputs), _parse_attrs(attrs or {}),
               infer, ref, sym, commutative, storage, onnx, sbp, flops, extra)
    _REGISTRY[name] = op
    return op


def get_op(name: str, node=None) -> OpDef:
    op = _REGISTRY.get(name)
    if op is None:
        raise CompileError(f"unknown op {name!r}" + (f" ({node!r})" if node is not None else "")
                           + f"; flowc supports: {', '.join(sorted(_REGISTRY))}")
    return op


def has_op(name: str) -> bool:
    return name in _REGISTRY


def all_ops() -> dict[str, OpDef]:
    return dict(_REGISTRY)

"""Elementwise code for the CPU target: C types, literals, one C expression per op (a table),
and the loop that applies a body to every element of an output with its sources broadcast.

A program of FusedElementwise (or a MatMul/Conv epilogue) becomes straight-line C inside one
loop; each instruction is typed by its op's own registry rule, as `ir.ops.fused` does.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

from flowc.errors import CompileError, quote_name
from flowc.ir.graph import Node, Value
from flowc.ir.infer import infer_node
from flowc.ir.ops.fused import Literal, parse_program
from flowc.ir.types import DType, TensorType, f32
from flowc.schedules.cpu import ELEMENTWISE

CTYPES = {"f32": "float", "f64": "double", "i8": "int8_t", "i16": "int16_t", "i32": "int32_t",
          "i64": "int64_t", "u8": "uint8_t", "u16": "uint16_t", "u32": "uint32_t", "u64": "uint64_t",
          "bool": "bool"}


# Target cuda also stores f16 and bf16 (`half=True` below). Code computes with them in float: a
# load widens, every op's result rounds to the stored type (as the numpy reference rounds each
# op's half result), a store narrows.
HALF_CTYPES = {"f16": "__half", "bf16": "__nv_bfloat16"}
_ROUND = {"f16": "flowc_round_f16", "bf16": "flowc_round_bf16"}   # runtime/kernels/cuda/elementwise.cuh


def ctype(dt: DType, what: str, half: bool = False) -> str:
    """The C type `dt` is stored in; CompileError naming `what` (a tensor) when the target lacks it."""
    if half and dt.name in HALF_CTYPES:
        return HALF_CTYPES[dt.name]
    if dt.name not in CTYPES:
        target = "cuda" if half else "cpu"
        supported = [*CTYPES, *(HALF_CTYPES if half else ())]
        raise CompileError(f"{what} has dtype {dt.name}, which target {target} does not support yet "
                           f"(supported: {', '.join(supported)})")
    return CTYPES[dt.name]


def compute_ctype(dt: DType, what: str, half: bool = False) -> str:
    """The C type code computes `dt` in: float for a half type, else its own."""
    return "float" if half and dt.name in HALF_CTYPES else ctype(dt, what)


def literal(value, dt: DType) -> str:
    """`value` as a C expression of type `dt`, exactly as numpy converts it; a half type's value
    as the float it rounds to (the type such values are computed in)."""
    if dt.name in HALF_CTYPES:
        return literal(np.array(value, dtype=dt.np).astype(np.float32), f32)
    t = CTYPES[dt.name]
    v = np.array(value, dtype=dt.np).item()
    if dt.name == "bool":
        return "true" if v else "false"
    if dt.kind == "float":
        if math.isnan(v):
            return f"std::numeric_limits<{t}>::quiet_NaN()"
        if math.isinf(v):
            return f"({'-' if v < 0 else ''}std::numeric_limits<{t}>::infinity())"
        return f"{t}({float(v).hex()})"
    if v == -2 ** 63:
        return "(-9223372036854775807LL - 1)"
    return f"{t}({v}{'ULL' if v >= 2 ** 63 else 'LL'})"


# -- one C expression per elementwise op ----------------------------------------------------

Expr = Callable[[Node, list, str, str], str]   # (instruction node, operand C exprs, operand C type, result C type)


def _f(fn32: str, fn: str) -> Expr:
    """A float function: `fn32` (vectorisable, from vmath) for f32 when given, `fn` otherwise."""
    return lambda n, a, t, r: f"{fn32 if fn32 and t == 'float' else fn}({a[0]})"


def _gelu(n, a, t, r):
    x = a[0]
    if t == "float":
        return f"flowc::vmath::gelu_{'tanh' if n.attr('approximate') == 'tanh' else 'erf'}({x})"
    if n.attr("approximate") == "tanh":
        return f"(0.5 * {x} * (1.0 + std::tanh(0.7978845608028654 * ({x} + 0.044715 * {x} * {x} * {x}))))"
    return f"(0.5 * {x} * (1.0 + std::erf({x} * 0.7071067811865476)))"


def _attr(n: Node, key: str, t: str) -> str:
    return f"{t}({float(np.array(n.attr(key), dtype=np.float32 if t == 'float' else np.float64)).hex()})"


def _clip(n, a, t, r):
    v = a[0]
    if len(a) > 1 and a[1] is not None:
        v = f"({v} < {a[1]} ? {a[1]} : {v})"
    if len(a) > 2 and a[2] is not None:
        v = f"({v} > {a[2]} ? {a[2]} : {v})"
    return v


def _fold(fn: str) -> Expr:
    def expr(n, a, t, r):
        out = a[0]
        for b in a[1:]:
            out = fn.format(out, b)
        return out
    return expr


def _div(n, a, t, r):
    return f"({a[0]} / {a[1]})" if t in ("float", "double") else f"flowc::steps::int_div({a[0]}, {a[1]})"


def _mod(n, a, t, r):
    if n.attr("fmod"):
        return f"std::fmod({a[0]}, {a[1]})" if t in ("float", "double") else f"flowc::steps::int_fmod({a[0]}, {a[1]})"
    return f"flowc::steps::py_mod({a[0]}, {a[1]})"


def _abs(n, a, t, r):
    if t in ("float", "double"):
        return f"std::fabs({a[0]})"
    return a[0] if t.startswith("uint") else f"({a[0]} < 0 ? -{a[0]} : {a[0]})"


def _is_inf(n, a, t, r):
    pos, neg = bool(n.attr("detect_positive")), bool(n.attr("detect_negative"))
    return f"(std::isinf({a[0]}) && (({a[0]} > 0) ? {str(pos).lower()} : {str(neg).lower()}))"


OPS: dict[str, Expr] = {
    "Identity": lambda n, a, t, r: a[0],
    "Add": lambda n, a, t, r: f"({a[0]} + {a[1]})",
    "Sub": lambda n, a, t, r: f"({a[0]} - {a[1]})",
    "Mul": lambda n, a, t, r: f"({a[0]} * {a[1]})",
    "Div": _div,
    "Mod": _mod,
    "Pow": lambda n, a, t, r: f"std::pow(double({a[0]}), double({a[1]}))",
    "Max": _fold("flowc::steps::nan_max({}, {})"),
    "Min": _fold("flowc::steps::nan_min({}, {})"),
    "Sum": _fold("({} + {})"),
    "Mean": lambda n, a, t, r: f"({_fold('({} + {})')(n, a, t, r)} / {t}({len(a)}))",
    "Neg": lambda n, a, t, r: f"(-{a[0]})",
    "Abs": _abs,
    "Sign": lambda n, a, t, r: f"flowc::steps::sign({a[0]})",
    "Relu": lambda n, a, t, r: f"({a[0]} < 0 ? {t}(0) : {a[0]})",
    "Exp": _f("", "std::exp"),
    "Log": _f("", "std::log"),
    "Sqrt": _f("", "std::sqrt"),
    "Reciprocal": lambda n, a, t, r: f"({t}(1) / {a[0]})",
    "Sigmoid": lambda n, a, t, r: (f"flowc::vmath::sigmoid({a[0]})" if t == "float"
                                   else f"(1.0 / (1.0 + std::exp(-{a[0]})))"),
    "Tanh": _f("flowc::vmath::tanh", "std::tanh"),
    "Erf": _f("flowc::vmath::erf", "std::erf"),
    "Sin": _f("", "std::sin"), "Cos": _f("", "std::cos"), "Tan": _f("", "std::tan"),
    "Asin": _f("", "std::asin"), "Acos": _f("", "std::acos"), "Atan": _f("", "std::atan"),
    "Sinh": _f("", "std::sinh"), "Cosh": _f("", "std::cosh"), "Asinh": _f("", "std::asinh"),
    "Acosh": _f("", "std::acosh"), "Atanh": _f("", "std::atanh"),
    "Floor": _f("", "std::floor"), "Ceil": _f("", "std::ceil"), "Round": _f("", "std::nearbyint"),
    "Softplus": _f("", "flowc::steps::softplus"),
    "Softsign": lambda n, a, t, r: f"({a[0]} / ({t}(1) + std::fabs({a[0]})))",
    "Mish": lambda n, a, t, r: f"({a[0]} * std::tanh(flowc::steps::softplus({a[0]})))",
    "Swish": lambda n, a, t, r: f"({a[0]} / ({t}(1) + std::exp(-{_attr(n, 'alpha', t)} * {a[0]})))",
    "Gelu": _gelu,
    "HardSwish": lambda n, a, t, r: (f"flowc::vmath::hardswish({a[0]})" if t == "float"
                                     else f"({a[0]} * std::fmin(std::fmax({a[0]} / 6.0 + 0.5, 0.0), 1.0))"),
    "HardSigmoid": lambda n, a, t, r: (f"std::fmin(std::fmax({_attr(n, 'alpha', t)} * {a[0]} + "
                                       f"{_attr(n, 'beta', t)}, {t}(0)), {t}(1))"),
    "LeakyRelu": lambda n, a, t, r: f"({a[0]} >= 0 ? {a[0]} : {_attr(n, 'alpha', t)} * {a[0]})",
    "Elu": lambda n, a, t, r: f"({a[0]} >= 0 ? {a[0]} : {_attr(n, 'alpha', t)} * std::expm1({a[0]}))",
    "Selu": lambda n, a, t, r: (f"({_attr(n, 'gamma', t)} * ({a[0]} > 0 ? {a[0]} : "
                                f"{_attr(n, 'alpha', t)} * std::expm1({a[0]})))"),
    "Celu": lambda n, a, t, r: (f"(std::fmax({t}(0), {a[0]}) + {_attr(n, 'alpha', t)} * "
                                f"std::expm1(std::fmin({t}(0), {a[0]}) / {_attr(n, 'alpha', t)}))"),
    "ThresholdedRelu": lambda n, a, t, r: f"({a[0]} > {_attr(n, 'alpha', t)} ? {a[0]} : {t}(0))",
    "PRelu": lambda n, a, t, r: f"({a[0]} >= 0 ? {a[0]} : {a[0]} * {a[1]})",
    "Clip": _clip,
    "Equal": lambda n, a, t, r: f"({a[0]} == {a[1]})",
    "Less": lambda n, a, t, r: f"({a[0]} < {a[1]})",
    "LessOrEqual": lambda n, a, t, r: f"({a[0]} <= {a[1]})",
    "Greater": lambda n, a, t, r: f"({a[0]} > {a[1]})",
    "GreaterOrEqual": lambda n, a, t, r: f"({a[0]} >= {a[1]})",
    "And": lambda n, a, t, r: f"({a[0]} && {a[1]})",
    "Or": lambda n, a, t, r: f"({a[0]} || {a[1]})",
    "Xor": lambda n, a, t, r: f"({a[0]} != {a[1]})",
    "Not": lambda n, a, t, r: f"(!{a[0]})",
    "BitwiseAnd": lambda n, a, t, r: f"({a[0]} & {a[1]})",
    "BitwiseOr": lambda n, a, t, r: f"({a[0]} | {a[1]})",
    "BitwiseXor": lambda n, a, t, r: f"({a[0]} ^ {a[1]})",
    "BitwiseNot": lambda n, a, t, r: f"(~{a[0]})",
    "Where": lambda n, a, t, r: f"({a[0]} ? {a[1]} : {a[2]})",
    "IsNaN": lambda n, a, t, r: f"std::isnan({a[0]})",
    "IsInf": _is_inf,
}


# -- bodies: straight-line code computing one element --------------------------------------

@dataclass
class Body:
    """Code for one element: `lines` set local variables from the sources' variables
    (`src0`, `src1`, ...); `result` is the expression stored."""
    lines: list[str]
    result: str


def program_body(node: Node, attr: str, sources: dict[str, DType], out: DType, half: bool = False) -> Body:
    """The program `attr` of `node` over `sources` (program name -> dtype, in source order) as C;
    with `half`, half types are computed in float (the sources' variables are float then).

    Program names never reach the C text: sources become src<i>, results v<i>."""
    program = parse_program(node.attr(attr), tuple(sources))
    names = {name: f"src{i}" for i, name in enumerate(sources)}
    types = dict(sources)
    lines = []
    for k, ins in enumerate(program):
        if ins.op not in OPS:
            raise CompileError(f"op {ins.op} (in {attr} of {_label(node)}) is not supported by target cpu yet")
        dts = [None if a is None or isinstance(a, Literal) else types[a] for a in ins.operands]
        lit_dt = [d for d in dts if d is not None][-1]
        args = [None if a is None else literal(a.value, lit_dt) if isinstance(a, Literal) else names[a]
                for a in ins.operands]
        operand_types = [lit_dt if isinstance(a, Literal) else d for a, d in zip(ins.operands, dts)]
        probe = ins.node([None if d is None else Value(f"a{i}", TensorType(d, ()))
                          for i, d in enumerate(operand_types)], [Value("r", None)])
        infer_node(probe)
        rdt = probe.outputs[0].type.dtype
        # Where's and Clip's first operand differ in type from the value operands
        value_dt = operand_types[1] if ins.op == "Where" else operand_types[0]
        t = compute_ctype(value_dt, f"an operand of {_label(node)}", half)
        r = compute_ctype(rdt, f"a result of {_label(node)}", half)
        var = f"v{k}"
        value = f"static_cast<{r}>({OPS[ins.op](probe, args, t, r)})"
        if half and rdt.name in HALF_CTYPES:
            value = f"{_ROUND[rdt.name]}({value})"
        lines.append(f"const {r} {var} = {value};")
        names[ins.dst] = var
        types[ins.dst] = rdt
    return Body(lines, _store(names[program[-1].dst], out, f"the result of {_label(node)}", half))


def _store(value: str, out: DType, what: str, half: bool) -> str:
    """`value` (computed in out's compute type) converted to the type `out` is stored in."""
    stored = ctype(out, what, half)
    if half and out.name in HALF_CTYPES:
        return f"{stored}(static_cast<float>({value}))"
    return f"static_cast<{stored}>({value})"


def op_body(node: Node, out: DType, half: bool = False) -> Body:
    """A single elementwise op of the registry as a one-instruction body."""
    if node.op not in OPS:
        raise CompileError(f"op {node.op} (node {quote_name(node.name or node.outputs[0].name)}) "
                           "is not supported by target cpu yet")
    present = iter(range(len(node.inputs)))
    args = [None if v is None else f"src{next(present)}" for v in node.inputs]
    value_dt = node.inputs[1 if node.op == "Where" else 0].type.dtype
    t = compute_ctype(value_dt, f"input of {_label(node)}", half)
    r = compute_ctype(out, f"output of {_label(node)}", half)
    return Body([], _store(OPS[node.op](node, args, t, r), out, f"output of {_label(node)}", half))


def cast_body(src: DType, out: DType, half: bool = False) -> Body:
    if out.name == "bool":
        return Body([], "(src0 != 0)")
    return Body([], _store("src0", out, "a Cast's output", half))


def _label(node: Node) -> str:
    return f"{node.op} node {quote_name(node.name or node.outputs[0].name)}"


# -- the loop ---------------------------------------------------------------------------------

@dataclass
class Source:
    pointer: str          # a C expression: the source's base pointer
    ctype: str
    shape: tuple[int, ...]
    # The output's own buffer (an epilogue's acc, an input written over in place): read through
    # the output pointer, so the compiler sees y[i] read then written rather than two pointers
    # that overlap exactly, which its alias check would send down the scalar path.
    is_output: bool = False


def broadcast_strides(shape: tuple[int, ...], out: tuple[int, ...]) -> list[int]:
    """Element strides of `shape` broadcast to `out` (0 along broadcast axes)."""
    shape = (1,) * (len(out) - len(shape)) + tuple(shape)
    strides, step = [0] * len(out), 1
    for d in reversed(range(len(out))):
        strides[d] = 0 if shape[d] == 1 and out[d] != 1 else step
        step *= shape[d]
    return strides


def _collapse(out: tuple[int, ...], strides: list[list[int]]):
    """Drop unit dims and merge neighbours that every operand walks contiguously."""
    dims = [(d, [s[i] for s in strides]) for i, d in enumerate(out) if d != 1]
    merged: list[tuple[int, list[int]]] = []
    for d, ss in dims:
        if merged:
            pd, pss = merged[-1]
            if all(ps == s * d for ps, s in zip(pss, ss)):
                merged[-1] = (pd * d, ss)
                continue
        merged.append((d, ss))
    return [d for d, _ in merged], [[ss[j] for _, ss in merged] for j in range(len(strides))]


def loop(out_ptr: str, out_ctype: str, out_shape: tuple[int, ...], sources: list[Source], body: Body) -> list[str]:
    """C statements applying `body` to every element of the output, sources broadcast."""
    numel = math.prod(out_shape)
    if numel == 0:
        return []
    all_strides = [broadcast_strides(s.shape, out_shape) for s in sources]
    all_strides.append(broadcast_strides(out_shape, out_shape))
    dims, strides = _collapse(tuple(out_shape), all_strides)
    own = [s.is_output and s.ctype == out_ctype and st == all_strides[-1]
           for s, st in zip(sources, all_strides)]
    code = [f"{out_ctype}* y = {out_ptr};"]
    code += [f"const {s.ctype}* p{j} = {s.pointer};" for j, s in enumerate(sources) if not own[j]]
    if len(dims) <= 1:
        n = dims[0] if dims else 1
        loads = [f"const {s.ctype} src{j} = {'y' if own[j] else f'p{j}'}[{'i' if dims and strides[j][0] else '0'}];"
                 for j, s in enumerate(sources)]
        code += [f"flowc::parallel_for(&par, {n}, {ELEMENTWISE.grain}, [&](int64_t begin, int64_t end) {{",
                 "  for (int64_t i = begin; i < end; ++i) {"]
        code += ["    " + line for line in loads + body.lines]
        code += [f"    y[i] = {body.result};", "  }", "});"]
        return code
    inner = dims[-1]
    rows = numel // inner
    code += [f"flowc::parallel_for(&par, {rows}, {max(1, ELEMENTWISE.grain // inner)}, "
             "[&](int64_t begin, int64_t end) {",
             "  for (int64_t r = begin; r < end; ++r) {",
             "    int64_t q = r, c = 0;"]
    code += [f"    int64_t o{j} = 0;" for j in range(len(sources)) if not own[j]]
    for d in reversed(range(len(dims) - 1)):
        code.append(f"    c = q % {dims[d]}; q /= {dims[d]};")
        code += [f"    o{j} += c * {strides[j][d]};" for j in range(len(sources)) if strides[j][d] and not own[j]]
    code += [f"    {out_ctype}* yr = y + r * {inner};",
             f"    for (int64_t i = 0; i < {inner}; ++i) {{"]
    loads = []
    for j, s in enumerate(sources):
        if own[j]:
            loads.append(f"const {s.ctype} src{j} = yr[i];")
            continue
        step = strides[j][-1]
        index = f"o{j}" + ("" if step == 0 else " + i" if step == 1 else f" + i * {step}")
        loads.append(f"const {s.ctype} src{j} = p{j}[{index}];")
    code += ["      " + line for line in loads + body.lines]
    code += [f"      yr[i] = {body.result};", "    }", "  }", "});"]
    return code

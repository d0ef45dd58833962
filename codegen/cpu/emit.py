"""The CPU emitter: an optimised graph with static shapes in, a plain CMake project out.

`emit` lowers (fuses), schedules, plans memory, then writes one C++ step function per node
(a short call into runtime/kernels/cpu with the node's shapes and constants baked in), the
plan tables for the engine, weights.bin, model.h, main.c, CMakeLists.txt and copies of the
runtime sources. Nothing the model names reaches C but as an escaped string literal. A
parallel plan's physical graph is emitted once for every rank of its mesh, with a weights
file per rank (codegen/cpu/mesh.py) and its collectives on a comm stream (collective.py).
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import flowc.runtime
from flowc.errors import CompileError, describe_node, quote_name
from flowc.ir.graph import Graph, Node, Value
from flowc.ir.infer import known_array, known_ints
from flowc.ir.ops.nn import _pad_widths, _per_axis, _present, _resize_axes, _resize_plan, _transpose_window, _window
from flowc.ir.ops.reduce import _reduce_axes
from flowc.ir.ops.rules import axis_of
from flowc.ir.ops.tensor import _slice_bounds
from flowc.ir.passes import LOWERING, run_passes
from flowc.ir.passes.fuse import IDENTITY_EPILOGUE
from flowc.ir.passes.parallel import PhysicalGraph
from flowc.schedules.cpu import ATTENTION

from .. import memory
from ..schedule import Schedule, schedule
from . import batch
from . import elementwise as ew
from . import mesh
from .build import WEIGHTS_FILE
from .collective import COMM_STREAM, CollectiveSteps, on_comm_stream, scratch_lives
from .elementwise import Source, ctype

# The reduce kernels' kind of each Reduce* op, and the ops whose value over one element is that element.
REDUCE_KINDS = {"ReduceSum": "SUM", "ReduceMean": "MEAN", "ReduceMax": "MAX", "ReduceMin": "MIN", "ReduceProd": "PROD",
                "ReduceSumSquare": "SUM_SQUARE", "ReduceL1": "L1", "ReduceL2": "L2", "ReduceLogSum": "LOG_SUM",
                "ReduceLogSumExp": "LOG_SUM_EXP"}
REDUCE_KEEPS_ONE = {"ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd"}
TEMPLATES = Path(__file__).resolve().parent / "templates"
RUNTIME = Path(flowc.runtime.__file__).resolve().parent
# Runtime sources a generated project compiles (the tests, bindings and Python stay behind).
RUNTIME_PARTS = ("CMakeLists.txt", "cmake", "include", "base", "device", "comm", "core", "api", "kernels/cpu")
RUNTIME_SUFFIXES = {".h", ".cc", ".cpp", ".cu", ".cuh", ".cmake", ".txt"}
ARENA_SLOTS = 2          # requests in flight at once, each with its own arena
MAX_RANK = 6             # the layout kernels' limit
OUT_OF_RANGE = "an index is out of range"


@dataclass(frozen=True)
class EmitResult:
    out_dir: Path
    files: tuple[Path, ...]
    ops_before: int                      # nodes before lowering
    ops_after: int                       # steps after lowering
    memory: memory.MemoryPlan
    weight_bytes: int                    # per rank on a mesh
    lowered: Graph                       # the graph the steps were emitted from, after LOWERING (rank 0's)
    max_batch: int | None = None         # the batch bound of a dynamic-batch project (plan and lowered at it)
    mesh: tuple[int, ...] | None = None  # the device mesh of a parallel plan's project
    cuda: bool = False                   # a CUDA project (codegen/cuda): its arena holds the inputs and outputs too


def emit(graph: Graph, out_dir, *, threads: int | None = None, max_batch: int | None = None,
         physical: PhysicalGraph | None = None) -> EmitResult:
    """Write the CPU project for `graph` (optimised) into `out_dir`.

    `threads` is the model's default intra-op thread count (None: the core count at load).
    Without `max_batch` the graph's shapes must be static; with it, the inputs may lead with a
    symbolic batch and the project runs any batch from 1 to `max_batch` (codegen/cpu/batch.py).
    With `physical` (ir.passes.parallel.build_physical's result; `graph` is then its graph or the
    logical graph it came from, counted in the report only) the project runs that SPMD graph on
    every rank of its mesh, each with its own weights file (codegen/cpu/mesh.py)."""
    ops_before = len(graph.nodes)
    if physical is not None:
        if max_batch is not None:
            raise CompileError(f"max_batch={max_batch} with a device mesh ({'x'.join(map(str, physical.mesh))}): "
                               "a parallel plan splits fixed shapes; compile it for one batch (input_shapes=)")
        emitter = _emit_mesh(physical)
    elif max_batch is None:
        check_static(graph)
        emitter = _emit_graph(_lower(graph))
    else:
        emitter = _emit_batched(graph, max_batch)
    emitter.threads = int(threads or 0)
    out_dir = Path(out_dir)
    files = _write_project(out_dir, emitter, threads)
    return EmitResult(out_dir, tuple(files), ops_before, len(emitter.steps), emitter.plan, len(emitter.weights),
                      emitter.graph, max_batch=max_batch, mesh=emitter.mesh)


def _lower(graph: Graph, target: str = "cpu") -> Graph:
    graph = run_passes(graph.copy(), LOWERING)
    check_static(graph, target)
    return graph


def _plan_memory(sched: Schedule, inplace=None) -> tuple[memory.MemoryPlan, dict[tuple[str, int], str]]:
    """The arena plan of `sched`'s tensors and of the scratch its collectives pack through (alive
    at their step only), and the plan's name for each scratch buffer: (output name, k) -> name."""
    tensors = list(sched.tensors)
    lives, scratch = scratch_lives(((step.node, i) for i, step in enumerate(sched.steps)),
                                   {t.name for t in tensors} | set(sched.caller_outputs))
    tensors += lives
    tensors.sort(key=lambda t: t.first)
    plan = memory.plan_memory(tensors, sched.inplace if inplace is None else inplace)
    return plan, scratch


def _emit_graph(graph: Graph, sched: Schedule | None = None,
                planned: tuple[memory.MemoryPlan, dict] | None = None) -> _Emitter:
    """The step code of a lowered graph, on `sched`'s order and `planned`'s offsets (by default its own)."""
    sched = sched or schedule(graph)
    emitter = _Emitter(graph, *(planned or _plan_memory(sched)))
    for step in sched.steps:
        emitter.node(step.node)
    emitter.finish_outputs()
    return emitter


def _emit_batched(graph: Graph, max_batch: int, emit_graph=None, plan_memory=None, target: str = "cpu") -> _Emitter:
    """Steps that run any batch up to `max_batch`: emitted at the sample points of batch.py on
    one order and the bound's memory plan, then merged into expressions of ctx->batch.
    `emit_graph(graph, sched, planned, bound)` (`bound`: the graph at the bound, whose sizes
    anything laid out once for all batches follows) and `plan_memory(graph, sched, inplace)`
    are the target's (this module's by default; codegen/cuda passes its own)."""
    emit_graph = emit_graph or (lambda g, sched, planned, bound: _emit_graph(g, sched, planned))
    plan_memory = plan_memory or (lambda g, sched, inplace: _plan_memory(sched, inplace))
    symbol = batch.batch_symbol(graph, max_batch)
    batch.check_batch_uses(graph, symbol)
    batch.check_small_batches(graph, symbol, max_batch)
    if max_batch == 1:
        lowered = _lower(batch.specialize(graph, symbol, 1), target)
        emitter = emit_graph(lowered, None, None, lowered)
        emitter.max_batch = 1
        return emitter
    points = batch.sample_points(max_batch)
    graphs = [_lower(batch.specialize(graph, symbol, b), target) for b in points]
    batch.check_same_structure(graphs, points)
    scheds = _same_order(graphs)
    everywhere = set.intersection(*(set(s.inplace) for s in scheds))
    planned = plan_memory(graphs[0], scheds[0], [c for c in scheds[0].inplace if c in everywhere])
    emitters = [emit_graph(g, s, planned, graphs[0]) for g, s in zip(graphs, scheds)]
    for e, b in zip(emitters[1:], points[1:]):
        if e.weights.bytes() != emitters[0].weights.bytes():
            raise CompileError(f"dynamic batch: constant {quote_name(e.weights.first_difference(emitters[0].weights))} "
                               f"is not the same at batch {points[0]} and batch {b}; compile the model for one batch "
                               "(input_shapes=) instead of max_batch")
    emitter = emitters[0]
    emitter.merge_batches(emitters[1:], points)
    emitter.max_batch = max_batch
    for kind in ("inputs", "outputs"):
        for j, v in enumerate(getattr(graphs[0], kind)):
            growth = batch.per_batch([getattr(g, kind)[j].type.shape for g in graphs], points,
                                     f"{kind[:-1]} {quote_name(v.name)}")
            if growth is not None:
                emitter.per_batch[kind, j] = growth
    return emitter


def _same_order(graphs: list[Graph]) -> list[Schedule]:
    """Schedules of graphs with the same nodes (by position), all in the first one's order."""
    first = schedule(graphs[0])
    position = {n: i for i, n in enumerate(graphs[0].nodes)}
    order = [position[s.node] for s in first.steps]
    return [first] + [schedule(g, order=[g.nodes[i] for i in order]) for g in graphs[1:]]


def _emit_mesh(physical: PhysicalGraph, emit_graph=None, plan_memory=None) -> _Emitter:
    """One project for every rank of the mesh: the physical graph lowered with each distinct set
    of rank constants, emitted on one order and one memory plan; steps whose code differs
    between ranks (a constant folded into it) choose their rank's variant at run time.
    `emit_graph(graph, sched, planned)` and `plan_memory(graph, sched)` are the target's (this
    module's by default; codegen/cuda passes its own)."""
    emit_graph = emit_graph or _emit_graph
    plan_memory = plan_memory or (lambda graph, sched: _plan_memory(sched))
    groups, graphs = mesh.rank_graphs(physical)
    graphs = [_lower(g) for g in graphs]
    mesh.check_same_structure(graphs, groups)
    scheds = _same_order(graphs)
    planned = plan_memory(graphs[0], scheds[0])
    emitters = [emit_graph(g, s, planned) for g, s in zip(graphs, scheds)]
    mesh.check_same_weights([e.weights for e in emitters], groups)
    emitter = emitters[0]
    emitter.share_code(emitters[1:])
    emitter.steps = mesh.merge_steps([e.steps for e in emitters], groups)
    emitter.mesh = tuple(physical.mesh)
    variant = {r: i for i, ranks in enumerate(groups) for r in ranks}
    emitter.rank_weights = [emitters[variant[r]].weights for r in range(physical.ranks)]
    return emitter


def check_static(graph: Graph, target: str = "cpu") -> None:
    """CompileError naming the first tensor whose shape is not static."""
    bound = " or bound a symbolic batch (max_batch=N, --max-batch N)" if target == "cpu" else ""
    for v in list(graph.inputs) + [o for n in graph.nodes for o in n.outputs]:
        if v.type is None or v.type.shape is None or not all(isinstance(d, int) for d in v.type.shape):
            raise CompileError(f"tensor {quote_name(v.name)} has type {v.type}: target {target} needs static "
                               "shapes; pin the input shapes (input_shapes= in flowc.compile, --input-shape "
                               f"NAME=D0,D1,... for flowc compile){bound}")


def c_string(text: str) -> str:
    """`text` as a C string literal: every byte but letters, digits, space and _.,:- in octal."""
    safe = set(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 _.,:-")
    return '"' + "".join(chr(b) if b in safe else f"\\{b:03o}" for b in text.encode("utf-8", "surrogatepass")) + '"'


def c_comment(text: str) -> str:
    """`text` fit for a // comment: letters, digits and a little punctuation, the rest as _."""
    return "".join(c if c.isascii() and (c.isalnum() or c in " _.,:=()[]-+") else "_" for c in text)[:120]


def _unsupported(node: Node, target: str = "cpu") -> CompileError:
    name = node.name or (node.outputs[0].name if node.outputs else "")
    return CompileError(f"op {node.op} (node {quote_name(name)}) is not supported by target {target} yet")


class _Weights:
    def __init__(self):
        self.chunks: list[bytes] = []
        self.names: list[str] = []
        self.offsets: dict[int, int] = {}
        self.size = 0
        self._joined: bytes | None = None

    def add(self, v: Value) -> int:
        if id(v) not in self.offsets:
            self._joined = None
            data = np.ascontiguousarray(np.asarray(v.const, dtype=v.type.dtype.np)).tobytes()
            self.offsets[id(v)] = self.size
            padded = memory.align(len(data))
            self.chunks.append(data + b"\0" * (padded - len(data)))
            self.names.append(v.name)
            self.size += padded
        return self.offsets[id(v)]

    def __len__(self):
        return self.size

    def bytes(self) -> bytes:
        if self._joined is None:
            self._joined = b"".join(self.chunks)
        return self._joined

    def first_difference(self, other: "_Weights") -> str:
        """The name of the first constant whose bytes differ from `other`'s."""
        for name, a, b in zip(self.names, self.chunks, other.chunks):
            if a != b:
                return name
        longer = max(self.names, other.names, key=len)
        return longer[min(len(self.names), len(other.names))]


class _Emitter(CollectiveSteps):
    def __init__(self, graph: Graph, plan: memory.MemoryPlan, scratch: dict[tuple[str, int], str] | None = None):
        self.graph = graph
        self.plan = plan
        self.scratch_names = scratch or {}                  # (output name, k) -> the plan's name
        self.weights = _Weights()
        self.steps: list[tuple[str, list[str]]] = []      # (name literal, body lines)
        self.comm_steps: set[int] = set()                   # indices of the steps on the comm stream
        self.mesh: tuple[int, ...] | None = None            # a parallel plan's device mesh
        self.rank_weights: list[_Weights] = []              # on a mesh: each rank's weights, by rank
        self.inputs = {id(v): i for i, v in enumerate(graph.inputs)}
        self.outputs: dict[int, int] = {}
        for j, v in enumerate(graph.outputs):
            self.outputs.setdefault(id(v), j)
        self.threads = 0
        self.max_batch = 0                                  # 0: static shapes
        self.per_batch: dict[tuple[str, int], tuple[int, ...]] = {}   # ("inputs", j) -> growth per dim

    # -- where tensors live --------------------------------------------------------------
    half = False        # whether the target stores f16 and bf16 (elementwise.HALF_CTYPES)

    def ctype(self, dt, what: str) -> str:
        """The C type tensors of `dt` are stored in (CompileError naming `what` without one)."""
        return ctype(dt, what, self.half)

    def ptr(self, v: Value, write: bool = False) -> str:
        t = self.ctype(v.type.dtype, f"tensor {quote_name(v.name)}")
        if id(v) in self.outputs and v.producer is not None:
            return f"static_cast<{t}*>(ctx->outputs[{self.outputs[id(v)]}])"
        if write:
            return f"reinterpret_cast<{t}*>(ctx->arena + {self.plan.offsets[v.name]})"
        if id(v) in self.inputs:
            return f"static_cast<const {t}*>(ctx->inputs[{self.inputs[id(v)]}])"
        if v.is_const:
            return (f"reinterpret_cast<const {t}*>(static_cast<const uint8_t*>(ctx->weights) + "
                    f"{self.weights.add(v)})")
        return f"reinterpret_cast<const {t}*>(ctx->arena + {self.plan.offsets[v.name]})"

    def scratch(self, node: Node, k: int) -> str:
        """Scratch buffer `k` of `node`'s step (collective.scratch_bytes), in the arena."""
        return f"(ctx->arena + {self.plan.offsets[self.scratch_names[node.outputs[0].name, k]]})"

    def src(self, v: Value, out: Value | None = None) -> Source:
        """`v` as a loop source; marked as the output's own buffer when the plan put `out` over it."""
        return Source(self.ptr(v), self.ctype(v.type.dtype, f"tensor {quote_name(v.name)}"), tuple(v.type.shape),
                      out is not None and self._same_buffer(v, out))

    def _same_buffer(self, v: Value, out: Value) -> bool:
        arena = [u for u in (v, out) if u.producer is not None and id(u) not in self.outputs]
        return len(arena) == 2 and self.plan.offsets.get(v.name) == self.plan.offsets.get(out.name)

    # -- the project's shape: files, streams, step prologues -------------------------------
    device = "cpu"
    prelude: list[str] = []         # code before the step functions (CUDA kernels)

    runtime_parts = RUNTIME_PARTS

    def project_files(self) -> dict[str, str]:
        """The generated files of the project folder, by name."""
        return {"model.cpp": _model_cpp(self), "model.h": _model_h(self), "main.c": (TEMPLATES / "main.c").read_text(),
                "flowc_steps.h": (TEMPLATES / "flowc_steps.h").read_text(),
                "CMakeLists.txt": (TEMPLATES / "CMakeLists.txt").read_text()}

    def includes(self) -> list[str]:
        return ['#include "flowc/model.h"'] + (['#include "flowc/comm.h"'] if self.mesh else []) + \
            ['#include "flowc_steps.h"']

    def step_prologue(self, body: list[str]) -> list[str]:
        return ["const flowc_parallel par = flowc::steps::parallel(ctx);"] if any("par" in line for line in body) \
            else []

    comm_stream = COMM_STREAM       # the plan's stream for the steps that call the communicator

    def stream_of(self, step: int) -> int:
        return self.comm_stream if step in self.comm_steps else 0

    def num_streams(self) -> int:
        return self.comm_stream + 1 if self.comm_steps else 1

    def call(self, fn: str, args: str, *, pool: bool = True) -> str:
        """A call of kernel `fn` of the CPU library (or a flowc::steps helper) with `args` (C text)
        and, with `pool`, the step's thread pool."""
        return f"{fn}({args}{', &par' if pool else ''});"

    def checked_call(self, fn: str, args: str, message: str, status: str = "FLOWC_STATUS_INVALID_ARGUMENT", *,
                     pool: bool = True) -> list[str]:
        """A call of a kernel that returns false on bad input: the step then fails with `message`."""
        return [f"if (!{fn}({args}{', &par' if pool else ''})) {{", f"  ctx->error = {c_string(message)};",
                f"  return {status};", "}"]

    def scratch_buffer(self, ctype: str, slot: int, count: int) -> str:
        """A C expression: a buffer of `count` elements of `ctype` for this step alone (`slot` < 4
        keeps one step's buffers apart)."""
        return f"flowc::steps::scratch<{ctype}>({slot}, {count})"

    def share_code(self, variants: list["_Emitter"]) -> None:
        """On a mesh: make the code outside the step bodies that the other ranks' variants of
        this emitter need part of this one's (their steps are merged into this one's next). The
        CPU's steps call only the library: nothing to share."""

    def merge_batches(self, variants: list["_Emitter"], batches: Sequence[int]) -> None:
        """With `variants`, this emitter's code emitted at other batches (batch.sample_points):
        one code for every batch, its numbers expressions of the batch (codegen/cpu/batch.py)."""
        self.steps = batch.merge_steps([self.steps] + [v.steps for v in variants], batches)

    def add_step(self, name: str, lines: list[str]) -> None:
        self.steps.append((c_string(name), lines))

    # -- one node ------------------------------------------------------------------------
    def node(self, node: Node) -> None:
        for v in node.inputs:
            if v is not None:
                self.ctype(v.type.dtype, f"tensor {quote_name(v.name)} of {describe_node(node)}")
        out = node.outputs[0]
        if out.type.numel() == 0 and len(node.outputs) == 1:
            body = []
        else:
            fn = getattr(self, f"_op_{node.op}", None)
            if fn is None and (node.opdef.family == "elementwise"):
                fn = self._elementwise
            if fn is None:
                raise self._unsupported(node)
            body = fn(node)
        comment = f"// {c_comment(node.op)} {c_comment(node.name or out.name)}"
        if on_comm_stream(node):
            self.comm_steps.add(len(self.steps))
        self.add_step(node.name or out.name, [comment] + body)

    def _single_output(self, node: Node) -> Value:
        if len(node.outputs) != 1:
            raise self._unsupported(node)
        return node.outputs[0]

    def _copy(self, node: Node) -> list[str]:
        out = self._single_output(node)
        dst, src = self.ptr(out, write=True), self.ptr(node.inputs[0])
        nbytes = out.type.nbytes()
        return [f"void* dst = {dst};", f"const void* src = {src};",
                f"if (dst != src) std::memcpy(dst, src, {nbytes});"]

    _op_Reshape = _op_Flatten = _op_Squeeze = _op_Unsqueeze = _op_Identity = _copy

    def _op_Dropout(self, node):
        if len(node.outputs) > 1:
            raise self._unsupported(node)
        return self._copy(node)

    def _elementwise(self, node: Node) -> list[str]:
        out = self._single_output(node)
        sources = [self.src(v, out) for v in node.inputs if v is not None]
        body = ew.op_body(node, out.type.dtype, self.half)
        return self._loop(out, sources, body)

    def _loop(self, out: Value, sources: list[Source], body) -> list[str]:
        t = self.ctype(out.type.dtype, f"tensor {quote_name(out.name)}")
        return ew.loop(self.ptr(out, write=True), t, tuple(out.type.shape), sources, body)

    def _op_FusedElementwise(self, node):
        out = self._single_output(node)
        sources = {f"x{i}": v.type.dtype for i, v in enumerate(node.inputs)}
        body = ew.program_body(node, "program", sources, out.type.dtype, self.half)
        return self._loop(out, [self.src(v, out) for v in node.inputs], body)

    def _op_Expand(self, node):
        out = self._single_output(node)
        return self._loop(out, [self.src(node.inputs[0])], ew.Body([], "src0"))

    def _op_Range(self, node):
        """The count is the output's static length; start and delta are read at run time."""
        out = self._single_output(node)
        t = self.ctype(out.type.dtype, f"tensor {quote_name(out.name)}")
        start, delta = node.inputs[0], node.inputs[2]
        return [f"const {t} start = *{self.ptr(start)};", f"const {t} delta = *{self.ptr(delta)};",
                f"{t}* y = {self.ptr(out, write=True)};",
                f"for (int64_t i = 0; i < {out.type.numel()}; ++i) y[i] = {t}(start + {t}(i) * delta);"]

    def _op_Cast(self, node):
        out = self._single_output(node)
        return self._loop(out, [self.src(node.inputs[0])], ew.cast_body(node.inputs[0].type.dtype, out.type.dtype, self.half))

    def _epilogue(self, node: Node, out: Value, extras: list[Value]) -> list[str]:
        """The epilogue program over acc (already in the output buffer) and the extra inputs."""
        sources = {"acc": out.type.dtype, **{f"x{i}": v.type.dtype for i, v in enumerate(extras)}}
        body = ew.program_body(node, "epilogue", sources, out.type.dtype, self.half)
        t = self.ctype(out.type.dtype, f"tensor {quote_name(out.name)}")
        acc = Source(f"reinterpret_cast<const {t}*>({self.ptr(out, write=True)})", t, tuple(out.type.shape),
                     is_output=True)
        return self._loop(out, [acc] + [self.src(v) for v in extras], body)

    kernel_dtypes = ("f32",)     # the float types the library's float kernels (flowc_*_f32) come in

    def _kernel_dtype(self, node: Node, values) -> str:
        """The one float type of `values` (a node's tensors that a library kernel reads or
        writes), which the kernel must come in: a CompileError naming the tensor otherwise."""
        first = None
        for v in values:
            if v is None:
                continue
            dt = v.type.dtype.name
            if dt not in self.kernel_dtypes or first not in (None, dt):
                mixed = f", all of one type (not {first} and {dt})" if first not in (None, dt) else ""
                raise CompileError(f"{describe_node(node)}: tensor {quote_name(v.name)} is {v.type}; target {self.device} "
                                   f"runs {node.op} on {' or '.join(self.kernel_dtypes)} only{mixed} for now")
            first = dt
        return first or "f32"

    def _unsupported(self, node: Node) -> CompileError:
        return _unsupported(node, self.device)

    def _refuse(self, node: Node, why: str) -> CompileError:
        """The unsupported-op error, saying which case of the op is missing."""
        return CompileError(f"{self._unsupported(node)}: {why}")

    # -- matrix products -----------------------------------------------------------------
    def _op_MatMul(self, node, extras=()):
        out = self._single_output(node)
        a, b = node.inputs[0], node.inputs[1]
        self._kernel_dtype(node, [a, b, out])
        trans_b = bool(node.attrs.get("trans_b"))
        sa, sb = tuple(a.type.shape), tuple(b.type.shape)
        if trans_b:   # B is a matrix [N, K], read transposed
            return self._matmul_trans_b(node, out, a, b, sa, sb)
        sa2 = sa if len(sa) > 1 else (1,) + sa
        sb2 = sb if len(sb) > 1 else sb + (1,)
        m, k, n = sa2[-2], sa2[-1], sb2[-1]
        batch = tuple(np.broadcast_shapes(sa2[:-2], sb2[:-2]))
        nb = math.prod(batch)
        acc_shape = batch + (m, n)
        if math.prod(acc_shape) != out.type.numel():
            raise self._unsupported(node)   # an epilogue that broadcasts past the product
        lines = ["const flowc_parallel* pp = &par;",
                 f"const float* A = {self.ptr(a)};", f"const float* B = {self.ptr(b)};",
                 f"float* Y = {self.ptr(out, write=True)};"]
        offs_a = _batch_offsets(sa2[:-2], batch, m * k)
        offs_b = _batch_offsets(sb2[:-2], batch, k * n)
        if not any(offs_b) and offs_a == [i * m * k for i in range(nb)]:
            lines.append(f"flowc_gemm_f32(false, false, {nb * m}, {n}, {k}, 1.0f, A, {k}, B, {n}, 0.0f, Y, {n}, pp);")
        else:
            sa_ = _affine(offs_a)
            sb_ = _affine(offs_b)
            if sa_ is not None and sb_ is not None:
                lines.append(f"flowc_gemm_batched_f32({nb}, false, false, {m}, {n}, {k}, 1.0f, A, {k}, {sa_}, "
                             f"B, {n}, {sb_}, 0.0f, Y, {n}, {m * n}, pp);")
            else:
                lines += [f"static const int64_t offs_a[{nb}] = {{{', '.join(map(str, offs_a))}}};",
                          f"static const int64_t offs_b[{nb}] = {{{', '.join(map(str, offs_b))}}};",
                          f"for (int64_t i = 0; i < {nb}; ++i)",
                          f"  flowc_gemm_f32(false, false, {m}, {n}, {k}, 1.0f, A + offs_a[i], {k}, B + offs_b[i], "
                          f"{n}, 0.0f, Y + i * {m * n}, {n}, pp);"]
        if node.op == "FusedMatMul":
            lines += self._epilogue(node, out, list(node.inputs[2:]))
        return lines

    def _matmul_trans_b(self, node: Node, out: Value, a: Value, b: Value, sa, sb) -> list[str]:
        """A [..., M, K] (or [K]) times the transpose of the matrix B [N, K]: one GEMM."""
        n, k = sb
        rows = math.prod(sa[:-1])
        lines = ["const flowc_parallel* pp = &par;",
                 f"flowc_gemm_f32(false, true, {rows}, {n}, {k}, 1.0f, {self.ptr(a)}, {k}, {self.ptr(b)}, {k}, "
                 f"0.0f, {self.ptr(out, write=True)}, {n}, pp);"]
        if node.attr("epilogue") != IDENTITY_EPILOGUE:
            lines += self._epilogue(node, out, list(node.inputs[2:]))
        return lines

    _op_FusedMatMul = _op_MatMul

    def _op_FusedAttention(self, node):
        """Per job (one batch index, a block of query rows): scores = q_blk @ kt into a per-thread
        buffer, the epilogue (scale, mask) on them, softmax in place, then @ v into the output;
        the scores stay in cache and no step writes them out."""
        out = self._single_output(node)
        q, kt, v = node.inputs[:3]
        extras = list(node.inputs[3:])
        self._kernel_dtype(node, [q, kt, v, out])
        qs = tuple(q.type.shape)
        batch, (m, k), n, d = qs[:-2], qs[-2:], kt.type.shape[-1], v.type.shape[-1]
        nb, block = math.prod(batch), ATTENTION.rows
        blocks = -(-m // block)
        scores = batch + (m, n)
        sources = {"acc": out.type.dtype, **{f"x{i}": x.type.dtype for i, x in enumerate(extras)}}
        body = ew.program_body(node, "epilogue", sources, out.type.dtype, self.half)
        strides = [ew.broadcast_strides(tuple(x.type.shape), scores) for x in extras]
        lines = [f"const float* Q = {self.ptr(q)};", f"const float* KT = {self.ptr(kt)};",
                 f"const float* V = {self.ptr(v)};", f"float* Y = {self.ptr(out, write=True)};"]
        lines += [f"const {self.ctype(x.type.dtype, f'tensor {quote_name(x.name)}')}* p{j + 1} = {self.ptr(x)};"
                  for j, x in enumerate(extras)]
        lines += [f"flowc::parallel_for(&par, {nb * blocks}, 1, [&](int64_t lo, int64_t hi) {{",
                  f"  float* s = flowc::steps::scratch<float>(0, {block * n});",
                  "  for (int64_t job = lo; job < hi; ++job) {",
                  f"    const int64_t b = job / {blocks}, m0 = job % {blocks} * {block};",
                  f"    const int64_t rows = std::min<int64_t>({block}, {m} - m0);",
                  f"    flowc_gemm_f32(false, false, rows, {n}, {k}, 1.0f, Q + (b * {m} + m0) * {k}, {k}, "
                  f"KT + b * {k * n}, {n}, 0.0f, s, {n}, nullptr);"]
        if node.attr("epilogue") != IDENTITY_EPILOGUE:
            lines += ["    int64_t q = b, c = 0;"] + [f"    int64_t o{j + 1} = 0;" for j in range(len(extras))]
            for axis in reversed(range(len(batch))):
                lines.append(f"    c = q % {batch[axis]}; q /= {batch[axis]};")
                lines += [f"    o{j + 1} += c * {st[axis]};" for j, st in enumerate(strides) if st[axis]]
            lines += ["    for (int64_t i = 0; i < rows; ++i) {", f"      float* sr = s + i * {n};",
                      f"      for (int64_t j = 0; j < {n}; ++j) {{",
                      "        const float src0 = sr[j];"]
            for j, st in enumerate(strides):
                index = f"o{j + 1} + (m0 + i) * {st[-2]}" + ("" if not st[-1] else " + j" if st[-1] == 1
                                                            else f" + j * {st[-1]}")
                t = self.ctype(extras[j].type.dtype, f"tensor {quote_name(extras[j].name)}")
                lines.append(f"        const {t} src{j + 1} = p{j + 1}[{index}];")
            lines += ["        " + line for line in body.lines]
            lines += [f"        sr[j] = {body.result};", "      }", "    }"]
        lines += [f"    flowc_softmax_f32(rows, {n}, s, s, nullptr);",
                  f"    flowc_gemm_f32(false, false, rows, {d}, {n}, 1.0f, s, {n}, V + b * {n * d}, {d}, 0.0f, "
                  f"Y + (b * {m} + m0) * {d}, {d}, nullptr);",
                  "  }", "});"]
        return lines

    # -- convolution and pooling ---------------------------------------------------------
    def _op_Conv(self, node):
        out, x, w, bias = node.outputs[0], node.inputs[0], node.inputs[1], node.input(2)
        lines = [self._conv_params(node),
                 "float* ws = flowc::steps::scratch<float>(0, flowc_conv2d_workspace_f32(&p, &par));",
                 f"flowc_conv2d_f32(&p, {self.ptr(x)}, {self.ptr(w)}, "
                 f"{self.ptr(bias) if bias is not None else 'nullptr'}, {self.ptr(out, write=True)}, ws, &par);"]
        if node.op == "FusedConv":
            lines += self._epilogue(node, out, list(node.inputs[3:]))
        return lines

    _op_FusedConv = _op_Conv

    def _conv_params(self, node: Node) -> str:
        """The flowc_conv2d_params table `p` of a Conv (1-D as 2-D of unit height)."""
        out = self._single_output(node)
        x, w = node.inputs[0], node.inputs[1]
        self._kernel_dtype(node, [x, w, node.input(2), out])
        xs, ws = tuple(x.type.shape), tuple(w.type.shape)
        if len(xs) not in (3, 4):
            raise self._unsupported(node)
        kernel = ws[2:]
        outs, begin, end = _window(node, xs[2:], kernel)
        strides = _per_axis(node, "strides", len(kernel))
        dilations = _per_axis(node, "dilations", len(kernel))
        if len(xs) == 3:
            xs, kernel, outs, begin, end, strides, dilations = _as_2d(xs, kernel, outs, begin, end, strides,
                                                                      dilations)
        p = [xs[0], xs[1], xs[2], xs[3], ws[0], kernel[0], kernel[1], node.attr("group"), strides[0], strides[1],
             begin[0], begin[1], end[0], end[1], dilations[0], dilations[1], outs[0], outs[1]]
        return f"static const flowc_conv2d_params p = {{{', '.join(map(str, p))}}};"

    def _op_ConvTranspose(self, node):
        out, x, w, bias = node.outputs[0], node.inputs[0], node.inputs[1], node.input(2)
        return [self._conv_transpose_params(node),
                "float* ws = flowc::steps::scratch<float>(0, flowc_conv_transpose2d_workspace_f32(&p, &par));",
                f"flowc_conv_transpose2d_f32(&p, {self.ptr(x)}, {self.ptr(w)}, "
                f"{self.ptr(bias) if bias is not None else 'nullptr'}, {self.ptr(out, write=True)}, ws, &par);"]

    def _conv_transpose_params(self, node: Node) -> str:
        """The flowc_conv_transpose2d_params table `p` of a ConvTranspose."""
        out = self._single_output(node)
        x, w = node.inputs[0], node.inputs[1]
        self._kernel_dtype(node, [x, w, node.input(2), out])
        xs, ws = tuple(x.type.shape), tuple(w.type.shape)
        if len(xs) not in (3, 4):
            raise self._refuse(node, f"{len(xs) - 2}-D transposed convolution (target {self.device} has 1-D and 2-D)")
        kernel = ws[2:]
        outs, begin, _ = _transpose_window(node, xs[2:], kernel)
        strides = _per_axis(node, "strides", len(kernel))
        dilations = _per_axis(node, "dilations", len(kernel))
        if len(xs) == 3:
            xs, kernel, outs, begin, _, strides, dilations = _as_2d(xs, kernel, outs, begin, begin, strides,
                                                                    dilations)
        p = [*xs, out.type.shape[1], *kernel, node.attr("group"), *strides, *begin, *dilations, *outs]
        return f"static const flowc_conv_transpose2d_params p = {{{', '.join(map(str, p))}}};"

    def _pool_params(self, node: Node, x: Value, out: Value) -> str:
        xs = tuple(x.type.shape)
        if len(xs) not in (3, 4):
            raise self._refuse(node, f"{len(xs) - 2}-D pooling (target {self.device} has 1-D and 2-D)")
        kernel = tuple(node.attr("kernel_shape"))
        outs, begin, end = _window(node, xs[2:], kernel, bool(node.attr("ceil_mode")))
        strides, dilations = _per_axis(node, "strides", len(kernel)), _per_axis(node, "dilations", len(kernel))
        if len(xs) == 3:
            xs, kernel, outs, begin, end, strides, dilations = _as_2d(xs, kernel, outs, begin, end, strides,
                                                                      dilations)
        p = [*xs, *kernel, *strides, begin[0], begin[1], end[0], end[1], *dilations, *outs]
        return f"static const flowc_pool2d_params p = {{{', '.join(map(str, p))}}};"

    def _op_MaxPool(self, node):
        x, out = node.inputs[0], node.outputs[0]
        self._kernel_dtype(node, [x])
        if len(node.outputs) == 2:
            column_major = "true" if node.attr("storage_order") else "false"
            return [self._pool_params(node, x, out),
                    self.call("flowc_maxpool2d_indices_f32", f"&p, {column_major}, {self.ptr(x)}, {self.ptr(out, write=True)}, "
                    f"{self.ptr(node.outputs[1], write=True)}")]
        return [self._pool_params(node, x, out),
                self.call("flowc_maxpool2d_f32", f"&p, {self.ptr(x)}, {self.ptr(out, write=True)}")]

    def _op_AveragePool(self, node):
        out = self._single_output(node)
        x = node.inputs[0]
        self._kernel_dtype(node, [x])
        include = "true" if node.attr("count_include_pad") else "false"
        return [self._pool_params(node, x, out),
                self.call("flowc_avgpool2d_f32", f"&p, {include}, {self.ptr(x)}, {self.ptr(out, write=True)}")]

    def _op_GlobalAveragePool(self, node):
        out = self._single_output(node)
        x = node.inputs[0]
        self._kernel_dtype(node, [x])
        xs = x.type.shape
        return [self.call("flowc_global_avgpool_f32", f"{xs[0] * xs[1]}, {math.prod(xs[2:])}, {self.ptr(x)}, "
                f"{self.ptr(out, write=True)}")]

    # -- rows: softmax, layer norm, reductions -------------------------------------------
    def _rows(self, node: Node, x: Value, axis: int) -> tuple[int, int]:
        """(rows, n) viewing x as [rows, n] with n the dims from `axis` on; these kernels need
        the reduced axis innermost."""
        xs = tuple(x.type.shape)
        n = math.prod(xs[axis:])
        return (math.prod(xs[:axis]), n)

    def _op_Softmax(self, node, log=False):
        out = self._single_output(node)
        x = node.inputs[0]
        self._kernel_dtype(node, [x])
        xs = tuple(x.type.shape)
        axis = axis_of(node, len(xs))
        rows, n, inner = math.prod(xs[:axis]), xs[axis], math.prod(xs[axis + 1:])
        fn = "flowc_log_softmax" if log else "flowc_softmax"
        if inner == 1:
            return [self.call(f"{fn}_f32", f"{rows}, {n}, {self.ptr(x)}, {self.ptr(out, write=True)}")]
        return [self.call(f"{fn}_strided_f32", f"{rows}, {n}, {inner}, {self.ptr(x)}, {self.ptr(out, write=True)}")]

    def _op_LogSoftmax(self, node):
        return self._op_Softmax(node, log=True)

    def _op_LayerNormalization(self, node):
        out = self._single_output(node)
        x, scale, bias = node.inputs[0], node.inputs[1], node.input(2)
        self._kernel_dtype(node, [x, scale, bias])
        axis = axis_of(node, x.type.rank)
        rows, n = self._rows(node, x, axis)
        if scale.type.numel() != n or (bias is not None and bias.type.numel() != n):
            raise self._unsupported(node)
        eps = float(np.float32(node.attr("epsilon"))).hex()
        beta = self.ptr(bias) if bias is not None else "nullptr"
        return [self.call("flowc_layer_norm_f32", f"{rows}, {n}, {self.ptr(x)}, {self.ptr(scale)}, {beta}, float({eps}), "
                f"{self.ptr(out, write=True)}")]

    def _op_ReduceSum(self, node):
        """Every Reduce* op: the reduce kernels over x viewed as [outer, r, inner], reduced axes
        that are not adjacent moved to the end first."""
        out = self._single_output(node)
        x = node.inputs[0]
        self._kernel_dtype(node, [x])
        xs = tuple(x.type.shape)
        axes = _reduce_axes(node, len(xs))
        if axes is None:
            raise self._refuse(node, "its axes must be known at compile time")
        kind, y = f"FLOWC_REDUCE_{REDUCE_KINDS[node.op]}", self.ptr(out, write=True)
        t = self.ctype(x.type.dtype, f"tensor {quote_name(x.name)}")
        if not axes:     # noop_with_empty_axes: each element reduced on its own
            if node.op in REDUCE_KEEPS_ONE:
                return self._copy(node)
            return [self.call("flowc_reduce_trailing_f32", f"{kind}, {x.type.numel()}, 1, {self.ptr(x)}, {y}")]
        lines, src = [], self.ptr(x)
        if list(axes) != list(range(axes[0], axes[-1] + 1)):
            if len(xs) > MAX_RANK:
                raise self._refuse(node, f"axes {list(axes)} of rank {len(xs)} (target {self.device} moves axes of rank up to "
                                         f"{MAX_RANK})")
            perm = [a for a in range(len(xs)) if a not in axes] + list(axes)
            lines = [_int64s("shape", xs),
                     _int64s("perm", perm),
                     f"{t}* moved = {self.scratch_buffer(t, 0, x.type.numel())};",
                     self.call("flowc_transpose", f"{x.type.dtype.np.itemsize}, {len(xs)}, shape, perm, {src}, moved")]
            src, xs, axes = "moved", tuple(xs[a] for a in perm), tuple(range(len(xs) - len(axes), len(xs)))
        outer, r, inner = math.prod(xs[:axes[0]]), math.prod(xs[axes[0]:axes[-1] + 1]), math.prod(xs[axes[-1] + 1:])
        if inner == 1:
            return lines + [self.call("flowc_reduce_trailing_f32", f"{kind}, {outer}, {r}, {src}, {y}")]
        return lines + [self.call("flowc_reduce_middle_f32", f"{kind}, {outer}, {r}, {inner}, {src}, {y}")]

    _op_ReduceMean = _op_ReduceMax = _op_ReduceMin = _op_ReduceProd = _op_ReduceSumSquare = _op_ReduceSum
    _op_ReduceL1 = _op_ReduceL2 = _op_ReduceLogSum = _op_ReduceLogSumExp = _op_ReduceSum

    # -- data movement -------------------------------------------------------------------
    def _op_Transpose(self, node):
        out = self._single_output(node)
        x = node.inputs[0]
        xs = tuple(x.type.shape)
        perm = node.attr("perm") or tuple(reversed(range(len(xs))))
        if len(xs) > MAX_RANK:
            raise self._unsupported(node)
        if len(xs) <= 1:
            return self._copy(node)
        return [_int64s("shape", xs),
                _int64s("perm", perm),
                self.call("flowc_transpose", f"{x.type.dtype.np.itemsize}, {len(xs)}, shape, perm, {self.ptr(x)}, "
                          f"{self.ptr(out, write=True)}")]

    def _indices(self, v: Value, slot: int) -> tuple[list[str], str]:
        """Lines giving an int64_t* over index tensor `v`, and its name."""
        name = f"idx{slot}"
        if v.type.dtype.name == "i64":
            return [f"const int64_t* {name} = {self.ptr(v)};"], name
        if v.type.dtype.name == "i32":
            n = v.type.numel()
            return [f"int64_t* {name} = {self.scratch_buffer('int64_t', slot, n)};",
                    self.call("flowc::steps::widen_indices", f"{n}, {self.ptr(v)}, {name}", pool=False)], name
        raise CompileError(f"index tensor {quote_name(v.name)} is {v.type}; target {self.device} takes i64 or i32 indices")

    def _op_Gather(self, node):
        out = self._single_output(node)
        x, idx = node.inputs
        xs = tuple(x.type.shape)
        axis = axis_of(node, len(xs))
        lines, name = self._indices(idx, 1)
        return lines + self.checked_call(
            "flowc_gather", f"{x.type.dtype.np.itemsize}, {math.prod(xs[:axis])}, {xs[axis]}, {math.prod(xs[axis + 1:])}, "
                            f"{self.ptr(x)}, {name}, {idx.type.numel()}, {self.ptr(out, write=True)}",
            OUT_OF_RANGE, "FLOWC_STATUS_OUT_OF_RANGE")

    def _op_GatherND(self, node):
        out = self._single_output(node)
        x, idx = node.inputs
        xs, ix = tuple(x.type.shape), tuple(idx.type.shape)
        b, k = node.attr("batch_dims"), ix[-1]
        lines, name = self._indices(idx, 1)
        batch = math.prod(xs[:b])
        count = math.prod(ix[b:-1])
        dims = xs[b:b + k]
        return lines + [_int64s("dims", dims)] + self.checked_call(
            "flowc::steps::gather_nd", f"{x.type.dtype.np.itemsize}, {batch}, {k}, dims, {math.prod(xs[b + k:])}, "
                                       f"{count}, {name}, {self.ptr(x)}, {self.ptr(out, write=True)}",
            OUT_OF_RANGE, "FLOWC_STATUS_OUT_OF_RANGE", pool=False)

    def _op_Concat(self, node):
        out = self._single_output(node)
        xs = tuple(out.type.shape)
        axis = axis_of(node, len(xs))
        parts = [v for v in node.inputs]
        return [f"const void* xs[{len(parts)}] = {{{', '.join(self.ptr(v) for v in parts)}}};",
                f"static const int64_t sizes[{len(parts)}] = {{{', '.join(str(v.type.shape[axis]) for v in parts)}}};",
                self.call("flowc_concat", f"{out.type.dtype.np.itemsize}, {len(parts)}, xs, sizes, {math.prod(xs[:axis])}, "
                f"{math.prod(xs[axis + 1:])}, {self.ptr(out, write=True)}")]

    def _op_Split(self, node):
        x = node.inputs[0]
        xs = tuple(x.type.shape)
        axis = axis_of(node, len(xs))
        outer, inner, elem = math.prod(xs[:axis]), math.prod(xs[axis + 1:]), x.type.dtype.np.itemsize
        lines, begin = [], 0
        for out in node.outputs:
            count = out.type.shape[axis]
            if out.type.numel():
                lines.append(self.call("flowc::steps::copy_block", f"{elem}, {outer}, {xs[axis]}, {begin}, {count}, "
                                                                    f"{inner}, {self.ptr(x)}, {self.ptr(out, write=True)}",
                                       pool=False))
            begin += count
        return lines

    def _op_Slice(self, node):
        out = self._single_output(node)
        x = node.inputs[0]
        xs = tuple(x.type.shape)
        params = [known_ints(node.input(i)) for i in range(1, 5)]
        starts, ends, axes, steps = params
        if starts is None or ends is None or any(node.input(i) is not None and params[i - 1] is None
                                                 for i in (3, 4)) or len(xs) > MAX_RANK:
            raise self._unsupported(node)
        axes = axes if axes is not None else tuple(range(len(starts)))
        steps = steps if steps is not None else (1,) * len(starts)
        first, step = [0] * len(xs), [1] * len(xs)
        for a, s, e, k in zip(axes, starts, ends, steps):
            a = a + len(xs) if a < 0 else a
            r = range(xs[a])[_slice_bounds(xs[a], s, e, k)]
            if len(r) != out.type.shape[a]:
                raise self._unsupported(node)
            first[a], step[a] = (r.start if len(r) else 0), k
        if len(xs) == 0:
            return self._copy(node)
        return [_int64s("x_shape", xs),
                _int64s("starts", first),
                _int64s("steps", step),
                _int64s("y_shape", out.type.shape),
                self.call("flowc_slice", f"{x.type.dtype.np.itemsize}, {len(xs)}, x_shape, starts, steps, y_shape, "
                f"{self.ptr(x)}, {self.ptr(out, write=True)}")]

    def _op_Pad(self, node):
        out = self._single_output(node)
        x = node.inputs[0]
        xs = tuple(x.type.shape)
        pads, axes = known_ints(node.inputs[1]), known_ints(node.input(3))
        if pads is None or (node.input(3) is not None and axes is None) or \
                not all(isinstance(d, int) for d in pads + (axes or ())):
            raise self._refuse(node, "its pads and axes must be known at compile time")
        if len(xs) > MAX_RANK:
            raise self._refuse(node, f"rank {len(xs)} (target {self.device} pads tensors of rank up to {MAX_RANK})")
        widths = _pad_widths(node, len(xs), pads, axes)
        mode = node.attr("mode")
        kept = [size - max(-b, 0) - max(-e, 0) for size, (b, e) in zip(xs, widths)]
        if mode != "constant" and any(k < 0 or (k == 0 and (b > 0 or e > 0)) for k, (b, e) in zip(kept, widths)):
            raise CompileError(f"{describe_node(node)}: mode {mode!r} cannot pad an axis cropped to nothing "
                               f"(sizes left after the negative pads: {kept})")
        if not xs:
            return self._copy(node)
        value = node.input(2)
        lines = self._pad_fill(node, value if mode == "constant" and value is not None and value.type.numel() else None)
        return lines + [
            _int64s("x_shape", xs),
            _int64s("begin", [b for b, _ in widths]),
            _int64s("end", [e for _, e in widths]),
            *self.checked_call("flowc_pad", f"FLOWC_PAD_{mode.upper()}, {x.type.dtype.np.itemsize}, {len(xs)}, "
                               f"x_shape, begin, end, fill, {self.ptr(x)}, {self.ptr(out, write=True)}",
                               f"{describe_node(node)}: its pads crop an axis to nothing")]

    def _pad_fill(self, node: Node, value: Value | None) -> list[str]:
        """Lines pointing `fill` at Pad's constant: the tensor `value`, or zero when None."""
        if value is not None:
            return [f"const void* fill = {self.ptr(value)};"]
        x = node.inputs[0]
        t = self.ctype(x.type.dtype, f"tensor {quote_name(x.name)}")
        return [f"static const {t} zero = {ew.literal(0, x.type.dtype)};", "const void* fill = &zero;"]

    def _op_Resize(self, node):
        out = self._single_output(node)
        x = node.inputs[0]
        xs = tuple(x.type.shape)
        scales_v, sizes_v = _present(node.input(2)), _present(node.input(3))
        scales, sizes = known_array(scales_v), known_ints(sizes_v)
        if sizes is not None and not all(isinstance(d, int) for d in sizes):
            sizes = None
        if scales is None and sizes is None:
            raise self._refuse(node, "its scales or sizes must be known at compile time")
        if scales is not None:
            dims, factor = _resize_plan(node, xs, tuple(float(s) for s in scales.reshape(-1)), None)
        else:
            dims, factor = _resize_plan(node, xs, None, sizes)
        axes = _resize_axes(node, len(xs))
        coordinates = node.attr("coordinate_transformation_mode")
        box = {}
        if coordinates == "tf_crop_and_resize":
            roi = known_array(_present(node.input(1)))
            if roi is None:
                raise self._refuse(node, "its roi must be known at compile time")
            roi = np.asarray(roi, np.float64).reshape(-1)
            if roi.size not in (2 * len(axes), 2 * len(xs)):
                raise node.error(f"roi has {roi.size} values, expected {2 * len(axes)} (start and end per resized "
                                 "axis)")
            listed = axes if roi.size == 2 * len(axes) else list(range(len(xs)))
            box = {a: (float(roi[i]), float(roi[i + len(listed)])) for i, a in enumerate(listed)}
        resized = [a in axes and (dims[a] != xs[a] or factor[a] != 1 or box.get(a, (0, 1)) != (0, 1))
                   for a in range(len(xs))]
        if any(resized[:-2]):
            raise self._refuse(node, f"it resizes {x.type} to {out.type} (target {self.device} resizes the last two axes only)")
        if not any(resized):
            return self._copy(node)
        if any(resized[a] and factor[a] is None for a in range(len(xs))):
            raise self._refuse(node, f"it resizes the empty {x.type} to {out.type}")
        mode = node.attr("mode")
        if mode != "nearest" and x.type.dtype.name != "f32":
            raise self._refuse(node, f"mode {mode} on {x.type} (target {self.device} interpolates f32; nearest takes any dtype)")

        def axis(a):
            if a < 0:   # rank 1: a unit height, left as it is
                return "{1, 1, 0, 0x1p+0, 0x0p+0, 0x1p+0}"
            start, end = box.get(a, (0.0, 1.0))
            scale = factor[a] if resized[a] else 1.0
            return f"{{{xs[a]}, {dims[a]}, {int(resized[a])}, {float(scale).hex()}, {start.hex()}, {end.hex()}}}"

        h, w = (len(xs) - 2, len(xs) - 1) if len(xs) > 1 else (-1, 0)
        p = [str(math.prod(xs[:-2])), axis(h), axis(w)] + \
            [f"FLOWC_RESIZE_{name.upper()}" for name in (mode, coordinates, node.attr("nearest_mode"))] + \
            [float(node.attr("cubic_coeff_a")).hex(),
             str(int(node.attr("exclude_outside"))), str(int(node.attr("antialias")))]
        lines = [f"static const flowc_resize_params p = {{{', '.join(p)}}};"]
        extrapolation = ew.literal(node.attr("extrapolation_value"), x.type.dtype)
        if mode != "nearest":
            return lines + [self.call("flowc_resize_f32", f"&p, {extrapolation}, {self.ptr(x)}, {self.ptr(out, write=True)}")]
        t = self.ctype(x.type.dtype, f"tensor {quote_name(x.name)}")
        return lines + [f"static const {t} fill = {extrapolation};",
                        self.call("flowc_resize_nearest", f"&p, {x.type.dtype.np.itemsize}, &fill, {self.ptr(x)}, "
                        f"{self.ptr(out, write=True)}")]

    # -- arg reductions, running sums, top-k, gather along an axis, group normalisation ----
    def _along_axis(self, x: Value, axis: int) -> str:
        """`outer, n, inner`: x viewed as [outer, n, inner] around `axis`."""
        xs = tuple(x.type.shape)
        return f"{math.prod(xs[:axis])}, {xs[axis]}, {math.prod(xs[axis + 1:])}"

    def _op_ArgMax(self, node, largest=True):
        out = self._single_output(node)
        x = node.inputs[0]
        self._kernel_dtype(node, [x])
        last = "true" if node.attr("select_last_index") else "false"
        return [self.call("flowc_arg_reduce_f32", f"{'true' if largest else 'false'}, {last}, "
                f"{self._along_axis(x, axis_of(node, x.type.rank))}, {self.ptr(x)}, {self.ptr(out, write=True)}")]

    def _op_ArgMin(self, node):
        return self._op_ArgMax(node, largest=False)

    def _op_CumSum(self, node):
        out = self._single_output(node)
        x = node.inputs[0]
        axis = known_ints(node.inputs[1])
        if axis is None or not isinstance(axis[0], int):
            raise self._refuse(node, "its axis must be known at compile time")
        if x.type.dtype.name not in ("f32", "f64", "i32", "i64"):
            raise self._refuse(node, f"{x.type} (target {self.device} sums f32, f64, i32 and i64)")
        rank = x.type.rank
        flags = ", ".join("true" if node.attr(a) else "false" for a in ("exclusive", "reverse"))
        return [self.call(f"flowc_cumsum_{x.type.dtype.name}", f"{self._along_axis(x, axis[0] % rank)}, {flags}, "
                          f"{self.ptr(x)}, {self.ptr(out, write=True)}")]

    def _op_TopK(self, node):
        x = node.inputs[0]
        values, indices = node.outputs
        self._kernel_dtype(node, [x])
        k = known_ints(node.inputs[1])
        if k is None or not isinstance(k[0], int):
            raise self._refuse(node, "its K must be known at compile time")
        if k[0] == 0:
            return []
        largest = "true" if node.attr("largest") else "false"
        return [self.call("flowc_topk_f32", f"{largest}, {self._along_axis(x, axis_of(node, x.type.rank))}, {k[0]}, {self.ptr(x)}, "
                f"{self.ptr(values, write=True)}, {self.ptr(indices, write=True)}")]

    def _op_GatherElements(self, node):
        out = self._single_output(node)
        x, idx = node.inputs
        xs, ix = tuple(x.type.shape), tuple(idx.type.shape)
        if not 1 <= len(xs) <= 8:
            raise self._refuse(node, f"rank {len(xs)} (target {self.device} gathers elements of tensors of rank 1 to 8)")
        lines, name = self._indices(idx, 1)
        return lines + [_int64s("x_shape", xs), _int64s("index_shape", ix)] + self.checked_call(
            "flowc_gather_elements", f"{x.type.dtype.np.itemsize}, {len(xs)}, x_shape, index_shape, "
                                     f"{axis_of(node, len(xs))}, {self.ptr(x)}, {name}, {self.ptr(out, write=True)}",
            OUT_OF_RANGE, "FLOWC_STATUS_OUT_OF_RANGE")

    def _op_GroupNormalization(self, node, groups=None):
        out = self._single_output(node)
        x, scale, bias = node.inputs
        self._kernel_dtype(node, [x, scale, bias])
        if node.op == "GroupNormalization" and node.attr("stash_type") != 1:
            raise self._refuse(node, f"stash_type {node.attr('stash_type')} (target {self.device} normalises in f32: 1)")
        xs = tuple(x.type.shape)
        groups = groups or node.attr("num_groups")
        eps = float(np.float32(node.attr("epsilon"))).hex()
        return [self.call("flowc_group_norm_f32", f"{xs[0]}, {xs[1]}, {groups}, {math.prod(xs[2:])}, {self.ptr(x)}, "
                f"{self.ptr(scale)}, {self.ptr(bias)}, float({eps}), {self.ptr(out, write=True)}")]

    def _op_InstanceNormalization(self, node):
        return self._op_GroupNormalization(node, groups=node.inputs[0].type.shape[1])

    # -- graph outputs that no node writes -----------------------------------------------
    def finish_outputs(self) -> None:
        lines = []
        for j, v in enumerate(self.graph.outputs):
            first = self.outputs[id(v)]
            if first == j and v.producer is not None:
                continue
            src = f"ctx->outputs[{first}]" if first != j and v.producer is not None else self.ptr(v)
            lines.append(f"std::memcpy(ctx->outputs[{j}], {src}, {v.type.nbytes()});")
        if lines or not self.steps:
            self.add_step("graph outputs", lines)


def _as_2d(xs, kernel, outs, begin, end, strides, dilations):
    """A 1-D window op's shape and window numbers as 2-D ones with a unit height."""
    return (tuple(xs[:2]) + (1,) + tuple(xs[2:]), (1,) + tuple(kernel), (1,) + tuple(outs), (0,) + tuple(begin),
            (0,) + tuple(end), (1,) + tuple(strides), (1,) + tuple(dilations))


def _int64s(name: str, values) -> str:
    """A step's table of int64 numbers (shapes, strides, starts), as one C line."""
    values = list(values)
    return f"static const int64_t {name}[{max(len(values), 1)}] = {{{', '.join(map(str, values)) or '0'}}};"


def _batch_offsets(shape: tuple[int, ...], batch: tuple[int, ...], matrix: int) -> list[int]:
    """Element offset of each matrix of an operand with batch dims `shape`, broadcast to `batch`."""
    shape = (1,) * (len(batch) - len(shape)) + tuple(shape)
    index = np.arange(math.prod(shape), dtype=np.int64).reshape(shape) * matrix
    return np.broadcast_to(index, batch).reshape(-1).tolist()


def _affine(offsets: list[int]) -> int | None:
    """The stride when offsets[i] == i * stride (0 broadcasts), else None."""
    if not offsets:
        return 0
    stride = offsets[1] - offsets[0] if len(offsets) > 1 else 0
    return stride if all(o == i * stride for i, o in enumerate(offsets)) else None


# -- the project folder -------------------------------------------------------------------

def _model_cpp(emitter: _Emitter) -> str:
    g = emitter.graph
    lines = ["// Generated by flowc. Step functions and the plan of one model; see model.h.",
             "#include <cmath>", "#include <cstdint>", "#include <cstring>", "#include <limits>", "",
             *emitter.includes(), "", "namespace {", "", *emitter.prelude]
    for i, (_, body) in enumerate(emitter.steps):
        lines.append(f"int s{i}(flowc_step_ctx* ctx) {{")
        lines += ["  " + line for line in emitter.step_prologue(body)]
        lines.append("  (void)ctx;")
        lines += ["  " + line for line in body]
        lines += ["  return 0;", "}", ""]
    n = len(emitter.steps)
    comm = bool(emitter.comm_steps)
    lines += [f"const int32_t kRegisters[{max(n, 1)}] = {{{', '.join(str(i) for i in range(max(n, 1)))}}};",
              f"const int32_t kSlots[{max(n - 1, 1)}] = {{{', '.join([str(ARENA_SLOTS)] * max(n - 1, 1))}}};",
              "// A chain: each step reads the register its predecessor writes, so each request runs",
              "// in the static order the memory plan assumed, and requests pipeline behind it."]
    if comm:
        lines.append(f"// Collectives run on stream {emitter.comm_stream}, in this order on every rank, request after "
                     "request.")
    lines.append(f"const flowc_plan_step kSteps[{n}] = {{")
    for i, (name, _) in enumerate(emitter.steps):
        reads = f"kRegisters + {i - 1}, 1" if i > 0 else "nullptr, 0"
        writes = f"kRegisters + {i}, 1" if i < n - 1 else "nullptr, 0"
        stream = emitter.stream_of(i)
        lines.append(f"    {{{name}, s{i}, {stream}, {reads}, {writes}}},")
    lines.append("};")

    def infos(values, label):
        kind = label.lower()
        out = []
        for j, v in enumerate(values):
            shape = tuple(v.type.shape)
            out.append(f"const int64_t k{label}Shape{j}[{max(len(shape), 1)}] = {{{', '.join(map(str, shape)) or '0'}}};")
            growth = emitter.per_batch.get((kind, j))
            if growth is not None:
                out.append(f"const int64_t k{label}PerBatch{j}[{len(growth)}] = {{{', '.join(map(str, growth))}}};")
        out.append(f"const flowc_tensor_info k{label}[{max(len(values), 1)}] = {{")
        for j, v in enumerate(values):
            growth = f"k{label}PerBatch{j}" if (kind, j) in emitter.per_batch else "nullptr"
            out.append(f"    {{{c_string(v.name)}, \"{v.type.dtype.name}\", {len(v.type.shape)}, k{label}Shape{j}, "
                       f"{v.type.nbytes()}ULL, {growth}}},")
        if not values:
            out.append("    {nullptr, nullptr, 0, nullptr, 0, nullptr},")
        out.append("};")
        return out

    lines += infos(g.inputs, "Inputs") + infos(g.outputs, "Outputs")
    data = emitter.weights.bytes()
    if emitter.mesh:
        checksums = [_checksum(w.bytes()) for w in emitter.rank_weights]
        lines += ["", f"const int32_t kMeshShape[{len(emitter.mesh)}] = {{{', '.join(map(str, emitter.mesh))}}};",
                  "// flowc_weights_checksum of weights.r<rank>.bin, by rank",
                  f"const uint64_t kRankChecksums[{len(checksums)}] = {{{', '.join(f'{c}ULL' for c in checksums)}}};"]
    lines += ["", "flowc_model_desc describe() {", "  flowc_model_desc d{};",
              f"  d.name = {c_string(g.name)};",
              "  d.plan.steps = kSteps;", f"  d.plan.num_steps = {n};",
              "  d.plan.register_slots = kSlots;", f"  d.plan.num_registers = {n - 1};",
              f"  d.plan.num_streams = {emitter.num_streams()};",
              f"  d.plan.arena_bytes = {emitter.plan.peak_bytes}ULL;", f"  d.plan.arena_slots = {ARENA_SLOTS};"]
    if comm:
        lines.append(f"  d.plan.comm_stream = {emitter.comm_stream};")
    lines += ["  d.inputs = kInputs;", f"  d.num_inputs = {len(g.inputs)};",
              "  d.outputs = kOutputs;", f"  d.num_outputs = {len(g.outputs)};",
              f"  d.weights_bytes = {len(data)}ULL;", f"  d.weights_checksum = {_checksum(data)}ULL;",
              f"  d.default_threads = {emitter.threads};", f"  d.max_batch = {emitter.max_batch};",
              f"  d.device = {c_string(emitter.device)};"]
    if emitter.mesh:
        lines += [f"  d.mesh_rank = {len(emitter.mesh)};", "  d.mesh_shape = kMeshShape;",
                  "  d.rank_weights_checksums = kRankChecksums;"]
    lines += ["  return d;", "}", "", "}  // namespace", "",
              'extern "C" const flowc_model_desc* flowc_model_describe(void) {',
              "  static const flowc_model_desc model = describe();", "  return &model;", "}", ""]
    return "\n".join(lines)


def _checksum(data: bytes) -> int:
    """flowc_weights_checksum (runtime/api/model.cc) of `data`."""
    padded = data + b"\0" * (-len(data) % 8)
    words = np.frombuffer(padded, dtype="<u8")
    weights = np.arange(len(words), dtype=np.uint64) * np.uint64(2) + np.uint64(1)
    with np.errstate(over="ignore"):
        return int(np.sum(words * weights, dtype=np.uint64))


def _model_h(emitter: _Emitter) -> str:
    graph = emitter.graph

    def sig(values, kind):
        lines = []
        for j, v in enumerate(values):
            growth = emitter.per_batch.get((kind, j))
            grows = f"  (grows by {list(growth)} per batch row)" if growth else ""
            lines.append(f"//   {j}: {v.type.dtype.name}{list(v.type.shape)}  {c_comment(v.name)}{grows}")
        return "\n".join(lines) or "//   (none)"
    bound = (f"// Compiled for any batch from 1 to {emitter.max_batch}: shapes below are at {emitter.max_batch}; "
             "run other batches with flowc_model_run_batch.\n" if emitter.max_batch else "")
    if emitter.mesh:
        ranks = math.prod(emitter.mesh)
        where = (f"one process per rank (mpirun -np {ranks})" if emitter.device == "cpu" else
                 f"one process per GPU (mpirun -np {ranks}, or torchrun: NCCL)")
        bound += (f"// Compiled for a mesh of {'x'.join(map(str, emitter.mesh))} devices: every rank runs this plan on "
                  f"its own weights.r<rank>.bin,\n// all in one process (FLOWC_COMM=local) or {where}.\n")
    return ("// Generated by flowc: the C API of this model (declared in runtime/include/flowc/model.h).\n" + bound +
            "// Inputs, in the order flowc_model_run takes them:\n" + sig(graph.inputs, "inputs") +
            "\n// Outputs:\n" + sig(graph.outputs, "outputs") +
            '\n#ifndef FLOWC_GENERATED_MODEL_H_\n#define FLOWC_GENERATED_MODEL_H_\n\n#include "flowc/model.h"\n\n'
            "#endif  // FLOWC_GENERATED_MODEL_H_\n")


def _write_project(out_dir: Path, emitter: _Emitter, threads: int | None) -> list[Path]:
    where = f"output folder {quote_name(str(out_dir))}"
    try:
        if out_dir.exists() and not out_dir.is_dir():
            raise CompileError(f"{where} exists and is not a folder")
        out_dir.mkdir(parents=True, exist_ok=True)
        files = emitter.project_files()
        written = []
        for name, text in files.items():
            _write_if_changed(out_dir / name, text.encode())
            written.append(out_dir / name)
        weights = {"weights.bin": emitter.weights} if not emitter.mesh else \
            {mesh.weights_file(r): w for r, w in enumerate(emitter.rank_weights)}
        for stale in out_dir.glob("weights*.bin"):
            if stale.name not in weights and WEIGHTS_FILE.fullmatch(stale.name):
                stale.unlink()
        for name, data in weights.items():
            _write_if_changed(out_dir / name, data.bytes())
            written.append(out_dir / name)
        written += _copy_runtime(out_dir / "runtime", emitter.runtime_parts)
    except OSError as e:
        raise CompileError(f"{where} cannot be written: {e.strerror or e}") from None
    return written


def _write_if_changed(path: Path, data: bytes) -> None:
    """Unchanged files keep their time stamps, so CMake rebuilds only what changed."""
    if path.is_file() and path.stat().st_size == len(data) and path.read_bytes() == data:
        return
    path.write_bytes(data)


def _copy_runtime(dest: Path, parts: tuple[str, ...]) -> list[Path]:
    out = []
    for part in parts:
        src = RUNTIME / part
        files = [src] if src.is_file() else sorted(p for p in src.rglob("*") if p.is_file())
        for f in files:
            if f.suffix not in RUNTIME_SUFFIXES:
                continue
            target = dest / f.relative_to(RUNTIME)
            target.parent.mkdir(parents=True, exist_ok=True)
            _write_if_changed(target, f.read_bytes())
            out.append(target)
    return out

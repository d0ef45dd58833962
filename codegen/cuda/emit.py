"""The CUDA emitter: an optimised graph with static shapes in, a plain CMake project out.

The plan is the CPU target's (same lowering, order and shape logic: this emitter subclasses
codegen/cpu's), run on one GPU:

- every tensor lives in the device arena, the graph inputs and outputs too; the weights are
  uploaded once, at load;
- step 0, a copy actor on stream 1, stages the caller's inputs in pinned memory and uploads them;
  the compute steps on stream 0 enqueue kernels (the library's, runtime/kernels/cuda, or ones
  generated here for elementwise chains and epilogues); the last step, a copy actor on stream 2,
  downloads the outputs. CUDA events order the streams, so the upload of request n + 1 and the
  download of request n - 1 overlap the compute of request n;
- a kernel that meets bad input (an index out of range) raises the request slot's error flag with
  its step's number; the download step reads it and fails that request with the step's message.

On a device mesh every rank runs the same project (codegen/cpu/mesh.py) on its own GPU. Its
collective steps (codegen/cpu/collective.py) run on the plan's comm stream (3), which the
CudaDevice maps onto stream 0's CUDA stream: a collective is then ordered after the kernels that
made its input and before those that read its result without events, while the engine still
fires the comm stream's steps in plan order on every rank. The communicator (NCCL, or the local
and MPI ones staged through host memory) enqueues on that stream.
"""
from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np

from flowc.errors import CompileError, describe_node, quote_name
from flowc.ir.graph import Graph, Node, Value
from flowc.ir.infer import known_array
from flowc.ir.ops.fused import parse_program
from flowc.ir.passes.fuse import IDENTITY_EPILOGUE
from flowc.ir.passes.parallel import PhysicalGraph
from flowc.ir.passes.precision import Half
from flowc.schedules.cuda import ELEMENTWISE

from .. import memory
from ..cpu import elementwise as ew
from ..cpu.elementwise import Body, Source, broadcast_strides
from ..cpu.collective import scratch_lives
from ..cpu import batch
from ..cpu.emit import (OUT_OF_RANGE, TEMPLATES as CPU_TEMPLATES, EmitResult, _affine, _batch_offsets, _emit_batched,
                        _emit_mesh, _Emitter, _lower, _model_cpp, _model_h, _write_project, c_string)
from ..schedule import Schedule, TensorLife, schedule

TEMPLATES = Path(__file__).resolve().parent / "templates"
UPLOAD_STREAM, DOWNLOAD_STREAM, COMM_STREAM = 1, 2, 3
STAGING_ALIGNMENT = 256          # each input's and output's place in the pinned staging buffers
ARCHS = {"sm_80": "80", "sm_86": "86", "sm_89": "89", "sm_90": "90", "sm_90a": "90a"}
# The parts of the runtime a CUDA project compiles, beside the CPU ones (whose headers it reads).
RUNTIME_PARTS = ("CMakeLists.txt", "cmake", "include", "base", "device", "comm", "core", "api", "kernels/cpu",
                 "kernels/cuda")


def arch_list(arch) -> list[str]:
    """CMAKE_CUDA_ARCHITECTURES entries for `arch`: "sm_90", "sm_80,sm_90" or a list of them."""
    names = [n.strip() for n in (arch.split(",") if isinstance(arch, str) else list(arch))]
    out = []
    for name in filter(None, names):
        if name not in ARCHS:
            raise CompileError(f"arch {name!r} is not a GPU architecture target cuda builds for; use one or more of "
                               f"{', '.join(ARCHS)} (comma-separated)")
        out.append(ARCHS[name])
    if not out:
        raise CompileError("arch is empty; use sm_80 or sm_90 (or several, comma-separated)")
    return out


# The library's float kernels that also come in f16 and bf16 (runtime/kernels/cuda/kernels.h).
HALF_KERNELS = {f"flowc_cuda_{name}_{dt}" for dt in ("f16", "bf16") for name in (
    "gemm", "conv2d", "conv2d_workspace", "maxpool2d", "avgpool2d", "global_avgpool", "softmax", "log_softmax",
    "softmax_strided", "log_softmax_strided", "layer_norm", "group_norm", "reduce_trailing", "reduce_middle",
    "attention")}
# How target cuda runs ops in f16/bf16 (ir/passes/precision.py narrows them): products,
# convolutions and norms START half (their kernels read half operands, accumulate in f32); the
# generated elementwise kernels, the pools, softmax, the reductions and data movement (which
# copies elements of any size) FOLLOW operands that are half already. Shape reads only the type.
HALF_START = {"MatMul", "Conv", "LayerNormalization", "GroupNormalization", "InstanceNormalization"}
HALF_FOLLOW = {"AveragePool", "GlobalAveragePool", "Softmax", "LogSoftmax", "ReduceSum", "ReduceMean", "ReduceMax",
               "ReduceMin", "ReduceProd", "ReduceSumSquare", "ReduceL1", "ReduceL2", "ReduceLogSum",
               "ReduceLogSumExp", "Transpose", "Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity", "Expand",
               "Concat", "Split", "Slice", "Gather", "GatherElements", "GatherND", "Pad", "Shape"}


def half_code(node: Node) -> Half | None:
    """How target cuda runs `node` with its f32 tensors stored in f16 or bf16, if it does."""
    if node.op == "Conv" and node.inputs[0].type.rank not in (3, 4):
        return None
    if node.op in HALF_START:
        return Half.START
    if node.op == "MaxPool":
        return Half.FOLLOW if len(node.outputs) == 1 else None   # the indices output: an f32 kernel only
    if node.op in HALF_FOLLOW or (node.opdef.family == "elementwise" and node.op in ew.OPS):
        return Half.FOLLOW
    return None


def emit(graph: Graph, out_dir, *, arch="sm_90", max_batch: int | None = None,
         physical: PhysicalGraph | None = None, graphs: bool = True) -> EmitResult:
    """Write the CUDA project for `graph` (optimised, static shapes) into `out_dir`, built for
    the GPU architectures `arch` (see arch_list). Tensors the graph holds in f16 or bf16
    (ir/passes/precision.py with half_code) are stored so and computed in f32. With `graphs`,
    one GPU's compute steps become one step that replays them as a CUDA graph
    (runtime/device/cuda/cuda_graph.h) wherever none of them waits for the host."""
    archs = arch_list(arch)
    ops_before = len(graph.nodes)
    if physical is not None:
        if max_batch is not None:
            raise CompileError(f"max_batch={max_batch} with a device mesh ({'x'.join(map(str, physical.mesh))}): "
                               "a parallel plan splits fixed shapes; compile it for one batch (input_shapes=)")
        # a mesh's steps are merged across ranks (codegen/cpu/mesh.py), and its collectives run on a
        # worker of their own: each compute step stays an actor
        emitter = _emit_mesh(physical, lambda g, s, p: _emit_graph(g, s, p, graphs=False), _plan_memory)
    elif max_batch is None:
        emitter = _emit_graph(_lower(graph, "cuda"), graphs=graphs)
    else:
        # one code for batches 1..max_batch (codegen/cpu/batch.py); a graph per batch is not kept
        emitter = _emit_batched(graph, max_batch, lambda g, s, p, bound: _emit_graph(g, s, p, graphs=False, bound=bound),
                                _plan_memory, "cuda")
    emitter.archs = archs
    out_dir = Path(out_dir)
    files = _write_project(out_dir, emitter, None)
    steps = len(emitter.steps) + len(emitter.graph_steps) - bool(emitter.graph_steps)
    return EmitResult(out_dir, tuple(files), ops_before, steps, emitter.plan, len(emitter.weights),
                      emitter.graph, max_batch=max_batch, mesh=emitter.mesh, cuda=True)


def _emit_graph(graph: Graph, sched: Schedule | None = None, planned: tuple[memory.MemoryPlan, dict] | None = None,
                graphs: bool = True, bound: Graph | None = None) -> "_CudaEmitter":
    """The steps of a lowered graph, on `sched`'s order and `planned`'s offsets (by default its
    own); with `graphs`, the compute steps folded into one that replays them as a CUDA graph.
    With `bound` (the graph at the batch bound) `graph` is one sample point of a batch range:
    the generated kernels take the batch, and the staging is laid out for the bound."""
    sched = sched or schedule(graph)
    emitter = _CudaEmitter(graph, *(planned or _plan_memory(graph, sched)))
    emitter.bound = bound
    for step in sched.steps:
        emitter.node(step.node)
    emitter.finish_outputs(graphs)
    return emitter


def _plan_memory(graph: Graph, sched: Schedule, inplace=None) -> tuple[memory.MemoryPlan, dict[tuple[str, int], str]]:
    """The arena of one request: the schedule's intermediates, and the graph's inputs and produced
    outputs, which live on the GPU too, and the scratch that collectives pack through (alive at
    their step only; named as codegen/cpu's plan names them). Step 0 uploads, steps 1..n compute,
    step n + 1 downloads. `inplace`: the in-place pairs to keep (default: all of the schedule's)."""
    n = len(sched.steps)
    step_of = {id(s.node): i + 1 for i, s in enumerate(sched.steps)}
    last_use: dict[int, int] = {}
    for s in sched.steps:
        for v in s.node.inputs:
            if v is not None:
                last_use[id(v)] = max(last_use.get(id(v), 0), step_of[id(s.node)])
    outputs = {id(v) for v in graph.outputs}
    tensors = [TensorLife(t.name, t.nbytes, t.first + 1, t.last + 1) for t in sched.tensors]
    for v in graph.inputs:
        tensors.append(TensorLife(v.name, v.type.nbytes(), 0, n + 1 if id(v) in outputs else last_use.get(id(v), 0)))
    seen = {id(v) for v in graph.inputs}
    for v in graph.outputs:
        if id(v) not in seen and v.producer is not None:
            seen.add(id(v))
            tensors.append(TensorLife(v.name, v.type.nbytes(), step_of[id(v.producer)], n + 1))
    lives, scratch = scratch_lives(((s.node, step_of[id(s.node)]) for s in sched.steps), {t.name for t in tensors})
    tensors += lives
    tensors.sort(key=lambda t: t.first)
    return memory.plan_memory(tensors, sched.inplace if inplace is None else inplace), scratch


class _CudaEmitter(_Emitter):
    device = "cuda"
    half = True                             # f16 and bf16 tensors (--precision), computed in float
    kernel_dtypes = ("f32", "f16", "bf16")

    def __init__(self, graph: Graph, plan: memory.MemoryPlan, scratch: dict[tuple[str, int], str] | None = None):
        super().__init__(graph, plan, scratch)
        self.kernels: dict[str, list[str]] = {}   # generated kernels and functors, by name, in order
        self.archs: list[str] = []
        self.errors: list[str] = []        # by step number - 1: the message of a raised error flag
        self._kernels = 0
        self._workspace = 0                # bytes the step being emitted carves from its workspace, rounded
        self._workspace_end = 0            # and where its last buffer ends
        self._dtype = "f32"                # the float type of the step's library kernels (_kernel_dtype)
        self._node: Node | None = None     # the node being emitted
        self.graph_steps: list[tuple[str, list[str]]] = []   # compute steps replayed as a CUDA graph
        self.host_waits: list[Node] = []   # nodes whose step waits for the stream (no CUDA graph then)
        self.bound: Graph | None = None    # the graph at the batch bound, when emitting for a range of batches
        self._bound_values: dict[str, Value] | None = None   # its tensors by name (_at_bound)

    # -- the project's shape ---------------------------------------------------------------
    runtime_parts = RUNTIME_PARTS

    def project_files(self) -> dict[str, str]:
        cmake = (TEMPLATES / "CMakeLists.txt").read_text().replace("@FLOWC_CUDA_ARCHITECTURES@", ";".join(self.archs))
        return {"model.cu": _model_cpp(self), "model.h": _model_h(self), "main.c": (CPU_TEMPLATES / "main.c").read_text(),
                "CMakeLists.txt": cmake}

    def includes(self) -> list[str]:
        return ['#include "flowc/model.h"'] + (['#include "flowc/comm.h"'] if self.mesh else []) + [
                '#include "runtime/kernels/cuda/kernels.h"',
                '#include "runtime/kernels/cuda/elementwise.cuh"', '#include "runtime/kernels/cuda/attention.cuh"',
                '#include "runtime/device/cuda/cuda_steps.h"',
                '#include "runtime/device/cuda/cuda_graph.h"']

    def step_prologue(self, body: list[str]) -> list[str]:
        return []

    comm_stream = COMM_STREAM

    def stream_of(self, step: int) -> int:
        if step == 0:
            return UPLOAD_STREAM
        if step == len(self.steps) - 1:
            return DOWNLOAD_STREAM
        return self.comm_stream if step in self.comm_steps else 0

    def num_streams(self) -> int:
        return COMM_STREAM + 1 if self.comm_steps else 3

    # -- where tensors live: all in the arena, constants in the device's weights -------------
    def ptr(self, v: Value, write: bool = False) -> str:
        t = self.ctype(v.type.dtype, f"tensor {quote_name(v.name)}")
        if v.is_const and not write:
            return (f"reinterpret_cast<const {t}*>(static_cast<const uint8_t*>(ctx->weights) + "
                    f"{self.weights.add(v)})")
        return f"reinterpret_cast<{'' if write else 'const '}{t}*>(ctx->arena + {self.plan.offsets[v.name]})"

    def call(self, fn: str, args: str, *, pool: bool = True) -> str:
        """The CUDA library's kernel of the CPU one `fn` (flowc_x or flowc::steps::x: flowc_cuda_x),
        with the step's flowc_cuda; a failure fails the step with the kernel's message. A float
        kernel (flowc_x_f32) comes in the float type _kernel_dtype found for the step."""
        cuda = "flowc_cuda_" + fn.rpartition("::")[2].removeprefix("flowc_")
        if cuda.endswith("_f32") and self._dtype != "f32":
            cuda = f"{cuda.removesuffix('_f32')}_{self._dtype}"
            if cuda not in HALF_KERNELS:
                raise CompileError(f"{describe_node(self._node)}: target cuda runs {self._node.op} on f32 only (its "
                                   f"kernel {fn} has no {self._dtype} variant); --precision keeps such ops in f32, "
                                   "a model's own half tensors must be cast")
        return f"if (const char* e = {cuda}({args}, &cu)) return flowc::cuda::fail(ctx, e);"

    def _kernel_dtype(self, node: Node, values) -> str:
        self._dtype = super()._kernel_dtype(node, values)
        return self._dtype

    def checked_call(self, fn: str, args: str, message: str, status: str = "", *, pool: bool = True) -> list[str]:
        # bad indices raise the slot's error flag (the download step reports them); the rest fail the call
        return [self.call(fn, args)]

    def scratch_buffer(self, ctype_: str, slot: int, count: int) -> str:
        # the step asks for the last buffer's end unrounded: one buffer's size stays affine in the
        # batch (merge_batches); the device rounds the block up itself
        offset = self._workspace
        nbytes = count * np.dtype(_NP[ctype_]).itemsize
        self._workspace, self._workspace_end = offset + memory.align(nbytes), offset + nbytes
        return f"reinterpret_cast<{ctype_}*>(static_cast<uint8_t*>(cu.workspace) + {offset})"

    def _launch_check(self, what: str) -> str:
        return f"if (int e = flowc::cuda::check(ctx, cudaGetLastError(), {c_string(what)})) return e;"

    # -- one node: its kernels behind the step's context ------------------------------------
    def node(self, node: Node) -> None:
        self._workspace, self._workspace_end, self._dtype, self._node = 0, 0, "f32", node
        super().node(node)
        name, lines = self.steps[-1]
        prologue = [f"flowc_cuda cu = flowc::cuda::context(ctx, {len(self.steps)});"]
        if self._workspace_end:
            prologue.append(f"if (int e = flowc::cuda::workspace(ctx, {self._workspace_end}, &cu)) return e;")
        self.steps[-1] = (name, lines[:1] + prologue + lines[1:])
        self.errors.append(f"{describe_node(node)}: {OUT_OF_RANGE}")

    def _copy(self, node: Node) -> list[str]:
        out = self._single_output(node)
        return [f"void* dst = {self.ptr(out, write=True)};", f"const void* src = {self.ptr(node.inputs[0])};",
                "if (dst != src) {",
                f"  if (int e = flowc::cuda::check(ctx, cudaMemcpyAsync(dst, src, {out.type.nbytes()}, "
                "cudaMemcpyDeviceToDevice, cu.stream), \"cudaMemcpyAsync\")) return e;", "}"]

    _op_Reshape = _op_Flatten = _op_Squeeze = _op_Unsqueeze = _op_Identity = _copy

    def _keep_first(self, src: str, dst: str, nbytes: int) -> list[str]:
        return [f"void* dst = {dst};",
                f"cudaError_t kept = coord == 0 ? cudaMemcpyAsync(dst, {src}, {nbytes}, cudaMemcpyDeviceToDevice, "
                f"cu.stream) : cudaMemsetAsync(dst, 0, {nbytes}, cu.stream);",
                "if (int e = flowc::cuda::check(ctx, kept, \"KeepFirst\")) return e;"]

    def _loop(self, out: Value, sources: list[Source], body: Body) -> list[str]:
        """A generated kernel applying `body` to every element of `out`, sources broadcast."""
        numel = out.type.numel()
        if numel == 0:
            return []
        shape = tuple(out.type.shape)
        t = self.ctype(out.type.dtype, f"tensor {quote_name(out.name)}")
        all_strides = [broadcast_strides(s.shape, shape) for s in sources] + [broadcast_strides(shape, shape)]
        dims, strides = ew._collapse(shape, all_strides)
        index = "int32_t" if ELEMENTWISE.fits_int32(self._at_bound(out).type.numel()) else "int64_t"
        name, threads = self._kernel_name(), ELEMENTWISE.threads
        params = self._batch_param(index) + [f"{t}* y"] + [f"const {s.ctype}* p{j}" for j, s in enumerate(sources)]
        code = [f"__global__ void __launch_bounds__({threads}) {name}({', '.join(params)}) {{",
                f"  for ({index} i = {index}(blockIdx.x) * {threads} + {index}(threadIdx.x); i < {numel}; "
                f"i += {index}(gridDim.x) * {threads}) {{"]
        if len(dims) > 1:
            code.append(f"    {index} q = i, c = 0;")
            code += [f"    {index} o{j} = 0;" for j in range(len(sources))]
            for d in reversed(range(len(dims))):
                code.append(f"    c = q % {dims[d]}; q /= {dims[d]};")
                code += [f"    o{j} += c * {strides[j][d]};" for j in range(len(sources)) if strides[j][d]]
            offsets = [f"o{j}" for j in range(len(sources))]
        else:
            offsets = ["i" if dims and strides[j][0] else "0" for j in range(len(sources))]
        code += [f"    const {_computed(s.ctype)} src{j} = {_load(s.ctype, f'p{j}[{offsets[j]}]')};"
                 for j, s in enumerate(sources)]
        code += ["    " + line for line in body.lines]
        code += [f"    y[i] = {body.result};", "  }", "}", ""]
        self._define(name, code)
        args = self._batch_arg() + [self.ptr(out, write=True)] + [s.pointer for s in sources]
        return [f"{name}<<<{self._blocks(numel)}, {threads}, 0, cu.stream>>>({', '.join(args)});",
                self._launch_check(name)]

    # -- a range of batches: what generated kernels need to follow the request's batch --------
    def _batch_param(self, index: str = "int64_t") -> list[str]:
        """The batch as a generated kernel's first parameter, of the kernel's index type: its
        sizes become expressions of it when the sample points merge (merge_batches)."""
        return [f"const {index} batch"] if self.bound is not None else []

    def _at_bound(self, v: Value) -> Value:
        """`v` as the graph at the batch bound has it (itself without a range of batches): what
        holds there holds at every smaller batch, not always at the larger sample points."""
        if self.bound is None:
            return v
        if self._bound_values is None:
            self._bound_values = {o.name: o for n in self.bound.nodes for o in n.outputs}
        return self._bound_values.get(v.name, v)

    def _batch_arg(self) -> list[str]:
        return ["ctx->batch"] if self.bound is not None else []

    def _blocks(self, n: int) -> str:
        """The grid of a grid-stride launch over n elements; computed at run time over a range of
        batches (min(ceil(n / threads), cap) is not affine in the batch, n is)."""
        if self.bound is None:
            return str(ELEMENTWISE.blocks(n))
        return f"flowc::cuda::grid_for({n}, {ELEMENTWISE.threads})"

    def merge_batches(self, variants: list["_CudaEmitter"], batches) -> None:
        """The steps as on the CPU, and the generated kernels and functors likewise, their sizes
        as expressions of their `batch` parameter or member."""
        super().merge_batches(variants, batches)
        self.kernels = dict(batch.merge_steps([list(e.kernels.items()) for e in [self, *variants]], batches, "batch"))

    def _kernel_name(self) -> str:
        self._kernels += 1
        return f"k{self._kernels}"

    def _op_Range(self, node):
        """The count is the output's static length; start and delta are read on the device."""
        out = self._single_output(node)
        t = self.ctype(out.type.dtype, f"tensor {quote_name(out.name)}")
        name, numel, threads = self._kernel_name(), out.type.numel(), ELEMENTWISE.threads
        params = ", ".join(self._batch_param() + [f"const {t}* start", f"const {t}* delta", f"{t}* y"])
        self._define(name, [f"__global__ void {name}({params}) {{",
                            f"  for (int64_t i = int64_t(blockIdx.x) * {threads} + threadIdx.x; i < {numel}; "
                            f"i += int64_t(gridDim.x) * {threads}) y[i] = {t}(*start + {t}(i) * *delta);", "}", ""])
        args = self._batch_arg() + [self.ptr(node.inputs[0]), self.ptr(node.inputs[2]), self.ptr(out, write=True)]
        return [f"{name}<<<{self._blocks(numel)}, {threads}, 0, cu.stream>>>({', '.join(args)});",
                self._launch_check(name)]

    # -- matrix products -------------------------------------------------------------------
    def _op_MatMul(self, node):
        out = self._single_output(node)
        a, b = node.inputs[0], node.inputs[1]
        self._kernel_dtype(node, [a, b, out])
        sa, sb = tuple(a.type.shape), tuple(b.type.shape)
        # the GEMM's N: B's columns (rows when read transposed); a vector B gives N = 1
        gemm_n = sb[0] if node.attrs.get("trans_b") else (sb[-1] if len(sb) > 1 else 1)
        bias, epilogue, extras = self._gemm_epilogue(node, out, gemm_n)
        A, B, Y = self.ptr(a), self.ptr(b), self.ptr(out, write=True)
        if node.attrs.get("trans_b"):     # B is a matrix [N, K], read transposed
            n, k = sb
            lines = [self._gemm(1, "false", "true", math.prod(sa[:-1]), n, k, A, k, 0, B, k, 0, Y, n, 0, bias,
                                epilogue)]
        else:
            sa2 = sa if len(sa) > 1 else (1,) + sa
            sb2 = sb if len(sb) > 1 else sb + (1,)
            m, k, n = sa2[-2], sa2[-1], sb2[-1]
            batch = tuple(np.broadcast_shapes(sa2[:-2], sb2[:-2]))
            nb = math.prod(batch)
            if math.prod(batch + (m, n)) != out.type.numel():
                raise self._unsupported(node)   # an epilogue that broadcasts past the product
            offs_a, offs_b = _batch_offsets(sa2[:-2], batch, m * k), _batch_offsets(sb2[:-2], batch, k * n)
            if not any(offs_b) and offs_a == [i * m * k for i in range(nb)]:
                lines = [self._gemm(1, "false", "false", nb * m, n, k, A, k, 0, B, n, 0, Y, n, 0, bias, epilogue)]
            elif (stride_a := _affine(offs_a)) is not None and (stride_b := _affine(offs_b)) is not None:
                lines = [self._gemm(nb, "false", "false", m, n, k, A, k, stride_a, B, n, stride_b, Y, n, m * n, bias,
                                    epilogue)]
            else:
                lines = [self._gemm(1, "false", "false", m, n, k, f"{A} + {oa}", k, 0, f"{B} + {ob}", n, 0,
                                    f"{Y} + {i * m * n}", n, 0, bias, epilogue)
                         for i, (oa, ob) in enumerate(zip(offs_a, offs_b))]
        if extras is not None:
            lines += self._epilogue(node, out, extras)
        return lines

    _op_FusedMatMul = _op_MatMul

    def _gemm(self, batch, ta, tb, m, n, k, a, lda, sa, b, ldb, sb, y, ldc, sc, bias, epilogue) -> str:
        return self.call("flowc_gemm_f32", f"{batch}, {ta}, {tb}, {m}, {n}, {k}, 1.0f, {a}, {lda}, {sa}, {b}, {ldb}, "
                                           f"{sb}, 0.0f, {y}, {ldc}, {sc}, {bias}, {epilogue}")

    def _gemm_epilogue(self, node: Node, out: Value, n: int) -> tuple[str, str, list[Value] | None]:
        """(bias pointer, cuBLASLt epilogue, extra inputs of a general epilogue or None): a bias
        of the GEMM's `n` columns along the output's last axis, then ReLU or tanh-GELU, go into
        the GEMM; anything else runs as its own elementwise kernel over the product."""
        none = ("nullptr", "FLOWC_CUDA_EPILOGUE_NONE")
        if node.op != "FusedMatMul" or node.attr("epilogue") == IDENTITY_EPILOGUE:
            return *none, None
        extras = list(node.inputs[2:])
        program = parse_program(node.attr("epilogue"), ("acc",) + tuple(f"x{i}" for i in range(len(extras))))
        first, rest = program[0], program[1:]
        if (len(extras) == 1 and tuple(out.type.shape)[-1:] == (n,) and first.op == "Add" and set(map(str, first.operands)) == {"acc", "x0"}
                and extras[0].type.dtype == out.type.dtype and tuple(extras[0].type.shape)[-1:] == (n,)
                and extras[0].type.numel() == n and len(rest) <= 1):
            if not rest:
                return self.ptr(extras[0]), "FLOWC_CUDA_EPILOGUE_NONE", None
            last = rest[0]
            if list(map(str, last.operands)) == [first.dst]:
                if last.op == "Relu":
                    return self.ptr(extras[0]), "FLOWC_CUDA_EPILOGUE_RELU", None
                if last.op == "Gelu" and dict(last.attrs).get("approximate") == "tanh":
                    return self.ptr(extras[0]), "FLOWC_CUDA_EPILOGUE_GELU_TANH", None
        return *none, extras

    def _op_FusedAttention(self, node):
        """flowc_cuda_attention_f32 (attention.cuh) with this node's epilogue (scale, mask) as its
        functor: the scores never leave the chip."""
        out = self._single_output(node)
        q, kt, v = node.inputs[:3]
        extras = list(node.inputs[3:])
        self._kernel_dtype(node, [q, kt, v, out])
        qs = tuple(q.type.shape)
        batch, (m, k), n, d = qs[:-2], qs[-2:], kt.type.shape[-1], v.type.shape[-1]
        scores = batch + (m, n)
        name = f"Epi{self._kernel_name()}"
        fields = [f"const {self.ctype(x.type.dtype, f'tensor {quote_name(x.name)}')}* p{j + 1};"
                  for j, x in enumerate(extras)] + [p + ";" for p in self._batch_param()]
        code = [f"struct {name} {{", *["  " + f for f in fields],
                "  __device__ float operator()(float src0, int64_t b, int64_t i, int64_t j) const {"]
        if node.attr("epilogue") == IDENTITY_EPILOGUE:
            code += ["    (void)b; (void)i; (void)j;", "    return src0;"]
        else:
            sources = {"acc": out.type.dtype, **{f"x{j}": x.type.dtype for j, x in enumerate(extras)}}
            body = ew.program_body(node, "epilogue", sources, out.type.dtype, self.half)
            strides = [broadcast_strides(tuple(x.type.shape), scores) for x in extras]
            code += ["    int64_t q = b, c = 0;", "    (void)q; (void)c; (void)i; (void)j;"]
            code += [f"    int64_t o{j + 1} = 0;" for j in range(len(extras))]
            for axis in reversed(range(len(batch))):
                code.append(f"    c = q % {batch[axis]}; q /= {batch[axis]};")
                code += [f"    o{j + 1} += c * {st[axis]};" for j, st in enumerate(strides) if st[axis]]
            for j, st in enumerate(strides):
                t = self.ctype(extras[j].type.dtype, f"tensor {quote_name(extras[j].name)}")
                load = _load(t, f"p{j + 1}[o{j + 1} + i * {st[-2]} + j * {st[-1]}]")
                code.append(f"    const {_computed(t)} src{j + 1} = {load};")
            code += ["    " + line for line in body.lines] + [f"    return {body.result};"]
        self._define(name, code + ["  }", "};", ""])
        init = ", ".join([self.ptr(x) for x in extras] + self._batch_arg())
        return [f"const {name} epi{{{init}}};",
                self.call("flowc_attention_f32", f"{math.prod(batch)}, {m}, {k}, {n}, {d}, {self.ptr(q)}, "
                                                 f"{self.ptr(kt)}, {self.ptr(v)}, {self.ptr(out, write=True)}, epi")]

    # -- convolution ------------------------------------------------------------------------
    def _op_Conv(self, node):
        lines = self._conv(node, self._conv_params(node), "conv2d")
        if node.op == "FusedConv":
            lines += self._epilogue(node, node.outputs[0], list(node.inputs[3:]))
        return lines

    _op_FusedConv = _op_Conv

    def _op_ConvTranspose(self, node):
        return self._conv(node, self._conv_transpose_params(node), "conv_transpose2d")

    def _conv(self, node: Node, params: str, kind: str) -> list[str]:
        """The parameter table, the workspace the kernel asks for, and the call."""
        out, x, w, bias = node.outputs[0], node.inputs[0], node.inputs[1], node.input(2)
        return [params,
                f"if (int e = flowc::cuda::workspace(ctx, flowc_cuda_{kind}_workspace_{self._dtype}(&p), &cu)) return e;",
                self.call(f"flowc_{kind}_f32", f"&p, {self.ptr(x)}, {self.ptr(w)}, "
                                               f"{self.ptr(bias) if bias is not None else 'nullptr'}, "
                                               f"{self.ptr(out, write=True)}")]

    def _pad_fill(self, node: Node, value: Value | None) -> list[str]:
        """The kernels take Pad's constant on the host: a literal when it is known at compile
        time, else read back from the device first (which waits for the stream: rare)."""
        if value is None:
            return super()._pad_fill(node, None)
        t = self.ctype(value.type.dtype, f"tensor {quote_name(value.name)}")
        known = known_array(value)
        if known is not None:
            fill = ew.literal(np.asarray(known).reshape(-1)[0], value.type.dtype)
            return [f"static const {t} fill_value = {fill};", "const void* fill = &fill_value;"]
        self.host_waits.append(node)
        return [f"{t} fill_value;",
                f"if (int e = flowc::cuda::check(ctx, cudaMemcpyAsync(&fill_value, {self.ptr(value)}, sizeof({t}), "
                "cudaMemcpyDeviceToHost, cu.stream), \"cudaMemcpyAsync (pad value)\")) return e;",
                "if (int e = flowc::cuda::check(ctx, cudaStreamSynchronize(cu.stream), \"cudaStreamSynchronize\")) "
                "return e;",
                "const void* fill = &fill_value;"]

    # -- the copy actors ---------------------------------------------------------------------
    def finish_outputs(self, graphs: bool = False) -> None:
        """The upload step (step 0, stream 1) and the download step (last, stream 2) around the
        compute steps, which wait for the upload and let the download wait for them. With
        `graphs`, and where no compute step waits for the host, the compute steps become
        functions that one step runs through flowc::cuda::run_graph."""
        check = "if (int e = flowc::cuda::check(ctx, {call}, \"{what}\")) return e;"
        if graphs and self.steps and not self.host_waits and not self.comm_steps:
            self.graph_steps = self.steps
            self.steps = [(c_string("compute steps as a CUDA graph"), [
                "// the compute steps, as one CUDA graph per arena slot (runtime/device/cuda/cuda_graph.h)",
                "flowc_cuda cu = flowc::cuda::context(ctx, 0);",
                f"if (int e = flowc::cuda::run_graph(ctx, kComputeSteps, {len(self.graph_steps)})) return e;"])]
        compute = len(self.steps)
        up = ["// upload the inputs through pinned memory",
              "cudaStream_t stream = static_cast<cudaStream_t>(ctx->stream);",
              "uint8_t* staging = static_cast<uint8_t*>(flowc::cuda::input_staging(ctx));", "(void)staging;"]
        laid_out = self.bound or self.graph   # the staging holds the bound's tensors, as model.cc lays it out
        offset = 0
        for j, (v, at_bound) in enumerate(zip(self.graph.inputs, laid_out.inputs)):
            nbytes = v.type.nbytes()
            if nbytes and v.name in self.plan.offsets:
                up += [f"std::memcpy(staging + {offset}, ctx->inputs[{j}], {nbytes});",
                       check.format(call=f"cudaMemcpyAsync(ctx->arena + {self.plan.offsets[v.name]}, staging + "
                                         f"{offset}, {nbytes}, cudaMemcpyHostToDevice, stream)",
                                    what="cudaMemcpyAsync (upload)")]
            offset += _staged(at_bound.type.nbytes())
        up.append(check.format(call="cudaEventRecord(flowc::cuda::event(ctx, 0), stream)", what="cudaEventRecord"))
        if not compute:
            up.append(check.format(call="cudaEventRecord(flowc::cuda::event(ctx, 1), stream)", what="cudaEventRecord"))
        else:
            first_name, first = self.steps[0]
            wait = check.format(call="cudaStreamWaitEvent(cu.stream, flowc::cuda::event(ctx, 0), 0)",
                                what="cudaStreamWaitEvent")
            self.steps[0] = (first_name, first[:2] + [wait] + first[2:])
            last_name, last = self.steps[-1]
            self.steps[-1] = (last_name, last + [check.format(
                call="cudaEventRecord(flowc::cuda::event(ctx, 1), cu.stream)", what="cudaEventRecord")])
        self.steps.insert(0, (c_string("upload inputs"), up))

        down = ["// download the outputs and the error flag through pinned memory",
                "cudaStream_t stream = static_cast<cudaStream_t>(ctx->stream);",
                "uint8_t* staging = static_cast<uint8_t*>(flowc::cuda::output_staging(ctx));",
                check.format(call="cudaStreamWaitEvent(stream, flowc::cuda::event(ctx, 1), 0)",
                             what="cudaStreamWaitEvent")]
        offset, copies = 0, []
        for j, (v, at_bound) in enumerate(zip(self.graph.outputs, laid_out.outputs)):
            nbytes = v.type.nbytes()
            if nbytes:
                down.append(check.format(call=f"cudaMemcpyAsync(staging + {offset}, {self.ptr(v)}, {nbytes}, "
                                              "cudaMemcpyDeviceToHost, stream)", what="cudaMemcpyAsync (download)"))
                copies.append(f"std::memcpy(ctx->outputs[{j}], staging + {offset}, {nbytes});")
            offset += _staged(at_bound.type.nbytes())
        down += [check.format(call=f"cudaMemcpyAsync(staging + {offset}, flowc::cuda::error_flag(ctx), sizeof(int), "
                                   "cudaMemcpyDeviceToHost, stream)", what="cudaMemcpyAsync (error flag)"),
                 check.format(call="cudaMemsetAsync(flowc::cuda::error_flag(ctx), 0, sizeof(int), stream)",
                              what="cudaMemsetAsync"),
                 check.format(call="cudaStreamSynchronize(stream)", what="the model's kernels"),
                 "int flag = 0;", f"std::memcpy(&flag, staging + {offset}, sizeof(int));",
                 f"if (flag > 0 && flag <= {len(self.errors)}) {{",
                 "  ctx->error = kStepErrors[flag - 1];", "  return FLOWC_STATUS_OUT_OF_RANGE;", "}",
                 *copies]
        self.add_step("download outputs", down)
        self.comm_steps = {i + 1 for i in self.comm_steps}   # behind the upload step now

    @property
    def prelude(self) -> list[str]:
        lines = [line for code in self.kernels.values() for line in code]
        lines += [f"const char* const kStepErrors[{max(len(self.errors), 1)}] = {{",
                  *[f"    {c_string(e)}," for e in self.errors or ["none"]], "};", ""]
        if self.graph_steps:
            for i, (_, body) in enumerate(self.graph_steps, 1):
                lines += [f"int c{i}(flowc_step_ctx* ctx) {{", *["  " + line for line in body], "  return 0;", "}", ""]
            lines += [f"const flowc::cuda::GraphStep kComputeSteps[{len(self.graph_steps)}] = {{",
                      *[f"    {{{name}, c{i}}}," for i, (name, _) in enumerate(self.graph_steps, 1)], "};", ""]
        return lines

    def _define(self, name: str, code: list[str]) -> None:
        self.kernels[name] = code

    def share_code(self, variants: list["_CudaEmitter"]) -> None:
        """Kernels are named by their place in the graph, the same on every rank's variant; one
        whose code differs on a variant (a rank's constant folded into it) is renamed there, in
        its code and in that variant's steps, and defined beside this one's. The steps that call
        it then differ too, so mesh.merge_steps switches on the rank for them."""
        for v, other in enumerate(variants, 1):
            renames = {name: f"{name}_r{v}" for name, code in other.kernels.items() if self.kernels.get(name) != code}
            if not renames:
                continue
            pattern = re.compile(r"\b(" + "|".join(map(re.escape, renames)) + r")\b")
            rename = lambda line: pattern.sub(lambda m: renames[m.group(1)], line)   # noqa: E731
            for name, new in renames.items():
                self.kernels[new] = [rename(line) for line in other.kernels[name]]
            other.steps = [(step, [rename(line) for line in body]) for step, body in other.steps]


_NP = {"float": np.float32, "double": np.float64, "int64_t": np.int64, "int32_t": np.int32, "__half": np.float16,
       "__nv_bfloat16": np.float16}   # (bf16's size is f16's)


def _computed(stored: str) -> str:
    """The C type a generated kernel computes a value stored as `stored` in."""
    return "float" if stored in ew.HALF_CTYPES.values() else stored


def _load(stored: str, element: str) -> str:
    return f"static_cast<float>({element})" if stored in ew.HALF_CTYPES.values() else element


def _staged(nbytes: int) -> int:
    return -(-nbytes // STAGING_ALIGNMENT) * STAGING_ALIGNMENT



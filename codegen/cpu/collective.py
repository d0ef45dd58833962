"""Target cpu's steps for the collective ops of a mesh model (ir/ops/collective.py).

A collective step calls runtime/include/flowc/comm.h on contiguous buffers in which block i
belongs to member i of the group. A split along any axis but the first is not such a buffer:
the step packs the operand into member blocks first (ReduceScatter, AllToAll's send) or
unpacks the result from them after (AllGather, AllToAll's receive), through scratch that the
memory plan holds at that step only (`scratch_bytes`). The steps that call the communicator
run on the plan's comm stream (`COMM_STREAM`), in plan order on every rank. LocalSlice and
KeepFirst move nothing between ranks: they are compute steps that read the rank's coordinate.
"""
from __future__ import annotations

import math

from flowc.errors import CompileError, describe_node
from flowc.ir.graph import Node, Value
from flowc.ir.ops.rules import axis_of

from ..schedule import TensorLife

COMM_STREAM = 1
# The element types a reduction sums (flowc_comm_dtype); the other collectives move bytes. Only
# target cuda stores f16 and bf16 (target cpu refuses them before any collective).
COMM_DTYPES = {"f32": "FLOWC_COMM_F32", "f64": "FLOWC_COMM_F64", "i32": "FLOWC_COMM_I32", "i64": "FLOWC_COMM_I64",
               "f16": "FLOWC_COMM_F16", "bf16": "FLOWC_COMM_BF16"}
RANK_LOCAL = frozenset({"LocalSlice", "KeepFirst"})


def is_collective(node: Node) -> bool:
    return node.opdef.family == "collective"


def on_comm_stream(node: Node) -> bool:
    """Whether `node` talks to other ranks (and so runs on the comm stream)."""
    return is_collective(node) and node.op not in RANK_LOCAL


def _around(shape, axis: int) -> tuple[int, int]:
    """(outer, rest): `shape` viewed as [outer, rest] just before `axis`."""
    return math.prod(shape[:axis]), math.prod(shape[axis:])


def scratch_bytes(node: Node) -> list[int]:
    """Sizes of the scratch buffers `node`'s step packs or unpacks through (none for most)."""
    if not on_comm_stream(node) or node.outputs[0].type.numel() == 0:
        return []
    x, out = node.inputs[0], node.outputs[0]
    xs, ys = tuple(x.type.shape), tuple(out.type.shape)
    if node.op == "AllGather":
        return [out.type.nbytes()] if _around(ys, axis_of(node, len(ys)))[0] > 1 else []
    if node.op == "ReduceScatter":
        return [x.type.nbytes()] if _around(xs, axis_of(node, len(xs)))[0] > 1 else []
    if node.op == "AllToAll":
        piece = _piece(node)
        send = _around(xs, axis_of(node, len(xs), "split_axis"))[0] > 1
        recv = _around(piece, axis_of(node, len(xs), "concat_axis"))[0] > 1
        return [x.type.nbytes()] * send + [out.type.nbytes()] * recv
    return []


def scratch_lives(steps, taken: set[str]) -> tuple[list[TensorLife], dict[tuple[str, int], str]]:
    """The scratch buffers of the collective steps among `steps` ((node, step number) pairs),
    alive at their step only, named apart from `taken` (which grows); and the plan's name for
    each: (output name, k) -> name."""
    lives, names = [], {}
    for node, at in steps:
        for k, nbytes in enumerate(scratch_bytes(node)):
            name = f"scratch{k}:{node.outputs[0].name}"
            while name in taken:
                name = "_" + name
            taken.add(name)
            names[node.outputs[0].name, k] = name
            lives.append(TensorLife(name, nbytes, at, at))
    return lives, names


def _piece(node: Node) -> tuple[int, ...]:
    """AllToAll: the shape of the block one member sends another."""
    xs = list(node.inputs[0].type.shape)
    split = axis_of(node, len(xs), "split_axis")
    xs[split] //= node.attr("size")
    return tuple(xs)


class CollectiveSteps:
    """The emitter's step bodies for collective ops (mixed into codegen/cpu/emit.py's _Emitter,
    whose `ptr`, `scratch` and `call` they use; the CUDA emitter's versions of those put the same
    steps on the GPU)."""

    def _comm(self, node: Node, call: str, args: str) -> str:
        return f"if (int rc = flowc_comm_{call}(ctx, {node.attr('mesh_axis')}, {args})) return rc;"

    def _comm_dtype(self, node: Node, v: Value) -> str:
        dt = COMM_DTYPES.get(v.type.dtype.name)
        if dt is None:
            raise CompileError(f"{describe_node(node)}: target {self.device} sums f32, f64, i32, i64, f16 and bf16 "
                               f"across devices; {v.type} is none of them")
        return dt

    def _coord(self, node: Node) -> list[str]:
        return ["int32_t coord = 0, size = 0;",
                f"if (int rc = flowc_comm_coord(ctx, {node.attr('mesh_axis')}, &coord, &size)) return rc;"]

    def _op_AllReduce(self, node):
        x, out = node.inputs[0], node.outputs[0]
        return [self._comm(node, "all_reduce", f"{self._comm_dtype(node, x)}, {self.ptr(x)}, "
                                               f"{self.ptr(out, write=True)}, {out.type.numel()}ULL")]

    def _op_AllGather(self, node):
        """Gathered into member blocks [n, outer, block], interleaved into [outer, n * block]."""
        x, out = node.inputs[0], node.outputs[0]
        ys = tuple(out.type.shape)
        outer, _ = _around(ys, axis_of(node, len(ys)))
        if outer <= 1:   # contiguous member blocks already (or nothing to move)
            return [self._comm(node, "all_gather", f"{self.ptr(x)}, {self.ptr(out, write=True)}, "
                                                   f"{x.type.nbytes()}ULL")]
        return [f"uint8_t* gathered = {self.scratch(node, 0)};",
                self._comm(node, "all_gather", f"{self.ptr(x)}, gathered, {x.type.nbytes()}ULL"),
                self.call("flowc::steps::unpack_blocks", f"{outer}, {node.attr('size')}, {x.type.nbytes() // outer}, "
                          f"gathered, {self.ptr(out, write=True)}", pool=False)]

    def _op_ReduceScatter(self, node):
        """[outer, n * block] packed into member blocks [n, outer, block] first."""
        x, out = node.inputs[0], node.outputs[0]
        xs = tuple(x.type.shape)
        outer, _ = _around(xs, axis_of(node, len(xs)))
        dt = self._comm_dtype(node, x)
        if outer <= 1:
            return [self._comm(node, "reduce_scatter", f"{dt}, {self.ptr(x)}, {self.ptr(out, write=True)}, "
                                                       f"{out.type.numel()}ULL")]
        return [f"uint8_t* packed = {self.scratch(node, 0)};",
                self.call("flowc::steps::pack_blocks", f"{outer}, {node.attr('size')}, {out.type.nbytes() // outer}, "
                          f"{self.ptr(x)}, packed", pool=False),
                self._comm(node, "reduce_scatter", f"{dt}, packed, {self.ptr(out, write=True)}, "
                                                   f"{out.type.numel()}ULL")]

    def _op_AllToAll(self, node):
        """Send blocks cut along split_axis (packed unless it leads), received blocks joined
        along concat_axis (unpacked unless it leads)."""
        x, out = node.inputs[0], node.outputs[0]
        xs, n = tuple(x.type.shape), node.attr("size")
        block = x.type.nbytes() // n
        send_outer, _ = _around(xs, axis_of(node, len(xs), "split_axis"))
        recv_outer, _ = _around(_piece(node), axis_of(node, len(xs), "concat_axis"))
        lines, slot = [], 0
        send, recv = self.ptr(x), self.ptr(out, write=True)
        if send_outer > 1:
            lines += [f"uint8_t* send = {self.scratch(node, slot)};",
                      self.call("flowc::steps::pack_blocks", f"{send_outer}, {n}, {block // send_outer}, {send}, send",
                                pool=False)]
            send, slot = "send", slot + 1
        if recv_outer > 1:
            lines.append(f"uint8_t* recv = {self.scratch(node, slot)};")
            lines.append(self._comm(node, "all_to_all", f"{send}, recv, {block}ULL"))
            lines.append(self.call("flowc::steps::unpack_blocks", f"{recv_outer}, {n}, {block // recv_outer}, recv, {recv}",
                                   pool=False))
        else:
            lines.append(self._comm(node, "all_to_all", f"{send}, {recv}, {block}ULL"))
        return lines

    def _op_LocalSlice(self, node):
        """Member `coord` keeps its piece along the axis."""
        x, out = node.inputs[0], node.outputs[0]
        xs, ys = tuple(x.type.shape), tuple(out.type.shape)
        d = axis_of(node, len(xs))
        return self._coord(node) + [self.call(
            "flowc::steps::copy_block", f"{x.type.dtype.np.itemsize}, {math.prod(xs[:d])}, {xs[d]}, coord * {ys[d]}, "
            f"{ys[d]}, {math.prod(xs[d + 1:])}, {self.ptr(x)}, {self.ptr(out, write=True)}", pool=False)]

    def _op_KeepFirst(self, node):
        """Member 0 keeps the tensor, the others hold zeros (so that the group sums to it)."""
        x, out = node.inputs[0], node.outputs[0]
        return self._coord(node) + self._keep_first(self.ptr(x), self.ptr(out, write=True), out.type.nbytes())

    def _keep_first(self, src: str, dst: str, nbytes: int) -> list[str]:
        """Member 0 copies `src` to `dst`, the others zero it (after _coord)."""
        return [f"void* dst = {dst};", f"if (coord == 0) std::memcpy(dst, {src}, {nbytes});",
                f"else std::memset(dst, 0, {nbytes});"]

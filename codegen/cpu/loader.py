"""Run a built CPU model from Python through the C API of model.h (ctypes).

ctypes releases the GIL during each call, so Python threads sharing one CpuModel run their
requests concurrently through the engine, as C callers do.
"""
from __future__ import annotations

import ctypes
import os
from pathlib import Path
from typing import Mapping

import numpy as np

from flowc.errors import CompileError, FlowcError, InputError, quote_name
from flowc.ir.graph import Graph, Value
from flowc.ir.interpreter import check_inputs
from flowc.ir.types import dtype, tensor_type


class _TensorInfo(ctypes.Structure):
    _fields_ = [("name", ctypes.c_char_p), ("dtype", ctypes.c_char_p), ("rank", ctypes.c_int32),
                ("shape", ctypes.POINTER(ctypes.c_int64)), ("nbytes", ctypes.c_uint64),
                ("per_batch", ctypes.POINTER(ctypes.c_int64))]


class _Options(ctypes.Structure):
    _fields_ = [("num_threads", ctypes.c_int32), ("comm", ctypes.c_int32), ("device", ctypes.c_int32)]


# flowc_comm_kind: which communicator a mesh model's ranks talk through (runtime/include/flowc/runtime.h)
COMM_KINDS = {None: 0, "auto": 0, "local": 1, "mpi": 2, "nccl": 3}


class RunError(FlowcError, RuntimeError):
    """The runtime reported a failure (e.g. an index out of range in a Gather)."""


def _bind(lib: ctypes.CDLL) -> None:
    status, vp, model_p = ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p
    sig = {
        "flowc_model_load": (status, [ctypes.c_char_p, ctypes.POINTER(_Options), ctypes.POINTER(vp)]),
        "flowc_model_free": (None, [model_p]),
        "flowc_model_query_input_count": (status, [model_p, ctypes.POINTER(ctypes.c_int32)]),
        "flowc_model_query_output_count": (status, [model_p, ctypes.POINTER(ctypes.c_int32)]),
        "flowc_model_query_input": (status, [model_p, ctypes.c_int32, ctypes.POINTER(_TensorInfo)]),
        "flowc_model_query_output": (status, [model_p, ctypes.c_int32, ctypes.POINTER(_TensorInfo)]),
        "flowc_model_query_name": (status, [model_p, ctypes.POINTER(ctypes.c_char_p)]),
        "flowc_model_query_max_batch": (status, [model_p, ctypes.POINTER(ctypes.c_int64)]),
        "flowc_model_run": (status, [model_p, ctypes.POINTER(vp), ctypes.POINTER(vp)]),
        "flowc_model_run_batch": (status, [model_p, ctypes.c_int64, ctypes.POINTER(vp), ctypes.POINTER(vp)]),
        "flowc_model_set_threads": (status, [model_p, ctypes.c_int32]),
        "flowc_model_query_threads": (status, [model_p, ctypes.POINTER(ctypes.c_int32)]),
        "flowc_model_query_ranks": (status, [model_p, ctypes.POINTER(ctypes.c_int32), ctypes.POINTER(ctypes.c_int32)]),
        "flowc_status_get_message": (ctypes.c_char_p, [status]),
        "flowc_status_free": (None, [status]),
    }
    for name, (res, args) in sig.items():
        if name == "flowc_model_query_ranks" and not hasattr(lib, name):
            continue
        fn = getattr(lib, name)
        fn.restype, fn.argtypes = res, args


class CpuModel:
    """A built CPU model, loaded: `run({name: array}) -> {name: array}`.

    A model compiled for a device mesh runs every rank: in this process (`comm="local"`), or
    this process's rank when started by `mpirun -np <ranks>` (`comm="mpi"`, where every process
    loads and runs alike and each gets the outputs); `comm=None` lets FLOWC_COMM or the launcher
    decide. `ranks` is the mesh's size (1 on one device), `rank` this process's rank under MPI
    (None when every rank runs here). A CUDA model (codegen/cuda) loads the same way, on GPU
    number `device`."""

    def __init__(self, library: Path, out_dir: Path, threads: int | None = None, names=None,
                 comm: str | None = None, device: int = 0):
        self.path = Path(out_dir)
        if comm not in COMM_KINDS:
            raise CompileError(f"comm={comm!r}: choose \"local\", \"mpi\", \"nccl\" (cuda) or None (FLOWC_COMM or the "
                               "launcher decides)")
        self._lib = ctypes.CDLL(str(library))
        _bind(self._lib)
        handle = ctypes.c_void_p()
        options = _Options(int(threads or 0), COMM_KINDS[comm], int(device))
        self._check(self._lib.flowc_model_load(os.fsencode(self.path), ctypes.byref(options), ctypes.byref(handle)),
                    CompileError, f"loading {self.path}")
        self._handle = handle
        ranks, rank = ctypes.c_int32(1), ctypes.c_int32(-1)
        if hasattr(self._lib, "flowc_model_query_ranks"):   # absent from projects emitted before meshes
            self._check(self._lib.flowc_model_query_ranks(self._handle, ctypes.byref(ranks), ctypes.byref(rank)))
        self.ranks = ranks.value
        self.rank = rank.value if rank.value >= 0 else None
        max_batch = ctypes.c_int64()
        self._check(self._lib.flowc_model_query_max_batch(self._handle, ctypes.byref(max_batch)))
        self.max_batch = max_batch.value or None   # the batch bound; None: static shapes
        self._growth: dict[tuple[str, int], tuple[int, ...]] = {}   # ("input", i) -> dims' growth per row
        self.inputs = self._infos("input")
        self.outputs = self._infos("output")
        if names is not None:
            self.inputs, self.outputs = self._renamed(self.inputs, names[0]), self._renamed(self.outputs, names[1])
        name = ctypes.c_char_p()
        self._check(self._lib.flowc_model_query_name(self._handle, ctypes.byref(name)))
        self.name = name.value.decode("utf-8", "surrogateescape")
        # check_inputs reads only the inputs' names and types
        self._signature = Graph(self.name)
        self._signature.inputs = [Value(n, tensor_type(dt, shape)) for n, dt, shape in self.inputs]

    def _check(self, status, error=RunError, what: str = "") -> None:
        if status:
            message = self._lib.flowc_status_get_message(status).decode("utf-8", "replace")
            self._lib.flowc_status_free(status)
            raise error(f"{what}: {message}" if what else message)

    def _infos(self, kind: str) -> list[tuple[str, str, tuple[int, ...]]]:
        count = ctypes.c_int32()
        self._check(getattr(self._lib, f"flowc_model_query_{kind}_count")(self._handle, ctypes.byref(count)))
        out = []
        for i in range(count.value):
            info = _TensorInfo()
            self._check(getattr(self._lib, f"flowc_model_query_{kind}")(self._handle, i, ctypes.byref(info)))
            out.append((info.name.decode("utf-8", "surrogatepass"), info.dtype.decode(),
                        tuple(info.shape[d] for d in range(info.rank))))
            if info.per_batch:
                self._growth[kind, i] = tuple(info.per_batch[d] for d in range(info.rank))
        return out

    def _renamed(self, infos, names):
        """`infos` under the graph's own names, each of which the C name must begin (C strings
        end at a NUL byte, which a model's names may hold)."""
        names = list(names)
        if len(names) != len(infos) or any(not n.encode("utf-8", "surrogatepass").startswith(
                c.encode("utf-8", "surrogatepass")) for n, (c, _, _) in zip(names, infos)):
            raise CompileError(f"{self.path}: the compiled model's inputs and outputs are not the artifact's; "
                               "compile the model again")
        return [(n, dt, shape) for n, (_, dt, shape) in zip(names, infos)]

    def _shape(self, kind: str, index: int, shape: tuple[int, ...], batch: int | None) -> tuple[int, ...]:
        """`shape` (at the bound) at `batch` rows."""
        growth = self._growth.get((kind, index))
        if batch is None or growth is None:
            return shape
        return tuple(d - g * (self.max_batch - batch) for d, g in zip(shape, growth))

    def _batch(self, feeds: Mapping[str, np.ndarray]) -> int:
        """The batch the inputs hold: read off the first input whose shape grows with it."""
        for i, (name, _, shape) in enumerate(self.inputs):
            growth = self._growth.get(("input", i))
            got = np.shape(feeds[name]) if name in feeds else None
            if growth is None or got is None or len(got) != len(shape):
                continue   # check_inputs names what is missing or of the wrong rank
            axis = next(d for d, g in enumerate(growth) if g)
            rows, rest = divmod(shape[axis] - got[axis], growth[axis])
            batch = self.max_batch - rows
            if rest or not 1 <= batch <= self.max_batch:
                low, step = shape[axis] - growth[axis] * (self.max_batch - 1), growth[axis]
                steps = f" in steps of {step}" if step != 1 else ""
                raise InputError(f"input {quote_name(name)} has shape {list(got)}: dim {axis} must be "
                                 f"{low}..{shape[axis]}{steps}, batch 1..{self.max_batch} (the bound the model "
                                 "was compiled for)")
            return batch
        return self.max_batch

    @property
    def input_names(self) -> list[str]:
        return [n for n, _, _ in self.inputs]

    @property
    def output_names(self) -> list[str]:
        return [n for n, _, _ in self.outputs]

    @property
    def threads(self) -> int:
        count = ctypes.c_int32()
        self._check(self._lib.flowc_model_query_threads(self._handle, ctypes.byref(count)))
        return count.value

    def set_threads(self, threads: int) -> None:
        self._check(self._lib.flowc_model_set_threads(self._handle, int(threads)))

    def run(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The outputs by name; raises flowc.InputError when `inputs` do not fit the model."""
        feeds = dict(inputs) if isinstance(inputs, Mapping) else inputs
        batch = self._batch(feeds) if self.max_batch and isinstance(feeds, Mapping) else None
        signature = self._signature
        if batch is not None and batch != self.max_batch:
            signature = Graph(self.name)
            signature.inputs = [Value(n, tensor_type(dt, self._shape("input", i, shape, batch)))
                                for i, (n, dt, shape) in enumerate(self.inputs)]
        arrays = check_inputs(signature, feeds)
        ins = [np.ascontiguousarray(arrays[n]) for n in self.input_names]
        outs = [np.empty(self._shape("output", j, shape, batch), dtype(dt).np)
                for j, (_, dt, shape) in enumerate(self.outputs)]
        in_ptrs = (ctypes.c_void_p * max(len(ins), 1))(*[a.ctypes.data for a in ins])
        out_ptrs = (ctypes.c_void_p * max(len(outs), 1))(*[a.ctypes.data for a in outs])
        if batch is None:
            self._check(self._lib.flowc_model_run(self._handle, in_ptrs, out_ptrs))
        else:
            self._check(self._lib.flowc_model_run_batch(self._handle, batch, in_ptrs, out_ptrs))
        result = {}
        for (name, _, _), a in zip(self.outputs, outs):
            result.setdefault(name, a)
        return result

    def close(self) -> None:
        if getattr(self, "_handle", None):
            self._lib.flowc_model_free(self._handle)
            self._handle = None

    def __del__(self):
        self.close()

    def __repr__(self) -> str:
        return f"<flowc CpuModel {str(self.path)!r} inputs={self.input_names} outputs={self.output_names}>"

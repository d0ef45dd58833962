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

from flowc.errors import CompileError, FlowcError
from flowc.ir.graph import Graph, Value
from flowc.ir.interpreter import check_inputs
from flowc.ir.types import dtype, tensor_type


class _TensorInfo(ctypes.Structure):
    _fields_ = [("name", ctypes.c_char_p), ("dtype", ctypes.c_char_p), ("rank", ctypes.c_int32),
                ("shape", ctypes.POINTER(ctypes.c_int64)), ("nbytes", ctypes.c_uint64)]


class _Options(ctypes.Structure):
    _fields_ = [("num_threads", ctypes.c_int32)]


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
        "flowc_model_run": (status, [model_p, ctypes.POINTER(vp), ctypes.POINTER(vp)]),
        "flowc_model_set_threads": (status, [model_p, ctypes.c_int32]),
        "flowc_model_query_threads": (status, [model_p, ctypes.POINTER(ctypes.c_int32)]),
        "flowc_status_get_message": (ctypes.c_char_p, [status]),
        "flowc_status_free": (None, [status]),
    }
    for name, (res, args) in sig.items():
        fn = getattr(lib, name)
        fn.restype, fn.argtypes = res, args


class CpuModel:
    """A built CPU model, loaded: `run({name: array}) -> {name: array}`."""

    def __init__(self, library: Path, out_dir: Path, threads: int | None = None):
        self.path = Path(out_dir)
        self._lib = ctypes.CDLL(str(library))
        _bind(self._lib)
        handle = ctypes.c_void_p()
        options = _Options(int(threads or 0))
        self._check(self._lib.flowc_model_load(os.fsencode(self.path), ctypes.byref(options), ctypes.byref(handle)),
                    CompileError, f"loading {self.path}")
        self._handle = handle
        self.inputs = self._infos("input")
        self.outputs = self._infos("output")
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
        return out

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
        arrays = check_inputs(self._signature, dict(inputs) if isinstance(inputs, Mapping) else inputs)
        ins = [np.ascontiguousarray(arrays[n]) for n in self.input_names]
        outs = [np.empty(shape, dtype(dt).np) for _, dt, shape in self.outputs]
        in_ptrs = (ctypes.c_void_p * max(len(ins), 1))(*[a.ctypes.data for a in ins])
        out_ptrs = (ctypes.c_void_p * max(len(outs), 1))(*[a.ctypes.data for a in outs])
        self._check(self._lib.flowc_model_run(self._handle, in_ptrs, out_ptrs))
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

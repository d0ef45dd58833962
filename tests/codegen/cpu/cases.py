"""Many single-op cases in one graph, compiled once for target cpu and checked against the numpy
reference (`flowc.ir.run`): a C++ build costs a second or two, so each test builds one graph
whose outputs are its cases, named for the case (which failures print)."""
from __future__ import annotations

import numpy as np
import pytest

import flowc
from flowc.codegen import cpu
from flowc.errors import CompileError
from flowc.frontend.builder import GraphBuilder

# (rtol, atol) per float dtype; integer and bool results must match exactly
TOLERANCE = {"float32": (1e-5, 1e-5), "float64": (1e-12, 1e-12)}
# on the GPU: other summation orders (cuBLASLt's split-K, tree reductions) and device math
CUDA_TOLERANCE = {"float32": (1e-4, 1e-5), "float64": (1e-12, 1e-12)}
NUMPY = {"f32": np.float32, "f64": np.float64, "i64": np.int64, "i32": np.int32, "u8": np.uint8}


class Cases:
    """One graph of many cases over random inputs, compiled once for `target` (cpu; the CUDA
    tests run the same cases with target cuda)."""

    target = "cpu"
    run = True        # False: compile and build only (target cuda where there is no GPU)

    def __init__(self, name: str, seed: int = 0):
        self.b = GraphBuilder(name)
        self.op = self.b.op
        self.feeds: dict[str, np.ndarray] = {}
        self.rng = np.random.default_rng(seed)

    def input(self, shape, dtype="f32", *, data=None, scale=1.0, low=-100, high=100):
        """A graph input holding `data`, or random normals times `scale` (floats) or integers in
        [low, high)."""
        if data is None:
            if NUMPY[dtype]().dtype.kind == "f":
                data = self.rng.standard_normal(shape) * scale
            else:
                data = self.rng.integers(low, high, size=shape)
        name = f"x{len(self.feeds)}"
        self.feeds[name] = np.asarray(data).astype(NUMPY[dtype])
        return self.b.input(name, dtype, list(shape))

    def ties(self, shape):
        """f32 input with many equal values: small integers."""
        return self.input(shape, data=self.rng.integers(-2, 3, size=shape))

    def positive(self, shape):
        return self.input(shape, data=np.abs(self.rng.standard_normal(shape)) + 0.1)

    def weight(self, shape, scale=0.5, shift=0.0):
        return self.b.const((self.rng.standard_normal(shape) * scale + shift).astype(np.float32))

    def __setitem__(self, case: str, t):
        self.b.output(t, name=case)

    def check(self, out_dir):
        graph = self.b.build()
        artifact = flowc.compile(graph, target=self.target, out_dir=out_dir)
        if not self.run:
            return
        model = flowc.load(artifact.path)
        got, want = model.run(self.feeds), flowc.ir.run(graph, self.feeds)
        assert sorted(got) == sorted(want)
        for case, w in want.items():
            g = got[case]
            assert (g.dtype, g.shape) == (w.dtype, w.shape), case
            if w.dtype.name in TOLERANCE:
                rtol, atol = (CUDA_TOLERANCE if self.target == "cuda" else TOLERANCE)[w.dtype.name]
                np.testing.assert_allclose(g, w, rtol=rtol, atol=atol, err_msg=case)
            else:
                np.testing.assert_array_equal(g, w, err_msg=case)


def ints(*values):
    return np.array(values, np.int64)


def floats(*values):
    return np.array(values, np.float32)


def refusal(build, tmp_path) -> str:
    """The CompileError target cpu gives for the graph whose output `build(builder)` makes."""
    b = GraphBuilder("g")
    b.output(build(b), name="y")
    with pytest.raises(CompileError) as e:
        cpu.emit(b.build(), tmp_path / "m")
    return str(e.value)

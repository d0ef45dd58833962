"""The official ONNX backend node tests, run through flowc's reference target.

Recent onnx wheels ship these cases as code (`onnx.backend.test.case.node`);
their models and data are written once, with onnx's own writer as its
`cmd_tools.generate_data` does, into a cache folder (`$FLOWC_CACHE` or
`.cache/` at the repo root).

    python tests/frontend/onnx_node_suite.py [--ops Conv,Relu] [--cnn-transformer] [-v]
"""
from __future__ import annotations

import argparse
import collections
import os
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

import flowc
from flowc import ir
from flowc.frontend.onnx import load
from flowc.ir import run

# The ops that torch.onnx.export emits for MLPs, CNNs (ResNet, MobileNet) and
# transformers (BERT, GPT-2, ViT), and the shape arithmetic around them.
CNN_TRANSFORMER_OPS = {
    "Add", "Sub", "Mul", "Div", "Pow", "Sqrt", "Reciprocal", "Neg", "Abs", "Exp", "Log", "Erf", "Tanh",
    "Sigmoid", "Relu", "LeakyRelu", "Clip", "HardSwish", "HardSigmoid", "Gelu", "Softplus", "Mish", "Elu",
    "Max", "Min", "Equal", "Less", "Greater", "Where", "Not", "And", "Or",
    "MatMul", "Gemm", "Conv", "ConvTranspose", "BatchNormalization", "InstanceNormalization",
    "LayerNormalization", "GroupNormalization", "MaxPool", "AveragePool", "GlobalAveragePool",
    "GlobalMaxPool", "Pad", "Resize", "Dropout", "Softmax", "LogSoftmax",
    "ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL2", "ArgMax", "ArgMin",
    "Reshape", "Transpose", "Flatten", "Squeeze", "Unsqueeze", "Concat", "Split", "Slice", "Gather",
    "GatherElements", "Expand", "Tile", "Range", "Trilu", "Shape", "Size", "ConstantOfShape", "Cast",
    "CastLike", "Identity", "CumSum", "TopK", "ScatterND", "Einsum",
}


def cache_dir() -> Path:
    root = os.environ.get("FLOWC_CACHE") or str(Path(__file__).resolve().parents[2] / ".cache")
    return Path(root) / f"onnx-node-tests-{onnx.__version__}"


def ensure_data() -> Path:
    """Write the node test cases once; returns the folder holding one folder per case."""
    out = cache_dir()
    if (out / "COMPLETE").exists():
        return out
    from onnx.backend.test.case import node as node_cases
    out.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cases = node_cases.collect_testcases(None)
    for case in cases:
        values = list(case.model.graph.input) + list(case.model.graph.output)
        if case.kind != "node" or not all(v.type.HasField("tensor_type") for v in values):
            continue   # sequences, maps and optionals: not tensors, outside flowc's IR
        folder = out / case.name
        folder.mkdir(exist_ok=True)
        (folder / "model.onnx").write_bytes(case.model.SerializeToString())
        for k, (inputs, outputs) in enumerate(case.data_sets):
            data = folder / f"test_data_set_{k}"
            data.mkdir(exist_ok=True)
            for prefix, arrays, infos in (("input", inputs, case.model.graph.input),
                                          ("output", outputs, case.model.graph.output)):
                for j, a in enumerate(arrays):
                    t = a if isinstance(a, onnx.TensorProto) else numpy_helper.from_array(np.asarray(a), infos[j].name)
                    (data / f"{prefix}_{j}.pb").write_bytes(t.SerializeToString())
    (out / "COMPLETE").write_text(onnx.__version__)
    return out


@dataclass
class Outcome:
    case: str
    ops: tuple[str, ...]
    status: str        # pass | mismatch | unsupported (a clean CompileError) | crash
    detail: str = ""


def _read_tensor(path: Path) -> np.ndarray:
    t = onnx.TensorProto()
    t.ParseFromString(path.read_bytes())
    return numpy_helper.to_array(t)


def case_ops(folder: Path) -> tuple[str, ...]:
    m = onnx.load(str(folder / "model.onnx"), load_external_data=False)
    return tuple(sorted({n.op_type for n in m.graph.node} - {"Constant"}) or ["Constant"])


TOLERANCES = {  # (rtol, atol) per dtype kind
    "f8": (1e-7, 1e-12), "f4": (1e-3, 1e-5), "f2": (1e-2, 1e-3), "bfloat16": (2e-2, 1e-2),
}


# storage-only floats (float8, float4) come from casts, which round exactly: compared by value, NaN equal
STORAGE_FLOATS = {d.np for d in ir.DTYPES.values() if d.storage_only and d.kind == "float"}


def _close(got: np.ndarray, want: np.ndarray) -> str:
    if got.shape != want.shape:
        return f"shape {got.shape} != expected {want.shape}"
    if want.dtype in STORAGE_FLOATS:
        if got.dtype != want.dtype:
            return f"dtype {got.dtype} != expected {want.dtype}"
        g, w = got.astype(np.float32), want.astype(np.float32)
        ok = (g == w) | (np.isnan(g) & np.isnan(w))
        if not ok.all():
            i = np.argmax(~ok.reshape(-1))
            return f"{(~ok).sum()} of {ok.size} differ, e.g. {g.reshape(-1)[i]} vs {w.reshape(-1)[i]}"
        return ""
    if want.dtype.kind in "fc" or want.dtype.name == "bfloat16":
        if got.dtype != want.dtype:
            return f"dtype {got.dtype} != expected {want.dtype}"
        key = "bfloat16" if want.dtype.name == "bfloat16" else f"f{want.dtype.itemsize}"
        rtol, atol = TOLERANCES.get(key, (1e-3, 1e-5))
        g, w = got.astype(np.float64), want.astype(np.float64)
        ok = np.isclose(g, w, rtol=rtol, atol=atol, equal_nan=True)
        if not ok.all():
            i = np.argmax(~ok.reshape(-1))
            return f"{(~ok).sum()} of {ok.size} differ, e.g. {g.reshape(-1)[i]} vs {w.reshape(-1)[i]}"
        return ""
    if got.dtype != want.dtype:
        return f"dtype {got.dtype} != expected {want.dtype}"
    if not np.array_equal(got, want):
        return "values differ"
    return ""


def run_case(folder: Path) -> Outcome:
    ops = case_ops(folder)
    try:
        graph = load(str(folder / "model.onnx"))
        for data in sorted(folder.glob("test_data_set_*")):
            feeds = {v.name: _read_tensor(data / f"input_{j}.pb") for j, v in enumerate(_onnx_inputs(folder))
                     if (data / f"input_{j}.pb").exists()}
            got = run(graph, feeds)
            for j, v in enumerate(graph.outputs):
                problem = _close(got[v.name], _read_tensor(data / f"output_{j}.pb"))
                if problem:
                    return Outcome(folder.name, ops, "mismatch", f"output {v.name}: {problem}")
    except flowc.CompileError as e:
        return Outcome(folder.name, ops, "unsupported", str(e).splitlines()[0][:300])
    except Exception as e:  # a crash is a flowc bug: report it, never hide it
        return Outcome(folder.name, ops, "crash", f"{type(e).__name__}: {e}"[:300])
    return Outcome(folder.name, ops, "pass")


def _onnx_inputs(folder: Path):
    m = onnx.load(str(folder / "model.onnx"), load_external_data=False)
    inits = {t.name for t in m.graph.initializer}
    return [i for i in m.graph.input if i.name not in inits]


def run_suite(only_ops: set[str] | None = None, restrict: set[str] | None = None) -> list[Outcome]:
    """Every case; `only_ops`: cases using one of them; `restrict`: cases whose ops all lie in it."""
    root = ensure_data()
    outcomes = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        ops = set(case_ops(folder))
        if only_ops is not None and not ops & only_ops:
            continue
        if restrict is not None and not ops <= restrict:
            continue
        outcomes.append(run_case(folder))
    return outcomes


def summary(outcomes: list[Outcome]) -> str:
    per_op = collections.defaultdict(collections.Counter)
    for o in outcomes:
        for op in o.ops:
            per_op[op][o.status] += 1
    lines = [f"{'op':24} {'pass':>5} {'total':>6}  mismatch unsupported crash"]
    for op in sorted(per_op):
        c = per_op[op]
        lines.append(f"{op:24} {c['pass']:5d} {sum(c.values()):6d}  {c['mismatch']:8d} {c['unsupported']:11d} "
                     f"{c['crash']:5d}")
    total = collections.Counter(o.status for o in outcomes)
    n = len(outcomes) or 1
    lines.append(f"TOTAL {total['pass']} / {len(outcomes)} pass ({100 * total['pass'] / n:.1f} %), "
                 f"{total['mismatch']} mismatch, {total['unsupported']} unsupported, {total['crash']} crash")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ops", help="comma-separated op types: only cases using them")
    ap.add_argument("--cnn-transformer", action="store_true", help="only cases whose ops CNNs/transformers use")
    ap.add_argument("-v", "--verbose", action="store_true", help="list every case that does not pass")
    args = ap.parse_args(argv)
    outcomes = run_suite(set(args.ops.split(",")) if args.ops else None,
                         CNN_TRANSFORMER_OPS if args.cnn_transformer else None)
    if args.verbose:
        for o in outcomes:
            if o.status != "pass":
                print(f"{o.status:11} {o.case}: {o.detail}")
    print(summary(outcomes))
    return 0


if __name__ == "__main__":
    sys.exit(main())

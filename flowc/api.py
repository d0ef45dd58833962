"""The public Python API: `compile` a model into an artifact folder, `load` it back and run it.

Every artifact folder holds, whatever the model calls its tensors:

    model.fir       the optimised graph as IR text (large constants by reference)
    artifact.json   format version, target, flowc version, input and output types

For target "reference", `weights.npz` holds the constants the text refers to. For
target "cpu", the folder is also a CMake project (codegen/cpu): model.cpp, model.h,
weights.bin, main.c and the runtime sources, built by flowc into build/.

Compiled for several devices (`devices=4`, `mesh="2x4"`), model.fir holds the physical
graph every rank runs (ir/passes/parallel), `plan.txt` the plan as `--explain` prints it,
and each rank has its own weights: weights.r<rank>.npz (reference) or .bin (cpu).
"""
from __future__ import annotations

import json
import logging
import os
import tempfile
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Mapping, NamedTuple, Sequence

import numpy as np

from . import ir
from .errors import CompileError, InputError, quote_name
from .ir.passes import optimize
from .ir.passes.precision import check_precision, lower_precision
from .ir.types import INT64_MAX, Dim, TensorType, is_symbol_name, substitute_dim

if TYPE_CHECKING:
    from .codegen.cpu import EmitResult
    from .ir.passes.parallel import Plan

FORMAT_VERSION = 1
GRAPH_FILE, WEIGHTS_FILE, MANIFEST_FILE, PLAN_FILE = "model.fir", "weights.npz", "artifact.json", "plan.txt"


def rank_weights_file(rank: int) -> str:
    return f"weights.r{rank}.npz"

# target -> whether this version can build it; the others are on the way
TARGETS = {"reference": True, "cpu": True, "cuda": True}

log = logging.getLogger("flowc")

# progress(stage, seconds, graph): "import", then each pass by name, then "write"
Progress = Callable[[str, float, "ir.Graph"], None]


class TensorInfo(NamedTuple):
    name: str
    dtype: str                      # the IR spelling: "f32", "i64", ...
    shape: tuple[Dim, ...] | None   # ints and symbols ("B"); None when the rank is unknown


@dataclass(frozen=True)
class Artifact:
    """A compiled model on disk, and the optimised graph it was written from.

    `emit` is what the emitter reports for target cpu (a codegen.cpu.EmitResult: ops before and
    after lowering, the memory plan, weight bytes); None for target reference. `plan` is the
    parallel plan (ir.passes.parallel.Plan) of a model compiled for several devices; `graph` is
    then the physical graph each rank runs."""
    path: Path
    graph: ir.Graph
    target: str
    emit: EmitResult | None = None
    plan: Plan | None = None


def compile(model, *, target: str = "cpu", devices: int = 1, out_dir: str | os.PathLike | None = None,
            input_shapes: Mapping[str, Sequence[int]] | None = None, max_batch: int | None = None,
            progress: Progress | None = None, mesh: str | Sequence[int] | None = None,
            sbp: Mapping[str, str] | None = None, memory_limit: int | str | None = None,
            links: str | Sequence[str] | None = None, device_profile: str | None = None,
            topology: str | os.PathLike | None = None, arch: str | Sequence[str] = "sm_90",
            precision: str = "fp32") -> Artifact:
    """Import `model` (a path to an .onnx file, an onnx.ModelProto or an ir.Graph, which is
    copied, never changed), pin `input_shapes`, optimise it and write an artifact to `out_dir`
    (a fresh temporary folder when None). `progress(stage, seconds, graph)` sees each stage.

    `target="cpu"` writes and builds a C++ project for static shapes: a model whose inputs lead
    with a symbolic batch takes either `input_shapes` (one batch) or `max_batch` (any batch from
    1 to it; memory is planned for the bound), on target cuda too. `target="reference"` runs the
    graph on numpy, any shape; `max_batch` bounds the batch it accepts there too.

    Several devices: `devices=N` (a 1-D mesh) or `mesh="2x4"`. flowc chooses how every op is
    spread (ir/passes/parallel): `sbp` pins how consumers see named tensors ({"x": "S(0)"}),
    `memory_limit` caps the bytes per device (an int or "8GiB"), `links` names built-in link
    profiles per mesh axis ("nvlink", "pcie", "infiniband", "shm"), `device_profile` the
    device's ("h100", "cpu"; default: the target's), and `topology` a JSON file describing
    the devices and links instead. Shapes must be static (`input_shapes`).

    `target="cuda"` writes a CUDA project for one NVIDIA GPU and builds it with nvcc for `arch`
    ("sm_90", "sm_80", or several: "sm_80,sm_90"); that needs the CUDA toolkit and cuBLAS (pip
    install "flowc[cuda]") but no GPU. Loading and running it needs a GPU and its driver.

    `precision="fp16"` or `"bf16"` (targets cuda and reference) stores tensors in that type
    from the products, convolutions and norms on, wherever target cuda has half code and the
    format holds the values, computing in f32 inside each kernel (ir/passes/precision.py);
    the model's inputs and outputs stay f32. On target reference numpy runs that graph, which
    shows the precision's accuracy without a GPU."""
    shape = _check_target(target, devices, mesh)
    check_precision(precision)
    if precision != "fp32" and target == "cpu":
        raise CompileError(f"precision {precision!r}: target cpu computes in fp32; fp16 and bf16 are for target cuda "
                           "(target reference runs the same graph on numpy)")
    if target == "cuda":
        from .codegen import cuda
        cuda.arch_list(arch)   # a bad arch fails before anything is written
    if out_dir is not None and not isinstance(out_dir, (str, os.PathLike)):
        raise CompileError(f"out_dir must be a path (str or os.PathLike), got {type(out_dir).__name__}")
    if input_shapes is not None and not isinstance(input_shapes, Mapping):
        raise CompileError("input_shapes must be a mapping of input name -> shape, e.g. {\"x\": [8, 784]}, "
                           f"got {type(input_shapes).__name__}")

    def report(stage: str, seconds: float, graph: ir.Graph) -> None:
        log.info("%s: %.2f s", stage, seconds)
        if progress is not None:
            progress(stage, seconds, graph)

    start = time.perf_counter()
    graph = import_model(model, input_shapes)
    for v in graph.constants:   # a graph read from text without its resources (viz can draw it)
        if v.const is None:
            raise CompileError(f"constant {quote_name(v.name)} has no data; give ir.parse the resources "
                               "that ir.graph_resources returned with the text")
    report("import", time.perf_counter() - start, graph)
    graph = optimize(graph, after=lambda p, g, seconds: report(p.name, seconds, g))
    if precision != "fp32":
        from .codegen.cuda import half_code
        start = time.perf_counter()
        graph = lower_precision(graph, precision, half_code)
        report(f"precision ({precision})", time.perf_counter() - start, graph)
    start = time.perf_counter()
    path = Path(out_dir) if out_dir is not None else Path(tempfile.mkdtemp(prefix="flowc-"))
    plan = physical = None
    if shape is not None:
        graph, plan, physical = _parallelize(graph, target, shape, sbp, memory_limit, links, device_profile,
                                             topology, max_batch, report)
        start = time.perf_counter()
    elif sbp or memory_limit is not None or links is not None or device_profile is not None or topology is not None:
        raise CompileError("sbp, memory_limit, links, device_profile and topology describe a plan over several devices; "
                           "give devices=N or mesh=\"AxB\" too")
    if max_batch is not None:
        from .codegen.cpu.batch import batch_symbol
        batch_symbol(graph, max_batch)   # before anything is written
    if target in ("cpu", "cuda"):
        from .codegen import cpu
        if max_batch is None:
            cpu.check_static(graph, target)
    _write_artifact(path, graph, target, max_batch, physical, plan)
    report("write", time.perf_counter() - start, graph)
    if target == "cpu":
        start = time.perf_counter()
        emitted = cpu.emit(graph, path, max_batch=max_batch, physical=physical)
        report("emit", time.perf_counter() - start, graph)
        start = time.perf_counter()
        cpu.build(path)
        report("build", time.perf_counter() - start, graph)
        return Artifact(path, graph, target, emitted, plan)
    if target == "cuda":
        start = time.perf_counter()
        emitted = cuda.emit(graph, path, arch=arch, max_batch=max_batch, physical=physical)
        report("emit", time.perf_counter() - start, graph)
        start = time.perf_counter()
        cuda.build(path)
        report("build", time.perf_counter() - start, graph)
        return Artifact(path, graph, target, emitted, plan)
    return Artifact(path, graph, target, None, plan)


def _parallelize(graph: ir.Graph, target: str, shape: tuple[int, ...], sbp, memory_limit, links, device_profile,
                 topology, max_batch, report):
    """The optimised graph's plan on the mesh and the physical graph every rank runs."""
    from .ir.passes import parallel
    if max_batch is not None:
        raise CompileError("max_batch with several devices is not supported: the plan splits fixed shapes; "
                           "pin the batch with input_shapes")
    start = time.perf_counter()
    plan = plan_parallel(graph, shape, target=target, sbp=sbp, memory_limit=memory_limit, links=links,
                         device_profile=device_profile, topology=topology)
    physical = parallel.build_physical(plan)
    log.info("parallel plan: %s", parallel.summary(plan))
    report("parallelize", time.perf_counter() - start, physical.graph)
    return physical.graph, plan, physical


def plan_parallel(graph: ir.Graph, shape: tuple[int, ...], *, target: str = "cpu", sbp=None, memory_limit=None,
                  links=None, device_profile=None, topology=None) -> Plan:
    """The optimised `graph`'s plan on a mesh of `shape`, the options as `compile` takes them."""
    from .ir.passes import parallel
    if sbp is not None and not isinstance(sbp, Mapping):
        raise CompileError(f"sbp must map tensor names to SBPs, e.g. {{\"x\": \"S(0)\"}}, got {type(sbp).__name__}")
    mesh = parallel.make_mesh(shape, target=target, links=links, device=device_profile, profile_file=topology)
    return parallel.search(graph, mesh, hints=sbp, memory_limit=parse_bytes(memory_limit))


def parse_bytes(value: int | str | None) -> int | None:
    """Bytes from an int or a string like "512MiB", "8GiB", "2GB"."""
    if value is None:
        return None
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value > 0:
        return int(value)
    units = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "kib": 2**10, "mib": 2**20, "gib": 2**30}
    if isinstance(value, str):
        text = value.strip().lower().replace(" ", "")
        number = text.rstrip("kmgib")
        unit = text[len(number):]
        try:
            amount = float(number)
        except ValueError:
            amount = -1
        if unit in units and amount > 0:
            return int(amount * units[unit])
    raise CompileError(f"memory limit {value!r}: give a positive number of bytes or a size like \"8GiB\"")


def _check_target(target: str, devices: int, mesh) -> tuple[int, ...] | None:
    """The mesh shape for several devices; None for one."""
    available = ", ".join(t for t, ready in TARGETS.items() if ready)
    if not isinstance(target, str) or target not in TARGETS:
        raise CompileError(f"unknown target {target!r}; targets: {', '.join(TARGETS)} (available now: {available})")
    if not TARGETS[target]:
        raise CompileError(f"target {target!r} is not available yet in flowc {_version()}; "
                           f"available targets: {available}")
    if isinstance(devices, bool) or not isinstance(devices, int) or devices < 1:
        raise CompileError(f"devices must be a positive int, got {devices!r}")
    if mesh is None:
        return None if devices == 1 else (devices,)
    from .ir.passes.parallel import parse_mesh
    shape = parse_mesh(mesh)
    if devices != 1 and devices != int(np.prod(shape)):
        raise CompileError(f"devices={devices} but mesh {'x'.join(map(str, shape))} has {int(np.prod(shape))} devices")
    return None if shape == (1,) else shape


def _version() -> str:
    from . import __version__
    return __version__


# -- import and shape pinning -------------------------------------------------------

def import_model(model, input_shapes: Mapping[str, Sequence[int]] | None = None) -> ir.Graph:
    """`model` as a graph of its own (a path, an onnx.ModelProto or an ir.Graph, verified and
    copied), with `input_shapes` pinned and every value typed."""
    if isinstance(model, ir.Graph):
        ir.verify(model, check_types=False)   # copy() needs every use defined before it
        graph = model.copy()
    else:
        from .frontend.onnx import load as load_onnx
        graph = load_onnx(model)
    if input_shapes:
        pin_input_shapes(graph, input_shapes)
        ir.infer_graph(graph)
    return graph


def pin_input_shapes(graph: ir.Graph, input_shapes: Mapping[str, Sequence[int]]) -> None:
    """Give the named inputs these concrete shapes; a symbolic dim bound here (B=8) is
    bound in every input that uses it."""
    inputs = {v.name: v for v in graph.inputs}
    binding: dict[str, int] = {}
    pinned: dict[str, tuple[int, ...]] = {}
    for name, shape in input_shapes.items():
        v = inputs.get(name)
        if v is None:
            raise CompileError(f"input_shapes names {quote_name(name)}, which is not an input; the model's "
                               "inputs are " + ", ".join(f"{quote_name(u.name)}: {u.type}" for u in graph.inputs))
        shape = _concrete_shape(name, shape)
        want = v.type.shape
        if want is not None and len(want) != len(shape):
            raise CompileError(f"input_shapes: input {quote_name(name)} has shape {_dims(want)} "
                               f"(rank {len(want)}), got {list(shape)} (rank {len(shape)})")
        for d, got in zip(want or (), shape):
            if isinstance(d, str) and is_symbol_name(d):
                bound = binding.setdefault(d, got)
                if bound != got:
                    raise CompileError(f"input_shapes: input {quote_name(name)} expects shape {_dims(want)} "
                                       f"with {d}={bound} (bound by an earlier input), got {list(shape)}")
        pinned[name] = shape
    for name, shape in pinned.items():   # fixed and product dims must agree once symbols are bound
        want = inputs[name].type.shape or ()
        for axis, (d, got) in enumerate(zip(want, shape)):
            d = substitute_dim(d, binding)
            if isinstance(d, int) and d != got:
                raise CompileError(f"input_shapes: input {quote_name(name)} expects shape {_dims(want)}, "
                                   f"got {list(shape)} (axis {axis} should be {d})")
    for v in graph.inputs:
        t: TensorType = v.type
        if v.name in pinned:
            v.type = t.with_shape(pinned[v.name])
        elif t.shape is not None:
            v.type = t.with_shape(substitute_dim(d, binding) for d in t.shape)


def _concrete_shape(name: str, shape) -> tuple[int, ...]:
    try:
        dims = tuple(shape)
    except TypeError:
        dims = None
    if dims is None or any(isinstance(d, bool) or not isinstance(d, (int, np.integer)) or d < 0 for d in dims):
        raise CompileError(f"input_shapes: input {quote_name(name)}: expected a list of non-negative ints, "
                           f"got {shape!r}")
    if any(d > INT64_MAX for d in dims):
        raise CompileError(f"input_shapes: input {quote_name(name)}: {list(dims)} has a dimension over 2**63-1")
    return tuple(int(d) for d in dims)


def _dims(shape) -> str:
    return "[" + ", ".join(str(d) for d in shape) + "]"


# -- the artifact folder --------------------------------------------------------------

def _tensor_infos(values) -> list[dict]:
    return [{"name": v.name, "dtype": v.type.dtype.name,
             "shape": None if v.type.shape is None else list(v.type.shape)} for v in values]


def _write_artifact(path: Path, graph: ir.Graph, target: str, max_batch: int | None, physical, plan) -> None:
    mesh = None if physical is None else list(physical.mesh)
    manifest = {
        "format": "flowc-artifact", "format_version": FORMAT_VERSION, "flowc_version": _version(),
        "target": target, "devices": 1 if mesh is None else int(np.prod(mesh)),
        "max_batch": max_batch, "graph": GRAPH_FILE, "weights": WEIGHTS_FILE,
        "inputs": _tensor_infos(graph.inputs), "outputs": _tensor_infos(graph.outputs),
    }
    if plan is not None:
        manifest["mesh"] = mesh
        manifest["plan"] = {"latency_s": plan.latency(), "compute_s": plan.compute_seconds(),
                            "comm_s": plan.comm_seconds(), "comm_bytes": plan.comm_bytes(),
                            "weight_bytes": plan.weight_bytes(), "activation_bytes": plan.activation_bytes()}
    where = f"output folder {quote_name(str(path))}"
    try:
        if path.exists() and not path.is_dir():
            raise CompileError(f"{where} exists and is not a folder")
        path.mkdir(parents=True, exist_ok=True)
        (path / GRAPH_FILE).write_text(ir.print_graph(graph), encoding="utf-8")
        if plan is not None:
            from .ir.passes.parallel import explain
            (path / PLAN_FILE).write_text(explain(plan), encoding="utf-8")
        if target == "reference" and physical is None:   # the cpu target keeps its weights in weights.bin
            save_npz(path / WEIGHTS_FILE, ir.graph_resources(graph))
        elif target == "reference":
            for rank in range(physical.ranks):
                data = physical.rank_constants(rank)
                save_npz(path / rank_weights_file(rank), {str(i): data[c.name] for i, c in enumerate(graph.constants)})
        (path / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    except (OSError, ValueError) as e:   # ValueError: a NUL in the path
        raise CompileError(f"{where} cannot be written: {_reason(e)}") from None


def save_npz(path: str | os.PathLike, arrays: Mapping[str, np.ndarray]) -> None:
    """An .npz of `arrays` keyed by name, whatever the names (np.savez takes them as keywords,
    so that `file` or `allow_pickle` would clash). ml_dtypes types (bf16), which npz cannot
    describe without pickle, are stored as raw unsigned ints: `load_npz` views them back."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED, allowZip64=True) as archive:
        for name, array in arrays.items():
            array = np.asarray(array)
            if array.dtype.kind == "V":
                array = array.view(f"u{array.dtype.itemsize}")
            with archive.open(f"{name}.npy", "w", force_zip64=True) as f:
                np.lib.format.write_array(f, array, allow_pickle=False)


def _reason(e: Exception) -> str:
    return e.strerror if isinstance(e, OSError) and e.strerror else str(e)


class Model:
    """A compiled model loaded back from its artifact folder, ready to run on numpy arrays."""

    def __init__(self, path: Path, graph: ir.Graph, target: str, max_batch: int | None = None,
                 mesh: tuple[int, ...] | None = None):
        self.path = path
        self.graph = graph
        self.target = target
        self.max_batch = max_batch   # the batch bound it was compiled with; None: none
        self.mesh = mesh             # the device mesh it was compiled for; None: one device
        self._compiled = None
        self._physical = None        # target reference on a mesh: the graph every rank runs
        names = ([v.name for v in graph.inputs], [v.name for v in graph.outputs])
        if target == "cpu":
            from .codegen import cpu
            self._compiled = cpu.load(path, names=names)
        elif target == "cuda":
            from .codegen import cuda
            self._compiled = cuda.load(path, names=names)

    @property
    def inputs(self) -> list[TensorInfo]:
        return [_info(v) for v in self.graph.inputs]

    @property
    def outputs(self) -> list[TensorInfo]:
        return [_info(v) for v in self.graph.outputs]

    @property
    def input_names(self) -> list[str]:
        return [v.name for v in self.graph.inputs]

    @property
    def output_names(self) -> list[str]:
        return [v.name for v in self.graph.outputs]

    def run(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The outputs by name; raises flowc.InputError when `inputs` do not fit the model."""
        feeds = dict(inputs) if isinstance(inputs, Mapping) else inputs
        if self._compiled is not None:
            return self._compiled.run(feeds)
        if self._physical is not None:
            from .ir.passes.parallel import simulate
            return simulate(self._physical, feeds)[0]
        if self.max_batch is not None and isinstance(feeds, Mapping):
            self._check_batch(feeds)
        return ir.run(self.graph, feeds)

    def _check_batch(self, feeds: Mapping) -> None:
        for v in self.graph.inputs:
            shape = v.type.shape
            got = np.shape(feeds[v.name]) if v.name in feeds else ()
            if shape and isinstance(shape[0], str) and len(got) == len(shape) and not 1 <= got[0] <= self.max_batch:
                raise InputError(f"input {quote_name(v.name)} has shape {list(got)}: batch {got[0]} is outside "
                                 f"1..{self.max_batch}, the bound the model was compiled for (max_batch)")

    def __repr__(self) -> str:
        sig = ", ".join(f"{v.name}: {v.type}" for v in self.graph.inputs)
        out = ", ".join(f"{v.name}: {v.type}" for v in self.graph.outputs)
        return f"<flowc.Model {str(self.path)!r} target={self.target} ({sig}) -> ({out})>"


def _info(v: ir.Value) -> TensorInfo:
    return TensorInfo(v.name, v.type.dtype.name, v.type.shape)


def load(path: str | os.PathLike) -> Model:
    """Load the artifact folder that `compile` wrote."""
    if not isinstance(path, (str, os.PathLike)):
        raise CompileError(f"flowc.load takes the path of an artifact folder, got {type(path).__name__}")
    path = Path(path)
    where = f"artifact {quote_name(str(path))}"
    manifest_path = path / MANIFEST_FILE
    if not manifest_path.is_file():
        what = ("does not exist" if not path.exists() else "is a file, not an artifact folder"
                if not path.is_dir() else "has no artifact.json")
        raise CompileError(f"{where} {what}; compile the model first (flowc compile MODEL -o {quote_name(str(path))})")
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise CompileError(f"{where}: artifact.json is not valid JSON ({e}); compile the model again") from None
    except OSError as e:
        raise CompileError(f"{where}: artifact.json cannot be read: {_reason(e)}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != "flowc-artifact":
        raise CompileError(f"{where}: artifact.json is not a flowc artifact manifest")
    version = manifest.get("format_version")
    if version != FORMAT_VERSION:
        raise CompileError(f"{where}: artifact format version {version!r}, this flowc ({_version()}) reads "
                           f"version {FORMAT_VERSION}; compile the model again")
    target = manifest.get("target")
    if not isinstance(target, str) or not TARGETS.get(target):
        raise CompileError(f"{where}: target {target!r} cannot be run by flowc {_version()}")
    mesh = manifest.get("mesh")
    if mesh is not None and (not isinstance(mesh, list) or not mesh or
                             any(isinstance(d, bool) or not isinstance(d, int) or d < 1 for d in mesh)):
        raise CompileError(f"{where}: artifact.json has mesh {mesh!r}; compile the model again")
    ranks = 1 if mesh is None else int(np.prod(mesh))
    rank_weights: list[dict[str, np.ndarray]] = []
    try:
        text = (path / GRAPH_FILE).read_text(encoding="utf-8")
        weights = None   # the cpu target's weights live in weights.bin, read by its runtime
        if target == "reference":
            files = [WEIGHTS_FILE] if mesh is None else [rank_weights_file(r) for r in range(ranks)]
            for name in files:
                with np.load(path / name, allow_pickle=False) as npz:
                    rank_weights.append({key: npz[key] for key in npz.files})
            weights = rank_weights[0]
    except (OSError, ValueError, UnicodeDecodeError, EOFError, zipfile.BadZipFile) as e:
        raise CompileError(f"{where}: cannot read its graph and weights: {e}") from None
    try:
        graph = ir.parse(text, weights)   # verified as it is read
    except CompileError as e:
        raise CompileError(f"{where}: {GRAPH_FILE}: {e}") from None
    for key in ("inputs", "outputs"):
        if manifest.get(key) != _tensor_infos(getattr(graph, key)):
            raise CompileError(f"{where}: the {key} in artifact.json do not match {GRAPH_FILE}; "
                               "compile the model again")
    max_batch = manifest.get("max_batch")
    if max_batch is not None and (isinstance(max_batch, bool) or not isinstance(max_batch, int) or max_batch < 1):
        raise CompileError(f"{where}: artifact.json has max_batch {max_batch!r}; compile the model again")
    model = Model(path, graph, target, max_batch, None if mesh is None else tuple(mesh))
    if mesh is not None and target == "reference":
        from .ir.passes.parallel import PhysicalGraph
        stored = []
        for data in rank_weights:
            try:
                stored.append({c.name: data[str(i)].view(c.type.dtype.np) for i, c in enumerate(graph.constants)})
            except KeyError as e:
                raise CompileError(f"{where}: a rank's weights lack constant {e}; compile the model again") from None
        model._physical = PhysicalGraph(graph, tuple(mesh), stored=stored)
    return model


__all__ = ["Artifact", "Model", "TensorInfo", "TARGETS", "compile", "import_model", "load", "pin_input_shapes",
           "save_npz"]

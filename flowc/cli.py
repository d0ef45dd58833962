"""The `flowc` command: compile, run, viz and inspect.

    flowc compile model.onnx --target reference -o build/model [--input-shape x=8,784] [--dump-ir DIR] [--report]
    flowc run build/model --input x=x.npy [-o out.npz]
    flowc viz model.onnx -o graph.svg [--after PASS|all]
    flowc inspect model.onnx

Errors flowc raises on purpose (and file errors) print one line, `flowc: error: ...`, and
exit with status 2; --debug shows the traceback and runs the verifier after every pass.
Progress goes to stderr: slow stages (every stage with --verbose), and a cpu build that has work
to do, one line as it starts and one per source compiled or library linked.
"""
from __future__ import annotations

import argparse
import collections
import contextlib
import os
import sys
import traceback
from pathlib import Path

import numpy as np

from . import __version__, api, ir
from .errors import CompileError, FlowcError, InputError, quote_name

SLOW_STAGE_SECONDS = 2.0   # stages slower than this are reported even without --verbose


# -- argument parsing ---------------------------------------------------------------------

def _parallel_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--devices", type=int, default=1, help="number of devices, a 1-D mesh (default: 1)")
    p.add_argument("--mesh", metavar="AxB", help="a device mesh of 1 or 2 axes, e.g. 2x4 (instead of --devices)")
    p.add_argument("--sbp", action="append", default=[], metavar="NAME=SBP",
                   help="how consumers see tensor NAME: S(axis), B or P, one per mesh axis as (S(0), B) (repeatable)")
    p.add_argument("--memory-limit", metavar="BYTES", help="bytes per device the plan must fit, e.g. 8GiB")
    p.add_argument("--links", metavar="LINK[,LINK]",
                   help="link profile per mesh axis: nvlink, pcie, infiniband, shm (default: by target)")
    p.add_argument("--device-profile", metavar="NAME", help="device profile the plan is priced on: h100, cpu "
                   "(default: by target)")
    p.add_argument("--topology", metavar="FILE.json", help="devices and links described in a file instead")


def _parallel_kwargs(args) -> dict:
    hints = {}
    for item in args.sbp:
        name, sep, sbp = item.rpartition("=")
        if not sep or not name:
            raise CompileError(f"--sbp {item!r}: expected NAME=SBP, e.g. x=S(0)")
        hints[name] = sbp
    return {"devices": args.devices, "mesh": args.mesh, "sbp": hints or None, "memory_limit": args.memory_limit,
            "links": args.links, "device_profile": args.device_profile, "topology": args.topology}


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="show tracebacks; verify the IR after every pass (FLOWC_DEBUG=1)")
    common.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                        help="print each stage and its time to stderr")
    shapes = argparse.ArgumentParser(add_help=False)
    shapes.add_argument("--input-shape", action="append", default=[], metavar="NAME=D0,D1,...",
                        help="pin an input's shape, binding its symbolic dims (repeatable)")

    parser = argparse.ArgumentParser(prog="flowc", parents=[common],
                                     description="flowc, an ahead-of-time compiler for neural networks.")
    parser.add_argument("--version", action="version", version=f"flowc {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = commands.add_parser("compile", parents=[common, shapes], help="compile a model into an artifact folder")
    p.add_argument("model", help="an .onnx file")
    p.add_argument("--target", default="cpu", help=f"one of {', '.join(api.TARGETS)} (default: cpu)")
    p.add_argument("--arch", default="sm_90", help="target cuda: the GPU architectures to build for, sm_80, sm_90 or "
                   "several comma-separated (default: sm_90)")
    p.add_argument("--precision", default="fp32", choices=["fp32", "fp16", "bf16"],
                   help="targets cuda and reference: store tensors in fp16 or bf16 where target cuda has half "
                        "kernels, computing in fp32 inside them (inputs and outputs stay fp32)")
    _parallel_options(p)
    p.add_argument("--explain", action="store_true",
                   help="print the parallel plan: each op's SBP signature, its cost and the runner-up, the boxing")
    p.add_argument("--max-batch", type=int, metavar="N",
                   help="a model with a symbolic batch runs any batch from 1 to N (memory planned for N)")
    p.add_argument("-o", "--output", required=True, metavar="DIR", help="the artifact folder to write")
    p.add_argument("--dump-ir", metavar="DIR", help="write the IR after import and after each pass to DIR")
    p.add_argument("--report", action="store_true", help="print a summary of what was compiled")
    p.set_defaults(handler=_compile)

    p = commands.add_parser("run", parents=[common], help="run a compiled model on .npy inputs")
    p.add_argument("artifact", metavar="DIR", help="a folder written by flowc compile")
    p.add_argument("--input", action="append", default=[], metavar="NAME=FILE.npy", help="an input (repeatable)")
    p.add_argument("-o", "--output", metavar="FILE.npz", help="save the outputs here instead of printing them")
    p.set_defaults(handler=_run)

    p = commands.add_parser("viz", parents=[common, shapes], help="draw a model's graph with Graphviz")
    p.add_argument("model", help="an .onnx file, or IR text (.fir)")
    p.add_argument("-o", "--output", required=True, metavar="FILE",
                   help="the picture: .svg, .png, .pdf or .dot")
    p.add_argument("--after", metavar="PASS", help="draw the graph after this pass (its first run), or after "
                   "each one with 'all' (FILE.00-import.svg, FILE.01-<pass>.svg, ...); default: as imported")
    _parallel_options(p)
    p.add_argument("--physical", action="store_true",
                   help="with --devices/--mesh: draw what each rank runs (local shapes, collectives) instead")
    p.set_defaults(handler=_viz)

    p = commands.add_parser("inspect", parents=[common], help="describe an ONNX model and what flowc supports of it")
    p.add_argument("model", help="an .onnx file")
    p.set_defaults(handler=_inspect)
    return parser


def _input_shapes(specs: list[str]) -> dict[str, list[int]]:
    shapes = {}
    for spec in specs:
        name, sep, dims = spec.rpartition("=")
        try:
            if not sep or not name:
                raise ValueError
            shapes[name] = [int(d) for d in dims.split(",")] if dims.strip() else []
        except ValueError:
            raise CompileError(f"--input-shape {spec!r}: expected NAME=D0,D1,... with integer dims, "
                               "e.g. x=1,3,224,224") from None
    return shapes


# -- stages and progress ----------------------------------------------------------------------

class _Progress:
    """Prints stages to stderr (all with --verbose, slow ones always); may dump the IR of each."""

    def __init__(self, verbose: bool, dump_dir: Path | None = None):
        self.verbose = verbose
        self.dump_dir = dump_dir
        self.stages: list[tuple[str, float]] = []

    def __call__(self, stage: str, seconds: float, graph: ir.Graph) -> None:
        if self.dump_dir is not None and stage != "write":
            self.dump_dir.mkdir(parents=True, exist_ok=True)
            (self.dump_dir / f"{len(self.stages):02d}-{stage}.fir").write_text(ir.print_graph(graph), encoding="utf-8")
        self.stages.append((stage, seconds))
        if self.verbose or seconds > SLOW_STAGE_SECONDS:
            print(f"flowc: {stage}: {seconds:.2f} s ({len(graph.nodes)} nodes)", file=sys.stderr, flush=True)


@contextlib.contextmanager
def _showing_builds():
    """Print the progress of the cpu builds started inside (flowc.codegen.cpu.build) to stderr."""
    from .codegen.cpu.build import progress_to
    with progress_to(_print_build_step):
        yield


def _print_build_step(percent: int | None, what: str) -> None:
    line = f"flowc: {what}..." if percent is None else f"flowc: build [{percent:3d}%] {what}"
    print(line, file=sys.stderr, flush=True)


# -- commands ------------------------------------------------------------------------------------

def _compile(args) -> None:
    progress = _Progress(args.verbose, Path(args.dump_ir) if args.dump_ir else None)
    with _showing_builds():
        artifact = api.compile(args.model, target=args.target, out_dir=args.output,
                               input_shapes=_input_shapes(args.input_shape), max_batch=args.max_batch,
                               progress=progress, **_parallel_kwargs(args),
                               precision=args.precision, **({"arch": args.arch} if args.target == "cuda" else {}))
    graph = artifact.graph
    where = "" if artifact.plan is None else f", mesh {artifact.plan.mesh}"
    print(f"flowc: wrote {artifact.path} (target {artifact.target}{where}, {len(graph.nodes)} ops)")
    if args.explain:
        if artifact.plan is None:
            print("flowc: --explain: one device, so there is no parallel plan to explain (give --devices or --mesh)")
        else:
            from .ir.passes.parallel import explain
            print(explain(artifact.plan), end="")
    if args.report:
        _print_report(artifact, progress.stages)


def _print_report(artifact, stages: list[tuple[str, float]]) -> None:
    graph = artifact.graph
    weights = sum(v.const.nbytes for v in graph.constants if v.const is not None)
    print("inputs:  " + ", ".join(f"{v.name}: {v.type}" for v in graph.inputs))
    print("outputs: " + ", ".join(f"{v.name}: {v.type}" for v in graph.outputs))
    print(f"constants: {len(graph.constants)} ({_bytes(weights)})")
    width = max([REPORT_WIDTH] + [len(name) for name, _ in stages])   # one name column for every table
    print("stages:")
    for name, seconds in stages:
        print(f"  {name:<{width}} {seconds * 1000:9.1f} ms")
    print(f"  {'total':<{width}} {sum(s for _, s in stages) * 1000:9.1f} ms")
    _histogram(f"ops ({len(graph.nodes)}):", [n.op for n in graph.nodes], width)
    if artifact.emit is not None:
        _print_cpu_report(artifact.emit, width)


REPORT_WIDTH = 24   # the least width of the report's name column


def _histogram(title: str, keys, width: int = REPORT_WIDTH, notes=None) -> None:
    print(title)
    for key, count in collections.Counter(keys).most_common():
        note = (notes or {}).get(key)
        print(f"  {key:<{width}} {count:9d}" + (f"  ({note})" if note else ""))


def _print_cpu_report(result, width: int = REPORT_WIDTH) -> None:
    """The cpu and cuda targets' sections: fusion, kernels, the arena against its bounds, weights."""
    lowered = result.lowered
    fused = sum(1 for n in lowered.nodes if n.op.startswith("Fused"))
    print(f"fusion: {result.ops_before} ops -> {len(lowered.nodes)} ops ({fused} fused), "
          f"{result.ops_after} kernel steps")
    absorbed: dict[str, collections.Counter] = {}   # fused op -> the ops its programs run
    for node in lowered.nodes:
        if node.op.startswith("Fused"):
            absorbed.setdefault(node.op, collections.Counter()).update(_program_ops(node))
    notes = {op: "absorbs " + ", ".join(f"{o} {c}" for o, c in ops.most_common())
             for op, ops in absorbed.items() if ops}
    _histogram(f"ops after fusion ({len(lowered.nodes)}):", [n.op for n in lowered.nodes], width, notes)
    kinds: dict[str, list[int]] = {}   # kind -> [count, with an epilogue]
    for node in lowered.nodes:
        counts = kinds.setdefault(_kernel_kind(node), [0, 0])
        counts[0] += 1
        counts[1] += node.op in ("FusedMatMul", "FusedConv")
    if result.ops_after > len(lowered.nodes):   # cpu: the copy of graph outputs no node writes; cuda: the copy actors
        kind = "upload, download" if result.cuda else "output copy"
        kinds.setdefault(kind, [0, 0])[0] += result.ops_after - len(lowered.nodes)
    print(f"kernels ({result.ops_after}):")
    for kind, (count, epilogues) in sorted(kinds.items(), key=lambda kv: -kv[1][0]):
        note = f"  ({epilogues} with epilogue)" if epilogues else ""
        print(f"  {kind:<{width}} {count:9d}{note}")
    plan = result.memory
    peak, bound, no_reuse = plan.peak_bytes, plan.lower_bound_bytes, plan.no_reuse_bytes
    digits = max(11, len(f"{max(peak, bound, no_reuse):,}"))
    at_bound = f", at the batch bound {result.max_batch}" if result.max_batch else ""
    print(f"arena ({len(plan.inplace)} in place, placed by {plan.ordering}{at_bound}):")
    print(f"  {'peak':<{width}} {peak:>{digits},} B {_bytes(peak):>10}")
    print(f"  {'live-set lower bound':<{width}} {bound:>{digits},} B {_bytes(bound):>10}"
          f"   peak/bound {_ratio(peak, bound)}")
    print(f"  {'no reuse':<{width}} {no_reuse:>{digits},} B {_bytes(no_reuse):>10}"
          f"   peak/no-reuse {_ratio(peak, no_reuse)}")
    print(f"weights: {result.weight_bytes:,} B ({_bytes(result.weight_bytes)}) in weights.bin")


def _program_ops(node) -> list[str]:
    """The ops of a fused node's program (FusedElementwise) or epilogue (FusedMatMul, FusedConv)."""
    from .ir.ops.fused import parse_program
    if node.op == "FusedElementwise":
        attr, sources = "program", [f"x{i}" for i in range(len(node.inputs))]
    else:
        own = 2 if node.op == "FusedMatMul" else 3
        attr, sources = "epilogue", ["acc"] + [f"x{i}" for i in range(len(node.inputs) - own)]
    program = node.attr(attr)
    return [inst.op for inst in parse_program(program, tuple(sources))] if program else []


def _ratio(a: int, b: int) -> str:
    return f"{a / b:.2f}" if b else "-"


# op -> the kernel the cpu target emits for it
_KERNELS = {"MatMul": "gemm", "FusedMatMul": "gemm", "FusedElementwise": "fused elementwise",
            "Softmax": "softmax", "LogSoftmax": "softmax", "LayerNormalization": "layer norm",
            "MaxPool": "pool", "AveragePool": "pool", "GlobalAveragePool": "pool",
            "ReduceMean": "reduce", "ReduceSum": "reduce", "Transpose": "transpose",
            "Gather": "gather", "GatherND": "gather", "Concat": "concat", "Split": "split",
            "Slice": "slice", "Expand": "broadcast", "Cast": "cast"}
_COPIES = {"Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity", "Dropout"}


def _kernel_kind(node) -> str:
    if node.op in ("Conv", "FusedConv"):
        w = node.inputs[1].type.shape
        group = node.attr("group") or 1
        if group > 1 and group == w[0] == node.inputs[0].type.shape[1]:
            return "depthwise conv"
        return "conv 1x1" if all(d == 1 for d in w[2:]) else "conv"
    if node.op in _COPIES:
        return "copy"
    if node.op in _KERNELS:
        return _KERNELS[node.op]
    return "elementwise" if node.opdef.family == "elementwise" else node.op


def _bytes(n: int) -> str:
    for unit in ("B", "KiB", "MiB"):
        if n < 1024:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.2f} GiB"


def _run(args) -> None:
    with _showing_builds():   # a cpu artifact whose sources changed is built again
        model = api.load(args.artifact)
    feeds = {}
    for spec in args.input:
        # input names may hold '=', file names too: match the model's own input names
        names = [n for n in model.input_names if spec.startswith(n + "=")]
        if not names:
            raise InputError(f"--input {spec!r}: expected NAME=FILE.npy with NAME one of "
                             + ", ".join(quote_name(n) for n in model.input_names))
        name = max(names, key=len)
        feeds[name] = _read_npy(name, spec[len(name) + 1:])
    outputs = model.run(feeds)
    if args.output:
        api.save_npz(args.output, outputs)
        print(f"flowc: wrote {len(outputs)} output(s) to {args.output}")
        return
    for name, array in outputs.items():
        print(f"{name}: {ir.tensor_type(array.dtype, array.shape)}  {_preview(array)}")


def _read_npy(name: str, path: str) -> np.ndarray:
    try:
        array = np.load(path, allow_pickle=False)
    except (ValueError, EOFError) as e:   # not an .npy (empty, truncated), or an object array
        raise InputError(f"input {quote_name(name)}: {path} is not a readable .npy file: {e}") from None
    if not isinstance(array, np.ndarray):
        array.close()
        raise InputError(f"input {quote_name(name)}: {path} is an .npz archive; give one .npy file per input")
    return array


def _preview(array: np.ndarray, count: int = 6) -> str:
    flat = array.reshape(-1)
    items = np.array2string(flat[:count], precision=4, separator=", ", max_line_width=10_000)
    return items[:-1] + ", ...]" if flat.size > count else items


def _load_for_viz(path: str, input_shapes) -> ir.Graph:
    if Path(path).suffix == ".fir":
        return api.import_model(ir.parse(_read_text(path)), input_shapes)
    return api.import_model(path, input_shapes)


def _read_text(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise CompileError(f"{quote_name(path)} is not UTF-8 text (byte {e.start}): IR text is UTF-8") from None


def _viz(args) -> None:
    from .ir import viz
    from .ir.passes import PIPELINE, run_passes

    out = Path(args.output)
    graph = _load_for_viz(args.model, _input_shapes(args.input_shape))
    after = args.after
    parallel = _parallel_kwargs(args)
    shape = api._check_target("reference", parallel["devices"], parallel["mesh"])
    if shape is not None:
        if after is not None:
            raise CompileError("--after draws single-device passes; a plan for --devices/--mesh is drawn after all of them")
        _viz_plan(graph, out, shape, parallel, args.physical)
        return
    if after is None:
        _say(f"wrote {viz.render(graph, out)}")
        return
    names = [p.name for p in PIPELINE]
    if after != "all" and after not in names:
        raise CompileError(f"--after {after!r}: no such pass in the pipeline; passes: {', '.join(names)}, or all")
    if after == "all":
        stem = out.with_suffix("")
        written = [viz.render(graph, f"{stem}.00-import{out.suffix}", title=f"{graph.name}: after import")]

        def draw(p, g, seconds):
            written.append(viz.render(g, f"{stem}.{len(written):02d}-{p.name}{out.suffix}",
                                      title=f"{g.name}: after {p.name}"))
        run_passes(graph, PIPELINE, after=draw)
        for path in written:
            _say(f"wrote {path}")
        return
    graph = run_passes(graph, PIPELINE[:names.index(after) + 1])
    _say(f"wrote {viz.render(graph, out, title=f'{graph.name}: after {after}')}")


def _viz_plan(graph: ir.Graph, out: Path, shape: tuple[int, ...], options: dict, physical: bool) -> None:
    """The optimised graph's plan on the mesh: the logical graph with SBP and boxing, or the physical one."""
    from .ir import viz
    from .ir.passes import optimize, parallel

    plan = api.plan_parallel(optimize(graph), shape, sbp=options["sbp"], memory_limit=options["memory_limit"],
                             links=options["links"], device_profile=options["device_profile"],
                             topology=options["topology"])
    mesh = plan.mesh
    if physical:
        drawn = parallel.build_physical(plan).graph
        title = f"{graph.name}: what each rank of mesh {mesh} runs"
    else:
        drawn = parallel.annotate(plan)
        title = f"{graph.name} on mesh {mesh}: {parallel.summary(plan)}"
    _say(f"wrote {viz.render(drawn, out, title=title)}")


def _say(text: str) -> None:
    print(f"flowc: {text}")


def _inspect(args) -> None:
    import onnx
    from .frontend.onnx import MAX_OPSET, MIN_OPSET

    path = Path(args.model)
    if path.is_dir():
        raise CompileError(f"model file {quote_name(str(path))} is a folder, not a file")
    if not path.is_file():
        raise CompileError(f"model file {quote_name(str(path))} does not exist")
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as e:   # protobuf raises several types on a bad file
        raise CompileError(f"{quote_name(str(path))} is not a valid ONNX model: {e}") from None
    g = proto.graph
    opsets = {o.domain or "ai.onnx": o.version for o in proto.opset_import}
    producer = f"{proto.producer_name} {proto.producer_version}".strip()
    print(f"model:    {path}")
    print(f"graph:    {g.name or '(unnamed)'}" + (f"  (from {producer})" if producer else ""))
    print("opsets:   " + ", ".join(f"{d} {v}" for d, v in opsets.items()))
    initializers = {t.name for t in g.initializer}
    print("inputs:")
    for vi in g.input:
        if vi.name not in initializers:
            print(f"  {vi.name}: {_onnx_type(vi)}")
    print("outputs:")
    for vi in g.output:
        print(f"  {vi.name}: {_onnx_type(vi)}")
    params = sum(int(np.prod(t.dims, dtype=np.int64)) for t in g.initializer)
    print(f"initializers: {len(g.initializer)} ({params:,} elements)")

    histogram = collections.Counter(_op_key(n) for n in _all_nodes(g))
    print(f"ops ({sum(histogram.values())} nodes):")
    for op, count in histogram.most_common():
        print(f"  {op:<28} {count:6d}")
    opset = opsets.get("ai.onnx")
    if opset is None:
        print("opset: the model imports no opset of the default ONNX domain, which flowc needs")
    elif opset > MAX_OPSET:
        print(f"opset: {opset} is newer than flowc reads ({MIN_OPSET} to {MAX_OPSET})")
    elif opset < MIN_OPSET:
        print(f"opset: {opset} is upgraded to {MIN_OPSET} on import (onnx's version converter)")
    unsupported = {op: c for op, c in histogram.items() if not _supported(op)}
    if unsupported:
        print("not supported by flowc: " + ", ".join(f"{op} ({c})" for op, c in sorted(unsupported.items())))
    else:
        print("flowc supports every op of this model")


def _all_nodes(graph):
    """Every node, including those of subgraphs (If, Loop, Scan bodies)."""
    import onnx
    for node in graph.node:
        yield node
        for a in node.attribute:
            if a.type == onnx.AttributeProto.GRAPH:
                yield from _all_nodes(a.g)
            elif a.type == onnx.AttributeProto.GRAPHS:
                for sub in a.graphs:
                    yield from _all_nodes(sub)


def _op_key(node) -> str:
    return node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}.{node.op_type}"


def _supported(op: str) -> bool:
    return op == "Constant" or ir.has_op(op)


def _onnx_type(vi) -> str:
    from .ir.types import dtype_from_onnx
    import onnx
    t = vi.type
    if t.WhichOneof("value") != "tensor_type":
        return t.WhichOneof("value") or "untyped"
    elem = t.tensor_type.elem_type
    dt = dtype_from_onnx(elem)
    name = dt.name if dt is not None else onnx.TensorProto.DataType.Name(elem).lower()
    if not t.tensor_type.HasField("shape"):
        return f"{name}[*]"
    dims = [str(d.dim_value) if d.HasField("dim_value") else (d.dim_param or "?") for d in t.tensor_type.shape.dim]
    return f"{name}[{','.join(dims)}]"


# -- entry point ------------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    args.debug = getattr(args, "debug", False)
    args.verbose = getattr(args, "verbose", False)
    if args.debug:
        os.environ["FLOWC_DEBUG"] = "1"
    try:
        args.handler(args)
    except (FlowcError, OSError) as e:
        if args.debug:
            traceback.print_exc()
        print(f"flowc: error: {_one_line(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("flowc: interrupted", file=sys.stderr)
        return 130
    return 0


def _one_line(e: Exception) -> str:
    text = str(e) if not isinstance(e, OSError) or not e.filename else f"{e.strerror}: {e.filename}"
    return " ".join(text.split("\n")) or type(e).__name__

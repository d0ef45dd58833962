"""Automatic parallelism, predicted and measured. GPT-2- and BERT-base-shaped models on 2, 4, 8
and 16 simulated H100s (the cost model of ir/passes/parallel): the plan the search picks against
pure data parallelism and a Megatron-style hand plan, with the time the search takes. With
--measure, a small transformer compiled for 1 and 2 CPU processes and run under mpirun, against
what the cost model predicts for it.

    python benchmarks/parallel.py                            # gpt2 and bert, batch 1 and 32, 2/4/8/16 H100s
    python benchmarks/parallel.py --models bert --batches 1 --meshes 4,2x8
    python benchmarks/parallel.py --measure                  # also the MPI runs on this CPU (a few minutes)
    python benchmarks/parallel.py --json parallel.json       # also every number, machine-readable

The models are built with flowc.GraphBuilder (separate Q, K and V projections, so that
Megatron's column split is expressible as SBP); see benchmarks/README.md for the columns.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import flowc
from flowc.ir.passes import optimize
from flowc.ir.passes.parallel import Plan, all_candidates, make_mesh, search

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cpu import cpu_name, machine_busy_s  # noqa: E402  (benchmarks/cpu.py)

MESHES = {"2": (2,), "4": (4,), "8": (8,), "2x8": (2, 8)}   # 1-D over NVLink; 2x8: 2 nodes, InfiniBand between


@dataclass(frozen=True)
class Shape:
    name: str
    layers: int
    hidden: int
    heads: int
    ffn: int
    seq: int
    vocab: int
    causal: bool        # GPT-2: a causal mask, pre-LayerNorm, an LM head; BERT: a padding mask, post-LayerNorm
    description: str


SHAPES = {s.name: s for s in (
    Shape("gpt2", 12, 768, 12, 3072, 128, 50257, True,
          "GPT-2 small: 12 layers, hidden 768, 12 heads, seq 128, vocab 50257, untied LM head, f32"),
    Shape("bert", 12, 768, 12, 3072, 128, 30522, False,
          "BERT-base encoder: 12 layers, hidden 768, 12 heads, seq 128, padding mask, no pooler, f32"),
)}


def transformer(shape: Shape, batch: int, seed: int | None = None) -> flowc.ir.Graph:
    """The model as an optimised graph for one batch size. Weight matrices are zeros unless `seed`
    is given (the cost model reads only their shapes, and untouched zeros cost no memory); layer
    i's projections are named l<i>.q, .k, .v, .o, .fc1 and .fc2 (with .matmul before the bias), the
    inputs of .o and .fc2 l<i>.attention and l<i>.gelu."""
    rng = np.random.default_rng(seed or 0)
    d, heads, seq = shape.hidden, shape.heads, shape.seq

    def matrix(*dims):
        if seed is None:
            return np.zeros(dims, np.float32)
        return rng.standard_normal(dims, dtype=np.float32) * np.float32(dims[0] ** -0.5)

    def vector(n, centre=0.0):   # small and distinct, so that no two merge as common subexpressions
        return np.float32(centre) + rng.standard_normal(n, dtype=np.float32) * np.float32(0.02)

    b = flowc.GraphBuilder(shape.name)
    ids = b.input("input_ids", "i64", [batch, seq])
    x = b.gather(matrix(shape.vocab, d), ids, axis=0) + matrix(seq, d)
    if shape.causal:
        mask = np.triu(np.full((seq, seq), -1e4, np.float32), 1)
    else:
        mask = b.input("attention_mask", "f32", [batch, 1, 1, seq])   # additive: 0 or -1e4 per key

    def norm(t):
        return b.layer_normalization(t, vector(d, 1.0), vector(d), axis=-1)

    def linear(t, n_in, n_out, name):   # l<i>.<name>.matmul, then l<i>.<name> with the bias added
        return b.add(b.matmul(t, matrix(n_in, n_out), outputs=[f"{name}.matmul"]), vector(n_out), outputs=[name])

    def split_heads(t):   # [B, S, D] -> [B, H, S, D/H]
        return b.transpose(b.reshape(t, np.array([batch, seq, heads, d // heads], np.int64)), perm=[0, 2, 1, 3])

    if not shape.causal:
        x = norm(x)
    for i in range(shape.layers):
        h = norm(x) if shape.causal else x
        q, k, v = (split_heads(linear(h, d, d, f"l{i}.{n}")) for n in "qkv")
        scores = (q @ b.transpose(k, perm=[0, 1, 3, 2])) * np.float32((d // heads) ** -0.5) + mask
        a = b.transpose(b.softmax(scores, axis=-1) @ v, perm=[0, 2, 1, 3])
        a = b.reshape(a, np.array([batch, seq, d], np.int64), outputs=[f"l{i}.attention"])
        x = x + linear(a, d, d, f"l{i}.o")
        x = x if shape.causal else norm(x)
        h = norm(x) if shape.causal else x
        x = x + linear(b.gelu(linear(h, d, shape.ffn, f"l{i}.fc1"), outputs=[f"l{i}.gelu"]), shape.ffn, d, f"l{i}.fc2")
        x = x if shape.causal else norm(x)
    if shape.causal:
        x = norm(x) @ matrix(d, shape.vocab)
    b.output(x, name="logits" if shape.causal else "last_hidden_state")
    return optimize(b.build())


# -- the three plans -------------------------------------------------------------------------

def data_parallel(graph: flowc.ir.Graph, mesh) -> Plan:
    """Every op in the signature that splits its first output's axis 0 on every mesh axis, where
    the batch divides (else replicated): data parallelism as a user would write it, unrefined."""
    candidates = all_candidates(graph, mesh)   # priced as the search prices them
    choice = {}
    for node, cands in candidates.items():
        split = [j for j, c in enumerate(cands) if c.outs and all(s.is_split and s.axis == 0 for s in c.outs[0])]
        choice[node] = split[0] if split else 0
    return Plan(graph, mesh, candidates, choice, {})


def megatron_hints(shape: Shape, batch: int, mesh_shape: tuple[int, ...]) -> tuple[dict[str, str], str]:
    """Megatron over the last (NVLink) mesh axis: Q, K, V and fc1 column-split (their outputs split
    on the hidden axis), the output projection and fc2 row-split (their inputs split on the
    hidden axis, their outputs partial sums), the rest left to the search. On a 2-D mesh the
    batch splits over the other axis where it divides. Megatron needs the heads to divide among
    the devices: where they do not, only the MLP is split."""
    tp = mesh_shape[-1]
    outer = "" if len(mesh_shape) == 1 else ("S(0), " if batch % mesh_shape[0] == 0 else "B, ")
    wrap = (lambda s: s) if len(mesh_shape) == 1 else (lambda s: f"({outer}{s})")
    heads = shape.heads % tp == 0
    split = ["fc1", "fc1.matmul", "gelu"] + (["q", "q.matmul", "k", "k.matmul", "v", "v.matmul", "attention"]
                                             if heads else [])
    reduced = ["fc2.matmul"] + (["o.matmul"] if heads else [])
    hints = {}
    for i in range(shape.layers):
        hints.update({f"l{i}.{n}": wrap("S(2)") for n in split})
        hints.update({f"l{i}.{n}": wrap("P") for n in reduced})
    note = "" if heads else f"MLP only: {shape.heads} heads do not split {tp} ways"
    return hints, note


def describe(plan: Plan, batch: int) -> dict:
    latency = plan.latency()
    return {"latency_ms": latency * 1e3, "compute_ms": plan.compute_seconds() * 1e3,
            "comm_ms": plan.comm_seconds() * 1e3, "sequences_per_s": batch / latency,
            "comm_bytes": plan.comm_bytes(), "memory_bytes": plan.memory_bytes(),
            "weight_bytes": plan.weight_bytes(), "activation_bytes": plan.activation_bytes(),
            "matmuls": matmul_signatures(plan)}


def matmul_signatures(plan: Plan) -> dict[str, int]:
    """How many MatMuls by a weight take each signature: the plan at a glance."""
    counts: dict[str, int] = {}
    for node in plan.graph.nodes:
        if node.op == "MatMul" and node.inputs[1].is_const:
            sig = plan.chosen(node).signature()
            counts[sig] = counts.get(sig, 0) + 1
    return counts


def bench_config(shape: Shape, batch: int, mesh_name: str, graph) -> dict:
    mesh_shape = MESHES[mesh_name]
    mesh = make_mesh(mesh_shape, target="cuda")
    start = time.perf_counter()
    searched = search(graph, mesh)
    search_s = time.perf_counter() - start
    hints, note = megatron_hints(shape, batch, mesh_shape)
    start = time.perf_counter()
    hand = search(graph, mesh, hints=hints)
    hinted_s = time.perf_counter() - start
    row = {"model": shape.name, "batch": batch, "seq": shape.seq, "mesh": "x".join(map(str, mesh_shape)),
           "devices": mesh.size, "links": [link.name for link in mesh.links], "search_s": search_s,
           "megatron_search_s": hinted_s, "megatron_note": note,
           "plans": {"search": describe(searched, batch), "data-parallel": describe(data_parallel(graph, mesh), batch),
                     "megatron": describe(hand, batch)}}
    base = row["plans"]["search"]
    for plan in row["plans"].values():
        plan["latency_vs_search"] = plan["latency_ms"] / base["latency_ms"]
        plan["comm_vs_search"] = plan["comm_bytes"] / base["comm_bytes"] if base["comm_bytes"] else None
        plan["memory_vs_search"] = plan["memory_bytes"] / base["memory_bytes"]
    return row


def one_device(graph) -> float:
    """Predicted seconds on one H100: every op replicated, no communication."""
    return search(graph, make_mesh((1,), target="cuda")).latency()


# -- the table -------------------------------------------------------------------------------

def mib(n: float) -> str:
    return f"{n / 2**20:,.1f}"


def table(rows: list[dict], singles: dict) -> str:
    columns = (f"{'model':<6}{'batch':>6}{'mesh':>6}  {'plan':<14}{'latency ms':>11}{'x search':>9}{'seq/s':>9}"
               f"{'comm MiB':>10}{'mem MiB':>9}{'weights':>9}  matmuls by weight (count x signature)")
    lines = [columns, "-" * len(columns)]
    last = None
    for r in rows:
        key = (r["model"], r["batch"])
        if key != last:
            if last is not None:
                lines.append("")
            single = singles[key]
            lines.append(f"{r['model']:<6}{r['batch']:>6}  1 H100: {single * 1e3:.3f} ms, "
                         f"{r['batch'] / single:,.0f} seq/s")
            last = key
        for i, (name, p) in enumerate(r["plans"].items()):
            lead = f"{'':<12}{r['mesh']:>6}  " if i == 0 else " " * 20
            shown = "; ".join(f"{n} x {s}" for s, n in sorted(p["matmuls"].items(), key=lambda kv: -kv[1])[:2])
            label = name
            if name == "megatron" and r["megatron_note"]:
                shown = f"({r['megatron_note']}) " + shown
            lines.append(f"{lead}{label:<14}{p['latency_ms']:>11.3f}{p['latency_vs_search']:>9.2f}"
                         f"{p['sequences_per_s']:>9,.0f}{mib(p['comm_bytes']):>10}{mib(p['memory_bytes']):>9}"
                         f"{mib(p['weight_bytes']):>9}  {shown}")
        lines.append(f"{'':<20}search took {r['search_s']:.2f} s (the hinted one {r['megatron_search_s']:.2f} s)")
    return "\n".join(lines)


# -- measured: MPI processes on this CPU ------------------------------------------------------

MEASURED = Shape("small", 2, 256, 4, 1024, 64, 1000, True, "2 layers, hidden 256, 4 heads, seq 64, vocab 1000")
MPI_ENV = {"OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1"}


def measure(batches: list[int], threads: int, reps: int, work: Path) -> list[dict]:
    """Compile the small transformer for 1 and 2 processes and time it under `mpirun -np 1|2`,
    each process with `threads` threads; the cost model's prediction beside each."""
    if shutil.which("mpirun") is None:
        raise RuntimeError("mpirun is not on PATH (Debian: apt-get install openmpi-bin libopenmpi-dev)")
    rows = []
    for batch in batches:
        graph = transformer(MEASURED, batch, seed=1)
        feeds = {"input_ids": np.random.default_rng(batch).integers(0, MEASURED.vocab, (batch, MEASURED.seq))}
        expected = flowc.ir.run(graph, feeds)
        np.savez(work / f"feeds-b{batch}.npz", **feeds)
        for ranks in (1, 2):
            out_dir = work / f"b{batch}-np{ranks}"
            start = time.perf_counter()
            artifact = flowc.compile(graph, target="cpu", devices=ranks, out_dir=out_dir,
                                     input_shapes={k: list(v.shape) for k, v in feeds.items()})
            compile_s = time.perf_counter() - start
            plan = artifact.plan if artifact.plan is not None else search(graph, make_mesh((ranks,), target="cpu"))
            result = work / f"result-b{batch}-np{ranks}.json"
            cmd = ["mpirun", "--oversubscribe", "-np", str(ranks), sys.executable, __file__, "--measure-worker",
                   str(out_dir), str(work / f"feeds-b{batch}.npz"), str(result), str(threads), str(reps)]
            busy, ours, start = machine_busy_s(), children_cpu_s(), time.perf_counter()
            proc = subprocess.run(cmd, env={**os.environ, **MPI_ENV}, capture_output=True, text=True, timeout=900,
                                  check=False)
            others = max(0.0, (machine_busy_s() - busy) - (children_cpu_s() - ours)) / (time.perf_counter() - start)
            if proc.returncode != 0 or not result.is_file():
                raise RuntimeError(f"mpirun -np {ranks} failed ({proc.returncode}): {proc.stderr.strip()[-2000:]}")
            got = json.loads(result.read_text())
            if got["ranks"] != ranks:
                raise RuntimeError(f"the artifact for {ranks} processes ran {got['ranks']} ranks under mpirun")
            with np.load(got["outputs"]) as outputs:
                diff = max(float(np.max(np.abs(outputs[k] - expected[k]))) for k in expected)
            rows.append({"batch": batch, "processes": ranks, "threads": got["threads"], "compile_s": compile_s,
                         "predicted_ms": plan.latency() * 1e3, "predicted_compute_ms": plan.compute_seconds() * 1e3,
                         "predicted_comm_ms": plan.comm_seconds() * 1e3, "measured_ms": got["median_ms"],
                         "measured_p90_ms": got["p90_ms"], "measured_min_ms": got["min_ms"], "other_load": others,
                         "max_abs_diff": diff, "matmuls": matmul_signatures(plan)})
    return rows


def children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def measure_worker(out_dir: str, feeds_path: str, result_path: str, threads: int, reps: int) -> None:
    """One MPI process: load its rank, run `reps` timed requests after a warm-up (every process
    makes the same calls, so the count is fixed, not timed); rank 0 writes the result."""
    from flowc.codegen import cpu
    with np.load(feeds_path) as npz:
        feeds = {k: npz[k] for k in npz.files}
    model = cpu.load(out_dir, threads=threads)   # under mpirun a mesh model runs this process's rank
    outputs = model.run(feeds)
    for _ in range(max(3, reps // 10)):
        model.run(feeds)
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        model.run(feeds)
        times.append(time.perf_counter() - start)
    ranks, rank, used = model.ranks, model.rank, model.threads
    model.close()
    if not rank:
        saved = str(Path(result_path).with_suffix(".npz"))
        np.savez(saved, **outputs)
        ms = np.array(times) * 1e3
        Path(result_path).write_text(json.dumps({"median_ms": float(np.median(ms)), "min_ms": float(ms.min()),
                                                 "outputs": saved,
                                                 "p90_ms": float(np.percentile(ms, 90)), "ranks": ranks,
                                                 "threads": used}))


def measure_table(rows: list[dict]) -> str:
    columns = (f"{'batch':>5}{'processes':>10}{'predicted ms':>14}{'measured ms':>13}{'min ms':>8}{'measured/pred':>15}"
               f"{'speedup pred':>14}{'speedup meas':>14}{'others':>8}{'max|diff|':>11}  plan")
    lines = [columns, "-" * len(columns)]
    ones = {r["batch"]: r for r in rows if r["processes"] == 1}
    for r in rows:
        one = ones[r["batch"]]
        shown = "; ".join(f"{n} x {s}" for s, n in sorted(r["matmuls"].items(), key=lambda kv: -kv[1])[:2])
        lines.append(f"{r['batch']:>5}{r['processes']:>10}{r['predicted_ms']:>14.3f}{r['measured_ms']:>13.3f}"
                     f"{r['measured_min_ms']:>8.3f}"
                     f"{r['measured_ms'] / r['predicted_ms']:>15.2f}{one['predicted_ms'] / r['predicted_ms']:>14.2f}"
                     f"{one['measured_ms'] / r['measured_ms']:>14.2f}{r['other_load']:>8.2f}"
                     f"{r['max_abs_diff']:>11.1e}  {shown}")
    return "\n".join(lines)


def predict(names: list[str], batches: list[int], meshes: list[str]) -> dict:
    print("flowc parallel plans on simulated H100s (cost model: ir/passes/parallel/cost.py, mesh.py profiles h100, "
          "nvlink, infiniband)")
    for name in names:
        print(f"  {name}: {SHAPES[name].description}")
    print(f"  meshes: {', '.join(meshes)} (1-D over NVLink; 2x8: InfiniBand between 2 nodes of 8, NVLink within)\n")
    rows, singles, builds = [], {}, {}
    for name in names:
        shape = SHAPES[name]
        for batch in batches:
            start = time.perf_counter()
            graph = transformer(shape, batch)
            builds[f"{name}-b{batch}"] = time.perf_counter() - start
            singles[(name, batch)] = one_device(graph)
            for mesh_name in meshes:
                rows.append(bench_config(shape, batch, mesh_name, graph))
                print(f"  {name} batch {batch} on {mesh_name}: search {rows[-1]['search_s']:.2f} s",
                      file=sys.stderr, flush=True)
    print(table(rows, singles))
    print("\nx search: latency / the searched plan's (above 1: the search's plan is faster). comm MiB: bytes each "
          "device sends per request; mem MiB: weights + the peak of live activations per device; seq/s: batch / "
          "latency. Graph inputs arrive whole on every device and outputs leave whole, so every plan pays to "
          "gather the outputs.")
    return {"models": {n: SHAPES[n].__dict__ for n in names}, "graph_build_s": builds,
            "one_device_ms": {f"{m}-b{b}": s * 1e3 for (m, b), s in singles.items()}, "results": rows}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=",".join(SHAPES), help=f"comma-separated, from {', '.join(SHAPES)}")
    ap.add_argument("--batches", default="1,32", help="comma-separated batch sizes (default 1,32)")
    ap.add_argument("--meshes", default=",".join(MESHES), help=f"comma-separated, from {', '.join(MESHES)}")
    ap.add_argument("--measure", action="store_true", help="also compile a small transformer for 1 and 2 CPU "
                    "processes and time it under mpirun against the cost model")
    ap.add_argument("--measure-only", action="store_true", help="the measured part alone")
    ap.add_argument("--measure-batches", default="1,16", help="batch sizes of the measured runs (default 1,16)")
    ap.add_argument("--measure-threads", type=int, default=1, help="threads per MPI process (default 1)")
    ap.add_argument("--reps", type=int, default=100, help="timed requests per measured run (default 100)")
    ap.add_argument("--json", type=Path, help="also write every number here")
    ap.add_argument("--measure-worker", nargs=5, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.measure_worker:
        out_dir, feeds, result, threads, reps = args.measure_worker
        measure_worker(out_dir, feeds, result, int(threads), int(reps))
        return 0

    names = [n for n in args.models.split(",") if n]
    meshes = [m for m in args.meshes.split(",") if m]
    unknown = [n for n in names if n not in SHAPES] + [m for m in meshes if m not in MESHES]
    if unknown:
        ap.error(f"unknown {', '.join(unknown)}; models: {', '.join(SHAPES)}; meshes: {', '.join(MESHES)}")
    report = {} if args.measure_only else predict(names, [int(b) for b in args.batches.split(",") if b], meshes)
    if args.measure or args.measure_only:
        print(f"\nmeasured on this CPU ({cpu_name()}, {os.cpu_count()} cores): {MEASURED.description}, target cpu, "
              f"{args.measure_threads} thread(s) per process, median of {args.reps} requests; predicted with the "
              "cpu profile and shm links")
        try:
            with tempfile.TemporaryDirectory(prefix="flowc-parallel-") as tmp:
                measured = measure([int(b) for b in args.measure_batches.split(",") if b], args.measure_threads,
                                   args.reps, Path(tmp))
        except (RuntimeError, flowc.CompileError, subprocess.TimeoutExpired) as e:
            print(f"  not measured: {e}")
            report["measured"] = {"error": str(e)}
        else:
            print(measure_table(measured))
            print("\nmeasured ms: the median on rank 0, min ms the fastest request; measured/pred and the speedups "
                  "use the medians. speedup: the 1-process latency / this one's. others: cores other "
                  f"processes kept busy meanwhile (of {os.cpu_count()}); above ~0.1 the measured times are inflated. "
                  "max|diff|: largest difference of the outputs from the reference interpreter's.")
            report["measured"] = measured
    if args.json:
        args.json.write_text(json.dumps(report, indent=2, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

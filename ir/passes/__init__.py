"""Passes over the IR, and the one pipeline that composes them.

Each pass is a small function registered with `graph_pass(name, summary)`;
`PIPELINE` is the visible list that `flowc.compile` runs.
"""
from .manager import PASSES, Pass, get_pass, graph_pass, run_passes
from .infer_shapes import infer_shapes
from .dead_code import eliminate_dead_code
from .fold_constants import fold_constants, fold_constants_no_growth
from .cse import eliminate_common_subexpressions
from .canonicalize import canonicalize

PIPELINE: list[Pass] = [
    infer_shapes,                      # types and known shape contents, which every pass reads
    eliminate_dead_code,               # no work on what the outputs do not need
    fold_constants,                    # shape subgraphs and exporter-computed constants become data
    eliminate_common_subexpressions,   # one copy of each repeated subgraph, so patterns see one value
    canonicalize,                      # Gemm -> MatMul, LayerNorm/GELU recomposed, no-ops removed
    fold_constants,                    # what canonicalize exposed: transposed weights, scaled biases
    eliminate_common_subexpressions,   # equal constants the rewrites and folding made
]


# The backends run these after PIPELINE: fusion for the kernels a target emits.
from .fuse import LOWERING  # noqa: E402


def optimize(graph, *, verify_each=None, after=None):
    """Run the standard pipeline on `graph` (see `run_passes`)."""
    return run_passes(graph, PIPELINE, verify_each=verify_each, after=after)


__all__ = ["LOWERING", "PASSES", "PIPELINE", "fold_constants_no_growth", "Pass", "get_pass", "graph_pass", "optimize", "run_passes"]

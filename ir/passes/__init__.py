"""Passes over the IR, and the one pipeline that composes them.

Each pass is a small function registered with `graph_pass(name, summary)`;
`PIPELINE` is the visible list that `flowc.compile` runs.
"""
from .manager import PASSES, Pass, get_pass, graph_pass, run_passes
from .infer_shapes import infer_shapes

PIPELINE: list[Pass] = [
    infer_shapes,
]


def optimize(graph, *, verify_each=None, after=None):
    """Run the standard pipeline on `graph` (see `run_passes`)."""
    return run_passes(graph, PIPELINE, verify_each=verify_each, after=after)


__all__ = ["PASSES", "PIPELINE", "Pass", "get_pass", "graph_pass", "optimize", "run_passes"]

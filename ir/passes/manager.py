"""Passes as small named functions, and the manager that runs a list of them."""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Callable, Iterable

from flowc.errors import CompileError

from ..graph import Graph
from ..verify import verify


@dataclass(frozen=True)
class Pass:
    name: str
    summary: str
    run: Callable[[Graph], Graph]

    def __call__(self, graph: Graph) -> Graph:
        return self.run(graph)


PASSES: dict[str, Pass] = {}


def graph_pass(name: str, summary: str):
    """Register `fn(graph) -> graph` as a pass; it may rewrite the graph in place."""
    def wrap(fn: Callable[[Graph], Graph]) -> Pass:
        if name in PASSES:
            raise AssertionError(f"pass {name} is defined twice")
        p = Pass(name, summary, fn)
        PASSES[name] = p
        return p
    return wrap


def get_pass(name: str) -> Pass:
    if name not in PASSES:
        raise CompileError(f"unknown pass {name!r}; passes: {', '.join(PASSES)}")
    return PASSES[name]


def debug_enabled() -> bool:
    return os.environ.get("FLOWC_DEBUG", "") not in ("", "0")


def run_passes(graph: Graph, passes: Iterable[Pass], *, verify_each: bool | None = None,
               after: Callable[[Pass, Graph, float], None] | None = None) -> Graph:
    """Run `passes` in order. The verifier runs after each one when `verify_each`
    (default: when FLOWC_DEBUG is set); `after(pass, graph, seconds)` sees each result."""
    if verify_each is None:
        verify_each = debug_enabled()
    for p in passes:
        start = time.perf_counter()
        graph = p(graph)
        seconds = time.perf_counter() - start
        if verify_each:
            try:
                verify(graph)
            except CompileError as e:
                raise CompileError(f"after pass {p.name}: {e}") from None
        if after is not None:
            after(p, graph, seconds)
    return graph

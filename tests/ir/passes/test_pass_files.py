"""Pass tests as IR text in, IR text out: every tests/ir/passes/<pass>/*.fir file.

A file names the passes to run, holds the input graph in its printed form, then
either the graph the passes must print, or the exact error they must raise:

    # RUN: fold-constants
    # Why this case matters, in a line or two.
    graph g(%x: f32[2]) {
      ...
    }
    # EXPECTED:
    graph g(%x: f32[2]) {
      ...
    }

or, in place of the `# EXPECTED:` section, `# EXPECTED-ERROR: <message>`.
The verifier runs after every pass; every graph in a file must round-trip
(print -> parse -> print is the identity), and the graph the passes give must
compute what the input graph computes (the reference interpreter on random inputs).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

import flowc
from flowc import ir
from flowc.ir.passes import PIPELINE, get_pass, run_passes

HERE = Path(__file__).parent
FILES = sorted(HERE.glob("*/*.fir"))
VALUE_FILES = [p for p in FILES if "# EXPECTED:" in p.read_text()]


def file_id(path: Path) -> str:
    return f"{path.parent.name}/{path.stem}"


@dataclass
class Case:
    passes: list[str]
    input: str
    expected: str | None
    error: str | None


def read_case(path: Path) -> Case:
    text = path.read_text()
    header, sep, expected = text.partition("# EXPECTED:\n")
    error = None
    if not sep:
        header, sep, error = text.partition("# EXPECTED-ERROR: ")
        error = error.rstrip("\n")
    assert sep, f"{path.name}: needs a '# EXPECTED:' section or an '# EXPECTED-ERROR: ' line"
    runs = [line[len("# RUN:"):] for line in header.splitlines() if line.startswith("# RUN:")]
    assert len(runs) == 1, f"{path.name}: needs one '# RUN: pass, pass' line"
    graph = "\n".join(line for line in header.splitlines() if not line.startswith("#")) + "\n"
    return Case([p.strip() for p in runs[0].split(",")], graph.lstrip("\n"), expected or None, error)


def assert_round_trips(text: str) -> ir.Graph:
    """`text` is a graph in printed form, and printing what it parses to gives it back."""
    graph = ir.parse(text)
    printed = ir.print_graph(graph)
    assert printed == text
    assert ir.print_graph(ir.parse(printed)) == printed
    return ir.verify(graph)


def test_every_pass_of_the_pipeline_has_pass_files():
    assert {p.name for p in PIPELINE} - {"infer-shapes"} <= {p.parent.name for p in FILES}


@pytest.mark.parametrize("path", FILES, ids=file_id)
def test_pass_file(path: Path):
    case = read_case(path)
    assert path.parent.name == case.passes[0], "a file sits in the folder of the first pass it runs"
    graph = assert_round_trips(case.input)
    passes = [get_pass(name) for name in case.passes]
    if case.error is not None:
        with pytest.raises(flowc.CompileError) as e:
            run_passes(graph, passes, verify_each=True)
        assert str(e.value) == case.error
        return
    assert_round_trips(case.expected)
    out = run_passes(graph, passes, verify_each=True)
    assert ir.print_graph(out) == case.expected


@pytest.mark.parametrize("path", VALUE_FILES, ids=file_id)
def test_pass_file_keeps_values(path: Path):
    case = read_case(path)
    before, after = ir.parse(case.input), ir.parse(case.expected)
    feeds = random_inputs(before, np.random.default_rng(0))
    with np.errstate(invalid="ignore"):     # look-alike chains may take square roots of negatives
        want, got = ir.run(before, feeds), ir.run(after, feeds)
    assert list(got) == list(want)
    for name in want:
        np.testing.assert_allclose(got[name], want[name], rtol=1e-5, atol=1e-6, err_msg=name)


def random_inputs(graph: ir.Graph, rng: np.random.Generator, symbolic_dim: int = 3) -> dict[str, np.ndarray]:
    """Values for the graph's inputs, every symbolic dim bound to `symbolic_dim`."""
    feeds = {}
    for v in graph.inputs:
        shape = [d if isinstance(d, int) else symbolic_dim for d in v.type.shape]
        dt = v.type.dtype
        if dt.is_float:
            feeds[v.name] = rng.standard_normal(shape).astype(dt.np)
        elif dt.name == "bool":
            feeds[v.name] = rng.random(shape) < 0.5
        else:
            feeds[v.name] = rng.integers(-4, 5, shape).astype(dt.np)
    return feeds

"""A smoke run of benchmarks/parallel.py's predicted part: BERT-base at batch 1 on 2 simulated
H100s, its three plans in the table and the JSON. The MPI measurement (--measure) is not run here."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "parallel.py"


def test_bert_on_two_h100s_prints_every_plan(tmp_path):
    report = tmp_path / "parallel.json"
    proc = subprocess.run([sys.executable, str(SCRIPT), "--models", "bert", "--batches", "1", "--meshes", "2",
                           "--json", str(report)], check=False, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (row,) = json.loads(report.read_text())["results"]
    assert (row["model"], row["batch"], row["mesh"]) == ("bert", 1, "2")
    plans = row["plans"]
    assert set(plans) == {"search", "data-parallel", "megatron"}
    for name in plans:   # a row each in the table
        assert any(name in line.split() for line in proc.stdout.splitlines()), name
    # data parallelism is one of the search's starting points, which it only improves on
    assert plans["search"]["latency_ms"] <= plans["data-parallel"]["latency_ms"] * (1 + 1e-9)
    # Megatron splits the projections' weights: each device keeps about half of them
    assert plans["megatron"]["weight_bytes"] < plans["data-parallel"]["weight_bytes"]
    assert row["search_s"] > 0

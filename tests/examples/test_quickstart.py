"""The README's first command: examples/quickstart.py compiles, runs and checks the example CNN."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_quickstart_runs_and_matches_the_reference(tmp_path, toolchain):
    done = subprocess.run([sys.executable, str(REPO / "examples" / "quickstart.py"), "--out", str(tmp_path / "q")],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "batch 1 to 8" in done.stdout
    assert done.stdout.count(": match") == 2 and "MISMATCH" not in done.stdout
    assert (tmp_path / "q" / "build" / "main").is_file()
    assert (tmp_path / "q" / "graph.svg").is_file() or "graphviz" in done.stdout.lower()

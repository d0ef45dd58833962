"""A smoke run of benchmarks/cpu.py: every backend end to end, and the table it prints.
Speed is never asserted here; people read the benchmark (benchmarks/README.md)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "cpu.py"


def table_row(stdout: str, backend: str) -> list[str]:
    """The fields after `backend` in its table row (the rows follow a line of dashes)."""
    lines = stdout.splitlines()
    body = lines[next(i for i, line in enumerate(lines) if line.startswith("---")) + 1:]
    for line in body:
        fields = line.split()
        if backend in fields:
            return fields[fields.index(backend) + 1:]
    raise AssertionError(f"no {backend} row in the table:\n{stdout}")


def test_quick_mlp_run_prints_a_table_with_every_backend(tmp_path):
    report = tmp_path / "bench.json"
    proc = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--models", "mlp",
                           "--cache", str(tmp_path / "models"), "--json", str(report)],
                          check=False, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = {r["backend"]: r for r in json.loads(report.read_text())["results"]}
    assert set(rows) == {"onnxruntime", "flowc", "torch", "torch.compile"}
    for backend in ("onnxruntime", "torch"):     # these run wherever the tests run
        assert rows[backend]["status"] == "ok", rows[backend]
        median_ms = float(table_row(proc.stdout, backend)[0])
        assert median_ms > 0
    assert rows["torch"]["within_tolerance"], rows["torch"]
    assert table_row(proc.stdout, "onnxruntime")[-1] == "(reference)"
    flowc = rows["flowc"]                        # ran and matched onnxruntime, or its row says why not
    assert (flowc["status"] == "ok" and flowc["within_tolerance"]) or flowc["status"].startswith(("n/a: ", "error: "))
    assert table_row(proc.stdout, "flowc")

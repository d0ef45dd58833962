"""The official ONNX node tests through the importer and the reference interpreter.

The per-op pass counts are printed in the terminal summary of every run.
"""
from __future__ import annotations

import time

import onnx_node_suite as suite

MIN_PASS_RATE = 0.90
SHOWN_FAILURES = 40


def _run(report_section, title: str, **which) -> list[suite.Outcome]:
    start = time.perf_counter()
    outcomes = suite.run_suite(**which)
    report_section(f"{title} ({time.perf_counter() - start:.1f} s)", suite.summary(outcomes))
    return outcomes


def _listing(outcomes: list[suite.Outcome]) -> str:
    lines = [f"{o.status:11} {o.case}: {o.detail}" for o in outcomes[:SHOWN_FAILURES]]
    if len(outcomes) > SHOWN_FAILURES:
        lines.append(f"... and {len(outcomes) - SHOWN_FAILURES} more")
    return "\n".join(lines)


def test_cnn_transformer_ops_pass(report_section):
    outcomes = _run(report_section, "ONNX node suite: CNN and transformer ops", restrict=suite.CNN_TRANSFORMER_OPS)
    crashes = [o for o in outcomes if o.status == "crash"]
    assert not crashes, f"{len(crashes)} cases crash (not a clean CompileError):\n{_listing(crashes)}"
    failing = [o for o in outcomes if o.status != "pass"]
    total = len(outcomes)
    passed = total - len(failing)
    assert passed >= MIN_PASS_RATE * total, (
        f"{passed} of {total} cases pass ({100 * passed / total:.1f} %), "
        f"under {100 * MIN_PASS_RATE:.0f} %:\n{_listing(failing)}")


def test_no_case_crashes(report_section):
    outcomes = _run(report_section, "ONNX node suite: every case")
    crashes = [o for o in outcomes if o.status not in ("pass", "mismatch", "unsupported")]
    assert not crashes, f"{len(crashes)} cases end in neither pass, mismatch nor a clean CompileError:\n" \
                        f"{_listing(crashes)}"

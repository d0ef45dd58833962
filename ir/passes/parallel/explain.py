"""`flowc compile --explain`: the plan as a table a person can check.

For each op: the signature chosen, what it costs (its compute plus the boxing on its
inputs and outputs, given its neighbours' choices) and the runner-up with its cost; then each boxing
with its collectives; then the totals the cost model predicts.
"""
from __future__ import annotations

from flowc.errors import quote_name

from ...sbp import format_sbp
from .cost import boxing_bytes, boxing_steps, boxing_time
from .search import Plan


def _us(seconds: float) -> str:
    return f"{seconds * 1e6:,.1f} us"


def _mib(n: float) -> str:
    return f"{n / 2**20:,.2f} MiB"


def summary(plan: Plan) -> str:
    mesh = plan.mesh
    links = ", ".join(f"{link.name}" for link in mesh.links)
    return (f"mesh {mesh} ({mesh.device.name}; links {links}): predicted {_us(plan.latency())} per request "
            f"({_us(plan.compute_seconds())} compute, {_us(plan.comm_seconds())} communication); "
            f"{plan.comm_bytes():,} bytes sent per device; {_mib(plan.memory_bytes())} per device "
            f"({_mib(plan.weight_bytes())} weights, {_mib(plan.activation_bytes())} activations)")


def explain(plan: Plan) -> str:
    rows = [("op", "node", "signature", "cost", "runner-up", "its cost")]
    for e in plan.explained:
        node = e.node
        name = node.name or quote_name(node.outputs[0].name)
        rows.append((node.op, name, e.chosen.signature(), _us(e.cost),
                     e.runner_up.signature() if e.runner_up else "-",
                     _us(e.runner_up_cost) if e.runner_up_cost is not None else "-"))
    widths = [min(max(len(r[i]) for r in rows), 48) for i in range(len(rows[0]))]
    lines = [summary(plan), ""]
    for r in rows:
        lines.append("  " + "  ".join(c.ljust(w) if i not in (3, 5) else c.rjust(w)
                                      for i, (c, w) in enumerate(zip(r, widths))).rstrip())
    boxes = []
    for v, src, dst in plan.boxings():
        steps = " then ".join(str(s) for s in boxing_steps(src, dst))
        boxes.append(f"  {quote_name(v.name)}: {format_sbp(src)} -> {format_sbp(dst)}: {steps}; "
                     f"{_us(boxing_time(src, dst, v.type, plan.mesh))}, "
                     f"{boxing_bytes(src, dst, v.type, plan.mesh):,} bytes sent per device")
    lines += ["", f"boxing ({len(boxes)}):" if boxes else "boxing: none"] + boxes
    return "\n".join(lines) + "\n"

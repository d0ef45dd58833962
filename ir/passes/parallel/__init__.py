"""Automatic parallelism: SBP signatures searched over a device mesh, boxing, physical graphs.

    mesh = make_mesh((4,))
    plan = search(graph, mesh, hints={"x": "S(0)"})
    physical = build_physical(plan)        # one SPMD graph; rank_constants(r) per rank
    outputs = simulate(physical, feeds)    # every rank, in numpy
"""
from .annotate import annotate
from .explain import explain, summary
from .cost import boxing_steps, boxing_time, compute_time
from .mesh import DEVICES, LINKS, DeviceProfile, Link, Mesh, make_mesh, parse_mesh
from .physical import PhysicalGraph, build_physical
from .search import Candidate, Explained, Plan, all_candidates, candidates_for, parse_hints, search
from .simulate import simulate

__all__ = [
    "all_candidates",
    "annotate",
    "boxing_steps",
    "boxing_time",
    "build_physical",
    "Candidate",
    "candidates_for",
    "compute_time",
    "DeviceProfile",
    "DEVICES",
    "explain",
    "Explained",
    "Link",
    "LINKS",
    "make_mesh",
    "Mesh",
    "parse_hints",
    "parse_mesh",
    "PhysicalGraph",
    "Plan",
    "search",
    "simulate",
    "summary",
]

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
from .search import Candidate, Explained, Plan, candidates_for, parse_hints, search
from .simulate import simulate

__all__ = ["annotate", "DEVICES", "LINKS", "Candidate", "DeviceProfile", "Explained", "Link", "Mesh", "PhysicalGraph", "Plan",
           "boxing_steps", "boxing_time", "build_physical", "candidates_for", "compute_time", "explain", "make_mesh",
           "parse_hints", "parse_mesh", "search", "simulate", "summary"]

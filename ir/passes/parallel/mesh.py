"""Device meshes and what the cost model knows of their devices and links.

A mesh is a grid of devices: `--devices 4` is the 1-D mesh (4,), `--mesh 2x4` the 2-D mesh
(2, 4). Each mesh axis has a link (bandwidth and latency of the collectives along it) and every
device one profile (arithmetic rate, memory bandwidth, memory, per-kernel overhead). Built-in
profiles cover NVLink (H100 SXM), PCIe, InfiniBand and CPU processes over shared memory; a JSON
file describes others:

    {"device": {"name": "my-gpu", "flops": 5e13, "bandwidth": 2e12, "memory": 4e10, "overhead": 5e-6},
     "links": [{"name": "nvlink", "bandwidth": 4.5e11, "latency": 3e-6}, {"name": "ib", ...}]}

(flops per second, bytes per second, bytes, seconds; one link per mesh axis, or one for all.)
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Sequence

from flowc.errors import CompileError


@dataclass(frozen=True)
class Link:
    name: str
    bandwidth: float   # bytes per second, each way, per device
    latency: float     # seconds per message


@dataclass(frozen=True)
class DeviceProfile:
    name: str
    flops: float       # sustained float32 arithmetic, per second
    bandwidth: float   # memory bytes per second
    memory: float      # bytes
    overhead: float    # seconds per kernel launch or step
    half_flops: float = 0.0   # float16/bfloat16 arithmetic per second (tensor cores); 0: as flops


LINKS = {
    "nvlink": Link("nvlink", 450e9, 3e-6),          # NVLink 4 on H100 SXM: 900 GB/s both ways
    "pcie": Link("pcie", 25e9, 10e-6),              # PCIe 4.0 x16, as measured by NCCL tests
    "infiniband": Link("infiniband", 50e9, 5e-6),   # NDR 400 Gb/s per GPU
    "shm": Link("shm", 5e9, 5e-6),                  # CPU processes over shared memory (OpenMPI vader)
}

DEVICES = {
    "h100": DeviceProfile("h100", flops=60e12, bandwidth=3.0e12, memory=80e9, overhead=4e-6, half_flops=700e12),
    # one core of the 2-core CI machine, fitted to benchmarks/parallel.py --measure (float32 GEMM-bound steps)
    "cpu": DeviceProfile("cpu", flops=80e9, bandwidth=10e9, memory=16e9, overhead=2e-6),
}


@dataclass(frozen=True)
class Mesh:
    shape: tuple[int, ...]
    links: tuple[Link, ...]     # one per axis
    device: DeviceProfile

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    def __str__(self) -> str:
        return "x".join(map(str, self.shape))

    def with_memory(self, memory: float | None) -> "Mesh":
        return self if memory is None else replace(self, device=replace(self.device, memory=float(memory)))


def parse_mesh(text: str | Sequence[int] | int) -> tuple[int, ...]:
    """4 -> (4,); "2x4" -> (2, 4)."""
    if isinstance(text, int) and not isinstance(text, bool):
        dims = (text,)
    elif isinstance(text, str):
        if not re.fullmatch(r"\s*\d+(\s*x\s*\d+)*\s*", text):
            raise CompileError(f"mesh {text!r}: write devices per axis joined by x, e.g. 4 or 2x4")
        dims = tuple(int(d) for d in text.split("x"))
    else:
        try:
            dims = tuple(text)
        except TypeError:
            raise CompileError(f"mesh must be an int, a string like \"2x4\" or a list of ints, got {text!r}") from None
    if not dims or any(isinstance(d, bool) or not isinstance(d, int) or d < 1 for d in dims):
        raise CompileError(f"mesh {text!r}: every axis needs a positive number of devices")
    if len(dims) > 2:
        raise CompileError(f"mesh {text!r}: flowc plans 1-D and 2-D meshes")
    return dims


def make_mesh(shape: tuple[int, ...], *, target: str = "cpu", links: str | Sequence[str] | None = None,
              device: str | None = None, profile_file: str | Path | None = None) -> Mesh:
    """The mesh with built-in or user profiles. Defaults: target cuda is H100s over NVLink (and
    InfiniBand on the outer axis of a 2-D mesh); target cpu, processes over shared memory."""
    if profile_file is not None:
        return _from_file(shape, Path(profile_file))
    if device is None:
        device = "h100" if target == "cuda" else "cpu"
    if device not in DEVICES:
        raise CompileError(f"unknown device profile {device!r}; built in: {', '.join(DEVICES)}")
    if links is None:
        links = (["infiniband", "nvlink"] if len(shape) == 2 else ["nvlink"]) if target == "cuda" else ["shm"]
    if isinstance(links, str):
        links = [s.strip() for s in links.split(",")]
    links = list(links)
    if len(links) == 1:
        links = links * len(shape)
    if len(links) != len(shape):
        raise CompileError(f"{len(links)} links for a mesh of {len(shape)} axes; give one per axis or one for all")
    for name in links:
        if name not in LINKS:
            raise CompileError(f"unknown link profile {name!r}; built in: {', '.join(LINKS)}")
    return Mesh(shape, tuple(LINKS[n] for n in links), DEVICES[device])


def _from_file(shape: tuple[int, ...], path: Path) -> Mesh:
    where = f"profile file {str(path)!r}"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise CompileError(f"{where} cannot be read: {e.strerror or e}") from None
    except ValueError as e:
        raise CompileError(f"{where} is not valid JSON: {e}") from None
    try:
        d = data["device"]
        device = DeviceProfile(str(d.get("name", "device")), float(d["flops"]), float(d["bandwidth"]),
                               float(d["memory"]), float(d.get("overhead", 5e-6)), float(d.get("half_flops", 0.0)))
        links = [Link(str(x.get("name", f"link{i}")), float(x["bandwidth"]), float(x["latency"]))
                 for i, x in enumerate(data["links"])]
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise CompileError(f"{where}: expected {{\"device\": {{flops, bandwidth, memory[, overhead]}}, "
                           f"\"links\": [{{bandwidth, latency}}, ...]}}: {e!r}") from None
    if len(links) == 1:
        links = links * len(shape)
    if len(links) != len(shape):
        raise CompileError(f"{where} has {len(links)} links for a mesh of {len(shape)} axes")
    if any(v <= 0 for v in (device.flops, device.bandwidth, device.memory)) or \
            any(x.bandwidth <= 0 or x.latency < 0 for x in links):
        raise CompileError(f"{where}: rates and sizes must be positive")
    return Mesh(shape, tuple(links), device)

"""Meshes, link and device profiles, and the cost model's collectives."""
import json

import pytest

from flowc.errors import CompileError
from flowc.ir.passes.parallel import boxing_time, make_mesh, parse_mesh
from flowc.ir.sbp import B, P, S
from flowc.ir.types import TensorType, dtype


@pytest.mark.parametrize("text,shape", [(4, (4,)), ("4", (4,)), ("2x4", (2, 4)), (" 2 x 2 ", (2, 2)), ([3, 2], (3, 2))])
def test_parse_mesh(text, shape):
    assert parse_mesh(text) == shape


@pytest.mark.parametrize("text,message", [
    ("2*4", "mesh '2*4': write devices per axis joined by x, e.g. 4 or 2x4"),
    ("2x0", "mesh '2x0': every axis needs a positive number of devices"),
    ("2x2x2", "mesh '2x2x2': flowc plans 1-D and 2-D meshes"),
    (None, "mesh must be an int, a string like \"2x4\" or a list of ints, got None"),
])
def test_bad_meshes_are_named(text, message):
    with pytest.raises(CompileError) as e:
        parse_mesh(text)
    assert str(e.value) == message


def test_default_profiles_follow_the_target():
    gpu = make_mesh((2, 4), target="cuda")
    assert gpu.device.name == "h100" and [link.name for link in gpu.links] == ["infiniband", "nvlink"]
    cpu = make_mesh((2,), target="cpu")
    assert cpu.device.name == "cpu" and [link.name for link in cpu.links] == ["shm"]
    assert [link.name for link in make_mesh((2, 2), links="pcie,nvlink").links] == ["pcie", "nvlink"]


def test_a_topology_file_describes_other_machines(tmp_path):
    path = tmp_path / "topo.json"
    path.write_text(json.dumps({"device": {"name": "mine", "flops": 1e12, "bandwidth": 1e11, "memory": 1e9},
                                "links": [{"name": "slow", "bandwidth": 1e9, "latency": 1e-5}]}))
    mesh = make_mesh((2, 2), profile_file=path)
    assert mesh.device.name == "mine" and mesh.device.memory == 1e9
    assert [link.name for link in mesh.links] == ["slow", "slow"]
    path.write_text(json.dumps({"device": {"flops": 1}}))
    with pytest.raises(CompileError, match="expected"):
        make_mesh((2,), profile_file=path)
    with pytest.raises(CompileError, match="cannot be read"):
        make_mesh((2,), profile_file=tmp_path / "missing.json")


def test_collectives_cost_what_ring_algorithms_move():
    t = TensorType(dtype("f32"), (1024, 1024))   # 4 MiB
    fast, slow = make_mesh((4,), target="cuda", links="nvlink"), make_mesh((4,), target="cuda", links="pcie")
    reduce_fast = boxing_time((P,), (B,), t, fast)
    assert boxing_time((P,), (B,), t, slow) > 9 * reduce_fast   # 450 vs 25 GB/s, less the latencies
    # an all-reduce moves twice what a reduce-scatter or an all-gather of the result does
    scatter = boxing_time((P,), (S(0),), t, fast)
    gather = boxing_time((S(0),), (B,), t, fast)
    assert scatter < reduce_fast and gather < reduce_fast
    assert boxing_time((B,), (S(1),), t, fast) < scatter   # a local slice sends nothing
    assert boxing_time((S(0),), (S(0),), t, fast) == 0

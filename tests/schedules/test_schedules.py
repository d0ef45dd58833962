"""The schedule tables (schedules/cpu.py, schedules/cuda.py): each checked-in schedule.h is what its
module renders, every table holds what its kernels can run, and the emitters read the tables."""
from __future__ import annotations

import dataclasses
import re
import sys
import types

import pytest

import flowc
from flowc.codegen import cpu, cuda
from flowc.frontend.builder import GraphBuilder
from flowc.schedules import cpu as cpu_schedule
from flowc.schedules import cuda as cuda_schedule
from flowc.schedules import header

MODULES = {"cpu": cpu_schedule, "cuda": cuda_schedule}
SHARED_MEMORY = 48 * 1024   # what a block gets without opting in to more
MAX_BLOCK = 1024            # threads a block
WARP = 32


@pytest.mark.parametrize("target", MODULES)
def test_the_checked_in_header_is_what_the_tables_render(target):
    module = MODULES[target]
    assert module.HEADER.read_text() == module.render(), \
        f"{module.HEADER} is stale: run `python -m flowc.schedules.{target}`"


def _constants(text: str) -> dict[tuple[str, str], int]:
    """(namespace, constant) -> value of every `constexpr int` in a rendered header."""
    out, namespace = {}, None
    for line in text.splitlines():
        if m := re.fullmatch(r"namespace (\w+) \{", line):
            namespace = m.group(1)
        elif m := re.fullmatch(r"constexpr int (\w+) = (\d+)(?: << (\d+))?;", line):
            out[namespace, m.group(1)] = int(m.group(2)) << int(m.group(3) or 0)
    return out


@pytest.mark.parametrize("target", MODULES)
def test_every_field_becomes_a_constant_of_its_family(target):
    """Rendered names and literals (shifts included) read back as the tables' values."""
    module = MODULES[target]
    expected = {(family, header.constant_name(f.name)): getattr(table, f.name)
                for family, table in header.tables(module).items() for f in dataclasses.fields(table)}
    assert _constants(module.render()) == expected
    assert module.render().startswith(f"// Generated from schedules/{target}.py by "
                                      f"`python -m flowc.schedules.{target}`; do not edit.\n")


def test_a_value_the_header_cannot_declare_is_refused_with_its_name():
    @dataclasses.dataclass(frozen=True)
    class Tile:
        """A tile."""
        rows: int

    module = types.ModuleType("fake")
    module.TILE = Tile(rows=1 << 31)
    with pytest.raises(ValueError, match=re.escape("Tile.rows = 2147483648: the header declares an int; use an "
                                                   "integer in [0, 2147483647]")):
        header.render(module, "schedules/fake.py", "flowc::fake::schedule", "A fake.")


@pytest.mark.parametrize("target", MODULES)
def test_every_field_is_positive(target):
    """Sizes, counts and grains; only a threshold may be 0 (the small GEMM takes empty products only)."""
    thresholds = {("gemm", "small_macs")}
    for family, table in header.tables(MODULES[target]).items():
        for f in dataclasses.fields(table):
            value = getattr(table, f.name)
            assert value >= 0 if (family, f.name) in thresholds else value > 0, f"{family}.{f.name} = {value}"


def _block(threads: int) -> bool:
    """Whole warps, at most a block's limit (block_reduce keeps a value per warp in 32 slots)."""
    return threads % WARP == 0 and 0 < threads <= MAX_BLOCK


def test_cuda_blocks_are_whole_warps():
    s = cuda_schedule
    for name, threads in [("ELEMENTWISE.threads", s.ELEMENTWISE.threads), ("ROWS.block_threads", s.ROWS.block_threads),
                          ("ROWS.warp_block_threads", s.ROWS.warp_block_threads), ("TOPK.threads", s.TOPK.threads),
                          ("COLUMNS width x rows", s.COLUMNS.width * s.COLUMNS.rows),
                          ("ATTENTION.warps x 32", s.ATTENTION.warps * WARP)]:
        assert _block(threads), f"{name} = {threads}"
    # The row kernels' launch bounds are block_threads, which the warp-per-row blocks share.
    assert s.ROWS.warp_block_threads <= s.ROWS.block_threads
    assert s.ELEMENTWISE.max_blocks < 2 ** 31   # grid.x


def test_cuda_elementwise_indexes_in_32_bits_while_the_last_step_fits():
    e = cuda_schedule.ELEMENTWISE
    last = 2 ** 31 - e.max_blocks * e.threads
    assert e.fits_int32(last - 1) and not e.fits_int32(last)
    assert e.blocks(1) == 1 and e.blocks(e.threads + 1) == 2 and e.blocks(2 ** 40) == e.max_blocks


def test_cuda_middle_axis_tile_fits_shared_memory():
    """part[rows][width + 1] of the widest partial result, an arg-reduce's (value, index) of 16 bytes."""
    c = cuda_schedule.COLUMNS
    assert c.rows * (c.width + 1) * 16 <= SHARED_MEMORY


def test_cuda_attention_tile():
    """As attention.cuh lays it out: one key a lane, slices of 1, 2, 4 and max_cols_per_lane
    columns a lane, and the f32 tiles qs[rows][chunk], ks[chunk][keys], vs[keys][32 * cols] within
    the shared memory a block gets without opting in."""
    a = cuda_schedule.ATTENTION
    assert a.keys == WARP
    assert a.rows == a.warps * a.rows_per_warp
    assert a.max_cols_per_lane >= 4 and a.max_cols_per_lane & (a.max_cols_per_lane - 1) == 0
    tiles = 4 * (a.rows * a.chunk + a.chunk * a.keys + a.keys * WARP * a.max_cols_per_lane)
    assert tiles == a.shared_bytes <= SHARED_MEMORY, f"{tiles} bytes of shared memory"


def _graph():
    """z = relu(x[1000] + y[4, 1000]): one generated loop, broadcast over 4 rows."""
    b = GraphBuilder("g")
    x, y = b.input("x", "f32", [1000]), b.input("y", "f32", [4, 1000])
    b.output(b.op("Relu", b.op("Add", x, y)), name="z")
    return flowc.ir.passes.optimize(b.build())


def test_the_cuda_emitter_launches_with_the_table(tmp_path, monkeypatch):
    emit_module = sys.modules["flowc.codegen.cuda.emit"]
    monkeypatch.setattr(emit_module, "ELEMENTWISE", cuda_schedule.Elementwise(threads=128, max_blocks=8))
    cuda.emit(_graph(), tmp_path / "m")
    source = (tmp_path / "m" / "model.cu").read_text()
    assert "__launch_bounds__(128) k1(" in source and "int32_t(blockIdx.x) * 128 +" in source
    assert "k1<<<8, 128, 0, cu.stream>>>(" in source   # 4000 elements: 32 blocks of 128, capped at 8


def test_the_cpu_emitter_splits_with_the_table(tmp_path, monkeypatch):
    elementwise = sys.modules["flowc.codegen.cpu.elementwise"]
    monkeypatch.setattr(elementwise, "ELEMENTWISE", cpu_schedule.Elementwise(grain=3000))
    cpu.emit(_graph(), tmp_path / "m")
    assert "flowc::parallel_for(&par, 4, 3, " in (tmp_path / "m" / "model.cpp").read_text()   # 3000 // 1000 rows

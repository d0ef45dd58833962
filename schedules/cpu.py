"""How each CPU kernel family is blocked and split over the thread pool: one table per family.

A grain is the least work a task is given: flowc::parallel_for (runtime/kernels/cpu/parallel.h)
keeps a loop on the calling thread unless each thread would get that many items, since waking a
worker costs more than a smaller share saves. A loop over rows of n elements asks for
grain / (n + 1) + 1 rows a task, so every grain below counts elements (or bytes, where named).

codegen/cpu reads the tables for the code it generates; the kernel library (runtime/kernels/cpu)
reads them as the constants of schedule.h, which this module renders: `python -m flowc.schedules.cpu`
rewrites that header after a table changes, and tests/schedules checks that the checked-in header
is what the tables render. The numbers are chosen by hand (none is tuned per machine yet), each
with its reason above it.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from . import header

HEADER = Path(__file__).resolve().parents[1] / "runtime" / "kernels" / "cpu" / "schedule.h"


@dataclass(frozen=True)
class Elementwise:
    """Generated elementwise loops and the library's unary and binary kernels: `grain` elements a
    task (a broadcast loop over rows of n: max(1, grain / n) rows)."""
    grain: int


# 16K elements (64 KiB of f32): below that, a second thread costs about what it saves.
ELEMENTWISE = Elementwise(grain=1 << 14)


@dataclass(frozen=True)
class Gemm:
    """f32 GEMM (gemm.cpp): a product of at most `small_macs` multiply-adds runs flowc's own kernel
    (C in blocks of `small_n` columns by `small_k` of K, B packed when transposed), any other
    OpenBLAS, single-threaded per call; one of `parallel_macs` or more splits the larger of M and N
    over the pool in blocks that are multiples of `split_multiple`."""
    small_macs: int
    small_n: int
    small_k: int
    parallel_macs: int
    split_multiple: int


# OpenBLAS beat the small kernel at every size measured (16^3: 5.2 vs 2.8 GFLOP/s, 32^3: 30.9 vs
# 4.9; benchmarks/kernels_cpu.py), so only empty products take it; waking the pool costs about 1M
# multiply-adds (a 64x10x512 product: 69 GFLOP/s whole, 48-56 split in two); 16 is the width of
# OpenBLAS's micro-kernels.
GEMM = Gemm(small_macs=0, small_n=256, small_k=64, parallel_macs=1 << 20, split_multiple=16)


@dataclass(frozen=True)
class Conv:
    """Convolution through im2col (conv.cpp): `im2col_grain` rows of the column matrix a task (a
    row is one (channel, r, s), out_h * out_w long)."""
    im2col_grain: int


# A row is a whole output plane: a few of them already outweigh waking a worker.
CONV = Conv(im2col_grain=4)


@dataclass(frozen=True)
class Pool:
    """Pools (pool.cpp): a plane a task, except max pooling with indices, whose tasks take
    indices_grain / (out_w * window + 1) + 1 output rows."""
    indices_grain: int


# Each output visits a whole window: 1K visits a task.
POOL = Pool(indices_grain=1 << 10)


@dataclass(frozen=True)
class Normalization:
    """Softmax, log-softmax and layer norm (normalization.cpp): a row's sums in `lanes` independent
    accumulators (vectorised), grain / (n + 1) + 1 rows a task; a middle-axis softmax in blocks of
    `columns` columns, grain / (n * columns) + 1 blocks a task."""
    lanes: int
    columns: int
    grain: int


# 16 lanes: whole vectors of f32 at any x86 width (4 SSE, 2 AVX2 or 1 AVX-512 register) and short
# rounding chains (the lane count is part of how the sums round); 64 columns of running max and
# sum stay in L1 across the axis; 4K elements: each costs an exp or two, a quarter of the
# elementwise grain.
NORMALIZATION = Normalization(lanes=16, columns=64, grain=1 << 12)


@dataclass(frozen=True)
class GroupNorm:
    """Group and instance norm (group_norm.cpp): a group's sums in `lanes` independent
    accumulators, grain / (n + 1) + 1 groups of n elements a task."""
    lanes: int
    grain: int


# 16 lanes as the normalizations'; two passes and a write over each group, but no exp: between
# the softmax's grain and the elementwise one.
GROUP_NORM = GroupNorm(lanes=16, grain=1 << 13)


@dataclass(frozen=True)
class Reduce:
    """Reductions, arg-reductions and cumulative sums (reduce.cpp): a trailing axis of n folded in
    `lanes` accumulators, grain / (n + 1) + 1 rows a task; middle axes in blocks of `columns`
    columns, grain / (n * columns + 1) + 1 blocks a task; top-k topk_grain / (n + 1) + 1 columns a task."""
    lanes: int
    columns: int
    grain: int
    topk_grain: int


# 16 lanes as the normalizations'; a block of 256 columns keeps 1 KiB of f32 accumulators; a fold
# costs one add an element, as elementwise code, while top-k sorts (a quarter of that grain).
REDUCE = Reduce(lanes=16, columns=256, grain=1 << 14, topk_grain=1 << 12)


@dataclass(frozen=True)
class Layout:
    """Data movement (layout.cpp, gather_elements.cpp): `grain_bytes` bytes a task; transposes in
    tiles of `transpose_tile` x `transpose_tile` elements; GatherElements
    gather_elements_grain / (n + 1) + 1 rows of n a task."""
    grain_bytes: int
    transpose_tile: int
    gather_elements_grain: int


# 64 KiB copied a task, as the elementwise grain's 16K f32; a 16 x 16 tile of f32 reads 16 cache
# lines of x and writes 16 of y; a gather moves an element per index, as elementwise code.
LAYOUT = Layout(grain_bytes=1 << 16, transpose_tile=16, gather_elements_grain=1 << 14)


@dataclass(frozen=True)
class Resize:
    """Resize (resize.cpp): nearest copies nearest_grain / out_w output rows a task; linear and
    cubic, which compute each output from its taps, linear_grain / (out_w + in_w) rows."""
    nearest_grain: int
    linear_grain: int


# Nearest is a copy (the elementwise grain); an interpolated row costs a pass over its input row
# and one over the output, with several taps each (a quarter of it).
RESIZE = Resize(nearest_grain=1 << 14, linear_grain=1 << 12)


@dataclass(frozen=True)
class Attention:
    """FusedAttention (generated by codegen/cpu/emit.py): a task per batch index and `rows` query
    rows, its rows x keys scores in a per-thread buffer that no step writes out."""
    rows: int


# 32 rows: the Q block makes a GEMM of useful size, and 32 rows of scores over 1K keys (128 KiB)
# stay in L2 between the GEMMs.
ATTENTION = Attention(rows=32)


def render() -> str:
    """schedule.h for these tables."""
    return header.render(sys.modules[__name__], "schedules/cpu.py", "flowc::cpu::schedule",
                         "How each CPU kernel family is blocked and split over threads; the reasons are in that file.")


if __name__ == "__main__":
    header.write(HEADER, render())

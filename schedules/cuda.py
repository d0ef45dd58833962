"""How each CUDA kernel family is tiled and mapped to threads: one table per family.

codegen/cuda/emit.py reads the tables for the kernels it generates; the kernel library
(runtime/kernels/cuda) reads them as the constants of schedule.h, which this module renders:
`python -m flowc.schedules.cuda` rewrites that header after a table changes, and
tests/schedules checks that the checked-in header is what the tables render. The numbers are
chosen by hand for sm_80 and sm_90 (none is tuned per GPU yet), each with its reason above it.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from . import header

HEADER = Path(__file__).resolve().parents[1] / "runtime" / "kernels" / "cuda" / "schedule.h"
WARP = 32


@dataclass(frozen=True)
class Elementwise:
    """One thread per element in grid-stride loops: the generated elementwise kernels and the
    library's layout, pool, resize, depthwise-conv, im2col, col2im and cumsum kernels.
    `threads` per block, at most `max_blocks` blocks (each thread then loops over the rest)."""
    threads: int
    max_blocks: int

    def blocks(self, n: int) -> int:
        """Blocks of a launch over n > 0 elements."""
        return min(-(-n // self.threads), self.max_blocks)

    def fits_int32(self, n: int) -> bool:
        """Whether a loop over n elements indexes in int32: its last step stays below 2^31."""
        return n + self.max_blocks * self.threads < 2 ** 31


# 8 warps a block, so that several blocks share an SM (8 fill its 2048 threads); 2^16 blocks are
# dozens of waves on any current GPU (an H100 holds about 1000 such blocks at once), and the
# grid-stride loop covers the rest with a grid of bounded size.
ELEMENTWISE = Elementwise(threads=256, max_blocks=1 << 16)


@dataclass(frozen=True)
class Rows:
    """Softmax, log-softmax, layer norm, trailing reductions and row arg-reductions: a warp per
    row of at most `warp_row_limit` elements, `warp_block_threads` threads (a row per warp) a
    block; a longer row gets a block of `block_threads`, as does each (sample, group) of group norm."""
    warp_row_limit: int
    warp_block_threads: int
    block_threads: int


# Up to 32 elements a lane one warp reduces a row with shuffles alone (no barrier), 8 rows a block
# as the elementwise kernels' 256 threads; a longer row is shared by 16 warps, so that a few long
# rows still fill the GPU.
ROWS = Rows(warp_row_limit=1024, warp_block_threads=256, block_threads=512)


@dataclass(frozen=True)
class Columns:
    """Reductions, arg-reductions and softmax over a middle axis of [outer, n, inner]: a block per
    `width` adjacent columns (threadIdx.x), `rows` threads a column (threadIdx.y) walking the
    axis, their partial results combined in shared memory."""
    width: int
    rows: int


# 32 columns: a warp reads 32 adjacent f32 (one 128-byte line) per step along the axis; 8 rows
# make a block of 256 threads and split a long axis 8 ways.
COLUMNS = Columns(width=32, rows=8)


@dataclass(frozen=True)
class TopK:
    """Top-k: a block of `threads` per column, k rounds of a block-wide selection of the next element."""
    threads: int


# 16 warps share each round's pass over the column (n / 512 loads a thread, then one block reduction).
TOPK = TopK(threads=512)


@dataclass(frozen=True)
class Attention:
    """Fused attention (attention.cuh): a block of `warps` warps takes `rows_per_warp` query rows a
    warp and walks the keys in tiles of `keys` (one a lane), staging Q and K^T `chunk` head-dim
    columns at a time; a lane accumulates up to `max_cols_per_lane` output columns, so wider
    heads run in slices of max_cols_per_lane * 32 columns."""
    warps: int
    rows_per_warp: int
    keys: int
    chunk: int
    max_cols_per_lane: int

    @property
    def rows(self) -> int:
        """Query rows a block."""
        return self.warps * self.rows_per_warp

    @property
    def shared_bytes(self) -> int:
        """The block's f32 tiles at the widest slice: Q [rows, chunk], K^T [chunk, keys], V [keys, slice]."""
        slice_ = self.max_cols_per_lane * WARP
        return 4 * (self.rows * self.chunk + self.chunk * self.keys + self.keys * slice_)


# 2 rows a warp use each staged key twice; 64-column chunks and 8 columns a lane (heads up to 256
# in one pass) keep the tiles at 44 KiB, within the 48 KiB a block gets without opting in.
ATTENTION = Attention(warps=8, rows_per_warp=2, keys=32, chunk=64, max_cols_per_lane=8)


@dataclass(frozen=True)
class Conv:
    """Convolutions through im2col (conv.cu): the columns of as many images as fit in
    `im2col_bytes` (at least one) per round of GEMMs; the step's workspace is that size."""
    im2col_bytes: int


# Room for the columns of several images of a usual CNN layer (batched GEMMs), yet a small share
# of a GPU's memory.
CONV = Conv(im2col_bytes=64 << 20)


@dataclass(frozen=True)
class Gemm:
    """cuBLASLt GEMMs (gemm.cu): `workspace_bytes` of device memory a stream that its algorithm
    heuristic may use (split-K needs it); runtime/device/cuda allocates it. Where cuBLASLt has
    no algorithm for a product (an f16 operand at an odd leading dimension, say), a plain
    shared-memory kernel computes it in `fallback_tile`-square tiles, a thread per element."""
    workspace_bytes: int
    fallback_tile: int


# cuBLAS's documented recommendation for Hopper (4 MiB suffices before it). The fallback is for
# correctness, not speed: 16 x 16 = 256 threads, two 16 x 17 float tiles (2 KiB) of shared memory.
GEMM = Gemm(workspace_bytes=32 << 20, fallback_tile=16)


def render() -> str:
    """schedule.h for these tables."""
    return header.render(sys.modules[__name__], "schedules/cuda.py", "flowc::cuda::schedule",
                         "How each CUDA kernel family is tiled and mapped to threads; the reasons are in that file.")


if __name__ == "__main__":
    header.write(HEADER, render())

// Generated from schedules/cuda.py by `python -m flowc.schedules.cuda`; do not edit.
// How each CUDA kernel family is tiled and mapped to threads; the reasons are in that file.
#pragma once

namespace flowc::cuda::schedule {

// One thread per element in grid-stride loops: the generated elementwise kernels and the
// library's layout, pool, resize, depthwise-conv, im2col, col2im and cumsum kernels.
// `threads` per block, at most `max_blocks` blocks (each thread then loops over the rest).
namespace elementwise {
constexpr int kThreads = 256;
constexpr int kMaxBlocks = 1 << 16;
}  // namespace elementwise

// Softmax, log-softmax, layer norm, trailing reductions and row arg-reductions: a warp per
// row of at most `warp_row_limit` elements, `warp_block_threads` threads (a row per warp) a
// block; a longer row gets a block of `block_threads`, as does each (sample, group) of group norm.
namespace rows {
constexpr int kWarpRowLimit = 1024;
constexpr int kWarpBlockThreads = 256;
constexpr int kBlockThreads = 512;
}  // namespace rows

// Reductions, arg-reductions and softmax over a middle axis of [outer, n, inner]: a block per
// `width` adjacent columns (threadIdx.x), `rows` threads a column (threadIdx.y) walking the
// axis, their partial results combined in shared memory.
namespace columns {
constexpr int kWidth = 32;
constexpr int kRows = 8;
}  // namespace columns

// Top-k: a block of `threads` per column, k rounds of a block-wide selection of the next element.
namespace topk {
constexpr int kThreads = 512;
}  // namespace topk

// Fused attention (attention.cuh): a block of `warps` warps takes `rows_per_warp` query rows a
// warp and walks the keys in tiles of `keys` (one a lane), staging Q and K^T `chunk` head-dim
// columns at a time; a lane accumulates up to `max_cols_per_lane` output columns, so wider
// heads run in slices of max_cols_per_lane * 32 columns.
namespace attention {
constexpr int kWarps = 8;
constexpr int kRowsPerWarp = 2;
constexpr int kKeys = 32;
constexpr int kChunk = 64;
constexpr int kMaxColsPerLane = 8;
}  // namespace attention

// Convolutions through im2col (conv.cu): the columns of as many images as fit in
// `im2col_bytes` (at least one) per round of GEMMs; the step's workspace is that size.
namespace conv {
constexpr int kIm2colBytes = 64 << 20;
}  // namespace conv

// cuBLASLt GEMMs (gemm.cu): `workspace_bytes` of device memory a stream that its algorithm
// heuristic may use (split-K needs it); runtime/device/cuda allocates it. Where cuBLASLt has
// no algorithm for a product (an f16 operand at an odd leading dimension, say), a plain
// shared-memory kernel computes it in `fallback_tile`-square tiles, a thread per element.
namespace gemm {
constexpr int kWorkspaceBytes = 32 << 20;
constexpr int kFallbackTile = 16;
}  // namespace gemm

}  // namespace flowc::cuda::schedule

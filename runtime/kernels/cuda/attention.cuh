// Fused attention for generated code (header-only: the epilogue is the caller's functor):
//   y[b, i, :] = sum_j p_j V[b, j, :],  p = softmax_j(epi(sum_c Q[b, i, c] KT[b, c, j], b, i, j)),
// Q [B, M, K], KT [B, K, N] (keys already transposed), V [B, N, D], y [B, M, D], row-major, the
// batch flattened; stored as f32, f16 or bf16 (flowc_cuda_attention_f32, _f16, _bf16), computed in f32.
// Epi: `__device__ float operator()(float score, int64_t b, int64_t i, int64_t j) const`, applying
// scale and mask (a masked score may be -inf).
//
// Flash-style, in f32 on the CUDA cores: a block of 8 warps takes 16 query rows of one batch index
// (2 rows per warp) and walks the keys in tiles of 32, one key per lane. Per tile, Q and K^T are
// staged in shared memory 64 head-dim columns at a time, each lane accumulates its key's score for
// its warp's two rows, the warp turns scores into probabilities against a running max and sum
// (online softmax), stages the tile of V and adds p_j V[j, :] into per-lane accumulators (lane l
// owns output columns l, l + 32, ...). Memory does not grow with N or K; shared memory is at most
// 44 KB (no opt-in needed). Head dims K of any size; D up to 256 in one pass, larger D in slices of
// 256 (grid.y), each slice recomputing the scores: slower, same result. (These numbers are
// schedules/cuda.py's ATTENTION, through schedule.h.)
//
// Softmax as numpy (the graph's reference): a NaN score makes its row NaN, and a row whose scores
// are all -inf is NaN (0 / 0), as flowc_cuda_softmax_f32 gives. N == 0 writes zeros, as the CPU's
// GEMMs do.
#pragma once

#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>

#include "common.cuh"

namespace flowc::cuda::attention {

// The tile, from schedule.h.
using schedule::attention::kWarps;
using schedule::attention::kRowsPerWarp;
constexpr int kRows = kWarps * kRowsPerWarp;  // query rows per block
using schedule::attention::kKeys;             // keys per tile: one per lane
using schedule::attention::kChunk;            // head-dim columns of Q and K^T staged at a time
using schedule::attention::kMaxColsPerLane;   // output columns per lane: slices of 32 times that
static_assert(kKeys == 32, "a tile holds one key per lane");
static_assert(sizeof(float) * (kRows * kChunk + kChunk * kKeys + kKeys * kMaxColsPerLane * 32) <= 48 * 1024,
              "the tiles must fit the 48 KiB of shared memory a block gets without opting in");

// Shared memory holds f32 whatever the storage type: loads widen as they stage.
template <int ColsPerLane, class Epi, class T>
__global__ void __launch_bounds__(kWarps * 32)
    flash_kernel(int64_t m, int64_t k, int64_t n, int64_t d, int64_t row_tiles, const T* __restrict__ q,
                 const T* __restrict__ kt, const T* __restrict__ v, T* __restrict__ y, Epi epi) {
  constexpr int kSlice = ColsPerLane * 32;
  __shared__ float qs[kRows][kChunk];   // broadcast reads: no bank conflicts
  __shared__ float ks[kChunk][kKeys];   // lane = key
  __shared__ float vs[kKeys][kSlice];   // lane + 32 c = output column
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int64_t b = blockIdx.x / row_tiles, i0 = blockIdx.x % row_tiles * kRows;
  const int64_t d0 = int64_t(blockIdx.y) * kSlice;
  const T* qb = q + b * m * k;
  const T* kb = kt + b * k * n;
  const T* vb = v + b * n * d;

  float row_max[kRowsPerWarp], row_sum[kRowsPerWarp], acc[kRowsPerWarp][ColsPerLane];
#pragma unroll
  for (int r = 0; r < kRowsPerWarp; ++r) {
    row_max[r] = -INFINITY;
    row_sum[r] = 0.0f;
#pragma unroll
    for (int c = 0; c < ColsPerLane; ++c) acc[r][c] = 0.0f;
  }

  for (int64_t j0 = 0; j0 < n; j0 += kKeys) {
    // Scores of this lane's key for the warp's rows, 64 head-dim columns at a time.
    float s[kRowsPerWarp];
#pragma unroll
    for (int r = 0; r < kRowsPerWarp; ++r) s[r] = 0.0f;
    for (int64_t c0 = 0; c0 < k; c0 += kChunk) {
      __syncthreads();  // the previous chunk's readers are done
      for (int e = threadIdx.x; e < kRows * kChunk; e += blockDim.x) {
        const int64_t i = i0 + e / kChunk, c = c0 + e % kChunk;
        qs[e / kChunk][e % kChunk] = i < m && c < k ? load(qb[i * k + c]) : 0.0f;
      }
      for (int e = threadIdx.x; e < kChunk * kKeys; e += blockDim.x) {
        const int64_t c = c0 + e / kKeys, j = j0 + e % kKeys;
        ks[e / kKeys][e % kKeys] = c < k && j < n ? load(kb[c * n + j]) : 0.0f;
      }
      __syncthreads();
      const int width = int(k - c0 < kChunk ? k - c0 : kChunk);
      for (int c = 0; c < width; ++c) {
        const float key = ks[c][lane];
#pragma unroll
        for (int r = 0; r < kRowsPerWarp; ++r) s[r] += qs[warp * kRowsPerWarp + r][c] * key;
      }
    }

    // Online softmax: rescale what the row has so far to the new running max.
    float p[kRowsPerWarp];
    const int64_t j = j0 + lane;
#pragma unroll
    for (int r = 0; r < kRowsPerWarp; ++r) {
      const int64_t i = i0 + warp * kRowsPerWarp + r;
      const float score = i < m && j < n ? epi(s[r], b, i, j) : -INFINITY;
      const float new_max = fmaxf(row_max[r], warp_max(score));
      float scale;
      if (new_max == -INFINITY) {  // every score so far is -inf: nothing to add (a NaN still poisons)
        scale = 1.0f;
        p[r] = score != score ? score : 0.0f;
      } else {
        scale = expf(row_max[r] - new_max);
        p[r] = expf(score - new_max);
      }
      row_sum[r] = row_sum[r] * scale + warp_sum(p[r]);
      row_max[r] = new_max;
#pragma unroll
      for (int c = 0; c < ColsPerLane; ++c) acc[r][c] *= scale;
    }

    // acc += p V over this tile's keys.
    __syncthreads();  // the previous tile's readers of vs are done
    for (int e = threadIdx.x; e < kKeys * kSlice; e += blockDim.x) {
      const int64_t jj = j0 + e / kSlice, c = d0 + e % kSlice;
      vs[e / kSlice][e % kSlice] = jj < n && c < d ? load(vb[jj * d + c]) : 0.0f;
    }
    __syncthreads();
    const int keys = int(n - j0 < kKeys ? n - j0 : kKeys);
    for (int key = 0; key < keys; ++key) {
      float pk[kRowsPerWarp];
#pragma unroll
      for (int r = 0; r < kRowsPerWarp; ++r) pk[r] = __shfl_sync(0xffffffffu, p[r], key);
#pragma unroll
      for (int c = 0; c < ColsPerLane; ++c) {
        const float value = vs[key][lane + 32 * c];
#pragma unroll
        for (int r = 0; r < kRowsPerWarp; ++r) acc[r][c] += pk[r] * value;
      }
    }
  }

#pragma unroll
  for (int r = 0; r < kRowsPerWarp; ++r) {
    const int64_t i = i0 + warp * kRowsPerWarp + r;
    if (i >= m) continue;
    const float inv = 1.0f / row_sum[r];  // 0 for a row of -inf: 0 * inf = NaN, as numpy
#pragma unroll
    for (int c = 0; c < ColsPerLane; ++c) {
      const int64_t col = d0 + lane + 32 * c;
      if (col < d) y[(b * m + i) * d + col] = store<T>(acc[r][c] * inv);
    }
  }
}

template <int ColsPerLane, class Epi, class T>
const char* launch(int64_t batch, int64_t m, int64_t k, int64_t n, int64_t d, const T* q, const T* kt, const T* v,
                   T* y, const Epi& epi, const flowc_cuda* cu) {
  const int64_t row_tiles = (m + kRows - 1) / kRows, slice = ColsPerLane * 32;
  const int64_t blocks = batch * row_tiles, slices = (d + slice - 1) / slice;
  if (blocks > 0x7fffffff || slices > 65535)
    return FLOWC_CUDA_NAMED(T, "flowc_cuda_attention", ": too many query rows or columns");
  flash_kernel<ColsPerLane, Epi><<<dim3(unsigned(blocks), unsigned(slices)), kWarps * 32, 0, cu->stream>>>(
      m, k, n, d, row_tiles, q, kt, v, y, epi);
  const cudaError_t err = cudaGetLastError();
  return err == cudaSuccess ? nullptr : cudaGetErrorString(err);
}

template <class Epi, class T>
const char* attention(int64_t batch, int64_t m, int64_t k, int64_t n, int64_t d, const T* q, const T* kt, const T* v,
                      T* y, const Epi& epi, const flowc_cuda* cu) {
  if (batch < 0 || m < 0 || k < 0 || n < 0 || d < 0)
    return FLOWC_CUDA_NAMED(T, "flowc_cuda_attention", ": a negative size");
  if (batch == 0 || m == 0 || d == 0) return nullptr;
  if (n == 0) {  // an empty softmax @ an empty V: zeros, as the CPU's GEMMs give
    const cudaError_t err = cudaMemsetAsync(y, 0, size_t(batch * m * d) * sizeof(T), cu->stream);
    return err == cudaSuccess ? nullptr : cudaGetErrorString(err);
  }
  if (d <= 32) return launch<1>(batch, m, k, n, d, q, kt, v, y, epi, cu);
  if (d <= 64) return launch<2>(batch, m, k, n, d, q, kt, v, y, epi, cu);
  if (d <= 128) return launch<4>(batch, m, k, n, d, q, kt, v, y, epi, cu);
  return launch<kMaxColsPerLane>(batch, m, k, n, d, q, kt, v, y, epi, cu);
}

}  // namespace flowc::cuda::attention

// y = softmax(epi(Q KT)) V per batch index (see the top of this file); null on success.
template <class Epi>
const char* flowc_cuda_attention_f32(int64_t batch, int64_t m, int64_t k, int64_t n, int64_t d, const float* q,
                                     const float* kt, const float* v, float* y, Epi epi, const flowc_cuda* cu) {
  return flowc::cuda::attention::attention(batch, m, k, n, d, q, kt, v, y, epi, cu);
}
template <class Epi>
const char* flowc_cuda_attention_f16(int64_t batch, int64_t m, int64_t k, int64_t n, int64_t d, const __half* q,
                                     const __half* kt, const __half* v, __half* y, Epi epi, const flowc_cuda* cu) {
  return flowc::cuda::attention::attention(batch, m, k, n, d, q, kt, v, y, epi, cu);
}
template <class Epi>
const char* flowc_cuda_attention_bf16(int64_t batch, int64_t m, int64_t k, int64_t n, int64_t d,
                                      const __nv_bfloat16* q, const __nv_bfloat16* kt, const __nv_bfloat16* v,
                                      __nv_bfloat16* y, Epi epi, const flowc_cuda* cu) {
  return flowc::cuda::attention::attention(batch, m, k, n, d, q, kt, v, y, epi, cu);
}

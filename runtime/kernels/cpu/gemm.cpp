#include "gemm.h"

#include <cblas.h>

#include <algorithm>
#include <mutex>

#include "schedule.h"

namespace {

using flowc::parallel_for;
using flowc::parallel_threads;
namespace schedule = flowc::cpu::schedule;

// OpenBLAS would start its own threads next to the runtime's: keep it to the calling thread.
void blas_single_threaded() {
  static std::once_flag once;
  std::call_once(once, [] { openblas_set_num_threads(1); });
}

void blas(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
          const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
              (int)M, (int)N, (int)K, alpha, A, (int)lda, B, (int)ldb, beta, C, (int)ldc);
}

// Products up to this many multiply-adds go to flowc's small kernel (for now only empty ones: see
// schedules/cpu.py's GEMM).
constexpr int64_t kSmallMacs = schedule::gemm::kSmallMacs;

bool is_small(int64_t M, int64_t N, int64_t K) { return M * N * K <= kSmallMacs; }

}  // namespace

void flowc_gemm_small_f32(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                          const float* A, int64_t lda, const float* B, int64_t ldb, float beta,
                          float* C, int64_t ldc) {
  // One row of C at a time in a local accumulator, B walked row by row (transposed B is read
  // through a packed copy so the inner loop stays contiguous and vectorises), in blocks of kMaxN
  // columns by kMaxK of K.
  constexpr int64_t kMaxN = schedule::gemm::kSmallN, kMaxK = schedule::gemm::kSmallK;
  float acc[kMaxN];
  float bt[kMaxN * kMaxK];
  for (int64_t n0 = 0; n0 < N; n0 += kMaxN) {
    int64_t nb = std::min(kMaxN, N - n0);
    for (int64_t k0 = 0; k0 < K || k0 == 0; k0 += kMaxK) {
      int64_t kb = std::min<int64_t>(kMaxK, K - k0);
      const float* bp;
      int64_t ldbp;
      if (trans_b) {
        for (int64_t k = 0; k < kb; ++k)
          for (int64_t j = 0; j < nb; ++j) bt[k * nb + j] = B[(n0 + j) * ldb + k0 + k];
        bp = bt;
        ldbp = nb;
      } else {
        bp = B + k0 * ldb + n0;
        ldbp = ldb;
      }
      bool first = k0 == 0;
      for (int64_t i = 0; i < M; ++i) {
        float* __restrict c = C + i * ldc + n0;
        float* __restrict a_acc = acc;
        for (int64_t j = 0; j < nb; ++j) a_acc[j] = 0.0f;
        for (int64_t k = 0; k < kb; ++k) {
          float a = trans_a ? A[(k0 + k) * lda + i] : A[i * lda + k0 + k];
          const float* __restrict b = bp + k * ldbp;
          for (int64_t j = 0; j < nb; ++j) a_acc[j] += a * b[j];
        }
        if (first) {
          if (beta == 0.0f) for (int64_t j = 0; j < nb; ++j) c[j] = alpha * a_acc[j];
          else for (int64_t j = 0; j < nb; ++j) c[j] = alpha * a_acc[j] + beta * c[j];
        } else {
          for (int64_t j = 0; j < nb; ++j) c[j] += alpha * a_acc[j];
        }
      }
      if (K == 0) break;
    }
  }
}

void flowc_gemm_blas_f32(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha,
                         const float* A, int64_t lda, const float* B, int64_t ldb, float beta,
                         float* C, int64_t ldc, const flowc_parallel* par) {
  if (M == 0 || N == 0) return;
  blas_single_threaded();
  int threads = parallel_threads(par);
  // Waking the pool costs about as much as kParallelMacs multiply-adds single-threaded.
  if (threads == 1 || M * N * K < schedule::gemm::kParallelMacs) {
    blas(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    return;
  }
  // Split the larger of M and N into one block per thread, in multiples of kSplit rows or
  // columns (the BLAS micro-kernels' widths), so each thread runs one single-threaded BLAS call.
  constexpr int64_t kSplit = schedule::gemm::kSplitMultiple;
  bool split_m = M >= N;
  int64_t extent = split_m ? M : N;
  int64_t block = (extent + threads - 1) / threads;
  block = std::min(extent, (block + kSplit - 1) / kSplit * kSplit);
  int64_t blocks = (extent + block - 1) / block;
  parallel_for(par, blocks, 1, [&](int64_t lo, int64_t hi) {
    for (int64_t p = lo; p < hi; ++p) {
      int64_t b = p * block, e = std::min(extent, b + block);
      if (split_m) {
        const float* a = ta ? A + b : A + b * lda;
        blas(ta, tb, e - b, N, K, alpha, a, lda, B, ldb, beta, C + b * ldc, ldc);
      } else {
        const float* bb = tb ? B + b * ldb : B + b;
        blas(ta, tb, M, e - b, K, alpha, A, lda, bb, ldb, beta, C + b, ldc);
      }
    }
  });
}

void flowc_gemm_f32(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
                    int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc,
                    const flowc_parallel* par) {
  if (is_small(M, N, K)) flowc_gemm_small_f32(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
  else flowc_gemm_blas_f32(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, par);
}

void flowc_gemm_batched_f32(int64_t batch, bool ta, bool tb, int64_t M, int64_t N, int64_t K,
                            float alpha, const float* A, int64_t lda, int64_t stride_a,
                            const float* B, int64_t ldb, int64_t stride_b, float beta, float* C,
                            int64_t ldc, int64_t stride_c, const flowc_parallel* par) {
  if (batch <= 0 || M == 0 || N == 0) return;
  blas_single_threaded();
  // Enough products to go round: one whole product per thread; otherwise split each product.
  if (batch >= parallel_threads(par) && parallel_threads(par) > 1) {
    parallel_for(par, batch, 1, [&](int64_t lo, int64_t hi) {
      for (int64_t i = lo; i < hi; ++i)
        flowc_gemm_f32(ta, tb, M, N, K, alpha, A + i * stride_a, lda, B + i * stride_b, ldb, beta,
                       C + i * stride_c, ldc, nullptr);
    });
    return;
  }
  for (int64_t i = 0; i < batch; ++i)
    flowc_gemm_f32(ta, tb, M, N, K, alpha, A + i * stride_a, lda, B + i * stride_b, ldb, beta,
                   C + i * stride_c, ldc, par);
}

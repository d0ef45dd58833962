// Row-major single-precision matrix products.
#pragma once

#include <cstdint>

#include "parallel.h"

// C = alpha * op(A) @ op(B) + beta * C, with op(A) M x K and op(B) K x N, all row-major;
// lda/ldb/ldc are row strides in elements. beta == 0 ignores C's contents (NaNs included).
// Tiny products run flowc's own kernel, the rest OpenBLAS (one BLAS thread per part of par).
void flowc_gemm_f32(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                    const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C,
                    int64_t ldc, const flowc_parallel* par);

// `batch` independent products; each operand advances by its batch stride (0 broadcasts it).
void flowc_gemm_batched_f32(int64_t batch, bool trans_a, bool trans_b, int64_t M, int64_t N,
                            int64_t K, float alpha, const float* A, int64_t lda, int64_t stride_a,
                            const float* B, int64_t ldb, int64_t stride_b, float beta, float* C,
                            int64_t ldc, int64_t stride_c, const flowc_parallel* par);

// Always the BLAS path or always flowc's small kernel: for tests and benchmarks.
void flowc_gemm_blas_f32(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                         const float* A, int64_t lda, const float* B, int64_t ldb, float beta,
                         float* C, int64_t ldc, const flowc_parallel* par);
void flowc_gemm_small_f32(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                          const float* A, int64_t lda, const float* B, int64_t ldb, float beta,
                          float* C, int64_t ldc);

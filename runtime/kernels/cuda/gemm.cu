// Row-major GEMM through cuBLASLt, over f32, f16 or bf16 storage (A, B, C and the bias of one type),
// always CUBLAS_COMPUTE_32F with float alpha and beta.
//
// cuBLASLt is column-major; a row-major C [M, N] is the column-major C^T [N, M] with the same ld,
// so the call computes C^T = op(B)^T op(A)^T: cuBLASLt's "A" is our B, its "B" our A, m = N, n = M.
// cuBLASLt's bias runs along the rows of its D, which are then our columns: the bias[n] of the
// header is exactly CUBLASLT_EPILOGUE_BIAS, with no copy or transpose.
//
// The algorithm of each shape (and alignment, epilogue, workspace) is cached behind a mutex; the
// descriptors are made per call (cheap host work), so concurrent streams share nothing mutable.
// When cuBLASLt has no algorithm with the epilogue (or the bias is not 16-byte aligned, which
// fused bias kernels need), the product runs plain and a small kernel adds bias and activation
// (in fp16 and bf16 then rounding C twice, once by the product and once after the bias). When it
// has none for the plain product either, a tiled kernel of its own computes it (slowly).
#include <cublasLt.h>

#include <algorithm>
#include <array>
#include <map>
#include <mutex>

#include "common.cuh"
#include "elementwise.cuh"

namespace flowc::cuda {
namespace {

// "<call>: <status>" as static text.
#define FLOWC_LT_MESSAGES(CALL)                                                        \
  const char* CALL##_error(cublasStatus_t s) {                                         \
    switch (s) {                                                                       \
      case CUBLAS_STATUS_NOT_INITIALIZED: return #CALL ": CUBLAS_STATUS_NOT_INITIALIZED"; \
      case CUBLAS_STATUS_ALLOC_FAILED: return #CALL ": CUBLAS_STATUS_ALLOC_FAILED";       \
      case CUBLAS_STATUS_INVALID_VALUE: return #CALL ": CUBLAS_STATUS_INVALID_VALUE";     \
      case CUBLAS_STATUS_ARCH_MISMATCH: return #CALL ": CUBLAS_STATUS_ARCH_MISMATCH";     \
      case CUBLAS_STATUS_MAPPING_ERROR: return #CALL ": CUBLAS_STATUS_MAPPING_ERROR";     \
      case CUBLAS_STATUS_EXECUTION_FAILED: return #CALL ": CUBLAS_STATUS_EXECUTION_FAILED"; \
      case CUBLAS_STATUS_INTERNAL_ERROR: return #CALL ": CUBLAS_STATUS_INTERNAL_ERROR";   \
      case CUBLAS_STATUS_NOT_SUPPORTED: return #CALL ": CUBLAS_STATUS_NOT_SUPPORTED";     \
      case CUBLAS_STATUS_LICENSE_ERROR: return #CALL ": CUBLAS_STATUS_LICENSE_ERROR";     \
      default: return #CALL ": unknown cuBLAS status";                                  \
    }                                                                                  \
  }

FLOWC_LT_MESSAGES(cublasLtMatmulDescCreate)
FLOWC_LT_MESSAGES(cublasLtMatmulDescSetAttribute)
FLOWC_LT_MESSAGES(cublasLtMatrixLayoutCreate)
FLOWC_LT_MESSAGES(cublasLtMatrixLayoutSetAttribute)
FLOWC_LT_MESSAGES(cublasLtMatmulPreferenceCreate)
FLOWC_LT_MESSAGES(cublasLtMatmulPreferenceSetAttribute)
FLOWC_LT_MESSAGES(cublasLtMatmulAlgoGetHeuristic)
FLOWC_LT_MESSAGES(cublasLtMatmul)
#undef FLOWC_LT_MESSAGES

#define FLOWC_LT_TRY(CALL, ...)                                     \
  do {                                                              \
    const cublasStatus_t s_ = CALL(__VA_ARGS__);                    \
    if (s_ != CUBLAS_STATUS_SUCCESS) return CALL##_error(s_);       \
  } while (0)

struct MatmulDesc {
  cublasLtMatmulDesc_t d = nullptr;
  ~MatmulDesc() { if (d) cublasLtMatmulDescDestroy(d); }
};
struct Layout {
  cublasLtMatrixLayout_t d = nullptr;
  ~Layout() { if (d) cublasLtMatrixLayoutDestroy(d); }
};
struct Preference {
  cublasLtMatmulPreference_t d = nullptr;
  ~Preference() { if (d) cublasLtMatmulPreferenceDestroy(d); }
};

// cuBLASLt's name of storage type T.
template <class T>
constexpr cudaDataType_t data_type = std::is_same_v<T, __half> ? CUDA_R_16F
                                     : std::is_same_v<T, __nv_bfloat16> ? CUDA_R_16BF
                                                                         : CUDA_R_32F;

// The largest power of two up to 256 dividing the address of every batch's operand.
template <class T>
uint32_t alignment(const T* p, int64_t batch, int64_t stride_elems) {
  uint64_t bits = uint64_t(reinterpret_cast<uintptr_t>(p));
  if (batch > 1) bits |= uint64_t(stride_elems) * sizeof(T);
  if (bits == 0) return 256;
  return uint32_t(std::min<uint64_t>(256, bits & (~bits + 1)));
}

// One product as cuBLASLt sees it (see the top of the file).
template <class T>
struct Product {
  int64_t batch;
  bool trans_a, trans_b;
  int64_t M, N, K;
  const T* A;
  int64_t lda, stride_a;
  const T* B;
  int64_t ldb, stride_b;
  T* C;
  int64_t ldc, stride_c;
  float alpha, beta;
};

const char* make_layout(Layout* out, cudaDataType_t type, uint64_t rows, uint64_t cols, int64_t ld, int64_t batch,
                        int64_t stride) {
  FLOWC_LT_TRY(cublasLtMatrixLayoutCreate, &out->d, type, rows, cols, ld);
  if (batch > 1) {
    const int32_t count = int32_t(batch);
    FLOWC_LT_TRY(cublasLtMatrixLayoutSetAttribute, out->d, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &count,
                 sizeof(count));
    FLOWC_LT_TRY(cublasLtMatrixLayoutSetAttribute, out->d, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &stride,
                 sizeof(stride));
  }
  return nullptr;
}

// What selects an algorithm: the GPU, storage type, shapes, strides, alignments, epilogue, workspace.
using AlgoKey = std::array<int64_t, 22>;
struct CachedAlgo {
  bool found;
  cublasLtMatmulAlgo_t algo;
};
std::mutex algo_mutex;
std::map<AlgoKey, CachedAlgo> algo_cache;

// Runs the product with cuBLASLt's epilogue `epi` (bias when not null). *no_algorithm is set, and
// nothing runs, when cuBLASLt has no algorithm for it.
template <class T>
const char* lt_matmul(const Product<T>& p, cublasLtEpilogue_t epi, const T* bias, const flowc_cuda* cu,
                      bool* no_algorithm) {
  constexpr cudaDataType_t type = data_type<T>;
  *no_algorithm = false;
  auto handle = static_cast<cublasLtHandle_t>(cu->blas);
  MatmulDesc op;
  FLOWC_LT_TRY(cublasLtMatmulDescCreate, &op.d, CUBLAS_COMPUTE_32F, CUDA_R_32F);
  // cuBLASLt's A is our B and its B our A (C^T = op(B)^T op(A)^T).
  const cublasOperation_t op_a = p.trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
  const cublasOperation_t op_b = p.trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
  FLOWC_LT_TRY(cublasLtMatmulDescSetAttribute, op.d, CUBLASLT_MATMUL_DESC_TRANSA, &op_a, sizeof(op_a));
  FLOWC_LT_TRY(cublasLtMatmulDescSetAttribute, op.d, CUBLASLT_MATMUL_DESC_TRANSB, &op_b, sizeof(op_b));
  FLOWC_LT_TRY(cublasLtMatmulDescSetAttribute, op.d, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof(epi));
  if (bias) {
    FLOWC_LT_TRY(cublasLtMatmulDescSetAttribute, op.d, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof(bias));
    if constexpr (!std::is_same_v<T, float>) {  // D's type, named outright (f32 keeps the default, the same)
      const int32_t bias_type = type;
      FLOWC_LT_TRY(cublasLtMatmulDescSetAttribute, op.d, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bias_type,
                   sizeof(bias_type));
    }
    const int64_t bias_stride = 0;  // one bias for every batch
    FLOWC_LT_TRY(cublasLtMatmulDescSetAttribute, op.d, CUBLASLT_MATMUL_DESC_BIAS_BATCH_STRIDE, &bias_stride,
                 sizeof(bias_stride));
  }
  // Stored (before op) shapes: our B is K x N row-major = N x K column-major (K x N if trans_b);
  // our A is K x M column-major (M x K if trans_a); C is N x M column-major.
  Layout la, lb, lc;
  FLOWC_CUDA_TRY(make_layout(&la, type, p.trans_b ? p.K : p.N, p.trans_b ? p.N : p.K, p.ldb, p.batch, p.stride_b));
  FLOWC_CUDA_TRY(make_layout(&lb, type, p.trans_a ? p.M : p.K, p.trans_a ? p.K : p.M, p.lda, p.batch, p.stride_a));
  FLOWC_CUDA_TRY(make_layout(&lc, type, p.N, p.M, p.ldc, p.batch, p.stride_c));

  const uint32_t align_a = alignment(p.B, p.batch, p.stride_b), align_b = alignment(p.A, p.batch, p.stride_a);
  const uint32_t align_c = alignment(p.C, p.batch, p.stride_c);
  const uint64_t workspace = cu->blas_workspace ? uint64_t(cu->blas_workspace_bytes) : 0;
  // The GPU, not the handle: a freed model's handle address can come back on another GPU.
  int device = -1;
  FLOWC_CUDA_TRY(cudaGetDevice(&device) == cudaSuccess ? nullptr : "cudaGetDevice failed");
  const AlgoKey key{device, int64_t(type), p.batch, p.trans_a, p.trans_b, p.M, p.N, p.K, p.lda,
                    p.stride_a, p.ldb, p.stride_b, p.ldc, p.stride_c, int64_t(epi), int64_t(alignment(bias, 1, 0)),
                    int64_t(bias != nullptr), p.beta == 0.0f, align_a, align_b, align_c, int64_t(workspace)};
  CachedAlgo cached{};
  bool hit;
  {
    std::lock_guard<std::mutex> lock(algo_mutex);
    auto it = algo_cache.find(key);
    hit = it != algo_cache.end();
    if (hit) cached = it->second;
  }
  if (!hit) {
    Preference pref;
    FLOWC_LT_TRY(cublasLtMatmulPreferenceCreate, &pref.d);
    FLOWC_LT_TRY(cublasLtMatmulPreferenceSetAttribute, pref.d, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &workspace,
                 sizeof(workspace));
    FLOWC_LT_TRY(cublasLtMatmulPreferenceSetAttribute, pref.d, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &align_a,
                 sizeof(align_a));
    FLOWC_LT_TRY(cublasLtMatmulPreferenceSetAttribute, pref.d, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &align_b,
                 sizeof(align_b));
    FLOWC_LT_TRY(cublasLtMatmulPreferenceSetAttribute, pref.d, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &align_c,
                 sizeof(align_c));
    FLOWC_LT_TRY(cublasLtMatmulPreferenceSetAttribute, pref.d, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &align_c,
                 sizeof(align_c));
    cublasLtMatmulHeuristicResult_t result{};
    int returned = 0;
    const cublasStatus_t s =
        cublasLtMatmulAlgoGetHeuristic(handle, op.d, la.d, lb.d, lc.d, lc.d, pref.d, 1, &result, &returned);
    if (s != CUBLAS_STATUS_SUCCESS && s != CUBLAS_STATUS_NOT_SUPPORTED) return cublasLtMatmulAlgoGetHeuristic_error(s);
    cached.found = s == CUBLAS_STATUS_SUCCESS && returned > 0 && result.state == CUBLAS_STATUS_SUCCESS;
    cached.algo = result.algo;
    std::lock_guard<std::mutex> lock(algo_mutex);
    algo_cache.emplace(key, cached);
  }
  if (!cached.found) {
    *no_algorithm = true;
    return nullptr;
  }
  FLOWC_LT_TRY(cublasLtMatmul, handle, op.d, &p.alpha, p.B, la.d, p.A, lb.d, &p.beta, p.C, lc.d, p.C, lc.d,
               &cached.algo, cu->blas_workspace, size_t(workspace), cu->stream);
  return nullptr;
}

// The product where cuBLASLt has none: C = alpha A B + beta C (C not read when beta is 0) in
// kTile-square tiles through shared memory, f32 sums. The block's loops depend on its indices
// alone, so every thread reaches each barrier.
constexpr int kTile = schedule::gemm::kFallbackTile;

template <class T>
__global__ void __launch_bounds__(kTile * kTile) fallback_kernel(Product<T> p) {
  __shared__ float a_tile[kTile][kTile + 1], b_tile[kTile][kTile + 1];
  const int tx = int(threadIdx.x) % kTile, ty = int(threadIdx.x) / kTile;
  const int64_t m_tiles = (p.M + kTile - 1) / kTile, n_tiles = (p.N + kTile - 1) / kTile;
  for (int64_t b = blockIdx.z; b < p.batch; b += gridDim.z) {
    const T* A = p.A + b * p.stride_a;
    const T* B = p.B + b * p.stride_b;
    for (int64_t mt = blockIdx.y; mt < m_tiles; mt += gridDim.y) {
      for (int64_t nt = blockIdx.x; nt < n_tiles; nt += gridDim.x) {
        const int64_t m = mt * kTile + ty, n = nt * kTile + tx;
        float sum = 0.0f;
        for (int64_t k0 = 0; k0 < p.K; k0 += kTile) {
          const int64_t ka = k0 + tx, kb = k0 + ty;  // A's column and B's row this thread loads
          a_tile[ty][tx] = m < p.M && ka < p.K ? load(p.trans_a ? A[ka * p.lda + m] : A[m * p.lda + ka]) : 0.0f;
          b_tile[ty][tx] = kb < p.K && n < p.N ? load(p.trans_b ? B[n * p.ldb + kb] : B[kb * p.ldb + n]) : 0.0f;
          __syncthreads();
          for (int k = 0; k < kTile; ++k) sum += a_tile[ty][k] * b_tile[k][tx];
          __syncthreads();
        }
        if (m < p.M && n < p.N) {
          T* c = p.C + b * p.stride_c + m * p.ldc + n;
          *c = store<T>(p.alpha * sum + (p.beta != 0.0f ? p.beta * load(*c) : 0.0f));
        }
      }
    }
  }
}

template <class T>
const char* fallback(const Product<T>& p, const flowc_cuda* cu) {
  const int64_t cap = 65535;  // gridDim.y and .z; the kernel loops over the rest
  const dim3 grid(unsigned(std::min<int64_t>((p.N + kTile - 1) / kTile, INT32_MAX)),
                  unsigned(std::min<int64_t>((p.M + kTile - 1) / kTile, cap)), unsigned(std::min(p.batch, cap)));
  fallback_kernel<<<grid, kTile * kTile, 0, cu->stream>>>(p);
  return launch_status();
}

__device__ __forceinline__ float activate(float v, int epilogue) {
  if (epilogue == FLOWC_CUDA_EPILOGUE_RELU) return fmaxf(v, 0.0f);
  if (epilogue == FLOWC_CUDA_EPILOGUE_GELU_TANH) return flowc::vmath::gelu_tanh(v);
  return v;
}

// C[b, m, n] = activate(c_scale * C[b, m, n] (0 without read_c) + bias[n]), one thread per element.
template <class T>
__global__ void finish_kernel(int64_t batch, int64_t M, int64_t N, T* C, int64_t ldc, int64_t stride_c,
                              bool read_c, float c_scale, const T* bias, int epilogue) {
  const int64_t total = batch * M * N;
  FLOWC_GRID_LOOP(int64_t, t, total) {
    const int64_t n = t % N, m = t / N % M, b = t / (N * M);
    T* c = C + b * stride_c + m * ldc + n;
    float v = read_c ? c_scale * load(*c) : 0.0f;
    if (bias) v += load(bias[n]);
    *c = store<T>(activate(v, epilogue));
  }
}

template <class T>
const char* finish(const Product<T>& p, bool read_c, float c_scale, const T* bias, flowc_cuda_epilogue epilogue,
                   const flowc_cuda* cu) {
  const int64_t total = p.batch * p.M * p.N;
  finish_kernel<<<grid_for(total), kThreads, 0, cu->stream>>>(p.batch, p.M, p.N, p.C, p.ldc, p.stride_c, read_c,
                                                              c_scale, bias, int(epilogue));
  return launch_status();
}

cublasLtEpilogue_t lt_epilogue(flowc_cuda_epilogue epilogue, bool bias) {
  switch (epilogue) {
    case FLOWC_CUDA_EPILOGUE_RELU: return bias ? CUBLASLT_EPILOGUE_RELU_BIAS : CUBLASLT_EPILOGUE_RELU;
    case FLOWC_CUDA_EPILOGUE_GELU_TANH: return bias ? CUBLASLT_EPILOGUE_GELU_BIAS : CUBLASLT_EPILOGUE_GELU;
    default: return bias ? CUBLASLT_EPILOGUE_BIAS : CUBLASLT_EPILOGUE_DEFAULT;
  }
}

}  // namespace

template <class T>
const char* gemm(int64_t batch, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const T* A,
                 int64_t lda, int64_t stride_a, const T* B, int64_t ldb, int64_t stride_b, float beta, T* C,
                 int64_t ldc, int64_t stride_c, const T* bias, flowc_cuda_epilogue epilogue, const flowc_cuda* cu) {
  if (batch < 0 || M < 0 || N < 0 || K < 0) return FLOWC_CUDA_NAMED(T, "flowc_cuda_gemm", ": a negative size");
  if (batch == 0 || M == 0 || N == 0) return nullptr;
  if (batch > INT32_MAX) return FLOWC_CUDA_NAMED(T, "flowc_cuda_gemm", ": more than 2^31 - 1 products in one batch");
  const Product<T> p{batch, trans_a, trans_b, M, N, K, A, lda, stride_a, B, ldb, stride_b, C, ldc, stride_c,
                     alpha, beta};
  if (K == 0) return finish(p, beta != 0.0f, beta, bias, epilogue, cu);  // an empty sum: beta C + bias
  const bool extra = bias || epilogue != FLOWC_CUDA_EPILOGUE_NONE;
  bool no_algorithm = false;
  if (extra && alignment(bias, 1, 0) >= 16) {
    FLOWC_CUDA_TRY(lt_matmul(p, lt_epilogue(epilogue, bias != nullptr), bias, cu, &no_algorithm));
    if (!no_algorithm) return nullptr;
  }
  FLOWC_CUDA_TRY(lt_matmul<T>(p, CUBLASLT_EPILOGUE_DEFAULT, nullptr, cu, &no_algorithm));
  if (no_algorithm) FLOWC_CUDA_TRY(fallback(p, cu));
  return extra ? finish(p, true, 1.0f, bias, epilogue, cu) : nullptr;
}

}  // namespace flowc::cuda

// gemm<T> for each storage type (conv.cu calls it too) and its entry point flowc_cuda_gemm_<S>.
#define FLOWC_CUDA_GEMM(S, T)                                                                                      \
  template const char* flowc::cuda::gemm(int64_t, bool, bool, int64_t, int64_t, int64_t, float, const T*, int64_t, \
                                         int64_t, const T*, int64_t, int64_t, float, T*, int64_t, int64_t,        \
                                         const T*, flowc_cuda_epilogue, const flowc_cuda*);                       \
  const char* flowc_cuda_gemm_##S(int64_t batch, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K,     \
                                  float alpha, const T* A, int64_t lda, int64_t stride_a, const T* B, int64_t ldb, \
                                  int64_t stride_b, float beta, T* C, int64_t ldc, int64_t stride_c, const T* bias, \
                                  flowc_cuda_epilogue epilogue, const flowc_cuda* cu) {                           \
    return flowc::cuda::gemm(batch, trans_a, trans_b, M, N, K, alpha, A, lda, stride_a, B, ldb, stride_b, beta, C, \
                             ldc, stride_c, bias, epilogue, cu);                                                  \
  }
FLOWC_CUDA_GEMM(f32, float)
FLOWC_CUDA_GEMM(f16, __half)
FLOWC_CUDA_GEMM(bf16, __nv_bfloat16)
#undef FLOWC_CUDA_GEMM

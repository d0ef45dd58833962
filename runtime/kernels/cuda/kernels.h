// Every CUDA kernel of the library; generated step functions (model.cu) include this one header.
//
// Each entry point takes device pointers, host-side sizes and tables (copied into the launch's
// arguments, never read by the device), and the step's flowc_cuda last; it enqueues its work on
// cu->stream and returns. The result is null on success, else a static message (a launch error's
// cudaGetErrorString, or the cuBLASLt call and its status). Row-major, like the CPU kernels; the
// parameter structs and enums are the CPU library's (conv.h, pool.h, reduce.h, layout.h, resize.h)
// so that both targets' emitters fill them the same way.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "runtime/kernels/cpu/conv.h"
#include "runtime/kernels/cpu/layout.h"
#include "runtime/kernels/cpu/pool.h"
#include "runtime/kernels/cpu/reduce.h"
#include "runtime/kernels/cpu/resize.h"

// What a kernel call needs from its step (runtime/device/cuda/cuda_steps.h fills it).
struct flowc_cuda {
  cudaStream_t stream;
  void* blas;                  // cublasLtHandle_t of this stream
  void* blas_workspace;        // device memory for cuBLASLt's heuristics, of blas_workspace_bytes
  size_t blas_workspace_bytes;
  void* workspace;             // device scratch of workspace_bytes for kernels that need one
  size_t workspace_bytes;      // (flowc_cuda_*_workspace gives the bytes a call needs)
  int* error_flag;             // device int: a kernel that meets bad input (an index out of range)
  int error_code;              // sets *error_flag to error_code if it is still 0 (atomicCAS)
};

// Largest rank of the layout kernels (transpose, slice, pad), as on the CPU; gather_elements takes
// rank 8 and gather_nd index tuples of 8, as the CPU's.
#define FLOWC_CUDA_MAX_RANK 6

// -- matrix products (cuBLASLt) -------------------------------------------------------------
enum flowc_cuda_epilogue {
  FLOWC_CUDA_EPILOGUE_NONE = 0,
  FLOWC_CUDA_EPILOGUE_RELU = 1,
  FLOWC_CUDA_EPILOGUE_GELU_TANH = 2,  // cuBLASLt's GELU is the tanh approximation
};
// C[b] = alpha * op(A[b]) op(B[b]) + beta * C[b] (+ bias[n] per column, then the epilogue), for
// b < batch, with the strides in elements (0 broadcasts an operand); A is M x K after op, B K x N.
// bias holds N floats, or is null (the epilogue then applies alone).
const char* flowc_cuda_gemm_f32(int64_t batch, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K,
                                float alpha, const float* A, int64_t lda, int64_t stride_a, const float* B,
                                int64_t ldb, int64_t stride_b, float beta, float* C, int64_t ldc, int64_t stride_c,
                                const float* bias, flowc_cuda_epilogue epilogue, const flowc_cuda* cu);

// -- convolution and pooling (NCHW) -----------------------------------------------------------
size_t flowc_cuda_conv2d_workspace_f32(const flowc_conv2d_params* p);
const char* flowc_cuda_conv2d_f32(const flowc_conv2d_params* p, const float* x, const float* w, const float* bias,
                                  float* y, const flowc_cuda* cu);
size_t flowc_cuda_conv_transpose2d_workspace_f32(const flowc_conv_transpose2d_params* p);
const char* flowc_cuda_conv_transpose2d_f32(const flowc_conv_transpose2d_params* p, const float* x, const float* w,
                                            const float* bias, float* y, const flowc_cuda* cu);
const char* flowc_cuda_maxpool2d_f32(const flowc_pool2d_params* p, const float* x, float* y, const flowc_cuda* cu);
// indices as ONNX MaxPool's second output: flat into x's [N, C, H, W] (column_major: storage_order=1).
const char* flowc_cuda_maxpool2d_indices_f32(const flowc_pool2d_params* p, bool column_major, const float* x,
                                             float* y, int64_t* indices, const flowc_cuda* cu);
const char* flowc_cuda_avgpool2d_f32(const flowc_pool2d_params* p, bool count_include_pad, const float* x, float* y,
                                     const flowc_cuda* cu);
const char* flowc_cuda_global_avgpool_f32(int64_t batch_channels, int64_t spatial, const float* x, float* y,
                                          const flowc_cuda* cu);

// -- rows: softmax and normalisation ----------------------------------------------------------
// Softmax as numpy: a row holding a NaN, or of all -inf, gives NaN.
const char* flowc_cuda_softmax_f32(int64_t rows, int64_t n, const float* x, float* y, const flowc_cuda* cu);
const char* flowc_cuda_log_softmax_f32(int64_t rows, int64_t n, const float* x, float* y, const flowc_cuda* cu);
// Softmax along the middle axis of x viewed as [rows, n, inner].
const char* flowc_cuda_softmax_strided_f32(int64_t rows, int64_t n, int64_t inner, const float* x, float* y,
                                           const flowc_cuda* cu);
const char* flowc_cuda_log_softmax_strided_f32(int64_t rows, int64_t n, int64_t inner, const float* x, float* y,
                                               const flowc_cuda* cu);
// gamma and beta hold n floats (beta may be null).
const char* flowc_cuda_layer_norm_f32(int64_t rows, int64_t n, const float* x, const float* gamma, const float* beta,
                                      float epsilon, float* y, const flowc_cuda* cu);
// scale and bias hold `channels` floats.
const char* flowc_cuda_group_norm_f32(int64_t batch, int64_t channels, int64_t groups, int64_t spatial,
                                      const float* x, const float* scale, const float* bias, float epsilon, float* y,
                                      const flowc_cuda* cu);

// -- reductions ------------------------------------------------------------------------------
// x viewed as [outer, inner], reduced over inner: y[outer].
const char* flowc_cuda_reduce_trailing_f32(flowc_reduce_op op, int64_t outer, int64_t inner, const float* x, float* y,
                                           const flowc_cuda* cu);
// x viewed as [outer, r, inner], reduced over r: y[outer, inner].
const char* flowc_cuda_reduce_middle_f32(flowc_reduce_op op, int64_t outer, int64_t r, int64_t inner, const float* x,
                                         float* y, const flowc_cuda* cu);
const char* flowc_cuda_arg_reduce_f32(bool largest, bool last, int64_t outer, int64_t n, int64_t inner, const float* x,
                                      int64_t* y, const flowc_cuda* cu);
const char* flowc_cuda_cumsum_f32(int64_t outer, int64_t n, int64_t inner, bool exclusive, bool reverse,
                                  const float* x, float* y, const flowc_cuda* cu);
const char* flowc_cuda_cumsum_f64(int64_t outer, int64_t n, int64_t inner, bool exclusive, bool reverse,
                                  const double* x, double* y, const flowc_cuda* cu);
const char* flowc_cuda_cumsum_i32(int64_t outer, int64_t n, int64_t inner, bool exclusive, bool reverse,
                                  const int32_t* x, int32_t* y, const flowc_cuda* cu);
const char* flowc_cuda_cumsum_i64(int64_t outer, int64_t n, int64_t inner, bool exclusive, bool reverse,
                                  const int64_t* x, int64_t* y, const flowc_cuda* cu);
// As the CPU's flowc_topk_f32: the k largest (smallest) along the middle axis, sorted, ties to the
// lower index.
const char* flowc_cuda_topk_f32(bool largest, int64_t outer, int64_t n, int64_t inner, int64_t k, const float* x,
                                float* values, int64_t* indices, const flowc_cuda* cu);

// -- layout and indexing (any element size 1, 2, 4, 8) -----------------------------------------
const char* flowc_cuda_transpose(int elem_size, int rank, const int64_t* x_shape, const int64_t* perm, const void* x,
                                 void* y, const flowc_cuda* cu);
// y[o, i, :] = x[o, indices[i], :] with x viewed as [outer, axis_size, inner]; a negative index
// counts from the end; one out of range sets the error flag and writes zeros.
const char* flowc_cuda_gather(int elem_size, int64_t outer, int64_t axis_size, int64_t inner, const void* x,
                              const int64_t* indices, int64_t num_indices, void* y, const flowc_cuda* cu);
// xs and axis_sizes are host arrays (of device pointers, of sizes) of num_inputs entries.
const char* flowc_cuda_concat(int elem_size, int num_inputs, const void* const* xs, const int64_t* axis_sizes,
                              int64_t outer, int64_t inner, void* y, const flowc_cuda* cu);
const char* flowc_cuda_slice(int elem_size, int rank, const int64_t* x_shape, const int64_t* starts,
                             const int64_t* steps, const int64_t* y_shape, const void* x, void* y,
                             const flowc_cuda* cu);
// value: a host pointer to one element (constant mode).
const char* flowc_cuda_pad(flowc_pad_mode mode, int elem_size, int rank, const int64_t* x_shape,
                           const int64_t* pads_begin, const int64_t* pads_end, const void* value, const void* x,
                           void* y, const flowc_cuda* cu);
const char* flowc_cuda_gather_elements(int elem_size, int rank, const int64_t* x_shape, const int64_t* index_shape,
                                       int axis, const void* x, const int64_t* indices, void* y,
                                       const flowc_cuda* cu);
// GatherND: data viewed as [batch, dims[0..k), slice], indices (int64) as [batch, count, k];
// dims is a host array of k sizes.
const char* flowc_cuda_gather_nd(int elem_size, int64_t batch, int k, const int64_t* dims, int64_t slice,
                                 int64_t count, const int64_t* indices, const void* x, void* y, const flowc_cuda* cu);
// Widens int32 indices to int64 (Gather and friends take int64 only).
const char* flowc_cuda_widen_indices(int64_t n, const int32_t* x, int64_t* y, const flowc_cuda* cu);
// y[o, :count, i] = x[o, begin:begin + count, i] with x viewed as [outer, axis, inner] (Split).
const char* flowc_cuda_copy_block(int elem_size, int64_t outer, int64_t axis, int64_t begin, int64_t count,
                                  int64_t inner, const void* x, void* y, const flowc_cuda* cu);
// A collective's member blocks (flowc/comm.h), as the CPU's flowc::steps::pack_blocks:
// x [outer, parts, block] -> y [parts, outer, block], blocks of `block` bytes; unpack is the inverse.
const char* flowc_cuda_pack_blocks(int64_t outer, int64_t parts, int64_t block, const void* x, void* y,
                                   const flowc_cuda* cu);
const char* flowc_cuda_unpack_blocks(int64_t outer, int64_t parts, int64_t block, const void* x, void* y,
                                     const flowc_cuda* cu);
// extrapolation: a host pointer to one element.
const char* flowc_cuda_resize_nearest(const flowc_resize_params* p, int elem_size, const void* extrapolation,
                                      const void* x, void* y, const flowc_cuda* cu);
const char* flowc_cuda_resize_f32(const flowc_resize_params* p, float extrapolation, const float* x, float* y,
                                  const flowc_cuda* cu);

// -- fp16 and bf16 ------------------------------------------------------------------------------
// For precision="fp16" and "bf16": each is the _f32 entry point of the same name with every tensor
// (data, weights, bias, gamma and beta, scale) stored as __half or __nv_bfloat16, const as there;
// the scalars (alpha, beta, epsilon) stay float. The kernels compute and accumulate in float: loads
// widen, stores round to nearest even. The GEMM (the convolution's too) is cuBLASLt's with
// CUBLAS_COMPUTE_32F, its bias of the tensors' type; conv2d's workspace holds columns of that type,
// so size it with the _workspace_ function of the same suffix. attention.cuh has
// flowc_cuda_attention_f16 and _bf16. conv_transpose2d, maxpool2d_indices, resize, arg_reduce,
// cumsum and topk are f32 only.
const char* flowc_cuda_gemm_f16(int64_t batch, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K,
                                float alpha, const __half* A, int64_t lda, int64_t stride_a, const __half* B,
                                int64_t ldb, int64_t stride_b, float beta, __half* C, int64_t ldc, int64_t stride_c,
                                const __half* bias, flowc_cuda_epilogue epilogue, const flowc_cuda* cu);
const char* flowc_cuda_gemm_bf16(int64_t batch, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K,
                                 float alpha, const __nv_bfloat16* A, int64_t lda, int64_t stride_a,
                                 const __nv_bfloat16* B, int64_t ldb, int64_t stride_b, float beta, __nv_bfloat16* C,
                                 int64_t ldc, int64_t stride_c, const __nv_bfloat16* bias,
                                 flowc_cuda_epilogue epilogue, const flowc_cuda* cu);
size_t flowc_cuda_conv2d_workspace_f16(const flowc_conv2d_params* p);
size_t flowc_cuda_conv2d_workspace_bf16(const flowc_conv2d_params* p);
const char* flowc_cuda_conv2d_f16(const flowc_conv2d_params* p, const __half* x, const __half* w, const __half* bias,
                                  __half* y, const flowc_cuda* cu);
const char* flowc_cuda_conv2d_bf16(const flowc_conv2d_params* p, const __nv_bfloat16* x, const __nv_bfloat16* w,
                                   const __nv_bfloat16* bias, __nv_bfloat16* y, const flowc_cuda* cu);
const char* flowc_cuda_maxpool2d_f16(const flowc_pool2d_params* p, const __half* x, __half* y, const flowc_cuda* cu);
const char* flowc_cuda_maxpool2d_bf16(const flowc_pool2d_params* p, const __nv_bfloat16* x, __nv_bfloat16* y,
                                      const flowc_cuda* cu);
const char* flowc_cuda_avgpool2d_f16(const flowc_pool2d_params* p, bool count_include_pad, const __half* x, __half* y,
                                     const flowc_cuda* cu);
const char* flowc_cuda_avgpool2d_bf16(const flowc_pool2d_params* p, bool count_include_pad, const __nv_bfloat16* x,
                                      __nv_bfloat16* y, const flowc_cuda* cu);
const char* flowc_cuda_global_avgpool_f16(int64_t batch_channels, int64_t spatial, const __half* x, __half* y,
                                          const flowc_cuda* cu);
const char* flowc_cuda_global_avgpool_bf16(int64_t batch_channels, int64_t spatial, const __nv_bfloat16* x,
                                           __nv_bfloat16* y, const flowc_cuda* cu);
const char* flowc_cuda_softmax_f16(int64_t rows, int64_t n, const __half* x, __half* y, const flowc_cuda* cu);
const char* flowc_cuda_softmax_bf16(int64_t rows, int64_t n, const __nv_bfloat16* x, __nv_bfloat16* y,
                                    const flowc_cuda* cu);
const char* flowc_cuda_log_softmax_f16(int64_t rows, int64_t n, const __half* x, __half* y, const flowc_cuda* cu);
const char* flowc_cuda_log_softmax_bf16(int64_t rows, int64_t n, const __nv_bfloat16* x, __nv_bfloat16* y,
                                        const flowc_cuda* cu);
const char* flowc_cuda_softmax_strided_f16(int64_t rows, int64_t n, int64_t inner, const __half* x, __half* y,
                                           const flowc_cuda* cu);
const char* flowc_cuda_softmax_strided_bf16(int64_t rows, int64_t n, int64_t inner, const __nv_bfloat16* x,
                                            __nv_bfloat16* y, const flowc_cuda* cu);
const char* flowc_cuda_log_softmax_strided_f16(int64_t rows, int64_t n, int64_t inner, const __half* x, __half* y,
                                               const flowc_cuda* cu);
const char* flowc_cuda_log_softmax_strided_bf16(int64_t rows, int64_t n, int64_t inner, const __nv_bfloat16* x,
                                                __nv_bfloat16* y, const flowc_cuda* cu);
const char* flowc_cuda_layer_norm_f16(int64_t rows, int64_t n, const __half* x, const __half* gamma,
                                      const __half* beta, float epsilon, __half* y, const flowc_cuda* cu);
const char* flowc_cuda_layer_norm_bf16(int64_t rows, int64_t n, const __nv_bfloat16* x, const __nv_bfloat16* gamma,
                                       const __nv_bfloat16* beta, float epsilon, __nv_bfloat16* y,
                                       const flowc_cuda* cu);
const char* flowc_cuda_group_norm_f16(int64_t batch, int64_t channels, int64_t groups, int64_t spatial,
                                      const __half* x, const __half* scale, const __half* bias, float epsilon,
                                      __half* y, const flowc_cuda* cu);
const char* flowc_cuda_group_norm_bf16(int64_t batch, int64_t channels, int64_t groups, int64_t spatial,
                                       const __nv_bfloat16* x, const __nv_bfloat16* scale,
                                       const __nv_bfloat16* bias, float epsilon, __nv_bfloat16* y,
                                       const flowc_cuda* cu);
const char* flowc_cuda_reduce_trailing_f16(flowc_reduce_op op, int64_t outer, int64_t inner, const __half* x,
                                           __half* y, const flowc_cuda* cu);
const char* flowc_cuda_reduce_trailing_bf16(flowc_reduce_op op, int64_t outer, int64_t inner,
                                            const __nv_bfloat16* x, __nv_bfloat16* y, const flowc_cuda* cu);
const char* flowc_cuda_reduce_middle_f16(flowc_reduce_op op, int64_t outer, int64_t r, int64_t inner,
                                         const __half* x, __half* y, const flowc_cuda* cu);
const char* flowc_cuda_reduce_middle_bf16(flowc_reduce_op op, int64_t outer, int64_t r, int64_t inner,
                                          const __nv_bfloat16* x, __nv_bfloat16* y, const flowc_cuda* cu);

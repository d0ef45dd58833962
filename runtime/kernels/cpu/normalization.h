// Softmax and layer normalisation over one axis of f32 tensors: rows of [rows, n], and
// softmax over the middle axis of [rows, n, inner].
#pragma once

#include <cstdint>

#include "parallel.h"

// y = exp(x - max) / sum(exp(x - max)) per row: one read pass for max and sum (online
// rescaling), one pass to write. y may equal x. log_softmax writes (x - max) - log(sum) instead.
// As in numpy, a row holding a NaN, all -inf, or a +inf (exp(inf - inf) is NaN) is NaN throughout.
void flowc_softmax_f32(int64_t rows, int64_t n, const float* x, float* y, const flowc_parallel* par);
void flowc_log_softmax_f32(int64_t rows, int64_t n, const float* x, float* y,
                           const flowc_parallel* par);

// The same over the middle axis of x viewed as [rows, n, inner] (the axis is not the last one):
// each block of columns keeps its running max and sum across the n rows. y may equal x.
void flowc_softmax_strided_f32(int64_t rows, int64_t n, int64_t inner, const float* x, float* y,
                               const flowc_parallel* par);
void flowc_log_softmax_strided_f32(int64_t rows, int64_t n, int64_t inner, const float* x,
                                   float* y, const flowc_parallel* par);

// y = (x - mean) / sqrt(var + epsilon) * gamma + beta per row (gamma, beta: n floats; beta may be
// null). One read pass computes mean and variance (shifted sums), one pass normalises.
void flowc_layer_norm_f32(int64_t rows, int64_t n, const float* x, const float* gamma,
                          const float* beta, float epsilon, float* y, const flowc_parallel* par);

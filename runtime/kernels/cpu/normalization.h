// Row-wise softmax and layer normalisation over the last axis of f32 tensors ([rows, n]).
#pragma once

#include <cstdint>

#include "parallel.h"

// y = exp(x - max) / sum(exp(x - max)) per row: one read pass for max and sum (online
// rescaling), one pass to write. y may equal x. log_softmax writes x - max - log(sum) instead.
void flowc_softmax_f32(int64_t rows, int64_t n, const float* x, float* y, const flowc_parallel* par);
void flowc_log_softmax_f32(int64_t rows, int64_t n, const float* x, float* y,
                           const flowc_parallel* par);

// y = (x - mean) / sqrt(var + epsilon) * gamma + beta per row (gamma, beta: n floats; beta may be
// null). One read pass computes mean and variance (shifted sums), one pass normalises.
void flowc_layer_norm_f32(int64_t rows, int64_t n, const float* x, const float* gamma,
                          const float* beta, float epsilon, float* y, const flowc_parallel* par);

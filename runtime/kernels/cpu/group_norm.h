// Normalisation over groups of channels of f32 tensors viewed as [batch, channels, spatial]:
// GroupNormalization, and InstanceNormalization as one channel per group.
#pragma once

#include <cstdint>

#include "parallel.h"

// y = (x - mean) / sqrt(var + epsilon) * scale[c] + bias[c], with mean and variance over each
// sample's group of channels / groups consecutive channels (all their spatial positions).
void flowc_group_norm_f32(int64_t batch, int64_t channels, int64_t groups, int64_t spatial,
                          const float* x, const float* scale, const float* bias, float epsilon,
                          float* y, const flowc_parallel* par);

// Resize (ONNX) of the last two axes of a tensor viewed as [outer, in_h, in_w]: nearest over any
// element size, linear and cubic over f32. Separable, as the reference: axis h, then axis w.
#pragma once

#include <cstdint>

#include "parallel.h"

enum flowc_resize_mode { FLOWC_RESIZE_NEAREST, FLOWC_RESIZE_LINEAR, FLOWC_RESIZE_CUBIC };

enum flowc_resize_coordinates {
  FLOWC_RESIZE_HALF_PIXEL,
  FLOWC_RESIZE_HALF_PIXEL_SYMMETRIC,
  FLOWC_RESIZE_PYTORCH_HALF_PIXEL,
  FLOWC_RESIZE_ALIGN_CORNERS,
  FLOWC_RESIZE_ASYMMETRIC,
  FLOWC_RESIZE_TF_CROP_AND_RESIZE,
};

enum flowc_resize_rounding {
  FLOWC_RESIZE_ROUND_PREFER_FLOOR,
  FLOWC_RESIZE_ROUND_PREFER_CEIL,
  FLOWC_RESIZE_FLOOR,
  FLOWC_RESIZE_CEIL,
};

struct flowc_resize_axis {
  int64_t in, out;
  int64_t resized;            // 0: the axis is copied (the reference skips an axis left as it is)
  double scale;               // out / in as the reference has it (f64; coordinates use it in f32)
  double roi_start, roi_end;  // tf_crop_and_resize only
};

struct flowc_resize_params {
  int64_t outer;  // the product of the dims before the last two
  flowc_resize_axis h, w;
  int64_t mode;         // flowc_resize_mode
  int64_t coordinates;  // flowc_resize_coordinates
  int64_t rounding;     // flowc_resize_rounding (nearest only)
  double cubic_coeff_a;
  int64_t exclude_outside, antialias;  // linear and cubic only
};

// y[o, i, j] = x[o, nearest_h(i), nearest_w(j)]; `extrapolation` (one element) fills what
// tf_crop_and_resize samples outside x.
void flowc_resize_nearest(const flowc_resize_params* p, int elem_size, const void* extrapolation,
                          const void* x, void* y, const flowc_parallel* par);

// Any mode over f32: each output mixes the taps of its axis with the reference's weights.
void flowc_resize_f32(const flowc_resize_params* p, float extrapolation, const float* x, float* y,
                      const flowc_parallel* par);

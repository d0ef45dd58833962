// Data movement: transpose, gather, concat, slice, pad. Element-size generic (1, 2, 4, 8 bytes),
// tensors contiguous row-major of rank <= FLOWC_MAX_RANK (6).
#pragma once

#include <cstdint>

#include "parallel.h"


// y[i_perm[0], ..., i_perm[rank-1]] = x[i_0, ..., i_rank-1]: y's axis d is x's axis perm[d].
void flowc_transpose(int elem_size, int rank, const int64_t* x_shape, const int64_t* perm,
                     const void* x, void* y, const flowc_parallel* par);

// x viewed as [outer, axis_size, inner]; y[o, j, :] = x[o, indices[j], :] for j < num_indices.
// Negative indices count from the end. Returns false (y untouched) if an index is out of range.
bool flowc_gather(int elem_size, int64_t outer, int64_t axis_size, int64_t inner, const void* x,
                  const int64_t* indices, int64_t num_indices, void* y, const flowc_parallel* par);

// Inputs viewed as [outer, axis_sizes[i], inner], y as [outer, sum(axis_sizes), inner].
void flowc_concat(int elem_size, int num_inputs, const void* const* xs, const int64_t* axis_sizes,
                  int64_t outer, int64_t inner, void* y, const flowc_parallel* par);

// y[j_0, ...] = x[starts[0] + j_0 * steps[0], ...] for j_d < y_shape[d] (steps may be negative;
// starts already clamped by the shape rule).
void flowc_slice(int elem_size, int rank, const int64_t* x_shape, const int64_t* starts,
                 const int64_t* steps, const int64_t* y_shape, const void* x, void* y,
                 const flowc_parallel* par);

// Constant padding: y has shape x_shape[d] + pads_begin[d] + pads_end[d], none negative (flowc_pad
// checks). Negative pads crop, even past the pad on the other side (which then holds only `value`).
// `value` points to one element of elem_size bytes.
void flowc_pad_constant(int elem_size, int rank, const int64_t* x_shape, const int64_t* pads_begin,
                        const int64_t* pads_end, const void* value, const void* x, void* y,
                        const flowc_parallel* par);

enum flowc_pad_mode { FLOWC_PAD_CONSTANT, FLOWC_PAD_REFLECT, FLOWC_PAD_EDGE, FLOWC_PAD_WRAP };

// numpy's np.pad after cropping: negative pads crop x first, then the positive ones pad what is
// left (as onnxruntime does). Reflect, edge and wrap map each y index to an x index per axis;
// reflect and wrap repeat periodically when a pad is wider than the axis, as numpy does. `value`
// (constant mode only) points to one element. Returns false, writing nothing, when pads crop an
// axis below size 0, or when a mode other than constant must pad an axis cropped to nothing.
bool flowc_pad(flowc_pad_mode mode, int elem_size, int rank, const int64_t* x_shape,
               const int64_t* pads_begin, const int64_t* pads_end, const void* value, const void* x,
               void* y, const flowc_parallel* par);

// GatherElements: y[p] = x[p with its `axis` coordinate replaced by indices[p]], any element size.
#pragma once

#include <cstdint>

#include "parallel.h"

// x has x_shape, indices and y have index_shape (both of `rank` <= 8 dims, equal but along axis
// or smaller); negative indices count from the end. False when an index is out of range.
bool flowc_gather_elements(int elem_size, int rank, const int64_t* x_shape, const int64_t* index_shape,
                           int axis, const void* x, const int64_t* indices, void* y,
                           const flowc_parallel* par);

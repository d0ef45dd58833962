#ifndef FLOWC_BASE_ARENA_H_
#define FLOWC_BASE_ARENA_H_

#include <cstddef>

#include "flowc/status.h"

// Every planned offset is a multiple of this, so any slot base must be too (one cache line,
// and enough for AVX-512 loads).
#define FLOWC_ARENA_ALIGNMENT 64

// Rounds up to FLOWC_ARENA_ALIGNMENT; false when that overflows.
bool flowc_arena_align(size_t bytes, size_t* out_bytes);

// A FLOWC_ARENA_ALIGNMENT-aligned block; zero bytes gives NULL and OK.
flowc_status flowc_arena_allocate(size_t bytes, void** out_ptr);
void flowc_arena_free(void* ptr);

#endif  // FLOWC_BASE_ARENA_H_

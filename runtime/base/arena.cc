#include "runtime/base/arena.h"

#include <cstdint>
#include <cstdlib>

bool flowc_arena_align(size_t bytes, size_t* out_bytes) {
  if (bytes > SIZE_MAX - (FLOWC_ARENA_ALIGNMENT - 1)) return false;
  *out_bytes = (bytes + FLOWC_ARENA_ALIGNMENT - 1) & ~size_t(FLOWC_ARENA_ALIGNMENT - 1);
  return true;
}

flowc_status flowc_arena_allocate(size_t bytes, void** out_ptr) {
  *out_ptr = nullptr;
  if (bytes == 0) return nullptr;
  size_t rounded;
  if (!flowc_arena_align(bytes, &rounded)) {
    return flowc_status_make(FLOWC_STATUS_OUT_OF_RANGE, "arena of %zu bytes is too large", bytes);
  }
  // std::aligned_alloc wants the size to be a multiple of the alignment.
  void* ptr = std::aligned_alloc(FLOWC_ARENA_ALIGNMENT, rounded);
  if (!ptr) {
    return flowc_status_make(FLOWC_STATUS_RESOURCE_EXHAUSTED, "cannot allocate an arena of %zu bytes",
                             rounded);
  }
  *out_ptr = ptr;
  return nullptr;
}

void flowc_arena_free(void* ptr) { std::free(ptr); }

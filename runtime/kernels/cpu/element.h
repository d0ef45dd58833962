// Elements by their size alone, for kernels that move data without reading it (internal).
#pragma once

#include <cstdint>

namespace flowc {

template <int Size>
struct Elem {
  unsigned char b[Size];
};

// Calls f(element) with a value of the type of that size, so copies move whole elements.
template <class F>
void by_size(int size, F&& f) {
  switch (size) {
    case 1: return f(Elem<1>{});
    case 2: return f(Elem<2>{});
    case 4: return f(uint32_t{});
    case 8: return f(uint64_t{});
    default: return f(Elem<16>{});
  }
}

}  // namespace flowc

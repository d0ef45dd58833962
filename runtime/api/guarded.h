// The C API's boundary: no C++ exception crosses it.
#pragma once

#include <exception>
#include <new>

#include "flowc/status.h"

namespace flowc {

// fn() as a status; an exception it throws becomes an error status naming `what`.
template <typename Fn>
flowc_status guarded(const char* what, Fn&& fn) {
  try {
    return fn();
  } catch (const std::bad_alloc&) {
    return flowc_status_make(FLOWC_STATUS_RESOURCE_EXHAUSTED, "%s: out of memory", what);
  } catch (const std::exception& e) {
    return flowc_status_make(FLOWC_STATUS_INTERNAL, "%s: %s", what, e.what());
  }
}

}  // namespace flowc

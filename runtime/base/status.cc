#include "flowc/status.h"

#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>

struct flowc_status_s {
  flowc_status_code code;
  const char* message;  // points just past this header, in the same allocation
};

// Returned when the message itself cannot be allocated; never freed.
static flowc_status_s out_of_memory = {FLOWC_STATUS_RESOURCE_EXHAUSTED,
                                       "out of memory while reporting an error"};

extern "C" flowc_status flowc_status_make(flowc_status_code code, const char* format, ...) {
  if (code == FLOWC_STATUS_OK) return nullptr;
  va_list args;
  va_start(args, format);
  va_list again;
  va_copy(again, args);
  int length = std::vsnprintf(nullptr, 0, format, args);
  va_end(args);
  if (length < 0) length = 0;
  auto* status = static_cast<flowc_status_s*>(std::malloc(sizeof(flowc_status_s) + length + 1));
  if (!status) {
    va_end(again);
    return &out_of_memory;
  }
  char* text = reinterpret_cast<char*>(status + 1);
  std::vsnprintf(text, length + 1, format, again);
  status->code = code;
  status->message = text;
  va_end(again);
  return status;
}

extern "C" flowc_status_code flowc_status_get_code(flowc_status status) {
  return status ? status->code : FLOWC_STATUS_OK;
}

extern "C" const char* flowc_status_get_message(flowc_status status) {
  return status ? status->message : "OK";
}

extern "C" void flowc_status_free(flowc_status status) {
  if (status != &out_of_memory) std::free(status);
}

extern "C" const char* flowc_status_code_name(flowc_status_code code) {
  switch (code) {
    case FLOWC_STATUS_OK: return "OK";
    case FLOWC_STATUS_INVALID_ARGUMENT: return "INVALID_ARGUMENT";
    case FLOWC_STATUS_NOT_FOUND: return "NOT_FOUND";
    case FLOWC_STATUS_OUT_OF_RANGE: return "OUT_OF_RANGE";
    case FLOWC_STATUS_RESOURCE_EXHAUSTED: return "RESOURCE_EXHAUSTED";
    case FLOWC_STATUS_FAILED_PRECONDITION: return "FAILED_PRECONDITION";
    case FLOWC_STATUS_UNIMPLEMENTED: return "UNIMPLEMENTED";
    case FLOWC_STATUS_INTERNAL: return "INTERNAL";
    case FLOWC_STATUS_UNAVAILABLE: return "UNAVAILABLE";
  }
  return "UNKNOWN";
}

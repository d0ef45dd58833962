#ifndef FLOWC_TESTS_RUNTIME_STATUS_CHECK_H_
#define FLOWC_TESTS_RUNTIME_STATUS_CHECK_H_

#include <string>

#include "check.h"
#include "flowc/status.h"

// `status` failed with `code` and a message that holds `text`; frees it and returns the message.
inline std::string fails(flowc_status status, flowc_status_code code, const std::string& text) {
  CHECK(status, "succeeded; expected '%s'", text.c_str());
  std::string message = flowc_status_get_message(status);
  flowc_status_code got = flowc_status_get_code(status);
  flowc_status_free(status);
  CHECK(got == code, "got %s: %s", flowc_status_code_name(got), message.c_str());
  CHECK(message.find(text) != std::string::npos, "'%s' is not in '%s'", text.c_str(), message.c_str());
  return message;
}

#endif  // FLOWC_TESTS_RUNTIME_STATUS_CHECK_H_

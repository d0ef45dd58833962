#ifndef FLOWC_BASE_LOG_H_
#define FLOWC_BASE_LOG_H_

#include "flowc/status.h"

typedef enum flowc_log_level {
  FLOWC_LOG_OFF = 0,
  FLOWC_LOG_ERROR = 1,
  FLOWC_LOG_WARN = 2,
  FLOWC_LOG_INFO = 3,
  FLOWC_LOG_DEBUG = 4,
} flowc_log_level;

// From FLOWC_LOG (off|error|warn|info|debug or 0-4), read once; default warn.
flowc_log_level flowc_log_threshold();
void flowc_log_write(flowc_log_level level, const char* file, int line, const char* format, ...)
    FLOWC_PRINTF(4, 5);

// The arguments are not evaluated when the level is filtered out.
#define FLOWC_LOG(level, ...)                                                   \
  do {                                                                          \
    if ((level) <= flowc_log_threshold())                                       \
      flowc_log_write((level), __FILE__, __LINE__, __VA_ARGS__);                \
  } while (0)

#endif  // FLOWC_BASE_LOG_H_

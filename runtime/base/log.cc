#include "runtime/base/log.h"

#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>

static flowc_log_level parse_level(const char* text) {
  if (!text || !*text) return FLOWC_LOG_WARN;
  static const char* const names[] = {"off", "error", "warn", "info", "debug"};
  for (int i = 0; i <= FLOWC_LOG_DEBUG; ++i) {
    if (strcasecmp(text, names[i]) == 0) return flowc_log_level(i);
  }
  if (text[0] >= '0' && text[0] <= '4' && text[1] == '\0') return flowc_log_level(text[0] - '0');
  return FLOWC_LOG_WARN;
}

flowc_log_level flowc_log_threshold() {
  static const flowc_log_level threshold = parse_level(std::getenv("FLOWC_LOG"));
  return threshold;
}

void flowc_log_write(flowc_log_level level, const char* file, int line, const char* format, ...) {
  static const char* const tags[] = {"", "E", "W", "I", "D"};
  const char* base = std::strrchr(file, '/');
  char message[1024];
  va_list args;
  va_start(args, format);
  std::vsnprintf(message, sizeof message, format, args);
  va_end(args);
  // One fprintf per line so that lines from concurrent workers do not interleave.
  std::fprintf(stderr, "flowc %s %s:%d] %s\n", tags[level], base ? base + 1 : file, line, message);
}

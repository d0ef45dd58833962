#ifndef FLOWC_TESTS_RUNTIME_CHECK_H_
#define FLOWC_TESTS_RUNTIME_CHECK_H_

#include <cstdio>
#include <cstdlib>

// Unlike assert, stays on in release builds; the tests are built in Release.
#define CHECK(cond, ...)                                                    \
  do {                                                                      \
    if (!(cond)) {                                                          \
      std::fprintf(stderr, "%s:%d: CHECK(%s) failed: ", __FILE__, __LINE__, #cond); \
      std::fprintf(stderr, "" __VA_ARGS__);                                 \
      std::fprintf(stderr, "\n");                                           \
      std::abort();                                                         \
    }                                                                       \
  } while (0)

#endif  // FLOWC_TESTS_RUNTIME_CHECK_H_

#ifndef FLOWC_STATUS_H_
#define FLOWC_STATUS_H_

#ifdef __cplusplus
extern "C" {
#endif

typedef enum flowc_status_code {
  FLOWC_STATUS_OK = 0,
  FLOWC_STATUS_INVALID_ARGUMENT = 1,
  FLOWC_STATUS_NOT_FOUND = 2,
  FLOWC_STATUS_OUT_OF_RANGE = 3,
  FLOWC_STATUS_RESOURCE_EXHAUSTED = 4,
  FLOWC_STATUS_FAILED_PRECONDITION = 5,
  FLOWC_STATUS_UNIMPLEMENTED = 6,
  FLOWC_STATUS_INTERNAL = 7,
  FLOWC_STATUS_UNAVAILABLE = 8,
} flowc_status_code;

// NULL means OK, so success allocates nothing and costs one pointer test.
// Any other status is owned by whoever receives it and released with flowc_status_free.
typedef struct flowc_status_s* flowc_status;

#if defined(__GNUC__)
#define FLOWC_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))
#else
#define FLOWC_PRINTF(fmt, args)
#endif

// Returns NULL for FLOWC_STATUS_OK; the message is printf-formatted.
flowc_status flowc_status_make(flowc_status_code code, const char* format, ...) FLOWC_PRINTF(2, 3);
flowc_status_code flowc_status_get_code(flowc_status status);
// "OK" for NULL; valid until the status is freed.
const char* flowc_status_get_message(flowc_status status);
void flowc_status_free(flowc_status status);
const char* flowc_status_code_name(flowc_status_code code);

#define FLOWC_RETURN_IF_ERROR(expr)            \
  do {                                         \
    flowc_status flowc_status_ = (expr);       \
    if (flowc_status_) return flowc_status_;   \
  } while (0)

#ifdef __cplusplus
}
#endif

#endif  // FLOWC_STATUS_H_

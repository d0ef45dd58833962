/* Compiled as C: the public header must stay C. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "flowc/runtime.h"

#define CHECK(cond)                                                   \
  do {                                                                \
    if (!(cond)) {                                                    \
      fprintf(stderr, "%s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #cond); \
      abort();                                                        \
    }                                                                 \
  } while (0)

static int succeed(flowc_step_ctx* ctx) {
  (void)ctx;
  return 0;
}

static int refuse(flowc_step_ctx* ctx) {
  (void)ctx;
  return FLOWC_STATUS_UNIMPLEMENTED;
}

int main(void) {
  flowc_status ok = flowc_status_make(FLOWC_STATUS_OK, "ignored %d", 1);
  CHECK(ok == NULL);
  CHECK(flowc_status_get_code(ok) == FLOWC_STATUS_OK);
  CHECK(strcmp(flowc_status_get_message(ok), "OK") == 0);
  flowc_status_free(ok);

  int32_t reg = 0, slots = 1;
  flowc_plan_step steps[2] = {
      {"first", succeed, 0, NULL, 0, &reg, 1},
      {"second", refuse, 0, &reg, 1, NULL, 0},
  };
  flowc_plan plan = {steps, 2, &slots, 1, 1, 256, 2, NULL};
  flowc_options options = {2};
  flowc_engine* engine = NULL;
  flowc_status status = flowc_engine_create(&plan, &options, &engine);
  CHECK(status == NULL && engine != NULL);

  int32_t threads = 0;
  CHECK(flowc_engine_query_thread_count(engine, &threads) == NULL && threads == 2);

  status = flowc_engine_run(engine, NULL, NULL, 1);
  CHECK(flowc_status_get_code(status) == FLOWC_STATUS_UNIMPLEMENTED);
  CHECK(strstr(flowc_status_get_message(status), "step 'second' (#1)") != NULL);
  flowc_status_free(status);
  flowc_engine_free(engine);

  steps[1].stream = 3;
  status = flowc_engine_create(&plan, &options, &engine);
  CHECK(flowc_status_get_code(status) == FLOWC_STATUS_INVALID_ARGUMENT && engine == NULL);
  CHECK(strcmp(flowc_status_get_message(status),
               "step 'second' (#1) runs on stream 3, but the plan has 1 streams") == 0);
  flowc_status_free(status);

  printf("c api: ok\n");
  return 0;
}

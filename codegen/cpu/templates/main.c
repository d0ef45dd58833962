/* An example of the C API of model.h: runs the model on inputs read from .npy files.
 *
 *   main MODEL_DIR INPUT0.npy INPUT1.npy ... [--out DIR]
 *
 * Inputs go in the model's input order. Prints each output's name, shape and first values;
 * with --out, also writes DIR/output0.npy, DIR/output1.npy, ... */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"

static const char* npy_descr(const char* dtype) {
  static const char* table[][2] = {
      {"f32", "<f4"}, {"f64", "<f8"}, {"i8", "|i1"},  {"i16", "<i2"}, {"i32", "<i4"}, {"i64", "<i8"},
      {"u8", "|u1"},  {"u16", "<u2"}, {"u32", "<u4"}, {"u64", "<u8"}, {"bool", "|b1"}};
  for (size_t i = 0; i < sizeof table / sizeof table[0]; ++i) {
    if (strcmp(table[i][0], dtype) == 0) return table[i][1];
  }
  return NULL;
}

/* A name may hold any byte: print it escaped, on one line. */
static void print_name(const char* name) {
  putchar('"');
  for (const unsigned char* p = (const unsigned char*)name; *p; ++p) {
    if (*p == '"' || *p == '\\') printf("\\%c", *p);
    else if (*p < 0x20 || *p == 0x7f) printf("\\x%02x", *p);
    else putchar(*p);
  }
  putchar('"');
}

static int fail(const char* path, const char* why) {
  fprintf(stderr, "%s: %s\n", path, why);
  return 0;
}

/* The header's value for `key` (text after "'key':"), or NULL. */
static const char* header_field(const char* header, const char* key) {
  char quoted[32];
  snprintf(quoted, sizeof quoted, "'%s':", key);
  const char* at = strstr(header, quoted);
  if (!at) return NULL;
  at += strlen(quoted);
  while (*at == ' ') ++at;
  return at;
}

/* Reads `path` into `data`, which must hold exactly `info`'s dtype and shape. */
static int read_npy(const char* path, const flowc_tensor_info* info, void* data) {
  FILE* f = fopen(path, "rb");
  if (!f) return fail(path, "cannot open");
  unsigned char magic[8];
  int ok = 0;
  char* header = NULL;
  do {
    if (fread(magic, 1, 8, f) != 8 || memcmp(magic, "\x93NUMPY", 6) != 0) {
      fail(path, "not a .npy file");
      break;
    }
    uint32_t header_len = 0;
    if (magic[6] == 1) {
      unsigned char b[2];
      if (fread(b, 1, 2, f) != 2) { fail(path, "truncated header"); break; }
      header_len = b[0] | (uint32_t)b[1] << 8;
    } else if (magic[6] == 2 || magic[6] == 3) {
      unsigned char b[4];
      if (fread(b, 1, 4, f) != 4) { fail(path, "truncated header"); break; }
      header_len = b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
    } else {
      fail(path, "unknown .npy version");
      break;
    }
    if (header_len > (1u << 20)) { fail(path, "header too long"); break; }
    header = (char*)malloc(header_len + 1);
    if (!header || fread(header, 1, header_len, f) != header_len) { fail(path, "truncated header"); break; }
    header[header_len] = 0;
    const char* descr = header_field(header, "descr");
    const char* want = npy_descr(info->dtype);
    char got[16] = {0};
    if (descr && *descr == '\'') {
      size_t n = strcspn(descr + 1, "'");
      if (descr[1 + n] == '\'' && n < sizeof got) memcpy(got, descr + 1, n);
    }
    /* byte order: '<' (little), '|' (none) or '=' (native, little on the hosts we build for) */
    if (!want || !got[0] || !strchr("<|=", got[0]) || strcmp(got + 1, want + 1) != 0) {
      fprintf(stderr, "%s: expected dtype %s (%s), got %s\n", path, info->dtype, want ? want : "?",
              got[0] ? got : "no descr");
      break;
    }
    const char* fortran = header_field(header, "fortran_order");
    if (!fortran || strncmp(fortran, "False", 5) != 0) { fail(path, "fortran_order must be False"); break; }
    const char* shape = header_field(header, "shape");
    if (!shape || *shape != '(') { fail(path, "no shape"); break; }
    ++shape;
    int rank = 0, shape_ok = 1;
    for (;;) {
      while (*shape == ' ' || *shape == ',') ++shape;
      if (*shape == ')') break;
      char* end;
      long long d = strtoll(shape, &end, 10);
      if (end == shape || rank >= info->rank || d != info->shape[rank]) { shape_ok = 0; break; }
      ++rank;
      shape = end;
    }
    if (!shape_ok || rank != info->rank) {
      fprintf(stderr, "%s: expected shape [", path);
      for (int i = 0; i < info->rank; ++i) fprintf(stderr, i ? ", %lld" : "%lld", (long long)info->shape[i]);
      fprintf(stderr, "]\n");
      break;
    }
    if (info->nbytes && fread(data, 1, info->nbytes, f) != info->nbytes) { fail(path, "truncated data"); break; }
    ok = 1;
  } while (0);
  free(header);
  fclose(f);
  return ok;
}

static int write_npy(const char* path, const flowc_tensor_info* info, const void* data) {
  char header[512];
  int n = snprintf(header, sizeof header, "{'descr': '%s', 'fortran_order': False, 'shape': (",
                   npy_descr(info->dtype));
  for (int i = 0; i < info->rank; ++i) n += snprintf(header + n, sizeof header - n, "%lld, ", (long long)info->shape[i]);
  n += snprintf(header + n, sizeof header - n, "), }");
  int total = 10 + n + 1;
  int pad = (64 - total % 64) % 64;
  FILE* f = fopen(path, "wb");
  if (!f) return fail(path, "cannot write");
  unsigned short len = (unsigned short)(n + pad + 1);
  unsigned char pre[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, (unsigned char)(len & 0xff), (unsigned char)(len >> 8)};
  fwrite(pre, 1, 10, f);
  fwrite(header, 1, (size_t)n, f);
  for (int i = 0; i < pad; ++i) fputc(' ', f);
  fputc('\n', f);
  int ok = fwrite(data, 1, info->nbytes, f) == info->nbytes;
  ok = (fclose(f) == 0) && ok;
  return ok ? 1 : fail(path, "cannot write");
}

static void print_values(const flowc_tensor_info* info, const void* data) {
  uint64_t count = 1;
  for (int i = 0; i < info->rank; ++i) count *= (uint64_t)info->shape[i];
  uint64_t shown = count < 8 ? count : 8;
  for (uint64_t i = 0; i < shown; ++i) {
    const char* t = info->dtype;
    if (!strcmp(t, "f32")) printf(" %.6g", ((const float*)data)[i]);
    else if (!strcmp(t, "f64")) printf(" %.6g", ((const double*)data)[i]);
    else if (!strcmp(t, "i64")) printf(" %lld", (long long)((const int64_t*)data)[i]);
    else if (!strcmp(t, "i32")) printf(" %d", ((const int32_t*)data)[i]);
    else if (!strcmp(t, "bool") || !strcmp(t, "u8")) printf(" %u", ((const unsigned char*)data)[i]);
    else { printf(" ..."); break; }
  }
  if (shown < count) printf(" ...");
}

static int check(flowc_status status) {
  if (!status) return 1;
  fprintf(stderr, "error: %s\n", flowc_status_get_message(status));
  flowc_status_free(status);
  return 0;
}

int main(int argc, char** argv) {
  const char* out_dir = NULL;
  const char* files[256];
  int num_files = 0;
  if (argc < 2) {
    fprintf(stderr, "usage: %s MODEL_DIR INPUT.npy... [--out DIR]\n", argv[0]);
    return 2;
  }
  for (int i = 2; i < argc; ++i) {
    if (!strcmp(argv[i], "--out") && i + 1 < argc) out_dir = argv[++i];
    else if (num_files < 256) files[num_files++] = argv[i];
  }
  flowc_model* model = NULL;
  if (!check(flowc_model_load(argv[1], NULL, &model))) return 1;
  int32_t num_inputs = 0, num_outputs = 0;
  check(flowc_model_query_input_count(model, &num_inputs));
  check(flowc_model_query_output_count(model, &num_outputs));
  if (num_files != num_inputs) {
    fprintf(stderr, "the model takes %d inputs, got %d .npy files\n", num_inputs, num_files);
    flowc_model_free(model);
    return 2;
  }
  void** inputs = (void**)calloc((size_t)num_inputs + 1, sizeof(void*));
  void** outputs = (void**)calloc((size_t)num_outputs + 1, sizeof(void*));
  int rc = 0;
  for (int32_t i = 0; i < num_inputs && !rc; ++i) {
    flowc_tensor_info info;
    check(flowc_model_query_input(model, i, &info));
    inputs[i] = malloc(info.nbytes ? info.nbytes : 1);
    if (!read_npy(files[i], &info, inputs[i])) rc = 1;
  }
  for (int32_t i = 0; i < num_outputs && !rc; ++i) {
    flowc_tensor_info info;
    check(flowc_model_query_output(model, i, &info));
    outputs[i] = malloc(info.nbytes ? info.nbytes : 1);
  }
  if (!rc && !check(flowc_model_run(model, (const void* const*)inputs, outputs))) rc = 1;
  for (int32_t i = 0; i < num_outputs && !rc; ++i) {
    flowc_tensor_info info;
    check(flowc_model_query_output(model, i, &info));
    print_name(info.name);
    printf(" %s[", info.dtype);
    for (int d = 0; d < info.rank; ++d) printf(d ? ",%lld" : "%lld", (long long)info.shape[d]);
    printf("]:");
    print_values(&info, outputs[i]);
    printf("\n");
    if (out_dir) {
      char path[4096];
      snprintf(path, sizeof path, "%s/output%d.npy", out_dir, (int)i);
      if (!write_npy(path, &info, outputs[i])) rc = 1;
    }
  }
  for (int32_t i = 0; i < num_inputs; ++i) free(inputs[i]);
  for (int32_t i = 0; i < num_outputs; ++i) free(outputs[i]);
  free(inputs);
  free(outputs);
  flowc_model_free(model);
  return rc;
}

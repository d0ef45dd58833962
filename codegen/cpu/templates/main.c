/* An example of the C API of model.h: runs the model on inputs read from .npy files.
 *
 *   main MODEL_DIR INPUT0.npy INPUT1.npy ... [--out DIR]
 *
 * Inputs go in the model's input order. Prints each output's name, shape and first values;
 * with --out, also writes DIR/output0.npy, DIR/output1.npy, ... A model compiled with a
 * dynamic batch runs the batch the inputs hold (1 to its bound). A model compiled for a device
 * mesh runs every rank in this process, or under `mpirun -np RANKS main ...` one rank per
 * process, of which rank 0 prints and writes the outputs. */
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

#define MAX_RANK 16

/* An opened .npy file: its dtype checked, its shape read, positioned at the data. */
typedef struct npy_file {
  FILE* f;
  int rank;
  int64_t shape[MAX_RANK];
} npy_file;

static int open_npy(const char* path, const char* dtype, npy_file* out) {
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
    const char* want = npy_descr(dtype);
    char got[16] = {0};
    if (descr && *descr == '\'') {
      size_t n = strcspn(descr + 1, "'");
      if (descr[1 + n] == '\'' && n < sizeof got) memcpy(got, descr + 1, n);
    }
    /* byte order: '<' (little), '|' (none) or '=' (native, little on the hosts we build for) */
    if (!want || !got[0] || !strchr("<|=", got[0]) || strcmp(got + 1, want + 1) != 0) {
      fprintf(stderr, "%s: expected dtype %s (%s), got %s\n", path, dtype, want ? want : "?",
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
      if (end == shape || d < 0 || rank >= MAX_RANK) { shape_ok = 0; break; }
      out->shape[rank++] = d;
      shape = end;
    }
    if (!shape_ok) { fail(path, "bad shape"); break; }
    out->rank = rank;
    ok = 1;
  } while (0);
  free(header);
  if (!ok) {
    fclose(f);
    return 0;
  }
  out->f = f;
  return 1;
}

/* Reads the data of `file` (closing it), which must have `rank` dims `shape`, `nbytes` of them. */
static int read_npy(const char* path, npy_file* file, int rank, const int64_t* shape, uint64_t nbytes,
                    void* data) {
  int ok = file->rank == rank;
  for (int i = 0; ok && i < rank; ++i) ok = file->shape[i] == shape[i];
  if (!ok) {
    fprintf(stderr, "%s: expected shape [", path);
    for (int i = 0; i < rank; ++i) fprintf(stderr, i ? ", %lld" : "%lld", (long long)shape[i]);
    fprintf(stderr, "]\n");
  } else if (nbytes && fread(data, 1, nbytes, file->f) != nbytes) {
    ok = fail(path, "truncated data");
  }
  fclose(file->f);
  file->f = NULL;
  return ok;
}

/* The batch the .npy inputs hold: the first input whose shape grows with the batch tells. */
static int64_t input_batch(flowc_model* model, int64_t max_batch, npy_file* files, int32_t num_inputs) {
  for (int32_t i = 0; i < num_inputs; ++i) {
    flowc_tensor_info info;
    if (flowc_model_query_input(model, i, &info) || !info.per_batch || files[i].rank != info.rank) continue;
    for (int d = 0; d < info.rank; ++d) {
      if (!info.per_batch[d]) continue;
      int64_t rows = info.shape[d] - files[i].shape[d];
      if (rows % info.per_batch[d] == 0) return max_batch - rows / info.per_batch[d];
      return 0;
    }
  }
  return max_batch;
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
  npy_file* npys = (npy_file*)calloc((size_t)num_inputs + 1, sizeof(npy_file));
  int64_t (*out_shapes)[MAX_RANK] = calloc((size_t)num_outputs + 1, sizeof *out_shapes);
  uint64_t* out_bytes = (uint64_t*)calloc((size_t)num_outputs + 1, sizeof(uint64_t));
  int64_t max_batch = 0, batch = 1;
  int rc = !check(flowc_model_query_max_batch(model, &max_batch));
  for (int32_t i = 0; i < num_inputs && !rc; ++i) {
    flowc_tensor_info info;
    check(flowc_model_query_input(model, i, &info));
    if (!open_npy(files[i], info.dtype, &npys[i])) rc = 1;
  }
  if (!rc && max_batch) batch = input_batch(model, max_batch, npys, num_inputs);
  for (int32_t i = 0; i < num_inputs && !rc; ++i) {
    flowc_tensor_info info;
    int64_t shape[MAX_RANK];
    uint64_t nbytes = 0;
    check(flowc_model_query_input(model, i, &info));
    if (info.rank > MAX_RANK) {
      rc = !fail(files[i], "the input's rank is over this example's limit (16)");
      break;
    }
    if (!check(flowc_model_query_input_shape(model, i, batch, shape, &nbytes))) {
      fprintf(stderr, "%s: the inputs hold no batch this model runs (1 to %lld)\n", files[i], (long long)max_batch);
      rc = 1;
      break;
    }
    inputs[i] = malloc(nbytes ? nbytes : 1);
    if (!read_npy(files[i], &npys[i], info.rank, shape, nbytes, inputs[i])) rc = 1;
  }
  for (int32_t i = 0; i < num_outputs && !rc; ++i) {
    flowc_tensor_info info;
    check(flowc_model_query_output(model, i, &info));
    if (info.rank > MAX_RANK) rc = !fail(info.name, "the output's rank is over this example's limit (16)");
    else if (!check(flowc_model_query_output_shape(model, i, batch, out_shapes[i], &out_bytes[i]))) rc = 1;
    else outputs[i] = malloc(out_bytes[i] ? out_bytes[i] : 1);
  }
  int32_t ranks = 1, rank = -1;
  if (!rc && !check(flowc_model_query_ranks(model, &ranks, &rank))) rc = 1;
  if (!rc) {
    flowc_status status = max_batch ? flowc_model_run_batch(model, batch, (const void* const*)inputs, outputs)
                                    : flowc_model_run(model, (const void* const*)inputs, outputs);
    if (!check(status)) rc = 1;
  }
  for (int32_t i = 0; i < num_outputs && !rc && rank <= 0; ++i) {   /* under MPI, rank 0 speaks */
    flowc_tensor_info info;
    check(flowc_model_query_output(model, i, &info));
    info.shape = out_shapes[i];   /* at this batch */
    info.nbytes = out_bytes[i];
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
  for (int32_t i = 0; i < num_inputs; ++i) {
    if (npys[i].f) fclose(npys[i].f);
    free(inputs[i]);
  }
  for (int32_t i = 0; i < num_outputs; ++i) free(outputs[i]);
  free(inputs);
  free(outputs);
  free(npys);
  free(out_shapes);
  free(out_bytes);
  flowc_model_free(model);
  return rc;
}

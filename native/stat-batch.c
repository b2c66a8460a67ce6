/*
 * stat(2) of many paths in one call, for the no-op check: the paths come as one buffer
 * of NUL-terminated strings and the answers go into a Float64Array, five numbers a
 * path: size, mtimeMs, ctimeMs, ino, type (1 regular file, 0 anything else). A path
 * that does not exist (ENOENT: what fs.statSync's throwIfNoEntry:false turns into
 * undefined) gets -1 in all five; any other error gets -2 in all five, and the caller
 * asks fs.statSync again so that the error is Node's own.
 *
 * The numbers are computed exactly as Node computes its Stats fields (double of the
 * integer, and sec * 1e3 + nsec / 1e6 for the times, without fused multiply-add), so a
 * stat taken here equals one taken with fs.statSync bit for bit.
 *
 * The work is split over a few threads: the kernel's path lookup dominates and runs in
 * parallel.
 *
 * Given the stats a snapshot expects (four numbers a path: size, mtimeMs, ctimeMs, ino),
 * it also finds the first path whose stat differs, so that a no-op check needs no loop
 * of its own over every path.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <node_api.h>

#define FIELDS 5
#define EXPECTED_FIELDS 4
#define OTHER_ERROR (-2.0)
#define MAX_THREADS 8
#define AUTO_THREADS 4
/* Below this many paths a thread costs more than it saves. */
#define MIN_PER_THREAD 256

typedef struct {
  const char *const *paths;
  /* Paths under the base folder are looked up from it (fewer components to walk). */
  int base_fd;
  size_t base_len;
  const char *base;
  double *out;
  size_t from;
  size_t to;
} slice_t;

static double ms_of(const struct timespec *t) {
  volatile double sec_ms = (double)t->tv_sec * 1e3;
  volatile double nsec_ms = (double)t->tv_nsec / 1e6;
  return sec_ms + nsec_ms;
}

static void stat_slice(const slice_t *s) {
  struct stat st;
  for (size_t i = s->from; i < s->to; i++) {
    double *o = s->out + i * FIELDS;
    const char *p = s->paths[i];
    int r = s->base_fd >= 0 && strncmp(p, s->base, s->base_len) == 0 && p[s->base_len] == '/' && p[s->base_len + 1] != 0
              ? fstatat(s->base_fd, p + s->base_len + 1, &st, 0)
              : stat(p, &st);
    if (r == 0) {
      o[0] = (double)st.st_size;
      o[1] = ms_of(&st.st_mtim);
      o[2] = ms_of(&st.st_ctim);
      o[3] = (double)st.st_ino;
      o[4] = S_ISREG(st.st_mode) ? 1 : 0;
    } else {
      double v = errno == ENOENT ? -1 : OTHER_ERROR;
      for (int k = 0; k < FIELDS; k++) o[k] = v;
    }
  }
}

/* The CPUs this process may run on (what os.availableParallelism() counts). */
static uint32_t usable_cpus(void) {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) != 0) return 1;
  int n = CPU_COUNT(&set);
  return n < 1 ? 1 : (uint32_t)n;
}

static void *run_slice(void *arg) {
  stat_slice((const slice_t *)arg);
  return NULL;
}

static napi_value fail(napi_env env, const char *message) {
  napi_throw_type_error(env, NULL, message);
  return NULL;
}

/*
 * statBatch(blob: Uint8Array, count: number, out: Float64Array, threads: number,
 *           expected?: Float64Array, base?: string): [firstError, firstChange]
 * threads: how many threads may stat (0: one per usable CPU, at most four).
 * base: an absolute folder most paths are under; they are looked up from it.
 * firstError: the first path with an error other than ENOENT (-1: none); firstChange:
 * the first path whose stat differs from expected, an error counting as a difference
 * (-1: none, or no expected given).
 */
static napi_value stat_batch(napi_env env, napi_callback_info info) {
  size_t argc = 6;
  napi_value argv[6];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 4) return fail(env, "statBatch(blob, count, out, threads, expected?)");

  napi_typedarray_type type;
  size_t blob_len, out_len;
  void *blob_data, *out_data;
  napi_value ab;
  size_t byte_offset;
  if (napi_get_typedarray_info(env, argv[0], &type, &blob_len, &blob_data, &ab, &byte_offset) != napi_ok || type != napi_uint8_array) {
    return fail(env, "statBatch: blob must be a Uint8Array");
  }
  uint32_t count, threads;
  if (napi_get_value_uint32(env, argv[1], &count) != napi_ok) return fail(env, "statBatch: count must be a number");
  if (napi_get_typedarray_info(env, argv[2], &type, &out_len, &out_data, &ab, &byte_offset) != napi_ok || type != napi_float64_array) {
    return fail(env, "statBatch: out must be a Float64Array");
  }
  if (napi_get_value_uint32(env, argv[3], &threads) != napi_ok) return fail(env, "statBatch: threads must be a number");
  if (out_len < (size_t)count * FIELDS) return fail(env, "statBatch: out is too small");
  const double *expected = NULL;
  if (argc >= 5) {
    napi_valuetype vt;
    if (napi_typeof(env, argv[4], &vt) != napi_ok) return fail(env, "statBatch: bad expected");
    if (vt != napi_undefined) {
      size_t exp_len;
      void *exp_data;
      if (napi_get_typedarray_info(env, argv[4], &type, &exp_len, &exp_data, &ab, &byte_offset) != napi_ok || type != napi_float64_array) {
        return fail(env, "statBatch: expected must be a Float64Array");
      }
      if (exp_len < (size_t)count * EXPECTED_FIELDS) return fail(env, "statBatch: expected is too small");
      expected = (const double *)exp_data;
    }
  }

  char base[4096];
  size_t base_len = 0;
  int base_fd = -1;
  if (argc >= 6) {
    napi_valuetype vt;
    if (napi_typeof(env, argv[5], &vt) != napi_ok) return fail(env, "statBatch: bad base");
    if (vt == napi_string) {
      if (napi_get_value_string_utf8(env, argv[5], base, sizeof(base), &base_len) != napi_ok) return fail(env, "statBatch: bad base");
      /* A base that does not fit, is not absolute or cannot be opened is not used. */
      if (base_len > 0 && base_len < sizeof(base) - 1 && base[0] == '/') base_fd = open(base, O_PATH | O_DIRECTORY | O_CLOEXEC);
    } else if (vt != napi_undefined) {
      return fail(env, "statBatch: base must be a string");
    }
  }
  while (base_len > 1 && base[base_len - 1] == '/') base[--base_len] = 0;

  /* Split the blob into C strings in place: every path must end with a NUL inside it. */
  const char *blob = (const char *)blob_data;
  const char **paths = count == 0 ? NULL : (const char **)malloc(sizeof(char *) * count);
  if (count > 0 && paths == NULL) return fail(env, "statBatch: out of memory");
  size_t pos = 0;
  for (uint32_t i = 0; i < count; i++) {
    const char *end = pos < blob_len ? memchr(blob + pos, 0, blob_len - pos) : NULL;
    if (end == NULL) {
      free(paths);
      if (base_fd >= 0) close(base_fd);
      return fail(env, "statBatch: blob holds fewer NUL-terminated paths than count");
    }
    paths[i] = blob + pos;
    pos = (size_t)(end - blob) + 1;
  }

  /* 0: one thread per usable CPU, at most AUTO_THREADS. */
  if (threads == 0) threads = usable_cpus() < AUTO_THREADS ? usable_cpus() : AUTO_THREADS;
  if (threads > MAX_THREADS) threads = MAX_THREADS;
  while (threads > 1 && count / threads < MIN_PER_THREAD) threads--;

  slice_t slices[MAX_THREADS];
  pthread_t ids[MAX_THREADS];
  int started[MAX_THREADS] = {0};
  for (uint32_t t = 0; t < threads; t++) {
    slices[t].paths = paths;
    slices[t].base_fd = base_fd;
    slices[t].base = base;
    slices[t].base_len = base_len;
    slices[t].out = (double *)out_data;
    slices[t].from = (size_t)count * t / threads;
    slices[t].to = (size_t)count * (t + 1) / threads;
  }
  /* Slice 0 runs on this thread, and so does the slice of a thread that cannot start. */
  for (uint32_t t = 1; t < threads; t++) started[t] = pthread_create(&ids[t], NULL, run_slice, &slices[t]) == 0;
  stat_slice(&slices[0]);
  for (uint32_t t = 1; t < threads; t++) {
    if (started[t]) pthread_join(ids[t], NULL);
    else stat_slice(&slices[t]);
  }
  free(paths);
  if (base_fd >= 0) close(base_fd);

  const double *o = (const double *)out_data;
  int64_t first_error = -1, first_change = -1;
  for (size_t i = 0; i < count && (first_error < 0 || (expected != NULL && first_change < 0)); i++) {
    const double *a = o + i * FIELDS;
    int error = a[0] == OTHER_ERROR;
    if (error && first_error < 0) first_error = (int64_t)i;
    if (expected != NULL && first_change < 0) {
      const double *e = expected + i * EXPECTED_FIELDS;
      if (error || a[0] != e[0] || a[1] != e[1] || a[2] != e[2] || a[3] != e[3]) first_change = (int64_t)i;
    }
  }
  napi_value result, v;
  if (napi_create_array_with_length(env, 2, &result) != napi_ok) return NULL;
  if (napi_create_int64(env, first_error, &v) != napi_ok || napi_set_element(env, result, 0, v) != napi_ok) return NULL;
  if (napi_create_int64(env, first_change, &v) != napi_ok || napi_set_element(env, result, 1, v) != napi_ok) return NULL;
  return result;
}

NAPI_MODULE_INIT() {
  napi_value fn;
  if (napi_create_function(env, "statBatch", NAPI_AUTO_LENGTH, stat_batch, NULL, &fn) != napi_ok) return NULL;
  if (napi_set_named_property(env, exports, "statBatch", fn) != napi_ok) return NULL;
  return exports;
}

/* Few-row linear products for the static decode loop (ttc_gym/engines/rows_linear.py):
 * y[r, o] = sum_i x[r, i] W[o, i] for r < nr <= 8, W a model's own [out, in] float32 weight, read
 * in place. Each tile of outputs is computed for every row at once (the weights are read once per
 * product, whatever the number of rows), as dot products with vector accumulators; the outputs are
 * split over a small persistent thread pool whose workers spin briefly between products (a decoding
 * step makes ~200 of them) and then sleep. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#define MAX_THREADS 16
#define MAX_NR 8
#define OT_MAX 8
/* outputs per tile for nr rows: OT x nr accumulators + OT weights + 1 input fit 32 vector registers */
#define OT_FOR(nr) ((nr) <= 2 ? 8 : (nr) <= 4 ? 5 : 3)
#define OT 3 /* the coarsest tile: work is split between threads in multiples of it */
#define VL 16
typedef float vec __attribute__((vector_size(VL * sizeof(float))));

static inline vec load(const float* p) {
  vec v;
  memcpy(&v, p, sizeof v);
  return v;
}

static inline float hsum(vec v) {
  float t[VL];
  memcpy(t, &v, sizeof t);
  float a[8], b[4];
  for (int k = 0; k < 8; k++) a[k] = t[k] + t[k + 8];
  for (int k = 0; k < 4; k++) b[k] = a[k] + a[k + 4];
  return (b[0] + b[2]) + (b[1] + b[3]);
}

static inline __attribute__((always_inline)) void tile(const float* x, const int NR, const int OTN, const float* W,
                                                       int in, int out, int o0, int ot, float* y) {
#undef OT
#define OT OTN
  vec acc[OT_MAX][MAX_NR];
  for (int j = 0; j < OT; j++)
    for (int r = 0; r < NR; r++) acc[j][r] = (vec){0};
  const float* rows[OT_MAX];
  for (int j = 0; j < OT; j++) rows[j] = W + (long)(o0 + (j < ot ? j : 0)) * in;
  int i = 0;
  for (; i + VL <= in; i += VL) {
    vec w[OT_MAX];
    for (int j = 0; j < OT; j++) {
      w[j] = load(rows[j] + i);
      __builtin_prefetch(rows[j] + (long)OT * in + i); /* the next tile's rows, one tile ahead */
    }
    for (int r = 0; r < NR; r++) {
      const vec xv = load(x + (long)r * in + i);
      for (int j = 0; j < OT; j++) acc[j][r] += w[j] * xv;
    }
  }
  for (int j = 0; j < ot; j++)
    for (int r = 0; r < NR; r++) {
      float s = hsum(acc[j][r]);
      for (int k = i; k < in; k++) s += x[(long)r * in + k] * rows[j][k];
      y[(long)r * out + o0 + j] = s;
    }
#undef OT
#define OT 3
}

static void part(const float* x, int nr, const float* W, int in, int out, int ob, int oe, float* y) {
  const int step = OT_FOR(nr);
  for (int o0 = ob; o0 < oe; o0 += step) {
    const int ot = oe - o0 < step ? oe - o0 : step;
    switch (nr) {
#define CASE(k) case k: tile(x, k, OT_FOR(k), W, in, out, o0, ot, y); break;
      CASE(1) CASE(2) CASE(3) CASE(4) CASE(5) CASE(6) CASE(7) CASE(8)
#undef CASE
      default: break;
    }
  }
}

/* --- the pool: workers spin on a generation counter for a while, then sleep on a condition ---- */
typedef struct {
  const float* x;
  const float* W;
  float* y;
  int nr, in, out, parts;
} job_t;

static job_t job;
static atomic_int generation, finished, sleeping;
static int workers;     /* started worker threads (the caller is part 0) */
static pid_t pool_pid;  /* threads do not survive fork: a child starts its own */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wake = PTHREAD_COND_INITIALIZER;
static pthread_mutex_t calling = PTHREAD_MUTEX_INITIALIZER; /* one caller uses the pool at a time */
#define SPINS 200000

static void bounds(int p, int parts, int out, int* ob, int* oe) {
  const int tiles = (out + OT - 1) / OT;
  *ob = (int)((long)tiles * p / parts) * OT;
  *oe = (int)((long)tiles * (p + 1) / parts) * OT;
  if (*oe > out) *oe = out;
}

static int first_seen[MAX_THREADS]; /* the generation when a worker was started (it waits for a newer one) */

static void* worker(void* arg) {
  const int id = (int)(intptr_t)arg;
  int seen = first_seen[id];
  for (;;) {
    int spins = 0;
    while (atomic_load(&generation) == seen) {
      if (++spins < SPINS) {
#if defined(__x86_64__) || defined(__i386__)
        __builtin_ia32_pause();
#endif
        continue;
      }
      pthread_mutex_lock(&lock);
      atomic_fetch_add(&sleeping, 1);
      while (atomic_load(&generation) == seen) pthread_cond_wait(&wake, &lock);
      atomic_fetch_sub(&sleeping, 1);
      pthread_mutex_unlock(&lock);
    }
    seen = atomic_load(&generation);
    const job_t j = job;
    if (id < j.parts) {
      int ob, oe;
      bounds(id, j.parts, j.out, &ob, &oe);
      if (ob < oe) part(j.x, j.nr, j.W, j.in, j.out, ob, oe, j.y);
    }
    atomic_fetch_add(&finished, 1);
  }
  return NULL;
}

/* Starts threads up to `threads` - 1 workers; returns the number of parts a product is split into. */
static int ensure_pool(int threads) {
  if (threads > MAX_THREADS) threads = MAX_THREADS;
  if (pool_pid != getpid()) { /* a forked child: the parent's workers are not here, and a lock one of
                                 them held at the fork would stay held */
    workers = 0;
    pool_pid = getpid();
    pthread_mutex_init(&lock, NULL);
    pthread_cond_init(&wake, NULL);
    atomic_store(&sleeping, 0);
  }
  while (workers < threads - 1) {
    pthread_t t;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    first_seen[workers + 1] = atomic_load(&generation);
    const int ok = pthread_create(&t, &attr, worker, (void*)(intptr_t)(workers + 1)) == 0;
    pthread_attr_destroy(&attr);
    if (!ok) break;
    workers++;
  }
  return workers + 1 < threads ? workers + 1 : threads;
}

/* 1 where the tiles were sized for (AVX-512's 32 vector registers of 16 floats), else 0: elsewhere
 * the accumulators spill and the kernel has not been measured, so the engine keeps MKL's form. */
int ttc_rows_linear_tuned(void) {
#if defined(__AVX512F__)
  return 1;
#else
  return 0;
#endif
}

/* y [nr, out] = x [nr, in] W^T, W [out, in] row-major; nr in 1..8; `threads` parts (1: this thread
 * only). Returns 0, or -1 for arguments it does not take. */
int ttc_rows_linear(const float* x, int nr, const float* W, int in, int out, float* y, int threads) {
  if (nr < 1 || nr > MAX_NR || in < 1 || out < 1) return -1;
  if (threads <= 1 || out < 4 * OT || pthread_mutex_trylock(&calling) != 0) {
    part(x, nr, W, in, out, 0, out, y); /* (another thread holds the pool: this one computes alone) */
    return 0;
  }
  const int parts = ensure_pool(threads);
  job = (job_t){x, W, y, nr, in, out, parts};
  atomic_store(&finished, 0);
  atomic_fetch_add(&generation, 1);
  if (atomic_load(&sleeping)) {
    pthread_mutex_lock(&lock);
    pthread_cond_broadcast(&wake);
    pthread_mutex_unlock(&lock);
  }
  int ob, oe;
  bounds(0, parts, out, &ob, &oe);
  part(x, nr, W, in, out, ob, oe, y);
  while (atomic_load(&finished) < workers) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
  }
  pthread_mutex_unlock(&calling);
  return 0;
}

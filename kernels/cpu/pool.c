/* CPU feature detection and the persistent worker pool used by the CPU kernels.
 *
 * The pool owns n-1 worker threads created once in k_pool_new; the caller's
 * thread works too. A run splits the job into K_POOL_CHUNKS_PER_THREAD * n
 * chunks. It publishes (fn, arg), resets the chunk counter `work` (tagged with
 * the run's generation in its high 32 bits), bumps the wake generation and
 * wakes the workers; every thread, the caller included, claims chunks with a
 * compare-and-swap on `work` until none is left, and the caller waits until
 * `done` counts every chunk. A descheduled worker therefore never stalls a
 * run: the others take its chunks. Workers spin on the wake generation for a
 * short while before sleeping on a condition variable, so the hundreds of
 * small dispatches of one decode step cost no syscalls.
 *
 * Invariants: fn/arg are written only while no chunk of the previous run is
 * outstanding, and a claim succeeds only on the current run's tag, so a late
 * worker never runs a stale job. The wake generation is bumped only while
 * holding `mu`, and a worker sleeps only after re-checking it under `mu`: no
 * lost wakeups. Not re-entrant: one thread drives a pool at a time.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <unistd.h>

#include "k_ops.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

/* --- CPU features ---------------------------------------------------------------- */

static pthread_once_t simd_once = PTHREAD_ONCE_INIT;
static k_simd_t simd_level = K_SIMD_PORTABLE; /* process-wide, read-after-init */

static void detect_simd(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    unsigned a, b, c, d;
    /* F16C via cpuid (clang's __builtin_cpu_supports lacks "f16c"); AVX2/FMA
     * via the builtin, which also checks that the OS saves the YMM state. */
    const int f16c = __get_cpuid(1, &a, &b, &c, &d) && (c & bit_F16C);
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && f16c) simd_level = K_SIMD_AVX2;
#endif
}

k_simd_t k_cpu_simd(void) {
    pthread_once(&simd_once, detect_simd);
    return simd_level;
}

int k_cpu_count(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : (int)n;
}

void k_split(int64_t n, int ith, int nth, int64_t *lo, int64_t *hi) {
    int64_t q = n / nth, r = n % nth;
    *lo = ith * q + (ith < r ? ith : r);
    *hi = *lo + q + (ith < r ? 1 : 0);
}

/* --- pool ------------------------------------------------------------------------- */

/* A waiting thread first spins with pause (cheap, ~microseconds), then yields
 * the CPU a few times (another pool thread may need it when threads outnumber
 * free cores), then sleeps. */
#define SPIN_ITERS 2000
#define K_POOL_CHUNKS_PER_THREAD 4
#define YIELD_ITERS 64

typedef struct {
    k_pool_t *pool;
    int ith;
} worker_t;

struct k_pool {
    int n;             /* threads, caller included */
    k_simd_t simd;
    pthread_t *threads; /* (n-1) */
    worker_t *workers;  /* (n-1) */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int sleepers;       /* guarded by mu */
    atomic_uint gen;    /* wake generation: bumped once per run, under mu */
    _Atomic uint64_t work; /* (run tag << 32) | next unclaimed chunk */
    atomic_int done;    /* chunks of the current run finished */
    int n_chunks;       /* chunks per run */
    uint32_t tag;       /* current run's tag (written by the driving thread) */
    atomic_bool stop;
    k_pool_fn fn;       /* published before gen is bumped */
    void *arg;
};

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

/* Claims and runs chunks of the current run until none is left. */
static void run_chunks(k_pool_t *p) {
    uint64_t v = atomic_load_explicit(&p->work, memory_order_acquire);
    for (;;) {
        const uint32_t c = (uint32_t)v;
        if (c >= (uint32_t)p->n_chunks) return;
        if (!atomic_compare_exchange_weak_explicit(&p->work, &v, v + 1, memory_order_acq_rel, memory_order_acquire))
            continue; /* v reloaded: another thread claimed, or a new run started */
        p->fn(p->arg, (int)c, p->n_chunks);
        atomic_fetch_add_explicit(&p->done, 1, memory_order_release);
        v = atomic_load_explicit(&p->work, memory_order_acquire);
    }
}

static void *worker_main(void *p_) {
    worker_t *w = p_;
    k_pool_t *p = w->pool;
    unsigned seen = 0;
    for (;;) {
        unsigned g;
        int spins = 0;
        while ((g = atomic_load_explicit(&p->gen, memory_order_acquire)) == seen) {
            if (++spins < SPIN_ITERS) {
                cpu_relax();
                continue;
            }
            if (spins < SPIN_ITERS + YIELD_ITERS) {
                sched_yield();
                continue;
            }
            pthread_mutex_lock(&p->mu);
            p->sleepers++;
            while (atomic_load_explicit(&p->gen, memory_order_acquire) == seen) pthread_cond_wait(&p->cv, &p->mu);
            p->sleepers--;
            pthread_mutex_unlock(&p->mu);
            spins = 0;
        }
        seen = g;
        if (atomic_load_explicit(&p->stop, memory_order_acquire)) return NULL;
        run_chunks(p);
    }
}

static void bump(k_pool_t *p) {
    pthread_mutex_lock(&p->mu);
    atomic_fetch_add_explicit(&p->gen, 1, memory_order_release);
    if (p->sleepers > 0) pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

k_pool_t *k_pool_new(int n_threads) {
    if (n_threads <= 0) n_threads = k_cpu_count();
    k_pool_t *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->n = n_threads;
    p->simd = k_cpu_simd();
    atomic_init(&p->gen, 0);
    atomic_init(&p->work, (uint64_t)K_POOL_CHUNKS_PER_THREAD * (uint64_t)n_threads); /* nothing to claim */
    atomic_init(&p->done, 0);
    p->n_chunks = K_POOL_CHUNKS_PER_THREAD * n_threads;
    atomic_init(&p->stop, false);
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    if (n_threads > 1) {
        p->threads = calloc((size_t)n_threads - 1, sizeof *p->threads);
        p->workers = calloc((size_t)n_threads - 1, sizeof *p->workers);
        if (!p->threads || !p->workers) {
            p->n = 1;
            k_pool_destroy(&p);
            return NULL;
        }
        for (int i = 0; i < n_threads - 1; i++) {
            p->workers[i] = (worker_t){p, i + 1};
            if (pthread_create(&p->threads[i], NULL, worker_main, &p->workers[i]) != 0) {
                p->n = i + 1; /* join the ones that started */
                k_pool_destroy(&p);
                return NULL;
            }
        }
    }
    return p;
}

void k_pool_destroy(k_pool_t **pp) {
    k_pool_t *p = pp ? *pp : NULL;
    if (!p) return;
    if (p->n > 1) {
        atomic_store_explicit(&p->stop, true, memory_order_release);
        bump(p);
        for (int i = 0; i < p->n - 1; i++) pthread_join(p->threads[i], NULL);
    }
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    free(p->threads);
    free(p->workers);
    free(p);
    *pp = NULL;
}

int k_pool_threads(const k_pool_t *p) {
    return p ? p->n : 1;
}

k_simd_t k_pool_simd(const k_pool_t *p) {
    return p ? p->simd : k_cpu_simd();
}

k_simd_t k_pool_set_simd(k_pool_t *p, k_simd_t s) {
    if (s > k_cpu_simd()) s = k_cpu_simd();
    if (s < K_SIMD_PORTABLE) s = K_SIMD_PORTABLE;
    p->simd = s;
    return s;
}

void k_pool_run(k_pool_t *p, k_pool_fn fn, void *arg) {
    if (!p || p->n == 1) {
        fn(arg, 0, 1);
        return;
    }
    p->fn = fn;
    p->arg = arg;
    atomic_store_explicit(&p->done, 0, memory_order_relaxed);
    p->tag++;
    atomic_store_explicit(&p->work, (uint64_t)p->tag << 32, memory_order_release);
    bump(p);
    run_chunks(p);
    int spins = 0;
    while (atomic_load_explicit(&p->done, memory_order_acquire) < p->n_chunks) {
        if (++spins < SPIN_ITERS) cpu_relax();
        else sched_yield();
    }
}

int k_pool_max_chunks(const k_pool_t *p) {
    return p && p->n > 1 ? p->n_chunks : 1;
}

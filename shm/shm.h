/* shm: multiprocess Prometheus metrics in mmap'd files.
 *
 * Every process records into its own files in a shared directory
 * ($PROMETHEUS_MULTIPROC_DIR), byte-compatible with Python prometheus_client
 * >= 0.18 multiprocess mode; any process merges all files into one exposition
 * with prometheus_client's MultiProcessCollector semantics.
 *
 * Writing: a registry (one per process) owns one file per kind
 * (counter_<id>.db, gauge_<mode>_<id>.db, histogram_<id>.db, summary_<id>.db).
 * Families are declared once; each labelled series ("metric") is resolved once
 * to a handle whose hot-path operations (shm_counter_inc, shm_gauge_set,
 * shm_histogram_observe, ...) are a few atomic stores/adds into the mapping:
 * no lock, no allocation, no formatting, no system call.
 *
 * Reading: shm_collector_* reads every *.db file of a directory, merges and
 * renders Prometheus text 0.0.4 or OpenMetrics 1.0.0. A corrupt, truncated,
 * empty, foreign or vanishing file is skipped and counted, never fatal.
 *
 * Errors: functions returning int return 0 or a negative errno-style code
 * (see shm_strerror). Thread-safety is stated per function.
 */
#ifndef CVLLM_SHM_H
#define CVLLM_SHM_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#ifdef __cplusplus
extern "C" {
#endif

/* --- errors ---------------------------------------------------------------- */

/* Project codes, beyond the negative errno values also returned. */
#define SHM_ERRNO_MAP(XX)                                                        \
    XX(SHM_EBADNAME, -5001, "invalid metric or label name")                       \
    XX(SHM_EBADLABELS, -5002, "wrong number of label values or invalid UTF-8")    \
    XX(SHM_EEXIST, -5003, "family already registered with a different shape")    \
    XX(SHM_EBADBUCKETS, -5004, "histogram buckets not strictly increasing")       \
    XX(SHM_ECORRUPT, -5005, "metrics file is corrupt")                            \
    XX(SHM_ENODIR, -5006, "PROMETHEUS_MULTIPROC_DIR is not set or not a directory") \
    XX(SHM_EBADID, -5007, "process id contains '_' or '/' or is empty")           \
    XX(SHM_ETOOBIG, -5008, "metrics file would exceed its address reservation")

enum {
#define XX(name, val, msg) name = (val),
    SHM_ERRNO_MAP(XX)
#undef XX
};

/* Human-readable message for a code returned by this library (a negative errno
 * or an SHM_E* code). Borrowed; static storage. */
const char *shm_strerror(int err);

/* --- types ------------------------------------------------------------------ */

typedef enum {
    SHM_COUNTER = 0,
    SHM_GAUGE,
    SHM_HISTOGRAM,
    SHM_SUMMARY,
} shm_type_t;

/* Gauge multiprocess modes, as prometheus_client names them. The live* modes'
 * files are removed by shm_mark_process_dead. */
typedef enum {
    SHM_MODE_ALL = 0,
    SHM_MODE_LIVEALL,
    SHM_MODE_MIN,
    SHM_MODE_LIVEMIN,
    SHM_MODE_MAX,
    SHM_MODE_LIVEMAX,
    SHM_MODE_SUM,
    SHM_MODE_LIVESUM,
    SHM_MODE_MOSTRECENT,
    SHM_MODE_LIVEMOSTRECENT,
    SHM_MODE_COUNT
} shm_mode_t;

/* "all", "liveall", ... Borrowed; static storage. NULL for an invalid mode. */
const char *shm_mode_name(shm_mode_t mode);
/* Parses a mode name. Returns 0 and sets *out, or SHM_EBADNAME. */
int shm_mode_parse(const char *name, shm_mode_t *out);

typedef struct shm_registry shm_registry_t;
typedef struct shm_family shm_family_t;
typedef struct shm_metric shm_metric_t;

/* --- registry ---------------------------------------------------------------- */

typedef struct {
    /* Directory. NULL: $PROMETHEUS_MULTIPROC_DIR, else the legacy
     * $prometheus_multiproc_dir. It must exist. */
    const char *dir;
    /* Process identifier used in file names (prometheus_client's
     * process_identifier). NULL: the decimal pid, re-evaluated after fork().
     * An explicit id must be unique among live writers of the directory, must
     * not contain '_' or '/', and is kept across fork() (the caller then gives
     * the child its own id with shm_registry_set_id). */
    const char *process_id;
} shm_registry_opts_t;

/* Creates a registry for this process. Files are created lazily, on the first
 * family of each kind. If a file of the same name exists (pid reuse) its
 * entries are kept and continued, as prometheus_client does; a corrupt one is
 * renamed to <name>.corrupt-<time> and replaced.
 * Returns 0 and sets *out (caller owns it; free with shm_registry_destroy),
 * SHM_ENODIR, SHM_EBADID or a negative errno. Thread-safe. */
int shm_registry_new(const shm_registry_opts_t *opts, shm_registry_t **out);

/* Unmaps and closes the files (they stay on disk: counters of a process must
 * outlive it), frees every family and metric handle, sets *reg to NULL.
 * No other thread may use the registry or its handles concurrently. */
void shm_registry_destroy(shm_registry_t **reg);

/* The process identifier in use. Borrowed; valid until the registry is
 * destroyed or re-identified. */
const char *shm_registry_id(const shm_registry_t *reg);

/* The directory in use. Borrowed; valid until the registry is destroyed. */
const char *shm_registry_dir(const shm_registry_t *reg);

/* Moves this registry's series to files named after `id` (a fork child with an
 * explicit id calls this). All values restart at 0 in the new files, unless
 * those files already exist, whose values are continued. Handles stay valid.
 * Not to be called while other threads record. Returns 0, SHM_EBADID or a
 * negative errno (on error the registry keeps its old files). */
int shm_registry_set_id(shm_registry_t *reg, const char *id);

/* --- families ------------------------------------------------------------------ */

typedef struct {
    shm_type_t type;
    /* Metric name ([a-zA-Z_:][a-zA-Z0-9_:]*). A trailing "_total" of a counter
     * is stripped, as prometheus_client does. */
    const char *name;
    const char *help;                /* UTF-8 HELP text */
    const char *const *label_names;  /* [a-zA-Z_][a-zA-Z0-9_]*, not "__*" */
    size_t n_labels;
    shm_mode_t mode;                 /* gauges only */
    /* Histograms: upper bounds, strictly increasing; +Inf is appended when
     * missing. NULL/0 selects prometheus_client's default buckets. */
    const double *buckets;
    size_t n_buckets;
} shm_family_desc_t;

/* Declares a family. Declaring the same name twice with the same shape returns
 * the existing family; a different shape is SHM_EEXIST. Names, label names and
 * buckets are validated (SHM_EBADNAME, SHM_EBADBUCKETS). The family is owned
 * by the registry (borrowed; valid until shm_registry_destroy). Thread-safe. */
int shm_family_new(shm_registry_t *reg, const shm_family_desc_t *desc, shm_family_t **out);

/* Resolves the series with these label values (n_labels UTF-8 strings; NULL
 * when the family has no labels), creating its file entries at 0 if new, as
 * prometheus_client's .labels() does. Returns the same handle for the same
 * values. The handle is owned by the registry (borrowed; valid until
 * shm_registry_destroy). Returns 0, SHM_EBADLABELS, SHM_ETOOBIG or a negative
 * errno. Thread-safe; not for hot paths (resolve handles at startup). */
int shm_metric_get(shm_family_t *fam, const char *const *label_values, shm_metric_t **out);

/* --- hot path ------------------------------------------------------------------
 * Lock-free, allocation-free, syscall-free (mostrecent gauges read the wall
 * clock through the vDSO). Safe from any thread of the owning process. */

struct shm_metric {
    /* private: read only by the inline functions below */
    uint64_t *value;        /* counter total, gauge value, histogram _sum, summary _count */
    uint64_t *ts;           /* gauge timestamp */
    uint64_t *sum;          /* summary _sum */
    uint64_t **bucket;      /* histogram: per-bucket counts (not cumulative) */
    const double *bound;    /* histogram: upper bounds, last is +Inf */
    uint32_t n_bucket;
    uint8_t type;           /* shm_type_t */
    uint8_t mostrecent;     /* gauge in a (live)mostrecent mode */
};

static inline double shm__bits_to_d(uint64_t u) { double d; memcpy(&d, &u, 8); return d; }
static inline uint64_t shm__d_to_bits(double d) { uint64_t u; memcpy(&u, &d, 8); return u; }

/* Atomically adds v to the double stored at slot. */
static inline void shm__atomic_add(uint64_t *slot, double v) {
    uint64_t old = __atomic_load_n(slot, __ATOMIC_RELAXED);
    while (!__atomic_compare_exchange_n(slot, &old, shm__d_to_bits(shm__bits_to_d(old) + v),
                                        1, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
    }
}

double shm__wall_time(void);

/* Counter += v. Negative v is ignored (prometheus_client raises). */
static inline void shm_counter_inc(shm_metric_t *m, double v) {
    if (v < 0) return;
    shm__atomic_add(m->value, v);
}

/* Gauge = v. In the (live)mostrecent modes it also stores the wall-clock
 * time, which decides which process's value the merge reports. */
static inline void shm_gauge_set(shm_metric_t *m, double v) {
    __atomic_store_n(m->value, shm__d_to_bits(v), __ATOMIC_RELAXED);
    if (m->mostrecent)
        __atomic_store_n(m->ts, shm__d_to_bits(shm__wall_time()), __ATOMIC_RELEASE);
}

/* Gauge += v (v may be negative). Not for the mostrecent modes, where a
 * value without a time has no meaning: there it behaves as shm_gauge_set of
 * the new value. */
static inline void shm_gauge_inc(shm_metric_t *m, double v) {
    if (m->mostrecent) {
        shm_gauge_set(m, shm__bits_to_d(__atomic_load_n(m->value, __ATOMIC_RELAXED)) + v);
        return;
    }
    shm__atomic_add(m->value, v);
}

/* Histogram: _sum += v and +1 in the first bucket with v <= bound (NaN
 * matches no bucket, as in prometheus_client). */
/* Branchless lower bound: the first i with v <= bound[i] (the last bound is
 * +Inf, so every non-NaN v has one; NaN ends at 0 and fails the <= test). */
static inline uint32_t shm__bucket_index(const shm_metric_t *m, double v) {
    uint32_t lo = 0, n = m->n_bucket;
    const double *b = m->bound;
    while (n > 1) {
        uint32_t half = n / 2;
        lo = (b[lo + half - 1] < v) ? lo + half : lo;
        n -= half;
    }
    return lo;
}

static inline void shm_histogram_observe(shm_metric_t *m, double v) {
    uint32_t i = shm__bucket_index(m, v);
    shm__atomic_add(m->value, v);
    if (v <= m->bound[i]) shm__atomic_add(m->bucket[i], 1.0);
}

/* Summary: _count += 1, _sum += v. */
static inline void shm_summary_observe(shm_metric_t *m, double v) {
    shm__atomic_add(m->value, 1.0);
    shm__atomic_add(m->sum, v);
}

/* Single-writer variants, for series that only one thread ever records (a
 * frontend worker's event loop, the engine's step loop): a plain load and an
 * atomic 8-byte store instead of a locked read-modify-write, so back-to-back
 * updates are not serialised on the CPU's atomic latency. Readers in other
 * processes still see whole values. Mixing them with the thread-safe forms on
 * the same series, or calling them from two threads, loses updates. */
static inline void shm__local_add(uint64_t *slot, double v) {
    __atomic_store_n(slot, shm__d_to_bits(shm__bits_to_d(__atomic_load_n(slot, __ATOMIC_RELAXED)) + v),
                     __ATOMIC_RELAXED);
}

static inline void shm_counter_inc_local(shm_metric_t *m, double v) {
    if (v < 0) return;
    shm__local_add(m->value, v);
}

static inline void shm_histogram_observe_local(shm_metric_t *m, double v) {
    uint32_t i = shm__bucket_index(m, v);
    shm__local_add(m->value, v);
    if (v <= m->bound[i]) shm__local_add(m->bucket[i], 1.0);
}

/* Current value of a counter or gauge (histogram: _sum; summary: _count) as
 * stored in this process's file. */
static inline double shm_metric_value(const shm_metric_t *m) {
    return shm__bits_to_d(__atomic_load_n(m->value, __ATOMIC_RELAXED));
}

/* --- process lifecycle ------------------------------------------------------------ */

/* Creates a fresh private directory (mode 0700) for PROMETHEUS_MULTIPROC_DIR
 * under `parent` (NULL: $TMPDIR or /tmp) and writes its path into out (n
 * bytes). Returns 0, -ENAMETOOLONG or a negative errno. */
int shm_dir_create_private(const char *parent, char *out, size_t n);

/* Removes a directory created by shm_dir_create_private and the metrics files
 * in it (*.db, the lock file, temporary files; nothing else, and no
 * recursion). Returns 0 or a negative errno. */
int shm_dir_remove(const char *dir);

/* prometheus_client's mark_process_dead: removes gauge_live*_<id>.db of that
 * process from dir (NULL: the environment's directory). Counters, histograms,
 * summaries and non-live gauges stay. Returns 0 or a negative errno.
 * Thread- and process-safe. */
int shm_mark_process_dead(const char *dir, const char *id);

/* Folds the counter, histogram and summary files of a dead process into
 * archive files (counter_archive.db, ...) so that the directory's file count
 * stays bounded while totals are preserved. Live gauge files are removed
 * (shm_mark_process_dead); other gauge files are left alone. Takes the
 * directory's lock exclusively, so a scrape by shm_collector never sees the
 * totals twice or not at all (Python readers do not take the lock and may,
 * for one scrape). Must only be called for a process that has exited.
 * Returns 0 or a negative errno; on error nothing was removed. */
int shm_compact_dead(const char *dir, const char *id);

/* --- reading, merging, rendering ------------------------------------------------- */

typedef enum {
    SHM_FORMAT_TEXT = 0,      /* Prometheus text 0.0.4 */
    SHM_FORMAT_OPENMETRICS,   /* OpenMetrics 1.0.0 */
} shm_format_t;

/* Growable byte buffer. Zero-initialise; free with shm_buf_free. */
typedef struct {
    char *data;
    size_t len, cap;
} shm_buf_t;

int shm_buf_reserve(shm_buf_t *b, size_t extra);
int shm_buf_append(shm_buf_t *b, const void *p, size_t n);
void shm_buf_free(shm_buf_t *b);

typedef struct {
    uint64_t files_read;      /* *.db files merged in the last scrape */
    uint64_t files_skipped;   /* files skipped in the last scrape */
    uint64_t entries;         /* entries merged in the last scrape */
    double seconds;           /* duration of the last scrape */
} shm_scrape_stats_t;

typedef struct shm_collector shm_collector_t;

/* Log callback for skipped files: called once per file name (per collector)
 * with a message naming the file and the problem. NULL: stderr. */
typedef void (*shm_log_fn)(void *ud, const char *msg);

typedef struct {
    const char *dir;          /* NULL: the environment's directory */
    /* Optional registry of the scraping process: the collector then records
     * its self-metrics there (cvllm_metrics_files_skipped_total,
     * cvllm_metrics_scrape_duration_seconds, cvllm_metrics_db_files), so they
     * appear, merged over processes, from the next scrape on. */
    shm_registry_t *self;
    shm_log_fn log;
    void *log_ud;
} shm_collector_opts_t;

/* Creates a collector (keeps caches between scrapes). Returns 0 and sets *out
 * (caller owns it; free with shm_collector_destroy), SHM_ENODIR or a negative
 * errno. */
int shm_collector_new(const shm_collector_opts_t *opts, shm_collector_t **out);
void shm_collector_destroy(shm_collector_t **c);

/* Reads and merges every *.db file and appends the exposition to out.
 * names/n_names: when n_names > 0, only families with one of these sample
 * names (the `name[]` query parameter of prometheus_client) are rendered.
 * Returns 0, or a negative errno for an unreadable directory or out of memory
 * (bad files never fail a scrape). One thread at a time per collector. */
int shm_collector_scrape(shm_collector_t *c, shm_format_t fmt, const char *const *names,
                         size_t n_names, shm_buf_t *out, shm_scrape_stats_t *stats);

/* Chooses the format from an Accept header (NULL: none) as prometheus_client's
 * choose_encoder does, and writes the Content-Type to answer with into
 * ctype (>= 128 bytes; never contains bytes taken from `accept` other than a
 * validated numeric version and a known escaping scheme). */
shm_format_t shm_negotiate(const char *accept, char *ctype, size_t ctype_len);

/* True if an Accept-Encoding header lists gzip (prometheus_client rules). */
int shm_gzip_accepted(const char *accept_encoding);

/* Appends the gzip compression of in[0..n) to out. Returns 0 or -ENOMEM/-EIO. */
int shm_gzip(const void *in, size_t n, shm_buf_t *out);

/* Python's floatToGoString: "1.0", "1e+06", "+Inf", "NaN". Writes a NUL-
 * terminated string into buf (>= 32 bytes); returns its length. */
int shm_format_double(double d, char *buf);

#ifdef __cplusplus
}
#endif
#endif /* CVLLM_SHM_H */

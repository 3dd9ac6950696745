/* Collector internals shared by collector.c (reading) and render.c (merging
 * and rendering). */
#ifndef CVLLM_SHM_COLLECTOR_INT_H
#define CVLLM_SHM_COLLECTOR_INT_H

#include <sys/types.h>

#include "shm_int.h"

/* Bump allocator; chunks are kept and reused after a reset. */
typedef struct arena_chunk {
    struct arena_chunk *next;
    size_t size, used;
    _Alignas(16) unsigned char data[];
} arena_chunk_t;

typedef struct {
    arena_chunk_t *head, *cur;
} shm_arena_t;

void *shm__arena_alloc(shm_arena_t *a, size_t n);

struct mfam;

/* A parsed entry key, cached across scrapes. */
typedef struct pkey {
    uint32_t hash, klen;
    char *raw;                    /* key bytes (cache identity) */
    const char *family, *sample, *help;
    uint32_t nl;
    const char *(*lab)[2];        /* labels sorted by name, unique */
    int le_idx;                   /* index of the "le" label, or -1 */
    int le_ok;                    /* le parsed as a float */
    double le;
    uint32_t full_h, nole_h;      /* label-set identity hashes (with / without le) */
    uint64_t gen;                 /* scrape in which fam was resolved */
    struct mfam *fam;
    uint64_t g_gen;               /* scrape in which g was resolved (pid-less groups) */
    void *g;
    uint32_t s_idx;               /* index of this key's series in g */
} pkey_t;

typedef struct {
    pkey_t *k;
    const char *pid;              /* gauges: pid from the file name */
    double v, ts;
} raw_t;

/* One metric family during a scrape. */
typedef struct mfam {
    struct mfam *next;            /* first-seen order */
    uint64_t gen;
    uint32_t hash;
    const char *name, *help;
    int type;                     /* shm_type_t of the first file */
    int mode;                     /* gauges: mode of the last file; SHM_MODE_COUNT = unknown (all) */
    raw_t *raw;
    size_t n_raw, cap_raw;
} mfam_t;

typedef struct {
    pkey_t *k;
    uint32_t voff;                /* offset of the value double */
} centry_t;

/* A metrics file kept mapped between scrapes. */
typedef struct {
    char *name;
    ino_t ino;
    int fresh;                    /* name not parsed yet */
    int ftype, mode, live;
    char *pid;
    uint8_t *map;
    size_t size;
    uint32_t used_seen;           /* entries below this are parsed (append-only) */
    centry_t *ent;
    uint32_t n_ent, cap_ent;
    uint64_t seen;                /* last scrape that listed it */
} cfile_t;

struct shm_collector {
    char *dir;
    shm_log_fn log;
    void *log_ud;
    char **logged;
    size_t n_logged;
    shm_metric_t *m_skipped, *m_duration, *m_files;

    shm_arena_t keys;             /* pkeys */
    pkey_t **kc;
    uint32_t kc_cap, kc_n;

    uint64_t gen;
    shm_arena_t scrape;           /* per-scrape objects */
    mfam_t **fams;
    uint32_t fam_cap, fam_n;
    mfam_t *fam_head, *fam_tail;
    cfile_t *files;
    uint32_t n_files, cap_files;
    int lock, dfd;
    shm_buf_t tmp;
    shm_buf_t lbuf;               /* scratch for rendering label sets */
    shm_scrape_stats_t stats;
};

/* Merges the families read by this scrape and appends the exposition. */
int shm__render(shm_collector_t *c, shm_format_t fmt, const char *const *names, size_t n_names,
                shm_buf_t *out);

#endif

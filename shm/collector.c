/* Reader side: reads every *.db file of a multiprocess directory and merges
 * them with prometheus_client's MultiProcessCollector semantics (see
 * docs/metrics-shm.md for the rules and the documented differences), then
 * hands the merged families to render.c.
 *
 * Bad files (foreign names, corrupt or truncated entries, 0 bytes, vanished)
 * are skipped as a whole, counted and logged once; they never fail a scrape.
 * Parsed keys are cached across scrapes (the key bytes are the cache key);
 * everything else lives in a per-scrape arena.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "collector_int.h"

/* --- small utilities --------------------------------------------------------- */

static uint32_t hash_mix(const void *p, size_t n, uint32_t h) {
    const uint8_t *s = p;
    /* FNV-1a over 8-byte words, then bytes: fast enough for ~150-byte keys */
    uint64_t x = h ^ 0x9e3779b97f4a7c15ull;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, s + i, 8);
        x = (x ^ w) * 0x100000001b3ull;
        x ^= x >> 29;
    }
    for (; i < n; i++) x = (x ^ s[i]) * 0x100000001b3ull;
    x ^= x >> 32;
    return (uint32_t)x ? (uint32_t)x : 1;
}

void *shm__arena_alloc(shm_arena_t *a, size_t n) {
    n = (n + 15) & ~(size_t)15;
    if (!a->cur || a->cur->used + n > a->cur->size) {
        /* reuse the next chunk if its size fits, else allocate */
        arena_chunk_t *c = a->cur ? a->cur->next : a->head;
        if (!c || c->size < n) {
            size_t sz = n > 65536 ? n : 65536;
            c = malloc(sizeof *c + sz);
            if (!c) return NULL;
            c->size = sz;
            if (a->cur) {
                c->next = a->cur->next;
                a->cur->next = c;
            } else {
                c->next = a->head;
                a->head = c;
            }
        }
        c->used = 0;
        a->cur = c;
    }
    void *p = a->cur->data + a->cur->used;
    a->cur->used += n;
    return p;
}

static void arena_reset(shm_arena_t *a) {
    a->cur = NULL;
    for (arena_chunk_t *c = a->head; c; c = c->next) c->used = 0;
}

static void arena_free(shm_arena_t *a) {
    while (a->head) {
        arena_chunk_t *n = a->head->next;
        free(a->head);
        a->head = n;
    }
    a->cur = NULL;
}

static char *arena_strdup(shm_arena_t *a, const char *s) {
    size_t n = strlen(s) + 1;
    char *p = shm__arena_alloc(a, n);
    if (p) memcpy(p, s, n);
    return p;
}

long shm__validate(const uint8_t *data, size_t size, uint32_t used) {
    if (used == 0) return 0;
    if (used < SHM_HEADER || used > size || used % 8) return SHM_ECORRUPT;
    long n = 0;
    uint32_t pos = SHM_HEADER;
    while (pos < used) {
        if (used - pos < 4) return SHM_ECORRUPT;
        int32_t kl;
        memcpy(&kl, data + pos, 4);
        if (kl < 0 || (uint32_t)kl > used || (uint64_t)pos + shm__entry_size((uint32_t)kl) > used)
            return SHM_ECORRUPT;
        pos += shm__entry_size((uint32_t)kl);
        n++;
    }
    return n;
}

int shm__dir_lock(const char *dir, bool exclusive) {
    char path[4096];
    snprintf(path, sizeof path, "%s/.cvllm-metrics.lock", dir);
    int fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) return -errno;
    while (flock(fd, exclusive ? LOCK_EX : LOCK_SH) < 0) {
        if (errno != EINTR) {
            int e = -errno;
            close(fd);
            return e;
        }
    }
    return fd;
}

/* --- parsed-key cache ------------------------------------------------------------- */

static int cmp_label(const void *a, const void *b) {
    return strcmp(((const char *const *)a)[0], ((const char *const *)b)[0]);
}

/* Builds a pkey from raw key bytes; persistent storage (c->keys arena). */
static pkey_t *key_build(shm_collector_t *c, const char *raw, uint32_t klen, uint32_t h) {
    shm_key_t k;
    if (shm__json_key_parse(raw, klen, &c->tmp, &k)) return NULL;
    shm_arena_t *a = &c->keys;
    pkey_t *p = shm__arena_alloc(a, sizeof *p);
    if (!p) return NULL;
    memset(p, 0, sizeof *p);
    p->hash = h;
    p->klen = klen;
    p->raw = shm__arena_alloc(a, klen);
    p->family = arena_strdup(a, k.family);
    p->sample = arena_strdup(a, k.sample);
    p->help = arena_strdup(a, k.help);
    if (!p->raw || !p->family || !p->sample || !p->help) return NULL;
    memcpy(p->raw, raw, klen);
    /* json.loads: duplicate names keep the last value; then sorted by name */
    const char *(*pairs)[2] = shm__arena_alloc(a, (k.n_labels + 1) * sizeof *pairs);
    if (!pairs) return NULL;
    uint32_t n = 0;
    for (uint32_t i = 0; i < k.n_labels; i++) {
        uint32_t j = 0;
        while (j < n && strcmp(pairs[j][0], k.lname[i])) j++;
        const char *v = arena_strdup(a, k.lvalue[i]);
        if (!v) return NULL;
        if (j < n) {
            pairs[j][1] = v;
        } else {
            if (!(pairs[n][0] = arena_strdup(a, k.lname[i]))) return NULL;
            pairs[n][1] = v;
            n++;
        }
    }
    qsort(pairs, n, sizeof *pairs, cmp_label);
    p->nl = n;
    p->lab = pairs;
    p->le_idx = -1;
    for (uint32_t i = 0; i < n; i++)
        if (!strcmp(pairs[i][0], "le")) {
            p->le_idx = (int)i;
            char *end;
            const char *s = pairs[i][1];
            while (*s == ' ' || *s == '\t' || *s == '\n') s++;
            p->le = strtod(s, &end);
            while (*end == ' ' || *end == '\t' || *end == '\n') end++;
            p->le_ok = end != s && *end == 0;
            break;
        }
    /* identity hashes: all labels, and all but le */
    uint32_t hf = 7, hn = 7;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t hp = hash_mix(pairs[i][0], strlen(pairs[i][0]) + 1, 0);
        hp = hash_mix(pairs[i][1], strlen(pairs[i][1]) + 1, hp);
        hf = hf * 31 + hp;
        if ((int)i != p->le_idx) hn = hn * 31 + hp;
    }
    p->full_h = hf;
    p->nole_h = hn;
    return p;
}

static pkey_t *key_lookup(shm_collector_t *c, const char *raw, uint32_t klen) {
    uint32_t h = hash_mix(raw, klen, klen);
    if (c->kc_cap) {
        uint32_t i = h & (c->kc_cap - 1);
        for (pkey_t *p; (p = c->kc[i]); i = (i + 1) & (c->kc_cap - 1))
            if (p->hash == h && p->klen == klen && !memcmp(p->raw, raw, klen)) return p;
    }
    if ((c->kc_n + 1) * 2 > c->kc_cap) {
        uint32_t ncap = c->kc_cap ? c->kc_cap * 2 : 1024;
        pkey_t **n = calloc(ncap, sizeof *n);
        if (!n) return NULL;
        for (uint32_t i = 0; i < c->kc_cap; i++)
            if (c->kc[i]) {
                uint32_t j = c->kc[i]->hash & (ncap - 1);
                while (n[j]) j = (j + 1) & (ncap - 1);
                n[j] = c->kc[i];
            }
        free(c->kc);
        c->kc = n;
        c->kc_cap = ncap;
    }
    pkey_t *p = key_build(c, raw, klen, h);
    if (!p) return NULL;
    uint32_t i = h & (c->kc_cap - 1);
    while (c->kc[i]) i = (i + 1) & (c->kc_cap - 1);
    c->kc[i] = p;
    c->kc_n++;
    return p;
}

/* --- per-scrape families ---------------------------------------------------------------- */

static mfam_t *family_get(shm_collector_t *c, pkey_t *k, int ftype) {
    if (k->gen == c->gen) return k->fam;
    uint32_t h = hash_mix(k->family, strlen(k->family), 3);
    if ((c->fam_n + 1) * 2 > c->fam_cap) {
        uint32_t ncap = c->fam_cap ? c->fam_cap * 2 : 256;
        mfam_t **n = calloc(ncap, sizeof *n);
        if (!n) return NULL;
        for (uint32_t i = 0; i < c->fam_cap; i++)
            if (c->fams[i] && c->fams[i]->gen == c->gen) {
                uint32_t j = c->fams[i]->hash & (ncap - 1);
                while (n[j]) j = (j + 1) & (ncap - 1);
                n[j] = c->fams[i];
            }
        free(c->fams);
        c->fams = n;
        c->fam_cap = ncap;
    }
    uint32_t i = h & (c->fam_cap - 1);
    mfam_t *f;
    while ((f = c->fams[i])) {
        if (f->hash == h && !strcmp(f->name, k->family)) break;
        i = (i + 1) & (c->fam_cap - 1);
    }
    if (!f) {
        f = shm__arena_alloc(&c->scrape, sizeof *f);
        if (!f) return NULL;
        memset(f, 0, sizeof *f);
        f->gen = c->gen;
        f->hash = h;
        f->name = k->family;
        f->help = k->help; /* first file decides help and type */
        f->type = ftype;
        f->mode = -1;
        c->fams[i] = f;
        c->fam_n++;
        if (c->fam_tail) c->fam_tail->next = f;
        else c->fam_head = f;
        c->fam_tail = f;
    }
    k->gen = c->gen;
    k->fam = f;
    return f;
}

static int raw_push(mfam_t *f, pkey_t *k, const char *pid, double v, double ts) {
    if (f->n_raw == f->cap_raw) {
        size_t ncap = f->cap_raw ? f->cap_raw * 2 : 64;
        raw_t *n = realloc(f->raw, ncap * sizeof *n);
        if (!n) return -ENOMEM;
        f->raw = n;
        f->cap_raw = ncap;
    }
    f->raw[f->n_raw++] = (raw_t){k, pid, v, ts};
    return 0;
}

/* --- reading files --------------------------------------------------------------------- */

static void log_skip(shm_collector_t *c, const char *file, const char *why) {
    for (size_t i = 0; i < c->n_logged; i++)
        if (!strcmp(c->logged[i], file)) return;
    if (c->n_logged < 4096) {
        char **n = realloc(c->logged, (c->n_logged + 1) * sizeof *n);
        if (n) {
            c->logged = n;
            if ((c->logged[c->n_logged] = strdup(file))) c->n_logged++;
        }
    }
    char msg[1024];
    snprintf(msg, sizeof msg, "metrics: skipping %s/%s: %s", c->dir, file, why);
    if (c->log) c->log(c->log_ud, msg);
    else fprintf(stderr, "%s\n", msg);
}

/* --- file cache -----------------------------------------------------------------
 * Files stay mapped between scrapes (no fd kept). Entries are append-only, so
 * the part of a file validated and parsed by an earlier scrape keeps its keys:
 * a scrape only loads `used`, parses the new tail and reads the values. A file
 * whose inode changed (compaction, pid reuse after removal) is read afresh. */

static void cfile_drop(cfile_t *f) {
    if (f->map) munmap(f->map, f->size);
    free(f->ent);
    free(f->name);
    free(f->pid);
    memset(f, 0, sizeof *f);
}

static cfile_t *cfile_get(shm_collector_t *c, const char *name, ino_t ino) {
    for (uint32_t i = 0; i < c->n_files; i++)
        if (!strcmp(c->files[i].name, name)) {
            if (c->files[i].ino != ino) {
                cfile_drop(&c->files[i]);
                c->files[i] = c->files[--c->n_files];
                break;
            }
            return &c->files[i];
        }
    if (c->n_files == c->cap_files) {
        uint32_t nc = c->cap_files ? c->cap_files * 2 : 64;
        cfile_t *n = realloc(c->files, nc * sizeof *n);
        if (!n) return NULL;
        c->files = n;
        c->cap_files = nc;
    }
    cfile_t *f = &c->files[c->n_files];
    memset(f, 0, sizeof *f);
    if (!(f->name = strdup(name))) return NULL;
    f->ino = ino;
    f->fresh = 1;
    c->n_files++;
    return f;
}

static const char *const ftypes[] = {"counter", "gauge", "histogram", "summary"};

/* parts = name.split('_'); typ = parts[0]; gauges: mode = parts[1], pid = parts[2][:-3] */
static int parse_name(cfile_t *f, const char **why) {
    const char *name = f->name, *us = strchr(name, '_');
    if (!us) return *why = "file name has no '_<pid>' part", 1;
    f->ftype = -1;
    for (int i = 0; i < 4; i++)
        if ((size_t)(us - name) == strlen(ftypes[i]) && !strncmp(name, ftypes[i], us - name)) f->ftype = i;
    if (f->ftype < 0) return *why = "not a prometheus_client metrics file (unknown type prefix)", 1;
    f->mode = -1;
    if (f->ftype != SHM_GAUGE) return 0;
    const char *us2 = strchr(us + 1, '_');
    if (!us2) return *why = "gauge file name lacks a mode or pid", 1;
    char m[32];
    size_t ml = (size_t)(us2 - us - 1);
    if (ml < sizeof m) {
        memcpy(m, us + 1, ml);
        m[ml] = 0;
        shm_mode_t md;
        if (!shm_mode_parse(m, &md)) f->mode = (int)md;
        f->live = !strncmp(m, "live", 4);
    }
    if (f->mode < 0) f->mode = SHM_MODE_COUNT; /* unknown mode: merged like 'all' */
    const char *p2 = us2 + 1, *us3 = strchr(p2, '_');
    size_t pl = us3 ? (size_t)(us3 - p2) : strlen(p2);
    pl = pl >= 3 ? pl - 3 : 0;
    if (!(f->pid = malloc(pl + 1))) return -ENOMEM;
    memcpy(f->pid, p2, pl);
    f->pid[pl] = 0;
    return 0;
}

/* (Re)maps f at its current size. */
static int cfile_map(shm_collector_t *c, cfile_t *f, const char **why) {
    int fd = openat(c->dfd, f->name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) {
        if (errno == ENOENT) return f->live ? 2 : (*why = "vanished during the scrape", 1);
        return *why = errno == ELOOP ? "is a symbolic link" : "cannot be opened", 1;
    }
    struct stat st;
    int rc = 1;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        *why = "not a regular file";
    } else if (st.st_ino != f->ino) {
        *why = "replaced during the scrape";
    } else if (st.st_size < (off_t)SHM_HEADER) {
        *why = st.st_size ? "truncated header" : "empty (0 bytes)";
    } else {
        if (f->map) munmap(f->map, f->size);
        f->size = (size_t)st.st_size;
        f->map = mmap(NULL, f->size, PROT_READ, MAP_SHARED, fd, 0);
        if (f->map == MAP_FAILED) {
            f->map = NULL;
            *why = "cannot be mapped";
        } else {
            rc = 0;
        }
    }
    close(fd);
    return rc;
}

/* Validates and parses entries [f->used_seen, used). */
static int cfile_parse_tail(shm_collector_t *c, cfile_t *f, uint32_t used, const char **why) {
    if (shm__validate(f->map, f->size, used) < 0) return *why = "corrupt entries (bad used count or entry length)", 1;
    for (uint32_t pos = f->used_seen ? f->used_seen : SHM_HEADER; pos < used;) {
        int32_t kl;
        memcpy(&kl, f->map + pos, 4);
        uint32_t es = shm__entry_size((uint32_t)kl);
        pkey_t *k = key_lookup(c, (const char *)f->map + pos + 4, (uint32_t)kl);
        if (!k || (k->le_idx >= 0 && !k->le_ok && f->ftype == SHM_HISTOGRAM))
            return *why = "entry key is not a valid [family, sample, {labels}, help] JSON array", 1;
        if (f->n_ent == f->cap_ent) {
            uint32_t nc = f->cap_ent ? f->cap_ent * 2 : 64;
            centry_t *n = realloc(f->ent, nc * sizeof *n);
            if (!n) return -ENOMEM;
            f->ent = n;
            f->cap_ent = nc;
        }
        f->ent[f->n_ent++] = (centry_t){k, pos + es - 16};
        pos += es;
    }
    f->used_seen = used;
    return 0;
}

/* Reads one file into the per-scrape families. Returns 0 (merged), 1 (skipped:
 * *why set), 2 (vanished live gauge: ignored) or -ENOMEM. On a skip the cached
 * state is dropped so the next scrape looks at the file afresh. */
static int read_file(shm_collector_t *c, cfile_t *f, const char **why) {
    int rc;
    if (f->fresh) {
        f->fresh = 0;
        if ((rc = parse_name(f, why))) return rc;
    } else if (f->ftype < 0) {
        return *why = "not a prometheus_client metrics file", 1;
    }
    if (!f->map && (rc = cfile_map(c, f, why))) return rc;
    uint32_t used = __atomic_load_n((const uint32_t *)f->map, __ATOMIC_ACQUIRE);
    if (used > f->size) {
        /* grown since mapped: map again at the new size */
        if ((rc = cfile_map(c, f, why))) return rc;
        used = __atomic_load_n((const uint32_t *)f->map, __ATOMIC_ACQUIRE);
    }
    if (used < f->used_seen) return *why = "shrank (rewritten in place)", 1;
    if (used > f->used_seen && (rc = cfile_parse_tail(c, f, used, why))) return rc;
    const char *pid = f->ftype == SHM_GAUGE ? f->pid : NULL;
    for (uint32_t i = 0; i < f->n_ent; i++) {
        pkey_t *k = f->ent[i].k;
        mfam_t *fam = family_get(c, k, f->ftype);
        if (!fam) return -ENOMEM;
        const uint64_t *vp = (const uint64_t *)(f->map + f->ent[i].voff);
        if (raw_push(fam, k, pid, shm__bits_to_d(__atomic_load_n(vp, __ATOMIC_RELAXED)),
                     shm__bits_to_d(__atomic_load_n(vp + 1, __ATOMIC_RELAXED))))
            return -ENOMEM;
        if (f->ftype == SHM_GAUGE) fam->mode = f->mode; /* the last gauge file decides */
    }
    c->stats.entries += f->n_ent;
    return 0;
}

/* --- collector lifecycle ------------------------------------------------------------------ */

static const double scrape_buckets[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5};

int shm_collector_new(const shm_collector_opts_t *opts, shm_collector_t **out) {
    const char *dir = opts && opts->dir ? opts->dir : shm__env_dir();
    struct stat st;
    if (!dir || stat(dir, &st) < 0 || !S_ISDIR(st.st_mode)) return SHM_ENODIR;
    shm_collector_t *c = calloc(1, sizeof *c);
    if (!c || !(c->dir = strdup(dir))) {
        free(c);
        return -ENOMEM;
    }
    c->lock = c->dfd = -1;
    if (opts) {
        c->log = opts->log;
        c->log_ud = opts->log_ud;
    }
    if (opts && opts->self) {
        shm_family_t *f;
        shm_family_desc_t d = {.type = SHM_COUNTER, .name = "cvllm_metrics_files_skipped",
                               .help = "Metrics files skipped by scrapes (corrupt, truncated, empty, foreign or vanished)."};
        int rc = shm_family_new(opts->self, &d, &f);
        if (!rc) rc = shm_metric_get(f, NULL, &c->m_skipped);
        d = (shm_family_desc_t){.type = SHM_HISTOGRAM, .name = "cvllm_metrics_scrape_duration_seconds",
                                .help = "Time to read, merge and render the multiprocess metrics directory.",
                                .buckets = scrape_buckets, .n_buckets = sizeof scrape_buckets / sizeof scrape_buckets[0]};
        if (!rc) rc = shm_family_new(opts->self, &d, &f);
        if (!rc) rc = shm_metric_get(f, NULL, &c->m_duration);
        d = (shm_family_desc_t){.type = SHM_GAUGE, .name = "cvllm_metrics_db_files",
                                .help = "Number of .db files in the multiprocess metrics directory at the last scrape.",
                                .mode = SHM_MODE_LIVEMOSTRECENT};
        if (!rc) rc = shm_family_new(opts->self, &d, &f);
        if (!rc) rc = shm_metric_get(f, NULL, &c->m_files);
        if (rc) {
            shm_collector_destroy(&c);
            return rc;
        }
    }
    *out = c;
    return 0;
}

void shm_collector_destroy(shm_collector_t **pp) {
    shm_collector_t *c = *pp;
    if (!c) return;
    for (mfam_t *f = c->fam_head; f; f = f->next) free(f->raw);
    for (uint32_t i = 0; i < c->n_files; i++) cfile_drop(&c->files[i]);
    free(c->files);
    if (c->lock >= 0) close(c->lock);
    if (c->dfd >= 0) close(c->dfd);
    for (size_t i = 0; i < c->n_logged; i++) free(c->logged[i]);
    free(c->logged);
    free(c->kc);
    free(c->fams);
    arena_free(&c->keys);
    arena_free(&c->scrape);
    shm_buf_free(&c->tmp);
    shm_buf_free(&c->lbuf);
    free(c->dir);
    free(c);
    *pp = NULL;
}

static double mono_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Forgets parsed keys not seen for a while so the cache cannot grow without
 * bound when series churn (pids of restarted workers in 'all' gauges). */
static void maybe_trim_cache(shm_collector_t *c) {
    if (c->kc_n < 4096 || c->kc_n < 4 * c->stats.entries) return;
    for (uint32_t i = 0; i < c->n_files; i++) cfile_drop(&c->files[i]);
    c->n_files = 0;
    free(c->kc);
    c->kc = NULL;
    c->kc_cap = c->kc_n = 0;
    arena_free(&c->keys);
    c->gen++; /* pkeys are gone: family caches must not be trusted */
}

int shm_collector_scrape(shm_collector_t *c, shm_format_t fmt, const char *const *names, size_t n_names,
                         shm_buf_t *out, shm_scrape_stats_t *stats) {
    double t0 = mono_now();
    for (mfam_t *f = c->fam_head; f; f = f->next) free(f->raw);
    c->fam_head = c->fam_tail = NULL;
    free(c->fams);
    c->fams = NULL;
    c->fam_cap = c->fam_n = 0;
    arena_reset(&c->scrape);
    c->gen++;
    memset(&c->stats, 0, sizeof c->stats);

    if (c->lock < 0) c->lock = shm__dir_lock(c->dir, false);
    else while (flock(c->lock, LOCK_SH) < 0 && errno == EINTR) {
        }
    if (c->dfd < 0) {
        c->dfd = open(c->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (c->dfd < 0) {
            int e = -errno;
            if (c->lock >= 0) flock(c->lock, LOCK_UN);
            return e;
        }
    }
    int dfd2 = dup(c->dfd);
    DIR *d = dfd2 >= 0 ? fdopendir(dfd2) : NULL;
    if (!d) {
        int e = -errno;
        if (dfd2 >= 0) close(dfd2);
        if (c->lock >= 0) flock(c->lock, LOCK_UN);
        return e;
    }
    rewinddir(d);
    int rc = 0;
    uint64_t n_db = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        const char *nm = de->d_name;
        size_t l = strlen(nm);
        if (nm[0] == '.' || l < 4 || strcmp(nm + l - 3, ".db")) continue;
        n_db++;
        cfile_t *f = cfile_get(c, nm, de->d_ino);
        if (!f) {
            rc = -ENOMEM;
            break;
        }
        f->seen = c->gen;
        const char *why = NULL;
        int r = read_file(c, f, &why);
        if (r < 0) {
            rc = r;
            break;
        }
        if (r == 0) c->stats.files_read++;
        if (r == 1) {
            c->stats.files_skipped++;
            log_skip(c, nm, why);
            /* look at it afresh next time (it may have been repaired) */
            ino_t ino = f->ino;
            char *keep = strdup(nm);
            cfile_drop(f);
            f->name = keep;
            f->ino = ino;
            f->fresh = 1;
            if (!keep) rc = -ENOMEM;
        }
    }
    closedir(d);
    if (c->lock >= 0) flock(c->lock, LOCK_UN);
    /* forget files that are gone */
    for (uint32_t i = 0; i < c->n_files;) {
        if (c->files[i].seen != c->gen) {
            cfile_drop(&c->files[i]);
            c->files[i] = c->files[--c->n_files];
        } else {
            i++;
        }
    }
    if (!rc) rc = shm__render(c, fmt, names, n_names, out);
    c->stats.seconds = mono_now() - t0;
    if (c->m_skipped) {
        shm_counter_inc(c->m_skipped, (double)c->stats.files_skipped);
        shm_histogram_observe(c->m_duration, c->stats.seconds);
        shm_gauge_set(c->m_files, (double)n_db);
    }
    if (stats) *stats = c->stats;
    maybe_trim_cache(c);
    return rc;
}

/* Writer side: the per-process registry, its families and series handles, and
 * the mmap'd files they record into.
 *
 * Invariants:
 *  - A file is only ever visible under its .db name fully initialised (created
 *    under a temporary name, sized, header written, then linked into place).
 *  - Entry bytes are written before `used` is published with a release store,
 *    so a reader that loads `used` never sees a torn entry.
 *  - Each file's mapping lives at a fixed base inside a reserved address range;
 *    growth maps the new tail right after it, so handles never move.
 *  - All mutation of registry structures happens under reg->lock; the hot path
 *    (shm.h inline functions) touches only mapped value slots, atomically.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "shm_int.h"

/* --- errors ------------------------------------------------------------------- */

const char *shm_strerror(int err) {
    switch (err) {
#define XX(name, val, msg) \
    case val: return msg;
        SHM_ERRNO_MAP(XX)
#undef XX
    default: return err < 0 ? strerror(-err) : "success";
    }
}

static const char *const mode_names[SHM_MODE_COUNT] = {
    "all", "liveall", "min", "livemin", "max", "livemax", "sum", "livesum", "mostrecent", "livemostrecent",
};

const char *shm_mode_name(shm_mode_t mode) {
    return (unsigned)mode < SHM_MODE_COUNT ? mode_names[mode] : NULL;
}

int shm_mode_parse(const char *name, shm_mode_t *out) {
    for (int i = 0; i < SHM_MODE_COUNT; i++)
        if (!strcmp(name, mode_names[i])) {
            *out = (shm_mode_t)i;
            return 0;
        }
    return SHM_EBADNAME;
}

double shm__wall_time(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

const char *shm__env_dir(void) {
    const char *d = getenv("PROMETHEUS_MULTIPROC_DIR");
    if (!d || !*d) d = getenv("prometheus_multiproc_dir");
    return d && *d ? d : NULL;
}

/* --- structures ----------------------------------------------------------------- */

/* Number of writer files: counter, histogram, summary, and one gauge per mode. */
enum { F_COUNTER = 0, F_HISTOGRAM, F_SUMMARY, F_GAUGE0, F_COUNT = F_GAUGE0 + SHM_MODE_COUNT };

typedef struct {
    uint32_t hash, off; /* off: entry offset (its klen field); 0 = empty slot */
} idx_slot_t;

typedef struct {
    char prefix[32];    /* "counter", "gauge_livesum", ... */
    int fd;             /* -1 when not open */
    uint8_t *base;      /* reserved range of SHM_RESERVE bytes */
    size_t cap;         /* mapped (== file) size */
    uint32_t used;
    idx_slot_t *idx;    /* key -> entry offset */
    uint32_t idx_cap, idx_n;
} wfile_t;

struct shm_family {
    shm_registry_t *reg;
    shm_type_t type;
    shm_mode_t mode;
    char *name, *help;
    char **lnames;
    size_t n_labels;
    double *bounds;      /* histograms: n_bounds, last +Inf */
    char **le;           /* histograms: floatToGoString of each bound */
    size_t n_bounds;
    shm_metric_t **metrics; /* open hash on label values */
    char **metric_keys;
    size_t m_cap, m_n;
    struct shm_family *next;
};

struct shm_registry {
    pthread_mutex_t lock;
    char *dir;
    char id[64];
    int explicit_id;
    wfile_t files[F_COUNT];
    shm_family_t *families;
    struct shm_registry *next_global;
};

/* --- fork tracking ------------------------------------------------------------------ */

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static shm_registry_t *g_regs;
static pthread_once_t g_once = PTHREAD_ONCE_INIT;

static int rebind(shm_registry_t *reg, const char *id);

static void atfork_prepare(void) {
    pthread_mutex_lock(&g_lock);
    for (shm_registry_t *r = g_regs; r; r = r->next_global) pthread_mutex_lock(&r->lock);
}

static void atfork_parent(void) {
    for (shm_registry_t *r = g_regs; r; r = r->next_global) pthread_mutex_unlock(&r->lock);
    pthread_mutex_unlock(&g_lock);
}

/* The child must not keep writing into its parent's files: registries that
 * use the pid get fresh files for the child's pid, mapped at the same
 * addresses, so every handle keeps working and starts from 0 (as
 * prometheus_client does after fork). */
static void atfork_child(void) {
    for (shm_registry_t *r = g_regs; r; r = r->next_global) {
        if (!r->explicit_id) {
            char id[32];
            snprintf(id, sizeof id, "%ld", (long)getpid());
            int rc = rebind(r, id);
            if (rc)
                fprintf(stderr, "shm: after fork, cannot move metrics to files of pid %s: %s\n", id,
                        shm_strerror(rc));
        }
        pthread_mutex_unlock(&r->lock);
    }
    pthread_mutex_unlock(&g_lock);
}

static void install_atfork(void) { pthread_atfork(atfork_prepare, atfork_parent, atfork_child); }

/* --- hashing ------------------------------------------------------------------------- */

static uint32_t hash_bytes(const void *p, size_t n) {
    const uint8_t *s = p;
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) h = (h ^ s[i]) * 16777619u;
    return h ? h : 1;
}

/* --- files ------------------------------------------------------------------------------- */

static int valid_id(const char *id) {
    return id && *id && strlen(id) < 64 && !strchr(id, '_') && !strchr(id, '/');
}

static void file_path(char *out, size_t n, const char *dir, const char *prefix, const char *id) {
    snprintf(out, n, "%s/%s_%s.db", dir, prefix, id);
}

static uint32_t load_used(const uint8_t *base) {
    uint32_t u = __atomic_load_n((const uint32_t *)base, __ATOMIC_ACQUIRE);
    return u;
}

static int idx_insert(wfile_t *f, uint32_t hash, uint32_t off) {
    if ((f->idx_n + 1) * 2 > f->idx_cap) {
        uint32_t ncap = f->idx_cap ? f->idx_cap * 2 : 64;
        idx_slot_t *n = calloc(ncap, sizeof *n);
        if (!n) return -ENOMEM;
        for (uint32_t i = 0; i < f->idx_cap; i++)
            if (f->idx[i].off) {
                uint32_t k = f->idx[i].hash & (ncap - 1);
                while (n[k].off) k = (k + 1) & (ncap - 1);
                n[k] = f->idx[i];
            }
        free(f->idx);
        f->idx = n;
        f->idx_cap = ncap;
    }
    uint32_t k = hash & (f->idx_cap - 1);
    while (f->idx[k].off) k = (k + 1) & (f->idx_cap - 1);
    f->idx[k].hash = hash;
    f->idx[k].off = off;
    f->idx_n++;
    return 0;
}

/* Returns the entry offset of key, or 0. */
static uint32_t idx_find(const wfile_t *f, const char *key, uint32_t klen, uint32_t hash) {
    if (!f->idx_cap) return 0;
    uint32_t k = hash & (f->idx_cap - 1);
    while (f->idx[k].off) {
        if (f->idx[k].hash == hash) {
            const uint8_t *e = f->base + f->idx[k].off;
            int32_t el;
            memcpy(&el, e, 4);
            if ((uint32_t)el == klen && !memcmp(e + 4, key, klen)) return f->idx[k].off;
        }
        k = (k + 1) & (f->idx_cap - 1);
    }
    return 0;
}

static int index_entries(wfile_t *f) {
    free(f->idx);
    f->idx = NULL;
    f->idx_cap = f->idx_n = 0;
    uint32_t pos = SHM_HEADER;
    while (pos < f->used) {
        int32_t kl;
        memcpy(&kl, f->base + pos, 4);
        int rc = idx_insert(f, hash_bytes(f->base + pos + 4, kl), pos);
        if (rc) return rc;
        pos += shm__entry_size((uint32_t)kl);
    }
    return 0;
}

/* Creates dir/<prefix>_<id>.db holding image[0..size) atomically: written
 * under a temporary name, then renamed (replace) or linked (no_clobber) into
 * place. Returns an O_RDWR fd of the final file, or a negative errno;
 * -EEXIST when no_clobber and the file exists. */
int shm__publish_file(const char *dir, const char *final, const uint8_t *image, size_t used, size_t size,
                        int no_clobber) {
    char tmp[PATH_MAX];
    static unsigned seq;
    snprintf(tmp, sizeof tmp, "%s/.tmp-%ld-%u-%ld.partial", dir, (long)getpid(),
             __atomic_fetch_add(&seq, 1, __ATOMIC_RELAXED), (long)time(NULL));
    int fd = open(tmp, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) return -errno;
    int rc = 0;
    if (ftruncate(fd, (off_t)size) < 0 || pwrite(fd, image, used, 0) != (ssize_t)used) {
        rc = -errno;
        goto fail;
    }
    if (no_clobber) {
        if (link(tmp, final) < 0) {
            rc = -errno;
            goto fail;
        }
        unlink(tmp);
    } else if (rename(tmp, final) < 0) {
        rc = -errno;
        goto fail;
    }
    return fd;
fail:
    close(fd);
    unlink(tmp);
    return rc;
}

static int map_file(wfile_t *f) {
    if (!f->base) {
        void *r = mmap(NULL, SHM_RESERVE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (r == MAP_FAILED) return -errno;
        f->base = r;
    }
    if (mmap(f->base, f->cap, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, f->fd, 0) == MAP_FAILED)
        return -errno;
    return 0;
}

static size_t round_cap(size_t need, size_t at_least) {
    size_t cap = SHM_INITIAL_SIZE;
    while (cap < need || cap < at_least) cap *= 2;
    return cap;
}

/* Opens (or creates) f's file for id in dir and maps it at f->base. */
static int file_open(shm_registry_t *reg, wfile_t *f) {
    char path[PATH_MAX];
    file_path(path, sizeof path, reg->dir, f->prefix, reg->id);
    for (int attempt = 0; attempt < 3; attempt++) {
        int fd = open(path, O_RDWR | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0 && errno == ENOENT) {
            uint8_t hdr[8] = {SHM_HEADER, 0, 0, 0, 0, 0, 0, 0};
            fd = shm__publish_file(reg->dir, path, hdr, sizeof hdr, SHM_INITIAL_SIZE, 1);
            if (fd == -EEXIST) continue;
            if (fd < 0) return fd;
        } else if (fd < 0) {
            return -errno;
        }
        struct stat st;
        if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
            close(fd);
            return -EINVAL;
        }
        size_t size = (size_t)st.st_size;
        if (size < SHM_INITIAL_SIZE || size % SHM_INITIAL_SIZE) {
            /* a 0-byte file (Python creates it before sizing) or a foreign size:
             * grow to a mappable size; readers look only at `used` */
            size = round_cap(size, SHM_INITIAL_SIZE);
            if (ftruncate(fd, (off_t)size) < 0) {
                close(fd);
                return -errno;
            }
        }
        if (size > SHM_RESERVE) {
            close(fd);
            return SHM_ETOOBIG;
        }
        f->fd = fd;
        f->cap = size;
        int rc = map_file(f);
        if (rc) {
            close(fd);
            f->fd = -1;
            return rc;
        }
        uint32_t used = load_used(f->base);
        if (used == 0) {
            used = SHM_HEADER;
            __atomic_store_n((uint32_t *)f->base, used, __ATOMIC_RELEASE);
        }
        if (shm__validate(f->base, f->cap, used) < 0) {
            /* pid reuse over a corrupt file: keep it for inspection under a
             * name the collectors ignore, and start afresh */
            char aside[PATH_MAX + 64];
            snprintf(aside, sizeof aside, "%s.corrupt-%ld", path, (long)time(NULL));
            fprintf(stderr, "shm: %s is corrupt; moved to %s\n", path, aside);
            rename(path, aside);
            close(fd);
            f->fd = -1;
            continue;
        }
        f->used = used;
        return index_entries(f);
    }
    return -EAGAIN;
}

/* Appends an entry (value 0, ts 0) for key; returns its value offset. */
static int file_append(wfile_t *f, const char *key, uint32_t klen, uint32_t hash, uint32_t *value_off) {
    uint32_t es = shm__entry_size(klen);
    if ((size_t)f->used + es > f->cap) {
        size_t ncap = round_cap((size_t)f->used + es, f->cap);
        if (ncap > SHM_RESERVE) return SHM_ETOOBIG;
        if (ftruncate(f->fd, (off_t)ncap) < 0) return -errno;
        if (mmap(f->base + f->cap, ncap - f->cap, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, f->fd,
                 (off_t)f->cap) == MAP_FAILED)
            return -errno;
        f->cap = ncap;
    }
    uint8_t *e = f->base + f->used;
    int32_t kl = (int32_t)klen;
    memcpy(e, &kl, 4);
    memcpy(e + 4, key, klen);
    memset(e + 4 + klen, ' ', shm__pad(klen));
    memset(e + es - 16, 0, 16);
    int rc = idx_insert(f, hash, f->used);
    if (rc) return rc;
    f->used += es;
    __atomic_store_n((uint32_t *)f->base, f->used, __ATOMIC_RELEASE);
    *value_off = f->used - 16;
    return 0;
}

/* Value offset of the entry for key in file fi, creating it if needed. */
static int entry_get(shm_registry_t *reg, int fi, const char *key, uint32_t klen, uint64_t **slot) {
    wfile_t *f = &reg->files[fi];
    int rc;
    if (f->fd < 0 && (rc = file_open(reg, f))) return rc;
    uint32_t h = hash_bytes(key, klen);
    uint32_t off = idx_find(f, key, klen, h);
    uint32_t voff = 0;
    if (off) voff = off + shm__entry_size(klen) - 16;
    else if ((rc = file_append(f, key, klen, h, &voff))) return rc;
    *slot = (uint64_t *)(f->base + voff);
    return 0;
}

/* --- re-identification (fork, set_id) ----------------------------------------------------- */

/* Moves file f to id: a new image keeping f's layout (every entry at the same
 * offset, values 0), continuing values of an existing file of that name and
 * appending its other entries; then maps it over f->base. */
static int rebind_file(shm_registry_t *reg, wfile_t *f, const char *id) {
    char path[PATH_MAX];
    file_path(path, sizeof path, reg->dir, f->prefix, id);
    uint8_t *img = NULL, *old = NULL;
    size_t oldsize = 0;
    uint32_t oldused = 0;
    int rc = 0;
    int ofd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (ofd >= 0) {
        struct stat st;
        if (fstat(ofd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size >= 8) {
            oldsize = (size_t)st.st_size;
            old = malloc(oldsize);
            if (old && pread(ofd, old, oldsize, 0) == (ssize_t)oldsize) {
                memcpy(&oldused, old, 4);
                if (shm__validate(old, oldsize, oldused) < 0) oldused = 0;
            } else {
                oldused = 0;
            }
        }
        close(ofd);
    }
    size_t need = f->used + (oldused > SHM_HEADER ? oldused : 0);
    size_t cap = round_cap(need, f->cap);
    if (cap > SHM_RESERVE) {
        rc = SHM_ETOOBIG;
        goto out;
    }
    img = calloc(1, need + 16);
    if (!img) {
        rc = -ENOMEM;
        goto out;
    }
    memcpy(img, f->base, f->used);
    uint32_t used = f->used;
    for (uint32_t pos = SHM_HEADER; pos < f->used;) {
        int32_t kl;
        memcpy(&kl, img + pos, 4);
        pos += shm__entry_size((uint32_t)kl);
        memset(img + pos - 16, 0, 16);
    }
    /* continue an existing file's values (pid reuse), as prometheus_client */
    wfile_t tmpf = *f;
    tmpf.base = img;
    tmpf.idx = NULL;
    tmpf.idx_cap = tmpf.idx_n = 0;
    tmpf.used = used;
    if ((rc = index_entries(&tmpf))) goto out;
    for (uint32_t pos = SHM_HEADER; pos < oldused;) {
        int32_t kl;
        memcpy(&kl, old + pos, 4);
        uint32_t es = shm__entry_size((uint32_t)kl);
        uint32_t h = hash_bytes(old + pos + 4, kl);
        uint32_t off = idx_find(&tmpf, (const char *)old + pos + 4, kl, h);
        if (off) {
            memcpy(img + off + es - 16, old + pos + es - 16, 16);
        } else {
            memcpy(img + used, old + pos, es);
            used += es;
        }
        pos += es;
    }
    free(tmpf.idx);
    memcpy(img, &used, 4);
    int fd = shm__publish_file(reg->dir, path, img, used, cap, 0);
    if (fd < 0) {
        rc = fd;
        goto out;
    }
    if (mmap(f->base, cap, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fd, 0) == MAP_FAILED) {
        rc = -errno;
        close(fd);
        unlink(path);
        goto out;
    }
    close(f->fd);
    f->fd = fd;
    f->cap = cap;
    f->used = used;
    rc = index_entries(f);
out:
    free(img);
    free(old);
    return rc;
}

static int rebind(shm_registry_t *reg, const char *id) {
    int rc = 0;
    for (int i = 0; i < F_COUNT; i++) {
        if (reg->files[i].fd < 0) continue;
        int r = rebind_file(reg, &reg->files[i], id);
        if (r && !rc) rc = r;
    }
    snprintf(reg->id, sizeof reg->id, "%s", id);
    return rc;
}

int shm_registry_set_id(shm_registry_t *reg, const char *id) {
    if (!valid_id(id)) return SHM_EBADID;
    pthread_mutex_lock(&reg->lock);
    reg->explicit_id = 1;
    int rc = rebind(reg, id);
    pthread_mutex_unlock(&reg->lock);
    return rc;
}

/* --- registry ------------------------------------------------------------------------------ */

int shm_registry_new(const shm_registry_opts_t *opts, shm_registry_t **out) {
    pthread_once(&g_once, install_atfork);
    const char *dir = opts && opts->dir ? opts->dir : shm__env_dir();
    struct stat st;
    if (!dir || stat(dir, &st) < 0 || !S_ISDIR(st.st_mode)) return SHM_ENODIR;
    char idbuf[32];
    const char *id = opts ? opts->process_id : NULL;
    if (!id) {
        snprintf(idbuf, sizeof idbuf, "%ld", (long)getpid());
        id = idbuf;
    }
    if (!valid_id(id)) return SHM_EBADID;
    shm_registry_t *r = calloc(1, sizeof *r);
    if (!r || !(r->dir = strdup(dir))) {
        free(r);
        return -ENOMEM;
    }
    pthread_mutex_init(&r->lock, NULL);
    snprintf(r->id, sizeof r->id, "%s", id);
    r->explicit_id = opts && opts->process_id;
    for (int i = 0; i < F_COUNT; i++) {
        r->files[i].fd = -1;
        if (i == F_COUNTER) strcpy(r->files[i].prefix, "counter");
        else if (i == F_HISTOGRAM) strcpy(r->files[i].prefix, "histogram");
        else if (i == F_SUMMARY) strcpy(r->files[i].prefix, "summary");
        else snprintf(r->files[i].prefix, sizeof r->files[i].prefix, "gauge_%s", mode_names[i - F_GAUGE0]);
    }
    pthread_mutex_lock(&g_lock);
    r->next_global = g_regs;
    g_regs = r;
    pthread_mutex_unlock(&g_lock);
    *out = r;
    return 0;
}

static void family_free(shm_family_t *f) {
    for (size_t i = 0; i < f->m_cap; i++) {
        if (f->metrics[i]) {
            free(f->metrics[i]->bucket);
            free(f->metrics[i]);
            free(f->metric_keys[i]);
        }
    }
    free(f->metrics);
    free(f->metric_keys);
    for (size_t i = 0; i < f->n_labels; i++) free(f->lnames[i]);
    for (size_t i = 0; i < f->n_bounds; i++) free(f->le ? f->le[i] : NULL);
    free(f->le);
    free(f->lnames);
    free(f->bounds);
    free(f->name);
    free(f->help);
    free(f);
}

void shm_registry_destroy(shm_registry_t **pp) {
    shm_registry_t *r = *pp;
    if (!r) return;
    pthread_mutex_lock(&g_lock);
    for (shm_registry_t **q = &g_regs; *q; q = &(*q)->next_global)
        if (*q == r) {
            *q = r->next_global;
            break;
        }
    pthread_mutex_unlock(&g_lock);
    for (int i = 0; i < F_COUNT; i++) {
        wfile_t *f = &r->files[i];
        if (f->base) munmap(f->base, SHM_RESERVE);
        if (f->fd >= 0) close(f->fd);
        free(f->idx);
    }
    while (r->families) {
        shm_family_t *f = r->families;
        r->families = f->next;
        family_free(f);
    }
    pthread_mutex_destroy(&r->lock);
    free(r->dir);
    free(r);
    *pp = NULL;
}

const char *shm_registry_id(const shm_registry_t *reg) { return reg->id; }
const char *shm_registry_dir(const shm_registry_t *reg) { return reg->dir; }

/* --- families --------------------------------------------------------------------------------- */

static const double default_buckets[] = {.005, .01, .025, .05, .075, .1, .25, .5, .75, 1.0, 2.5, 5.0, 7.5, 10.0};

static int same_shape(const shm_family_t *f, const shm_family_desc_t *d, const double *b, size_t nb) {
    if (f->type != d->type || f->n_labels != d->n_labels || strcmp(f->help, d->help ? d->help : ""))
        return 0;
    if (f->type == SHM_GAUGE && f->mode != d->mode) return 0;
    for (size_t i = 0; i < f->n_labels; i++)
        if (strcmp(f->lnames[i], d->label_names[i])) return 0;
    if (f->type == SHM_HISTOGRAM) {
        if (f->n_bounds != nb + (isinf(b[nb - 1]) ? 0 : 1)) return 0;
        for (size_t i = 0; i < nb; i++)
            if (f->bounds[i] != b[i]) return 0;
    }
    return 1;
}

int shm_family_new(shm_registry_t *reg, const shm_family_desc_t *d, shm_family_t **out) {
    if (!d->name || !shm__valid_metric_name(d->name) || (unsigned)d->type > SHM_SUMMARY) return SHM_EBADNAME;
    if (d->type == SHM_GAUGE && (unsigned)d->mode >= SHM_MODE_COUNT) return SHM_EBADNAME;
    if (d->n_labels > 32 || (d->n_labels && !d->label_names)) return SHM_EBADNAME;
    const char *help = d->help ? d->help : "";
    if (!shm__valid_utf8(help, strlen(help))) return SHM_EBADNAME;
    for (size_t i = 0; i < d->n_labels; i++) {
        const char *l = d->label_names[i];
        if (!l || !shm__valid_label_name(l)) return SHM_EBADNAME;
        if ((d->type == SHM_HISTOGRAM && !strcmp(l, "le")) || (d->type == SHM_SUMMARY && !strcmp(l, "quantile")))
            return SHM_EBADNAME;
        for (size_t j = 0; j < i; j++)
            if (!strcmp(l, d->label_names[j])) return SHM_EBADNAME;
    }
    const double *b = d->buckets;
    size_t nb = d->n_buckets;
    if (d->type == SHM_HISTOGRAM) {
        if (!b || !nb) {
            b = default_buckets;
            nb = sizeof default_buckets / sizeof default_buckets[0];
        }
        for (size_t i = 0; i < nb; i++)
            if (isnan(b[i]) || (i && !(b[i] > b[i - 1]))) return SHM_EBADBUCKETS;
    }
    char name[256];
    size_t nl = strlen(d->name);
    if (nl >= sizeof name - 8) return SHM_EBADNAME;
    memcpy(name, d->name, nl + 1);
    if (d->type == SHM_COUNTER && nl > 6 && !strcmp(name + nl - 6, "_total")) name[nl - 6] = 0;

    pthread_mutex_lock(&reg->lock);
    int rc = 0;
    for (shm_family_t *f = reg->families; f; f = f->next) {
        if (!strcmp(f->name, name)) {
            rc = same_shape(f, d, b, nb) ? 0 : SHM_EEXIST;
            if (!rc) *out = f;
            pthread_mutex_unlock(&reg->lock);
            return rc;
        }
    }
    shm_family_t *f = calloc(1, sizeof *f);
    if (!f) goto nomem;
    f->reg = reg;
    f->type = d->type;
    f->mode = d->type == SHM_GAUGE ? d->mode : SHM_MODE_ALL;
    f->name = strdup(name);
    f->help = strdup(help);
    f->n_labels = d->n_labels;
    f->lnames = calloc(d->n_labels + 1, sizeof *f->lnames);
    if (!f->name || !f->help || !f->lnames) goto nomem_f;
    for (size_t i = 0; i < d->n_labels; i++)
        if (!(f->lnames[i] = strdup(d->label_names[i]))) goto nomem_f;
    if (d->type == SHM_HISTOGRAM) {
        size_t n = nb + (isinf(b[nb - 1]) && b[nb - 1] > 0 ? 0 : 1);
        f->bounds = malloc(n * sizeof *f->bounds);
        f->le = calloc(n, sizeof *f->le);
        if (!f->bounds || !f->le) goto nomem_f;
        f->n_bounds = n;
        for (size_t i = 0; i < n; i++) {
            f->bounds[i] = i < nb ? b[i] : INFINITY;
            char s[40];
            shm_format_double(f->bounds[i], s);
            if (!(f->le[i] = strdup(s))) goto nomem_f;
        }
    }
    f->next = reg->families;
    reg->families = f;
    *out = f;
    pthread_mutex_unlock(&reg->lock);
    return 0;
nomem_f:
    family_free(f);
nomem:
    pthread_mutex_unlock(&reg->lock);
    return -ENOMEM;
}

/* --- series handles ---------------------------------------------------------------------------- */

static int file_index(const shm_family_t *f) {
    switch (f->type) {
    case SHM_COUNTER: return F_COUNTER;
    case SHM_HISTOGRAM: return F_HISTOGRAM;
    case SHM_SUMMARY: return F_SUMMARY;
    default: return F_GAUGE0 + f->mode;
    }
}

static int series_key(shm_buf_t *k, const shm_family_t *f, const char *suffix, const char *const *vals,
                      const char *le) {
    char sample[300];
    snprintf(sample, sizeof sample, "%s%s", f->name, suffix);
    const char *names[33], *values[33];
    size_t n = f->n_labels;
    for (size_t i = 0; i < n; i++) names[i] = f->lnames[i], values[i] = vals[i];
    if (le) names[n] = "le", values[n] = le, n++;
    k->len = 0;
    return shm__json_key(k, f->name, sample, names, values, n, f->help);
}

static int make_metric(shm_family_t *f, const char *const *vals, shm_metric_t **out) {
    shm_registry_t *reg = f->reg;
    shm_metric_t *m = calloc(1, sizeof *m);
    if (!m) return -ENOMEM;
    m->type = (uint8_t)f->type;
    shm_buf_t k = {0};
    int fi = file_index(f), rc = 0;
#define ENTRY(suffix, le, slot)                                                        \
    do {                                                                               \
        if ((rc = series_key(&k, f, suffix, vals, le))) goto fail;                   \
        if ((rc = entry_get(reg, fi, k.data, (uint32_t)k.len, slot))) goto fail;     \
    } while (0)
    switch (f->type) {
    case SHM_COUNTER: ENTRY("_total", NULL, &m->value); break;
    case SHM_GAUGE:
        ENTRY("", NULL, &m->value);
        m->ts = m->value + 1;
        m->mostrecent = f->mode == SHM_MODE_MOSTRECENT || f->mode == SHM_MODE_LIVEMOSTRECENT;
        break;
    case SHM_SUMMARY:
        ENTRY("_count", NULL, &m->value);
        ENTRY("_sum", NULL, &m->sum);
        break;
    case SHM_HISTOGRAM:
        m->bucket = calloc(f->n_bounds, sizeof *m->bucket);
        if (!m->bucket) {
            rc = -ENOMEM;
            goto fail;
        }
        m->bound = f->bounds;
        m->n_bucket = (uint32_t)f->n_bounds;
        ENTRY("_sum", NULL, &m->value);
        for (size_t i = 0; i < f->n_bounds; i++) ENTRY("_bucket", f->le[i], &m->bucket[i]);
        break;
    }
#undef ENTRY
    shm_buf_free(&k);
    *out = m;
    return 0;
fail:
    shm_buf_free(&k);
    free(m->bucket);
    free(m);
    return rc;
}

/* Label values joined with 0xff separators (0xff never occurs in UTF-8). */
static char *join_values(const shm_family_t *f, const char *const *vals, size_t *len) {
    size_t n = 1;
    for (size_t i = 0; i < f->n_labels; i++) n += strlen(vals[i]) + 1;
    char *s = malloc(n), *p = s;
    if (!s) return NULL;
    for (size_t i = 0; i < f->n_labels; i++) {
        size_t l = strlen(vals[i]);
        memcpy(p, vals[i], l);
        p += l;
        *p++ = (char)0xff;
    }
    *p = 0;
    *len = (size_t)(p - s);
    return s;
}

int shm_metric_get(shm_family_t *f, const char *const *vals, shm_metric_t **out) {
    for (size_t i = 0; i < f->n_labels; i++)
        if (!vals || !vals[i] || !shm__valid_utf8(vals[i], strlen(vals[i]))) return SHM_EBADLABELS;
    size_t jl;
    char *joined = join_values(f, vals, &jl);
    if (!joined) return -ENOMEM;
    uint32_t h = hash_bytes(joined, jl);
    pthread_mutex_lock(&f->reg->lock);
    int rc = 0;
    if ((f->m_n + 1) * 2 > f->m_cap) {
        size_t ncap = f->m_cap ? f->m_cap * 2 : 8;
        shm_metric_t **nm = calloc(ncap, sizeof *nm);
        char **nk = calloc(ncap, sizeof *nk);
        if (!nm || !nk) {
            free(nm);
            free(nk);
            rc = -ENOMEM;
            goto out;
        }
        for (size_t i = 0; i < f->m_cap; i++)
            if (f->metrics[i]) {
                size_t k = hash_bytes(f->metric_keys[i], strlen(f->metric_keys[i])) & (ncap - 1);
                while (nm[k]) k = (k + 1) & (ncap - 1);
                nm[k] = f->metrics[i];
                nk[k] = f->metric_keys[i];
            }
        free(f->metrics);
        free(f->metric_keys);
        f->metrics = nm;
        f->metric_keys = nk;
        f->m_cap = ncap;
    }
    size_t k = h & (f->m_cap - 1);
    while (f->metrics[k]) {
        if (!strcmp(f->metric_keys[k], joined)) {
            *out = f->metrics[k];
            goto out;
        }
        k = (k + 1) & (f->m_cap - 1);
    }
    if ((rc = make_metric(f, vals, out))) goto out;
    f->metrics[k] = *out;
    f->metric_keys[k] = joined;
    joined = NULL;
    f->m_n++;
out:
    pthread_mutex_unlock(&f->reg->lock);
    free(joined);
    return rc;
}

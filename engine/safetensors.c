/* safetensors: header parser and shard loader (see safetensors.h).
 *
 * Invariants:
 *  - A shard is accepted only if its JSON header describes a byte buffer that
 *    is covered exactly (sorted by offset, each tensor starts where the previous
 *    ended, the last ends at the end of the file), so every data pointer we
 *    hand out is in bounds by construction.
 *  - JSON numbers are doubles in cJSON: offsets and dims are accepted only if
 *    integral and <= 2^53, where doubles are exact.
 *  - Tensor records are sorted by name once at open; lookups are bsearch.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "safetensors.h"

#define MAX_INDEX_BYTES (64u << 20)
#define MAX_EXACT 9007199254740992.0 /* 2^53 */

/* --- structures ------------------------------------------------------------- */

typedef struct {
    char *path;
    const uint8_t *base;
    size_t size;
} shard_t;

struct st_model {
    char *dir;
    shard_t *shards;
    int n_shards;
    st_tensor_t *tensors; /* sorted by name after open */
    int64_t n_tensors, cap_tensors;
    cJSON *metadata;      /* shard 0's __metadata__, detached; may be NULL */
};

static const struct {
    const char *name;
    size_t size;
    int k_type;
} dtypes[ST_DTYPE_COUNT_] = {
    [ST_DTYPE_BOOL] = {"BOOL", 1, -1},   [ST_DTYPE_U8] = {"U8", 1, -1},
    [ST_DTYPE_I8] = {"I8", 1, -1},       [ST_DTYPE_F8_E5M2] = {"F8_E5M2", 1, -1},
    [ST_DTYPE_F8_E4M3] = {"F8_E4M3", 1, -1}, [ST_DTYPE_I16] = {"I16", 2, -1},
    [ST_DTYPE_U16] = {"U16", 2, -1},     [ST_DTYPE_F16] = {"F16", 2, 1},
    [ST_DTYPE_BF16] = {"BF16", 2, 30},   [ST_DTYPE_I32] = {"I32", 4, -1},
    [ST_DTYPE_U32] = {"U32", 4, -1},     [ST_DTYPE_F32] = {"F32", 4, 0},
    [ST_DTYPE_F64] = {"F64", 8, -1},     [ST_DTYPE_I64] = {"I64", 8, -1},
    [ST_DTYPE_U64] = {"U64", 8, -1},
};

const char *st_dtype_name(st_dtype_t d) { return (unsigned)d < ST_DTYPE_COUNT_ ? dtypes[d].name : "?"; }
size_t st_dtype_size(st_dtype_t d) { return (unsigned)d < ST_DTYPE_COUNT_ ? dtypes[d].size : 0; }
int st_dtype_k_type(st_dtype_t d) { return (unsigned)d < ST_DTYPE_COUNT_ ? dtypes[d].k_type : -1; }

/* --- errors ------------------------------------------------------------------- */

typedef struct {
    char *buf;
    size_t len;
} err_t;

#if defined(__GNUC__)
__attribute__((format(printf, 4, 5)))
#endif
static int fail(err_t *e, int code, const char *file, const char *fmt, ...) {
    if (e->buf && e->len > 0) {
        int n = snprintf(e->buf, e->len, "%s: ", file);
        if (n >= 0 && (size_t)n < e->len) {
            va_list ap;
            va_start(ap, fmt);
            vsnprintf(e->buf + n, e->len - (size_t)n, fmt, ap);
            va_end(ap);
        }
    }
    return code;
}

/* --- files ---------------------------------------------------------------------- */

/* Maps `path` read-only. An empty file maps to (NULL, 0). */
static int map_file(const char *path, const uint8_t **base, size_t *size, err_t *e) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return fail(e, -errno, path, "cannot open: %s", strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || (uint64_t)st.st_size > SIZE_MAX) {
        close(fd);
        return fail(e, -EINVAL, path, "not a readable regular file");
    }
    *size = (size_t)st.st_size;
    *base = NULL;
    if (*size > 0) {
        void *m = mmap(NULL, *size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (m == MAP_FAILED) {
            int rc = -errno;
            close(fd);
            return fail(e, rc, path, "cannot mmap: %s", strerror(-rc));
        }
        *base = m;
    }
    close(fd);
    return 0;
}

static char *path_join(const char *dir, const char *name) {
    size_t a = strlen(dir), b = strlen(name);
    char *p = malloc(a + b + 2);
    if (!p) return NULL;
    memcpy(p, dir, a);
    p[a] = '/';
    memcpy(p + a + 1, name, b + 1);
    return p;
}

static char *dir_of(const char *path) {
    const char *slash = strrchr(path, '/');
    if (!slash) return strdup(".");
    if (slash == path) return strdup("/");
    return strndup(path, (size_t)(slash - path));
}

static int is_file(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

/* --- header parsing ---------------------------------------------------------------- */

/* An exact non-negative integer from a JSON number. */
static int json_uint(const cJSON *j, uint64_t *out) {
    if (!cJSON_IsNumber(j)) return 0;
    double d = j->valuedouble;
    if (!(d >= 0 && d <= MAX_EXACT) || d != (double)(uint64_t)d) return 0;
    *out = (uint64_t)d;
    return 1;
}

typedef struct {
    uint64_t begin, end;
} span_t;

static int cmp_span(const void *a, const void *b) {
    const span_t *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    return x->end < y->end ? -1 : x->end > y->end;
}

static int push_tensor(st_model_t *m, st_tensor_t *t) {
    if (m->n_tensors == m->cap_tensors) {
        int64_t cap = m->cap_tensors ? m->cap_tensors * 2 : 64;
        st_tensor_t *n = realloc(m->tensors, (size_t)cap * sizeof *n);
        if (!n) return -ENOMEM;
        m->tensors = n;
        m->cap_tensors = cap;
    }
    m->tensors[m->n_tensors++] = *t;
    return 0;
}

static int parse_entry(const cJSON *ent, const char *file, st_tensor_t *t, span_t *sp, err_t *e) {
    const char *name = ent->string;
    if (!cJSON_IsObject(ent)) return fail(e, ENG_EFORMAT, file, "tensor '%s': entry is not an object", name);
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(ent, "dtype");
    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(ent, "shape");
    const cJSON *offs = cJSON_GetObjectItemCaseSensitive(ent, "data_offsets");
    if (!cJSON_IsString(dt)) return fail(e, ENG_EFORMAT, file, "tensor '%s': missing string \"dtype\"", name);
    if (!cJSON_IsArray(shape)) return fail(e, ENG_EFORMAT, file, "tensor '%s': missing array \"shape\"", name);
    if (!cJSON_IsArray(offs) || cJSON_GetArraySize(offs) != 2)
        return fail(e, ENG_EFORMAT, file, "tensor '%s': \"data_offsets\" must be [begin, end]", name);
    int dtype = -1;
    for (int i = 0; i < ST_DTYPE_COUNT_; i++)
        if (!strcmp(dt->valuestring, dtypes[i].name)) dtype = i;
    if (dtype < 0) return fail(e, ENG_ETYPE, file, "tensor '%s': unsupported dtype \"%s\"", name, dt->valuestring);
    int nd = cJSON_GetArraySize(shape);
    if (nd > ST_MAX_DIMS) return fail(e, ENG_EFORMAT, file, "tensor '%s': %d dimensions (max %d)", name, nd, ST_MAX_DIMS);
    memset(t, 0, sizeof *t);
    t->dtype = (st_dtype_t)dtype;
    t->n_dims = nd;
    uint64_t numel = 1;
    int d = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, shape) {
        uint64_t v;
        if (!json_uint(it, &v)) return fail(e, ENG_EFORMAT, file, "tensor '%s': shape[%d] is not a non-negative integer", name, d);
        if (v != 0 && numel > (uint64_t)INT64_MAX / v)
            return fail(e, ENG_EFORMAT, file, "tensor '%s': element count overflows", name);
        numel *= v;
        t->shape[d++] = (int64_t)v;
    }
    uint64_t nbytes;
    if (numel > SIZE_MAX / dtypes[dtype].size) return fail(e, ENG_EFORMAT, file, "tensor '%s': byte size overflows", name);
    nbytes = numel * dtypes[dtype].size;
    if (!json_uint(cJSON_GetArrayItem(offs, 0), &sp->begin) || !json_uint(cJSON_GetArrayItem(offs, 1), &sp->end))
        return fail(e, ENG_EFORMAT, file, "tensor '%s': data_offsets are not non-negative integers", name);
    if (sp->end < sp->begin || sp->end - sp->begin != nbytes)
        return fail(e, ENG_EFORMAT, file,
                    "tensor '%s': data_offsets [%" PRIu64 ", %" PRIu64 ") hold %" PRId64 " bytes, shape x %s needs %" PRIu64,
                    name, sp->begin, sp->end, (int64_t)(sp->end - sp->begin), dt->valuestring, nbytes);
    t->n_elements = (int64_t)numel;
    t->nbytes = (size_t)nbytes;
    return 0;
}

/* Parses shard `si` (already mapped) and appends its tensors to m. */
static int parse_shard(st_model_t *m, int si, err_t *e) {
    shard_t *s = &m->shards[si];
    if (s->size < 8) return fail(e, ENG_EFORMAT, s->path, "file is %zu bytes, too small for a safetensors header", s->size);
    uint64_t n;
    memcpy(&n, s->base, 8);
    if (n > ST_MAX_HEADER) return fail(e, ENG_EFORMAT, s->path, "header length %" PRIu64 " exceeds the limit of %u", n, ST_MAX_HEADER);
    if (n > s->size - 8)
        return fail(e, ENG_EFORMAT, s->path, "truncated: header length %" PRIu64 " but only %zu bytes follow", n, s->size - 8);
    const char *hdr = (const char *)s->base + 8;
    size_t i = 0;
    while (i < n && (hdr[i] == ' ' || hdr[i] == '\t' || hdr[i] == '\n' || hdr[i] == '\r')) i++;
    if (i == n || hdr[i] != '{') return fail(e, ENG_EFORMAT, s->path, "header does not start with '{' (not a safetensors file)");
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(hdr, (size_t)n, &end, 0);
    if (!root) return fail(e, ENG_EFORMAT, s->path, "header is not valid JSON");
    for (const char *p = end; p && p < hdr + n; p++)
        if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r' && *p != '\0') {
            cJSON_Delete(root);
            return fail(e, ENG_EFORMAT, s->path, "trailing bytes after the JSON header");
        }
    int rc = 0;
    if (!cJSON_IsObject(root)) {
        rc = fail(e, ENG_EFORMAT, s->path, "header is not a JSON object");
        goto out;
    }
    int count = cJSON_GetArraySize(root);
    span_t *spans = calloc((size_t)count + 1, sizeof *spans);
    if (!spans) {
        rc = fail(e, -ENOMEM, s->path, "out of memory");
        goto out;
    }
    int ns = 0;
    const uint8_t *buf = s->base + 8 + n;
    const uint64_t buf_len = s->size - 8 - n;
    const cJSON *ent;
    cJSON_ArrayForEach(ent, root) {
        if (!strcmp(ent->string, "__metadata__")) {
            const cJSON *kv;
            if (!cJSON_IsObject(ent)) {
                rc = fail(e, ENG_EFORMAT, s->path, "__metadata__ is not an object");
                break;
            }
            cJSON_ArrayForEach(kv, ent) if (!cJSON_IsString(kv)) {
                rc = fail(e, ENG_EFORMAT, s->path, "__metadata__ value '%s' is not a string", kv->string);
                break;
            }
            if (rc) break;
            continue;
        }
        st_tensor_t t;
        if ((rc = parse_entry(ent, s->path, &t, &spans[ns], e))) break;
        if (spans[ns].end > buf_len) {
            rc = fail(e, ENG_EFORMAT, s->path, "tensor '%s': data_offsets end %" PRIu64 " is past the %" PRIu64 "-byte buffer",
                      ent->string, spans[ns].end, buf_len);
            break;
        }
        t.data = buf + spans[ns].begin;
        t.file = si;
        t.name = strdup(ent->string);
        if (!t.name || push_tensor(m, &t)) {
            free((void *)t.name);
            rc = fail(e, -ENOMEM, s->path, "out of memory");
            break;
        }
        ns++;
    }
    if (!rc) {
        /* Exact coverage: sorted spans must tile [0, buf_len). */
        qsort(spans, (size_t)ns, sizeof *spans, cmp_span);
        uint64_t pos = 0;
        for (int k = 0; k < ns && !rc; k++) {
            if (spans[k].begin != pos)
                rc = fail(e, ENG_EFORMAT, s->path, "byte buffer has a %s at offset %" PRIu64,
                          spans[k].begin > pos ? "hole" : "overlap", pos < spans[k].begin ? pos : spans[k].begin);
            pos = spans[k].end;
        }
        if (!rc && pos != buf_len)
            rc = fail(e, ENG_EFORMAT, s->path, "tensors cover %" PRIu64 " bytes of a %" PRIu64 "-byte buffer", pos, buf_len);
    }
    free(spans);
    if (!rc && si == 0) m->metadata = cJSON_DetachItemFromObjectCaseSensitive(root, "__metadata__");
out:
    cJSON_Delete(root);
    return rc;
}

static int add_shard(st_model_t *m, const char *path, err_t *e) {
    shard_t *n = realloc(m->shards, (size_t)(m->n_shards + 1) * sizeof *n);
    if (!n) return fail(e, -ENOMEM, path, "out of memory");
    m->shards = n;
    shard_t *s = &m->shards[m->n_shards];
    memset(s, 0, sizeof *s);
    if (!(s->path = strdup(path))) return fail(e, -ENOMEM, path, "out of memory");
    m->n_shards++;
    int rc = map_file(path, &s->base, &s->size, e);
    if (rc) return rc;
    return parse_shard(m, m->n_shards - 1, e);
}

/* --- index ----------------------------------------------------------------------- */

static int read_small_file(const char *path, char **out, size_t *len, err_t *e) {
    const uint8_t *base;
    size_t size;
    int rc = map_file(path, &base, &size, e);
    if (rc) return rc;
    if (size > MAX_INDEX_BYTES) {
        munmap((void *)base, size);
        return fail(e, ENG_EFORMAT, path, "file is %zu bytes, too large for an index", size);
    }
    *out = malloc(size + 1);
    if (!*out) {
        if (base) munmap((void *)base, size);
        return fail(e, -ENOMEM, path, "out of memory");
    }
    if (size) memcpy(*out, base, size);
    (*out)[size] = '\0';
    *len = size;
    if (base) munmap((void *)base, size);
    return 0;
}

/* Opens every shard named in the index's weight_map. On success *root_out holds
 * the parsed index (caller deletes it) for check_index once tensors are sorted. */
static int open_index(st_model_t *m, const char *index_path, cJSON **root_out, err_t *e) {
    char *txt = NULL;
    size_t len = 0;
    int rc = read_small_file(index_path, &txt, &len, e);
    if (rc) return rc;
    cJSON *root = cJSON_ParseWithLength(txt, len);
    free(txt);
    if (!root) return fail(e, ENG_EFORMAT, index_path, "not valid JSON");
    const cJSON *wm = cJSON_GetObjectItemCaseSensitive(root, "weight_map");
    if (!cJSON_IsObject(wm) || !wm->child) {
        cJSON_Delete(root);
        return fail(e, ENG_EFORMAT, index_path, "missing or empty \"weight_map\" object");
    }
    const cJSON *it;
    cJSON_ArrayForEach(it, wm) {
        if (!cJSON_IsString(it) || !it->valuestring[0] || strchr(it->valuestring, '/') || it->valuestring[0] == '.') {
            rc = fail(e, ENG_EFORMAT, index_path, "weight_map entry '%s' does not name a shard file in the same directory",
                      it->string);
            goto out;
        }
        int seen = 0;
        for (int i = 0; i < m->n_shards && !seen; i++) {
            const char *b = strrchr(m->shards[i].path, '/');
            seen = !strcmp(b ? b + 1 : m->shards[i].path, it->valuestring);
        }
        if (seen) continue;
        char *p = path_join(m->dir, it->valuestring);
        if (!p) {
            rc = fail(e, -ENOMEM, index_path, "out of memory");
            goto out;
        }
        rc = add_shard(m, p, e);
        free(p);
        if (rc) goto out;
    }
out:
    if (rc) cJSON_Delete(root);
    else *root_out = root;
    return rc;
}

/* Every tensor of the weight_map must be in the shard the index names. */
static int check_index(const st_model_t *m, const cJSON *root, const char *index_path, err_t *e) {
    const cJSON *it, *wm = cJSON_GetObjectItemCaseSensitive(root, "weight_map");
    cJSON_ArrayForEach(it, wm) {
        const st_tensor_t *t = st_find_tensor(m, it->string);
        if (!t)
            return fail(e, ENG_EFORMAT, index_path, "tensor '%s' is listed in weight_map but absent from %s", it->string,
                        it->valuestring);
        const char *b = strrchr(m->shards[t->file].path, '/');
        if (strcmp(b ? b + 1 : m->shards[t->file].path, it->valuestring))
            return fail(e, ENG_EFORMAT, index_path, "tensor '%s' is in %s, but weight_map says %s", it->string,
                        m->shards[t->file].path, it->valuestring);
    }
    return 0;
}

/* --- open / close ------------------------------------------------------------------ */

static int cmp_tensor(const void *a, const void *b) {
    return strcmp(((const st_tensor_t *)a)->name, ((const st_tensor_t *)b)->name);
}

static int ends_with(const char *s, const char *suf) {
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && !strcmp(s + a - b, suf);
}

int st_open(const char *path, st_model_t **out, char *err, size_t err_len) {
    err_t e = {err, err_len};
    *out = NULL;
    st_model_t *m = calloc(1, sizeof *m);
    if (!m) return fail(&e, -ENOMEM, path, "out of memory");
    int rc;
    cJSON *index = NULL;
    char *index_path = NULL;
    struct stat st;
    if (stat(path, &st) != 0) {
        rc = fail(&e, -errno, path, "cannot open: %s", strerror(errno));
        goto fail;
    }
    if (S_ISDIR(st.st_mode)) {
        m->dir = strdup(path);
        char *idx = m->dir ? path_join(path, "model.safetensors.index.json") : NULL;
        char *one = m->dir ? path_join(path, "model.safetensors") : NULL;
        if (!idx || !one) rc = fail(&e, -ENOMEM, path, "out of memory");
        else if (is_file(idx)) {
            rc = open_index(m, idx, &index, &e);
            index_path = idx; /* freed at the end, after check_index */
            idx = NULL;
        } else if (is_file(one)) rc = add_shard(m, one, &e);
        else rc = fail(&e, -ENOENT, path, "directory has neither model.safetensors.index.json nor model.safetensors");
        free(idx);
        free(one);
    } else {
        m->dir = dir_of(path);
        if (!m->dir) rc = fail(&e, -ENOMEM, path, "out of memory");
        else if (ends_with(path, ".json")) {
            rc = open_index(m, path, &index, &e);
            if (!(index_path = strdup(path))) rc = rc ? rc : fail(&e, -ENOMEM, path, "out of memory");
        }
        else rc = add_shard(m, path, &e);
    }
    if (rc) goto fail;
    if (m->n_tensors > 1) qsort(m->tensors, (size_t)m->n_tensors, sizeof *m->tensors, cmp_tensor);
    for (int64_t i = 1; i < m->n_tensors; i++)
        if (!strcmp(m->tensors[i - 1].name, m->tensors[i].name)) {
            rc = fail(&e, ENG_EFORMAT, m->shards[m->tensors[i].file].path, "duplicate tensor name '%s' (also in %s)",
                      m->tensors[i].name, m->shards[m->tensors[i - 1].file].path);
            goto fail;
        }
    if (index && (rc = check_index(m, index, index_path, &e))) goto fail;
    cJSON_Delete(index);
    free(index_path);
    *out = m;
    return 0;
fail:
    cJSON_Delete(index);
    free(index_path);
    st_close(&m);
    return rc;
}

void st_close(st_model_t **pm) {
    if (!pm || !*pm) return;
    st_model_t *m = *pm;
    for (int64_t i = 0; i < m->n_tensors; i++) free((void *)m->tensors[i].name);
    free(m->tensors);
    for (int i = 0; i < m->n_shards; i++) {
        if (m->shards[i].base) munmap((void *)m->shards[i].base, m->shards[i].size);
        free(m->shards[i].path);
    }
    free(m->shards);
    cJSON_Delete(m->metadata);
    free(m->dir);
    free(m);
    *pm = NULL;
}

/* --- accessors ------------------------------------------------------------------------ */

int st_file_count(const st_model_t *m) { return m->n_shards; }
const char *st_file_path(const st_model_t *m, int i) { return i >= 0 && i < m->n_shards ? m->shards[i].path : NULL; }
const char *st_dir(const st_model_t *m) { return m->dir; }
int64_t st_tensor_count(const st_model_t *m) { return m->n_tensors; }

const st_tensor_t *st_tensor(const st_model_t *m, int64_t i) {
    return i >= 0 && i < m->n_tensors ? &m->tensors[i] : NULL;
}

const st_tensor_t *st_find_tensor(const st_model_t *m, const char *name) {
    if (!name || m->n_tensors == 0) return NULL;
    st_tensor_t key = {.name = name};
    return bsearch(&key, m->tensors, (size_t)m->n_tensors, sizeof key, cmp_tensor);
}

const char *st_metadata(const st_model_t *m, const char *key) {
    const cJSON *v = m->metadata ? cJSON_GetObjectItemCaseSensitive(m->metadata, key) : NULL;
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

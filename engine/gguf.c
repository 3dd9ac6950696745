/* gguf: GGUF parser over a read-only mapping (see gguf.h for the contract).
 *
 * Invariants:
 *  - Every read goes through the cursor (struct cur), which checks the bytes
 *    are inside the buffer before touching them; every count is checked
 *    against the bytes left before anything proportional to it is allocated,
 *    so a hostile header cannot make us allocate more than O(file size).
 *  - Every size product is overflow-checked (mul_ok) before use.
 *  - After gguf_open returns, nothing is mutated: the object is shareable.
 *
 * Not done here: semantic checks on metadata (model_config does those), and
 * big-endian files (rejected with a clear message).
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

#include "gguf.h"
#include "k_ops.h"

/* Counts above these are not models, they are attacks or corruption. */
#define MAX_TENSORS (1u << 20)
#define MAX_KVS (1u << 20)

/* --- structures ------------------------------------------------------------------ */

typedef struct {
    char *key;               /* NUL-terminated copy */
    gguf_type_t type;
    gguf_type_t arr_type;    /* ARRAY only */
    uint64_t count;          /* ARRAY: element count */
    const uint8_t *val;      /* scalar bytes, STRING bytes, or first array element */
    uint64_t len;            /* STRING: length in bytes */
    uint64_t *str_off;       /* STRING ARRAY: offset of each element's bytes from base */
} kv_t;

struct gguf_file {
    char *path;
    const uint8_t *base;
    size_t size;
    int mapped;
    uint32_t version;
    uint32_t alignment;
    uint64_t data_offset;
    int64_t n_kv;
    kv_t *kv;
    int64_t n_tensors;
    gguf_tensor_t *tensors;
    /* open-addressing hash tables of index+1 (0 = empty); capacity power of 2 */
    uint32_t *kv_hash, *t_hash;
    size_t kv_cap, t_cap;
};

typedef struct {
    const uint8_t *base;
    size_t size, pos;
    const char *label;
    char *err;
    size_t err_len;
} cur_t;

/* --- errors -------------------------------------------------------------------- */

#if defined(__GNUC__)
__attribute__((format(printf, 4, 5)))
#endif
static int fail(cur_t *c, int code, size_t at, const char *fmt, ...) {
    if (c->err && c->err_len > 0) {
        int n = snprintf(c->err, c->err_len, "%s: at byte %zu: ", c->label, at);
        if (n >= 0 && (size_t)n < c->err_len) {
            va_list ap;
            va_start(ap, fmt);
            vsnprintf(c->err + n, c->err_len - (size_t)n, fmt, ap);
            va_end(ap);
        }
    }
    return code;
}

static void set_err(char *err, size_t err_len, const char *label, const char *what, int code) {
    if (err && err_len > 0) snprintf(err, err_len, "%s: %s: %s", label, what, eng_strerror(code));
}

/* --- helpers ------------------------------------------------------------------- */

static int mul_ok(uint64_t a, uint64_t b, uint64_t *out) {
    if (a != 0 && b > UINT64_MAX / a) return 0;
    *out = a * b;
    return 1;
}

static uint64_t hash_str(const char *s) {
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    while (*s) h = (h ^ (uint8_t)*s++) * 1099511628211ull;
    return h;
}

static size_t table_cap(int64_t n) {
    size_t cap = 16;
    while (cap < (size_t)n * 2) cap <<= 1;
    return cap;
}

/* Inserts index i (name nm) into table; returns the existing index+1 on a
 * duplicate (nothing inserted), 0 on success. */
static uint32_t table_put(uint32_t *tab, size_t cap, const char *nm, uint32_t i,
                          const char *(*name_of)(const gguf_file_t *, uint32_t), const gguf_file_t *f) {
    size_t h = (size_t)hash_str(nm) & (cap - 1);
    while (tab[h]) {
        if (!strcmp(name_of(f, tab[h] - 1), nm)) return tab[h];
        h = (h + 1) & (cap - 1);
    }
    tab[h] = i + 1;
    return 0;
}

static int64_t table_get(const uint32_t *tab, size_t cap, const char *nm,
                         const char *(*name_of)(const gguf_file_t *, uint32_t), const gguf_file_t *f) {
    if (!tab || !nm) return -1;
    size_t h = (size_t)hash_str(nm) & (cap - 1);
    while (tab[h]) {
        if (!strcmp(name_of(f, tab[h] - 1), nm)) return (int64_t)tab[h] - 1;
        h = (h + 1) & (cap - 1);
    }
    return -1;
}

static const char *kv_name(const gguf_file_t *f, uint32_t i) { return f->kv[i].key; }
static const char *t_name(const gguf_file_t *f, uint32_t i) { return f->tensors[i].name; }

static const size_t type_size[GGUF_TYPE_COUNT_] = {
    [GGUF_TYPE_UINT8] = 1, [GGUF_TYPE_INT8] = 1, [GGUF_TYPE_UINT16] = 2, [GGUF_TYPE_INT16] = 2,
    [GGUF_TYPE_UINT32] = 4, [GGUF_TYPE_INT32] = 4, [GGUF_TYPE_FLOAT32] = 4, [GGUF_TYPE_BOOL] = 1,
    [GGUF_TYPE_STRING] = 0, [GGUF_TYPE_ARRAY] = 0, [GGUF_TYPE_UINT64] = 8, [GGUF_TYPE_INT64] = 8,
    [GGUF_TYPE_FLOAT64] = 8,
};

const char *gguf_type_name(gguf_type_t t) {
    static const char *const names[GGUF_TYPE_COUNT_] = {
        "uint8", "int8", "uint16", "int16", "uint32", "int32", "float32",
        "bool", "string", "array", "uint64", "int64", "float64",
    };
    return (unsigned)t < GGUF_TYPE_COUNT_ ? names[t] : "?";
}

/* --- cursor ------------------------------------------------------------------- */

static int need(cur_t *c, uint64_t n, const char *what) {
    if (n > c->size - c->pos)
        return fail(c, ENG_EFORMAT, c->pos, "truncated: %s needs %" PRIu64 " bytes, %zu left", what, n,
                    c->size - c->pos);
    return 0;
}

static int rd_u32(cur_t *c, uint32_t *v, const char *what) {
    int rc = need(c, 4, what);
    if (rc) return rc;
    memcpy(v, c->base + c->pos, 4);
    c->pos += 4;
    return 0;
}

static int rd_u64(cur_t *c, uint64_t *v, const char *what) {
    int rc = need(c, 8, what);
    if (rc) return rc;
    memcpy(v, c->base + c->pos, 8);
    c->pos += 8;
    return 0;
}

/* Reads a gguf_string: sets *s to its bytes (in the buffer) and *len. */
static int rd_str(cur_t *c, const uint8_t **s, uint64_t *len, const char *what) {
    size_t at = c->pos;
    int rc = rd_u64(c, len, what);
    if (rc) return rc;
    if (*len > c->size - c->pos)
        return fail(c, ENG_EFORMAT, at, "truncated: %s has length %" PRIu64 " but only %zu bytes remain", what,
                    *len, c->size - c->pos);
    *s = c->base + c->pos;
    c->pos += (size_t)*len;
    return 0;
}

/* --- metadata ----------------------------------------------------------------- */

static int check_bools(cur_t *c, const uint8_t *p, uint64_t n, size_t at) {
    for (uint64_t i = 0; i < n; i++)
        if (p[i] > 1) return fail(c, ENG_EFORMAT, at + (size_t)i, "bool value %u is neither 0 nor 1", p[i]);
    return 0;
}

static int parse_value(cur_t *c, kv_t *kv) {
    size_t at = c->pos;
    int rc;
    if (kv->type == GGUF_TYPE_STRING) {
        rc = rd_str(c, &kv->val, &kv->len, "string value");
        return rc;
    }
    if (kv->type != GGUF_TYPE_ARRAY) {
        size_t sz = type_size[kv->type];
        if ((rc = need(c, sz, "scalar value"))) return rc;
        kv->val = c->base + c->pos;
        if (kv->type == GGUF_TYPE_BOOL && (rc = check_bools(c, kv->val, 1, at))) return rc;
        c->pos += sz;
        return 0;
    }
    uint32_t et;
    if ((rc = rd_u32(c, &et, "array element type"))) return rc;
    if (et == GGUF_TYPE_ARRAY) return fail(c, ENG_ETYPE, at, "nested arrays are not supported (key '%s')", kv->key);
    if (et >= GGUF_TYPE_COUNT_) return fail(c, ENG_ETYPE, at, "unknown array element type %u (key '%s')", et, kv->key);
    kv->arr_type = (gguf_type_t)et;
    at = c->pos;
    if ((rc = rd_u64(c, &kv->count, "array count"))) return rc;
    size_t left = c->size - c->pos;
    if (et != GGUF_TYPE_STRING) {
        uint64_t bytes;
        if (!mul_ok(kv->count, type_size[et], &bytes) || bytes > left)
            return fail(c, ENG_EFORMAT, at, "array '%s' of %" PRIu64 " %s elements exceeds the %zu bytes left", kv->key,
                        kv->count, gguf_type_name((gguf_type_t)et), left);
        kv->val = c->base + c->pos;
        if (et == GGUF_TYPE_BOOL && (rc = check_bools(c, kv->val, kv->count, c->pos))) return rc;
        c->pos += (size_t)bytes;
        return 0;
    }
    /* Each string costs at least its 8-byte length, which bounds the table. */
    if (kv->count > left / 8)
        return fail(c, ENG_EFORMAT, at, "string array '%s' claims %" PRIu64 " elements but only %zu bytes remain",
                    kv->key, kv->count, left);
    kv->val = c->base + c->pos;
    if (kv->count > 0) {
        kv->str_off = malloc((size_t)kv->count * sizeof *kv->str_off);
        if (!kv->str_off) return fail(c, -ENOMEM, at, "out of memory for string array '%s'", kv->key);
    }
    for (uint64_t i = 0; i < kv->count; i++) {
        const uint8_t *s;
        uint64_t len;
        if ((rc = rd_str(c, &s, &len, "string array element"))) return rc;
        kv->str_off[i] = (uint64_t)(s - c->base);
    }
    return 0;
}

static int parse_kvs(cur_t *c, gguf_file_t *f) {
    int rc;
    f->kv = calloc((size_t)f->n_kv ? (size_t)f->n_kv : 1, sizeof *f->kv);
    f->kv_cap = table_cap(f->n_kv);
    f->kv_hash = calloc(f->kv_cap, sizeof *f->kv_hash);
    if (!f->kv || !f->kv_hash) return fail(c, -ENOMEM, c->pos, "out of memory for %" PRId64 " keys", f->n_kv);
    for (int64_t i = 0; i < f->n_kv; i++) {
        kv_t *kv = &f->kv[i];
        size_t at = c->pos;
        const uint8_t *k;
        uint64_t klen;
        if ((rc = rd_str(c, &k, &klen, "metadata key"))) return rc;
        if (klen == 0) return fail(c, ENG_EFORMAT, at, "metadata key %" PRId64 " is empty", i);
        if (klen > GGUF_MAX_KEY) return fail(c, ENG_EFORMAT, at, "metadata key %" PRId64 " is %" PRIu64 " bytes long", i, klen);
        if (memchr(k, 0, (size_t)klen)) return fail(c, ENG_EFORMAT, at, "metadata key %" PRId64 " contains a NUL byte", i);
        kv->key = malloc((size_t)klen + 1);
        if (!kv->key) return fail(c, -ENOMEM, at, "out of memory");
        memcpy(kv->key, k, (size_t)klen);
        kv->key[klen] = '\0';
        uint32_t t;
        size_t tat = c->pos;
        if ((rc = rd_u32(c, &t, "value type"))) return rc;
        if (t >= GGUF_TYPE_COUNT_) return fail(c, ENG_ETYPE, tat, "key '%s' has unknown value type %u", kv->key, t);
        kv->type = (gguf_type_t)t;
        if ((rc = parse_value(c, kv))) return rc;
        if (table_put(f->kv_hash, f->kv_cap, kv->key, (uint32_t)i, kv_name, f))
            return fail(c, ENG_EFORMAT, at, "duplicate metadata key '%s'", kv->key);
    }
    return 0;
}

/* --- tensor infos ------------------------------------------------------------- */

static int parse_tensor_infos(cur_t *c, gguf_file_t *f) {
    int rc;
    f->tensors = calloc((size_t)f->n_tensors ? (size_t)f->n_tensors : 1, sizeof *f->tensors);
    f->t_cap = table_cap(f->n_tensors);
    f->t_hash = calloc(f->t_cap, sizeof *f->t_hash);
    if (!f->tensors || !f->t_hash) return fail(c, -ENOMEM, c->pos, "out of memory for %" PRId64 " tensors", f->n_tensors);
    for (int64_t i = 0; i < f->n_tensors; i++) {
        gguf_tensor_t *t = &f->tensors[i];
        size_t at = c->pos;
        const uint8_t *nm;
        uint64_t nlen;
        if ((rc = rd_str(c, &nm, &nlen, "tensor name"))) return rc;
        if (nlen >= GGUF_MAX_NAME)
            return fail(c, ENG_EFORMAT, at, "tensor %" PRId64 " name is %" PRIu64 " bytes (max %d)", i, nlen, GGUF_MAX_NAME - 1);
        if (memchr(nm, 0, (size_t)nlen)) return fail(c, ENG_EFORMAT, at, "tensor %" PRId64 " name contains a NUL byte", i);
        memcpy(t->name, nm, (size_t)nlen);
        t->name[nlen] = '\0';
        size_t dat = c->pos;
        if ((rc = rd_u32(c, &t->n_dims, "tensor n_dims"))) return rc;
        if (t->n_dims > GGUF_MAX_DIMS)
            return fail(c, ENG_EFORMAT, dat, "tensor '%s' has %u dimensions (max %d)", t->name, t->n_dims, GGUF_MAX_DIMS);
        uint64_t n_el = 1;
        for (int d = 0; d < GGUF_MAX_DIMS; d++) {
            uint64_t ne = 1;
            if ((uint32_t)d < t->n_dims) {
                size_t eat = c->pos;
                if ((rc = rd_u64(c, &ne, "tensor dimension"))) return rc;
                if (ne > INT64_MAX)
                    return fail(c, ENG_EFORMAT, eat, "tensor '%s' dimension %d is negative or huge", t->name, d);
                if (!mul_ok(n_el, ne, &n_el) || n_el > INT64_MAX)
                    return fail(c, ENG_EFORMAT, eat, "tensor '%s' element count overflows", t->name);
            }
            t->ne[d] = (int64_t)ne;
        }
        t->n_elements = (int64_t)n_el;
        uint32_t ty;
        size_t tat = c->pos;
        if ((rc = rd_u32(c, &ty, "tensor type"))) return rc;
        int64_t blck;
        size_t bbytes;
        if (k_type_block((int)ty, &blck, &bbytes) != 0)
            return fail(c, ENG_ETYPE, tat, "tensor '%s' has unknown ggml type %u", t->name, ty);
        t->type = (int)ty;
        if (t->ne[0] % blck != 0)
            return fail(c, ENG_EFORMAT, tat, "tensor '%s': row length %" PRId64 " is not a multiple of the %s block size %" PRId64,
                        t->name, t->ne[0], k_type_name(t->type), blck);
        /* nbytes = rows * row_bytes, both overflow-checked */
        uint64_t rows = t->ne[0] ? (uint64_t)n_el / (uint64_t)t->ne[0] : 0, rb, nb;
        if (!mul_ok((uint64_t)(t->ne[0] / blck), bbytes, &rb) || !mul_ok(rows, rb, &nb) || nb > SIZE_MAX)
            return fail(c, ENG_EFORMAT, tat, "tensor '%s' byte size overflows", t->name);
        if (t->ne[0] == 0) nb = 0; /* empty tensor: no rows, no bytes */
        t->row_bytes = (size_t)rb;
        t->nbytes = (size_t)nb;
        if ((rc = rd_u64(c, &t->offset, "tensor offset"))) return rc;
        if (table_put(f->t_hash, f->t_cap, t->name, (uint32_t)i, t_name, f))
            return fail(c, ENG_EFORMAT, at, "duplicate tensor name '%s'", t->name);
    }
    return 0;
}

/* --- open ----------------------------------------------------------------------- */

static int parse(gguf_file_t *f, char *err, size_t err_len) {
    cur_t c = {.base = f->base, .size = f->size, .pos = 0, .label = f->path, .err = err, .err_len = err_len};
    int rc;
    uint32_t magic;
    if (f->size < 4) return fail(&c, ENG_EFORMAT, 0, "file is %zu bytes, too small for a GGUF header", f->size);
    memcpy(&magic, f->base, 4);
    if (magic != GGUF_MAGIC)
        return fail(&c, ENG_EFORMAT, 0, "bad magic %02x %02x %02x %02x (not a GGUF file)", f->base[0], f->base[1],
                    f->base[2], f->base[3]);
    c.pos = 4;
    if ((rc = rd_u32(&c, &f->version, "version"))) return rc;
    if ((f->version & 0xFFFFu) == 0)
        return fail(&c, ENG_EVERSION, 4, "version 0x%08x looks big-endian; only little-endian GGUF is supported", f->version);
    if (f->version == 1) return fail(&c, ENG_EVERSION, 4, "GGUF v1 is not supported (v2 and v3 are)");
    if (f->version > 3) return fail(&c, ENG_EVERSION, 4, "GGUF version %u is not supported (v2 and v3 are)", f->version);
    uint64_t nt, nkv;
    if ((rc = rd_u64(&c, &nt, "tensor count"))) return rc;
    if ((rc = rd_u64(&c, &nkv, "metadata count"))) return rc;
    /* Minimal encodings: a kv is >= 8 (key len) + 1 (key) + 4 (type) + 1 bytes,
     * a tensor info >= 8 (name len) + 4 (n_dims) + 4 (type) + 8 (offset). */
    size_t left = f->size - c.pos;
    if (nkv > MAX_KVS || nkv > left / 14)
        return fail(&c, ENG_EFORMAT, 16, "metadata count %" PRIu64 " is impossible for a %zu-byte file", nkv, f->size);
    if (nt > MAX_TENSORS || nt > left / 24)
        return fail(&c, ENG_EFORMAT, 8, "tensor count %" PRIu64 " is impossible for a %zu-byte file", nt, f->size);
    f->n_kv = (int64_t)nkv;
    f->n_tensors = (int64_t)nt;
    if ((rc = parse_kvs(&c, f))) return rc;

    f->alignment = GGUF_DEFAULT_ALIGNMENT;
    int64_t ai = gguf_find_key(f, "general.alignment");
    if (ai >= 0) {
        const kv_t *kv = &f->kv[ai];
        if (kv->type != GGUF_TYPE_UINT32)
            return fail(&c, ENG_EFORMAT, 0, "general.alignment has type %s, must be uint32", gguf_type_name(kv->type));
        uint32_t a;
        memcpy(&a, kv->val, 4);
        if (a == 0 || (a & (a - 1)))
            return fail(&c, ENG_EFORMAT, 0, "general.alignment %u is not a power of two", a);
        f->alignment = a;
    }
    if ((rc = parse_tensor_infos(&c, f))) return rc;

    uint64_t pad = (f->alignment - c.pos % f->alignment) % f->alignment;
    f->data_offset = (uint64_t)c.pos + pad;
    if (f->n_tensors > 0 && f->data_offset > f->size)
        return fail(&c, ENG_EFORMAT, c.pos, "truncated: tensor data section would start at %" PRIu64 ", past the end",
                    f->data_offset);
    for (int64_t i = 0; i < f->n_tensors; i++) {
        gguf_tensor_t *t = &f->tensors[i];
        if (t->offset % f->alignment)
            return fail(&c, ENG_EFORMAT, (size_t)f->data_offset, "tensor '%s' offset %" PRIu64 " is not a multiple of the alignment %u",
                        t->name, t->offset, f->alignment);
        uint64_t room = f->size - f->data_offset; /* data_offset <= size here */
        if (t->offset > room || t->nbytes > room - t->offset)
            return fail(&c, ENG_EFORMAT, (size_t)f->data_offset,
                        "tensor '%s' data [%" PRIu64 ", +%zu) lies outside the %" PRIu64 "-byte data section", t->name,
                        t->offset, t->nbytes, room);
        t->data = f->base + f->data_offset + t->offset;
    }
    return 0;
}

static int finish_open(gguf_file_t *f, gguf_file_t **out, char *err, size_t err_len) {
    int rc = parse(f, err, err_len);
    if (rc) {
        gguf_close(&f);
        return rc;
    }
    *out = f;
    return 0;
}

int gguf_open_memory(const void *buf, size_t len, const char *label, gguf_file_t **out, char *err, size_t err_len) {
    *out = NULL;
    if (!label) label = "<memory>";
    gguf_file_t *f = calloc(1, sizeof *f);
    if (f) f->path = strdup(label);
    if (!f || !f->path) {
        free(f);
        set_err(err, err_len, label, "open", -ENOMEM);
        return -ENOMEM;
    }
    f->base = buf;
    f->size = buf ? len : 0;
    return finish_open(f, out, err, err_len);
}

int gguf_open(const char *path, gguf_file_t **out, char *err, size_t err_len) {
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int rc = -errno;
        set_err(err, err_len, path, "cannot open", rc);
        return rc;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int rc = -errno;
        close(fd);
        set_err(err, err_len, path, "cannot stat", rc);
        return rc;
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        set_err(err, err_len, path, "not a regular file", S_ISDIR(st.st_mode) ? -EISDIR : -EINVAL);
        return S_ISDIR(st.st_mode) ? -EISDIR : -EINVAL;
    }
    if ((uint64_t)st.st_size > SIZE_MAX) {
        close(fd);
        set_err(err, err_len, path, "file too large to map", -EOVERFLOW);
        return -EOVERFLOW;
    }
    gguf_file_t *f = calloc(1, sizeof *f);
    if (f) f->path = strdup(path);
    if (!f || !f->path) {
        free(f);
        close(fd);
        set_err(err, err_len, path, "open", -ENOMEM);
        return -ENOMEM;
    }
    f->size = (size_t)st.st_size;
    if (f->size > 0) {
        void *m = mmap(NULL, f->size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (m == MAP_FAILED) {
            int rc = -errno;
            close(fd);
            set_err(err, err_len, path, "cannot mmap", rc);
            gguf_close(&f);
            return rc;
        }
        f->base = m;
        f->mapped = 1;
    }
    close(fd); /* the mapping keeps the file alive */
    return finish_open(f, out, err, err_len);
}

void gguf_close(gguf_file_t **pf) {
    if (!pf || !*pf) return;
    gguf_file_t *f = *pf;
    if (f->kv)
        for (int64_t i = 0; i < f->n_kv; i++) {
            free(f->kv[i].key);
            free(f->kv[i].str_off);
        }
    free(f->kv);
    free(f->kv_hash);
    free(f->tensors);
    free(f->t_hash);
    if (f->mapped) munmap((void *)f->base, f->size);
    free(f->path);
    free(f);
    *pf = NULL;
}

/* --- accessors ------------------------------------------------------------------ */

const char *gguf_path(const gguf_file_t *f) { return f->path; }
uint32_t gguf_version(const gguf_file_t *f) { return f->version; }
uint32_t gguf_alignment(const gguf_file_t *f) { return f->alignment; }
uint64_t gguf_data_offset(const gguf_file_t *f) { return f->data_offset; }
size_t gguf_file_size(const gguf_file_t *f) { return f->size; }
int64_t gguf_kv_count(const gguf_file_t *f) { return f->n_kv; }
int64_t gguf_tensor_count(const gguf_file_t *f) { return f->n_tensors; }

int64_t gguf_find_key(const gguf_file_t *f, const char *key) {
    return table_get(f->kv_hash, f->kv_cap, key, kv_name, f);
}

const char *gguf_kv_key(const gguf_file_t *f, int64_t i) {
    return i >= 0 && i < f->n_kv ? f->kv[i].key : NULL;
}

gguf_type_t gguf_kv_type(const gguf_file_t *f, int64_t i) {
    return i >= 0 && i < f->n_kv ? f->kv[i].type : GGUF_TYPE_COUNT_;
}

static const kv_t *arr_kv(const gguf_file_t *f, int64_t i, int *rc) {
    if (i < 0 || i >= f->n_kv) {
        *rc = -EINVAL;
        return NULL;
    }
    if (f->kv[i].type != GGUF_TYPE_ARRAY) {
        *rc = ENG_EWRONGTYPE;
        return NULL;
    }
    *rc = 0;
    return &f->kv[i];
}

int gguf_kv_arr(const gguf_file_t *f, int64_t i, gguf_type_t *elem_type, uint64_t *count) {
    int rc;
    const kv_t *kv = arr_kv(f, i, &rc);
    if (!kv) return rc;
    if (elem_type) *elem_type = kv->arr_type;
    if (count) *count = kv->count;
    return 0;
}

int gguf_kv_arr_data(const gguf_file_t *f, int64_t i, const void **data) {
    int rc;
    const kv_t *kv = arr_kv(f, i, &rc);
    if (!kv) return rc;
    if (kv->arr_type == GGUF_TYPE_STRING) return ENG_EWRONGTYPE;
    *data = kv->val;
    return 0;
}

int gguf_kv_arr_str(const gguf_file_t *f, int64_t i, uint64_t idx, const char **s, size_t *len) {
    int rc;
    const kv_t *kv = arr_kv(f, i, &rc);
    if (!kv) return rc;
    if (kv->arr_type != GGUF_TYPE_STRING) return ENG_EWRONGTYPE;
    if (idx >= kv->count) return -EINVAL;
    uint64_t n;
    memcpy(&n, f->base + kv->str_off[idx] - 8, 8);
    *s = (const char *)f->base + kv->str_off[idx];
    *len = (size_t)n;
    return 0;
}

/* Widens one integer (or bool) of type t at p. Returns 0, ENG_EWRONGTYPE or
 * ENG_ERANGE (uint64 > INT64_MAX). */
static int load_int(gguf_type_t t, const uint8_t *p, int64_t *out) {
    switch (t) {
    case GGUF_TYPE_UINT8: case GGUF_TYPE_BOOL: *out = p[0]; return 0;
    case GGUF_TYPE_INT8: *out = (int8_t)p[0]; return 0;
    case GGUF_TYPE_UINT16: { uint16_t v; memcpy(&v, p, 2); *out = v; return 0; }
    case GGUF_TYPE_INT16: { int16_t v; memcpy(&v, p, 2); *out = v; return 0; }
    case GGUF_TYPE_UINT32: { uint32_t v; memcpy(&v, p, 4); *out = v; return 0; }
    case GGUF_TYPE_INT32: { int32_t v; memcpy(&v, p, 4); *out = v; return 0; }
    case GGUF_TYPE_INT64: { int64_t v; memcpy(&v, p, 8); *out = v; return 0; }
    case GGUF_TYPE_UINT64: {
        uint64_t v;
        memcpy(&v, p, 8);
        if (v > INT64_MAX) return ENG_ERANGE;
        *out = (int64_t)v;
        return 0;
    }
    default: return ENG_EWRONGTYPE;
    }
}

static int load_f64(gguf_type_t t, const uint8_t *p, double *out) {
    if (t == GGUF_TYPE_FLOAT32) {
        float v;
        memcpy(&v, p, 4);
        *out = v;
        return 0;
    }
    if (t == GGUF_TYPE_FLOAT64) {
        memcpy(out, p, 8);
        return 0;
    }
    return ENG_EWRONGTYPE;
}

int gguf_kv_arr_i64(const gguf_file_t *f, int64_t i, uint64_t idx, int64_t *out) {
    int rc;
    const kv_t *kv = arr_kv(f, i, &rc);
    if (!kv) return rc;
    if (idx >= kv->count) return -EINVAL;
    if (kv->arr_type == GGUF_TYPE_STRING || kv->arr_type == GGUF_TYPE_FLOAT32 || kv->arr_type == GGUF_TYPE_FLOAT64)
        return ENG_EWRONGTYPE;
    return load_int(kv->arr_type, kv->val + idx * type_size[kv->arr_type], out);
}

int gguf_kv_arr_f32(const gguf_file_t *f, int64_t i, uint64_t idx, float *out) {
    int rc;
    const kv_t *kv = arr_kv(f, i, &rc);
    if (!kv) return rc;
    if (idx >= kv->count) return -EINVAL;
    if (kv->arr_type != GGUF_TYPE_FLOAT32 && kv->arr_type != GGUF_TYPE_FLOAT64) return ENG_EWRONGTYPE;
    double d;
    rc = load_f64(kv->arr_type, kv->val + idx * type_size[kv->arr_type], &d);
    if (!rc) *out = (float)d;
    return rc;
}

static const kv_t *find(const gguf_file_t *f, const char *key) {
    int64_t i = gguf_find_key(f, key);
    return i >= 0 ? &f->kv[i] : NULL;
}

int gguf_get_str(const gguf_file_t *f, const char *key, const char **s, size_t *len) {
    const kv_t *kv = find(f, key);
    if (!kv) return ENG_ENOTFOUND;
    if (kv->type != GGUF_TYPE_STRING) return ENG_EWRONGTYPE;
    *s = (const char *)kv->val;
    *len = (size_t)kv->len;
    return 0;
}

static int get_int(const gguf_file_t *f, const char *key, int64_t lo, int64_t hi, int64_t *out) {
    const kv_t *kv = find(f, key);
    if (!kv) return ENG_ENOTFOUND;
    if (kv->type == GGUF_TYPE_BOOL) return ENG_EWRONGTYPE;
    int64_t v;
    int rc = load_int(kv->type, kv->val, &v);
    if (rc) return rc;
    if (v < lo || v > hi) return ENG_ERANGE;
    *out = v;
    return 0;
}

int gguf_get_u32(const gguf_file_t *f, const char *key, uint32_t *out) {
    int64_t v;
    int rc = get_int(f, key, 0, UINT32_MAX, &v);
    if (!rc) *out = (uint32_t)v;
    return rc;
}

int gguf_get_i32(const gguf_file_t *f, const char *key, int32_t *out) {
    int64_t v;
    int rc = get_int(f, key, INT32_MIN, INT32_MAX, &v);
    if (!rc) *out = (int32_t)v;
    return rc;
}

int gguf_get_i64(const gguf_file_t *f, const char *key, int64_t *out) {
    return get_int(f, key, INT64_MIN, INT64_MAX, out);
}

int gguf_get_u64(const gguf_file_t *f, const char *key, uint64_t *out) {
    const kv_t *kv = find(f, key);
    if (!kv) return ENG_ENOTFOUND;
    if (kv->type == GGUF_TYPE_UINT64) { /* the one type that may exceed INT64_MAX */
        memcpy(out, kv->val, 8);
        return 0;
    }
    int64_t v;
    int rc = get_int(f, key, 0, INT64_MAX, &v);
    if (!rc) *out = (uint64_t)v;
    return rc;
}

int gguf_get_f64(const gguf_file_t *f, const char *key, double *out) {
    const kv_t *kv = find(f, key);
    if (!kv) return ENG_ENOTFOUND;
    return load_f64(kv->type, kv->val, out);
}

int gguf_get_f32(const gguf_file_t *f, const char *key, float *out) {
    double d;
    int rc = gguf_get_f64(f, key, &d);
    if (!rc) *out = (float)d;
    return rc;
}

int gguf_get_bool(const gguf_file_t *f, const char *key, bool *out) {
    const kv_t *kv = find(f, key);
    if (!kv) return ENG_ENOTFOUND;
    if (kv->type != GGUF_TYPE_BOOL) return ENG_EWRONGTYPE;
    *out = kv->val[0] != 0;
    return 0;
}

int gguf_get_arr(const gguf_file_t *f, const char *key, int64_t *kv_id, gguf_type_t *elem_type, uint64_t *count) {
    int64_t i = gguf_find_key(f, key);
    if (i < 0) return ENG_ENOTFOUND;
    if (f->kv[i].type != GGUF_TYPE_ARRAY) return ENG_EWRONGTYPE;
    if (kv_id) *kv_id = i;
    if (elem_type) *elem_type = f->kv[i].arr_type;
    if (count) *count = f->kv[i].count;
    return 0;
}

const gguf_tensor_t *gguf_tensor(const gguf_file_t *f, int64_t i) {
    return i >= 0 && i < f->n_tensors ? &f->tensors[i] : NULL;
}

const gguf_tensor_t *gguf_find_tensor(const gguf_file_t *f, const char *name) {
    int64_t i = table_get(f->t_hash, f->t_cap, name, t_name, f);
    return i >= 0 ? &f->tensors[i] : NULL;
}

/* GGUF parser and dequantization tests: a small valid file built in memory,
 * checked field by field; then every way we know to break it (truncation at
 * every byte, bad magic/version, absurd counts and lengths, out-of-range
 * offsets, unknown types, duplicates, random mutations) must yield an error
 * code and a message, never a crash or an out-of-bounds read (run under ASan). */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gguf.h"
#include "k_ops.h"
#include "mtest.h"

/* --- the reference file ------------------------------------------------------- */

typedef struct {
    buf_t b;
    size_t off_version, off_ntensors, off_nkv;
    size_t off_key0_len;      /* length of the first key */
    size_t off_str_len;       /* length of general.architecture's value */
    size_t off_bool;          /* test.bool value byte */
    size_t off_u8_type;       /* type field of test.u8 */
    size_t off_arr_type;      /* element type of the tokens array */
    size_t off_arr_count;     /* count of the tokens array */
    size_t off_i32arr_count;  /* count of the ints array */
    size_t off_align_val;     /* general.alignment value */
    size_t off_align_type;
    size_t off_t0_name_len, off_t0_ndims, off_t0_ne0, off_t0_ne1, off_t0_type, off_t0_off;
    size_t off_t2_off;
    size_t data_start;
} ref_t;

static void kv_hdr(buf_t *b, const char *key, uint32_t type) {
    buf_str(b, key);
    buf_u32(b, type);
}

static ref_t build(void) {
    ref_t r = {0};
    buf_t *b = &r.b;
    buf_u32(b, GGUF_MAGIC);
    r.off_version = b->n;
    buf_u32(b, 3);
    r.off_ntensors = b->n;
    buf_u64(b, 3);
    r.off_nkv = b->n;
    buf_u64(b, 18);
    r.off_key0_len = b->n;
    kv_hdr(b, "general.architecture", GGUF_TYPE_STRING);
    r.off_str_len = b->n;
    buf_str(b, "llama");
    kv_hdr(b, "general.alignment", GGUF_TYPE_UINT32);
    r.off_align_type = b->n - 4;
    r.off_align_val = b->n;
    buf_u32(b, 64);
    kv_hdr(b, "test.u8", GGUF_TYPE_UINT8);
    r.off_u8_type = b->n - 4;
    buf_u8(b, 200);
    kv_hdr(b, "test.i8", GGUF_TYPE_INT8);
    buf_u8(b, (uint8_t)-5);
    kv_hdr(b, "test.u16", GGUF_TYPE_UINT16);
    buf_u16(b, 60000);
    kv_hdr(b, "test.i16", GGUF_TYPE_INT16);
    buf_u16(b, (uint16_t)-300);
    kv_hdr(b, "test.u32", GGUF_TYPE_UINT32);
    buf_u32(b, 4000000000u);
    kv_hdr(b, "test.i32", GGUF_TYPE_INT32);
    buf_u32(b, (uint32_t)-7);
    kv_hdr(b, "test.f32", GGUF_TYPE_FLOAT32);
    buf_f32(b, 1.5f);
    kv_hdr(b, "test.bool", GGUF_TYPE_BOOL);
    r.off_bool = b->n;
    buf_u8(b, 1);
    kv_hdr(b, "test.u64", GGUF_TYPE_UINT64);
    buf_u64(b, (1ull << 63) + 5);
    kv_hdr(b, "test.i64", GGUF_TYPE_INT64);
    buf_u64(b, (uint64_t)-(1ll << 40));
    kv_hdr(b, "test.f64", GGUF_TYPE_FLOAT64);
    double d = 0.25;
    buf_put(b, &d, 8);
    kv_hdr(b, "tokens", GGUF_TYPE_ARRAY);
    r.off_arr_type = b->n;
    buf_u32(b, GGUF_TYPE_STRING);
    r.off_arr_count = b->n;
    buf_u64(b, 3);
    buf_str(b, "a");
    buf_str(b, "");
    buf_str(b, "h\xc3\xa9llo");
    kv_hdr(b, "ints", GGUF_TYPE_ARRAY);
    buf_u32(b, GGUF_TYPE_INT32);
    r.off_i32arr_count = b->n;
    buf_u64(b, 3);
    buf_u32(b, 1);
    buf_u32(b, (uint32_t)-2);
    buf_u32(b, 3);
    kv_hdr(b, "floats", GGUF_TYPE_ARRAY);
    buf_u32(b, GGUF_TYPE_FLOAT32);
    buf_u64(b, 2);
    buf_f32(b, 0.5f);
    buf_f32(b, -1.0f);
    kv_hdr(b, "flags", GGUF_TYPE_ARRAY);
    buf_u32(b, GGUF_TYPE_BOOL);
    buf_u64(b, 2);
    buf_u8(b, 0);
    buf_u8(b, 1);
    kv_hdr(b, "empty", GGUF_TYPE_ARRAY);
    buf_u32(b, GGUF_TYPE_UINT64);
    buf_u64(b, 0);
    /* tensors */
    r.off_t0_name_len = b->n;
    buf_str(b, "t.f32");
    r.off_t0_ndims = b->n;
    buf_u32(b, 2);
    r.off_t0_ne0 = b->n;
    buf_u64(b, 4);
    r.off_t0_ne1 = b->n;
    buf_u64(b, 2);
    r.off_t0_type = b->n;
    buf_u32(b, K_TYPE_F32);
    r.off_t0_off = b->n;
    buf_u64(b, 0);
    buf_str(b, "t.q8");
    buf_u32(b, 1);
    buf_u64(b, 32);
    buf_u32(b, K_TYPE_Q8_0);
    buf_u64(b, 64);
    buf_str(b, "t.f16");
    buf_u32(b, 1);
    buf_u64(b, 3);
    buf_u32(b, K_TYPE_F16);
    r.off_t2_off = b->n;
    buf_u64(b, 128);
    buf_pad(b, 64);
    r.data_start = b->n;
    for (int i = 0; i < 8; i++) buf_f32(b, (float)i);
    buf_pad(b, 64);
    buf_u16(b, 0x3800); /* d = 0.5 */
    for (int i = 0; i < 32; i++) buf_u8(b, (uint8_t)(int8_t)(i - 16));
    buf_pad(b, 64);
    buf_u16(b, 0x3C00); /* 1 */
    buf_u16(b, 0xC000); /* -2 */
    buf_u16(b, 0x7BFF); /* 65504 */
    return r;
}

/* Parses an exact-size heap copy (so ASan sees any over-read). */
static int parse_copy(const unsigned char *p, size_t n, char *err, size_t err_len) {
    unsigned char *c = malloc(n ? n : 1);
    CHECK(c != NULL);
    if (n) memcpy(c, p, n);
    gguf_file_t *f = NULL;
    int rc = gguf_open_memory(c, n, "mem.gguf", &f, err, err_len);
    if (rc == 0) {
        /* Touch everything a caller could reach. */
        volatile unsigned sum = 0;
        for (int64_t i = 0; i < gguf_tensor_count(f); i++) {
            const gguf_tensor_t *t = gguf_tensor(f, i);
            for (size_t k = 0; k < t->nbytes; k++) sum += ((const unsigned char *)t->data)[k];
        }
        for (int64_t i = 0; i < gguf_kv_count(f); i++) {
            gguf_type_t et;
            uint64_t cnt;
            if (gguf_kv_arr(f, i, &et, &cnt) == 0 && et == GGUF_TYPE_STRING)
                for (uint64_t k = 0; k < cnt; k++) {
                    const char *s;
                    size_t l;
                    CHECK(gguf_kv_arr_str(f, i, k, &s, &l) == 0);
                    for (size_t j = 0; j < l; j++) sum += (unsigned char)s[j];
                }
        }
        (void)sum;
        gguf_close(&f);
    } else {
        CHECK(f == NULL);
    }
    free(c);
    return rc;
}

/* Patches a copy of the reference and expects code `code` with `needle` in the message. */
static void expect_patch(size_t off, const void *bytes, size_t n, int code, const char *needle) {
    ref_t r = build();
    CHECK(off + n <= r.b.n);
    memcpy(r.b.p + off, bytes, n);
    char err[512] = "";
    int rc = parse_copy(r.b.p, r.b.n, err, sizeof err);
    if (rc != code || !strstr(err, needle)) {
        fprintf(stderr, "patch at %zu: rc=%d (want %d) msg=\"%s\" (want \"%s\")\n", off, rc, code, err, needle);
        exit(1);
    }
    CHECK(strstr(err, "mem.gguf") != NULL);
    free(r.b.p);
}

static void patch_u32(size_t off, uint32_t v, int code, const char *needle) { expect_patch(off, &v, 4, code, needle); }
static void patch_u64(size_t off, uint64_t v, int code, const char *needle) { expect_patch(off, &v, 8, code, needle); }

/* --- cases ---------------------------------------------------------------------- */

static void test_valid(void) {
    ref_t r = build();
    char err[256] = "";
    gguf_file_t *f = NULL;
    int rc = gguf_open_memory(r.b.p, r.b.n, "mem.gguf", &f, err, sizeof err);
    if (rc) fprintf(stderr, "%s\n", err);
    CHECK_EQ_I(rc, 0);
    CHECK_EQ_I(gguf_version(f), 3);
    CHECK_EQ_I(gguf_alignment(f), 64);
    CHECK_EQ_I(gguf_data_offset(f), r.data_start);
    CHECK_EQ_I(gguf_kv_count(f), 18);
    CHECK_STR(gguf_kv_key(f, 0), "general.architecture");
    CHECK(gguf_kv_key(f, 18) == NULL && gguf_kv_key(f, -1) == NULL);
    const char *s;
    size_t n;
    CHECK_EQ_I(gguf_get_str(f, "general.architecture", &s, &n), 0);
    CHECK(n == 5 && !memcmp(s, "llama", 5));
    CHECK_EQ_I(gguf_get_str(f, "nope", &s, &n), ENG_ENOTFOUND);
    CHECK_EQ_I(gguf_get_str(f, "test.u8", &s, &n), ENG_EWRONGTYPE);

    uint32_t u32;
    int32_t i32;
    int64_t i64;
    uint64_t u64;
    float f32;
    double f64;
    bool bl;
    CHECK_EQ_I(gguf_get_u32(f, "test.u8", &u32), 0);
    CHECK_EQ_I(u32, 200);
    CHECK_EQ_I(gguf_get_i32(f, "test.i8", &i32), 0);
    CHECK_EQ_I(i32, -5);
    CHECK_EQ_I(gguf_get_u32(f, "test.i8", &u32), ENG_ERANGE); /* negative into unsigned */
    CHECK_EQ_I(gguf_get_i64(f, "test.u16", &i64), 0);
    CHECK_EQ_I(i64, 60000);
    CHECK_EQ_I(gguf_get_i32(f, "test.i16", &i32), 0);
    CHECK_EQ_I(i32, -300);
    CHECK_EQ_I(gguf_get_u32(f, "test.u32", &u32), 0);
    CHECK_EQ_I(u32, 4000000000u);
    CHECK_EQ_I(gguf_get_i32(f, "test.u32", &i32), ENG_ERANGE);
    CHECK_EQ_I(gguf_get_i32(f, "test.i32", &i32), 0);
    CHECK_EQ_I(i32, -7);
    CHECK_EQ_I(gguf_get_u64(f, "test.u64", &u64), 0);
    CHECK(u64 == (1ull << 63) + 5);
    CHECK_EQ_I(gguf_get_i64(f, "test.u64", &i64), ENG_ERANGE);
    CHECK_EQ_I(gguf_get_i64(f, "test.i64", &i64), 0);
    CHECK_EQ_I(i64, -(1ll << 40));
    CHECK_EQ_I(gguf_get_u64(f, "test.i64", &u64), ENG_ERANGE);
    CHECK_EQ_I(gguf_get_f32(f, "test.f32", &f32), 0);
    CHECK_EQ_F(f32, 1.5);
    CHECK_EQ_I(gguf_get_f64(f, "test.f64", &f64), 0);
    CHECK_EQ_F(f64, 0.25);
    CHECK_EQ_I(gguf_get_f32(f, "test.i32", &f32), ENG_EWRONGTYPE);
    CHECK_EQ_I(gguf_get_bool(f, "test.bool", &bl), 0);
    CHECK(bl);
    CHECK_EQ_I(gguf_get_i32(f, "test.bool", &i32), ENG_EWRONGTYPE);
    CHECK_EQ_I(gguf_get_bool(f, "test.u8", &bl), ENG_EWRONGTYPE);

    int64_t id;
    gguf_type_t et;
    uint64_t cnt;
    CHECK_EQ_I(gguf_get_arr(f, "tokens", &id, &et, &cnt), 0);
    CHECK_EQ_I(et, GGUF_TYPE_STRING);
    CHECK_EQ_I(cnt, 3);
    CHECK_EQ_I(gguf_kv_arr_str(f, id, 2, &s, &n), 0);
    CHECK(n == 6 && !memcmp(s, "h\xc3\xa9llo", 6));
    CHECK_EQ_I(gguf_kv_arr_str(f, id, 1, &s, &n), 0);
    CHECK_EQ_I(n, 0);
    CHECK_EQ_I(gguf_kv_arr_str(f, id, 3, &s, &n), -EINVAL);
    CHECK_EQ_I(gguf_kv_arr_i64(f, id, 0, &i64), ENG_EWRONGTYPE);
    CHECK_EQ_I(gguf_get_arr(f, "ints", &id, &et, &cnt), 0);
    CHECK_EQ_I(gguf_kv_arr_i64(f, id, 1, &i64), 0);
    CHECK_EQ_I(i64, -2);
    CHECK_EQ_I(gguf_kv_arr_str(f, id, 0, &s, &n), ENG_EWRONGTYPE);
    const void *raw;
    CHECK_EQ_I(gguf_kv_arr_data(f, id, &raw), 0);
    memcpy(&i32, (const char *)raw + 8, 4);
    CHECK_EQ_I(i32, 3);
    CHECK_EQ_I(gguf_get_arr(f, "floats", &id, &et, &cnt), 0);
    CHECK_EQ_I(gguf_kv_arr_f32(f, id, 1, &f32), 0);
    CHECK_EQ_F(f32, -1.0);
    CHECK_EQ_I(gguf_get_arr(f, "flags", &id, &et, &cnt), 0);
    CHECK_EQ_I(gguf_kv_arr_i64(f, id, 1, &i64), 0);
    CHECK_EQ_I(i64, 1);
    CHECK_EQ_I(gguf_get_arr(f, "empty", &id, &et, &cnt), 0);
    CHECK_EQ_I(cnt, 0);
    CHECK_EQ_I(gguf_get_arr(f, "test.u8", &id, &et, &cnt), ENG_EWRONGTYPE);

    CHECK_EQ_I(gguf_tensor_count(f), 3);
    const gguf_tensor_t *t = gguf_find_tensor(f, "t.f32");
    CHECK(t && t == gguf_tensor(f, 0));
    CHECK_EQ_I(t->n_dims, 2);
    CHECK_EQ_I(t->ne[0], 4);
    CHECK_EQ_I(t->ne[1], 2);
    CHECK_EQ_I(t->ne[2], 1);
    CHECK_EQ_I(t->n_elements, 8);
    CHECK_EQ_I(t->nbytes, 32);
    CHECK_EQ_I(t->row_bytes, 16);
    CHECK((const unsigned char *)t->data == r.b.p + r.data_start);
    float y[32];
    CHECK_EQ_I(k_dequant_row(t->type, t->data, y, 8), 0);
    for (int i = 0; i < 8; i++) CHECK_EQ_F(y[i], i);
    t = gguf_find_tensor(f, "t.q8");
    CHECK(t != NULL);
    CHECK_EQ_I(t->type, K_TYPE_Q8_0);
    CHECK_EQ_I(t->nbytes, 34);
    CHECK_EQ_I(k_dequant_row(t->type, t->data, y, 32), 0);
    for (int i = 0; i < 32; i++) CHECK_EQ_F(y[i], (i - 16) * 0.5);
    t = gguf_find_tensor(f, "t.f16");
    CHECK(t && t->offset == 128 && t->nbytes == 6);
    CHECK_EQ_I(k_dequant_row(t->type, t->data, y, 3), 0);
    CHECK_EQ_F(y[0], 1.0);
    CHECK_EQ_F(y[1], -2.0);
    CHECK_EQ_F(y[2], 65504.0);
    CHECK(gguf_find_tensor(f, "t.f") == NULL);
    CHECK(gguf_tensor(f, 3) == NULL);
    gguf_close(&f);
    CHECK(f == NULL);
    gguf_close(&f); /* NULL-safe */
    free(r.b.p);
}

static void test_truncate_every_byte(void) {
    ref_t r = build();
    char err[512];
    for (size_t len = 0; len < r.b.n; len++) {
        err[0] = '\0';
        int rc = parse_copy(r.b.p, len, err, sizeof err);
        if (rc >= 0 || !strstr(err, "mem.gguf")) {
            fprintf(stderr, "truncated to %zu of %zu bytes: rc=%d msg=\"%s\"\n", len, r.b.n, rc, err);
            exit(1);
        }
    }
    CHECK_EQ_I(parse_copy(r.b.p, r.b.n, err, sizeof err), 0);
    free(r.b.p);
}

static void test_header(void) {
    ref_t r = build();
    patch_u32(0, 0x46554746, ENG_EFORMAT, "bad magic");
    patch_u32(r.off_version, 1, ENG_EVERSION, "v1");
    patch_u32(r.off_version, 4, ENG_EVERSION, "version 4");
    patch_u32(r.off_version, 0x03000000, ENG_EVERSION, "big-endian");
    patch_u64(r.off_ntensors, 1ull << 40, ENG_EFORMAT, "tensor count");
    patch_u64(r.off_ntensors, UINT64_MAX, ENG_EFORMAT, "tensor count");
    patch_u64(r.off_nkv, 1ull << 60, ENG_EFORMAT, "metadata count");
    char err[128] = "";
    CHECK_EQ_I(parse_copy(r.b.p, 0, err, sizeof err), ENG_EFORMAT);
    CHECK(strstr(err, "too small"));
    free(r.b.p);
}

static void test_metadata_corrupt(void) {
    ref_t r = build();
    patch_u64(r.off_key0_len, 0, ENG_EFORMAT, "empty");
    patch_u64(r.off_key0_len, 70000, ENG_EFORMAT, "70000");
    patch_u64(r.off_key0_len, UINT64_MAX, ENG_EFORMAT, "truncated");
    patch_u64(r.off_str_len, 1ull << 62, ENG_EFORMAT, "truncated");
    expect_patch(r.off_key0_len + 8 + 3, "\0", 1, ENG_EFORMAT, "NUL");
    patch_u32(r.off_u8_type, 13, ENG_ETYPE, "unknown value type 13");
    patch_u32(r.off_u8_type, 0xFFFFFFFFu, ENG_ETYPE, "unknown value type");
    expect_patch(r.off_bool, "\x02", 1, ENG_EFORMAT, "neither 0 nor 1");
    patch_u32(r.off_arr_type, GGUF_TYPE_ARRAY, ENG_ETYPE, "nested arrays");
    patch_u32(r.off_arr_type, 99, ENG_ETYPE, "unknown array element type");
    patch_u64(r.off_arr_count, 1ull << 61, ENG_EFORMAT, "string array");
    patch_u64(r.off_arr_count, UINT64_MAX, ENG_EFORMAT, "string array");
    patch_u64(r.off_i32arr_count, 1ull << 62, ENG_EFORMAT, "exceeds");
    patch_u64(r.off_i32arr_count, UINT64_MAX / 2, ENG_EFORMAT, "exceeds");
    patch_u32(r.off_align_val, 48, ENG_EFORMAT, "power of two");
    patch_u32(r.off_align_val, 0, ENG_EFORMAT, "power of two");
    patch_u32(r.off_align_type, GGUF_TYPE_INT32, ENG_EFORMAT, "must be uint32");
    /* Rename test.i8 to test.u8: duplicate key. "test.i8" key bytes follow test.u8's value. */
    size_t k = r.off_u8_type + 4 + 1 + 8 + 5; /* type, value, len, "test." */
    expect_patch(k, "u", 1, ENG_EFORMAT, "duplicate metadata key 'test.u8'");
    free(r.b.p);
}

static void test_tensor_corrupt(void) {
    ref_t r = build();
    patch_u64(r.off_t0_name_len, 64, ENG_EFORMAT, "name is 64 bytes");
    patch_u32(r.off_t0_ndims, 5, ENG_EFORMAT, "5 dimensions");
    patch_u64(r.off_t0_ne0, 1ull << 63, ENG_EFORMAT, "negative or huge");
    patch_u64(r.off_t0_ne0, 1ull << 40, ENG_EFORMAT, "outside");
    patch_u64(r.off_t0_ne1, 1ull << 62, ENG_EFORMAT, "overflow");
    patch_u32(r.off_t0_type, 4, ENG_ETYPE, "unknown ggml type 4");
    patch_u32(r.off_t0_type, 1000, ENG_ETYPE, "unknown ggml type 1000");
    patch_u32(r.off_t0_type, K_TYPE_Q8_0, ENG_EFORMAT, "not a multiple of the Q8_0 block size");
    patch_u64(r.off_t0_off, 32, ENG_EFORMAT, "not a multiple of the alignment");
    patch_u64(r.off_t0_off, 1ull << 20, ENG_EFORMAT, "outside");
    patch_u64(r.off_t0_off, UINT64_MAX - 63, ENG_EFORMAT, "outside");
    patch_u64(r.off_t2_off, 192, ENG_EFORMAT, "outside");
    free(r.b.p);
}

static void test_duplicate_tensor(void) {
    /* Two tensors named "w" (v2 header, no metadata). */
    buf_t b = {0};
    buf_u32(&b, GGUF_MAGIC);
    buf_u32(&b, 2);
    buf_u64(&b, 2);
    buf_u64(&b, 0);
    for (int i = 0; i < 2; i++) {
        buf_str(&b, "w");
        buf_u32(&b, 1);
        buf_u64(&b, 1);
        buf_u32(&b, K_TYPE_F32);
        buf_u64(&b, 0);
    }
    buf_pad(&b, 32);
    buf_f32(&b, 1.0f);
    char err[256] = "";
    CHECK_ERR(parse_copy(b.p, b.n, err, sizeof err), ENG_EFORMAT, err, "duplicate tensor name 'w'");
    /* Renamed apart, the same bytes parse (v2 accepted; tensors may share data). */
    unsigned char *second = memmem(b.p + 25, b.n - 25, "\x01\0\0\0\0\0\0\0w", 9);
    CHECK(second != NULL);
    second[8] = 'v';
    CHECK_EQ_I(parse_copy(b.p, b.n, err, sizeof err), 0);
    free(b.p);
}

static void test_fuzz(void) {
    ref_t r = build();
    uint64_t seed = 0x9E3779B97F4A7C15ull;
    char err[256];
    int ok = 0;
    for (int it = 0; it < 30000; it++) {
        unsigned char *m = malloc(r.b.n);
        CHECK(m != NULL);
        memcpy(m, r.b.p, r.b.n);
        int flips = 1 + it % 4;
        for (int k = 0; k < flips; k++) {
            seed ^= seed << 13, seed ^= seed >> 7, seed ^= seed << 17;
            size_t pos = (size_t)(seed % r.b.n);
            /* Bias towards the header, where the interesting fields are. */
            if (it & 1) pos %= r.data_start;
            m[pos] = (unsigned char)(seed >> 32);
        }
        size_t len = (it % 7 == 0) ? (size_t)((seed >> 16) % r.b.n) : r.b.n;
        int rc = parse_copy(m, len, err, sizeof err);
        CHECK(rc <= 0);
        ok += rc == 0;
        free(m);
    }
    printf("fuzz: %d of 30000 mutants parsed\n", ok);
    free(r.b.p);
}

static char *write_tmp(const void *p, size_t n) {
    char *path = strdup("/tmp/cvllm-test-gguf-XXXXXX");
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    CHECK(write(fd, p, n) == (ssize_t)n);
    close(fd);
    return path;
}

static void test_files(void) {
    ref_t r = build();
    char err[512];
    gguf_file_t *f = NULL;
    char *path = write_tmp(r.b.p, r.b.n);
    CHECK_EQ_I(gguf_open(path, &f, err, sizeof err), 0);
    CHECK_STR(gguf_path(f), path);
    CHECK_EQ_I(gguf_file_size(f), r.b.n);
    const gguf_tensor_t *t = gguf_find_tensor(f, "t.q8");
    CHECK(t && ((const signed char *)t->data)[2] == -16);
    gguf_close(&f);
    CHECK(truncate(path, (off_t)r.b.n - 1) == 0);
    CHECK_ERR(gguf_open(path, &f, err, sizeof err), ENG_EFORMAT, err, path);
    CHECK(f == NULL);
    CHECK(truncate(path, 0) == 0);
    CHECK_ERR(gguf_open(path, &f, err, sizeof err), ENG_EFORMAT, err, "too small");
    unlink(path);
    CHECK_ERR(gguf_open(path, &f, err, sizeof err), -ENOENT, err, path);
    CHECK_ERR(gguf_open("/tmp", &f, err, sizeof err), -EISDIR, err, "/tmp");
    /* A tiny err buffer truncates the message but stays NUL-terminated. */
    char small[8];
    CHECK(gguf_open(path, &f, small, sizeof small) == -ENOENT && strlen(small) == 7);
    CHECK(gguf_open(path, &f, NULL, 0) == -ENOENT);
    free(path);
    free(r.b.p);
}

/* --- kernels --------------------------------------------------------------------- */

static void test_fp16_exhaustive(void) {
    for (uint32_t h = 0; h < 65536; h++) {
        uint32_t e = (h >> 10) & 31, m = h & 1023;
        double sign = (h & 0x8000) ? -1.0 : 1.0, want;
        float got = k_fp16_to_fp32((uint16_t)h);
        if (e == 31) {
            if (m == 0) CHECK(isinf(got) && (got < 0) == (sign < 0));
            else CHECK(isnan(got));
            continue;
        }
        want = e == 0 ? sign * ldexp(m, -24) : sign * ldexp(1024 + m, (int)e - 25);
        if ((double)got != want || !!signbit(got) != (sign < 0)) {
            fprintf(stderr, "fp16 0x%04x: got %.9g want %.9g\n", h, (double)got, want);
            exit(1);
        }
    }
    CHECK_EQ_F(k_bf16_to_fp32(0x3F80), 1.0);
    CHECK_EQ_F(k_bf16_to_fp32(0xC0A0), -5.0);
}

static void test_dequant_blocks(void) {
    unsigned char blk[256];
    float y[256];
    /* Q4_0: d=1, low nibble j, high nibble 15-j -> y[j]=j-8, y[j+16]=7-j */
    blk[0] = 0x00, blk[1] = 0x3C;
    for (int j = 0; j < 16; j++) blk[2 + j] = (unsigned char)(j | ((15 - j) << 4));
    CHECK_EQ_I(k_dequant_row(K_TYPE_Q4_0, blk, y, 32), 0);
    for (int j = 0; j < 16; j++) {
        CHECK_EQ_F(y[j], j - 8);
        CHECK_EQ_F(y[j + 16], 7 - j);
    }
    /* Q4_1: d=0.5, m=-1 */
    blk[0] = 0x00, blk[1] = 0x38, blk[2] = 0x00, blk[3] = 0xBC;
    for (int j = 0; j < 16; j++) blk[4 + j] = (unsigned char)(j | ((15 - j) << 4));
    CHECK_EQ_I(k_dequant_row(K_TYPE_Q4_1, blk, y, 32), 0);
    for (int j = 0; j < 16; j++) {
        CHECK_EQ_F(y[j], j * 0.5 - 1);
        CHECK_EQ_F(y[j + 16], (15 - j) * 0.5 - 1);
    }
    /* Q4_K: d=1, dmin=0.5, sub-block scales 1 and mins 2 (j<4), 1 and 0 (j>=4);
     * every quant byte 0x21 -> low nibble 1, high nibble 2. */
    unsigned char k4[144] = {0x00, 0x3C, 0x00, 0x38};
    for (int j = 0; j < 4; j++) k4[4 + j] = 1, k4[8 + j] = 2, k4[12 + j] = 0x01;
    memset(k4 + 16, 0x21, 128);
    CHECK_EQ_I(k_dequant_row(K_TYPE_Q4_K, k4, y, 256), 0);
    for (int i = 0; i < 256; i++) {
        int sub = i / 32, hi = sub & 1;
        double want = (hi ? 2.0 : 1.0) - (sub < 4 ? 0.5 * 2 : 0.0);
        CHECK_EQ_F(y[i], want);
    }
    /* Q6_K: ql=0xFF, qh=0xFF -> q=63-32=31; scales alternate 1, -2; d=0.25 */
    unsigned char k6[210];
    memset(k6, 0xFF, 192);
    for (int j = 0; j < 16; j++) k6[192 + j] = (unsigned char)(int8_t)(j % 2 ? -2 : 1);
    k6[208] = 0x00, k6[209] = 0x34;
    CHECK_EQ_I(k_dequant_row(K_TYPE_Q6_K, k6, y, 256), 0);
    for (int i = 0; i < 256; i++) {
        int l = i % 128 % 32, quarter = i % 128 / 32, is = l / 16 + 2 * quarter + 8 * (i / 128);
        CHECK_EQ_F(y[i], 0.25 * (is % 2 ? -2 : 1) * 31);
    }
    /* errors */
    CHECK_EQ_I(k_dequant_row(K_TYPE_Q4_0, blk, y, 33), -EINVAL);
    CHECK_EQ_I(k_dequant_row(K_TYPE_Q4_0, blk, y, -32), -EINVAL);
    CHECK_EQ_I(k_dequant_row(K_TYPE_Q2_K, blk, y, 256), -ENOTSUP);
    CHECK_EQ_I(k_dequant_row(4, blk, y, 32), -ENOTSUP);
    CHECK_EQ_I(k_dequant_row(K_TYPE_Q4_0, NULL, y, 32), -EINVAL);
    CHECK_EQ_I(k_dequant_row(K_TYPE_Q4_0, NULL, NULL, 0), 0);
    int64_t be;
    size_t bb;
    CHECK_EQ_I(k_type_block(K_TYPE_Q6_K, &be, &bb), 0);
    CHECK(be == 256 && bb == 210);
    CHECK_EQ_I(k_type_block(31, &be, &bb), -EINVAL);
    CHECK_EQ_I(k_type_block(-1, &be, &bb), -EINVAL);
    CHECK(k_type_name(40) == NULL && !strcmp(k_type_name(K_TYPE_BF16), "BF16"));
    CHECK_EQ_I(k_type_row_bytes(K_TYPE_Q4_1, 576, &bb), 0);
    CHECK_EQ_I(bb, 360);
    CHECK_EQ_I(k_type_row_bytes(K_TYPE_Q4_1, 577, &bb), -EINVAL);
    CHECK_EQ_I(k_type_row_bytes(K_TYPE_F64, INT64_MAX, &bb), -EOVERFLOW);
}

static const mtest_case_t cases[] = {
    {"valid", test_valid},
    {"truncate", test_truncate_every_byte},
    {"header", test_header},
    {"metadata", test_metadata_corrupt},
    {"tensors", test_tensor_corrupt},
    {"duplicate-tensor", test_duplicate_tensor},
    {"fuzz", test_fuzz},
    {"files", test_files},
    {"fp16", test_fp16_exhaustive},
    {"dequant", test_dequant_blocks},
};

int main(int argc, char **argv) {
    return mtest_main(cases, sizeof cases / sizeof cases[0], argc, argv);
}

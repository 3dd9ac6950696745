/* Minimal test harness for tests/model: a table of named cases, run one by
 * name (meson registers each case as its own test, so each gets its own
 * process and timeout) or all in turn. Assertions print both sides and the
 * location, then exit 1. Header-only, static functions: included by one .c
 * per test executable. */
#ifndef CVLLM_TESTS_MTEST_H
#define CVLLM_TESTS_MTEST_H

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(c)                                                                    \
    do {                                                                            \
        if (!(c)) {                                                                 \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #c);   \
            exit(1);                                                                \
        }                                                                           \
    } while (0)

#define CHECK_EQ_I(a, b)                                                                                  \
    do {                                                                                                  \
        long long a_ = (long long)(a), b_ = (long long)(b);                                               \
        if (a_ != b_) {                                                                                   \
            fprintf(stderr, "%s:%d: %s == %s failed: %lld != %lld\n", __FILE__, __LINE__, #a, #b, a_, b_); \
            exit(1);                                                                                      \
        }                                                                                                 \
    } while (0)

#define CHECK_EQ_F(a, b)                                                                                    \
    do {                                                                                                    \
        double a_ = (double)(a), b_ = (double)(b);                                                          \
        if (!(a_ == b_)) {                                                                                  \
            fprintf(stderr, "%s:%d: %s == %s failed: %.9g != %.9g\n", __FILE__, __LINE__, #a, #b, a_, b_); \
            exit(1);                                                                                        \
        }                                                                                                   \
    } while (0)

#define CHECK_STR(a, b)                                                                                    \
    do {                                                                                                   \
        const char *a_ = (a), *b_ = (b);                                                                   \
        if (!a_ || !b_ || strcmp(a_, b_)) {                                                                \
            fprintf(stderr, "%s:%d: %s == %s failed: \"%s\" != \"%s\"\n", __FILE__, __LINE__, #a, #b,      \
                    a_ ? a_ : "(null)", b_ ? b_ : "(null)");                                               \
            exit(1);                                                                                       \
        }                                                                                                  \
    } while (0)

/* Error path check: rc is the expected negative code and the message names `needle`. */
#define CHECK_ERR(rc, code, err, needle)                                                                     \
    do {                                                                                                     \
        CHECK_EQ_I(rc, code);                                                                                \
        if (!strstr(err, needle)) {                                                                          \
            fprintf(stderr, "%s:%d: message \"%s\" lacks \"%s\"\n", __FILE__, __LINE__, err, needle);       \
            exit(1);                                                                                         \
        }                                                                                                    \
    } while (0)

typedef struct {
    const char *name;
    void (*fn)(void);
} mtest_case_t;

static inline int mtest_main(const mtest_case_t *cases, size_t n, int argc, char **argv) {
    int ran = 0;
    for (size_t i = 0; i < n; i++) {
        if (argc > 1 && strcmp(argv[1], cases[i].name)) continue;
        cases[i].fn();
        printf("ok %s\n", cases[i].name);
        ran++;
    }
    if (!ran) {
        fprintf(stderr, "no test named '%s'\n", argc > 1 ? argv[1] : "");
        return 1;
    }
    return 0;
}

/* --- growable byte buffer for building files ------------------------------- */

typedef struct {
    unsigned char *p;
    size_t n, cap;
} buf_t;

static inline void buf_put(buf_t *b, const void *src, size_t n) {
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 64;
        b->p = realloc(b->p, b->cap);
        CHECK(b->p != NULL);
    }
    memcpy(b->p + b->n, src, n);
    b->n += n;
}
static inline void buf_u8(buf_t *b, uint8_t v) { buf_put(b, &v, 1); }
static inline void buf_u16(buf_t *b, uint16_t v) { buf_put(b, &v, 2); }
static inline void buf_u32(buf_t *b, uint32_t v) { buf_put(b, &v, 4); }
static inline void buf_u64(buf_t *b, uint64_t v) { buf_put(b, &v, 8); }
static inline void buf_f32(buf_t *b, float v) { buf_put(b, &v, 4); }
static inline void buf_str(buf_t *b, const char *s) {
    buf_u64(b, strlen(s));
    buf_put(b, s, strlen(s));
}
static inline void buf_pad(buf_t *b, size_t align) {
    while (b->n % align) buf_u8(b, 0);
}

#endif

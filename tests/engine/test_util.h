/* Shared assertions for the engine tests: every failed check prints both
 * sides and the test exits non-zero. Included by one .c per test program. */
#ifndef CVLLM_TESTS_ENGINE_TEST_UTIL_H
#define CVLLM_TESTS_ENGINE_TEST_UTIL_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures;

#define CHECK(cond)                                                                   \
    do {                                                                              \
        if (!(cond)) {                                                                \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
            failures++;                                                               \
        }                                                                             \
    } while (0)

#define CHECK_EQ(got, want)                                                                              \
    do {                                                                                                 \
        long long g_ = (long long)(got), w_ = (long long)(want);                                         \
        if (g_ != w_) {                                                                                  \
            fprintf(stderr, "%s:%d: %s = %lld, want %s = %lld\n", __FILE__, __LINE__, #got, g_, #want, w_); \
            failures++;                                                                                  \
        }                                                                                                \
    } while (0)

#define CHECK_NEAR(got, want)                                                                      \
    do {                                                                                           \
        double g_ = (got), w_ = (want);                                                            \
        if (g_ - w_ > 1e-12 || w_ - g_ > 1e-12) {                                                  \
            fprintf(stderr, "%s:%d: %s = %.17g, want %.17g\n", __FILE__, __LINE__, #got, g_, w_); \
            failures++;                                                                            \
        }                                                                                          \
    } while (0)

/* Fills t[0..n) with base, base+1, ... */
static inline void seq_tokens(int32_t *t, int64_t n, int32_t base) {
    for (int64_t i = 0; i < n; i++) t[i] = base + (int32_t)i;
}


typedef struct {
    const char *name;
    void (*fn)(void);
} test_entry_t;

/* Runs the test named by $ENGINE_TEST, or all. Returns the exit status. */
static inline int run_tests(const test_entry_t *tests, size_t n) {
    const char *only = getenv("ENGINE_TEST");
    int ran = 0;
    for (size_t i = 0; i < n; i++) {
        if (only && strcmp(only, tests[i].name)) continue;
        int before = failures;
        tests[i].fn();
        ran++;
        printf("%s %s\n", failures == before ? "ok  " : "FAIL", tests[i].name);
    }
    if (!ran) {
        fprintf(stderr, "no test named %s\n", only ? only : "(null)");
        return 1;
    }
    return failures ? 1 : 0;
}

#endif

/* Assertions for the C test programs: they print both sides and count
 * failures instead of aborting, so one run reports every broken check; the
 * program's exit status is `failures != 0`. Include from one .c file. */
#ifndef CVLLM_TESTS_CHECK_H
#define CVLLM_TESTS_CHECK_H

#include <stdio.h>
#include <string.h>

static int failures;

static inline const char *check__nn(const char *s) { return s ? s : "(null)"; }

#define CHECK(cond)                                                                   \
    do {                                                                              \
        if (!(cond)) {                                                                \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);  \
            failures++;                                                               \
        }                                                                             \
    } while (0)

#define CHECK_STR(got, want)                                                                        \
    do {                                                                                            \
        const char *g_ = check__nn(got), *w_ = check__nn(want);                                     \
        if (strcmp(g_, w_)) {                                                                       \
            fprintf(stderr, "%s:%d: got\n---\n%s\n---\nwant\n---\n%s\n---\n", __FILE__, __LINE__, g_, w_); \
            failures++;                                                                             \
        }                                                                                           \
    } while (0)

#endif

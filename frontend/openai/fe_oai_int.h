/* fe_oai_int.h: helpers shared by the fe_oai source files (not public). */
#ifndef CVLLM_FE_OAI_INT_H
#define CVLLM_FE_OAI_INT_H

#include <stddef.h>

#include "fe_oai.h"

#if defined(__GNUC__)
#define FE_OAI__PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define FE_OAI__PRINTF(a, b)
#endif

/* Makes room for extra more bytes plus a NUL. 0 or FE_OAI_ENOMEM. */
int fe_oai__reserve(fe_oai_buf_t *b, size_t extra);
int fe_oai__puts(fe_oai_buf_t *b, const char *s);
/* printf-append; the formatted text is copied as is (no JSON escaping). */
int fe_oai__printf(fe_oai_buf_t *b, const char *fmt, ...) FE_OAI__PRINTF(2, 3);
/* A NUL-terminated string as a JSON string, or null for NULL. */
int fe_oai__json_cstr(fe_oai_buf_t *b, const char *s);

/* Length in bytes of the UTF-8 sequence (or maximal invalid subsequence) at
 * s[i]; *valid says which. i < n. */
size_t fe_oai__utf8_next(const unsigned char *s, size_t n, size_t i, int *valid);
/* Characters as Python counts them after decoding with errors="replace". */
size_t fe_oai__utf8_chars(const char *s, size_t n);
/* Appends s with invalid sequences replaced by U+FFFD (no JSON escaping). */
int fe_oai__utf8_sanitize(fe_oai_buf_t *b, const char *s, size_t n);

#endif

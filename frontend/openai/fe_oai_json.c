/* fe_oai_json: the output buffer, JSON string/number writers, error codes,
 * the error envelope and request ids of the fe_oai module.
 *
 * Invariant: everything written by fe_oai_json_str is valid UTF-8 JSON, for
 * any input bytes (invalid sequences become U+FFFD the way Python's
 * errors="replace" does, one per maximal invalid subsequence), so a response
 * never carries bytes a client's JSON parser rejects.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fe_oai.h"
#include "fe_oai_int.h"

// --- error codes

const char *fe_oai_strerror(int code) {
    switch (code) {
#define XX(name, c, status, desc) \
    case c:                       \
        return desc;
        FE_OAI_ERRNO_MAP(XX)
#undef XX
    }
    return "unknown error";
}

const char *fe_oai_err_name(int code) {
    switch (code) {
#define XX(name, c, status, desc) \
    case c:                       \
        return #name;
        FE_OAI_ERRNO_MAP(XX)
#undef XX
    }
    return "UNKNOWN";
}

int fe_oai_err_status(int code) {
    switch (code) {
#define XX(name, c, status, desc) \
    case c:                       \
        return status;
        FE_OAI_ERRNO_MAP(XX)
#undef XX
    }
    return 500;
}

int fe_oai_error_set(fe_oai_error_t *e, int code, const char *param, const char *fmt, ...) {
    e->code = code;
    e->status = fe_oai_err_status(code);
    switch (code) {
    /* vLLM's remapped pydantic errors (wrong JSON, wrong types) say "Bad
     * Request"; its own validation errors say "BadRequestError". */
    case FE_OAI_EJSON:
    case FE_OAI_ESCHEMA: e->type = "Bad Request"; break;
    case FE_OAI_EINVAL:
    case FE_OAI_ETOOLONG: e->type = "BadRequestError"; break;
    case FE_OAI_EMODEL: e->type = "NotFoundError"; break;
    default: e->type = "InternalServerError"; break;
    }
    snprintf(e->param, sizeof e->param, "%s", param ? param : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof e->message, fmt, ap);
    va_end(ap);
    return code;
}

int fe_oai_error_model(fe_oai_error_t *e, const char *model) {
    return fe_oai_error_set(e, FE_OAI_EMODEL, "model", "The model `%.400s` does not exist.", model ? model : "");
}

// --- buffer

void fe_oai_buf_free(fe_oai_buf_t *b) {
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

int fe_oai__reserve(fe_oai_buf_t *b, size_t extra) {
    if (extra > SIZE_MAX / 2 - b->len) return FE_OAI_ENOMEM;
    size_t need = b->len + extra + 1; /* + the terminating NUL */
    if (need <= b->cap) return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need) cap *= 2;
    char *p = realloc(b->data, cap);
    if (!p) return FE_OAI_ENOMEM;
    b->data = p;
    b->cap = cap;
    return 0;
}

int fe_oai_buf_append(fe_oai_buf_t *b, const void *p, size_t n) {
    if (fe_oai__reserve(b, n)) return FE_OAI_ENOMEM;
    if (n) memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = 0;
    return 0;
}

int fe_oai__puts(fe_oai_buf_t *b, const char *s) { return fe_oai_buf_append(b, s, strlen(s)); }

int fe_oai__printf(fe_oai_buf_t *b, const char *fmt, ...) {
    char tmp[128];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0) return FE_OAI_ENOMEM;
    if ((size_t)n < sizeof tmp) return fe_oai_buf_append(b, tmp, (size_t)n);
    if (fe_oai__reserve(b, (size_t)n)) return FE_OAI_ENOMEM;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return 0;
}

// --- UTF-8

size_t fe_oai__utf8_next(const unsigned char *s, size_t n, size_t i, int *valid) {
    unsigned c = s[i];
    *valid = 1;
    if (c < 0x80) return 1;
    size_t need;
    unsigned lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) need = 1;
    else if (c >= 0xE0 && c <= 0xEF) {
        need = 2;
        if (c == 0xE0) lo = 0xA0;
        if (c == 0xED) hi = 0x9F; /* no surrogates */
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 3;
        if (c == 0xF0) lo = 0x90;
        if (c == 0xF4) hi = 0x8F;
    } else {
        *valid = 0;
        return 1;
    }
    size_t k = 1;
    for (; k <= need; k++) {
        if (i + k >= n) break;
        unsigned d = s[i + k];
        unsigned l = k == 1 ? lo : 0x80, h = k == 1 ? hi : 0xBF;
        if (d < l || d > h) break;
    }
    if (k <= need) *valid = 0; /* a maximal invalid prefix of k bytes */
    return k;
}

size_t fe_oai__utf8_chars(const char *s, size_t n) {
    size_t i = 0, chars = 0;
    int valid;
    while (i < n) {
        i += fe_oai__utf8_next((const unsigned char *)s, n, i, &valid);
        chars++;
    }
    return chars;
}

int fe_oai__utf8_sanitize(fe_oai_buf_t *b, const char *s, size_t n) {
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0, run = 0;
    while (i < n) {
        int valid;
        size_t k = fe_oai__utf8_next(u, n, i, &valid);
        if (!valid) {
            if (fe_oai_buf_append(b, s + run, i - run) || fe_oai_buf_append(b, "\xEF\xBF\xBD", 3))
                return FE_OAI_ENOMEM;
            run = i + k;
        }
        i += k;
    }
    return fe_oai_buf_append(b, s + run, n - run);
}

int fe_oai_json_str(fe_oai_buf_t *b, const char *s, size_t n) {
    static const char hex[] = "0123456789abcdef";
    const unsigned char *u = (const unsigned char *)s;
    /* Worst case 6 bytes per input byte (\u00XX); reserving once keeps the
     * loop free of reallocations. */
    if (n > SIZE_MAX / 8 || fe_oai__reserve(b, 6 * n + 2)) return FE_OAI_ENOMEM;
    char *o = b->data + b->len;
    *o++ = '"';
    size_t i = 0;
    while (i < n) {
        unsigned c = u[i];
        if (c >= 0x80) {
            int valid;
            size_t k = fe_oai__utf8_next(u, n, i, &valid);
            if (valid) memcpy(o, s + i, k), o += k;
            else memcpy(o, "\xEF\xBF\xBD", 3), o += 3;
            i += k;
            continue;
        }
        i++;
        if (c == '"' || c == '\\') *o++ = '\\', *o++ = (char)c;
        else if (c >= 0x20) *o++ = (char)c;
        else if (c == '\n') *o++ = '\\', *o++ = 'n';
        else if (c == '\r') *o++ = '\\', *o++ = 'r';
        else if (c == '\t') *o++ = '\\', *o++ = 't';
        else if (c == '\b') *o++ = '\\', *o++ = 'b';
        else if (c == '\f') *o++ = '\\', *o++ = 'f';
        else {
            memcpy(o, "\\u00", 4);
            o[4] = hex[c >> 4];
            o[5] = hex[c & 15];
            o += 6;
        }
    }
    *o++ = '"';
    b->len = (size_t)(o - b->data);
    b->data[b->len] = 0;
    return 0;
}

int fe_oai__json_cstr(fe_oai_buf_t *b, const char *s) {
    if (!s) return fe_oai_buf_append(b, "null", 4);
    return fe_oai_json_str(b, s, strlen(s));
}

// --- numbers

char *fe_oai_py_float(double v, char out[32]) {
    if (isnan(v)) return strcpy(out, "nan");
    if (isinf(v)) return strcpy(out, v < 0 ? "-inf" : "inf");
    if (v == 0) return strcpy(out, signbit(v) ? "-0.0" : "0.0");
    /* Shortest digit string that reads back as v (Python's repr rule). */
    char e[40];
    int prec = 1;
    for (; prec <= 17; prec++) {
        snprintf(e, sizeof e, "%.*e", prec - 1, v);
        if (strtod(e, NULL) == v) break;
    }
    /* e is "-d.ddde+XX": split into sign, digits and exponent. */
    const char *p = e;
    int neg = *p == '-';
    if (neg) p++;
    char digits[20];
    int nd = 0;
    for (; *p && *p != 'e'; p++)
        if (*p != '.') digits[nd++] = *p;
    while (nd > 1 && digits[nd - 1] == '0') nd--;
    int exp = atoi(p + 1);
    char *o = out;
    if (neg) *o++ = '-';
    if (exp >= -4 && exp < 16) {
        if (exp < 0) {
            *o++ = '0', *o++ = '.';
            for (int k = -1; k > exp; k--) *o++ = '0';
            memcpy(o, digits, (size_t)nd), o += nd;
        } else {
            for (int k = 0; k <= exp; k++) *o++ = k < nd ? digits[k] : '0';
            *o++ = '.';
            if (nd > exp + 1) memcpy(o, digits + exp + 1, (size_t)(nd - exp - 1)), o += nd - exp - 1;
            else *o++ = '0';
        }
        *o = 0;
    } else {
        *o++ = digits[0];
        if (nd > 1) {
            *o++ = '.';
            memcpy(o, digits + 1, (size_t)(nd - 1)), o += nd - 1;
        }
        int ax = exp < 0 ? -exp : exp; /* <= 324 */
        *o++ = 'e';
        *o++ = exp < 0 ? '-' : '+';
        if (ax >= 100) *o++ = (char)('0' + ax / 100);
        *o++ = (char)('0' + ax / 10 % 10);
        *o++ = (char)('0' + ax % 10);
        *o = 0;
    }
    return out;
}

int fe_oai_json_double(fe_oai_buf_t *b, double v) {
    char tmp[32];
    return fe_oai__puts(b, fe_oai_py_float(v, tmp));
}

// --- ids and the error envelope

char *fe_oai_make_id(char *out, const char *prefix, const uint8_t rnd[16]) {
    static const char hex[] = "0123456789abcdef";
    size_t k = strlen(prefix);
    memcpy(out, prefix, k);
    for (int i = 0; i < 16; i++) {
        out[k + 2 * (size_t)i] = hex[rnd[i] >> 4];
        out[k + 2 * (size_t)i + 1] = hex[rnd[i] & 15];
    }
    out[k + 32] = 0;
    return out;
}

int fe_oai_error_json(fe_oai_buf_t *b, const fe_oai_error_t *e) {
    int rc = fe_oai__puts(b, "{\"error\": {\"message\": ");
    if (!rc) rc = fe_oai__json_cstr(b, e->message);
    if (!rc) rc = fe_oai__puts(b, ", \"type\": ");
    if (!rc) rc = fe_oai__json_cstr(b, e->type ? e->type : "InternalServerError");
    if (!rc) rc = fe_oai__puts(b, ", \"param\": ");
    if (!rc) rc = e->param[0] ? fe_oai__json_cstr(b, e->param) : fe_oai__puts(b, "null");
    if (!rc) rc = fe_oai__printf(b, ", \"code\": %d}}", e->status);
    return rc;
}

int fe_oai_error_chunk(fe_oai_buf_t *b, const fe_oai_error_t *e) {
    int rc = fe_oai__puts(b, "data: ");
    if (!rc) rc = fe_oai_error_json(b, e);
    if (!rc) rc = fe_oai__puts(b, "\n\n");
    return rc;
}

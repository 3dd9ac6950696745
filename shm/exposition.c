/* HTTP-facing helpers of /metrics: Accept negotiation as prometheus_client's
 * choose_encoder, Accept-Encoding gzip detection, gzip compression. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "shm_int.h"

static const char *trim(const char *s, const char *e, const char **end) {
    while (s < e && (*s == ' ' || *s == '\t')) s++;
    while (e > s && (e[-1] == ' ' || e[-1] == '\t')) e--;
    *end = e;
    return s;
}

/* Looks for key=value among the ';' parameters of one Accept entry
 * (tok.strip().split('=', 1) as Python does); copies the value. */
static int param(const char *s, const char *e, const char *key, char *val, size_t vn) {
    const char *p = s;
    while (p < e) {
        const char *q = memchr(p, ';', (size_t)(e - p));
        if (!q) q = e;
        const char *te, *t = trim(p, q, &te);
        const char *eq = memchr(t, '=', (size_t)(te - t));
        if (eq && (size_t)(eq - t) == strlen(key) && !strncmp(t, key, eq - t)) {
            size_t n = (size_t)(te - eq - 1);
            if (n >= vn) n = vn - 1;
            memcpy(val, eq + 1, n);
            val[n] = 0;
            return 1;
        }
        p = q + 1;
    }
    return 0;
}

/* parse_version(v) >= (1, 0, 0) with numeric parts only (a non-numeric part
 * makes Python's comparison raise; we treat it as "not >= 1.0.0"). */
static int version_ge_1(const char *v) {
    long parts[3] = {0, 0, 0};
    int n = 0;
    const char *p = v;
    if (!*p) return 0;
    for (;;) {
        if (*p < '0' || *p > '9') return 0;
        char *end;
        long x = strtol(p, &end, 10);
        if (n < 3) parts[n] = x;
        n++;
        if (*end == 0) break;
        if (*end != '.') return 0;
        p = end + 1;
    }
    for (int i = 0; i < 3; i++) {
        if (i >= n) return 0; /* (1, 0) < (1, 0, 0) */
        if (parts[i] != (i == 0 ? 1 : 0)) return parts[i] > (i == 0 ? 1 : 0);
    }
    return 1;
}

static const char *escaping_of(const char *s, const char *e) {
    char v[32];
    if (!param(s, e, "escaping", v, sizeof v)) return "underscores";
    if (!strcmp(v, "allow-utf-8") || !strcmp(v, "dots") || !strcmp(v, "values")) {
        static const char *const names[] = {"allow-utf-8", "dots", "values"};
        for (int i = 0; i < 3; i++)
            if (!strcmp(v, names[i])) return names[i];
    }
    return "underscores";
}

shm_format_t shm_negotiate(const char *accept, char *ctype, size_t n) {
    const char *p = accept ? accept : "";
    const char *end = p + strlen(p);
    while (p <= end) {
        const char *q = memchr(p, ',', (size_t)(end - p));
        if (!q) q = end;
        const char *semi = memchr(p, ';', (size_t)(q - p));
        const char *mte, *mt = trim(p, semi ? semi : q, &mte);
        size_t ml = (size_t)(mte - mt);
        char ver[32];
        int has_ver = param(p, q, "version", ver, sizeof ver) && ver[0];
        if (ml == 28 && !strncmp(mt, "application/openmetrics-text", 28)) {
            if (!has_ver) {
                snprintf(ctype, n, "application/openmetrics-text; version=1.0.0; charset=utf-8");
                return SHM_FORMAT_OPENMETRICS;
            }
            if (version_ge_1(ver)) {
                snprintf(ctype, n, "application/openmetrics-text; version=%s; charset=utf-8; escaping=%s", ver,
                         escaping_of(p, q));
                return SHM_FORMAT_OPENMETRICS;
            }
        } else if (ml == 10 && !strncmp(mt, "text/plain", 10)) {
            if (has_ver && version_ge_1(ver)) {
                snprintf(ctype, n, "text/plain; version=1.0.0; charset=utf-8; escaping=%s", escaping_of(p, q));
                return SHM_FORMAT_TEXT;
            }
        }
        if (q == end) break;
        p = q + 1;
    }
    snprintf(ctype, n, "text/plain; version=0.0.4; charset=utf-8");
    return SHM_FORMAT_TEXT;
}

int shm_gzip_accepted(const char *ae) {
    const char *p = ae ? ae : "";
    const char *end = p + strlen(p);
    while (p <= end) {
        const char *q = memchr(p, ',', (size_t)(end - p));
        if (!q) q = end;
        const char *semi = memchr(p, ';', (size_t)(q - p));
        const char *te, *t = trim(p, semi ? semi : q, &te);
        if (te - t == 4 && !strncasecmp(t, "gzip", 4)) return 1;
        if (q == end) break;
        p = q + 1;
    }
    return 0;
}

int shm_gzip(const void *in, size_t n, shm_buf_t *out) {
    z_stream z;
    memset(&z, 0, sizeof z);
    if (deflateInit2(&z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) return -ENOMEM;
    size_t bound = deflateBound(&z, (uLong)n) + 32;
    if (shm_buf_reserve(out, bound)) {
        deflateEnd(&z);
        return -ENOMEM;
    }
    z.next_in = (Bytef *)(uintptr_t)in;
    z.avail_in = (uInt)n;
    z.next_out = (Bytef *)out->data + out->len;
    z.avail_out = (uInt)bound;
    int rc = deflate(&z, Z_FINISH);
    if (rc != Z_STREAM_END) {
        deflateEnd(&z);
        return -EIO;
    }
    out->len += z.total_out;
    deflateEnd(&z);
    return 0;
}

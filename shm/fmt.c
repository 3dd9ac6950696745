/* Text formats shared by writer and reader: Python-compatible float
 * formatting (repr + floatToGoString), the JSON key of a file entry
 * (json.dumps with sort_keys and ensure_ascii) and its parser, name checks,
 * label escaping, and the growable buffer.
 *
 * Invariant: keys produced here are byte-identical to prometheus_client's, so
 * a Python process reusing a pid continues our entries instead of adding a
 * second copy of a series. */
#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shm_int.h"

/* --- buffer ---------------------------------------------------------------- */

int shm_buf_reserve(shm_buf_t *b, size_t extra) {
    if (b->len + extra <= b->cap) return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + extra) cap *= 2;
    char *p = realloc(b->data, cap);
    if (!p) return -ENOMEM;
    b->data = p;
    b->cap = cap;
    return 0;
}

int shm_buf_append(shm_buf_t *b, const void *p, size_t n) {
    if (shm_buf_reserve(b, n + 1)) return -ENOMEM;
    memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = 0;
    return 0;
}

void shm_buf_free(shm_buf_t *b) {
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

static int buf_putc(shm_buf_t *b, char c) { return shm_buf_append(b, &c, 1); }
static int buf_puts(shm_buf_t *b, const char *s) { return shm_buf_append(b, s, strlen(s)); }

/* --- floats ----------------------------------------------------------------- */

static const double p10[23] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,  1e8,  1e9,  1e10, 1e11,
                               1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

/* Fast path for the common case: a 15-digit decimal m * 10^(e-14) that
 * round-trips, found without printf. m and 10^k are exact doubles for k <= 22,
 * so m / 10^k is the correctly rounded value of the decimal: if it equals d,
 * the decimal round-trips, and for a normal double at most one 15-digit
 * decimal can (their spacing exceeds the rounding interval), so it is the
 * correctly rounded one printf would give. Returns 0 when not applicable. */
static int fast15(double d, char digits[24], int *exp10) {
    int e = (int)floor(log10(d));
    for (int tries = 0; tries < 3; tries++) {
        int k = 14 - e;
        if (k < 0 || k > 22) return 0;
        double m = nearbyint(d * p10[k]);
        if (m >= 1e15) {
            e++;
            continue;
        }
        if (m < 1e14) {
            e--;
            continue;
        }
        if (m / p10[k] != d) return 0;
        uint64_t u = (uint64_t)m;
        for (int i = 14; i >= 0; i--) {
            digits[i] = (char)('0' + u % 10);
            u /= 10;
        }
        int n = 15;
        while (n > 1 && digits[n - 1] == '0') n--;
        digits[n] = 0;
        *exp10 = e;
        return n;
    }
    return 0;
}

/* Shortest digits that round-trip (Python repr's 'r' mode): *exp10 is the
 * decimal exponent of the first digit. Returns the digit count. */
static int shortest_digits(double d, char digits[24], int *exp10) {
    char tmp[40];
    if (d >= DBL_MIN) {
        int n = fast15(d, digits, exp10);
        if (n) return n;
    }
    if (d < DBL_MIN) {
        /* subnormals carry fewer bits: the shortest may be far below 15
         * digits; round-tripping is monotone in the digit count, so bisect */
        int lo = 1, hi = 17;
        while (lo < hi) {
            int mid = (lo + hi) / 2;
            snprintf(tmp, sizeof tmp, "%.*e", mid - 1, d);
            if (strtod(tmp, NULL) == d) hi = mid;
            else lo = mid + 1;
        }
        snprintf(tmp, sizeof tmp, "%.*e", lo - 1, d);
    } else {
        /* normal doubles: if 15 digits round-trip, the correctly rounded
         * 15-digit string with trailing zeros removed is the shortest */
        for (int prec = 15; prec <= 17; prec++) {
            snprintf(tmp, sizeof tmp, "%.*e", prec - 1, d);
            if (prec == 17 || strtod(tmp, NULL) == d) break;
        }
    }
    /* tmp = "d.ddddde[+-]xx" (d > 0 here) */
    int n = 0;
    const char *p = tmp;
    for (; *p && *p != 'e'; p++)
        if (*p >= '0' && *p <= '9') digits[n++] = *p;
    *exp10 = atoi(p + 1);
    while (n > 1 && digits[n - 1] == '0') n--;
    digits[n] = 0;
    return n;
}

/* Python repr(float) for finite d. Returns length. */
static int py_repr(double d, char *out) {
    char *o = out;
    if (d == 0) return sprintf(out, signbit(d) ? "-0.0" : "0.0");
    if (d == trunc(d) && fabs(d) < 1e16) {
        /* integral: digits by hand (the common case: counts and buckets) */
        uint64_t u = (uint64_t)fabs(d);
        char t[24];
        int n = 0;
        do t[n++] = (char)('0' + u % 10); while (u /= 10);
        char *o0 = out;
        if (d < 0) *o0++ = '-';
        while (n) *o0++ = t[--n];
        memcpy(o0, ".0", 3);
        return (int)(o0 + 2 - out);
    }
    if (d < 0) {
        *o++ = '-';
        d = -d;
    }
    char dg[24];
    int e;
    int n = shortest_digits(d, dg, &e);
    int decpt = e + 1;
    if (decpt <= -4 || decpt > 16) {
        *o++ = dg[0];
        if (n > 1) {
            *o++ = '.';
            memcpy(o, dg + 1, n - 1);
            o += n - 1;
        }
        o += sprintf(o, "e%c%02d", e < 0 ? '-' : '+', e < 0 ? -e : e);
    } else if (decpt <= 0) {
        *o++ = '0';
        *o++ = '.';
        for (int i = 0; i < -decpt; i++) *o++ = '0';
        memcpy(o, dg, n);
        o += n;
    } else if (decpt >= n) {
        memcpy(o, dg, n);
        o += n;
        for (int i = n; i < decpt; i++) *o++ = '0';
        *o++ = '.';
        *o++ = '0';
    } else {
        memcpy(o, dg, decpt);
        o += decpt;
        *o++ = '.';
        memcpy(o, dg + decpt, n - decpt);
        o += n - decpt;
    }
    *o = 0;
    return (int)(o - out);
}

int shm_format_double(double d, char *buf) {
    if (isnan(d)) return sprintf(buf, "NaN");
    if (isinf(d)) return sprintf(buf, d > 0 ? "+Inf" : "-Inf");
    char s[40];
    int n = py_repr(d, s);
    const char *dotp = strchr(s, '.');
    int dot = dotp ? (int)(dotp - s) : -1;
    if (d > 0 && dot > 6) {
        /* Go switches to exponents sooner: mantissa = s[0] . s[1:dot] s[dot+1:], rstrip('0.') */
        char m[48];
        int k = 0;
        m[k++] = s[0];
        m[k++] = '.';
        memcpy(m + k, s + 1, dot - 1);
        k += dot - 1;
        memcpy(m + k, s + dot + 1, n - dot - 1);
        k += n - dot - 1;
        while (k > 0 && (m[k - 1] == '0' || m[k - 1] == '.')) k--;
        m[k] = 0;
        return sprintf(buf, "%se+%02d", m, dot - 1);
    }
    memcpy(buf, s, n + 1);
    return n;
}

/* --- UTF-8 ------------------------------------------------------------------- */

/* Decodes one code point at s[*i] (n bytes total); returns it or -1. */
static long utf8_next(const unsigned char *s, size_t n, size_t *i) {
    unsigned c = s[*i];
    if (c < 0x80) {
        (*i)++;
        return c;
    }
    int len;
    long cp, min;
    if ((c & 0xe0) == 0xc0) len = 2, cp = c & 0x1f, min = 0x80;
    else if ((c & 0xf0) == 0xe0) len = 3, cp = c & 0x0f, min = 0x800;
    else if ((c & 0xf8) == 0xf0) len = 4, cp = c & 0x07, min = 0x10000;
    else return -1;
    if (*i + len > n) return -1;
    for (int k = 1; k < len; k++) {
        unsigned cc = s[*i + k];
        if ((cc & 0xc0) != 0x80) return -1;
        cp = (cp << 6) | (cc & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return -1;
    *i += len;
    return cp;
}

bool shm__valid_utf8(const char *s, size_t n) {
    size_t i = 0;
    while (i < n)
        if (utf8_next((const unsigned char *)s, n, &i) < 0) return false;
    return true;
}

static int put_utf8(shm_buf_t *b, long cp) {
    char t[4];
    int n;
    if (cp < 0x80) t[0] = (char)cp, n = 1;
    else if (cp < 0x800) t[0] = (char)(0xc0 | (cp >> 6)), t[1] = (char)(0x80 | (cp & 0x3f)), n = 2;
    else if (cp < 0x10000)
        t[0] = (char)(0xe0 | (cp >> 12)), t[1] = (char)(0x80 | ((cp >> 6) & 0x3f)),
        t[2] = (char)(0x80 | (cp & 0x3f)), n = 3;
    else
        t[0] = (char)(0xf0 | (cp >> 18)), t[1] = (char)(0x80 | ((cp >> 12) & 0x3f)),
        t[2] = (char)(0x80 | ((cp >> 6) & 0x3f)), t[3] = (char)(0x80 | (cp & 0x3f)), n = 4;
    return shm_buf_append(b, t, n);
}

/* --- JSON keys ----------------------------------------------------------------- */

int shm__json_escape(shm_buf_t *out, const char *s, size_t n) {
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;
    if (shm_buf_reserve(out, n + 8)) return -ENOMEM;
    while (i < n) {
        /* fast run of plain printable ASCII */
        size_t j = i;
        while (j < n && u[j] >= 0x20 && u[j] < 0x7f && u[j] != '"' && u[j] != '\\') j++;
        if (j > i && shm_buf_append(out, s + i, j - i)) return -ENOMEM;
        i = j;
        if (i >= n) break;
        long cp = utf8_next(u, n, &i);
        if (cp < 0) return SHM_EBADLABELS;
        char e[32];
        switch (cp) {
        case '"': strcpy(e, "\\\""); break;
        case '\\': strcpy(e, "\\\\"); break;
        case '\n': strcpy(e, "\\n"); break;
        case '\r': strcpy(e, "\\r"); break;
        case '\t': strcpy(e, "\\t"); break;
        case '\b': strcpy(e, "\\b"); break;
        case '\f': strcpy(e, "\\f"); break;
        default:
            if (cp >= 0x10000) {
                long v = cp - 0x10000;
                snprintf(e, sizeof e, "\\u%04lx\\u%04lx", 0xd800 + (v >> 10), 0xdc00 + (v & 0x3ff));
            } else {
                snprintf(e, sizeof e, "\\u%04lx", cp);
            }
        }
        if (buf_puts(out, e)) return -ENOMEM;
    }
    return 0;
}

static int json_str(shm_buf_t *out, const char *s) {
    int rc;
    if ((rc = buf_putc(out, '"')) || (rc = shm__json_escape(out, s, strlen(s))) ||
        (rc = buf_putc(out, '"')))
        return rc;
    return 0;
}

int shm__json_key(shm_buf_t *out, const char *family, const char *sample,
                  const char *const *names, const char *const *values, size_t n,
                  const char *help) {
    /* sort label indices by name (byte order of UTF-8 == code point order) */
    size_t idx[64];
    if (n > 64) return SHM_EBADLABELS;
    for (size_t i = 0; i < n; i++) {
        size_t j = i;
        while (j > 0 && strcmp(names[idx[j - 1]], names[i]) > 0) {
            idx[j] = idx[j - 1];
            j--;
        }
        idx[j] = i;
    }
    int rc;
    if ((rc = buf_putc(out, '[')) || (rc = json_str(out, family)) || (rc = buf_puts(out, ", ")) ||
        (rc = json_str(out, sample)) || (rc = buf_puts(out, ", {")))
        return rc;
    for (size_t k = 0; k < n; k++) {
        if (k && (rc = buf_puts(out, ", "))) return rc;
        if ((rc = json_str(out, names[idx[k]])) || (rc = buf_puts(out, ": ")) ||
            (rc = json_str(out, values[idx[k]])))
            return rc;
    }
    if ((rc = buf_puts(out, "}, ")) || (rc = json_str(out, help)) || (rc = buf_putc(out, ']')))
        return rc;
    return 0;
}

/* --- JSON key parser ------------------------------------------------------------ */

typedef struct {
    const char *p, *end;
} jp_t;

static void jp_ws(jp_t *j) {
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r')) j->p++;
}

static bool jp_lit(jp_t *j, char c) {
    jp_ws(j);
    if (j->p < j->end && *j->p == c) {
        j->p++;
        return true;
    }
    return false;
}

static int hex4(const char *p, const char *end) {
    if (end - p < 4) return -1;
    int v = 0;
    for (int k = 0; k < 4; k++) {
        char c = p[k];
        v <<= 4;
        if (c >= '0' && c <= '9') v |= c - '0';
        else if (c >= 'a' && c <= 'f') v |= c - 'a' + 10;
        else if (c >= 'A' && c <= 'F') v |= c - 'A' + 10;
        else return -1;
    }
    return v;
}

/* Parses a JSON string into the arena; returns its offset in the arena, or -1. */
static long jp_str(jp_t *j, shm_buf_t *a) {
    jp_ws(j);
    if (j->p >= j->end || *j->p != '"') return -1;
    j->p++;
    long off = (long)a->len;
    while (j->p < j->end) {
        const char *s = j->p;
        while (j->p < j->end && *j->p != '"' && *j->p != '\\' && (unsigned char)*j->p >= 0x20) j->p++;
        if (j->p > s) {
            if (!shm__valid_utf8(s, j->p - s) || shm_buf_append(a, s, j->p - s)) return -1;
        }
        if (j->p >= j->end) return -1;
        char c = *j->p++;
        if (c == '"') {
            if (buf_putc(a, 0)) return -1;
            return off;
        }
        if (c != '\\' || j->p >= j->end) return -1;
        char e = *j->p++;
        long cp;
        switch (e) {
        case '"': cp = '"'; break;
        case '\\': cp = '\\'; break;
        case '/': cp = '/'; break;
        case 'b': cp = '\b'; break;
        case 'f': cp = '\f'; break;
        case 'n': cp = '\n'; break;
        case 'r': cp = '\r'; break;
        case 't': cp = '\t'; break;
        case 'u': {
            int h = hex4(j->p, j->end);
            if (h < 0) return -1;
            j->p += 4;
            cp = h;
            if (h >= 0xd800 && h <= 0xdbff) {
                if (j->end - j->p < 6 || j->p[0] != '\\' || j->p[1] != 'u') return -1;
                int l = hex4(j->p + 2, j->end);
                if (l < 0xdc00 || l > 0xdfff) return -1;
                j->p += 6;
                cp = 0x10000 + ((long)(h - 0xd800) << 10) + (l - 0xdc00);
            } else if (h >= 0xdc00 && h <= 0xdfff) {
                return -1; /* lone low surrogate: not encodable as UTF-8 */
            }
            if (cp == 0) return -1; /* NUL cannot live in a C string */
            break;
        }
        default: return -1;
        }
        if (put_utf8(a, cp)) return -1;
    }
    return -1;
}

int shm__json_key_parse(const char *p, size_t n, shm_buf_t *a, shm_key_t *out) {
    jp_t j = {p, p + n};
    long off[3 + 2 * 64 + 1];
    uint32_t nl = 0;
    a->len = 0;
    if (!jp_lit(&j, '[')) return SHM_ECORRUPT;
    if ((off[0] = jp_str(&j, a)) < 0 || !jp_lit(&j, ',')) return SHM_ECORRUPT;
    if ((off[1] = jp_str(&j, a)) < 0 || !jp_lit(&j, ',')) return SHM_ECORRUPT;
    if (!jp_lit(&j, '{')) return SHM_ECORRUPT;
    if (!jp_lit(&j, '}')) {
        for (;;) {
            if (nl >= 64) return SHM_ECORRUPT;
            if ((off[3 + 2 * nl] = jp_str(&j, a)) < 0 || !jp_lit(&j, ':')) return SHM_ECORRUPT;
            if ((off[4 + 2 * nl] = jp_str(&j, a)) < 0) return SHM_ECORRUPT;
            nl++;
            if (jp_lit(&j, '}')) break;
            if (!jp_lit(&j, ',')) return SHM_ECORRUPT;
        }
    }
    if (!jp_lit(&j, ',') || (off[2] = jp_str(&j, a)) < 0 || !jp_lit(&j, ']')) return SHM_ECORRUPT;
    jp_ws(&j);
    if (j.p != j.end) return SHM_ECORRUPT;
    /* pointer arrays after the strings, aligned */
    size_t align = (8 - a->len % 8) % 8;
    if (shm_buf_reserve(a, align + 2 * nl * sizeof(char *) + 8)) return -ENOMEM;
    a->len += align;
    const char **ptrs = (const char **)(a->data + a->len);
    a->len += 2 * nl * sizeof(char *);
    out->family = a->data + off[0];
    out->sample = a->data + off[1];
    out->help = a->data + off[2];
    out->n_labels = nl;
    out->lname = ptrs;
    out->lvalue = ptrs + nl;
    for (uint32_t k = 0; k < nl; k++) {
        ptrs[k] = a->data + off[3 + 2 * k];
        ptrs[nl + k] = a->data + off[4 + 2 * k];
    }
    return 0;
}

/* --- names and escaping ------------------------------------------------------------ */

static bool name_ok(const char *s, bool colon) {
    if (!*s) return false;
    for (size_t i = 0; s[i]; i++) {
        char c = s[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
                  (c >= '0' && c <= '9' && i > 0) || (colon && c == ':');
        if (!ok) return false;
    }
    return true;
}

bool shm__valid_metric_name(const char *s) { return name_ok(s, true); }

bool shm__valid_label_name(const char *s) { return name_ok(s, false) && strncmp(s, "__", 2) != 0; }

int shm__escape_label_value(shm_buf_t *out, const char *s, size_t n) {
    if (shm_buf_reserve(out, n + 1)) return -ENOMEM;
    size_t i = 0;
    while (i < n) {
        size_t j = i;
        while (j < n && s[j] != '\\' && s[j] != '\n' && s[j] != '"') j++;
        if (j > i && shm_buf_append(out, s + i, j - i)) return -ENOMEM;
        if (j >= n) break;
        const char *e = s[j] == '\\' ? "\\\\" : s[j] == '\n' ? "\\n" : "\\\"";
        if (shm_buf_append(out, e, 2)) return -ENOMEM;
        i = j + 1;
    }
    return 0;
}

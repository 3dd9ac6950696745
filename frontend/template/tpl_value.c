/* tpl_value: the interpreter's value type and its Python-compatible text forms.
 *
 * Values mirror the Python objects jinja2 would see after json.loads: None,
 * bool, int (int64 here), float, str, list (tuples flagged), dict (insertion
 * ordered). str()/repr() and json.dumps output follow CPython byte for byte
 * for these types, including repr(float)'s shortest round-trip digits and its
 * switch to exponent notation. All memory comes from an arena.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tpl_int.h"

// --- arena ------------------------------------------------------------------

struct tpl__chunk {
    tpl__chunk_t *next;
    size_t used, cap;
    _Alignas(16) unsigned char mem[];
};

void *tpl__alloc(tpl__arena_t *a, size_t n)
{
    n = (n + 15) & ~(size_t)15;
    if (n == 0)
        n = 16;
    tpl__chunk_t *c = a->head;
    if (!c || c->cap - c->used < n) {
        size_t cap = n > 65536 ? n : 65536;
        c = malloc(sizeof(*c) + cap);
        if (!c)
            longjmp(*a->oom, -ENOMEM);
        c->cap = cap;
        c->used = 0;
        c->next = a->head;
        a->head = c;
    }
    void *p = c->mem + c->used;
    c->used += n;
    memset(p, 0, n);
    return p;
}

void tpl__arena_free(tpl__arena_t *a)
{
    while (a->head) {
        tpl__chunk_t *n = a->head->next;
        free(a->head);
        a->head = n;
    }
}

char *tpl__strndup(tpl__arena_t *a, const char *s, size_t n)
{
    char *p = tpl__alloc(a, n + 1);
    if (n)
        memcpy(p, s, n);
    return p;
}

// --- string builder ------------------------------------------------------------


void tpl__sb_add(tpl__sb_t *b, const char *s, size_t n)
{
    if (n > TPL__MAX_STR || b->n + n > TPL__MAX_STR)
        longjmp(*b->a->oom, -ENOMEM);
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 64;
        while (cap < b->n + n + 1)
            cap *= 2;
        char *p = tpl__alloc(b->a, cap);
        if (b->n)
            memcpy(p, b->p, b->n);
        b->p = p;
        b->cap = cap;
    }
    if (n)
        memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
}

void tpl__sb_addc(tpl__sb_t *b, char c)
{
    tpl__sb_add(b, &c, 1);
}

void tpl__sb_addz(tpl__sb_t *b, const char *s)
{
    tpl__sb_add(b, s, strlen(s));
}

// --- constructors ---------------------------------------------------------------

tv_t tpl__undef(const char *name)
{
    tv_t v = {.type = TV_UNDEF};
    v.u.s.p = name;
    return v;
}

tv_t tpl__none(void)
{
    return (tv_t){.type = TV_NONE};
}

tv_t tpl__bool(bool b)
{
    tv_t v = {.type = TV_BOOL};
    v.u.i = b;
    return v;
}

tv_t tpl__int(int64_t i)
{
    tv_t v = {.type = TV_INT};
    v.u.i = i;
    return v;
}

tv_t tpl__float(double f)
{
    tv_t v = {.type = TV_FLOAT};
    v.u.f = f;
    return v;
}

tv_t tpl__str(const char *p, size_t n)
{
    tv_t v = {.type = TV_STR};
    v.u.s.p = p ? p : "";
    v.u.s.n = n;
    return v;
}

tv_t tpl__strz(const char *p)
{
    return tpl__str(p, strlen(p));
}

tv_t tpl__list_new(tpl__arena_t *a, size_t cap)
{
    tv_t v = {.type = TV_LIST};
    v.u.l = tpl__alloc(a, sizeof(tpl__list_t));
    if (cap) {
        v.u.l->v = tpl__alloc(a, cap * sizeof(tv_t));
        v.u.l->cap = cap;
    }
    return v;
}

tv_t tpl__dict_new(tpl__arena_t *a, size_t cap)
{
    tv_t v = {.type = TV_DICT};
    v.u.d = tpl__alloc(a, sizeof(tpl__dict_t));
    if (cap) {
        v.u.d->k = tpl__alloc(a, cap * sizeof(tv_t));
        v.u.d->v = tpl__alloc(a, cap * sizeof(tv_t));
        v.u.d->cap = cap;
    }
    return v;
}

void tpl__list_push(tpl__arena_t *a, tv_t list, tv_t v)
{
    tpl__list_t *l = list.u.l;
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 4;
        tv_t *nv = tpl__alloc(a, cap * sizeof(tv_t));
        if (l->n)
            memcpy(nv, l->v, l->n * sizeof(tv_t));
        l->v = nv;
        l->cap = cap;
    }
    l->v[l->n++] = v;
}

static long dict_find(const tpl__dict_t *d, tv_t k)
{
    for (size_t i = 0; i < d->n; i++)
        if (tpl__equal(d->k[i], k))
            return (long)i;
    return -1;
}

void tpl__dict_set(tpl__arena_t *a, tv_t dict, tv_t k, tv_t v)
{
    tpl__dict_t *d = dict.u.d;
    long i = dict_find(d, k);
    if (i >= 0) { /* Python keeps the first insertion position */
        d->v[i] = v;
        return;
    }
    if (d->n == d->cap) {
        size_t cap = d->cap ? d->cap * 2 : 4;
        tv_t *nk = tpl__alloc(a, cap * sizeof(tv_t));
        tv_t *nv = tpl__alloc(a, cap * sizeof(tv_t));
        if (d->n) {
            memcpy(nk, d->k, d->n * sizeof(tv_t));
            memcpy(nv, d->v, d->n * sizeof(tv_t));
        }
        d->k = nk;
        d->v = nv;
        d->cap = cap;
    }
    d->k[d->n] = k;
    d->v[d->n++] = v;
}

bool tpl__dict_get(tv_t dict, tv_t k, tv_t *out)
{
    long i = dict_find(dict.u.d, k);
    if (i < 0)
        return false;
    *out = dict.u.d->v[i];
    return true;
}

bool tpl__dict_getz(tv_t dict, const char *k, tv_t *out)
{
    return tpl__dict_get(dict, tpl__strz(k), out);
}

// --- Python semantics ---------------------------------------------------------------

bool tpl__truthy(tv_t v)
{
    switch (v.type) {
    case TV_UNDEF:
    case TV_NONE: return false;
    case TV_BOOL:
    case TV_INT: return v.u.i != 0;
    case TV_FLOAT: return v.u.f != 0.0;
    case TV_STR: return v.u.s.n != 0;
    case TV_LIST: return v.u.l->n != 0;
    case TV_DICT: return v.flags & TVF_NAMESPACE ? true : v.u.d->n != 0;
    default: return true;
    }
}

bool tpl__is_num(tv_t v)
{
    return v.type == TV_BOOL || v.type == TV_INT || v.type == TV_FLOAT;
}

double tpl__num(tv_t v)
{
    return v.type == TV_FLOAT ? v.u.f : (double)v.u.i;
}

bool tpl__equal(tv_t a, tv_t b)
{
    if (tpl__is_num(a) && tpl__is_num(b)) {
        if (a.type != TV_FLOAT && b.type != TV_FLOAT)
            return a.u.i == b.u.i;
        return tpl__num(a) == tpl__num(b);
    }
    if (a.type != b.type)
        return false;
    switch (a.type) {
    case TV_UNDEF:
    case TV_NONE: return true;
    case TV_STR: return a.u.s.n == b.u.s.n && memcmp(a.u.s.p, b.u.s.p, a.u.s.n) == 0;
    case TV_LIST:
        if ((a.flags & TVF_TUPLE) != (b.flags & TVF_TUPLE) || a.u.l->n != b.u.l->n)
            return false;
        for (size_t i = 0; i < a.u.l->n; i++)
            if (!tpl__equal(a.u.l->v[i], b.u.l->v[i]))
                return false;
        return true;
    case TV_DICT:
        if (a.flags & TVF_NAMESPACE || b.flags & TVF_NAMESPACE)
            return a.u.d == b.u.d;
        if (a.u.d->n != b.u.d->n)
            return false;
        for (size_t i = 0; i < a.u.d->n; i++) {
            tv_t o;
            if (!tpl__dict_get(b, a.u.d->k[i], &o) || !tpl__equal(a.u.d->v[i], o))
                return false;
        }
        return true;
    case TV_FUNC: return a.u.fn.builtin == b.u.fn.builtin && a.u.fn.macro == b.u.fn.macro;
    default: return false;
    }
}

const char *tpl__type_name(tv_t v)
{
    switch (v.type) {
    case TV_UNDEF: return "Undefined";
    case TV_NONE: return "NoneType";
    case TV_BOOL: return "bool";
    case TV_INT: return "int";
    case TV_FLOAT: return "float";
    case TV_STR: return "str";
    case TV_LIST: return v.flags & TVF_TUPLE ? "tuple" : "list";
    case TV_DICT: return v.flags & TVF_NAMESPACE ? "Namespace" : "dict";
    default: return "function";
    }
}

// --- text forms ------------------------------------------------------------------------

void tpl__fmt_float(tpl__sb_t *b, double f)
{
    if (isnan(f)) {
        tpl__sb_addz(b, "nan");
        return;
    }
    if (isinf(f)) {
        tpl__sb_addz(b, f < 0 ? "-inf" : "inf");
        return;
    }
    /* Shortest %.Ne that round-trips gives repr's digits and exponent. */
    char e[40];
    for (int prec = 0; prec < 17; prec++) {
        snprintf(e, sizeof e, "%.*e", prec, f);
        if (strtod(e, NULL) == f)
            break;
    }
    char digits[24];
    int nd = 0;
    const char *p = e;
    bool neg = false;
    if (*p == '-') {
        neg = true;
        p++;
    }
    for (; *p && *p != 'e'; p++)
        if (*p >= '0' && *p <= '9')
            digits[nd++] = *p;
    int exp = atoi(p + 1);
    while (nd > 1 && digits[nd - 1] == '0')
        nd--;
    char out[64];
    int o = 0;
    if (neg)
        out[o++] = '-';
    if (exp < -4 || exp >= 16) {
        out[o++] = digits[0];
        if (nd > 1) {
            out[o++] = '.';
            for (int i = 1; i < nd; i++)
                out[o++] = digits[i];
        }
        o += snprintf(out + o, sizeof out - (size_t)o, "e%c%02d", exp < 0 ? '-' : '+',
                      exp < 0 ? -exp : exp);
    } else if (exp < 0) {
        out[o++] = '0';
        out[o++] = '.';
        for (int i = 0; i < -exp - 1; i++)
            out[o++] = '0';
        for (int i = 0; i < nd; i++)
            out[o++] = digits[i];
    } else {
        for (int i = 0; i <= exp; i++)
            out[o++] = i < nd ? digits[i] : '0';
        out[o++] = '.';
        if (nd > exp + 1)
            for (int i = exp + 1; i < nd; i++)
                out[o++] = digits[i];
        else
            out[o++] = '0';
    }
    tpl__sb_add(b, out, (size_t)o);
}

/* Decode one UTF-8 sequence at s (n bytes left); returns its length (1 for a
 * stray byte) and the code point in *cp. */
static size_t utf8_dec(const unsigned char *s, size_t n, unsigned *cp)
{
    unsigned c = s[0];
    size_t len = c < 0x80 ? 1 : c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc0 ? 2 : 1;
    if (len > n)
        len = 1;
    if (len == 1) {
        *cp = c;
        return 1;
    }
    unsigned v = c & (0x7f >> len);
    for (size_t i = 1; i < len; i++)
        v = (v << 6) | (s[i] & 0x3f);
    *cp = v;
    return len;
}

/* Python's str.isprintable() for the code points chat text realistically
 * contains: C0/C1 controls, a few format and separator characters. */
static bool py_printable(unsigned cp)
{
    if (cp < 0x20 || (cp >= 0x7f && cp <= 0xa0) || cp == 0xad)
        return false;
    if ((cp >= 0x200b && cp <= 0x200f) || (cp >= 0x2028 && cp <= 0x202e) ||
        (cp >= 0x2060 && cp <= 0x2064) || cp == 0xfeff || cp == 0x3000 ||
        (cp >= 0x2000 && cp <= 0x200a) || cp == 0x1680 || cp == 0x205f)
        return false;
    return true;
}

static void repr_str(tpl__sb_t *b, const char *p, size_t n)
{
    bool has_sq = memchr(p, '\'', n) != NULL, has_dq = memchr(p, '"', n) != NULL;
    char q = has_sq && !has_dq ? '"' : '\'';
    tpl__sb_addc(b, q);
    const unsigned char *s = (const unsigned char *)p;
    for (size_t i = 0; i < n;) {
        unsigned cp;
        size_t l = utf8_dec(s + i, n - i, &cp);
        char esc[16];
        if (cp == (unsigned char)q || cp == '\\') {
            tpl__sb_addc(b, '\\');
            tpl__sb_addc(b, (char)cp);
        } else if (cp == '\n') {
            tpl__sb_addz(b, "\\n");
        } else if (cp == '\r') {
            tpl__sb_addz(b, "\\r");
        } else if (cp == '\t') {
            tpl__sb_addz(b, "\\t");
        } else if (!py_printable(cp)) {
            snprintf(esc, sizeof esc, cp < 0x100 ? "\\x%02x" : "\\u%04x", cp);
            tpl__sb_addz(b, esc);
        } else {
            tpl__sb_add(b, p + i, l);
        }
        i += l;
    }
    tpl__sb_addc(b, q);
}

/* A namespace can contain itself ({% set ns.me = ns %}). As CPython does,
 * repr prints "[...]" / "{...}" for a container already being printed, and
 * json.dumps fails on a circular reference. `path` holds the containers on
 * the way down; depth is also bounded to protect the stack. */
enum { MAX_NEST = 256 };

typedef struct {
    const void *p[MAX_NEST + 1];
    int n;
} path_t;

static bool on_path(const path_t *path, const void *c)
{
    for (int i = 0; i < path->n; i++)
        if (path->p[i] == c)
            return true;
    return false;
}

static void repr_rec(tpl__sb_t *b, tv_t v, path_t *path);

void tpl__repr_of(tpl__sb_t *b, tv_t v)
{
    path_t *path = tpl__alloc(b->a, sizeof(path_t));
    repr_rec(b, v, path);
}

static void repr_container(tpl__sb_t *b, tv_t v, path_t *path)
{
    switch (v.type) {
    case TV_LIST: {
        bool tup = v.flags & TVF_TUPLE;
        tpl__sb_addc(b, tup ? '(' : '[');
        for (size_t i = 0; i < v.u.l->n; i++) {
            if (i)
                tpl__sb_addz(b, ", ");
            repr_rec(b, v.u.l->v[i], path);
        }
        if (tup && v.u.l->n == 1)
            tpl__sb_addc(b, ',');
        tpl__sb_addc(b, tup ? ')' : ']');
        return;
    }
    case TV_DICT:
        if (v.flags & TVF_NAMESPACE) {
            tpl__sb_addz(b, "<Namespace {");
        } else {
            tpl__sb_addc(b, '{');
        }
        for (size_t i = 0; i < v.u.d->n; i++) {
            if (i)
                tpl__sb_addz(b, ", ");
            repr_rec(b, v.u.d->k[i], path);
            tpl__sb_addz(b, ": ");
            repr_rec(b, v.u.d->v[i], path);
        }
        tpl__sb_addz(b, v.flags & TVF_NAMESPACE ? "}>" : "}");
        return;
    default: return;
    }
}

static void repr_rec(tpl__sb_t *b, tv_t v, path_t *path)
{
    if (v.type == TV_LIST || v.type == TV_DICT) {
        const void *c = v.type == TV_LIST ? (const void *)v.u.l : (const void *)v.u.d;
        if (on_path(path, c) || path->n >= MAX_NEST) {
            tpl__sb_addz(b, v.type == TV_LIST ? (v.flags & TVF_TUPLE ? "(...)" : "[...]")
                            : v.flags & TVF_NAMESPACE ? "<Namespace {...}>"
                                                      : "{...}");
            return;
        }
        path->p[path->n++] = c;
        repr_container(b, v, path);
        path->n--;
        return;
    }
    switch (v.type) {
    case TV_UNDEF: tpl__sb_addz(b, "Undefined"); return;
    case TV_STR: repr_str(b, v.u.s.p, v.u.s.n); return;
    default: tpl__str_of(b, v);
    }
}

void tpl__str_of(tpl__sb_t *b, tv_t v)
{
    char tmp[32];
    switch (v.type) {
    case TV_UNDEF: return;
    case TV_NONE: tpl__sb_addz(b, "None"); return;
    case TV_BOOL: tpl__sb_addz(b, v.u.i ? "True" : "False"); return;
    case TV_INT:
        snprintf(tmp, sizeof tmp, "%lld", (long long)v.u.i);
        tpl__sb_addz(b, tmp);
        return;
    case TV_FLOAT: tpl__fmt_float(b, v.u.f); return;
    case TV_STR: tpl__sb_add(b, v.u.s.p, v.u.s.n); return;
    case TV_FUNC: tpl__sb_addz(b, "<function>"); return;
    default: tpl__repr_of(b, v);
    }
}

// --- JSON out (json.dumps, ensure_ascii=False) ------------------------------------------

static void json_str(tpl__sb_t *b, const char *p, size_t n)
{
    tpl__sb_addc(b, '"');
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        char esc[8];
        switch (c) {
        case '"': tpl__sb_addz(b, "\\\""); break;
        case '\\': tpl__sb_addz(b, "\\\\"); break;
        case '\n': tpl__sb_addz(b, "\\n"); break;
        case '\r': tpl__sb_addz(b, "\\r"); break;
        case '\t': tpl__sb_addz(b, "\\t"); break;
        case '\b': tpl__sb_addz(b, "\\b"); break;
        case '\f': tpl__sb_addz(b, "\\f"); break;
        default:
            if (c < 0x20) {
                snprintf(esc, sizeof esc, "\\u%04x", c);
                tpl__sb_addz(b, esc);
            } else {
                tpl__sb_addc(b, (char)c);
            }
        }
    }
    tpl__sb_addc(b, '"');
}

typedef struct {
    const char *unit; /* NULL: no indentation */
    size_t n;
    bool sort;
    path_t *path; /* containers being encoded, for the circular check */
} json_fmt_t;

static void json_nl(tpl__sb_t *b, const json_fmt_t *fmt, int depth)
{
    tpl__sb_addc(b, '\n');
    for (int i = 0; i < depth; i++)
        tpl__sb_add(b, fmt->unit, fmt->n);
}

static int key_cmp(const void *x, const void *y)
{
    const tv_t *a = *(const tv_t *const *)x, *b = *(const tv_t *const *)y;
    size_t n = a->u.s.n < b->u.s.n ? a->u.s.n : b->u.s.n;
    int c = memcmp(a->u.s.p, b->u.s.p, n);
    return c ? c : (a->u.s.n > b->u.s.n) - (a->u.s.n < b->u.s.n);
}

static bool to_json_inner(tpl__sb_t *b, tv_t v, const json_fmt_t *fmt, int depth);

static bool to_json(tpl__sb_t *b, tv_t v, const json_fmt_t *fmt, int depth)
{
    if (v.type != TV_LIST && v.type != TV_DICT)
        return to_json_inner(b, v, fmt, depth);
    const void *c = v.type == TV_LIST ? (const void *)v.u.l : (const void *)v.u.d;
    path_t *path = fmt->path;
    if (on_path(path, c) || path->n >= MAX_NEST)
        return false; /* ValueError: Circular reference detected */
    path->p[path->n++] = c;
    bool ok = to_json_inner(b, v, fmt, depth);
    path->n--;
    return ok;
}

static bool to_json_inner(tpl__sb_t *b, tv_t v, const json_fmt_t *fmt, int depth)
{
    char tmp[32];
    switch (v.type) {
    case TV_NONE: tpl__sb_addz(b, "null"); return true;
    case TV_BOOL: tpl__sb_addz(b, v.u.i ? "true" : "false"); return true;
    case TV_INT:
        snprintf(tmp, sizeof tmp, "%lld", (long long)v.u.i);
        tpl__sb_addz(b, tmp);
        return true;
    case TV_FLOAT:
        if (isnan(v.u.f))
            tpl__sb_addz(b, "NaN");
        else if (isinf(v.u.f))
            tpl__sb_addz(b, v.u.f < 0 ? "-Infinity" : "Infinity");
        else
            tpl__fmt_float(b, v.u.f);
        return true;
    case TV_STR: json_str(b, v.u.s.p, v.u.s.n); return true;
    case TV_LIST:
        if (v.u.l->n == 0) {
            tpl__sb_addz(b, "[]");
            return true;
        }
        tpl__sb_addc(b, '[');
        for (size_t i = 0; i < v.u.l->n; i++) {
            if (i)
                tpl__sb_addz(b, fmt->unit ? "," : ", ");
            if (fmt->unit)
                json_nl(b, fmt, depth + 1);
            if (!to_json(b, v.u.l->v[i], fmt, depth + 1))
                return false;
        }
        if (fmt->unit)
            json_nl(b, fmt, depth);
        tpl__sb_addc(b, ']');
        return true;
    case TV_DICT: {
        if (v.flags & TVF_NAMESPACE)
            return false;
        size_t n = v.u.d->n;
        if (n == 0) {
            tpl__sb_addz(b, "{}");
            return true;
        }
        const tv_t **order = tpl__alloc(b->a, n * sizeof(*order));
        /* json.dumps turns int/float/bool/None keys into strings */
        tv_t *keys = tpl__alloc(b->a, n * sizeof(tv_t));
        for (size_t i = 0; i < n; i++) {
            tv_t k = v.u.d->k[i];
            if (k.type != TV_STR) {
                tpl__sb_t kb = {.a = b->a};
                tpl__sb_add(&kb, "", 0);
                if (k.type == TV_BOOL)
                    tpl__sb_addz(&kb, k.u.i ? "true" : "false");
                else if (k.type == TV_NONE)
                    tpl__sb_addz(&kb, "null");
                else if (k.type == TV_INT || k.type == TV_FLOAT)
                    to_json(&kb, k, fmt, 0);
                else
                    return false;
                k = tpl__str(kb.p, kb.n);
            }
            keys[i] = k;
            order[i] = &keys[i];
        }
        if (fmt->sort)
            qsort(order, n, sizeof(*order), key_cmp);
        tpl__sb_addc(b, '{');
        for (size_t i = 0; i < n; i++) {
            size_t idx = (size_t)(order[i] - keys);
            if (i)
                tpl__sb_addz(b, fmt->unit ? "," : ", ");
            if (fmt->unit)
                json_nl(b, fmt, depth + 1);
            json_str(b, order[i]->u.s.p, order[i]->u.s.n);
            tpl__sb_addz(b, ": ");
            if (!to_json(b, v.u.d->v[idx], fmt, depth + 1))
                return false;
        }
        if (fmt->unit)
            json_nl(b, fmt, depth);
        tpl__sb_addc(b, '}');
        return true;
    }
    default: return false;
    }
}

bool tpl__to_json(tpl__sb_t *b, tv_t v, const char *indent, size_t indent_n, bool sort_keys)
{
    json_fmt_t fmt = {.unit = indent, .n = indent_n, .sort = sort_keys,
                      .path = tpl__alloc(b->a, sizeof(path_t))};
    return to_json(b, v, &fmt, 0);
}

// --- JSON in (json.loads) -------------------------------------------------------------

typedef struct {
    tpl__arena_t *a;
    const char *s, *end;
    const char *err;
    int depth;
} jp_t;

static void jp_ws(jp_t *j)
{
    while (j->s < j->end && (*j->s == ' ' || *j->s == '\t' || *j->s == '\n' || *j->s == '\r'))
        j->s++;
}

static void put_utf8(tpl__sb_t *b, unsigned cp)
{
    char o[4];
    if (cp < 0x80) {
        o[0] = (char)cp;
        tpl__sb_add(b, o, 1);
    } else if (cp < 0x800) {
        o[0] = (char)(0xc0 | (cp >> 6));
        o[1] = (char)(0x80 | (cp & 0x3f));
        tpl__sb_add(b, o, 2);
    } else if (cp < 0x10000) {
        o[0] = (char)(0xe0 | (cp >> 12));
        o[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        o[2] = (char)(0x80 | (cp & 0x3f));
        tpl__sb_add(b, o, 3);
    } else {
        o[0] = (char)(0xf0 | (cp >> 18));
        o[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
        o[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
        o[3] = (char)(0x80 | (cp & 0x3f));
        tpl__sb_add(b, o, 4);
    }
}

static int hex4(const char *s, const char *end)
{
    if (end - s < 4)
        return -1;
    int v = 0;
    for (int i = 0; i < 4; i++) {
        char c = s[i];
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= c - '0';
        else if (c >= 'a' && c <= 'f')
            v |= c - 'a' + 10;
        else if (c >= 'A' && c <= 'F')
            v |= c - 'A' + 10;
        else
            return -1;
    }
    return v;
}

static bool jp_string(jp_t *j, tv_t *out)
{
    j->s++; /* opening quote */
    tpl__sb_t b = {.a = j->a};
    tpl__sb_add(&b, "", 0);
    while (j->s < j->end && *j->s != '"') {
        unsigned char c = (unsigned char)*j->s;
        if (c < 0x20) {
            j->err = "control character in string";
            return false;
        }
        if (c != '\\') {
            tpl__sb_addc(&b, (char)c);
            j->s++;
            continue;
        }
        if (++j->s >= j->end)
            break;
        char e = *j->s++;
        switch (e) {
        case '"': tpl__sb_addc(&b, '"'); break;
        case '\\': tpl__sb_addc(&b, '\\'); break;
        case '/': tpl__sb_addc(&b, '/'); break;
        case 'b': tpl__sb_addc(&b, '\b'); break;
        case 'f': tpl__sb_addc(&b, '\f'); break;
        case 'n': tpl__sb_addc(&b, '\n'); break;
        case 'r': tpl__sb_addc(&b, '\r'); break;
        case 't': tpl__sb_addc(&b, '\t'); break;
        case 'u': {
            int h = hex4(j->s, j->end);
            if (h < 0) {
                j->err = "bad \\u escape";
                return false;
            }
            j->s += 4;
            unsigned cp = (unsigned)h;
            if (cp >= 0xd800 && cp < 0xdc00 && j->end - j->s >= 6 && j->s[0] == '\\' &&
                j->s[1] == 'u') {
                int lo = hex4(j->s + 2, j->end);
                if (lo >= 0xdc00 && lo < 0xe000) {
                    cp = 0x10000 + ((cp - 0xd800) << 10) + ((unsigned)lo - 0xdc00);
                    j->s += 6;
                }
            }
            if (cp >= 0xd800 && cp < 0xe000)
                cp = 0xfffd; /* a lone surrogate cannot be UTF-8 */
            put_utf8(&b, cp);
            break;
        }
        default: j->err = "bad escape"; return false;
        }
    }
    if (j->s >= j->end) {
        j->err = "unterminated string";
        return false;
    }
    j->s++;
    *out = tpl__str(b.p, b.n);
    return true;
}

static bool jp_value(jp_t *j, tv_t *out);

static bool jp_number(jp_t *j, tv_t *out)
{
    const char *st = j->s;
    bool is_float = false;
    if (j->s < j->end && *j->s == '-')
        j->s++;
    if (j->s >= j->end || !(*j->s >= '0' && *j->s <= '9')) {
        j->err = "bad number";
        return false;
    }
    while (j->s < j->end) {
        char c = *j->s;
        if (c >= '0' && c <= '9') {
        } else if (c == '.' || c == 'e' || c == 'E' || ((c == '+' || c == '-') && is_float)) {
            is_float = true;
        } else {
            break;
        }
        j->s++;
    }
    char tmp[64];
    size_t n = (size_t)(j->s - st);
    if (n >= sizeof tmp) {
        j->err = "number too long";
        return false;
    }
    memcpy(tmp, st, n);
    tmp[n] = 0;
    char *e;
    if (!is_float) {
        errno = 0;
        long long v = strtoll(tmp, &e, 10);
        if (errno == 0 && *e == 0) {
            *out = tpl__int(v);
            return true;
        }
        j->err = "integer out of range";
        return false;
    }
    double d = strtod(tmp, &e);
    if (*e) {
        j->err = "bad number";
        return false;
    }
    *out = tpl__float(d);
    return true;
}

static bool jp_lit(jp_t *j, const char *w, tv_t v, tv_t *out)
{
    size_t n = strlen(w);
    if ((size_t)(j->end - j->s) < n || memcmp(j->s, w, n) != 0) {
        j->err = "unexpected character";
        return false;
    }
    j->s += n;
    *out = v;
    return true;
}

static bool jp_value(jp_t *j, tv_t *out)
{
    jp_ws(j);
    if (j->s >= j->end) {
        j->err = "unexpected end of input";
        return false;
    }
    if (++j->depth > 200) {
        j->err = "nesting too deep";
        return false;
    }
    bool ok = false;
    char c = *j->s;
    if (c == '"') {
        ok = jp_string(j, out);
    } else if (c == '[') {
        j->s++;
        *out = tpl__list_new(j->a, 0);
        jp_ws(j);
        if (j->s < j->end && *j->s == ']') {
            j->s++;
            ok = true;
        } else {
            for (;;) {
                tv_t item;
                if (!jp_value(j, &item))
                    break;
                tpl__list_push(j->a, *out, item);
                jp_ws(j);
                if (j->s < j->end && *j->s == ',') {
                    j->s++;
                    continue;
                }
                if (j->s < j->end && *j->s == ']') {
                    j->s++;
                    ok = true;
                } else {
                    j->err = "expected ',' or ']'";
                }
                break;
            }
        }
    } else if (c == '{') {
        j->s++;
        *out = tpl__dict_new(j->a, 0);
        jp_ws(j);
        if (j->s < j->end && *j->s == '}') {
            j->s++;
            ok = true;
        } else {
            for (;;) {
                tv_t k, v;
                jp_ws(j);
                if (j->s >= j->end || *j->s != '"') {
                    j->err = "expected string key";
                    break;
                }
                if (!jp_string(j, &k))
                    break;
                jp_ws(j);
                if (j->s >= j->end || *j->s != ':') {
                    j->err = "expected ':'";
                    break;
                }
                j->s++;
                if (!jp_value(j, &v))
                    break;
                tpl__dict_set(j->a, *out, k, v);
                jp_ws(j);
                if (j->s < j->end && *j->s == ',') {
                    j->s++;
                    continue;
                }
                if (j->s < j->end && *j->s == '}') {
                    j->s++;
                    ok = true;
                } else {
                    j->err = "expected ',' or '}'";
                }
                break;
            }
        }
    } else if (c == 't') {
        ok = jp_lit(j, "true", tpl__bool(true), out);
    } else if (c == 'f') {
        ok = jp_lit(j, "false", tpl__bool(false), out);
    } else if (c == 'n') {
        ok = jp_lit(j, "null", tpl__none(), out);
    } else if (c == 'N') {
        ok = jp_lit(j, "NaN", tpl__float(NAN), out);
    } else if (c == 'I') {
        ok = jp_lit(j, "Infinity", tpl__float(INFINITY), out);
    } else if (c == '-' && j->end - j->s > 1 && j->s[1] == 'I') {
        j->s++;
        ok = jp_lit(j, "Infinity", tpl__float(-INFINITY), out);
    } else {
        ok = jp_number(j, out);
    }
    j->depth--;
    return ok;
}

bool tpl__from_json(tpl__arena_t *a, const char *s, size_t n, tv_t *out, char *errmsg,
                    size_t errlen)
{
    jp_t j = {.a = a, .s = s, .end = s + n};
    bool ok = jp_value(&j, out);
    if (ok) {
        jp_ws(&j);
        if (j.s != j.end) {
            j.err = "trailing characters";
            ok = false;
        }
    }
    if (!ok)
        snprintf(errmsg, errlen, "invalid JSON at byte %zu: %s", (size_t)(j.s - s),
                 j.err ? j.err : "error");
    return ok;
}

/* tpl_builtin: filters, tests, str/dict methods and global functions.
 *
 * Each follows the jinja2 3.1 / CPython behaviour for the value types a chat
 * template sees. Case mapping (upper/lower/title/capitalize) is ASCII-only;
 * non-ASCII letters pass through unchanged (docs/chat-templates.md lists this
 * gap). Names accepted here are exactly those tpl__filter_known /
 * tpl__test_known report, so the parser rejects everything else up front.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tpl_int.h"

#define ARENA (rt->c.arena)

__attribute__((noreturn)) void tpl__rt_fail(tpl__rt_t *rt, int line, const char *what)
{
    tpl__fail(&rt->c, TPL_ERUNTIME, line, "line %d: %s", line, what);
}

void tpl__need_defined(tpl__rt_t *rt, int line, tv_t v)
{
    if (v.type == TV_UNDEF) {
        if (v.u.s.p)
            tpl__fail(&rt->c, TPL_ERUNTIME, line, "line %d: '%s' is undefined", line, v.u.s.p);
        tpl__rt_fail(rt, line, "undefined value used");
    }
}

tv_t tpl__to_str(tpl__rt_t *rt, tv_t v)
{
    if (v.type == TV_STR)
        return v;
    tpl__sb_t sb = {.a = ARENA};
    tpl__sb_add(&sb, "", 0);
    tpl__str_of(&sb, v);
    return tpl__str(sb.p, sb.n);
}

static size_t u8len(unsigned char c)
{
    return c < 0x80 ? 1 : c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc0 ? 2 : 1;
}

tv_t tpl__iter_list(tpl__rt_t *rt, int line, tv_t v)
{
    switch (v.type) {
    case TV_LIST: return v;
    case TV_UNDEF: return tpl__list_new(ARENA, 0);
    case TV_DICT: {
        tv_t l = tpl__list_new(ARENA, v.u.d->n);
        for (size_t i = 0; i < v.u.d->n; i++)
            tpl__list_push(ARENA, l, v.u.d->k[i]);
        return l;
    }
    case TV_STR: {
        tv_t l = tpl__list_new(ARENA, v.u.s.n);
        for (size_t i = 0; i < v.u.s.n;) {
            size_t k = u8len((unsigned char)v.u.s.p[i]);
            if (i + k > v.u.s.n)
                k = v.u.s.n - i;
            tpl__list_push(ARENA, l, tpl__str(v.u.s.p + i, k));
            i += k;
        }
        return l;
    }
    default:
        tpl__fail(&rt->c, TPL_ERUNTIME, line, "line %d: '%s' object is not iterable", line,
                  tpl__type_name(v));
    }
}

// --- attribute and item access -----------------------------------------------------

tv_t tpl__getattr(tpl__rt_t *rt, int line, tv_t obj, const char *name)
{
    if (obj.type == TV_UNDEF) {
        if (obj.u.s.p)
            tpl__fail(&rt->c, TPL_ERUNTIME, line, "line %d: '%s' is undefined", line, obj.u.s.p);
        tpl__fail(&rt->c, TPL_ERUNTIME, line, "line %d: undefined value has no attribute '%s'",
                  line, name);
    }
    tv_t v;
    if (obj.type == TV_DICT && tpl__dict_getz(obj, name, &v))
        return v;
    return tpl__undef(NULL);
}

tv_t tpl__getitem(tpl__rt_t *rt, int line, tv_t obj, tv_t key)
{
    tpl__need_defined(rt, line, obj);
    tv_t v;
    if (obj.type == TV_DICT) {
        if (tpl__dict_get(obj, key, &v))
            return v;
        return tpl__undef(NULL);
    }
    if ((obj.type == TV_LIST || obj.type == TV_STR) &&
        (key.type == TV_INT || key.type == TV_BOOL)) {
        tv_t seq = obj.type == TV_STR ? tpl__iter_list(rt, line, obj) : obj;
        int64_t i = key.u.i, n = (int64_t)seq.u.l->n;
        if (i < 0)
            i += n;
        if (i < 0 || i >= n)
            return tpl__undef(NULL);
        return seq.u.l->v[i];
    }
    return tpl__undef(NULL);
}

// --- small helpers -------------------------------------------------------------------

tv_t tpl__kwarg(const char **kwn, tv_t *kwv, int nkw, const char *name, tv_t *args,
                  int nargs, int pos, tv_t dflt)
{
    for (int i = 0; i < nkw; i++)
        if (strcmp(kwn[i], name) == 0)
            return kwv[i];
    return pos >= 0 && pos < nargs ? args[pos] : dflt;
}

bool tpl__is_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v' ||
           (c >= 0x1c && c <= 0x1f);
}

/* Python's str.isspace() for one UTF-8 sequence p[0, n). */
static bool py_space_seq(const char *p, size_t n)
{
    const unsigned char *u = (const unsigned char *)p;
    if (n == 1)
        return tpl__is_ws(p[0]);
    unsigned cp = n == 2   ? ((u[0] & 0x1fu) << 6) | (u[1] & 0x3fu)
                  : n == 3 ? ((u[0] & 0x0fu) << 12) | ((u[1] & 0x3fu) << 6) | (u[2] & 0x3fu)
                           : 0;
    return cp == 0x85 || cp == 0xa0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200a) ||
           cp == 0x2028 || cp == 0x2029 || cp == 0x202f || cp == 0x205f || cp == 0x3000;
}

/* Length of the UTF-8 sequence starting at p (1 for a stray byte). */
static size_t seq_len(const char *p, size_t n)
{
    unsigned char c = (unsigned char)p[0];
    size_t l = c < 0x80 ? 1 : c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc0 ? 2 : 1;
    return l > n ? 1 : l;
}

/* Start of the last UTF-8 sequence in p[b, e). */
static size_t last_seq(const char *p, size_t b, size_t e)
{
    size_t k = e - 1;
    while (k > b && ((unsigned char)p[k] & 0xc0) == 0x80 && e - k < 4)
        k--;
    return seq_len(p + k, e - k) == e - k ? k : e - 1;
}

static bool strippable(const char *p, size_t n, tv_t chars)
{
    if (chars.type != TV_STR)
        return py_space_seq(p, n);
    for (size_t i = 0; i + n <= chars.u.s.n; i++)
        if (!memcmp(chars.u.s.p + i, p, n))
            return true;
    return false;
}

tv_t tpl__strip(tpl__rt_t *rt, int line, tv_t s, tv_t chars, bool left, bool right)
{
    if (s.type != TV_STR)
        s = tpl__to_str(rt, s);
    const char *p = s.u.s.p;
    size_t b = 0, e = s.u.s.n;
    if (chars.type != TV_STR && chars.type != TV_NONE && chars.type != TV_UNDEF)
        tpl__rt_fail(rt, line, "strip arg must be None or str");
    if (left)
        for (size_t l; b < e && strippable(p + b, (l = seq_len(p + b, e - b)), chars);)
            b += l;
    if (right)
        while (e > b) {
            size_t k = last_seq(p, b, e);
            if (!strippable(p + k, e - k, chars))
                break;
            e = k;
        }
    return tpl__str(p + b, e - b);
}

/* Simple case mapping for the scripts chat text commonly holds: ASCII,
 * Latin-1, Latin Extended-A, Greek and Cyrillic. Other code points are
 * uncased (CJK, symbols) or left as they are. */
static unsigned cp_lower(unsigned c)
{
    if ((c >= 'A' && c <= 'Z') || (c >= 0xc0 && c <= 0xde && c != 0xd7) ||
        (c >= 0x391 && c <= 0x3ab && c != 0x3a2) || (c >= 0x410 && c <= 0x42f))
        return c + (c >= 0x400 ? 0x20 : c >= 0x391 ? 0x20 : 0x20);
    if (c >= 0x400 && c <= 0x40f)
        return c + 0x50;
    if (c >= 0x100 && c <= 0x17f && c != 0x130 && c != 0x131 && c != 0x138 && c != 0x149 &&
        c != 0x17f) {
        bool even_upper = (c < 0x139) || (c >= 0x14a && c < 0x178);
        if (even_upper ? (c % 2 == 0) : (c % 2 == 1 && c != 0x17f))
            return c + 1;
    }
    if (c == 0x178)
        return 0xff;
    return c;
}

static unsigned cp_upper(unsigned c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 0xe0 && c <= 0xfe && c != 0xf7) ||
        (c >= 0x3b1 && c <= 0x3cb && c != 0x3c2) || (c >= 0x430 && c <= 0x44f))
        return c - 0x20;
    if (c == 0x3c2)
        return 0x3a3; /* final sigma */
    if (c >= 0x450 && c <= 0x45f)
        return c - 0x50;
    if (c == 0xff)
        return 0x178;
    if (c == 0xb5)
        return 0x39c;
    if (c >= 0x100 && c <= 0x17f && c != 0x130 && c != 0x131 && c != 0x138 && c != 0x149 &&
        c != 0x17f) {
        bool even_upper = (c < 0x139) || (c >= 0x14a && c < 0x178);
        if (even_upper ? (c % 2 == 1) : (c % 2 == 0 && c != 0x178))
            return c - 1;
    }
    return c;
}

static bool cp_cased(unsigned c)
{
    return cp_lower(c) != c || cp_upper(c) != c || c == 0xdf || c == 0x131 || c == 0x138 ||
           c == 0x149;
}

static size_t cp_dec(const char *p, size_t n, unsigned *cp)
{
    unsigned char c = (unsigned char)p[0];
    size_t len = u8len(c);
    if (len > n)
        len = 1;
    if (len == 1) {
        *cp = c;
        return 1;
    }
    unsigned v = c & (0x7fu >> len);
    for (size_t i = 1; i < len; i++)
        v = (v << 6) | ((unsigned char)p[i] & 0x3f);
    *cp = v;
    return len;
}

static void cp_put(tpl__sb_t *b, unsigned cp)
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

/* mode 0 lower, 1 upper, 2 str.title(), 3 str.capitalize(), 4 jinja2's title
 * filter (each word split at runs of [-\s({\[<] gets word[0].upper() +
 * word[1:].lower()). */
tv_t tpl__map_case(tpl__rt_t *rt, tv_t s, int mode)
{
    tpl__sb_t b = {.a = ARENA};
    tpl__sb_add(&b, "", 0);
    bool prev_cased = false, word_start = true, was_start = true;
    unsigned prev_c = 0;
    for (size_t i = 0; i < s.u.s.n;) {
        unsigned c;
        size_t l = cp_dec(s.u.s.p + i, s.u.s.n - i, &c);
        unsigned o = c;
        if (l == 1 && c >= 0x80) { /* stray byte: copy as is */
            tpl__sb_add(&b, s.u.s.p + i, 1);
            i++;
            continue;
        }
        was_start = word_start;
        switch (mode) {
        case 0: o = cp_lower(c); break;
        case 1: o = cp_upper(c); break;
        case 2: o = prev_cased ? cp_lower(c) : cp_upper(c); break;
        case 3: o = i == 0 ? cp_upper(c) : cp_lower(c); break;
        default: {
            bool sep = c == '-' || (c < 0x80 && tpl__is_ws((char)c)) || c == '(' || c == '{' ||
                       c == '[' || c == '<';
            if (sep) {
                word_start = true;
            } else {
                o = word_start ? cp_upper(c) : cp_lower(c);
                word_start = false;
            }
        }
        }
        prev_cased = cp_cased(c);
        if (c == 0xdf && o == 0xdf && mode != 0 &&
            !(mode == 2 && cp_cased(prev_c)) && !(mode == 3 && i != 0) &&
            !(mode == 4 && !was_start)) { /* ß has no one-letter upper case */
            tpl__sb_addz(&b, mode == 1 || mode == 4 ? "SS" : "Ss");
            i += l;
            prev_c = c;
            continue;
        }
        prev_c = c;
        cp_put(&b, o);
        i += l;
    }
    return tpl__str(b.p, b.n);
}

tv_t tpl__title_filter(tpl__rt_t *rt, tv_t s)
{
    return tpl__map_case(rt, s, 4);
}

tv_t tpl__replace(tpl__rt_t *rt, int line, tv_t s, tv_t old, tv_t nw, int64_t count)
{
    if (old.type != TV_STR || nw.type != TV_STR)
        tpl__rt_fail(rt, line, "replace() arguments must be str");
    tpl__sb_t sb = {.a = ARENA};
    tpl__sb_add(&sb, "", 0);
    size_t i = 0;
    int64_t done = 0;
    if (old.u.s.n == 0) { /* Python inserts between every character */
        for (; i <= s.u.s.n; done++) {
            if (count >= 0 && done >= count) {
                tpl__sb_add(&sb, s.u.s.p + i, s.u.s.n - i);
                break;
            }
            tpl__sb_add(&sb, nw.u.s.p, nw.u.s.n);
            if (i == s.u.s.n)
                break;
            size_t k = u8len((unsigned char)s.u.s.p[i]);
            tpl__sb_add(&sb, s.u.s.p + i, k);
            i += k;
        }
        return tpl__str(sb.p, sb.n);
    }
    while (i < s.u.s.n) {
        if ((count < 0 || done < count) && i + old.u.s.n <= s.u.s.n &&
            memcmp(s.u.s.p + i, old.u.s.p, old.u.s.n) == 0) {
            tpl__sb_add(&sb, nw.u.s.p, nw.u.s.n);
            i += old.u.s.n;
            done++;
        } else {
            tpl__sb_addc(&sb, s.u.s.p[i++]);
        }
    }
    return tpl__str(sb.p, sb.n);
}

static tv_t split(tpl__rt_t *rt, int line, tv_t s, tv_t sep, int64_t maxsplit)
{
    tv_t l = tpl__list_new(ARENA, 0);
    const char *p = s.u.s.p;
    size_t n = s.u.s.n, i = 0;
    if (sep.type == TV_NONE || sep.type == TV_UNDEF) {
        tv_t ws = tpl__none();
        while (i < n) {
            size_t sl;
            while (i < n && strippable(p + i, (sl = seq_len(p + i, n - i)), ws))
                i += sl;
            if (i >= n)
                break;
            if (maxsplit >= 0 && (int64_t)l.u.l->n >= maxsplit) {
                tpl__list_push(ARENA, l, tpl__str(p + i, n - i)); /* rest kept as is */
                break;
            }
            size_t st = i;
            while (i < n && !strippable(p + i, (sl = seq_len(p + i, n - i)), ws))
                i += sl;
            tpl__list_push(ARENA, l, tpl__str(p + st, i - st));
        }
        return l;
    }
    if (sep.type != TV_STR)
        tpl__rt_fail(rt, line, "split() separator must be str or None");
    if (sep.u.s.n == 0)
        tpl__rt_fail(rt, line, "empty separator");
    size_t st = 0;
    while (i + sep.u.s.n <= n) {
        if ((maxsplit < 0 || (int64_t)l.u.l->n < maxsplit) &&
            memcmp(p + i, sep.u.s.p, sep.u.s.n) == 0) {
            tpl__list_push(ARENA, l, tpl__str(p + st, i - st));
            i += sep.u.s.n;
            st = i;
        } else {
            i++;
        }
    }
    tpl__list_push(ARENA, l, tpl__str(p + st, n - st));
    return l;
}

static bool affix(tv_t s, tv_t x, bool prefix)
{
    if (x.type == TV_LIST) {
        for (size_t i = 0; i < x.u.l->n; i++)
            if (affix(s, x.u.l->v[i], prefix))
                return true;
        return false;
    }
    if (x.type != TV_STR || x.u.s.n > s.u.s.n)
        return false;
    return memcmp(prefix ? s.u.s.p : s.u.s.p + s.u.s.n - x.u.s.n, x.u.s.p, x.u.s.n) == 0;
}

int64_t tpl__py_len(tpl__rt_t *rt, int line, tv_t v)
{
    switch (v.type) {
    case TV_STR: {
        int64_t n = 0;
        for (size_t i = 0; i < v.u.s.n; i++)
            n += ((unsigned char)v.u.s.p[i] & 0xc0) != 0x80;
        return n;
    }
    case TV_LIST: return (int64_t)v.u.l->n;
    case TV_DICT: {
        tv_t n;
        if ((v.flags & TVF_LOOP) && tpl__dict_getz(v, "length", &n)) /* len(LoopContext) */
            return n.u.i;
        return (int64_t)v.u.d->n;
    }
    case TV_UNDEF: return 0;
    default:
        tpl__fail(&rt->c, TPL_ERUNTIME, line, "line %d: object of type '%s' has no len()", line,
                  tpl__type_name(v));
    }
}

/* Resolve a dotted attribute path as jinja2's make_attrgetter does (items
 * first for dicts, integer parts as indexes). */
tv_t tpl__attr_path(tpl__rt_t *rt, int line, tv_t v, tv_t attr)
{
    if (attr.type == TV_INT)
        return tpl__getitem(rt, line, v, attr);
    if (attr.type != TV_STR)
        tpl__rt_fail(rt, line, "attribute must be a string");
    const char *p = attr.u.s.p, *end = p + attr.u.s.n;
    while (p <= end) {
        const char *dot = memchr(p, '.', (size_t)(end - p));
        if (!dot)
            dot = end;
        tv_t key = tpl__str(p, (size_t)(dot - p));
        bool digits = dot > p;
        for (const char *q = p; q < dot; q++)
            digits &= *q >= '0' && *q <= '9';
        if (digits)
            key = tpl__int(strtoll(p, NULL, 10));
        if (v.type == TV_UNDEF)
            return v;
        v = tpl__getitem(rt, line, v, key);
        p = dot + 1;
    }
    return v;
}

// --- tests --------------------------------------------------------------------------------

static const char *const TESTS[] = {
    "defined", "undefined", "none",     "boolean", "false",   "true",     "integer",
    "float",   "number",    "string",   "mapping", "iterable", "sequence", "callable",
    "equalto", "eq",        "==",       "ne",      "!=",      "gt",       ">",
    "ge",      ">=",        "lt",       "<",       "le",      "<=",       "in",
    "odd",     "even",      "divisibleby", "lower", "upper",  "sameas",   NULL};

bool tpl__test_known(const char *name)
{
    for (int i = 0; TESTS[i]; i++)
        if (strcmp(TESTS[i], name) == 0)
            return true;
    return false;
}

bool tpl__apply_test(tpl__rt_t *rt, const char *name, int line, tv_t v, tv_t *args, int nargs)
{
    tv_t a = nargs > 0 ? args[0] : tpl__undef(NULL);
    if (!strcmp(name, "defined"))
        return v.type != TV_UNDEF;
    if (!strcmp(name, "undefined"))
        return v.type == TV_UNDEF;
    if (!strcmp(name, "none"))
        return v.type == TV_NONE;
    if (!strcmp(name, "boolean"))
        return v.type == TV_BOOL;
    if (!strcmp(name, "false"))
        return v.type == TV_BOOL && !v.u.i;
    if (!strcmp(name, "true"))
        return v.type == TV_BOOL && v.u.i;
    if (!strcmp(name, "integer"))
        return v.type == TV_INT;
    if (!strcmp(name, "float"))
        return v.type == TV_FLOAT;
    if (!strcmp(name, "number"))
        return tpl__is_num(v);
    if (!strcmp(name, "string"))
        return v.type == TV_STR;
    if (!strcmp(name, "mapping"))
        return v.type == TV_DICT && !(v.flags & TVF_NAMESPACE);
    if (!strcmp(name, "iterable"))
        return v.type == TV_STR || v.type == TV_LIST || v.type == TV_UNDEF ||
               (v.type == TV_DICT && !(v.flags & TVF_NAMESPACE));
    if (!strcmp(name, "sequence"))
        return v.type == TV_STR || v.type == TV_LIST || v.type == TV_UNDEF ||
               (v.type == TV_DICT && !(v.flags & TVF_NAMESPACE));
    if (!strcmp(name, "callable"))
        return v.type == TV_FUNC;
    if (!strcmp(name, "equalto") || !strcmp(name, "eq") || !strcmp(name, "=="))
        return tpl__equal(v, a);
    if (!strcmp(name, "ne") || !strcmp(name, "!="))
        return !tpl__equal(v, a);
    if (!strcmp(name, "sameas"))
        return v.type == a.type && (v.type == TV_NONE || v.type == TV_UNDEF ||
                                    (v.type == TV_BOOL && v.u.i == a.u.i));
    if (!strcmp(name, "in")) {
        if (a.type == TV_STR && v.type == TV_STR) {
            if (v.u.s.n == 0)
                return true;
            for (size_t i = 0; i + v.u.s.n <= a.u.s.n; i++)
                if (!memcmp(a.u.s.p + i, v.u.s.p, v.u.s.n))
                    return true;
            return false;
        }
        if (a.type == TV_LIST || a.type == TV_DICT) {
            tv_t l = tpl__iter_list(rt, line, a);
            for (size_t i = 0; i < l.u.l->n; i++)
                if (tpl__equal(l.u.l->v[i], v))
                    return true;
            return false;
        }
        tpl__rt_fail(rt, line, "'in' test needs a container");
    }
    if (!strcmp(name, "lower") || !strcmp(name, "upper")) {
        tv_t s = tpl__to_str(rt, v);
        bool up = name[0] == 'u', any = false;
        for (size_t i = 0; i < s.u.s.n; i++) {
            char c = s.u.s.p[i];
            if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) {
                any = true;
                if (((c >= 'A' && c <= 'Z') != up))
                    return false;
            }
        }
        return any;
    }
    if (!strcmp(name, "odd") || !strcmp(name, "even") || !strcmp(name, "divisibleby")) {
        if (v.type != TV_INT && v.type != TV_BOOL)
            tpl__rt_fail(rt, line, "odd/even/divisibleby need an integer");
        if (name[0] == 'o')
            return (v.u.i & 1) != 0;
        if (name[0] == 'e')
            return (v.u.i & 1) == 0;
        if ((a.type != TV_INT && a.type != TV_BOOL) || a.u.i == 0)
            tpl__rt_fail(rt, line, "divisibleby needs a non-zero integer");
        return v.u.i % a.u.i == 0;
    }
    int c = 0;
    if (a.type == TV_UNDEF || v.type == TV_UNDEF)
        tpl__rt_fail(rt, line, "comparison with an undefined value");
    if (tpl__is_num(v) && tpl__is_num(a))
        c = (tpl__num(v) > tpl__num(a)) - (tpl__num(v) < tpl__num(a));
    else if (v.type == TV_STR && a.type == TV_STR)
        c = tpl__cmp_sort(rt, line, v, a, false);
    else
        tpl__rt_fail(rt, line, "comparison of incompatible types");
    if (!strcmp(name, "gt") || !strcmp(name, ">"))
        return c > 0;
    if (!strcmp(name, "ge") || !strcmp(name, ">="))
        return c >= 0;
    if (!strcmp(name, "lt") || !strcmp(name, "<"))
        return c < 0;
    return c <= 0;
}

// --- methods ------------------------------------------------------------------------------

tv_t tpl__call_method(tpl__rt_t *rt, int line, tv_t obj, const char *name, tv_t *args,
                      int nargs, const char **kwn, tv_t *kwv, int nkw)
{
    tv_t none = tpl__none();
#define ARG(nm, pos, dflt) tpl__kwarg(kwn, kwv, nkw, nm, args, nargs, pos, dflt)
    if (obj.type == TV_STR) {
        if (!strcmp(name, "strip"))
            return tpl__strip(rt, line, obj, ARG("chars", 0, none), true, true);
        if (!strcmp(name, "lstrip"))
            return tpl__strip(rt, line, obj, ARG("chars", 0, none), true, false);
        if (!strcmp(name, "rstrip"))
            return tpl__strip(rt, line, obj, ARG("chars", 0, none), false, true);
        if (!strcmp(name, "startswith") || !strcmp(name, "endswith")) {
            if (nargs < 1)
                tpl__rt_fail(rt, line, "startswith/endswith need an argument");
            return tpl__bool(affix(obj, args[0], name[0] == 's'));
        }
        if (!strcmp(name, "split")) {
            tv_t ms = ARG("maxsplit", 1, tpl__int(-1));
            return split(rt, line, obj, ARG("sep", 0, none), ms.type == TV_INT ? ms.u.i : -1);
        }
        if (!strcmp(name, "upper"))
            return tpl__map_case(rt, obj, 1);
        if (!strcmp(name, "lower"))
            return tpl__map_case(rt, obj, 0);
        if (!strcmp(name, "title"))
            return tpl__map_case(rt, obj, 2);
        if (!strcmp(name, "capitalize"))
            return tpl__map_case(rt, obj, 3);
        if (!strcmp(name, "replace")) {
            tv_t cnt = ARG("count", 2, none);
            return tpl__replace(rt, line, obj, ARG("old", 0, none), ARG("new", 1, none),
                           cnt.type == TV_INT ? cnt.u.i : -1);
        }
        if (!strcmp(name, "find") || !strcmp(name, "count")) {
            tv_t x = ARG("sub", 0, none);
            if (x.type != TV_STR)
                tpl__rt_fail(rt, line, "find/count need a string argument");
            int64_t cnt = 0;
            for (size_t i = 0; i + x.u.s.n <= obj.u.s.n;) {
                if (!memcmp(obj.u.s.p + i, x.u.s.p, x.u.s.n)) {
                    if (name[0] == 'f')
                        return tpl__int(tpl__py_len(rt, line, tpl__str(obj.u.s.p, i)));
                    cnt++;
                    i += x.u.s.n ? x.u.s.n : 1;
                } else {
                    i++;
                }
            }
            return tpl__int(name[0] == 'f' ? -1 : cnt);
        }
        if (!strcmp(name, "join")) {
            tv_t l = tpl__iter_list(rt, line, ARG("iterable", 0, tpl__list_new(ARENA, 0)));
            tpl__sb_t sb = {.a = ARENA};
            tpl__sb_add(&sb, "", 0);
            for (size_t i = 0; i < l.u.l->n; i++) {
                if (l.u.l->v[i].type != TV_STR)
                    tpl__rt_fail(rt, line, "str.join: sequence item is not a str");
                if (i)
                    tpl__sb_add(&sb, obj.u.s.p, obj.u.s.n);
                tpl__sb_add(&sb, l.u.l->v[i].u.s.p, l.u.l->v[i].u.s.n);
            }
            return tpl__str(sb.p, sb.n);
        }
        if (!strcmp(name, "isdigit") || !strcmp(name, "isspace") || !strcmp(name, "isalpha")) {
            if (obj.u.s.n == 0)
                return tpl__bool(false);
            for (size_t i = 0; i < obj.u.s.n; i++) {
                char c = obj.u.s.p[i];
                bool ok = name[2] == 'd' ? (c >= '0' && c <= '9')
                          : name[2] == 's' ? tpl__is_ws(c)
                                           : ((c | 0x20) >= 'a' && (c | 0x20) <= 'z');
                if (!ok)
                    return tpl__bool(false);
            }
            return tpl__bool(true);
        }
    } else if (obj.type == TV_DICT) {
        if (!strcmp(name, "items")) {
            tv_t l = tpl__list_new(ARENA, obj.u.d->n);
            for (size_t i = 0; i < obj.u.d->n; i++) {
                tv_t pair = tpl__list_new(ARENA, 2);
                pair.flags = TVF_TUPLE;
                tpl__list_push(ARENA, pair, obj.u.d->k[i]);
                tpl__list_push(ARENA, pair, obj.u.d->v[i]);
                tpl__list_push(ARENA, l, pair);
            }
            return l;
        }
        if (!strcmp(name, "keys") || !strcmp(name, "values")) {
            tv_t l = tpl__list_new(ARENA, obj.u.d->n);
            for (size_t i = 0; i < obj.u.d->n; i++)
                tpl__list_push(ARENA, l, name[0] == 'k' ? obj.u.d->k[i] : obj.u.d->v[i]);
            return l;
        }
        if (!strcmp(name, "get")) {
            if (nargs < 1)
                tpl__rt_fail(rt, line, "get expected at least 1 argument");
            tv_t v;
            if (tpl__dict_get(obj, args[0], &v))
                return v;
            return nargs > 1 ? args[1] : none;
        }
        tv_t i0;
        if ((obj.flags & TVF_LOOP) && !strcmp(name, "cycle") && nargs > 0 &&
            tpl__dict_getz(obj, "index0", &i0))
            return args[i0.u.i % nargs];
        tv_t fn;
        if (tpl__dict_getz(obj, name, &fn) && fn.type == TV_FUNC) {
            if (fn.u.fn.builtin < 0)
                return tpl__call_macro(rt, line, fn.u.fn.macro, args, nargs, kwn, kwv, nkw);
            return tpl__call_builtin(rt, fn.u.fn.builtin, line, args, nargs, kwn, kwv, nkw);
        }
    }
#undef ARG
    if (obj.type == TV_LIST && (!strcmp(name, "append") || !strcmp(name, "pop") ||
                                !strcmp(name, "extend") || !strcmp(name, "insert")))
        tpl__fail(&rt->c, TPL_ERUNTIME, line,
                  "line %d: access to unsafe method '%s' of list (the environment is immutable)",
                  line, name);
    tpl__fail(&rt->c, TPL_EUNSUPPORTED, line, "line %d: unsupported method '%s' of %s object",
              line, name, tpl__type_name(obj));
}

// --- global functions -----------------------------------------------------------------------

tv_t tpl__call_builtin(tpl__rt_t *rt, int id, int line, tv_t *args, int nargs,
                       const char **kwn, tv_t *kwv, int nkw)
{
    switch (id) {
    case BI_RANGE: {
        int64_t a = 0, b, st = 1;
        for (int i = 0; i < nargs; i++)
            if (args[i].type != TV_INT && args[i].type != TV_BOOL)
                tpl__rt_fail(rt, line, "range() arguments must be integers");
        if (nargs == 1) {
            b = args[0].u.i;
        } else if (nargs == 2 || nargs == 3) {
            a = args[0].u.i;
            b = args[1].u.i;
            if (nargs == 3)
                st = args[2].u.i;
        } else {
            tpl__rt_fail(rt, line, "range expected 1 to 3 arguments");
        }
        if (st == 0)
            tpl__rt_fail(rt, line, "range() arg 3 must not be zero");
        tv_t l = tpl__list_new(ARENA, 0);
        for (int64_t i = a; st > 0 ? i < b : i > b; i += st) {
            if (l.u.l->n >= 100000) /* jinja2's sandbox caps range at MAX_RANGE */
                tpl__rt_fail(rt, line, "range too big");
            tpl__list_push(ARENA, l, tpl__int(i));
        }
        return l;
    }
    case BI_NAMESPACE:
    case BI_DICT: {
        tv_t d = tpl__dict_new(ARENA, 0);
        for (int i = 0; i < nargs; i++) {
            if (args[i].type != TV_DICT)
                tpl__rt_fail(rt, line, "namespace()/dict() positional argument must be a mapping");
            for (size_t k = 0; k < args[i].u.d->n; k++)
                tpl__dict_set(ARENA, d, args[i].u.d->k[k], args[i].u.d->v[k]);
        }
        for (int i = 0; i < nkw; i++)
            tpl__dict_set(ARENA, d, tpl__strz(kwn[i]), kwv[i]);
        if (id == BI_NAMESPACE)
            d.flags = TVF_NAMESPACE;
        return d;
    }
    case BI_RAISE: {
        tv_t m = nargs > 0 ? tpl__to_str(rt, args[0]) : tpl__str("", 0);
        tpl__fail(&rt->c, TPL_ERAISE, line, "%.*s", (int)(m.u.s.n > 500 ? 500 : m.u.s.n), m.u.s.p);
    }
    case BI_STRFTIME: {
        if (nargs < 1 || args[0].type != TV_STR)
            tpl__rt_fail(rt, line, "strftime_now needs a format string");
        char *fmt = tpl__strndup(ARENA, args[0].u.s.p, args[0].u.s.n);
        time_t now = time(NULL);
        struct tm tm;
        localtime_r(&now, &tm);
        char out[256];
        /* the format comes from the template, as Python's strftime takes it */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
        size_t n = strftime(out, sizeof out, fmt, &tm);
#pragma GCC diagnostic pop
        return tpl__str(tpl__strndup(ARENA, out, n), n);
    }
    default: tpl__rt_fail(rt, line, "unknown builtin");
    }
}

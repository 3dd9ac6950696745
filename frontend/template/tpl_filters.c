/* tpl_filters: the jinja2 filters chat templates use.
 *
 * Each follows jinja2 3.1's implementation for the value types a chat
 * template sees (see tpl_builtin.c for tests, methods and globals). The
 * names accepted are exactly those tpl__filter_known reports, so the parser
 * rejects any other filter at compile time.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tpl_int.h"

#define ARENA (rt->c.arena)

/* Python's round(x, nd): correctly rounded on the exact binary value, ties
 * to even; glibc's %.*f does exactly that. */
static double py_round(double x, int64_t nd)
{
    if (!isfinite(x))
        return x;
    if (nd >= 0) {
        char buf[400];
        snprintf(buf, sizeof buf, "%.*f", (int)(nd > 300 ? 300 : nd), x);
        return strtod(buf, NULL);
    }
    double m = pow(10.0, (double)-nd);
    double y = x / m, r = nearbyint(y);
    return r * m;
}

// --- filters ----------------------------------------------------------------------------

static const char *const FILTERS[] = {
    "abs",    "capitalize", "count",      "d",      "default", "first", "float",   "int",
    "items",  "join",       "last",       "length", "list",    "lower", "map",     "reject",
    "rejectattr", "replace", "reverse",   "round",  "safe",    "select", "selectattr", "string",
    "title",  "tojson",     "trim",       "unique", "upper",   "wordcount", "sum",  "min",
    "max",    "dictsort",   "sort",       "batch",  "indent",  "e",     "escape",  NULL};

bool tpl__filter_known(const char *name)
{
    for (int i = 0; FILTERS[i]; i++)
        if (strcmp(FILTERS[i], name) == 0)
            return strcmp(name, "e") != 0 && strcmp(name, "escape") != 0 &&
                   strcmp(name, "batch") != 0;
    return false;
}

int tpl__cmp_sort(tpl__rt_t *rt, int line, tv_t a, tv_t b, bool ci)
{
    if (ci && a.type == TV_STR && b.type == TV_STR) {
        a = tpl__map_case(rt, a, 0);
        b = tpl__map_case(rt, b, 0);
    }
    if (tpl__is_num(a) && tpl__is_num(b)) {
        double x = tpl__num(a), y = tpl__num(b);
        return (x > y) - (x < y);
    }
    if (a.type == TV_STR && b.type == TV_STR) {
        size_t n = a.u.s.n < b.u.s.n ? a.u.s.n : b.u.s.n;
        int c = memcmp(a.u.s.p, b.u.s.p, n);
        return c ? (c > 0) - (c < 0) : (a.u.s.n > b.u.s.n) - (a.u.s.n < b.u.s.n);
    }
    tpl__fail(&rt->c, TPL_ERUNTIME, line, "line %d: cannot order '%s' and '%s'", line,
              tpl__type_name(a), tpl__type_name(b));
}

/* Stable insertion sort on keys (lists in templates are short). */
static tv_t sorted(tpl__rt_t *rt, int line, tv_t items, tv_t *keys, bool reverse, bool ci)
{
    size_t n = items.u.l->n;
    size_t *idx = tpl__alloc(ARENA, (n + 1) * sizeof(size_t));
    for (size_t i = 0; i < n; i++) {
        size_t j = i;
        while (j > 0) {
            int c = tpl__cmp_sort(rt, line, keys[idx[j - 1]], keys[i], ci);
            if (reverse ? c >= 0 : c <= 0)
                break;
            idx[j] = idx[j - 1];
            j--;
        }
        idx[j] = i;
    }
    tv_t r = tpl__list_new(ARENA, n);
    for (size_t i = 0; i < n; i++)
        tpl__list_push(ARENA, r, items.u.l->v[idx[i]]);
    return r;
}

static tv_t select_like(tpl__rt_t *rt, tpl__frame_t *f, int line, tv_t v, tv_t *args, int nargs,
                        bool attr, bool want)
{
    tv_t items = tpl__iter_list(rt, line, v);
    tv_t r = tpl__list_new(ARENA, 0);
    int first_test = attr ? 1 : 0;
    if (attr && nargs < 1)
        tpl__rt_fail(rt, line, "selectattr/rejectattr need an attribute name");
    for (size_t i = 0; i < items.u.l->n; i++) {
        tv_t x = items.u.l->v[i];
        tv_t subj = attr ? tpl__attr_path(rt, line, x, args[0]) : x;
        bool ok;
        if (nargs > first_test) {
            if (args[first_test].type != TV_STR)
                tpl__rt_fail(rt, line, "test name must be a string");
            const char *tn = tpl__strndup(ARENA, args[first_test].u.s.p, args[first_test].u.s.n);
            if (!tpl__test_known(tn))
                tpl__fail(&rt->c, TPL_EUNSUPPORTED, line, "line %d: unsupported test '%s'", line,
                          tn);
            ok = tpl__apply_test(rt, tn, line, subj, args + first_test + 1,
                                 nargs - first_test - 1);
        } else {
            ok = tpl__truthy(subj);
        }
        if (ok == want)
            tpl__list_push(ARENA, r, x);
    }
    (void)f;
    return r;
}

tv_t tpl__apply_filter(tpl__rt_t *rt, tpl__frame_t *f, const char *name, int line, tv_t v,
                       tv_t *args, int nargs, const char **kwn, tv_t *kwv, int nkw)
{
    tv_t none = tpl__none();
#define ARG(nm, pos, dflt) tpl__kwarg(kwn, kwv, nkw, nm, args, nargs, pos, dflt)
    if (!strcmp(name, "default") || !strcmp(name, "d")) {
        tv_t dv = ARG("default_value", 0, tpl__str("", 0));
        bool boolean = tpl__truthy(ARG("boolean", 1, tpl__bool(false)));
        if (v.type == TV_UNDEF || (boolean && !tpl__truthy(v)))
            return dv;
        return v;
    }
    if (!strcmp(name, "safe"))
        return v;
    if (!strcmp(name, "string"))
        return tpl__to_str(rt, v);
    if (!strcmp(name, "tojson")) {
        tv_t ind = ARG("indent", 0, none);
        tpl__sb_t sb = {.a = ARENA};
        tpl__sb_add(&sb, "", 0);
        /* json.dumps: an int indent is that many spaces, a str is used as is */
        const char *unit = NULL;
        size_t unit_n = 0;
        if (ind.type == TV_INT || ind.type == TV_BOOL) {
            int64_t k = ind.u.i < 0 ? 0 : ind.u.i > 256 ? 256 : ind.u.i;
            char *sp = tpl__alloc(ARENA, (size_t)k + 1);
            memset(sp, ' ', (size_t)k);
            unit = sp;
            unit_n = (size_t)k;
        } else if (ind.type == TV_STR) {
            unit = ind.u.s.p;
            unit_n = ind.u.s.n;
        } else if (ind.type != TV_NONE) {
            tpl__rt_fail(rt, line, "tojson indent must be an integer or a string");
        }
        if (!tpl__to_json(&sb, v, unit, unit_n, tpl__truthy(ARG("sort_keys", 2, tpl__bool(false)))))
            tpl__fail(&rt->c, TPL_ERUNTIME, line, "line %d: Object of type %s is not JSON serializable",
                      line, tpl__type_name(v));
        return tpl__str(sb.p, sb.n);
    }
    if (!strcmp(name, "length") || !strcmp(name, "count"))
        return tpl__int(tpl__py_len(rt, line, v));
    if (!strcmp(name, "list")) {
        tv_t l = tpl__iter_list(rt, line, v);
        l.flags = 0; /* list(tuple) is a list */
        return l;
    }
    if (!strcmp(name, "first") || !strcmp(name, "last")) {
        tv_t l = tpl__iter_list(rt, line, v);
        if (l.u.l->n == 0)
            return tpl__undef(NULL);
        return l.u.l->v[name[0] == 'f' ? 0 : l.u.l->n - 1];
    }
    if (!strcmp(name, "reverse")) {
        if (v.type == TV_STR) {
            tv_t l = tpl__iter_list(rt, line, v);
            tpl__sb_t sb = {.a = ARENA};
            tpl__sb_add(&sb, "", 0);
            for (size_t i = l.u.l->n; i-- > 0;)
                tpl__sb_add(&sb, l.u.l->v[i].u.s.p, l.u.l->v[i].u.s.n);
            return tpl__str(sb.p, sb.n);
        }
        tv_t l = tpl__iter_list(rt, line, v), r = tpl__list_new(ARENA, l.u.l->n);
        for (size_t i = l.u.l->n; i-- > 0;)
            tpl__list_push(ARENA, r, l.u.l->v[i]);
        return r;
    }
    if (!strcmp(name, "items")) {
        if (v.type == TV_UNDEF)
            return tpl__list_new(ARENA, 0);
        if (v.type != TV_DICT)
            tpl__rt_fail(rt, line, "items filter: can only get item pairs from a mapping");
        return tpl__call_method(rt, line, v, "items", NULL, 0, NULL, NULL, 0);
    }
    if (!strcmp(name, "join")) {
        tv_t sep = ARG("d", 0, tpl__str("", 0));
        tv_t attr = ARG("attribute", 1, none);
        tv_t l = tpl__iter_list(rt, line, v);
        tpl__sb_t sb = {.a = ARENA};
        tpl__sb_add(&sb, "", 0);
        for (size_t i = 0; i < l.u.l->n; i++) {
            if (i)
                tpl__str_of(&sb, sep);
            tv_t x = l.u.l->v[i];
            if (attr.type != TV_NONE)
                x = tpl__attr_path(rt, line, x, attr);
            tpl__str_of(&sb, x);
        }
        return tpl__str(sb.p, sb.n);
    }
    if (!strcmp(name, "map")) {
        tv_t attr = ARG("attribute", -1, none);
        tv_t l = tpl__iter_list(rt, line, v), r = tpl__list_new(ARENA, l.u.l->n);
        if (attr.type != TV_NONE) {
            tv_t dflt = ARG("default", -1, tpl__undef(NULL));
            for (size_t i = 0; i < l.u.l->n; i++) {
                tv_t x = tpl__attr_path(rt, line, l.u.l->v[i], attr);
                tpl__list_push(ARENA, r, x.type == TV_UNDEF ? dflt : x);
            }
            return r;
        }
        if (nargs < 1 || args[0].type != TV_STR)
            tpl__rt_fail(rt, line, "map needs a filter name or attribute=");
        const char *fn = tpl__strndup(ARENA, args[0].u.s.p, args[0].u.s.n);
        if (!tpl__filter_known(fn))
            tpl__fail(&rt->c, TPL_EUNSUPPORTED, line, "line %d: unsupported filter '%s'", line, fn);
        for (size_t i = 0; i < l.u.l->n; i++)
            tpl__list_push(ARENA, r,
                           tpl__apply_filter(rt, f, fn, line, l.u.l->v[i], args + 1, nargs - 1,
                                             kwn, kwv, nkw));
        return r;
    }
    if (!strcmp(name, "select") || !strcmp(name, "reject"))
        return select_like(rt, f, line, v, args, nargs, false, name[0] == 's');
    if (!strcmp(name, "selectattr") || !strcmp(name, "rejectattr"))
        return select_like(rt, f, line, v, args, nargs, true, name[0] == 's');
    if (!strcmp(name, "unique")) {
        tv_t l = tpl__iter_list(rt, line, v), r = tpl__list_new(ARENA, 0);
        tv_t attr = ARG("attribute", 1, none);
        bool cs = tpl__truthy(ARG("case_sensitive", 0, tpl__bool(false)));
        tv_t seen = tpl__list_new(ARENA, 0);
        for (size_t i = 0; i < l.u.l->n; i++) {
            tv_t k = attr.type != TV_NONE ? tpl__attr_path(rt, line, l.u.l->v[i], attr) : l.u.l->v[i];
            if (!cs && k.type == TV_STR)
                k = tpl__map_case(rt, k, 0);
            bool dup = false;
            for (size_t j = 0; j < seen.u.l->n && !dup; j++)
                dup = tpl__equal(seen.u.l->v[j], k);
            if (!dup) {
                tpl__list_push(ARENA, seen, k);
                tpl__list_push(ARENA, r, l.u.l->v[i]);
            }
        }
        return r;
    }
    if (!strcmp(name, "sort") || !strcmp(name, "dictsort")) {
        bool dict = name[0] == 'd';
        tv_t l = dict ? tpl__call_method(rt, line, v, "items", NULL, 0, NULL, NULL, 0)
                      : tpl__iter_list(rt, line, v);
        bool cs = tpl__truthy(ARG("case_sensitive", dict ? 0 : 1, tpl__bool(false)));
        bool rev = tpl__truthy(ARG("reverse", dict ? 2 : 0, tpl__bool(false)));
        tv_t attr = dict ? none : ARG("attribute", 2, none);
        tv_t *keys = tpl__alloc(ARENA, (l.u.l->n + 1) * sizeof(tv_t));
        for (size_t i = 0; i < l.u.l->n; i++) {
            tv_t x = l.u.l->v[i];
            keys[i] = dict ? x.u.l->v[0] : attr.type != TV_NONE ? tpl__attr_path(rt, line, x, attr) : x;
        }
        return sorted(rt, line, l, keys, rev, !cs);
    }
    if (!strcmp(name, "sum") || !strcmp(name, "min") || !strcmp(name, "max")) {
        tv_t l = tpl__iter_list(rt, line, v);
        tv_t attr = ARG("attribute", name[1] == 'u' ? 0 : 1, none);
        if (name[1] == 'u') {
            tv_t acc = ARG("start", 1, tpl__int(0));
            for (size_t i = 0; i < l.u.l->n; i++) {
                tv_t x = attr.type != TV_NONE ? tpl__attr_path(rt, line, l.u.l->v[i], attr) : l.u.l->v[i];
                if (!tpl__is_num(x) || !tpl__is_num(acc))
                    tpl__rt_fail(rt, line, "sum of non-numbers");
                acc = acc.type == TV_FLOAT || x.type == TV_FLOAT ? tpl__float(tpl__num(acc) + tpl__num(x))
                                                                 : tpl__int(acc.u.i + x.u.i);
            }
            return acc;
        }
        if (l.u.l->n == 0)
            return tpl__undef(NULL);
        bool cs = tpl__truthy(ARG("case_sensitive", 0, tpl__bool(false)));
        tv_t best = l.u.l->v[0];
        for (size_t i = 1; i < l.u.l->n; i++) {
            tv_t a = attr.type != TV_NONE ? tpl__attr_path(rt, line, l.u.l->v[i], attr) : l.u.l->v[i];
            tv_t b = attr.type != TV_NONE ? tpl__attr_path(rt, line, best, attr) : best;
            int c = tpl__cmp_sort(rt, line, a, b, !cs);
            if (name[1] == 'i' ? c < 0 : c > 0)
                best = l.u.l->v[i];
        }
        return best;
    }
    if (!strcmp(name, "abs")) {
        if (v.type == TV_INT || v.type == TV_BOOL)
            return tpl__int(v.u.i < 0 ? -v.u.i : v.u.i);
        if (v.type == TV_FLOAT)
            return tpl__float(fabs(v.u.f));
        tpl__rt_fail(rt, line, "bad operand type for abs()");
    }
    if (!strcmp(name, "round")) {
        tv_t prec = ARG("precision", 0, tpl__int(0));
        tv_t method = ARG("method", 1, tpl__strz("common"));
        if (!tpl__is_num(v))
            tpl__rt_fail(rt, line, "round filter needs a number");
        double x = tpl__num(v);
        int64_t nd = prec.type == TV_INT ? prec.u.i : 0;
        double m = pow(10.0, (double)nd);
        if (method.type == TV_STR && method.u.s.n == 4 && !memcmp(method.u.s.p, "ceil", 4))
            return tpl__float(ceil(x * m) / m);
        if (method.type == TV_STR && method.u.s.n == 5 && !memcmp(method.u.s.p, "floor", 5))
            return tpl__float(floor(x * m) / m);
        return tpl__float(py_round(x, nd));
    }
    if (!strcmp(name, "int") || !strcmp(name, "float"))
        tpl__need_defined(rt, line, v); /* int(Undefined) raises in jinja2 */
    if (!strcmp(name, "int")) {
        tv_t dflt = ARG("default", 0, tpl__int(0));
        if (v.type == TV_INT || v.type == TV_BOOL)
            return tpl__int(v.u.i);
        if (v.type == TV_FLOAT)
            return isfinite(v.u.f) ? tpl__int((int64_t)v.u.f) : dflt;
        if (v.type == TV_STR) {
            char *s = tpl__strndup(ARENA, v.u.s.p, v.u.s.n), *e;
            long long i = strtoll(s, &e, 10);
            while (*e && tpl__is_ws(*e))
                e++;
            if (*e == 0 && e != s)
                return tpl__int(i);
            double d = strtod(s, &e);
            while (*e && tpl__is_ws(*e))
                e++;
            if (*e == 0 && e != s && isfinite(d))
                return tpl__int((int64_t)d);
        }
        return dflt;
    }
    if (!strcmp(name, "float")) {
        tv_t dflt = ARG("default", 0, tpl__float(0.0));
        if (tpl__is_num(v))
            return tpl__float(tpl__num(v));
        if (v.type == TV_STR) {
            char *s = tpl__strndup(ARENA, v.u.s.p, v.u.s.n), *e;
            double d = strtod(s, &e);
            while (*e && tpl__is_ws(*e))
                e++;
            if (*e == 0 && e != s)
                return tpl__float(d);
        }
        return dflt;
    }
    if (!strcmp(name, "wordcount")) {
        tv_t s = tpl__to_str(rt, v);
        int64_t n = 0;
        bool in = false;
        for (size_t i = 0; i < s.u.s.n; i++) {
            char c = s.u.s.p[i];
            bool w = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                     c == '_' || (unsigned char)c >= 0x80;
            if (w && !in)
                n++;
            in = w;
        }
        return tpl__int(n);
    }
    if (!strcmp(name, "indent")) {
        tv_t s = tpl__to_str(rt, v);
        tv_t width = ARG("width", 0, tpl__int(4));
        bool first = tpl__truthy(ARG("first", 1, tpl__bool(false)));
        bool blank = tpl__truthy(ARG("blank", 2, tpl__bool(false)));
        tpl__sb_t pad = {.a = ARENA};
        tpl__sb_add(&pad, "", 0);
        if (width.type == TV_STR)
            tpl__sb_add(&pad, width.u.s.p, width.u.s.n);
        else
            for (int64_t i = 0; i < (width.type == TV_INT ? width.u.i : 4); i++)
                tpl__sb_addc(&pad, ' ');
        tpl__sb_t sb = {.a = ARENA};
        tpl__sb_add(&sb, "", 0);
        size_t st = 0;
        bool first_line = true;
        for (size_t i = 0; i <= s.u.s.n; i++) {
            if (i < s.u.s.n && s.u.s.p[i] != '\n')
                continue;
            size_t ln = i - st;
            bool add = first_line ? first : (blank || ln > 0);
            if (add)
                tpl__sb_add(&sb, pad.p, pad.n);
            tpl__sb_add(&sb, s.u.s.p + st, ln);
            if (i < s.u.s.n)
                tpl__sb_addc(&sb, '\n');
            st = i + 1;
            first_line = false;
        }
        return tpl__str(sb.p, sb.n);
    }
    /* string filters: jinja2 converts the operand with str() first */
    if (v.type == TV_UNDEF && strcmp(name, "upper") && strcmp(name, "lower"))
        v = tpl__str("", 0);
    tv_t s = tpl__to_str(rt, v);
    if (!strcmp(name, "trim"))
        return tpl__strip(rt, line, s, ARG("chars", 0, none), true, true);
    if (!strcmp(name, "upper"))
        return tpl__map_case(rt, s, 1);
    if (!strcmp(name, "lower"))
        return tpl__map_case(rt, s, 0);
    if (!strcmp(name, "capitalize")) {
        return tpl__map_case(rt, s, 3);
    }
    if (!strcmp(name, "title"))
        return tpl__title_filter(rt, s);
    if (!strcmp(name, "replace")) {
        tv_t cnt = ARG("count", 2, none);
        return tpl__replace(rt, line, s, ARG("old", 0, none), ARG("new", 1, none),
                       cnt.type == TV_INT ? cnt.u.i : -1);
    }
#undef ARG
    tpl__fail(&rt->c, TPL_EUNSUPPORTED, line, "line %d: unsupported filter '%s'", line, name);
}


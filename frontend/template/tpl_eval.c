/* tpl_eval: tree-walking evaluator and the public compile/render entry points.
 *
 * Scoping follows jinja2: the template body and {% if %} share one frame;
 * every iteration of a {% for %} gets a fresh frame whose parent is the
 * enclosing one, so a {% set %} inside a loop body never leaks out of the
 * iteration (namespace() objects are how templates carry state out); a macro
 * call gets a frame whose parent is the template's top-level frame.
 * Undefined values behave as jinja2's default Undefined: falsy, render as '',
 * iterate as empty, and fail on attribute access or arithmetic.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tpl_int.h"

// --- errors -------------------------------------------------------------------

const char *tpl_strerror(int err)
{
    switch (err) {
#define XX(name, val, msg)                                                                          \
    case name: return msg;
        TPL_ERRNO_MAP(XX)
#undef XX
    default: return err < 0 ? strerror(-err) : "success";
    }
}

void tpl__fail(tpl__ctx_t *ctx, int code, int line, const char *fmt, ...)
{
    if (ctx->err) {
        ctx->err->code = code;
        ctx->err->line = line;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(ctx->err->msg, sizeof ctx->err->msg, fmt, ap);
        va_end(ap);
    }
    longjmp(ctx->jb, code);
}

void tpl_buf_free(tpl_buf_t *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

// --- frames -------------------------------------------------------------------

struct tpl__frame {
    tpl__frame_t *parent;
    const char **names;
    tv_t *vals;
    int n, cap;
};

static tpl__frame_t *frame_new(tpl__rt_t *rt, tpl__frame_t *parent)
{
    tpl__frame_t *f = tpl__alloc(rt->c.arena, sizeof(*f));
    f->parent = parent;
    return f;
}

static void frame_set(tpl__rt_t *rt, tpl__frame_t *f, const char *name, tv_t v)
{
    for (int i = 0; i < f->n; i++)
        if (strcmp(f->names[i], name) == 0) {
            f->vals[i] = v;
            return;
        }
    if (f->n == f->cap) {
        int cap = f->cap ? f->cap * 2 : 8;
        const char **nn = tpl__alloc(rt->c.arena, (size_t)cap * sizeof(*nn));
        tv_t *nv = tpl__alloc(rt->c.arena, (size_t)cap * sizeof(*nv));
        if (f->n) {
            memcpy(nn, f->names, (size_t)f->n * sizeof(*nn));
            memcpy(nv, f->vals, (size_t)f->n * sizeof(*nv));
        }
        f->names = nn;
        f->vals = nv;
        f->cap = cap;
    }
    f->names[f->n] = name;
    f->vals[f->n++] = v;
}

static bool frame_get(const tpl__frame_t *f, const char *name, tv_t *out)
{
    for (; f; f = f->parent)
        for (int i = f->n - 1; i >= 0; i--)
            if (strcmp(f->names[i], name) == 0) {
                *out = f->vals[i];
                return true;
            }
    return false;
}

static const char *const BUILTIN_NAMES[BI_COUNT] = {
    [BI_RANGE] = "range",          [BI_NAMESPACE] = "namespace", [BI_RAISE] = "raise_exception",
    [BI_STRFTIME] = "strftime_now", [BI_DICT] = "dict",
};

static tv_t lookup(tpl__rt_t *rt, tpl__frame_t *f, const char *name)
{
    tv_t v;
    if (frame_get(f, name, &v))
        return v;
    for (int i = 0; i < BI_COUNT; i++)
        if (strcmp(BUILTIN_NAMES[i], name) == 0) {
            v = (tv_t){.type = TV_FUNC};
            v.u.fn.builtin = i;
            return v;
        }
    return tpl__undef(name);
}

// --- expressions ------------------------------------------------------------------

__attribute__((noreturn)) static void undef_fail(tpl__rt_t *rt, int line, tv_t v)
{
    if (v.u.s.p)
        tpl__fail(&rt->c, TPL_ERUNTIME, line, "line %d: '%s' is undefined", line, v.u.s.p);
    tpl__fail(&rt->c, TPL_ERUNTIME, line, "line %d: undefined value used", line);
}

__attribute__((noreturn)) static void type_fail(tpl__rt_t *rt, int line, const char *op, tv_t a,
                                                tv_t b)
{
    if (a.type == TV_UNDEF)
        undef_fail(rt, line, a);
    if (b.type == TV_UNDEF)
        undef_fail(rt, line, b);
    tpl__fail(&rt->c, TPL_ERUNTIME, line,
              "line %d: unsupported operand type(s) for %s: '%s' and '%s'", line, op,
              tpl__type_name(a), tpl__type_name(b));
}

static int64_t floordiv_i(int64_t a, int64_t b)
{
    int64_t q = a / b;
    if ((a % b != 0) && ((a < 0) != (b < 0)))
        q--;
    return q;
}

static tv_t arith(tpl__rt_t *rt, int line, int op, tv_t a, tv_t b)
{
    static const char *const names[] = {['+'] = "+", ['-'] = "-", ['*'] = "*", ['/'] = "/",
                                        ['f'] = "//", ['%'] = "%", ['p'] = "**"};
    const char *opn = names[op];
    tpl__arena_t *ar = rt->c.arena;
    if (op == '+' && a.type == TV_STR && b.type == TV_STR) {
        if (a.u.s.n + b.u.s.n > TPL__MAX_STR)
            longjmp(rt->c.jb, -ENOMEM);
        char *p = tpl__alloc(ar, a.u.s.n + b.u.s.n + 1);
        memcpy(p, a.u.s.p, a.u.s.n);
        memcpy(p + a.u.s.n, b.u.s.p, b.u.s.n);
        return tpl__str(p, a.u.s.n + b.u.s.n);
    }
    if (op == '+' && a.type == TV_LIST && b.type == TV_LIST) {
        tv_t r = tpl__list_new(ar, a.u.l->n + b.u.l->n);
        for (size_t i = 0; i < a.u.l->n; i++)
            tpl__list_push(ar, r, a.u.l->v[i]);
        for (size_t i = 0; i < b.u.l->n; i++)
            tpl__list_push(ar, r, b.u.l->v[i]);
        r.flags = a.flags & TVF_TUPLE;
        if ((a.flags & TVF_TUPLE) != (b.flags & TVF_TUPLE))
            type_fail(rt, line, opn, a, b);
        return r;
    }
    if (op == '*' && (a.type == TV_STR || a.type == TV_LIST) &&
        (b.type == TV_INT || b.type == TV_BOOL)) {
        tv_t t = a;
        a = b;
        b = t;
    }
    if (op == '*' && (a.type == TV_INT || a.type == TV_BOOL) &&
        (b.type == TV_STR || b.type == TV_LIST)) {
        int64_t k = a.u.i < 0 ? 0 : a.u.i;
        if (b.type == TV_STR) {
            if (b.u.s.n && (uint64_t)k > (1u << 28) / b.u.s.n)
                tpl__fail(&rt->c, TPL_ERUNTIME, line, "line %d: string repetition too large",
                          line);
            tpl__sb_t sb = {.a = ar};
            tpl__sb_add(&sb, "", 0);
            for (int64_t i = 0; i < k; i++)
                tpl__sb_add(&sb, b.u.s.p, b.u.s.n);
            return tpl__str(sb.p, sb.n);
        }
        if (b.u.l->n && (uint64_t)k > (1u << 24) / b.u.l->n)
            tpl__fail(&rt->c, TPL_ERUNTIME, line, "line %d: list repetition too large", line);
        tv_t r = tpl__list_new(ar, 0);
        r.flags = b.flags;
        for (int64_t i = 0; i < k; i++)
            for (size_t j = 0; j < b.u.l->n; j++)
                tpl__list_push(ar, r, b.u.l->v[j]);
        return r;
    }
    if (op == '%' && a.type == TV_STR)
        tpl__fail(&rt->c, TPL_EUNSUPPORTED, line,
                  "line %d: unsupported construct: printf-style string formatting with '%%'", line);
    if (!tpl__is_num(a) || !tpl__is_num(b))
        type_fail(rt, line, opn, a, b);
    bool fl = a.type == TV_FLOAT || b.type == TV_FLOAT || op == '/';
    if (!fl) {
        int64_t x = a.u.i, y = b.u.i, r;
        switch (op) {
        case '+':
            if (__builtin_add_overflow(x, y, &r))
                break;
            return tpl__int(r);
        case '-':
            if (__builtin_sub_overflow(x, y, &r))
                break;
            return tpl__int(r);
        case '*':
            if (__builtin_mul_overflow(x, y, &r))
                break;
            return tpl__int(r);
        case 'f':
        case '%':
            if (y == 0)
                tpl__fail(&rt->c, TPL_ERUNTIME, line, "line %d: integer division or modulo by zero",
                          line);
            if (x == INT64_MIN && y == -1)
                break;
            return op == 'f' ? tpl__int(floordiv_i(x, y)) : tpl__int(x - floordiv_i(x, y) * y);
        case 'p':
            if (y < 0) {
                fl = true;
                break;
            }
            r = 1;
            for (int64_t i = 0; i < y; i++)
                if (__builtin_mul_overflow(r, x, &r))
                    tpl__fail(&rt->c, TPL_ERUNTIME, line, "line %d: integer overflow", line);
            return tpl__int(r);
        }
        if (!fl)
            tpl__fail(&rt->c, TPL_ERUNTIME, line, "line %d: integer overflow", line);
    }
    double x = tpl__num(a), y = tpl__num(b);
    switch (op) {
    case '+': return tpl__float(x + y);
    case '-': return tpl__float(x - y);
    case '*': return tpl__float(x * y);
    case '/':
        if (y == 0)
            tpl__fail(&rt->c, TPL_ERUNTIME, line, "line %d: division by zero", line);
        return tpl__float(x / y);
    case 'f':
    case '%': {
        if (y == 0)
            tpl__fail(&rt->c, TPL_ERUNTIME, line, "line %d: float modulo or division by zero",
                      line);
        double m = __builtin_fmod(x, y);
        if (m != 0 && ((m < 0) != (y < 0)))
            m += y;
        if (op == '%')
            return tpl__float(m);
        return tpl__float(__builtin_floor((x - m) / y + 0.5));
    }
    default: return tpl__float(__builtin_pow(x, y));
    }
}

static int ordering(tpl__rt_t *rt, int line, tv_t a, tv_t b, const char *op)
{
    if (tpl__is_num(a) && tpl__is_num(b)) {
        if (a.type != TV_FLOAT && b.type != TV_FLOAT)
            return (a.u.i > b.u.i) - (a.u.i < b.u.i);
        double x = tpl__num(a), y = tpl__num(b);
        return (x > y) - (x < y);
    }
    if (a.type == TV_STR && b.type == TV_STR) {
        size_t n = a.u.s.n < b.u.s.n ? a.u.s.n : b.u.s.n;
        int c = memcmp(a.u.s.p, b.u.s.p, n);
        if (c)
            return c < 0 ? -1 : 1;
        return (a.u.s.n > b.u.s.n) - (a.u.s.n < b.u.s.n);
    }
    if (a.type == TV_LIST && b.type == TV_LIST) {
        for (size_t i = 0; i < a.u.l->n && i < b.u.l->n; i++)
            if (!tpl__equal(a.u.l->v[i], b.u.l->v[i]))
                return ordering(rt, line, a.u.l->v[i], b.u.l->v[i], op);
        return (a.u.l->n > b.u.l->n) - (a.u.l->n < b.u.l->n);
    }
    if (a.type == TV_UNDEF)
        undef_fail(rt, line, a);
    if (b.type == TV_UNDEF)
        undef_fail(rt, line, b);
    tpl__fail(&rt->c, TPL_ERUNTIME, line,
              "line %d: '%s' not supported between instances of '%s' and '%s'", line, op,
              tpl__type_name(a), tpl__type_name(b));
}

static bool contains(tpl__rt_t *rt, int line, tv_t item, tv_t c)
{
    switch (c.type) {
    case TV_STR:
        if (item.type != TV_STR) {
            if (item.type == TV_UNDEF)
                undef_fail(rt, line, item);
            tpl__fail(&rt->c, TPL_ERUNTIME, line,
                      "line %d: 'in <string>' requires string as left operand, not %s", line,
                      tpl__type_name(item));
        }
        if (item.u.s.n == 0)
            return true;
        if (item.u.s.n > c.u.s.n)
            return false;
        for (size_t i = 0; i + item.u.s.n <= c.u.s.n; i++)
            if (memcmp(c.u.s.p + i, item.u.s.p, item.u.s.n) == 0)
                return true;
        return false;
    case TV_LIST:
        for (size_t i = 0; i < c.u.l->n; i++)
            if (tpl__equal(c.u.l->v[i], item))
                return true;
        return false;
    case TV_DICT: {
        tv_t o;
        return tpl__dict_get(c, item, &o);
    }
    case TV_UNDEF: return false;
    default:
        tpl__fail(&rt->c, TPL_ERUNTIME, line, "line %d: argument of type '%s' is not iterable",
                  line, tpl__type_name(c));
    }
}

static bool compare(tpl__rt_t *rt, int line, int op, tv_t a, tv_t b)
{
    switch (op) {
    case CMP_EQ: return tpl__equal(a, b);
    case CMP_NE: return !tpl__equal(a, b);
    case CMP_LT: return ordering(rt, line, a, b, "<") < 0;
    case CMP_LE: return ordering(rt, line, a, b, "<=") <= 0;
    case CMP_GT: return ordering(rt, line, a, b, ">") > 0;
    case CMP_GE: return ordering(rt, line, a, b, ">=") >= 0;
    case CMP_IN: return contains(rt, line, a, b);
    default: return !contains(rt, line, a, b);
    }
}

/* Evaluate call arguments into arrays. */
static void eval_args(tpl__rt_t *rt, tpl__frame_t *f, const tpl__node_t *n, tv_t **args,
                      tv_t **kwv)
{
    *args = n->nargs ? tpl__alloc(rt->c.arena, (size_t)n->nargs * sizeof(tv_t)) : NULL;
    *kwv = n->nkw ? tpl__alloc(rt->c.arena, (size_t)n->nkw * sizeof(tv_t)) : NULL;
    for (int i = 0; i < n->nargs; i++)
        (*args)[i] = tpl__eval(rt, f, n->args[i]);
    for (int i = 0; i < n->nkw; i++)
        (*kwv)[i] = tpl__eval(rt, f, n->kwv[i]);
}

static tv_t call_value(tpl__rt_t *rt, int line, tv_t fn, tv_t *args, int nargs,
                       const char **kwn, tv_t *kwv, int nkw)
{
    if (fn.type != TV_FUNC) {
        if (fn.type == TV_UNDEF)
            undef_fail(rt, line, fn);
        tpl__fail(&rt->c, TPL_ERUNTIME, line, "line %d: '%s' object is not callable", line,
                  tpl__type_name(fn));
    }
    if (fn.u.fn.builtin < 0)
        return tpl__call_macro(rt, line, fn.u.fn.macro, args, nargs, kwn, kwv, nkw);
    return tpl__call_builtin(rt, fn.u.fn.builtin, line, args, nargs, kwn, kwv, nkw);
}

/* Python slice semantics (list or str by code point). */
static tv_t do_slice(tpl__rt_t *rt, int line, tv_t obj, tv_t *parts)
{
    int64_t len;
    tv_t seq = obj;
    if (obj.type == TV_STR)
        seq = tpl__iter_list(rt, line, obj);
    else if (obj.type == TV_UNDEF)
        undef_fail(rt, line, obj);
    else if (obj.type != TV_LIST)
        tpl__fail(&rt->c, TPL_ERUNTIME, line, "line %d: '%s' object is not subscriptable", line,
                  tpl__type_name(obj));
    len = (int64_t)seq.u.l->n;
    int64_t v[3];
    bool has[3];
    for (int i = 0; i < 3; i++) {
        has[i] = parts[i].type != TV_NONE && parts[i].type != TV_UNDEF;
        if (has[i] && parts[i].type != TV_INT && parts[i].type != TV_BOOL)
            tpl__fail(&rt->c, TPL_ERUNTIME, line,
                      "line %d: slice indices must be integers or None", line);
        v[i] = has[i] ? parts[i].u.i : 0;
    }
    int64_t step = has[2] ? v[2] : 1;
    if (step == 0)
        tpl__fail(&rt->c, TPL_ERUNTIME, line, "line %d: slice step cannot be zero", line);
    int64_t start, stop;
    if (step > 0) {
        start = has[0] ? v[0] : 0;
        stop = has[1] ? v[1] : len;
        if (start < 0)
            start = start + len < 0 ? 0 : start + len;
        if (start > len)
            start = len;
        if (stop < 0)
            stop = stop + len < 0 ? 0 : stop + len;
        if (stop > len)
            stop = len;
    } else {
        start = has[0] ? v[0] : len - 1;
        stop = has[1] ? v[1] : -1 - len;
        if (start < 0)
            start = start + len < 0 ? -1 : start + len;
        if (start >= len)
            start = len - 1;
        if (stop < 0)
            stop = stop + len < 0 ? -1 : stop + len;
        if (stop >= len)
            stop = len - 1;
    }
    tv_t r = tpl__list_new(rt->c.arena, 0);
    r.flags = seq.flags & TVF_TUPLE;
    for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step)
        tpl__list_push(rt->c.arena, r, seq.u.l->v[i]);
    if (obj.type != TV_STR)
        return r;
    tpl__sb_t sb = {.a = rt->c.arena};
    tpl__sb_add(&sb, "", 0);
    for (size_t i = 0; i < r.u.l->n; i++)
        tpl__sb_add(&sb, r.u.l->v[i].u.s.p, r.u.l->v[i].u.s.n);
    return tpl__str(sb.p, sb.n);
}

tv_t tpl__eval(tpl__rt_t *rt, tpl__frame_t *f, const tpl__node_t *n)
{
    tpl__arena_t *ar = rt->c.arena;
    switch (n->kind) {
    case N_LIT: return n->lit;
    case N_NAME: return lookup(rt, f, n->name);
    case N_LIST:
    case N_TUPLE: {
        tv_t l = tpl__list_new(ar, (size_t)n->nargs);
        for (int i = 0; i < n->nargs; i++)
            tpl__list_push(ar, l, tpl__eval(rt, f, n->args[i]));
        if (n->kind == N_TUPLE)
            l.flags = TVF_TUPLE;
        return l;
    }
    case N_DICT: {
        tv_t d = tpl__dict_new(ar, (size_t)n->nargs);
        for (int i = 0; i < n->nargs; i++) {
            tv_t k = tpl__eval(rt, f, n->args[i]);
            tpl__dict_set(ar, d, k, tpl__eval(rt, f, n->kwv[i]));
        }
        return d;
    }
    case N_ATTR: return tpl__getattr(rt, n->line, tpl__eval(rt, f, n->a), n->name);
    case N_ITEM: {
        tv_t o = tpl__eval(rt, f, n->a);
        return tpl__getitem(rt, n->line, o, tpl__eval(rt, f, n->b));
    }
    case N_SLICE: {
        tv_t o = tpl__eval(rt, f, n->a);
        tv_t parts[3];
        for (int i = 0; i < 3; i++)
            parts[i] = n->args[i] ? tpl__eval(rt, f, n->args[i]) : tpl__none();
        return do_slice(rt, n->line, o, parts);
    }
    case N_CALL: {
        tv_t *args, *kwv;
        if (n->a->kind == N_ATTR) {
            tv_t obj = tpl__eval(rt, f, n->a->a);
            if (obj.type == TV_STR || obj.type == TV_LIST ||
                (obj.type == TV_DICT && !(obj.flags & TVF_NAMESPACE))) {
                eval_args(rt, f, n, &args, &kwv);
                return tpl__call_method(rt, n->line, obj, n->a->name, args, n->nargs, n->kwn,
                                        kwv, n->nkw);
            }
            tv_t fn = tpl__getattr(rt, n->line, obj, n->a->name);
            eval_args(rt, f, n, &args, &kwv);
            return call_value(rt, n->line, fn, args, n->nargs, n->kwn, kwv, n->nkw);
        }
        tv_t fn = tpl__eval(rt, f, n->a);
        eval_args(rt, f, n, &args, &kwv);
        return call_value(rt, n->line, fn, args, n->nargs, n->kwn, kwv, n->nkw);
    }
    case N_FILTER: {
        tv_t v = tpl__eval(rt, f, n->a);
        tv_t *args, *kwv;
        eval_args(rt, f, n, &args, &kwv);
        return tpl__apply_filter(rt, f, n->name, n->line, v, args, n->nargs, n->kwn, kwv, n->nkw);
    }
    case N_TEST: {
        tv_t v = tpl__eval(rt, f, n->a);
        tv_t *args, *kwv;
        eval_args(rt, f, n, &args, &kwv);
        bool r = tpl__apply_test(rt, n->name, n->line, v, args, n->nargs);
        return tpl__bool(n->op ? !r : r);
    }
    case N_NEG:
    case N_POS: {
        tv_t v = tpl__eval(rt, f, n->a);
        if (v.type == TV_INT || v.type == TV_BOOL) {
            if (n->kind == N_POS)
                return tpl__int(v.u.i);
            if (v.u.i == INT64_MIN)
                tpl__fail(&rt->c, TPL_ERUNTIME, n->line, "line %d: integer overflow", n->line);
            return tpl__int(-v.u.i);
        }
        if (v.type == TV_FLOAT)
            return tpl__float(n->kind == N_NEG ? -v.u.f : v.u.f);
        if (v.type == TV_UNDEF)
            undef_fail(rt, n->line, v);
        tpl__fail(&rt->c, TPL_ERUNTIME, n->line, "line %d: bad operand type for unary %c: '%s'",
                  n->line, n->kind == N_NEG ? '-' : '+', tpl__type_name(v));
    }
    case N_NOT: return tpl__bool(!tpl__truthy(tpl__eval(rt, f, n->a)));
    case N_AND: {
        tv_t a = tpl__eval(rt, f, n->a);
        return tpl__truthy(a) ? tpl__eval(rt, f, n->b) : a;
    }
    case N_OR: {
        tv_t a = tpl__eval(rt, f, n->a);
        return tpl__truthy(a) ? a : tpl__eval(rt, f, n->b);
    }
    case N_BIN: {
        tv_t a = tpl__eval(rt, f, n->a), b = tpl__eval(rt, f, n->b);
        if (n->op == '~') {
            tpl__sb_t sb = {.a = ar};
            tpl__sb_add(&sb, "", 0);
            tpl__str_of(&sb, a);
            tpl__str_of(&sb, b);
            return tpl__str(sb.p, sb.n);
        }
        return arith(rt, n->line, n->op, a, b);
    }
    case N_CMP: {
        tv_t left = tpl__eval(rt, f, n->a);
        for (int i = 0; i < n->nargs; i++) {
            tv_t right = tpl__eval(rt, f, n->args[i]);
            if (!compare(rt, n->line, n->ops[i], left, right))
                return tpl__bool(false);
            left = right;
        }
        return tpl__bool(true);
    }
    case N_COND:
        if (tpl__truthy(tpl__eval(rt, f, n->b)))
            return tpl__eval(rt, f, n->a);
        return n->c ? tpl__eval(rt, f, n->c) : tpl__undef(NULL);
    default:
        tpl__fail(&rt->c, TPL_ERUNTIME, n->line, "line %d: internal error: bad expression node",
                  n->line);
    }
}

// --- statements ---------------------------------------------------------------------

enum { FLOW_NORMAL = 0, FLOW_BREAK, FLOW_CONTINUE };

static int exec_body(tpl__rt_t *rt, tpl__frame_t *f, tpl__node_t **kids, int n, tpl__sb_t *out);

static void bind_targets(tpl__rt_t *rt, tpl__frame_t *f, const tpl__node_t *n, tv_t item)
{
    if (n->nnames == 1) {
        frame_set(rt, f, n->names[0], item);
        return;
    }
    tv_t seq = tpl__iter_list(rt, n->line, item);
    if ((int)seq.u.l->n != n->nnames)
        tpl__fail(&rt->c, TPL_ERUNTIME, n->line,
                  "line %d: cannot unpack %zu values into %d names", n->line, seq.u.l->n,
                  n->nnames);
    for (int i = 0; i < n->nnames; i++)
        frame_set(rt, f, n->names[i], seq.u.l->v[i]);
}

static void exec_for(tpl__rt_t *rt, tpl__frame_t *f, const tpl__node_t *n, tpl__sb_t *out)
{
    tpl__arena_t *ar = rt->c.arena;
    tv_t it = tpl__eval(rt, f, n->a);
    tv_t items = tpl__iter_list(rt, n->line, it);
    if (n->b) { /* "for x in y if cond": filter first, so loop.* counts survivors */
        tv_t kept = tpl__list_new(ar, items.u.l->n);
        for (size_t i = 0; i < items.u.l->n; i++) {
            tpl__frame_t *tf = frame_new(rt, f);
            bind_targets(rt, tf, n, items.u.l->v[i]);
            if (tpl__truthy(tpl__eval(rt, tf, n->b)))
                tpl__list_push(ar, kept, items.u.l->v[i]);
        }
        items = kept;
    }
    size_t len = items.u.l->n;
    if (len == 0) {
        exec_body(rt, f, n->els, n->nels, out);
        return;
    }
    for (size_t i = 0; i < len; i++) {
        tpl__frame_t *it_f = frame_new(rt, f);
        tv_t loop = tpl__dict_new(ar, 12);
        loop.flags = TVF_LOOP;
        tpl__dict_set(ar, loop, tpl__strz("index"), tpl__int((int64_t)i + 1));
        tpl__dict_set(ar, loop, tpl__strz("index0"), tpl__int((int64_t)i));
        tpl__dict_set(ar, loop, tpl__strz("revindex"), tpl__int((int64_t)(len - i)));
        tpl__dict_set(ar, loop, tpl__strz("revindex0"), tpl__int((int64_t)(len - i - 1)));
        tpl__dict_set(ar, loop, tpl__strz("first"), tpl__bool(i == 0));
        tpl__dict_set(ar, loop, tpl__strz("last"), tpl__bool(i + 1 == len));
        tpl__dict_set(ar, loop, tpl__strz("length"), tpl__int((int64_t)len));
        tpl__dict_set(ar, loop, tpl__strz("depth"), tpl__int(1));
        tpl__dict_set(ar, loop, tpl__strz("depth0"), tpl__int(0));
        if (i > 0)
            tpl__dict_set(ar, loop, tpl__strz("previtem"), items.u.l->v[i - 1]);
        if (i + 1 < len)
            tpl__dict_set(ar, loop, tpl__strz("nextitem"), items.u.l->v[i + 1]);
        frame_set(rt, it_f, "loop", loop);
        bind_targets(rt, it_f, n, items.u.l->v[i]);
        if (exec_body(rt, it_f, n->kids, n->nkids, out) == FLOW_BREAK)
            break;
    }
}

tv_t tpl__call_macro(tpl__rt_t *rt, int line, const tpl__node_t *m, tv_t *args, int nargs,
                     const char **kwn, tv_t *kwv, int nkw)
{
    if (nargs > m->nnames)
        tpl__fail(&rt->c, TPL_ERUNTIME, line, "line %d: macro '%s' takes not more than %d argument(s)",
                  line, m->name, m->nnames);
    tpl__frame_t *mf = frame_new(rt, rt->root);
    for (int i = 0; i < m->nnames; i++) {
        tv_t v = tpl__undef(m->names[i]);
        bool set = false;
        if (i < nargs) {
            v = args[i];
            set = true;
        }
        for (int k = 0; k < nkw; k++)
            if (strcmp(kwn[k], m->names[i]) == 0) {
                v = kwv[k];
                set = true;
            }
        if (!set && m->args[i])
            v = tpl__eval(rt, mf, m->args[i]);
        frame_set(rt, mf, m->names[i], v);
    }
    for (int k = 0; k < nkw; k++) {
        bool found = false;
        for (int i = 0; i < m->nnames; i++)
            found |= strcmp(kwn[k], m->names[i]) == 0;
        if (!found)
            tpl__fail(&rt->c, TPL_ERUNTIME, line, "line %d: macro '%s' has no argument '%s'", line,
                      m->name, kwn[k]);
    }
    if (++rt->call_depth > 100)
        tpl__fail(&rt->c, TPL_ERUNTIME, line, "line %d: maximum macro recursion depth exceeded",
                  line);
    tpl__sb_t sb = {.a = rt->c.arena};
    tpl__sb_add(&sb, "", 0);
    exec_body(rt, mf, m->kids, m->nkids, &sb);
    rt->call_depth--;
    return tpl__str(sb.p, sb.n);
}

static int exec_body(tpl__rt_t *rt, tpl__frame_t *f, tpl__node_t **kids, int n, tpl__sb_t *out)
{
    for (int i = 0; i < n; i++) {
        const tpl__node_t *s = kids[i];
        switch (s->kind) {
        case N_TEXT: tpl__sb_add(out, s->lit.u.s.p, s->lit.u.s.n); break;
        case N_OUT: tpl__str_of(out, tpl__eval(rt, f, s->a)); break;
        case N_BODY: {
            int fl = exec_body(rt, f, s->kids, s->nkids, out);
            if (fl)
                return fl;
            break;
        }
        case N_IF: {
            int fl = tpl__truthy(tpl__eval(rt, f, s->a)) ? exec_body(rt, f, s->kids, s->nkids, out)
                                                         : exec_body(rt, f, s->els, s->nels, out);
            if (fl)
                return fl;
            break;
        }
        case N_FOR: exec_for(rt, f, s, out); break;
        case N_SET: {
            tv_t v = tpl__eval(rt, f, s->a);
            bind_targets(rt, f, s, v);
            break;
        }
        case N_SETATTR: {
            tv_t ns = lookup(rt, f, s->name);
            if (ns.type != TV_DICT || !(ns.flags & TVF_NAMESPACE))
                tpl__fail(&rt->c, TPL_ERUNTIME, s->line,
                          "line %d: cannot assign attribute on non-namespace object '%s'", s->line,
                          s->name);
            tpl__dict_set(rt->c.arena, ns, tpl__strz(s->attr), tpl__eval(rt, f, s->a));
            break;
        }
        case N_SETBLOCK: {
            tpl__sb_t sb = {.a = rt->c.arena};
            tpl__sb_add(&sb, "", 0);
            exec_body(rt, f, s->kids, s->nkids, &sb);
            tpl__frame_t *tf = frame_new(rt, f);
            frame_set(rt, tf, "", tpl__str(sb.p, sb.n));
            frame_set(rt, f, s->name, tpl__eval(rt, tf, s->a));
            break;
        }
        case N_MACRO: {
            tv_t m = {.type = TV_FUNC};
            m.u.fn.builtin = -1;
            m.u.fn.macro = s;
            frame_set(rt, f, s->name, m);
            break;
        }
        case N_BREAK: return FLOW_BREAK;
        case N_CONTINUE: return FLOW_CONTINUE;
        default:
            tpl__fail(&rt->c, TPL_ERUNTIME, s->line, "line %d: internal error: bad statement",
                      s->line);
        }
    }
    return FLOW_NORMAL;
}

// --- public API --------------------------------------------------------------------------

struct tpl_template {
    tpl__arena_t arena;
    tpl__node_t *root;
};

static void set_err(tpl_error_t *err, int code, int line, const char *msg)
{
    if (!err)
        return;
    err->code = code;
    err->line = line;
    snprintf(err->msg, sizeof err->msg, "%s", msg);
}

int tpl_compile(const char *src, size_t len, tpl_template_t **out, tpl_error_t *err)
{
    *out = NULL;
    tpl_template_t *t = calloc(1, sizeof(*t));
    if (!t) {
        set_err(err, -ENOMEM, 0, "out of memory");
        return -ENOMEM;
    }
    tpl__ctx_t ctx = {.err = err, .arena = &t->arena};
    t->arena.oom = &ctx.jb;
    int rc = setjmp(ctx.jb);
    if (rc != 0) {
        if (rc == -ENOMEM)
            set_err(err, -ENOMEM, 0, "out of memory");
        tpl__arena_free(&t->arena);
        free(t);
        return rc;
    }
    /* jinja2 normalises newlines and drops one trailing newline */
    char *norm = tpl__alloc(&t->arena, len + 1);
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        if (src[i] == '\r') {
            norm[n++] = '\n';
            if (i + 1 < len && src[i + 1] == '\n')
                i++;
        } else {
            norm[n++] = src[i];
        }
    }
    if (n && norm[n - 1] == '\n')
        n--;
    t->root = tpl__parse(&ctx, norm, n);
    t->arena.oom = NULL;
    *out = t;
    return 0;
}

void tpl_destroy(tpl_template_t **t)
{
    if (!t || !*t)
        return;
    tpl__arena_free(&(*t)->arena);
    free(*t);
    *t = NULL;
}

static void load_json(tpl__rt_t *rt, const char *s, tv_t *out, const char *what, int want)
{
    char msg[200];
    if (!tpl__from_json(rt->c.arena, s, strlen(s), out, msg, sizeof msg))
        tpl__fail(&rt->c, TPL_EJSON, 0, "%s: %s", what, msg);
    if (out->type != want)
        tpl__fail(&rt->c, TPL_EJSON, 0, "%s: expected a JSON %s", what,
                  want == TV_LIST ? "array" : "object");
}

int tpl_render(const tpl_template_t *t, const tpl_vars_t *vars, tpl_buf_t *out, tpl_error_t *err)
{
    tpl__arena_t arena = {0};
    tpl__rt_t rt = {.c = {.err = err, .arena = &arena}};
    arena.oom = &rt.c.jb;
    int rc = setjmp(rt.c.jb);
    if (rc != 0) {
        if (rc == -ENOMEM)
            set_err(err, -ENOMEM, 0, "out of memory");
        tpl__arena_free(&arena);
        return rc;
    }
    tpl__frame_t *root = frame_new(&rt, NULL);
    rt.root = root;
    tv_t msgs = tpl__list_new(&arena, 0);
    if (vars && vars->messages_json)
        load_json(&rt, vars->messages_json, &msgs, "messages", TV_LIST);
    frame_set(&rt, root, "messages", msgs);
    frame_set(&rt, root, "tools", tpl__none());
    frame_set(&rt, root, "documents", tpl__none());
    frame_set(&rt, root, "add_generation_prompt",
              tpl__bool(vars && vars->add_generation_prompt));
    if (vars && vars->bos_token)
        frame_set(&rt, root, "bos_token", tpl__strz(vars->bos_token));
    if (vars && vars->eos_token)
        frame_set(&rt, root, "eos_token", tpl__strz(vars->eos_token));
    if (vars && vars->extra_json) {
        tv_t extra;
        load_json(&rt, vars->extra_json, &extra, "extra variables", TV_DICT);
        for (size_t i = 0; i < extra.u.d->n; i++)
            frame_set(&rt, root, tpl__strndup(&arena, extra.u.d->k[i].u.s.p, extra.u.d->k[i].u.s.n),
                      extra.u.d->v[i]);
    }
    tpl__sb_t sb = {.a = &arena};
    tpl__sb_add(&sb, "", 0);
    exec_body(&rt, root, t->root->kids, t->root->nkids, &sb);
    if (out->len + sb.n + 1 > out->cap) {
        size_t cap = out->cap ? out->cap : 256;
        while (cap < out->len + sb.n + 1)
            cap *= 2;
        char *p = realloc(out->data, cap);
        if (!p) {
            tpl__arena_free(&arena);
            set_err(err, -ENOMEM, 0, "out of memory");
            return -ENOMEM;
        }
        out->data = p;
        out->cap = cap;
    }
    memcpy(out->data + out->len, sb.p, sb.n);
    out->len += sb.n;
    out->data[out->len] = 0;
    tpl__arena_free(&arena);
    return 0;
}

/* tpl_parse: recursive-descent parser for the Jinja subset.
 *
 * Operator precedence follows
 * jinja2's parser: filters and tests bind tighter than unary minus' operand
 * chain, "+", and "not". Every unknown statement, filter or test is a
 * compile-time TPL_EUNSUPPORTED error naming it and its line.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tpl_int.h"

typedef tpl__tok_t tok_t;
typedef tpl__lexer_t lx_t;

// --- parser helpers ---------------------------------------------------------------

static tok_t *cur(lx_t *p)
{
    return &p->t[p->pos];
}

static tok_t *next(lx_t *p)
{
    tok_t *t = &p->t[p->pos];
    if (t->type != T_EOF)
        p->pos++;
    return t;
}

static bool is_op(const tok_t *t, const char *op)
{
    return t->type == T_OP && t->n == strlen(op) && memcmp(t->p, op, t->n) == 0;
}

static bool is_name(const tok_t *t, const char *nm)
{
    return t->type == T_NAME && t->n == strlen(nm) && memcmp(t->p, nm, t->n) == 0;
}

static const char *tok_desc(lx_t *p, const tok_t *t)
{
    switch (t->type) {
    case T_EOF: return "end of template";
    case T_TEXT: return "template text";
    case T_BLOCK_BEGIN: return "'{%'";
    case T_BLOCK_END: return "'%}'";
    case T_VAR_BEGIN: return "'{{'";
    case T_VAR_END: return "'}}'";
    case T_STRING: return "string literal";
    case T_INT:
    case T_FLOAT: return "number";
    default: {
        char *d = tpl__alloc(p->ctx->arena, t->n + 3);
        d[0] = '\'';
        memcpy(d + 1, t->p, t->n);
        d[t->n + 1] = '\'';
        return d;
    }
    }
}

__attribute__((noreturn)) static void unexpected(lx_t *p, const char *want)
{
    tok_t *t = cur(p);
    tpl__fail(p->ctx, TPL_ESYNTAX, t->line, "line %d: expected %s, got %s", t->line, want,
              tok_desc(p, t));
}

static void expect_op(lx_t *p, const char *op)
{
    if (!is_op(cur(p), op)) {
        char w[16];
        snprintf(w, sizeof w, "'%s'", op);
        unexpected(p, w);
    }
    next(p);
}

static const char *expect_name(lx_t *p)
{
    if (cur(p)->type != T_NAME)
        unexpected(p, "a name");
    tok_t *t = next(p);
    return tpl__strndup(p->ctx->arena, t->p, t->n);
}

static tpl__node_t *mk(lx_t *p, int kind, int line)
{
    tpl__node_t *n = tpl__alloc(p->ctx->arena, sizeof(*n));
    n->kind = kind;
    n->line = line;
    return n;
}

/* growable node-pointer vector */
typedef struct {
    tpl__node_t **v;
    int n, cap;
} nv_t;

static void nv_push(lx_t *p, nv_t *v, tpl__node_t *x)
{
    if (v->n == v->cap) {
        int cap = v->cap ? v->cap * 2 : 4;
        tpl__node_t **nn = tpl__alloc(p->ctx->arena, (size_t)cap * sizeof(*nn));
        if (v->n)
            memcpy(nn, v->v, (size_t)v->n * sizeof(*nn));
        v->v = nn;
        v->cap = cap;
    }
    v->v[v->n++] = x;
}

static tpl__node_t *parse_expr(lx_t *p);
static tpl__node_t *parse_or(lx_t *p);
static void enter(lx_t *p);
static tpl__node_t *parse_unary(lx_t *p, bool with_filter);

// --- expressions -------------------------------------------------------------------

/* (args, kw=args) after '(' has been seen as current token */
static void parse_call_args(lx_t *p, tpl__node_t *n)
{
    expect_op(p, "(");
    nv_t args = {0}, kwv = {0};
    const char **kwn = NULL;
    int nkw = 0, kwcap = 0;
    while (!is_op(cur(p), ")")) {
        if (args.n || nkw)
            expect_op(p, ",");
        if (is_op(cur(p), ")"))
            break;
        if (is_op(cur(p), "*") || is_op(cur(p), "**"))
            tpl__fail(p->ctx, TPL_EUNSUPPORTED, cur(p)->line,
                      "line %d: unsupported construct '*args/**kwargs' in call", cur(p)->line);
        if (cur(p)->type == T_NAME && is_op(&p->t[p->pos + 1], "=")) {
            const char *k = expect_name(p);
            next(p);
            if (nkw == kwcap) {
                kwcap = kwcap ? kwcap * 2 : 4;
                const char **nk = tpl__alloc(p->ctx->arena, (size_t)kwcap * sizeof(*nk));
                if (nkw)
                    memcpy(nk, kwn, (size_t)nkw * sizeof(*nk));
                kwn = nk;
            }
            kwn[nkw++] = k;
            nv_push(p, &kwv, parse_expr(p));
        } else {
            if (nkw)
                tpl__fail(p->ctx, TPL_ESYNTAX, cur(p)->line,
                          "line %d: positional argument after keyword argument", cur(p)->line);
            nv_push(p, &args, parse_expr(p));
        }
    }
    next(p);
    n->args = args.v;
    n->nargs = args.n;
    n->kwn = kwn;
    n->kwv = kwv.v;
    n->nkw = nkw;
}

static tpl__node_t *parse_primary(lx_t *p)
{
    tok_t *t = cur(p);
    tpl__node_t *n;
    switch (t->type) {
    case T_NAME:
        next(p);
        n = mk(p, N_LIT, t->line);
        if (is_name(t, "true") || is_name(t, "True")) {
            n->lit = tpl__bool(true);
        } else if (is_name(t, "false") || is_name(t, "False")) {
            n->lit = tpl__bool(false);
        } else if (is_name(t, "none") || is_name(t, "None")) {
            n->lit = tpl__none();
        } else {
            n->kind = N_NAME;
            n->name = tpl__strndup(p->ctx->arena, t->p, t->n);
        }
        return n;
    case T_STRING: {
        n = mk(p, N_LIT, t->line);
        tpl__sb_t b = {.a = p->ctx->arena};
        tpl__sb_add(&b, "", 0);
        while (cur(p)->type == T_STRING) { /* adjacent literals concatenate */
            tpl__sb_add(&b, cur(p)->p, cur(p)->n);
            next(p);
        }
        n->lit = tpl__str(b.p, b.n);
        return n;
    }
    case T_INT:
        next(p);
        n = mk(p, N_LIT, t->line);
        n->lit = tpl__int(t->i);
        return n;
    case T_FLOAT:
        next(p);
        n = mk(p, N_LIT, t->line);
        n->lit = tpl__float(t->f);
        return n;
    case T_OP:
        if (is_op(t, "(")) {
            next(p);
            if (is_op(cur(p), ")")) {
                next(p);
                n = mk(p, N_TUPLE, t->line);
                return n;
            }
            tpl__node_t *e = parse_expr(p);
            if (is_op(cur(p), ",")) {
                nv_t items = {0};
                nv_push(p, &items, e);
                while (is_op(cur(p), ",")) {
                    next(p);
                    if (is_op(cur(p), ")"))
                        break;
                    nv_push(p, &items, parse_expr(p));
                }
                e = mk(p, N_TUPLE, t->line);
                e->args = items.v;
                e->nargs = items.n;
            }
            expect_op(p, ")");
            return e;
        }
        if (is_op(t, "[")) {
            next(p);
            nv_t items = {0};
            while (!is_op(cur(p), "]")) {
                if (items.n)
                    expect_op(p, ",");
                if (is_op(cur(p), "]"))
                    break;
                nv_push(p, &items, parse_expr(p));
            }
            next(p);
            n = mk(p, N_LIST, t->line);
            n->args = items.v;
            n->nargs = items.n;
            return n;
        }
        if (is_op(t, "{")) {
            next(p);
            nv_t keys = {0}, vals = {0};
            while (!is_op(cur(p), "}")) {
                if (keys.n)
                    expect_op(p, ",");
                if (is_op(cur(p), "}"))
                    break;
                nv_push(p, &keys, parse_expr(p));
                expect_op(p, ":");
                nv_push(p, &vals, parse_expr(p));
            }
            next(p);
            n = mk(p, N_DICT, t->line);
            n->args = keys.v;
            n->nargs = keys.n;
            n->kwv = vals.v;
            n->nkw = vals.n;
            return n;
        }
        break;
    default: break;
    }
    unexpected(p, "an expression");
}

static tpl__node_t *parse_postfix(lx_t *p, tpl__node_t *n)
{
    for (;;) {
        tok_t *t = cur(p);
        if (is_op(t, ".")) {
            next(p);
            tok_t *a = cur(p);
            if (a->type == T_NAME) {
                tpl__node_t *x = mk(p, N_ATTR, t->line);
                x->a = n;
                x->name = expect_name(p);
                n = x;
            } else if (a->type == T_INT) {
                next(p);
                tpl__node_t *x = mk(p, N_ITEM, t->line);
                x->a = n;
                x->b = mk(p, N_LIT, t->line);
                x->b->lit = tpl__int(a->i);
                n = x;
            } else {
                unexpected(p, "an attribute name");
            }
        } else if (is_op(t, "[")) {
            next(p);
            tpl__node_t *parts[3] = {NULL, NULL, NULL};
            int np = 0;
            bool slice = false;
            for (;;) {
                if (!is_op(cur(p), ":") && !is_op(cur(p), "]"))
                    parts[np] = parse_expr(p);
                if (is_op(cur(p), ":")) {
                    slice = true;
                    if (++np > 2)
                        unexpected(p, "']'");
                    next(p);
                    continue;
                }
                break;
            }
            expect_op(p, "]");
            if (slice) {
                tpl__node_t *x = mk(p, N_SLICE, t->line);
                x->a = n;
                x->args = tpl__alloc(p->ctx->arena, 3 * sizeof(tpl__node_t *));
                memcpy(x->args, parts, sizeof parts);
                x->nargs = 3;
                n = x;
            } else {
                if (!parts[0])
                    unexpected(p, "a subscript");
                tpl__node_t *x = mk(p, N_ITEM, t->line);
                x->a = n;
                x->b = parts[0];
                n = x;
            }
        } else if (is_op(t, "(")) {
            tpl__node_t *x = mk(p, N_CALL, t->line);
            x->a = n;
            parse_call_args(p, x);
            n = x;
        } else {
            return n;
        }
    }
}

static const char *dotted_name(lx_t *p)
{
    const char *nm = expect_name(p);
    while (is_op(cur(p), ".") && p->t[p->pos + 1].type == T_NAME) {
        next(p);
        const char *more = expect_name(p);
        size_t l1 = strlen(nm), l2 = strlen(more);
        char *j = tpl__alloc(p->ctx->arena, l1 + l2 + 2);
        memcpy(j, nm, l1);
        j[l1] = '.';
        memcpy(j + l1 + 1, more, l2);
        nm = j;
    }
    return nm;
}

static tpl__node_t *parse_filter(lx_t *p, tpl__node_t *n)
{
    int line = cur(p)->line;
    const char *nm = dotted_name(p);
    if (!tpl__filter_known(nm))
        tpl__fail(p->ctx, TPL_EUNSUPPORTED, line, "line %d: unsupported filter '%s'", line, nm);
    tpl__node_t *x = mk(p, N_FILTER, line);
    x->a = n;
    x->name = nm;
    if (is_op(cur(p), "("))
        parse_call_args(p, x);
    return x;
}

static tpl__node_t *parse_filter_expr(lx_t *p, tpl__node_t *n)
{
    for (;;) {
        tok_t *t = cur(p);
        if (is_op(t, "|")) {
            next(p);
            n = parse_filter(p, n);
        } else if (is_name(t, "is")) {
            next(p);
            tpl__node_t *x = mk(p, N_TEST, t->line);
            if (is_name(cur(p), "not")) {
                next(p);
                x->op = 1;
            }
            int line = cur(p)->line;
            x->name = dotted_name(p);
            if (!tpl__test_known(x->name))
                tpl__fail(p->ctx, TPL_EUNSUPPORTED, line, "line %d: unsupported test '%s'",
                          line, x->name);
            x->a = n;
            tok_t *c = cur(p);
            if (is_op(c, "(")) {
                parse_call_args(p, x);
            } else if ((c->type == T_NAME || c->type == T_STRING || c->type == T_INT ||
                        c->type == T_FLOAT || is_op(c, "[") || is_op(c, "{")) &&
                       !is_name(c, "else") && !is_name(c, "or") && !is_name(c, "and")) {
                if (is_name(c, "is"))
                    tpl__fail(p->ctx, TPL_ESYNTAX, c->line,
                              "line %d: you cannot chain multiple tests with is", c->line);
                x->args = tpl__alloc(p->ctx->arena, sizeof(tpl__node_t *));
                x->args[0] = parse_postfix(p, parse_primary(p));
                x->nargs = 1;
            }
            n = x;
        } else if (is_op(t, "(")) {
            tpl__node_t *x = mk(p, N_CALL, t->line);
            x->a = n;
            parse_call_args(p, x);
            n = x;
        } else {
            return n;
        }
    }
}

static tpl__node_t *parse_unary(lx_t *p, bool with_filter)
{
    tok_t *t = cur(p);
    tpl__node_t *n;
    if (is_op(t, "-") || is_op(t, "+")) {
        next(p);
        n = mk(p, is_op(t, "-") ? N_NEG : N_POS, t->line);
        enter(p);
        n->a = parse_unary(p, false);
        p->depth--;
    } else {
        n = parse_primary(p);
    }
    n = parse_postfix(p, n);
    if (with_filter)
        n = parse_filter_expr(p, n);
    return n;
}

static tpl__node_t *bin(lx_t *p, int op, int line, tpl__node_t *a, tpl__node_t *b)
{
    tpl__node_t *x = mk(p, N_BIN, line);
    x->op = op;
    x->a = a;
    x->b = b;
    return x;
}

static tpl__node_t *parse_pow(lx_t *p)
{
    tpl__node_t *n = parse_unary(p, true);
    while (is_op(cur(p), "**")) {
        int line = next(p)->line;
        n = bin(p, 'p', line, n, parse_unary(p, true));
    }
    return n;
}

static tpl__node_t *parse_math2(lx_t *p)
{
    tpl__node_t *n = parse_pow(p);
    for (;;) {
        tok_t *t = cur(p);
        int op = is_op(t, "*") ? '*' : is_op(t, "/") ? '/' : is_op(t, "//") ? 'f' : is_op(t, "%") ? '%' : 0;
        if (!op)
            return n;
        next(p);
        n = bin(p, op, t->line, n, parse_pow(p));
    }
}

static tpl__node_t *parse_concat(lx_t *p)
{
    tpl__node_t *n = parse_math2(p);
    while (is_op(cur(p), "~")) {
        int line = next(p)->line;
        n = bin(p, '~', line, n, parse_math2(p));
    }
    return n;
}

static tpl__node_t *parse_math1(lx_t *p)
{
    tpl__node_t *n = parse_concat(p);
    for (;;) {
        tok_t *t = cur(p);
        int op = is_op(t, "+") ? '+' : is_op(t, "-") ? '-' : 0;
        if (!op)
            return n;
        next(p);
        n = bin(p, op, t->line, n, parse_concat(p));
    }
}

static tpl__node_t *parse_compare(lx_t *p)
{
    int line = cur(p)->line;
    tpl__node_t *first = parse_math1(p);
    nv_t operands = {0};
    int *ops = NULL, nops = 0, cap = 0;
    for (;;) {
        tok_t *t = cur(p);
        int op = is_op(t, "==")   ? CMP_EQ
                 : is_op(t, "!=") ? CMP_NE
                 : is_op(t, "<")  ? CMP_LT
                 : is_op(t, "<=") ? CMP_LE
                 : is_op(t, ">")  ? CMP_GT
                 : is_op(t, ">=") ? CMP_GE
                 : is_name(t, "in") ? CMP_IN
                                    : 0;
        if (!op && is_name(t, "not") && is_name(&p->t[p->pos + 1], "in")) {
            next(p);
            op = CMP_NOTIN;
        }
        if (!op)
            break;
        next(p);
        if (nops == cap) {
            cap = cap ? cap * 2 : 4;
            int *no = tpl__alloc(p->ctx->arena, (size_t)cap * sizeof(int));
            if (nops)
                memcpy(no, ops, (size_t)nops * sizeof(int));
            ops = no;
        }
        ops[nops++] = op;
        nv_push(p, &operands, parse_math1(p));
    }
    if (!nops)
        return first;
    tpl__node_t *x = mk(p, N_CMP, line);
    x->a = first;
    x->args = operands.v;
    x->nargs = operands.n;
    x->ops = ops;
    return x;
}

static tpl__node_t *parse_not(lx_t *p)
{
    if (is_name(cur(p), "not")) {
        tpl__node_t *x = mk(p, N_NOT, next(p)->line);
        enter(p);
        x->a = parse_not(p);
        p->depth--;
        return x;
    }
    return parse_compare(p);
}

static tpl__node_t *parse_and(lx_t *p)
{
    tpl__node_t *n = parse_not(p);
    while (is_name(cur(p), "and")) {
        tpl__node_t *x = mk(p, N_AND, next(p)->line);
        x->a = n;
        x->b = parse_not(p);
        n = x;
    }
    return n;
}

static tpl__node_t *parse_or(lx_t *p)
{
    tpl__node_t *n = parse_and(p);
    while (is_name(cur(p), "or")) {
        tpl__node_t *x = mk(p, N_OR, next(p)->line);
        x->a = n;
        x->b = parse_and(p);
        n = x;
    }
    return n;
}

enum { MAX_DEPTH = 200 };

static void enter(lx_t *p)
{
    if (++p->depth > MAX_DEPTH)
        tpl__fail(p->ctx, TPL_EUNSUPPORTED, cur(p)->line,
                  "line %d: unsupported construct: nesting deeper than %d levels", cur(p)->line,
                  MAX_DEPTH);
}

static tpl__node_t *parse_expr(lx_t *p)
{
    enter(p);
    tpl__node_t *n = parse_or(p);
    while (is_name(cur(p), "if")) {
        tpl__node_t *x = mk(p, N_COND, next(p)->line);
        x->a = n;
        x->b = parse_or(p);
        if (is_name(cur(p), "else")) {
            next(p);
            x->c = parse_expr(p);
        }
        n = x;
    }
    p->depth--;
    return n;
}

// --- statements ---------------------------------------------------------------------

static void block_end(lx_t *p)
{
    if (cur(p)->type != T_BLOCK_END)
        unexpected(p, "'%}'");
    next(p);
}

/* Parse statements until a block tag named in ends[] (NULL-terminated) or EOF
 * (allowed only when ends is NULL). Leaves the parser after that tag's name;
 * *which gets the end tag's index. */
static tpl__node_t *parse_body(lx_t *p, const char *const *ends, int *which, int open_line,
                               const char *what);

static void parse_targets(lx_t *p, tpl__node_t *x)
{
    const char **names = NULL;
    int n = 0, cap = 0;
    bool paren = is_op(cur(p), "(");
    if (paren)
        next(p);
    for (;;) {
        const char *nm = expect_name(p);
        if (n == cap) {
            cap = cap ? cap * 2 : 4;
            const char **nn = tpl__alloc(p->ctx->arena, (size_t)cap * sizeof(*nn));
            if (n)
                memcpy(nn, names, (size_t)n * sizeof(*nn));
            names = nn;
        }
        names[n++] = nm;
        if (!is_op(cur(p), ","))
            break;
        next(p);
        if (cur(p)->type != T_NAME)
            break;
    }
    if (paren)
        expect_op(p, ")");
    x->names = names;
    x->nnames = n;
}

static tpl__node_t *parse_stmt(lx_t *p)
{
    tok_t *t = cur(p);
    int line = t->line;
    if (t->type != T_NAME)
        unexpected(p, "a statement name");
    static const char *const endif[] = {"elif", "else", "endif", NULL};
    static const char *const endfor[] = {"else", "endfor", NULL};
    if (is_name(t, "if")) {
        next(p);
        tpl__node_t *root = mk(p, N_IF, line), *x = root;
        x->a = parse_expr(p);
        block_end(p);
        for (;;) {
            int w;
            tpl__node_t *body = parse_body(p, endif, &w, line, "if");
            x->kids = body->kids;
            x->nkids = body->nkids;
            if (w == 0) { /* elif: nest an if in the else branch */
                tpl__node_t *e = mk(p, N_IF, cur(p)->line);
                e->a = parse_expr(p);
                block_end(p);
                x->els = tpl__alloc(p->ctx->arena, sizeof(tpl__node_t *));
                x->els[0] = e;
                x->nels = 1;
                x = e;
                continue;
            }
            block_end(p);
            if (w == 1) {
                static const char *const only_endif[] = {"endif", NULL};
                tpl__node_t *eb = parse_body(p, only_endif, &w, line, "if");
                x->els = eb->kids;
                x->nels = eb->nkids;
                block_end(p);
            }
            return root;
        }
    }
    if (is_name(t, "for")) {
        next(p);
        tpl__node_t *x = mk(p, N_FOR, line);
        parse_targets(p, x);
        if (!is_name(cur(p), "in"))
            unexpected(p, "'in'");
        next(p);
        x->a = parse_or(p); /* jinja2: no ternary here, 'if' starts the filter */
        if (is_name(cur(p), "if")) {
            next(p);
            x->b = parse_expr(p);
        }
        if (is_name(cur(p), "recursive"))
            tpl__fail(p->ctx, TPL_EUNSUPPORTED, line,
                      "line %d: unsupported construct 'for ... recursive'", line);
        block_end(p);
        int w;
        tpl__node_t *body = parse_body(p, endfor, &w, line, "for");
        x->kids = body->kids;
        x->nkids = body->nkids;
        block_end(p);
        if (w == 0) {
            static const char *const only[] = {"endfor", NULL};
            tpl__node_t *eb = parse_body(p, only, &w, line, "for");
            x->els = eb->kids;
            x->nels = eb->nkids;
            block_end(p);
        }
        return x;
    }
    if (is_name(t, "set")) {
        next(p);
        tpl__node_t *x = mk(p, N_SET, line);
        if (cur(p)->type == T_NAME && is_op(&p->t[p->pos + 1], ".")) {
            x->kind = N_SETATTR;
            x->name = expect_name(p);
            next(p);
            x->attr = expect_name(p);
            expect_op(p, "=");
            x->a = parse_expr(p);
            block_end(p);
            return x;
        }
        parse_targets(p, x);
        if (is_op(cur(p), "=")) {
            next(p);
            tpl__node_t *e = parse_expr(p);
            if (is_op(cur(p), ",")) { /* set a, b = 1, 2 */
                nv_t items = {0};
                nv_push(p, &items, e);
                while (is_op(cur(p), ",")) {
                    next(p);
                    nv_push(p, &items, parse_expr(p));
                }
                e = mk(p, N_TUPLE, line);
                e->args = items.v;
                e->nargs = items.n;
            }
            x->a = e;
            block_end(p);
            return x;
        }
        if (x->nnames != 1)
            unexpected(p, "'='");
        /* block set, optionally filtered: {% set x | trim %}...{% endset %} */
        x->kind = N_SETBLOCK;
        x->name = x->names[0];
        tpl__node_t *chain = mk(p, N_NAME, line);
        chain->name = "";
        while (is_op(cur(p), "|")) {
            next(p);
            chain = parse_filter(p, chain);
        }
        x->a = chain;
        block_end(p);
        static const char *const only[] = {"endset", NULL};
        int w;
        tpl__node_t *body = parse_body(p, only, &w, line, "set");
        x->kids = body->kids;
        x->nkids = body->nkids;
        block_end(p);
        return x;
    }
    if (is_name(t, "macro")) {
        next(p);
        tpl__node_t *x = mk(p, N_MACRO, line);
        x->name = expect_name(p);
        expect_op(p, "(");
        nv_t defs = {0};
        const char **names = NULL;
        int n = 0, cap = 0;
        while (!is_op(cur(p), ")")) {
            if (n)
                expect_op(p, ",");
            if (is_op(cur(p), ")"))
                break;
            if (n == cap) {
                cap = cap ? cap * 2 : 4;
                const char **nn = tpl__alloc(p->ctx->arena, (size_t)cap * sizeof(*nn));
                if (n)
                    memcpy(nn, names, (size_t)n * sizeof(*nn));
                names = nn;
            }
            names[n++] = expect_name(p);
            tpl__node_t *d = NULL;
            if (is_op(cur(p), "=")) {
                next(p);
                d = parse_expr(p);
            }
            nv_push(p, &defs, d);
        }
        next(p);
        x->names = names;
        x->nnames = n;
        x->args = defs.v;
        x->nargs = defs.n;
        block_end(p);
        static const char *const only[] = {"endmacro", NULL};
        int w;
        tpl__node_t *body = parse_body(p, only, &w, line, "macro");
        x->kids = body->kids;
        x->nkids = body->nkids;
        if (cur(p)->type == T_NAME)
            next(p); /* {% endmacro name %} */
        block_end(p);
        return x;
    }
    if (is_name(t, "break") || is_name(t, "continue")) {
        next(p);
        tpl__node_t *x = mk(p, is_name(t, "break") ? N_BREAK : N_CONTINUE, line);
        block_end(p);
        return x;
    }
    if (is_name(t, "generation")) { /* transformers' AssistantTracker: renders its body */
        next(p);
        block_end(p);
        static const char *const only[] = {"endgeneration", NULL};
        int w;
        tpl__node_t *body = parse_body(p, only, &w, line, "generation");
        block_end(p);
        return body;
    }
    static const char *const known_other[] = {"include", "extends", "import", "from", "block",
                                              "call", "filter", "with", "autoescape", "do",
                                              "trans", "pluralize", NULL};
    for (int i = 0; known_other[i]; i++)
        if (is_name(t, known_other[i]))
            tpl__fail(p->ctx, TPL_EUNSUPPORTED, line, "line %d: unsupported construct '{%% %s %%}'",
                      line, known_other[i]);
    tpl__fail(p->ctx, TPL_ESYNTAX, line, "line %d: unknown tag '%.*s'", line, (int)t->n, t->p);
}

static tpl__node_t *parse_body(lx_t *p, const char *const *ends, int *which, int open_line,
                               const char *what)
{
    tpl__node_t *body = mk(p, N_BODY, cur(p)->line);
    nv_t kids = {0};
    for (;;) {
        tok_t *t = cur(p);
        if (t->type == T_EOF) {
            if (ends)
                tpl__fail(p->ctx, TPL_ESYNTAX, open_line,
                          "line %d: '%s' block is never closed (expected '{%% %s %%}')", open_line,
                          what, ends[0] ? ends[0] : "end");
            break;
        }
        if (t->type == T_TEXT) {
            next(p);
            tpl__node_t *x = mk(p, N_TEXT, t->line);
            x->lit = tpl__str(t->p, t->n);
            nv_push(p, &kids, x);
        } else if (t->type == T_VAR_BEGIN) {
            next(p);
            tpl__node_t *x = mk(p, N_OUT, t->line);
            x->a = parse_expr(p);
            if (cur(p)->type != T_VAR_END)
                unexpected(p, "'}}'");
            next(p);
            nv_push(p, &kids, x);
        } else if (t->type == T_BLOCK_BEGIN) {
            next(p);
            tok_t *nm = cur(p);
            if (ends && nm->type == T_NAME) {
                for (int i = 0; ends[i]; i++)
                    if (is_name(nm, ends[i])) {
                        next(p);
                        *which = i;
                        body->kids = kids.v;
                        body->nkids = kids.n;
                        return body;
                    }
            }
            static const char *const closers[] = {"endif", "endfor", "endset", "endmacro", "elif",
                                                  "else", "endgeneration", NULL};
            for (int i = 0; closers[i]; i++)
                if (is_name(nm, closers[i]))
                    tpl__fail(p->ctx, TPL_ESYNTAX, nm->line, "line %d: unexpected '{%% %s %%}'",
                              nm->line, closers[i]);
            enter(p);
            nv_push(p, &kids, parse_stmt(p));
            p->depth--;
        } else {
            unexpected(p, "template text or a tag");
        }
    }
    body->kids = kids.v;
    body->nkids = kids.n;
    return body;
}

tpl__node_t *tpl__parse(tpl__ctx_t *ctx, const char *src, size_t len)
{
    lx_t lx = {.ctx = ctx, .src = src, .len = len};
    tpl__lex(&lx);
    int w;
    return parse_body(&lx, NULL, &w, 1, "template");
}

/* tpl_lex: the template lexer.
 *
 * Splits the source into text and tag tokens, reproducing jinja2's
 * whitespace rules as transformers configures them: trim_blocks (drop one
 * newline after a block or comment tag unless it ends with "+%}"),
 * lstrip_blocks (drop spaces/tabs between a line start and a block or comment
 * tag unless it opens with "{%+"), and "-" on any tag stripping all whitespace
 * on that side. As in jinja2, a closing delimiter inside open brackets is not
 * a tag end. String literals are decoded as Python's unicode-escape does.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tpl_int.h"

typedef tpl__tok_t tok_t;
typedef tpl__lexer_t lx_t;

static void push(lx_t *lx, tok_t t)
{
    if (lx->nt == lx->cap) {
        size_t cap = lx->cap ? lx->cap * 2 : 256;
        tok_t *nt = tpl__alloc(lx->ctx->arena, cap * sizeof(tok_t));
        if (lx->nt)
            memcpy(nt, lx->t, lx->nt * sizeof(tok_t));
        lx->t = nt;
        lx->cap = cap;
    }
    lx->t[lx->nt++] = t;
}

/* Lines are counted incrementally: the lexer asks for nondecreasing
 * positions almost always, so this stays linear overall. */
static int line_at(lx_t *lx, size_t pos)
{
    if (pos < lx->lpos || lx->lline == 0) {
        lx->lpos = 0;
        lx->lline = 1;
    }
    for (size_t i = lx->lpos; i < pos && i < lx->len; i++)
        lx->lline += lx->src[i] == '\n';
    lx->lpos = pos;
    return lx->lline;
}

static bool py_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

static bool is_ident(char c, bool first)
{
    return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (!first && c >= '0' && c <= '9');
}

static const char *const OPS[] = {"//", "**", "==", "!=", ">=", "<=", "+", "-", "/", "*", "%",
                                  "~",  "[",  "]",  "(",  ")",  "{",  "}", "=", ">", "<", ".",
                                  ":",  "|",  ",",  ";"};

/* Decode a quoted string literal as Python's unicode-escape would. */
static size_t lex_string(lx_t *lx, size_t i, tok_t *t)
{
    char q = lx->src[i];
    size_t j = i + 1;
    tpl__sb_t b = {.a = lx->ctx->arena};
    tpl__sb_add(&b, "", 0);
    while (j < lx->len && lx->src[j] != q) {
        char c = lx->src[j];
        if (c != '\\' || j + 1 >= lx->len) {
            tpl__sb_addc(&b, c);
            j++;
            continue;
        }
        char e = lx->src[j + 1];
        j += 2;
        switch (e) {
        case 'n': tpl__sb_addc(&b, '\n'); break;
        case 't': tpl__sb_addc(&b, '\t'); break;
        case 'r': tpl__sb_addc(&b, '\r'); break;
        case 'b': tpl__sb_addc(&b, '\b'); break;
        case 'f': tpl__sb_addc(&b, '\f'); break;
        case 'v': tpl__sb_addc(&b, '\v'); break;
        case 'a': tpl__sb_addc(&b, '\a'); break;
        case '0': tpl__sb_addc(&b, '\0'); break;
        case '\\': tpl__sb_addc(&b, '\\'); break;
        case '\'': tpl__sb_addc(&b, '\''); break;
        case '"': tpl__sb_addc(&b, '"'); break;
        case '\n': break;
        case 'x':
        case 'u':
        case 'U': {
            int nd = e == 'x' ? 2 : e == 'u' ? 4 : 8;
            unsigned cp = 0;
            for (int k = 0; k < nd; k++) {
                char h = j + (size_t)k < lx->len ? lx->src[j + (size_t)k] : 0;
                int d = h >= '0' && h <= '9'   ? h - '0'
                        : h >= 'a' && h <= 'f' ? h - 'a' + 10
                        : h >= 'A' && h <= 'F' ? h - 'A' + 10
                                               : -1;
                if (d < 0)
                    tpl__fail(lx->ctx, TPL_ESYNTAX, line_at(lx, j),
                              "line %d: bad \\%c escape in string literal", line_at(lx, j), e);
                cp = cp * 16 + (unsigned)d;
            }
            j += (size_t)nd;
            char o[4];
            int on;
            if (cp < 0x80) {
                o[0] = (char)cp;
                on = 1;
            } else if (cp < 0x800) {
                o[0] = (char)(0xc0 | (cp >> 6));
                o[1] = (char)(0x80 | (cp & 0x3f));
                on = 2;
            } else if (cp < 0x10000) {
                o[0] = (char)(0xe0 | (cp >> 12));
                o[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
                o[2] = (char)(0x80 | (cp & 0x3f));
                on = 3;
            } else {
                o[0] = (char)(0xf0 | (cp >> 18));
                o[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
                o[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
                o[3] = (char)(0x80 | (cp & 0x3f));
                on = 4;
            }
            tpl__sb_add(&b, o, (size_t)on);
            break;
        }
        default: /* Python keeps unknown escapes verbatim */
            tpl__sb_addc(&b, '\\');
            tpl__sb_addc(&b, e);
        }
    }
    if (j >= lx->len)
        tpl__fail(lx->ctx, TPL_ESYNTAX, line_at(lx, i), "line %d: unterminated string literal",
                  line_at(lx, i));
    t->type = T_STRING;
    t->p = b.p;
    t->n = b.n;
    return j + 1;
}

/* Tokenise the inside of a {{ }} or {% %} tag starting at i; returns the
 * position after the closing delimiter (and the whitespace it eats). */
static size_t lex_tag(lx_t *lx, size_t i, bool block, bool *line_start)
{
    const char *s = lx->src;
    size_t n = lx->len;
    int open_line = line_at(lx, i);
    int depth = 0; /* as jinja2: no closing delimiter inside open brackets */
    for (;;) {
        while (i < n && py_space(s[i]))
            i++;
        if (i >= n)
            tpl__fail(lx->ctx, TPL_ESYNTAX, open_line, "line %d: unclosed '%s' tag", open_line,
                      block ? "{%" : "{{");
        char e1 = block ? '%' : '}';
        tok_t t = {.line = line_at(lx, i)};
        if (depth == 0 && (s[i] == '-' || s[i] == '+') && i + 2 < n && s[i + 1] == e1 && s[i + 2] == '}' &&
            !(s[i] == '+' && !block)) {
            bool minus = s[i] == '-';
            i += 3;
            size_t st = i;
            if (minus)
                while (i < n && py_space(s[i]))
                    i++;
            *line_start = i > st ? s[i - 1] == '\n' : false;
            t.type = block ? T_BLOCK_END : T_VAR_END;
            push(lx, t);
            return i;
        }
        if (depth == 0 && s[i] == e1 && i + 1 < n && s[i + 1] == '}') {
            i += 2;
            *line_start = false;
            if (block && i < n && s[i] == '\n') { /* trim_blocks */
                i++;
                *line_start = true;
            }
            t.type = block ? T_BLOCK_END : T_VAR_END;
            push(lx, t);
            return i;
        }
        if (s[i] == '\'' || s[i] == '"') {
            i = lex_string(lx, i, &t);
            push(lx, t);
            continue;
        }
        if (s[i] >= '0' && s[i] <= '9') {
            size_t st = i;
            bool fl = false;
            while (i < n && ((s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
                i++;
            /* a float needs digits after '.', and not after a '.' (x.0.1) */
            bool after_dot = st > 0 && s[st - 1] == '.';
            if (!after_dot && i + 1 < n && s[i] == '.' && s[i + 1] >= '0' && s[i + 1] <= '9') {
                fl = true;
                i++;
                while (i < n && ((s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
                    i++;
            }
            if (!after_dot && i < n && (s[i] == 'e' || s[i] == 'E')) {
                size_t k = i + 1;
                if (k < n && (s[k] == '+' || s[k] == '-'))
                    k++;
                if (k < n && s[k] >= '0' && s[k] <= '9') {
                    fl = true;
                    i = k;
                    while (i < n && s[i] >= '0' && s[i] <= '9')
                        i++;
                }
            }
            char tmp[64];
            size_t tn = 0;
            for (size_t k = st; k < i && tn < sizeof tmp - 1; k++)
                if (s[k] != '_')
                    tmp[tn++] = s[k];
            tmp[tn] = 0;
            if (fl) {
                t.type = T_FLOAT;
                t.f = strtod(tmp, NULL);
            } else {
                t.type = T_INT;
                errno = 0;
                t.i = strtoll(tmp, NULL, 10);
                if (errno)
                    tpl__fail(lx->ctx, TPL_EUNSUPPORTED, t.line,
                              "line %d: integer literal out of 64-bit range", t.line);
            }
            push(lx, t);
            continue;
        }
        if (is_ident(s[i], true)) {
            size_t st = i;
            while (i < n && is_ident(s[i], false))
                i++;
            t.type = T_NAME;
            t.p = s + st;
            t.n = i - st;
            push(lx, t);
            continue;
        }
        bool found = false;
        for (size_t k = 0; k < sizeof OPS / sizeof OPS[0]; k++) {
            size_t on = strlen(OPS[k]);
            if (i + on <= n && memcmp(s + i, OPS[k], on) == 0) {
                t.type = T_OP;
                t.p = OPS[k];
                t.n = on;
                if (on == 1 && strchr("([{", OPS[k][0]))
                    depth++;
                else if (on == 1 && strchr(")]}", OPS[k][0]) && depth > 0)
                    depth--;
                push(lx, t);
                i += on;
                found = true;
                break;
            }
        }
        if (!found)
            tpl__fail(lx->ctx, TPL_ESYNTAX, t.line, "line %d: unexpected character '%c'", t.line,
                      s[i]);
    }
}

void tpl__lex(lx_t *lx)
{
    const char *s = lx->src;
    size_t n = lx->len, pos = 0;
    bool line_start = true;
    while (pos < n) {
        /* next tag opener */
        size_t k = pos;
        while (k + 1 < n && !(s[k] == '{' && (s[k + 1] == '{' || s[k + 1] == '%' || s[k + 1] == '#')))
            k++;
        if (k + 1 >= n) {
            push(lx, (tok_t){.type = T_TEXT, .line = line_at(lx, pos), .p = s + pos, .n = n - pos});
            break;
        }
        char kind = s[k + 1];
        char sign = k + 2 < n && (s[k + 2] == '-' || s[k + 2] == '+') ? s[k + 2] : 0;
        size_t tend = k; /* text is s[pos, tend) */
        if (sign == '-') {
            while (tend > pos && py_space(s[tend - 1]))
                tend--;
        } else if (sign != '+' && kind != '{') { /* lstrip_blocks */
            size_t lp = tend;
            while (lp > pos && s[lp - 1] != '\n')
                lp--;
            bool at_line = lp > pos || line_start;
            bool ws = lp < tend;
            for (size_t q = lp; q < tend; q++)
                if (!py_space(s[q]))
                    ws = false;
            if (at_line && ws)
                tend = lp;
        }
        if (tend > pos)
            push(lx, (tok_t){.type = T_TEXT, .line = line_at(lx, pos), .p = s + pos, .n = tend - pos});
        size_t body = k + 2 + (sign ? 1 : 0);
        int tl = line_at(lx, k);
        if (kind == '#') {
            size_t e = body;
            while (e + 1 < n && !(s[e] == '#' && s[e + 1] == '}'))
                e++;
            if (e + 1 >= n)
                tpl__fail(lx->ctx, TPL_ESYNTAX, tl, "line %d: unclosed comment", tl);
            pos = e + 2;
            line_start = false;
            if (e > body && s[e - 1] == '-') {
                size_t st = pos;
                while (pos < n && py_space(s[pos]))
                    pos++;
                line_start = pos > st && s[pos - 1] == '\n';
            } else if (pos < n && s[pos] == '\n') {
                pos++;
                line_start = true;
            }
            continue;
        }
        /* {% raw %} is rare in chat templates; reject it rather than mis-lex */
        size_t q = body;
        while (q < n && py_space(s[q]))
            q++;
        if (kind == '%' && q + 3 <= n && memcmp(s + q, "raw", 3) == 0 &&
            (q + 3 == n || !is_ident(s[q + 3], false)))
            tpl__fail(lx->ctx, TPL_EUNSUPPORTED, tl,
                      "line %d: unsupported construct '{%% raw %%}'", tl);
        push(lx, (tok_t){.type = kind == '%' ? T_BLOCK_BEGIN : T_VAR_BEGIN, .line = tl});
        pos = lex_tag(lx, body, kind == '%', &line_start);
    }
    push(lx, (tok_t){.type = T_EOF, .line = line_at(lx, n)});
}


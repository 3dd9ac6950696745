/* tpl_int.h: internals shared by the chat-template interpreter's files.
 *
 * Memory: everything a compile or a render creates lives in one arena freed
 * in one call, so values are plain structs passed by value, never refcounted.
 * Errors inside the lexer, parser and evaluator unwind with longjmp to the
 * public entry point (tpl_compile / tpl_render), which turns them into a
 * negative code; that is safe because nothing is malloc'd outside the arena
 * on those paths.
 */
#ifndef CVLLM_TPL_INT_H
#define CVLLM_TPL_INT_H

#include <setjmp.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "chat_template.h"

/* --- arena -------------------------------------------------------------------- */

typedef struct tpl__chunk tpl__chunk_t;

typedef struct {
    tpl__chunk_t *head;
    jmp_buf *oom; /* longjmp target on allocation failure (value -ENOMEM) */
} tpl__arena_t;

void *tpl__alloc(tpl__arena_t *a, size_t n); /* zeroed, 16-aligned; never NULL */
void tpl__arena_free(tpl__arena_t *a);
char *tpl__strndup(tpl__arena_t *a, const char *s, size_t n);

/* --- values ------------------------------------------------------------------- */

typedef enum {
    TV_UNDEF = 0,
    TV_NONE,
    TV_BOOL,
    TV_INT,
    TV_FLOAT,
    TV_STR,
    TV_LIST,
    TV_DICT,
    TV_FUNC, /* builtin global or macro */
} tv_type_t;

enum { TVF_TUPLE = 1, TVF_NAMESPACE = 2, TVF_LOOP = 4 /* a for loop's `loop` */ };

typedef struct tpl__list tpl__list_t;
typedef struct tpl__dict tpl__dict_t;
typedef struct tpl__node tpl__node_t;

typedef struct {
    uint8_t type;
    uint8_t flags; /* TVF_TUPLE on lists, TVF_NAMESPACE / TVF_LOOP on dicts */
    union {
        int64_t i;   /* TV_BOOL, TV_INT */
        double f;    /* TV_FLOAT */
        struct {
            const char *p; /* TV_STR: UTF-8, not necessarily NUL-terminated;
                              TV_UNDEF: the name, for error messages, or NULL */
            size_t n;
        } s;
        tpl__list_t *l;
        tpl__dict_t *d;
        struct {
            int builtin;           /* TV_FUNC: builtin id, or -1 for a macro */
            const tpl__node_t *macro;
        } fn;
    } u;
} tv_t;

struct tpl__list {
    tv_t *v;
    size_t n, cap;
};

struct tpl__dict {
    tv_t *k, *v;
    size_t n, cap;
};

/* Strings and output are capped so a template that doubles a string in a
 * loop fails cleanly (as -ENOMEM) instead of exhausting the machine. */
#define TPL__MAX_STR ((size_t)1 << 28) /* 256 MiB */

/* growable string in an arena; longjmps -ENOMEM past TPL__MAX_STR */
typedef struct {
    tpl__arena_t *a;
    char *p;
    size_t n, cap;
} tpl__sb_t;

void tpl__sb_add(tpl__sb_t *b, const char *s, size_t n);
void tpl__sb_addc(tpl__sb_t *b, char c);
void tpl__sb_addz(tpl__sb_t *b, const char *s);

tv_t tpl__undef(const char *name);
tv_t tpl__none(void);
tv_t tpl__bool(bool b);
tv_t tpl__int(int64_t i);
tv_t tpl__float(double f);
tv_t tpl__str(const char *p, size_t n);
tv_t tpl__strz(const char *p);
tv_t tpl__list_new(tpl__arena_t *a, size_t cap);
tv_t tpl__dict_new(tpl__arena_t *a, size_t cap);
void tpl__list_push(tpl__arena_t *a, tv_t list, tv_t v);
void tpl__dict_set(tpl__arena_t *a, tv_t dict, tv_t k, tv_t v);
/* Returns true and *out when key k is present. */
bool tpl__dict_get(tv_t dict, tv_t k, tv_t *out);
bool tpl__dict_getz(tv_t dict, const char *k, tv_t *out);

bool tpl__truthy(tv_t v);
bool tpl__equal(tv_t a, tv_t b);
bool tpl__is_num(tv_t v); /* bool, int or float */
double tpl__num(tv_t v);
const char *tpl__type_name(tv_t v); /* Python's type name */

/* Python str(v) / repr(v), appended to b. */
void tpl__str_of(tpl__sb_t *b, tv_t v);
void tpl__repr_of(tpl__sb_t *b, tv_t v);
/* Python repr(float). */
void tpl__fmt_float(tpl__sb_t *b, double f);
/* json.dumps(v, ensure_ascii=False, indent=..., sort_keys): indent is the
 * unit string repeated per level (NULL: indent=None, compact separators).
 * Returns false when v holds something JSON cannot encode (undefined, a
 * function). */
bool tpl__to_json(tpl__sb_t *b, tv_t v, const char *indent, size_t indent_n, bool sort_keys);
/* Parse JSON (as Python's json.loads: ints stay ints). Returns false on bad
 * input with a message in errmsg. */
bool tpl__from_json(tpl__arena_t *a, const char *s, size_t n, tv_t *out, char *errmsg,
                    size_t errlen);

/* --- lexer / parser --------------------------------------------------------------- */

typedef enum {
    /* statements */
    N_BODY = 1, /* kids = statements */
    N_TEXT,     /* lit = string */
    N_OUT,      /* a = expr */
    N_IF,       /* a = cond, kids = then, els = else */
    N_FOR,      /* names = targets, a = iter, b = filter or NULL, kids, els */
    N_SET,      /* names = targets, a = expr */
    N_SETATTR,  /* name = var, attr = attribute, a = expr */
    N_SETBLOCK, /* name, kids = body, filters in kw list (a = filter chain on N_NAME "") */
    N_MACRO,    /* name, names = params, args = defaults (NULL entries), kids = body */
    N_BREAK,
    N_CONTINUE,
    /* expressions */
    N_LIT,    /* lit */
    N_NAME,   /* name */
    N_LIST,   /* args */
    N_TUPLE,  /* args */
    N_DICT,   /* args = keys, kwv = values */
    N_ATTR,   /* a, name */
    N_ITEM,   /* a, b */
    N_SLICE,  /* a, args[0..2] = start, stop, step (NULL entries) */
    N_CALL,   /* a = callee, args, kwn/kwv */
    N_FILTER, /* a = operand, name, args, kwn/kwv */
    N_TEST,   /* a, name, args, kwn/kwv, op = 1 when negated */
    N_NEG,
    N_POS,
    N_NOT,
    N_AND,
    N_OR,
    N_BIN, /* op: one of '+','-','*','/','f' (//),'%','p' (**),'~' */
    N_CMP, /* a, then args = operands, ops[] comparison operators */
    N_COND, /* a = value, b = cond, c = else value or NULL */
} tpl__node_kind_t;

enum { CMP_EQ = 1, CMP_NE, CMP_LT, CMP_LE, CMP_GT, CMP_GE, CMP_IN, CMP_NOTIN };

struct tpl__node {
    int kind;
    int line;
    int op;
    tv_t lit;
    const char *name;
    const char *attr;
    tpl__node_t *a, *b, *c;
    tpl__node_t **kids;
    int nkids;
    tpl__node_t **els;
    int nels;
    tpl__node_t **args;
    int nargs;
    const char **kwn;
    tpl__node_t **kwv;
    int nkw;
    const char **names;
    int nnames;
    int *ops;
};

/* Shared error state for one compile or render. */
typedef struct {
    jmp_buf jb;
    tpl_error_t *err; /* may be NULL */
    tpl__arena_t *arena;
} tpl__ctx_t;

/* Record an error (code, line, printf message) and longjmp to ctx->jb. */
__attribute__((noreturn, format(printf, 4, 5))) void tpl__fail(tpl__ctx_t *ctx, int code,
                                                                int line, const char *fmt, ...);

/* Tokens: text between tags, tag delimiters, and expression tokens. */
typedef enum {
    T_EOF = 0,
    T_TEXT,
    T_BLOCK_BEGIN,
    T_BLOCK_END,
    T_VAR_BEGIN,
    T_VAR_END,
    T_NAME,
    T_STRING,
    T_INT,
    T_FLOAT,
    T_OP,
} tpl__tok_type_t;

typedef struct {
    tpl__tok_type_t type;
    int line;
    const char *p; /* text, name, decoded string, or operator */
    size_t n;
    int64_t i;
    double f;
} tpl__tok_t;

typedef struct {
    tpl__ctx_t *ctx;
    const char *src;
    size_t len;
    tpl__tok_t *t;
    size_t nt, cap;
    size_t pos; /* parser position */
    int depth;   /* expression/statement nesting, bounded to protect the stack */
    size_t lpos; /* line_at cache: line number at byte lpos */
    int lline;
} tpl__lexer_t;

/* Tokenise lx->src into lx->t (ending with T_EOF). */
void tpl__lex(tpl__lexer_t *lx);

/* Parse src (already newline-normalised) into an N_BODY tree. */
tpl__node_t *tpl__parse(tpl__ctx_t *ctx, const char *src, size_t len);

/* Builtins known at parse time (unknown names are rejected there). */
bool tpl__filter_known(const char *name);
bool tpl__test_known(const char *name);

/* --- evaluation --------------------------------------------------------------------- */

typedef struct tpl__frame tpl__frame_t;

typedef struct {
    tpl__ctx_t c;
    tpl__frame_t *root;
    int call_depth; /* macro recursion, bounded like Python's recursion limit */
} tpl__rt_t;

enum {
    BI_RANGE = 0,
    BI_NAMESPACE,
    BI_RAISE,
    BI_STRFTIME,
    BI_DICT,
    BI_COUNT
};

tv_t tpl__eval(tpl__rt_t *rt, tpl__frame_t *f, const tpl__node_t *n);
tv_t tpl__call_builtin(tpl__rt_t *rt, int id, int line, tv_t *args, int nargs,
                       const char **kwn, tv_t *kwv, int nkw);
tv_t tpl__apply_filter(tpl__rt_t *rt, tpl__frame_t *f, const char *name, int line, tv_t v,
                       tv_t *args, int nargs, const char **kwn, tv_t *kwv, int nkw);
bool tpl__apply_test(tpl__rt_t *rt, const char *name, int line, tv_t v, tv_t *args, int nargs);
/* obj.name(args): str and dict methods. */
tv_t tpl__call_method(tpl__rt_t *rt, int line, tv_t obj, const char *name, tv_t *args,
                      int nargs, const char **kwn, tv_t *kwv, int nkw);
/* obj.name / obj[key] as jinja2 resolves them (missing -> undefined; access
 * on undefined fails). */
tv_t tpl__getattr(tpl__rt_t *rt, int line, tv_t obj, const char *name);
tv_t tpl__getitem(tpl__rt_t *rt, int line, tv_t obj, tv_t key);
/* Call a macro value. */
tv_t tpl__call_macro(tpl__rt_t *rt, int line, const tpl__node_t *m, tv_t *args, int nargs,
                     const char **kwn, tv_t *kwv, int nkw);
/* Iterate v as Python would (list items, dict keys, str characters,
 * undefined -> empty). Returns a list value. */
tv_t tpl__iter_list(tpl__rt_t *rt, int line, tv_t v);
/* str(v) as a new arena string value. */
tv_t tpl__to_str(tpl__rt_t *rt, tv_t v);

/* Helpers shared by filters and methods (tpl_builtin.c). */
__attribute__((noreturn)) void tpl__rt_fail(tpl__rt_t *rt, int line, const char *what);
void tpl__need_defined(tpl__rt_t *rt, int line, tv_t v); /* fails on undefined */
/* keyword argument name, else positional argument pos (-1: keyword only) */
tv_t tpl__kwarg(const char **kwn, tv_t *kwv, int nkw, const char *name, tv_t *args, int nargs,
                int pos, tv_t dflt);
bool tpl__is_ws(char c); /* Python str.isspace() for ASCII */
tv_t tpl__strip(tpl__rt_t *rt, int line, tv_t s, tv_t chars, bool left, bool right);
/* mode 0 lower, 1 upper, 2 str.title(), 3 str.capitalize(), 4 title filter */
tv_t tpl__map_case(tpl__rt_t *rt, tv_t s, int mode);
tv_t tpl__title_filter(tpl__rt_t *rt, tv_t s);
tv_t tpl__replace(tpl__rt_t *rt, int line, tv_t s, tv_t old, tv_t nw, int64_t count);
int64_t tpl__py_len(tpl__rt_t *rt, int line, tv_t v);
tv_t tpl__attr_path(tpl__rt_t *rt, int line, tv_t v, tv_t attr); /* "a.b.0" lookups */
/* sort order of two values (numbers or strings; ci: case-insensitive) */
int tpl__cmp_sort(tpl__rt_t *rt, int line, tv_t a, tv_t b, bool ci);

#endif

/* Unit tests for frontend/template: compile errors name the construct and
 * the line and never crash (including on every prefix and on random
 * mutations of real templates), whitespace control, filters, Python value
 * printing, raise_exception and runtime errors, the output-buffer contract,
 * and concurrent renders of one compiled template. Expected strings were
 * produced by jinja2 3.1 configured as transformers does; full parity on real
 * templates is tests/py/test_template.py's job.
 * Usage: test_template <test-name>; each meson test runs one name. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat_template.h"

static int failures;

#define CHECK(cond)                                                                        \
    do {                                                                                   \
        if (!(cond)) {                                                                     \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);      \
            failures++;                                                                    \
        }                                                                                  \
    } while (0)

#define CHECK_INT(got, want)                                                                 \
    do {                                                                                     \
        long long g_ = (long long)(got), w_ = (long long)(want);                            \
        if (g_ != w_) {                                                                      \
            fprintf(stderr, "%s:%d: %s = %lld, want %lld\n", __FILE__, __LINE__, #got, g_, w_); \
            failures++;                                                                      \
        }                                                                                    \
    } while (0)

static const char *MSGS = "[{\"role\": \"user\", \"content\": \"Hi\"},"
                          " {\"role\": \"assistant\", \"content\": \"Yo\"}]";

/* Render src with MSGS; returns the code and fills out (malloc'd) / err. */
static int render(const char *src, const char *msgs, char **out, tpl_error_t *err)
{
    tpl_template_t *t = NULL;
    *out = NULL;
    int rc = tpl_compile(src, strlen(src), &t, err);
    if (rc) {
        CHECK(t == NULL);
        return rc;
    }
    tpl_vars_t v = {.messages_json = msgs, .bos_token = "<s>", .eos_token = "</s>",
                    .add_generation_prompt = 1};
    tpl_buf_t b = {0};
    rc = tpl_render(t, &v, &b, err);
    tpl_destroy(&t);
    CHECK(t == NULL);
    if (rc == 0) {
        *out = b.data ? b.data : strdup("");
        CHECK(strlen(*out) == b.len);
    } else {
        tpl_buf_free(&b);
    }
    return rc;
}

static void expect_out(int line, const char *src, const char *want)
{
    char *out;
    tpl_error_t err = {0};
    int rc = render(src, MSGS, &out, &err);
    if (rc) {
        fprintf(stderr, "%s:%d: render failed (%d): %s\n  template: %s\n", __FILE__, line, rc,
                err.msg, src);
        failures++;
        return;
    }
    if (strcmp(out, want)) {
        fprintf(stderr, "%s:%d: template %s\n  got  [%s]\n  want [%s]\n", __FILE__, line, src, out,
                want);
        failures++;
    }
    free(out);
}

static void expect_err(int line, const char *src, int code, int err_line, const char *substr)
{
    char *out = NULL;
    tpl_error_t err = {0};
    int rc = render(src, MSGS, &out, &err);
    if (rc != code || err.code != code || (err_line >= 0 && err.line != err_line) ||
        (substr && !strstr(err.msg, substr))) {
        fprintf(stderr,
                "%s:%d: template %s\n  got rc=%d code=%d line=%d msg=[%s]\n"
                "  want rc=%d line=%d msg containing [%s]\n",
                __FILE__, line, src, rc, err.code, err.line, err.msg, code, err_line,
                substr ? substr : "");
        failures++;
    }
    free(out);
}

#define OUT(src, want) expect_out(__LINE__, src, want)
#define ERR(src, code, ln, sub) expect_err(__LINE__, src, code, ln, sub)

// --- tests -------------------------------------------------------------------

static void test_syntax(void)
{
    ERR("{% if x %}\nno end", TPL_ESYNTAX, 1, "'if' block is never closed");
    ERR("a\nb\n{% for x in y %}", TPL_ESYNTAX, 3, "'for' block is never closed");
    ERR("a\n{% endfor %}", TPL_ESYNTAX, 2, "unexpected '{% endfor %}'");
    ERR("{% if x %}{% endfor %}", TPL_ESYNTAX, 1, "endfor");
    ERR("x\n\n{{ 1 + }}", TPL_ESYNTAX, 3, "expected an expression");
    ERR("{{ 'unterminated }}", TPL_ESYNTAX, 1, "unterminated string");
    ERR("ok\n{{ a", TPL_ESYNTAX, 2, "unclosed '{{' tag");
    ERR("{# never closed", TPL_ESYNTAX, 1, "unclosed comment");
    ERR("{% frobnicate %}", TPL_ESYNTAX, 1, "unknown tag 'frobnicate'");
    ERR("{{ a b }}", TPL_ESYNTAX, 1, "expected '}}'");
    ERR("{{ f(a=1, 2) }}", TPL_ESYNTAX, 1, "positional argument after keyword");
    ERR("{{ x is defined is defined }}", TPL_ESYNTAX, 1, "chain");
    ERR("{{ }}", TPL_ESYNTAX, 1, "expected an expression");
    ERR("{{ a ? b }}", TPL_ESYNTAX, 1, "unexpected character '?'");
    ERR("{% set %}", TPL_ESYNTAX, 1, "expected a name");
    ERR("{% for in x %}{% endfor %}", TPL_ESYNTAX, 1, "expected 'in'");
    ERR("{% if %}{% endif %}", TPL_ESYNTAX, 1, "expected an expression");
}

static void test_unsupported(void)
{
    ERR("line1\n{% include 'x.jinja' %}", TPL_EUNSUPPORTED, 2, "'{% include %}'");
    ERR("{% extends 'base' %}", TPL_EUNSUPPORTED, 1, "'{% extends %}'");
    ERR("\n\n{% import 'm' as m %}", TPL_EUNSUPPORTED, 3, "'{% import %}'");
    ERR("{% raw %}x{% endraw %}", TPL_EUNSUPPORTED, 1, "raw");
    ERR("{% call m() %}x{% endcall %}", TPL_EUNSUPPORTED, 1, "'{% call %}'");
    ERR("{% filter upper %}x{% endfilter %}", TPL_EUNSUPPORTED, 1, "'{% filter %}'");
    ERR("a\n{{ x | frobnicate }}", TPL_EUNSUPPORTED, 2, "unsupported filter 'frobnicate'");
    ERR("{{ x is frobnicated }}", TPL_EUNSUPPORTED, 1, "unsupported test 'frobnicated'");
    ERR("{% for x in y recursive %}{% endfor %}", TPL_EUNSUPPORTED, 1, "recursive");
    ERR("{{ f(*args) }}", TPL_EUNSUPPORTED, 1, "*args");
    ERR("{{ '%s' % 1 }}", TPL_EUNSUPPORTED, 1, "formatting");
    ERR("{{ 'abc'.zfill(5) }}", TPL_EUNSUPPORTED, 1, "method 'zfill'");
}

static void test_whitespace(void)
{
    OUT("a\n  {% if true %}\n    x\n  {% endif %}\nb", "a\n    x\nb");
    OUT("a  {% if true %}x{% endif %}  b", "a  x  b");
    OUT("a\n  {%- if true -%}\n  x  \n  {%- endif -%}  \nb", "axb");
    OUT("a\n  {{- \"x\" -}}  \n b", "axb");
    OUT("a\n    {%+ if true %}x{% endif %}\nb", "a\n    xb");
    OUT("a {%- if true +%}\nx{% endif %}", "a\nx");
    OUT("a\n  {# c #}\nb", "a\nb");
    OUT("{% for m in messages %}\n  {{ m.role }}\n{% endfor %}\n", "  user\n  assistant\n");
    OUT("x\n\n", "x\n");
    OUT("x\r\n{% if true %}\r\ny\r\n{% endif %}\r\n", "x\ny\n");
    OUT("{{ {\"a\": {\"b\": 1}} }}", "{'a': {'b': 1}}");
}

static void test_filters(void)
{
    OUT("{{ \"  hi  \" | trim }}|{{ \"hello world\" | title }}|{{ \"hELLO\" | capitalize }}|"
        "{{ \"Ab\" | upper }}{{ \"Ab\" | lower }}",
        "hi|Hello World|Hello|ABab");
    OUT("{{ messages | map(attribute=\"role\") | join(\",\") }}|{{ messages | selectattr(\"role\", "
        "\"equalto\", \"user\") | list | length }}|{{ messages | length }}",
        "user,assistant|1|2");
    OUT("{{ [3, 1, 2] | first }}{{ [3, 1, 2] | last }}|{{ none | default(\"d\") }}|"
        "{{ x | default(\"d\") }}|{{ \"\" | d(\"e\", true) }}",
        "32|None|d|e");
    OUT("{{ messages[0] | tojson }}|{{ {\"a\": [1, 2.0]} | tojson(indent=2) }}|"
        "{{ \"\xc3\xa9\\n\" | tojson }}",
        "{\"role\": \"user\", \"content\": \"Hi\"}|{\n  \"a\": [\n    1,\n    2.0\n  ]\n}|"
        "\"\xc3\xa9\\n\"");
    OUT("{{ 2.5 | round }} {{ 3.14159 | round(2) }} {{ \"42\" | int + 1 }} {{ 42 | string }} "
        "{{ -3 | abs }} {{ [1, 2, 1] | unique | list }} {{ {\"a\": 1} | items | list }}",
        "2.0 3.14 43 42 3 [1, 2] [('a', 1)]");
    OUT("{{ \"a,b\".split(\",\") }} {{ \"abc\"[::-1] }} {{ [1,2,3][1:] }} {{ \" x \".strip() }}|"
        "{{ \"aXa\".replace(\"a\", \"b\") }} {{ \"Hello\".startswith(\"He\") }}",
        "['a', 'b'] cba [2, 3] x|bXb True");
    /* Unicode whitespace (U+3000, U+00A0, U+2003) and case mapping beyond ASCII */
    OUT("[{{ \"\\u3000 hi\\u00a0\\n\" | trim }}]|{{ \"\\u3000a\\u2003b c\".split() }}|"
        "{{ \" a b  c \".split(None, 1) }}",
        "[hi]|['a', 'b', 'c']|['a', 'b  c ']");
    OUT("{{ \"straßé École\" | upper }}|{{ \"ÉCOLE ПРИ\" | lower }}|"
        "{{ \"ßtraße aßb\" | title }}",
        "STRASSÉ ÉCOLE|école при|SStraße Aßb");
    OUT("{{ 2.675 | round(2) }} {{ {1: \"a\", true: \"c\"} | tojson }} {{ [x] }}",
        "2.67 {\"1\": \"c\"} [Undefined]"); /* True == 1 as a key */
}

static void test_values(void)
{
    OUT("{{ 1.0 }} {{ 1e-5 }} {{ 1e16 }} {{ 0.1 + 0.2 }} {{ 3 / 2 }} {{ -7 // 2 }} {{ -7 % 3 }} "
        "{{ [1, \"a\", none, true] }} {{ {\"k\": \"it's\"} }}",
        "1.0 1e-05 1e+16 0.30000000000000004 1.5 -4 2 [1, 'a', None, True] {'k': \"it's\"}");
    OUT("{{ x }}|{{ x is defined }}|{{ messages[5] is defined }}|{{ messages[0].nope }}|"
        "{{ not x is defined }}",
        "|False|False||True");
    OUT("{% set ns = namespace(n=0) %}{% for m in messages %}{% set ns.n = ns.n + 1 %}"
        "{% set local = 1 %}{% endfor %}{{ ns.n }}{{ local is defined }}",
        "2False");
    OUT("{% macro f(a, b='B') %}[{{ a }}{{ b }}]{% endmacro %}{{ f(1) }}{{ f(2, b=3) }}",
        "[1B][23]");
    /* a namespace that contains itself prints as CPython prints it */
    OUT("{% set ns = namespace(a=1) %}{% set ns.me = ns %}{% set ns.l = [ns, (ns,)] %}{{ ns }}",
        "<Namespace {'a': 1, 'me': <Namespace {...}>, 'l': [<Namespace {...}>, "
        "(<Namespace {...}>,)]}>");
    /* transformers' {% generation %} block renders its body */
    OUT("a{% generation %}[{{ messages | length }}]{% endgeneration %}b", "a[2]b");
    OUT("{% for i in range(5) if i is odd %}{{ loop.index }}{{ i }}{% else %}none{% endfor %}",
        "1123");
}

static void test_runtime_errors(void)
{
    ERR("a\n{{ raise_exception('Roles must alternate!') }}", TPL_ERAISE, 2,
        "Roles must alternate!");
    char *out = NULL;
    tpl_error_t err = {0};
    CHECK_INT(render("{{ raise_exception('exact') }}", MSGS, &out, &err), TPL_ERAISE);
    CHECK(strcmp(err.msg, "exact") == 0);
    ERR("{{ nothing.attr }}", TPL_ERUNTIME, 1, "'nothing' is undefined");
    ERR("\n{{ 'a' + 1 }}", TPL_ERUNTIME, 2, "unsupported operand");
    ERR("{{ 1 // 0 }}", TPL_ERUNTIME, 1, "by zero");
    ERR("{{ none | length }}", TPL_ERUNTIME, 1, "has no len()");
    ERR("{% for x in 3 %}{% endfor %}", TPL_ERUNTIME, 1, "not iterable");
    ERR("{% set x = 1 %}{% set x.y = 2 %}", TPL_ERUNTIME, 1, "non-namespace");
    CHECK_INT(render("{{ messages }}", "[{\"role\": ", &out, &err), TPL_EJSON);
    CHECK(strstr(err.msg, "messages: invalid JSON") != NULL);
    CHECK_INT(render("{{ messages }}", "{\"a\": 1}", &out, &err), TPL_EJSON);
    /* unbounded growth is capped, reported as -ENOMEM */
    ERR("{% set ns = namespace(s='ab') %}{% for i in range(40) %}{% set ns.s = ns.s + ns.s %}"
        "{% endfor %}{{ ns.s | length }}",
        -ENOMEM, -1, "out of memory");
    CHECK(strcmp(tpl_strerror(TPL_ERAISE), "template raised an exception") == 0);
    CHECK(strcmp(tpl_strerror(-ENOMEM), strerror(ENOMEM)) == 0);
}

static void test_buffer(void)
{
    tpl_template_t *t = NULL;
    tpl_error_t err;
    const char *src = "{{ bos_token }}{{ messages | length }}";
    CHECK_INT(tpl_compile(src, strlen(src), &t, &err), 0);
    tpl_buf_t b = {0};
    tpl_vars_t v = {.messages_json = MSGS, .bos_token = "<s>"};
    CHECK_INT(tpl_render(t, &v, &b, &err), 0);
    CHECK_INT(tpl_render(t, &v, &b, &err), 0); /* appends */
    CHECK(b.data && strcmp(b.data, "<s>2<s>2") == 0);
    /* a failed render leaves earlier content untouched */
    tpl_template_t *bad = NULL;
    const char *bsrc = "partial{{ raise_exception('no') }}";
    CHECK_INT(tpl_compile(bsrc, strlen(bsrc), &bad, NULL), 0);
    CHECK_INT(tpl_render(bad, &v, &b, NULL), TPL_ERAISE);
    CHECK(strcmp(b.data, "<s>2<s>2") == 0 && b.len == 8);
    tpl_destroy(&bad);
    tpl_buf_free(&b);
    CHECK(b.data == NULL && b.len == 0);
    /* NULL messages, extra variables override the defaults */
    tpl_vars_t v2 = {.extra_json = "{\"tools\": [1], \"bos_token\": \"B\"}"};
    const char *src2 = "{{ messages }}{{ tools }}{{ documents }}{{ bos_token }}";
    tpl_template_t *t2 = NULL;
    CHECK_INT(tpl_compile(src2, strlen(src2), &t2, NULL), 0);
    CHECK_INT(tpl_render(t2, &v2, &b, NULL), 0);
    CHECK(strcmp(b.data, "[][1]NoneB") == 0);
    tpl_buf_free(&b);
    tpl_destroy(&t2);
    tpl_destroy(&t);
    tpl_destroy(&t); /* no-op on NULL */
    tpl_destroy(NULL);
}

typedef struct {
    const tpl_template_t *t;
    int ok;
} thr_arg_t;

static void *thr(void *p)
{
    thr_arg_t *a = p;
    tpl_vars_t v = {.messages_json = MSGS, .add_generation_prompt = 1};
    for (int i = 0; i < 200; i++) {
        tpl_buf_t b = {0};
        if (tpl_render(a->t, &v, &b, NULL) == 0 && strcmp(b.data, "user:Hi|assistant:Yo|>") == 0)
            a->ok++;
        tpl_buf_free(&b);
    }
    return NULL;
}

static void test_threads(void)
{
    const char *src = "{% for m in messages %}{{ m.role }}:{{ m.content }}|{% endfor %}"
                      "{% if add_generation_prompt %}>{% endif %}";
    tpl_template_t *t = NULL;
    CHECK_INT(tpl_compile(src, strlen(src), &t, NULL), 0);
    pthread_t th[4];
    thr_arg_t args[4];
    for (int i = 0; i < 4; i++) {
        args[i] = (thr_arg_t){.t = t};
        CHECK_INT(pthread_create(&th[i], NULL, thr, &args[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        CHECK_INT(args[i].ok, 200);
    }
    tpl_destroy(&t);
}

/* Compile (and render, when it compiles) src; must return a known code. */
static void no_crash(const char *src, size_t len)
{
    tpl_template_t *t = NULL;
    tpl_error_t err;
    int rc = tpl_compile(src, len, &t, &err);
    CHECK(rc == 0 || rc == TPL_ESYNTAX || rc == TPL_EUNSUPPORTED);
    if (rc) {
        CHECK(err.code == rc && err.msg[0] != 0);
        return;
    }
    tpl_vars_t v = {.messages_json = "[{\"role\": \"system\", \"content\": \"s\"},"
                                     "{\"role\": \"user\", \"content\": \"u\"}]",
                    .bos_token = "<s>", .eos_token = "</s>"};
    tpl_buf_t b = {0};
    rc = tpl_render(t, &v, &b, &err);
    CHECK(rc == 0 || rc == TPL_ERAISE || rc == TPL_ERUNTIME || rc == TPL_EUNSUPPORTED);
    tpl_buf_free(&b);
    tpl_destroy(&t);
}

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *p = malloc((size_t)n + 1);
    if (p && fread(p, 1, (size_t)n, f) != (size_t)n) {
        free(p);
        p = NULL;
    }
    fclose(f);
    if (p) {
        p[n] = 0;
        *len = (size_t)n;
    }
    return p;
}

static void test_robust(void)
{
    static const char *files[] = {"Qwen-Qwen2.5-7B-Instruct.jinja",
                                  "meta-llama-Llama-3.2-3B-Instruct.jinja",
                                  "microsoft-Phi-3.5-mini-instruct.jinja",
                                  "mistralai-Mistral-Nemo-Instruct-2407.jinja"};
    const char *builtin =
        "{% set ns = namespace(i=0) %}{%- for m in messages if m.role != 'x' -%}"
        "{{ loop.index ~ m['role'] | upper }}{% set ns.i = ns.i + 1 %}{%- endfor %}"
        "{{ [1, 2, 3][::-1] | tojson(indent=2) }}{# c #}{{ 'a' if ns.i > 1 else 'b' }}";
    unsigned seed = 12345;
    for (size_t fi = 0; fi <= sizeof files / sizeof files[0]; fi++) {
        size_t len = 0;
        char *src = NULL;
        if (fi < sizeof files / sizeof files[0]) {
            char path[512];
            snprintf(path, sizeof path, "%s/%s", TEMPLATE_FIXTURES, files[fi]);
            src = slurp(path, &len);
            if (!src) {
                fprintf(stderr, "note: %s not found, skipped\n", path);
                continue;
            }
        } else {
            src = strdup(builtin);
            len = strlen(src);
        }
        no_crash(src, len);
        for (size_t n = 0; n < len; n++) /* every prefix */
            no_crash(src, n);
        char *mut = malloc(len + 1);
        if (!mut) {
            failures++;
            free(src);
            return;
        }
        static const char junk[] = "{}%#-+()[]'\"|.,:~ \n\\x0";
        for (int it = 0; it < 1000; it++) { /* random single-byte mutations */
            memcpy(mut, src, len);
            seed = seed * 1103515245u + 12345u;
            size_t pos = (seed >> 8) % len;
            seed = seed * 1103515245u + 12345u;
            mut[pos] = junk[(seed >> 8) % (sizeof junk - 1)];
            no_crash(mut, len);
        }
        free(mut);
        free(src);
    }
    /* deep nesting is an error, not a stack overflow */
    size_t n = 100000;
    char *deep = malloc(n + 8);
    if (!deep) {
        failures++;
        return;
    }
    memcpy(deep, "{{ ", 3);
    memset(deep + 3, '(', n);
    no_crash(deep, n + 3);
    memset(deep, '[', n);
    no_crash(deep, n);
    free(deep);
    size_t reps = 5000;
    char *ifs = malloc(reps * 10 + 1);
    if (!ifs) {
        failures++;
        return;
    }
    for (size_t i = 0; i < reps; i++)
        memcpy(ifs + i * 10, "{% if 1 %}", 10);
    no_crash(ifs, reps * 10);
    free(ifs);
    ERR("{% macro r(n) %}{{ r(n + 1) }}{% endmacro %}{{ r(0) }}", TPL_ERUNTIME, 1, "recursion");
}

int main(int argc, char **argv)
{
    static const struct {
        const char *name;
        void (*fn)(void);
    } tests[] = {
        {"syntax", test_syntax},         {"unsupported", test_unsupported},
        {"whitespace", test_whitespace}, {"filters", test_filters},
        {"values", test_values},         {"runtime-errors", test_runtime_errors},
        {"buffer", test_buffer},         {"threads", test_threads},
        {"robust", test_robust},
    };
    int ran = 0;
    for (size_t i = 0; i < sizeof tests / sizeof tests[0]; i++) {
        if (argc > 1 && strcmp(argv[1], tests[i].name))
            continue;
        tests[i].fn();
        ran++;
    }
    if (!ran) {
        fprintf(stderr, "unknown test %s\n", argc > 1 ? argv[1] : "");
        return 2;
    }
    if (failures)
        fprintf(stderr, "%d check(s) failed\n", failures);
    return failures ? 1 : 0;
}

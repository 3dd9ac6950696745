/* Allocation-failure loop for the fe_oai module (SQLite's "fail the Nth
 * malloc" idea): malloc/calloc/realloc of the module's objects are wrapped at
 * link time (-Wl,--wrap) and cJSON is routed through the same wrapper with
 * cJSON_InitHooks. For every N, the Nth allocation fails; each call must
 * report an error (or succeed if it needed fewer allocations), leave its
 * outputs consistent, and leak nothing (run it under ASan). */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fe_oai.h"

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t k);
void *__real_realloc(void *p, size_t n);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t n, size_t k);
void *__wrap_realloc(void *p, size_t n);

static long fail_at = -1, count;

static int should_fail(void) { return fail_at >= 0 && count++ == fail_at; }
void *__wrap_malloc(size_t n) { return should_fail() ? NULL : __real_malloc(n); }
void *__wrap_calloc(size_t n, size_t k) { return should_fail() ? NULL : __real_calloc(n, k); }
void *__wrap_realloc(void *p, size_t n) { return should_fail() ? NULL : __real_realloc(p, n); }
static void *hook_malloc(size_t n) { return __wrap_malloc(n); }
static void hook_free(void *p) { free(p); }

static int failures;
#define CHECK(c)                                                                          \
    do {                                                                                  \
        if (!(c)) fprintf(stderr, "%s:%d: CHECK failed: %s (fail_at %ld)\n", __FILE__, __LINE__, #c, fail_at), failures++; \
    } while (0)

static const char *BODY =
    "{\"messages\": [{\"role\": \"user\", \"content\": \"hello\"}], \"stop\": [\"a\", \"bb\", \"ccc\"], "
    "\"logit_bias\": {\"1\": 2, \"3\": 4}, \"stop_token_ids\": [1, 2, 3], \"allowed_token_ids\": [5, 6], "
    "\"logprobs\": true, \"top_logprobs\": 3, \"stream\": true, \"stream_options\": {\"include_usage\": true}}";

static int parse_once(void) {
    fe_oai_req_t *r = (fe_oai_req_t *)1;
    fe_oai_error_t e;
    int rc = fe_oai_req_parse(FE_OAI_CHAT, BODY, strlen(BODY), NULL, &r, &e);
    if (rc) {
        CHECK(r == NULL);
        /* cJSON cannot tell out-of-memory from bad JSON: either is allowed */
        CHECK(rc == FE_OAI_ENOMEM || rc == FE_OAI_EJSON);
        CHECK(e.message[0] != 0);
        return rc;
    }
    CHECK(r->n_stop == 3 && r->n_logit_bias == 2 && r->logprobs == 3);
    fe_oai_req_destroy(&r);
    return 0;
}

static int build_once(void) {
    fe_oai_meta_t m = {"chatcmpl-1", "model", 1};
    fe_oai_lp_t c[] = {{1, "tok", 3, -0.5f}, {2, "other", 5, -1.5f}};
    fe_oai_token_lp_t lps[] = {{c, 2, 0}, {c, 2, 0}};
    char text[300];
    memset(text, 'x', sizeof text - 1);
    text[sizeof text - 1] = 0;
    fe_oai_choice_t ch = {.text = text, .text_len = strlen(text), .finish = WIRE_FINISH_STOP, .stop_token = 7,
                          .lps = lps, .n_lps = 2, .top_n = 1};
    fe_oai_usage_t u = {3, 4};
    fe_oai_buf_t b = {0};
    int rc = fe_oai_chat_json(&b, &m, &ch, 1, &u);
    if (!rc) rc = fe_oai_completion_json(&b, &m, &ch, 1, &u);
    if (!rc) rc = fe_oai_chat_chunk(&b, &m, &ch, &u);
    if (!rc) rc = fe_oai_done(&b);
    CHECK(rc == 0 || rc == FE_OAI_ENOMEM);
    CHECK(b.len == 0 || b.data[b.len] == 0);
    fe_oai_buf_free(&b);
    return rc;
}

static int stop_once(void) {
    const char *stops[] = {"STOP"};
    size_t len[] = {4};
    fe_oai_stop_t s;
    fe_oai_stop_init(&s, stops, len, 1, 0);
    const char *d;
    size_t dn;
    int rc = 0;
    for (int i = 0; i < 50 && rc >= 0; i++) rc = fe_oai_stop_feed(&s, "abcdefghij", 10, 1, 0, &d, &dn);
    if (rc >= 0) rc = fe_oai_stop_feed(&s, "xSTOP", 5, 1, 0, &d, &dn);
    CHECK(rc == 1 || rc == FE_OAI_ENOMEM);
    fe_oai_stop_free(&s);
    return rc < 0 ? rc : 0;
}

static void loop(const char *name, int (*fn)(void)) {
    long n;
    for (n = 0; n < 100000; n++) {
        fail_at = n;
        count = 0;
        int rc = fn();
        int triggered = count > n;
        fail_at = -1;
        if (!triggered) {
            CHECK(rc == 0); /* no failure injected: must succeed */
            break;
        }
    }
    fprintf(stderr, "%s: %ld allocation points\n", name, n);
    CHECK(n > 0);
}

int main(void) {
    cJSON_InitHooks(&(cJSON_Hooks){hook_malloc, hook_free});
    loop("parse", parse_once);
    loop("build", build_once);
    loop("stop", stop_once);
    return failures ? 1 : 0;
}

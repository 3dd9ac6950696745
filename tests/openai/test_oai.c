/* Unit tests of the fe_oai module: number and string writers, request
 * parsing and validation (vLLM's messages), max_tokens, response and SSE
 * builders, the stop-string matcher. One test per process:
 * test_oai <name>. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fe_oai.h"

static int failures;

#define CHECK(cond)                                                               \
    do {                                                                          \
        if (!(cond)) {                                                            \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
            failures++;                                                           \
        }                                                                         \
    } while (0)

#define CHECK_INT(a, b)                                                                           \
    do {                                                                                          \
        long long a_ = (long long)(a), b_ = (long long)(b);                                       \
        if (a_ != b_) {                                                                           \
            fprintf(stderr, "%s:%d: %s == %lld, expected %s == %lld\n", __FILE__, __LINE__, #a, a_, #b, b_); \
            failures++;                                                                           \
        }                                                                                         \
    } while (0)

#define CHECK_STR(a, b)                                                                                     \
    do {                                                                                                    \
        const char *a_ = (a), *b_ = (b);                                                                    \
        if (!a_ || !b_ || strcmp(a_, b_)) {                                                                 \
            fprintf(stderr, "%s:%d: %s:\n  got      [%s]\n  expected [%s]\n", __FILE__, __LINE__, #a, a_ ? a_ : "(null)", \
                    b_ ? b_ : "(null)");                                                                    \
            failures++;                                                                                     \
        }                                                                                                   \
    } while (0)

// --- writers

static void test_py_float(void) {
    static const struct {
        double v;
        const char *s;
    } t[] = {
        {1.5, "1.5"}, {2.0, "2.0"}, {-3.0, "-3.0"}, {0.1, "0.1"}, {1e-05, "1e-05"}, {0.0001, "0.0001"},
        {1e16, "1e+16"}, {1e15, "1000000000000000.0"}, {123456789012345678.0, "1.2345678901234568e+17"},
        {0.0, "0.0"}, {-9999.0, "-9999.0"}, {(double)-0.1f, "-0.10000000149011612"}, {1.25e-300, "1.25e-300"},
        {100.0, "100.0"}, {12.5, "12.5"}, {5e-324, "5e-324"},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        char buf[32];
        CHECK_STR(fe_oai_py_float(t[i].v, buf), t[i].s);
    }
}

static const char *jstr(const char *s, size_t n, fe_oai_buf_t *b) {
    b->len = 0;
    CHECK_INT(fe_oai_json_str(b, s, n), 0);
    return b->data;
}

static void test_json_str(void) {
    fe_oai_buf_t b = {0};
    CHECK_STR(jstr("a\"b\\c", 5, &b), "\"a\\\"b\\\\c\"");
    CHECK_STR(jstr("\n\r\t\b\f\x01\x1f", 7, &b), "\"\\n\\r\\t\\b\\f\\u0001\\u001f\"");
    CHECK_STR(jstr("\xc3\xa9\xe4\xb8\xad\xf0\x9f\x98\x80", 9, &b), "\"\xc3\xa9\xe4\xb8\xad\xf0\x9f\x98\x80\"");
    /* Invalid UTF-8 -> U+FFFD per maximal subpart, as Python's "replace". */
    CHECK_STR(jstr("\xff", 1, &b), "\"\xef\xbf\xbd\"");
    CHECK_STR(jstr("a\xe4\xb8", 3, &b), "\"a\xef\xbf\xbd\"");
    CHECK_STR(jstr("\xed\xa0\x80", 3, &b), "\"\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\"");
    CHECK_STR(jstr("\xc0\xaf", 2, &b), "\"\xef\xbf\xbd\xef\xbf\xbd\"");
    CHECK_STR(jstr("\xf0\x9f\x98x", 4, &b), "\"\xef\xbf\xbdx\"");
    CHECK_STR(jstr("\xf4\x90\x80\x80", 4, &b), "\"\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\"");
    /* Embedded NUL is escaped, not a terminator. */
    CHECK_STR(jstr("a\0b", 3, &b), "\"a\\u0000b\"");
    /* Every byte string round-trips through a JSON parser as valid UTF-8. */
    srand(7);
    for (int it = 0; it < 2000; it++) {
        char s[32];
        size_t n = (size_t)(rand() % 32);
        for (size_t i = 0; i < n; i++) s[i] = (char)(rand() % 256);
        b.len = 0;
        CHECK_INT(fe_oai_json_str(&b, s, n), 0);
        cJSON *j = cJSON_Parse(b.data);
        CHECK(j && cJSON_IsString(j));
        cJSON_Delete(j);
    }
    fe_oai_buf_free(&b);
}

static void test_error_json(void) {
    fe_oai_error_t e;
    fe_oai_buf_t b = {0};
    CHECK_INT(fe_oai_error_set(&e, FE_OAI_EINVAL, "top_p", "top_p must be in (0, 1], got %s.", "1.5"), FE_OAI_EINVAL);
    CHECK_INT(fe_oai_error_json(&b, &e), 0);
    CHECK_STR(b.data, "{\"error\": {\"message\": \"top_p must be in (0, 1], got 1.5.\", \"type\": \"BadRequestError\", "
                      "\"param\": \"top_p\", \"code\": 400}}");
    b.len = 0;
    fe_oai_error_model(&e, "x");
    CHECK_INT(fe_oai_error_chunk(&b, &e), 0);
    CHECK_STR(b.data, "data: {\"error\": {\"message\": \"The model `x` does not exist.\", \"type\": \"NotFoundError\", "
                      "\"param\": \"model\", \"code\": 404}}\n\n");
    CHECK_INT(fe_oai_err_status(FE_OAI_ENOMEM), 500);
    CHECK_STR(fe_oai_err_name(FE_OAI_ETOOLONG), "FE_OAI_ETOOLONG");
    fe_oai_buf_free(&b);
}

static void test_make_id(void) {
    uint8_t r[16];
    for (int i = 0; i < 16; i++) r[i] = (uint8_t)(i * 17);
    char out[64];
    CHECK_STR(fe_oai_make_id(out, "cmpl-", r), "cmpl-00112233445566778899aabbccddeeff");
}

// --- requests

static fe_oai_req_t *parse_ok(fe_oai_kind_t k, const char *body) {
    fe_oai_req_t *r = NULL;
    fe_oai_error_t e;
    int rc = fe_oai_req_parse(k, body, strlen(body), NULL, &r, &e);
    if (rc) fprintf(stderr, "unexpected error for %s: %s\n", body, e.message);
    CHECK_INT(rc, 0);
    return r;
}

static void test_parse_defaults(void) {
    fe_oai_req_t *r = parse_ok(FE_OAI_COMPLETION, "{\"model\": \"m\", \"prompt\": \"hello\", \"whatever\": [1]}");
    if (!r) return;
    CHECK_STR(r->model, "m");
    CHECK_INT(r->n_prompts, 1);
    CHECK_STR(r->prompts[0].text, "hello");
    CHECK_INT(r->max_tokens, 16);
    CHECK_INT(r->n, 1);
    CHECK(r->temperature == 1.0f && r->top_p == 1.0f && r->top_k == 0 && r->min_p == 0.0f);
    CHECK_INT(r->add_special_tokens, 1);
    CHECK_INT(r->skip_special_tokens, 1);
    CHECK_INT(r->logprobs, -1);
    fe_oai_req_destroy(&r);
    CHECK(r == NULL);

    r = parse_ok(FE_OAI_CHAT, "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], \"max_tokens\": 7, "
                              "\"max_completion_tokens\": 9, \"logprobs\": true, \"top_logprobs\": 3}");
    if (!r) return;
    CHECK_INT(r->max_tokens, 9);
    CHECK_INT(r->add_special_tokens, 0);
    CHECK_INT(r->add_generation_prompt, 1);
    CHECK_INT(r->logprobs, 3);
    CHECK_INT(cJSON_GetArraySize(r->messages), 1);
    fe_oai_req_destroy(&r);

    /* Python `or`: max_completion_tokens 0 falls through to max_tokens. */
    r = parse_ok(FE_OAI_CHAT, "{\"messages\": [], \"max_completion_tokens\": 0, \"max_tokens\": 5}");
    if (r) CHECK_INT(r->max_tokens, 5);
    fe_oai_req_destroy(&r);
    /* Completions: explicit null means "up to the context". */
    r = parse_ok(FE_OAI_COMPLETION, "{\"prompt\": \"x\", \"max_tokens\": null}");
    if (r) CHECK_INT(r->max_tokens, -1);
    fe_oai_req_destroy(&r);

    /* Greedy resets the filters; tiny temperatures are raised to 0.01. */
    r = parse_ok(FE_OAI_COMPLETION, "{\"prompt\": [[1, 2], [3]], \"temperature\": 0, \"top_p\": 0.5, \"top_k\": 5}");
    if (r) {
        CHECK_INT(r->n_prompts, 2);
        CHECK_INT(r->prompts[1].tokens[0], 3);
        CHECK(r->top_p == 1.0f && r->top_k == 0);
    }
    fe_oai_req_destroy(&r);
    r = parse_ok(FE_OAI_COMPLETION, "{\"prompt\": \"x\", \"temperature\": 0.001, \"seed\": -1, "
                                    "\"stream\": true, \"stream_options\": {}}");
    if (r) {
        CHECK(fabsf(r->temperature - 0.01f) < 1e-7f);
        CHECK_INT(r->has_seed, 0);
        CHECK_INT(r->include_usage, 1); /* StreamOptions.include_usage defaults to true */
    }
    fe_oai_req_destroy(&r);

    /* logit_bias: clamped, keyed by int(str), sorted; a repeated id keeps the
     * last value. */
    r = parse_ok(FE_OAI_COMPLETION, "{\"prompt\": \"x\", \"logit_bias\": {\"9\": 300, \" 2\": -5.5, \"+9\": 1}}");
    if (r) {
        CHECK_INT(r->n_logit_bias, 2);
        if (r->n_logit_bias == 2) {
            CHECK_INT(r->logit_bias_ids[0], 2);
            CHECK(r->logit_bias_values[0] == -5.5f);
            CHECK_INT(r->logit_bias_ids[1], 9);
            CHECK(r->logit_bias_values[1] == 1.0f);
        }
    }
    fe_oai_req_destroy(&r);
}

static void test_parse_errors(void) {
    static const struct {
        fe_oai_kind_t k;
        const char *body;
        int code;
        const char *param;
        const char *msg;
    } t[] = {
        {FE_OAI_COMPLETION, "{\"prompt\": \"x\", \"top_p\": 1.5}", FE_OAI_EINVAL, "top_p", "top_p must be in (0, 1], got 1.5."},
        {FE_OAI_COMPLETION, "{\"prompt\": \"x\", \"top_p\": 0}", FE_OAI_EINVAL, "top_p", "top_p must be in (0, 1], got 0.0."},
        {FE_OAI_COMPLETION, "{\"prompt\": \"x\", \"n\": 2, \"temperature\": 0}", FE_OAI_EINVAL, "n",
         "n must be 1 when using greedy sampling, got 2."},
        {FE_OAI_COMPLETION, "{\"prompt\": \"x\", \"stop\": [\"a\", \"\"]}", FE_OAI_EINVAL, "stop", "stop cannot contain an empty string."},
        {FE_OAI_COMPLETION, "{\"prompt\": \"x\", \"stop\": \"\"}", FE_OAI_EINVAL, "stop", "stop cannot contain an empty string."},
        {FE_OAI_COMPLETION, "{\"prompt\": \"x\", \"logprobs\": 25}", FE_OAI_EINVAL, "logprobs",
         "Requested sample logprobs of 25, which is greater than max allowed: 20"},
        {FE_OAI_CHAT, "{\"messages\": [], \"logprobs\": true, \"top_logprobs\": 21}", FE_OAI_EINVAL, "top_logprobs",
         "Requested sample logprobs of 21, which is greater than max allowed: 20"},
        {FE_OAI_CHAT, "{\"messages\": [], \"top_logprobs\": 2}", FE_OAI_ESCHEMA, "top_logprobs",
         "when using `top_logprobs`, `logprobs` must be set to true."},
        {FE_OAI_COMPLETION, "{\"prompt\": \"x\", \"temperature\": -1}", FE_OAI_EINVAL, "temperature",
         "temperature must be non-negative, got -1.0."},
        {FE_OAI_COMPLETION, "{\"prompt\": \"x\", \"top_k\": -2}", FE_OAI_EINVAL, "top_k",
         "top_k must be 0 (disable), or at least 1, got -2."},
        {FE_OAI_COMPLETION, "{\"prompt\": \"x\", \"min_p\": 1.5}", FE_OAI_EINVAL, "min_p", "min_p must be in [0, 1], got 1.5."},
        {FE_OAI_COMPLETION, "{\"prompt\": \"x\", \"max_tokens\": 0}", FE_OAI_EINVAL, "max_tokens",
         "max_tokens must be at least 1, got 0."},
        {FE_OAI_COMPLETION, "{\"prompt\": \"x\", \"max_tokens\": 4, \"min_tokens\": 5}", FE_OAI_EINVAL, "min_tokens",
         "min_tokens must be less than or equal to max_tokens=4, got 5."},
        {FE_OAI_COMPLETION, "{\"prompt\": \"x\", \"presence_penalty\": 3}", FE_OAI_EINVAL, "presence_penalty",
         "presence_penalty must be in [-2, 2], got 3.0."},
        {FE_OAI_COMPLETION, "{\"prompt\": \"x\", \"repetition_penalty\": 0}", FE_OAI_EINVAL, "repetition_penalty",
         "repetition_penalty must be greater than zero, got 0.0."},
        {FE_OAI_COMPLETION, "{\"prompt\": \"x\", \"n\": \"2\"}", FE_OAI_ESCHEMA, "n", "n: Input should be a valid integer"},
        {FE_OAI_COMPLETION, "{\"prompt\": \"x\", \"n\": 1.5}", FE_OAI_ESCHEMA, "n",
         "n: Input should be a valid integer, got a number with a fractional part"},
        {FE_OAI_COMPLETION, "{\"prompt\": \"x\", \"stream\": \"yes\"}", FE_OAI_ESCHEMA, "stream",
         "stream: Input should be a valid boolean"},
        {FE_OAI_COMPLETION, "{\"prompt\": \"x\"", FE_OAI_EJSON, "", NULL},
        {FE_OAI_COMPLETION, "{\"prompt\": \"x\"} x", FE_OAI_EJSON, "", NULL},
        {FE_OAI_COMPLETION, "[1]", FE_OAI_ESCHEMA, "", "Input should be a valid dictionary or object to extract fields from"},
        {FE_OAI_COMPLETION, "{}", FE_OAI_ESCHEMA, "prompt", "Either prompt or prompt_embeds must be provided and non-empty."},
        {FE_OAI_COMPLETION, "{\"prompt\": []}", FE_OAI_EINVAL, "prompt", "please provide at least one prompt"},
        {FE_OAI_COMPLETION, "{\"prompt\": [[]]}", FE_OAI_EINVAL, "prompt", "please provide at least one prompt"},
        {FE_OAI_COMPLETION, "{\"prompt\": [\"a\", 1]}", FE_OAI_ESCHEMA, "prompt",
         "prompt must be a string, array of strings, array of tokens, or array of token arrays"},
        {FE_OAI_COMPLETION, "{\"prompt\": \"x\", \"stream_options\": {\"include_usage\": true}}", FE_OAI_ESCHEMA,
         "stream_options", "Stream options can only be defined when `stream=True`."},
        {FE_OAI_COMPLETION, "{\"prompt\": \"x\", \"logit_bias\": {\"abc\": 1}}", FE_OAI_EINVAL, "logit_bias",
         "invalid literal for int() with base 10: 'abc'"},
        {FE_OAI_COMPLETION, "{\"prompt\": \"x\", \"allowed_token_ids\": []}", FE_OAI_EINVAL, "allowed_token_ids",
         "allowed_token_ids is not None and empty!"},
        {FE_OAI_CHAT, "{}", FE_OAI_ESCHEMA, "messages", "messages: Field required"},
        {FE_OAI_CHAT, "{\"messages\": [{\"content\": \"x\"}]}", FE_OAI_ESCHEMA, "messages", "messages.0.role: Field required"},
        {FE_OAI_CHAT, "{\"messages\": [{\"role\": \"user\", \"content\": 5}]}", FE_OAI_ESCHEMA, "messages", NULL},
        {FE_OAI_CHAT, "{\"messages\": [], \"continue_final_message\": true}", FE_OAI_ESCHEMA, "continue_final_message",
         "Cannot set both `continue_final_message` and `add_generation_prompt` to True."},
        {FE_OAI_CHAT, "{\"messages\": [], \"stream\": true, \"prompt_logprobs\": 1}", FE_OAI_ESCHEMA, "prompt_logprobs",
         "`prompt_logprobs` are not available when `stream=True`."},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        fe_oai_req_t *r = (fe_oai_req_t *)1;
        fe_oai_error_t e;
        int rc = fe_oai_req_parse(t[i].k, t[i].body, strlen(t[i].body), NULL, &r, &e);
        if (rc != t[i].code) fprintf(stderr, "case %zu: %s -> %d %s\n", i, t[i].body, rc, rc ? e.message : "");
        CHECK_INT(rc, t[i].code);
        CHECK(r == NULL);
        if (!rc) {
            fe_oai_req_destroy(&r);
            continue;
        }
        CHECK_INT(e.status, 400);
        CHECK_STR(e.param, t[i].param);
        if (t[i].msg) CHECK_STR(e.message, t[i].msg);
        CHECK_STR(e.type, t[i].code == FE_OAI_EINVAL ? "BadRequestError" : "Bad Request");
    }
}

static void test_max_tokens(void) {
    fe_oai_error_t e;
    fe_oai_req_t *r = parse_ok(FE_OAI_CHAT, "{\"messages\": []}");
    if (!r) return;
    CHECK_INT(fe_oai_max_tokens(r, 10, 100, &e), 90);
    CHECK_INT(fe_oai_max_tokens(r, 100, 100, &e), FE_OAI_ETOOLONG);
    CHECK_STR(e.message, "This model's maximum context length is 100 tokens. However, your request has 100 input "
                         "tokens. Please reduce the length of the input messages.");
    CHECK_INT(e.status, 400);
    fe_oai_req_destroy(&r);
    r = parse_ok(FE_OAI_COMPLETION, "{\"prompt\": \"x\", \"max_tokens\": 50, \"min_tokens\": 3}");
    if (!r) return;
    CHECK_INT(fe_oai_max_tokens(r, 50, 100, &e), 50);
    CHECK_INT(fe_oai_max_tokens(r, 51, 100, &e), FE_OAI_ETOOLONG);
    CHECK_STR(e.message, "'max_tokens' or 'max_completion_tokens' is too large: 50. This model's maximum context "
                         "length is 100 tokens and your request has 51 input tokens (50 > 100 - 51).");
    wire_sampling_t sp;
    CHECK_INT(fe_oai_req_sampling(r, NULL, 10, 100, &sp, &e), 0);
    CHECK_INT(sp.max_tokens, 50);
    CHECK_INT(sp.min_tokens, 3);
    CHECK_INT(sp.logprobs, -1);
    fe_oai_req_destroy(&r);
    /* min_tokens against the default max_tokens (known only here). */
    r = parse_ok(FE_OAI_CHAT, "{\"messages\": [], \"min_tokens\": 20}");
    if (!r) return;
    CHECK_INT(fe_oai_req_sampling(r, NULL, 90, 100, &sp, &e), FE_OAI_EINVAL);
    CHECK_STR(e.message, "min_tokens must be less than or equal to max_tokens=10, got 20.");
    fe_oai_req_destroy(&r);
}


/* Mutated bodies (byte flips, insertions, truncation) never crash the parser
 * and always end in success or a 400 with a message and *out == NULL. */
static void test_parse_fuzz(void) {
    static const char *seeds[] = {
        "{\"model\": \"m\", \"prompt\": [[1, 2], [3]], \"n\": 2, \"stop\": [\"a\", \"b\"], "
        "\"logit_bias\": {\"1\": 5}, \"logprobs\": 3, \"stream\": true, \"stream_options\": {\"include_usage\": true}}",
        "{\"messages\": [{\"role\": \"user\", \"content\": [{\"type\": \"text\", \"text\": \"hi\"}]}], "
        "\"max_completion_tokens\": 5, \"logprobs\": true, \"top_logprobs\": 2, \"allowed_token_ids\": [1, 2]}",
    };
    static const char alphabet[] = "{}[]\":,0123456789-.eEtruefalsn \\\x80\xff";
    srand(11);
    int oks = 0;
    for (int it = 0; it < 20000; it++) {
        fe_oai_kind_t k = it & 1 ? FE_OAI_CHAT : FE_OAI_COMPLETION;
        char buf[512];
        size_t n = strlen(seeds[it & 1]);
        memcpy(buf, seeds[it & 1], n);
        int edits = 1 + rand() % 4;
        for (int e = 0; e < edits && n > 0; e++) {
            size_t at = (size_t)rand() % n;
            int op = rand() % 3;
            char ch = alphabet[rand() % (int)(sizeof alphabet - 1)];
            if (op == 0) buf[at] = ch;
            else if (op == 1 && n < sizeof buf - 1) memmove(buf + at + 1, buf + at, n - at), buf[at] = ch, n++;
            else n = at + (size_t)(rand() % 2);
        }
        fe_oai_req_t *r = NULL;
        fe_oai_error_t err;
        /* An exact-size heap copy, so ASan sees any read past the body. */
        char *body = malloc(n ? n : 1);
        memcpy(body, buf, n);
        int rc = fe_oai_req_parse(k, body, n, NULL, &r, &err);
        free(body);
        oks += rc == 0;
        if (rc) {
            CHECK(r == NULL);
            CHECK_INT(err.status, 400);
            CHECK(err.message[0] != 0);
        } else {
            wire_sampling_t sp;
            fe_oai_error_t e2;
            int rc2 = fe_oai_req_sampling(r, NULL, 3, 64, &sp, &e2);
            CHECK(rc2 == 0 || e2.status == 400);
            fe_oai_req_destroy(&r);
        }
        if (failures) break;
    }
    /* Both outcomes must be exercised for the test to mean anything. */
    CHECK(oks > 100 && oks < 19900);
}

// --- responses

static cJSON *parse_json(const char *s) {
    cJSON *j = cJSON_Parse(s);
    if (!j) fprintf(stderr, "invalid JSON: %s\n", s);
    CHECK(j != NULL);
    return j;
}

static void test_responses(void) {
    fe_oai_meta_t m = {.id = "cmpl-abc", .model = "m\"q", .created = 1700000000};
    fe_oai_lp_t c0[] = {{5, "Hi", 2, -0.5f}, {7, "Hey", 3, -0.25f}, {5, "Hi", 2, -0.5f}, {9, "Hi", 2, -3.0f}};
    fe_oai_lp_t c1[] = {{8, "\xe4", 1, -INFINITY}, {8, "\xe4", 1, -INFINITY}};
    fe_oai_token_lp_t lps[] = {{c0, 4, 0}, {c1, 2, 0}};
    fe_oai_choice_t ch = {.index = 0, .text = "Hi\xe4", .text_len = 3, .finish = WIRE_FINISH_STOP, .stop_str = "\n",
                          .stop_str_len = 1, .stop_token = -1, .lps = lps, .n_lps = 2, .top_n = 2, .text_offset = 4};
    fe_oai_usage_t u = {5, 2};
    fe_oai_buf_t b = {0};
    CHECK_INT(fe_oai_completion_json(&b, &m, &ch, 1, &u), 0);
    cJSON *j = parse_json(b.data);
    if (j) {
        cJSON *c = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "choices"), 0);
        CHECK_STR(cJSON_GetObjectItem(c, "text")->valuestring, "Hi\xef\xbf\xbd");
        CHECK_STR(cJSON_GetObjectItem(c, "finish_reason")->valuestring, "stop");
        CHECK_STR(cJSON_GetObjectItem(c, "stop_reason")->valuestring, "\n");
        cJSON *lp = cJSON_GetObjectItem(c, "logprobs");
        CHECK_INT(cJSON_GetArrayItem(cJSON_GetObjectItem(lp, "text_offset"), 1)->valueint, 6);
        CHECK(cJSON_GetArrayItem(cJSON_GetObjectItem(lp, "token_logprobs"), 1)->valuedouble == -9999.0);
        /* ids 5, 7, 9 (top_n + 1 = 3 unique ids); "Hi" twice -> one key with
         * the last value. */
        cJSON *top0 = cJSON_GetArrayItem(cJSON_GetObjectItem(lp, "top_logprobs"), 0);
        CHECK_INT(cJSON_GetArraySize(top0), 2);
        CHECK(cJSON_GetObjectItem(top0, "Hi")->valuedouble == -3.0);
        CHECK_INT(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "usage"), "total_tokens")->valueint, 7);
        CHECK_STR(cJSON_GetObjectItem(j, "model")->valuestring, "m\"q");
    }
    cJSON_Delete(j);

    b.len = 0;
    CHECK_INT(fe_oai_chat_json(&b, &m, &ch, 1, &u), 0);
    j = parse_json(b.data);
    if (j) {
        cJSON *c = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "choices"), 0);
        CHECK_STR(cJSON_GetObjectItem(cJSON_GetObjectItem(c, "message"), "role")->valuestring, "assistant");
        cJSON *content = cJSON_GetObjectItem(cJSON_GetObjectItem(c, "logprobs"), "content");
        cJSON *e1 = cJSON_GetArrayItem(content, 1);
        CHECK_STR(cJSON_GetObjectItem(e1, "token")->valuestring, "\xef\xbf\xbd");
        CHECK_INT(cJSON_GetArraySize(cJSON_GetObjectItem(e1, "bytes")), 3);
        /* chat: the first top_n unique ids, sampled first. */
        cJSON *top = cJSON_GetObjectItem(cJSON_GetArrayItem(content, 0), "top_logprobs");
        CHECK_INT(cJSON_GetArraySize(top), 2);
        CHECK_STR(cJSON_GetObjectItem(cJSON_GetArrayItem(top, 1), "token")->valuestring, "Hey");
    }
    cJSON_Delete(j);

    /* SSE frames: each "data: <json>\n\n". */
    b.len = 0;
    fe_oai_choice_t d = {.index = 1, .text = "a", .text_len = 1, .stop_token = -1};
    CHECK_INT(fe_oai_chat_role_chunk(&b, &m, 1, NULL), 0);
    CHECK_INT(fe_oai_chat_chunk(&b, &m, &d, NULL), 0);
    d.finish = WIRE_FINISH_LENGTH;
    CHECK_INT(fe_oai_chat_chunk(&b, &m, &d, &u), 0);
    CHECK_INT(fe_oai_usage_chunk(&b, FE_OAI_CHAT, &m, &u), 0);
    CHECK_INT(fe_oai_done(&b), 0);
    int frames = 0;
    for (char *p = b.data; *p;) {
        CHECK(!strncmp(p, "data: ", 6));
        char *e = strstr(p, "\n\n");
        CHECK(e != NULL);
        if (!e) break;
        *e = 0;
        if (strcmp(p + 6, "[DONE]")) {
            cJSON *f = parse_json(p + 6);
            CHECK_STR(cJSON_GetObjectItem(f, "object")->valuestring, "chat.completion.chunk");
            cJSON_Delete(f);
        }
        frames++;
        p = e + 2;
    }
    CHECK_INT(frames, 5);
    fe_oai_buf_free(&b);
}

// --- stop strings

typedef struct {
    const char *steps[8];
    const char *deltas[8];
    int hit_step;
} stop_case_t;

static void run_stop(const char *const *stops, uint32_t n, int include, const stop_case_t *c, int matched) {
    size_t len[8];
    for (uint32_t i = 0; i < n; i++) len[i] = strlen(stops[i]);
    fe_oai_stop_t m;
    fe_oai_stop_init(&m, stops, len, n, include);
    for (int s = 0; c->steps[s]; s++) {
        const char *d;
        size_t dn;
        int last = !c->steps[s + 1];
        int hit = fe_oai_stop_feed(&m, c->steps[s], strlen(c->steps[s]), 1, last, &d, &dn);
        CHECK_INT(hit, s == c->hit_step);
        char got[128];
        snprintf(got, sizeof got, "%.*s", (int)dn, d);
        CHECK_STR(got, c->deltas[s]);
    }
    CHECK_INT(fe_oai_stop_matched(&m), matched);
    fe_oai_stop_free(&m);
}

static void test_stop(void) {
    const char *s1[] = {"STOP"};
    /* Split across steps: "ST" | "OP": "ab" is sent, "S"+"T" held back. */
    run_stop(s1, 1, 0, &(stop_case_t){{"abS", "T", "OPxyz", NULL}, {"", "a", "b", NULL}, 2}, 0);
    run_stop(s1, 1, 1, &(stop_case_t){{"abS", "T", "OPxyz", NULL}, {"abS", "T", "OP", NULL}, 2}, 0);
    /* No match: everything comes out, the tail when finished. */
    run_stop(s1, 1, 0, &(stop_case_t){{"hello", " wor", "ld", NULL}, {"he", "llo ", "world", NULL}, -1}, -1);
    /* List order wins, not position (vLLM's loop). */
    const char *s2[] = {"b", "a"};
    run_stop(s2, 2, 0, &(stop_case_t){{"xab", NULL}, {"xa", NULL}, 0}, 0);
    /* Hold-back counts characters, not bytes. */
    const char *s3[] = {"\xc3\xa9\xc3\xa9\xc3\xa9"};
    run_stop(s3, 1, 0,
             &(stop_case_t){{"\xe4\xb8\xad\xe4\xb8\xad\xe4\xb8\xad", "\xc3\xa9", "\xc3\xa9\xc3\xa9z", NULL},
                            {"\xe4\xb8\xad", "\xe4\xb8\xad", "\xe4\xb8\xad", NULL},
                            2},
             0);
    /* After a match nothing more comes out. */
    size_t l = 4;
    fe_oai_stop_t m;
    fe_oai_stop_init(&m, s1, &l, 1, 0);
    const char *d;
    size_t dn;
    CHECK_INT(fe_oai_stop_feed(&m, "STOP", 4, 1, 0, &d, &dn), 1);
    CHECK_INT(dn, 0);
    CHECK_INT(fe_oai_stop_feed(&m, "more", 4, 1, 1, &d, &dn), 0);
    CHECK_INT(dn, 0);
    size_t tl;
    fe_oai_stop_text(&m, &tl);
    CHECK_INT(tl, 0);
    fe_oai_stop_free(&m);
    /* check == 0 (min_tokens not reached): no match this step. */
    fe_oai_stop_init(&m, s1, &l, 1, 0);
    CHECK_INT(fe_oai_stop_feed(&m, "STOP", 4, 0, 0, &d, &dn), 0);
    CHECK_INT(fe_oai_stop_feed(&m, "x", 1, 1, 0, &d, &dn), 0);
    fe_oai_stop_free(&m);
}

int main(int argc, char **argv) {
    static const struct {
        const char *name;
        void (*fn)(void);
    } tests[] = {{"py_float", test_py_float}, {"json_str", test_json_str}, {"error_json", test_error_json},
                 {"make_id", test_make_id},   {"parse_defaults", test_parse_defaults},
                 {"parse_errors", test_parse_errors}, {"parse_fuzz", test_parse_fuzz}, {"max_tokens", test_max_tokens},
                 {"responses", test_responses}, {"stop", test_stop}};
    const char *want = argc > 1 ? argv[1] : NULL;
    int ran = 0;
    for (size_t i = 0; i < sizeof tests / sizeof tests[0]; i++)
        if (!want || !strcmp(want, tests[i].name)) tests[i].fn(), ran++;
    if (!ran) return fprintf(stderr, "unknown test %s\n", want), 2;
    if (failures) fprintf(stderr, "%d failure(s)\n", failures);
    return failures ? 1 : 0;
}

/* fe_oai_req: parses and validates /v1/completions and /v1/chat/completions
 * bodies the way vLLM's pydantic models, model validators and SamplingParams
 * checks do, and turns a parsed request into the engine's wire_sampling_t.
 *
 * Ownership: a request owns its cJSON tree and one arena (a chain of blocks)
 * for the arrays built here; strings point into the tree. One call frees
 * both (fe_oai_req_destroy).
 *
 * Messages: vLLM's exact text where it has one (SamplingParams, the serving
 * layer, the model validators); for type errors a pydantic-like
 * "<field>: Input should be a valid integer" naming the field.
 * What this file does not do: the chat template, tokenization, model lookup.
 */
#include <cjson/cJSON.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fe_oai.h"
#include "fe_oai_int.h"

#define SAMPLING_EPS 1e-5 /* vLLM _SAMPLING_EPS: below it sampling is greedy */
#define MIN_TEMP 1e-2     /* vLLM _MAX_TEMP: smaller positive temperatures are raised to it */
#define COMPLETION_DEFAULT_MAX_TOKENS 16

// --- arena

typedef struct arena_blk {
    struct arena_blk *next;
    size_t used, cap;
    _Alignas(16) unsigned char data[];
} arena_blk_t;

static void *arena_alloc(fe_oai_req_t *r, size_t n) {
    n = (n + 15) & ~(size_t)15;
    arena_blk_t *b = r->arena;
    if (!b || b->cap - b->used < n) {
        size_t cap = n > 4096 ? n : 4096;
        arena_blk_t *nb = malloc(sizeof *nb + cap);
        if (!nb) return NULL;
        nb->next = b;
        nb->used = 0;
        nb->cap = cap;
        r->arena = b = nb;
    }
    void *p = b->data + b->used;
    b->used += n;
    return p;
}

void fe_oai_req_destroy(fe_oai_req_t **rp) {
    fe_oai_req_t *r = rp ? *rp : NULL;
    if (!r) return;
    for (arena_blk_t *b = r->arena, *nx; b; b = nx) {
        nx = b->next;
        free(b);
    }
    cJSON_Delete(r->root);
    free(r);
    *rp = NULL;
}

void fe_oai_defaults_init(fe_oai_defaults_t *d) {
    *d = (fe_oai_defaults_t){.temperature = 1.0f,
                             .top_p = 1.0f,
                             .top_k = 0,
                             .min_p = 0.0f,
                             .repetition_penalty = 1.0f,
                             .max_logprobs = 20,
                             .vocab_size = 0};
}

// --- typed field access

typedef struct {
    fe_oai_req_t *r;
    const fe_oai_defaults_t *d;
    fe_oai_error_t *err;
} ctx_t;

/* The field, or NULL when absent or null (every field vLLM reads is Optional
 * or has a default; null counts as not given). */
static const cJSON *field(const ctx_t *c, const char *name) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(c->r->root, name);
    return v && !cJSON_IsNull(v) ? v : NULL;
}

static int type_error(const ctx_t *c, const char *name, const char *what) {
    return fe_oai_error_set(c->err, FE_OAI_ESCHEMA, name, "%s: Input should be a valid %s", name, what);
}

/* JSON true/false, or 0/1 as pydantic's lax bool accepts. Absent: *out kept. */
static int get_bool(const ctx_t *c, const char *name, int *out) {
    const cJSON *v = field(c, name);
    if (!v) return 0;
    if (cJSON_IsBool(v)) *out = cJSON_IsTrue(v);
    else if (cJSON_IsNumber(v) && (v->valuedouble == 0 || v->valuedouble == 1)) *out = v->valuedouble == 1;
    else return type_error(c, name, "boolean");
    return 0;
}

/* An integral JSON number within int64 (1.0 counts, as pydantic's lax int). */
static int as_int(const cJSON *v, int64_t *out) {
    if (!cJSON_IsNumber(v)) return -1;
    double x = v->valuedouble;
    if (!isfinite(x) || x != floor(x) || x < -9223372036854775808.0 || x >= 9223372036854775808.0) return -1;
    *out = (int64_t)x;
    return 0;
}

static int get_int(const ctx_t *c, const char *name, int64_t *out, int *present) {
    const cJSON *v = field(c, name);
    if (present) *present = v != NULL;
    if (!v) return 0;
    if (!cJSON_IsNumber(v)) return type_error(c, name, "integer");
    if (as_int(v, out)) {
        double x = v->valuedouble;
        if (x != floor(x))
            return fe_oai_error_set(c->err, FE_OAI_ESCHEMA, name,
                                    "%s: Input should be a valid integer, got a number with a fractional part",
                                    name);
        return fe_oai_error_set(c->err, FE_OAI_ESCHEMA, name, "%s: Input should be a valid integer, out of range",
                                name);
    }
    return 0;
}

static int get_num(const ctx_t *c, const char *name, double *out, int *present) {
    const cJSON *v = field(c, name);
    if (present) *present = v != NULL;
    if (!v) return 0;
    if (!cJSON_IsNumber(v)) return type_error(c, name, "number");
    *out = v->valuedouble;
    return 0;
}

static int get_str(const ctx_t *c, const char *name, const char **out) {
    const cJSON *v = field(c, name);
    if (!v) return 0;
    if (!cJSON_IsString(v)) return type_error(c, name, "string");
    *out = v->valuestring;
    return 0;
}

/* Python's str(float) for messages ("got 1.5."). */
#define PYF(x) fe_oai_py_float((double)(x), (char[32]){0})

static int invalid(const ctx_t *c, const char *param, const char *msg) {
    return fe_oai_error_set(c->err, FE_OAI_EINVAL, param, "%s", msg);
}

/* An array of token ids (non-negative int32) into the arena. */
static int token_list(const ctx_t *c, const cJSON *v, const char *name, const uint32_t **out, uint32_t *n) {
    if (!cJSON_IsArray(v)) return type_error(c, name, "list");
    int cnt = cJSON_GetArraySize(v);
    uint32_t *a = arena_alloc(c->r, (size_t)(cnt ? cnt : 1) * sizeof *a);
    if (!a) return fe_oai_error_set(c->err, FE_OAI_ENOMEM, NULL, "out of memory");
    uint32_t k = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, v) {
        int64_t x;
        if (as_int(it, &x)) return type_error(c, name, "list of integers");
        if (x < 0 || x > INT32_MAX)
            return fe_oai_error_set(c->err, FE_OAI_EINVAL, name, "%s: token id %lld is out of range", name,
                                    (long long)x);
        a[k++] = (uint32_t)x;
    }
    *out = a;
    *n = k;
    return 0;
}

// --- prompt (completions)

static const char *const PROMPT_TYPE_MSG =
    "prompt must be a string, array of strings, array of tokens, or array of token arrays";

static int is_all(const cJSON *arr, int (*pred)(const cJSON *)) {
    const cJSON *it;
    cJSON_ArrayForEach(it, arr) if (!pred(it)) return 0;
    return 1;
}

static int is_str(const cJSON *v) { return cJSON_IsString(v); }
static int is_intnum(const cJSON *v) {
    int64_t x;
    return !as_int(v, &x);
}
static int is_arr(const cJSON *v) { return cJSON_IsArray(v); }

static int check_vocab(const ctx_t *c, const uint32_t *t, uint32_t n) {
    if (!c->d->vocab_size) return 0;
    uint32_t mx = 0;
    for (uint32_t i = 0; i < n; i++) mx = t[i] > mx ? t[i] : mx;
    if (n && mx >= c->d->vocab_size)
        return fe_oai_error_set(c->err, FE_OAI_EINVAL, "prompt", "Token id %u is out of vocabulary", mx);
    return 0;
}

static int parse_prompt(ctx_t *c) {
    fe_oai_req_t *r = c->r;
    const cJSON *p = field(c, "prompt");
    /* vLLM's validate_prompt_and_prompt_embeds (prompt_embeds is not
     * supported here, so only the prompt counts). */
    if (!p || (cJSON_IsString(p) && !p->valuestring[0]))
        return fe_oai_error_set(c->err, FE_OAI_ESCHEMA, "prompt",
                                "Either prompt or prompt_embeds must be provided and non-empty.");
    if (cJSON_IsString(p)) {
        fe_oai_prompt_t *one = arena_alloc(r, sizeof *one);
        if (!one) return fe_oai_error_set(c->err, FE_OAI_ENOMEM, NULL, "out of memory");
        *one = (fe_oai_prompt_t){.text = p->valuestring, .text_len = strlen(p->valuestring)};
        r->prompts = one;
        r->n_prompts = 1;
        return 0;
    }
    if (!cJSON_IsArray(p)) return fe_oai_error_set(c->err, FE_OAI_ESCHEMA, "prompt", "%s", PROMPT_TYPE_MSG);
    int cnt = cJSON_GetArraySize(p);
    if (cnt == 0) return invalid(c, "prompt", "please provide at least one prompt");
    if (is_all(p, is_intnum)) {
        fe_oai_prompt_t *one = arena_alloc(r, sizeof *one);
        if (!one) return fe_oai_error_set(c->err, FE_OAI_ENOMEM, NULL, "out of memory");
        *one = (fe_oai_prompt_t){0};
        int rc = token_list(c, p, "prompt", &one->tokens, &one->n_tokens);
        if (!rc) rc = check_vocab(c, one->tokens, one->n_tokens);
        if (rc) return rc;
        r->prompts = one;
        r->n_prompts = 1;
        return 0;
    }
    int strs = is_all(p, is_str), arrs = is_all(p, is_arr);
    if (!strs && !arrs) return fe_oai_error_set(c->err, FE_OAI_ESCHEMA, "prompt", "%s", PROMPT_TYPE_MSG);
    if (arrs && cJSON_GetArraySize(p->child) == 0) return invalid(c, "prompt", "please provide at least one prompt");
    fe_oai_prompt_t *ps = arena_alloc(r, (size_t)cnt * sizeof *ps);
    if (!ps) return fe_oai_error_set(c->err, FE_OAI_ENOMEM, NULL, "out of memory");
    uint32_t k = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, p) {
        ps[k] = (fe_oai_prompt_t){0};
        if (strs) {
            ps[k].text = it->valuestring;
            ps[k].text_len = strlen(it->valuestring);
        } else {
            if (!is_all(it, is_intnum))
                return fe_oai_error_set(c->err, FE_OAI_ESCHEMA, "prompt", "%s", PROMPT_TYPE_MSG);
            int rc = token_list(c, it, "prompt", &ps[k].tokens, &ps[k].n_tokens);
            if (!rc) rc = check_vocab(c, ps[k].tokens, ps[k].n_tokens);
            if (rc) return rc;
        }
        k++;
    }
    r->prompts = ps;
    r->n_prompts = k;
    return 0;
}

// --- messages (chat)

/* Loose shape check, as vLLM's pydantic union accepts any role string:
 * a list of objects with a string role; content absent, null, a string, or a
 * list of objects with a string "type". */
static int parse_messages(ctx_t *c) {
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(c->r->root, "messages");
    if (!m || cJSON_IsNull(m))
        return fe_oai_error_set(c->err, FE_OAI_ESCHEMA, "messages", "messages: Field required");
    if (!cJSON_IsArray(m)) return type_error(c, "messages", "list");
    int i = 0;
    const cJSON *msg;
    cJSON_ArrayForEach(msg, m) {
        if (!cJSON_IsObject(msg))
            return fe_oai_error_set(c->err, FE_OAI_ESCHEMA, "messages", "messages.%d: Input should be a valid dictionary",
                                    i);
        const cJSON *role = cJSON_GetObjectItemCaseSensitive(msg, "role");
        if (!role) return fe_oai_error_set(c->err, FE_OAI_ESCHEMA, "messages", "messages.%d.role: Field required", i);
        if (!cJSON_IsString(role))
            return fe_oai_error_set(c->err, FE_OAI_ESCHEMA, "messages",
                                    "messages.%d.role: Input should be a valid string", i);
        const cJSON *content = cJSON_GetObjectItemCaseSensitive(msg, "content");
        if (content && !cJSON_IsNull(content) && !cJSON_IsString(content)) {
            int ok = cJSON_IsArray(content);
            const cJSON *part;
            if (ok) cJSON_ArrayForEach(part, content) {
                    const cJSON *t = cJSON_GetObjectItemCaseSensitive(part, "type");
                    if (!cJSON_IsObject(part) || !cJSON_IsString(t)) ok = 0;
                }
            if (!ok)
                return fe_oai_error_set(c->err, FE_OAI_ESCHEMA, "messages",
                                        "messages.%d.content: Input should be a valid string or a list of "
                                        "content parts (objects with a string \"type\")",
                                        i);
        }
        i++;
    }
    c->r->messages = m;
    const cJSON *k = field(c, "chat_template_kwargs");
    if (k && !cJSON_IsObject(k)) return type_error(c, "chat_template_kwargs", "dictionary");
    c->r->chat_template_kwargs = k;
    return 0;
}

// --- stop, logit_bias

static int parse_stop(ctx_t *c) {
    fe_oai_req_t *r = c->r;
    const cJSON *v = field(c, "stop");
    if (!v) return 0;
    int cnt = cJSON_IsString(v) ? 1 : cJSON_IsArray(v) ? cJSON_GetArraySize(v) : -1;
    if (cnt < 0 || (cJSON_IsArray(v) && !is_all(v, is_str)))
        return fe_oai_error_set(c->err, FE_OAI_ESCHEMA, "stop", "stop: Input should be a valid string or list of strings");
    if (!cnt) return 0;
    const char **s = arena_alloc(r, (size_t)cnt * sizeof *s);
    size_t *len = arena_alloc(r, (size_t)cnt * sizeof *len);
    if (!s || !len) return fe_oai_error_set(c->err, FE_OAI_ENOMEM, NULL, "out of memory");
    if (cJSON_IsString(v)) s[0] = v->valuestring;
    else {
        int k = 0;
        const cJSON *it;
        cJSON_ArrayForEach(it, v) s[k++] = it->valuestring;
    }
    for (int i = 0; i < cnt; i++) len[i] = strlen(s[i]);
    r->stop = s;
    r->stop_len = len;
    r->n_stop = (uint32_t)cnt;
    return 0;
}

/* Python's int(str) for the keys vLLM converts: optional surrounding
 * whitespace, a sign, digits (underscores between digits allowed). */
static int py_int(const char *s, int64_t *out) {
    while (isspace((unsigned char)*s)) s++;
    int neg = 0;
    if (*s == '+' || *s == '-') neg = *s++ == '-';
    if (!isdigit((unsigned char)*s)) return -1;
    int64_t x = 0;
    int prev_digit = 0;
    for (; *s && !isspace((unsigned char)*s); s++) {
        if (*s == '_' && prev_digit && isdigit((unsigned char)s[1])) {
            prev_digit = 0;
            continue;
        }
        if (!isdigit((unsigned char)*s)) return -1;
        if (x > (INT64_MAX - 9) / 10) return -2;
        x = x * 10 + (*s - '0');
        prev_digit = 1;
    }
    while (isspace((unsigned char)*s)) s++;
    if (*s) return -1;
    *out = neg ? -x : x;
    return 0;
}

static int parse_logit_bias(ctx_t *c) {
    fe_oai_req_t *r = c->r;
    const cJSON *v = field(c, "logit_bias");
    if (!v) return 0;
    if (!cJSON_IsObject(v)) return type_error(c, "logit_bias", "dictionary");
    int cnt = cJSON_GetArraySize(v);
    if (!cnt) return 0;
    uint32_t *ids = arena_alloc(r, (size_t)cnt * sizeof *ids);
    float *vals = arena_alloc(r, (size_t)cnt * sizeof *vals);
    if (!ids || !vals) return fe_oai_error_set(c->err, FE_OAI_ENOMEM, NULL, "out of memory");
    uint32_t n = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, v) {
        if (!cJSON_IsNumber(it))
            return fe_oai_error_set(c->err, FE_OAI_ESCHEMA, "logit_bias", "logit_bias.%.100s: Input should be a valid number",
                                    it->string);
        int64_t id;
        if (py_int(it->string, &id))
            return fe_oai_error_set(c->err, FE_OAI_EINVAL, "logit_bias", "invalid literal for int() with base 10: '%.200s'",
                                    it->string);
        if (id < 0 || id > INT32_MAX || (c->d->vocab_size && id >= c->d->vocab_size)) {
            if (c->d->vocab_size)
                return fe_oai_error_set(c->err, FE_OAI_EINVAL, "logit_bias",
                                        "token_id(s) [%lld] in logit_bias contain out-of-vocab token ids. "
                                        "Vocabulary size: %u",
                                        (long long)id, c->d->vocab_size);
            return fe_oai_error_set(c->err, FE_OAI_EINVAL, "logit_bias",
                                    "token_id(s) [%lld] in logit_bias contain out-of-vocab token ids.", (long long)id);
        }
        /* Clamped per the OpenAI spec, as vLLM does; a repeated id keeps the
         * last value, as the Python dict comprehension does. */
        double b = it->valuedouble;
        float f = (float)(b < -100 ? -100 : b > 100 ? 100 : b);
        uint32_t j = 0;
        while (j < n && ids[j] != (uint32_t)id) j++;
        ids[j] = (uint32_t)id;
        vals[j] = f;
        if (j == n) n++;
    }
    /* Sorted by id: the engine can merge it with a vocab scan. Insertion sort:
     * n is small and this is once per request. */
    for (uint32_t i = 1; i < n; i++)
        for (uint32_t j = i; j > 0 && ids[j - 1] > ids[j]; j--) {
            uint32_t t = ids[j];
            ids[j] = ids[j - 1];
            ids[j - 1] = t;
            float tf = vals[j];
            vals[j] = vals[j - 1];
            vals[j - 1] = tf;
        }
    r->logit_bias_ids = ids;
    r->logit_bias_values = vals;
    r->n_logit_bias = n;
    return 0;
}

// --- logprobs

static int check_max_logprobs(const ctx_t *c, const char *what, const char *param, int64_t *n) {
    int64_t mx = c->d->max_logprobs == -1 ? (int64_t)c->d->vocab_size : c->d->max_logprobs;
    int64_t v = *n;
    if (v == -1) {
        if (!c->d->vocab_size)
            return fe_oai_error_set(c->err, FE_OAI_EINVAL, param,
                                    "Requested %s logprobs of -1 (all), but the vocabulary size is unknown", what);
        v = c->d->vocab_size;
    }
    if (v > mx)
        return fe_oai_error_set(c->err, FE_OAI_EINVAL, param,
                                "Requested %s logprobs of %lld, which is greater than max allowed: %lld", what,
                                (long long)v, (long long)mx);
    *n = v;
    return 0;
}

static int parse_logprobs(ctx_t *c) {
    fe_oai_req_t *r = c->r;
    int64_t lp = -1, plp = -1;
    int has_lp = 0, has_plp = 0, rc;
    if ((rc = get_int(c, "prompt_logprobs", &plp, &has_plp))) return rc;
    if (has_plp) {
        if (r->stream && (plp > 0 || plp == -1))
            return fe_oai_error_set(c->err, FE_OAI_ESCHEMA, "prompt_logprobs",
                                    "`prompt_logprobs` are not available when `stream=True`.");
        if (plp < 0 && plp != -1)
            return fe_oai_error_set(c->err, FE_OAI_ESCHEMA, "prompt_logprobs",
                                    "`prompt_logprobs` must be a positive value or -1.");
    }
    if (r->kind == FE_OAI_COMPLETION) {
        if ((rc = get_int(c, "logprobs", &lp, &has_lp))) return rc;
        if (has_lp && lp < 0 && lp != -1)
            return fe_oai_error_set(c->err, FE_OAI_ESCHEMA, "logprobs", "`logprobs` must be a positive value or -1.");
    } else {
        int want = 0, has_top = 0;
        int64_t top = 0;
        if ((rc = get_bool(c, "logprobs", &want))) return rc;
        if ((rc = get_int(c, "top_logprobs", &top, &has_top))) return rc;
        if (has_top) {
            if (top < 0 && top != -1)
                return fe_oai_error_set(c->err, FE_OAI_ESCHEMA, "top_logprobs",
                                        "`top_logprobs` must be a positive value or -1.");
            if ((top == -1 || top > 0) && !want)
                return fe_oai_error_set(c->err, FE_OAI_ESCHEMA, "top_logprobs",
                                        "when using `top_logprobs`, `logprobs` must be set to true.");
        }
        has_lp = want;
        lp = top;
    }
    /* vLLM treats logprobs=0 as "the sampled token only", and only checks
     * the limit when the value is truthy. */
    if (has_lp && lp && (rc = check_max_logprobs(c, "sample", r->kind == FE_OAI_CHAT ? "top_logprobs" : "logprobs", &lp)))
        return rc;
    if (has_plp && plp && (rc = check_max_logprobs(c, "prompt", "prompt_logprobs", &plp))) return rc;
    r->logprobs = has_lp ? (int32_t)lp : -1;
    r->prompt_logprobs = has_plp ? (int32_t)plp : -1;
    /* vLLM: an echo without prompt_logprobs gets the prompt's logprobs at the
     * sample setting (completions: logprobs; chat: top_logprobs, default 0). */
    if (!has_plp && r->echo) {
        if (r->kind == FE_OAI_COMPLETION) r->prompt_logprobs = r->logprobs;
        else {
            const cJSON *t = field(c, "top_logprobs");
            int64_t top = 0;
            if (t) as_int(t, &top);
            r->prompt_logprobs = (int32_t)(top < 0 ? -1 : top);
        }
    }
    return 0;
}

// --- the request

static int parse_fields(ctx_t *c) {
    fe_oai_req_t *r = c->r;
    const fe_oai_defaults_t *d = c->d;
    int rc, has;
    int64_t i64;

    if ((rc = get_str(c, "model", &r->model)) || (rc = get_str(c, "user", &r->user))) return rc;
    if ((rc = get_bool(c, "stream", &r->stream))) return rc;

    /* vLLM's validate_stream_options: any non-empty stream_options needs stream. */
    const cJSON *so = field(c, "stream_options");
    if (so) {
        if (!cJSON_IsObject(so)) return type_error(c, "stream_options", "dictionary");
        if (cJSON_GetArraySize(so) > 0 && !r->stream)
            return fe_oai_error_set(c->err, FE_OAI_ESCHEMA, "stream_options",
                                    "Stream options can only be defined when `stream=True`.");
        /* StreamOptions.include_usage defaults to True in vLLM. */
        int inc = 1, cont = 0;
        const cJSON *u = cJSON_GetObjectItemCaseSensitive(so, "include_usage");
        const cJSON *cu = cJSON_GetObjectItemCaseSensitive(so, "continuous_usage_stats");
        if (u && !cJSON_IsNull(u)) {
            if (!cJSON_IsBool(u)) return type_error(c, "stream_options.include_usage", "boolean");
            inc = cJSON_IsTrue(u);
        }
        if (cu && !cJSON_IsNull(cu)) {
            if (!cJSON_IsBool(cu)) return type_error(c, "stream_options.continuous_usage_stats", "boolean");
            cont = cJSON_IsTrue(cu);
        }
        /* Only a stream has usage chunks. */
        r->include_usage = r->stream && inc;
        r->continuous_usage_stats = r->include_usage && cont;
    }

    if (r->kind == FE_OAI_COMPLETION) {
        if ((rc = parse_prompt(c))) return rc;
        if ((rc = get_bool(c, "echo", &r->echo))) return rc;
        if (field(c, "suffix")) return invalid(c, "suffix", "suffix is not currently supported");
        r->add_special_tokens = 1;
    } else {
        if ((rc = parse_messages(c))) return rc;
        r->add_generation_prompt = 1;
        if ((rc = get_bool(c, "echo", &r->echo)) || (rc = get_bool(c, "add_generation_prompt", &r->add_generation_prompt)) ||
            (rc = get_bool(c, "continue_final_message", &r->continue_final_message)))
            return rc;
        if (r->continue_final_message && r->add_generation_prompt)
            return fe_oai_error_set(c->err, FE_OAI_ESCHEMA, "continue_final_message",
                                    "Cannot set both `continue_final_message` and `add_generation_prompt` to True.");
    }
    if ((rc = get_bool(c, "add_special_tokens", &r->add_special_tokens))) return rc;

    /* max_tokens: completions default to 16 (an explicit null means "up to
     * the context"); chat: max_completion_tokens or max_tokens (Python `or`:
     * a 0 falls through). */
    r->max_tokens = -1;
    int64_t max_tokens = 0;
    int has_max = 0;
    if (r->kind == FE_OAI_COMPLETION) {
        if (!cJSON_GetObjectItemCaseSensitive(r->root, "max_tokens")) max_tokens = COMPLETION_DEFAULT_MAX_TOKENS, has_max = 1;
        else if ((rc = get_int(c, "max_tokens", &max_tokens, &has_max))) return rc;
    } else {
        int64_t mct = 0, mt = 0;
        int has_mct, has_mt;
        if ((rc = get_int(c, "max_completion_tokens", &mct, &has_mct)) || (rc = get_int(c, "max_tokens", &mt, &has_mt)))
            return rc;
        if (has_mct && mct) max_tokens = mct, has_max = 1;
        else if (has_mt) max_tokens = mt, has_max = 1;
    }

    int64_t n = 1;
    if ((rc = get_int(c, "n", &n, NULL))) return rc;
    double temp = d->temperature, top_p = d->top_p, min_p = d->min_p, rep = d->repetition_penalty, pres = 0, freq = 0;
    int64_t top_k = d->top_k, min_tokens = 0;
    if ((rc = get_num(c, "temperature", &temp, NULL)) || (rc = get_num(c, "top_p", &top_p, NULL)) ||
        (rc = get_int(c, "top_k", &top_k, NULL)) || (rc = get_num(c, "min_p", &min_p, NULL)) ||
        (rc = get_num(c, "presence_penalty", &pres, NULL)) || (rc = get_num(c, "frequency_penalty", &freq, NULL)) ||
        (rc = get_num(c, "repetition_penalty", &rep, NULL)) || (rc = get_int(c, "min_tokens", &min_tokens, NULL)))
        return rc;
    if ((rc = get_int(c, "seed", &i64, &has))) return rc;
    if (has && i64 != -1) { /* vLLM: seed -1 means none */
        r->has_seed = 1;
        r->seed = (uint64_t)i64;
    }
    if ((rc = get_bool(c, "ignore_eos", &r->ignore_eos)) ||
        (rc = get_bool(c, "include_stop_str_in_output", &r->include_stop_str_in_output)))
        return rc;
    r->skip_special_tokens = r->spaces_between_special_tokens = 1;
    if ((rc = get_bool(c, "skip_special_tokens", &r->skip_special_tokens)) ||
        (rc = get_bool(c, "spaces_between_special_tokens", &r->spaces_between_special_tokens)))
        return rc;
    if ((rc = parse_stop(c)) || (rc = parse_logit_bias(c))) return rc;
    const cJSON *v;
    if ((v = field(c, "stop_token_ids")) &&
        (rc = token_list(c, v, "stop_token_ids", &r->stop_token_ids, &r->n_stop_token_ids)))
        return rc;
    if ((v = field(c, "allowed_token_ids"))) {
        if ((rc = token_list(c, v, "allowed_token_ids", &r->allowed_token_ids, &r->n_allowed_token_ids))) return rc;
        if (!r->n_allowed_token_ids) return invalid(c, "allowed_token_ids", "allowed_token_ids is not None and empty!");
        if (d->vocab_size)
            for (uint32_t i = 0; i < r->n_allowed_token_ids; i++)
                if (r->allowed_token_ids[i] >= d->vocab_size)
                    return invalid(c, "allowed_token_ids", "allowed_token_ids contains out-of-vocab token id!");
    }
    if ((rc = parse_logprobs(c))) return rc;

    /* SamplingParams._verify_args, in its order. */
    if (n < 1) return fe_oai_error_set(c->err, FE_OAI_EINVAL, "n", "n must be at least 1, got %lld.", (long long)n);
    if (n > 16384) /* VLLM_MAX_N_SEQUENCES */
        return fe_oai_error_set(c->err, FE_OAI_EINVAL, "n", "n must be at most 16384, got %lld.", (long long)n);
    if (!(pres >= -2 && pres <= 2))
        return fe_oai_error_set(c->err, FE_OAI_EINVAL, "presence_penalty", "presence_penalty must be in [-2, 2], got %s.",
                                PYF(pres));
    if (!(freq >= -2 && freq <= 2))
        return fe_oai_error_set(c->err, FE_OAI_EINVAL, "frequency_penalty",
                                "frequency_penalty must be in [-2, 2], got %s.", PYF(freq));
    if (!(rep > 0))
        return fe_oai_error_set(c->err, FE_OAI_EINVAL, "repetition_penalty",
                                "repetition_penalty must be greater than zero, got %s.", PYF(rep));
    if (!(temp >= 0))
        return fe_oai_error_set(c->err, FE_OAI_EINVAL, "temperature", "temperature must be non-negative, got %s.",
                                PYF(temp));
    if (temp > 2)
        return fe_oai_error_set(c->err, FE_OAI_EINVAL, "temperature", "temperature must be in [0, 2], got %s.",
                                PYF(temp));
    if (!(top_p > 0 && top_p <= 1))
        return fe_oai_error_set(c->err, FE_OAI_EINVAL, "top_p", "top_p must be in (0, 1], got %s.", PYF(top_p));
    if (top_k < -1 || top_k > INT32_MAX)
        return fe_oai_error_set(c->err, FE_OAI_EINVAL, "top_k", "top_k must be 0 (disable), or at least 1, got %lld.",
                                (long long)top_k);
    if (!(min_p >= 0 && min_p <= 1))
        return fe_oai_error_set(c->err, FE_OAI_EINVAL, "min_p", "min_p must be in [0, 1], got %s.", PYF(min_p));
    /* Completions' echo with max_tokens 0 returns the prompt only (vLLM's
     * echo_without_generation); the engine runs it with max_tokens 1. */
    int echo_only = r->kind == FE_OAI_COMPLETION && r->echo && has_max && max_tokens == 0;
    if (has_max && max_tokens < 1 && !echo_only)
        return fe_oai_error_set(c->err, FE_OAI_EINVAL, "max_tokens", "max_tokens must be at least 1, got %lld.",
                                (long long)max_tokens);
    if (has_max) r->max_tokens = max_tokens;
    if (min_tokens < 0)
        return fe_oai_error_set(c->err, FE_OAI_EINVAL, "min_tokens",
                                "min_tokens must be greater than or equal to 0, got %lld.", (long long)min_tokens);
    if (r->max_tokens != -1 && min_tokens > r->max_tokens)
        return fe_oai_error_set(c->err, FE_OAI_EINVAL, "min_tokens",
                                "min_tokens must be less than or equal to max_tokens=%lld, got %lld.",
                                (long long)r->max_tokens, (long long)min_tokens);
    if (min_tokens > UINT32_MAX) min_tokens = UINT32_MAX;
    for (uint32_t i = 0; i < r->n_stop; i++)
        if (!r->stop_len[i]) return invalid(c, "stop", "stop cannot contain an empty string.");

    /* SamplingParams.__post_init__: tiny temperatures are raised; greedy
     * sampling resets the filters and allows n == 1 only. */
    if (temp > 0 && temp < MIN_TEMP) temp = MIN_TEMP;
    if (temp < SAMPLING_EPS) {
        top_p = 1;
        top_k = 0;
        min_p = 0;
        if (n > 1)
            return fe_oai_error_set(c->err, FE_OAI_EINVAL, "n", "n must be 1 when using greedy sampling, got %lld.",
                                    (long long)n);
    }
    r->n = (uint32_t)n;
    r->temperature = (float)temp;
    r->top_p = (float)top_p;
    r->top_k = (int32_t)top_k;
    r->min_p = (float)min_p;
    r->presence_penalty = (float)pres;
    r->frequency_penalty = (float)freq;
    r->repetition_penalty = (float)rep;
    r->min_tokens = (uint32_t)min_tokens;
    return 0;
}

int fe_oai_req_parse(fe_oai_kind_t kind, const char *body, size_t len, const fe_oai_defaults_t *d,
                     fe_oai_req_t **out, fe_oai_error_t *err) {
    fe_oai_defaults_t dd;
    if (!d) fe_oai_defaults_init(&dd), d = &dd;
    *out = NULL;
    fe_oai_req_t *r = calloc(1, sizeof *r);
    if (!r) return fe_oai_error_set(err, FE_OAI_ENOMEM, NULL, "out of memory");
    r->kind = kind;
    const char *end = NULL;
    r->root = cJSON_ParseWithLengthOpts(body ? body : "", body ? len : 0, &end, 0);
    int rc = 0;
    if (!r->root) {
        size_t at = end && body && end >= body ? (size_t)(end - body) : 0;
        rc = fe_oai_error_set(err, FE_OAI_EJSON, NULL, "JSON decode error at byte %zu", at);
    } else {
        /* cJSON stops after the first value: anything but whitespace after it
         * is not JSON. */
        for (const char *p = end; p && p < body + len; p++)
            if (!isspace((unsigned char)*p) && *p) {
                rc = fe_oai_error_set(err, FE_OAI_EJSON, NULL, "JSON decode error at byte %zu", (size_t)(p - body));
                break;
            }
        if (!rc && !cJSON_IsObject(r->root))
            rc = fe_oai_error_set(err, FE_OAI_ESCHEMA, NULL,
                                  "Input should be a valid dictionary or object to extract fields from");
    }
    if (!rc) {
        ctx_t c = {.r = r, .d = d, .err = err};
        rc = parse_fields(&c);
    }
    if (rc) {
        fe_oai_req_destroy(&r);
        return rc;
    }
    *out = r;
    return 0;
}

// --- to the engine

int64_t fe_oai_max_tokens(const fe_oai_req_t *r, uint32_t prompt_len, uint32_t max_model_len, fe_oai_error_t *err) {
    /* vLLM's OpenAIServing._validate_input, then get_max_tokens. */
    if (prompt_len >= max_model_len)
        return fe_oai_error_set(err, FE_OAI_ETOOLONG, NULL,
                                "This model's maximum context length is %u tokens. However, your request has %u "
                                "input tokens. Please reduce the length of the input messages.",
                                max_model_len, prompt_len);
    int64_t room = (int64_t)max_model_len - prompt_len;
    if (r->max_tokens == -1) return room;
    if (r->max_tokens > room)
        return fe_oai_error_set(err, FE_OAI_ETOOLONG, "max_tokens",
                                "'max_tokens' or 'max_completion_tokens' is too large: %lld. This model's maximum "
                                "context length is %u tokens and your request has %u input tokens (%lld > %u - %u).",
                                (long long)r->max_tokens, max_model_len, prompt_len, (long long)r->max_tokens,
                                max_model_len, prompt_len);
    return r->max_tokens;
}

int fe_oai_req_sampling(const fe_oai_req_t *r, const fe_oai_defaults_t *d, uint32_t prompt_len,
                        uint32_t max_model_len, wire_sampling_t *sp, fe_oai_error_t *err) {
    int64_t mt = fe_oai_max_tokens(r, prompt_len, max_model_len, err);
    if (mt < 0) return (int)mt;
    if (mt == 0) mt = 1; /* echo only: one token, dropped by the caller */
    if (r->min_tokens > mt)
        return fe_oai_error_set(err, FE_OAI_EINVAL, "min_tokens",
                                "min_tokens must be less than or equal to max_tokens=%lld, got %u.", (long long)mt,
                                r->min_tokens);
    if (d && d->vocab_size)
        for (uint32_t i = 0; i < r->n_stop_token_ids; i++)
            if (r->stop_token_ids[i] >= d->vocab_size)
                return fe_oai_error_set(err, FE_OAI_EINVAL, "stop_token_ids",
                                        "stop_token_ids contains out-of-vocab token id %u", r->stop_token_ids[i]);
    *sp = (wire_sampling_t){
        .temperature = r->temperature,
        .top_p = r->top_p,
        .min_p = r->min_p,
        .top_k = r->top_k,
        .presence_penalty = r->presence_penalty,
        .frequency_penalty = r->frequency_penalty,
        .repetition_penalty = r->repetition_penalty,
        .seed = r->seed,
        .has_seed = (uint8_t)r->has_seed,
        .ignore_eos = (uint8_t)r->ignore_eos,
        .max_tokens = (uint32_t)mt,
        .min_tokens = r->min_tokens,
        .logprobs = r->logprobs,
        .prompt_logprobs = r->prompt_logprobs,
        .stop_token_ids = {r->stop_token_ids, r->n_stop_token_ids},
        .allowed_token_ids = {r->allowed_token_ids, r->n_allowed_token_ids},
        .logit_bias_ids = {r->logit_bias_ids, r->n_logit_bias},
        .logit_bias_values = r->logit_bias_values,
    };
    return 0;
}

/* sample_params: defaults (vLLM's, overlaid with generation_config.json),
 * validation with vLLM's exact messages, and vLLM's silent adjustments of
 * sampling parameters. Split from sample.c, which holds the per-token path;
 * nothing here runs per token.
 *
 * Invariant: messages match vllm-api.md §5 byte for byte, floats printed as
 * Python's repr() prints them, because the frontend returns them verbatim in
 * HTTP 400 bodies.
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sample.h"

#define SAMPLING_EPS 1e-5 /* vLLM _SAMPLING_EPS: below this temperature is greedy */
#define MIN_TEMP 1e-2     /* vLLM _MAX_TEMP: smaller positive temperatures are raised to it */

// ----------------------------------------------------------------------------
// Python-style float formatting for validation messages

/* Formats d as Python's repr(float) does (shortest round-trip digits, fixed
 * notation for decimal exponents in [-4, 16), ".0" on integral values), so
 * messages read exactly like vLLM's. */
static void py_float(double d, char *out, size_t n) {
    if (isnan(d)) {
        snprintf(out, n, "nan");
        return;
    }
    if (isinf(d)) {
        snprintf(out, n, d > 0 ? "inf" : "-inf");
        return;
    }
    if (d == 0) {
        snprintf(out, n, signbit(d) ? "-0.0" : "0.0");
        return;
    }
    char buf[40];
    int prec;
    for (prec = 1; prec <= 17; prec++) {
        snprintf(buf, sizeof buf, "%.*e", prec - 1, d);
        if (strtod(buf, NULL) == d) break;
    }
    /* buf = [-]D[.DDD]e[+-]XX: collect the digits and the exponent. */
    char digits[24];
    int nd = 0, neg = buf[0] == '-';
    const char *s = buf + neg;
    for (; *s && *s != 'e'; s++)
        if (*s >= '0' && *s <= '9') digits[nd++] = *s;
    while (nd > 1 && digits[nd - 1] == '0') nd--;
    digits[nd] = 0;
    int e10 = atoi(s + 1); /* value = D.DDD * 10^e10 */
    char *o = out;
    size_t left = n;
#define PUT(...)                                          \
    do {                                                  \
        int k_ = snprintf(o, left, __VA_ARGS__);          \
        if (k_ < 0 || (size_t)k_ >= left) return;         \
        o += k_;                                          \
        left -= (size_t)k_;                               \
    } while (0)
    if (neg) PUT("-");
    if (e10 < -4 || e10 >= 16) {
        PUT("%c", digits[0]);
        if (nd > 1) PUT(".%s", digits + 1);
        PUT("e%c%02d", e10 < 0 ? '-' : '+', e10 < 0 ? -e10 : e10);
    } else if (e10 < 0) {
        PUT("0.");
        for (int i = 0; i < -e10 - 1; i++) PUT("0");
        PUT("%s", digits);
    } else {
        for (int i = 0; i <= e10; i++) PUT("%c", i < nd ? digits[i] : '0');
        PUT(".");
        if (nd > e10 + 1)
            PUT("%s", digits + e10 + 1);
        else
            PUT("0");
    }
#undef PUT
}

// ----------------------------------------------------------------------------
// Parameters

void smp_params_default(smp_params_t *p, const mcfg_gen_t *gen) {
    memset(p, 0, sizeof *p);
    p->temperature = 1.0;
    p->top_p = 1.0;
    p->top_k = 0;
    p->min_p = 0.0;
    p->repetition_penalty = 1.0;
    p->logprobs = SMP_LOGPROBS_NONE;
    p->prompt_logprobs = SMP_LOGPROBS_NONE;
    if (!gen) return;
    if (gen->has_temperature) p->temperature = gen->temperature;
    if (gen->has_top_p) p->top_p = gen->top_p;
    if (gen->has_top_k) p->top_k = gen->top_k;
    if (gen->has_min_p) p->min_p = gen->min_p;
    if (gen->has_repetition_penalty) p->repetition_penalty = gen->repetition_penalty;
    if (gen->has_max_new_tokens) {
        p->has_max_tokens = true;
        p->max_tokens = gen->max_new_tokens;
    }
}

static int bad(char *err, size_t err_len, const char **param, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static int bad(char *err, size_t err_len, const char **param, const char *name, const char *fmt, ...) {
    if (param) *param = name;
    if (err && err_len) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, err_len, fmt, ap);
        va_end(ap);
    }
    return -EINVAL;
}

int smp_params_validate(const smp_params_t *p, int64_t V, char *err, size_t err_len, const char **param) {
    char f[40];
    if (param) *param = NULL;
    if (err && err_len) err[0] = 0;
    if (!(p->presence_penalty >= -2.0 && p->presence_penalty <= 2.0)) {
        py_float(p->presence_penalty, f, sizeof f);
        return bad(err, err_len, param, "presence_penalty", "presence_penalty must be in [-2, 2], got %s.", f);
    }
    if (!(p->frequency_penalty >= -2.0 && p->frequency_penalty <= 2.0)) {
        py_float(p->frequency_penalty, f, sizeof f);
        return bad(err, err_len, param, "frequency_penalty", "frequency_penalty must be in [-2, 2], got %s.", f);
    }
    if (!(p->repetition_penalty > 0.0) || isinf(p->repetition_penalty)) {
        py_float(p->repetition_penalty, f, sizeof f);
        return bad(err, err_len, param, "repetition_penalty", "repetition_penalty must be greater than zero, got %s.",
                   f);
    }
    if (!(p->temperature >= 0.0) || isinf(p->temperature)) {
        py_float(p->temperature, f, sizeof f);
        return bad(err, err_len, param, "temperature", "temperature must be non-negative, got %s.", f);
    }
    if (!(p->top_p > 0.0 && p->top_p <= 1.0)) {
        py_float(p->top_p, f, sizeof f);
        return bad(err, err_len, param, "top_p", "top_p must be in (0, 1], got %s.", f);
    }
    if (p->top_k < -1)
        return bad(err, err_len, param, "top_k", "top_k must be 0 (disable), or at least 1, got %d.", (int)p->top_k);
    if (!(p->min_p >= 0.0 && p->min_p <= 1.0)) {
        py_float(p->min_p, f, sizeof f);
        return bad(err, err_len, param, "min_p", "min_p must be in [0, 1], got %s.", f);
    }
    if (p->has_max_tokens && p->max_tokens < 1)
        return bad(err, err_len, param, "max_tokens", "max_tokens must be at least 1, got %lld.",
                   (long long)p->max_tokens);
    if (p->min_tokens < 0)
        return bad(err, err_len, param, "min_tokens", "min_tokens must be greater than or equal to 0, got %lld.",
                   (long long)p->min_tokens);
    if (p->has_max_tokens && p->min_tokens > p->max_tokens)
        return bad(err, err_len, param, "min_tokens", "min_tokens must be less than or equal to max_tokens=%lld, got %lld.",
                   (long long)p->max_tokens, (long long)p->min_tokens);
    if (p->logprobs != SMP_LOGPROBS_NONE && p->logprobs < -1)
        return bad(err, err_len, param, "logprobs", "logprobs must be non-negative or -1, got %d.", (int)p->logprobs);
    if (p->prompt_logprobs != SMP_LOGPROBS_NONE && p->prompt_logprobs < -1)
        return bad(err, err_len, param, "prompt_logprobs", "prompt_logprobs must be non-negative or -1, got %d.",
                   (int)p->prompt_logprobs);
    if (p->logprobs != SMP_LOGPROBS_NONE) {
        int64_t n = p->logprobs == -1 ? V : p->logprobs;
        if (n > SMP_MAX_LOGPROBS)
            return bad(err, err_len, param, "logprobs", "Requested sample logprobs of %lld, which is greater than max allowed: %d",
                       (long long)n, SMP_MAX_LOGPROBS);
    }
    if (p->prompt_logprobs != SMP_LOGPROBS_NONE) {
        int64_t n = p->prompt_logprobs == -1 ? V : p->prompt_logprobs;
        if (n > SMP_MAX_LOGPROBS)
            return bad(err, err_len, param, "prompt_logprobs",
                       "Requested prompt logprobs of %lld, which is greater than max allowed: %d", (long long)n,
                       SMP_MAX_LOGPROBS);
    }
    if (p->n_stop_token_ids < 0 || (p->n_stop_token_ids > 0 && !p->stop_token_ids) || p->n_logit_bias < 0 ||
        (p->n_logit_bias > 0 && !p->logit_bias) || p->n_allowed_token_ids < 0 ||
        (p->n_allowed_token_ids > 0 && !p->allowed_token_ids))
        return bad(err, err_len, param, NULL, "inconsistent sampling parameter arrays");
    if (p->n_logit_bias > 0) {
        /* vLLM lists every offending id: "token_id(s) [a, b] in logit_bias ..." */
        char list[256];
        size_t used = 0;
        int nbad = 0;
        list[0] = 0;
        for (int32_t i = 0; i < p->n_logit_bias; i++) {
            int32_t t = p->logit_bias[i].token;
            if (t >= 0 && t < V) continue;
            if (used < sizeof list - 16) {
                int k = snprintf(list + used, sizeof list - used, "%s%d", nbad ? ", " : "", (int)t);
                if (k > 0) used += (size_t)k;
            }
            nbad++;
        }
        if (nbad)
            return bad(err, err_len, param, "logit_bias",
                       "token_id(s) [%s] in logit_bias contain out-of-vocab token ids. Vocabulary size: %lld", list,
                       (long long)V);
        for (int32_t i = 0; i < p->n_logit_bias; i++)
            if (isnan(p->logit_bias[i].bias))
                return bad(err, err_len, param, "logit_bias", "logit_bias values must be numbers");
    }
    if (p->has_allowed_token_ids) {
        if (p->n_allowed_token_ids == 0)
            return bad(err, err_len, param, "allowed_token_ids", "allowed_token_ids is not None and empty!");
        for (int32_t i = 0; i < p->n_allowed_token_ids; i++)
            if (p->allowed_token_ids[i] < 0 || p->allowed_token_ids[i] >= V)
                return bad(err, err_len, param, "allowed_token_ids", "allowed_token_ids contains out-of-vocab token id!");
    }
    return 0;
}

void smp_params_normalize(smp_params_t *p) {
    if (p->temperature > 0 && p->temperature < MIN_TEMP) p->temperature = MIN_TEMP;
    if (p->top_k < 0) p->top_k = 0;
    if (smp_params_is_greedy(p)) {
        p->top_p = 1.0;
        p->top_k = 0;
        p->min_p = 0.0;
    }
}

bool smp_params_is_greedy(const smp_params_t *p) { return p->temperature < SAMPLING_EPS; }


/* sample_tool: drives engine/sample from tests/py/test_sampling.py.
 *
 * Reads one JSON object on stdin, prints one JSON object on stdout:
 *   {"op": "sample" | "process" | "kept" | "validate" | "logprobs",
 *    "logits": [...]          numbers, or "nan" / "inf" / "-inf" strings
 *    "params": {temperature, top_p, top_k, min_p, repetition_penalty,
 *               presence_penalty, frequency_penalty, seed, min_tokens,
 *               max_tokens, ignore_eos, logprobs, prompt_logprobs,
 *               stop_token_ids: [..], logit_bias: {"id": bias},
 *               allowed_token_ids: [..]}
 *    "prompt": [..], "history": [..] (appended before the op), "eos": [..],
 *    "steps": N (sample: draws, each appended), "hist": true (counts only),
 *    "mode": "raw" | "processed", "engine_seed": S,
 *    "vocab": V (validate only), "rows": [[..]..] + "tokens": [..] (logprobs)}
 * Errors from the module are printed as {"rc": code, ...}; exit status 0
 * unless the input itself is unusable (then 2). */
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sample.h"

static void die(const char *msg) {
    fprintf(stderr, "sample_tool: %s\n", msg);
    exit(2);
}

static char *read_all(FILE *f) {
    size_t cap = 1 << 16, n = 0;
    char *b = malloc(cap);
    if (!b) die("out of memory");
    for (;;) {
        size_t k = fread(b + n, 1, cap - n - 1, f);
        n += k;
        if (k == 0) break;
        if (n + 1 == cap) {
            cap *= 2;
            b = realloc(b, cap);
            if (!b) die("out of memory");
        }
    }
    b[n] = 0;
    return b;
}

static float num(const cJSON *v) {
    if (cJSON_IsNumber(v)) return (float)v->valuedouble;
    if (cJSON_IsString(v)) return strtof(v->valuestring, NULL); /* "nan", "inf", "-inf" */
    die("logit is neither number nor string");
    return 0;
}

static float *floats(const cJSON *a, int64_t *n) {
    if (!cJSON_IsArray(a)) die("expected an array of logits");
    *n = cJSON_GetArraySize(a);
    float *x = malloc((size_t)(*n ? *n : 1) * sizeof(float));
    int64_t i = 0;
    const cJSON *v;
    cJSON_ArrayForEach(v, a) x[i++] = num(v);
    return x;
}

static int32_t *ints(const cJSON *a, int32_t *n) {
    *n = 0;
    if (!a) return NULL;
    if (!cJSON_IsArray(a)) die("expected an array of ints");
    *n = cJSON_GetArraySize(a);
    int32_t *x = malloc((size_t)(*n ? *n : 1) * sizeof(int32_t));
    int32_t i = 0;
    const cJSON *v;
    cJSON_ArrayForEach(v, a) x[i++] = (int32_t)v->valuedouble;
    return x;
}

static void print_float(float f) {
    if (isnan(f))
        printf("NaN");
    else if (isinf(f))
        printf(f > 0 ? "Infinity" : "-Infinity");
    else
        printf("%.9g", (double)f);
}

static double getd(const cJSON *o, const char *k, double def) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(v) ? v->valuedouble : def;
}

int main(void) {
    char *text = read_all(stdin);
    cJSON *in = cJSON_Parse(text);
    if (!in) die("invalid JSON");
    const char *op = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(in, "op"));
    if (!op) op = "sample";
    const cJSON *jp = cJSON_GetObjectItemCaseSensitive(in, "params");

    smp_params_t p;
    smp_params_default(&p, NULL);
    int32_t n_stop = 0, n_allowed = 0, n_prompt = 0, n_hist = 0, n_eos = 0;
    int32_t *stop = NULL, *allowed = NULL;
    smp_bias_t *bias = NULL;
    int32_t *prompt = NULL, *hist = NULL, *eos = NULL;
    float *x = NULL;
    int64_t V = 0;
    smp_rng_t eng;
    smp_state_t st;
    smp_workspace_t *ws = NULL;
    memset(&st, 0, sizeof st);
    if (jp) {
        p.temperature = getd(jp, "temperature", p.temperature);
        p.top_p = getd(jp, "top_p", p.top_p);
        p.top_k = (int32_t)getd(jp, "top_k", p.top_k);
        p.min_p = getd(jp, "min_p", p.min_p);
        p.repetition_penalty = getd(jp, "repetition_penalty", p.repetition_penalty);
        p.presence_penalty = getd(jp, "presence_penalty", 0);
        p.frequency_penalty = getd(jp, "frequency_penalty", 0);
        p.min_tokens = (int64_t)getd(jp, "min_tokens", 0);
        const cJSON *mt = cJSON_GetObjectItemCaseSensitive(jp, "max_tokens");
        if (cJSON_IsNumber(mt)) {
            p.has_max_tokens = true;
            p.max_tokens = (int64_t)mt->valuedouble;
        }
        p.ignore_eos = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(jp, "ignore_eos"));
        const cJSON *s = cJSON_GetObjectItemCaseSensitive(jp, "seed");
        if (cJSON_IsNumber(s)) {
            p.has_seed = true;
            p.seed = (int64_t)s->valuedouble;
        }
        p.logprobs = (int32_t)getd(jp, "logprobs", SMP_LOGPROBS_NONE);
        p.prompt_logprobs = (int32_t)getd(jp, "prompt_logprobs", SMP_LOGPROBS_NONE);
        stop = ints(cJSON_GetObjectItemCaseSensitive(jp, "stop_token_ids"), &n_stop);
        p.stop_token_ids = stop;
        p.n_stop_token_ids = n_stop;
        const cJSON *al = cJSON_GetObjectItemCaseSensitive(jp, "allowed_token_ids");
        if (al) {
            allowed = ints(al, &n_allowed);
            p.has_allowed_token_ids = true;
            p.allowed_token_ids = allowed;
            p.n_allowed_token_ids = n_allowed;
        }
        const cJSON *lb = cJSON_GetObjectItemCaseSensitive(jp, "logit_bias");
        if (cJSON_IsObject(lb)) {
            int nb = cJSON_GetArraySize(lb), i = 0;
            bias = malloc((size_t)(nb ? nb : 1) * sizeof *bias);
            const cJSON *v;
            cJSON_ArrayForEach(v, lb) {
                bias[i].token = (int32_t)strtol(v->string, NULL, 10);
                bias[i].bias = (float)v->valuedouble;
                i++;
            }
            p.logit_bias = bias;
            p.n_logit_bias = nb;
        }
    }

    if (!strcmp(op, "validate")) {
        char err[512];
        const char *param = NULL;
        int rc = smp_params_validate(&p, (int64_t)getd(in, "vocab", 100), err, sizeof err, &param);
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "rc", rc);
        cJSON_AddStringToObject(o, "message", err);
        if (param)
            cJSON_AddStringToObject(o, "param", param);
        else
            cJSON_AddNullToObject(o, "param");
        char *s = cJSON_PrintUnformatted(o);
        printf("%s\n", s);
        free(s);
        cJSON_Delete(o);
        goto done;
    }

    smp_logprobs_mode_t mode = SMP_LOGPROBS_RAW;
    const char *ms = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(in, "mode"));
    if (ms && !strcmp(ms, "processed")) mode = SMP_LOGPROBS_PROCESSED;

    if (!strcmp(op, "logprobs")) {
        const cJSON *rows = cJSON_GetObjectItemCaseSensitive(in, "rows");
        int32_t n_tok;
        int32_t *toks = ints(cJSON_GetObjectItemCaseSensitive(in, "tokens"), &n_tok);
        int n_top = (int)getd(in, "n_top", 0);
        if (!cJSON_IsArray(rows) || cJSON_GetArraySize(rows) != n_tok) die("rows/tokens mismatch");
        printf("{\"results\":[");
        for (int32_t i = 0; i < n_tok; i++) {
            x = floats(cJSON_GetArrayItem(rows, i), &V);
            if (!ws) ws = smp_workspace_new(V, 1, SMP_LOGPROBS_RAW);
            if (!ws) die("workspace");
            smp_result_t r;
            int rc = smp_token_logprobs(ws, 0, x, V, toks[i], n_top, &r);
            printf("%s{\"rc\":%d,\"logprob\":", i ? "," : "", rc);
            print_float(rc ? 0 : r.logprob);
            printf(",\"rank\":%d,\"top\":[", rc ? 0 : r.rank);
            for (int j = 0; !rc && j < r.n_top; j++) {
                printf("%s[%d,", j ? "," : "", r.top_ids[j]);
                print_float(r.top_logprobs[j]);
                printf("]");
            }
            printf("]}");
            free(x);
            x = NULL;
        }
        printf("]}\n");
        free(toks);
        goto done;
    }

    x = floats(cJSON_GetObjectItemCaseSensitive(in, "logits"), &V);
    prompt = ints(cJSON_GetObjectItemCaseSensitive(in, "prompt"), &n_prompt);
    hist = ints(cJSON_GetObjectItemCaseSensitive(in, "history"), &n_hist);
    eos = ints(cJSON_GetObjectItemCaseSensitive(in, "eos"), &n_eos);
    int64_t steps = (int64_t)getd(in, "steps", 1);
    bool want_hist = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(in, "hist"));

    char err[512];
    int rc = smp_params_validate(&p, V, err, sizeof err, NULL);
    if (rc) {
        printf("{\"rc\":%d,\"message\":\"%s\"}\n", rc, err);
        goto done;
    }
    smp_params_normalize(&p);
    smp_rng_seed(&eng, (uint64_t)getd(in, "engine_seed", 0));
    rc = smp_state_init(&st, &p, prompt, n_prompt, steps + n_hist, eos, n_eos, &eng);
    if (rc) die("state init");
    for (int32_t i = 0; i < n_hist; i++)
        if (smp_state_append(&st, hist[i])) die("append");
    ws = smp_workspace_new(V, 1, mode);
    if (!ws) die("workspace");

    if (!strcmp(op, "process")) {
        float *out = malloc((size_t)V * sizeof(float));
        rc = smp_process_logits(&p, &st, x, V, out);
        printf("{\"rc\":%d,\"logits\":[", rc < 0 ? rc : 0);
        for (int64_t i = 0; i < V; i++) {
            if (i) printf(",");
            print_float(out[i]);
        }
        printf("]}\n");
        free(out);
    } else if (!strcmp(op, "kept")) {
        int32_t *ids = malloc((size_t)V * sizeof(int32_t));
        float *probs = malloc((size_t)V * sizeof(float));
        int64_t n = 0;
        rc = smp_kept_set(ws, 0, &p, &st, x, V, ids, probs, V, &n);
        printf("{\"rc\":%d,\"ids\":[", rc);
        for (int64_t i = 0; !rc && i < n; i++) printf("%s%d", i ? "," : "", ids[i]);
        printf("],\"probs\":[");
        for (int64_t i = 0; !rc && i < n; i++) {
            if (i) printf(",");
            print_float(probs[i]);
        }
        printf("]}\n");
        free(ids);
        free(probs);
    } else if (!strcmp(op, "sample")) {
        int64_t *counts = want_hist ? calloc((size_t)V, sizeof(int64_t)) : NULL;
        int n_nan = 0;
        printf("{");
        if (!want_hist) printf("\"steps\":[");
        int64_t i;
        for (i = 0; i < steps; i++) {
            smp_result_t r;
            rc = smp_sample(ws, 0, &p, &st, x, V, &r);
            n_nan = r.n_nan;
            if (rc) break;
            if (want_hist) {
                counts[r.token]++;
                continue;
            }
            printf("%s{\"token\":%d", i ? "," : "", r.token);
            if (p.logprobs != SMP_LOGPROBS_NONE) {
                printf(",\"logprob\":");
                print_float(r.logprob);
                printf(",\"rank\":%d,\"top\":[", r.rank);
                for (int j = 0; j < r.n_top; j++) {
                    printf("%s[%d,", j ? "," : "", r.top_ids[j]);
                    print_float(r.top_logprobs[j]);
                    printf("]");
                }
                printf("]");
            }
            printf("}");
        }
        if (!want_hist) printf("],");
        if (want_hist) {
            printf("\"counts\":[");
            for (int64_t j = 0; j < V; j++) printf("%s%lld", j ? "," : "", (long long)counts[j]);
            printf("],");
        }
        printf("\"rc\":%d,\"n_nan\":%d}\n", rc, n_nan);
        free(counts);
    } else {
        die("unknown op");
    }
done:
    smp_workspace_destroy(&ws);
    smp_state_free(&st);
    free(x);
    free(prompt);
    free(hist);
    free(eos);
    free(stop);
    free(allowed);
    free(bias);
    cJSON_Delete(in);
    free(text);
    return 0;
}

/* Test driver for the fe_oai module (tests/py/test_openai_shapes.py). Reads
 * its input from stdin and prints the module's results on stdout:
 *
 *   oai_tool parse completion|chat [--vocab N] [--max-logprobs N]
 *            [--prompt-len P --max-model-len M]
 *       stdin: a request body. Prints {"ok": true, "req": {...}[, "sampling":
 *       {...}]} or {"ok": false, "status": S, "error": <the envelope>}.
 *   oai_tool respond
 *       stdin: a scripted engine result (see respond() below). Prints the
 *       non-streaming body, or the SSE stream, exactly as built.
 *   oai_tool stop
 *       stdin: {"stops": [...], "include": bool, "steps": [{"text", "check",
 *       "finished"}]}. Prints {"deltas": [...], "hits": [...], "matched": i,
 *       "text": "..."}.
 */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fe_oai.h"

static char *read_all(size_t *len) {
    size_t cap = 1 << 16, n = 0;
    char *p = malloc(cap);
    if (!p) return NULL;
    for (;;) {
        if (n == cap) {
            char *q = realloc(p, cap *= 2);
            if (!q) return free(p), NULL;
            p = q;
        }
        size_t k = fread(p + n, 1, cap - n, stdin);
        if (!k) break;
        n += k;
    }
    *len = n;
    return p;
}

static void print_error(const fe_oai_error_t *e) {
    fe_oai_buf_t b = {0};
    if (fe_oai_error_json(&b, e)) exit(3);
    printf("{\"ok\": false, \"status\": %d, \"error\": %s}\n", e->status, b.data);
    fe_oai_buf_free(&b);
}

static cJSON *u32_array(const uint32_t *a, uint32_t n) {
    cJSON *arr = cJSON_CreateArray();
    for (uint32_t i = 0; i < n; i++) cJSON_AddItemToArray(arr, cJSON_CreateNumber(a[i]));
    return arr;
}

static cJSON *dump_req(const fe_oai_req_t *r) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "kind", r->kind == FE_OAI_CHAT ? "chat" : "completion");
    if (r->model) cJSON_AddStringToObject(o, "model", r->model);
    else cJSON_AddNullToObject(o, "model");
    if (r->user) cJSON_AddStringToObject(o, "user", r->user);
    if (r->kind == FE_OAI_COMPLETION) {
        cJSON *ps = cJSON_AddArrayToObject(o, "prompts");
        for (uint32_t i = 0; i < r->n_prompts; i++) {
            const fe_oai_prompt_t *p = &r->prompts[i];
            cJSON_AddItemToArray(ps, p->text ? cJSON_CreateString(p->text) : u32_array(p->tokens, p->n_tokens));
        }
        cJSON_AddBoolToObject(o, "echo", r->echo);
    } else {
        cJSON_AddNumberToObject(o, "n_messages", cJSON_GetArraySize(r->messages));
        cJSON_AddBoolToObject(o, "add_generation_prompt", r->add_generation_prompt);
        cJSON_AddBoolToObject(o, "continue_final_message", r->continue_final_message);
        cJSON_AddBoolToObject(o, "echo", r->echo);
        if (r->chat_template_kwargs) cJSON_AddItemToObject(o, "chat_template_kwargs", cJSON_Duplicate(r->chat_template_kwargs, 1));
    }
    cJSON_AddNumberToObject(o, "n", r->n);
    cJSON_AddBoolToObject(o, "stream", r->stream);
    cJSON_AddBoolToObject(o, "include_usage", r->include_usage);
    cJSON_AddBoolToObject(o, "continuous_usage_stats", r->continuous_usage_stats);
    if (r->max_tokens >= 0) cJSON_AddNumberToObject(o, "max_tokens", (double)r->max_tokens);
    else cJSON_AddNullToObject(o, "max_tokens");
    cJSON_AddNumberToObject(o, "temperature", r->temperature);
    cJSON_AddNumberToObject(o, "top_p", r->top_p);
    cJSON_AddNumberToObject(o, "top_k", r->top_k);
    cJSON_AddNumberToObject(o, "min_p", r->min_p);
    cJSON_AddNumberToObject(o, "presence_penalty", r->presence_penalty);
    cJSON_AddNumberToObject(o, "frequency_penalty", r->frequency_penalty);
    cJSON_AddNumberToObject(o, "repetition_penalty", r->repetition_penalty);
    if (r->has_seed) cJSON_AddNumberToObject(o, "seed", (double)(int64_t)r->seed);
    else cJSON_AddNullToObject(o, "seed");
    cJSON_AddNumberToObject(o, "min_tokens", r->min_tokens);
    cJSON_AddBoolToObject(o, "ignore_eos", r->ignore_eos);
    cJSON_AddBoolToObject(o, "include_stop_str_in_output", r->include_stop_str_in_output);
    cJSON_AddBoolToObject(o, "skip_special_tokens", r->skip_special_tokens);
    cJSON_AddBoolToObject(o, "spaces_between_special_tokens", r->spaces_between_special_tokens);
    cJSON_AddBoolToObject(o, "add_special_tokens", r->add_special_tokens);
    cJSON *st = cJSON_AddArrayToObject(o, "stop");
    for (uint32_t i = 0; i < r->n_stop; i++) cJSON_AddItemToArray(st, cJSON_CreateString(r->stop[i]));
    cJSON_AddItemToObject(o, "stop_token_ids", u32_array(r->stop_token_ids, r->n_stop_token_ids));
    if (r->allowed_token_ids)
        cJSON_AddItemToObject(o, "allowed_token_ids", u32_array(r->allowed_token_ids, r->n_allowed_token_ids));
    else cJSON_AddNullToObject(o, "allowed_token_ids");
    cJSON *lb = cJSON_AddObjectToObject(o, "logit_bias");
    for (uint32_t i = 0; i < r->n_logit_bias; i++) {
        char k[16];
        snprintf(k, sizeof k, "%u", r->logit_bias_ids[i]);
        cJSON_AddNumberToObject(lb, k, r->logit_bias_values[i]);
    }
    cJSON_AddNumberToObject(o, "logprobs", r->logprobs);
    cJSON_AddNumberToObject(o, "prompt_logprobs", r->prompt_logprobs);
    return o;
}

static int cmd_parse(int argc, char **argv) {
    if (argc < 3) return 2;
    fe_oai_kind_t kind = !strcmp(argv[2], "chat") ? FE_OAI_CHAT : FE_OAI_COMPLETION;
    fe_oai_defaults_t d;
    fe_oai_defaults_init(&d);
    long prompt_len = -1, max_model_len = 0;
    for (int i = 3; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--vocab")) d.vocab_size = (uint32_t)atol(argv[i + 1]);
        else if (!strcmp(argv[i], "--max-logprobs")) d.max_logprobs = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--prompt-len")) prompt_len = atol(argv[i + 1]);
        else if (!strcmp(argv[i], "--max-model-len")) max_model_len = atol(argv[i + 1]);
        else return 2;
    }
    size_t len;
    char *body = read_all(&len);
    if (!body) return 3;
    fe_oai_req_t *r = NULL;
    fe_oai_error_t err;
    int rc = fe_oai_req_parse(kind, body, len, &d, &r, &err);
    free(body);
    if (rc) {
        if (r) return 4; /* the contract: *out stays NULL on error */
        print_error(&err);
        return 0;
    }
    cJSON *out = cJSON_CreateObject();
    cJSON_AddTrueToObject(out, "ok");
    cJSON_AddItemToObject(out, "req", dump_req(r));
    if (prompt_len >= 0) {
        wire_sampling_t sp;
        rc = fe_oai_req_sampling(r, &d, (uint32_t)prompt_len, (uint32_t)max_model_len, &sp, &err);
        if (rc) {
            cJSON_Delete(out);
            fe_oai_req_destroy(&r);
            print_error(&err);
            return 0;
        }
        cJSON *s = cJSON_AddObjectToObject(out, "sampling");
        cJSON_AddNumberToObject(s, "max_tokens", sp.max_tokens);
        cJSON_AddNumberToObject(s, "min_tokens", sp.min_tokens);
        cJSON_AddNumberToObject(s, "temperature", sp.temperature);
        cJSON_AddNumberToObject(s, "top_k", sp.top_k);
        cJSON_AddNumberToObject(s, "logprobs", sp.logprobs);
        cJSON_AddNumberToObject(s, "n_stop_token_ids", sp.stop_token_ids.n);
        cJSON_AddNumberToObject(s, "n_logit_bias", sp.logit_bias_ids.n);
    }
    char *txt = cJSON_PrintUnformatted(out);
    puts(txt);
    free(txt);
    cJSON_Delete(out);
    fe_oai_req_destroy(&r);
    return r == NULL ? 0 : 5;
}

// --- respond

static const char *jstr(const cJSON *o, const char *k, const char *dflt) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : dflt;
}

static double jnum(const cJSON *o, const char *k, double dflt) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(v) ? v->valuedouble : dflt;
}

static int jbool(const cJSON *o, const char *k) { return cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, k)); }

/* Text from "text", or raw bytes from "text_hex" (to feed invalid UTF-8). */
static char *text_of(const cJSON *o, size_t *n) {
    const char *hex = jstr(o, "text_hex", NULL);
    if (hex) {
        size_t k = strlen(hex) / 2;
        char *p = malloc(k + 1);
        for (size_t i = 0; i < k; i++) {
            unsigned v;
            sscanf(hex + 2 * i, "%2x", &v);
            p[i] = (char)v;
        }
        *n = k;
        return p;
    }
    const char *t = jstr(o, "text", "");
    *n = strlen(t);
    return strdup(t);
}

static wire_finish_t finish_of(const cJSON *o) {
    const char *f = jstr(o, "finish", NULL);
    if (!f) return WIRE_FINISH_NONE;
    if (!strcmp(f, "stop")) return WIRE_FINISH_STOP;
    if (!strcmp(f, "length")) return WIRE_FINISH_LENGTH;
    if (!strcmp(f, "abort")) return WIRE_FINISH_ABORT;
    return WIRE_FINISH_ERROR;
}

/* Owned storage for one choice's logprobs. */
typedef struct {
    fe_oai_token_lp_t *lps;
    fe_oai_lp_t *cands;
    uint32_t n;
} lps_t;

static void lps_build(const cJSON *arr, lps_t *l) {
    *l = (lps_t){0};
    if (!cJSON_IsArray(arr)) return;
    int n = cJSON_GetArraySize(arr), total = 0;
    const cJSON *t;
    cJSON_ArrayForEach(t, arr) total += cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(t, "cand"));
    l->lps = calloc((size_t)n + 1, sizeof *l->lps);
    l->cands = calloc((size_t)total + 1, sizeof *l->cands);
    int k = 0, c = 0;
    cJSON_ArrayForEach(t, arr) {
        fe_oai_token_lp_t *tl = &l->lps[k++];
        tl->cand = &l->cands[c];
        tl->null_logprob = jbool(t, "null");
        const cJSON *cand;
        cJSON_ArrayForEach(cand, cJSON_GetObjectItemCaseSensitive(t, "cand")) {
            fe_oai_lp_t *e = &l->cands[c++];
            e->id = (uint32_t)cJSON_GetArrayItem(cand, 0)->valuedouble;
            const cJSON *tx = cJSON_GetArrayItem(cand, 1);
            e->text = tx->valuestring;
            e->text_len = strlen(tx->valuestring);
            e->logprob = (float)cJSON_GetArrayItem(cand, 2)->valuedouble;
            tl->n_cand++;
        }
    }
    l->n = (uint32_t)n;
}

static void choice_base(const cJSON *c, fe_oai_choice_t *ch) {
    *ch = (fe_oai_choice_t){.index = (uint32_t)jnum(c, "index", 0), .stop_token = -1};
    ch->top_n = (uint32_t)jnum(c, "top_n", 0);
    ch->text_offset = (uint32_t)jnum(c, "text_offset", 0);
}

static void choice_finish(const cJSON *c, fe_oai_choice_t *ch) {
    ch->finish = finish_of(c);
    ch->stop_str = jstr(c, "stop_str", NULL);
    ch->stop_str_len = ch->stop_str ? strlen(ch->stop_str) : 0;
    ch->stop_token = (int32_t)jnum(c, "stop_token", -1);
}

static int cmd_respond(void) {
    size_t len;
    char *in = read_all(&len);
    cJSON *s = in ? cJSON_ParseWithLength(in, len) : NULL;
    free(in);
    if (!s) return 3;
    fe_oai_kind_t kind = !strcmp(jstr(s, "kind", ""), "chat") ? FE_OAI_CHAT : FE_OAI_COMPLETION;
    fe_oai_meta_t m = {.id = jstr(s, "id", "cmpl-0"), .model = jstr(s, "model", "m"),
                       .created = (int64_t)jnum(s, "created", 0)};
    const cJSON *uj = cJSON_GetObjectItemCaseSensitive(s, "usage");
    fe_oai_usage_t usage = {(uint32_t)jnum(uj, "prompt_tokens", 0), (uint32_t)jnum(uj, "completion_tokens", 0)};
    const cJSON *choices = cJSON_GetObjectItemCaseSensitive(s, "choices");
    int nch = cJSON_GetArraySize(choices);
    fe_oai_buf_t b = {0};
    int rc = 0;
    if (!jbool(s, "stream")) {
        fe_oai_choice_t *ch = calloc((size_t)nch + 1, sizeof *ch);
        lps_t *l = calloc((size_t)nch + 1, sizeof *l);
        char **texts = calloc((size_t)nch + 1, sizeof *texts);
        for (int i = 0; i < nch; i++) {
            const cJSON *c = cJSON_GetArrayItem(choices, i);
            choice_base(c, &ch[i]);
            choice_finish(c, &ch[i]);
            texts[i] = text_of(c, &ch[i].text_len);
            ch[i].text = texts[i];
            lps_build(cJSON_GetObjectItemCaseSensitive(c, "logprobs"), &l[i]);
            if (l[i].lps) ch[i].lps = l[i].lps, ch[i].n_lps = l[i].n;
        }
        rc = kind == FE_OAI_CHAT ? fe_oai_chat_json(&b, &m, ch, (uint32_t)nch, uj ? &usage : NULL)
                                 : fe_oai_completion_json(&b, &m, ch, (uint32_t)nch, uj ? &usage : NULL);
        for (int i = 0; i < nch; i++) free(texts[i]), free(l[i].lps), free(l[i].cands);
        free(texts), free(l), free(ch);
    } else {
        int cont = jbool(s, "continuous_usage");
        if (kind == FE_OAI_CHAT)
            for (int i = 0; !rc && i < nch; i++) {
                fe_oai_usage_t u0 = {usage.prompt_tokens, 0};
                rc = fe_oai_chat_role_chunk(&b, &m, (uint32_t)jnum(cJSON_GetArrayItem(choices, i), "index", i),
                                            cont ? &u0 : NULL);
            }
        uint32_t produced = 0;
        for (int i = 0; !rc && i < nch; i++) {
            const cJSON *c = cJSON_GetArrayItem(choices, i);
            const cJSON *deltas = cJSON_GetObjectItemCaseSensitive(c, "deltas");
            int nd = cJSON_GetArraySize(deltas);
            uint32_t offset = (uint32_t)jnum(c, "text_offset", 0);
            for (int k = 0; !rc && k < nd; k++) {
                const cJSON *d = cJSON_GetArrayItem(deltas, k);
                fe_oai_choice_t ch;
                choice_base(c, &ch);
                if (k == nd - 1) choice_finish(c, &ch);
                char *t = text_of(d, &ch.text_len);
                ch.text = t;
                ch.text_offset = offset;
                lps_t l;
                lps_build(cJSON_GetObjectItemCaseSensitive(d, "logprobs"), &l);
                if (l.lps) ch.lps = l.lps, ch.n_lps = l.n;
                produced += l.n ? l.n : 1;
                fe_oai_usage_t ur = {usage.prompt_tokens, produced};
                rc = kind == FE_OAI_CHAT ? fe_oai_chat_chunk(&b, &m, &ch, cont ? &ur : NULL)
                                         : fe_oai_completion_chunk(&b, &m, &ch, cont ? &ur : NULL);
                /* text_offset counts characters, as Python's len(). */
                for (size_t z = 0; z < ch.text_len; z++) offset += ((unsigned char)t[z] & 0xC0) != 0x80;
                free(t), free(l.lps), free(l.cands);
            }
        }
        const cJSON *ej = cJSON_GetObjectItemCaseSensitive(s, "error");
        if (!rc && ej) {
            fe_oai_error_t e;
            fe_oai_error_set(&e, (int)jnum(ej, "code", FE_OAI_EINVAL), jstr(ej, "param", NULL), "%s",
                             jstr(ej, "message", ""));
            rc = fe_oai_error_chunk(&b, &e);
        } else if (!rc && jbool(s, "include_usage")) rc = fe_oai_usage_chunk(&b, kind, &m, &usage);
        if (!rc) rc = fe_oai_done(&b);
    }
    if (!rc) fwrite(b.data, 1, b.len, stdout);
    fe_oai_buf_free(&b);
    cJSON_Delete(s);
    return rc ? 3 : 0;
}

// --- stop

static int cmd_stop(void) {
    size_t len;
    char *in = read_all(&len);
    cJSON *s = in ? cJSON_ParseWithLength(in, len) : NULL;
    free(in);
    if (!s) return 3;
    const cJSON *stops = cJSON_GetObjectItemCaseSensitive(s, "stops");
    int ns = cJSON_GetArraySize(stops);
    const char **sv = calloc((size_t)ns + 1, sizeof *sv);
    size_t *sl = calloc((size_t)ns + 1, sizeof *sl);
    for (int i = 0; i < ns; i++) {
        sv[i] = cJSON_GetArrayItem(stops, i)->valuestring;
        sl[i] = strlen(sv[i]);
    }
    fe_oai_stop_t m;
    fe_oai_stop_init(&m, sv, sl, (uint32_t)ns, jbool(s, "include"));
    cJSON *out = cJSON_CreateObject();
    cJSON *deltas = cJSON_AddArrayToObject(out, "deltas");
    cJSON *hits = cJSON_AddArrayToObject(out, "hits");
    const cJSON *st;
    cJSON_ArrayForEach(st, cJSON_GetObjectItemCaseSensitive(s, "steps")) {
        const char *t = jstr(st, "text", "");
        const char *d;
        size_t dn;
        int check = !cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(st, "check"));
        int hit = fe_oai_stop_feed(&m, t, strlen(t), check, jbool(st, "finished"), &d, &dn);
        if (hit < 0) return 3;
        char *copy = strndup(d, dn);
        cJSON_AddItemToArray(deltas, cJSON_CreateString(copy));
        free(copy);
        cJSON_AddItemToArray(hits, cJSON_CreateBool(hit));
    }
    cJSON_AddNumberToObject(out, "matched", fe_oai_stop_matched(&m));
    size_t tl;
    const char *tx = fe_oai_stop_text(&m, &tl);
    char *copy = strndup(tx, tl);
    cJSON_AddStringToObject(out, "text", copy);
    free(copy);
    char *txt = cJSON_PrintUnformatted(out);
    puts(txt);
    free(txt);
    cJSON_Delete(out);
    fe_oai_stop_free(&m);
    free(sv), free(sl);
    cJSON_Delete(s);
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 2) return fprintf(stderr, "usage: oai_tool parse|respond|stop ...\n"), 2;
    if (!strcmp(argv[1], "parse")) return cmd_parse(argc, argv);
    if (!strcmp(argv[1], "respond")) return cmd_respond();
    if (!strcmp(argv[1], "stop")) return cmd_stop();
    return 2;
}

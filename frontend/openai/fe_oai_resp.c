/* fe_oai_resp: the JSON bodies and SSE chunks of /v1/completions and
 * /v1/chat/completions, field for field as vLLM serialises them (non-stream
 * bodies and completions chunks with every field; chat chunks with only the
 * fields vLLM sets, since it dumps them with exclude_unset).
 *
 * Logprobs follow vLLM's serving code: values clamped to -9999.0 (so -inf
 * never reaches the JSON), per-position candidates de-duplicated by token id
 * (the sampled token first), completions' top_logprobs keyed by the decoded
 * text, chat's top_logprobs the first top_logprobs entries of that list.
 * Appends only: the caller reuses one buffer per stream, so steady-state
 * streaming does not allocate.
 */
#include <math.h>
#include <string.h>

#include "fe_oai.h"
#include "fe_oai_int.h"

const char *fe_oai_finish_str(wire_finish_t f) {
    switch (f) {
    case WIRE_FINISH_STOP: return "stop";
    case WIRE_FINISH_LENGTH: return "length";
    case WIRE_FINISH_ABORT: return "abort";
    case WIRE_FINISH_ERROR: return "error";
    default: return NULL;
    }
}

static double clamp_lp(float v) {
    /* vLLM: max(logprob, -9999.0); NaN has no JSON form either. */
    if (isnan(v) || v < -9999.0f) return -9999.0;
    return (double)v;
}

static int head(fe_oai_buf_t *b, const fe_oai_meta_t *m, const char *object) {
    int rc = fe_oai__puts(b, "{\"id\": ");
    if (!rc) rc = fe_oai__json_cstr(b, m->id);
    if (!rc) rc = fe_oai__printf(b, ", \"object\": \"%s\", \"created\": %lld, \"model\": ", object,
                                 (long long)m->created);
    if (!rc) rc = fe_oai__json_cstr(b, m->model);
    if (!rc) rc = fe_oai__puts(b, ", \"choices\": [");
    return rc;
}

static int usage_obj(fe_oai_buf_t *b, const fe_oai_usage_t *u, int details) {
    if (!u) return fe_oai__puts(b, "null");
    return fe_oai__printf(b, "{\"prompt_tokens\": %u, \"total_tokens\": %llu, \"completion_tokens\": %u%s}",
                          u->prompt_tokens, (unsigned long long)u->prompt_tokens + u->completion_tokens,
                          u->completion_tokens, details ? ", \"prompt_tokens_details\": null" : "");
}

static int finish_fields(fe_oai_buf_t *b, const fe_oai_choice_t *ch, int with_stop_reason) {
    const char *f = fe_oai_finish_str(ch->finish);
    int rc = fe_oai__puts(b, ", \"finish_reason\": ");
    if (!rc) rc = fe_oai__json_cstr(b, f);
    if (rc || !with_stop_reason) return rc;
    rc = fe_oai__puts(b, ", \"stop_reason\": ");
    if (rc) return rc;
    if (ch->stop_str) return fe_oai_json_str(b, ch->stop_str, ch->stop_str_len);
    if (ch->stop_token >= 0) return fe_oai__printf(b, "%d", ch->stop_token);
    return fe_oai__puts(b, "null");
}

// --- logprobs

/* Index of the first candidate among cand[0..k) with the same token id. */
static uint32_t first_with_id(const fe_oai_token_lp_t *t, uint32_t k) {
    for (uint32_t j = 0; j < k; j++)
        if (t->cand[j].id == t->cand[k].id) return j;
    return k;
}

/* The candidates vLLM keeps for one position: unique ids in order, at most
 * limit of them. Writes their indices into idx (capacity n_cand). */
static uint32_t unique_cands(const fe_oai_token_lp_t *t, uint32_t limit, uint32_t *idx, uint32_t cap) {
    uint32_t n = 0;
    for (uint32_t k = 0; k < t->n_cand && n < limit && n < cap; k++)
        if (first_with_id(t, k) == k) idx[n++] = k;
    return n;
}

static int same_text(const fe_oai_lp_t *a, const fe_oai_lp_t *b) {
    return a->text_len == b->text_len && (!a->text_len || !memcmp(a->text, b->text, a->text_len));
}

#define MAX_CANDS 1024 /* per position; beyond it candidates are dropped */

static int completion_logprobs(fe_oai_buf_t *b, const fe_oai_choice_t *ch) {
    if (!ch->lps) return fe_oai__puts(b, "null");
    int rc = fe_oai__puts(b, "{\"text_offset\": [");
    uint64_t off = ch->text_offset;
    for (uint32_t i = 0; !rc && i < ch->n_lps; i++) {
        rc = fe_oai__printf(b, "%s%llu", i ? ", " : "", (unsigned long long)off);
        const fe_oai_lp_t *tok = &ch->lps[i].cand[0];
        off += fe_oai__utf8_chars(tok->text, tok->text_len);
    }
    if (!rc) rc = fe_oai__puts(b, "], \"token_logprobs\": [");
    for (uint32_t i = 0; !rc && i < ch->n_lps; i++) {
        if (i) rc = fe_oai__puts(b, ", ");
        if (!rc) rc = ch->lps[i].null_logprob ? fe_oai__puts(b, "null")
                                              : fe_oai_json_double(b, clamp_lp(ch->lps[i].cand[0].logprob));
    }
    if (!rc) rc = fe_oai__puts(b, "], \"tokens\": [");
    for (uint32_t i = 0; !rc && i < ch->n_lps; i++) {
        if (i) rc = fe_oai__puts(b, ", ");
        if (!rc) rc = fe_oai_json_str(b, ch->lps[i].cand[0].text, ch->lps[i].cand[0].text_len);
    }
    if (!rc) rc = fe_oai__puts(b, "], \"top_logprobs\": [");
    for (uint32_t i = 0; !rc && i < ch->n_lps; i++) {
        const fe_oai_token_lp_t *t = &ch->lps[i];
        if (i) rc = fe_oai__puts(b, ", ");
        if (rc) break;
        if (t->null_logprob) {
            rc = fe_oai__puts(b, "null");
            continue;
        }
        /* The sampled token plus top_n more (vLLM keeps top_n + 1 entries
         * of the id-keyed dict), then keyed by decoded text: a repeated text
         * keeps its first position and its last value, as a Python dict. */
        uint32_t idx[MAX_CANDS];
        uint32_t n = unique_cands(t, ch->top_n + 1, idx, MAX_CANDS);
        rc = fe_oai__puts(b, "{");
        int first = 1;
        for (uint32_t a = 0; !rc && a < n; a++) {
            const fe_oai_lp_t *ca = &t->cand[idx[a]];
            int seen = 0;
            for (uint32_t z = 0; z < a && !seen; z++) seen = same_text(&t->cand[idx[z]], ca);
            if (seen) continue;
            const fe_oai_lp_t *last = ca;
            for (uint32_t z = a + 1; z < n; z++)
                if (same_text(&t->cand[idx[z]], ca)) last = &t->cand[idx[z]];
            if (!first) rc = fe_oai__puts(b, ", ");
            first = 0;
            if (!rc) rc = fe_oai_json_str(b, ca->text, ca->text_len);
            if (!rc) rc = fe_oai__puts(b, ": ");
            if (!rc) rc = fe_oai_json_double(b, clamp_lp(last->logprob));
        }
        if (!rc) rc = fe_oai__puts(b, "}");
    }
    if (!rc) rc = fe_oai__puts(b, "]}");
    return rc;
}

/* "bytes": the UTF-8 of the text after U+FFFD replacement, as vLLM's
 * list(token.encode("utf-8", errors="replace")) of the decoded token. */
static int bytes_list(fe_oai_buf_t *b, const char *s, size_t n) {
    const unsigned char *u = (const unsigned char *)s;
    int rc = fe_oai__puts(b, "[");
    int first = 1;
    for (size_t i = 0; !rc && i < n;) {
        int valid;
        size_t k = fe_oai__utf8_next(u, n, i, &valid);
        if (valid)
            for (size_t j = 0; !rc && j < k; j++, first = 0) rc = fe_oai__printf(b, "%s%u", first ? "" : ", ", u[i + j]);
        else rc = fe_oai__printf(b, "%s239, 191, 189", first ? "" : ", "), first = 0;
        i += k;
    }
    if (!rc) rc = fe_oai__puts(b, "]");
    return rc;
}

static int chat_lp_entry(fe_oai_buf_t *b, const fe_oai_lp_t *c) {
    int rc = fe_oai__puts(b, "{\"token\": ");
    if (!rc) rc = fe_oai_json_str(b, c->text, c->text_len);
    if (!rc) rc = fe_oai__puts(b, ", \"logprob\": ");
    if (!rc) rc = fe_oai_json_double(b, clamp_lp(c->logprob));
    if (!rc) rc = fe_oai__puts(b, ", \"bytes\": ");
    if (!rc) rc = bytes_list(b, c->text, c->text_len);
    return rc;
}

static int chat_logprobs(fe_oai_buf_t *b, const fe_oai_choice_t *ch) {
    if (!ch->lps) return fe_oai__puts(b, "null");
    int rc = fe_oai__puts(b, "{\"content\": [");
    for (uint32_t i = 0; !rc && i < ch->n_lps; i++) {
        const fe_oai_token_lp_t *t = &ch->lps[i];
        if (i) rc = fe_oai__puts(b, ", ");
        if (!rc) rc = chat_lp_entry(b, &t->cand[0]);
        if (!rc) rc = fe_oai__puts(b, ", \"top_logprobs\": [");
        uint32_t idx[MAX_CANDS];
        uint32_t n = unique_cands(t, ch->top_n, idx, MAX_CANDS);
        for (uint32_t a = 0; !rc && a < n; a++) {
            if (a) rc = fe_oai__puts(b, ", ");
            if (!rc) rc = chat_lp_entry(b, &t->cand[idx[a]]);
            if (!rc) rc = fe_oai__puts(b, "}");
        }
        if (!rc) rc = fe_oai__puts(b, "]}");
    }
    if (!rc) rc = fe_oai__puts(b, "], \"refusal\": null}");
    return rc;
}

// --- non-streaming bodies

int fe_oai_completion_json(fe_oai_buf_t *b, const fe_oai_meta_t *m, const fe_oai_choice_t *ch, uint32_t n,
                           const fe_oai_usage_t *usage) {
    int rc = head(b, m, "text_completion");
    for (uint32_t i = 0; !rc && i < n; i++) {
        rc = fe_oai__printf(b, "%s{\"index\": %u, \"text\": ", i ? ", " : "", ch[i].index);
        if (!rc) rc = fe_oai_json_str(b, ch[i].text, ch[i].text_len);
        if (!rc) rc = fe_oai__puts(b, ", \"logprobs\": ");
        if (!rc) rc = completion_logprobs(b, &ch[i]);
        if (!rc) rc = finish_fields(b, &ch[i], 1);
        if (!rc) rc = fe_oai__puts(b, ", \"prompt_logprobs\": null}");
    }
    if (!rc) rc = fe_oai__puts(b, "], \"service_tier\": null, \"system_fingerprint\": null, \"usage\": ");
    if (!rc) rc = usage_obj(b, usage, 1);
    if (!rc) rc = fe_oai__puts(b, "}");
    return rc;
}

int fe_oai_chat_json(fe_oai_buf_t *b, const fe_oai_meta_t *m, const fe_oai_choice_t *ch, uint32_t n,
                     const fe_oai_usage_t *usage) {
    int rc = head(b, m, "chat.completion");
    for (uint32_t i = 0; !rc && i < n; i++) {
        rc = fe_oai__printf(b, "%s{\"index\": %u, \"message\": {\"role\": \"assistant\", \"content\": ", i ? ", " : "",
                            ch[i].index);
        if (!rc) rc = fe_oai_json_str(b, ch[i].text, ch[i].text_len);
        if (!rc)
            rc = fe_oai__puts(b, ", \"refusal\": null, \"annotations\": null, \"audio\": null, \"function_call\": null, "
                                 "\"tool_calls\": [], \"reasoning_content\": null}, \"logprobs\": ");
        if (!rc) rc = chat_logprobs(b, &ch[i]);
        if (!rc) rc = finish_fields(b, &ch[i], 1);
        if (!rc) rc = fe_oai__puts(b, "}");
    }
    if (!rc) rc = fe_oai__puts(b, "], \"service_tier\": null, \"system_fingerprint\": null, \"usage\": ");
    if (!rc) rc = usage_obj(b, usage, 1);
    if (!rc) rc = fe_oai__puts(b, ", \"prompt_logprobs\": null}");
    return rc;
}

// --- SSE

static int sse_begin(fe_oai_buf_t *b) { return fe_oai__puts(b, "data: "); }
static int sse_end(fe_oai_buf_t *b) { return fe_oai__puts(b, "\n\n"); }

int fe_oai_completion_chunk(fe_oai_buf_t *b, const fe_oai_meta_t *m, const fe_oai_choice_t *ch,
                            const fe_oai_usage_t *usage) {
    int rc = sse_begin(b);
    if (!rc) rc = head(b, m, "text_completion");
    if (!rc) rc = fe_oai__printf(b, "{\"index\": %u, \"text\": ", ch->index);
    if (!rc) rc = fe_oai_json_str(b, ch->text, ch->text_len);
    if (!rc) rc = fe_oai__puts(b, ", \"logprobs\": ");
    if (!rc) rc = completion_logprobs(b, ch);
    if (!rc) rc = finish_fields(b, ch, 1);
    if (!rc) rc = fe_oai__puts(b, "}], \"usage\": ");
    if (!rc) rc = usage_obj(b, usage, 0);
    if (!rc) rc = fe_oai__puts(b, "}");
    if (!rc) rc = sse_end(b);
    return rc;
}

static int chat_chunk_tail(fe_oai_buf_t *b, const fe_oai_usage_t *usage) {
    int rc = fe_oai__puts(b, "]");
    if (!rc && usage) rc = fe_oai__puts(b, ", \"usage\": ");
    if (!rc && usage) rc = usage_obj(b, usage, 0);
    if (!rc) rc = fe_oai__puts(b, "}");
    if (!rc) rc = sse_end(b);
    return rc;
}

int fe_oai_chat_role_chunk(fe_oai_buf_t *b, const fe_oai_meta_t *m, uint32_t index, const fe_oai_usage_t *usage) {
    int rc = sse_begin(b);
    if (!rc) rc = head(b, m, "chat.completion.chunk");
    if (!rc)
        rc = fe_oai__printf(b,
                            "{\"index\": %u, \"delta\": {\"role\": \"assistant\", \"content\": \"\"}, "
                            "\"logprobs\": null, \"finish_reason\": null}",
                            index);
    if (!rc) rc = chat_chunk_tail(b, usage);
    return rc;
}

int fe_oai_chat_chunk(fe_oai_buf_t *b, const fe_oai_meta_t *m, const fe_oai_choice_t *ch,
                      const fe_oai_usage_t *usage) {
    int rc = sse_begin(b);
    if (!rc) rc = head(b, m, "chat.completion.chunk");
    if (!rc) rc = fe_oai__printf(b, "{\"index\": %u, \"delta\": {\"content\": ", ch->index);
    if (!rc) rc = fe_oai_json_str(b, ch->text, ch->text_len);
    if (!rc) rc = fe_oai__puts(b, "}, \"logprobs\": ");
    if (!rc) rc = chat_logprobs(b, ch);
    /* vLLM sets stop_reason on the finishing chunk only. */
    if (!rc) rc = finish_fields(b, ch, ch->finish != WIRE_FINISH_NONE);
    if (!rc) rc = fe_oai__puts(b, "}");
    if (!rc) rc = chat_chunk_tail(b, usage);
    return rc;
}

int fe_oai_usage_chunk(fe_oai_buf_t *b, fe_oai_kind_t kind, const fe_oai_meta_t *m, const fe_oai_usage_t *usage) {
    int rc = sse_begin(b);
    if (!rc) rc = head(b, m, kind == FE_OAI_CHAT ? "chat.completion.chunk" : "text_completion");
    if (!rc) rc = fe_oai__puts(b, "], \"usage\": ");
    if (!rc) rc = usage_obj(b, usage, 0);
    if (!rc) rc = fe_oai__puts(b, "}");
    if (!rc) rc = sse_end(b);
    return rc;
}

int fe_oai_done(fe_oai_buf_t *b) { return fe_oai__puts(b, "data: [DONE]\n\n"); }

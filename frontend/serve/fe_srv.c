/* fe_srv: OpenAI request handling of one API worker (see fe_srv.h). One HTTP
 * request fans out to n_prompts * n child engine requests "<id>-<k>"; each
 * child keeps its own incremental detokenizer and stop matcher. Outputs
 * arrive per step through fe_eng's callback and are routed by child id. */
#include "fe_srv.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "fe_oai.h"

typedef struct fe_srv_req fe_srv_req_t;

/* Scratch for building fe_oai_token_lp_t arrays (reused by one request). */
typedef struct {
    fe_oai_token_lp_t *toks;
    fe_oai_lp_t *cand;
    size_t *off;
    fe_oai_buf_t text;
    size_t cap_t, cap_c;
} fe_srv_lps_t;

typedef struct {
    fe_srv_req_t *r;
    char id[80];
    int engine;
    uint32_t index;          /* choice index */
    uint32_t prompt_len, n_out;
    tok_stream_t *ts;
    fe_oai_stop_t stop;
    wire_finish_t finish;
    int32_t stop_token;
    int done, sent_role;
    int32_t *prompt;         /* owned token ids */
    char *echo;              /* completions echo: the prompt text (owned), or NULL */
    size_t echo_len;
    int drop_output;         /* echo with max_tokens 0: the engine's one token is dropped */
    /* logprobs as the engine sent them: per token, lp_k (id, value) pairs */
    uint32_t lp_k, lp_n, lp_cap;
    uint32_t *lp_ids;
    float *lp_vals;
    fe_srv_lps_t lps;        /* this child's logprob scratch, reused per chunk */
    fe_reqm_req_t rm;        /* request-metrics state */
} fe_srv_child_t;


struct fe_srv_req {
    fe_srv_t *s;
    fe_http_conn_t *c;       /* NULL once the client left */
    fe_oai_req_t *oq;
    char id[64];
    fe_oai_meta_t meta;
    uint32_t n_children, n_done;
    fe_srv_child_t *ch;
    fe_oai_buf_t out;        /* reused per frame */
    double arrival;          /* when the request arrived (monotonic), for TTFT/e2e */
    fe_srv_req_t *next, *prev;
};

struct fe_srv {
    fe_srv_opts_t o;
    fe_eng_t *eng;
    fe_oai_defaults_t d;
    fe_srv_req_t *live;      /* list of requests waiting on the engine */
    int inflight;
};

static double mono_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void send_error(fe_http_conn_t *c, const fe_oai_error_t *e) {
    fe_oai_buf_t b = {0};
    if (fe_oai_error_json(&b, e) == 0) fe_http_respond(c, e->status, "application/json", NULL, b.data, b.len);
    else fe_api_error(c, 500, "InternalServerError", "out of memory");
    fe_oai_buf_free(&b);
}

static void req_free(fe_srv_req_t *q) {
    fe_srv_t *s = q->s;
    if (q->prev) q->prev->next = q->next;
    else if (s->live == q) s->live = q->next;
    if (q->next) q->next->prev = q->prev;
    s->inflight--;
    for (uint32_t i = 0; i < q->n_children; i++) {
        tok_stream_destroy(&q->ch[i].ts);
        fe_oai_stop_free(&q->ch[i].stop);
        free(q->ch[i].prompt);
        free(q->ch[i].echo);
        free(q->ch[i].lp_ids);
        free(q->ch[i].lp_vals);
        free(q->ch[i].lps.toks);
        free(q->ch[i].lps.cand);
        free(q->ch[i].lps.off);
        fe_oai_buf_free(&q->ch[i].lps.text);
    }
    free(q->ch);
    fe_oai_buf_free(&q->out);
    fe_oai_req_destroy(&q->oq);
    free(q);
}

static fe_srv_child_t *find_child(fe_srv_t *s, const char *id, uint32_t n) {
    for (fe_srv_req_t *q = s->live; q; q = q->next) {
        size_t l = strlen(q->id);
        if (n <= l || memcmp(id, q->id, l) || id[l] != '-') continue;
        for (uint32_t i = 0; i < q->n_children; i++)
            if (strlen(q->ch[i].id) == n && !memcmp(q->ch[i].id, id, n)) return &q->ch[i];
    }
    return NULL;
}

static void usage_of(const fe_srv_req_t *q, fe_oai_usage_t *u) {
    u->prompt_tokens = 0;
    u->completion_tokens = 0;
    for (uint32_t i = 0; i < q->n_children; i++) {
        /* prompt tokens count once per prompt, as vLLM does */
        if (q->ch[i].index % q->oq->n == 0) u->prompt_tokens += q->ch[i].prompt_len;
        u->completion_tokens += q->ch[i].n_out;
    }
}

static void fill_choice(const fe_srv_child_t *k, fe_oai_choice_t *c, const char *text, size_t len) {
    memset(c, 0, sizeof *c);
    c->index = k->index;
    c->text = text;
    c->text_len = len;
    c->finish = k->done ? k->finish : WIRE_FINISH_NONE;
    c->stop_token = -1;
    int m = fe_oai_stop_matched(&k->stop);
    if (k->done && m >= 0) {
        c->stop_str = k->r->oq->stop[m];
        c->stop_str_len = k->r->oq->stop_len[m];
    } else if (k->done) {
        c->stop_token = k->stop_token;
    }
}

/* Fills q->lps for tokens [from, to) of child k; returns the count or -1. */
static int build_lps(fe_srv_req_t *q, fe_srv_child_t *k, uint32_t from, uint32_t to) {
    fe_srv_lps_t *L = &k->lps;
    uint32_t nt = to - from, nc = nt * k->lp_k;
    if (nt > L->cap_t) {
        void *t = realloc(L->toks, nt * sizeof *L->toks);
        if (!t) return -1;
        L->toks = t;
        L->cap_t = nt;
    }
    if (nc > L->cap_c) {
        void *c = realloc(L->cand, nc * sizeof *L->cand), *o = c ? realloc(L->off, nc * sizeof *L->off) : NULL;
        if (c) L->cand = c;
        if (!o) return -1;
        L->off = o;
        L->cap_c = nc;
    }
    L->text.len = 0;
    for (uint32_t j = 0; j < nc; j++) {
        uint32_t id = k->lp_ids[(size_t)from * k->lp_k + j];
        char *t = NULL;
        size_t n = 0;
        L->off[j] = L->text.len;
        if (tok_decode(q->s->o.tok, (const int32_t *)&id, 1, false, &t, &n) == 0 && n &&
            fe_oai_buf_append(&L->text, t, n)) {
            free(t);
            return -1;
        }
        free(t);
        L->cand[j].id = id;
        L->cand[j].text_len = L->text.len - L->off[j];
        L->cand[j].logprob = k->lp_vals[(size_t)from * k->lp_k + j];
    }
    for (uint32_t j = 0; j < nc; j++) L->cand[j].text = L->text.data ? L->text.data + L->off[j] : "";
    for (uint32_t i = 0; i < nt; i++) {
        L->toks[i].cand = &L->cand[(size_t)i * k->lp_k];
        L->toks[i].n_cand = k->lp_k;
        L->toks[i].null_logprob = 0;
    }
    return (int)nt;
}

static void set_lps(fe_srv_req_t *q, fe_srv_child_t *k, fe_oai_choice_t *c, uint32_t from, uint32_t to) {
    if (q->oq->logprobs < 0 || !k->lp_k) return;
    int n = build_lps(q, k, from, to);
    if (n < 0) return;
    c->lps = k->lps.toks;
    c->n_lps = (uint32_t)n;
    c->top_n = (uint32_t)q->oq->logprobs;
}

static void finish_nonstream(fe_srv_req_t *q) {
    fe_oai_choice_t *cs = calloc(q->n_children, sizeof *cs);
    fe_oai_usage_t u;
    usage_of(q, &u);
    int rc = cs ? 0 : FE_OAI_ENOMEM;
    fe_oai_buf_t *ecb = calloc(q->n_children, sizeof *ecb);
    if (!ecb) rc = FE_OAI_ENOMEM;
    for (uint32_t i = 0; !rc && i < q->n_children; i++) {
        size_t len;
        const char *t = fe_oai_stop_text(&q->ch[i].stop, &len);
        if (!t) len = 0;
        if (q->ch[i].echo) {
            rc = fe_oai_buf_append(&ecb[i], q->ch[i].echo, q->ch[i].echo_len);
            if (!rc && len) rc = fe_oai_buf_append(&ecb[i], t, len);
            t = ecb[i].data;
            len = ecb[i].len;
        }
        fill_choice(&q->ch[i], &cs[i], t ? t : "", t ? len : 0);
    }
    for (uint32_t i = 0; !rc && i < q->n_children; i++) set_lps(q, &q->ch[i], &cs[i], 0, q->ch[i].lp_n);
    q->out.len = 0;
    if (!rc)
        rc = q->oq->kind == FE_OAI_CHAT ? fe_oai_chat_json(&q->out, &q->meta, cs, q->n_children, &u)
                                        : fe_oai_completion_json(&q->out, &q->meta, cs, q->n_children, &u);
    if (rc) fe_api_error(q->c, 500, "InternalServerError", "out of memory");
    else fe_http_respond(q->c, 200, "application/json", NULL, q->out.data, q->out.len);
    for (uint32_t i = 0; ecb && i < q->n_children; i++) fe_oai_buf_free(&ecb[i]);
    free(ecb);
    free(cs);
}

static void emit(fe_srv_req_t *q) {
    if (q->out.len) fe_http_stream_write(q->c, q->out.data, q->out.len);
    q->out.len = 0;
}

static void on_output(void *ud, int engine, const wire_output_t *o) {
    fe_srv_t *s = ud;
    fe_srv_child_t *k = find_child(s, o->id.p, o->id.n);
    if (!k || k->done) return; /* late output of an aborted child */
    fe_srv_req_t *q = k->r;
    double t_recv = mono_now();
    if (s->o.reqm) fe_reqm_output(s->o.reqm, engine, &k->rm, o, t_recv);
    const fe_oai_req_t *oq = q->oq;
    fe_oai_buf_t txt = {0};
    int rc = 0;
    uint32_t lp_from = k->lp_n;
    if (o->n_lp_per_token && o->new_tokens.n && !k->drop_output) {
        uint32_t per = o->n_lp_per_token, need = k->lp_n + o->new_tokens.n;
        if (need > k->lp_cap) {
            uint32_t cap = need < 64 ? 64 : need * 2;
            uint32_t *ni = realloc(k->lp_ids, (size_t)cap * per * sizeof *ni);
            if (ni) k->lp_ids = ni;
            float *nv = ni ? realloc(k->lp_vals, (size_t)cap * per * sizeof *nv) : NULL;
            if (nv) {
                k->lp_vals = nv;
                k->lp_cap = cap;
            }
        }
        if (need <= k->lp_cap) {
            k->lp_k = per;
            for (uint32_t j = 0; j < o->new_tokens.n * per; j++) {
                k->lp_ids[(size_t)k->lp_n * per + j] = wire_u32_at(&o->lp_ids, j);
                k->lp_vals[(size_t)k->lp_n * per + j] = wire_f32_at(o->lp_values, j);
            }
            k->lp_n = need;
        }
    }
    for (uint32_t i = 0; i < o->new_tokens.n && !rc && !k->drop_output; i++) {
        const char *t;
        size_t n;
        k->n_out++;
        if (tok_stream_push(k->ts, (int32_t)wire_u32_at(&o->new_tokens, i), &t, &n) == 0 && n)
            rc = fe_oai_buf_append(&txt, t, n);
    }
    int fin = o->finish != WIRE_FINISH_NONE;
    if (fin && !k->drop_output) {
        const char *t;
        size_t n;
        if (tok_stream_flush(k->ts, &t, &n) == 0 && n) rc = fe_oai_buf_append(&txt, t, n);
    }
    const char *delta = "";
    size_t dlen = 0;
    int check = k->n_out > oq->min_tokens;
    int m = fe_oai_stop_feed(&k->stop, txt.data ? txt.data : "", txt.len, check, fin, &delta, &dlen);
    fe_oai_buf_free(&txt);
    if (m == 1) {
        fe_eng_abort(s->eng, k->engine, k->id);
        k->finish = WIRE_FINISH_STOP;
        k->stop_token = -1;
        fin = 1;
    } else if (fin) {
        k->finish = (wire_finish_t)o->finish;
        k->stop_token = o->stop_token;
    }
    if (fin) {
        k->done = 1;
        q->n_done++;
        if (s->o.reqm) {
            fe_reqm_finish(s->o.reqm, engine, &k->rm, k->finish, o, t_recv);
            if (q->n_done == q->n_children) {
                /* once per parent: each prompt's n children (vLLM's ParentRequest) */
                uint32_t n = q->oq->n ? q->oq->n : 1;
                for (uint32_t p = 0; p + n <= q->n_children; p += n) {
                    int64_t mx = 0;
                    for (uint32_t j = p; j < p + n; j++)
                        if (q->ch[j].rm.generated > mx) mx = q->ch[j].rm.generated;
                    fe_reqm_parent(s->o.reqm, q->ch[p].engine, (int)n, mx);
                }
            }
        }
    }
    if (oq->stream) {
        fe_oai_usage_t u, *up = NULL;
        if (oq->continuous_usage_stats) {
            usage_of(q, &u);
            up = &u;
        }
        if (oq->kind == FE_OAI_CHAT && !k->sent_role) {
            k->sent_role = 1;
            fe_oai_chat_role_chunk(&q->out, &q->meta, k->index, up);
        }
        fe_oai_buf_t eb = {0};
        if (k->echo && !k->sent_role) {
            k->sent_role = 1;
            int erc = fe_oai_buf_append(&eb, k->echo, k->echo_len);
            if (!erc && dlen) erc = fe_oai_buf_append(&eb, delta, dlen);
            if (!erc && eb.data) {
                delta = eb.data;
                dlen = eb.len;
            }
        }
        if (dlen || fin || k->lp_n > lp_from) {
            fe_oai_choice_t c;
            fill_choice(k, &c, delta, dlen);
            set_lps(q, k, &c, lp_from, k->lp_n);
            if (oq->kind == FE_OAI_CHAT) fe_oai_chat_chunk(&q->out, &q->meta, &c, up);
            else fe_oai_completion_chunk(&q->out, &q->meta, &c, up);
        }
        fe_oai_buf_free(&eb);
        if (q->n_done == q->n_children) {
            if (oq->include_usage) {
                usage_of(q, &u);
                fe_oai_usage_chunk(&q->out, oq->kind, &q->meta, &u);
            }
            fe_oai_done(&q->out);
        }
        emit(q);
        if (q->n_done == q->n_children) {
            fe_http_stream_end(q->c);
            req_free(q);
        }
    } else if (q->n_done == q->n_children) {
        finish_nonstream(q);
        req_free(q);
    }
}

int fe_srv_new(uv_loop_t *loop, const fe_srv_opts_t *o, const char *const *endpoints, int n_endpoints,
               const char *client_id, fe_srv_t **out) {
    fe_srv_t *s = calloc(1, sizeof *s);
    if (!s) return -ENOMEM;
    s->o = *o;
    fe_oai_defaults_init(&s->d);
    s->d.vocab_size = (uint32_t)tok_vocab_size(o->tok);
    fe_eng_cb_t cb = {.on_output = on_output, .ud = s};
    int rc = fe_eng_open(loop, endpoints, n_endpoints, client_id, cb, &s->eng);
    if (rc) {
        free(s);
        return rc;
    }
    *out = s;
    return 0;
}

void fe_srv_destroy(fe_srv_t **ps) {
    fe_srv_t *s = *ps;
    if (!s) return;
    while (s->live) req_free(s->live);
    fe_eng_close(&s->eng);
    free(s);
    *ps = NULL;
}

int fe_srv_inflight(const fe_srv_t *s) { return s->inflight; }

void fe_srv_on_complete(void *ud, fe_http_conn_t *c, const fe_http_req_t *req, int status, size_t content_length,
                        double seconds) {
    fe_srv_t *s = ud;
    fe_api_on_complete(s->o.api, c, req, status, content_length, seconds);
}

void fe_srv_on_abort(void *ud, fe_http_conn_t *c) {
    fe_srv_t *s = ud;
    fe_srv_req_t *q = fe_http_conn_data(c);
    if (!q) return;
    fe_http_conn_set_data(c, NULL);
    for (uint32_t i = 0; i < q->n_children; i++)
        if (!q->ch[i].done) fe_eng_abort(s->eng, q->ch[i].engine, q->ch[i].id);
    req_free(q);
}

/* Constant-time comparison of the bearer token with every key. */
static int auth_ok(const fe_srv_t *s, const fe_http_req_t *r) {
    if (s->o.n_api_keys <= 0) return 1;
    const char *h = fe_http_header(r, "authorization");
    if (!h || strncasecmp(h, "Bearer ", 7)) return 0;
    h += 7;
    size_t hl = strlen(h);
    int ok = 0;
    for (int i = 0; i < s->o.n_api_keys; i++) {
        const char *k = s->o.api_keys[i];
        size_t kl = strlen(k);
        unsigned diff = (unsigned)(hl ^ kl);
        for (size_t j = 0; j < kl; j++) diff |= (unsigned)(unsigned char)k[j] ^ (unsigned char)(j < hl ? h[j] : 0);
        ok |= diff == 0;
    }
    return ok;
}

static void models(fe_srv_t *s, fe_http_conn_t *c) {
    fe_oai_buf_t b = {0};
    char tmp[1024];
    long long now = (long long)time(NULL);
    int rc = fe_oai_buf_append(&b, "{\"object\":\"list\",\"data\":[{\"id\":", 31);
    if (!rc) rc = fe_oai_json_str(&b, s->o.served_name, strlen(s->o.served_name));
    snprintf(tmp, sizeof tmp, ",\"object\":\"model\",\"created\":%lld,\"owned_by\":\"vllm\",\"root\":", now);
    if (!rc) rc = fe_oai_buf_append(&b, tmp, strlen(tmp));
    if (!rc) rc = fe_oai_json_str(&b, s->o.root, strlen(s->o.root));
    uint8_t rnd[16] = {0};
    char pid[64];
    if (getrandom(rnd, sizeof rnd, 0) < 0) memset(rnd, 0, sizeof rnd);
    fe_oai_make_id(pid, "modelperm-", rnd);
    snprintf(tmp, sizeof tmp,
             ",\"parent\":null,\"max_model_len\":%u,\"permission\":[{\"id\":\"%s\",\"object\":\"model_permission\","
             "\"created\":%lld,\"allow_create_engine\":false,\"allow_sampling\":true,\"allow_logprobs\":true,"
             "\"allow_search_indices\":false,\"allow_view\":true,\"allow_fine_tuning\":false,"
             "\"organization\":\"*\",\"group\":null,\"is_blocking\":false}]}]}",
             s->o.max_model_len, pid, now);
    if (!rc) rc = fe_oai_buf_append(&b, tmp, strlen(tmp));
    if (rc) fe_api_error(c, 500, "InternalServerError", "out of memory");
    else fe_http_respond(c, 200, "application/json", NULL, b.data, b.len);
    fe_oai_buf_free(&b);
}

/* Tokenizes the chat conversation or the k-th completions prompt into *ids. */
static int prompt_ids(fe_srv_t *s, const fe_oai_req_t *oq, uint32_t p, int32_t **ids, size_t *n,
                      fe_oai_error_t *e) {
    if (oq->kind == FE_OAI_CHAT) {
        if (!s->o.tpl) return fe_oai_error_set(e, FE_OAI_EINVAL, "", "The model has no chat template.");
        char *msgs = cJSON_PrintUnformatted(oq->messages);
        char *extra = oq->chat_template_kwargs ? cJSON_PrintUnformatted(oq->chat_template_kwargs) : NULL;
        tpl_vars_t v = {.messages_json = msgs, .extra_json = extra, .bos_token = s->o.bos,
                        .eos_token = s->o.eos, .add_generation_prompt = oq->add_generation_prompt};
        tpl_buf_t out = {0};
        tpl_error_t te;
        int rc = msgs ? tpl_render(s->o.tpl, &v, &out, &te) : -ENOMEM;
        free(msgs);
        free(extra);
        if (rc) {
            tpl_buf_free(&out);
            return fe_oai_error_set(e, FE_OAI_EINVAL, "", "%s", rc == -ENOMEM ? "out of memory" : te.msg);
        }
        /* chat: add_special_tokens defaults to false (fe_oai parses it so) */
        rc = tok_encode(s->o.tok, out.data ? out.data : "", out.len, oq->add_special_tokens, ids, n);
        tpl_buf_free(&out);
        if (rc) return fe_oai_error_set(e, FE_OAI_EINVAL, "", "%s", tok_strerror(rc));
        return 0;
    }
    const fe_oai_prompt_t *pr = &oq->prompts[p];
    if (pr->tokens) {
        *ids = malloc((pr->n_tokens ? pr->n_tokens : 1) * sizeof **ids);
        if (!*ids) return fe_oai_error_set(e, FE_OAI_ENOMEM, "", "out of memory");
        for (uint32_t i = 0; i < pr->n_tokens; i++) (*ids)[i] = (int32_t)pr->tokens[i];
        *n = pr->n_tokens;
        return 0;
    }
    int rc = tok_encode(s->o.tok, pr->text, pr->text_len, oq->add_special_tokens, ids, n);
    if (rc) return fe_oai_error_set(e, FE_OAI_EINVAL, "prompt", "%s", tok_strerror(rc));
    return 0;
}

static void generate(fe_srv_t *s, fe_http_conn_t *c, const fe_http_req_t *r, fe_oai_kind_t kind) {
    fe_oai_error_t e;
    fe_oai_req_t *oq = NULL;
    double arrival = mono_now(); /* vLLM: before templating and tokenization */
    if (fe_oai_req_parse(kind, r->body, r->body_len, &s->d, &oq, &e)) {
        send_error(c, &e);
        return;
    }
    if (oq->model && strcmp(oq->model, s->o.served_name)) {
        fe_oai_error_model(&e, oq->model);
        fe_oai_req_destroy(&oq);
        send_error(c, &e);
        return;
    }
    fe_srv_req_t *q = calloc(1, sizeof *q);
    uint32_t n_prompts = kind == FE_OAI_CHAT ? 1 : oq->n_prompts;
    if (q) q->ch = calloc((size_t)n_prompts * oq->n, sizeof *q->ch);
    if (!q || !q->ch) {
        if (q) free(q);
        fe_oai_req_destroy(&oq);
        fe_api_error(c, 500, "InternalServerError", "out of memory");
        return;
    }
    q->s = s;
    q->c = c;
    q->oq = oq;
    q->n_children = n_prompts * oq->n;
    uint8_t rnd[16];
    if (getrandom(rnd, sizeof rnd, 0) < 0) memset(rnd, 7, sizeof rnd);
    fe_oai_make_id(q->id, kind == FE_OAI_CHAT ? "chatcmpl-" : "cmpl-", rnd);
    q->meta.id = q->id;
    q->meta.model = s->o.served_name;
    q->meta.created = (int64_t)time(NULL);
    s->inflight++;
    q->next = s->live;
    if (s->live) s->live->prev = q;
    s->live = q;
    /* tokenize and validate every child before sending any */
    wire_sampling_t *sps = calloc(q->n_children, sizeof *sps);
    int rc = sps ? 0 : fe_oai_error_set(&e, FE_OAI_ENOMEM, "", "out of memory");
    for (uint32_t p = 0; !rc && p < n_prompts; p++) {
        int32_t *ids = NULL;
        size_t n = 0;
        rc = prompt_ids(s, oq, p, &ids, &n, &e);
        if (rc) break;
        wire_sampling_t sp;
        rc = fe_oai_req_sampling(oq, &s->d, (uint32_t)n, s->o.max_model_len, &sp, &e);
        for (uint32_t k = 0; k < oq->n; k++) {
            fe_srv_child_t *ch = &q->ch[p * oq->n + k];
            ch->r = q;
            ch->index = p * oq->n + k;
            ch->prompt_len = (uint32_t)n;
            snprintf(ch->id, sizeof ch->id, "%s-%u", q->id, ch->index);
            fe_oai_stop_init(&ch->stop, oq->stop, oq->stop_len, oq->n_stop, oq->include_stop_str_in_output);
            if (k == 0) ch->prompt = ids;
            if (!rc && kind == FE_OAI_COMPLETION && oq->echo) {
                const fe_oai_prompt_t *pr = &oq->prompts[p];
                if (pr->text) {
                    ch->echo = strndup(pr->text, pr->text_len);
                    ch->echo_len = pr->text_len;
                } else if (tok_decode(s->o.tok, ids, n, oq->skip_special_tokens != 0, &ch->echo, &ch->echo_len)) {
                    ch->echo = NULL;
                }
                if (!ch->echo) rc = fe_oai_error_set(&e, FE_OAI_ENOMEM, "", "out of memory");
                ch->drop_output = oq->max_tokens == 0;
            }
            sps[ch->index] = sp;
            if (oq->n > 1 && sp.has_seed) sps[ch->index].seed = sp.seed + k; /* distinct samples per child */
            if (!rc && tok_stream_new(s->o.tok, oq->skip_special_tokens != 0, &ch->ts))
                rc = fe_oai_error_set(&e, FE_OAI_ENOMEM, "", "out of memory");
        }
        if (rc && !q->ch[p * oq->n].prompt) free(ids);
    }
    if (rc) {
        free(sps);
        req_free(q);
        send_error(c, &e);
        return;
    }
    double now = mono_now();
    for (uint32_t i = 0; i < q->n_children; i++) {
        fe_srv_child_t *ch = &q->ch[i];
        const fe_srv_child_t *pc = &q->ch[i - i % oq->n];
        wire_add_t add = {.id = {ch->id, (uint32_t)strlen(ch->id)},
                          .prompt = {(const uint32_t *)pc->prompt, pc->prompt_len},
                          .sp = sps[i],
                          .arrival_time = now,
                          .client_index = s->o.client_index};
        ch->rm = (fe_reqm_req_t){.arrival = arrival, .prompt_len = pc->prompt_len, .max_tokens = sps[i].max_tokens};
        if (fe_eng_add(s->eng, &add, &ch->engine)) {
            for (uint32_t j = 0; j < i; j++) fe_eng_abort(s->eng, q->ch[j].engine, q->ch[j].id);
            free(sps);
            req_free(q);
            fe_api_error(c, 500, "InternalServerError", "engine unavailable");
            return;
        }
    }
    free(sps);
    fe_http_conn_set_data(c, q);
    if (oq->stream) fe_http_stream_start(c, 200, "text/event-stream; charset=utf-8", NULL);
}

static void tokenize(fe_srv_t *s, fe_http_conn_t *c, const fe_http_req_t *r) {
    cJSON *j = cJSON_ParseWithLength(r->body, r->body_len);
    const cJSON *pr = j ? cJSON_GetObjectItemCaseSensitive(j, "prompt") : NULL;
    if (!cJSON_IsString(pr)) {
        cJSON_Delete(j);
        fe_api_error(c, 400, "BadRequestError", "prompt: a string is required");
        return;
    }
    const cJSON *ast = cJSON_GetObjectItemCaseSensitive(j, "add_special_tokens");
    bool add = ast ? cJSON_IsTrue(ast) : true;
    int32_t *ids = NULL;
    size_t n = 0;
    if (tok_encode(s->o.tok, pr->valuestring, strlen(pr->valuestring), add, &ids, &n)) {
        cJSON_Delete(j);
        fe_api_error(c, 400, "BadRequestError", "prompt could not be tokenized");
        return;
    }
    fe_oai_buf_t b = {0};
    char tmp[64];
    int rc = fe_oai_buf_append(&b, "{\"count\":", 9);
    snprintf(tmp, sizeof tmp, "%zu,\"max_model_len\":%u,\"tokens\":[", n, s->o.max_model_len);
    if (!rc) rc = fe_oai_buf_append(&b, tmp, strlen(tmp));
    for (size_t i = 0; !rc && i < n; i++) {
        snprintf(tmp, sizeof tmp, "%s%d", i ? "," : "", ids[i]);
        rc = fe_oai_buf_append(&b, tmp, strlen(tmp));
    }
    if (!rc) rc = fe_oai_buf_append(&b, "],\"token_strs\":null}", 20);
    if (rc) fe_api_error(c, 500, "InternalServerError", "out of memory");
    else fe_http_respond(c, 200, "application/json", NULL, b.data, b.len);
    fe_oai_buf_free(&b);
    free(ids);
    cJSON_Delete(j);
}

static void detokenize(fe_srv_t *s, fe_http_conn_t *c, const fe_http_req_t *r) {
    cJSON *j = cJSON_ParseWithLength(r->body, r->body_len);
    const cJSON *tk = j ? cJSON_GetObjectItemCaseSensitive(j, "tokens") : NULL;
    int n = cJSON_IsArray(tk) ? cJSON_GetArraySize(tk) : -1;
    int32_t *ids = n >= 0 ? malloc(((size_t)n + 1) * sizeof *ids) : NULL;
    int bad = !ids;
    for (int i = 0; !bad && i < n; i++) {
        const cJSON *x = cJSON_GetArrayItem(tk, i);
        if (!cJSON_IsNumber(x) || x->valuedouble < 0 || x->valuedouble >= tok_vocab_size(s->o.tok)) bad = 1;
        else ids[i] = (int32_t)x->valuedouble;
    }
    char *text = NULL;
    size_t len = 0;
    if (bad || tok_decode(s->o.tok, ids, (size_t)n, false, &text, &len)) {
        fe_api_error(c, 400, "BadRequestError", "tokens: a list of valid token ids is required");
    } else {
        fe_oai_buf_t b = {0};
        int rc = fe_oai_buf_append(&b, "{\"prompt\":", 10);
        if (!rc) rc = fe_oai_json_str(&b, text, len);
        if (!rc) rc = fe_oai_buf_append(&b, "}", 1);
        if (rc) fe_api_error(c, 500, "InternalServerError", "out of memory");
        else fe_http_respond(c, 200, "application/json", NULL, b.data, b.len);
        fe_oai_buf_free(&b);
    }
    free(text);
    free(ids);
    cJSON_Delete(j);
}

void fe_srv_handle(void *ud, fe_http_conn_t *c, const fe_http_req_t *r) {
    fe_srv_t *s = ud;
    const char *p = r->path;
    int post = !strcmp(r->method, "POST");
    if (!strncmp(p, "/v1/", 4) && !auth_ok(s, r)) {
        static const char body[] = "{\"error\":\"Unauthorized\"}";
        fe_http_respond(c, 401, "application/json", NULL, body, sizeof body - 1);
        return;
    }
    if (!strcmp(p, "/v1/completions") && post) generate(s, c, r, FE_OAI_COMPLETION);
    else if (!strcmp(p, "/v1/chat/completions") && post) generate(s, c, r, FE_OAI_CHAT);
    else if (!strcmp(p, "/v1/models") && !strcmp(r->method, "GET")) models(s, c);
    else if (!strcmp(p, "/tokenize") && post) tokenize(s, c, r);
    else if (!strcmp(p, "/detokenize") && post) detokenize(s, c, r);
    else fe_api_handle(s->o.api, c, r);
}

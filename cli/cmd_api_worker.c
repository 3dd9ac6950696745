/* cvllm api-worker MODEL --engine-endpoint E0[,E1...] [serve flags]
 * [--worker-index I]: one API worker process. Loads the tokenizer and chat
 * template from MODEL (a .gguf file; --chat-template FILE overrides), binds
 * the port with SO_REUSEPORT, connects to the engines as client "fe-<I>" and
 * serves the OpenAI endpoints (frontend/serve) until SIGTERM/SIGINT, then
 * stops accepting and lets in-flight requests finish for up to 5 s. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <uv.h>

#include "chat_template.h"
#include "cli.h"
#include "fe_api.h"
#include "fe_srv.h"
#include "gguf.h"
#include "serve_args.h"
#include "shm.h"
#include "tokenizer.h"

typedef struct {
    uv_loop_t *loop;
    fe_http_server_t *http;
    fe_srv_t *srv;
    uv_signal_t sig[3];
    uv_timer_t drain;
    int stopping;
    int engine_dead;   /* SIGUSR1 from the supervisor: an engine died */
} worker_t;

/* fe_api's health hook: /health and /ping answer 503 once an engine died. */
static int engine_ok(void *ud) { return !((worker_t *)ud)->engine_dead; }

static void on_engine_dead(uv_signal_t *h, int sig) {
    (void)sig;
    ((worker_t *)h->data)->engine_dead = 1;
}

static char *read_file(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (s && fread(s, 1, (size_t)n, f) != (size_t)n) {
        free(s);
        s = NULL;
    }
    if (s) s[n] = 0;
    fclose(f);
    return s;
}

static char *gguf_token(const gguf_file_t *f, const char *key) {
    uint32_t id;
    int64_t kv;
    gguf_type_t et;
    uint64_t n;
    const char *s;
    size_t len;
    if (gguf_get_u32(f, key, &id) || gguf_get_arr(f, "tokenizer.ggml.tokens", &kv, &et, &n) ||
        et != GGUF_TYPE_STRING || id >= n || gguf_kv_arr_str(f, kv, id, &s, &len))
        return NULL;
    return strndup(s, len);
}

/* Chat template, bos/eos strings and the context length from a GGUF file. */
static void gguf_meta(const char *path, char **tmpl, char **bos, char **eos, uint32_t *ctx) {
    char err[256];
    gguf_file_t *f = NULL;
    if (gguf_open(path, &f, err, sizeof err)) return;
    const char *s;
    size_t len;
    if (!gguf_get_str(f, "tokenizer.chat_template", &s, &len)) *tmpl = strndup(s, len);
    *bos = gguf_token(f, "tokenizer.ggml.bos_token_id");
    *eos = gguf_token(f, "tokenizer.ggml.eos_token_id");
    if (!gguf_get_str(f, "general.architecture", &s, &len)) {
        char key[128];
        uint32_t v;
        snprintf(key, sizeof key, "%.*s.context_length", (int)len, s);
        if (!gguf_get_u32(f, key, &v)) *ctx = v;
    }
    gguf_close(&f);
}

static void close_walk(uv_handle_t *h, void *arg) {
    (void)arg;
    if (!uv_is_closing(h)) uv_close(h, NULL);
}

static void stop_now(worker_t *w) {
    uv_stop(w->loop);
}

static void on_drain(uv_timer_t *t) {
    worker_t *w = t->data;
    if (!fe_srv_inflight(w->srv) || uv_now(w->loop) - (uint64_t)w->stopping > 5000) stop_now(w);
}

static void on_signal(uv_signal_t *h, int sig) {
    (void)sig;
    worker_t *w = h->data;
    if (w->stopping) return;
    w->stopping = (int)uv_now(w->loop) | 1;
    fe_http_server_close(&w->http);
    uv_timer_start(&w->drain, on_drain, 0, 50);
}

int cmd_api_worker(int argc, char **argv) {
    int index = 0;
    char **av = calloc((size_t)argc + 1, sizeof *av);
    int ac = 0;
    if (!av) return 1;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--worker-index") && i + 1 < argc) index = atoi(argv[++i]);
        else if (!strncmp(argv[i], "--worker-index=", 15)) index = atoi(argv[i] + 15);
        else av[ac++] = argv[i];
    }
    serve_args_t a;
    int help;
    char err[512];
    if (serve_args_parse(ac, av, &a, &help, err, sizeof err)) {
        fprintf(stderr, "cvllm api-worker: %s\n", err);
        free(av);
        return 2;
    }
    if (help || !a.engine_endpoint || !a.model) {
        fprintf(stderr, "usage: cvllm api-worker MODEL --engine-endpoint E0[,E1...] [serve flags] [--worker-index I]\n");
        free(av);
        return help ? 0 : 2;
    }
    char name[16];
    snprintf(name, sizeof name, "cvllm-api-%d", index);
    prctl(PR_SET_NAME, name, 0, 0, 0);
    signal(SIGPIPE, SIG_IGN);

    int rc = 1;
    tok_tokenizer_t *tok = NULL;
    tpl_template_t *tpl = NULL;
    char *tmpl = NULL, *bos = NULL, *eos = NULL, *eps = NULL;
    uint32_t ctx = 0;
    fe_api_t *api = NULL;
    shm_registry_t *reg = NULL;
    worker_t w = {0};
    const char *endpoints[16];
    int n_ep = 0;
    if (tok_load(a.model, &tok, err, sizeof err)) {
        fprintf(stderr, "cvllm api-worker: %s\n", err);
        goto out;
    }
    gguf_meta(a.model, &tmpl, &bos, &eos, &ctx);
    if (a.chat_template) {
        free(tmpl);
        tmpl = read_file(a.chat_template);
        if (!tmpl) tmpl = strdup(a.chat_template); /* an inline template, as vLLM accepts */
    }
    if (tmpl) {
        tpl_error_t te;
        if (tpl_compile(tmpl, strlen(tmpl), &tpl, &te))
            fprintf(stderr, "cvllm api-worker: chat template: %s (chat completions disabled)\n", te.msg);
    }
    uint32_t max_model_len = a.max_model_len ? (uint32_t)a.max_model_len : (ctx ? ctx : 2048);
    eps = strdup(a.engine_endpoint);
    for (char *sv = NULL, *t = strtok_r(eps, ",", &sv); t && n_ep < 16; t = strtok_r(NULL, ",", &sv))
        endpoints[n_ep++] = t;

    const char *mdir = getenv("PROMETHEUS_MULTIPROC_DIR");
    if (mdir && *mdir) {
        shm_registry_opts_t ro = {.dir = mdir};
        if (shm_registry_new(&ro, &reg)) fprintf(stderr, "cvllm api-worker: metrics registry in %s failed\n", mdir);
    }
    fe_api_opts_t ao = {.metrics_dir = mdir && *mdir ? mdir : NULL, .registry = reg, .version = CVLLM_VERSION,
                        .engine_ok = engine_ok, .ud = &w};
    if (fe_api_new(&ao, &api)) {
        fprintf(stderr, "cvllm api-worker: fe_api_new failed\n");
        goto out;
    }
    w.loop = uv_default_loop();
    char client[32];
    snprintf(client, sizeof client, "fe-%d", index);
    fe_reqm_t *reqm = NULL;
    if (reg && !a.disable_log_stats) {
        int rr = fe_reqm_new(reg, a.served_model_name ? a.served_model_name : a.model, n_ep, max_model_len, &reqm);
        if (rr) fprintf(stderr, "cvllm api-worker: request metrics: %s\n", shm_strerror(rr));
    }
    fe_srv_opts_t so = {.reqm = reqm, .api = api, .tok = tok, .tpl = tpl, .bos = bos, .eos = eos,
                        .served_name = a.served_model_name ? a.served_model_name : a.model,
                        .root = a.model, .max_model_len = max_model_len,
                        .api_keys = a.api_keys, .n_api_keys = a.n_api_keys, .client_index = (uint16_t)index};
    if (fe_srv_new(w.loop, &so, endpoints, n_ep, client, &w.srv)) {
        fprintf(stderr, "cvllm api-worker: cannot connect to the engines\n");
        goto out;
    }
    fe_http_opts_t ho = {.host = a.host, .port = a.port, .reuseport = 1, .handler = fe_srv_handle,
                         .on_abort = fe_srv_on_abort, .on_complete = fe_srv_on_complete, .ud = w.srv,
                         .request_timeout_ms = 600000};
    int hr = fe_http_server_start(w.loop, &ho, &w.http);
    if (hr) {
        fprintf(stderr, "cvllm api-worker: cannot listen on port %d: %s\n", a.port, uv_strerror(hr));
        goto out;
    }
    uv_timer_init(w.loop, &w.drain);
    w.drain.data = &w;
    int sigs[3] = {SIGTERM, SIGINT, SIGUSR1};
    for (int i = 0; i < 3; i++) {
        uv_signal_init(w.loop, &w.sig[i]);
        w.sig[i].data = &w;
        uv_signal_start(&w.sig[i], i == 2 ? on_engine_dead : on_signal, sigs[i]);
    }
    fprintf(stderr, "cvllm api-worker %d: serving %s on port %d\n", index, so.served_name,
            fe_http_server_port(w.http));
    uv_run(w.loop, UV_RUN_DEFAULT);
    rc = 0;
out:
    if (w.http) fe_http_server_close(&w.http);
    if (w.srv) fe_srv_destroy(&w.srv);
    if (w.loop) {
        uv_walk(w.loop, close_walk, NULL);
        uv_run(w.loop, UV_RUN_DEFAULT);
    }
    fe_api_destroy(&api);
    fe_reqm_destroy(&reqm);
    shm_registry_destroy(&reg);
    tpl_destroy(&tpl);
    tok_destroy(&tok);
    free(tmpl);
    free(bos);
    free(eos);
    free(eps);
    free(av);
    return rc;
}

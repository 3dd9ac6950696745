/* Test driver for the frontend's engine link (fe_engine) on a libuv loop:
 *   fe_engine_tool ENDPOINT... -- N_REQUESTS MAX_TOKENS [ABORT_INDEX]
 * Sends N greedy requests (prompt = 5 + i tokens) at once through fe_eng_add,
 * aborts request ABORT_INDEX right after sending it (frames of one client
 * arrive in order, so the engine sees the abort before the request can
 * finish), and prints one line per
 * finished request: "<id> <engine> <finish> <tokens...>". Exits 0 when every
 * request finished and the outstanding counts are back to 0. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "fe_engine.h"

typedef struct {
    char id[32];
    int engine, done, n, aborted;
    uint32_t toks[4096];
} req_t;

static req_t reqs[256];
static int n_reqs, n_done, abort_index = -1;
static fe_eng_t *eng;
static uv_timer_t deadline;

static const char *finish_name(int f) {
    static const char *const n[] = {"none", "stop", "length", "abort", "error"};
    return f >= 0 && f <= 4 ? n[f] : "?";
}

static void on_output(void *ud, int engine, const wire_output_t *o) {
    (void)ud;
    for (int i = 0; i < n_reqs; i++) {
        req_t *r = &reqs[i];
        if (r->done || o->id.n != strlen(r->id) || memcmp(o->id.p, r->id, o->id.n)) continue;
        for (uint32_t k = 0; k < o->new_tokens.n && r->n < 4096; k++) r->toks[r->n++] = wire_u32_at(&o->new_tokens, k);
        if (o->finish) {
            r->done = 1;
            printf("%s %d %s", r->id, engine, finish_name(o->finish));
            for (int k = 0; k < r->n; k++) printf(" %u", r->toks[k]);
            printf("\n");
            fflush(stdout);
            if (++n_done == n_reqs) {
                int left = 0;
                for (int e = 0; e < 8; e++) left += fe_eng_outstanding(eng, e);
                printf("outstanding %d\n", left);
                uv_timer_stop(&deadline);
                uv_close((uv_handle_t *)&deadline, NULL);
                fe_eng_close(&eng);
            }
        }
        return;
    }
}

static void on_deadline(uv_timer_t *t) {
    (void)t;
    fprintf(stderr, "fe_engine_tool: timed out with %d of %d requests finished\n", n_done, n_reqs);
    exit(3);
}

int main(int argc, char **argv) {
    const char *eps[8];
    int n_eps = 0, i = 1;
    for (; i < argc && strcmp(argv[i], "--"); i++)
        if (n_eps < 8) eps[n_eps++] = argv[i];
    if (i + 2 >= argc) return fprintf(stderr, "usage: fe_engine_tool ENDPOINT... -- N MAX_TOKENS [ABORT]\n"), 2;
    n_reqs = atoi(argv[i + 1]);
    int max_tokens = atoi(argv[i + 2]);
    if (i + 3 < argc) abort_index = atoi(argv[i + 3]);
    if (n_reqs < 1 || n_reqs > 256) return 2;
    uv_loop_t *loop = uv_default_loop();
    fe_eng_cb_t cb = {.on_output = on_output};
    if (fe_eng_open(loop, eps, n_eps, "fe-test", cb, &eng)) return 1;
    for (int r = 0; r < n_reqs; r++) {
        snprintf(reqs[r].id, sizeof reqs[r].id, "req-%d", r);
        uint32_t prompt[64];
        int n = 5 + r % 32;
        for (int k = 0; k < n; k++) prompt[k] = (uint32_t)((r * 31 + k * 7) % 300);
        wire_add_t a = {.id = {reqs[r].id, (uint32_t)strlen(reqs[r].id)}, .prompt = {prompt, (uint32_t)n},
                        .sp = {.temperature = 0, .top_p = 1, .repetition_penalty = 1, .max_tokens = (uint32_t)max_tokens,
                               .logprobs = -1, .prompt_logprobs = -1}};
        if (fe_eng_add(eng, &a, &reqs[r].engine)) return 1;
        if (r == abort_index && fe_eng_abort(eng, reqs[r].engine, reqs[r].id)) return 1;
    }
    uv_timer_init(loop, &deadline);
    uv_timer_start(&deadline, on_deadline, 60000, 0);
    uv_run(loop, UV_RUN_DEFAULT);
    return uv_loop_close(loop) ? 4 : 0;
}

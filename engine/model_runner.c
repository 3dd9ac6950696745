/* model_runner: options, backend selection and batch validation in front of
 * the backend ops table (mr_internal.h). Every batch is checked completely
 * here before a backend sees it, so backends may trust sizes, token ids,
 * positions and block indices. Nothing here includes a backend's headers.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mr_internal.h"

struct mr_runner {
    const mr_model_t *model;
    const mr__backend_ops_t *ops;
    void *state;
    mr_opts_t opts;
};

static const mr__backend_ops_t *const backends[] = {&mr__cpu_backend};

void mr_opts_default(mr_opts_t *o) {
    *o = (mr_opts_t){.backend = "cpu", .n_threads = 0, .block_size = 16, .num_blocks = 256, .max_batch_tokens = 512,
                     .max_seqs = 64};
}

__attribute__((format(printf, 4, 5))) static int fail(char *err, size_t err_len, int code, const char *fmt, ...) {
    if (err && err_len) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, err_len, fmt, ap);
        va_end(ap);
    }
    return code;
}

int mr_runner_new(const mr_model_t *m, const mr_opts_t *o, mr_runner_t **out, char *err, size_t err_len) {
    *out = NULL;
    mr_opts_t opts;
    mr_opts_default(&opts);
    if (o) {
        if (o->backend) opts.backend = o->backend;
        opts.n_threads = o->n_threads;
        if (o->block_size) opts.block_size = o->block_size;
        if (o->num_blocks) opts.num_blocks = o->num_blocks;
        if (o->max_batch_tokens) opts.max_batch_tokens = o->max_batch_tokens;
        if (o->max_seqs) opts.max_seqs = o->max_seqs;
        opts.q8_activations = o->q8_activations;
    }
    if (opts.block_size < 1 || opts.num_blocks < 1 || opts.max_batch_tokens < 1 || opts.max_seqs < 1 ||
        opts.max_seqs > opts.max_batch_tokens || (int64_t)opts.block_size * opts.num_blocks > INT32_MAX)
        return fail(err, err_len, -EINVAL, "invalid runner options (block_size %d, num_blocks %d, max_batch_tokens %d, max_seqs %d)",
                    opts.block_size, opts.num_blocks, opts.max_batch_tokens, opts.max_seqs);
    const mr__backend_ops_t *ops = NULL;
    for (size_t i = 0; i < sizeof backends / sizeof *backends; i++)
        if (!strcmp(backends[i]->name, opts.backend)) ops = backends[i];
    if (!ops) return fail(err, err_len, ENG_ECONFIG, "unknown backend \"%s\"", opts.backend);
    mr_runner_t *r = calloc(1, sizeof *r);
    if (!r) return fail(err, err_len, -ENOMEM, "out of memory");
    r->model = m;
    r->ops = ops;
    r->opts = opts;
    r->opts.backend = ops->name;
    int rc = ops->init(m, &r->opts, &r->state, err, err_len);
    if (rc) {
        free(r);
        return rc;
    }
    *out = r;
    return 0;
}

void mr_runner_destroy(mr_runner_t **pr) {
    mr_runner_t *r = pr ? *pr : NULL;
    if (!r) return;
    r->ops->free(&r->state);
    free(r);
    *pr = NULL;
}

const mr_opts_t *mr_runner_opts(const mr_runner_t *r) { return &r->opts; }

const char *mr_runner_backend(const mr_runner_t *r) { return r->ops->name; }

int64_t mr_batch_n_out(const mr_batch_t *b) {
    return b->all_logits ? b->seq_start[b->n_seqs] : b->n_seqs;
}

static int check_batch(const mr_runner_t *r, const mr_batch_t *b) {
    const mr_opts_t *o = &r->opts;
    if (!b || b->n_seqs < 1 || b->n_seqs > o->max_seqs || !b->seq_start || !b->tokens || !b->positions ||
        !b->block_tables || !b->n_blocks || b->seq_start[0] != 0)
        return -EINVAL;
    const int64_t n_tok = b->seq_start[b->n_seqs];
    if (n_tok < 1 || n_tok > o->max_batch_tokens) return -EINVAL;
    const int64_t V = r->model->cfg.vocab_size;
    for (int32_t s = 0; s < b->n_seqs; s++) {
        const int32_t a = b->seq_start[s], e = b->seq_start[s + 1];
        if (e <= a || e > n_tok) return -EINVAL;
        const int32_t p0 = b->positions[a];
        if (p0 < 0) return -EINVAL;
        for (int32_t i = a; i < e; i++) {
            if (b->positions[i] != p0 + (i - a)) return -EINVAL;
            if (b->tokens[i] < 0 || b->tokens[i] >= V) return -EINVAL;
        }
        const int64_t last = (int64_t)p0 + (e - a) - 1;
        if (last >= (int64_t)o->num_blocks * o->block_size) return -EINVAL; /* longer than the whole pool */
        const int64_t need = last / o->block_size + 1;
        if (b->n_blocks[s] < need || !b->block_tables[s]) return -EINVAL;
        for (int64_t j = 0; j < need; j++)
            if (b->block_tables[s][j] < 0 || b->block_tables[s][j] >= o->num_blocks) return -EINVAL;
    }
    return 0;
}

int mr_runner_forward(mr_runner_t *r, const mr_batch_t *b, float *logits) {
    int rc = check_batch(r, b);
    if (rc) return rc;
    if (!logits) return -EINVAL;
    return r->ops->forward(r->state, b, logits);
}

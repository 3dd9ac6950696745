/* Unit tests for engine/eng_sched.h: budget and chunking, ordering,
 * preemption counts, prefix accounting, aborts, stop conditions, and a seeded
 * randomized invariant run. ENGINE_TEST=<name> runs one test; expected values
 * are derived by hand in the comments next to them. */
#include "eng_sched.h"
#include "test_util.h"

// --- scheduler helpers ----------------------------------------------------------

static sched_config_t cfg_default(void) {
    return (sched_config_t){
        .max_num_batched_tokens = 8192,
        .max_num_seqs = 256,
        .long_prefill_token_threshold = 0,
        .max_model_len = 4096,
        .block_size = 16,
        .num_blocks = 1024,
        .max_requests = 512,
        .enable_prefix_caching = true,
        .policy = SCHED_POLICY_FCFS,
    };
}

static sched_t *sched_make(const sched_config_t *c) {
    sched_t *s = NULL;
    int rc = sched_new(c, &s);
    CHECK_EQ(rc, 0);
    if (!s) abort();
    return s;
}

#define EOS 2
#define TOK 1000 /* sampled tokens are TOK + step; never EOS */

static int32_t add_req(sched_t *s, const char *id, const int32_t *prompt, int64_t n, int64_t max_tokens) {
    sched_req_params_t p = {.id = id, .prompt = prompt, .num_prompt = n, .max_tokens = max_tokens,
                            .eos_token_id = EOS};
    int32_t slot = -1;
    int rc = sched_add(s, &p, &slot);
    CHECK_EQ(rc, 0);
    return slot;
}

/* Runs one step sampling token `tok` for every sampling item. */
static const sched_step_t *step_tok(sched_t *s, int32_t tok, const sched_output_t **out) {
    const sched_step_t *st = sched_schedule(s);
    int32_t sampled[1024];
    for (int32_t i = 0; i < st->num_items; i++) sampled[i] = tok;
    const sched_output_t *o = sched_update(s, st, sampled);
    if (out) *out = o;
    CHECK_EQ(sched_check(s), 0);
    return st;
}

static int32_t item_tokens(const sched_step_t *st, int32_t slot) {
    for (int32_t i = 0; i < st->num_items; i++)
        if (st->items[i].slot == slot) return st->items[i].num_new_tokens;
    return 0;
}

// --- scheduler tests ----------------------------------------------------------------

static void test_sched_budget(void) {
    sched_config_t c = cfg_default();
    c.max_num_batched_tokens = 100;
    sched_t *s = sched_make(&c);
    int32_t p[250];
    seq_tokens(p, 250, 10);
    int32_t a = add_req(s, "a", p, 250, 3);
    const sched_output_t *o;
    const sched_step_t *st = step_tok(s, TOK, &o);
    CHECK_EQ(st->num_scheduled_tokens, 100);
    CHECK_EQ(st->items[0].start, 0);
    CHECK(!st->items[0].samples && st->items[0].first_scheduled);
    CHECK_EQ(o->num_items, 0);
    st = step_tok(s, TOK, &o);
    CHECK_EQ(item_tokens(st, a), 100);
    CHECK_EQ(st->items[0].start, 100);
    CHECK(!st->items[0].first_scheduled);
    st = step_tok(s, TOK, &o);
    CHECK_EQ(item_tokens(st, a), 50);
    CHECK(st->items[0].samples);
    CHECK_EQ(o->num_items, 1);
    CHECK(o->items[0].first_output);
    CHECK_EQ(o->num_prompt_tokens, 250);
    CHECK_EQ(o->num_generation_tokens, 1);
    st = step_tok(s, TOK, &o); /* decode */
    CHECK_EQ(st->num_scheduled_tokens, 1);
    CHECK_EQ(o->num_prompt_tokens, 0);

    /* Two 60-token prompts in a 100 budget: 60 + 40, then 1 + 20. */
    int32_t q[60];
    seq_tokens(q, 60, 5000);
    int32_t b = add_req(s, "b", q, 60, 5);
    seq_tokens(q, 60, 6000);
    int32_t d = add_req(s, "d", q, 60, 5);
    st = step_tok(s, TOK, &o);       /* a decodes its last token, b 60, d 39 */
    CHECK_EQ(item_tokens(st, a), 1); /* a finishes here (3 outputs) */
    CHECK_EQ(item_tokens(st, b), 60);
    CHECK_EQ(item_tokens(st, d), 39);
    CHECK_EQ(st->num_scheduled_tokens, 100);
    CHECK_EQ(sched_req(s, a)->status, SCHED_STATUS_FINISHED_LENGTH);
    st = step_tok(s, TOK, &o);
    CHECK_EQ(item_tokens(st, b), 1);
    CHECK_EQ(item_tokens(st, d), 21);
    CHECK_EQ(st->num_scheduled_tokens, 22);
    CHECK(sched_req(s, a) == NULL); /* recycled by this schedule */
    sched_destroy(&s);
    CHECK(s == NULL);
}

static void test_sched_long_prefill(void) {
    sched_config_t c = cfg_default();
    c.max_num_batched_tokens = 100;
    c.long_prefill_token_threshold = 32;
    sched_t *s = sched_make(&c);
    int32_t p[100];
    seq_tokens(p, 100, 10);
    int32_t a = add_req(s, "a", p, 100, 2);
    seq_tokens(p, 100, 300);
    int32_t b = add_req(s, "b", p, 100, 2);
    int32_t want[][2] = {{32, 32}, {32, 32}, {32, 32}, {4, 4}, {1, 1}};
    for (int i = 0; i < 5; i++) {
        const sched_step_t *st = step_tok(s, TOK, NULL);
        CHECK_EQ(item_tokens(st, a), want[i][0]);
        CHECK_EQ(item_tokens(st, b), want[i][1]);
    }
    CHECK(!sched_has_requests(s));
    sched_destroy(&s);
}

static void test_sched_fcfs(void) {
    sched_config_t c = cfg_default();
    c.max_num_seqs = 2;
    sched_t *s = sched_make(&c);
    int32_t p[20];
    seq_tokens(p, 20, 10);
    int32_t a = add_req(s, "a", p, 20, 2);
    int32_t b = add_req(s, "b", p, 20, 5);
    int32_t d = add_req(s, "d", p, 20, 5);
    const sched_step_t *st = step_tok(s, TOK, NULL);
    CHECK_EQ(st->num_items, 2);
    CHECK_EQ(st->items[0].slot, a);
    CHECK_EQ(st->items[1].slot, b);
    sched_stats_t ss;
    sched_get_stats(s, &ss);
    CHECK_EQ(ss.num_running, 2);
    CHECK_EQ(ss.num_waiting, 1);
    CHECK_EQ(ss.num_waiting_deferred, 0);
    st = step_tok(s, TOK, NULL); /* a gets its 2nd token and finishes */
    CHECK_EQ(st->num_items, 2);
    CHECK_EQ(sched_req(s, a)->status, SCHED_STATUS_FINISHED_LENGTH);
    st = step_tok(s, TOK, NULL); /* running first (b), then d admitted */
    CHECK_EQ(st->num_items, 2);
    CHECK_EQ(st->items[0].slot, b);
    CHECK_EQ(item_tokens(st, d), 20 - 16); /* the first block is a cache hit */
    CHECK(st->items[1].first_scheduled);
    CHECK_EQ(sched_req(s, d)->num_cached_tokens, 16);
    sched_destroy(&s);
}

static void test_sched_priority(void) {
    sched_config_t c = cfg_default();
    c.max_num_seqs = 1;
    c.policy = SCHED_POLICY_PRIORITY;
    sched_t *s = sched_make(&c);
    int32_t p[8];
    seq_tokens(p, 8, 10);
    sched_req_params_t q = {.prompt = p, .num_prompt = 8, .max_tokens = 1, .eos_token_id = -1};
    const char *ids[] = {"low", "high", "mid", "high2"};
    int32_t prio[] = {5, 0, 2, 0};
    double arr[] = {1.0, 3.0, 2.0, 2.5};
    int32_t slot[4];
    for (int i = 0; i < 4; i++) {
        q.id = ids[i];
        q.priority = prio[i];
        q.arrival_time = arr[i];
        CHECK_EQ(sched_add(s, &q, &slot[i]), 0);
    }
    /* Order: (0, 2.5) high2, (0, 3.0) high, (2) mid, (5) low. */
    int32_t order[] = {3, 1, 2, 0};
    for (int i = 0; i < 4; i++) {
        const sched_step_t *st = step_tok(s, TOK, NULL);
        CHECK_EQ(st->num_items, 1);
        CHECK_EQ(st->items[0].slot, slot[order[i]]);
    }
    sched_destroy(&s);

    /* Preemption picks the worst priority. 4 blocks; x (prio 0) and y
     * (prio 9) hold 2 blocks each with 31-token prompts; after two steps both
     * have 33 tokens. Step 3: x (first in running order) needs a 3rd block,
     * the worst running request is y -> y preempted, x takes one of its
     * blocks. */
    c = cfg_default();
    c.policy = SCHED_POLICY_PRIORITY;
    c.num_blocks = 4;
    c.enable_prefix_caching = false;
    s = sched_make(&c);
    int32_t r[31];
    seq_tokens(r, 31, 10);
    q = (sched_req_params_t){.prompt = r, .num_prompt = 31, .max_tokens = 10, .eos_token_id = -1};
    q.id = "y";
    q.priority = 9;
    int32_t ys, xs;
    CHECK_EQ(sched_add(s, &q, &ys), 0);
    q.id = "x";
    q.priority = 0;
    q.arrival_time = 1.0;
    CHECK_EQ(sched_add(s, &q, &xs), 0);
    /* Priority admission: x first (prio 0), then y. */
    const sched_step_t *st = step_tok(s, TOK, NULL);
    CHECK_EQ(st->items[0].slot, xs);
    CHECK_EQ(st->items[1].slot, ys);
    step_tok(s, TOK, NULL); /* 32 tokens each: still 2 blocks */
    st = step_tok(s, TOK, NULL);
    /* x needs a 3rd block: victim y (worst) -> x scheduled, y waiting. */
    CHECK_EQ(st->num_preempted, 1);
    CHECK_EQ(st->preempted[0], ys);
    CHECK_EQ(st->num_items, 1);
    CHECK_EQ(st->items[0].slot, xs);
    CHECK_EQ(sched_req(s, ys)->status, SCHED_STATUS_WAITING);
    CHECK_EQ(sched_req(s, ys)->num_preemptions, 1);
    sched_destroy(&s);

    /* No admission in a step that preempted. a, b (prio 1) fill the 4-block
     * pool; c (prio 0, 1 token, 1 block) arrives after step 1 and cannot fit
     * in step 2. Step 3: a needs a 3rd block, b (later arrival) is preempted,
     * a takes 1 of its 2 blocks; c would fit in the other and is ahead of b
     * in the waiting queue, but must wait for step 4. */
    s = sched_make(&c);
    q = (sched_req_params_t){.prompt = r, .num_prompt = 31, .max_tokens = 10, .eos_token_id = -1, .priority = 1};
    q.id = "a";
    q.arrival_time = 1.0;
    int32_t as, bs, cs;
    CHECK_EQ(sched_add(s, &q, &as), 0);
    q.id = "b";
    q.arrival_time = 2.0;
    CHECK_EQ(sched_add(s, &q, &bs), 0);
    step_tok(s, TOK, NULL);
    q.id = "c";
    q.arrival_time = 3.0;
    q.priority = 0;
    q.num_prompt = 1;
    CHECK_EQ(sched_add(s, &q, &cs), 0);
    st = step_tok(s, TOK, NULL);
    CHECK_EQ(st->num_items, 2);
    st = step_tok(s, TOK, NULL);
    CHECK_EQ(st->num_preempted, 1);
    CHECK_EQ(st->preempted[0], bs);
    CHECK_EQ(st->num_items, 1);
    CHECK_EQ(item_tokens(st, cs), 0);
    CHECK_EQ(kv_cache_num_free(sched_kv(s)), 1);
    st = step_tok(s, TOK, NULL);
    CHECK_EQ(item_tokens(st, as), 1);
    CHECK_EQ(item_tokens(st, cs), 1);
    CHECK(st->items[1].first_scheduled);
    CHECK_EQ(item_tokens(st, bs), 0);
    sched_destroy(&s);
}

/* Preemption counts under KV pressure (prefix caching off so the block
 * arithmetic is plain). Pool of 4 blocks of 16. a and b have 31-token
 * prompts (2 blocks each, pool full).
 *   step 1: a 31, b 31 -> 32 tokens each after sampling.
 *   step 2: a decodes position 31 (needs 2 blocks), b too -> 33 tokens each.
 *   step 3: a needs a 3rd block; free 0 -> preempt newest (b): free 2 -> a
 *           takes 1. preemptions = 1; no admission this step.
 *   steps 4..: b needs ceil(33/16)=3 blocks, only 1 free -> stays waiting.
 *           a grows to 48 tokens within 3 blocks, the 49th takes the last
 *           free block, then at 65 tokens a needs a 5th block: it is the
 *           only running request, so it preempts itself: preemptions = 2. */
static void test_sched_preempt(void) {
    sched_config_t c = cfg_default();
    c.num_blocks = 4;
    c.enable_prefix_caching = false;
    sched_t *s = sched_make(&c);
    int32_t p[31];
    seq_tokens(p, 31, 10);
    int32_t a = add_req(s, "a", p, 31, 1000);
    int32_t b = add_req(s, "b", p, 31, 1000);
    step_tok(s, TOK, NULL);
    step_tok(s, TOK, NULL);
    sched_stats_t ss;
    sched_get_stats(s, &ss);
    CHECK_EQ(ss.num_preemptions, 0);
    CHECK_NEAR(ss.kv_usage, 1.0);
    const sched_step_t *st = step_tok(s, TOK, NULL);
    CHECK_EQ(st->num_preempted, 1);
    CHECK_EQ(st->preempted[0], b);
    CHECK_EQ(st->num_items, 1);
    CHECK_EQ(st->items[0].slot, a);
    sched_get_stats(s, &ss);
    CHECK_EQ(ss.num_preemptions, 1);
    CHECK_EQ(ss.num_running, 1);
    CHECK_EQ(ss.num_waiting, 1);
    CHECK_EQ(sched_req(s, b)->num_computed_tokens, 0);
    CHECK_EQ(sched_req(s, b)->kv.num_blocks, 0);
    CHECK_NEAR(ss.kv_usage, 0.75);
    /* a has 34 tokens now; run until it holds 64 tokens (31 more steps). */
    for (int i = 0; i < 30; i++) {
        st = step_tok(s, TOK, NULL);
        CHECK_EQ(st->num_preempted, 0);
        CHECK_EQ(item_tokens(st, b), 0);
    }
    CHECK_EQ(sched_req(s, a)->num_tokens, 64);
    CHECK_EQ(sched_req(s, a)->kv.num_blocks, 4);
    st = step_tok(s, TOK, NULL); /* computes position 63: still 4 blocks */
    CHECK_EQ(st->num_preempted, 0);
    st = step_tok(s, TOK, NULL); /* position 64 needs a 5th block */
    CHECK_EQ(st->num_preempted, 1);
    CHECK_EQ(st->preempted[0], a);
    CHECK_EQ(st->num_items, 0);
    sched_get_stats(s, &ss);
    CHECK_EQ(ss.num_preemptions, 2);
    CHECK_EQ(ss.num_running, 0);
    CHECK_EQ(ss.num_waiting, 2);
    /* FCFS prepend: a (just preempted) is now ahead of b. */
    CHECK_EQ(kv_cache_num_free(sched_kv(s)), 4);
    /* Neither fits any more (a needs 5 blocks, b 3 but behind a): nothing
     * runs and nothing more is preempted. */
    st = step_tok(s, TOK, NULL);
    CHECK_EQ(st->num_items, 0);
    sched_get_stats(s, &ss);
    CHECK_EQ(ss.num_preemptions, 2);
    CHECK_EQ(sched_abort(s, "a"), 0);
    st = step_tok(s, TOK, NULL); /* b recomputes its 33 tokens */
    CHECK_EQ(item_tokens(st, b), 33);
    CHECK(!st->items[0].first_scheduled);
    CHECK(st->items[0].samples);
    sched_destroy(&s);
}

/* Several preemptions in one step. Pool of 4 blocks, chunk cap 32, prefix
 * caching off. a (64-token prompt), then b and c (15 tokens each).
 *   step 1: a 32 (2 blocks), b 15 (1), c 15 (1): pool full.
 *   step 2: a needs 2 more blocks: preempt c (1 free), still short, preempt
 *           b (2 free) -> a runs 32 and samples. 2 preemptions, order c, b;
 *           FCFS prepends, so the waiting queue is b, c.
 *   step 3: a decodes position 64 and needs a 5th block: it preempts itself.
 *           3 preemptions in all. */
static void test_sched_preempt_multi(void) {
    sched_config_t c = cfg_default();
    c.num_blocks = 4;
    c.long_prefill_token_threshold = 32;
    c.enable_prefix_caching = false;
    sched_t *s = sched_make(&c);
    int32_t p[64];
    seq_tokens(p, 64, 10);
    int32_t a = add_req(s, "a", p, 64, 100);
    int32_t b = add_req(s, "b", p, 15, 100);
    int32_t d = add_req(s, "c", p, 15, 100);
    const sched_step_t *st = step_tok(s, TOK, NULL);
    CHECK_EQ(st->num_scheduled_tokens, 62);
    CHECK_EQ(kv_cache_num_free(sched_kv(s)), 0);
    st = step_tok(s, TOK, NULL);
    CHECK_EQ(st->num_preempted, 2);
    CHECK_EQ(st->preempted[0], d);
    CHECK_EQ(st->preempted[1], b);
    CHECK_EQ(st->num_items, 1);
    CHECK_EQ(item_tokens(st, a), 32);
    CHECK(st->items[0].samples);
    sched_stats_t ss;
    sched_get_stats(s, &ss);
    CHECK_EQ(ss.num_preemptions, 2);
    CHECK_EQ(ss.num_waiting, 2);
    CHECK_EQ(sched_req(s, b)->num_preemptions, 1);
    st = step_tok(s, TOK, NULL);
    CHECK_EQ(st->num_preempted, 1);
    CHECK_EQ(st->preempted[0], a);
    CHECK_EQ(st->num_items, 0);
    sched_get_stats(s, &ss);
    CHECK_EQ(ss.num_preemptions, 3);
    CHECK_EQ(ss.num_running, 0);
    /* a (65 tokens, 5 blocks) can never fit again; aborting it lets b and
     * then c in, each recomputing its 16 tokens. */
    CHECK_EQ(sched_abort(s, "a"), 0);
    st = step_tok(s, TOK, NULL);
    CHECK_EQ(st->num_items, 2);
    CHECK_EQ(st->items[0].slot, b);
    CHECK_EQ(st->items[1].slot, d);
    CHECK_EQ(item_tokens(st, b), 16);
    CHECK_EQ(item_tokens(st, d), 16);
    sched_destroy(&s);
}

/* Prefix hits in tokens: two 64-token prompts sharing 48 tokens, block 16.
 * vLLM caches blocks when they are scheduled, so b (admitted in the same
 * step, after a) already hits a's 3 shared blocks. */
static void test_sched_prefix_stats(void) {
    sched_config_t c = cfg_default();
    sched_t *s = sched_make(&c);
    int32_t pa[64], pb[64];
    seq_tokens(pa, 64, 1);
    memcpy(pb, pa, sizeof pa);
    seq_tokens(pb + 48, 16, 7000);
    int32_t a = add_req(s, "a", pa, 64, 4);
    int32_t b = add_req(s, "b", pb, 64, 4);
    const sched_step_t *st = step_tok(s, TOK, NULL);
    CHECK_EQ(item_tokens(st, a), 64);
    CHECK_EQ(item_tokens(st, b), 16);
    sched_stats_t ss;
    sched_get_stats(s, &ss);
    CHECK_EQ(ss.prefix.queries, 128);
    CHECK_EQ(ss.prefix.hits, 48);
    CHECK_EQ(sched_req(s, b)->num_cached_tokens, 48);
    CHECK_EQ(sched_req(s, a)->num_cached_tokens, 0);
    /* Decodes do not query again. */
    step_tok(s, TOK, NULL);
    sched_get_stats(s, &ss);
    CHECK_EQ(ss.prefix.queries, 128);
    sched_destroy(&s);

    /* Same prompts, b added after a finished: still 48 hit tokens. */
    s = sched_make(&c);
    a = add_req(s, "a", pa, 64, 1);
    step_tok(s, TOK, NULL);
    CHECK(!sched_has_requests(s));
    b = add_req(s, "b", pb, 64, 1);
    st = step_tok(s, TOK, NULL);
    CHECK_EQ(item_tokens(st, b), 16);
    sched_get_stats(s, &ss);
    CHECK_EQ(ss.prefix.queries, 128);
    CHECK_EQ(ss.prefix.hits, 48);
    sched_destroy(&s);
}

/* n>1: three requests with the same 40-token prompt. Each hit is capped at
 * floor(39/16) = 2 blocks = 32 tokens. */
static void test_sched_n_best(void) {
    sched_config_t c = cfg_default();
    sched_t *s = sched_make(&c);
    int32_t p[40];
    seq_tokens(p, 40, 3);
    int32_t a = add_req(s, "r-0", p, 40, 3);
    int32_t b = add_req(s, "r-1", p, 40, 3);
    int32_t d = add_req(s, "r-2", p, 40, 3);
    const sched_step_t *st = step_tok(s, TOK, NULL);
    CHECK_EQ(item_tokens(st, a), 40);
    CHECK_EQ(item_tokens(st, b), 8);
    CHECK_EQ(item_tokens(st, d), 8);
    sched_stats_t ss;
    sched_get_stats(s, &ss);
    CHECK_EQ(ss.prefix.queries, 120);
    CHECK_EQ(ss.prefix.hits, 64);
    /* The two full prompt blocks are shared three ways. */
    const sched_req_t *ra = sched_req(s, a), *rb = sched_req(s, b);
    CHECK_EQ(kv_cache_block_ref(sched_kv(s), ra->kv.blocks[0]), 3);
    CHECK_EQ(rb->kv.blocks[1], ra->kv.blocks[1]);
    CHECK(rb->kv.blocks[2] != ra->kv.blocks[2]);
    sched_destroy(&s);
}

static void test_sched_abort(void) {
    sched_config_t c = cfg_default();
    c.num_blocks = 64;
    c.max_num_seqs = 3;
    c.max_num_batched_tokens = 64;
    sched_t *s = sched_make(&c);
    int32_t p[100];
    seq_tokens(p, 100, 1);
    char id[16];
    for (int i = 0; i < 6; i++) {
        snprintf(id, sizeof id, "r%d", i);
        p[0] = 1000 + i; /* distinct prompts */
        add_req(s, id, p, 30 + 10 * i, 50);
    }
    for (int i = 0; i < 4; i++) step_tok(s, TOK, NULL);
    sched_stats_t ss;
    sched_get_stats(s, &ss);
    CHECK_EQ(ss.num_running, 3);
    CHECK_EQ(ss.num_waiting, 3);
    CHECK(kv_cache_num_free(sched_kv(s)) < 64);
    /* Abort between schedule and update too: update must skip it. */
    const sched_step_t *st = sched_schedule(s);
    CHECK_EQ(sched_abort(s, "r1"), 0);
    add_req(s, "late", p, 5, 1); /* an add mid-step waits for the next schedule */
    int32_t sampled[8] = {TOK, TOK, TOK, TOK, TOK, TOK, TOK, TOK};
    const sched_output_t *o = sched_update(s, st, sampled);
    for (int32_t i = 0; i < o->num_items; i++) CHECK(strcmp(sched_req(s, o->items[i].slot)->id, "r1") != 0);
    CHECK_EQ(sched_check(s), 0);
    CHECK_EQ(sched_abort(s, "r1"), SCHED_ENOENT);
    CHECK_EQ(sched_abort(s, "nope"), SCHED_ENOENT);
    for (int32_t i = 0; i < o->num_items; i++) CHECK(strcmp(sched_req(s, o->items[i].slot)->id, "late") != 0);
    CHECK_EQ(sched_abort(s, "late"), 0);
    for (int i = 0; i < 6; i++) {
        if (i == 1) continue;
        snprintf(id, sizeof id, "r%d", i);
        CHECK_EQ(sched_abort(s, id), 0);
    }
    CHECK_EQ(kv_cache_num_free(sched_kv(s)), 64);
    CHECK_NEAR(kv_cache_usage(sched_kv(s)), 0.0);
    CHECK(!sched_has_requests(s));
    CHECK_EQ(sched_check(s), 0);
    /* The ids can be reused once aborted. */
    add_req(s, "r1", p, 10, 1);
    step_tok(s, TOK, NULL);
    sched_destroy(&s);
}

/* Runs a single request through steps with the given sampled tokens; returns
 * its final status and number of outputs. */
static sched_status_t run_stops(const sched_req_params_t *q, const int32_t *toks, int ntoks, int64_t max_model_len,
                                int64_t *nout, int32_t *stop_reason) {
    sched_config_t c = cfg_default();
    c.max_model_len = max_model_len;
    sched_t *s = sched_make(&c);
    int32_t slot = -1;
    CHECK_EQ(sched_add(s, q, &slot), 0);
    sched_status_t stv = SCHED_STATUS_RUNNING;
    for (int i = 0; i < ntoks && stv == SCHED_STATUS_RUNNING; i++) {
        const sched_step_t *st = sched_schedule(s);
        CHECK_EQ(st->num_items, 1);
        const sched_output_t *o = sched_update(s, st, &toks[i]);
        CHECK_EQ(o->num_items, 1);
        stv = o->items[0].status;
    }
    *nout = sched_req_num_output(sched_req(s, slot));
    *stop_reason = sched_req(s, slot)->stop_reason;
    if (sched_status_finished(stv)) CHECK_EQ(sched_req(s, slot)->kv.num_blocks, 0);
    CHECK_EQ(sched_check(s), 0);
    sched_destroy(&s);
    return stv;
}

static void test_sched_stops(void) {
    int32_t p[10];
    seq_tokens(p, 10, 100);
    int32_t stops[] = {7, 8};
    sched_req_params_t q = {.id = "s", .prompt = p, .num_prompt = 10, .max_tokens = 6, .eos_token_id = EOS};
    int64_t n;
    int32_t why;
    const int32_t eos4[] = {EOS, EOS, EOS, EOS, EOS, EOS};
    /* EOS at once. */
    CHECK_EQ(run_stops(&q, eos4, 6, 4096, &n, &why), SCHED_STATUS_FINISHED_STOPPED);
    CHECK_EQ(n, 1);
    CHECK_EQ(why, -1);
    /* min_tokens 3 hides the first two EOS. */
    q.min_tokens = 3;
    CHECK_EQ(run_stops(&q, eos4, 6, 4096, &n, &why), SCHED_STATUS_FINISHED_STOPPED);
    CHECK_EQ(n, 3);
    /* ignore_eos: runs to max_tokens. */
    q.ignore_eos = true;
    CHECK_EQ(run_stops(&q, eos4, 6, 4096, &n, &why), SCHED_STATUS_FINISHED_LENGTH);
    CHECK_EQ(n, 6);
    /* stop_token_ids, also hidden by min_tokens. */
    q.ignore_eos = false;
    q.stop_token_ids = stops;
    q.num_stop_token_ids = 2;
    const int32_t t1[] = {8, 5, 5, 8, 5, 5};
    CHECK_EQ(run_stops(&q, t1, 6, 4096, &n, &why), SCHED_STATUS_FINISHED_STOPPED);
    CHECK_EQ(n, 4);
    CHECK_EQ(why, 8);
    q.min_tokens = 0;
    CHECK_EQ(run_stops(&q, t1, 6, 4096, &n, &why), SCHED_STATUS_FINISHED_STOPPED);
    CHECK_EQ(n, 1);
    /* EOS on the max_tokens-th token: stop wins over length (vLLM order). */
    const int32_t t2[] = {5, 5, 5, 5, 5, EOS};
    CHECK_EQ(run_stops(&q, t2, 6, 4096, &n, &why), SCHED_STATUS_FINISHED_STOPPED);
    CHECK_EQ(n, 6);
    const int32_t t3[] = {5, 5, 5, 5, 5, 5};
    CHECK_EQ(run_stops(&q, t3, 6, 4096, &n, &why), SCHED_STATUS_FINISHED_LENGTH);
    CHECK_EQ(n, 6);
    /* max_model_len 12 with a 10-token prompt: 2 outputs, even under min_tokens. */
    q.max_tokens = 100;
    q.min_tokens = 50;
    CHECK_EQ(run_stops(&q, t3, 6, 12, &n, &why), SCHED_STATUS_FINISHED_LENGTH);
    CHECK_EQ(n, 2);
    /* No EOS id configured: EOS token value is ordinary. */
    q.min_tokens = 0;
    q.max_tokens = 3;
    q.eos_token_id = -1;
    q.num_stop_token_ids = 0;
    CHECK_EQ(run_stops(&q, eos4, 6, 4096, &n, &why), SCHED_STATUS_FINISHED_LENGTH);
    CHECK_EQ(n, 3);
}

static void test_sched_add_errors(void) {
    sched_config_t c = cfg_default();
    c.max_requests = 2;
    c.max_model_len = 64;
    sched_t *s = sched_make(&c);
    int32_t p[64];
    seq_tokens(p, 64, 1);
    sched_req_params_t q = {.id = "a", .prompt = p, .num_prompt = 64, .max_tokens = 1, .eos_token_id = -1};
    CHECK_EQ(sched_add(s, &q, NULL), SCHED_ETOOLONG);
    q.num_prompt = 0;
    CHECK_EQ(sched_add(s, &q, NULL), SCHED_EINVAL);
    q.num_prompt = 10;
    q.max_tokens = 0;
    CHECK_EQ(sched_add(s, &q, NULL), SCHED_EINVAL);
    q.max_tokens = 1;
    CHECK_EQ(sched_add(s, &q, NULL), 0);
    CHECK_EQ(sched_add(s, &q, NULL), SCHED_EEXIST);
    q.id = "b";
    CHECK_EQ(sched_add(s, &q, NULL), 0);
    q.id = "c";
    CHECK_EQ(sched_add(s, &q, NULL), SCHED_EFULL);
    CHECK(strcmp(sched_strerror(SCHED_EFULL), "request table is full") == 0);
    CHECK(strcmp(sched_strerror(KV_ENOSPC), "not enough free KV blocks") == 0);
    sched_config_t bad = c;
    bad.max_num_seqs = 0;
    sched_t *t = NULL;
    CHECK_EQ(sched_new(&bad, &t), SCHED_EINVAL);
    bad = c;
    bad.num_blocks = 0;
    CHECK_EQ(sched_new(&bad, &t), KV_EINVAL);
    CHECK(t == NULL);
    sched_destroy(&s);
}

// --- randomized invariants ----------------------------------------------------------

static uint64_t rng_state;
static uint32_t rnd(uint32_t n) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state % n);
}

static void random_run(uint64_t seed, sched_policy_t policy, int32_t threshold, bool prefix, int32_t block_size) {
    rng_state = seed * 0x9e3779b97f4a7c15ULL + 1;
    sched_config_t c = cfg_default();
    c.block_size = block_size;
    c.num_blocks = 192 / block_size; /* 48 blocks of 4, 32 of 6 */
    c.max_model_len = 96;
    c.max_num_batched_tokens = 40;
    c.max_num_seqs = 6;
    c.max_requests = 24;
    c.long_prefill_token_threshold = threshold;
    c.enable_prefix_caching = prefix;
    c.policy = policy;
    sched_t *s = sched_make(&c);
    int32_t bases[3][64];
    for (int b = 0; b < 3; b++) seq_tokens(bases[b], 64, 100 + 1000 * b);
    int next_id = 0;
    uint64_t steps_with_work = 0;
    for (int iter = 0; iter < 3000; iter++) {
        int nadd = (int)rnd(3);
        for (int k = 0; k < nadd; k++) {
            int32_t p[80];
            int32_t len = 1 + (int32_t)rnd(70);
            int32_t shared = (int32_t)rnd((uint32_t)len + 1);
            memcpy(p, bases[rnd(3)], (size_t)(shared < 64 ? shared : 64) * sizeof *p);
            for (int32_t j = shared < 64 ? shared : 64; j < len; j++) p[j] = (int32_t)rnd(50) + 3;
            char id[16];
            snprintf(id, sizeof id, "q%d", next_id);
            sched_req_params_t q = {.id = id, .prompt = p, .num_prompt = len, .max_tokens = 1 + rnd(40),
                                    .min_tokens = rnd(3), .eos_token_id = EOS, .priority = (int32_t)rnd(4),
                                    .arrival_time = iter};
            int rc = sched_add(s, &q, NULL);
            if (rc == 0) {
                next_id++;
            } else {
                CHECK_EQ(rc, SCHED_EFULL);
            }
        }
        if (rnd(10) == 0 && next_id > 0) {
            char id[16];
            snprintf(id, sizeof id, "q%d", (int)rnd((uint32_t)next_id));
            int rc = sched_abort(s, id);
            CHECK(rc == 0 || rc == SCHED_ENOENT);
        }
        const sched_step_t *st = sched_schedule(s);
        CHECK(st->num_scheduled_tokens <= c.max_num_batched_tokens);
        CHECK(st->num_items <= c.max_num_seqs);
        /* A step that preempted admits nobody, and a victim is not run. */
        for (int32_t i = 0; i < st->num_items; i++) {
            if (st->num_preempted) CHECK(!st->items[i].first_scheduled);
            for (int32_t k = 0; k < st->num_preempted; k++) CHECK(st->items[i].slot != st->preempted[k]);
        }
        if (st->num_items) steps_with_work++;
        int32_t sampled[64];
        for (int32_t i = 0; i < st->num_items; i++) {
            sampled[i] = rnd(8) == 0 ? EOS : (int32_t)rnd(50) + 3;
            if (threshold) CHECK(st->items[i].num_new_tokens <= threshold);
        }
        if (rnd(20) == 0 && next_id > 0) { /* abort between schedule and update */
            char id[16];
            snprintf(id, sizeof id, "q%d", (int)rnd((uint32_t)next_id));
            (void)sched_abort(s, id);
        }
        sched_update(s, st, sampled);
        /* Independently of sched_check: free-queue length + referenced blocks
         * == total, and no block is both free and referenced. */
        kv_cache_t *kv = sched_kv(s);
        int32_t order[64], referenced = 0;
        int32_t nfree = kv_cache_free_order(kv, order, 64);
        for (int32_t b = 0; b < c.num_blocks; b++) referenced += kv_cache_block_ref(kv, b) > 0;
        CHECK_EQ(nfree + referenced, c.num_blocks);
        for (int32_t k = 0; k < nfree && k < 64; k++) CHECK_EQ(kv_cache_block_ref(kv, order[k]), 0);
        /* ref_cnt == number of request tables holding the block. */
        int32_t held[48] = {0};
        for (int32_t slot = 0; slot < sched_max_requests(s); slot++) {
            const sched_req_t *r = sched_req(s, slot);
            for (int32_t j = 0; r && j < r->kv.num_blocks; j++) held[r->kv.blocks[j]]++;
        }
        for (int32_t b = 0; b < c.num_blocks; b++) CHECK_EQ(held[b], kv_cache_block_ref(kv, b));
        int rc = sched_check(s);
        if (rc) {
            fprintf(stderr, "seed %llu iter %d: sched_check = %d\n", (unsigned long long)seed, iter, rc);
            failures++;
            break;
        }
    }
    CHECK(steps_with_work > 1000);
    sched_stats_t ss;
    sched_get_stats(s, &ss);
    if (prefix) CHECK(ss.prefix.hits > 0);
    /* Abort everything: every block returns. */
    for (int i = 0; i < next_id; i++) {
        char id[16];
        snprintf(id, sizeof id, "q%d", i);
        (void)sched_abort(s, id);
    }
    CHECK_EQ(kv_cache_num_free(sched_kv(s)), c.num_blocks);
    CHECK_EQ(sched_check(s), 0);
    printf("  seed %llu policy %d thr %d prefix %d block %d: preemptions %llu, queries %llu, hits %llu\n",
           (unsigned long long)seed, (int)policy, threshold, (int)prefix, block_size,
           (unsigned long long)ss.num_preemptions,
           (unsigned long long)ss.prefix.queries, (unsigned long long)ss.prefix.hits);
    sched_destroy(&s);
}

static void test_random(void) {
    for (uint64_t seed = 1; seed <= 4; seed++) {
        random_run(seed, SCHED_POLICY_FCFS, 0, true, 4);
        random_run(seed, SCHED_POLICY_PRIORITY, 12, true, 4);
        random_run(seed, SCHED_POLICY_FCFS, 7, false, 4);
        random_run(seed, SCHED_POLICY_FCFS, 0, true, 6); /* block size not a power of two */
    }
}

int main(void) {
    static const test_entry_t tests[] = {
        {"sched_budget", test_sched_budget},
        {"sched_long_prefill", test_sched_long_prefill},
        {"sched_fcfs", test_sched_fcfs},
        {"sched_priority", test_sched_priority},
        {"sched_preempt", test_sched_preempt},
        {"sched_preempt_multi", test_sched_preempt_multi},
        {"sched_prefix_stats", test_sched_prefix_stats},
        {"sched_n_best", test_sched_n_best},
        {"sched_abort", test_sched_abort},
        {"sched_stops", test_sched_stops},
        {"sched_add_errors", test_sched_add_errors},
        {"random", test_random},
    };
    return run_tests(tests, sizeof tests / sizeof tests[0]);
}

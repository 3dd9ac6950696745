/* Unit tests for engine/kv_cache.h: hash chains, ref counts, eviction order,
 * usage, all-or-nothing allocation, prefix-hit caps, residency metrics.
 * ENGINE_TEST=<name> runs one test; expected values are derived by hand in
 * the comments next to them. */
#include "kv_cache.h"
#include "test_util.h"

// --- KV cache tests ------------------------------------------------------------

static kv_cache_t *kv_make(int32_t num_blocks, bool prefix) {
    kv_cache_t *kv = NULL;
    kv_cache_config_t c = {.num_blocks = num_blocks, .block_size = 16, .max_model_len = 1024,
                           .enable_prefix_caching = prefix};
    int rc = kv_cache_new(&c, &kv);
    CHECK_EQ(rc, 0);
    if (!kv) abort();
    return kv;
}

/* A request table with the hashes of tokens[0..n) computed. */
static void kv_req_make(kv_cache_t *kv, kv_req_t *r, const int32_t *tokens, int64_t n) {
    CHECK_EQ(kv_req_init(kv, r, 0), 0);
    kv_req_update_hashes(kv, r, tokens, n);
}

/* Lookup + allocate of a whole prompt, as the scheduler does for a new request. */
static int kv_admit(kv_cache_t *kv, kv_req_t *r, int64_t n, int64_t *hit) {
    int64_t h = kv_lookup(kv, r, n, false);
    if (hit) *hit = h;
    return kv_allocate_slots(kv, r, h, n - h, n);
}

static void test_kv_hash(void) {
    int32_t a[48], b[48];
    seq_tokens(a, 48, 100);
    memcpy(b, a, sizeof a);
    uint64_t h1 = kv_block_hash(KV_ROOT_HASH, a, 16, 0);
    CHECK(h1 == kv_block_hash(KV_ROOT_HASH, b, 16, 0));
    b[7] = 99999;
    CHECK(h1 != kv_block_hash(KV_ROOT_HASH, b, 16, 0));
    CHECK(h1 != kv_block_hash(KV_ROOT_HASH + 1, a, 16, 0)); /* parent matters */
    CHECK(h1 != kv_block_hash(KV_ROOT_HASH, a, 16, 1));     /* extra key matters */
    CHECK(h1 != kv_block_hash(KV_ROOT_HASH, a, 15, 0));     /* length matters */
    /* Swapping two tokens changes the hash (order matters). */
    memcpy(b, a, sizeof a);
    b[0] = a[1];
    b[1] = a[0];
    CHECK(h1 != kv_block_hash(KV_ROOT_HASH, b, 16, 0));

    /* Chains: same second block after different first blocks hash differently;
     * equal prefixes give equal chains. */
    kv_cache_t *kv = kv_make(8, true);
    kv_req_t ra, rb, rc;
    memcpy(b, a, sizeof a);
    b[3] = 5; /* first block differs, blocks 2..3 equal */
    kv_req_make(kv, &ra, a, 48);
    kv_req_make(kv, &rb, b, 48);
    int32_t c[48];
    memcpy(c, a, sizeof a);
    c[40] = 5; /* only the third block differs */
    kv_req_make(kv, &rc, c, 48);
    CHECK_EQ(ra.num_hashes, 3);
    CHECK(ra.hashes[1] != rb.hashes[1] && ra.hashes[2] != rb.hashes[2]);
    CHECK(ra.hashes[0] == rc.hashes[0] && ra.hashes[1] == rc.hashes[1] && ra.hashes[2] != rc.hashes[2]);
    /* Incremental hashing equals one-shot hashing. */
    kv_req_t rd;
    CHECK_EQ(kv_req_init(kv, &rd, 0), 0);
    for (int64_t n = 1; n <= 48; n++) kv_req_update_hashes(kv, &rd, a, n);
    CHECK_EQ(rd.num_hashes, 3);
    CHECK(rd.hashes[2] == ra.hashes[2]);
    /* Different cache salt (extra key): no shared hashes. */
    kv_req_t re;
    CHECK_EQ(kv_req_init(kv, &re, 42), 0);
    kv_req_update_hashes(kv, &re, a, 48);
    CHECK(re.hashes[0] != ra.hashes[0]);
    kv_req_release(&ra);
    kv_req_release(&rb);
    kv_req_release(&rc);
    kv_req_release(&rd);
    kv_req_release(&re);
    kv_cache_destroy(&kv);
    CHECK(kv == NULL);
}

static void test_kv_refcount(void) {
    /* A and B share a 48-token prefix; each has 64 tokens (4 blocks). */
    kv_cache_t *kv = kv_make(10, true);
    int32_t ta[64], tb[64];
    seq_tokens(ta, 64, 1);
    memcpy(tb, ta, sizeof ta);
    seq_tokens(tb + 48, 16, 5000);
    kv_req_t a, b;
    kv_req_make(kv, &a, ta, 64);
    kv_req_make(kv, &b, tb, 64);
    int64_t hit = -1;
    CHECK_EQ(kv_admit(kv, &a, 64, &hit), 0);
    CHECK_EQ(hit, 0);
    CHECK_EQ(kv_admit(kv, &b, 64, &hit), 0);
    CHECK_EQ(hit, 48);
    CHECK_EQ(b.num_blocks, 4);
    for (int i = 0; i < 3; i++) {
        CHECK_EQ(b.blocks[i], a.blocks[i]);
        CHECK_EQ(kv_cache_block_ref(kv, a.blocks[i]), 2);
    }
    CHECK(a.blocks[3] != b.blocks[3]);
    CHECK_EQ(kv_cache_block_ref(kv, a.blocks[3]), 1);
    CHECK_EQ(kv_cache_block_ref(kv, b.blocks[3]), 1);
    CHECK_EQ(kv_cache_num_free(kv), 10 - 5);
    CHECK_EQ(kv_cache_check(kv), 0);
    int32_t a3 = a.blocks[3], shared0 = a.blocks[0];
    kv_free(kv, &a);
    CHECK_EQ(kv_cache_block_ref(kv, shared0), 1);
    CHECK_EQ(kv_cache_block_ref(kv, a3), 0);
    CHECK_EQ(kv_cache_num_free(kv), 10 - 4);
    kv_free(kv, &b);
    CHECK_EQ(kv_cache_num_free(kv), 10);
    CHECK_EQ(kv_cache_check(kv), 0);
    kv_cache_stats_t st;
    kv_cache_get_stats(kv, &st);
    CHECK_EQ(st.queries, 128);
    CHECK_EQ(st.hits, 48);
    kv_req_release(&a);
    kv_req_release(&b);
    kv_cache_destroy(&kv);
}

static void check_order(kv_cache_t *kv, const int32_t *want, int32_t n, int line) {
    int32_t got[64];
    int32_t len = kv_cache_free_order(kv, got, 64);
    if (len != n) {
        fprintf(stderr, "%s:%d: free queue length %d, want %d\n", __FILE__, line, len, n);
        failures++;
        return;
    }
    for (int32_t i = 0; i < n; i++) {
        if (got[i] != want[i]) {
            fprintf(stderr, "%s:%d: free queue[%d] = %d, want %d\n", __FILE__, line, i, got[i], want[i]);
            failures++;
        }
    }
}

static void test_kv_evict_order(void) {
    kv_cache_t *kv = kv_make(8, true);
    int32_t ta[48], tc[96];
    seq_tokens(ta, 48, 1);
    seq_tokens(tc, 96, 7000);
    kv_req_t a, c;
    /* A takes blocks 0,1,2 (the queue head), 48 tokens all cached. */
    kv_req_make(kv, &a, ta, 48);
    CHECK_EQ(kv_admit(kv, &a, 48, NULL), 0);
    CHECK_EQ(a.blocks[0], 0);
    CHECK_EQ(a.blocks[2], 2);
    kv_free(kv, &a);
    /* Freed in reverse: the tail block 2 is appended first (evicted first). */
    const int32_t w1[] = {3, 4, 5, 6, 7, 2, 1, 0};
    check_order(kv, w1, 8, __LINE__);
    CHECK(kv_cache_block_is_cached(kv, 0) && kv_cache_block_is_cached(kv, 2));

    /* C needs 6 blocks: 3..7, then block 2, whose cached hash is evicted. */
    kv_req_make(kv, &c, tc, 96);
    CHECK_EQ(kv_admit(kv, &c, 96, NULL), 0);
    const int32_t w2[] = {1, 0};
    check_order(kv, w2, 2, __LINE__);
    CHECK(!kv_cache_block_is_cached(kv, 3) || c.blocks[0] == 3); /* C's own blocks are cached as C's */
    CHECK_EQ(c.blocks[5], 2);
    kv_cache_stats_t st;
    kv_cache_get_stats(kv, &st);
    CHECK_EQ(st.evictions, 1);

    /* A again: blocks 0 and 1 are still cached (32 tokens), block 2 is gone.
     * Touching them takes them out of the middle/ends of the queue. */
    kv_req_t a2;
    kv_req_make(kv, &a2, ta, 48);
    int64_t hit = kv_lookup(kv, &a2, 48, false);
    CHECK_EQ(hit, 32);
    CHECK_EQ(kv_allocate_slots(kv, &a2, hit, 0, 48), 0); /* only the hits, no new block */
    CHECK_EQ(kv_cache_num_free(kv), 0);
    CHECK_EQ(kv_cache_check(kv), 0);
    kv_free(kv, &c);
    /* C's 6 blocks come back in reverse: 2,7,6,5,4,3. */
    const int32_t w3[] = {2, 7, 6, 5, 4, 3};
    check_order(kv, w3, 6, __LINE__);
    /* LRU removal from the middle: D with C's first 32 tokens (+1) touches
     * blocks 3 and 4 only. */
    kv_req_t d;
    kv_req_make(kv, &d, tc, 33);
    hit = kv_lookup(kv, &d, 33, false);
    CHECK_EQ(hit, 32);
    CHECK_EQ(kv_allocate_slots(kv, &d, hit, 1, 33), 0); /* one fresh block: the head, 2 */
    const int32_t w4[] = {7, 6, 5};
    check_order(kv, w4, 3, __LINE__);
    CHECK_EQ(d.blocks[0], 3);
    CHECK_EQ(d.blocks[1], 4);
    CHECK_EQ(d.blocks[2], 2);
    CHECK_EQ(kv_cache_check(kv), 0);
    kv_free(kv, &a2);
    kv_free(kv, &d);
    CHECK_EQ(kv_cache_num_free(kv), 8);
    kv_req_release(&a);
    kv_req_release(&a2);
    kv_req_release(&c);
    kv_req_release(&d);
    kv_cache_destroy(&kv);
}

static void test_kv_usage(void) {
    kv_cache_t *kv = kv_make(10, true);
    CHECK_NEAR(kv_cache_usage(kv), 0.0);
    int32_t t[40];
    seq_tokens(t, 40, 1);
    kv_req_t a;
    kv_req_make(kv, &a, t, 40);
    CHECK_EQ(kv_admit(kv, &a, 40, NULL), 0); /* ceil(40/16) = 3 blocks */
    CHECK_NEAR(kv_cache_usage(kv), 1.0 - 7.0 / 10.0);
    CHECK_EQ(kv_allocate_slots(kv, &a, 40, 9, 49), 0); /* 49 tokens: 4 blocks */
    CHECK_NEAR(kv_cache_usage(kv), 1.0 - 6.0 / 10.0);
    kv_free(kv, &a);
    /* Cached but unreferenced blocks count as free, as in vLLM. */
    CHECK_NEAR(kv_cache_usage(kv), 0.0);
    kv_req_release(&a);
    kv_cache_destroy(&kv);
}

static void test_kv_alloc_fail(void) {
    kv_cache_t *kv = kv_make(4, true);
    int32_t ta[33], tb[49];
    seq_tokens(ta, 33, 1);
    memcpy(tb, ta, 32 * sizeof *tb);
    seq_tokens(tb + 32, 17, 9000);
    kv_req_t a, b, c;
    kv_req_make(kv, &a, ta, 33);
    CHECK_EQ(kv_admit(kv, &a, 33, NULL), 0); /* blocks 0,1,2 */
    kv_free(kv, &a);                         /* queue 3,2,1,0; 0 and 1 cached */
    int32_t tcx[16];
    seq_tokens(tcx, 16, 20000);
    kv_req_make(kv, &c, tcx, 16);
    CHECK_EQ(kv_admit(kv, &c, 16, NULL), 0); /* takes 3; queue 2,1,0 */
    CHECK_EQ(c.blocks[0], 3);

    /* B: 49 tokens, hits blocks 0,1 (32 tokens), needs 4 blocks: 2 fresh,
     * but only 3 free of which 2 are its own hits -> 1 available. */
    kv_req_make(kv, &b, tb, 49);
    int64_t hit = kv_lookup(kv, &b, 49, false);
    CHECK_EQ(hit, 32);
    int32_t before[8];
    int32_t nb = kv_cache_free_order(kv, before, 8);
    int rc = kv_allocate_slots(kv, &b, hit, 49 - hit, 49);
    CHECK_EQ(rc, KV_ENOSPC);
    CHECK_EQ(b.num_blocks, 0);
    CHECK_EQ(kv_cache_num_free(kv), 3);
    check_order(kv, before, nb, __LINE__);
    for (int32_t i = 0; i < 3; i++) CHECK_EQ(kv_cache_block_ref(kv, i), 0);
    CHECK(kv_cache_block_is_cached(kv, 0) && kv_cache_block_is_cached(kv, 1));
    CHECK_EQ(kv_cache_check(kv), 0);
    /* A plain request needing 4 blocks fails too; one needing 3 succeeds. */
    kv_req_t d;
    int32_t td[64];
    seq_tokens(td, 64, 30000);
    kv_req_make(kv, &d, td, 64);
    CHECK_EQ(kv_admit(kv, &d, 64, NULL), KV_ENOSPC);
    CHECK_EQ(kv_cache_num_free(kv), 3);
    CHECK_EQ(kv_admit(kv, &d, 48, NULL), 0);
    CHECK_EQ(kv_cache_num_free(kv), 0);
    /* Exceeding the table capacity is its own error. */
    CHECK_EQ(kv_allocate_slots(kv, &d, 48, 2000, 2048), KV_ETOOLONG);
    CHECK_EQ(d.num_blocks, 3);
    kv_free(kv, &b);
    kv_free(kv, &c);
    kv_free(kv, &d);
    CHECK_EQ(kv_cache_num_free(kv), 4);
    CHECK_EQ(kv_cache_check(kv), 0);
    kv_req_release(&a);
    kv_req_release(&b);
    kv_req_release(&c);
    kv_req_release(&d);
    kv_cache_destroy(&kv);
}

static void test_kv_never_whole(void) {
    kv_cache_t *kv = kv_make(16, true);
    int32_t t[33];
    seq_tokens(t, 33, 1);
    kv_req_t a, b, c;
    kv_req_make(kv, &a, t, 32);
    CHECK_EQ(kv_admit(kv, &a, 32, NULL), 0); /* both blocks cached */
    kv_req_make(kv, &b, t, 32);
    int64_t hit = -1;
    CHECK_EQ(kv_admit(kv, &b, 32, &hit), 0);
    CHECK_EQ(hit, 16); /* the last token is recomputed: 31 tokens -> 1 block */
    kv_req_make(kv, &c, t, 33);
    CHECK_EQ(kv_admit(kv, &c, 33, &hit), 0);
    CHECK_EQ(hit, 32);
    kv_cache_stats_t st;
    kv_cache_get_stats(kv, &st);
    CHECK_EQ(st.queries, 32 + 32 + 33);
    CHECK_EQ(st.hits, 0 + 16 + 32);
    /* A preempted request's lookup goes to the separate counters. */
    kv_free(kv, &c);
    hit = kv_lookup(kv, &c, 33, true);
    CHECK_EQ(hit, 32);
    kv_cache_get_stats(kv, &st);
    CHECK_EQ(st.queries, 97);
    CHECK_EQ(st.preempted_queries, 33);
    CHECK_EQ(st.preempted_hits, 32);
    /* One-token prompt: nothing to hit. */
    kv_req_t d;
    kv_req_make(kv, &d, t, 1);
    CHECK_EQ(kv_lookup(kv, &d, 1, false), 0);

    /* Reset refuses while blocks are referenced, works after. */
    CHECK_EQ(kv_cache_reset_prefix(kv), KV_EBUSY);
    CHECK(kv_cache_block_is_cached(kv, a.blocks[0]));
    kv_free(kv, &a);
    kv_free(kv, &b);
    c.num_staged = 0;
    CHECK_EQ(kv_cache_reset_prefix(kv), 0);
    CHECK_EQ(kv_lookup(kv, &c, 33, false), 0);
    CHECK_EQ(kv_cache_check(kv), 0);
    kv_req_release(&a);
    kv_req_release(&b);
    kv_req_release(&c);
    kv_req_release(&d);
    kv_cache_destroy(&kv);

    /* Prefix caching off: no hits, no counting. */
    kv = kv_make(16, false);
    kv_req_make(kv, &a, t, 33);
    kv_req_make(kv, &b, t, 33);
    CHECK_EQ(kv_admit(kv, &a, 33, NULL), 0);
    CHECK_EQ(kv_admit(kv, &b, 33, &hit), 0);
    CHECK_EQ(hit, 0);
    kv_cache_get_stats(kv, &st);
    CHECK_EQ(st.queries, 0);
    CHECK(!kv_cache_block_is_cached(kv, a.blocks[0]));
    kv_free(kv, &a);
    kv_free(kv, &b);
    kv_req_release(&a);
    kv_req_release(&b);
    kv_cache_destroy(&kv);
}

static int64_t fake_now;
static int64_t fake_clock(void *ctx) { return *(int64_t *)ctx; }
#define SEC 1000000000LL

/* Residency with rate 1 and a fake clock. Pool of 2 blocks; each 17-token
 * request holds block 0 (full, cached) and block 1 (partial). Requests at
 * t = 0, 2, 5, 7, 11, 12 each hit block 0 (except the first) and take block
 * 1 from the queue, ending block 1's previous life; then at t = 20 a
 * different 32-token request takes block 1 and block 0. */
static void test_kv_residency(void) {
    kv_cache_t *kv = NULL;
    kv_cache_config_t c = {.num_blocks = 2, .block_size = 16, .max_model_len = 64, .enable_prefix_caching = true,
                           .metrics_sample_rate = 1.0, .clock = fake_clock, .clock_ctx = &fake_now};
    CHECK_EQ(kv_cache_new(&c, &kv), 0);
    if (!kv) return;
    int32_t t[32];
    seq_tokens(t, 32, 1);
    const int64_t times[] = {0, 2, 5, 7, 11, 12};
    kv_residency_event_t ev[16];
    int32_t n = 0;
    for (int i = 0; i < 6; i++) {
        kv_req_t r;
        kv_req_make(kv, &r, t, 17);
        fake_now = times[i] * SEC;
        int64_t hit = -1;
        CHECK_EQ(kv_admit(kv, &r, 17, &hit), 0);
        CHECK_EQ(hit, i ? 16 : 0);
        CHECK_EQ(r.blocks[0], 0);
        CHECK_EQ(r.blocks[1], 1);
        fake_now += SEC / 2;
        kv_free(kv, &r);
        kv_req_release(&r);
        /* The buffer holds num_blocks (2) events: drain each step. */
        n += kv_cache_drain_residency(kv, ev + n, 16 - n);
    }
    kv_req_t d;
    int32_t td[32];
    seq_tokens(td, 32, 500);
    kv_req_make(kv, &d, td, 32);
    fake_now = 20 * SEC;
    CHECK_EQ(kv_admit(kv, &d, 32, NULL), 0);
    n += kv_cache_drain_residency(kv, ev + n, 16 - n);
    CHECK_EQ(n, 7);
    /* Block 1's lives: born 0,2,5,7,11,12, ended 2,5,7,11,12,20; never hit. */
    const double life1[] = {2, 3, 2, 4, 1, 8};
    for (int i = 0; i < 6 && i < n; i++) {
        CHECK_NEAR(ev[i].lifetime_s, life1[i]);
        CHECK_NEAR(ev[i].idle_s, life1[i]);
        CHECK_EQ(ev[i].num_reuse_gaps, 0);
    }
    /* Block 0: born 0, hit at 2,5,7,11,12 (the ring keeps 5,7,11,12). */
    if (n == 7) {
        CHECK_NEAR(ev[6].lifetime_s, 20);
        CHECK_NEAR(ev[6].idle_s, 8);
        CHECK_EQ(ev[6].num_reuse_gaps, 3);
        CHECK_NEAR(ev[6].reuse_gaps_s[0], 2);
        CHECK_NEAR(ev[6].reuse_gaps_s[1], 4);
        CHECK_NEAR(ev[6].reuse_gaps_s[2], 1);
    }
    CHECK_EQ(kv_cache_drain_residency(kv, ev, 16), 0);
    /* Undrained events beyond the buffer are counted as dropped: D's two
     * blocks and two more lives (E, then D again) end with nobody draining. */
    kv_free(kv, &d);
    for (int i = 0; i < 2; i++) {
        CHECK_EQ(kv_allocate_slots(kv, &d, 0, 32, 32), 0);
        kv_free(kv, &d);
    }
    kv_cache_stats_t st;
    kv_cache_get_stats(kv, &st);
    CHECK_EQ(st.residency_dropped, 2);
    CHECK_EQ(kv_cache_drain_residency(kv, ev, 16), 2);
    kv_req_release(&d);
    kv_cache_destroy(&kv);

    /* Sampling: 20000 hand-outs at rate 0.25 give about 5000 tracked lives
     * (binomial sd ~61); the buffer (1000 events) is drained as we go. */
    c = (kv_cache_config_t){.num_blocks = 1000, .block_size = 16, .max_model_len = 16,
                            .enable_prefix_caching = false, .metrics_sample_rate = 0.25, .metrics_seed = 7};
    CHECK_EQ(kv_cache_new(&c, &kv), 0);
    if (!kv) return;
    kv_req_t r;
    CHECK_EQ(kv_req_init(kv, &r, 0), 0);
    int64_t events = 0;
    for (int i = 0; i < 20000; i++) {
        CHECK_EQ(kv_allocate_slots(kv, &r, 0, 16, 16), 0);
        kv_free(kv, &r);
        events += kv_cache_drain_residency(kv, ev, 16);
    }
    /* Lives still open at the end are not events: at most 1000 blocks. */
    CHECK(events > 4500 && events < 5500);
    kv_cache_get_stats(kv, &st);
    CHECK_EQ(st.residency_dropped, 0);
    kv_req_release(&r);
    kv_cache_destroy(&kv);
}

int main(void) {
    static const test_entry_t tests[] = {
        {"kv_hash", test_kv_hash},
        {"kv_refcount", test_kv_refcount},
        {"kv_evict_order", test_kv_evict_order},
        {"kv_usage", test_kv_usage},
        {"kv_alloc_fail", test_kv_alloc_fail},
        {"kv_never_whole", test_kv_never_whole},
        {"kv_residency", test_kv_residency},
    };
    return run_tests(tests, sizeof tests / sizeof tests[0]);
}

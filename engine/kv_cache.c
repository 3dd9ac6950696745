/* kv_cache.c: block pool, LRU free queue, prefix-cache hash map, per-request
 * block tables (the contract is in kv_cache.h).
 *
 * Invariant a reader could break: a block is linked in the free queue exactly
 * when its ref_cnt is 0, and num_free counts the linked blocks. Every path
 * that changes ref_cnt across 0 must link or unlink the block in the same
 * place (take_block, kv_free, commit of staged hits).
 *
 * Memory: every array is allocated in kv_cache_new / kv_req_init. The map is
 * open addressing with linear probing and backward-shift deletion (no
 * tombstones, so lookups never degrade), sized to a power of two >= 2x the
 * block count; it can never fill because it holds at most one entry per
 * block.
 */
#include "kv_cache.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Only broken invariants abort (style C3). */
#define KV_ASSERT(x)                                                                    \
    do {                                                                                \
        if (!(x)) {                                                                     \
            fprintf(stderr, "%s:%d: KV invariant failed: %s\n", __FILE__, __LINE__, #x); \
            abort();                                                                    \
        }                                                                               \
    } while (0)

#define NIL (-1)

struct kv_cache {
    int32_t num_blocks;
    int32_t block_size;
    int32_t bs_shift;   /* log2(block_size) when a power of two, else -1 */
    int32_t max_blocks_per_req;
    bool prefix_caching;

    /* per block (num_blocks) */
    int32_t *ref_cnt;
    int32_t *prev;      /* free-queue links; NIL at the ends */
    int32_t *next;
    uint64_t *hash;     /* valid when cached[b] */
    uint8_t *cached;    /* registered in the map */
    uint8_t *in_free;   /* redundant with ref_cnt == 0; lets kv_cache_check cross-check */

    int32_t head, tail, num_free;

    /* hash -> block map */
    uint64_t *map_key;
    int32_t *map_val;   /* NIL = empty slot */
    uint64_t map_mask;
    int32_t map_count;

    kv_cache_stats_t stats;

    /* Residency metrics; res_* arrays are NULL when sampling is off. */
    double sample_rate;
    uint64_t rng;
    kv_clock_fn clock;
    void *clock_ctx;
    uint8_t *res_tracked;   /* (num_blocks) */
    int64_t *res_birth;     /* (num_blocks) */
    int64_t *res_last;      /* (num_blocks) */
    int64_t *res_hist;      /* (num_blocks, RES_HIST) ring of hit times */
    uint8_t *res_nhist;     /* (num_blocks) valid entries, <= RES_HIST */
    uint8_t *res_hpos;      /* (num_blocks) next ring position */
    kv_residency_event_t *ev;  /* (ev_cap) ring of pending events */
    int32_t ev_cap, ev_head, ev_len;
};

#define RES_HIST 4

/* x / block_size for x >= 0. The scheduler divides per request per step; a
 * shift is several times cheaper than a 64-bit divide. */
static inline int64_t div_bs(const kv_cache_t *kv, int64_t x) {
    return kv->bs_shift >= 0 ? x >> kv->bs_shift : x / kv->block_size;
}

const char *kv_strerror(int err) {
    switch (err) {
#define XX(name, val, msg) \
    case name:             \
        return msg;
        KV_ERRNO_MAP(XX)
#undef XX
    default:
        return err < 0 ? strerror(-err) : "success";
    }
}

// --- hashing -----------------------------------------------------------------

static inline uint64_t fmix64(uint64_t k) {
    k ^= k >> 33;
    k *= UINT64_C(0xff51afd7ed558ccd);
    k ^= k >> 33;
    k *= UINT64_C(0xc4ceb9fe1a85ec53);
    k ^= k >> 33;
    return k;
}

static inline uint64_t rotl64(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }

uint64_t kv_block_hash(uint64_t parent, const int32_t *tokens, int32_t n, uint64_t extra_key) {
    const uint64_t m1 = UINT64_C(0x9e3779b97f4a7c15), m2 = UINT64_C(0xbf58476d1ce4e5b9);
    /* The parent and extra key go through the finaliser first so that a
     * difference in either reaches every bit before the tokens are mixed. */
    uint64_t h = fmix64(parent ^ m1) ^ fmix64(extra_key + m2);
    int32_t i = 0;
    for (; i + 1 < n; i += 2) {
        uint64_t lane = (uint64_t)(uint32_t)tokens[i] | ((uint64_t)(uint32_t)tokens[i + 1] << 32);
        lane *= m2;
        lane = rotl64(lane, 31) * m1;
        h = rotl64(h ^ lane, 27) * m1 + UINT64_C(0x52dce729);
    }
    if (i < n) {
        uint64_t lane = ((uint64_t)(uint32_t)tokens[i] | (UINT64_C(1) << 63)) * m2;
        h = rotl64(h ^ rotl64(lane, 31) * m1, 27) * m1 + UINT64_C(0x52dce729);
    }
    return fmix64(h ^ (uint64_t)(uint32_t)n);
}

// --- hash map ----------------------------------------------------------------

static int32_t map_get(const kv_cache_t *kv, uint64_t key) {
    uint64_t i = key & kv->map_mask;
    for (;;) {
        int32_t v = kv->map_val[i];
        if (v == NIL) return NIL;
        if (kv->map_key[i] == key) return v;
        i = (i + 1) & kv->map_mask;
    }
}

/* Inserts key -> b unless key is present. Returns true if inserted. */
static bool map_put(kv_cache_t *kv, uint64_t key, int32_t b) {
    uint64_t i = key & kv->map_mask;
    while (kv->map_val[i] != NIL) {
        if (kv->map_key[i] == key) return false;
        i = (i + 1) & kv->map_mask;
    }
    kv->map_key[i] = key;
    kv->map_val[i] = b;
    kv->map_count++;
    return true;
}

static void map_del(kv_cache_t *kv, uint64_t key) {
    uint64_t i = key & kv->map_mask;
    while (kv->map_key[i] != key || kv->map_val[i] == NIL) {
        KV_ASSERT(kv->map_val[i] != NIL); /* a cached block must be in the map */
        i = (i + 1) & kv->map_mask;
    }
    /* Backward-shift: move later entries of the probe run into the hole when
     * the hole lies cyclically between their home slot and their position. */
    uint64_t j = i;
    for (;;) {
        j = (j + 1) & kv->map_mask;
        if (kv->map_val[j] == NIL) break;
        uint64_t home = kv->map_key[j] & kv->map_mask;
        bool movable = (i <= j) ? (home <= i || home > j) : (home <= i && home > j);
        if (movable) {
            kv->map_key[i] = kv->map_key[j];
            kv->map_val[i] = kv->map_val[j];
            i = j;
        }
    }
    kv->map_val[i] = NIL;
    kv->map_count--;
}

// --- free queue --------------------------------------------------------------

static void fq_unlink(kv_cache_t *kv, int32_t b) {
    KV_ASSERT(kv->in_free[b]);
    int32_t p = kv->prev[b], n = kv->next[b];
    if (p != NIL) kv->next[p] = n; else kv->head = n;
    if (n != NIL) kv->prev[n] = p; else kv->tail = p;
    kv->prev[b] = kv->next[b] = NIL;
    kv->in_free[b] = 0;
    kv->num_free--;
}

static void fq_append(kv_cache_t *kv, int32_t b) {
    KV_ASSERT(!kv->in_free[b] && kv->ref_cnt[b] == 0);
    kv->prev[b] = kv->tail;
    kv->next[b] = NIL;
    if (kv->tail != NIL) kv->next[kv->tail] = b; else kv->head = b;
    kv->tail = b;
    kv->in_free[b] = 1;
    kv->num_free++;
}

// --- residency metrics -------------------------------------------------------

static int64_t mono_ns(void *ctx) {
    (void)ctx;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* xorshift64* -> uniform double in [0, 1). */
static double rng_uniform(kv_cache_t *kv) {
    kv->rng ^= kv->rng >> 12;
    kv->rng ^= kv->rng << 25;
    kv->rng ^= kv->rng >> 27;
    return (double)((kv->rng * UINT64_C(0x2545f4914f6cdd1d)) >> 11) * 0x1.0p-53;
}

static void res_record_access(kv_cache_t *kv, int32_t b) {
    if (!kv->res_tracked || !kv->res_tracked[b]) return;
    int64_t now = kv->clock(kv->clock_ctx);
    kv->res_last[b] = now;
    kv->res_hist[(size_t)b * RES_HIST + kv->res_hpos[b]] = now;
    kv->res_hpos[b] = (uint8_t)((kv->res_hpos[b] + 1) % RES_HIST);
    if (kv->res_nhist[b] < RES_HIST) kv->res_nhist[b]++;
}

/* Block b leaves the free queue for a new owner: a tracked block's residency
 * ends here (event), then the new life is sampled. */
static void res_on_take(kv_cache_t *kv, int32_t b) {
    if (!kv->res_tracked) return;
    if (kv->res_tracked[b]) {
        int64_t now = kv->clock(kv->clock_ctx);
        kv_residency_event_t e = {
            .lifetime_s = (double)(now - kv->res_birth[b]) * 1e-9,
            .idle_s = (double)(now - kv->res_last[b]) * 1e-9,
        };
        int32_t n = kv->res_nhist[b];
        /* Oldest of the n valid ring entries is at hpos - n. */
        for (int32_t k = 1; k < n; k++) {
            int64_t t1 = kv->res_hist[(size_t)b * RES_HIST + (size_t)((kv->res_hpos[b] - n + k + RES_HIST) % RES_HIST)];
            int64_t t0 = kv->res_hist[(size_t)b * RES_HIST + (size_t)((kv->res_hpos[b] - n + k - 1 + RES_HIST) % RES_HIST)];
            e.reuse_gaps_s[e.num_reuse_gaps++] = (double)(t1 - t0) * 1e-9;
        }
        if (kv->ev_len < kv->ev_cap) {
            kv->ev[(kv->ev_head + kv->ev_len) % kv->ev_cap] = e;
            kv->ev_len++;
        } else {
            kv->stats.residency_dropped++;
        }
        kv->res_tracked[b] = 0;
    }
    if (rng_uniform(kv) < kv->sample_rate) {
        int64_t now = kv->clock(kv->clock_ctx);
        kv->res_tracked[b] = 1;
        kv->res_birth[b] = kv->res_last[b] = now;
        kv->res_nhist[b] = 0;
        kv->res_hpos[b] = 0;
    }
}

int32_t kv_cache_drain_residency(kv_cache_t *kv, kv_residency_event_t *out, int32_t cap) {
    int32_t n = 0;
    while (n < cap && kv->ev_len > 0) {
        out[n++] = kv->ev[kv->ev_head];
        kv->ev_head = (kv->ev_head + 1) % kv->ev_cap;
        kv->ev_len--;
    }
    return n;
}

static void uncache(kv_cache_t *kv, int32_t b) {
    map_del(kv, kv->hash[b]);
    kv->cached[b] = 0;
    kv->stats.evictions++;
}

/* Pops the LRU block, evicting it from the map if cached, and references it. */
static int32_t take_block(kv_cache_t *kv) {
    int32_t b = kv->head;
    KV_ASSERT(b != NIL);
    fq_unlink(kv, b);
    if (kv->cached[b]) uncache(kv, b);
    res_on_take(kv, b);
    kv->ref_cnt[b] = 1;
    return b;
}

// --- cache lifecycle ---------------------------------------------------------

int kv_cache_new(const kv_cache_config_t *cfg, kv_cache_t **out) {
    *out = NULL;
    int32_t bs = cfg->block_size ? cfg->block_size : 16;
    if (cfg->num_blocks <= 0 || bs <= 0 || cfg->max_model_len <= 0) return KV_EINVAL;
    if (!(cfg->metrics_sample_rate >= 0.0 && cfg->metrics_sample_rate <= 1.0)) return KV_EINVAL;
    int64_t per_req = (cfg->max_model_len + bs - 1) / bs;
    if (per_req > INT32_MAX / 2 || cfg->num_blocks > INT32_MAX / 4) return KV_EINVAL;

    kv_cache_t *kv = calloc(1, sizeof *kv);
    if (!kv) return -ENOMEM;
    size_t n = (size_t)cfg->num_blocks;
    uint64_t cap = 16;
    while (cap < 2 * (uint64_t)n) cap <<= 1;
    kv->ref_cnt = calloc(n, sizeof *kv->ref_cnt);
    kv->prev = malloc(n * sizeof *kv->prev);
    kv->next = malloc(n * sizeof *kv->next);
    kv->hash = calloc(n, sizeof *kv->hash);
    kv->cached = calloc(n, 1);
    kv->in_free = calloc(n, 1);
    kv->map_key = calloc(cap, sizeof *kv->map_key);
    kv->map_val = malloc(cap * sizeof *kv->map_val);
    if (!kv->ref_cnt || !kv->prev || !kv->next || !kv->hash || !kv->cached || !kv->in_free || !kv->map_key ||
        !kv->map_val) {
        kv_cache_destroy(&kv);
        return -ENOMEM;
    }
    if (cfg->metrics_sample_rate > 0.0) {
        kv->ev_cap = cfg->num_blocks < 65536 ? cfg->num_blocks : 65536;
        kv->res_tracked = calloc(n, 1);
        kv->res_birth = calloc(n, sizeof *kv->res_birth);
        kv->res_last = calloc(n, sizeof *kv->res_last);
        kv->res_hist = calloc(n * RES_HIST, sizeof *kv->res_hist);
        kv->res_nhist = calloc(n, 1);
        kv->res_hpos = calloc(n, 1);
        kv->ev = calloc((size_t)kv->ev_cap, sizeof *kv->ev);
        if (!kv->res_tracked || !kv->res_birth || !kv->res_last || !kv->res_hist || !kv->res_nhist ||
            !kv->res_hpos || !kv->ev) {
            kv_cache_destroy(&kv);
            return -ENOMEM;
        }
    }
    kv->sample_rate = cfg->metrics_sample_rate;
    kv->rng = cfg->metrics_seed ? cfg->metrics_seed : UINT64_C(0x853c49e6748fea9b);
    kv->clock = cfg->clock ? cfg->clock : mono_ns;
    kv->clock_ctx = cfg->clock_ctx;
    for (uint64_t i = 0; i < cap; i++) kv->map_val[i] = NIL;
    kv->map_mask = cap - 1;
    kv->num_blocks = cfg->num_blocks;
    kv->block_size = bs;
    kv->bs_shift = -1;
    for (int32_t sh = 0; sh < 31; sh++)
        if ((INT32_C(1) << sh) == bs) kv->bs_shift = sh;
    kv->max_blocks_per_req = (int32_t)per_req;
    kv->prefix_caching = cfg->enable_prefix_caching;
    kv->head = kv->tail = NIL;
    for (int32_t b = 0; b < kv->num_blocks; b++) {
        kv->prev[b] = kv->next[b] = NIL;
        fq_append(kv, b);
    }
    *out = kv;
    return 0;
}

void kv_cache_destroy(kv_cache_t **pkv) {
    kv_cache_t *kv = pkv ? *pkv : NULL;
    if (!kv) return;
    free(kv->ref_cnt);
    free(kv->prev);
    free(kv->next);
    free(kv->hash);
    free(kv->cached);
    free(kv->in_free);
    free(kv->map_key);
    free(kv->map_val);
    free(kv->res_tracked);
    free(kv->res_birth);
    free(kv->res_last);
    free(kv->res_hist);
    free(kv->res_nhist);
    free(kv->res_hpos);
    free(kv->ev);
    free(kv);
    *pkv = NULL;
}

int32_t kv_cache_block_size(const kv_cache_t *kv) { return kv->block_size; }
int32_t kv_cache_num_blocks(const kv_cache_t *kv) { return kv->num_blocks; }
int32_t kv_cache_num_free(const kv_cache_t *kv) { return kv->num_free; }
int32_t kv_cache_max_blocks_per_req(const kv_cache_t *kv) { return kv->max_blocks_per_req; }

double kv_cache_usage(const kv_cache_t *kv) {
    if (kv->num_blocks <= 0) return 0.0;
    return 1.0 - (double)kv->num_free / (double)kv->num_blocks;
}

void kv_cache_get_stats(const kv_cache_t *kv, kv_cache_stats_t *out) { *out = kv->stats; }

int kv_cache_reset_prefix(kv_cache_t *kv) {
    if (kv->num_free != kv->num_blocks) return KV_EBUSY;
    for (int32_t b = 0; b < kv->num_blocks; b++) kv->cached[b] = 0;
    for (uint64_t i = 0; i <= kv->map_mask; i++) kv->map_val[i] = NIL;
    kv->map_count = 0;
    if (kv->res_tracked) {
        memset(kv->res_tracked, 0, (size_t)kv->num_blocks);
        kv->ev_head = kv->ev_len = 0;
    }
    return 0;
}

int32_t kv_cache_block_ref(const kv_cache_t *kv, int32_t b) { return kv->ref_cnt[b]; }
bool kv_cache_block_is_cached(const kv_cache_t *kv, int32_t b) { return kv->cached[b] != 0; }

int32_t kv_cache_free_order(const kv_cache_t *kv, int32_t *out, int32_t cap) {
    int32_t n = 0;
    for (int32_t b = kv->head; b != NIL; b = kv->next[b]) {
        if (n < cap) out[n] = b;
        n++;
    }
    return n;
}

#define CHECK_OR_FAIL(x) \
    do {                 \
        if (!(x)) return -__LINE__; \
    } while (0)

int kv_cache_check(const kv_cache_t *kv) {
    int32_t n = 0, prev = NIL;
    for (int32_t b = kv->head; b != NIL; b = kv->next[b]) {
        CHECK_OR_FAIL(b >= 0 && b < kv->num_blocks);
        CHECK_OR_FAIL(kv->in_free[b] && kv->ref_cnt[b] == 0);
        CHECK_OR_FAIL(kv->prev[b] == prev);
        prev = b;
        CHECK_OR_FAIL(++n <= kv->num_blocks); /* no cycle */
    }
    CHECK_OR_FAIL(kv->tail == prev);
    CHECK_OR_FAIL(n == kv->num_free);
    int32_t referenced = 0, cached = 0;
    for (int32_t b = 0; b < kv->num_blocks; b++) {
        CHECK_OR_FAIL(kv->ref_cnt[b] >= 0);
        CHECK_OR_FAIL((kv->ref_cnt[b] == 0) == (kv->in_free[b] != 0));
        if (kv->ref_cnt[b] > 0) referenced++;
        if (kv->cached[b]) {
            cached++;
            CHECK_OR_FAIL(map_get(kv, kv->hash[b]) == b);
        }
    }
    CHECK_OR_FAIL(referenced + kv->num_free == kv->num_blocks);
    CHECK_OR_FAIL(cached == kv->map_count);
    for (uint64_t i = 0; i <= kv->map_mask; i++) {
        int32_t b = kv->map_val[i];
        if (b == NIL) continue;
        CHECK_OR_FAIL(b >= 0 && b < kv->num_blocks && kv->cached[b] && kv->hash[b] == kv->map_key[i]);
    }
    return 0;
}

// --- request tables ------------------------------------------------------------

int kv_req_init(kv_cache_t *kv, kv_req_t *r, uint64_t extra_key) {
    memset(r, 0, sizeof *r);
    r->capacity = kv->max_blocks_per_req;
    r->blocks = malloc((size_t)r->capacity * sizeof *r->blocks);
    r->hashes = malloc((size_t)r->capacity * sizeof *r->hashes);
    if (!r->blocks || !r->hashes) {
        kv_req_release(r);
        return -ENOMEM;
    }
    r->extra_key = extra_key;
    return 0;
}

void kv_req_release(kv_req_t *r) {
    KV_ASSERT(r->num_blocks == 0);
    free(r->blocks);
    free(r->hashes);
    memset(r, 0, sizeof *r);
}

void kv_req_update_hashes(const kv_cache_t *kv, kv_req_t *r, const int32_t *tokens, int64_t num_tokens) {
    int64_t full = div_bs(kv, num_tokens);
    if (full > r->capacity) full = r->capacity;
    while (r->num_hashes < full) {
        int32_t i = r->num_hashes;
        uint64_t parent = i ? r->hashes[i - 1] : KV_ROOT_HASH;
        r->hashes[i] = kv_block_hash(parent, tokens + (int64_t)i * kv->block_size, kv->block_size, r->extra_key);
        r->num_hashes = i + 1;
    }
}

int64_t kv_lookup(kv_cache_t *kv, kv_req_t *r, int64_t num_tokens, bool was_preempted) {
    KV_ASSERT(r->num_blocks == 0);
    r->num_staged = 0;
    if (!kv->prefix_caching) return 0;
    int64_t max_hit = num_tokens > 0 ? div_bs(kv, num_tokens - 1) : 0;
    if (max_hit > r->num_hashes) max_hit = r->num_hashes;
    int32_t n = 0;
    while (n < max_hit) {
        int32_t b = map_get(kv, r->hashes[n]);
        if (b == NIL) break;
        r->blocks[n++] = b;
    }
    r->num_staged = n;
    int64_t hit_tokens = (int64_t)n * kv->block_size;
    if (was_preempted) {
        kv->stats.preempted_queries += (uint64_t)num_tokens;
        kv->stats.preempted_hits += (uint64_t)hit_tokens;
    } else {
        kv->stats.queries += (uint64_t)num_tokens;
        kv->stats.hits += (uint64_t)hit_tokens;
    }
    return hit_tokens;
}

int kv_allocate_slots(kv_cache_t *kv, kv_req_t *r, int64_t num_computed, int64_t num_new, int64_t num_known) {
    KV_ASSERT(r->num_staged == 0 || r->num_blocks == 0);
    KV_ASSERT(num_computed >= 0 && num_new >= 0);
    int64_t total = num_computed + num_new;
    int64_t need = div_bs(kv, total + kv->block_size - 1);
    if (need > r->capacity) return KV_ETOOLONG;
    int64_t have = r->num_blocks + r->num_staged;
    int64_t fresh = need > have ? need - have : 0;
    /* Staged hits that sit in the free queue leave it when taken, so they are
     * not available for the fresh blocks (vLLM's evictable computed blocks). */
    int32_t staged_free = 0;
    for (int32_t i = 0; i < r->num_staged; i++)
        if (kv->ref_cnt[r->blocks[i]] == 0) staged_free++;
    if (fresh > (int64_t)kv->num_free - staged_free) return KV_ENOSPC;

    for (int32_t i = 0; i < r->num_staged; i++) {
        int32_t b = r->blocks[i];
        if (kv->ref_cnt[b] == 0) fq_unlink(kv, b);
        kv->ref_cnt[b]++;
        res_record_access(kv, b);
    }
    if (r->num_staged) {
        r->num_blocks = r->num_staged;
        r->num_cached = r->num_staged; /* already in the map */
        r->num_staged = 0;
    }
    for (int64_t i = 0; i < fresh; i++) r->blocks[r->num_blocks++] = take_block(kv);

    if (!kv->prefix_caching) return 0;
    int64_t cache_upto = div_bs(kv, total < num_known ? total : num_known);
    if (cache_upto > r->num_hashes) cache_upto = r->num_hashes;
    while (r->num_cached < cache_upto) {
        int32_t i = r->num_cached, b = r->blocks[i];
        /* One block per hash: a duplicate (same content computed twice, as
         * vLLM's append-only tables allow) stays uncached and is simply
         * reused as a plain block once free. */
        if (!kv->cached[b] && map_put(kv, r->hashes[i], b)) {
            kv->hash[b] = r->hashes[i];
            kv->cached[b] = 1;
        }
        r->num_cached = i + 1;
    }
    return 0;
}

void kv_free(kv_cache_t *kv, kv_req_t *r) {
    for (int32_t i = r->num_blocks - 1; i >= 0; i--) {
        int32_t b = r->blocks[i];
        KV_ASSERT(kv->ref_cnt[b] > 0);
        if (--kv->ref_cnt[b] == 0) fq_append(kv, b);
    }
    r->num_blocks = 0;
    r->num_cached = 0;
    r->num_staged = 0;
}

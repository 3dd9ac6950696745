/* kv: the paged KV block manager (vLLM V1 KVCacheManager + BlockPool).
 *
 * The pool has num_blocks blocks of block_size token slots each. Blocks are
 * indices 0..num_blocks-1; the KV memory itself belongs to the model runner,
 * which addresses it by these indices. All metadata is allocated once in
 * kv_cache_new; per-request block tables are allocated in kv_req_init (when a
 * request is added) with a fixed capacity of ceil(max_model_len/block_size).
 * Nothing on the step path (lookup, allocate, free, hash update) allocates.
 *
 * Prefix caching: a full block is identified by the hash chain
 *   h_i = H(h_{i-1}, tokens of block i, extra_key),  h_{-1} = KV_ROOT_HASH
 * (see kv_block_hash). Cached blocks stay in the hash map while their
 * ref_cnt is 0 and they sit in the free queue; they are evicted (removed from
 * the map) only when the free queue hands them out again. The free queue is
 * LRU: allocation pops the head, freeing appends to the tail, and a request's
 * blocks are freed in reverse order so its tail blocks are evicted first.
 *
 * Invariants (checked by kv_cache_check):
 *   - a block is in the free queue  <=>  its ref_cnt is 0;
 *   - ref_cnt(b) == the number of request tables that hold b;
 *   - a block is in the hash map under h  <=>  it is marked cached with h;
 *     the map holds at most one block per hash.
 *
 * Not thread-safe: one scheduler thread owns a kv_cache_t.
 */
#ifndef CVLLM_ENGINE_KV_CACHE_H
#define CVLLM_ENGINE_KV_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* --- errors ---------------------------------------------------------------- */

#define KV_ERRNO_MAP(XX)                                                          \
    XX(KV_ENOSPC, -5501, "not enough free KV blocks")                             \
    XX(KV_ETOOLONG, -5502, "request needs more blocks than max_model_len allows") \
    XX(KV_EBUSY, -5503, "KV blocks are still referenced")                         \
    XX(KV_EINVAL, -5504, "invalid KV cache configuration")

enum {
#define XX(name, val, msg) name = (val),
    KV_ERRNO_MAP(XX)
#undef XX
};

/* Message for a KV_E* code or a negative errno. Borrowed; static storage. */
const char *kv_strerror(int err);

/* --- hashing ---------------------------------------------------------------- */

/* Parent hash of a request's first block (vLLM's NONE_HASH). Fixed, so hashes
 * are reproducible across processes and restarts. */
#define KV_ROOT_HASH UINT64_C(0x6a09e667f3bcc908)

/* Hash of one full block: H(parent, tokens[0..n), extra_key). A 64-bit hash
 * of our own design (multiply-xorshift mixing of 64-bit lanes, two token ids
 * per lane, with the splitmix64/murmur3 finaliser), chosen for speed and good
 * avalanche, not for resistance to adversarial inputs. Lookups trust the
 * 64-bit value alone (as vLLM's 64-bit sha256_cbor mode does): with N cached
 * blocks a false hit has probability about N^2/2^65 (1e-8 for a million
 * blocks). extra_key separates otherwise equal token blocks (LoRA id, cache
 * salt); 0 means none. Pure function. */
uint64_t kv_block_hash(uint64_t parent, const int32_t *tokens, int32_t n, uint64_t extra_key);

/* --- cache ---------------------------------------------------------------- */

typedef struct kv_cache kv_cache_t;

/* Monotonic clock in nanoseconds (residency metrics). ctx is the config's
 * clock_ctx. */
typedef int64_t (*kv_clock_fn)(void *ctx);

typedef struct {
    int32_t num_blocks;          /* > 0: usable blocks in the pool */
    int32_t block_size;          /* > 0 tokens per block; 0 means 16 */
    int64_t max_model_len;       /* > 0: sizes each request's block table */
    bool enable_prefix_caching;  /* vLLM default: true */
    /* Block residency metrics (vLLM --kv-cache-metrics with
     * --kv-cache-metrics-sample): 0 = off, else a rate in (0, 1]. Each block
     * handed out by the free queue is sampled with this probability; a
     * sampled block records its birth, its last access and the times of its
     * last 4 prefix hits, and yields one kv_residency_event_t when it is
     * handed out again (vLLM calls that eviction, cached or not). */
    double metrics_sample_rate;
    uint64_t metrics_seed;       /* sampling PRNG seed */
    kv_clock_fn clock;           /* NULL: CLOCK_MONOTONIC */
    void *clock_ctx;
} kv_cache_config_t;

/* One sampled block's residency, produced at its eviction. Feeds
 * vllm:kv_block_lifetime_seconds (lifetime_s), _idle_before_evict_seconds
 * (idle_s) and _reuse_gap_seconds (each of reuse_gaps_s). */
typedef struct {
    double lifetime_s;           /* eviction - birth */
    double idle_s;               /* eviction - last access (birth if never hit) */
    double reuse_gaps_s[3];      /* consecutive gaps of the last <= 4 hits */
    int32_t num_reuse_gaps;      /* 0..3 */
} kv_residency_event_t;

/* Cumulative counters, in tokens. vLLM tallies lookups of requests that were
 * preempted before in separate fields that it does not export; so do we. */
typedef struct {
    uint64_t queries;            /* prompt (all known) tokens of looked-up requests */
    uint64_t hits;               /* cached tokens found for them */
    uint64_t preempted_queries;
    uint64_t preempted_hits;
    uint64_t evictions;          /* cached blocks dropped from the map on reuse */
    uint64_t residency_dropped;  /* residency events lost to a full buffer */
} kv_cache_stats_t;

/* Creates the pool (all blocks free, nothing cached).
 * Returns 0 and sets *out (caller owns it; free with kv_cache_destroy),
 * KV_EINVAL for a bad configuration, or -ENOMEM. */
int kv_cache_new(const kv_cache_config_t *cfg, kv_cache_t **out);

/* Frees the pool and sets *kv to NULL. Request tables initialised against it
 * must be released with kv_req_release first. NULL-safe. */
void kv_cache_destroy(kv_cache_t **kv);

int32_t kv_cache_block_size(const kv_cache_t *kv);
int32_t kv_cache_num_blocks(const kv_cache_t *kv);
/* Blocks in the free queue (ref_cnt 0), cached or not. */
int32_t kv_cache_num_free(const kv_cache_t *kv);
/* Blocks a request table may hold: ceil(max_model_len / block_size). */
int32_t kv_cache_max_blocks_per_req(const kv_cache_t *kv);
/* 1 - free/total, vLLM's BlockPool.get_usage. vLLM reserves one extra "null"
 * block outside the count it divides by; our pool has none, so a pool of
 * num_blocks here reads the same as vLLM's num_gpu_blocks = num_blocks + 1. */
double kv_cache_usage(const kv_cache_t *kv);
void kv_cache_get_stats(const kv_cache_t *kv, kv_cache_stats_t *out);

/* Moves up to cap pending residency events (oldest first) to out and
 * returns how many. The buffer holds min(num_blocks, 65536) events; drain it
 * every step (vLLM drains in make_stats). 0 when metrics are off. */
int32_t kv_cache_drain_residency(kv_cache_t *kv, kv_residency_event_t *out, int32_t cap);

/* Drops every cached hash (vLLM reset_prefix_cache), and the residency
 * tracking state and pending events, as vLLM's collector reset does. Only possible when no
 * block is referenced: returns 0, or KV_EBUSY and changes nothing. */
int kv_cache_reset_prefix(kv_cache_t *kv);

/* Reference count of block b (0 <= b < num_blocks). For tests and checks. */
int32_t kv_cache_block_ref(const kv_cache_t *kv, int32_t b);
/* Whether block b is currently in the hash map. */
bool kv_cache_block_is_cached(const kv_cache_t *kv, int32_t b);
/* Block ids of the free queue from head (next to be allocated) to tail;
 * writes at most cap ids and returns the queue length. */
int32_t kv_cache_free_order(const kv_cache_t *kv, int32_t *out, int32_t cap);
/* Verifies the internal invariants listed at the top of this header (except
 * the table count, which needs the tables: see the engine tests). Returns 0,
 * or a negative line number of the first failed check. O(num_blocks). */
int kv_cache_check(const kv_cache_t *kv);

/* --- per-request block tables ---------------------------------------------- */

/* Embedded in the scheduler's request. Fields are read-only for callers. */
typedef struct {
    int32_t *blocks;          /* (capacity) block ids; [0, num_blocks) valid */
    uint64_t *hashes;         /* (capacity) hash of each full block of the token sequence */
    int32_t capacity;
    int32_t num_blocks;
    int32_t num_hashes;       /* full blocks of the known token sequence */
    int32_t num_cached;       /* leading table blocks already offered to the map */
    int32_t num_staged;       /* prefix hits found by kv_lookup, not yet owned */
    uint64_t extra_key;
} kv_req_t;

/* Allocates r's table and hash arrays (the only allocation per request).
 * Returns 0 or -ENOMEM (r is then zeroed). */
int kv_req_init(kv_cache_t *kv, kv_req_t *r, uint64_t extra_key);

/* Releases r's arrays. r must hold no blocks (kv_free first). NULL-safe
 * arrays; r is zeroed. */
void kv_req_release(kv_req_t *r);

/* Extends r's block hashes to cover every full block of tokens[0..num_tokens).
 * tokens must extend the sequence previously passed (append-only). No
 * allocation. */
void kv_req_update_hashes(const kv_cache_t *kv, kv_req_t *r, const int32_t *tokens, int64_t num_tokens);

/* Prefix lookup for a request holding no blocks (new or preempted): finds the
 * longest chain of cached blocks matching r's hashes, limited to
 * num_tokens - 1 tokens (the last token is always recomputed, vLLM's
 * max_cache_hit_length) and stages them in r (not yet referenced). Counts
 * queries += num_tokens and hits += result, in the preempted_* fields when
 * was_preempted. With prefix caching disabled returns 0 and counts nothing.
 * Returns the number of cached tokens (a multiple of block_size).
 * The staged hits are valid only until the next allocation or free on kv:
 * call kv_allocate_slots for r right after. */
int64_t kv_lookup(kv_cache_t *kv, kv_req_t *r, int64_t num_tokens, bool was_preempted);

/* Makes r's table cover num_computed + num_new tokens: first takes the staged
 * prefix hits (ref_cnt++, removed from the free queue if unreferenced), then
 * pops new blocks from the free-queue head, evicting cached ones from the
 * map. Then offers r's newly full blocks whose hash is known and whose tokens
 * are < num_known (the request's token count) to the map: vLLM caches blocks
 * when they are scheduled, so the runner must write a step's KV before any
 * attention of that step reads it (true of layer-by-layer batched forwards).
 * num_computed counts the staged hit tokens.
 * Returns 0; KV_ENOSPC if fewer blocks are free than needed (staged hits
 * with ref_cnt 0 count as used) and KV_ETOOLONG if the table would exceed its
 * capacity; on error nothing changed (staged hits are kept). */
int kv_allocate_slots(kv_cache_t *kv, kv_req_t *r, int64_t num_computed, int64_t num_new, int64_t num_known);

/* Releases all of r's blocks (ref_cnt--), appending those that drop to 0 to
 * the free-queue tail in reverse table order. Cached blocks stay cached.
 * Also drops staged hits. r's hashes are kept (the tokens did not change). */
void kv_free(kv_cache_t *kv, kv_req_t *r);

#ifdef __cplusplus
}
#endif

#endif /* CVLLM_ENGINE_KV_CACHE_H */

/* Wire format: round trips of every message type, and malformed frames
 * (every truncation, every single-byte corruption of a valid frame, wrong
 * version, trailing bytes) are rejected without reading out of bounds. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../check.h"
#include "wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);


static int str_is(wire_str_t s, const char *t) { return s.n == strlen(t) && !memcmp(s.p, t, s.n); }

static void build_add(wire_buf_t *b) {
    static const uint32_t prompt[] = {1, 2, 3, 70000, 4294967295u};
    static const uint32_t stops[] = {2, 7};
    static const uint32_t bias_ids[] = {5, 9};
    static const float bias_v[] = {-100.f, 2.5f};
    wire_add_t a = {.id = {"cmpl-abc-0", 10}, .prompt = {prompt, 5}, .arrival_time = 12345.678, .client_index = 3,
                    .priority = -2};
    a.sp = (wire_sampling_t){.temperature = 0.7f, .top_p = 0.9f, .min_p = 0.05f, .top_k = 40,
                             .presence_penalty = 0.5f, .frequency_penalty = -0.25f, .repetition_penalty = 1.1f,
                             .seed = 0xfedcba9876543210ull, .has_seed = 1, .ignore_eos = 0, .detect_nan = 1,
                             .max_tokens = 16, .min_tokens = 2, .logprobs = 5, .prompt_logprobs = -1,
                             .stop_token_ids = {stops, 2}, .logit_bias_ids = {bias_ids, 2}, .logit_bias_values = bias_v};
    CHECK(wire_encode_add(b, &a) == 0);
}

static void build_outputs(wire_buf_t *b) {
    size_t mark;
    CHECK(wire_outputs_begin(b, 1, 99.5, 7, 3, &mark) == 0);
    static const uint32_t t1[] = {42}, lp_ids[] = {42, 43, 44};
    static const float lp_v[] = {-0.1f, -2.f, -3.f};
    wire_output_t o = {.id = {"r1", 2}, .new_tokens = {t1, 1}, .n_lp_per_token = 3, .lp_ids = {lp_ids, 3},
                       .lp_values = lp_v, .finish = WIRE_FINISH_NONE, .stop_token = -1, .num_cached_tokens = 32,
                       .t_queued = 1.0, .t_scheduled = 1.5, .t_first_token = 2.0, .t_last_token = 2.0};
    CHECK(wire_outputs_add(b, &o) == 0);
    static const uint32_t t2[] = {7, 8};
    wire_output_t o2 = {.id = {"r2", 2}, .new_tokens = {t2, 2}, .finish = WIRE_FINISH_STOP, .stop_token = 2,
                        .nan_logits = 1, .num_preemptions = 4};
    CHECK(wire_outputs_add(b, &o2) == 0);
    wire_outputs_end(b, mark, 2);
}

static void test_roundtrip(void) {
    wire_buf_t b = {0};
    wire_msg_t m;
    wire_str_t ids[8];
    build_add(&b);
    CHECK(wire_decode(b.data, b.len, &m, ids, 8) == 0);
    CHECK(m.type == WIRE_ADD && str_is(m.u.add.id, "cmpl-abc-0"));
    CHECK(m.u.add.prompt.n == 5 && wire_u32_at(&m.u.add.prompt, 3) == 70000 &&
          wire_u32_at(&m.u.add.prompt, 4) == 4294967295u);
    CHECK(m.u.add.sp.temperature == 0.7f && m.u.add.sp.top_k == 40 && m.u.add.sp.seed == 0xfedcba9876543210ull);
    CHECK(m.u.add.sp.logit_bias_ids.n == 2 && wire_f32_at(m.u.add.sp.logit_bias_values, 1) == 2.5f);
    CHECK(m.u.add.arrival_time == 12345.678 && m.u.add.client_index == 3 && m.u.add.priority == -2);
    CHECK(m.u.add.sp.prompt_logprobs == -1 && m.u.add.sp.logprobs == 5);

    b.len = 0;
    wire_str_t ab[3] = {{"a", 1}, {"", 0}, {"ccc", 3}};
    CHECK(wire_encode_abort(&b, ab, 3) == 0);
    CHECK(wire_decode(b.data, b.len, &m, ids, 8) == 0 && m.u.abort.n == 3 && str_is(m.u.abort.ids[2], "ccc"));
    CHECK(wire_decode(b.data, b.len, &m, ids, 2) != 0); /* more ids than room */

    b.len = 0;
    build_outputs(&b);
    CHECK(wire_decode(b.data, b.len, &m, ids, 8) == 0);
    CHECK(m.type == WIRE_OUTPUTS && m.u.outputs.n_outputs == 2 && m.u.outputs.num_running == 7);
    uint32_t pos = 0;
    wire_output_t o;
    CHECK(wire_outputs_next(&m.u.outputs, &pos, &o) == 1);
    CHECK(str_is(o.id, "r1") && o.new_tokens.n == 1 && wire_u32_at(&o.new_tokens, 0) == 42);
    CHECK(o.n_lp_per_token == 3 && wire_u32_at(&o.lp_ids, 2) == 44 && wire_f32_at(o.lp_values, 1) == -2.f);
    CHECK(o.num_cached_tokens == 32 && o.t_scheduled == 1.5);
    CHECK(wire_outputs_next(&m.u.outputs, &pos, &o) == 1);
    CHECK(str_is(o.id, "r2") && o.finish == WIRE_FINISH_STOP && o.stop_token == 2 && o.nan_logits == 1);
    CHECK(o.num_preemptions == 4);
    CHECK(wire_outputs_next(&m.u.outputs, &pos, &o) == 0);

    b.len = 0;
    wire_utility_t u = {.call_id = 9, .method = {"sleep", 5}, .arg = 2};
    CHECK(wire_encode_utility(&b, WIRE_UTILITY, &u) == 0);
    CHECK(wire_decode(b.data, b.len, &m, ids, 8) == 0 && m.u.utility.arg == 2 && str_is(m.u.utility.method, "sleep"));
    b.len = 0;
    wire_ready_t r = {.engine_index = 1, .max_model_len = 8192, .num_blocks = 1000, .block_size = 16,
                      .model_name = {"SmolLM2", 7}};
    CHECK(wire_encode_ready(&b, &r) == 0);
    CHECK(wire_decode(b.data, b.len, &m, ids, 8) == 0 && m.u.ready.num_blocks == 1000);
    b.len = 0;
    CHECK(wire_encode_dead(&b, 1, "CUDA error") == 0);
    CHECK(wire_decode(b.data, b.len, &m, ids, 8) == 0 && str_is(m.u.dead.reason, "CUDA error"));
    wire_buf_free(&b);
}

static void test_malformed(void) {
    wire_buf_t frames[3] = {{0}, {0}, {0}};
    build_add(&frames[0]);
    build_outputs(&frames[1]);
    wire_str_t ab[2] = {{"x", 1}, {"yy", 2}};
    wire_encode_abort(&frames[2], ab, 2);
    wire_msg_t m;
    wire_str_t ids[8];
    for (int f = 0; f < 3; f++) {
        wire_buf_t *b = &frames[f];
        /* every truncation is rejected (copied so ASan sees the exact length) */
        for (size_t n = 0; n < b->len; n++) {
            uint8_t *cp = malloc(n ? n : 1);
            memcpy(cp, b->data, n);
            CHECK(wire_decode(cp, n, &m, ids, 8) != 0);
            free(cp);
        }
        /* trailing bytes */
        uint8_t *cp = malloc(b->len + 1);
        memcpy(cp, b->data, b->len);
        cp[b->len] = 0;
        CHECK(wire_decode(cp, b->len + 1, &m, ids, 8) != 0);
        free(cp);
        /* every single-byte corruption: decoded or rejected, never out of bounds */
        for (size_t i = 0; i < b->len; i++)
            for (int v = 0; v < 256; v += 51) {
                uint8_t *c2 = malloc(b->len);
                memcpy(c2, b->data, b->len);
                c2[i] = (uint8_t)(c2[i] ^ (v | 1));
                LLVMFuzzerTestOneInput(c2, b->len);
                free(c2);
            }
    }
    /* a newer version is reported as such */
    frames[0].data[2] = WIRE_VERSION + 1;
    CHECK(wire_decode(frames[0].data, frames[0].len, &m, ids, 8) == WIRE_EVERSION);
    frames[0].data[0] ^= 0xff;
    CHECK(wire_decode(frames[0].data, frames[0].len, &m, ids, 8) == WIRE_EMALFORMED);
    for (int f = 0; f < 3; f++) wire_buf_free(&frames[f]);
}

static void test_random(void) {
    /* random bytes behind a valid header: deterministic, cheap fuzzing */
    unsigned s = 12345;
    for (int it = 0; it < 20000; it++) {
        uint8_t buf[256];
        size_t n = 8 + (size_t)(it % 240);
        for (size_t i = 0; i < n; i++) buf[i] = (uint8_t)((s = s * 1103515245u + 12345u) >> 16);
        buf[0] = 0x56, buf[1] = 0x43, buf[2] = WIRE_VERSION, buf[3] = (uint8_t)(1 + it % WIRE_TYPE_MAX);
        uint32_t pl = (uint32_t)(n - 8);
        memcpy(buf + 4, &pl, 4);
        uint8_t *cp = malloc(n);
        memcpy(cp, buf, n);
        LLVMFuzzerTestOneInput(cp, n);
        free(cp);
    }
}

int main(void) {
    test_roundtrip();
    test_malformed();
    test_random();
    printf("%s\n", failures ? "FAIL" : "ok");
    return failures ? 1 : 0;
}

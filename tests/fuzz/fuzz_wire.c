/* Fuzz target for the engine wire decoder: any bytes must decode to an error
 * or to a message whose every borrowed field lies inside the input. Built as
 * a libFuzzer target with -Dfuzz=true (clang), and always linked into
 * fuzz_wire_smoke, which runs it over deterministic mutations of valid frames
 * as a regular test (under the sanitizer build too). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "wire.h"

static void inside(const uint8_t *d, size_t n, const void *p, size_t len) {
    const uint8_t *q = p;
    if (len && (q < d || q + len > d + n)) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    wire_msg_t m;
    wire_str_t ids[64];
    if (wire_decode(data, size, &m, ids, 64)) return 0;
    switch (m.type) {
    case WIRE_ADD:
        inside(data, size, m.u.add.id.p, m.u.add.id.n);
        inside(data, size, m.u.add.prompt.p, 4 * (size_t)m.u.add.prompt.n);
        for (uint32_t i = 0; i < m.u.add.prompt.n; i++) (void)wire_u32_at(&m.u.add.prompt, i);
        for (uint32_t i = 0; i < m.u.add.sp.logit_bias_ids.n; i++) (void)wire_f32_at(m.u.add.sp.logit_bias_values, i);
        break;
    case WIRE_ABORT:
        for (uint32_t i = 0; i < m.u.abort.n; i++) inside(data, size, m.u.abort.ids[i].p, m.u.abort.ids[i].n);
        break;
    case WIRE_OUTPUTS: {
        uint32_t pos = 0, n = 0;
        wire_output_t o;
        while (wire_outputs_next(&m.u.outputs, &pos, &o)) {
            inside(data, size, o.id.p, o.id.n);
            inside(data, size, o.new_tokens.p, 4 * (size_t)o.new_tokens.n);
            n++;
        }
        if (n != m.u.outputs.n_outputs) abort();
        break;
    }
    default: break;
    }
    return 0;
}

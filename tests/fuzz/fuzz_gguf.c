/* libFuzzer target: GGUF headers, metadata and tensor tables from arbitrary
 * bytes must open cleanly or fail with an error, and every tensor a file
 * claims must lie inside it. Built with -Dfuzz=true (clang). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "gguf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    gguf_file_t *f = NULL;
    char err[256];
    if (gguf_open_memory(data, size, "fuzz", &f, err, sizeof err)) return 0;
    for (int64_t i = 0; i < gguf_kv_count(f); i++) (void)gguf_kv_key(f, i);
    for (int64_t i = 0; i < gguf_tensor_count(f); i++) {
        const gguf_tensor_t *t = gguf_tensor(f, i);
        if (!t) abort();
    }
    gguf_close(&f);
    return 0;
}

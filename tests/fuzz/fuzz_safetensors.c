/* libFuzzer target: a safetensors file made of arbitrary bytes must open
 * cleanly or fail with an error. The bytes go through a memfd so the real
 * path-based loader (open + mmap) is what gets fuzzed. Built with -Dfuzz=true. */
#define _GNU_SOURCE
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

#include "safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    int fd = memfd_create("fuzz.safetensors", 0);
    if (fd < 0) return 0;
    if (write(fd, data, size) == (ssize_t)size) {
        char path[64], err[256];
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
        st_model_t *m = NULL;
        if (!st_open(path, &m, err, sizeof err)) st_close(&m);
    }
    close(fd);
    return 0;
}

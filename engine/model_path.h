/* model_path: what a MODEL argument names. A path (file or directory) is used
 * as it is; otherwise an HF hub id ("org/name", optionally "org/name@rev") is
 * looked up in the local Hugging Face cache, without any network access:
 * $HF_HUB_CACHE, else $HF_HOME/hub, else ~/.cache/huggingface/hub, then
 * models--org--name/snapshots/<refs/main or rev>/. A snapshot holding a
 * config.json is returned as the directory; one holding no config.json but
 * exactly one .gguf file is returned as that file.
 * Pure function of the file system; thread-safe. */
#ifndef CVLLM_ENGINE_MODEL_PATH_H
#define CVLLM_ENGINE_MODEL_PATH_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Writes the resolved path into out (n bytes). Returns 0, or a negative
 * errno (-ENOENT: neither a path nor in the cache) with a message naming
 * what was tried in err. */
int model_path_resolve(const char *arg, char *out, size_t n, char *err, size_t err_len);

#ifdef __cplusplus
}
#endif
#endif

/* tok_load_gguf for builds without the engine's GGUF reader (engine/gguf.h):
 * GGUF tokenizers are then refused with TOK_ENOGGUF rather than parsed by a
 * second reader. tok_gguf.c replaces this file when the reader is built. */
#include "tok_int.h"

int tok_load_gguf(const char *path, tok_tokenizer_t **out, char *errbuf, size_t errlen) {
    *out = NULL;
    tok__err(errbuf, errlen, path, "%s", tok_strerror(TOK_ENOGGUF));
    return TOK_ENOGGUF;
}

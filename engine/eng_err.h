/* eng_err: error codes shared by the engine's modules (model files, config).
 *
 * Engine functions returning int return 0 or a negative code: either a negative
 * errno (I/O, allocation) or one of the ENG_E* codes below, which live in the
 * project's reserved range -5100..-5199. Loaders also fill a caller-provided
 * message buffer naming the file and the exact problem; the code is for
 * programs, the message for operators.
 */
#ifndef CVLLM_ENG_ERR_H
#define CVLLM_ENG_ERR_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#define ENG_ERRNO_MAP(XX)                                                        \
    XX(ENG_EFORMAT, -5101, "malformed model file")                                \
    XX(ENG_EVERSION, -5102, "unsupported file format version")                    \
    XX(ENG_ETYPE, -5103, "unsupported or unknown tensor/value type")              \
    XX(ENG_ENOTFOUND, -5104, "key or tensor not found")                           \
    XX(ENG_EWRONGTYPE, -5105, "value has a different type than requested")        \
    XX(ENG_ERANGE, -5106, "value out of range for the requested type")            \
    XX(ENG_EARCH, -5107, "unsupported model architecture")                        \
    XX(ENG_ECONFIG, -5108, "invalid or incomplete model configuration")

enum {
#define XX(name, val, msg) name = (val),
    ENG_ERRNO_MAP(XX)
#undef XX
};

/* Message for a code returned by the engine (an ENG_E* code or a negative
 * errno). Borrowed; static storage. */
const char *eng_strerror(int err);

/* Symbolic name ("ENG_EFORMAT", "EIO", ...) of a code. Borrowed; static storage. */
const char *eng_err_name(int err);

#ifdef __cplusplus
}
#endif

#endif /* CVLLM_ENG_ERR_H */

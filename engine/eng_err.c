/* eng_err: message and name tables for the engine's error codes, generated
 * from the single ENG_ERRNO_MAP so the two can never disagree. */
#include <errno.h>
#include <string.h>

#include "eng_err.h"

const char *eng_strerror(int err) {
    switch (err) {
#define XX(name, val, msg) \
    case val: return msg;
        ENG_ERRNO_MAP(XX)
#undef XX
    default: return err < 0 ? strerror(-err) : "success";
    }
}

const char *eng_err_name(int err) {
    switch (err) {
#define XX(name, val, msg) \
    case val: return #name;
        ENG_ERRNO_MAP(XX)
#undef XX
    case 0: return "OK";
    case -ENOENT: return "ENOENT";
    case -EACCES: return "EACCES";
    case -ENOMEM: return "ENOMEM";
    case -EINVAL: return "EINVAL";
    case -EIO: return "EIO";
    case -EISDIR: return "EISDIR";
    case -EOVERFLOW: return "EOVERFLOW";
    case -ENOTSUP: return "ENOTSUP";
    default: return "EUNKNOWN";
    }
}

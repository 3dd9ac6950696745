/* Internals shared by the shm/ files (and white-box tests). Not installed. */
#ifndef CVLLM_SHM_INT_H
#define CVLLM_SHM_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "shm.h"

/* --- file format (prometheus_client >= 0.18 mmap_dict) --------------------- */
#define SHM_INITIAL_SIZE 65536u          /* new files; growth doubles */
#define SHM_HEADER 8u                    /* int32 used + 4 bytes padding */
/* Address space reserved per writer file so that growth maps more of the file
 * right after the existing mapping and handles never move. */
#define SHM_RESERVE ((size_t)1 << 30)

/* Padding after a key: 1..8 spaces, never 0. */
static inline uint32_t shm__pad(uint32_t klen) { return 8 - ((klen + 4) % 8); }
static inline uint32_t shm__entry_size(uint32_t klen) { return 4 + klen + shm__pad(klen) + 16; }

/* Validates the entries of a file image data[0..size): `used` sane, every
 * entry inside `used`. Returns the number of entries, or SHM_ECORRUPT. */
long shm__validate(const uint8_t *data, size_t size, uint32_t used);

/* --- formatting and keys ----------------------------------------------------- */

/* Python json.dumps([family, sample, {labels sorted}, help], sort_keys=True)
 * with ensure_ascii. names/values: n UTF-8 strings, names need not be sorted
 * (le included by the caller). Appends to out. Returns 0, SHM_EBADLABELS for
 * invalid UTF-8, or -ENOMEM. */
int shm__json_key(shm_buf_t *out, const char *family, const char *sample,
                  const char *const *names, const char *const *values, size_t n,
                  const char *help);

/* Appends s as a JSON string body (no quotes) with Python's ensure_ascii
 * escaping. Returns 0, SHM_EBADLABELS (invalid UTF-8) or -ENOMEM. */
int shm__json_escape(shm_buf_t *out, const char *s, size_t n);

/* A decoded key. Strings point into the caller's arena buffer; labels are in
 * the order of the key (json.loads keeps it), not necessarily sorted. */
typedef struct {
    const char *family, *sample, *help;
    uint32_t n_labels;
    const char **lname, **lvalue;   /* n_labels each */
} shm_key_t;

/* Parses a key (any JSON spacing; \u escapes incl. surrogate pairs decoded
 * to UTF-8). Decoded strings are NUL-terminated and stored in *arena.
 * Returns 0 or SHM_ECORRUPT (not a [str, str, {str: str}, str] array, bad
 * escape, lone surrogate, invalid UTF-8). */
int shm__json_key_parse(const char *p, size_t n, shm_buf_t *arena, shm_key_t *out);

/* Name checks as prometheus_client validation.py. */
bool shm__valid_metric_name(const char *s);
bool shm__valid_label_name(const char *s);
/* UTF-8 validity (no surrogates, no overlongs). */
bool shm__valid_utf8(const char *s, size_t n);

/* Appends s with text-format label escaping (\\, \n, \"). */
int shm__escape_label_value(shm_buf_t *out, const char *s, size_t n);

/* Directory from the environment (PROMETHEUS_MULTIPROC_DIR, then the legacy
 * lowercase name). Borrowed from environ, or NULL. */
const char *shm__env_dir(void);

/* A monotonic-free wall clock, seconds since the epoch. */
double shm__wall_time(void);

/* Lock file of a directory, taken shared by scrapes and exclusively by
 * compaction. Returns an fd (close to release) or a negative errno. */
int shm__dir_lock(const char *dir, bool exclusive);

/* Writes image[0..used) into a new file of `size` bytes under a temporary
 * name in dir, then renames it over `final` (or links it, failing with
 * -EEXIST, when no_clobber). Returns an O_RDWR fd of the final file or a
 * negative errno. */
int shm__publish_file(const char *dir, const char *final, const uint8_t *image, size_t used, size_t size,
                      int no_clobber);

#endif

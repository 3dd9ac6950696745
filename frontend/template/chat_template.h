/* chat_template: a Jinja-subset interpreter for HF chat templates.
 *
 * Renders chat templates byte-identically to Python jinja2 as HF transformers
 * configures it: ImmutableSandboxedEnvironment(trim_blocks=True,
 * lstrip_blocks=True, extensions=[loopcontrols]) with the globals
 * raise_exception(msg) and strftime_now(fmt) and transformers' tojson filter
 * (json.dumps(x, ensure_ascii=False, indent=...)). The supported subset is the
 * one chat templates use (docs/chat-templates.md): if/elif/else, for (with
 * loop.*, else, filter, break/continue), set (plain, block, namespace
 * attribute), macros, the usual expressions, filters, tests and str/dict
 * methods. Anything else is rejected at compile time with an error naming the
 * construct and the line, never silently rendered differently.
 *
 * A compiled template is immutable: any number of threads may render it
 * concurrently, each with its own output buffer and error struct.
 *
 * Errors: functions returning int return 0 or a negative code (TPL_E* below,
 * or -ENOMEM), and fill the caller's tpl_error_t when one is given.
 */
#ifndef CVLLM_CHAT_TEMPLATE_H
#define CVLLM_CHAT_TEMPLATE_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* --- errors ---------------------------------------------------------------- */

#define TPL_ERRNO_MAP(XX)                                                        \
    XX(TPL_ESYNTAX, -5301, "template syntax error")                               \
    XX(TPL_EUNSUPPORTED, -5302, "unsupported template construct")                 \
    XX(TPL_ERAISE, -5303, "template raised an exception")                         \
    XX(TPL_ERUNTIME, -5304, "template runtime error")                             \
    XX(TPL_EJSON, -5305, "invalid JSON input for template context")

enum {
#define XX(name, val, msg) name = (val),
    TPL_ERRNO_MAP(XX)
#undef XX
};

/* Human-readable message for a code returned by this module (a TPL_E* code
 * or a negative errno). Borrowed; static storage. */
const char *tpl_strerror(int err);

/* Details of the last failure. line is the 1-based template line (0 when the
 * error is not tied to one, e.g. bad JSON input); msg is a NUL-terminated
 * sentence, e.g. "line 3: unsupported construct '{% include %}'" or, for
 * TPL_ERAISE, the exact message given to raise_exception. */
typedef struct {
    int code;
    int line;
    char msg[512];
} tpl_error_t;

/* --- output buffer ---------------------------------------------------------- */

/* A growable byte buffer; zero-initialise it before first use. data is always
 * NUL-terminated once non-NULL (len excludes the NUL). The caller owns data and
 * frees it with tpl_buf_free. */
typedef struct {
    char *data;
    size_t len;
    size_t cap;
} tpl_buf_t;

void tpl_buf_free(tpl_buf_t *b);

/* --- compile and render ------------------------------------------------------- */

typedef struct tpl_template tpl_template_t;

/* Compile template source src (len bytes, UTF-8; need not be NUL-terminated).
 * As jinja2 does, "\r\n" and "\r" become "\n" and one trailing newline is
 * dropped. On success *out is a new template: caller owns it and frees it with
 * tpl_destroy. On failure *out is NULL and err (if non-NULL) says what and
 * where. Returns 0, TPL_ESYNTAX, TPL_EUNSUPPORTED or -ENOMEM. */
int tpl_compile(const char *src, size_t len, tpl_template_t **out, tpl_error_t *err);

/* Free a template and set *t to NULL. NULL and *t == NULL are no-ops. */
void tpl_destroy(tpl_template_t **t);

/* The variables a chat-template render sees. Strings are borrowed for the
 * duration of tpl_render. */
typedef struct {
    const char *messages_json; /* JSON array of message objects; NULL means [] */
    const char *extra_json;    /* JSON object of more variables (tools, date_string,
                                  documents, ...) or NULL; its keys override the
                                  variables below */
    const char *bos_token;     /* NULL: bos_token is undefined */
    const char *eos_token;     /* NULL: eos_token is undefined */
    int add_generation_prompt; /* boolean */
} tpl_vars_t;

/* Render t with vars, appending the output to out (existing content is kept).
 * As transformers does, tools and documents are defined as None unless
 * extra_json gives them. On failure nothing is appended to out and err says
 * why. Output and intermediate strings are capped at 256 MiB (-ENOMEM beyond).
 * Thread-safe for distinct out/err. Returns 0,
 * TPL_ERAISE (raise_exception was called; err->msg is its message),
 * TPL_ERUNTIME (type error, undefined attribute access, ...), TPL_EJSON or
 * -ENOMEM. */
int tpl_render(const tpl_template_t *t, const tpl_vars_t *vars, tpl_buf_t *out,
               tpl_error_t *err);

#ifdef __cplusplus
}
#endif

#endif

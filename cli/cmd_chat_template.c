/* cvllm chat-template: render a model's chat template for a conversation.
 *
 *   cvllm chat-template MODEL --messages FILE.json [--add-generation-prompt]
 *       [--template FILE] [--bos TOKEN] [--eos TOKEN] [--vars FILE.json]
 *
 * MODEL is an HF model directory (chat_template, bos_token and eos_token from
 * tokenizer_config.json; a list of named templates picks "default"), a .gguf
 * file (tokenizer.chat_template and the bos/eos token strings), or '-' when
 * --template gives the template. --bos/--eos override the model's tokens.
 * The rendered prompt is written to stdout exactly, with no newline added.
 * Errors (including raise_exception messages) go to stderr; exit status 1,
 * or 2 for usage errors.
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "chat_template.h"
#include "cli.h"
#include "model_path.h"

#if defined(__has_include)
#if __has_include("gguf.h")
#include "gguf.h"
#define HAVE_GGUF 1
#endif
#endif

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        if (n + 1 >= cap) {
            char *nb = realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
            cap *= 2;
        }
        size_t got = fread(buf + n, 1, cap - n - 1, f);
        n += got;
        if (got == 0)
            break;
    }
    if (buf && ferror(f)) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    if (buf) {
        buf[n] = 0;
        if (len)
            *len = n;
    }
    return buf;
}

static char *dup_str(const char *s)
{
    return s ? strdup(s) : NULL;
}

/* A special token in tokenizer_config.json: a string or {"content": ...}. */
static char *token_str(const cJSON *v)
{
    if (cJSON_IsString(v))
        return dup_str(v->valuestring);
    if (cJSON_IsObject(v)) {
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(v, "content");
        if (cJSON_IsString(c))
            return dup_str(c->valuestring);
    }
    return NULL;
}

/* Read template, bos and eos from an HF directory. Returns 0 or 1 (error
 * printed). */
static int load_hf(const char *dir, char **tmpl, char **bos, char **eos)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/tokenizer_config.json", dir);
    char *text = read_file(path, NULL);
    if (!text) {
        fprintf(stderr, "cvllm chat-template: %s: %s\n", path, strerror(errno ? errno : EIO));
        return 1;
    }
    cJSON *root = cJSON_Parse(text);
    free(text);
    if (!root) {
        fprintf(stderr, "cvllm chat-template: %s: invalid JSON\n", path);
        return 1;
    }
    const cJSON *ct = cJSON_GetObjectItemCaseSensitive(root, "chat_template");
    if (cJSON_IsString(ct)) {
        *tmpl = dup_str(ct->valuestring);
    } else if (cJSON_IsArray(ct)) {
        const cJSON *it;
        cJSON_ArrayForEach(it, ct)
        {
            const cJSON *nm = cJSON_GetObjectItemCaseSensitive(it, "name");
            const cJSON *tp = cJSON_GetObjectItemCaseSensitive(it, "template");
            if (cJSON_IsString(nm) && cJSON_IsString(tp) && !strcmp(nm->valuestring, "default"))
                *tmpl = dup_str(tp->valuestring);
        }
    }
    if (!*tmpl) {
        /* newer models keep it in chat_template.jinja beside the config */
        snprintf(path, sizeof path, "%s/chat_template.jinja", dir);
        *tmpl = read_file(path, NULL);
    }
    if (!*bos)
        *bos = token_str(cJSON_GetObjectItemCaseSensitive(root, "bos_token"));
    if (!*eos)
        *eos = token_str(cJSON_GetObjectItemCaseSensitive(root, "eos_token"));
    cJSON_Delete(root);
    if (!*tmpl) {
        fprintf(stderr, "cvllm chat-template: %s has no chat_template (use --template)\n", dir);
        return 1;
    }
    return 0;
}

#ifdef HAVE_GGUF
static char *gguf_token(const gguf_file_t *f, const char *id_key)
{
    uint32_t id;
    int64_t kv;
    gguf_type_t et;
    uint64_t n;
    const char *s;
    size_t len;
    if (gguf_get_u32(f, id_key, &id) || gguf_get_arr(f, "tokenizer.ggml.tokens", &kv, &et, &n) ||
        et != GGUF_TYPE_STRING || id >= n || gguf_kv_arr_str(f, kv, id, &s, &len))
        return NULL;
    return strndup(s, len);
}

static int load_gguf(const char *path, char **tmpl, char **bos, char **eos)
{
    char err[512];
    gguf_file_t *f = NULL;
    if (gguf_open(path, &f, err, sizeof err)) {
        fprintf(stderr, "cvllm chat-template: %s\n", err);
        return 1;
    }
    const char *s;
    size_t len;
    if (!gguf_get_str(f, "tokenizer.chat_template", &s, &len))
        *tmpl = strndup(s, len);
    if (!*bos)
        *bos = gguf_token(f, "tokenizer.ggml.bos_token_id");
    if (!*eos)
        *eos = gguf_token(f, "tokenizer.ggml.eos_token_id");
    gguf_close(&f);
    if (!*tmpl) {
        fprintf(stderr, "cvllm chat-template: %s has no tokenizer.chat_template (use --template)\n",
                path);
        return 1;
    }
    return 0;
}
#endif

static int usage(void)
{
    fprintf(stderr, "usage: cvllm chat-template MODEL|- --messages FILE.json "
                    "[--add-generation-prompt] [--template FILE] [--bos TOKEN] [--eos TOKEN] "
                    "[--vars FILE.json]\n");
    return 2;
}

int cmd_chat_template(int argc, char **argv)
{
    const char *model = NULL, *msgs_path = NULL, *tmpl_path = NULL, *vars_path = NULL;
    char *bos = NULL, *eos = NULL, *tmpl = NULL, *msgs = NULL, *vars = NULL;
    int agp = 0, rc = 1;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--messages") && i + 1 < argc)
            msgs_path = argv[++i];
        else if (!strcmp(argv[i], "--template") && i + 1 < argc)
            tmpl_path = argv[++i];
        else if (!strcmp(argv[i], "--vars") && i + 1 < argc)
            vars_path = argv[++i];
        else if (!strcmp(argv[i], "--bos") && i + 1 < argc) {
            free(bos);
            bos = strdup(argv[++i]);
        } else if (!strcmp(argv[i], "--eos") && i + 1 < argc) {
            free(eos);
            eos = strdup(argv[++i]);
        } else if (!strcmp(argv[i], "--add-generation-prompt"))
            agp = 1;
        else if ((argv[i][0] != '-' || !strcmp(argv[i], "-")) && !model)
            model = argv[i];
        else {
            fprintf(stderr, "cvllm chat-template: unexpected argument '%s'\n", argv[i]);
            free(bos);
            free(eos);
            return usage();
        }
    }
    if (!model || !msgs_path || (!strcmp(model, "-") && !tmpl_path)) {
        free(bos);
        free(eos);
        return usage();
    }
    if (tmpl_path) {
        tmpl = read_file(tmpl_path, NULL);
        if (!tmpl) {
            fprintf(stderr, "cvllm chat-template: %s: %s\n", tmpl_path, strerror(errno));
            goto out;
        }
    }
    char resolved[4096];
    if (strcmp(model, "-") != 0) {
        char rerr[1024];
        if (model_path_resolve(model, resolved, sizeof resolved, rerr, sizeof rerr)) {
            fprintf(stderr, "cvllm chat-template: %s\n", rerr);
            goto out;
        }
        model = resolved;
    }
    if (strcmp(model, "-") != 0) {
        struct stat st;
        size_t ml = strlen(model);
        char *model_tmpl = NULL;
        int lrc;
        if (stat(model, &st) != 0) {
            fprintf(stderr, "cvllm chat-template: %s: %s\n", model, strerror(errno));
            goto out;
        }
        if (S_ISDIR(st.st_mode)) {
            lrc = load_hf(model, &model_tmpl, &bos, &eos);
        } else if (ml > 5 && !strcmp(model + ml - 5, ".gguf")) {
#ifdef HAVE_GGUF
            lrc = load_gguf(model, &model_tmpl, &bos, &eos);
#else
            fprintf(stderr, "cvllm chat-template: GGUF support is not built in\n");
            lrc = 1;
#endif
        } else {
            fprintf(stderr, "cvllm chat-template: %s: not a model directory or .gguf file\n",
                    model);
            lrc = 1;
        }
        if (lrc && !tmpl) {
            free(model_tmpl);
            goto out;
        }
        if (!tmpl)
            tmpl = model_tmpl;
        else
            free(model_tmpl);
    }
    msgs = read_file(msgs_path, NULL);
    if (!msgs) {
        fprintf(stderr, "cvllm chat-template: %s: %s\n", msgs_path, strerror(errno));
        goto out;
    }
    if (vars_path && !(vars = read_file(vars_path, NULL))) {
        fprintf(stderr, "cvllm chat-template: %s: %s\n", vars_path, strerror(errno));
        goto out;
    }
    tpl_template_t *t = NULL;
    tpl_error_t err;
    if (tpl_compile(tmpl, strlen(tmpl), &t, &err)) {
        fprintf(stderr, "cvllm chat-template: template error: %s\n", err.msg);
        goto out;
    }
    tpl_vars_t tv = {.messages_json = msgs, .extra_json = vars, .bos_token = bos,
                     .eos_token = eos, .add_generation_prompt = agp};
    tpl_buf_t buf = {0};
    int r = tpl_render(t, &tv, &buf, &err);
    tpl_destroy(&t);
    if (r) {
        fprintf(stderr, "cvllm chat-template: %s: %s\n",
                r == TPL_ERAISE ? "template raised" : tpl_strerror(r), err.msg);
        tpl_buf_free(&buf);
        goto out;
    }
    fwrite(buf.data, 1, buf.len, stdout);
    tpl_buf_free(&buf);
    rc = fflush(stdout) == 0 ? 0 : 1;
out:
    free(bos);
    free(eos);
    free(tmpl);
    free(msgs);
    free(vars);
    return rc;
}

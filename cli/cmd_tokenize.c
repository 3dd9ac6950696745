/* cvllm tokenize / detokenize: run a model's tokenizer from the command line.
 *
 *   cvllm tokenize MODEL [--text T] [--add-special-tokens|--no-add-special-tokens] [--json]
 *   cvllm detokenize MODEL [--ids "1 2 3"] [--skip-special-tokens]
 *
 * MODEL is a tokenizer.json, an HF model directory or a .gguf file. Without
 * --text / --ids the input is all of stdin, byte for byte (a trailing newline
 * is part of the text). Detokenized text is written exactly, with no newline
 * added. Errors go to stderr with the file and the problem; exit status 1
 * (2 for usage errors). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "model_path.h"
#include "tokenizer.h"

static char *read_stdin(size_t *len) {
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        if (n + 1 >= cap) {
            char *nb = realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                return NULL;
            }
            buf = nb;
            cap *= 2;
        }
        size_t got = fread(buf + n, 1, cap - n - 1, stdin);
        n += got;
        if (got == 0) {
            if (ferror(stdin)) {
                free(buf);
                return NULL;
            }
            break;
        }
    }
    if (buf)
        buf[n] = '\0';
    *len = n;
    return buf;
}

static tok_tokenizer_t *load(const char *cmd, const char *model) {
    char err[1024], resolved[4096];
    tok_tokenizer_t *t = NULL;
    if (model_path_resolve(model, resolved, sizeof resolved, err, sizeof err)) {
        fprintf(stderr, "cvllm %s: %s\n", cmd, err);
        return NULL;
    }
    int rc = tok_load(resolved, &t, err, sizeof err);
    if (rc) {
        fprintf(stderr, "cvllm %s: %s\n", cmd, err);
        return NULL;
    }
    return t;
}

int cmd_tokenize(int argc, char **argv) {
    const char *model = NULL, *text = NULL;
    bool add_special = true, json = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--text") && i + 1 < argc)
            text = argv[++i];
        else if (!strcmp(argv[i], "--add-special-tokens"))
            add_special = true;
        else if (!strcmp(argv[i], "--no-add-special-tokens"))
            add_special = false;
        else if (!strcmp(argv[i], "--json"))
            json = true;
        else if (argv[i][0] != '-' && !model)
            model = argv[i];
        else {
            fprintf(stderr, "cvllm tokenize: unexpected argument '%s'\n", argv[i]);
            model = NULL;
            break;
        }
    }
    if (!model) {
        fprintf(stderr, "usage: cvllm tokenize MODEL [--text T] "
                        "[--add-special-tokens|--no-add-special-tokens] [--json]\n");
        return 2;
    }
    tok_tokenizer_t *t = load("tokenize", model);
    if (!t)
        return 1;
    size_t len;
    char *owned = NULL;
    if (text)
        len = strlen(text);
    else if (!(text = owned = read_stdin(&len))) {
        fprintf(stderr, "cvllm tokenize: cannot read stdin\n");
        tok_destroy(&t);
        return 1;
    }
    int32_t *ids;
    size_t n;
    int rc = tok_encode(t, text, len, add_special, &ids, &n);
    if (rc) {
        fprintf(stderr, "cvllm tokenize: %s: %s\n", model, tok_strerror(rc));
    } else {
        fputs(json ? "[" : "", stdout);
        for (size_t i = 0; i < n; i++)
            printf(i ? (json ? ", %d" : " %d") : "%d", ids[i]);
        fputs(json ? "]\n" : "\n", stdout);
    }
    free(ids);
    free(owned);
    tok_destroy(&t);
    return rc ? 1 : 0;
}

/* Parses ids separated by spaces, commas or JSON brackets. */
static int parse_ids(const char *s, int32_t **ids, size_t *n) {
    size_t cap = 64;
    *n = 0;
    *ids = malloc(cap * sizeof **ids);
    if (!*ids)
        return -ENOMEM;
    while (*s) {
        if (strchr(" \t\r\n,[]", *s)) {
            s++;
            continue;
        }
        char *end;
        errno = 0;
        long v = strtol(s, &end, 10);
        if (end == s || errno || v < INT32_MIN || v > INT32_MAX)
            return -EINVAL;
        if (*n == cap) {
            int32_t *p = realloc(*ids, cap * 2 * sizeof *p);
            if (!p)
                return -ENOMEM;
            *ids = p;
            cap *= 2;
        }
        (*ids)[(*n)++] = (int32_t)v;
        s = end;
    }
    return 0;
}

int cmd_detokenize(int argc, char **argv) {
    const char *model = NULL, *idstr = NULL;
    bool skip = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--ids") && i + 1 < argc)
            idstr = argv[++i];
        else if (!strcmp(argv[i], "--skip-special-tokens"))
            skip = true;
        else if (argv[i][0] != '-' && !model)
            model = argv[i];
        else {
            fprintf(stderr, "cvllm detokenize: unexpected argument '%s'\n", argv[i]);
            model = NULL;
            break;
        }
    }
    if (!model) {
        fprintf(stderr, "usage: cvllm detokenize MODEL [--ids \"1 2 3\"] [--skip-special-tokens]\n");
        return 2;
    }
    char *owned = NULL;
    size_t len;
    if (!idstr && !(idstr = owned = read_stdin(&len))) {
        fprintf(stderr, "cvllm detokenize: cannot read stdin\n");
        return 1;
    }
    int32_t *ids = NULL;
    size_t n = 0;
    int rc = parse_ids(idstr, &ids, &n);
    free(owned);
    if (rc) {
        fprintf(stderr, "cvllm detokenize: ids must be integers separated by spaces or commas\n");
        free(ids);
        return 1;
    }
    tok_tokenizer_t *t = load("detokenize", model);
    if (!t) {
        free(ids);
        return 1;
    }
    char *text;
    size_t tl;
    rc = tok_decode(t, ids, n, skip, &text, &tl);
    if (rc)
        fprintf(stderr, "cvllm detokenize: %s: %s\n", model, tok_strerror(rc));
    else {
        fwrite(text, 1, tl, stdout);
        free(text);
    }
    free(ids);
    tok_destroy(&t);
    return rc ? 1 : 0;
}

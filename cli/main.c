/* cvllm command-line entry point: dispatches `cvllm <subcommand> ...` to the
 * cmd_* functions of this folder. Each subcommand lives in its own file and
 * returns a process exit status; this file only routes and prints usage. */
#include <stdio.h>
#include <string.h>

#include "cli.h"

static const cli_cmd_t commands[] = {
    {"metrics", cmd_metrics, "print the merged exposition of a multiprocess metrics directory"},
#ifdef CVLLM_HAVE_TOKENIZE
    {"tokenize", cmd_tokenize, "text to token ids with a model's tokenizer"},
    {"detokenize", cmd_detokenize, "token ids to text with a model's tokenizer"},
#endif
#ifdef CVLLM_HAVE_CHAT_TEMPLATE
    {"chat-template", cmd_chat_template, "render a model's chat template for a conversation"},
#endif
#ifdef CVLLM_HAVE_MODEL_INFO
    {"model-info", cmd_model_info, "describe a model file: architecture, hyper-parameters, tensors"},
#endif
#ifdef CVLLM_HAVE_SERVE
    {"serve", cmd_serve, "serve a model with vLLM's OpenAI-compatible API and /metrics"},
#endif
#ifdef CVLLM_HAVE_ENGINE
    {"engine-core", cmd_engine_core, "(internal) one engine process; cvllm serve starts these"},
#endif
#ifdef CVLLM_HAVE_API_WORKER
    {"api-worker", cmd_api_worker, "(internal) one API worker process; cvllm serve starts these"},
#endif
};

static void usage(FILE *f) {
    fprintf(f, "usage: cvllm <command> [args]\n       cvllm --version\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-14s %s\n", commands[i].name, commands[i].summary);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "version")) {
        printf("cvllm %s\n", CVLLM_VERSION);
        return 0;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(argv[1], commands[i].name))
            return commands[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "cvllm: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return 2;
}

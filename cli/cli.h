/* Subcommands of the cvllm binary. Each takes (argc, argv) with argv[0] the
 * subcommand name and returns a process exit status (0 ok, 1 error, 2 usage). */
#ifndef CVLLM_CLI_H
#define CVLLM_CLI_H

typedef struct {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *summary;
} cli_cmd_t;

int cmd_metrics(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_detokenize(int argc, char **argv);
int cmd_chat_template(int argc, char **argv);
int cmd_model_info(int argc, char **argv);
int cmd_engine_core(int argc, char **argv);
int cmd_api_worker(int argc, char **argv);
int cmd_serve(int argc, char **argv);

#endif

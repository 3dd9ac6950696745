/* Test driver: parses a `cvllm serve` command line with the real parser and
 * prints the resolved configuration as JSON (exit 0), the help (exit 0) or
 * the error message (exit 2). */
#include <stdio.h>

#include "serve_args.h"

int main(int argc, char **argv) {
    serve_args_t a;
    int help;
    char err[512];
    int rc = serve_args_parse(argc, argv, &a, &help, err, sizeof err);
    if (rc) {
        fprintf(stderr, "cvllm serve: error: %s\n", err);
        return rc;
    }
    if (help) serve_args_usage(stdout);
    else serve_args_print_json(&a, stdout);
    return 0;
}

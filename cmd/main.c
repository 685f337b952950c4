/*
 * berth: the command line.
 *
 *   berth serve [-c FILE]   run the server (defaults without a file)
 *   berth push/status/pull  the client (client/client.h)
 *   berth version           print the version
 *   berth --help            print usage
 *
 * Exit codes: 0 success, 1 runtime failure, 2 usage or configuration error.
 */
#include <stdio.h>
#include <string.h>

#include "client/client.h"
#include "core/config.h"
#include "core/error.h"
#include "http/server.h"

static void usage(FILE *out)
{
    fprintf(out, "usage: berth <command> [options]\n"
                 "\n"
                 "commands:\n"
                 "  serve [-c FILE]   serve OCI blob uploads; with no FILE, the filesystem\n"
                 "                    backend in ./data on 127.0.0.1:5000\n"
                 "%s"
                 "  version           print the version\n"
                 "  help              print this help\n"
                 "\n"
                 "options:\n"
                 "  -c, --config FILE   YAML configuration (see config.example.yaml)\n",
            berth_client_usage);
}

static int cmd_serve(int argc, char **argv)
{
    const char *path = NULL;
    berth_config_t cfg;
    int rc;

    for (int i = 0; i < argc; i++) {
        if ((strcmp(argv[i], "-c") == 0 || strcmp(argv[i], "--config") == 0) && i + 1 < argc) {
            path = argv[++i];
        } else if (strncmp(argv[i], "--config=", 9) == 0) {
            path = argv[i] + 9;
        } else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            usage(stdout);
            return 0;
        } else {
            fprintf(stderr, "berth serve: unexpected argument '%s'\n", argv[i]);
            usage(stderr);
            return 2;
        }
    }

    berth_config_defaults(&cfg);
    if (path != NULL && berth_config_load(&cfg, path) != 0) {
        fprintf(stderr, "berth: %s\n", berth_error_last());
        berth_config_clear(&cfg);
        return 2;
    }
    rc = berth_server_run(&cfg);
    berth_config_clear(&cfg);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (strcmp(argv[1], "serve") == 0)
        return cmd_serve(argc - 2, argv + 2);
    if (strcmp(argv[1], "push") == 0)
        return berth_client_push(argc - 2, argv + 2);
    if (strcmp(argv[1], "status") == 0)
        return berth_client_status(argc - 2, argv + 2);
    if (strcmp(argv[1], "pull") == 0)
        return berth_client_pull(argc - 2, argv + 2);
    if (strcmp(argv[1], "version") == 0 || strcmp(argv[1], "--version") == 0) {
        printf("berth %s\n", BERTH_VERSION);
        return 0;
    }
    if (strcmp(argv[1], "help") == 0 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage(stdout);
        return 0;
    }
    fprintf(stderr, "berth: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}

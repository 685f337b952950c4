/*
 * berth: the command line.
 *
 *   berth serve [-c FILE]   run the server (defaults without a file)
 *   berth push/status/pull  the client (client/client.h)
 *   berth gc [-c FILE] [--dry-run] [--grace DURATION]
 *                           remove unreferenced blobs (core/gc.h)
 *   berth version           print the version, and the h2o it was built with
 *   berth --help            print usage
 *
 * Exit codes: 0 success, 1 runtime failure, 2 usage or configuration error.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "client/client.h"
#include "core/config.h"
#include "core/error.h"
#include "core/gc.h"
#include "http/server.h"

static void usage(FILE *out)
{
    fprintf(out, "usage: berth <command> [options]\n"
                 "\n"
                 "commands:\n"
                 "  serve [-c FILE]   serve the OCI registry; with no FILE, the filesystem\n"
                 "                    backend in ./data on 127.0.0.1:5000\n"
                 "%s"
                 "  gc [-c FILE] [--dry-run] [--grace DURATION]\n"
                 "                    remove blobs no manifest references, and repository\n"
                 "                    links no manifest of the repository references, when\n"
                 "                    older than the grace period (default 24h); safe while\n"
                 "                    servers run (rules in README.md)\n"
                 "  version           print the version and the h2o berth was built with\n"
                 "  help              print this help\n"
                 "\n"
                 "options:\n"
                 "  -c, --config FILE   YAML configuration (see config.example.yaml)\n",
            berth_client_usage);
}

/* 1 when argv[*i] is -c FILE, --config FILE or --config=FILE (taking its
 * value into *path and moving *i past it), else 0. */
static int config_arg(int argc, char **argv, int *i, const char **path)
{
    if ((strcmp(argv[*i], "-c") == 0 || strcmp(argv[*i], "--config") == 0) && *i + 1 < argc) {
        *path = argv[++*i];
        return 1;
    }
    if (strncmp(argv[*i], "--config=", 9) == 0) {
        *path = argv[*i] + 9;
        return 1;
    }
    return 0;
}

/* The defaults, then the file at `path` when given; 0, or 2 (the exit
 * status) with the error printed and cfg cleared. */
static int config_load(berth_config_t *cfg, const char *path)
{
    berth_config_defaults(cfg);
    if (path != NULL && berth_config_load(cfg, path) != 0) {
        fprintf(stderr, "berth: %s\n", berth_error_last());
        berth_config_clear(cfg);
        return 2;
    }
    return 0;
}

static int cmd_serve(int argc, char **argv)
{
    const char *path = NULL;
    berth_config_t cfg;
    int rc;

    for (int i = 0; i < argc; i++) {
        if (config_arg(argc, argv, &i, &path)) {
            continue;
        } else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            usage(stdout);
            return 0;
        } else {
            fprintf(stderr, "berth serve: unexpected argument '%s'\n", argv[i]);
            usage(stderr);
            return 2;
        }
    }

    if (config_load(&cfg, path) != 0)
        return 2;
    rc = berth_server_run(&cfg);
    berth_config_clear(&cfg);
    return rc;
}

static void gc_report(void *ctx, const char *repo, const char *digest, uint64_t size)
{
    const char *verb = *(const int *)ctx ? "would remove" : "remove";

    if (repo != NULL)
        printf("%s link %s %s\n", verb, repo, digest);
    else
        printf("%s blob %s (%" PRIu64 " bytes)\n", verb, digest, size);
}

static int cmd_gc(int argc, char **argv)
{
    const char *path = NULL;
    berth_config_t cfg;
    berth_storage_t *storage = NULL;
    berth_gc_options_t o = {.grace_s = 24 * 3600};
    berth_gc_stats_t st;
    uint64_t ms;
    int rc = 1;

    for (int i = 0; i < argc; i++) {
        if (config_arg(argc, argv, &i, &path)) {
            continue;
        } else if (strcmp(argv[i], "--dry-run") == 0 || strcmp(argv[i], "-n") == 0) {
            o.dry_run = 1;
        } else if (strcmp(argv[i], "--grace") == 0 && i + 1 < argc) {
            if (berth_parse_duration_ms(argv[++i], &ms) != 0) {
                fprintf(stderr, "berth gc: --grace: expected a duration such as 24h, 30m or 0s\n");
                return 2;
            }
            o.grace_s = (int64_t)(ms / 1000);
        } else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            usage(stdout);
            return 0;
        } else {
            fprintf(stderr, "berth gc: unexpected argument '%s'\n", argv[i]);
            usage(stderr);
            return 2;
        }
    }
    if (config_load(&cfg, path) != 0)
        return 2;
    if (berth_storage_open(&storage, &cfg) != 0) {
        fprintf(stderr, "berth gc: storage: %s\n", berth_error_last());
        goto done;
    }
    o.storage = storage;
    o.now = (int64_t)time(NULL);
    o.report = gc_report;
    o.ctx = &o.dry_run;
    if (berth_gc_run(&o, &st) != 0) {
        fprintf(stderr, "berth gc: %s\n", berth_error_last());
        goto done;
    }
    printf("gc: %zu manifest(s) in %zu repositor%s, %zu blob(s); %s %zu blob(s) (%" PRIu64 " bytes) and %zu link(s)\n",
           st.manifests, st.repositories, st.repositories == 1 ? "y" : "ies", st.blobs,
           o.dry_run ? "would remove" : "removed", st.blobs_removed, st.bytes_removed, st.links_removed);
    rc = 0;

done:
    berth_storage_free(storage);
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
    if (strcmp(argv[1], "gc") == 0)
        return cmd_gc(argc - 2, argv + 2);
    if (strcmp(argv[1], "version") == 0 || strcmp(argv[1], "--version") == 0) {
        printf("berth %s\nh2o %s (%s)\nrequest bodies: %s\n", BERTH_VERSION, berth_server_h2o_version(),
               berth_server_h2o_origin(), berth_server_request_bodies());
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

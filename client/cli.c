/*
 * Client options and retry policy. See cli.h.
 */
#include "client/cli.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "client/client.h"
#include "client/ref.h"
#include "core/config.h"
#include "core/error.h"
#include "core/validate.h"

const char berth_client_usage[] =
    "  push FILE REGISTRY/REPO         upload FILE as a blob of REPO, resuming by itself;\n"
    "                                  prints the digest on stdout\n"
    "      --chunk-size SIZE           OCI chunk size (default 16MiB)\n"
    "      --parts N [--parallel P]    use berth's part-session API: N parts over P\n"
    "                                  connections (default 4)\n"
    "      --digest sha256:...         the file's digest, when known (HEAD before upload)\n"
    "  status URL [--json]             state of an upload session (OCI or parts)\n"
    "  pull REGISTRY/REPO@DIGEST FILE  download a blob, resuming a partial FILE\n"
    "  client options: -u/--user USER[:PASSWORD] (or BERTH_USER, BERTH_PASSWORD),\n"
    "      -k/--insecure, --retries N (default 8), --timeout SECS (stall, default 30),\n"
    "      -q/--quiet, -v/--verbose\n"
    "  REGISTRY is host[:port] (http for loopback hosts, else https) or an\n"
    "  http:// or https:// URL; resume state lives in $XDG_CACHE_HOME/berth/\n";

static int cli__usage(const char *cmd, const char *fmt, const char *arg)
{
    fprintf(stderr, "berth %s: ", cmd);
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\nusage: berth <command> [options]\n%s", berth_client_usage);
    return 2;
}

static int cli__uint(const char *s, unsigned lo, unsigned hi, unsigned *out)
{
    char *e;
    errno = 0;
    unsigned long v = strtoul(s, &e, 10);
    if (errno != 0 || e == s || *e != '\0' || v < lo || v > hi)
        return -1;
    *out = (unsigned)v;
    return 0;
}

int berth_cli_parse(berth_cli_t *c, const char *cmd, int argc, char **argv, int npos)
{
    const char *user = NULL;
    unsigned u;

    memset(c, 0, sizeof(*c));
    c->retries = 8;
    c->chunk_size = 16u << 20;
    c->parallel = 4;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        static const char *const valued[] = {"-u",      "--user",     "--retries", "--timeout", "--chunk-size",
                                             "--parts", "--parallel", "--digest",  NULL};
        for (const char *const *p = valued; *p != NULL; p++)
            if (strcmp(a, *p) == 0 && v == NULL)
                return cli__usage(cmd, "%s needs a value", a);
#define TAKES(name) (strcmp(a, name) == 0 && ++i)
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            printf("usage: berth <command> [options]\n%s", berth_client_usage);
            return -1;
        } else if (strcmp(a, "-q") == 0 || strcmp(a, "--quiet") == 0) {
            c->quiet = 1;
        } else if (strcmp(a, "-v") == 0 || strcmp(a, "--verbose") == 0) {
            c->http.verbose = 1;
        } else if (strcmp(a, "-k") == 0 || strcmp(a, "--insecure") == 0) {
            c->http.insecure = 1;
        } else if (strcmp(a, "--json") == 0 && strcmp(cmd, "status") == 0) {
            c->json = 1;
        } else if (TAKES("-u") || TAKES("--user")) {
            user = v;
        } else if (TAKES("--retries")) {
            if (cli__uint(v, 0, 1000, &c->retries) != 0)
                return cli__usage(cmd, "--retries: '%s' is not a number 0..1000", v);
        } else if (TAKES("--timeout")) {
            if (cli__uint(v, 1, 86400, &u) != 0)
                return cli__usage(cmd, "--timeout: '%s' is not a number of seconds 1..86400", v);
            c->http.timeout_s = u;
        } else if (strcmp(cmd, "push") == 0 && TAKES("--chunk-size")) {
            if (berth_parse_size(v, &c->chunk_size) != 0 || c->chunk_size == 0)
                return cli__usage(cmd, "--chunk-size: '%s' is not a size (16MiB, 4194304, ...)", v);
        } else if (strcmp(cmd, "push") == 0 && TAKES("--parts")) {
            if (cli__uint(v, 1, 10000, &c->parts) != 0)
                return cli__usage(cmd, "--parts: '%s' is not a number 1..10000", v);
        } else if (strcmp(cmd, "push") == 0 && TAKES("--parallel")) {
            if (cli__uint(v, 1, 64, &c->parallel) != 0)
                return cli__usage(cmd, "--parallel: '%s' is not a number 1..64", v);
        } else if (strcmp(cmd, "push") == 0 && TAKES("--digest")) {
            if (!berth_digest_valid(v, strlen(v)))
                return cli__usage(cmd, "--digest: '%s' is not sha256:<64 hex>", v);
            strcpy(c->digest, v);
        } else if (a[0] == '-' && a[1] != '\0') {
            return cli__usage(cmd, "unknown option '%s'", a);
        } else {
            if (c->npos >= npos)
                return cli__usage(cmd, "unexpected argument '%s'", a);
            c->pos[c->npos++] = a;
        }
#undef TAKES
    }
    if (c->npos != npos)
        return cli__usage(cmd, "%s", npos == 1 ? "expected one argument" : "expected two arguments");
    if (user == NULL)
        user = getenv("BERTH_USER");
    if (user != NULL && *user != '\0') {
        if ((c->user_buf = strdup(user)) == NULL)
            return 1;
        char *colon = strchr(c->user_buf, ':');
        c->http.user = c->user_buf;
        if (colon != NULL) {
            *colon = '\0';
            c->http.password = colon + 1;
        } else {
            c->http.password = getenv("BERTH_PASSWORD");
        }
    }
    return 0;
}

void berth_cli_clear(berth_cli_t *c)
{
    free(c->user_buf);
    memset(c, 0, sizeof(*c));
}

double berth_cli_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void berth_cli_backoff(unsigned attempt)
{
    static __thread unsigned seed;
    const char *b = getenv("BERTH_RETRY_BASE_MS");
    uint64_t base = b != NULL && *b ? strtoull(b, NULL, 10) : 200;

    if (seed == 0)
        seed = (unsigned)time(NULL) ^ (unsigned)getpid() ^ (unsigned)(uintptr_t)&seed;
    uint64_t ms = berth_backoff_ms(attempt, base, 10000, (uint64_t)rand_r(&seed));
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

int berth_cli_retryable(int err, long status)
{
    if (err == BERTH_EUNAVAILABLE)
        return 1;
    if (err != 0)
        return 0;
    return status >= 500 || status == 408 || status == 429 || status == 416;
}

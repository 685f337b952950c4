/*
 * Options shared by the client commands, and the retry policy.
 */
#ifndef BERTH_CLIENT_CLI_H
#define BERTH_CLIENT_CLI_H

#include <stdint.h>

#include "client/http.h"
#include "core/digest.h"

typedef struct berth_cli {
    berth_http_options_t http;
    unsigned retries;    /* consecutive failed attempts allowed without progress (default 8) */
    uint64_t chunk_size; /* push, OCI mode (default 16 MiB) */
    unsigned parts;      /* push --parts N (0: OCI mode) */
    unsigned parallel;   /* push --parallel P (default 4) */
    int quiet;
    int json;                      /* status --json */
    char digest[BERTH_DIGEST_LEN]; /* push --digest */
    const char *pos[2];            /* positional arguments */
    int npos;
    /* private */
    char *user_buf;
} berth_cli_t;

/* Parses argv (after the command name) for `cmd`, expecting `npos`
 * positional arguments. Returns 0, or the exit code to return at once
 * (2 after a usage message; -1 for --help, printed: exit 0). */
int berth_cli_parse(berth_cli_t *c, const char *cmd, int argc, char **argv, int npos);
void berth_cli_clear(berth_cli_t *c);

/* Sleeps before retry `attempt` (1-based): exponential backoff with jitter,
 * from 200 ms (BERTH_RETRY_BASE_MS overrides) up to 10 s. */
void berth_cli_backoff(unsigned attempt);

/* Whether a failed request is worth retrying after a status call: a
 * transport error (err == BERTH_EUNAVAILABLE), 5xx, 408, 429 or 416. */
int berth_cli_retryable(int err, long status);

/* Monotonic seconds. */
double berth_cli_now(void);

#endif

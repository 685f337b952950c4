/*
 * What `berth push` shares between its two modes (push.c: OCI chunked,
 * parts.c: berth's part-session API).
 */
#ifndef BERTH_CLIENT_PUSH_H
#define BERTH_CLIENT_PUSH_H

#include <stdint.h>

#include "client/cli.h"
#include "client/http.h"
#include "client/progress.h"
#include "client/ref.h"
#include "client/state.h"

typedef struct berth_push {
    berth_cli_t *cli;
    berth_ref_t ref;
    berth_http_t *http; /* the main connection */
    berth_progress_t prog;
    int fd;
    uint64_t size;
    int64_t mtime_ns;
    char *path;       /* absolute */
    char *state_path; /* this mode's state file */
    berth_upload_state_t st;
    char digest[BERTH_DIGEST_LEN]; /* the result (or known beforehand) */
    _Atomic uint64_t sent;         /* request body bytes sent, retries included */
    _Atomic unsigned retries;      /* retries done, all kinds */
} berth_push_t;

/* HEAD /v2/<repo>/blobs/<digest>: 1 when the registry has it, 0 when not,
 * < 0 when the answer says the request itself is wrong (401, 403). */
int berth__push_blob_exists(berth_push_t *p, const char *digest);

/* Reads [from, to) of the file into h (the catch-up after a resume). */
int berth__push_hash_range(berth_push_t *p, berth_sha256_t *h, uint64_t from, uint64_t to);

/* The two modes: 0 with p->digest set, or < 0 with the error recorded. */
int berth__push_oci(berth_push_t *p);
int berth__push_parts(berth_push_t *p);

/* Prints "berth push: <what>: <status> <error body>" from a response. */
void berth__push_report(const char *what, int err, const berth_http_resp_t *r);

#endif

/*
 * berth pull REGISTRY/REPO@DIGEST FILE: HEAD for the size, then GET with
 * `Range: bytes=<have>-` into FILE, hashing as it is written; after a cut
 * the next request starts where the file ends. A partial FILE from an
 * earlier run is hashed once and continued.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "client/cli.h"
#include "client/client.h"
#include "client/http.h"
#include "client/progress.h"
#include "client/ref.h"
#include "client/state.h"
#include "core/error.h"

typedef struct pull {
    berth_progress_t prog;
    uint64_t start;
} pull_t;

static void pull__on_progress(void *ctx, uint64_t request_bytes)
{
    pull_t *pl = ctx;
    berth_progress_set(&pl->prog, pl->start + request_bytes);
}

static int pull__hash_file(int fd, berth_sha256_t *h, uint64_t n)
{
    char *buf = malloc(1u << 20);
    uint64_t at = 0;

    if (buf == NULL)
        return berth_error_set(BERTH_ERR, "out of memory");
    while (at < n) {
        size_t want = n - at < (1u << 20) ? (size_t)(n - at) : (1u << 20);
        ssize_t got = pread(fd, buf, want, (off_t)at);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0) {
            free(buf);
            return berth_error_set(BERTH_EIO, "reading the partial file: %s", got < 0 ? strerror(errno) : "short");
        }
        berth_sha256_update(h, buf, (size_t)got);
        at += (uint64_t)got;
    }
    free(buf);
    return 0;
}

int berth_client_pull(int argc, char **argv)
{
    berth_cli_t cli;
    berth_ref_t ref;
    berth_http_t *http = NULL;
    berth_http_resp_t r;
    pull_t pl;
    char *url = NULL, got[BERTH_DIGEST_LEN];
    int fd = -1, rc = 1, err, prog = 0;
    unsigned failures = 0, retries = 0;
    uint64_t size, have = 0, sent_bytes = 0;
    berth_sha256_t h;
    struct stat sb;

    memset(&r, 0, sizeof(r));
    memset(&ref, 0, sizeof(ref));
    if ((rc = berth_cli_parse(&cli, "pull", argc, argv, 2)) != 0)
        return rc < 0 ? 0 : rc;
    rc = 1;
    if (berth_ref_parse(&ref, cli.pos[0], 1) != 0) {
        fprintf(stderr, "berth pull: %s\n", berth_error_last());
        berth_cli_clear(&cli);
        return 2;
    }
    if (berth_http_global_init() != 0 || berth_http_new(&http, &cli.http) != 0 ||
        asprintf(&url, "%s/v2/%s/blobs/%s", ref.base, ref.repo, ref.digest) < 0) {
        url = NULL;
        fprintf(stderr, "berth pull: %s\n", berth_error_last());
        goto out;
    }
    /* The size. */
    for (unsigned attempt = 1;; attempt++) {
        err = berth_http_request(http, "HEAD", url, NULL, NULL, NULL, &r);
        if (err == 0 && r.status == 200 && r.content_length >= 0)
            break;
        if (!berth_cli_retryable(err, r.status) || attempt > cli.retries) {
            if (err < 0)
                fprintf(stderr, "berth pull: %s\n", berth_error_last());
            else if (r.status == 404)
                fprintf(stderr, "berth pull: %s has no blob %s\n", ref.repo, ref.digest);
            else
                fprintf(stderr, "berth pull: HEAD %s: HTTP %ld\n", url, r.status);
            goto out;
        }
        berth_http_resp_clear(&r);
        retries++;
        berth_cli_backoff(attempt);
    }
    size = (uint64_t)r.content_length;
    berth_http_resp_clear(&r);

    if ((fd = open(cli.pos[1], O_RDWR | O_CREAT | O_CLOEXEC, 0644)) < 0 || fstat(fd, &sb) != 0) {
        fprintf(stderr, "berth pull: %s: %s\n", cli.pos[1], strerror(errno));
        goto out;
    }
    have = (uint64_t)sb.st_size;
    berth_sha256_init(&h);
    if (have > size) {
        /* Not a prefix of this blob: start over. */
        if (ftruncate(fd, 0) != 0) {
            fprintf(stderr, "berth pull: %s: %s\n", cli.pos[1], strerror(errno));
            goto out;
        }
        have = 0;
    }
    if (have > 0 && pull__hash_file(fd, &h, have) != 0) {
        fprintf(stderr, "berth pull: %s\n", berth_error_last());
        goto out;
    }
    berth_progress_init(&pl.prog, berth_progress_mode_for_stderr(cli.quiet), "pull", size);
    prog = 1;
    berth_progress_resumed(&pl.prog, have);
    if (have > 0)
        berth_progress_note(&pl.prog, "resuming %s at %llu bytes", cli.pos[1], (unsigned long long)have);

    while (have < size) {
        char range[80];
        const char *hdrs[] = {range, NULL};
        berth_http_sink_t sink = {.fd = fd, .off = have, .hash = &h, .on_progress = pull__on_progress, .ctx = &pl};
        snprintf(range, sizeof(range), "Range: bytes=%llu-", (unsigned long long)have);
        pl.start = have;
        err = berth_http_request(http, "GET", url, hdrs, NULL, &sink, &r);
        sent_bytes += sink.got;
        if (err == 0 && r.status == 200 && have > 0) {
            /* The server ignored the Range and sent everything from 0:
             * the bytes landed at `have` onwards, which is wrong. Restart. */
            berth_sha256_init(&h);
            have = 0;
            if (ftruncate(fd, 0) != 0) {
                fprintf(stderr, "berth pull: %s: %s\n", cli.pos[1], strerror(errno));
                goto out;
            }
            berth_http_resp_clear(&r);
            if (++failures > cli.retries)
                goto fail;
            continue;
        }
        if (sink.got > 0)
            failures = 0;
        have = sink.off;
        if (err == 0 && (r.status == 206 || r.status == 200) && have >= size) {
            berth_http_resp_clear(&r);
            break;
        }
        if (err == BERTH_EIO) {
            fprintf(stderr, "berth pull: %s\n", berth_error_last());
            goto out;
        }
        if (err == 0 && (r.status == 206 || r.status == 200)) {
            /* Ended early without an error: treat as a cut. */
        } else if (!berth_cli_retryable(err, r.status)) {
            char msg[300];
            fprintf(stderr, "berth pull: GET %s: HTTP %ld %s\n", url, r.status,
                    berth_http_resp_error(&r, msg, sizeof(msg)));
            goto out;
        }
        if (++failures > cli.retries) {
        fail:
            berth_progress_finish(&pl.prog);
            fprintf(stderr, "berth pull: giving up after %u retries (%s); run again to resume\n", cli.retries,
                    err < 0 ? berth_error_last() : "no progress");
            goto out;
        }
        retries++;
        berth_progress_retry(&pl.prog, err < 0 ? berth_error_last() : "download ended early, resuming");
        berth_http_resp_clear(&r);
        berth_cli_backoff(failures);
        berth_progress_resumed(&pl.prog, have);
    }
    if (have > size && ftruncate(fd, (off_t)size) != 0) {
        fprintf(stderr, "berth pull: %s: %s\n", cli.pos[1], strerror(errno));
        goto out;
    }
    berth_sha256_digest(&h, got);
    berth_progress_set(&pl.prog, size);
    berth_progress_finish(&pl.prog);
    if (strcmp(got, ref.digest) != 0) {
        fprintf(stderr, "berth pull: %s has digest %s, not %s: removed\n", cli.pos[1], got, ref.digest);
        close(fd);
        fd = -1;
        unlink(cli.pos[1]);
        goto out;
    }
    if (fsync(fd) != 0 || fstat(fd, &sb) != 0) {
        fprintf(stderr, "berth pull: %s: %s\n", cli.pos[1], strerror(errno));
        goto out;
    }
    {
        char *abs = realpath(cli.pos[1], NULL);
        if (abs != NULL)
            berth_digest_cache_put(abs, size, (int64_t)sb.st_mtim.tv_sec * 1000000000 + sb.st_mtim.tv_nsec, got);
        free(abs);
    }
    if (!cli.quiet)
        fprintf(stderr, "berth: pulled %s: %llu bytes, %llu bytes received, %u retries\n", got,
                (unsigned long long)size, (unsigned long long)sent_bytes, retries);
    printf("%s\n", got);
    rc = 0;
out:
    if (prog)
        berth_progress_destroy(&pl.prog);
    if (fd >= 0)
        close(fd);
    berth_http_resp_clear(&r);
    berth_http_free(http);
    berth_http_global_cleanup();
    free(url);
    berth_ref_clear(&ref);
    berth_cli_clear(&cli);
    return rc;
}

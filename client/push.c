/*
 * berth push: the common part, and the OCI chunked mode.
 *
 * OCI mode sends the file in PATCHes of --chunk-size with Content-Range,
 * hashing each byte as libcurl reads it (no second read of the file), and
 * keeps two hash states: `acked`, the bytes the server acknowledged, and
 * `work`, those of the chunk in flight. After a failure the status call
 * tells where the server is; the hash state is matched to that offset
 * (see push__resync) and sending continues from there.
 */
#include "client/push.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "client/client.h"
#include "core/error.h"

void berth__push_report(const char *what, int err, const berth_http_resp_t *r)
{
    char msg[300];

    if (err < 0)
        berth_error_set(err, "%s: %s", what, berth_error_last());
    else
        berth_error_set(BERTH_ERR, "%s: HTTP %ld%s%s", what, r->status, r->body_len ? " " : "",
                        berth_http_resp_error(r, msg, sizeof(msg)));
}

int berth__push_blob_exists(berth_push_t *p, const char *digest)
{
    berth_http_resp_t r;
    char *url = NULL;
    int rc = 0;

    if (asprintf(&url, "%s/v2/%s/blobs/%s", p->ref.base, p->ref.repo, digest) < 0)
        return berth_error_set(BERTH_ERR, "out of memory");
    for (unsigned attempt = 1;; attempt++) {
        int err = berth_http_request(p->http, "HEAD", url, NULL, NULL, NULL, &r);
        if (err == 0 && r.status == 200) {
            rc = 1;
        } else if (err == 0 && (r.status == 401 || r.status == 403)) {
            rc = berth_error_set(BERTH_EINVALID, "HEAD %s: HTTP %ld (credentials: --user or BERTH_USER/BERTH_PASSWORD)",
                                 url, r.status);
        } else if (berth_cli_retryable(err, r.status) && attempt <= p->cli->retries) {
            berth_http_resp_clear(&r);
            p->retries++;
            berth_progress_retry(&p->prog, err < 0 ? berth_error_last() : "HEAD: server error, retrying");
            berth_cli_backoff(attempt);
            continue;
        } else if (err < 0) {
            rc = err;
        }
        break;
    }
    berth_http_resp_clear(&r);
    free(url);
    return rc;
}

int berth__push_hash_range(berth_push_t *p, berth_sha256_t *h, uint64_t from, uint64_t to)
{
    size_t cap = 1u << 20;
    char *buf = malloc(cap);

    if (buf == NULL)
        return berth_error_set(BERTH_ERR, "out of memory");
    while (from < to) {
        size_t n = to - from < cap ? (size_t)(to - from) : cap;
        ssize_t got = pread(p->fd, buf, n, (off_t)from);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0) {
            free(buf);
            return berth_error_set(BERTH_EIO, "reading %s: %s", p->path, got < 0 ? strerror(errno) : "file shrank");
        }
        berth_sha256_update(h, buf, (size_t)got);
        from += (uint64_t)got;
    }
    free(buf);
    return 0;
}

/* ------------------------------------------------------------- OCI mode */

typedef struct oci {
    berth_push_t *p;
    char *loc;            /* absolute session URL */
    uint64_t off;         /* acknowledged offset */
    berth_sha256_t acked; /* hash of [0, off) */
    berth_sha256_t work;  /* hash of [0, work_pos), the chunk in flight */
    uint64_t work_pos;
    uint64_t chunk_start;
} oci_t;

static void oci__on_progress(void *ctx, uint64_t request_bytes)
{
    oci_t *o = ctx;
    berth_progress_set(&o->p->prog, o->chunk_start + request_bytes);
}

static int oci__save(oci_t *o)
{
    berth_push_t *p = o->p;

    free(p->st.url);
    if ((p->st.url = strdup(o->loc)) == NULL)
        return berth_error_set(BERTH_ERR, "out of memory");
    p->st.offset = o->off;
    berth_sha256_save(&o->acked, p->st.hash);
    return berth_state_save(p->state_path, &p->st);
}

static int oci__set_location(oci_t *o, const char *location)
{
    char *abs;

    if (location == NULL || *location == '\0')
        return 0;
    if ((abs = berth_url_resolve(o->p->ref.base, location)) == NULL)
        return berth_error_set(BERTH_ERR, "out of memory");
    free(o->loc);
    o->loc = abs;
    return 0;
}

/* POST a new session. */
static int oci__open(oci_t *o)
{
    berth_push_t *p = o->p;
    berth_http_resp_t r;
    char *url = NULL;
    int err;

    if (asprintf(&url, "%s/v2/%s/blobs/uploads/", p->ref.base, p->ref.repo) < 0)
        return berth_error_set(BERTH_ERR, "out of memory");
    for (unsigned attempt = 1;; attempt++) {
        err = berth_http_request(p->http, "POST", url, NULL, NULL, NULL, &r);
        if (err == 0 && r.status == 202 && r.location != NULL)
            break;
        if (!berth_cli_retryable(err, r.status) || attempt > p->cli->retries) {
            berth__push_report("POST (open an upload session)", err, &r);
            err = err < 0 ? err : BERTH_ERR;
            goto done;
        }
        p->retries++;
        berth_progress_retry(&p->prog, "opening the session failed, retrying");
        berth_http_resp_clear(&r);
        berth_cli_backoff(attempt);
    }
    free(o->loc);
    o->loc = NULL;
    if ((err = oci__set_location(o, r.location)) < 0)
        goto done;
    o->off = 0;
    berth_sha256_init(&o->acked);
    berth_progress_resumed(&p->prog, 0);
    err = oci__save(o);
    berth_progress_note(&p->prog, "session %s (HTTP/%s)", o->loc, r.http_version == 2 ? "2" : "1.1");
done:
    berth_http_resp_clear(&r);
    free(url);
    return err;
}

/* Status call: the server's offset into *s. BERTH_ENOTFOUND when the
 * session is gone; BERTH_EUNAVAILABLE (retryable) on transport errors and
 * 5xx. */
static int oci__status(oci_t *o, uint64_t *s)
{
    berth_http_resp_t r;
    int err = berth_http_request(o->p->http, "GET", o->loc, NULL, NULL, NULL, &r);

    if (err == 0) {
        if (r.status == 204 || r.status == 200) {
            err = berth_oci_range_offset(r.range != NULL ? r.range : "0-0", o->off >= 1, s);
            if (err == 0)
                err = oci__set_location(o, r.location);
        } else if (r.status == 404) {
            err = berth_error_set(BERTH_ENOTFOUND, "the server no longer knows session %s", o->loc);
        } else if (berth_cli_retryable(0, r.status)) {
            err = berth_error_set(BERTH_EUNAVAILABLE, "status: HTTP %ld", r.status);
        } else {
            berth__push_report("status", 0, &r);
            err = BERTH_ERR;
        }
    }
    berth_http_resp_clear(&r);
    return err;
}

/* Moves to the server's offset s: adopts the in-flight hash when the chunk
 * did land, re-reads the few bytes between a known state and s otherwise
 * (only when the server's offset is not on a chunk boundary the client
 * saw, e.g. after a client restart with a stale state file). */
static int oci__resync(oci_t *o, uint64_t s)
{
    berth_push_t *p = o->p;
    int err = 0;

    if (s > p->size)
        return berth_error_set(BERTH_ERANGE, "the server holds %llu bytes, more than the file's %llu",
                               (unsigned long long)s, (unsigned long long)p->size);
    if (s == o->off) {
        /* nothing arrived: the acked state stands */
    } else if (s == o->work_pos && s > o->off) {
        o->acked = o->work;
    } else if (s > o->off) {
        berth_sha256_t h = o->acked;
        uint64_t from = o->off;
        if (o->work_pos > o->off && o->work_pos <= s) {
            h = o->work;
            from = o->work_pos;
        }
        if ((err = berth__push_hash_range(p, &h, from, s)) < 0)
            return err;
        o->acked = h;
    } else {
        berth_progress_note(&p->prog, "the server went back to %llu bytes (it lost data): rehashing the start",
                            (unsigned long long)s);
        berth_sha256_init(&o->acked);
        if ((err = berth__push_hash_range(p, &o->acked, 0, s)) < 0)
            return err;
    }
    o->off = s;
    o->work = o->acked;
    o->work_pos = s;
    berth_progress_resumed(&p->prog, s);
    return oci__save(o);
}

/* After a failure: back off, ask the status, resync. Returns 0 to go on,
 * BERTH_ENOTFOUND when the session is gone, < 0 when out of retries. */
static int oci__recover(oci_t *o, unsigned *failures, const char *why)
{
    berth_push_t *p = o->p;
    uint64_t s;
    int err;

    for (;;) {
        if (++*failures > p->cli->retries)
            return berth_error_set(BERTH_EUNAVAILABLE, "giving up after %u retries: %s", p->cli->retries, why);
        p->retries++;
        berth_progress_retry(&p->prog, why);
        berth_cli_backoff(*failures);
        err = oci__status(o, &s);
        if (err == 0)
            return oci__resync(o, s);
        if (err != BERTH_EUNAVAILABLE)
            return err;
        why = berth_error_last();
    }
}

static int oci__finish(oci_t *o, const char *digest, unsigned *failures, int *done)
{
    berth_push_t *p = o->p;
    berth_http_resp_t r;
    char q[BERTH_DIGEST_LEN + 8], *url;
    int err;

    *done = 0;
    snprintf(q, sizeof(q), "digest=%s", digest);
    if ((url = berth_url_add_query(o->loc, q)) == NULL)
        return berth_error_set(BERTH_ERR, "out of memory");
    err = berth_http_request(p->http, "PUT", url, NULL, NULL, NULL, &r);
    free(url);
    if (err == 0 && r.status == 201) {
        if (r.digest != NULL && strcmp(r.digest, digest) != 0)
            err = berth_error_set(BERTH_EDIGEST, "the registry stored %s, the file is %s", r.digest, digest);
        else
            *done = 1;
    } else if (err == 0 && r.status == 400) {
        berth__push_report("PUT (complete)", 0, &r);
        err = BERTH_EDIGEST;
    } else if (err == 0 && r.status == 404) {
        /* A lost 201: the session is gone because the blob is done. */
        int have = berth__push_blob_exists(p, digest);
        if (have == 1)
            *done = 1;
        else
            err = have < 0 ? have : BERTH_ENOTFOUND;
    } else if (berth_cli_retryable(err, r.status)) {
        char why[600];
        snprintf(why, sizeof(why), "completing: %s", err < 0 ? berth_error_last() : "server error");
        if (++*failures > p->cli->retries) {
            err = berth_error_set(BERTH_EUNAVAILABLE, "giving up after %u retries: %s", p->cli->retries, why);
        } else {
            p->retries++;
            berth_progress_retry(&p->prog, why);
            berth_cli_backoff(*failures);
            err = berth__push_blob_exists(p, digest) == 1 ? (*done = 1, 0) : 0;
            if (!*done) {
                uint64_t s;
                int e2 = oci__status(o, &s);
                if (e2 == 0)
                    err = oci__resync(o, s);
                else if (e2 != BERTH_EUNAVAILABLE)
                    err = e2;
            }
        }
    } else {
        berth__push_report("PUT (complete)", err, &r);
        err = err < 0 ? err : BERTH_ERR;
    }
    berth_http_resp_clear(&r);
    return err;
}

int berth__push_oci(berth_push_t *p)
{
    oci_t o = {p};
    unsigned failures = 0, restarts = 0;
    berth_http_resp_t r;
    int err = 0, loaded = 0;

    memset(&r, 0, sizeof(r));
    if (p->st.url != NULL) {
        /* A state file from an earlier run: continue its session. */
        if ((o.loc = strdup(p->st.url)) == NULL)
            return berth_error_set(BERTH_ERR, "out of memory");
        berth_sha256_init(&o.acked);
        o.off = 0;
        if (p->st.hash[0] && berth_sha256_restore(&o.acked, p->st.hash) == 0 &&
            berth_sha256_length(&o.acked) == p->st.offset) {
            o.off = p->st.offset;
        } else {
            berth_sha256_init(&o.acked);
        }
        o.work = o.acked;
        o.work_pos = o.off;
        uint64_t s = 0;
        for (unsigned attempt = 1;; attempt++) {
            err = oci__status(&o, &s);
            if (err != BERTH_EUNAVAILABLE || attempt > p->cli->retries)
                break;
            p->retries++;
            berth_progress_retry(&p->prog, berth_error_last());
            berth_cli_backoff(attempt);
        }
        if (err == 0 && (err = oci__resync(&o, s)) == 0) {
            loaded = 1;
            berth_progress_note(&p->prog, "resuming session %s at %llu bytes", o.loc, (unsigned long long)s);
        } else if (err == BERTH_ENOTFOUND || err == BERTH_ERANGE) {
            berth_progress_note(&p->prog, "%s: starting a new session", berth_error_last());
            err = 0;
        } else {
            goto done;
        }
    }
    if (!loaded && (err = oci__open(&o)) < 0)
        goto done;

    for (;;) {
        while (o.off < p->size) {
            uint64_t n = p->size - o.off < p->cli->chunk_size ? p->size - o.off : p->cli->chunk_size;
            char cr[80];
            const char *hdrs[] = {cr, NULL};
            berth_http_body_t body = {.fd = p->fd,
                                      .off = o.off,
                                      .len = n,
                                      .hash = &o.work,
                                      .hash_pos = &o.work_pos,
                                      .on_progress = oci__on_progress,
                                      .ctx = &o};

            snprintf(cr, sizeof(cr), "Content-Range: %llu-%llu", (unsigned long long)o.off,
                     (unsigned long long)(o.off + n - 1));
            o.work = o.acked;
            o.work_pos = o.off;
            o.chunk_start = o.off;
            err = berth_http_request(p->http, "PATCH", o.loc, hdrs, &body, NULL, &r);
            atomic_fetch_add(&p->sent, body.pos);
            if (err == 0 && r.status == 202) {
                uint64_t s;
                if ((err = oci__set_location(&o, r.location)) < 0)
                    goto done;
                if (r.range != NULL && berth_oci_range_offset(r.range, 1, &s) == 0 && s != o.off + n) {
                    /* The server counts differently: believe it. */
                    if ((err = oci__resync(&o, s)) < 0)
                        goto done;
                } else {
                    o.acked = o.work;
                    o.off += n;
                    if ((err = oci__save(&o)) < 0)
                        goto done;
                }
                failures = 0;
                berth_http_resp_clear(&r);
                continue;
            }
            if (err == BERTH_EIO)
                goto done;
            if (err == 0 && r.status == 404) {
                err = BERTH_ENOTFOUND;
            } else if (berth_cli_retryable(err, r.status)) {
                char why[600];
                snprintf(why, sizeof(why), "chunk at %llu: %s", (unsigned long long)o.off,
                         err < 0           ? berth_error_last()
                         : r.status == 416 ? "HTTP 416 (not at the server's offset)"
                                           : "server error");
                berth_http_resp_clear(&r);
                err = oci__recover(&o, &failures, why);
            } else {
                berth__push_report("PATCH", err, &r);
                err = err < 0 ? err : BERTH_ERR;
                goto done;
            }
            berth_http_resp_clear(&r);
            if (err == BERTH_ENOTFOUND || err == BERTH_ERANGE) {
                /* The session expired or was cancelled: nothing to resume. */
                if (++restarts > p->cli->retries)
                    goto done;
                berth_progress_note(&p->prog, "%s: starting over in a new session", berth_error_last());
                if ((err = oci__open(&o)) < 0)
                    goto done;
            } else if (err < 0) {
                goto done;
            }
        }
        /* Every byte is acknowledged: o.acked is the whole file's hash. */
        int finished = 0;
        berth_sha256_digest(&o.acked, p->digest);
        err = oci__finish(&o, p->digest, &failures, &finished);
        if (finished)
            break;
        if (err == BERTH_ENOTFOUND) {
            if (++restarts > p->cli->retries)
                goto done;
            if ((err = oci__open(&o)) < 0)
                goto done;
        } else if (err < 0) {
            goto done;
        }
    }
    err = 0;
done:
    berth_http_resp_clear(&r);
    free(o.loc);
    return err;
}

/* ------------------------------------------------------------- command */

int berth_client_push(int argc, char **argv)
{
    berth_cli_t cli;
    berth_push_t p;
    struct stat sb;
    int rc, err = 0, have;
    double t0;
    char *abs = NULL;

    if ((rc = berth_cli_parse(&cli, "push", argc, argv, 2)) != 0)
        return rc < 0 ? 0 : rc;
    memset(&p, 0, sizeof(p));
    p.cli = &cli;
    if (berth_http_global_init() != 0) {
        fprintf(stderr, "berth push: %s\n", berth_error_last());
        berth_cli_clear(&cli);
        return 1;
    }
    p.fd = -1;
    rc = 1;
    if (berth_ref_parse(&p.ref, cli.pos[1], 0) != 0) {
        fprintf(stderr, "berth push: %s\n", berth_error_last());
        berth_cli_clear(&cli);
        berth_http_global_cleanup();
        return 2;
    }
    if ((p.fd = open(cli.pos[0], O_RDONLY | O_CLOEXEC)) < 0 || fstat(p.fd, &sb) != 0) {
        fprintf(stderr, "berth push: %s: %s\n", cli.pos[0], strerror(errno));
        goto out;
    }
    if (!S_ISREG(sb.st_mode)) {
        fprintf(stderr, "berth push: %s: not a regular file\n", cli.pos[0]);
        goto out;
    }
    if ((abs = realpath(cli.pos[0], NULL)) == NULL) {
        fprintf(stderr, "berth push: %s: %s\n", cli.pos[0], strerror(errno));
        goto out;
    }
    p.path = abs;
    p.size = (uint64_t)sb.st_size;
    p.mtime_ns = (int64_t)sb.st_mtim.tv_sec * 1000000000 + sb.st_mtim.tv_nsec;
    /* An empty file has no parts: it goes through the OCI flow. */
    if (p.size == 0)
        cli.parts = 0;
    if (berth_http_new(&p.http, &cli.http) != 0) {
        fprintf(stderr, "berth push: %s\n", berth_error_last());
        goto out;
    }
    berth_progress_init(&p.prog, berth_progress_mode_for_stderr(cli.quiet), "push", p.size);
    t0 = berth_cli_now();

    if (berth_state_path(&p.state_path, cli.parts ? "parts" : "oci", p.ref.base, p.ref.repo, p.path, p.size,
                         p.mtime_ns) != 0) {
        /* Without a state file the upload still resumes within this run. */
        fprintf(stderr, "berth push: warning: %s: a restart of the client will start over\n", berth_error_last());
        p.state_path = NULL;
    }
    if (berth_state_load(p.state_path, &p.st) == BERTH_EINVALID)
        berth_state_remove(p.state_path);

    /* The digest, when known without reading the file, lets a HEAD skip
     * the upload of a blob the registry already has. */
    if (cli.digest[0])
        strcpy(p.digest, cli.digest);
    else if (berth_digest_cache_get(p.path, p.size, p.mtime_ns, p.digest) != 0)
        p.digest[0] = '\0';
    if (p.digest[0] && (have = berth__push_blob_exists(&p, p.digest)) != 0) {
        if (have < 0) {
            fprintf(stderr, "berth push: %s\n", berth_error_last());
            goto out_prog;
        }
        berth_progress_note(&p.prog, "%s already has %s", cli.pos[1], p.digest);
        berth_state_remove(p.state_path);
        printf("%s\n", p.digest);
        rc = 0;
        goto out_prog;
    }
    char known[BERTH_DIGEST_LEN];
    strcpy(known, p.digest);
    p.digest[0] = '\0';

    err = cli.parts ? berth__push_parts(&p) : berth__push_oci(&p);
    if (err < 0) {
        berth_progress_finish(&p.prog);
        fprintf(stderr, "berth push: %s\n", berth_error_last());
        if (err != BERTH_EDIGEST && p.st.url != NULL && p.state_path != NULL)
            fprintf(stderr, "berth push: run the same command again to resume (state in %s)\n", p.state_path);
        else
            berth_state_remove(p.state_path);
        goto out_prog;
    }
    if (known[0] && strcmp(known, p.digest) != 0) {
        fprintf(stderr, "berth push: the file's digest is %s, not the given %s\n", p.digest, known);
        goto out_prog;
    }
    berth_progress_set(&p.prog, p.size);
    berth_progress_finish(&p.prog);
    berth_state_remove(p.state_path);
    berth_digest_cache_put(p.path, p.size, p.mtime_ns, p.digest);
    if (!cli.quiet) {
        double secs = berth_cli_now() - t0;
        uint64_t sent = atomic_load(&p.sent);
        fprintf(stderr, "berth: pushed %s: %llu bytes in %.2f s (%.1f MB/s), %llu bytes sent (%.3fx), %u retries\n",
                p.digest, (unsigned long long)p.size, secs, secs > 0 ? (double)p.size / secs / 1e6 : 0.0,
                (unsigned long long)sent, p.size ? (double)sent / (double)p.size : 1.0, atomic_load(&p.retries));
    }
    printf("%s\n", p.digest);
    rc = 0;
out_prog:
    berth_progress_destroy(&p.prog);
out:
    if (p.fd >= 0)
        close(p.fd);
    berth_http_free(p.http);
    berth_http_global_cleanup();
    berth_upload_state_clear(&p.st);
    free(p.state_path);
    free(abs);
    berth_ref_clear(&p.ref);
    berth_cli_clear(&cli);
    return rc;
}

/*
 * berth push --parts N --parallel P: berth's part-session API
 * (POST /uploads/sessions, PUT .../parts/{n}, GET status, POST .../complete).
 *
 * The whole file is hashed first (the session is created with its digest,
 * so the server verifies the assembled blob), then each round asks the
 * server which parts are missing and P threads, each with its own
 * connection, PUT those. A part cut off half way is simply missing in the
 * next round's status.
 */
#include "client/push.h"

#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"

typedef struct parts {
    berth_push_t *p;
    char *url; /* absolute session URL */
    uint64_t part_size;
    uint64_t total_parts;
    /* one round */
    uint64_t *queue;
    size_t nqueue;
    size_t next; /* guarded by mu */
    pthread_mutex_t mu;
    _Atomic uint64_t confirmed; /* bytes of parts the server holds */
    _Atomic uint64_t inflight;
    _Atomic unsigned failed; /* retryable failures this round */
    _Atomic int fatal;
    char fatal_msg[600];
} parts_t;

typedef struct parts_worker {
    parts_t *ps;
    pthread_t thread;
    berth_http_t *http;
    uint64_t last; /* bytes of the current request already counted in inflight */
} parts_worker_t;

static uint64_t parts__len(parts_t *ps, uint64_t n)
{
    uint64_t off = (n - 1) * ps->part_size;
    return ps->p->size - off < ps->part_size ? ps->p->size - off : ps->part_size;
}

static void parts__on_progress(void *ctx, uint64_t request_bytes)
{
    parts_worker_t *w = ctx;
    parts_t *ps = w->ps;

    atomic_fetch_add(&ps->inflight, request_bytes - w->last);
    w->last = request_bytes;
    berth_progress_set(&ps->p->prog, atomic_load(&ps->confirmed) + atomic_load(&ps->inflight));
}

static void *parts__worker(void *arg)
{
    parts_worker_t *w = arg;
    parts_t *ps = w->ps;
    berth_push_t *p = ps->p;
    berth_http_resp_t r;
    unsigned fails = 0;

    for (;;) {
        uint64_t n;
        pthread_mutex_lock(&ps->mu);
        n = ps->next < ps->nqueue && !atomic_load(&ps->fatal) ? ps->queue[ps->next++] : 0;
        pthread_mutex_unlock(&ps->mu);
        if (n == 0)
            break;
        char *url = NULL;
        if (asprintf(&url, "%s/parts/%llu", ps->url, (unsigned long long)n) < 0)
            break;
        uint64_t len = parts__len(ps, n);
        berth_http_body_t body = {
            .fd = p->fd, .off = (n - 1) * ps->part_size, .len = len, .on_progress = parts__on_progress, .ctx = w};
        w->last = 0;
        int err = berth_http_request(w->http, "PUT", url, NULL, &body, NULL, &r);
        free(url);
        atomic_fetch_add(&p->sent, body.pos);
        atomic_fetch_sub(&ps->inflight, w->last);
        w->last = 0;
        if (err == 0 && (r.status == 201 || r.status == 200)) {
            atomic_fetch_add(&ps->confirmed, len);
            fails = 0;
        } else if (err != BERTH_EIO && berth_cli_retryable(err, r.status)) {
            char why[600];
            snprintf(why, sizeof(why), "part %llu: %s", (unsigned long long)n,
                     err < 0 ? berth_error_last() : "server error");
            atomic_fetch_add(&ps->failed, 1);
            p->retries++;
            berth_progress_retry(&p->prog, why);
            /* This part is missing in the next round's status; meanwhile
             * back off before the next one, as the server may be down. */
            berth_cli_backoff(++fails);
        } else {
            char msg[300];
            pthread_mutex_lock(&ps->mu);
            if (!atomic_load(&ps->fatal)) {
                if (err < 0)
                    snprintf(ps->fatal_msg, sizeof(ps->fatal_msg), "part %llu: %s", (unsigned long long)n,
                             berth_error_last());
                else
                    snprintf(ps->fatal_msg, sizeof(ps->fatal_msg), "PUT part %llu: HTTP %ld %s", (unsigned long long)n,
                             r.status, berth_http_resp_error(&r, msg, sizeof(msg)));
                atomic_store(&ps->fatal, r.status == 404 ? 2 : 1);
            }
            pthread_mutex_unlock(&ps->mu);
        }
        berth_http_resp_clear(&r);
    }
    return NULL;
}

/* Runs one round over ps->queue with P workers. */
static int parts__round(parts_t *ps)
{
    berth_push_t *p = ps->p;
    unsigned np = p->cli->parallel;
    parts_worker_t *ws;
    int err = 0;

    if (np > ps->nqueue)
        np = (unsigned)ps->nqueue;
    if ((ws = calloc(np, sizeof(*ws))) == NULL)
        return berth_error_set(BERTH_ERR, "out of memory");
    ps->next = 0;
    atomic_store(&ps->failed, 0);
    unsigned started = 0;
    for (unsigned i = 0; i < np; i++) {
        ws[i].ps = ps;
        if (i == 0) {
            ws[i].http = p->http;
        } else if (berth_http_new(&ws[i].http, &p->cli->http) != 0) {
            err = BERTH_ERR;
            break;
        }
        if (pthread_create(&ws[i].thread, NULL, parts__worker, &ws[i]) != 0) {
            if (i > 0)
                berth_http_free(ws[i].http);
            err = berth_error_set(BERTH_ERR, "cannot start a thread");
            break;
        }
        started++;
    }
    for (unsigned i = 0; i < started; i++) {
        pthread_join(ws[i].thread, NULL);
        if (i > 0)
            berth_http_free(ws[i].http);
    }
    free(ws);
    if (err == 0 && started == 0)
        err = berth_error_set(BERTH_ERR, "no worker started");
    return err;
}

static int parts__json_request(parts_t *ps, const char *method, const char *url, json_t *req, berth_http_resp_t *r,
                               json_t **out)
{
    berth_http_body_t body = {.fd = -1, .content_type = "application/json"};
    char *text = NULL;
    json_error_t je;
    int err;

    *out = NULL;
    if (req != NULL) {
        if ((text = json_dumps(req, JSON_COMPACT)) == NULL)
            return berth_error_set(BERTH_ERR, "out of memory");
        body.mem = text;
        body.len = strlen(text);
    }
    err = berth_http_request(ps->p->http, method, url, NULL, req != NULL || strcmp(method, "POST") == 0 ? &body : NULL,
                             NULL, r);
    free(text);
    if (err == 0 && r->body != NULL)
        *out = json_loadb(r->body, r->body_len, 0, &je);
    return err;
}

/* Creates the session (POST /uploads/sessions). */
static int parts__open(parts_t *ps)
{
    berth_push_t *p = ps->p;
    berth_http_resp_t r;
    json_t *req = json_object(), *resp = NULL;
    char *url = NULL;
    int err = 0;

    if (req == NULL || asprintf(&url, "%s/uploads/sessions", p->ref.base) < 0) {
        json_decref(req);
        return berth_error_set(BERTH_ERR, "out of memory");
    }
    json_object_set_new(req, "total_parts", json_integer((json_int_t)ps->total_parts));
    json_object_set_new(req, "part_size", json_integer((json_int_t)ps->part_size));
    json_object_set_new(req, "total_size", json_integer((json_int_t)p->size));
    json_object_set_new(req, "repository", json_string(p->ref.repo));
    json_object_set_new(req, "digest", json_string(p->digest));
    for (unsigned attempt = 1;; attempt++) {
        err = parts__json_request(ps, "POST", url, req, &r, &resp);
        if (err == 0 && (r.status == 201 || r.status == 200))
            break;
        if (!berth_cli_retryable(err, r.status) || attempt > p->cli->retries) {
            if (err == 0 && r.status == 401)
                berth_error_set(BERTH_ERR, "POST /uploads/sessions: HTTP 401: the sessions API needs credentials "
                                           "(--user or BERTH_USER/BERTH_PASSWORD)");
            else if (err == 0 && r.status == 404)
                berth_error_set(BERTH_ERR, "POST /uploads/sessions: HTTP 404: this registry has no part-session API "
                                           "(push without --parts uses the OCI flow)");
            else
                berth__push_report("POST /uploads/sessions", err, &r);
            err = err < 0 ? err : BERTH_ERR;
            goto done;
        }
        p->retries++;
        berth_progress_retry(&p->prog, "creating the session failed, retrying");
        berth_http_resp_clear(&r);
        json_decref(resp);
        resp = NULL;
        berth_cli_backoff(attempt);
    }
    free(ps->url);
    ps->url = NULL;
    if (r.location != NULL) {
        ps->url = berth_url_resolve(p->ref.base, r.location);
    } else {
        const char *id = json_string_value(json_object_get(resp, "session_id"));
        if (id == NULL) {
            err = berth_error_set(BERTH_ERR, "POST /uploads/sessions: no Location and no session_id in the answer");
            goto done;
        }
        if (asprintf(&ps->url, "%s/uploads/sessions/%s", p->ref.base, id) < 0)
            ps->url = NULL;
    }
    if (ps->url == NULL) {
        err = berth_error_set(BERTH_ERR, "out of memory");
        goto done;
    }
    free(p->st.url);
    p->st.url = strdup(ps->url);
    strcpy(p->st.digest, p->digest);
    p->st.part_size = ps->part_size;
    p->st.total_parts = ps->total_parts;
    if (p->st.url == NULL)
        err = berth_error_set(BERTH_ERR, "out of memory");
    else
        err = berth_state_save(p->state_path, &p->st);
    berth_progress_note(&p->prog, "session %s (%llu parts of %llu bytes)", ps->url, (unsigned long long)ps->total_parts,
                        (unsigned long long)ps->part_size);
done:
    berth_http_resp_clear(&r);
    json_decref(req);
    json_decref(resp);
    free(url);
    return err;
}

/* Adds the part numbers of a compact range list to the queue. */
static int parts__queue_from(parts_t *ps, json_t *list)
{
    size_t i;
    json_t *v;

    ps->nqueue = 0;
    if (!json_is_array(list))
        return berth_error_set(BERTH_EINVALID, "status: no missing_parts list");
    json_array_foreach(list, i, v)
    {
        uint64_t a, b;
        const char *s = json_string_value(v);
        char tmp[32];
        if (s == NULL && json_is_integer(v)) {
            snprintf(tmp, sizeof(tmp), "%lld", (long long)json_integer_value(v));
            s = tmp;
        }
        if (s == NULL || berth_part_range_parse(s, &a, &b) != 0 || b > ps->total_parts)
            return berth_error_set(BERTH_EINVALID, "status: bad missing_parts entry");
        if (b - a + 1 > ps->total_parts - ps->nqueue)
            return berth_error_set(BERTH_EINVALID, "status: missing_parts lists more parts than the session has");
        for (uint64_t n = a; n <= b; n++)
            ps->queue[ps->nqueue++] = n;
    }
    return 0;
}

/* Status call. Sets *complete when the server says COMPLETE (digest into
 * p->digest check), fills the queue with the missing parts otherwise.
 * BERTH_ENOTFOUND when the session is gone or FAILED/ABORTED. */
static int parts__status(parts_t *ps, int *complete)
{
    berth_push_t *p = ps->p;
    berth_http_resp_t r;
    json_t *j = NULL;
    int err;

    *complete = 0;
    err = parts__json_request(ps, "GET", ps->url, NULL, &r, &j);
    if (err < 0)
        goto done;
    if (r.status == 404) {
        err = berth_error_set(BERTH_ENOTFOUND, "the server no longer knows session %s", ps->url);
    } else if (r.status != 200 || j == NULL) {
        if (berth_cli_retryable(0, r.status))
            err = berth_error_set(BERTH_EUNAVAILABLE, "status: HTTP %ld", r.status);
        else {
            berth__push_report("status", 0, &r);
            err = BERTH_ERR;
        }
    } else {
        const char *status = json_string_value(json_object_get(j, "status"));
        json_t *tp = json_object_get(j, "total_parts"), *psz = json_object_get(j, "part_size");
        if (status == NULL) {
            err = berth_error_set(BERTH_EINVALID, "status: no status field");
        } else if (strcmp(status, "COMPLETE") == 0) {
            const char *d = json_string_value(json_object_get(j, "digest"));
            if (d != NULL && strcmp(d, p->digest) != 0)
                err = berth_error_set(BERTH_EDIGEST, "the session completed as %s, the file is %s", d, p->digest);
            else
                *complete = 1;
        } else if (strcmp(status, "FAILED") == 0 || strcmp(status, "ABORTED") == 0) {
            err = berth_error_set(BERTH_ENOTFOUND, "session %s is %s", ps->url, status);
        } else if ((json_is_integer(tp) && (uint64_t)json_integer_value(tp) != ps->total_parts) ||
                   (json_is_integer(psz) && (uint64_t)json_integer_value(psz) != ps->part_size)) {
            err = berth_error_set(BERTH_ENOTFOUND, "session %s has another layout", ps->url);
        } else if ((err = parts__queue_from(ps, json_object_get(j, "missing_parts"))) == 0) {
            uint64_t have = p->size;
            for (size_t i = 0; i < ps->nqueue; i++)
                have -= parts__len(ps, ps->queue[i]);
            atomic_store(&ps->confirmed, have);
        }
    }
done:
    berth_http_resp_clear(&r);
    json_decref(j);
    return err;
}

/* POST .../complete. *done set on 200; 409 leaves it 0 (another round). */
static int parts__complete(parts_t *ps, int *done)
{
    berth_push_t *p = ps->p;
    berth_http_resp_t r;
    json_t *j = NULL;
    char *url = NULL;
    int err;

    *done = 0;
    if (asprintf(&url, "%s/complete", ps->url) < 0)
        return berth_error_set(BERTH_ERR, "out of memory");
    err = parts__json_request(ps, "POST", url, NULL, &r, &j);
    free(url);
    if (err < 0)
        goto out;
    if (r.status == 200 || r.status == 201) {
        const char *d = json_string_value(json_object_get(j, "digest"));
        if (d != NULL && strcmp(d, p->digest) != 0)
            err = berth_error_set(BERTH_EDIGEST, "the server assembled %s, the file is %s", d, p->digest);
        else
            *done = 1;
    } else if (r.status == 409) {
        err = 0;
    } else if (berth_cli_retryable(0, r.status)) {
        err = berth_error_set(BERTH_EUNAVAILABLE, "complete: HTTP %ld", r.status);
    } else if (r.status == 404) {
        err = berth_error_set(BERTH_ENOTFOUND, "the server no longer knows session %s", ps->url);
    } else {
        berth__push_report("complete", 0, &r);
        /* A digest mismatch leaves the session FAILED: nothing to resume. */
        err = r.status == 400 || r.status == 422 ? BERTH_EDIGEST : BERTH_ERR;
    }
out:
    berth_http_resp_clear(&r);
    json_decref(j);
    return err;
}

/* The server could not be reached or answered 5xx: one more stall, counted
 * as a retry and waited out with backoff; -1 once stalls exceed --retries
 * (the caller keeps the error it has). */
static int parts__stalled(berth_push_t *p, unsigned *stalls)
{
    if (++*stalls > p->cli->retries)
        return -1;
    p->retries++;
    berth_progress_retry(&p->prog, berth_error_last());
    berth_cli_backoff(*stalls);
    return 0;
}

int berth__push_parts(berth_push_t *p)
{
    parts_t ps = {p};
    unsigned stalls = 0, restarts = 0;
    int err = 0, complete = 0;

    pthread_mutex_init(&ps.mu, NULL);
    ps.part_size = (p->size + p->cli->parts - 1) / p->cli->parts;
    ps.total_parts = (p->size + ps.part_size - 1) / ps.part_size;
    if ((ps.queue = calloc(ps.total_parts, sizeof(*ps.queue))) == NULL) {
        err = berth_error_set(BERTH_ERR, "out of memory");
        goto done;
    }
    /* The digest: from the state file of an earlier run, else one read. */
    if (p->st.url != NULL && p->st.digest[0] && p->st.part_size == ps.part_size &&
        p->st.total_parts == ps.total_parts) {
        strcpy(p->digest, p->st.digest);
        if ((ps.url = strdup(p->st.url)) == NULL) {
            err = berth_error_set(BERTH_ERR, "out of memory");
            goto done;
        }
    } else {
        berth_sha256_t h;
        berth_sha256_init(&h);
        berth_progress_note(&p->prog, "hashing %s", p->path);
        if ((err = berth__push_hash_range(p, &h, 0, p->size)) < 0)
            goto done;
        berth_sha256_digest(&h, p->digest);
        if ((err = berth__push_blob_exists(p, p->digest)) != 0) {
            if (err == 1) {
                berth_progress_note(&p->prog, "the registry already has %s", p->digest);
                err = 0;
            }
            goto done;
        }
    }
    if (ps.url == NULL && (err = parts__open(&ps)) < 0)
        goto done;

    for (;;) {
        uint64_t before = atomic_load(&ps.confirmed);
        err = parts__status(&ps, &complete);
        if (err == BERTH_ENOTFOUND) {
            if (++restarts > p->cli->retries)
                goto done;
            berth_progress_note(&p->prog, "%s: starting a new session", berth_error_last());
            if ((err = parts__open(&ps)) < 0)
                goto done;
            continue;
        }
        if (err == BERTH_EUNAVAILABLE) {
            if (parts__stalled(p, &stalls) < 0)
                goto done;
            continue;
        }
        if (err < 0 || complete)
            goto done;
        if (atomic_load(&ps.confirmed) > 0 && before == 0)
            berth_progress_resumed(&p->prog, atomic_load(&ps.confirmed));
        if (ps.nqueue > 0) {
            uint64_t at_start = atomic_load(&ps.confirmed);
            atomic_store(&ps.fatal, 0);
            if ((err = parts__round(&ps)) < 0)
                goto done;
            if (atomic_load(&ps.fatal)) {
                err = berth_error_set(atomic_load(&ps.fatal) == 2 ? BERTH_ENOTFOUND : BERTH_ERR, "%s", ps.fatal_msg);
                if (err == BERTH_ENOTFOUND)
                    continue;
                goto done;
            }
            if (atomic_load(&ps.failed) > 0) {
                stalls = atomic_load(&ps.confirmed) > at_start ? 0 : stalls + 1;
                if (stalls > p->cli->retries) {
                    err = berth_error_set(BERTH_EUNAVAILABLE, "giving up after %u rounds without progress",
                                          p->cli->retries);
                    goto done;
                }
                if (stalls > 0)
                    berth_cli_backoff(stalls);
                continue; /* ask again what is missing */
            }
        }
        int finished = 0;
        err = parts__complete(&ps, &finished);
        if (finished)
            break;
        if (err == BERTH_EUNAVAILABLE) {
            if (parts__stalled(p, &stalls) < 0)
                goto done;
        } else if (err < 0 && err != BERTH_ENOTFOUND) {
            goto done;
        }
    }
    err = 0;
done:
    free(ps.queue);
    free(ps.url);
    pthread_mutex_destroy(&ps.mu);
    return err;
}

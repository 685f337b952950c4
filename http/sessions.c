/*
 * The part-numbered sessions API under /uploads/sessions (core/engine.h):
 *
 *   POST   /uploads/sessions                  create (JSON body)     201
 *   GET    /uploads/sessions/{id}             status                 200
 *   PUT    /uploads/sessions/{id}/parts/{n}   store part n           201 (200: identical part already there)
 *   POST   /uploads/sessions/{id}/complete    assemble and verify    200
 *   DELETE /uploads/sessions/{id}             abort                  204
 *
 * Every request is authenticated before it gets here (http/auth.c) and
 * names its user; a session is visible only to the user who created it.
 * The request arrives parsed and validated (http/route.c); the engine call
 * runs on a worker and the answer is sent from the task's done callback.
 * Errors carry the same JSON body as the OCI API (http/error.h).
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/error.h"
#include "http/app.h"
#include "http/error.h"
#include "http/response.h"

#define SESSIONS__PREFIX "/uploads/sessions"

typedef struct sessions__task {
    berth_route_task_t super;
    char *owner;
    uint64_t known;     /* status: the record version whose JSON the cache holds (0: none) */
    size_t size;        /* part: the bytes it carried */
    berth_record_t rec; /* the session after the call */
    uint64_t version;   /* status: the record's version (core/engine.h) */
} sessions__task_t;

/* ---- the status cache ---------------------------------------------------------- */

/* Status JSON by session and record version: clients poll the status of a
 * session whose record has not changed, and rendering a thousand ranges
 * costs far more than reading the record. Direct-mapped by id, shared by
 * the loop threads. The answer still depends on the stored record: the
 * worker reads it for every request and says whether it is the version the
 * cache rendered. */
#define SESSIONS__CACHE 64

static struct {
    pthread_mutex_t lock;
    struct {
        char id[BERTH_ID_LEN];
        uint64_t version;
        char *body;
        size_t len;
    } slot[SESSIONS__CACHE];
} sessions__cache = {.lock = PTHREAD_MUTEX_INITIALIZER};

static size_t sessions__slot(const char *id)
{
    uint32_t h = 2166136261u;
    for (const char *c = id; *c != '\0'; c++)
        h = (h ^ (unsigned char)*c) * 16777619u;
    return h % SESSIONS__CACHE;
}

static uint64_t sessions__cache_known(const char *id)
{
    size_t i = sessions__slot(id);
    uint64_t v = 0;

    pthread_mutex_lock(&sessions__cache.lock);
    if (sessions__cache.slot[i].body != NULL && strcmp(sessions__cache.slot[i].id, id) == 0)
        v = sessions__cache.slot[i].version;
    pthread_mutex_unlock(&sessions__cache.lock);
    return v;
}

/* Sends the cached JSON of (id, version); 0 when it is no longer cached. */
static int sessions__cache_send(h2o_req_t *req, const char *id, uint64_t version)
{
    size_t i = sessions__slot(id);
    h2o_iovec_t body = {NULL, 0};

    pthread_mutex_lock(&sessions__cache.lock);
    if (sessions__cache.slot[i].body != NULL && sessions__cache.slot[i].version == version &&
        strcmp(sessions__cache.slot[i].id, id) == 0)
        body = h2o_strdup(&req->pool, sessions__cache.slot[i].body, sessions__cache.slot[i].len);
    pthread_mutex_unlock(&sessions__cache.lock);
    if (body.base == NULL)
        return 0;
    berth_http_send_text(req, 200, "application/json", body.base, body.len);
    return 1;
}

static void sessions__cache_put(const char *id, uint64_t version, const char *body, size_t len)
{
    size_t i = sessions__slot(id);
    char *copy = malloc(len + 1);

    if (copy == NULL)
        return;
    memcpy(copy, body, len + 1);
    pthread_mutex_lock(&sessions__cache.lock);
    free(sessions__cache.slot[i].body);
    snprintf(sessions__cache.slot[i].id, BERTH_ID_LEN, "%s", id);
    sessions__cache.slot[i].version = version;
    sessions__cache.slot[i].body = copy;
    sessions__cache.slot[i].len = len;
    pthread_mutex_unlock(&sessions__cache.lock);
}

/* ---- JSON views of a session ------------------------------------------------- */

static json_t *sessions__time(int64_t t)
{
    char buf[32];
    struct tm tm;
    time_t tt = (time_t)t;

    if (gmtime_r(&tt, &tm) == NULL || strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        return json_null();
    return json_string(buf);
}

/* ["1-50","52","55-100"]: one string per range, so its size follows the
 * number of gaps, never the number of parts. */
static json_t *sessions__ranges(const berth_rangeset_t *s)
{
    json_t *a = json_array();
    char buf[48];

    for (size_t i = 0; a != NULL && i < s->n; i++) {
        if (s->v[i].first == s->v[i].last)
            snprintf(buf, sizeof(buf), "%" PRIu64, s->v[i].first);
        else
            snprintf(buf, sizeof(buf), "%" PRIu64 "-%" PRIu64, s->v[i].first, s->v[i].last);
        json_array_append_new(a, json_string(buf));
    }
    return a;
}

static json_t *sessions__missing(const berth_record_t *rec)
{
    berth_rangeset_t missing = BERTH_RANGESET_INIT;
    json_t *a;

    if (berth_rangeset_missing(&rec->received, 1, rec->total_parts, &missing) < 0)
        return json_array();
    a = sessions__ranges(&missing);
    berth_rangeset_clear(&missing);
    return a;
}

static int sessions__holds_bytes(const berth_record_t *rec)
{
    return rec->status == BERTH_STATUS_INIT || rec->status == BERTH_STATUS_IN_PROGRESS ||
           rec->status == BERTH_STATUS_COMPLETE;
}

static json_t *sessions__view(berth_http_app_t *app, const berth_record_t *rec)
{
    json_t *o = json_object();
    int finished = rec->status == BERTH_STATUS_COMPLETE || rec->status == BERTH_STATUS_FAILED;

    json_object_set_new(o, "session_id", json_string(rec->id));
    json_object_set_new(o, "status", json_string(berth_status_name(rec->status)));
    json_object_set_new(o, "total_parts", json_integer((json_int_t)rec->total_parts));
    json_object_set_new(o, "completed_parts", json_integer((json_int_t)berth_rangeset_count(&rec->received)));
    json_object_set_new(o, "received_parts", sessions__ranges(&rec->received));
    json_object_set_new(o, "missing_parts", sessions__missing(rec));
    json_object_set_new(o, "part_size", json_integer((json_int_t)rec->part_size));
    json_object_set_new(o, "received_bytes", json_integer(sessions__holds_bytes(rec) ? (json_int_t)rec->offset : 0));
    if (rec->total_size != 0)
        json_object_set_new(o, "total_size", json_integer((json_int_t)rec->total_size));
    if (rec->repository != NULL)
        json_object_set_new(o, "repository", json_string(rec->repository));
    json_object_set_new(o, "created_at", sessions__time(rec->created_at));
    json_object_set_new(o, "expires_at", sessions__time(berth_engine_expires_at(app->engine, rec)));
    if (finished && rec->digest != NULL) {
        json_object_set_new(o, "digest", json_string(rec->digest));
        json_object_set_new(o, "size", json_integer((json_int_t)rec->offset));
    }
    if (rec->status == BERTH_STATUS_COMPLETE && rec->repository != NULL && rec->digest != NULL) {
        char loc[BERTH_NAME_MAX + BERTH_DIGEST_LEN + 16];
        snprintf(loc, sizeof(loc), "/v2/%s/blobs/%s", rec->repository, rec->digest);
        json_object_set_new(o, "location", json_string(loc));
    }
    return o;
}

static void sessions__location(h2o_req_t *req, const char *id)
{
    berth_http_headerf(req, "Location", SESSIONS__PREFIX "/%s", id);
}

/* ---- worker side ------------------------------------------------------------ */

static int sessions__create(sessions__task_t *t, berth_engine_t *e, const berth_route_t *r)
{
    berth_parts_spec_t spec = {.total_parts = r->total_parts,
                               .part_size = r->part_size,
                               .total_size = r->total_size,
                               .repository = r->repo[0] != '\0' ? r->repo : NULL,
                               .digest = r->digest[0] != '\0' ? r->digest : NULL,
                               .owner = t->owner};

    return berth_parts_create(e, &spec, &t->rec);
}

static int sessions__call(berth_route_task_t *rt)
{
    sessions__task_t *t = (sessions__task_t *)rt;
    berth_engine_t *e = rt->app->engine;
    const berth_route_t *r = &rt->r;
    const berth_body_t *body = &rt->super.body;

    switch (r->kind) {
    case BERTH_ROUTE_SESSION_CREATE:
        return sessions__create(t, e, r);
    case BERTH_ROUTE_SESSION_STATUS:
        return berth_parts_status(e, t->owner, r->id, t->known, &t->rec, &t->version);
    case BERTH_ROUTE_SESSION_PART:
        t->size = body->len;
        return berth_parts_put(e, t->owner, r->id, r->part, body->base, body->len, r->has_sha256 ? r->sha256 : NULL,
                               &t->rec);
    case BERTH_ROUTE_SESSION_COMPLETE:
        return berth_parts_complete(e, t->owner, r->id, &t->rec);
    case BERTH_ROUTE_SESSION_ABORT:
        return berth_parts_abort(e, t->owner, r->id, &t->rec);
    default:
        return berth_error_set(BERTH_ERR, "not a session route");
    }
}

/* ---- loop side ---------------------------------------------------------------- */

/* The session's state where it explains the error. */
static json_t *sessions__error_detail(const sessions__task_t *t)
{
    const berth_record_t *rec = &t->rec;

    if (rec->id[0] == '\0')
        return NULL;
    switch (t->super.rc) {
    case BERTH_EDIGEST:
        if (t->super.r.kind != BERTH_ROUTE_SESSION_COMPLETE)
            return NULL;
        return json_pack("{s:s, s:s?}", "status", berth_status_name(rec->status), "digest", rec->digest);
    case BERTH_ERANGE:
        return json_pack("{s:o, s:s}", "missing_parts", sessions__missing(rec), "status",
                         berth_status_name(rec->status));
    case BERTH_EEXISTS:
        return json_pack("{s:s}", "status", berth_status_name(rec->status));
    default:
        return NULL;
    }
}

static void sessions__send_error(h2o_req_t *req, sessions__task_t *t)
{
    berth_subject_t subject = t->super.r.kind == BERTH_ROUTE_SESSION_PART ? BERTH_SUBJECT_PART : BERTH_SUBJECT_SESSION;

    berth_http_send_failure(req, BERTH_API_SESSIONS, t->super.rc, subject, t->super.errmsg, sessions__error_detail(t));
}

static void sessions__send_status(h2o_req_t *req, sessions__task_t *t)
{
    json_t *view;
    char *text;

    if (t->version != 0 && t->version == t->known) {
        if (sessions__cache_send(req, t->super.r.id, t->version))
            return;
        /* Evicted since: ask for the record itself. */
        t->known = 0;
        berth_task_submit(&t->super.super);
        return;
    }
    view = sessions__view(t->super.app, &t->rec);
    text = json_dumps(view, JSON_COMPACT);
    json_decref(view);
    if (text == NULL)
        return berth_http_send_failure(req, BERTH_API_SESSIONS, BERTH_ERR, BERTH_SUBJECT_SESSION, "out of memory",
                                       NULL);
    if (t->version != 0)
        sessions__cache_put(t->super.r.id, t->version, text, strlen(text));
    berth_http_send_text(req, 200, "application/json", text, strlen(text));
    free(text);
}

static void sessions__send_part(h2o_req_t *req, sessions__task_t *t)
{
    sessions__location(req, t->super.r.id);
    berth_http_send_json(req, t->super.rc == BERTH_PARTS_SAME ? 200 : 201,
                         json_pack("{s:s, s:I, s:I, s:s, s:I}", "session_id", t->super.r.id, "part_number",
                                   (json_int_t)t->super.r.part, "size", (json_int_t)t->size, "status",
                                   berth_status_name(t->rec.status), "received_bytes", (json_int_t)t->rec.offset));
}

static void sessions__done(berth_task_t *bt, h2o_req_t *req)
{
    sessions__task_t *t = (sessions__task_t *)bt;

    if (req == NULL)
        return;
    berth_task_drop_body(bt);
    if (t->super.rc < 0)
        return sessions__send_error(req, t);
    switch (t->super.r.kind) {
    case BERTH_ROUTE_SESSION_CREATE:
        sessions__location(req, t->rec.id);
        return berth_http_send_json(req, 201, sessions__view(t->super.app, &t->rec));
    case BERTH_ROUTE_SESSION_STATUS:
        return sessions__send_status(req, t);
    case BERTH_ROUTE_SESSION_PART:
        return sessions__send_part(req, t);
    case BERTH_ROUTE_SESSION_COMPLETE:
        sessions__location(req, t->super.r.id);
        if (t->rec.repository != NULL && t->rec.digest != NULL)
            berth_http_header(req, "Docker-Content-Digest", t->rec.digest);
        return berth_http_send_json(req, 200, sessions__view(t->super.app, &t->rec));
    default: /* abort */
        return berth_http_send_empty(req, 204);
    }
}

static void sessions__dispose(berth_task_t *bt)
{
    sessions__task_t *t = (sessions__task_t *)bt;

    berth_record_clear(&t->rec);
    free(t->owner);
}

void berth_sessions_handle(berth_http_app_t *app, h2o_req_t *req, const berth_route_t *r, const char *user)
{
    sessions__task_t *t =
        (sessions__task_t *)berth_route_task_new(app, req, r, sizeof(*t), r->kind == BERTH_ROUTE_SESSION_PART,
                                                 sessions__call, sessions__done, sessions__dispose);

    t->owner = h2o_mem_alloc(strlen(user) + 1);
    memcpy(t->owner, user, strlen(user) + 1);
    berth_record_init(&t->rec);
    if (r->kind == BERTH_ROUTE_SESSION_STATUS)
        t->known = sessions__cache_known(r->id);
    berth_task_submit(&t->super.super);
}

/*
 * The part-numbered sessions API under /uploads/sessions (core/parts.h):
 *
 *   POST   /uploads/sessions                  create (JSON body)     201
 *   GET    /uploads/sessions/{id}             status                 200
 *   PUT    /uploads/sessions/{id}/parts/{n}   store part n           201 (200: identical part already there)
 *   POST   /uploads/sessions/{id}/complete    assemble and verify    200
 *   DELETE /uploads/sessions/{id}             abort                  204
 *
 * Every request is authenticated before it gets here (http/auth.c) and
 * names its user; a session is visible only to the user who created it.
 * Errors carry the same JSON body as the OCI API:
 * {"errors":[{"code":"...","message":"...","detail":{...}}]}.
 *
 * As in http/oci.c, handlers validate on the loop thread and hand storage
 * work to a worker; routing uses the raw path.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/digest.h"
#include "core/error.h"
#include "core/log.h"
#include "core/parts.h"
#include "core/validate.h"
#include "http/app.h"
#include "http/response.h"

#define SESSIONS__PREFIX "/uploads/sessions"
/* A create request's JSON is a few hundred bytes. */
#define SESSIONS__BODY_MAX (64 * 1024)

typedef enum sessions__op {
    SESSIONS__CREATE,
    SESSIONS__STATUS,
    SESSIONS__PUT,
    SESSIONS__COMPLETE,
    SESSIONS__ABORT,
} sessions__op_t;

typedef struct sessions__task {
    berth_task_t super;
    berth_http_app_t *app;
    sessions__op_t op;
    char *owner;
    char id[BERTH_ID_LEN];
    uint64_t part;
    size_t size; /* of the part's body, kept past berth_task_drop_body */
    int has_sha;
    unsigned char sha[32];
    berth_parts_spec_t spec;
    char repository[BERTH_NAME_MAX + 1];
    char digest[BERTH_DIGEST_LEN];

    uint64_t known; /* status: the record version whose JSON the cache holds (0: none) */

    /* results */
    int rc;
    char errmsg[512];
    berth_record_t rec;
    uint64_t version; /* status: the record's version (core/parts.h) */
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
    req->res.status = 200;
    req->res.reason = berth_http_reason(200);
    req->res.content_length = body.len;
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, H2O_STRLIT("application/json"));
    h2o_send_inline(req, body.base, body.len);
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

/* ---- worker side ----------------------------------------------------------- */

static void sessions__work(berth_task_t *bt)
{
    sessions__task_t *t = (sessions__task_t *)bt;
    berth_parts_t *p = t->app->parts;
    const char *body = NULL;
    size_t len = 0;

    berth_error_clear();
    switch (t->op) {
    case SESSIONS__CREATE:
        t->rc = berth_parts_create(p, &t->spec, &t->rec);
        break;
    case SESSIONS__STATUS:
        t->rc = berth_parts_status_version(p, t->owner, t->id, t->known, &t->rec, &t->version);
        break;
    case SESSIONS__PUT:
        if (berth_task_body_acquire(bt, &body, &len) == 0)
            t->size = len, t->rc = berth_parts_put(p, t->owner, t->id, t->part, body != NULL ? body : "", len,
                                    t->has_sha ? t->sha : NULL, &t->rec);
        else
            t->rc = berth_error_set(BERTH_ERR, "request gone");
        berth_task_body_release(bt);
        break;
    case SESSIONS__COMPLETE:
        t->rc = berth_parts_complete(p, t->owner, t->id, &t->rec);
        break;
    case SESSIONS__ABORT:
        t->rc = berth_parts_abort(p, t->owner, t->id, &t->rec);
        break;
    }
    if (t->rc < 0)
        snprintf(t->errmsg, sizeof(t->errmsg), "%s", berth_error_last());
}

/* ---- loop side --------------------------------------------------------------- */

static void sessions__error(h2o_req_t *req, int status, const char *code, const char *message, json_t *detail)
{
    berth_http_send_oci_error(req, status, code, message, detail);
}

/* The one mapping of engine results to answers for this API. */
static void sessions__send_error(h2o_req_t *req, sessions__task_t *t)
{
    const berth_record_t *rec = &t->rec;
    int has_rec = rec->id[0] != '\0';

    switch (t->rc) {
    case BERTH_ENOTFOUND:
        return sessions__error(req, 404, "SESSION_UNKNOWN", "upload session unknown", NULL);
    case BERTH_EINVALID:
        return sessions__error(req, 400, t->op == SESSIONS__PUT ? "PART_INVALID" : "SESSION_INVALID", t->errmsg,
                               NULL);
    case BERTH_EDIGEST:
        if (t->op == SESSIONS__COMPLETE && has_rec)
            return sessions__error(req, 400, "DIGEST_INVALID", t->errmsg,
                                   json_pack("{s:s, s:s?}", "status", berth_status_name(rec->status), "digest",
                                             rec->digest));
        return sessions__error(req, 400, "DIGEST_INVALID", t->errmsg, NULL);
    case BERTH_ERANGE:
        return sessions__error(req, 409, "SESSION_INCOMPLETE", t->errmsg,
                               has_rec ? json_pack("{s:o, s:s}", "missing_parts", sessions__missing(rec), "status",
                                                   berth_status_name(rec->status))
                                       : NULL);
    case BERTH_EEXISTS:
        return sessions__error(req, 409, "SESSION_CLOSED", t->errmsg,
                               has_rec ? json_pack("{s:s}", "status", berth_status_name(rec->status)) : NULL);
    case BERTH_EBUSY:
        return sessions__error(req, 409, "SESSION_BUSY", "the session is being completed or aborted; retry", NULL);
    case BERTH_ENOSPACE:
        berth_log_error("%.*s %.*s: %s", (int)req->method.len, req->method.base, (int)req->path.len, req->path.base,
                        t->errmsg);
        return sessions__error(req, 507, "UNAVAILABLE", "storage full", NULL);
    case BERTH_EUNAVAILABLE:
        berth_log_error("%.*s %.*s: %s", (int)req->method.len, req->method.base, (int)req->path.len, req->path.base,
                        t->errmsg);
        return sessions__error(req, 503, "UNAVAILABLE", "storage unavailable, retry later", NULL);
    default:
        berth_log_error("%.*s %.*s: %s", (int)req->method.len, req->method.base, (int)req->path.len, req->path.base,
                        t->errmsg);
        return sessions__error(req, 500, "UNKNOWN", "internal storage error", NULL);
    }
}

static void sessions__done(berth_task_t *bt, h2o_req_t *req)
{
    sessions__task_t *t = (sessions__task_t *)bt;

    if (req == NULL)
        return;
    berth_task_drop_body(bt);
    if (t->rc < 0)
        return sessions__send_error(req, t);

    switch (t->op) {
    case SESSIONS__CREATE:
        sessions__location(req, t->rec.id);
        return berth_http_send_json(req, 201, NULL, sessions__view(t->app, &t->rec));
    case SESSIONS__STATUS: {
        if (t->version != 0 && t->version == t->known) {
            if (sessions__cache_send(req, t->id, t->version))
                return;
            /* Evicted since: ask for the record itself. */
            t->known = 0;
            berth_task_submit(bt);
            return;
        }
        json_t *view = sessions__view(t->app, &t->rec);
        char *text = json_dumps(view, JSON_COMPACT);
        json_decref(view);
        if (text == NULL)
            return sessions__error(req, 500, "UNKNOWN", "out of memory", NULL);
        size_t len = strlen(text);
        if (t->version != 0)
            sessions__cache_put(t->id, t->version, text, len);
        req->res.status = 200;
        req->res.reason = berth_http_reason(200);
        req->res.content_length = len;
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, H2O_STRLIT("application/json"));
        h2o_send_inline(req, text, len);
        free(text);
        return;
    }
    case SESSIONS__PUT:
        sessions__location(req, t->id);
        return berth_http_send_json(
            req, t->rc == BERTH_PARTS_SAME ? 200 : 201, NULL,
            json_pack("{s:s, s:I, s:I, s:s, s:I}", "session_id", t->id, "part_number", (json_int_t)t->part, "size",
                      (json_int_t)t->size, "status", berth_status_name(t->rec.status), "received_bytes",
                      (json_int_t)t->rec.offset));
    case SESSIONS__COMPLETE:
        sessions__location(req, t->id);
        if (t->rec.repository != NULL && t->rec.digest != NULL)
            berth_http_header(req, "Docker-Content-Digest", t->rec.digest);
        return berth_http_send_json(req, 200, NULL, sessions__view(t->app, &t->rec));
    case SESSIONS__ABORT:
        return berth_http_send_empty(req, 204, NULL);
    }
}

static void sessions__dispose(berth_task_t *bt)
{
    sessions__task_t *t = (sessions__task_t *)bt;
    berth_record_clear(&t->rec);
    free(t->owner);
}

static sessions__task_t *sessions__task_new(berth_http_app_t *app, h2o_req_t *req, sessions__op_t op,
                                            const char *user, int with_body)
{
    sessions__task_t *t = (sessions__task_t *)berth_task_new(berth_http_loop_of(req), req, sizeof(*t), with_body,
                                                             sessions__work, sessions__done);
    t->super.dispose = sessions__dispose;
    t->app = app;
    t->op = op;
    t->owner = h2o_mem_alloc(strlen(user) + 1);
    memcpy(t->owner, user, strlen(user) + 1);
    berth_record_init(&t->rec);
    return t;
}

/* ---- request parsing --------------------------------------------------------- */

static int sessions__method_is(h2o_req_t *req, const char *m)
{
    return h2o_memis(req->method.base, req->method.len, m, strlen(m));
}

static void sessions__unsupported(h2o_req_t *req, const char *allow)
{
    berth_http_header(req, "Allow", allow);
    sessions__error(req, 405, "UNSUPPORTED", "method not allowed here", NULL);
}

/* An optional JSON integer field >= 1 (0 when absent). -1 when present but
 * not a positive integer. */
static int sessions__uint_field(json_t *o, const char *key, uint64_t *out)
{
    json_t *v = json_object_get(o, key);

    *out = 0;
    if (v == NULL || json_is_null(v))
        return 0;
    if (!json_is_integer(v) || json_integer_value(v) < 1)
        return -1;
    *out = (uint64_t)json_integer_value(v);
    return 0;
}

static int sessions__str_field(json_t *o, const char *key, char *out, size_t outsz, int *present)
{
    json_t *v = json_object_get(o, key);

    *present = 0;
    if (v == NULL || json_is_null(v))
        return 0;
    if (!json_is_string(v) || json_string_length(v) >= outsz || strlen(json_string_value(v)) != json_string_length(v))
        return -1;
    memcpy(out, json_string_value(v), json_string_length(v) + 1);
    *present = 1;
    return 0;
}

static void sessions__create(berth_http_app_t *app, h2o_req_t *req, const char *user)
{
    json_error_t jerr;
    json_t *body = NULL;
    sessions__task_t *t;
    berth_parts_spec_t spec = {0};
    char repo[BERTH_NAME_MAX + 1], digest[BERTH_DIGEST_LEN];
    int has_repo = 0, has_digest = 0;

    if (req->entity.len > SESSIONS__BODY_MAX) {
        sessions__error(req, 400, "SESSION_INVALID", "the request body is too large for a session description", NULL);
        return;
    }
    body = json_loadb(req->entity.base != NULL ? req->entity.base : "", req->entity.len, JSON_REJECT_DUPLICATES,
                      &jerr);
    if (body == NULL || !json_is_object(body)) {
        sessions__error(req, 400, "SESSION_INVALID",
                        body == NULL ? "the body must be a JSON object: malformed JSON" : "the body must be a JSON object",
                        body == NULL ? json_pack("{s:s, s:i}", "error", jerr.text, "column", jerr.column) : NULL);
        goto done;
    }
    if (json_object_get(body, "total_parts") == NULL || json_object_get(body, "part_size") == NULL) {
        sessions__error(req, 400, "SESSION_INVALID", "total_parts and part_size are required", NULL);
        goto done;
    }
    if (sessions__uint_field(body, "total_parts", &spec.total_parts) < 0 || spec.total_parts == 0 ||
        spec.total_parts > BERTH_RECORD_MAX_PARTS) {
        sessions__error(req, 400, "SESSION_INVALID", "total_parts must be an integer from 1 to 10000",
                        json_pack("{s:s}", "field", "total_parts"));
        goto done;
    }
    if (sessions__uint_field(body, "part_size", &spec.part_size) < 0 || spec.part_size == 0) {
        sessions__error(req, 400, "SESSION_INVALID", "part_size must be a positive integer",
                        json_pack("{s:s}", "field", "part_size"));
        goto done;
    }
    if (sessions__uint_field(body, "total_size", &spec.total_size) < 0) {
        sessions__error(req, 400, "SESSION_INVALID", "total_size must be a positive integer",
                        json_pack("{s:s}", "field", "total_size"));
        goto done;
    }
    if (sessions__str_field(body, "repository", repo, sizeof(repo), &has_repo) < 0 ||
        (has_repo && !berth_name_valid(repo, strlen(repo)))) {
        sessions__error(req, 400, "NAME_INVALID", "repository must be a valid OCI repository name",
                        json_pack("{s:s}", "field", "repository"));
        goto done;
    }
    if (sessions__str_field(body, "digest", digest, sizeof(digest), &has_digest) < 0 ||
        (has_digest && !berth_digest_valid(digest, strlen(digest)))) {
        sessions__error(req, 400, "DIGEST_INVALID", "digest must be sha256: followed by 64 lowercase hex digits",
                        json_pack("{s:s}", "field", "digest"));
        goto done;
    }

    t = sessions__task_new(app, req, SESSIONS__CREATE, user, 0);
    t->spec = spec;
    t->spec.owner = t->owner;
    if (has_repo) {
        memcpy(t->repository, repo, strlen(repo) + 1);
        t->spec.repository = t->repository;
    }
    if (has_digest) {
        memcpy(t->digest, digest, strlen(digest) + 1);
        t->spec.digest = t->digest;
    }
    berth_task_submit(&t->super);

done:
    json_decref(body);
}

/* Exactly 32 bytes of base64; -1 otherwise. */
static int sessions__b64_sha256(const char *in, size_t len, unsigned char sha[32])
{
    size_t n;

    return berth_base64_decode(in, len, sha, 32, &n) == 0 && n == 32 ? 0 : -1;
}

/* Content-Digest (RFC 9530), a structured-field dictionary such as
 * "sha-256=:<base64>:, sha-512=:<base64>:". 1 with sha[] set when it has a
 * sha-256 member, 0 when it has none (other algorithms are not checked),
 * -1 when malformed. */
static int sessions__content_digest(const char *v, size_t len, unsigned char sha[32])
{
    size_t i = 0;
    int found = 0;

    /* Indexes rather than pointers: each member is v[i, mend). */
    while (i < len) {
        size_t mend = i, eq = SIZE_MAX, next;
        while (i < len && (v[i] == ' ' || v[i] == '\t'))
            i++;
        for (mend = i; mend < len && v[mend] != ','; mend++)
            if (v[mend] == '=' && eq == SIZE_MAX)
                eq = mend;
        next = mend < len ? mend + 1 : len;
        while (mend > i && (v[mend - 1] == ' ' || v[mend - 1] == '\t'))
            mend--;
        if (eq == SIZE_MAX || eq == i || eq >= mend || mend - eq < 3 || v[eq + 1] != ':' || v[mend - 1] != ':')
            return -1;
        if (eq - i == 7 && memcmp(v + i, "sha-256", 7) == 0) {
            if (found || sessions__b64_sha256(v + eq + 2, mend - eq - 3, sha) < 0)
                return -1;
            found = 1;
        }
        i = next;
    }
    return found;
}

/* Part numbers as written by people and clients: decimal, no sign, no
 * leading zero. 0 when n is out of that grammar (or past 10 digits). */
static uint64_t sessions__part_number(const char *s, size_t len)
{
    uint64_t n = 0;

    if (len == 0 || len > 10 || (len > 1 && s[0] == '0'))
        return 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return 0;
        n = n * 10 + (uint64_t)(s[i] - '0');
    }
    return n;
}

int berth_sessions_handle(berth_http_app_t *app, h2o_req_t *req, const char *user)
{
    size_t plen = req->query_at != SIZE_MAX ? req->query_at : req->path.len;
    const char *path = req->path.base;
    const size_t pre = sizeof(SESSIONS__PREFIX) - 1;
    sessions__task_t *t;

    if (plen < 8 || memcmp(path, "/uploads", 8) != 0 || (plen > 8 && path[8] != '/'))
        return -1;
    if (plen < pre || memcmp(path, SESSIONS__PREFIX, pre) != 0 || (plen > pre && path[pre] != '/')) {
        sessions__error(req, 404, "NOT_FOUND", "no such endpoint", NULL);
        return 0;
    }
    const char *rest = path + pre;
    size_t rlen = plen - pre;

    /* /uploads/sessions[/] */
    if (rlen == 0 || (rlen == 1 && rest[0] == '/')) {
        if (!sessions__method_is(req, "POST")) {
            sessions__unsupported(req, "POST");
            return 0;
        }
        sessions__create(app, req, user);
        return 0;
    }
    rest++, rlen--;
    const char *slash = memchr(rest, '/', rlen);
    size_t idlen = slash != NULL ? (size_t)(slash - rest) : rlen;
    const char *tail = slash != NULL ? slash : rest + rlen;
    size_t tlen = rlen - idlen;
    uint64_t part = 0;
    enum { R_SESSION, R_PART, R_COMPLETE } route;

    if (tlen == 0 || (tlen == 1 && tail[0] == '/')) {
        route = R_SESSION;
    } else if (h2o_memis(tail, tlen, H2O_STRLIT("/complete"))) {
        route = R_COMPLETE;
    } else if (tlen > 7 && memcmp(tail, "/parts/", 7) == 0) {
        route = R_PART;
        if (memchr(tail + 7, '/', tlen - 7) != NULL) {
            sessions__error(req, 404, "NOT_FOUND", "no such endpoint", NULL);
            return 0;
        }
    } else {
        sessions__error(req, 404, "NOT_FOUND", "no such endpoint", NULL);
        return 0;
    }

    /* Method first, then the session: a wrong method is wrong for every id. */
    if (route == R_SESSION && !sessions__method_is(req, "GET") && !sessions__method_is(req, "DELETE")) {
        sessions__unsupported(req, "GET, DELETE");
        return 0;
    }
    if (route == R_COMPLETE && !sessions__method_is(req, "POST")) {
        sessions__unsupported(req, "POST");
        return 0;
    }
    if (route == R_PART && !sessions__method_is(req, "PUT")) {
        sessions__unsupported(req, "PUT");
        return 0;
    }
    if (!berth_id_valid(rest, idlen)) {
        sessions__error(req, 404, "SESSION_UNKNOWN", "upload session unknown", NULL);
        return 0;
    }

    switch (route) {
    case R_SESSION:
        t = sessions__task_new(app, req, sessions__method_is(req, "GET") ? SESSIONS__STATUS : SESSIONS__ABORT, user,
                               0);
        memcpy(t->id, rest, idlen);
        t->id[idlen] = '\0';
        if (t->op == SESSIONS__STATUS)
            t->known = sessions__cache_known(t->id);
        break;
    case R_COMPLETE:
        t = sessions__task_new(app, req, SESSIONS__COMPLETE, user, 0);
        break;
    case R_PART: {
        unsigned char sha[32] = {0};
        int has_sha = 0;
        ssize_t hi;
        if ((part = sessions__part_number(tail + 7, tlen - 7)) == 0) {
            sessions__error(req, 400, "PART_INVALID", "the part number must be a decimal integer from 1",
                            json_pack("{s:s#}", "part", tail + 7, (int)(tlen - 7 > 32 ? 32 : tlen - 7)));
            return 0;
        }
        if ((hi = h2o_find_header_by_str(&req->headers, H2O_STRLIT("content-digest"), -1)) != -1) {
            h2o_iovec_t v = req->headers.entries[hi].value;
            if ((has_sha = sessions__content_digest(v.base, v.len, sha)) < 0) {
                sessions__error(req, 400, "DIGEST_INVALID", "malformed Content-Digest (expected sha-256=:<base64>:)",
                                NULL);
                return 0;
            }
        }
        t = sessions__task_new(app, req, SESSIONS__PUT, user, 1);
        t->part = part;
        t->has_sha = has_sha;
        memcpy(t->sha, sha, sizeof(sha));
        break;
    }
    }
    memcpy(t->id, rest, idlen);
    t->id[idlen] = '\0';
    berth_task_submit(&t->super);
    return 0;
}

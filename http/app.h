/*
 * What every route handler shares: the configuration, the upload engine
 * and the registry, plus the per-loop-thread state it reaches through the
 * request; and the handlers themselves, one file per group of routes.
 *
 * http/server.c authenticates a request (http/auth.c), parses it at the
 * boundary (http/route.c) and calls the handler of its route with the
 * parsed request, which the handler trusts. Handlers answer now or, after
 * a worker did the storage work (http/task.h), later.
 */
#ifndef BERTH_HTTP_APP_H
#define BERTH_HTTP_APP_H

#include <h2o.h>

#include "core/config.h"
#include "core/engine.h"
#include "http/route.h"
#include "http/task.h"

typedef struct berth_auth berth_auth_t;
typedef struct berth_registry berth_registry_t;

typedef struct berth_http_app {
    const berth_config_t *cfg;
    berth_engine_t *engine;     /* uploads, part sessions, blobs (core/engine.h) */
    berth_auth_t *auth;         /* NULL when no auth section is configured (http/auth.h) */
    berth_registry_t *registry; /* manifests, tags, referrers (core/registry.h) */
} berth_http_app_t;

/* The loop thread state of the context the request arrived on. */
static inline berth_http_loop_t *berth_http_loop_of(h2o_req_t *req)
{
    return H2O_STRUCT_FROM_MEMBER(berth_http_loop_t, ctx, req->conn->ctx);
}

/* The common head of a route handler's task (http/upload.c, registry.c,
 * sessions.c): the parsed request, and the result of the engine or
 * registry call `call` makes on a worker. */
typedef struct berth_route_task berth_route_task_t;
typedef int (*berth_route_call_cb)(berth_route_task_t *t);

struct berth_route_task {
    berth_task_t super;
    berth_http_app_t *app;
    berth_route_t r;          /* a copy: it outlives the request */
    berth_route_call_cb call; /* worker thread */
    int rc;                   /* what call returned */
    char errmsg[512];         /* berth_error_last() when rc < 0 */
};

/* Creates a task of `size` bytes (>= sizeof(berth_route_task_t)) for
 * route `r`; the caller submits it (berth_task_submit) once its own fields
 * are set. `dispose` (may be NULL) frees what those hold. In http/task.c. */
berth_route_task_t *berth_route_task_new(berth_http_app_t *app, h2o_req_t *req, const berth_route_t *r, size_t size,
                                         int with_body, berth_route_call_cb call, berth_task_done_cb done,
                                         void (*dispose)(berth_task_t *t));

/* http/upload.c: BERTH_ROUTE_UPLOAD_* (OCI blob uploads). */
void berth_upload_handle(berth_http_app_t *app, h2o_req_t *req, const berth_route_t *r);

/* http/blob.c: BERTH_ROUTE_BLOB_GET (GET and HEAD of a blob, with Range). */
void berth_blob_handle(berth_http_app_t *app, h2o_req_t *req, const berth_route_t *r);

/* http/registry.c: BERTH_ROUTE_CATALOG, _TAGS, _MANIFEST_*, _REFERRERS and
 * _BLOB_DELETE. */
void berth_registry_handle(berth_http_app_t *app, h2o_req_t *req, const berth_route_t *r);

/* http/sessions.c: BERTH_ROUTE_SESSION_*; `user` is the authenticated user
 * (never NULL: http/auth.c answered 401 otherwise). */
void berth_sessions_handle(berth_http_app_t *app, h2o_req_t *req, const berth_route_t *r, const char *user);

#endif

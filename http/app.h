/*
 * What every route handler shares: the configuration and the session
 * engine, plus the per-loop-thread state it reaches through the request.
 */
#ifndef BERTH_HTTP_APP_H
#define BERTH_HTTP_APP_H

#include <h2o.h>

#include "core/config.h"
#include "core/session.h"
#include "http/task.h"

typedef struct berth_parts berth_parts_t;
typedef struct berth_auth berth_auth_t;
typedef struct berth_registry berth_registry_t;

typedef struct berth_http_app {
    const berth_config_t *cfg;
    berth_engine_t *engine;
    berth_parts_t *parts; /* part-numbered sessions (core/parts.h) */
    berth_auth_t *auth;   /* NULL when no auth section is configured (http/auth.h) */
    berth_registry_t *registry; /* manifests, tags, referrers (core/registry.h) */
} berth_http_app_t;

/* The loop thread state of the context the request arrived on. */
static inline berth_http_loop_t *berth_http_loop_of(h2o_req_t *req)
{
    return H2O_STRUCT_FROM_MEMBER(berth_http_loop_t, ctx, req->conn->ctx);
}

/* Routes /v2/...; returns 0 when it answered (now or later), -1 when the
 * path is not its own. */
int berth_oci_handle(berth_http_app_t *app, h2o_req_t *req);

/* Routes /uploads/...; `user` is the authenticated user (never NULL: the
 * caller answered 401 otherwise). Returns 0 when it answered (now or
 * later), -1 when the path is not its own. */
int berth_sessions_handle(berth_http_app_t *app, h2o_req_t *req, const char *user);

/* The /v2/ routes http/registry.c serves, after http/oci.c has split the
 * path (and validated the repository name, for all but the catalog). */
typedef enum berth_registry_route {
    BERTH_ROUTE_MANIFEST,    /* /v2/<name>/manifests/<reference> */
    BERTH_ROUTE_TAGS,        /* /v2/<name>/tags/list */
    BERTH_ROUTE_CATALOG,     /* /v2/_catalog */
    BERTH_ROUTE_REFERRERS,   /* /v2/<name>/referrers/<digest> */
    BERTH_ROUTE_BLOB_DELETE, /* DELETE /v2/<name>/blobs/<digest> */
} berth_registry_route_t;

/* Answers one of those routes (now or later); `last` is the path's last
 * component (reference or digest), empty where there is none. */
void berth_registry_handle(berth_http_app_t *app, h2o_req_t *req, berth_registry_route_t route, h2o_iovec_t name,
                           h2o_iovec_t last);

/* Finds query parameter `key` of the request and percent-decodes its value
 * into out (NUL-terminated). Returns 1 if found, 0 if absent, -1 if
 * malformed or longer than outsz - 1. */
int berth_http_query_param(h2o_req_t *req, const char *key, char *out, size_t outsz);

#endif

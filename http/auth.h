/*
 * Authentication: HTTP Basic against an Apache htpasswd file of bcrypt
 * entries (`htpasswd -B`), as the reference registry's `auth: htpasswd:`.
 *
 * bcrypt is slow on purpose (milliseconds to a tenth of a second per check),
 * so it runs on a worker thread, once: credentials that verified are
 * remembered (as a salted SHA-256 of the Authorization header, never the
 * password) and later requests carrying them are let through on the loop
 * thread at the cost of one SHA-256. Wrong credentials are never
 * remembered, so each one pays bcrypt.
 *
 * Which paths need credentials (berth_auth_dispatch):
 *   /uploads/...  always; when no auth is configured everyone gets 401;
 *   /v2/...       when auth is configured; open otherwise (development mode,
 *                 with a warning at start);
 *   anything else never.
 * A 401 carries `WWW-Authenticate: Basic realm="<realm>"` and the JSON error
 * body {"errors":[{"code":"UNAUTHORIZED",...}]}, so docker, skopeo and
 * podman log in as they do with the reference registry.
 *
 * The file is read once, at start: restart berth after changing it.
 */
#ifndef BERTH_HTTP_AUTH_H
#define BERTH_HTTP_AUTH_H

#include <stddef.h>

#include <h2o.h>

typedef struct berth_auth berth_auth_t;
typedef struct berth_http_app berth_http_app_t;

/* Reads the htpasswd file at `path`. Lines are "user:hash"; blank lines
 * and lines starting with '#' are skipped; entries that are not bcrypt
 * ($2a$, $2b$, $2y$) are skipped with a warning (they could never log in).
 * BERTH_ENOTFOUND / BERTH_EIO when the file cannot be read, BERTH_EINVALID
 * when a line is malformed (the message names the line). */
int berth_auth_new(berth_auth_t **out, const char *realm, const char *path);

/* NULL-safe. */
void berth_auth_free(berth_auth_t *a);

/* How many users the file gave. */
size_t berth_auth_users(const berth_auth_t *a);

/* Results of the checks below. */
#define BERTH_AUTH_OK 0      /* *user is set (valid as long as the berth_auth_t) */
#define BERTH_AUTH_DENIED 1  /* missing, malformed or wrong credentials */
#define BERTH_AUTH_VERIFY 2  /* not known yet: call berth_auth_verify on a worker */

/* Looks at an Authorization header value (NULL when absent) without paying
 * for bcrypt: BERTH_AUTH_OK for credentials verified before, BERTH_AUTH_DENIED
 * for a missing or malformed header, BERTH_AUTH_VERIFY otherwise. Thread-safe
 * and cheap: for the loop thread. */
int berth_auth_check(berth_auth_t *a, const char *header, size_t len, const char **user);

/* Verifies with bcrypt (slow: worker threads only) and remembers success:
 * BERTH_AUTH_OK or BERTH_AUTH_DENIED. Thread-safe. */
int berth_auth_verify(berth_auth_t *a, const char *header, size_t len, const char **user);

/* The route a request takes once authenticated: `user` is the
 * authenticated user, or NULL when the path needs none (or /v2/ without
 * auth configured). */
typedef void (*berth_auth_route_cb)(berth_http_app_t *app, h2o_req_t *req, const char *user);

/* Loop thread: decides whether req needs credentials (see above), checks
 * them (handing bcrypt to a worker when needed) and then calls route, now
 * or later on this loop thread, or answers 401 itself. */
void berth_auth_dispatch(berth_http_app_t *app, h2o_req_t *req, berth_auth_route_cb route);

#endif

/*
 * Building responses: JSON bodies, OCI error bodies, headers, and the one
 * mapping from berth error codes (core/error.h) to HTTP statuses.
 * Loop thread only.
 */
#ifndef BERTH_HTTP_RESPONSE_H
#define BERTH_HTTP_RESPONSE_H

#include <h2o.h>
#include <jansson.h>

/* Adds a response header (name and value copied into the request pool). */
void berth_http_header(h2o_req_t *req, const char *name, const char *value);
void berth_http_headerf(h2o_req_t *req, const char *name, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Sends `status` with no body; Content-Length: 0 except for 204. */
void berth_http_send_empty(h2o_req_t *req, int status, const char *reason);

/* Sends `body` (stolen: decref'd here) as application/json. */
void berth_http_send_json(h2o_req_t *req, int status, const char *reason, json_t *body);

/* Sends an OCI error: {"errors":[{"code":..,"message":..,"detail":..}]}.
 * `detail` is stolen and may be NULL. Headers already added are kept. */
void berth_http_send_oci_error(h2o_req_t *req, int status, const char *code, const char *message, json_t *detail);

/* Sends the OCI error for a failed engine call `rc` (a code from
 * core/error.h): ENOTFOUND answers 404 with `notfound_code`, EINVALID 400 with
 * `invalid_code`, ERANGE 416, EDIGEST 400 DIGEST_INVALID, ETOOLARGE 413,
 * EBUSY 409, EUNAVAILABLE 503, ENOSPACE 507, anything else 500; only client
 * faults (400, 413, 416) carry the engine's message, the rest a fixed text. `message` is the
 * thread-independent text captured on the worker (may be NULL). */
void berth_http_send_engine_error(h2o_req_t *req, int rc, const char *notfound_code, const char *invalid_code,
                                  const char *message);

/* Sends the OCI error for a failed registry call (core/registry.h) `rc`:
 * BERTH_ENOTFOUND with a `missing` digest (a manifest push naming content
 * the repository lacks) answers 400 MANIFEST_BLOB_UNKNOWN with the digest
 * in the detail; other codes as berth_http_send_engine_error with
 * MANIFEST_INVALID for BERTH_EINVALID. */
void berth_http_send_registry_error(h2o_req_t *req, int rc, const char *notfound_code, const char *missing,
                                    const char *message);

/* Sends `body` (stolen) as JSON with the given Content-Type. */
void berth_http_send_json_as(h2o_req_t *req, int status, const char *content_type, json_t *body);

/* Reason phrase for a status. */
const char *berth_http_reason(int status);

#endif

/*
 * Building responses: headers, empty, text and JSON answers. Error answers
 * are http/error.h's. Loop thread only.
 */
#ifndef BERTH_HTTP_RESPONSE_H
#define BERTH_HTTP_RESPONSE_H

#include <h2o.h>
#include <jansson.h>

/* Adds a response header (name and value copied into the request pool). */
void berth_http_header(h2o_req_t *req, const char *name, const char *value);
void berth_http_headerf(h2o_req_t *req, const char *name, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Sends `status` with no body; Content-Length: 0 except for 204. */
void berth_http_send_empty(h2o_req_t *req, int status);

/* Sends `len` bytes of `text` (copied) as `content_type`. A HEAD gets the
 * headers a GET would get, Content-Length included, and no body. */
void berth_http_send_text(h2o_req_t *req, int status, const char *content_type, const char *text, size_t len);

/* Sends `body` (stolen: decref'd here) as application/json, or as
 * `content_type`. */
void berth_http_send_json(h2o_req_t *req, int status, json_t *body);
void berth_http_send_json_as(h2o_req_t *req, int status, const char *content_type, json_t *body);

/* Reason phrase for a status. */
const char *berth_http_reason(int status);

#endif

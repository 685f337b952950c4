/*
 * Response helpers and the error-code-to-HTTP mapping.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "core/error.h"
#include "http/response.h"

void berth_http_header(h2o_req_t *req, const char *name, const char *value)
{
    size_t nlen = strlen(name), vlen = strlen(value);
    h2o_iovec_t n = h2o_strdup(&req->pool, name, nlen);
    h2o_iovec_t v = h2o_strdup(&req->pool, value, vlen);

    /* HTTP/2 requires lowercase field names (a peer answers anything else
     * with PROTOCOL_ERROR); HTTP/1 shows the original spelling. */
    h2o_strtolower(n.base, n.len);
    h2o_add_header_by_str(&req->pool, &req->res.headers, n.base, n.len, 1, h2o_strdup(&req->pool, name, nlen).base,
                          v.base, v.len);
}

void berth_http_headerf(h2o_req_t *req, const char *name, const char *fmt, ...)
{
    char buf[1024];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    berth_http_header(req, name, buf);
}

const char *berth_http_reason(int status)
{
    switch (status) {
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 206: return "Partial Content";
    case 307: return "Temporary Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 409: return "Conflict";
    case 411: return "Length Required";
    case 413: return "Payload Too Large";
    case 416: return "Range Not Satisfiable";
    case 429: return "Too Many Requests";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    case 507: return "Insufficient Storage";
    default: return "Unknown";
    }
}

void berth_http_send_empty(h2o_req_t *req, int status, const char *reason)
{
    req->res.status = status;
    req->res.reason = reason != NULL ? reason : berth_http_reason(status);
    /* Without a length h2o closes HTTP/1.1 connections after 2xx answers;
     * a 204 must carry none. */
    if (status != 204 && status != 304)
        req->res.content_length = 0;
    h2o_send_inline(req, "", 0);
}

/* A HEAD is answered with the headers a GET would get, Content-Length
 * included, and no body. */
static void response__send_inline(h2o_req_t *req, const char *text, size_t len)
{
    if (h2o_memis(req->method.base, req->method.len, H2O_STRLIT("HEAD")))
        h2o_send_inline(req, "", 0);
    else
        h2o_send_inline(req, text, len);
}

void berth_http_send_json_as(h2o_req_t *req, int status, const char *content_type, json_t *body)
{
    char *text = json_dumps(body, JSON_COMPACT);
    size_t len = text != NULL ? strlen(text) : 0;

    json_decref(body);
    req->res.status = status;
    req->res.reason = berth_http_reason(status);
    req->res.content_length = len;
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL,
                   h2o_strdup(&req->pool, content_type, SIZE_MAX).base, strlen(content_type));
    response__send_inline(req, text != NULL ? text : "", len);
    free(text);
}

void berth_http_send_json(h2o_req_t *req, int status, const char *reason, json_t *body)
{
    char *text = json_dumps(body, JSON_COMPACT);
    size_t len = text != NULL ? strlen(text) : 0;

    json_decref(body);
    req->res.status = status;
    req->res.reason = reason != NULL ? reason : berth_http_reason(status);
    req->res.content_length = len;
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, H2O_STRLIT("application/json"));
    response__send_inline(req, text != NULL ? text : "", len);
    free(text);
}

void berth_http_send_oci_error(h2o_req_t *req, int status, const char *code, const char *message, json_t *detail)
{
    json_t *err = json_pack("{s:s, s:s}", "code", code, "message", message != NULL ? message : "");
    json_object_set_new(err, "detail", detail != NULL ? detail : json_object());
    berth_http_send_json(req, status, NULL, json_pack("{s:[o]}", "errors", err));
}

void berth_http_send_engine_error(h2o_req_t *req, int rc, const char *notfound_code, const char *invalid_code,
                                  const char *message)
{
    int status;
    const char *code;
    const char *fallback;
    int client_fault = 0; /* the engine's message describes the request */

    switch (rc) {
    case BERTH_ENOTFOUND:
        status = 404, code = notfound_code, fallback = "not found";
        break;
    case BERTH_EINVALID:
        status = 400, code = invalid_code, fallback = "invalid request", client_fault = 1;
        break;
    case BERTH_ERANGE:
        status = 416, code = "BLOB_UPLOAD_INVALID", fallback = "range does not start at the upload's offset";
        client_fault = 1;
        break;
    case BERTH_EDIGEST:
        status = 400, code = "DIGEST_INVALID", fallback = "provided digest did not match uploaded content";
        client_fault = 1;
        break;
    case BERTH_ETOOLARGE:
        status = 413, code = "SIZE_INVALID", fallback = "content too large", client_fault = 1;
        break;
    case BERTH_EBUSY:
        status = 409, code = "BLOB_UPLOAD_INVALID", fallback = "upload is busy with another request, retry";
        break;
    case BERTH_EUNAVAILABLE:
        status = 503, code = "UNAVAILABLE", fallback = "storage unavailable, retry later";
        break;
    case BERTH_ENOSPACE:
        status = 507, code = "UNAVAILABLE", fallback = "storage full";
        break;
    default:
        status = 500, code = "UNKNOWN", fallback = "internal storage error";
        break;
    }
    /* Storage messages name files and keys: they go to the error log, the
     * client gets the fixed text of the code. */
    if (!client_fault || message == NULL || *message == '\0')
        message = fallback;
    berth_http_send_oci_error(req, status, code, message, NULL);
}

void berth_http_send_registry_error(h2o_req_t *req, int rc, const char *notfound_code, const char *missing,
                                    const char *message)
{
    if (rc == BERTH_ENOTFOUND && missing != NULL && missing[0] != '\0') {
        berth_http_send_oci_error(req, 400, "MANIFEST_BLOB_UNKNOWN",
                                  "manifest references a blob unknown to the repository",
                                  json_pack("{s:s}", "digest", missing));
        return;
    }
    berth_http_send_engine_error(req, rc, notfound_code, "MANIFEST_INVALID", message);
}

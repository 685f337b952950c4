/*
 * Response helpers (contract in response.h).
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

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

void berth_http_send_empty(h2o_req_t *req, int status)
{
    req->res.status = status;
    req->res.reason = berth_http_reason(status);
    /* Without a length h2o closes HTTP/1.1 connections after 2xx answers;
     * a 204 must carry none. */
    if (status != 204 && status != 304)
        req->res.content_length = 0;
    h2o_send_inline(req, "", 0);
}

void berth_http_send_text(h2o_req_t *req, int status, const char *content_type, const char *text, size_t len)
{
    req->res.status = status;
    req->res.reason = berth_http_reason(status);
    req->res.content_length = len;
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL,
                   h2o_strdup(&req->pool, content_type, SIZE_MAX).base, strlen(content_type));
    if (h2o_memis(req->method.base, req->method.len, H2O_STRLIT("HEAD")))
        h2o_send_inline(req, "", 0);
    else
        h2o_send_inline(req, text, len);
}

void berth_http_send_json_as(h2o_req_t *req, int status, const char *content_type, json_t *body)
{
    char *text = json_dumps(body, JSON_COMPACT);

    json_decref(body);
    berth_http_send_text(req, status, content_type, text != NULL ? text : "", text != NULL ? strlen(text) : 0);
    free(text);
}

void berth_http_send_json(h2o_req_t *req, int status, json_t *body)
{
    berth_http_send_json_as(req, status, "application/json", body);
}

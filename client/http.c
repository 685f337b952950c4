/*
 * libcurl under the client. See http.h.
 */
#include "client/http.h"

#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "core/error.h"

#define HTTP_BODY_CAP (1u << 20)

struct berth_http {
    CURL *curl;
    berth_http_options_t o;
    char *userpwd;
    char errbuf[CURL_ERROR_SIZE];
};

struct http_xfer {
    berth_http_resp_t *resp;
    berth_http_body_t *body;
    berth_http_sink_t *sink;
    CURL *curl;
    /* stall detection */
    long timeout_s;
    curl_off_t last_ul, last_dl;
    struct timespec last_move;
    int stalled;
};

int berth_http_global_init(void)
{
    /* A peer that closes mid-send must be an error return, never a
     * SIGPIPE death (TLS writes may not pass MSG_NOSIGNAL). */
    signal(SIGPIPE, SIG_IGN);
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return berth_error_set(BERTH_ERR, "libcurl: global init failed");
    return 0;
}

void berth_http_global_cleanup(void)
{
    curl_global_cleanup();
}

int berth_http_new(berth_http_t **out, const berth_http_options_t *o)
{
    berth_http_t *h = calloc(1, sizeof(*h));

    *out = NULL;
    if (h == NULL)
        return berth_error_set(BERTH_ERR, "out of memory");
    if (o != NULL)
        h->o = *o;
    if (h->o.timeout_s <= 0)
        h->o.timeout_s = 30;
    if (h->o.connect_timeout_s <= 0)
        h->o.connect_timeout_s = 10;
    if (h->o.user != NULL) {
        size_t n = strlen(h->o.user) + (h->o.password ? strlen(h->o.password) : 0) + 2;
        if ((h->userpwd = malloc(n)) == NULL)
            goto oom;
        snprintf(h->userpwd, n, "%s:%s", h->o.user, h->o.password ? h->o.password : "");
    }
    if ((h->curl = curl_easy_init()) == NULL)
        goto oom;
    *out = h;
    return 0;
oom:
    berth_http_free(h);
    return berth_error_set(BERTH_ERR, "out of memory");
}

void berth_http_free(berth_http_t *h)
{
    if (h == NULL)
        return;
    if (h->curl != NULL)
        curl_easy_cleanup(h->curl);
    if (h->userpwd != NULL) {
        memset(h->userpwd, 0, strlen(h->userpwd));
        free(h->userpwd);
    }
    free(h);
}

void berth_http_resp_clear(berth_http_resp_t *r)
{
    free(r->location);
    free(r->range);
    free(r->content_range);
    free(r->digest);
    free(r->uuid);
    free(r->www_authenticate);
    free(r->body);
    memset(r, 0, sizeof(*r));
    r->content_length = -1;
}

static char *http__dup_value(const char *v, size_t n)
{
    while (n > 0 && (*v == ' ' || *v == '\t')) {
        v++;
        n--;
    }
    while (n > 0 && (v[n - 1] == '\r' || v[n - 1] == '\n' || v[n - 1] == ' ' || v[n - 1] == '\t'))
        n--;
    char *s = malloc(n + 1);
    if (s != NULL) {
        memcpy(s, v, n);
        s[n] = '\0';
    }
    return s;
}

static void http__set(char **field, const char *v, size_t n)
{
    free(*field);
    *field = http__dup_value(v, n);
}

static size_t http__header_cb(char *buf, size_t size, size_t nitems, void *userdata)
{
    struct http_xfer *x = userdata;
    berth_http_resp_t *r = x->resp;
    size_t n = size * nitems;
    const char *colon;

    /* A new status line (after a 100 Continue, say) starts a new response. */
    if (n >= 5 && strncmp(buf, "HTTP/", 5) == 0) {
        uint64_t sent = r->upload_bytes;
        berth_http_resp_clear(r);
        r->upload_bytes = sent;
        const char *sp = memchr(buf, ' ', n);
        if (sp != NULL)
            r->status = strtol(sp + 1, NULL, 10);
        return n;
    }
    if ((colon = memchr(buf, ':', n)) == NULL)
        return n;
    size_t klen = (size_t)(colon - buf);
    const char *v = colon + 1;
    size_t vlen = n - klen - 1;
#define IS(name) (klen == sizeof(name) - 1 && strncasecmp(buf, name, klen) == 0)
    if (IS("location"))
        http__set(&r->location, v, vlen);
    else if (IS("range"))
        http__set(&r->range, v, vlen);
    else if (IS("content-range"))
        http__set(&r->content_range, v, vlen);
    else if (IS("docker-content-digest"))
        http__set(&r->digest, v, vlen);
    else if (IS("docker-upload-uuid"))
        http__set(&r->uuid, v, vlen);
    else if (IS("www-authenticate"))
        http__set(&r->www_authenticate, v, vlen);
    else if (IS("content-length")) {
        char *s = http__dup_value(v, vlen);
        if (s != NULL) {
            char *end;
            errno = 0;
            long long cl = strtoll(s, &end, 10);
            if (errno == 0 && end != s && *end == '\0' && cl >= 0)
                r->content_length = cl;
            free(s);
        }
    }
#undef IS
    return n;
}

static size_t http__read_cb(char *buf, size_t size, size_t nitems, void *userdata)
{
    struct http_xfer *x = userdata;
    berth_http_body_t *b = x->body;
    size_t want = size * nitems;
    uint64_t left = b->len - b->pos;
    size_t n = want < left ? want : (size_t)left;

    if (n == 0)
        return 0;
    if (b->fd >= 0) {
        ssize_t got;
        do
            got = pread(b->fd, buf, n, (off_t)(b->off + b->pos));
        while (got < 0 && errno == EINTR);
        if (got <= 0) {
            b->read_error = got < 0 ? errno : EIO;
            return CURL_READFUNC_ABORT;
        }
        n = (size_t)got;
    } else {
        memcpy(buf, b->mem + b->pos, n);
    }
    if (b->hash != NULL && b->hash_pos != NULL) {
        uint64_t at = b->off + b->pos;
        /* Hash only the part of this read at or past what is hashed. */
        if (at <= *b->hash_pos && at + n > *b->hash_pos) {
            size_t skip = (size_t)(*b->hash_pos - at);
            berth_sha256_update(b->hash, buf + skip, n - skip);
            *b->hash_pos = at + n;
        }
    }
    b->pos += n;
    x->resp->upload_bytes += n;
    if (b->on_progress != NULL)
        b->on_progress(b->ctx, b->pos);
    return n;
}

/* libcurl rewinds a body to re-send it by itself on a reused connection
 * that died mid-request. Refused (unless nothing was read yet): every lost
 * request goes through the caller's status call and retry policy, so
 * retries are counted and shown, and the server's offset decides. */
static int http__seek_cb(void *userdata, curl_off_t offset, int origin)
{
    struct http_xfer *x = userdata;

    if (origin != SEEK_SET || offset < 0 || (uint64_t)offset > x->body->len ||
        ((uint64_t)offset != x->body->pos && x->body->pos != 0))
        return CURL_SEEKFUNC_CANTSEEK;
    x->body->pos = (uint64_t)offset;
    return CURL_SEEKFUNC_OK;
}

/* A transfer fails when no byte has moved either way for timeout_s:
 * libcurl's LOW_SPEED_* average over several seconds, so a stall right
 * after a burst would go unnoticed for longer than asked. */
static int http__xferinfo_cb(void *userdata, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal, curl_off_t ulnow)
{
    struct http_xfer *x = userdata;
    struct timespec now;

    clock_gettime(CLOCK_MONOTONIC, &now);
    if (dlnow != x->last_dl || ulnow != x->last_ul || x->last_move.tv_sec == 0) {
        x->last_dl = dlnow;
        x->last_ul = ulnow;
        x->last_move = now;
        return 0;
    }
    double idle = (double)(now.tv_sec - x->last_move.tv_sec) + (double)(now.tv_nsec - x->last_move.tv_nsec) / 1e9;
    if (idle >= (double)x->timeout_s) {
        x->stalled = 1;
        return 1;
    }
    return 0;
}

static size_t http__write_cb(char *buf, size_t size, size_t nmemb, void *userdata)
{
    struct http_xfer *x = userdata;
    berth_http_resp_t *r = x->resp;
    size_t n = size * nmemb;

    if (x->sink != NULL && r->status >= 200 && r->status < 300) {
        berth_http_sink_t *s = x->sink;
        size_t done = 0;
        while (done < n) {
            ssize_t w = pwrite(s->fd, buf + done, n - done, (off_t)s->off);
            if (w < 0 && errno == EINTR)
                continue;
            if (w <= 0) {
                s->write_error = w < 0 ? errno : EIO;
                return 0;
            }
            if (s->hash != NULL)
                berth_sha256_update(s->hash, buf + done, (size_t)w);
            done += (size_t)w;
            s->off += (uint64_t)w;
            s->got += (uint64_t)w;
        }
        if (s->on_progress != NULL)
            s->on_progress(s->ctx, s->got);
        return n;
    }
    /* Captured body: keep the first HTTP_BODY_CAP bytes, drop the rest. */
    if (r->body_len < HTTP_BODY_CAP) {
        size_t take = n < HTTP_BODY_CAP - r->body_len ? n : HTTP_BODY_CAP - r->body_len;
        char *nb = realloc(r->body, r->body_len + take + 1);
        if (nb == NULL)
            return 0;
        memcpy(nb + r->body_len, buf, take);
        r->body = nb;
        r->body_len += take;
        r->body[r->body_len] = '\0';
    }
    return n;
}

int berth_http_request(berth_http_t *h, const char *method, const char *url, const char *const *headers,
                       berth_http_body_t *body, berth_http_sink_t *sink, berth_http_resp_t *resp)
{
    struct http_xfer x = {resp, body, sink, h->curl, h->o.timeout_s};
    struct curl_slist *hl = NULL, *t;
    CURL *c = h->curl;
    CURLcode cc;
    int err = 0;
    char ctype[128];

    memset(resp, 0, sizeof(*resp));
    resp->content_length = -1;
    curl_easy_reset(c);
    h->errbuf[0] = '\0';

    for (const char *const *p = headers; p != NULL && *p != NULL; p++) {
        if ((t = curl_slist_append(hl, *p)) == NULL)
            goto oom;
        hl = t;
    }
    /* libcurl would wait for a 100 Continue before large bodies: a round
     * trip per chunk for nothing (servers here answer at once). */
    if ((t = curl_slist_append(hl, "Expect:")) == NULL)
        goto oom;
    hl = t;

    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, h->errbuf);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "berth/" BERTH_VERSION);
    curl_easy_setopt(c, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, h->o.connect_timeout_s);
    /* A stall (no byte either way for timeout_s) fails the transfer; a
     * slow but moving upload never does. */
    curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, http__xferinfo_cb);
    curl_easy_setopt(c, CURLOPT_XFERINFODATA, &x);
    curl_easy_setopt(c, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, http__header_cb);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &x);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, http__write_cb);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &x);
    curl_easy_setopt(c, CURLOPT_BUFFERSIZE, 256L * 1024);
    curl_easy_setopt(c, CURLOPT_UPLOAD_BUFFERSIZE, 512L * 1024);
    if (h->o.insecure) {
        curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 0L);
    }
    if (h->userpwd != NULL) {
        curl_easy_setopt(c, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
        curl_easy_setopt(c, CURLOPT_USERPWD, h->userpwd);
    }
    if (h->o.verbose)
        curl_easy_setopt(c, CURLOPT_VERBOSE, 1L);

    if (strcmp(method, "HEAD") == 0 || strcmp(method, "GET") == 0) {
        curl_easy_setopt(c, method[0] == 'H' ? CURLOPT_NOBODY : CURLOPT_HTTPGET, 1L);
        /* Registries on object storage redirect blob reads; libcurl drops
         * the credentials when the redirect leaves the host. */
        curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
        curl_easy_setopt(c, CURLOPT_MAXREDIRS, 5L);
    } else {
        uint64_t len = body != NULL ? body->len : 0;
        if (body != NULL) {
            body->pos = 0;
            body->read_error = 0;
        }
        snprintf(ctype, sizeof(ctype), "Content-Type: %s",
                 body != NULL && body->content_type != NULL ? body->content_type : "application/octet-stream");
        if ((t = curl_slist_append(hl, ctype)) == NULL)
            goto oom;
        hl = t;
        curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
        curl_easy_setopt(c, CURLOPT_INFILESIZE_LARGE, (curl_off_t)len);
        if (body != NULL) {
            curl_easy_setopt(c, CURLOPT_READFUNCTION, http__read_cb);
            curl_easy_setopt(c, CURLOPT_READDATA, &x);
            curl_easy_setopt(c, CURLOPT_SEEKFUNCTION, http__seek_cb);
            curl_easy_setopt(c, CURLOPT_SEEKDATA, &x);
        }
    }
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);

    cc = curl_easy_perform(c);
    if (body != NULL && body->read_error) {
        err = berth_error_set(BERTH_EIO, "reading the file: %s", strerror(body->read_error));
    } else if (sink != NULL && sink->write_error) {
        err = berth_error_set(BERTH_EIO, "writing the file: %s", strerror(sink->write_error));
    } else if (x.stalled) {
        err =
            berth_error_set(BERTH_EUNAVAILABLE, "%s %s: stalled: no byte moved for %ld s", method, url, h->o.timeout_s);
    } else if (cc == CURLE_SEND_FAIL_REWIND) {
        err = berth_error_set(BERTH_EUNAVAILABLE, "%s %s: connection lost while sending", method, url);
    } else if (cc != CURLE_OK) {
        err = berth_error_set(BERTH_EUNAVAILABLE, "%s %s: %s", method, url,
                              h->errbuf[0] ? h->errbuf : curl_easy_strerror(cc));
    } else {
        long ver = 0;
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &resp->status);
        curl_easy_getinfo(c, CURLINFO_HTTP_VERSION, &ver);
        resp->http_version = ver == CURL_HTTP_VERSION_2_0 ? 2 : ver == CURL_HTTP_VERSION_3 ? 3 : 1;
    }
    curl_slist_free_all(hl);
    return err;
oom:
    curl_slist_free_all(hl);
    return berth_error_set(BERTH_ERR, "out of memory");
}

const char *berth_http_resp_error(const berth_http_resp_t *r, char *buf, size_t len)
{
    json_t *j = NULL, *e;
    json_error_t je;

    buf[0] = '\0';
    if (r->body == NULL || r->body_len == 0 || len == 0)
        return buf;
    j = json_loadb(r->body, r->body_len, 0, &je);
    if (j != NULL && (e = json_object_get(j, "errors")) != NULL && json_is_array(e) && json_array_size(e) > 0) {
        json_t *e0 = json_array_get(e, 0);
        const char *code = json_string_value(json_object_get(e0, "code"));
        const char *msg = json_string_value(json_object_get(e0, "message"));
        snprintf(buf, len, "%s%s%s", code ? code : "", code && msg ? ": " : "", msg ? msg : "");
    } else if (j != NULL && (e = json_object_get(j, "error")) != NULL) {
        if (json_is_string(e)) {
            snprintf(buf, len, "%s", json_string_value(e));
        } else {
            const char *code = json_string_value(json_object_get(e, "code"));
            const char *msg = json_string_value(json_object_get(e, "message"));
            snprintf(buf, len, "%s%s%s", code ? code : "", code && msg ? ": " : "", msg ? msg : "");
        }
    } else {
        size_t n = r->body_len < 200 ? r->body_len : 200;
        size_t k = 0;
        for (size_t i = 0; i < n && k + 1 < len; i++)
            buf[k++] = (r->body[i] == '\n' || r->body[i] == '\r') ? ' ' : r->body[i];
        buf[k] = '\0';
    }
    json_decref(j);
    return buf;
}

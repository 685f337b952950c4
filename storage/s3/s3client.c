/*
 * The S3 client (contract in s3client.h).
 *
 * What curl 7.88's CURLOPT_AWS_SIGV4 leaves to the caller, each of which
 * breaks a signature if missed: x-amz-content-sha256 is sent here (the
 * body's hash for small bodies, UNSIGNED-PAYLOAD for parts); the path is
 * percent-encoded here; the query arrives canonical; no header is removed
 * with an empty "Name:" entry (those are signed but not sent), so a large
 * body sends a real "Expect: 100-continue"; POSTs carry a Content-Type; PUT
 * bodies go through CURLOPT_UPLOAD with a known size, so a Content-Length is
 * sent.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <curl/curl.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

#include "core/error.h"
#include "core/log.h"
#include "storage/s3/s3client.h"
#include "storage/s3/s3xml.h"

/* Bodies up to this size are hashed into x-amz-content-sha256; larger ones
 * (parts) are sent UNSIGNED-PAYLOAD: hashing 10 MiB again costs more than
 * TLS already protects. */
#define S3C__HASH_MAX ((size_t)1 << 20)
/* Non-2xx bodies are S3 error documents; more is not worth keeping. */
#define S3C__ERRBODY_MAX ((size_t)64 << 10)
#define S3C__URL_MAX 4096

typedef struct s3c__handle {
    struct s3c__handle *next;
    CURL *curl;
} s3c__handle_t;

struct berth_s3_client {
    char *base;  /* "http://127.0.0.1:9000/bucket" (path style) or "https://bucket.s3.region.amazonaws.com" */
    char *sigv4; /* "aws:amz:<region>:s3" */
    char *userpwd;
    char *access, *secret, *region;
    char *host;  /* "127.0.0.1:9000" */
    char *path0; /* "/bucket" (path style) or "" */
    uint64_t connect_timeout_ms, timeout_ms;
    int max_retries;

    pthread_key_t key;
    pthread_mutex_t lock; /* handles */
    s3c__handle_t *handles;

    uint64_t requests, sent, received; /* atomics */
};

static pthread_once_t s3c__global_once = PTHREAD_ONCE_INIT;
static int s3c__global_ok;

static void s3c__global_init(void)
{
    s3c__global_ok = curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK;
}

int berth_s3_encode(char *out, size_t cap, const char *s, int keep_slash)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = 0;

    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
        int plain = (*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-' ||
                    *p == '_' || *p == '.' || *p == '~' || (keep_slash && *p == '/');
        if (n + (plain ? 1 : 3) >= cap)
            return -1;
        if (plain) {
            out[n++] = (char)*p;
        } else {
            out[n++] = '%';
            out[n++] = hex[*p >> 4];
            out[n++] = hex[*p & 15];
        }
    }
    if (n >= cap)
        return -1;
    out[n] = '\0';
    return (int)n;
}

int berth_s3_client_new(berth_s3_client_t **out, const berth_s3_client_options_t *o)
{
    berth_s3_client_t *c = NULL;
    const char *region;
    char buf[S3C__URL_MAX];
    int err = 0, n;

    if (out == NULL)
        return berth_error_set(BERTH_EINVALID, "s3 client: missing argument");
    *out = NULL;
    if (o == NULL || o->bucket == NULL || o->bucket[0] == '\0')
        return berth_error_set(BERTH_EINVALID, "storage.s3.bucket is not set");
    if (o->accesskey == NULL || o->secretkey == NULL)
        return berth_error_set(BERTH_EINVALID, "storage.s3: no credentials (accesskey/secretkey or "
                                               "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY)");
    pthread_once(&s3c__global_once, s3c__global_init);
    if (!s3c__global_ok)
        return berth_error_set(BERTH_ERR, "s3 client: curl_global_init failed");
    if ((c = calloc(1, sizeof(*c))) == NULL)
        return berth_error_set(BERTH_ERR, "out of memory");
    pthread_mutex_init(&c->lock, NULL);
    if (pthread_key_create(&c->key, NULL) != 0) {
        pthread_mutex_destroy(&c->lock);
        free(c);
        return berth_error_set(BERTH_ERR, "s3 client: pthread_key_create failed");
    }
    region = o->region != NULL && o->region[0] != '\0' ? o->region : "us-east-1";
    if (o->endpoint != NULL && o->endpoint[0] != '\0') {
        size_t len = strlen(o->endpoint);
        while (len > 0 && o->endpoint[len - 1] == '/')
            len--;
        if (strstr(o->endpoint, "://") != NULL)
            n = snprintf(buf, sizeof(buf), "%.*s/%s", (int)len, o->endpoint, o->bucket);
        else
            n = snprintf(buf, sizeof(buf), "%s://%.*s/%s", o->secure ? "https" : "http", (int)len, o->endpoint,
                         o->bucket);
    } else {
        n = snprintf(buf, sizeof(buf), "%s://%s.s3.%s.amazonaws.com", o->secure ? "https" : "http", o->bucket, region);
    }
    if (n < 0 || (size_t)n >= sizeof(buf)) {
        err = berth_error_set(BERTH_EINVALID, "storage.s3: endpoint too long");
        goto done;
    }
    if ((c->base = strdup(buf)) == NULL) {
        err = berth_error_set(BERTH_ERR, "out of memory");
        goto done;
    }
    snprintf(buf, sizeof(buf), "aws:amz:%s:s3", region);
    if ((c->sigv4 = strdup(buf)) == NULL) {
        err = berth_error_set(BERTH_ERR, "out of memory");
        goto done;
    }
    n = snprintf(buf, sizeof(buf), "%s:%s", o->accesskey, o->secretkey);
    if (n < 0 || (size_t)n >= sizeof(buf) || (c->userpwd = strdup(buf)) == NULL) {
        err = berth_error_set(BERTH_ERR, "out of memory");
        goto done;
    }
    {
        /* For presigning: the host and the path before the key. */
        const char *h = strstr(c->base, "://") + 3, *slash = strchr(h, '/');
        size_t hl = slash != NULL ? (size_t)(slash - h) : strlen(h);
        c->host = strndup(h, hl);
        c->path0 = strdup(slash != NULL ? slash : "");
        c->access = strdup(o->accesskey);
        c->secret = strdup(o->secretkey);
        c->region = strdup(region);
        if (c->host == NULL || c->path0 == NULL || c->access == NULL || c->secret == NULL || c->region == NULL) {
            err = berth_error_set(BERTH_ERR, "out of memory");
            goto done;
        }
    }
    c->connect_timeout_ms = o->connect_timeout_ms;
    c->timeout_ms = o->timeout_ms;
    c->max_retries = o->max_retries;
    *out = c;
    c = NULL;

done:
    berth_s3_client_free(c);
    return err;
}

void berth_s3_client_free(berth_s3_client_t *c)
{
    s3c__handle_t *h, *next;

    if (c == NULL)
        return;
    for (h = c->handles; h != NULL; h = next) {
        next = h->next;
        curl_easy_cleanup(h->curl);
        free(h);
    }
    pthread_key_delete(c->key);
    pthread_mutex_destroy(&c->lock);
    free(c->base);
    free(c->sigv4);
    free(c->host);
    free(c->path0);
    free(c->access);
    free(c->region);
    if (c->secret != NULL) {
        memset(c->secret, 0, strlen(c->secret));
        free(c->secret);
    }
    if (c->userpwd != NULL) {
        memset(c->userpwd, 0, strlen(c->userpwd));
        free(c->userpwd);
    }
    free(c);
}

void berth_s3_client_stats(berth_s3_client_t *c, uint64_t *requests, uint64_t *sent, uint64_t *received)
{
    if (requests != NULL)
        *requests = __atomic_load_n(&c->requests, __ATOMIC_RELAXED);
    if (sent != NULL)
        *sent = __atomic_load_n(&c->sent, __ATOMIC_RELAXED);
    if (received != NULL)
        *received = __atomic_load_n(&c->received, __ATOMIC_RELAXED);
}

/* The calling thread's handle for this client, made on first use. */
static CURL *s3c__curl(berth_s3_client_t *c)
{
    s3c__handle_t *h = pthread_getspecific(c->key);

    if (h != NULL) {
        curl_easy_reset(h->curl);
        return h->curl;
    }
    if ((h = calloc(1, sizeof(*h))) == NULL)
        return NULL;
    if ((h->curl = curl_easy_init()) == NULL || pthread_setspecific(c->key, h) != 0) {
        if (h->curl != NULL)
            curl_easy_cleanup(h->curl);
        free(h);
        return NULL;
    }
    pthread_mutex_lock(&c->lock);
    h->next = c->handles;
    c->handles = h;
    pthread_mutex_unlock(&c->lock);
    return h->curl;
}

typedef struct s3c__xfer {
    const berth_s3_req_t *req;
    berth_s3_resp_t *resp;
    CURL *curl;
    size_t sent; /* of the request body */
    size_t cap;  /* of resp->body */
    int to_out;  /* -1 undecided, 0 into resp->body, 1 into req->out */
} s3c__xfer_t;

static size_t s3c__read(char *dst, size_t size, size_t nmemb, void *arg)
{
    s3c__xfer_t *x = arg;
    size_t want = size * nmemb, left = x->req->body_len - x->sent;

    if (want > left)
        want = left;
    if (want > 0)
        memcpy(dst, (const char *)x->req->body + x->sent, want);
    x->sent += want;
    return want;
}

static size_t s3c__write(char *src, size_t size, size_t nmemb, void *arg)
{
    s3c__xfer_t *x = arg;
    berth_s3_resp_t *r = x->resp;
    size_t n = size * nmemb;

    if (x->to_out < 0) {
        long status = 0;
        curl_easy_getinfo(x->curl, CURLINFO_RESPONSE_CODE, &status);
        x->to_out = x->req->out != NULL && status >= 200 && status < 300;
    }
    if (x->to_out) {
        if (r->out_len + n > x->req->out_cap)
            return 0; /* more than asked for: fail rather than overflow */
        memcpy((char *)x->req->out + r->out_len, src, n);
        r->out_len += n;
        return n;
    }
    if (r->body_len + n > S3C__ERRBODY_MAX && x->req->out != NULL)
        return n; /* an error body too long to be S3's: keep the head */
    if (r->body_len + n + 1 > x->cap) {
        size_t cap = x->cap != 0 ? x->cap : 4096;
        while (cap < r->body_len + n + 1)
            cap *= 2;
        char *v = realloc(r->body, cap);
        if (v == NULL)
            return 0;
        r->body = v;
        x->cap = cap;
    }
    memcpy(r->body + r->body_len, src, n);
    r->body_len += n;
    r->body[r->body_len] = '\0';
    return n;
}

static size_t s3c__header(char *line, size_t size, size_t nmemb, void *arg)
{
    s3c__xfer_t *x = arg;
    size_t n = size * nmemb, len = n;

    while (len > 0 && (line[len - 1] == '\r' || line[len - 1] == '\n'))
        len--;
    if (len > 5 && strncasecmp(line, "etag:", 5) == 0) {
        size_t i = 5;
        while (i < len && line[i] == ' ')
            i++;
        if (len - i < sizeof(x->resp->etag)) {
            memcpy(x->resp->etag, line + i, len - i);
            x->resp->etag[len - i] = '\0';
        }
    } else if (len > 15 && strncasecmp(line, "content-length:", 15) == 0) {
        char tmp[32];
        size_t i = 15;
        while (i < len && line[i] == ' ')
            i++;
        if (len - i < sizeof(tmp)) {
            memcpy(tmp, line + i, len - i);
            tmp[len - i] = '\0';
            x->resp->content_length = strtoull(tmp, NULL, 10);
            x->resp->has_content_length = 1;
        }
    } else if (len > 5 && strncmp(line, "HTTP/", 5) == 0) {
        /* A new status line (after 100 Continue, or a retry): forget what
         * the previous one said. */
        x->resp->etag[0] = '\0';
        x->resp->has_content_length = 0;
    }
    return n;
}

static void s3c__hex_sha256(const void *buf, size_t len, char out[65])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char md[SHA256_DIGEST_LENGTH];

    SHA256(buf != NULL ? buf : (const void *)"", len, md);
    for (int i = 0; i < SHA256_DIGEST_LENGTH; i++) {
        out[2 * i] = hex[md[i] >> 4];
        out[2 * i + 1] = hex[md[i] & 15];
    }
    out[64] = '\0';
}

/* One attempt. Returns the curl code; resp has the status. */
static CURLcode s3c__attempt(berth_s3_client_t *c, CURL *curl, const berth_s3_req_t *req, const char *url,
                             const char *sha, berth_s3_resp_t *resp)
{
    struct curl_slist *hdrs = NULL;
    char line[256];
    s3c__xfer_t x = {req, resp, curl, 0, 0, -1};
    int body = req->body != NULL || strcmp(req->method, "PUT") == 0 || strcmp(req->method, "POST") == 0;
    CURLcode rc;

    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_AWS_SIGV4, c->sigv4);
    curl_easy_setopt(curl, CURLOPT_USERPWD, c->userpwd);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, (long)c->connect_timeout_ms);
    if (c->timeout_ms > 0)
        curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, (long)c->timeout_ms);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, s3c__write);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &x);
    curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, s3c__header);
    curl_easy_setopt(curl, CURLOPT_HEADERDATA, &x);

    snprintf(line, sizeof(line), "x-amz-content-sha256: %s", sha);
    hdrs = curl_slist_append(hdrs, line);
    if (req->has_range) {
        snprintf(line, sizeof(line), "Range: bytes=%llu-%llu", (unsigned long long)req->range_first,
                 (unsigned long long)req->range_last);
        hdrs = curl_slist_append(hdrs, line);
    }
    if (body) {
        snprintf(line, sizeof(line), "Content-Type: %s",
                 req->content_type != NULL ? req->content_type : "application/octet-stream");
        hdrs = curl_slist_append(hdrs, line);
    }
    if (req->content_md5 != NULL) {
        snprintf(line, sizeof(line), "Content-MD5: %s", req->content_md5);
        hdrs = curl_slist_append(hdrs, line);
    }
    /* Conditions are signed like every listed header, and sent. */
    if (req->if_match != NULL) {
        snprintf(line, sizeof(line), "If-Match: %s", req->if_match);
        hdrs = curl_slist_append(hdrs, line);
    }
    if (req->if_none_match)
        hdrs = curl_slist_append(hdrs, "If-None-Match: *");
    /* curl would add this itself above 1 MiB, unsigned; say it ourselves so
     * that it is signed and sent. */
    if (body && req->body_len > ((size_t)1 << 20))
        hdrs = curl_slist_append(hdrs, "Expect: 100-continue");

    if (strcmp(req->method, "HEAD") == 0) {
        curl_easy_setopt(curl, CURLOPT_NOBODY, 1L);
    } else if (strcmp(req->method, "GET") == 0) {
        curl_easy_setopt(curl, CURLOPT_HTTPGET, 1L);
    } else if (body) {
        curl_easy_setopt(curl, CURLOPT_UPLOAD, 1L);
        curl_easy_setopt(curl, CURLOPT_READFUNCTION, s3c__read);
        curl_easy_setopt(curl, CURLOPT_READDATA, &x);
        curl_easy_setopt(curl, CURLOPT_INFILESIZE_LARGE, (curl_off_t)req->body_len);
        if (strcmp(req->method, "PUT") != 0)
            curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, req->method);
    } else {
        curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, req->method);
    }
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, hdrs);

    rc = curl_easy_perform(curl);
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &resp->status);
    curl_slist_free_all(hdrs);
    __atomic_add_fetch(&c->requests, 1, __ATOMIC_RELAXED);
    __atomic_add_fetch(&c->sent, x.sent, __ATOMIC_RELAXED);
    __atomic_add_fetch(&c->received, resp->out_len + resp->body_len, __ATOMIC_RELAXED);
    return rc;
}

static void s3c__reset(berth_s3_resp_t *r)
{
    free(r->body);
    memset(r, 0, sizeof(*r));
}

void berth_s3_resp_clear(berth_s3_resp_t *r)
{
    if (r != NULL)
        s3c__reset(r);
}

static void s3c__sleep_ms(uint64_t ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0)
        ;
}

int berth_s3_do(berth_s3_client_t *c, const berth_s3_req_t *req, berth_s3_resp_t *resp)
{
    char url[S3C__URL_MAX], path[S3C__URL_MAX], sha[65], msg[256];
    CURL *curl;
    CURLcode rc = CURLE_OK;
    uint64_t backoff = 100;
    int n, attempts = 0;

    memset(resp, 0, sizeof(*resp));
    if (c == NULL || req == NULL || req->method == NULL)
        return berth_error_set(BERTH_EINVALID, "s3: missing argument");
    path[0] = '\0';
    if (req->key != NULL && berth_s3_encode(path, sizeof(path), req->key, 1) < 0)
        return berth_error_set(BERTH_EINVALID, "s3: key too long");
    n = snprintf(url, sizeof(url), "%s/%s%s%s", c->base, path, req->query != NULL ? "?" : "",
                 req->query != NULL ? req->query : "");
    if (n < 0 || (size_t)n >= sizeof(url))
        return berth_error_set(BERTH_EINVALID, "s3: url too long");
    if (req->body_len <= S3C__HASH_MAX)
        s3c__hex_sha256(req->body, req->body_len, sha);
    else
        snprintf(sha, sizeof(sha), "UNSIGNED-PAYLOAD");
    if ((curl = s3c__curl(c)) == NULL)
        return berth_error_set(BERTH_ERR, "s3: cannot make a curl handle");

    for (int attempt = 0, retried = 0;; attempt++) {
        int retry;

        s3c__reset(resp);
        resp->retried = retried;
        attempts++;
        rc = s3c__attempt(c, curl, req, url, sha, resp);
        if (rc == CURLE_OK && resp->status >= 200 && resp->status < 300)
            return 0;
        if (rc == CURLE_OK && resp->body != NULL)
            berth_s3xml_error(resp->body, resp->body_len, resp->code, sizeof(resp->code), msg, sizeof(msg));
        retry = rc != CURLE_OK || resp->status >= 500 || resp->status == 429 || strcmp(resp->code, "SlowDown") == 0;
        if (!retry || !req->idempotent || attempt >= c->max_retries)
            break;
        /* A refused connection sent nothing; anything else may have been
         * carried out although the answer was lost or an error. */
        retried += rc != CURLE_COULDNT_CONNECT && rc != CURLE_COULDNT_RESOLVE_HOST;
        berth_log_debug("s3 %s %s: %s, retrying in %llu ms", req->method, req->key != NULL ? req->key : "/",
                        rc != CURLE_OK ? curl_easy_strerror(rc) : resp->code, (unsigned long long)backoff);
        s3c__sleep_ms(backoff);
        backoff = backoff * 2 > 2000 ? 2000 : backoff * 2;
    }
    /* The client sees a short error; the operator finds S3's side here. */
    if (rc != CURLE_OK || resp->status >= 500 || resp->status == 403 || resp->status == 400)
        berth_log_warn("s3 %s %s%s%s: %s (HTTP %ld %s) after %d attempt(s)", req->method,
                       req->key != NULL ? req->key : "/", req->query != NULL ? "?" : "",
                       req->query != NULL ? req->query : "", rc != CURLE_OK ? curl_easy_strerror(rc) : "answered",
                       resp->status, resp->code, attempts);
    if (rc != CURLE_OK)
        return berth_error_set(BERTH_EUNAVAILABLE, "s3 %s %s: %s", req->method, req->key != NULL ? req->key : "/",
                               curl_easy_strerror(rc));
    if (resp->status >= 500 || resp->status == 429 || strcmp(resp->code, "SlowDown") == 0)
        return berth_error_set(BERTH_EUNAVAILABLE, "s3 %s %s: HTTP %ld %s", req->method,
                               req->key != NULL ? req->key : "/", resp->status, resp->code);
    if (resp->status == 404)
        return berth_error_set(BERTH_ENOTFOUND, "s3 %s %s: %s", req->method, req->key != NULL ? req->key : "/",
                               resp->code[0] ? resp->code : "not found");
    if (resp->status == 412 || (resp->status == 409 && strcmp(resp->code, "ConditionalRequestConflict") == 0))
        return berth_error_set(BERTH_ECONFLICT, "s3 %s %s: HTTP %ld %s", req->method, req->key != NULL ? req->key : "/",
                               resp->status, resp->code);
    if (resp->status == 409)
        return berth_error_set(BERTH_EEXISTS, "s3 %s %s: HTTP %ld %s", req->method, req->key != NULL ? req->key : "/",
                               resp->status, resp->code);
    return berth_error_set(BERTH_EIO, "s3 %s %s: HTTP %ld %s", req->method, req->key != NULL ? req->key : "/",
                           resp->status, resp->code);
}

/* ---- presigned URLs ---------------------------------------------------------- */

static void s3c__hmac(const void *key, size_t klen, const char *msg, unsigned char out[32])
{
    unsigned int len = 32;
    HMAC(EVP_sha256(), key, (int)klen, (const unsigned char *)msg, strlen(msg), out, &len);
}

int berth_s3_presign_get(berth_s3_client_t *c, const char *key, unsigned expires_s, char *url, size_t cap)
{
    static const char hex[] = "0123456789abcdef";
    char path[S3C__URL_MAX], cred[512], ecred[1024], query[2048], creq[8192], sts[1024], date[16], stamp[32];
    char creqhash[65], sig[65], k0[300];
    unsigned char k[32];
    time_t now = time(NULL);
    struct tm tm;
    int n;

    gmtime_r(&now, &tm);
    strftime(date, sizeof(date), "%Y%m%d", &tm);
    strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%SZ", &tm);
    if (berth_s3_encode(path, sizeof(path), key, 1) < 0)
        return berth_error_set(BERTH_EINVALID, "s3: key too long");
    snprintf(cred, sizeof(cred), "%s/%s/%s/s3/aws4_request", c->access, date, c->region);
    if (berth_s3_encode(ecred, sizeof(ecred), cred, 0) < 0)
        return berth_error_set(BERTH_EINVALID, "s3: credential too long");
    /* The query in canonical order, as it is also sent. */
    snprintf(query, sizeof(query),
             "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=%s&X-Amz-Date=%s&X-Amz-Expires=%u"
             "&X-Amz-SignedHeaders=host",
             ecred, stamp, expires_s);
    n = snprintf(creq, sizeof(creq), "GET\n%s/%s\n%s\nhost:%s\n\nhost\nUNSIGNED-PAYLOAD", c->path0, path, query,
                 c->host);
    if (n < 0 || (size_t)n >= sizeof(creq))
        return berth_error_set(BERTH_EINVALID, "s3: presign request too long");
    s3c__hex_sha256(creq, (size_t)n, creqhash);
    snprintf(sts, sizeof(sts), "AWS4-HMAC-SHA256\n%s\n%s/%s/s3/aws4_request\n%s", stamp, date, c->region, creqhash);
    snprintf(k0, sizeof(k0), "AWS4%s", c->secret);
    s3c__hmac(k0, strlen(k0), date, k);
    s3c__hmac(k, 32, c->region, k);
    s3c__hmac(k, 32, "s3", k);
    s3c__hmac(k, 32, "aws4_request", k);
    s3c__hmac(k, 32, sts, k);
    for (int i = 0; i < 32; i++) {
        sig[2 * i] = hex[k[i] >> 4];
        sig[2 * i + 1] = hex[k[i] & 15];
    }
    sig[64] = '\0';
    memset(k0, 0, sizeof(k0));
    n = snprintf(url, cap, "%s/%s?%s&X-Amz-Signature=%s", c->base, path, query, sig);
    if (n < 0 || (size_t)n >= cap)
        return berth_error_set(BERTH_EINVALID, "s3: presigned URL too long");
    return 0;
}

/*
 * S3 operations (contract in s3ops.h): one request each (listings page
 * through), answers read with libxml2 (s3xml.h).
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>

#include "core/error.h"
#include "core/log.h"
#include "storage/s3/s3ops.h"
#include "storage/s3/s3xml.h"

/* Keys per DeleteObjects request (S3's limit). */
#define S3__DELETE_BATCH 1000

/* ---- objects ---------------------------------------------------------------- */

static void s3__copy_etag(char *etag, const berth_s3_resp_t *resp)
{
    if (etag != NULL)
        snprintf(etag, S3__ETAG_MAX, "%s", resp->etag);
}

int berth__s3_get(berth_s3_client_t *c, const char *key, char **buf, size_t *len, char *etag)
{
    berth_s3_req_t req = {.method = "GET", .key = key, .idempotent = 1};
    berth_s3_resp_t resp;
    int err = berth_s3_do(c, &req, &resp);

    if (err == 0) {
        *buf = resp.body != NULL ? resp.body : strdup("");
        *len = resp.body_len;
        resp.body = NULL;
        s3__copy_etag(etag, &resp);
        if (*buf == NULL)
            err = berth_error_set(BERTH_ERR, "out of memory");
    }
    berth_s3_resp_clear(&resp);
    return err;
}

int berth__s3_get_range(berth_s3_client_t *c, const char *key, uint64_t first, void *buf, size_t len, size_t *got)
{
    berth_s3_req_t req = {.method = "GET",
                          .key = key,
                          .has_range = 1,
                          .range_first = first,
                          .range_last = first + len - 1,
                          .out = buf,
                          .out_cap = len,
                          .idempotent = 1};
    berth_s3_resp_t resp;
    int err = berth_s3_do(c, &req, &resp);

    *got = resp.out_len;
    if (err == BERTH_EIO && resp.status == 416) {
        *got = 0; /* past the end */
        err = 0;
    }
    berth_s3_resp_clear(&resp);
    return err;
}

/* S3's ETag of an object made by one PUT is the MD5 of its bytes, in hex
 * and quotes (not with SSE-KMS, where this merely never matches). */
static int s3__etag_is_md5_of(const char *etag, const void *buf, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    char want[2 * 16 + 3];

    if (EVP_Digest(buf != NULL ? buf : "", len, md, &mdlen, EVP_md5(), NULL) != 1 || mdlen != 16)
        return 0;
    want[0] = '"';
    for (unsigned int i = 0; i < mdlen; i++) {
        want[1 + 2 * i] = hex[md[i] >> 4];
        want[2 + 2 * i] = hex[md[i] & 15];
    }
    want[33] = '"';
    want[34] = '\0';
    return strcmp(etag, want) == 0;
}

int berth__s3_put(berth_s3_client_t *c, const char *key, const void *buf, size_t len, const char *type,
                  const char *expect, char *etag)
{
    berth_s3_req_t req = {.method = "PUT",
                          .key = key,
                          .body = buf,
                          .body_len = len,
                          .content_type = type,
                          .idempotent = 1,
                          .if_match = expect != NULL && expect[0] != '\0' ? expect : NULL,
                          .if_none_match = expect != NULL && expect[0] == '\0'};
    char have[S3__ETAG_MAX];
    berth_s3_resp_t resp;
    int err = berth_s3_do(c, &req, &resp);

    if (err == BERTH_ENOTFOUND && req.if_match != NULL && strcmp(resp.code, "NoSuchKey") == 0)
        err = berth_error_set(BERTH_ECONFLICT, "s3 PUT %s: the object is gone", key);
    if (err == 0 && resp.etag[0] == '\0' && etag != NULL)
        err = berth_error_set(BERTH_EIO, "s3 PUT %s: no ETag in the answer", key);
    s3__copy_etag(etag, &resp);
    /* A conditional PUT retried after an attempt that may have been carried
     * out (a 5xx, a lost answer) meets its own write: the condition fails
     * because that write made the object. When the object holds exactly
     * these bytes, that is success. (Another writer storing the very same
     * bytes meanwhile is indistinguishable: S3's versions are contents.) */
    if (err == BERTH_ECONFLICT && resp.retried > 0 && berth__s3_head(c, key, NULL, have) == 0 &&
        s3__etag_is_md5_of(have, buf, len)) {
        berth_log_info("s3 PUT %s: a retried conditional write found its own earlier attempt", key);
        if (etag != NULL)
            snprintf(etag, S3__ETAG_MAX, "%s", have);
        err = 0;
    }
    berth_s3_resp_clear(&resp);
    return err;
}

int berth__s3_head(berth_s3_client_t *c, const char *key, uint64_t *size, char *etag)
{
    berth_s3_req_t req = {.method = "HEAD", .key = key, .idempotent = 1};
    berth_s3_resp_t resp;
    int err = berth_s3_do(c, &req, &resp);

    if (err == 0 && size != NULL)
        *size = resp.content_length;
    if (err == 0)
        s3__copy_etag(etag, &resp);
    berth_s3_resp_clear(&resp);
    return err;
}

int berth__s3_delete(berth_s3_client_t *c, const char *key)
{
    berth_s3_req_t req = {.method = "DELETE", .key = key, .idempotent = 1};
    berth_s3_resp_t resp;
    int err = berth_s3_do(c, &req, &resp);

    berth_s3_resp_clear(&resp);
    return err == BERTH_ENOTFOUND ? 0 : err;
}

int berth__s3_delete_if(berth_s3_client_t *c, const char *key, const char *etag)
{
    berth_s3_req_t req = {.method = "DELETE", .key = key, .idempotent = 1, .if_match = etag};
    berth_s3_resp_t resp;
    int err = berth_s3_do(c, &req, &resp);

    /* Retried after an attempt that may have deleted it: gone it is. */
    if (err == BERTH_ENOTFOUND && resp.retried > 0)
        err = 0;
    berth_s3_resp_clear(&resp);
    return err;
}

/* A growable text buffer for XML bodies. */
typedef struct s3__buf {
    char *p;
    size_t len, cap;
    int oom;
} s3__buf_t;

static void s3__bprintf(s3__buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void s3__bprintf(s3__buf_t *b, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (b->oom)
        return;
    for (;;) {
        va_start(ap, fmt);
        n = vsnprintf(b->p != NULL ? b->p + b->len : NULL, b->p != NULL ? b->cap - b->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->oom = 1;
            return;
        }
        if (b->p != NULL && (size_t)n < b->cap - b->len) {
            b->len += (size_t)n;
            return;
        }
        size_t cap = b->cap != 0 ? b->cap * 2 : 4096;
        while (cap < b->len + (size_t)n + 1)
            cap *= 2;
        char *v = realloc(b->p, cap);
        if (v == NULL) {
            b->oom = 1;
            return;
        }
        b->p = v;
        b->cap = cap;
    }
}

/* Text safe inside an XML element (keys are ours and plain; ETags are
 * quoted hex). */
static void s3__bxml(s3__buf_t *b, const char *text)
{
    for (const char *p = text; *p != '\0'; p++) {
        switch (*p) {
        case '&':
            s3__bprintf(b, "&amp;");
            break;
        case '<':
            s3__bprintf(b, "&lt;");
            break;
        case '>':
            s3__bprintf(b, "&gt;");
            break;
        default:
            s3__bprintf(b, "%c", *p);
        }
    }
}

/* DeleteObjects (one request per 1,000 keys). Keys already gone are fine. */
int berth__s3_delete_many(berth_s3_client_t *c, char **keys, size_t n)
{
    int err = 0;

    for (size_t at = 0; at < n && err == 0; at += S3__DELETE_BATCH) {
        size_t end = n - at < S3__DELETE_BATCH ? n : at + S3__DELETE_BATCH;
        s3__buf_t b = {0};
        unsigned char md5[EVP_MAX_MD_SIZE];
        unsigned int md5len = 0;
        char md5b64[32];

        if (end - at == 1) {
            err = berth__s3_delete(c, keys[at]);
            continue;
        }
        s3__bprintf(&b, "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Delete><Quiet>true</Quiet>");
        for (size_t i = at; i < end; i++) {
            s3__bprintf(&b, "<Object><Key>");
            s3__bxml(&b, keys[i]);
            s3__bprintf(&b, "</Key></Object>");
        }
        s3__bprintf(&b, "</Delete>");
        if (b.oom) {
            free(b.p);
            return berth_error_set(BERTH_ERR, "out of memory");
        }
        /* S3 insists on a Content-MD5 (or checksum) for DeleteObjects. */
        if (EVP_Digest(b.p, b.len, md5, &md5len, EVP_md5(), NULL) != 1) {
            free(b.p);
            return berth_error_set(BERTH_ERR, "s3: MD5 failed");
        }
        EVP_EncodeBlock((unsigned char *)md5b64, md5, (int)md5len);
        berth_s3_req_t req = {.method = "POST",
                              .query = "delete=",
                              .body = b.p,
                              .body_len = b.len,
                              .content_type = "application/xml",
                              .content_md5 = md5b64,
                              .idempotent = 1};
        berth_s3_resp_t resp;
        err = berth_s3_do(c, &req, &resp);
        if (err == 0 && resp.body != NULL && strstr(resp.body, "<Error>") != NULL)
            err = berth_error_set(BERTH_EIO, "s3 DeleteObjects: some keys were not deleted");
        berth_s3_resp_clear(&resp);
        free(b.p);
    }
    return err;
}

/* "2026-11-30T13:05:09.000Z" -> unix seconds; 0 when unreadable. */
static int64_t s3__time(const char *iso)
{
    struct tm tm;

    memset(&tm, 0, sizeof(tm));
    if (sscanf(iso, "%d-%d-%dT%d:%d:%d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour, &tm.tm_min, &tm.tm_sec) !=
        6)
        return 0;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    return (int64_t)timegm(&tm);
}

/* Sends a request whose answer is an XML document: *doc (caller frees with
 * xmlFreeDoc) and *root on success. `what` names the call in errors; an
 * S3 error code of `gone_code` (or NULL) becomes BERTH_ENOTFOUND. */
static int s3__do_xml(berth_s3_client_t *c, berth_s3_req_t *req, const char *what, const char *gone_code,
                      xmlDocPtr *doc, xmlNodePtr *root)
{
    berth_s3_resp_t resp;
    int err;

    *doc = NULL;
    if ((err = berth_s3_do(c, req, &resp)) < 0) {
        if (gone_code != NULL && strcmp(resp.code, gone_code) == 0)
            err = berth_error_set(BERTH_ENOTFOUND, "%s: the upload is gone", what);
        berth_s3_resp_clear(&resp);
        return err;
    }
    *doc = berth_s3xml_parse(resp.body, resp.body_len);
    berth_s3_resp_clear(&resp);
    if (*doc == NULL || (*root = xmlDocGetRootElement(*doc)) == NULL) {
        xmlFreeDoc(*doc);
        *doc = NULL;
        return berth_error_set(BERTH_EIO, "%s: unreadable answer", what);
    }
    return 0;
}

int berth__s3_list(berth_s3_client_t *c, const char *prefix, berth__s3_list_cb cb, void *ctx)
{
    char token[2048] = "", etoken[4096], eprefix[S3__KEY_MAX * 3], query[8192];
    int err = 0, stop = 0;

    if (berth_s3_encode(eprefix, sizeof(eprefix), prefix, 0) < 0)
        return berth_error_set(BERTH_EINVALID, "s3: prefix too long");
    for (;;) {
        xmlDocPtr doc = NULL;
        xmlNodePtr root, n;
        char truncated[16] = "";

        if (token[0] != '\0') {
            if (berth_s3_encode(etoken, sizeof(etoken), token, 0) < 0)
                return berth_error_set(BERTH_EIO, "s3: continuation token too long");
            snprintf(query, sizeof(query), "continuation-token=%s&list-type=2&prefix=%s", etoken, eprefix);
        } else {
            snprintf(query, sizeof(query), "list-type=2&prefix=%s", eprefix);
        }
        berth_s3_req_t req = {.method = "GET", .query = query, .idempotent = 1};
        if ((err = s3__do_xml(c, &req, "s3 ListObjectsV2", NULL, &doc, &root)) < 0)
            return err;
        for (n = berth_s3xml_child(root, "Contents"); n != NULL && !stop; n = berth_s3xml_next(n)) {
            char key[S3__KEY_MAX], size[32] = "0", mtime[64] = "";
            if (berth_s3xml_text(n, "Key", key, sizeof(key)) < 0)
                continue;
            berth_s3xml_text(n, "Size", size, sizeof(size));
            berth_s3xml_text(n, "LastModified", mtime, sizeof(mtime));
            if ((err = cb(ctx, key, strtoull(size, NULL, 10), s3__time(mtime))) != 0)
                stop = 1;
        }
        berth_s3xml_text(root, "IsTruncated", truncated, sizeof(truncated));
        if (stop || strcmp(truncated, "true") != 0 ||
            berth_s3xml_text(root, "NextContinuationToken", token, sizeof(token)) < 0) {
            xmlFreeDoc(doc);
            return err;
        }
        xmlFreeDoc(doc);
    }
}

/* ---- multipart uploads ------------------------------------------------------ */

int berth__s3_mpu_create(berth_s3_client_t *c, const char *key, char *upload_id)
{
    berth_s3_req_t req = {
        .method = "POST", .key = key, .query = "uploads=", .content_type = "application/octet-stream"};
    berth_s3_resp_t resp;
    xmlDocPtr doc;
    int err;

    if ((err = berth_s3_do(c, &req, &resp)) == 0) {
        doc = berth_s3xml_parse(resp.body, resp.body_len);
        if (doc == NULL || berth_s3xml_text(xmlDocGetRootElement(doc), "UploadId", upload_id, S3__UPLOADID_MAX) < 0 ||
            upload_id[0] == '\0')
            err = berth_error_set(BERTH_EIO, "s3 CreateMultipartUpload %s: no UploadId in the answer", key);
        xmlFreeDoc(doc);
    }
    berth_s3_resp_clear(&resp);
    return err;
}

static int s3__mpu_query(char *out, size_t cap, const char *upload_id, const char *before)
{
    char enc[S3__UPLOADID_MAX * 3];

    if (berth_s3_encode(enc, sizeof(enc), upload_id, 0) < 0)
        return berth_error_set(BERTH_EINVALID, "s3: upload id too long");
    if ((size_t)snprintf(out, cap, "%suploadId=%s", before != NULL ? before : "", enc) >= cap)
        return berth_error_set(BERTH_EINVALID, "s3: upload id too long");
    return 0;
}

int berth__s3_mpu_part(berth_s3_client_t *c, const char *key, const char *upload_id, uint64_t n, const void *buf,
                       size_t len, char *etag)
{
    char query[S3__UPLOADID_MAX * 3 + 64], before[48];
    berth_s3_resp_t resp;
    int err;

    snprintf(before, sizeof(before), "partNumber=%" PRIu64 "&", n);
    if ((err = s3__mpu_query(query, sizeof(query), upload_id, before)) < 0)
        return err;
    berth_s3_req_t req = {.method = "PUT", .key = key, .query = query, .body = buf, .body_len = len, .idempotent = 1};
    if ((err = berth_s3_do(c, &req, &resp)) == 0) {
        if (resp.etag[0] == '\0')
            err = berth_error_set(BERTH_EIO, "s3 UploadPart %s #%" PRIu64 ": no ETag in the answer", key, n);
        else
            snprintf(etag, S3__ETAG_MAX, "%s", resp.etag);
    } else if (strcmp(resp.code, "NoSuchUpload") == 0) {
        err = berth_error_set(BERTH_ENOTFOUND, "s3 UploadPart %s: the multipart upload is gone", key);
    }
    berth_s3_resp_clear(&resp);
    return err;
}

/* CompleteMultipartUpload of parts 1..n with the given ETags. ENOTFOUND when
 * the upload is gone (completed or aborted before). */
int berth__s3_mpu_complete(berth_s3_client_t *c, const char *key, const char *upload_id, const char *const *etags,
                           size_t n)
{
    char query[S3__UPLOADID_MAX * 3 + 16], code[64] = "", msg[256] = "";
    s3__buf_t b = {0};
    berth_s3_resp_t resp;
    int err;

    if ((err = s3__mpu_query(query, sizeof(query), upload_id, NULL)) < 0)
        return err;
    s3__bprintf(&b, "<?xml version=\"1.0\" encoding=\"UTF-8\"?><CompleteMultipartUpload>");
    for (size_t i = 0; i < n; i++) {
        s3__bprintf(&b, "<Part><PartNumber>%zu</PartNumber><ETag>", i + 1);
        s3__bxml(&b, etags[i]);
        s3__bprintf(&b, "</ETag></Part>");
    }
    s3__bprintf(&b, "</CompleteMultipartUpload>");
    if (b.oom) {
        free(b.p);
        return berth_error_set(BERTH_ERR, "out of memory");
    }
    /* Retrying is safe: a second Complete of a completed upload answers
     * NoSuchUpload, which the caller checks against the object. */
    berth_s3_req_t req = {.method = "POST",
                          .key = key,
                          .query = query,
                          .body = b.p,
                          .body_len = b.len,
                          .content_type = "application/xml",
                          .idempotent = 1};
    err = berth_s3_do(c, &req, &resp);
    if (err < 0 && strcmp(resp.code, "NoSuchUpload") == 0) {
        err = berth_error_set(BERTH_ENOTFOUND, "s3 CompleteMultipartUpload %s: the upload is gone", key);
    } else if (err == 0) {
        /* 200 can still carry an <Error> (S3 fails late on long completions). */
        if (berth_s3xml_error(resp.body, resp.body_len, code, sizeof(code), msg, sizeof(msg)))
            err = berth_error_set(
                strcmp(code, "InternalError") == 0 || strcmp(code, "SlowDown") == 0 ? BERTH_EUNAVAILABLE : BERTH_EIO,
                "s3 CompleteMultipartUpload %s: %s %s", key, code, msg);
        else if (resp.body == NULL || strstr(resp.body, "ETag") == NULL)
            err = berth_error_set(BERTH_EIO, "s3 CompleteMultipartUpload %s: no ETag in the answer", key);
    }
    berth_s3_resp_clear(&resp);
    free(b.p);
    return err;
}

int berth__s3_mpu_abort(berth_s3_client_t *c, const char *key, const char *upload_id)
{
    char query[S3__UPLOADID_MAX * 3 + 16];
    berth_s3_resp_t resp;
    int err;

    if ((err = s3__mpu_query(query, sizeof(query), upload_id, NULL)) < 0)
        return err;
    berth_s3_req_t req = {.method = "DELETE", .key = key, .query = query, .idempotent = 1};
    err = berth_s3_do(c, &req, &resp);
    berth_s3_resp_clear(&resp);
    return err;
}

/* ListParts: etags[n-1] (each S3__ETAG_MAX bytes) and sizes[n-1] for parts
 * 1..total; *count how many were listed. */
int berth__s3_mpu_list_parts(berth_s3_client_t *c, const char *key, const char *upload_id, uint64_t total, char *etags,
                             uint64_t *sizes, uint64_t *count)
{
    char query[S3__UPLOADID_MAX * 3 + 96], before[80], marker[32] = "0";
    int err = 0;

    *count = 0;
    for (;;) {
        xmlDocPtr doc;
        xmlNodePtr root;
        char truncated[16] = "";

        snprintf(before, sizeof(before), "max-parts=1000&part-number-marker=%s&", marker);
        if ((err = s3__mpu_query(query, sizeof(query), upload_id, before)) < 0)
            return err;
        berth_s3_req_t req = {.method = "GET", .key = key, .query = query, .idempotent = 1};
        char what[S3__KEY_MAX + 16];
        snprintf(what, sizeof(what), "s3 ListParts %s", key);
        if ((err = s3__do_xml(c, &req, what, "NoSuchUpload", &doc, &root)) < 0)
            return err;
        for (xmlNodePtr p = berth_s3xml_child(root, "Part"); p != NULL; p = berth_s3xml_next(p)) {
            char num[32], size[32] = "0", etag[S3__ETAG_MAX];
            uint64_t n;
            if (berth_s3xml_text(p, "PartNumber", num, sizeof(num)) < 0 ||
                berth_s3xml_text(p, "ETag", etag, sizeof(etag)) < 0)
                continue;
            berth_s3xml_text(p, "Size", size, sizeof(size));
            n = strtoull(num, NULL, 10);
            if (n < 1 || n > total)
                continue;
            if (etags[(n - 1) * S3__ETAG_MAX] == '\0')
                (*count)++;
            memcpy(etags + (n - 1) * S3__ETAG_MAX, etag, S3__ETAG_MAX);
            sizes[n - 1] = strtoull(size, NULL, 10);
        }
        berth_s3xml_text(root, "IsTruncated", truncated, sizeof(truncated));
        if (strcmp(truncated, "true") != 0 ||
            berth_s3xml_text(root, "NextPartNumberMarker", marker, sizeof(marker)) < 0) {
            xmlFreeDoc(doc);
            return 0;
        }
        xmlFreeDoc(doc);
    }
}

int berth__s3_mpu_list(berth_s3_client_t *c, const char *prefix, berth__s3_uploads_cb cb, void *ctx)
{
    char eprefix[S3__KEY_MAX * 3], query[S3__KEY_MAX * 9 + S3__UPLOADID_MAX * 3];
    char kmark[S3__KEY_MAX] = "", umark[S3__UPLOADID_MAX] = "";
    int err = 0;

    if (berth_s3_encode(eprefix, sizeof(eprefix), prefix, 0) < 0)
        return berth_error_set(BERTH_EINVALID, "s3: prefix too long");
    for (;;) {
        xmlDocPtr doc;
        xmlNodePtr root;
        char truncated[16] = "";

        if (kmark[0] != '\0') {
            char ek[S3__KEY_MAX * 3], eu[S3__UPLOADID_MAX * 3];
            if (berth_s3_encode(ek, sizeof(ek), kmark, 0) < 0 || berth_s3_encode(eu, sizeof(eu), umark, 0) < 0)
                return berth_error_set(BERTH_EIO, "s3: marker too long");
            snprintf(query, sizeof(query), "key-marker=%s&prefix=%s&upload-id-marker=%s&uploads=", ek, eprefix, eu);
        } else {
            snprintf(query, sizeof(query), "prefix=%s&uploads=", eprefix);
        }
        berth_s3_req_t req = {.method = "GET", .query = query, .idempotent = 1};
        if ((err = s3__do_xml(c, &req, "s3 ListMultipartUploads", NULL, &doc, &root)) < 0)
            return err;
        for (xmlNodePtr u = berth_s3xml_child(root, "Upload"); u != NULL; u = berth_s3xml_next(u)) {
            char key[S3__KEY_MAX], id[S3__UPLOADID_MAX], initiated[64] = "";
            if (berth_s3xml_text(u, "Key", key, sizeof(key)) < 0 || berth_s3xml_text(u, "UploadId", id, sizeof(id)) < 0)
                continue;
            berth_s3xml_text(u, "Initiated", initiated, sizeof(initiated));
            if ((err = cb(ctx, key, id, s3__time(initiated))) != 0) {
                xmlFreeDoc(doc);
                return err;
            }
        }
        berth_s3xml_text(root, "IsTruncated", truncated, sizeof(truncated));
        if (strcmp(truncated, "true") != 0 || berth_s3xml_text(root, "NextKeyMarker", kmark, sizeof(kmark)) < 0 ||
            berth_s3xml_text(root, "NextUploadIdMarker", umark, sizeof(umark)) < 0) {
            xmlFreeDoc(doc);
            return 0;
        }
        xmlFreeDoc(doc);
    }
}

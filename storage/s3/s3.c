/*
 * The S3 backend (layout in s3.h): objects, the method table, and making
 * and freeing the backend. Session data is in s3data.c and s3commit.c, its
 * state in s3state.c, blobs in s3blob.c.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "storage/s3/s3.h"
#include "storage/s3/s3client.h"
#include "storage/s3/s3int.h"
#include "storage/s3/s3ops.h"

int berth__s3_key(const berth_s3_t *s, char *out, const char *fmt, ...)
{
    va_list ap;
    size_t p = strlen(s->prefix);
    int n;

    if (p >= S3__KEY_MAX)
        return berth_error_set(BERTH_EINVALID, "s3: key too long");
    memcpy(out, s->prefix, p);
    va_start(ap, fmt);
    n = vsnprintf(out + p, S3__KEY_MAX - p, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= S3__KEY_MAX - p)
        return berth_error_set(BERTH_EINVALID, "s3: key too long");
    return 0;
}

/* ---- objects ----------------------------------------------------------------- */

/* The areas the backend keeps for itself (s3.h), as the filesystem
 * backend does: no key's first component is "blobs" or "uploads", and a
 * listing of every object leaves them out. */
static int s3__reserved(const char *key)
{
    size_t n = strcspn(key, "/");

    return (n == 5 && memcmp(key, "blobs", 5) == 0) || (n == 7 && memcmp(key, "uploads", 7) == 0);
}

static int s3__obj_key(const berth_s3_t *s, char *out, const char *key)
{
    if (s3__reserved(key))
        return berth_error_set(BERTH_EINVALID, "s3: %s is kept for the backend's own objects", key);
    return berth__s3_key(s, out, "%s", key);
}

/* An ETag as a version. */
static int s3__version(berth_version_t *ver, const char *etag, const char *key)
{
    if (ver == NULL)
        return 0;
    if (etag[0] == '\0' || strlen(etag) >= sizeof(ver->tag))
        return berth_error_set(BERTH_EIO, "s3 %s: no usable ETag (\"%s\")", key, etag);
    snprintf(ver->tag, sizeof(ver->tag), "%s", etag);
    return 0;
}

static int s3__obj_get(berth_storage_t *b, const char *key, char **buf, size_t *len, berth_version_t *ver)
{
    berth_s3_t *s = berth__s3_of(b);
    char k[S3__KEY_MAX], etag[S3__ETAG_MAX];
    int err;

    *buf = NULL;
    if ((err = s3__obj_key(s, k, key)) < 0 || (err = berth__s3_get(s->c, k, buf, len, etag)) < 0)
        return err;
    if ((err = s3__version(ver, etag, k)) < 0) {
        free(*buf);
        *buf = NULL;
    }
    return err;
}

/* Compare-and-swap is S3's conditional PUT: If-None-Match: * to create,
 * If-Match: <ETag> to replace; S3 checks and writes in one step against
 * every writer (412, or 409 while another conditional write of the key is
 * in flight: both BERTH_ECONFLICT). A PUT replaces an object whole. */
static int s3__obj_put(berth_storage_t *b, const char *key, const void *buf, size_t len, const berth_version_t *expect,
                       berth_version_t *ver)
{
    berth_s3_t *s = berth__s3_of(b);
    char k[S3__KEY_MAX], etag[S3__ETAG_MAX];
    int err;

    if ((err = s3__obj_key(s, k, key)) < 0 ||
        (err = berth__s3_put(s->c, k, buf, len, NULL, expect != NULL ? expect->tag : NULL, etag)) < 0)
        return err;
    return s3__version(ver, etag, k);
}

/* S3 deletes absent keys silently: the contract wants ENOTFOUND, so an
 * unconditional delete asks first. A conditional one is DELETE with
 * If-Match (S3 since 2024; moto 5 honours it: 412 for another ETag, 404
 * when absent). "Only if absent" can only find the key absent or there. */
static int s3__obj_delete(berth_storage_t *b, const char *key, const berth_version_t *expect)
{
    berth_s3_t *s = berth__s3_of(b);
    char k[S3__KEY_MAX];
    int err;

    if ((err = s3__obj_key(s, k, key)) < 0)
        return err;
    if (expect != NULL && expect->tag[0] != '\0')
        return berth__s3_delete_if(s->c, k, expect->tag);
    if ((err = berth__s3_head(s->c, k, NULL, NULL)) < 0)
        return err;
    if (expect != NULL)
        return berth_error_set(BERTH_ECONFLICT, "s3 %s: there, where it should be absent", k);
    return berth__s3_delete(s->c, k);
}

typedef struct s3__walk {
    size_t skip; /* the root prefix */
    int all;     /* listing everything: leave the backend's areas out */
    berth_obj_cb cb;
    void *ctx;
} s3__walk_t;

static int s3__obj_each(void *arg, const char *key, uint64_t size, int64_t mtime)
{
    s3__walk_t *w = arg;
    const char *rest = key + w->skip;

    if (strlen(key) <= w->skip || !berth_obj_key_valid(rest, strlen(rest)) || (w->all && s3__reserved(rest)))
        return 0;
    return w->cb(w->ctx, rest, size, mtime);
}

static int s3__obj_list(berth_storage_t *b, const char *prefix, berth_obj_cb cb, void *ctx)
{
    berth_s3_t *s = berth__s3_of(b);
    char k[S3__KEY_MAX];
    s3__walk_t w = {strlen(s->prefix), prefix[0] == '\0', cb, ctx};
    int err;

    if ((err = s3__obj_key(s, k, prefix)) < 0)
        return err;
    return berth__s3_list(s->c, k, s3__obj_each, &w);
}

/* ---- lifecycle -------------------------------------------------------------- */

static void s3__free(berth_storage_t *b);

static const berth_storage_methods_t s3__methods = {
    .name = "s3",
    .free = s3__free,
    .obj_get = s3__obj_get,
    .obj_put = s3__obj_put,
    .obj_delete = s3__obj_delete,
    .obj_list = s3__obj_list,
    .data_create = berth__s3_data_create,
    .data_open = berth__s3_data_open,
    .writer_write = berth__s3_writer_write,
    .writer_close = berth__s3_writer_close,
    .data_read = berth__s3_data_read,
    .data_commit = berth__s3_data_commit,
    .data_remove = berth__s3_data_remove,
    .data_list = berth__s3_data_list,
    .blob_stat = berth__s3_blob_stat,
    .blob_read = berth__s3_blob_read,
    .blob_remove = berth__s3_blob_remove,
    .blob_list = berth__s3_blob_list,
    .blob_url = berth__s3_blob_url,
};

static void s3__free(berth_storage_t *b)
{
    berth_s3_t *s = berth__s3_of(b);

    if (s == NULL)
        return;
    berth_s3_client_free(s->c);
    pthread_mutex_destroy(&s->lock);
    free(s->prefix);
    free(s);
}

int berth_storage_s3_new(berth_storage_t **out, const berth_s3_options_t *o)
{
    berth_s3_client_options_t co;
    berth_s3_t *s;
    const char *root;
    size_t len;
    int err;

    if (out == NULL)
        return berth_error_set(BERTH_EINVALID, "s3_new: missing argument");
    *out = NULL;
    if (o == NULL || o->bucket == NULL)
        return berth_error_set(BERTH_EINVALID, "storage.s3.bucket is not set");
    if (o->chunksize < BERTH_S3_MIN_PART || o->chunksize > BERTH_S3_MAX_PART)
        return berth_error_set(BERTH_EINVALID, "storage.s3.chunksize must be 5 MiB to 5 GiB");
    if ((s = calloc(1, sizeof(*s))) == NULL)
        return berth_error_set(BERTH_ERR, "out of memory");
    pthread_mutex_init(&s->lock, NULL);
    s->super.methods = &s3__methods;
    s->chunk = o->chunksize;
    s->redirect = o->redirect;

    /* "/a/b/" -> "a/b/": keys never start with a slash. */
    root = o->rootdirectory != NULL ? o->rootdirectory : "";
    while (*root == '/')
        root++;
    len = strlen(root);
    while (len > 0 && root[len - 1] == '/')
        len--;
    if ((s->prefix = malloc(len + 2)) == NULL) {
        err = berth_error_set(BERTH_ERR, "out of memory");
        goto done;
    }
    memcpy(s->prefix, root, len);
    if (len > 0)
        s->prefix[len++] = '/';
    s->prefix[len] = '\0';

    memset(&co, 0, sizeof(co));
    co.bucket = o->bucket;
    co.region = o->region;
    co.endpoint = o->regionendpoint;
    co.secure = o->secure;
    co.accesskey = o->accesskey;
    co.secretkey = o->secretkey;
    co.connect_timeout_ms = o->connect_timeout_ms;
    co.timeout_ms = o->timeout_ms;
    co.max_retries = o->max_retries;
    if ((err = berth_s3_client_new(&s->c, &co)) < 0)
        goto done;
    *out = &s->super;
    s = NULL;

done:
    if (s != NULL)
        s3__free(&s->super);
    return err;
}

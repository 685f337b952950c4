/*
 * The S3 backend's blobs (layout in s3.h).
 *
 * A blob is the completed object of the session that uploaded it
 * (blobs/data/<id>), named by a small link object under its digest. The
 * object key a link names is cached in memory for reads (a blob's bytes never
 * change while it exists); blob_stat and the commit's check ask S3 each time,
 * so a removal by another process is seen at once.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "core/digest.h"
#include "core/error.h"
#include "core/validate.h"
#include "storage/s3/s3client.h"
#include "storage/s3/s3int.h"
#include "storage/s3/s3ops.h"

static const char *s3__hex(const char *digest)
{
    return digest + 7;
}

/* The blob link object's key. */
static int s3__blob_key(const berth_s3_t *s, char *out, const char *digest)
{
    const char *hex = s3__hex(digest);
    return berth__s3_key(s, out, "blobs/sha256/%.2s/%s/link", hex, hex);
}

/* ---- blobs ------------------------------------------------------------------ */

static size_t s3__cache_slot(const char *digest)
{
    const char *hex = s3__hex(digest);
    return (size_t)strtoul((char[]){hex[0], hex[1], hex[2], hex[3], 0}, NULL, 16) % S3__CACHE;
}

static int s3__cache_get(berth_s3_t *s, const char *digest, berth__s3_link_t *out)
{
    berth__s3_link_t *l = &s->cache[s3__cache_slot(digest)];
    int hit;

    pthread_mutex_lock(&s->lock);
    hit = strcmp(l->hex, s3__hex(digest)) == 0;
    if (hit && out != NULL)
        *out = *l;
    pthread_mutex_unlock(&s->lock);
    return hit;
}

static void s3__cache_put(berth_s3_t *s, const char *digest, const berth__s3_link_t *src)
{
    berth__s3_link_t *l = &s->cache[s3__cache_slot(digest)];

    pthread_mutex_lock(&s->lock);
    *l = *src;
    snprintf(l->hex, sizeof(l->hex), "%s", s3__hex(digest));
    pthread_mutex_unlock(&s->lock);
}

static void s3__cache_drop(berth_s3_t *s, const char *digest)
{
    berth__s3_link_t *l = &s->cache[s3__cache_slot(digest)];

    pthread_mutex_lock(&s->lock);
    if (strcmp(l->hex, s3__hex(digest)) == 0)
        l->hex[0] = '\0';
    pthread_mutex_unlock(&s->lock);
}

/* `fresh`: ask S3 even when the link is cached (blob_stat must see a
 * removal made by another process, such as gc). */
int berth__s3_link_fetch(berth_s3_t *s, const char *digest, berth__s3_link_t *out, int fresh)
{
    char key[S3__KEY_MAX], *buf = NULL;
    size_t len = 0;
    berth__s3_link_t l = {0};
    json_t *j = NULL;
    const char *dk;
    int err;

    if (!fresh && s3__cache_get(s, digest, out))
        return 0;
    if ((err = s3__blob_key(s, key, digest)) < 0 || (err = berth__s3_get(s->c, key, &buf, &len, NULL)) < 0)
        goto done;
    memset(&l, 0, sizeof(l));
    if ((j = json_loadb(buf, len, 0, NULL)) == NULL || (dk = json_string_value(json_object_get(j, "key"))) == NULL ||
        !json_is_integer(json_object_get(j, "size")) ||
        (size_t)snprintf(l.key, sizeof(l.key), "%s%s", s->prefix, dk) >= sizeof(l.key)) {
        err = berth_error_set(BERTH_EIO, "blob %s: unreadable link object", digest);
        goto done;
    }
    l.size = (uint64_t)json_integer_value(json_object_get(j, "size"));
    s3__cache_put(s, digest, &l);
    if (out != NULL)
        *out = l;

done:
    json_decref(j);
    free(buf);
    return err;
}

static int s3__link_read(berth_s3_t *s, const char *digest, berth__s3_link_t *out)
{
    return berth__s3_link_fetch(s, digest, out, 0);
}

int berth__s3_blob_stat(berth_storage_t *b, const char *digest, uint64_t *size)
{
    berth__s3_link_t l = {0};
    int err;

    if ((err = berth__s3_link_fetch(berth__s3_of(b), digest, &l, 1)) == 0)
        *size = l.size;
    else if (err == BERTH_ENOTFOUND)
        s3__cache_drop(berth__s3_of(b), digest);
    return err;
}

int berth__s3_blob_read(berth_storage_t *b, const char *digest, uint64_t offset, void *buf, size_t len, size_t *got)
{
    berth_s3_t *s = berth__s3_of(b);
    berth__s3_link_t l = {0};
    int err;

    *got = 0;
    if ((err = s3__link_read(s, digest, &l)) < 0)
        return err;
    if (offset >= l.size || len == 0)
        return 0;
    if (len > l.size - offset)
        len = (size_t)(l.size - offset);
    if ((err = berth__s3_get_range(s->c, l.key, offset, buf, len, got)) == BERTH_ENOTFOUND) {
        /* Removed meanwhile (perhaps by another instance): ask again. */
        s3__cache_drop(s, digest);
        if ((err = s3__link_read(s, digest, &l)) < 0)
            return err;
        err = berth__s3_get_range(s->c, l.key, offset, buf, len, got);
    }
    return err;
}

/* Presigned URLs live 20 minutes, as the reference registry's. */
#define S3__REDIRECT_S 1200

int berth__s3_blob_url(berth_storage_t *b, const char *digest, char *url, size_t cap)
{
    berth_s3_t *s = berth__s3_of(b);
    berth__s3_link_t l = {0};
    int err;

    if (!s->redirect)
        return 1;
    if ((err = s3__link_read(s, digest, &l)) < 0)
        return err;
    return berth_s3_presign_get(s->c, l.key, S3__REDIRECT_S, url, cap);
}

int berth__s3_blob_remove(berth_storage_t *b, const char *digest)
{
    berth_s3_t *s = berth__s3_of(b);
    char key[S3__KEY_MAX];
    berth__s3_link_t l = {0};
    int err;

    s3__cache_drop(s, digest);
    if ((err = s3__link_read(s, digest, &l)) < 0)
        return err;
    s3__cache_drop(s, digest);
    /* The link first: a blob without a link is garbage, a link without its
     * data would be a broken blob. */
    if ((err = s3__blob_key(s, key, digest)) < 0 || (err = berth__s3_delete(s->c, key)) < 0)
        return err;
    return berth__s3_delete(s->c, l.key);
}

int berth__s3_link_write(berth_s3_t *s, const char *digest, const char *datakey, uint64_t size)
{
    char key[S3__KEY_MAX], *text;
    berth__s3_link_t l = {0};
    int err;

    if ((err = s3__blob_key(s, key, digest)) < 0)
        return err;
    /* Relative to the root, so that a bucket copied under another prefix
     * still works. */
    json_t *j = json_pack("{sssI}", "key", datakey + strlen(s->prefix), "size", (json_int_t)size);
    if (j == NULL || (text = json_dumps(j, JSON_COMPACT)) == NULL) {
        json_decref(j);
        return berth_error_set(BERTH_ERR, "out of memory");
    }
    json_decref(j);
    err = berth__s3_put(s->c, key, text, strlen(text), "application/json", NULL, NULL);
    free(text);
    if (err == 0) {
        memset(&l, 0, sizeof(l));
        snprintf(l.key, sizeof(l.key), "%s", datakey);
        l.size = size;
        s3__cache_put(s, digest, &l);
    }
    return err;
}

/* ---- listing ------------------------------------------------------------------ */

typedef struct s3__walk {
    berth_s3_t *s;
    size_t skip;
    berth_blob_cb cb;
    void *ctx;
} s3__walk_t;

/* blobs/sha256/<aa>/<hex>/link: the size is in the link object. */
static int s3__blob_each(void *arg, const char *key, uint64_t size, int64_t mtime)
{
    s3__walk_t *w = arg;
    char digest[BERTH_DIGEST_LEN];
    const char *rest = key + w->skip;
    berth__s3_link_t l = {0};
    int err;

    if (strlen(key) <= w->skip || strlen(rest) != 3 + 64 + 5 || rest[2] != '/' || strcmp(rest + 67, "/link") != 0)
        return 0;
    snprintf(digest, sizeof(digest), "sha256:%.64s", rest + 3);
    if (!berth_digest_valid(digest, strlen(digest)))
        return 0;
    if ((err = s3__link_read(w->s, digest, &l)) == BERTH_ENOTFOUND)
        return 0; /* removed since the listing */
    if (err < 0)
        return err;
    return w->cb(w->ctx, digest, l.size, mtime);
}

int berth__s3_blob_list(berth_storage_t *b, berth_blob_cb cb, void *ctx)
{
    berth_s3_t *s = berth__s3_of(b);
    char k[S3__KEY_MAX];
    s3__walk_t w = {s, 0, cb, ctx};
    int err;

    if ((err = berth__s3_key(s, k, "blobs/sha256/")) < 0)
        return err;
    w.skip = strlen(k);
    return berth__s3_list(s->c, k, s3__blob_each, &w);
}

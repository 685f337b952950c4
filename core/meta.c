/*
 * Metadata and links as storage objects (key scheme in meta.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/digest.h"
#include "core/error.h"
#include "core/meta.h"
#include "core/validate.h"

#define META__PREFIX "meta/"
#define META__PREFIX_LEN 5

static int meta__key(char out[BERTH_OBJ_KEY_MAX], const char *key)
{
    int n = snprintf(out, BERTH_OBJ_KEY_MAX, META__PREFIX "%s", key);

    if (n < 0 || n >= BERTH_OBJ_KEY_MAX)
        return berth_error_set(BERTH_EINVALID, "metadata key too long");
    return 0;
}

int berth_meta_get(berth_storage_t *s, const char *key, char **buf, size_t *len)
{
    char k[BERTH_OBJ_KEY_MAX];
    int err;

    if ((err = meta__key(k, key)) < 0)
        return err;
    return berth_storage_obj_get(s, k, buf, len, NULL);
}

int berth_meta_put(berth_storage_t *s, const char *key, const char *buf, size_t len)
{
    char k[BERTH_OBJ_KEY_MAX];
    int err;

    if ((err = meta__key(k, key)) < 0)
        return err;
    return berth_storage_obj_put(s, k, buf, len, NULL, NULL);
}

int berth_meta_delete(berth_storage_t *s, const char *key)
{
    char k[BERTH_OBJ_KEY_MAX];
    int err;

    if ((err = meta__key(k, key)) < 0)
        return err;
    return berth_storage_obj_delete(s, k, NULL);
}

typedef struct meta__list {
    berth_meta_cb cb;
    void *ctx;
} meta__list_t;

static int meta__list_cb(void *ctx, const char *key, uint64_t size, int64_t mtime)
{
    meta__list_t *l = ctx;

    if (strncmp(key, META__PREFIX, META__PREFIX_LEN) != 0)
        return 0;
    return l->cb(l->ctx, key + META__PREFIX_LEN);
}

int berth_meta_list(berth_storage_t *s, const char *prefix, berth_meta_cb cb, void *ctx)
{
    meta__list_t l = {cb, ctx};
    char k[BERTH_OBJ_KEY_MAX];
    int err;

    if ((err = meta__key(k, prefix)) < 0)
        return err;
    return berth_storage_obj_list(s, k, meta__list_cb, &l);
}

/* ---- links ----------------------------------------------------------------- */

int berth_link_key(char *out, const char *repo, const char *digest)
{
    int n = snprintf(out, BERTH_OBJ_KEY_MAX, "repositories/%s/_layers/sha256/%s/link", repo, digest + 7);

    if (n < 0 || n >= BERTH_OBJ_KEY_MAX)
        return berth_error_set(BERTH_EINVALID, "repository name too long");
    return 0;
}

int berth_link_put(berth_storage_t *s, const char *repo, const char *digest)
{
    char key[BERTH_OBJ_KEY_MAX], body[BERTH_DIGEST_LEN + 1];
    int n, err;

    if ((err = berth_link_key(key, repo, digest)) < 0)
        return err;
    n = snprintf(body, sizeof(body), "%s\n", digest);
    return berth_storage_obj_put(s, key, body, (size_t)n, NULL, NULL);
}

int berth_link_get(berth_storage_t *s, const char *repo, const char *digest)
{
    char key[BERTH_OBJ_KEY_MAX], *buf = NULL;
    size_t len = 0;
    int err;

    if ((err = berth_link_key(key, repo, digest)) < 0 || (err = berth_storage_obj_get(s, key, &buf, &len, NULL)) < 0)
        return err;
    free(buf);
    return 0;
}

int berth_link_remove(berth_storage_t *s, const char *repo, const char *digest)
{
    char key[BERTH_OBJ_KEY_MAX];
    int err;

    if ((err = berth_link_key(key, repo, digest)) < 0)
        return err;
    return berth_storage_obj_delete(s, key, NULL);
}

typedef struct meta__links {
    berth_link_cb cb;
    void *ctx;
} meta__links_t;

/* "repositories/<repo>/_layers/sha256/<hex>/link"; other objects under
 * repositories/ are skipped. */
static int meta__link_cb(void *ctx, const char *key, uint64_t size, int64_t mtime)
{
    static const char head[] = "repositories/", mid[] = "/_layers/sha256/", tail[] = "/link";
    size_t len = strlen(key), hl = sizeof(head) - 1, ml = sizeof(mid) - 1, tl = sizeof(tail) - 1, rlen;
    char repo[BERTH_NAME_MAX + 1], digest[BERTH_DIGEST_LEN];
    meta__links_t *l = ctx;

    if (len < hl + 1 + ml + 64 + tl || strcmp(key + len - tl, tail) != 0 ||
        memcmp(key + len - tl - 64 - ml, mid, ml) != 0)
        return 0;
    rlen = len - tl - 64 - ml - hl;
    if (rlen > BERTH_NAME_MAX || !berth_name_valid(key + hl, rlen))
        return 0;
    snprintf(digest, sizeof(digest), "sha256:%.64s", key + len - tl - 64);
    if (!berth_digest_valid(digest, strlen(digest)))
        return 0;
    memcpy(repo, key + hl, rlen);
    repo[rlen] = '\0';
    return l->cb(l->ctx, repo, digest, mtime);
}

int berth_link_list(berth_storage_t *s, berth_link_cb cb, void *ctx)
{
    meta__links_t l = {cb, ctx};

    return berth_storage_obj_list(s, "repositories/", meta__link_cb, &l);
}

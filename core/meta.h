/*
 * Registry metadata and repository links as storage objects: the engine's
 * and the registry's key scheme on top of the storage contract's objects.
 *
 *   meta/<key>                                          metadata object <key>
 *   repositories/<name>/_layers/sha256/<hex>/link       "sha256:<hex>\n": <name> may see the blob
 *
 * Metadata keys follow storage.h's key rules and may nest. Callers pass
 * validated names and digests.
 */
#ifndef BERTH_CORE_META_H
#define BERTH_CORE_META_H

#include <stddef.h>
#include <stdint.h>

#include "storage/storage.h"

/* Longest metadata key (the object key less "meta/"). */
#define BERTH_META_KEY_MAX (BERTH_OBJ_KEY_MAX - 6)

/* Called by berth_meta_list with each key (without "meta/"). */
typedef int (*berth_meta_cb)(void *ctx, const char *key);
/* Called by berth_link_list with each link and its last write. */
typedef int (*berth_link_cb)(void *ctx, const char *repo, const char *digest, int64_t mtime);

int berth_meta_get(berth_storage_t *s, const char *key, char **buf, size_t *len);
int berth_meta_put(berth_storage_t *s, const char *key, const char *buf, size_t len);
int berth_meta_delete(berth_storage_t *s, const char *key);
/* Every key under `prefix` ("" or a key followed by '/'), at any depth. */
int berth_meta_list(berth_storage_t *s, const char *prefix, berth_meta_cb cb, void *ctx);

/* The object key of `repo`'s link to `digest` into out (BERTH_OBJ_KEY_MAX
 * bytes); BERTH_EINVALID when too long. */
int berth_link_key(char *out, const char *repo, const char *digest);
/* link_put of an existing link counts as a write (gc's grace period). */
int berth_link_put(berth_storage_t *s, const char *repo, const char *digest);
/* 0 or BERTH_ENOTFOUND. */
int berth_link_get(berth_storage_t *s, const char *repo, const char *digest);
int berth_link_remove(berth_storage_t *s, const char *repo, const char *digest);
int berth_link_list(berth_storage_t *s, berth_link_cb cb, void *ctx);

#endif

/*
 * The registry: manifests, tags, referrers and the repository list on top
 * of the storage's metadata objects (storage version 3), independent of
 * HTTP. Every function blocks on storage: worker threads only. They are
 * thread-safe and keep no state of their own between calls: any number of
 * berth processes may serve one storage.
 *
 * Manifests are content-addressed blobs (stored and linked into the
 * repository like layers); the metadata says which repository holds which
 * manifest, under which tags. Keys (storage/storage.h grammar; <hex> is the
 * 64 hex digits of a sha256 digest):
 *
 *   repositories/<repo>/_manifests/revisions/sha256/<hex>
 *       the repository holds manifest sha256:<hex>; value: JSON
 *       {"mediaType": <as pushed>, "size": <bytes>[, "subject": <digest>]}
 *   repositories/<repo>/_manifests/tags/<tag>
 *       value: "sha256:<hex>", the manifest the tag names
 *   repositories/<repo>/_referrers/sha256/<subject hex>/sha256/<hex>
 *       manifest sha256:<hex> of the repository has that subject; value:
 *       its descriptor for the referrers index (JSON)
 *   catalog/<repo>
 *       the repository exists (a manifest was pushed to it); value empty
 *
 * Repository names and tags cannot contain a component starting with '_',
 * so "_manifests" and "_referrers" never collide with a nested repository.
 *
 * Order of writes, so that a crash leaves nothing a reader trips on: the
 * manifest blob, its revision, its referrer entry, the catalog entry, then
 * the tag. A revision without a tag is an untagged manifest; a
 * referrer entry whose revision is missing is skipped when listed.
 */
#ifndef BERTH_CORE_REGISTRY_H
#define BERTH_CORE_REGISTRY_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "core/digest.h"
#include "core/engine.h"
#include "core/meta.h"
#include "storage/storage.h"

#define BERTH_MEDIATYPE_MAX 255

#define BERTH_MT_OCI_MANIFEST "application/vnd.oci.image.manifest.v1+json"
#define BERTH_MT_OCI_INDEX "application/vnd.oci.image.index.v1+json"
#define BERTH_MT_DOCKER_MANIFEST "application/vnd.docker.distribution.manifest.v2+json"
#define BERTH_MT_DOCKER_LIST "application/vnd.docker.distribution.manifest.list.v2+json"

typedef struct berth_registry berth_registry_t;

typedef struct berth_registry_options {
    berth_storage_t *storage; /* borrowed; outlives the registry */
    berth_engine_t *engine;   /* borrowed: stores manifest blobs */
    uint64_t manifest_max;    /* largest manifest accepted, bytes */
} berth_registry_options_t;

int berth_registry_new(berth_registry_t **out, const berth_registry_options_t *o);
void berth_registry_free(berth_registry_t *r); /* NULL-safe */

/* What a manifest push tells the client. */
typedef struct berth_manifest_put {
    char digest[BERTH_DIGEST_LEN];  /* the manifest's digest */
    char subject[BERTH_DIGEST_LEN]; /* its subject's digest, "" if none */
    char missing[BERTH_DIGEST_LEN]; /* on BERTH_ENOTFOUND: the first referenced blob or manifest not there */
} berth_manifest_put_t;

/* Stores manifest `body` in `repo` under `reference` (a tag, or the
 * manifest's own digest). `content_type` is the request's Content-Type
 * (parameters ignored; NULL if absent): with the manifest's own mediaType
 * field it decides the type, and must agree with it.
 * BERTH_ETOOLARGE over the size limit; BERTH_EDIGEST when a digest reference
 * is not the body's digest (or not sha256); BERTH_EINVALID for an invalid
 * tag, JSON, type or structure (message says what); BERTH_ENOTFOUND when a
 * referenced blob (image manifest) or manifest (index) is not in the
 * repository, out->missing naming it. */
int berth_manifest_put(berth_registry_t *r, const char *repo, const char *reference, const char *content_type,
                       const void *body, size_t len, berth_manifest_put_t *out);

/* A manifest found by berth_manifest_get. */
typedef struct berth_manifest {
    char digest[BERTH_DIGEST_LEN];
    char media_type[BERTH_MEDIATYPE_MAX + 1];
    uint64_t size;
    char *body; /* malloc'd, size bytes; NULL unless asked for */
} berth_manifest_t;

/* Resolves `reference` (tag or digest) in `repo`; reads the body too when
 * `with_body`. BERTH_ENOTFOUND when the repository has no such manifest.
 * Free m->body with free(). */
int berth_manifest_get(berth_registry_t *r, const char *repo, const char *reference, int with_body,
                       berth_manifest_t *m);

/* Removes tag `reference` (the manifest stays), or, for a digest, the
 * manifest from the repository with every tag naming it and its referrer
 * entry. The blob stays until gc. BERTH_ENOTFOUND if absent. */
int berth_manifest_delete(berth_registry_t *r, const char *repo, const char *reference);

/* Removes blob `digest` from `repo` (its link; the bytes go at gc).
 * BERTH_ENOTFOUND if the repository does not have it. */
int berth_registry_blob_delete(berth_registry_t *r, const char *repo, const char *digest);

/* A page of a sorted list (tags, repositories). */
typedef struct berth_page {
    char **items; /* malloc'd strings, sorted by strcmp */
    size_t n;
    int more; /* entries follow the last one */
} berth_page_t;

void berth_page_clear(berth_page_t *p);

/* The tags of `repo` after `last` (NULL: from the start), at most `n` of
 * them (SIZE_MAX: all). BERTH_ENOTFOUND when the repository is unknown. */
int berth_tags_list(berth_registry_t *r, const char *repo, const char *last, size_t n, berth_page_t *out);

/* The repositories, paginated the same way. */
int berth_catalog_list(berth_registry_t *r, const char *last, size_t n, berth_page_t *out);

/* The referrers of `subject` in `repo` as an OCI image index (a jansson
 * object, caller decrefs), filtered to `artifact_type` unless NULL. An
 * unknown subject or repository gives an empty index. */
int berth_referrers_list(berth_registry_t *r, const char *repo, const char *subject, const char *artifact_type,
                         json_t **index);

/* 1 if `mt` is one of the four manifest media types berth serves. */
int berth_manifest_type_known(const char *mt);

/* Lists the digests a stored manifest references: its config and layers
 * (image manifest) or its manifests (index), and its subject. Calls cb for
 * each; used by gc. BERTH_EINVALID if the body does not parse. */
int berth_manifest_references(const char *body, size_t len, berth_meta_cb cb, void *ctx);

#endif

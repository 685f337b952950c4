/*
 * Garbage collection: removes the blobs no manifest references and the
 * repository links no manifest of their repository references, on any
 * backend of storage version 3. `berth gc` runs it (cmd/main.c).
 *
 * The rules:
 *   - Mark: every manifest a repository holds (tagged or not, see
 *     core/registry.h) keeps, in that repository, its own blob and every
 *     blob it names (an image manifest's config and layers, an index's
 *     manifests). Deleted manifests (DELETE by digest) keep nothing.
 *   - A link of a repository to a blob is removed when no manifest of that
 *     repository keeps it and it was last written (pushed, mounted) more
 *     than `grace` seconds ago.
 *   - A blob is removed when no manifest of any repository keeps it, it was
 *     stored more than `grace` seconds ago, and no link to it was written
 *     within `grace` seconds.
 *   - Upload sessions are not blobs: purge (uploads.ttl) expires them.
 *
 * Safe while servers run: the grace period keeps the blobs of pushes in
 * flight (uploaded, manifest not yet pushed), and the manifests are marked
 * twice, before and after the listings, and only what both marks leave is
 * removed, which narrows a push that starts using an old unreferenced blob
 * during the run to the moment between the second mark and the removal.
 * A manifest push that lost that race fails with MANIFEST_BLOB_UNKNOWN and
 * succeeds when repeated (the client uploads the blob again).
 */
#ifndef BERTH_CORE_GC_H
#define BERTH_CORE_GC_H

#include <stdint.h>

#include "storage/storage.h"

typedef struct berth_gc_options {
    berth_storage_t *storage;
    int dry_run;     /* report, remove nothing */
    int64_t grace_s; /* objects written within this many seconds are kept */
    int64_t now;     /* unix seconds */
    /* Called for each removal (or would-be removal); repo is NULL for a
     * blob, size 0 for a link. May be NULL. */
    void (*report)(void *ctx, const char *repo, const char *digest, uint64_t size);
    void *ctx;
} berth_gc_options_t;

typedef struct berth_gc_stats {
    size_t repositories;
    size_t manifests;
    size_t blobs; /* blobs listed */
    size_t blobs_removed;
    uint64_t bytes_removed;
    size_t links_removed;
} berth_gc_stats_t;

/* Runs one collection. BERTH_EINVALID for a backend older than version 3;
 * storage errors abort the run (what was removed stays removed). A missing
 * object found during removal (removed by someone else) is not an error. */
int berth_gc_run(const berth_gc_options_t *o, berth_gc_stats_t *stats);

#endif

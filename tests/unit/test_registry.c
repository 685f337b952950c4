/*
 * The registry (core/registry.c) and garbage collection (core/gc.c) on the
 * filesystem backend: manifest validation, tags and their pagination,
 * deletes, referrers, the catalog, and what gc keeps and removes.
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <sys/stat.h>

#include "core/gc.h"
#include "core/registry.h"

#define FIXTURE_SYNC BERTH_SYNC_NONE
#include "engine_fixture.h"

static berth_registry_t *reg;

static void setup(void)
{
    berth_registry_options_t ro = {.manifest_max = 4 << 20};

    fixture_setup();
    ro.storage = st;
    ro.engine = eng;
    cr_assert_eq(berth_registry_new(&reg, &ro), 0, "%s", berth_error_last());
}

static void teardown(void)
{
    berth_registry_free(reg);
    fixture_teardown();
}

TestSuite(registry, .init = setup, .fini = teardown);

static int linked(const char *repo, const char *d);

/* Stores `data` as a blob of `repo`; digest into d. */
static void blob(const char *repo, const char *data, char d[BERTH_DIGEST_LEN])
{
    berth_sha256_of(data, strlen(data), d);
    cr_assert_eq(berth_blob_put(eng, repo, d, data, strlen(data)), 0, "%s", berth_error_last());
}

/* An OCI image manifest of config `cfg` and one layer, into buf. */
static void image(char *buf, size_t size, const char *cfg, const char *layer, const char *extra)
{
    snprintf(buf, size,
             "{\"schemaVersion\":2,\"mediaType\":\"" BERTH_MT_OCI_MANIFEST "\","
             "\"config\":{\"mediaType\":\"application/vnd.oci.image.config.v1+json\",\"digest\":\"%s\",\"size\":2},"
             "\"layers\":[{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar\",\"digest\":\"%s\",\"size\":5}]%s}",
             cfg, layer, extra != NULL ? extra : "");
}

/* Puts an OCI image index of the one manifest `child` as repo:ref; what
 * berth_manifest_put answers. */
static int put_index(const char *repo, const char *ref, const char *child, berth_manifest_put_t *out)
{
    char body[1024];

    snprintf(body, sizeof(body),
             "{\"schemaVersion\":2,\"mediaType\":\"" BERTH_MT_OCI_INDEX "\",\"manifests\":["
             "{\"mediaType\":\"" BERTH_MT_OCI_MANIFEST "\",\"digest\":\"%s\",\"size\":1}]}",
             child);
    return berth_manifest_put(reg, repo, ref, NULL, body, strlen(body), out);
}

/* Pushes a fresh image (own config and layer) to repo:ref; digest into d. */
static void push_image(const char *repo, const char *ref, const char *seed, char d[BERTH_DIGEST_LEN])
{
    char c[BERTH_DIGEST_LEN], l[BERTH_DIGEST_LEN], body[1024], cfg[64], layer[64];
    berth_manifest_put_t out;

    snprintf(cfg, sizeof(cfg), "{\"seed\":\"%s\"}", seed);
    snprintf(layer, sizeof(layer), "layer %s", seed);
    blob(repo, cfg, c);
    blob(repo, layer, l);
    image(body, sizeof(body), c, l, NULL);
    cr_assert_eq(berth_manifest_put(reg, repo, ref, BERTH_MT_OCI_MANIFEST, body, strlen(body), &out), 0, "%s",
                 berth_error_last());
    memcpy(d, out.digest, BERTH_DIGEST_LEN);
}

Test(registry, a_pushed_manifest_comes_back_by_tag_and_digest)
{
    char c[BERTH_DIGEST_LEN], l[BERTH_DIGEST_LEN], body[1024];
    berth_manifest_put_t out;
    berth_manifest_t m;

    blob("lib/a", "{}", c);
    blob("lib/a", "hello", l);
    image(body, sizeof(body), c, l, NULL);
    cr_assert_eq(berth_manifest_put(reg, "lib/a", "v1", "application/vnd.oci.image.manifest.v1+json; charset=utf-8",
                                    body, strlen(body), &out),
                 0, "%s", berth_error_last());
    cr_assert_eq(out.subject[0], '\0');
    for (int i = 0; i < 2; i++) {
        cr_assert_eq(berth_manifest_get(reg, "lib/a", i == 0 ? "v1" : out.digest, 1, &m), 0, "%s", berth_error_last());
        cr_assert_str_eq(m.digest, out.digest);
        cr_assert_str_eq(m.media_type, BERTH_MT_OCI_MANIFEST);
        cr_assert_eq(m.size, strlen(body));
        cr_assert_eq(memcmp(m.body, body, m.size), 0);
        free(m.body);
    }
    cr_assert_eq(berth_manifest_get(reg, "lib/b", "v1", 0, &m), BERTH_ENOTFOUND, "other repositories see nothing");
    cr_assert_eq(berth_manifest_get(reg, "lib/a", "v2", 0, &m), BERTH_ENOTFOUND);
}

/* The metadata is storage objects under "meta/", where every berth sharing
 * the store (and gc) looks for it. */
Test(registry, metadata_is_kept_as_meta_objects)
{
    char d[BERTH_DIGEST_LEN], key[BERTH_OBJ_KEY_MAX], *buf = NULL;
    size_t len = 0;
    json_t *rev;

    push_image("lib/a", "v1", "meta", d);
    cr_assert_eq(berth_storage_obj_get(st, "meta/repositories/lib/a/_manifests/tags/v1", &buf, &len, NULL), 0, "%s",
                 berth_error_last());
    cr_assert_eq(len, strlen(d));
    cr_assert_eq(memcmp(buf, d, len), 0);
    free(buf);
    snprintf(key, sizeof(key), "meta/repositories/lib/a/_manifests/revisions/sha256/%s", d + 7);
    cr_assert_eq(berth_storage_obj_get(st, key, &buf, &len, NULL), 0, "%s", berth_error_last());
    rev = json_loadb(buf, len, 0, NULL);
    cr_assert_not_null(rev);
    cr_assert_str_eq(json_string_value(json_object_get(rev, "mediaType")), BERTH_MT_OCI_MANIFEST);
    json_decref(rev);
    free(buf);
    cr_assert_eq(berth_storage_obj_get(st, "meta/catalog/lib/a", &buf, &len, NULL), 0, "%s", berth_error_last());
    free(buf);
    /* The manifest itself is a blob the repository links. */
    cr_assert(linked("lib/a", d));
}

Test(registry, validation_names_what_is_wrong)
{
    char c[BERTH_DIGEST_LEN], l[BERTH_DIGEST_LEN], body[1024], absent[BERTH_DIGEST_LEN];
    berth_manifest_put_t out;
    static const char *const bad_json[] = {
        "not json",
        "[]",
        "{\"schemaVersion\":1,\"mediaType\":\"" BERTH_MT_OCI_MANIFEST "\",\"config\":{},\"layers\":[]}",
        "{\"schemaVersion\":2,\"mediaType\":\"" BERTH_MT_OCI_MANIFEST "\",\"layers\":[]}",
        "{\"schemaVersion\":2,\"mediaType\":\"" BERTH_MT_OCI_INDEX "\"}",
        "{\"schemaVersion\":2,\"mediaType\":\"application/vnd.example+json\",\"manifests\":[]}",
        "{\"schemaVersion\":2,\"mediaType\":7,\"manifests\":[]}",
    };

    for (size_t i = 0; i < sizeof(bad_json) / sizeof(bad_json[0]); i++)
        cr_assert_eq(berth_manifest_put(reg, "lib/a", "v1", NULL, bad_json[i], strlen(bad_json[i]), &out),
                     BERTH_EINVALID, "accepted %s", bad_json[i]);

    blob("lib/a", "{}", c);
    blob("lib/a", "hello", l);
    image(body, sizeof(body), c, l, NULL);
    cr_assert_eq(berth_manifest_put(reg, "lib/a", "bad:tag!", NULL, body, strlen(body), &out), BERTH_EDIGEST);
    cr_assert_eq(berth_manifest_put(reg, "lib/a", "-bad", NULL, body, strlen(body), &out), BERTH_EINVALID);
    cr_assert_eq(berth_manifest_put(reg, "lib/a", "v1", BERTH_MT_OCI_INDEX, body, strlen(body), &out), BERTH_EINVALID,
                 "Content-Type and mediaType disagree");
    cr_assert_eq(berth_manifest_put(reg, "lib/a", "v1", "application/json", body, strlen(body), &out), 0,
                 "a generic Content-Type defers to mediaType: %s", berth_error_last());
    cr_assert_eq(berth_manifest_put(reg, "lib/a",
                                    "sha256:0000000000000000000000000000000000000000000000000000000000000000", NULL,
                                    body, strlen(body), &out),
                 BERTH_EDIGEST, "a digest reference must be the body's digest");
    cr_assert_eq(berth_manifest_put(reg, "lib/a", out.digest, NULL, body, strlen(body), &out), 0);

    /* A layer of another repository is not this repository's. */
    berth_sha256_of("elsewhere", 9, absent);
    cr_assert_eq(berth_blob_put(eng, "lib/other", absent, "elsewhere", 9), 0);
    image(body, sizeof(body), c, absent, NULL);
    cr_assert_eq(berth_manifest_put(reg, "lib/a", "v2", NULL, body, strlen(body), &out), BERTH_ENOTFOUND);
    cr_assert_str_eq(out.missing, absent);
    /* Foreign layers (with urls) are not looked for. */
    snprintf(
        body, sizeof(body),
        "{\"schemaVersion\":2,\"mediaType\":\"" BERTH_MT_DOCKER_MANIFEST "\","
        "\"config\":{\"mediaType\":\"application/vnd.docker.container.image.v1+json\",\"digest\":\"%s\",\"size\":2},"
        "\"layers\":[{\"mediaType\":\"application/vnd.docker.image.rootfs.foreign.diff.tar.gzip\",\"digest\":\"%s\","
        "\"size\":5,\"urls\":[\"https://example.com/l\"]}]}",
        c, absent);
    cr_assert_eq(berth_manifest_put(reg, "lib/a", "win", NULL, body, strlen(body), &out), 0, "%s", berth_error_last());
}

Test(registry, manifests_over_the_limit_are_refused)
{
    char *big = malloc((4 << 20) + 2);
    berth_manifest_put_t out;

    memset(big, ' ', (4 << 20) + 1);
    big[(4 << 20) + 1] = '\0';
    cr_assert_eq(berth_manifest_put(reg, "lib/a", "v1", NULL, big, (4 << 20) + 1, &out), BERTH_ETOOLARGE);
    free(big);
}

Test(registry, an_index_needs_its_manifests_in_the_repository)
{
    char m1[BERTH_DIGEST_LEN];
    berth_manifest_put_t out;
    berth_manifest_t m;

    push_image("lib/a", "amd64", "one", m1);
    cr_assert_eq(put_index("lib/b", "multi", m1, &out), BERTH_ENOTFOUND);
    cr_assert_str_eq(out.missing, m1);
    cr_assert_eq(put_index("lib/a", "multi", m1, &out), 0, "%s", berth_error_last());
    cr_assert_eq(berth_manifest_get(reg, "lib/a", "multi", 0, &m), 0);
    cr_assert_str_eq(m.media_type, BERTH_MT_OCI_INDEX, "the type is kept as pushed");
}

Test(registry, tags_are_sorted_and_paginated)
{
    static const char *const tags[] = {"v2", "latest", "V1", "v10", "1.0", "_x"};
    berth_page_t p;
    char d[BERTH_DIGEST_LEN];

    cr_assert_eq(berth_tags_list(reg, "lib/a", NULL, SIZE_MAX, &p), BERTH_ENOTFOUND, "unknown repository");
    for (size_t i = 0; i < 6; i++)
        push_image("lib/a", tags[i], "same", d);
    cr_assert_eq(berth_tags_list(reg, "lib/a", NULL, SIZE_MAX, &p), 0);
    cr_assert_eq(p.n, 6);
    cr_assert_eq(p.more, 0);
    static const char *const want[] = {"1.0", "V1", "_x", "latest", "v10", "v2"};
    for (size_t i = 0; i < 6; i++)
        cr_assert_str_eq(p.items[i], want[i]);
    berth_page_clear(&p);
    cr_assert_eq(berth_tags_list(reg, "lib/a", NULL, 2, &p), 0);
    cr_assert_eq(p.n, 2);
    cr_assert(p.more);
    cr_assert_str_eq(p.items[1], "V1");
    berth_page_clear(&p);
    cr_assert_eq(berth_tags_list(reg, "lib/a", "V1", 2, &p), 0);
    cr_assert_str_eq(p.items[0], "_x");
    cr_assert_str_eq(p.items[1], "latest");
    cr_assert(p.more);
    berth_page_clear(&p);
    cr_assert_eq(berth_tags_list(reg, "lib/a", "latest", 2, &p), 0);
    cr_assert_eq(p.n, 2);
    cr_assert_eq(p.more, 0, "the last page says so");
    berth_page_clear(&p);
    cr_assert_eq(berth_tags_list(reg, "lib/a", "zzz", 2, &p), 0);
    cr_assert_eq(p.n, 0);
    berth_page_clear(&p);
    cr_assert_eq(berth_tags_list(reg, "lib/a", NULL, 0, &p), 0);
    cr_assert_eq(p.n, 0);
    berth_page_clear(&p);
}

Test(registry, catalog_lists_nested_repositories)
{
    char d[BERTH_DIGEST_LEN];
    berth_page_t p;

    push_image("b", "t", "1", d);
    push_image("a/b", "t", "2", d);
    push_image("a", "t", "3", d);
    push_image("a", "u", "4", d);
    cr_assert_eq(berth_catalog_list(reg, NULL, SIZE_MAX, &p), 0);
    cr_assert_eq(p.n, 3);
    cr_assert_str_eq(p.items[0], "a");
    cr_assert_str_eq(p.items[1], "a/b");
    cr_assert_str_eq(p.items[2], "b");
    berth_page_clear(&p);
    cr_assert_eq(berth_catalog_list(reg, "a", 1, &p), 0);
    cr_assert_eq(p.n, 1);
    cr_assert_str_eq(p.items[0], "a/b");
    cr_assert(p.more);
    berth_page_clear(&p);
}

Test(registry, deleting_a_tag_keeps_the_manifest_and_a_digest_removes_its_tags)
{
    char d[BERTH_DIGEST_LEN], d2[BERTH_DIGEST_LEN];
    berth_manifest_t m;
    berth_page_t p;

    push_image("lib/a", "v1", "x", d);
    push_image("lib/a", "v2", "x", d);
    push_image("lib/a", "other", "y", d2);
    cr_assert_eq(berth_manifest_delete(reg, "lib/a", "v1"), 0);
    cr_assert_eq(berth_manifest_delete(reg, "lib/a", "v1"), BERTH_ENOTFOUND);
    cr_assert_eq(berth_manifest_get(reg, "lib/a", d, 0, &m), 0, "the manifest stays");
    cr_assert_eq(berth_manifest_get(reg, "lib/a", "v2", 0, &m), 0);
    cr_assert_eq(berth_manifest_delete(reg, "lib/a", d), 0, "%s", berth_error_last());
    cr_assert_eq(berth_manifest_get(reg, "lib/a", d, 0, &m), BERTH_ENOTFOUND);
    cr_assert_eq(berth_manifest_get(reg, "lib/a", "v2", 0, &m), BERTH_ENOTFOUND, "its tags went with it");
    cr_assert_eq(berth_manifest_delete(reg, "lib/a", d), BERTH_ENOTFOUND);
    cr_assert_eq(berth_tags_list(reg, "lib/a", NULL, SIZE_MAX, &p), 0);
    cr_assert_eq(p.n, 1);
    cr_assert_str_eq(p.items[0], "other");
    berth_page_clear(&p);
}

Test(registry, referrers_index_filters_and_forgets_deleted_manifests)
{
    char subj[BERTH_DIGEST_LEN], e[BERTH_DIGEST_LEN], l[BERTH_DIGEST_LEN], body[2048], extra[512];
    char sig[BERTH_DIGEST_LEN], sbom[BERTH_DIGEST_LEN];
    berth_manifest_put_t out;
    json_t *idx;

    push_image("lib/a", "v1", "s", subj);
    blob("lib/a", "{}", e);
    blob("lib/a", "hello", l);
    snprintf(extra, sizeof(extra),
             ",\"artifactType\":\"application/x-sig\",\"annotations\":{\"k\":\"v\"},"
             "\"subject\":{\"mediaType\":\"" BERTH_MT_OCI_MANIFEST "\",\"digest\":\"%s\",\"size\":3}",
             subj);
    image(body, sizeof(body), e, l, extra);
    cr_assert_eq(berth_manifest_put(reg, "lib/a", "sig", NULL, body, strlen(body), &out), 0, "%s", berth_error_last());
    cr_assert_str_eq(out.subject, subj);
    memcpy(sig, out.digest, sizeof(sig));
    /* Without artifactType the config's media type stands in. */
    snprintf(extra, sizeof(extra),
             ",\"subject\":{\"mediaType\":\"" BERTH_MT_OCI_MANIFEST "\",\"digest\":\"%s\",\"size\":3}", subj);
    image(body, sizeof(body), e, l, extra);
    cr_assert_eq(berth_manifest_put(reg, "lib/a", "sbom", NULL, body, strlen(body), &out), 0);
    memcpy(sbom, out.digest, sizeof(sbom));

    cr_assert_eq(berth_referrers_list(reg, "lib/a", subj, NULL, &idx), 0);
    cr_assert_str_eq(json_string_value(json_object_get(idx, "mediaType")), BERTH_MT_OCI_INDEX);
    cr_assert_eq(json_array_size(json_object_get(idx, "manifests")), 2);
    json_decref(idx);
    cr_assert_eq(berth_referrers_list(reg, "lib/a", subj, "application/x-sig", &idx), 0);
    json_t *only = json_array_get(json_object_get(idx, "manifests"), 0);
    cr_assert_eq(json_array_size(json_object_get(idx, "manifests")), 1);
    cr_assert_str_eq(json_string_value(json_object_get(only, "digest")), sig);
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(only, "annotations"), "k")), "v");
    json_decref(idx);
    cr_assert_eq(berth_referrers_list(reg, "lib/a", subj, "application/vnd.oci.image.config.v1+json", &idx), 0);
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(json_object_get(idx, "manifests"), 0), "digest")),
                     sbom);
    json_decref(idx);

    cr_assert_eq(berth_manifest_delete(reg, "lib/a", sig), 0);
    cr_assert_eq(berth_referrers_list(reg, "lib/a", subj, NULL, &idx), 0);
    cr_assert_eq(json_array_size(json_object_get(idx, "manifests")), 1);
    json_decref(idx);
    cr_assert_eq(berth_referrers_list(reg, "lib/b", subj, NULL, &idx), 0, "unknown repository: empty index");
    cr_assert_eq(json_array_size(json_object_get(idx, "manifests")), 0);
    json_decref(idx);
}

/* ---- gc ------------------------------------------------------------------------ */

static berth_gc_stats_t gc(int64_t grace, int dry_run)
{
    berth_gc_options_t o = {.storage = st, .grace_s = grace, .now = (int64_t)time(NULL) + 10, .dry_run = dry_run};
    berth_gc_stats_t s;

    cr_assert_eq(berth_gc_run(&o, &s), 0, "%s", berth_error_last());
    return s;
}

Test(registry, gc_removes_only_what_no_manifest_keeps)
{
    char kept[BERTH_DIGEST_LEN], gone[BERTH_DIGEST_LEN], orphan[BERTH_DIGEST_LEN], shared[BERTH_DIGEST_LEN];
    berth_manifest_t m;
    berth_gc_stats_t s;

    push_image("lib/a", "v1", "kept", kept);
    push_image("lib/a", "v2", "gone", gone);
    push_image("lib/b", "v1", "kept", shared); /* same content in another repository */
    blob("lib/a", "never referenced", orphan);
    cr_assert_eq(berth_manifest_delete(reg, "lib/a", gone), 0);

    s = gc(3600, 0);
    cr_assert_eq(s.blobs_removed, 0, "everything is within the grace period");
    cr_assert_eq(s.links_removed, 0);

    s = gc(0, 1);
    cr_assert_eq(s.blobs_removed, 4, "dry run counts the deleted manifest, its config and layer, and the orphan: %zu",
                 s.blobs_removed);
    cr_assert(blob_exists(orphan), "a dry run removes nothing");

    s = gc(0, 0);
    cr_assert_eq(s.manifests, 2);
    cr_assert_eq(s.repositories, 2);
    cr_assert_eq(s.blobs_removed, 4);
    cr_assert_eq(s.links_removed, 4);
    cr_assert_not(blob_exists(orphan));
    cr_assert_not(blob_exists(gone));
    cr_assert(blob_exists(kept));
    cr_assert_eq(berth_manifest_get(reg, "lib/a", "v1", 1, &m), 0, "kept manifests still read whole");
    free(m.body);
    cr_assert_eq(berth_manifest_get(reg, "lib/b", "v1", 1, &m), 0);
    free(m.body);
    s = gc(0, 0);
    cr_assert_eq(s.blobs_removed + s.links_removed, 0, "a second run finds nothing");
}

/* Sets back by `secs` seconds the modification time of every file under
 * the root whose path contains `what` (and `also`, when not NULL) but not
 * `not`, wherever the backend lays them out; at least one must match. */
static const char *age_what, *age_also, *age_not;
static int64_t age_secs;
static int age_matched;

static int age_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    struct timespec ts[2];

    if (flag != FTW_F || strstr(path, age_what) == NULL || (age_also != NULL && strstr(path, age_also) == NULL) ||
        (age_not != NULL && strstr(path, age_not) != NULL))
        return 0;
    ts[0].tv_sec = ts[1].tv_sec = (time_t)((int64_t)time(NULL) - age_secs);
    ts[0].tv_nsec = ts[1].tv_nsec = 0;
    cr_assert_eq(utimensat(AT_FDCWD, path, ts, 0), 0, "utimensat %s", path);
    age_matched++;
    return 0;
}

static void age(const char *what, const char *also, const char *exclude, int64_t secs)
{
    age_what = what, age_also = also, age_not = exclude, age_secs = secs, age_matched = 0;
    cr_assert_eq(nftw(root, age_one, 16, FTW_PHYS), 0);
    cr_assert_gt(age_matched, 0, "no file under %s holds %s", root, what);
}

static void age_blob(const char *d, int64_t secs)
{
    age(d + 7, "blobs", "_layers", secs);
}

static void age_link(const char *repo, const char *d, int64_t secs)
{
    char key[BERTH_OBJ_KEY_MAX];

    cr_assert_eq(berth_link_key(key, repo, d), 0);
    age(key, NULL, NULL, secs);
}

static int linked(const char *repo, const char *d)
{
    char key[BERTH_OBJ_KEY_MAX], *buf = NULL;
    size_t len = 0;
    int err;

    cr_assert_eq(berth_link_key(key, repo, d), 0);
    err = berth_storage_obj_get(st, key, &buf, &len, NULL);
    free(buf);
    return err == 0;
}

Test(registry, gc_grace_keeps_blobs_a_push_in_flight_just_linked)
{
    char d[BERTH_DIGEST_LEN];
    berth_gc_stats_t s;

    blob("lib/old", "uploaded long ago, never referenced", d);
    age_blob(d, 7200);
    age_link("lib/old", d, 7200);
    /* A push in flight mounts it into another repository just now. */
    cr_assert_eq(berth_blob_mount(eng, "lib/new", NULL, d), 0);

    s = gc(3600, 0);
    cr_assert(blob_exists(d), "a link written within the grace period keeps the blob");
    cr_assert_eq(s.blobs_removed, 0);
    cr_assert_not(linked("lib/old", d), "the old unreferenced link goes");
    cr_assert(linked("lib/new", d), "the young link stays");

    age_link("lib/new", d, 7200);
    s = gc(3600, 0);
    cr_assert_eq(s.blobs_removed, 1);
    cr_assert_not(blob_exists(d), "once every link is old, the unreferenced blob goes");
    cr_assert_not(linked("lib/new", d));
}

Test(registry, gc_keeps_an_index_and_its_children)
{
    char m1[BERTH_DIGEST_LEN];
    berth_manifest_put_t out;
    berth_gc_stats_t s;

    push_image("lib/a", "child", "c", m1);
    cr_assert_eq(put_index("lib/a", "multi", m1, &out), 0, "%s", berth_error_last());
    cr_assert_eq(berth_manifest_delete(reg, "lib/a", "child"), 0, "untag the child");
    s = gc(0, 0);
    cr_assert_eq(s.blobs_removed, 0);
    cr_assert(blob_exists(m1));
    cr_assert(blob_exists(out.digest));
}

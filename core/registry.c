/*
 * The registry (contract and key layout in registry.h).
 *
 * Manifest validation follows the distribution-spec and the image-spec:
 * the JSON must parse, the media type (Content-Type, else the manifest's
 * own mediaType field) must be one of the four served types and agree with
 * the field when both are given, schemaVersion must be 2, descriptors must
 * have a mediaType, a well-formed digest and a size, and every blob an image
 * manifest names (but foreign layers, which carry `urls`) and every manifest
 * an index names must already be in the repository.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/error.h"
#include "core/log.h"
#include "core/registry.h"
#include "core/validate.h"

#define REG__KEY_SIZE (BERTH_META_KEY_MAX + 1)

struct berth_registry {
    berth_storage_t *storage;
    berth_engine_t *engine;
    uint64_t manifest_max;
};

int berth_registry_new(berth_registry_t **out, const berth_registry_options_t *o)
{
    berth_registry_t *r;

    if (out == NULL)
        return berth_error_set(BERTH_EINVALID, "registry_new: missing argument");
    *out = NULL;
    if (o == NULL || o->storage == NULL || o->engine == NULL)
        return berth_error_set(BERTH_EINVALID, "registry_new: no storage or engine");
    if ((r = calloc(1, sizeof(*r))) == NULL)
        return berth_error_set(BERTH_ERR, "out of memory");
    r->storage = o->storage;
    r->engine = o->engine;
    r->manifest_max = o->manifest_max;
    *out = r;
    return 0;
}

void berth_registry_free(berth_registry_t *r)
{
    free(r);
}

/* ---- small helpers ---------------------------------------------------------- */

static int reg__key(char out[REG__KEY_SIZE], const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int reg__key(char out[REG__KEY_SIZE], const char *fmt, ...)
{
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(out, REG__KEY_SIZE, fmt, ap);
    va_end(ap);
    if (n < 0 || n >= REG__KEY_SIZE)
        return berth_error_set(BERTH_EINVALID, "metadata key too long");
    return 0;
}

static const char *reg__hex(const char *digest)
{
    return digest + 7; /* after "sha256:" */
}

static int reg__revision_key(char out[REG__KEY_SIZE], const char *repo, const char *digest)
{
    return reg__key(out, "repositories/%s/_manifests/revisions/sha256/%s", repo, reg__hex(digest));
}

static int reg__tag_key(char out[REG__KEY_SIZE], const char *repo, const char *tag)
{
    return reg__key(out, "repositories/%s/_manifests/tags/%s", repo, tag);
}

static int reg__referrer_key(char out[REG__KEY_SIZE], const char *repo, const char *subject, const char *digest)
{
    return reg__key(out, "repositories/%s/_referrers/sha256/%s/sha256/%s", repo, reg__hex(subject), reg__hex(digest));
}

int berth_manifest_type_known(const char *mt)
{
    return mt != NULL && (strcmp(mt, BERTH_MT_OCI_MANIFEST) == 0 || strcmp(mt, BERTH_MT_OCI_INDEX) == 0 ||
                          strcmp(mt, BERTH_MT_DOCKER_MANIFEST) == 0 || strcmp(mt, BERTH_MT_DOCKER_LIST) == 0);
}

static int reg__is_index(const char *mt)
{
    return strcmp(mt, BERTH_MT_OCI_INDEX) == 0 || strcmp(mt, BERTH_MT_DOCKER_LIST) == 0;
}

static int reg__is_oci(const char *mt)
{
    return strcmp(mt, BERTH_MT_OCI_MANIFEST) == 0 || strcmp(mt, BERTH_MT_OCI_INDEX) == 0;
}

/* The media type of a Content-Type value: parameters and surrounding
 * blanks dropped, into out (empty when absent or too long). */
static void reg__media_type(const char *ct, char out[BERTH_MEDIATYPE_MAX + 1])
{
    size_t start = 0, end;

    out[0] = '\0';
    if (ct == NULL)
        return;
    while (ct[start] == ' ' || ct[start] == '\t')
        start++;
    end = start;
    while (ct[end] != '\0' && ct[end] != ';')
        end++;
    while (end > start && (ct[end - 1] == ' ' || ct[end - 1] == '\t'))
        end--;
    if (end - start > BERTH_MEDIATYPE_MAX)
        return;
    memcpy(out, ct + start, end - start);
    out[end - start] = '\0';
    /* Media types compare case-insensitively; the served ones are lowercase. */
    for (size_t i = 0; out[i] != '\0'; i++)
        if (out[i] >= 'A' && out[i] <= 'Z')
            out[i] = (char)(out[i] - 'A' + 'a');
}

/* Checks that `d` is a descriptor: an object with a string mediaType, a
 * well-formed digest and a non-negative integer size. */
static int reg__descriptor(json_t *d, const char *where)
{
    json_t *mt = json_object_get(d, "mediaType"), *dg = json_object_get(d, "digest"), *sz = json_object_get(d, "size");

    if (!json_is_object(d))
        return berth_error_set(BERTH_EINVALID, "%s is not a descriptor object", where);
    if (!json_is_string(mt) || json_string_length(mt) == 0)
        return berth_error_set(BERTH_EINVALID, "%s has no mediaType", where);
    if (!json_is_string(dg) || !berth_digest_wellformed(json_string_value(dg), json_string_length(dg)))
        return berth_error_set(BERTH_EINVALID, "%s has no valid digest", where);
    if (!json_is_integer(sz) || json_integer_value(sz) < 0)
        return berth_error_set(BERTH_EINVALID, "%s has no valid size", where);
    return 0;
}

/* 1 when the descriptor names content stored elsewhere (a foreign layer). */
static int reg__foreign(json_t *d)
{
    json_t *urls = json_object_get(d, "urls");
    return json_is_array(urls) && json_array_size(urls) > 0;
}

/* 0 when the repository holds blob `digest`, else BERTH_ENOTFOUND with
 * `missing` set (or another storage error). */
static int reg__blob_present(berth_registry_t *r, const char *repo, const char *digest, char *missing)
{
    uint64_t size;
    int err;

    if (berth_digest_valid(digest, strlen(digest))) {
        if ((err = berth_link_get(r->storage, repo, digest)) == 0 &&
            (err = berth_storage_blob_stat(r->storage, digest, &size)) == 0)
            return 0;
        if (err != BERTH_ENOTFOUND)
            return err;
    }
    snprintf(missing, BERTH_DIGEST_LEN, "%s", digest);
    return berth_error_set(BERTH_ENOTFOUND, "blob %s is not in the repository", digest);
}

static int reg__manifest_present(berth_registry_t *r, const char *repo, const char *digest, char *missing)
{
    char key[REG__KEY_SIZE], *buf = NULL;
    size_t len;
    int err;

    if (berth_digest_valid(digest, strlen(digest))) {
        if ((err = reg__revision_key(key, repo, digest)) < 0)
            return err;
        if ((err = berth_meta_get(r->storage, key, &buf, &len)) == 0) {
            free(buf);
            return 0;
        }
        if (err != BERTH_ENOTFOUND)
            return err;
    }
    /* An index may name plain blobs too (artifacts). */
    return reg__blob_present(r, repo, digest, missing);
}

/* ---- manifest put ------------------------------------------------------------- */

/* Checks the structure of `doc` of type `mt` and that what it references is
 * in the repository. */
static int reg__validate(berth_registry_t *r, const char *repo, json_t *doc, const char *mt, berth_manifest_put_t *out)
{
    json_t *sv = json_object_get(doc, "schemaVersion"), *v, *subject;
    size_t i;
    char where[64];
    int err;

    if (!json_is_integer(sv) || json_integer_value(sv) != 2)
        return berth_error_set(BERTH_EINVALID, "schemaVersion must be 2");
    if (reg__is_index(mt)) {
        json_t *list = json_object_get(doc, "manifests");
        if (!json_is_array(list))
            return berth_error_set(BERTH_EINVALID, "an index needs a manifests array");
        json_array_foreach(list, i, v)
        {
            snprintf(where, sizeof(where), "manifests[%zu]", i);
            if ((err = reg__descriptor(v, where)) < 0)
                return err;
        }
        json_array_foreach(list, i, v)
        {
            if ((err = reg__manifest_present(r, repo, json_string_value(json_object_get(v, "digest")), out->missing)) <
                0)
                return err;
        }
    } else {
        json_t *config = json_object_get(doc, "config"), *layers = json_object_get(doc, "layers");
        if ((err = reg__descriptor(config, "config")) < 0)
            return err;
        if (!json_is_array(layers))
            return berth_error_set(BERTH_EINVALID, "an image manifest needs a layers array");
        json_array_foreach(layers, i, v)
        {
            snprintf(where, sizeof(where), "layers[%zu]", i);
            if ((err = reg__descriptor(v, where)) < 0)
                return err;
        }
        if ((err = reg__blob_present(r, repo, json_string_value(json_object_get(config, "digest")), out->missing)) < 0)
            return err;
        json_array_foreach(layers, i, v)
        {
            if (reg__foreign(v))
                continue;
            if ((err = reg__blob_present(r, repo, json_string_value(json_object_get(v, "digest")), out->missing)) < 0)
                return err;
        }
    }
    subject = json_object_get(doc, "subject");
    if (subject != NULL && reg__is_oci(mt)) {
        const char *sd;
        if ((err = reg__descriptor(subject, "subject")) < 0)
            return err;
        sd = json_string_value(json_object_get(subject, "digest"));
        if (!berth_digest_valid(sd, strlen(sd)))
            return berth_error_set(BERTH_EINVALID, "subject digest %s: berth supports sha256 only", sd);
        snprintf(out->subject, sizeof(out->subject), "%s", sd);
    }
    return 0;
}

/* The descriptor of the new manifest in its subject's referrers index. */
static json_t *reg__referrer_descriptor(json_t *doc, const char *mt, const char *digest, size_t len)
{
    json_t *d = json_pack("{s:s, s:s, s:I}", "mediaType", mt, "digest", digest, "size", (json_int_t)len);
    json_t *at = json_object_get(doc, "artifactType"), *ann = json_object_get(doc, "annotations");

    if (d == NULL)
        return NULL;
    /* image-spec: without artifactType, an image manifest's referrer entry
     * takes the config's media type; an index's has none. */
    if (json_is_string(at) && json_string_length(at) > 0)
        json_object_set(d, "artifactType", at);
    else if (!reg__is_index(mt))
        json_object_set(d, "artifactType", json_object_get(json_object_get(doc, "config"), "mediaType"));
    if (json_is_object(ann) && json_object_size(ann) > 0)
        json_object_set(d, "annotations", ann);
    return d;
}

static int reg__put_json(berth_registry_t *r, const char *key, json_t *v)
{
    char *text = json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS);
    int err;

    if (text == NULL)
        return berth_error_set(BERTH_ERR, "out of memory");
    err = berth_meta_put(r->storage, key, text, strlen(text));
    free(text);
    return err;
}

static int reg__catalog_add(berth_registry_t *r, const char *repo)
{
    char key[REG__KEY_SIZE], *buf = NULL;
    size_t len;
    int err;

    if ((err = reg__key(key, "catalog/%s", repo)) < 0)
        return err;
    /* Most pushes go to known repositories: a read is cheaper than a
     * durable write. */
    if ((err = berth_meta_get(r->storage, key, &buf, &len)) == 0) {
        free(buf);
        return 0;
    }
    if (err != BERTH_ENOTFOUND)
        return err;
    return berth_meta_put(r->storage, key, "", 0);
}

int berth_manifest_put(berth_registry_t *r, const char *repo, const char *reference, const char *content_type,
                       const void *body, size_t len, berth_manifest_put_t *out)
{
    char mt_hdr[BERTH_MEDIATYPE_MAX + 1], key[REG__KEY_SIZE];
    const char *mt;
    json_t *doc = NULL, *rev = NULL, *desc = NULL, *field;
    json_error_t jerr;
    int is_digest, err;

    if (r == NULL || repo == NULL || reference == NULL || out == NULL || (body == NULL && len != 0))
        return berth_error_set(BERTH_EINVALID, "manifest_put: missing argument");
    memset(out, 0, sizeof(*out));
    if (!berth_name_valid(repo, strlen(repo)))
        return berth_error_set(BERTH_EINVALID, "invalid repository name");
    if (len > r->manifest_max)
        return berth_error_set(BERTH_ETOOLARGE, "manifest of %zu bytes is over the limit of %llu", len,
                               (unsigned long long)r->manifest_max);
    berth_sha256_of(body, len, out->digest);
    is_digest = strchr(reference, ':') != NULL;
    if (is_digest) {
        if (!berth_digest_valid(reference, strlen(reference)))
            return berth_error_set(BERTH_EDIGEST, berth_digest_wellformed(reference, strlen(reference))
                                                      ? "unsupported digest algorithm (berth stores sha256)"
                                                      : "invalid digest");
        if (strcmp(reference, out->digest) != 0)
            return berth_error_set(BERTH_EDIGEST, "the manifest's digest is %s, not %s", out->digest, reference);
    } else if (!berth_tag_valid(reference, strlen(reference))) {
        return berth_error_set(BERTH_EINVALID, "invalid tag");
    }

    if (len == 0) {
        err = berth_error_set(BERTH_EINVALID, "the manifest is empty");
        goto done;
    }
    if ((doc = json_loadb(body, len, 0, &jerr)) == NULL) {
        err = berth_error_set(BERTH_EINVALID, "manifest is not JSON: %s at %d:%d", jerr.text, jerr.line, jerr.column);
        goto done;
    }
    if (!json_is_object(doc)) {
        err = berth_error_set(BERTH_EINVALID, "manifest is not a JSON object");
        goto done;
    }
    reg__media_type(content_type, mt_hdr);
    field = json_object_get(doc, "mediaType");
    if (field != NULL && !json_is_string(field)) {
        err = berth_error_set(BERTH_EINVALID, "mediaType is not a string");
        goto done;
    }
    /* A generic Content-Type (application/json, octet-stream) says nothing:
     * the manifest's own field decides then. */
    if (berth_manifest_type_known(mt_hdr)) {
        if (field != NULL && strcmp(json_string_value(field), mt_hdr) != 0) {
            err = berth_error_set(BERTH_EINVALID, "mediaType %s does not match the Content-Type %s",
                                  json_string_value(field), mt_hdr);
            goto done;
        }
        mt = mt_hdr;
    } else {
        mt = field != NULL ? json_string_value(field) : mt_hdr;
    }
    if (!berth_manifest_type_known(mt)) {
        err = berth_error_set(BERTH_EINVALID, "unsupported manifest media type \"%.100s\"", mt);
        goto done;
    }
    if ((err = reg__validate(r, repo, doc, mt, out)) < 0)
        goto done;

    /* The blob, then what points at it. */
    if ((err = berth_blob_put(r->engine, repo, out->digest, body, len)) < 0)
        goto done;
    rev = json_pack("{s:s, s:I}", "mediaType", mt, "size", (json_int_t)len);
    if (rev == NULL) {
        err = berth_error_set(BERTH_ERR, "out of memory");
        goto done;
    }
    if (out->subject[0] != '\0')
        json_object_set_new(rev, "subject", json_string(out->subject));
    if ((err = reg__revision_key(key, repo, out->digest)) < 0 || (err = reg__put_json(r, key, rev)) < 0)
        goto done;
    if (out->subject[0] != '\0') {
        if ((desc = reg__referrer_descriptor(doc, mt, out->digest, len)) == NULL) {
            err = berth_error_set(BERTH_ERR, "out of memory");
            goto done;
        }
        if ((err = reg__referrer_key(key, repo, out->subject, out->digest)) < 0 ||
            (err = reg__put_json(r, key, desc)) < 0)
            goto done;
    }
    if ((err = reg__catalog_add(r, repo)) < 0)
        goto done;
    if (!is_digest) {
        if ((err = reg__tag_key(key, repo, reference)) < 0 ||
            (err = berth_meta_put(r->storage, key, out->digest, strlen(out->digest))) < 0)
            goto done;
    }

done:
    json_decref(doc);
    json_decref(rev);
    json_decref(desc);
    return err;
}

/* ---- manifest get / delete ------------------------------------------------------ */

/* The digest a tag names, into digest. */
static int reg__tag_get(berth_registry_t *r, const char *repo, const char *tag, char digest[BERTH_DIGEST_LEN])
{
    char key[REG__KEY_SIZE], *buf = NULL;
    size_t len;
    int err;

    if (!berth_tag_valid(tag, strlen(tag)))
        return berth_error_set(BERTH_ENOTFOUND, "invalid tag");
    if ((err = reg__tag_key(key, repo, tag)) < 0 || (err = berth_meta_get(r->storage, key, &buf, &len)) < 0)
        return err;
    while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == ' '))
        len--;
    if (!berth_digest_valid(buf, len)) {
        free(buf);
        return berth_error_set(BERTH_EIO, "tag %s of %s: corrupt value", tag, repo);
    }
    memcpy(digest, buf, len);
    digest[len] = '\0';
    free(buf);
    return 0;
}

/* The revision of `digest` in `repo`, parsed. */
static int reg__revision_get(berth_registry_t *r, const char *repo, const char *digest, json_t **out)
{
    char key[REG__KEY_SIZE], *buf = NULL;
    size_t len;
    int err;

    *out = NULL;
    if ((err = reg__revision_key(key, repo, digest)) < 0 ||
        (err = berth_meta_get(r->storage, key, &buf, &len)) < 0)
        return err;
    *out = json_loadb(buf, len, 0, NULL);
    free(buf);
    if (!json_is_object(*out)) {
        json_decref(*out);
        *out = NULL;
        return berth_error_set(BERTH_EIO, "manifest %s of %s: corrupt revision", digest, repo);
    }
    return 0;
}

static int reg__resolve(berth_registry_t *r, const char *repo, const char *reference, char digest[BERTH_DIGEST_LEN])
{
    if (!berth_name_valid(repo, strlen(repo)))
        return berth_error_set(BERTH_ENOTFOUND, "invalid repository name");
    if (strchr(reference, ':') == NULL)
        return reg__tag_get(r, repo, reference, digest);
    if (!berth_digest_valid(reference, strlen(reference)))
        return berth_error_set(BERTH_ENOTFOUND, "no manifest %s", reference);
    memcpy(digest, reference, strlen(reference) + 1);
    return 0;
}

int berth_manifest_get(berth_registry_t *r, const char *repo, const char *reference, int with_body, berth_manifest_t *m)
{
    json_t *rev = NULL;
    const char *mt;
    size_t got, total = 0;
    uint64_t size;
    int err;

    if (r == NULL || repo == NULL || reference == NULL || m == NULL)
        return berth_error_set(BERTH_EINVALID, "manifest_get: missing argument");
    memset(m, 0, sizeof(*m));
    if ((err = reg__resolve(r, repo, reference, m->digest)) < 0 ||
        (err = reg__revision_get(r, repo, m->digest, &rev)) < 0)
        goto done;
    mt = json_string_value(json_object_get(rev, "mediaType"));
    snprintf(m->media_type, sizeof(m->media_type), "%s", mt != NULL ? mt : BERTH_MT_OCI_MANIFEST);
    if ((err = berth_storage_blob_stat(r->storage, m->digest, &size)) < 0) {
        if (err == BERTH_ENOTFOUND)
            err = berth_error_set(BERTH_EIO, "manifest %s of %s: its blob is gone", m->digest, repo);
        goto done;
    }
    m->size = size;
    if (!with_body)
        goto done;
    if (size > (uint64_t)64 << 20) {
        err = berth_error_set(BERTH_EIO, "manifest %s: blob of %llu bytes", m->digest, (unsigned long long)size);
        goto done;
    }
    if ((m->body = malloc(size + 1)) == NULL) {
        err = berth_error_set(BERTH_ERR, "out of memory");
        goto done;
    }
    while (total < size) {
        if ((err = berth_storage_blob_read(r->storage, m->digest, total, m->body + total, size - total, &got)) < 0)
            goto done;
        if (got == 0) {
            err = berth_error_set(BERTH_EIO, "manifest %s: blob ended early", m->digest);
            goto done;
        }
        total += got;
    }
    m->body[size] = '\0';

done:
    if (err < 0) {
        free(m->body);
        m->body = NULL;
    }
    json_decref(rev);
    return err;
}

/* ---- listings ------------------------------------------------------------------- */

typedef struct reg__strs {
    char **v;
    size_t n, cap;
    size_t strip; /* bytes of prefix to drop from each key */
    int names;    /* keep only valid repository names (else: valid tags) */
} reg__strs_t;

static void reg__strs_clear(reg__strs_t *s)
{
    for (size_t i = 0; i < s->n; i++)
        free(s->v[i]);
    free(s->v);
    s->v = NULL;
    s->n = s->cap = 0;
}

static int reg__strs_push(reg__strs_t *s, const char *v)
{
    if (s->n == s->cap) {
        size_t cap = s->cap != 0 ? s->cap * 2 : 32;
        char **nv = realloc(s->v, cap * sizeof(*nv));
        if (nv == NULL)
            return berth_error_set(BERTH_ERR, "out of memory");
        s->v = nv;
        s->cap = cap;
    }
    if ((s->v[s->n] = strdup(v)) == NULL)
        return berth_error_set(BERTH_ERR, "out of memory");
    s->n++;
    return 0;
}

static int reg__strs_collect(void *ctx, const char *key)
{
    reg__strs_t *s = ctx;
    const char *v = key + s->strip;

    if (strlen(key) <= s->strip)
        return 0;
    if (s->names ? !berth_name_valid(v, strlen(v)) : !berth_tag_valid(v, strlen(v)))
        return 0;
    return reg__strs_push(s, v);
}

static int reg__strcmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

void berth_page_clear(berth_page_t *p)
{
    if (p == NULL)
        return;
    for (size_t i = 0; i < p->n; i++)
        free(p->items[i]);
    free(p->items);
    memset(p, 0, sizeof(*p));
}

/* Lists `prefix`, sorts, and moves the page after `last` of at most `n`
 * entries into *out. */
static int reg__page(berth_registry_t *r, const char *prefix, int names, const char *last, size_t n, berth_page_t *out)
{
    reg__strs_t s = {.strip = strlen(prefix), .names = names};
    size_t start = 0;
    int err;

    memset(out, 0, sizeof(*out));
    if ((err = berth_meta_list(r->storage, prefix, reg__strs_collect, &s)) < 0)
        goto done;
    if (s.n > 1)
        qsort(s.v, s.n, sizeof(*s.v), reg__strcmp);
    if (last != NULL)
        while (start < s.n && strcmp(s.v[start], last) <= 0)
            start++;
    size_t take = s.n - start < n ? s.n - start : n;
    if ((out->items = calloc(take != 0 ? take : 1, sizeof(*out->items))) == NULL) {
        err = berth_error_set(BERTH_ERR, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < take; i++) {
        out->items[i] = s.v[start + i];
        s.v[start + i] = NULL;
    }
    out->n = take;
    out->more = start + take < s.n;

done:
    for (size_t i = 0; i < s.n; i++)
        free(s.v[i]);
    free(s.v);
    return err;
}

static int reg__repo_known(berth_registry_t *r, const char *repo)
{
    char key[REG__KEY_SIZE], *buf = NULL;
    size_t len;
    int err;

    if (!berth_name_valid(repo, strlen(repo)))
        return berth_error_set(BERTH_ENOTFOUND, "invalid repository name");
    if ((err = reg__key(key, "catalog/%s", repo)) < 0 ||
        (err = berth_meta_get(r->storage, key, &buf, &len)) < 0)
        return err == BERTH_ENOTFOUND ? berth_error_set(BERTH_ENOTFOUND, "repository %s is not known", repo) : err;
    free(buf);
    return 0;
}

int berth_tags_list(berth_registry_t *r, const char *repo, const char *last, size_t n, berth_page_t *out)
{
    char prefix[REG__KEY_SIZE];
    int err;

    if (r == NULL || repo == NULL || out == NULL)
        return berth_error_set(BERTH_EINVALID, "tags_list: missing argument");
    memset(out, 0, sizeof(*out));
    if ((err = reg__repo_known(r, repo)) < 0 || (err = reg__key(prefix, "repositories/%s/_manifests/tags/", repo)) < 0)
        return err;
    return reg__page(r, prefix, 0, last, n, out);
}

int berth_catalog_list(berth_registry_t *r, const char *last, size_t n, berth_page_t *out)
{
    if (r == NULL || out == NULL)
        return berth_error_set(BERTH_EINVALID, "catalog_list: missing argument");
    return reg__page(r, "catalog/", 1, last, n, out);
}

/* ---- delete --------------------------------------------------------------------- */

int berth_manifest_delete(berth_registry_t *r, const char *repo, const char *reference)
{
    char digest[BERTH_DIGEST_LEN], key[REG__KEY_SIZE], prefix[REG__KEY_SIZE], tagged[BERTH_DIGEST_LEN];
    reg__strs_t tags = {.names = 0};
    json_t *rev = NULL;
    const char *subject;
    int err;

    if (r == NULL || repo == NULL || reference == NULL)
        return berth_error_set(BERTH_EINVALID, "manifest_delete: missing argument");
    if (!berth_name_valid(repo, strlen(repo)))
        return berth_error_set(BERTH_ENOTFOUND, "invalid repository name");
    if (strchr(reference, ':') == NULL) {
        if (!berth_tag_valid(reference, strlen(reference)))
            return berth_error_set(BERTH_ENOTFOUND, "invalid tag");
        if ((err = reg__tag_key(key, repo, reference)) < 0)
            return err;
        return berth_meta_delete(r->storage, key);
    }
    if ((err = reg__resolve(r, repo, reference, digest)) < 0 || (err = reg__revision_get(r, repo, digest, &rev)) < 0)
        goto done;

    /* Tags first, the revision last: a crash half way leaves a manifest
     * that a repeated DELETE finds and finishes. */
    if ((err = reg__key(prefix, "repositories/%s/_manifests/tags/", repo)) < 0)
        goto done;
    tags.strip = strlen(prefix);
    if ((err = berth_meta_list(r->storage, prefix, reg__strs_collect, &tags)) < 0)
        goto done;
    for (size_t i = 0; i < tags.n; i++) {
        if (reg__tag_get(r, repo, tags.v[i], tagged) != 0 || strcmp(tagged, digest) != 0)
            continue;
        if ((err = reg__tag_key(key, repo, tags.v[i])) < 0)
            goto done;
        if ((err = berth_meta_delete(r->storage, key)) < 0 && err != BERTH_ENOTFOUND)
            goto done;
    }
    subject = json_string_value(json_object_get(rev, "subject"));
    if (subject != NULL && berth_digest_valid(subject, strlen(subject))) {
        if ((err = reg__referrer_key(key, repo, subject, digest)) < 0)
            goto done;
        if ((err = berth_meta_delete(r->storage, key)) < 0 && err != BERTH_ENOTFOUND)
            goto done;
    }
    if ((err = reg__revision_key(key, repo, digest)) < 0)
        goto done;
    err = berth_meta_delete(r->storage, key);

done:
    reg__strs_clear(&tags);
    json_decref(rev);
    return err;
}

int berth_registry_blob_delete(berth_registry_t *r, const char *repo, const char *digest)
{
    int err;

    if (r == NULL || repo == NULL || digest == NULL)
        return berth_error_set(BERTH_EINVALID, "blob_delete: missing argument");
    if (!berth_name_valid(repo, strlen(repo)) || !berth_digest_valid(digest, strlen(digest)))
        return berth_error_set(BERTH_ENOTFOUND, "no blob %s", digest);
    if ((err = berth_link_get(r->storage, repo, digest)) < 0)
        return err;
    return berth_link_remove(r->storage, repo, digest);
}

/* ---- referrers ------------------------------------------------------------------- */

typedef struct reg__referrers {
    berth_registry_t *r;
    const char *artifact_type;
    json_t *list;
    int err;
} reg__referrers_t;

static int reg__referrer_collect(void *ctx, const char *key)
{
    reg__referrers_t *c = ctx;
    char *buf = NULL;
    size_t len;
    json_t *d, *at;
    int err;

    if ((err = berth_meta_get(c->r->storage, key, &buf, &len)) < 0)
        return err == BERTH_ENOTFOUND ? 0 : err; /* deleted while we listed */
    d = json_loadb(buf, len, 0, NULL);
    free(buf);
    if (!json_is_object(d)) {
        json_decref(d);
        berth_log_warn("referrers: skipping corrupt entry %s", key);
        return 0;
    }
    at = json_object_get(d, "artifactType");
    if (c->artifact_type != NULL && (!json_is_string(at) || strcmp(json_string_value(at), c->artifact_type) != 0)) {
        json_decref(d);
        return 0;
    }
    if (json_array_append_new(c->list, d) < 0)
        return berth_error_set(BERTH_ERR, "out of memory");
    return 0;
}

static int reg__by_digest(const void *a, const void *b)
{
    json_t *x = *(json_t *const *)a, *y = *(json_t *const *)b;
    const char *dx = json_string_value(json_object_get(x, "digest")),
               *dy = json_string_value(json_object_get(y, "digest"));

    return strcmp(dx != NULL ? dx : "", dy != NULL ? dy : "");
}

int berth_referrers_list(berth_registry_t *r, const char *repo, const char *subject, const char *artifact_type,
                         json_t **index)
{
    char prefix[REG__KEY_SIZE];
    reg__referrers_t c = {.r = r, .artifact_type = artifact_type};
    json_t *sorted = NULL;
    int err = 0;

    if (r == NULL || repo == NULL || subject == NULL || index == NULL)
        return berth_error_set(BERTH_EINVALID, "referrers_list: missing argument");
    *index = NULL;
    if ((c.list = json_array()) == NULL)
        return berth_error_set(BERTH_ERR, "out of memory");
    /* A subject berth cannot store has no referrers here. */
    if (berth_name_valid(repo, strlen(repo)) && berth_digest_valid(subject, strlen(subject))) {
        if ((err = reg__key(prefix, "repositories/%s/_referrers/sha256/%s/", repo, reg__hex(subject))) < 0 ||
            (err = berth_meta_list(r->storage, prefix, reg__referrer_collect, &c)) < 0)
            goto done;
    }
    /* A stable order, whatever order the storage lists in. */
    size_t n = json_array_size(c.list);
    json_t **v = calloc(n != 0 ? n : 1, sizeof(*v));
    if (v == NULL || (sorted = json_array()) == NULL) {
        free(v);
        err = berth_error_set(BERTH_ERR, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < n; i++)
        v[i] = json_array_get(c.list, i);
    qsort(v, n, sizeof(*v), reg__by_digest);
    for (size_t i = 0; i < n; i++)
        json_array_append(sorted, v[i]);
    free(v);
    *index = json_pack("{s:i, s:s, s:o}", "schemaVersion", 2, "mediaType", BERTH_MT_OCI_INDEX, "manifests", sorted);
    sorted = NULL;
    if (*index == NULL)
        err = berth_error_set(BERTH_ERR, "out of memory");

done:
    json_decref(c.list);
    json_decref(sorted);
    return err;
}

/* ---- references (gc) -------------------------------------------------------------- */

static int reg__ref_cb(json_t *d, berth_meta_cb cb, void *ctx)
{
    const char *s = json_string_value(json_object_get(d, "digest"));

    if (s == NULL || !berth_digest_valid(s, strlen(s)))
        return 0;
    return cb(ctx, s);
}

int berth_manifest_references(const char *body, size_t len, berth_meta_cb cb, void *ctx)
{
    json_t *doc = json_loadb(body, len, 0, NULL), *v;
    size_t i;
    int err = 0;

    if (!json_is_object(doc)) {
        json_decref(doc);
        return berth_error_set(BERTH_EINVALID, "manifest does not parse");
    }
    if ((err = reg__ref_cb(json_object_get(doc, "config"), cb, ctx)) != 0)
        goto done;
    json_array_foreach(json_object_get(doc, "layers"), i, v)
    {
        if ((err = reg__ref_cb(v, cb, ctx)) != 0)
            goto done;
    }
    json_array_foreach(json_object_get(doc, "manifests"), i, v)
    {
        if ((err = reg__ref_cb(v, cb, ctx)) != 0)
            goto done;
    }

done:
    json_decref(doc);
    return err;
}

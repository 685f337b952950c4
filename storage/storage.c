/*
 * The storage wrappers: the one door from the engine into a backend. They
 * check the contract (arguments, optional methods), inject the faults tests
 * ask for, then call the backend. Backends are picked by name from a small
 * static registry.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/log.h"
#include "core/validate.h"
#include "storage/fs/fs.h"
#include "storage/s3/s3.h"
#include "storage/storage.h"

/* ---- fault injection ---------------------------------------------------- */

#define FAULT__MAX 16
#define FAULT__METHOD_MAX 32

typedef struct fault__spec {
    char method[FAULT__METHOD_MAX];
    int code;
    long remaining; /* < 0: fails forever */
} fault__spec_t;

/* Faults are rare and only set by tests, but the wrappers run on every
 * worker thread, so the table and its counters sit behind one mutex. The
 * `any` flag keeps the common path (no faults at all) to one relaxed load. */
static pthread_mutex_t fault__lock = PTHREAD_MUTEX_INITIALIZER;
static fault__spec_t fault__specs[FAULT__MAX];
static size_t fault__n;
static int fault__loaded;
static int fault__any;

/* Parses one "<method>:<code>[:<count>]" of length len into *out. */
static int fault__parse_one(const char *s, size_t len, fault__spec_t *out)
{
    char tmp[128];
    char *colon, *end;
    long code, count = -1;

    if (len == 0 || len >= sizeof(tmp))
        return BERTH_EINVALID;
    memcpy(tmp, s, len);
    tmp[len] = '\0';
    if ((colon = strchr(tmp, ':')) == NULL || colon == tmp || (size_t)(colon - tmp) >= FAULT__METHOD_MAX)
        return BERTH_EINVALID;
    *colon = '\0';
    errno = 0;
    code = strtol(colon + 1, &end, 10);
    if (errno != 0 || end == colon + 1 || code >= 0 || code < -1000)
        return BERTH_EINVALID;
    if (*end == ':') {
        char *cend;
        errno = 0;
        count = strtol(end + 1, &cend, 10);
        if (errno != 0 || cend == end + 1 || *cend != '\0' || count < 0)
            return BERTH_EINVALID;
    } else if (*end != '\0') {
        return BERTH_EINVALID;
    }
    memcpy(out->method, tmp, (size_t)(colon - tmp) + 1);
    out->code = (int)code;
    out->remaining = count;
    return 0;
}

/* Replaces the table; the caller holds fault__lock. Malformed specs are
 * logged and skipped: a typo in a test's environment should be visible but
 * not stop the server. */
static void fault__load_locked(const char *spec)
{
    const char *p = spec;

    fault__n = 0;
    while (p != NULL && *p != '\0') {
        const char *comma = strchr(p, ',');
        size_t len = comma != NULL ? (size_t)(comma - p) : strlen(p);
        if (len != 0 && fault__n < FAULT__MAX) {
            if (fault__parse_one(p, len, &fault__specs[fault__n]) == 0)
                fault__n++;
            else
                berth_log_warn("BERTH_FAULT: ignoring malformed spec \"%.*s\"", (int)len, p);
        }
        p = comma != NULL ? comma + 1 : NULL;
    }
    fault__loaded = 1;
    __atomic_store_n(&fault__any, fault__n != 0, __ATOMIC_RELEASE);
}

void berth_storage_fault_reset(const char *spec)
{
    pthread_mutex_lock(&fault__lock);
    fault__load_locked(spec);
    pthread_mutex_unlock(&fault__lock);
}

static void fault__load_env(void)
{
    pthread_mutex_lock(&fault__lock);
    /* An explicit berth_storage_fault_reset() wins over the environment. */
    if (!fault__loaded)
        fault__load_locked(getenv("BERTH_FAULT"));
    pthread_mutex_unlock(&fault__lock);
}

/* Returns the injected code for `method`, or 0 to call the backend. */
static int fault__check(const char *method)
{
    int code = 0;

    if (!__atomic_load_n(&fault__any, __ATOMIC_ACQUIRE))
        return 0;
    pthread_mutex_lock(&fault__lock);
    for (size_t i = 0; i < fault__n; i++) {
        fault__spec_t *f = &fault__specs[i];
        if (strcmp(f->method, method) != 0 || f->remaining == 0)
            continue;
        if (f->remaining > 0)
            f->remaining--;
        code = f->code;
        break;
    }
    pthread_mutex_unlock(&fault__lock);
    if (code != 0)
        berth_error_set(code, "%s: injected fault (%s)", method, berth_error_name(code));
    return code;
}

/* ---- registry ------------------------------------------------------------ */

static int storage__open_fs(berth_storage_t **out, const berth_config_t *cfg)
{
    berth_fs_options_t o = {.root = cfg->storage_fs_root, .sync = cfg->storage_fs_sync};

    if (o.root == NULL)
        return berth_error_set(BERTH_EINVALID, "storage.filesystem.rootdirectory is not set");
    return berth_storage_fs_new(out, &o);
}

/* The credentials fall back to the environment, as in the AWS SDKs. */
static int storage__open_s3(berth_storage_t **out, const berth_config_t *cfg)
{
    berth_s3_options_t o = {
        .bucket = cfg->storage_s3_bucket,
        .region = cfg->storage_s3_region,
        .regionendpoint = cfg->storage_s3_regionendpoint,
        .accesskey = cfg->storage_s3_accesskey != NULL ? cfg->storage_s3_accesskey : getenv("AWS_ACCESS_KEY_ID"),
        .secretkey = cfg->storage_s3_secretkey != NULL ? cfg->storage_s3_secretkey : getenv("AWS_SECRET_ACCESS_KEY"),
        .rootdirectory = cfg->storage_s3_rootdirectory,
        .secure = cfg->storage_s3_secure,
        .chunksize = cfg->storage_s3_chunksize,
        .connect_timeout_ms = cfg->storage_s3_connecttimeout_ms,
        .timeout_ms = cfg->storage_s3_timeout_ms,
        .max_retries = cfg->storage_s3_maxretries,
        .redirect = cfg->storage_s3_redirect,
    };

    if (o.bucket == NULL)
        return berth_error_set(BERTH_EINVALID, "storage.s3.bucket is not set");
    return berth_storage_s3_new(out, &o);
}

static const struct {
    const char *name;
    int (*open)(berth_storage_t **out, const berth_config_t *cfg);
} storage__registry[] = {
    {"filesystem", storage__open_fs},
    {"s3", storage__open_s3},
};

int berth_storage_open(berth_storage_t **out, const berth_config_t *cfg)
{
    if (out == NULL || cfg == NULL)
        return berth_error_set(BERTH_EINVALID, "storage_open: missing argument");
    *out = NULL;
    fault__load_env();
    if (cfg->storage_driver == NULL)
        return berth_error_set(BERTH_EINVALID, "storage: no driver configured");
    for (size_t i = 0; i < sizeof(storage__registry) / sizeof(storage__registry[0]); i++) {
        if (strcmp(storage__registry[i].name, cfg->storage_driver) == 0)
            return storage__registry[i].open(out, cfg);
    }
    return berth_error_set(BERTH_EINVALID, "storage: unknown driver \"%s\"", cfg->storage_driver);
}

void berth_storage_free(berth_storage_t *b)
{
    if (b != NULL && b->free != NULL)
        b->free(b);
}

/* ---- wrappers ------------------------------------------------------------ */

static int storage__id_ok(const char *id)
{
    return id != NULL && berth_id_valid(id, strlen(id));
}

static int storage__digest_ok(const char *digest)
{
    return digest != NULL && berth_digest_valid(digest, strlen(digest));
}

static int storage__repo_ok(const char *repo)
{
    return repo != NULL && berth_name_valid(repo, strlen(repo));
}

static int storage__unsupported(const berth_storage_t *b, const char *method)
{
    return berth_error_set(BERTH_ERR, "%s: not supported by the %s backend", method,
                           b->name != NULL ? b->name : "unnamed");
}

/* The common prologue of every wrapper: argument check, method presence,
 * injected fault. `ok` is the argument check's verdict. */
#define STORAGE__ENTER(b, method, ok)                                                                                  \
    do {                                                                                                               \
        int fault_;                                                                                                    \
        if ((b) == NULL || !(ok))                                                                                      \
            return berth_error_set(BERTH_EINVALID, "storage " #method ": invalid argument");                           \
        if ((b)->method == NULL)                                                                                       \
            return storage__unsupported((b), #method);                                                                 \
        if ((fault_ = fault__check(#method)) != 0)                                                                     \
            return fault_;                                                                                             \
    } while (0)

int berth_storage_record_get(berth_storage_t *b, const char *id, char **buf, size_t *len)
{
    STORAGE__ENTER(b, record_get, storage__id_ok(id) && buf != NULL && len != NULL);
    return b->record_get(b, id, buf, len);
}

int berth_storage_record_put(berth_storage_t *b, const char *id, const char *buf, size_t len)
{
    STORAGE__ENTER(b, record_put, storage__id_ok(id) && (buf != NULL || len == 0));
    return b->record_put(b, id, buf, len);
}

int berth_storage_record_list(berth_storage_t *b, berth_storage_list_cb cb, void *ctx)
{
    STORAGE__ENTER(b, record_list, cb != NULL);
    return b->record_list(b, cb, ctx);
}

int berth_storage_upload_create(berth_storage_t *b, berth_record_t *rec)
{
    STORAGE__ENTER(b, upload_create, rec != NULL && storage__id_ok(rec->id));
    return b->upload_create(b, rec);
}

int berth_storage_upload_write(berth_storage_t *b, berth_record_t *rec, uint64_t offset, const void *buf, size_t len)
{
    STORAGE__ENTER(b, upload_write, rec != NULL && storage__id_ok(rec->id) && (buf != NULL || len == 0));
    return b->upload_write(b, rec, offset, buf, len);
}

int berth_storage_upload_commit(berth_storage_t *b, berth_record_t *rec, const char *digest)
{
    STORAGE__ENTER(b, upload_commit, rec != NULL && storage__id_ok(rec->id) && storage__digest_ok(digest));
    return b->upload_commit(b, rec, digest);
}

int berth_storage_upload_remove(berth_storage_t *b, const char *id, berth_record_t *rec)
{
    STORAGE__ENTER(b, upload_remove, storage__id_ok(id));
    return b->upload_remove(b, id, rec);
}

int berth_storage_blob_stat(berth_storage_t *b, const char *digest, uint64_t *size)
{
    STORAGE__ENTER(b, blob_stat, storage__digest_ok(digest) && size != NULL);
    return b->blob_stat(b, digest, size);
}

int berth_storage_blob_read(berth_storage_t *b, const char *digest, uint64_t offset, void *buf, size_t len, size_t *got)
{
    STORAGE__ENTER(b, blob_read, storage__digest_ok(digest) && (buf != NULL || len == 0) && got != NULL);
    return b->blob_read(b, digest, offset, buf, len, got);
}

int berth_storage_blob_remove(berth_storage_t *b, const char *digest)
{
    STORAGE__ENTER(b, blob_remove, storage__digest_ok(digest));
    return b->blob_remove(b, digest);
}

int berth_storage_link_put(berth_storage_t *b, const char *repo, const char *digest)
{
    STORAGE__ENTER(b, link_put, storage__repo_ok(repo) && storage__digest_ok(digest));
    return b->link_put(b, repo, digest);
}

int berth_storage_link_get(berth_storage_t *b, const char *repo, const char *digest)
{
    STORAGE__ENTER(b, link_get, storage__repo_ok(repo) && storage__digest_ok(digest));
    return b->link_get(b, repo, digest);
}

int berth_storage_link_remove(berth_storage_t *b, const char *repo, const char *digest)
{
    STORAGE__ENTER(b, link_remove, storage__repo_ok(repo) && storage__digest_ok(digest));
    return b->link_remove(b, repo, digest);
}

/* ---- version 2 ----------------------------------------------------------- */

/* A backend of an older version may not even have the slot: look at
 * `version` before the pointer. */
int berth_storage_upload_read(berth_storage_t *b, berth_record_t *rec, uint64_t offset, void *buf, size_t len,
                              size_t *got)
{
    if (b != NULL && b->version < 2)
        return storage__unsupported(b, "upload_read");
    STORAGE__ENTER(b, upload_read, rec != NULL && storage__id_ok(rec->id) && (buf != NULL || len == 0) && got != NULL);
    return b->upload_read(b, rec, offset, buf, len, got);
}

int berth_storage_upload_parts_check(berth_storage_t *b, uint64_t part_size, uint64_t total_parts)
{
    if (b == NULL || part_size == 0 || total_parts == 0)
        return berth_error_set(BERTH_EINVALID, "storage upload_parts_check: invalid argument");
    if (b->version < 2 || b->upload_parts_check == NULL)
        return 0;
    STORAGE__ENTER(b, upload_parts_check, 1);
    return b->upload_parts_check(b, part_size, total_parts);
}

/* ---- version 3 ----------------------------------------------------------- */

int berth_meta_key_valid(const char *key, size_t len)
{
    size_t comp = 0; /* length of the current component */

    if (key == NULL || len == 0 || len > BERTH_META_KEY_MAX)
        return 0;
    for (size_t i = 0; i <= len; i++) {
        char c = i < len ? key[i] : '/';
        if (c == '/') {
            if (comp == 0)
                return 0;
            if ((comp == 1 && key[i - 1] == '.') || (comp == 2 && key[i - 1] == '.' && key[i - 2] == '.'))
                return 0;
            comp = 0;
            continue;
        }
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
              c == '-'))
            return 0;
        comp++;
    }
    return 1;
}

static int storage__key_ok(const char *key)
{
    return key != NULL && berth_meta_key_valid(key, strlen(key));
}

/* "" or a valid key followed by '/'. */
static int storage__prefix_ok(const char *prefix)
{
    size_t len;

    if (prefix == NULL)
        return 0;
    if ((len = strlen(prefix)) == 0)
        return 1;
    return prefix[len - 1] == '/' && berth_meta_key_valid(prefix, len - 1);
}

#define STORAGE__V3(b, method)                                                                                         \
    do {                                                                                                               \
        if ((b) != NULL && (b)->version < 3)                                                                           \
            return storage__unsupported((b), #method);                                                                 \
    } while (0)

int berth_storage_meta_get(berth_storage_t *b, const char *key, char **buf, size_t *len)
{
    STORAGE__V3(b, meta_get);
    STORAGE__ENTER(b, meta_get, storage__key_ok(key) && buf != NULL && len != NULL);
    return b->meta_get(b, key, buf, len);
}

int berth_storage_meta_put(berth_storage_t *b, const char *key, const char *buf, size_t len)
{
    STORAGE__V3(b, meta_put);
    STORAGE__ENTER(b, meta_put, storage__key_ok(key) && (buf != NULL || len == 0) && len <= BERTH_META_VALUE_MAX);
    return b->meta_put(b, key, buf, len);
}

int berth_storage_meta_delete(berth_storage_t *b, const char *key)
{
    STORAGE__V3(b, meta_delete);
    STORAGE__ENTER(b, meta_delete, storage__key_ok(key));
    return b->meta_delete(b, key);
}

int berth_storage_meta_list(berth_storage_t *b, const char *prefix, berth_storage_list_cb cb, void *ctx)
{
    STORAGE__V3(b, meta_list);
    STORAGE__ENTER(b, meta_list, storage__prefix_ok(prefix) && cb != NULL);
    return b->meta_list(b, prefix, cb, ctx);
}

int berth_storage_blob_list(berth_storage_t *b, berth_storage_blob_cb cb, void *ctx)
{
    STORAGE__V3(b, blob_list);
    STORAGE__ENTER(b, blob_list, cb != NULL);
    return b->blob_list(b, cb, ctx);
}

int berth_storage_link_list(berth_storage_t *b, berth_storage_link_cb cb, void *ctx)
{
    STORAGE__V3(b, link_list);
    STORAGE__ENTER(b, link_list, cb != NULL);
    return b->link_list(b, cb, ctx);
}

/* ---- version 4 ----------------------------------------------------------- */

int berth_storage_blob_url(berth_storage_t *b, const char *digest, char *url, size_t cap)
{
    if (b != NULL && (b->version < 4 || b->blob_url == NULL))
        return 1;
    STORAGE__ENTER(b, blob_url, storage__digest_ok(digest) && url != NULL && cap > 0);
    return b->blob_url(b, digest, url, cap);
}

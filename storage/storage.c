/*
 * The storage wrappers: the one door from the engine into a backend. They
 * check the contract (arguments, optional methods), inject the faults tests
 * ask for, then call the backend. Backends are picked by name from a small
 * static registry.
 */
#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/error.h"
#include "core/log.h"
#include "core/validate.h"
#include "storage/fs/fs.h"
#include "storage/s3/s3.h"
#include "storage/storage.h"

/* ---- fault injection ---------------------------------------------------- */

#define FAULT__MAX 16
#define FAULT__METHOD_MAX 32
#define FAULT__PREFIX_MAX 256

typedef struct fault__spec {
    char method[FAULT__METHOD_MAX];
    char prefix[FAULT__PREFIX_MAX]; /* "" for every call */
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

/* Parses "<code>[:<count>]" into *out. */
static int fault__parse_code(const char *s, fault__spec_t *out)
{
    char *end, *cend;
    long code, count = -1;

    errno = 0;
    code = strtol(s, &end, 10);
    if (errno != 0 || end == s || code >= 0 || code < -1000)
        return BERTH_EINVALID;
    if (*end == ':') {
        errno = 0;
        count = strtol(end + 1, &cend, 10);
        if (errno != 0 || cend == end + 1 || *cend != '\0' || count < 0)
            return BERTH_EINVALID;
    } else if (*end != '\0') {
        return BERTH_EINVALID;
    }
    out->code = (int)code;
    out->remaining = count;
    return 0;
}

/* Parses one "<method>[@<prefix>]:<code>[:<count>]" of length len. */
static int fault__parse_one(const char *s, size_t len, fault__spec_t *out)
{
    char tmp[FAULT__METHOD_MAX + FAULT__PREFIX_MAX + 64];
    char *colon, *at;

    if (len == 0 || len >= sizeof(tmp))
        return BERTH_EINVALID;
    memcpy(tmp, s, len);
    tmp[len] = '\0';
    /* A prefix is a key's start: no ':' in it, so the first ':' ends it. */
    if ((colon = strchr(tmp, ':')) == NULL || colon == tmp)
        return BERTH_EINVALID;
    *colon = '\0';
    out->prefix[0] = '\0';
    if ((at = strchr(tmp, '@')) != NULL) {
        if (strlen(at + 1) >= FAULT__PREFIX_MAX)
            return BERTH_EINVALID;
        memcpy(out->prefix, at + 1, strlen(at + 1) + 1);
        *at = '\0';
    }
    if (tmp[0] == '\0' || strlen(tmp) >= FAULT__METHOD_MAX)
        return BERTH_EINVALID;
    memcpy(out->method, tmp, strlen(tmp) + 1);
    return fault__parse_code(colon + 1, out);
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

/* BERTH_FAULT_DELAY="<method>:<ms>[,...]": the wrappers of those methods
 * sleep that long before calling the backend (slow storage, for tests).
 * Read from the environment once, before any wrapper runs. */
static char fault__delay_spec[256];

static void fault__delay(const char *method)
{
    size_t mlen = strlen(method);

    for (const char *p = fault__delay_spec; *p != '\0';) {
        const char *comma = strchr(p, ',');
        if (strncmp(p, method, mlen) == 0 && p[mlen] == ':') {
            long ms = strtol(p + mlen + 1, NULL, 10);
            struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
            nanosleep(&ts, NULL);
            return;
        }
        p = comma != NULL ? comma + 1 : "";
    }
}

static void fault__load_env(void)
{
    pthread_mutex_lock(&fault__lock);
    /* An explicit berth_storage_fault_reset() wins over the environment. */
    if (!fault__loaded) {
        const char *delay = getenv("BERTH_FAULT_DELAY");
        snprintf(fault__delay_spec, sizeof(fault__delay_spec), "%s", delay != NULL ? delay : "");
        fault__load_locked(getenv("BERTH_FAULT"));
    }
    pthread_mutex_unlock(&fault__lock);
}

/* The injected code for `method` on `key`, or 0 to call the backend. The
 * key is the object key (obj_list: the prefix), the session id (data_*),
 * the digest (blob_*), or NULL (writer_*, listings): a spec with a prefix
 * matches only a key starting with it. */
static int fault__hit(const char *method, const char *key)
{
    int code = 0;

    if (fault__delay_spec[0] != '\0')
        fault__delay(method);
    if (!__atomic_load_n(&fault__any, __ATOMIC_ACQUIRE))
        return 0;
    pthread_mutex_lock(&fault__lock);
    for (size_t i = 0; i < fault__n; i++) {
        fault__spec_t *f = &fault__specs[i];
        size_t plen = strlen(f->prefix);
        if (strcmp(f->method, method) != 0 || f->remaining == 0)
            continue;
        if (plen > 0 && (key == NULL || strncmp(key, f->prefix, plen) != 0))
            continue;
        if (f->remaining > 0)
            f->remaining--;
        code = f->code;
        break;
    }
    pthread_mutex_unlock(&fault__lock);
    return code;
}

static int fault__fail(const char *method, int code)
{
    return berth_error_set(code, "%s: injected fault (%s)", method, berth_error_name(code));
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
    if (b != NULL && b->methods != NULL && b->methods->free != NULL)
        b->methods->free(b);
}

const char *berth_storage_name(const berth_storage_t *b)
{
    if (b == NULL || b->methods == NULL || b->methods->name == NULL)
        return "unnamed";
    return b->methods->name;
}

/* ---- argument checks ---------------------------------------------------- */

int berth_obj_key_valid(const char *key, size_t len)
{
    size_t comp = 0; /* length of the current component */

    if (key == NULL || len == 0 || len > BERTH_OBJ_KEY_MAX)
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
    return key != NULL && berth_obj_key_valid(key, strlen(key));
}

/* "" or a valid key followed by '/'. */
static int storage__prefix_ok(const char *prefix)
{
    size_t len;

    if (prefix == NULL)
        return 0;
    if ((len = strlen(prefix)) == 0)
        return 1;
    return prefix[len - 1] == '/' && berth_obj_key_valid(prefix, len - 1);
}

/* A version handed back must be one a backend could have written. */
static int storage__version_ok(const berth_version_t *v)
{
    return v == NULL || memchr(v->tag, '\0', sizeof(v->tag)) != NULL;
}

static int storage__id_ok(const char *id)
{
    return id != NULL && berth_id_valid(id, strlen(id));
}

static int storage__digest_ok(const char *digest)
{
    return digest != NULL && berth_digest_valid(digest, strlen(digest));
}

static int storage__unsupported(const berth_storage_t *b, const char *method)
{
    return berth_error_set(BERTH_ERR, "%s: not supported by the %s backend", method, berth_storage_name(b));
}

/* The common prologue of every wrapper: argument check, method presence,
 * injected fault. `ok` is the argument check's verdict, `key` what a
 * fault's prefix is matched against. */
#define STORAGE__ENTER(b, method, ok, key)                                                                             \
    do {                                                                                                               \
        int fault_;                                                                                                    \
        if ((b) == NULL || (b)->methods == NULL || !(ok))                                                              \
            return berth_error_set(BERTH_EINVALID, "storage " #method ": invalid argument");                           \
        if ((b)->methods->method == NULL)                                                                              \
            return storage__unsupported((b), #method);                                                                 \
        if ((fault_ = fault__hit(#method, (key))) != 0)                                                                \
            return fault__fail(#method, fault_);                                                                       \
    } while (0)

/* ---- objects -------------------------------------------------------------- */

int berth_storage_obj_get(berth_storage_t *b, const char *key, char **buf, size_t *len, berth_version_t *ver)
{
    STORAGE__ENTER(b, obj_get, storage__key_ok(key) && buf != NULL && len != NULL, key);
    *buf = NULL;
    *len = 0;
    if (ver != NULL)
        ver->tag[0] = '\0';
    return b->methods->obj_get(b, key, buf, len, ver);
}

int berth_storage_obj_put(berth_storage_t *b, const char *key, const void *buf, size_t len,
                          const berth_version_t *expect, berth_version_t *ver)
{
    STORAGE__ENTER(b, obj_put, storage__key_ok(key) && (buf != NULL || len == 0) && storage__version_ok(expect), key);
    if (len > BERTH_OBJ_VALUE_MAX)
        return berth_error_set(BERTH_ETOOLARGE, "storage obj_put %s: %zu bytes, at most %d", key, len,
                               BERTH_OBJ_VALUE_MAX);
    /* ver is not cleared first: it may be *expect itself (a caller keeping
     * the version of what it last wrote), read by the backend before it
     * writes the new one. */
    return b->methods->obj_put(b, key, buf, len, expect, ver);
}

int berth_storage_obj_delete(berth_storage_t *b, const char *key, const berth_version_t *expect)
{
    STORAGE__ENTER(b, obj_delete, storage__key_ok(key) && storage__version_ok(expect), key);
    return b->methods->obj_delete(b, key, expect);
}

int berth_storage_obj_list(berth_storage_t *b, const char *prefix, berth_obj_cb cb, void *ctx)
{
    STORAGE__ENTER(b, obj_list, storage__prefix_ok(prefix) && cb != NULL, prefix);
    return b->methods->obj_list(b, prefix, cb, ctx);
}

/* ---- session data ------------------------------------------------------- */

static int storage__layout_ok(const berth_layout_t *l)
{
    return l != NULL && (l->unit == 0 || (l->units > 0 && l->units <= UINT64_MAX / l->unit));
}

int berth_storage_data_create(berth_storage_t *b, const char *id, const berth_layout_t *layout, char **state)
{
    STORAGE__ENTER(b, data_create, storage__id_ok(id) && storage__layout_ok(layout) && state != NULL, id);
    *state = NULL;
    return b->methods->data_create(b, id, layout, state);
}

int berth_storage_data_open(berth_storage_t *b, const char *id, const char *state, uint64_t offset, uint64_t hint,
                            berth_writer_t **out)
{
    int err;

    STORAGE__ENTER(b, data_open, storage__id_ok(id) && out != NULL, id);
    *out = NULL;
    if ((err = b->methods->data_open(b, id, state, offset, hint, out)) == 0)
        assert(*out != NULL && (*out)->storage == b);
    return err;
}

int berth_storage_writer_write(berth_writer_t *w, const void *buf, size_t len)
{
    berth_storage_t *b = w != NULL ? w->storage : NULL;

    STORAGE__ENTER(b, writer_write, buf != NULL || len == 0, NULL);
    return b->methods->writer_write(w, buf, len);
}

/* The writer is freed whatever happens: with bad arguments or an injected
 * fault, by a discarding close (keep = 0). kept and state may be NULL only
 * with keep = 0. */
int berth_storage_writer_close(berth_writer_t *w, int keep, uint64_t *kept, char **state)
{
    berth_storage_t *b = w != NULL ? w->storage : NULL;
    uint64_t dropped = 0;
    char *lost = NULL;
    int code = 0;

    if (b == NULL || b->methods == NULL || b->methods->writer_close == NULL)
        return berth_error_set(BERTH_EINVALID, "storage writer_close: invalid argument");
    if (kept != NULL)
        *kept = 0;
    if (state != NULL)
        *state = NULL;
    if (keep != 0 && (keep != 1 || kept == NULL || state == NULL))
        code = BERTH_EINVALID;
    else
        code = fault__hit("writer_close", NULL);
    if (code == 0)
        return b->methods->writer_close(w, keep, kept != NULL ? kept : &dropped, state != NULL ? state : &lost);
    b->methods->writer_close(w, 0, &dropped, &lost);
    free(lost);
    if (code == BERTH_EINVALID)
        return berth_error_set(code, "storage writer_close: invalid argument");
    return fault__fail("writer_close", code);
}

int berth_storage_data_read(berth_storage_t *b, const char *id, const char *state, uint64_t offset, void *buf,
                            size_t len, size_t *got)
{
    STORAGE__ENTER(b, data_read, storage__id_ok(id) && (buf != NULL || len == 0) && got != NULL, id);
    *got = 0;
    return b->methods->data_read(b, id, state, offset, buf, len, got);
}

int berth_storage_data_commit(berth_storage_t *b, const char *id, const char *state, uint64_t size,
                              const char *digest)
{
    STORAGE__ENTER(b, data_commit, storage__id_ok(id) && storage__digest_ok(digest), id);
    return b->methods->data_commit(b, id, state, size, digest);
}

int berth_storage_data_remove(berth_storage_t *b, const char *id, const char *state)
{
    STORAGE__ENTER(b, data_remove, storage__id_ok(id), id);
    return b->methods->data_remove(b, id, state);
}

int berth_storage_data_list(berth_storage_t *b, berth_data_cb cb, void *ctx)
{
    STORAGE__ENTER(b, data_list, cb != NULL, NULL);
    return b->methods->data_list(b, cb, ctx);
}

/* ---- blobs ---------------------------------------------------------------- */

int berth_storage_blob_stat(berth_storage_t *b, const char *digest, uint64_t *size)
{
    STORAGE__ENTER(b, blob_stat, storage__digest_ok(digest) && size != NULL, digest);
    return b->methods->blob_stat(b, digest, size);
}

int berth_storage_blob_read(berth_storage_t *b, const char *digest, uint64_t offset, void *buf, size_t len,
                            size_t *got)
{
    STORAGE__ENTER(b, blob_read, storage__digest_ok(digest) && (buf != NULL || len == 0) && got != NULL, digest);
    *got = 0;
    return b->methods->blob_read(b, digest, offset, buf, len, got);
}

int berth_storage_blob_remove(berth_storage_t *b, const char *digest)
{
    STORAGE__ENTER(b, blob_remove, storage__digest_ok(digest), digest);
    return b->methods->blob_remove(b, digest);
}

int berth_storage_blob_list(berth_storage_t *b, berth_blob_cb cb, void *ctx)
{
    STORAGE__ENTER(b, blob_list, cb != NULL, NULL);
    return b->methods->blob_list(b, cb, ctx);
}

int berth_storage_blob_url(berth_storage_t *b, const char *digest, char *url, size_t cap)
{
    int fault;

    if (b == NULL || b->methods == NULL || !storage__digest_ok(digest) || url == NULL || cap == 0)
        return berth_error_set(BERTH_EINVALID, "storage blob_url: invalid argument");
    if ((fault = fault__hit("blob_url", digest)) != 0)
        return fault__fail("blob_url", fault);
    if (b->methods->blob_url == NULL)
        return 1;
    return b->methods->blob_url(b, digest, url, cap);
}

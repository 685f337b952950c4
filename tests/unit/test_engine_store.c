/*
 * The engine (core/engine.h) over stores that behave as the storage
 * contract allows but the filesystem backend never does: reads that take
 * their time (a slow S3), writes that keep only a prefix of their bytes.
 * A shim backend in front of the filesystem one plays them.
 */
#include <criterion/criterion.h>
#include <ftw.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/digest.h"
#include "core/engine.h"
#include "core/error.h"
#include "core/record.h"
#include "storage/fs/fs.h"
#include "storage/storage.h"

#define REPO "library/store"
#define TTL 3600

static char root[64];
static berth_storage_t *st;

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    return remove(path);
}

static void setup(void)
{
    berth_fs_options_t fo = {.root = root, .sync = BERTH_SYNC_COMMIT};

    berth_storage_fault_reset(NULL);
    snprintf(root, sizeof(root), "/tmp/berth-store-XXXXXX");
    cr_assert_not_null(mkdtemp(root));
    cr_assert_eq(berth_storage_fs_new(&st, &fo), 0, "%s", berth_error_last());
}

static void teardown(void)
{
    berth_storage_fault_reset(NULL);
    berth_storage_free(st);
    nftw(root, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

TestSuite(engine_store, .init = setup, .fini = teardown);

static berth_chunk_t body(int64_t len)
{
    return (berth_chunk_t){.has_range = 0, .length = len};
}

static berth_chunk_t ranged(uint64_t first, uint64_t last, int64_t len)
{
    return (berth_chunk_t){.has_range = 1, .first = first, .last = last, .length = len};
}

static unsigned char *random_bytes(size_t n, unsigned seed)
{
    unsigned char *b = malloc(n);
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1103515245u + 12345u;
        b[i] = (unsigned char)(seed >> 16);
    }
    return b;
}

/* A backend passing everything to the filesystem one, except that data_read
 * can be held at a gate (a slow store), and a kept write can keep only
 * whole units of its bytes, as the storage contract allows (writer_close:
 * "all of them unless the backend could keep only a prefix"). */
typedef struct shim {
    berth_storage_t super;
    berth_storage_t *inner;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int hold_reads;    /* data_read waits while set */
    int reads_waiting; /* data_reads at the gate */
    uint64_t unit;     /* > 0: writes keep whole units of this many bytes */
} shim_t;

typedef struct shim_writer {
    berth_writer_t super;
    berth_writer_t *inner;
    uint64_t unit;
    unsigned char *pending; /* bytes taken but not passed on (less than a unit) */
    size_t npending;
} shim_writer_t;

static berth_storage_t *shim_inner(berth_storage_t *b)
{
    return ((shim_t *)b)->inner;
}

static void shim_free(berth_storage_t *b)
{
}

static int shim_obj_get(berth_storage_t *b, const char *key, char **buf, size_t *len, berth_version_t *ver)
{
    return berth_storage_obj_get(shim_inner(b), key, buf, len, ver);
}

static int shim_obj_put(berth_storage_t *b, const char *key, const void *buf, size_t len, const berth_version_t *expect,
                        berth_version_t *ver)
{
    return berth_storage_obj_put(shim_inner(b), key, buf, len, expect, ver);
}

static int shim_obj_delete(berth_storage_t *b, const char *key, const berth_version_t *expect)
{
    return berth_storage_obj_delete(shim_inner(b), key, expect);
}

static int shim_obj_list(berth_storage_t *b, const char *prefix, berth_obj_cb cb, void *ctx)
{
    return berth_storage_obj_list(shim_inner(b), prefix, cb, ctx);
}

static int shim_data_create(berth_storage_t *b, const char *id, const berth_layout_t *layout, char **state)
{
    return berth_storage_data_create(shim_inner(b), id, layout, state);
}

static int shim_data_open(berth_storage_t *b, const char *id, const char *state, uint64_t offset, uint64_t hint,
                          berth_writer_t **out)
{
    shim_t *s = (shim_t *)b;
    berth_writer_t *inner = NULL;
    shim_writer_t *sw;
    int err;

    if ((err = berth_storage_data_open(s->inner, id, state, offset, hint, &inner)) < 0)
        return err;
    if ((sw = calloc(1, sizeof(*sw))) == NULL) {
        berth_storage_writer_close(inner, 0, NULL, NULL);
        return berth_error_set(BERTH_ERR, "out of memory");
    }
    sw->super.storage = b;
    sw->inner = inner;
    pthread_mutex_lock(&s->lock);
    sw->unit = s->unit;
    pthread_mutex_unlock(&s->lock);
    *out = &sw->super;
    return 0;
}

/* With a unit, passes on only whole units; the rest waits for more bytes,
 * and is lost at close. */
static int shim_writer_write(berth_writer_t *w, const void *buf, size_t len)
{
    shim_writer_t *sw = (shim_writer_t *)w;
    const unsigned char *p = buf;
    size_t n;
    int err;

    if (sw->unit == 0)
        return berth_storage_writer_write(sw->inner, buf, len);
    if (sw->pending == NULL && (sw->pending = malloc(sw->unit)) == NULL)
        return berth_error_set(BERTH_ERR, "out of memory");
    if (sw->npending > 0) {
        n = sw->unit - sw->npending < len ? sw->unit - sw->npending : len;
        memcpy(sw->pending + sw->npending, p, n);
        sw->npending += n, p += n, len -= n;
        if (sw->npending < sw->unit)
            return 0;
        if ((err = berth_storage_writer_write(sw->inner, sw->pending, sw->unit)) < 0)
            return err;
        sw->npending = 0;
    }
    n = len - len % sw->unit;
    if (n > 0 && (err = berth_storage_writer_write(sw->inner, p, n)) < 0)
        return err;
    memcpy(sw->pending, p + n, len - n);
    sw->npending = len - n;
    return 0;
}

static int shim_writer_close(berth_writer_t *w, int keep, uint64_t *kept, char **state)
{
    shim_writer_t *sw = (shim_writer_t *)w;
    int err = berth_storage_writer_close(sw->inner, keep, kept, state);

    free(sw->pending);
    free(sw);
    return err;
}

static int shim_data_read(berth_storage_t *b, const char *id, const char *state, uint64_t offset, void *buf, size_t len,
                          size_t *got)
{
    shim_t *s = (shim_t *)b;

    pthread_mutex_lock(&s->lock);
    s->reads_waiting++;
    pthread_cond_broadcast(&s->cond);
    while (s->hold_reads)
        pthread_cond_wait(&s->cond, &s->lock);
    s->reads_waiting--;
    pthread_mutex_unlock(&s->lock);
    return berth_storage_data_read(s->inner, id, state, offset, buf, len, got);
}

static int shim_data_commit(berth_storage_t *b, const char *id, const char *state, uint64_t size, const char *digest)
{
    return berth_storage_data_commit(shim_inner(b), id, state, size, digest);
}

static int shim_data_remove(berth_storage_t *b, const char *id, const char *state)
{
    return berth_storage_data_remove(shim_inner(b), id, state);
}

static int shim_data_list(berth_storage_t *b, berth_data_cb cb, void *ctx)
{
    return berth_storage_data_list(shim_inner(b), cb, ctx);
}

static int shim_blob_stat(berth_storage_t *b, const char *digest, uint64_t *size)
{
    return berth_storage_blob_stat(shim_inner(b), digest, size);
}

static int shim_blob_read(berth_storage_t *b, const char *digest, uint64_t offset, void *buf, size_t len, size_t *got)
{
    return berth_storage_blob_read(shim_inner(b), digest, offset, buf, len, got);
}

static int shim_blob_remove(berth_storage_t *b, const char *digest)
{
    return berth_storage_blob_remove(shim_inner(b), digest);
}

static int shim_blob_list(berth_storage_t *b, berth_blob_cb cb, void *ctx)
{
    return berth_storage_blob_list(shim_inner(b), cb, ctx);
}

static const berth_storage_methods_t shim_methods = {
    .name = "shim",
    .free = shim_free,
    .obj_get = shim_obj_get,
    .obj_put = shim_obj_put,
    .obj_delete = shim_obj_delete,
    .obj_list = shim_obj_list,
    .data_create = shim_data_create,
    .data_open = shim_data_open,
    .writer_write = shim_writer_write,
    .writer_close = shim_writer_close,
    .data_read = shim_data_read,
    .data_commit = shim_data_commit,
    .data_remove = shim_data_remove,
    .data_list = shim_data_list,
    .blob_stat = shim_blob_stat,
    .blob_read = shim_blob_read,
    .blob_remove = shim_blob_remove,
    .blob_list = shim_blob_list,
};

static void shim_init(shim_t *s)
{
    memset(s, 0, sizeof(*s));
    s->super.methods = &shim_methods;
    s->inner = st;
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->cond, NULL);
}

static void shim_fini(shim_t *s)
{
    pthread_cond_destroy(&s->cond);
    pthread_mutex_destroy(&s->lock);
}

static void shim_hold_reads(shim_t *s, int hold)
{
    pthread_mutex_lock(&s->lock);
    s->hold_reads = hold;
    pthread_cond_broadcast(&s->cond);
    pthread_mutex_unlock(&s->lock);
}

/* Waits up to 5 s for a data_read to reach the gate; 1 if one did. */
static int shim_wait_reader(shim_t *s)
{
    struct timespec until;
    int r;

    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 5;
    pthread_mutex_lock(&s->lock);
    while (s->reads_waiting == 0 && pthread_cond_timedwait(&s->cond, &s->lock, &until) == 0)
        ;
    r = s->reads_waiting > 0;
    pthread_mutex_unlock(&s->lock);
    return r;
}

static berth_engine_t *shim_engine(shim_t *s, int hash_threads)
{
    berth_engine_options_t eo = {.storage = &s->super, .ttl_s = TTL, .hash_threads = hash_threads};
    berth_engine_t *e = NULL;

    cr_assert_eq(berth_engine_new(&e, &eo), 0, "%s", berth_error_last());
    return e;
}

Test(engine_store, a_cut_body_on_a_backend_that_keeps_a_prefix_records_that_prefix)
{
    unsigned char *data = random_bytes(10000, 21);
    char digest[BERTH_DIGEST_LEN];
    berth_record_t rec, out;
    berth_engine_t *e;
    berth_write_t *w = NULL;
    berth_chunk_t c;
    shim_t s;
    int err;

    shim_init(&s);
    e = shim_engine(&s, 0);
    berth_record_init(&rec);
    berth_record_init(&out);
    cr_assert_eq(berth_oci_start(e, REPO, &rec), 0, "%s", berth_error_last());

    /* The body is cut after 10000 bytes; the backend keeps 8192 of them. */
    s.unit = 4096;
    c = ranged(0, 19999, 20000);
    cr_assert_eq(berth_oci_write(e, REPO, rec.id, &c, &w, &out), 0, "%s", berth_error_last());
    for (size_t off = 0; off < 10000; off += 1000)
        cr_assert_eq(berth_write_piece(w, data + off, 1000), 0, "%s", berth_error_last());
    err = berth_write_commit(w, 0, &out);
    s.unit = 0;
    cr_assert_eq(err, 0, "a cut body records what the storage kept, here %d: %s", err, berth_error_last());
    cr_assert_eq(out.offset, 8192, "the record claims exactly the bytes the storage kept");
    cr_assert_eq(berth_sha256_length(&out.hash), 8192);

    /* The client resumes at 8192 and finishes. */
    c = ranged(8192, 9999, 1808);
    cr_assert_eq(berth_oci_append(e, REPO, rec.id, &c, data + 8192, 1808, &out), 0, "%s", berth_error_last());
    berth_sha256_of(data, 10000, digest);
    cr_assert_eq(berth_oci_finish(e, REPO, rec.id, digest, NULL, 0, &out), 0, "%s", berth_error_last());
    berth_record_clear(&out);
    berth_record_clear(&rec);
    berth_engine_free(e);
    shim_fini(&s);
    free(data);
}

/* Parts 2..n stored, then part 1: the engine hashes the stored parts on its
 * hashing pool, reading them back. Here the read-back is held (a slow
 * store). */
static void stall_catch_up(berth_engine_t *e, shim_t *s, berth_record_t *rec)
{
    berth_parts_spec_t spec = {.total_parts = 4, .part_size = 4096, .owner = "alice"};
    static unsigned char part[4096];
    berth_record_t out;

    berth_record_init(rec);
    berth_record_init(&out);
    cr_assert_eq(berth_parts_create(e, &spec, rec), 0, "%s", berth_error_last());
    for (uint64_t n = 2; n <= 4; n++)
        cr_assert_eq(berth_parts_put(e, "alice", rec->id, n, part, sizeof(part), NULL, &out), BERTH_PARTS_STORED, "%s",
                     berth_error_last());
    shim_hold_reads(s, 1);
    cr_assert_eq(berth_parts_put(e, "alice", rec->id, 1, part, sizeof(part), NULL, &out), BERTH_PARTS_STORED, "%s",
                 berth_error_last());
    cr_assert(shim_wait_reader(s), "the stored parts were not read back after part 1");
    berth_record_clear(&out);
}

typedef struct oci_call {
    berth_engine_t *e;
    const unsigned char *data;
    size_t len;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int done, err;
} oci_call_t;

static void *oci_upload(void *arg)
{
    oci_call_t *c = arg;
    berth_record_t rec;
    berth_chunk_t ch = body((int64_t)c->len);
    int err;

    berth_record_init(&rec);
    if ((err = berth_oci_start(c->e, REPO, &rec)) == 0)
        err = berth_oci_append(c->e, REPO, rec.id, &ch, c->data, c->len, &rec);
    berth_record_clear(&rec);
    pthread_mutex_lock(&c->lock);
    c->err = err;
    c->done = 1;
    pthread_cond_broadcast(&c->cond);
    pthread_mutex_unlock(&c->lock);
    return NULL;
}

Test(engine_store, an_oci_chunk_is_not_held_up_by_a_part_session_reading_back_stored_parts, .timeout = 60)
{
    size_t len = 2 << 20;
    unsigned char *data = random_bytes(len, 14);
    oci_call_t call = {.data = data, .len = len, .lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};
    struct timespec until;
    berth_record_t rec;
    berth_engine_t *e;
    pthread_t t;
    shim_t s;
    int done;

    shim_init(&s);
    e = shim_engine(&s, 1);
    stall_catch_up(e, &s, &rec);

    /* An unrelated upload's chunk, big enough to be hashed on the pool. */
    call.e = e;
    cr_assert_eq(pthread_create(&t, NULL, oci_upload, &call), 0);
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 5;
    pthread_mutex_lock(&call.lock);
    while (!call.done && pthread_cond_timedwait(&call.cond, &call.lock, &until) == 0)
        ;
    done = call.done;
    pthread_mutex_unlock(&call.lock);
    shim_hold_reads(&s, 0);
    pthread_join(t, NULL);
    cr_assert(done, "a 2 MiB chunk of another upload waited more than 5 s for a part session's read-back");
    cr_assert_eq(call.err, 0);

    berth_record_clear(&rec);
    berth_engine_free(e);
    shim_fini(&s);
    free(data);
}

static void *engine_free_call(void *arg)
{
    berth_engine_free(arg);
    return NULL;
}

Test(engine_store, freeing_the_engine_while_it_hashes_stored_parts_waits_for_the_hashing, .timeout = 60)
{
    struct timespec pause = {0, 200 * 1000 * 1000};
    berth_record_t rec;
    berth_engine_t *e;
    pthread_t t;
    shim_t s;

    shim_init(&s);
    e = shim_engine(&s, 1);
    stall_catch_up(e, &s, &rec);
    /* No request is open; the engine's own hashing is. */
    cr_assert_eq(pthread_create(&t, NULL, engine_free_call, e), 0);
    nanosleep(&pause, NULL);
    shim_hold_reads(&s, 0);
    pthread_join(t, NULL);
    berth_record_clear(&rec);
    shim_fini(&s);
}

typedef struct complete_call {
    berth_engine_t *e;
    const char *id;
    int err;
    char msg[512];
    berth_record_t out;
} complete_call_t;

static void *complete_run(void *arg)
{
    complete_call_t *c = arg;

    c->err = berth_parts_complete(c->e, "alice", c->id, &c->out);
    snprintf(c->msg, sizeof(c->msg), "%s", berth_error_last());
    return NULL;
}

Test(engine_store, part_writes_and_abort_are_busy_while_the_session_is_being_completed, .timeout = 60)
{
    berth_parts_spec_t spec = {.total_parts = 2, .part_size = 4, .owner = "alice"};
    complete_call_t call;
    char digest[BERTH_DIGEST_LEN];
    berth_record_t rec, out;
    berth_write_t *w = (berth_write_t *)1;
    berth_engine_t *e;
    pthread_t t;
    shim_t s;

    shim_init(&s);
    e = shim_engine(&s, 0);
    berth_record_init(&rec);
    berth_record_init(&out);
    cr_assert_eq(berth_parts_create(e, &spec, &rec), 0, "%s", berth_error_last());
    cr_assert_eq(berth_parts_put(e, "alice", rec.id, 1, "aaaa", 4, NULL, &out), BERTH_PARTS_STORED);
    cr_assert_eq(berth_parts_put(e, "alice", rec.id, 2, "bb", 2, NULL, &out), BERTH_PARTS_STORED);
    /* Part 1 replaced: the hash starts again, completion reads the parts. */
    cr_assert_eq(berth_parts_put(e, "alice", rec.id, 1, "AAAA", 4, NULL, &out), BERTH_PARTS_STORED);

    shim_hold_reads(&s, 1);
    call = (complete_call_t){.e = e, .id = rec.id};
    berth_record_init(&call.out);
    cr_assert_eq(pthread_create(&t, NULL, complete_run, &call), 0);
    if (!shim_wait_reader(&s)) {
        shim_hold_reads(&s, 0);
        pthread_join(t, NULL);
        cr_assert_fail("completion did not read the parts back: %d", call.err);
    }
    cr_assert_eq(berth_parts_write(e, "alice", rec.id, 2, 2, NULL, &w, &out), BERTH_EBUSY);
    cr_assert_null(w);
    cr_assert_eq(berth_parts_put(e, "alice", rec.id, 1, "AAAA", 4, NULL, &out), BERTH_EBUSY);
    cr_assert_eq(berth_parts_abort(e, "alice", rec.id, &out), BERTH_EBUSY);
    cr_assert_eq(berth_parts_status(e, "alice", rec.id, 0, &out, NULL), 0, "status does not need the session");
    shim_hold_reads(&s, 0);
    pthread_join(t, NULL);
    cr_assert_eq(call.err, 0, "%s", call.msg);
    berth_sha256_of("AAAAbb", 6, digest);
    cr_assert_str_eq(call.out.digest, digest);

    berth_record_clear(&call.out);
    berth_record_clear(&out);
    berth_record_clear(&rec);
    berth_engine_free(e);
    shim_fini(&s);
}

Test(engine_store, completing_right_after_the_last_part_is_not_refused_for_the_engines_own_hashing, .timeout = 60)
{
    struct timespec pause = {0, 200 * 1000 * 1000};
    static unsigned char whole[4 * 4096];
    char digest[BERTH_DIGEST_LEN];
    complete_call_t call;
    berth_record_t rec;
    berth_engine_t *e;
    pthread_t t;
    shim_t s;

    shim_init(&s);
    e = shim_engine(&s, 1);
    /* The client has stored every part and its last PUT was answered; the
     * engine is still hashing stored parts in the background (held here). */
    stall_catch_up(e, &s, &rec);
    call = (complete_call_t){.e = e, .id = rec.id};
    berth_record_init(&call.out);
    cr_assert_eq(pthread_create(&t, NULL, complete_run, &call), 0);
    nanosleep(&pause, NULL);
    shim_hold_reads(&s, 0);
    pthread_join(t, NULL);
    cr_assert_eq(call.err, 0, "the completion was refused (%d): %s", call.err, call.msg);
    berth_sha256_of(whole, sizeof(whole), digest);
    cr_assert_str_eq(call.out.digest, digest);
    berth_record_clear(&call.out);
    berth_record_clear(&rec);
    berth_engine_free(e);
    shim_fini(&s);
}

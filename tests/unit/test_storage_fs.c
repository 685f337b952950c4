/*
 * The filesystem backend: the shared storage contract, then what is
 * particular to files (the layout on disk, stores written by earlier
 * versions, compare-and-swap across processes, direct I/O), and the
 * wrappers' registry and fault injection.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/config.h"
#include "core/digest.h"
#include "core/error.h"
#include "core/validate.h"
#include "storage/fs/fs.h"
#include "storage/storage.h"

static char fs_root[64];

static int fs_rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    return remove(path);
}

static void fs_rm_root(void)
{
    if (fs_root[0] != '\0')
        nftw(fs_root, fs_rm_one, 16, FTW_DEPTH | FTW_PHYS);
    fs_root[0] = '\0';
}

static void fs_make_root(void)
{
    snprintf(fs_root, sizeof(fs_root), "/tmp/berth-fs-XXXXXX");
    cr_assert_not_null(mkdtemp(fs_root));
}

static berth_storage_t *fs_open(berth_sync_mode_t sync)
{
    berth_fs_options_t o = {.root = fs_root, .sync = sync};
    berth_storage_t *b = NULL;

    cr_assert_eq(berth_storage_fs_new(&b, &o), 0, "%s", berth_error_last());
    return b;
}

static berth_storage_t *contract_backend_new(void)
{
    fs_make_root();
    /* Durable mode, so that the contract exercises every fsync path too. */
    return fs_open(BERTH_SYNC_ALWAYS);
}

static void contract_backend_cleanup(void)
{
    fs_rm_root();
}

#define CONTRACT_SUITE storage_fs_contract
#include "storage_contract.h"
#include "storage_contract_data.h"

/* ---- filesystem specifics ------------------------------------------------------ */

static berth_storage_t *b;

/* The contract's helpers work on contract_b: the same backend here. */
static void fs_setup(void)
{
    berth_storage_fault_reset(NULL);
    fs_make_root();
    b = contract_b = fs_open(BERTH_SYNC_COMMIT);
}

static void fs_teardown(void)
{
    berth_storage_fault_reset(NULL);
    berth_storage_free(b);
    b = contract_b = NULL;
    fs_rm_root();
}

TestSuite(storage_fs, .init = fs_setup, .fini = fs_teardown);

static int fs_exists(const char *fmt, const char *a)
{
    char rel[1024], path[1200];
    struct stat st;

    snprintf(rel, sizeof(rel), fmt, a);
    snprintf(path, sizeof(path), "%s/%s", fs_root, rel);
    return stat(path, &st) == 0;
}

static char *fs_slurp(const char *rel)
{
    char path[1200];
    static char buf[4096];
    FILE *f;
    size_t n;

    snprintf(path, sizeof(path), "%s/%s", fs_root, rel);
    if ((f = fopen(path, "rb")) == NULL)
        return NULL;
    n = fread(buf, 1, sizeof(buf) - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

/* Writes a file under the root by hand, making its directories. */
static void fs_plant(const char *rel, const char *text)
{
    char path[1200];
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s", fs_root, rel);
    for (char *p = path + strlen(fs_root) + 1; (p = strchr(p, '/')) != NULL; p++) {
        *p = '\0';
        mkdir(path, 0755);
        *p = '/';
    }
    cr_assert_not_null(f = fopen(path, "wb"), "create %s", path);
    fputs(text, f);
    fclose(f);
}

static size_t fs_count_entries(const char *rel)
{
    char path[1200];
    struct dirent *de;
    size_t n = 0;
    DIR *d;

    snprintf(path, sizeof(path), "%s/%s", fs_root, rel);
    cr_assert_not_null(d = opendir(path), "opendir %s", path);
    while ((de = readdir(d)) != NULL)
        n += strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0;
    closedir(d);
    return n;
}

Test(storage_fs, new_creates_a_missing_nested_root)
{
    char nested[128];
    berth_fs_options_t o = {.root = nested, .sync = BERTH_SYNC_NONE};
    berth_storage_t *nb = NULL;
    struct stat st;

    snprintf(nested, sizeof(nested), "%s/a/b/c", fs_root);
    cr_assert_eq(berth_storage_fs_new(&nb, &o), 0, "%s", berth_error_last());
    cr_assert_str_eq(berth_storage_name(nb), "filesystem");
    cr_assert_eq(stat(nested, &st), 0);
    cr_assert(S_ISDIR(st.st_mode));
    berth_storage_free(nb);
}

Test(storage_fs, new_fails_cleanly_when_the_root_is_a_file)
{
    char file[128];
    berth_fs_options_t o = {.root = file};
    berth_storage_t *nb = (berth_storage_t *)1;

    snprintf(file, sizeof(file), "%s/plain", fs_root);
    fs_plant("plain", "");
    cr_assert_lt(berth_storage_fs_new(&nb, &o), 0);
    cr_assert_null(nb);
    cr_assert_neq(berth_error_last()[0], '\0');
}

Test(storage_fs, files_land_where_the_layout_says)
{
    char id[BERTH_ID_LEN], digest[BERTH_DIGEST_LEN], rel[512], key[512], *state = contract_data_new(id, 0, 0);
    const char *hex;
    uint64_t off = 0;

    cr_assert_null(state, "append layouts need no state");
    cr_assert(fs_exists("uploads/%s/data", id));
    snprintf(key, sizeof(key), "sessions/%s", id);
    cr_assert_eq(berth_storage_obj_put(b, key, "{}", 2, NULL, NULL), 0);
    cr_assert_str_eq(fs_slurp(key), "{}");
    contract_append(id, &state, &off, "layout", 6, 6);
    snprintf(rel, sizeof(rel), "uploads/%s/data", id);
    cr_assert_str_eq(fs_slurp(rel), "layout");

    berth_sha256_of("layout", 6, digest);
    hex = digest + 7;
    cr_assert_eq(berth_storage_data_commit(b, id, state, 6, digest), 0, "%s", berth_error_last());
    cr_assert(!fs_exists("uploads/%s", id), "commit moves the data away and drops the directory");
    snprintf(rel, sizeof(rel), "blobs/sha256/%.2s/%s/data", hex, hex);
    cr_assert_str_eq(fs_slurp(rel), "layout");

    snprintf(key, sizeof(key), "repositories/library/ubuntu/_layers/sha256/%s/link", hex);
    cr_assert_eq(berth_storage_obj_put(b, key, digest, strlen(digest), NULL, NULL), 0);
    cr_assert_str_eq(fs_slurp(key), digest);
    cr_assert_eq(berth_storage_obj_put(b, "meta/library/ubuntu/_t/latest", "m", 1, NULL, NULL), 0);
    cr_assert_str_eq(fs_slurp("meta/library/ubuntu/_t/latest~"), "m");
    cr_assert_eq(berth_storage_obj_put(b, "top", "t", 1, NULL, NULL), 0);
    cr_assert_str_eq(fs_slurp("top"), "t");
}

Test(storage_fs, a_store_written_by_an_earlier_version_is_read_where_it_lies)
{
    char id[BERTH_ID_LEN], digest[BERTH_DIGEST_LEN], link[512], body[BERTH_DIGEST_LEN + 1], rel[128];
    contract_keys_t k = {.n = 0};
    contract_ids_t l = {.n = 0};

    berth_sha256_of("old", 3, digest);
    snprintf(link, sizeof(link), "repositories/lib/a/_layers/sha256/%s/link", digest + 7);
    snprintf(body, sizeof(body), "%s\n", digest);
    fs_plant(link, body);
    fs_plant("meta/lib/a/_t/latest~", "manifest");
    fs_plant("meta/lib/a~", "repo");
    cr_assert_eq(berth_id_generate(id), 0);
    snprintf(rel, sizeof(rel), "uploads/%s/data", id);
    fs_plant(rel, "old bytes");
    snprintf(rel, sizeof(rel), "uploads/%s/record.json", id);
    fs_plant(rel, "{\"old\": 1}");

    contract_assert_value(b, link, body);
    contract_assert_value(b, "meta/lib/a/_t/latest", "manifest");
    contract_list("", &k);
    cr_assert_eq(k.n, 3, "listed %zu", k.n);
    cr_assert_eq(contract_keys_has(&k, link, NULL), 1);
    cr_assert_eq(contract_keys_has(&k, "meta/lib/a", NULL), 1);
    contract_keys_clear(&k);
    contract_assert_data(id, NULL, 0, "old bytes", 9);
    cr_assert_eq(berth_storage_data_list(b, contract_ids_cb, &l), 0);
    cr_assert_eq(l.n, 1);
    cr_assert_eq(berth_storage_data_remove(b, id, NULL), 0, "%s", berth_error_last());
    cr_assert(!fs_exists("uploads/%s", id), "the old record.json goes with the data");
}

Test(storage_fs, replacing_an_object_leaves_no_temporary_files)
{
    berth_version_t stale = {.tag = "1.2.3.4"};

    for (int i = 0; i < 5; i++)
        cr_assert_eq(berth_storage_obj_put(b, "sessions/one", "{\"n\": 1}", 8, NULL, NULL), 0);
    cr_assert_eq(berth_storage_obj_put(b, "sessions/one", "x", 1, &stale, NULL), BERTH_ECONFLICT);
    cr_assert_eq(fs_count_entries("sessions"), 1, "only the object remains");
}

Test(storage_fs, listings_skip_temporary_files_strangers_and_the_backends_own)
{
    char id[BERTH_ID_LEN], *state = contract_data_new(id, 0, 0);
    contract_keys_t k = {.n = 0};
    char digest[BERTH_DIGEST_LEN];

    contract_blob_make("a blob", 6, digest);
    cr_assert_eq(berth_storage_obj_put(b, "sessions/real", "r", 1, NULL, NULL), 0);
    cr_assert_eq(berth_storage_obj_put(b, "meta/real", "r", 1, NULL, NULL), 0);
    fs_plant("sessions/real~tmp.1.2.3", "crash leftover");
    fs_plant("meta/real~~tmp.1.2.3", "crash leftover");
    fs_plant("meta/no-suffix", "stranger");
    fs_plant("bad+dir/x", "stranger");
    fs_plant("sessions/bad name", "stranger");
    contract_list("", &k);
    cr_assert_eq(k.n, 2, "listed %zu: %s", k.n, k.n > 0 ? k.keys[0] : "");
    cr_assert_eq(contract_keys_has(&k, "sessions/real", NULL), 1);
    cr_assert_eq(contract_keys_has(&k, "meta/real", NULL), 1);
    contract_list("uploads/", &k);
    cr_assert_eq(k.n, 0, "session data is no object");
    contract_list("blobs/", &k);
    cr_assert_eq(k.n, 0, "blobs are no objects");
    contract_keys_clear(&k);
    free(state);
}

Test(storage_fs, keys_the_layout_keeps_for_itself_are_refused)
{
    char *buf = NULL;
    size_t len;

    cr_assert_eq(berth_storage_obj_put(b, "uploads/x", "x", 1, NULL, NULL), BERTH_EINVALID);
    cr_assert_eq(berth_storage_obj_put(b, "blobs/sha256/x", "x", 1, NULL, NULL), BERTH_EINVALID);
    cr_assert_eq(berth_storage_obj_put(b, "meta", "x", 1, NULL, NULL), BERTH_EINVALID);
    cr_assert_eq(berth_storage_obj_get(b, "uploads", &buf, &len, NULL), BERTH_EINVALID);
    cr_assert_eq(berth_storage_obj_put(b, "uploadsx/y", "x", 1, NULL, NULL), 0, "only whole components");
}

Test(storage_fs, a_key_below_or_above_an_object_is_refused_outside_meta)
{
    char *buf = NULL;
    size_t len;

    cr_assert_eq(berth_storage_obj_put(b, "sessions/a", "x", 1, NULL, NULL), 0);
    cr_assert_eq(berth_storage_obj_put(b, "sessions/a/b", "x", 1, NULL, NULL), BERTH_EINVALID);
    cr_assert_eq(berth_storage_obj_put(b, "sessions", "x", 1, NULL, NULL), BERTH_EINVALID);
    cr_assert_eq(berth_storage_obj_get(b, "sessions/a/b", &buf, &len, NULL), BERTH_ENOTFOUND);
    cr_assert_eq(berth_storage_obj_get(b, "sessions", &buf, &len, NULL), BERTH_ENOTFOUND);
    cr_assert_eq(berth_storage_obj_delete(b, "sessions", NULL), BERTH_ENOTFOUND);
    cr_assert_eq(fs_count_entries("sessions"), 1, "no temporary file left behind");
}

Test(storage_fs, deleting_the_last_key_of_a_directory_removes_the_directory)
{
    cr_assert_eq(berth_storage_obj_put(b, "repositories/a/b/_layers/sha256/00/link", "l", 1, NULL, NULL), 0);
    cr_assert_eq(berth_storage_obj_put(b, "repositories/a/_layers/sha256/00/link", "l", 1, NULL, NULL), 0);
    cr_assert_eq(berth_storage_obj_delete(b, "repositories/a/b/_layers/sha256/00/link", NULL), 0);
    cr_assert(!fs_exists("repositories/a/b%s", ""));
    cr_assert(fs_exists("repositories/a/_layers/sha256/00/link%s", ""), "a neighbour keeps its directories");
    cr_assert_eq(berth_storage_obj_delete(b, "repositories/a/_layers/sha256/00/link", NULL), 0);
    cr_assert(!fs_exists("repositories/a%s", ""));
    cr_assert(fs_exists("repositories%s", ""), "the top directory stays");
    cr_assert_eq(berth_storage_obj_put(b, "repositories/a/_layers/sha256/00/link", "m", 1, NULL, NULL), 0);
    contract_assert_value(b, "repositories/a/_layers/sha256/00/link", "m");
}

Test(storage_fs, versions_never_repeat_even_when_inodes_do)
{
    enum { N = 200 };
    static berth_version_t seen[N];
    berth_version_t absent = {.tag = ""}, v1, v2;

    /* Delete and re-create: the freed inode is the likeliest next one. */
    for (int i = 0; i < N; i++) {
        cr_assert_eq(berth_storage_obj_put(b, "sessions/v", "same", 4, &absent, &seen[i]), 0, "%s",
                     berth_error_last());
        for (int j = 0; j < i; j++)
            cr_assert_str_neq(seen[i].tag, seen[j].tag, "put %d repeats the version of put %d", i, j);
        cr_assert_eq(berth_storage_obj_delete(b, "sessions/v", &seen[i]), 0, "%s", berth_error_last());
    }
    cr_assert_eq(berth_storage_obj_put(b, "sessions/v", "same", 4, NULL, &v1), 0);
    cr_assert_eq(berth_storage_obj_put(b, "sessions/v", "same", 4, NULL, &v2), 0);
    cr_assert_str_neq(v1.tag, v2.tag, "a put of the same bytes is a new version");
    cr_assert_eq(berth_storage_obj_put(b, "sessions/v", "same", 4, &v1, NULL), BERTH_ECONFLICT);
    for (int i = 0; i < N; i++)
        cr_assert_eq(berth_storage_obj_put(b, "sessions/v", "same", 4, &seen[i], NULL), BERTH_ECONFLICT);
}

Test(storage_fs, a_replacement_is_stamped_later_than_what_it_replaces)
{
    struct timespec future[2] = {{.tv_nsec = UTIME_OMIT}, {.tv_sec = 4000000000, .tv_nsec = 999999999}};
    berth_version_t before, after;
    char path[1200];
    struct stat st;

    /* A clock behind the stored file's time (stepped back, or coarse)
     * must not give the new file an old time: with a reused inode and an
     * equal size, that would be an old version again. */
    cr_assert_eq(berth_storage_obj_put(b, "sessions/t", "same", 4, NULL, NULL), 0);
    snprintf(path, sizeof(path), "%s/sessions/t", fs_root);
    cr_assert_eq(utimensat(AT_FDCWD, path, future, 0), 0);
    free(contract_get(b, "sessions/t", NULL, &before));
    cr_assert_eq(berth_storage_obj_put(b, "sessions/t", "same", 4, &before, &after), 0, "%s", berth_error_last());
    cr_assert_eq(stat(path, &st), 0);
    cr_assert_eq(st.st_mtim.tv_sec, 4000000001);
    cr_assert_eq(st.st_mtim.tv_nsec, 0);
    cr_assert_str_neq(before.tag, after.tag);
}

Test(storage_fs, a_second_backend_on_the_same_root_shares_objects_and_versions)
{
    berth_storage_t *again = fs_open(BERTH_SYNC_NONE);
    berth_version_t va, vb;

    cr_assert_eq(berth_storage_obj_put(b, "sessions/shared", "1", 1, NULL, &va), 0);
    free(contract_get(again, "sessions/shared", NULL, &vb));
    cr_assert_str_eq(va.tag, vb.tag);
    cr_assert_eq(berth_storage_obj_put(again, "sessions/shared", "2", 1, &vb, &vb), 0, "%s", berth_error_last());
    cr_assert_eq(berth_storage_obj_put(b, "sessions/shared", "3", 1, &va, NULL), BERTH_ECONFLICT);
    contract_assert_value(b, "sessions/shared", "2");
    berth_storage_free(again);
}

Test(storage_fs, conditional_increments_from_two_processes_lose_none)
{
    enum { EACH = 300 };
    int status = 0, bad = 0, conflicts = 0, ready[2], go[2];
    char want[16], c = 0;
    pid_t pid;

    cr_assert_eq(pipe(ready), 0);
    cr_assert_eq(pipe(go), 0);
    if ((pid = fork()) == 0) {
        berth_fs_options_t o = {.root = fs_root, .sync = BERTH_SYNC_COMMIT};
        berth_storage_t *cb = NULL;
        int failed = 0;
        if (berth_storage_fs_new(&cb, &o) != 0)
            _exit(100);
        /* Both sides start together, so that their increments interleave. */
        if (write(ready[1], "r", 1) != 1 || read(go[0], &c, 1) != 1)
            _exit(101);
        for (int i = 0; i < EACH; i++)
            failed += contract_increment(cb, "sessions/counter", NULL) != 0;
        berth_storage_free(cb);
        _exit(failed > 99 ? 99 : failed);
    }
    cr_assert_gt(pid, 0);
    cr_assert_eq(read(ready[0], &c, 1), 1);
    cr_assert_eq(write(go[1], "g", 1), 1);
    for (int i = 0; i < EACH; i++)
        bad += contract_increment(b, "sessions/counter", &conflicts) != 0;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child: status %d", status);
    cr_assert_eq(bad, 0);
    snprintf(want, sizeof(want), "%d", 2 * EACH);
    contract_assert_value(b, "sessions/counter", want);
    cr_log_info("%d conflicts in the parent", conflicts);
}

Test(storage_fs, data_list_skips_names_that_are_not_session_ids)
{
    char id[BERTH_ID_LEN], *state = contract_data_new(id, 0, 0);
    contract_ids_t l = {.n = 0};

    int64_t now = (int64_t)time(NULL);

    fs_plant("uploads/not-a-session/data", "x");
    cr_assert_eq(berth_storage_data_list(b, contract_ids_cb, &l), 0);
    cr_assert_eq(l.n, 1);
    cr_assert_str_eq(l.ids[0], id);
    cr_assert(l.mtimes[0] >= now - 600 && l.mtimes[0] <= now + 600, "mtime %lld", (long long)l.mtimes[0]);
    free(state);
}

Test(storage_fs, commit_refuses_a_size_larger_than_the_data)
{
    char id[BERTH_ID_LEN], digest[BERTH_DIGEST_LEN], *state = contract_data_new(id, 0, 0);
    uint64_t off = 0, size;

    contract_append(id, &state, &off, "abc", 3, 3);
    berth_sha256_of("abc", 3, digest);
    cr_assert_eq(berth_storage_data_commit(b, id, state, 10, digest), BERTH_EIO);
    cr_assert_eq(berth_storage_blob_stat(b, digest, &size), BERTH_ENOTFOUND);
    cr_assert_eq(berth_storage_data_commit(b, id, state, 3, digest), 0, "the data is still there");
    free(state);
}

Test(storage_fs, commit_without_data_or_blob_is_not_found)
{
    char id[BERTH_ID_LEN], digest[BERTH_DIGEST_LEN];

    cr_assert_eq(berth_id_generate(id), 0);
    berth_sha256_of("", 0, digest);
    cr_assert_eq(berth_storage_data_commit(b, id, NULL, 0, digest), BERTH_ENOTFOUND);
}

Test(storage_fs, sync_none_stores_the_same)
{
    berth_storage_t *lazy = fs_open(BERTH_SYNC_NONE);
    char digest[BERTH_DIGEST_LEN];

    contract_b = lazy;
    cr_assert_eq(berth_storage_obj_put(lazy, "sessions/s", "x", 1, NULL, NULL), 0);
    contract_assert_value(lazy, "sessions/s", "x");
    contract_blob_make("lazy", 4, digest);
    contract_assert_blob(digest, "lazy", 4);
    contract_b = b;
    berth_storage_free(lazy);
}

/* ---- direct I/O for large pieces ---------------------------------------------------- */

/* One append write of data[0, total) in pieces of the given sizes. */
static void fs_write_pieces(const char *id, const unsigned char *data, const size_t *sizes, size_t n, uint64_t *off)
{
    berth_writer_t *w = NULL;
    uint64_t kept = 0, start = *off;
    char *next = NULL;

    cr_assert_eq(berth_storage_data_open(b, id, NULL, start, 0, &w), 0, "%s", berth_error_last());
    for (size_t i = 0; i < n; i++) {
        cr_assert_eq(berth_storage_writer_write(w, data + *off, sizes[i]), 0, "%s", berth_error_last());
        *off += sizes[i];
    }
    cr_assert_eq(berth_storage_writer_close(w, 1, &kept, &next), 0, "%s", berth_error_last());
    cr_assert_eq(kept, *off - start);
    cr_assert_null(next);
}

static void fs_commit_and_compare(const char *id, const char *state, const unsigned char *want, size_t len)
{
    char digest[BERTH_DIGEST_LEN];

    berth_sha256_of(want, len, digest);
    cr_assert_eq(berth_storage_data_commit(b, id, state, len, digest), 0, "%s", berth_error_last());
    contract_assert_blob(digest, want, len);
}

Test(storage_fs, large_unaligned_pieces_mixed_with_small_ones_are_byte_exact)
{
    /* Small pieces take the buffered path, large ones the direct path with
     * an unaligned start (read-modify-write of the first block), a padded
     * last block and several bounce-buffer rounds. */
    static const size_t sizes[] = {5000, 300 * 1024 + 7, 4097, 5 * 1024 * 1024 + 3, 262144, 1, 9 * 1024 * 1024};
    size_t total = 0;
    char id[BERTH_ID_LEN], *state = contract_data_new(id, 0, 0);
    unsigned char *data;
    uint64_t off = 0;

    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++)
        total += sizes[i];
    data = contract_bytes(total, 7);
    fs_write_pieces(id, data, sizes, 3, &off);
    fs_write_pieces(id, data, sizes + 3, 4, &off);
    fs_commit_and_compare(id, state, data, total);
    free(data);
}

Test(storage_fs, a_rewritten_large_piece_replaces_the_padding_of_the_previous_one)
{
    /* A write after a crash lost its record lands on the padded tail of the
     * last direct write; the bytes must be the new ones. */
    size_t a = 400 * 1024 + 123, c = 600 * 1024 + 1, sizes[] = {a, c};
    char id[BERTH_ID_LEN], *state = contract_data_new(id, 0, 0);
    unsigned char *data = contract_bytes(a + c, 11), *junk = contract_bytes(a + c, 12);
    uint64_t off = 0;

    fs_write_pieces(id, data, sizes, 1, &off);
    memcpy(junk, data, a);
    fs_write_pieces(id, junk, sizes + 1, 1, &off); /* unclaimed: the engine records only a */
    off = a;
    fs_write_pieces(id, data, sizes + 1, 1, &off);
    fs_commit_and_compare(id, state, data, a + c);
    free(junk);
    free(data);
}

/* Writes unit k of a session of `unit`-byte units, whole, in one piece. */
static void fs_unit_put(const char *id, const char *state, uint64_t unit, uint64_t k, const unsigned char *p, size_t n)
{
    berth_writer_t *w = NULL;
    uint64_t kept = 0;
    char *next = NULL;

    cr_assert_eq(berth_storage_data_open(b, id, state, k * unit, n, &w), 0, "%s", berth_error_last());
    cr_assert_eq(berth_storage_writer_write(w, p, n), 0, "%s", berth_error_last());
    cr_assert_eq(berth_storage_writer_close(w, 1, &kept, &next), 0, "%s", berth_error_last());
    cr_assert_eq(kept, n);
    cr_assert_null(next);
}

/* Last unit first: every later write has a neighbour already stored after
 * it that padding or a read-modify-write would clobber. */
static void fs_units_in_reverse(uint64_t unit, uint64_t total, const char *forced_state)
{
    uint64_t units = (total + unit - 1) / unit;
    char id[BERTH_ID_LEN], *state = contract_data_new(id, unit, units);
    const char *use = forced_state != NULL ? forced_state : state;
    unsigned char *data = contract_bytes(total, (unsigned)unit);

    cr_assert_not_null(state, "unit layouts keep their geometry in the state");
    for (uint64_t k = units; k-- > 0;)
        fs_unit_put(id, use, unit, k, data + k * unit, (size_t)(k == units - 1 ? total - k * unit : unit));
    fs_commit_and_compare(id, use, data, (size_t)total);
    free(state);
    free(data);
}

Test(storage_fs, units_of_an_unaligned_size_written_in_reverse_keep_their_neighbours)
{
    fs_units_in_reverse(300 * 1024 + 5, 3 * (300 * 1024 + 5) + 1000, NULL);
}

Test(storage_fs, aligned_units_written_in_reverse_keep_their_neighbours)
{
    fs_units_in_reverse(512 * 1024, 4 * 512 * 1024 + 777, NULL);
}

Test(storage_fs, a_state_the_backend_cannot_read_still_gives_exact_bytes)
{
    fs_units_in_reverse(300 * 1024 + 5, 3 * (300 * 1024 + 5) + 1000, "garbage");
    fs_units_in_reverse(300 * 1024 + 5, 3 * (300 * 1024 + 5) + 1000, "");
}

typedef struct fs_unit_job {
    const char *id, *state;
    uint64_t unit, k;
    const unsigned char *p;
    size_t n;
    int err;
} fs_unit_job_t;

static void *fs_unit_run(void *arg)
{
    fs_unit_job_t *j = arg;
    berth_writer_t *w = NULL;
    uint64_t kept = 0;
    char *next = NULL;

    if ((j->err = berth_storage_data_open(b, j->id, j->state, j->k * j->unit, j->n, &w)) < 0)
        return NULL;
    if ((j->err = berth_storage_writer_write(w, j->p, j->n)) < 0) {
        berth_storage_writer_close(w, 0, NULL, NULL);
        return NULL;
    }
    j->err = berth_storage_writer_close(w, 1, &kept, &next);
    if (j->err == 0 && kept != j->n)
        j->err = -100;
    return NULL;
}

Test(storage_fs, units_written_in_parallel_keep_their_neighbours)
{
    enum { UNITS = 8, ROUNDS = 4 };

    /* Unaligned units are written through the page cache, aligned ones
     * directly, the last with padding past the end. */
    for (int round = 0; round < ROUNDS; round++) {
        uint64_t unit = round % 2 == 0 ? 256 * 1024 + 100 : 512 * 1024;
        size_t total = (UNITS - 1) * unit + (round % 2 == 0 ? 5000 : 300 * 1024 + 1);
        char id[BERTH_ID_LEN], *state = contract_data_new(id, unit, UNITS);
        unsigned char *data = contract_bytes(total, 100 + (unsigned)round);
        fs_unit_job_t jobs[UNITS];
        pthread_t t[UNITS];

        for (int k = 0; k < UNITS; k++) {
            jobs[k] = (fs_unit_job_t){.id = id, .state = state, .unit = unit, .k = (uint64_t)k, .p = data + k * unit};
            jobs[k].n = k == UNITS - 1 ? total - k * unit : unit;
            cr_assert_eq(pthread_create(&t[k], NULL, fs_unit_run, &jobs[k]), 0);
        }
        for (int k = 0; k < UNITS; k++) {
            pthread_join(t[k], NULL);
            cr_assert_eq(jobs[k].err, 0, "unit %d: %d", k, jobs[k].err);
        }
        fs_commit_and_compare(id, state, data, total);
        free(state);
        free(data);
    }
}

Test(storage_fs, a_write_at_no_units_offset_is_refused)
{
    char id[BERTH_ID_LEN], *state = contract_data_new(id, 1000, 3);
    berth_writer_t *w = NULL;

    cr_assert_eq(berth_storage_data_open(b, id, state, 999, 0, &w), BERTH_ERANGE);
    cr_assert_eq(berth_storage_data_open(b, id, state, 3000, 0, &w), BERTH_ERANGE);
    cr_assert_null(w);
    free(state);
}

/* ---- registry ---------------------------------------------------------------- */

Test(storage_fs, open_picks_the_filesystem_backend_by_name)
{
    berth_config_t cfg;
    berth_storage_t *ob = NULL;

    memset(&cfg, 0, sizeof(cfg));
    cfg.storage_driver = "filesystem";
    cfg.storage_fs_root = fs_root;
    cfg.storage_fs_sync = BERTH_SYNC_COMMIT;
    cr_assert_eq(berth_storage_open(&ob, &cfg), 0, "%s", berth_error_last());
    cr_assert_str_eq(berth_storage_name(ob), "filesystem");
    berth_storage_free(ob);
}

Test(storage_fs, open_rejects_an_unknown_driver)
{
    berth_config_t cfg;
    berth_storage_t *ob = (berth_storage_t *)1;

    memset(&cfg, 0, sizeof(cfg));
    cfg.storage_driver = "floppy";
    cfg.storage_fs_root = fs_root;
    cr_assert_eq(berth_storage_open(&ob, &cfg), BERTH_EINVALID);
    cr_assert_null(ob);
    cr_assert_not_null(strstr(berth_error_last(), "floppy"));
}

Test(storage_fs, free_accepts_null)
{
    berth_storage_free(NULL);
}

Test(storage_fs, a_missing_method_is_not_supported_and_a_missing_blob_url_is_serve_it_yourself)
{
    static const berth_storage_methods_t bare_methods = {.name = "bare"};
    berth_storage_t bare = {.methods = &bare_methods};
    char digest[BERTH_DIGEST_LEN], url[64];
    uint64_t size;

    berth_sha256_of("", 0, digest);
    cr_assert_eq(berth_storage_blob_stat(&bare, digest, &size), BERTH_ERR);
    cr_assert_not_null(strstr(berth_error_last(), "not supported"));
    cr_assert_str_eq(berth_storage_name(&bare), "bare");
    cr_assert_eq(berth_storage_blob_url(&bare, digest, url, sizeof(url)), 1);
    cr_assert_eq(berth_storage_blob_url(b, digest, url, sizeof(url)), 1, "the filesystem serves blobs itself");
}

Test(storage_fs, writer_close_keeping_without_somewhere_to_say_so_is_refused)
{
    char id[BERTH_ID_LEN], *state = contract_data_new(id, 0, 0), *next = NULL;
    berth_writer_t *w = NULL;
    uint64_t kept = 0;

    cr_assert_eq(berth_storage_data_open(b, id, state, 0, 0, &w), 0);
    cr_assert_eq(berth_storage_writer_close(w, 1, NULL, &next), BERTH_EINVALID, "the writer is freed all the same");
    cr_assert_eq(berth_storage_data_open(b, id, state, 0, 0, &w), 0);
    cr_assert_eq(berth_storage_writer_close(w, 2, &kept, &next), BERTH_EINVALID);
    free(state);
}

/* ---- fault injection --------------------------------------------------------- */

Test(storage_fs, a_counted_fault_fails_exactly_that_many_calls)
{
    berth_storage_fault_reset("obj_put:-6:1");
    cr_assert_eq(berth_storage_obj_put(b, "sessions/f", "a", 1, NULL, NULL), BERTH_EIO);
    cr_assert_not_null(strstr(berth_error_last(), "injected"));
    cr_assert_eq(berth_storage_obj_put(b, "sessions/f", "a", 1, NULL, NULL), 0, "%s", berth_error_last());
    cr_assert_eq(berth_storage_obj_put(b, "sessions/f", "b", 1, NULL, NULL), 0);
}

Test(storage_fs, an_uncounted_fault_fails_every_call_until_reset)
{
    berth_storage_fault_reset("obj_put:-11");
    for (int i = 0; i < 3; i++)
        cr_assert_eq(berth_storage_obj_put(b, "meta/f", "{}", 2, NULL, NULL), BERTH_ENOSPACE);
    berth_storage_fault_reset(NULL);
    cr_assert_eq(berth_storage_obj_put(b, "meta/f", "{}", 2, NULL, NULL), 0);
}

Test(storage_fs, a_fault_with_a_prefix_fails_only_keys_starting_with_it)
{
    char *buf = NULL;
    size_t len;

    berth_storage_fault_reset("obj_put@sessions/:-11,obj_get@meta/a/:-7:1");
    cr_assert_eq(berth_storage_obj_put(b, "sessions/s", "x", 1, NULL, NULL), BERTH_ENOSPACE);
    cr_assert_eq(berth_storage_obj_put(b, "meta/a/b", "x", 1, NULL, NULL), 0, "%s", berth_error_last());
    cr_assert_eq(berth_storage_obj_get(b, "meta/ab", &buf, &len, NULL), BERTH_ENOTFOUND, "a prefix, not a match");
    cr_assert_eq(berth_storage_obj_get(b, "meta/a/b", &buf, &len, NULL), BERTH_EUNAVAILABLE);
    free(contract_get(b, "meta/a/b", NULL, NULL));
}

Test(storage_fs, several_fault_specs_apply_each_to_its_method)
{
    char digest[BERTH_DIGEST_LEN], id[BERTH_ID_LEN];
    berth_layout_t append = {.unit = 0};
    uint64_t size;
    char *state = NULL;

    berth_sha256_of("", 0, digest);
    cr_assert_eq(berth_id_generate(id), 0);
    berth_storage_fault_reset("blob_stat:-7:2,bogus,data_create:-6:1,x@y:1");
    cr_assert_eq(berth_storage_blob_stat(b, digest, &size), BERTH_EUNAVAILABLE);
    cr_assert_eq(berth_storage_obj_put(b, "sessions/x", "{}", 2, NULL, NULL), 0, "other methods are unaffected");
    cr_assert_eq(berth_storage_data_create(b, id, &append, &state), BERTH_EIO);
    cr_assert_eq(berth_storage_blob_stat(b, digest, &size), BERTH_EUNAVAILABLE);
    cr_assert_eq(berth_storage_blob_stat(b, digest, &size), BERTH_ENOTFOUND);
    cr_assert_eq(berth_storage_data_create(b, id, &append, &state), 0);
}

Test(storage_fs, a_fault_on_writer_close_frees_the_writer_and_claims_nothing)
{
    char id[BERTH_ID_LEN], *state = contract_data_new(id, 0, 0), *next = (char *)1;
    berth_writer_t *w = NULL;
    uint64_t kept = 99, off = 0;

    berth_storage_fault_reset("writer_close:-6:1,writer_write:-11:1");
    cr_assert_eq(berth_storage_data_open(b, id, state, 0, 0, &w), 0);
    cr_assert_eq(berth_storage_writer_write(w, "lost", 4), BERTH_ENOSPACE);
    cr_assert_eq(berth_storage_writer_write(w, "lost", 4), 0);
    cr_assert_eq(berth_storage_writer_close(w, 1, &kept, &next), BERTH_EIO);
    cr_assert_not_null(strstr(berth_error_last(), "injected"));
    cr_assert_eq(kept, 0);
    cr_assert_null(next);
    /* Under ASan, a writer not freed is a leak reported at exit. */
    contract_append(id, &state, &off, "real", 4, 4);
    contract_assert_data(id, state, 0, "real", 4);
    free(state);
}

Test(storage_fs, an_explicit_fault_reset_wins_over_the_environment)
{
    berth_config_t cfg;
    berth_storage_t *ob = NULL;
    char *buf = NULL;
    size_t len;

    /* The suite's setup called berth_storage_fault_reset(NULL) before the
     * environment was ever read, so a later open must not load it. */
    memset(&cfg, 0, sizeof(cfg));
    cfg.storage_driver = "filesystem";
    cfg.storage_fs_root = fs_root;
    cr_assert_eq(setenv("BERTH_FAULT", "obj_get:-7:1", 1), 0);
    cr_assert_eq(berth_storage_open(&ob, &cfg), 0);
    cr_assert_eq(berth_storage_obj_get(ob, "sessions/none", &buf, &len, NULL), BERTH_ENOTFOUND);
    berth_storage_free(ob);
    unsetenv("BERTH_FAULT");
}

/* No fixture here: each criterion test runs in a fresh process, in which
 * nothing has read BERTH_FAULT yet. */
Test(storage_env, open_reads_faults_from_the_environment_once)
{
    berth_config_t cfg;
    berth_storage_t *ob = NULL;
    char root[64], *buf = NULL;
    size_t len;

    snprintf(root, sizeof(root), "/tmp/berth-env-XXXXXX");
    cr_assert_not_null(mkdtemp(root));
    memset(&cfg, 0, sizeof(cfg));
    cfg.storage_driver = "filesystem";
    cfg.storage_fs_root = root;
    cr_assert_eq(setenv("BERTH_FAULT", "obj_get@sessions/:-7:1", 1), 0);
    cr_assert_eq(berth_storage_open(&ob, &cfg), 0, "%s", berth_error_last());
    cr_assert_eq(berth_storage_obj_get(ob, "meta/none", &buf, &len, NULL), BERTH_ENOTFOUND);
    cr_assert_eq(berth_storage_obj_get(ob, "sessions/none", &buf, &len, NULL), BERTH_EUNAVAILABLE);
    cr_assert_eq(berth_storage_obj_get(ob, "sessions/none", &buf, &len, NULL), BERTH_ENOTFOUND);
    berth_storage_free(ob);
    unsetenv("BERTH_FAULT");
    snprintf(fs_root, sizeof(fs_root), "%s", root);
    fs_rm_root();
}

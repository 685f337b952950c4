/*
 * The filesystem backend: the shared storage contract, then what is
 * particular to files (the layout on disk, atomic replacement, syncing),
 * and the wrappers' registry and fault injection.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
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

/* ---- filesystem specifics ------------------------------------------------------ */

static berth_storage_t *b;

static void fs_setup(void)
{
    berth_storage_fault_reset(NULL);
    fs_make_root();
    b = fs_open(BERTH_SYNC_COMMIT);
}

static void fs_teardown(void)
{
    berth_storage_fault_reset(NULL);
    berth_storage_free(b);
    b = NULL;
    fs_rm_root();
}

TestSuite(storage_fs, .init = fs_setup, .fini = fs_teardown);

static int fs_exists(const char *fmt, const char *a, const char *c)
{
    char rel[512], path[1024];
    struct stat st;

    snprintf(rel, sizeof(rel), fmt, a, c);
    snprintf(path, sizeof(path), "%s/%s", fs_root, rel);
    return stat(path, &st) == 0;
}

static char *fs_slurp(const char *rel)
{
    char path[1024];
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

static size_t fs_count_entries(const char *rel)
{
    char path[1024];
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

static void fs_session(berth_record_t *rec)
{
    berth_record_init(rec);
    cr_assert_eq(berth_id_generate(rec->id), 0);
    rec->kind = BERTH_SESSION_OCI;
    cr_assert_eq(berth_storage_upload_create(b, rec), 0, "%s", berth_error_last());
}

Test(storage_fs, new_creates_a_missing_nested_root)
{
    char nested[128];
    berth_fs_options_t o = {.root = nested, .sync = BERTH_SYNC_NONE};
    berth_storage_t *nb = NULL;
    struct stat st;

    snprintf(nested, sizeof(nested), "%s/a/b/c", fs_root);
    cr_assert_eq(berth_storage_fs_new(&nb, &o), 0, "%s", berth_error_last());
    cr_assert_str_eq(nb->name, "filesystem");
    cr_assert_eq(nb->version, BERTH_STORAGE_VERSION);
    cr_assert_eq(stat(nested, &st), 0);
    cr_assert(S_ISDIR(st.st_mode));
    berth_storage_free(nb);
}

Test(storage_fs, new_fails_cleanly_when_the_root_is_a_file)
{
    char file[128];
    berth_fs_options_t o = {.root = file};
    berth_storage_t *nb = (berth_storage_t *)1;
    FILE *f;

    snprintf(file, sizeof(file), "%s/plain", fs_root);
    cr_assert_not_null(f = fopen(file, "w"));
    fclose(f);
    cr_assert_lt(berth_storage_fs_new(&nb, &o), 0);
    cr_assert_null(nb);
    cr_assert_neq(berth_error_last()[0], '\0');
}

Test(storage_fs, files_land_where_the_layout_says)
{
    char digest[BERTH_DIGEST_LEN], link_rel[512];
    berth_record_t rec;
    const char *hex;

    fs_session(&rec);
    cr_assert(fs_exists("uploads/%s/data%s", rec.id, ""));
    cr_assert_eq(berth_storage_record_put(b, rec.id, "{}", 2), 0);
    cr_assert(fs_exists("uploads/%s/record.json%s", rec.id, ""));
    cr_assert_eq(berth_storage_upload_write(b, &rec, 0, "layout", 6), 0);
    {
        char rel[128];
        snprintf(rel, sizeof(rel), "uploads/%s/data", rec.id);
        cr_assert_str_eq(fs_slurp(rel), "layout");
    }

    berth_sha256_of("layout", 6, digest);
    hex = digest + 7;
    rec.offset = 6;
    cr_assert_eq(berth_storage_upload_commit(b, &rec, digest), 0, "%s", berth_error_last());
    cr_assert(!fs_exists("uploads/%s/data%s", rec.id, ""), "commit moves the data away");
    {
        char prefix[3] = {hex[0], hex[1], '\0'};
        char rel[512];
        snprintf(rel, sizeof(rel), "blobs/sha256/%s/%s/data", prefix, hex);
        cr_assert_str_eq(fs_slurp(rel), "layout");
    }

    cr_assert_eq(berth_storage_link_put(b, "library/ubuntu", digest), 0);
    snprintf(link_rel, sizeof(link_rel), "repositories/library/ubuntu/_layers/sha256/%s/link", hex);
    {
        char want[BERTH_DIGEST_LEN + 1];
        snprintf(want, sizeof(want), "%s\n", digest);
        cr_assert_str_eq(fs_slurp(link_rel), want);
    }
    cr_assert_eq(berth_storage_upload_remove(b, rec.id, &rec), 0);
    cr_assert(!fs_exists("uploads/%s%s", rec.id, ""), "the upload directory is gone");
    berth_record_clear(&rec);
}

Test(storage_fs, record_replace_leaves_no_temporary_files)
{
    berth_record_t rec;
    char rel[128];

    fs_session(&rec);
    for (int i = 0; i < 5; i++)
        cr_assert_eq(berth_storage_record_put(b, rec.id, "{\"n\": 1}", 8), 0);
    snprintf(rel, sizeof(rel), "uploads/%s", rec.id);
    cr_assert_eq(fs_count_entries(rel), 2, "only data and record.json remain");
    berth_record_clear(&rec);
}

Test(storage_fs, upload_remove_also_removes_stale_temporary_files)
{
    berth_record_t rec;
    char path[512];
    FILE *f;

    fs_session(&rec);
    cr_assert_eq(berth_storage_record_put(b, rec.id, "{}", 2), 0);
    /* What a crash between creating and renaming a record leaves. */
    snprintf(path, sizeof(path), "%s/uploads/%s/record.json.tmp.1.2.3", fs_root, rec.id);
    cr_assert_not_null(f = fopen(path, "w"));
    fclose(f);
    cr_assert_eq(berth_storage_upload_remove(b, rec.id, &rec), 0, "%s", berth_error_last());
    cr_assert(!fs_exists("uploads/%s%s", rec.id, ""));
    berth_record_clear(&rec);
}

Test(storage_fs, upload_remove_tolerates_a_committed_session)
{
    char digest[BERTH_DIGEST_LEN];
    berth_record_t rec;

    fs_session(&rec);
    cr_assert_eq(berth_storage_record_put(b, rec.id, "{}", 2), 0);
    berth_sha256_of("", 0, digest);
    cr_assert_eq(berth_storage_upload_commit(b, &rec, digest), 0);
    cr_assert_eq(berth_storage_upload_remove(b, rec.id, &rec), 0, "%s", berth_error_last());
    berth_record_clear(&rec);
}

Test(storage_fs, commit_refuses_a_record_claiming_more_than_the_data_holds)
{
    char digest[BERTH_DIGEST_LEN];
    berth_record_t rec;
    uint64_t size;

    fs_session(&rec);
    cr_assert_eq(berth_storage_upload_write(b, &rec, 0, "abc", 3), 0);
    rec.offset = 10;
    berth_sha256_of("abc", 3, digest);
    cr_assert_eq(berth_storage_upload_commit(b, &rec, digest), BERTH_EIO);
    cr_assert_eq(berth_storage_blob_stat(b, digest, &size), BERTH_ENOTFOUND);
    berth_record_clear(&rec);
}

Test(storage_fs, commit_without_data_is_not_found)
{
    char digest[BERTH_DIGEST_LEN];
    berth_record_t rec;

    berth_record_init(&rec);
    cr_assert_eq(berth_id_generate(rec.id), 0);
    berth_sha256_of("", 0, digest);
    cr_assert_eq(berth_storage_upload_commit(b, &rec, digest), BERTH_ENOTFOUND);
}

static int fs_count_ids(void *ctx, const char *name)
{
    cr_assert(berth_id_valid(name, strlen(name)), "listed %s", name);
    (*(size_t *)ctx)++;
    return 0;
}

Test(storage_fs, record_list_skips_names_that_are_not_session_ids)
{
    char path[512], id[BERTH_ID_LEN];
    size_t n = 0;

    snprintf(path, sizeof(path), "%s/uploads/not-a-session", fs_root);
    cr_assert_eq(mkdir(path, 0755), 0);
    cr_assert_eq(berth_id_generate(id), 0);
    cr_assert_eq(berth_storage_record_put(b, id, "{}", 2), 0);
    cr_assert_eq(berth_storage_record_list(b, fs_count_ids, &n), 0);
    cr_assert_eq(n, 1);
}

Test(storage_fs, a_second_backend_on_the_same_root_sees_everything)
{
    char digest[BERTH_DIGEST_LEN], *buf = NULL;
    berth_storage_t *again;
    berth_record_t rec;
    uint64_t size;
    size_t len;

    fs_session(&rec);
    cr_assert_eq(berth_storage_record_put(b, rec.id, "{\"x\":2}", 7), 0);
    berth_sha256_of("", 0, digest);
    cr_assert_eq(berth_storage_link_put(b, "a/b", digest), 0);
    again = fs_open(BERTH_SYNC_NONE);
    cr_assert_eq(berth_storage_record_get(again, rec.id, &buf, &len), 0);
    cr_assert_eq(len, 7);
    cr_assert_eq(berth_storage_link_get(again, "a/b", digest), 0);
    cr_assert_eq(berth_storage_blob_stat(again, digest, &size), BERTH_ENOTFOUND);
    free(buf);
    berth_storage_free(again);
    berth_record_clear(&rec);
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
    cr_assert_str_eq(ob->name, "filesystem");
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

Test(storage_fs, a_missing_method_is_not_supported)
{
    berth_storage_t bare = {.version = BERTH_STORAGE_VERSION, .name = "bare"};
    char digest[BERTH_DIGEST_LEN];
    uint64_t size;

    berth_sha256_of("", 0, digest);
    cr_assert_eq(berth_storage_blob_stat(&bare, digest, &size), BERTH_ERR);
    cr_assert_not_null(strstr(berth_error_last(), "not supported"));
}

/* ---- fault injection --------------------------------------------------------- */

Test(storage_fs, a_counted_fault_fails_exactly_that_many_calls)
{
    berth_record_t rec;

    fs_session(&rec);
    berth_storage_fault_reset("upload_write:-6:1");
    cr_assert_eq(berth_storage_upload_write(b, &rec, 0, "a", 1), BERTH_EIO);
    cr_assert_not_null(strstr(berth_error_last(), "injected"));
    cr_assert_eq(berth_storage_upload_write(b, &rec, 0, "a", 1), 0, "%s", berth_error_last());
    cr_assert_eq(berth_storage_upload_write(b, &rec, 1, "b", 1), 0);
    berth_record_clear(&rec);
}

Test(storage_fs, an_uncounted_fault_fails_every_call_until_reset)
{
    char id[BERTH_ID_LEN];

    cr_assert_eq(berth_id_generate(id), 0);
    berth_storage_fault_reset("record_put:-11");
    for (int i = 0; i < 3; i++)
        cr_assert_eq(berth_storage_record_put(b, id, "{}", 2), BERTH_ENOSPACE);
    berth_storage_fault_reset(NULL);
    cr_assert_eq(berth_storage_record_put(b, id, "{}", 2), 0);
}

Test(storage_fs, several_fault_specs_apply_each_to_its_method)
{
    char digest[BERTH_DIGEST_LEN], id[BERTH_ID_LEN];
    uint64_t size;

    berth_sha256_of("", 0, digest);
    cr_assert_eq(berth_id_generate(id), 0);
    berth_storage_fault_reset("blob_stat:-7:2,bogus,link_put:-6:1");
    cr_assert_eq(berth_storage_blob_stat(b, digest, &size), BERTH_EUNAVAILABLE);
    cr_assert_eq(berth_storage_record_put(b, id, "{}", 2), 0, "other methods are unaffected");
    cr_assert_eq(berth_storage_link_put(b, "r", digest), BERTH_EIO);
    cr_assert_eq(berth_storage_blob_stat(b, digest, &size), BERTH_EUNAVAILABLE);
    cr_assert_eq(berth_storage_blob_stat(b, digest, &size), BERTH_ENOTFOUND);
    cr_assert_eq(berth_storage_link_put(b, "r", digest), 0);
}

Test(storage_fs, an_explicit_fault_reset_wins_over_the_environment)
{
    berth_config_t cfg;
    berth_storage_t *ob = NULL;
    char id[BERTH_ID_LEN], *buf = NULL;
    size_t len;

    /* The suite's setup called berth_storage_fault_reset(NULL) before the
     * environment was ever read, so a later open must not load it. */
    memset(&cfg, 0, sizeof(cfg));
    cfg.storage_driver = "filesystem";
    cfg.storage_fs_root = fs_root;
    cr_assert_eq(setenv("BERTH_FAULT", "record_get:-7:1", 1), 0);
    cr_assert_eq(berth_storage_open(&ob, &cfg), 0);
    cr_assert_eq(berth_id_generate(id), 0);
    cr_assert_eq(berth_storage_record_get(ob, id, &buf, &len), BERTH_ENOTFOUND);
    berth_storage_free(ob);
    unsetenv("BERTH_FAULT");
}

/* No fixture here: each criterion test runs in a fresh process, in which
 * nothing has read BERTH_FAULT yet. */
Test(storage_env, open_reads_faults_from_the_environment_once)
{
    berth_config_t cfg;
    berth_storage_t *ob = NULL;
    char root[64], id[BERTH_ID_LEN], *buf = NULL;
    size_t len;

    snprintf(root, sizeof(root), "/tmp/berth-env-XXXXXX");
    cr_assert_not_null(mkdtemp(root));
    memset(&cfg, 0, sizeof(cfg));
    cfg.storage_driver = "filesystem";
    cfg.storage_fs_root = root;
    cr_assert_eq(setenv("BERTH_FAULT", "record_get:-7:1", 1), 0);
    cr_assert_eq(berth_storage_open(&ob, &cfg), 0, "%s", berth_error_last());
    cr_assert_eq(berth_id_generate(id), 0);
    cr_assert_eq(berth_storage_record_get(ob, id, &buf, &len), BERTH_EUNAVAILABLE);
    cr_assert_eq(berth_storage_record_get(ob, id, &buf, &len), BERTH_ENOTFOUND);
    berth_storage_free(ob);
    unsetenv("BERTH_FAULT");
    snprintf(fs_root, sizeof(fs_root), "%s", root);
    fs_rm_root();
}

/* ---- direct I/O for large writes ------------------------------------------------ */

static void fs_fill(unsigned char *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1103515245u + 12345u;
        p[i] = (unsigned char)(seed >> 16);
    }
}

/* Commits the session as a blob and checks its bytes against want. */
static void fs_commit_and_compare(berth_record_t *rec, const unsigned char *want, size_t len)
{
    char digest[BERTH_DIGEST_LEN];
    unsigned char *got = malloc(len + 1);
    uint64_t size = 0;
    size_t n = 0, off = 0;

    cr_assert_not_null(got);
    rec->offset = len;
    berth_sha256_of(want, len, digest);
    cr_assert_eq(berth_storage_upload_commit(b, rec, digest), 0, "%s", berth_error_last());
    cr_assert_eq(berth_storage_blob_stat(b, digest, &size), 0);
    cr_assert_eq(size, len, "blob is %llu bytes, want %zu (padding of a direct write left behind?)",
                 (unsigned long long)size, len);
    while (off < len) {
        cr_assert_eq(berth_storage_blob_read(b, digest, off, got + off, len - off, &n), 0);
        cr_assert_gt(n, 0);
        off += n;
    }
    cr_assert(memcmp(got, want, len) == 0, "blob bytes differ");
    free(got);
}

Test(storage_fs, large_unaligned_chunks_mixed_with_small_ones_are_byte_exact)
{
    /* Small chunks take the buffered path, large ones the direct path with
     * an unaligned start (read-modify-write of the first block), a padded
     * last block and several bounce-buffer rounds. */
    static const size_t sizes[] = {5000, 300 * 1024 + 7, 4097, 5 * 1024 * 1024 + 3, 262144, 1, 9 * 1024 * 1024};
    size_t total = 0, off = 0;
    berth_record_t rec;
    unsigned char *data;

    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++)
        total += sizes[i];
    cr_assert_not_null(data = malloc(total));
    fs_fill(data, total, 7);
    fs_session(&rec);
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        cr_assert_eq(berth_storage_upload_write(b, &rec, off, data + off, sizes[i]), 0, "%s", berth_error_last());
        off += sizes[i];
    }
    fs_commit_and_compare(&rec, data, total);
    berth_record_clear(&rec);
    free(data);
}

Test(storage_fs, a_rewritten_large_chunk_replaces_the_padding_of_the_previous_one)
{
    /* A chunk written after a crash lost its record lands on the padded tail
     * of the last direct write; the bytes must be the new ones. */
    size_t a = 400 * 1024 + 123, c = 600 * 1024 + 1;
    berth_record_t rec;
    unsigned char *data;

    cr_assert_not_null(data = malloc(a + c));
    fs_fill(data, a + c, 11);
    fs_session(&rec);
    cr_assert_eq(berth_storage_upload_write(b, &rec, 0, data, a), 0, "%s", berth_error_last());
    /* garbage past the offset, as an unrecorded chunk would leave */
    unsigned char *junk = malloc(c);
    cr_assert_not_null(junk);
    memset(junk, 0xee, c);
    cr_assert_eq(berth_storage_upload_write(b, &rec, a, junk, c), 0);
    cr_assert_eq(berth_storage_upload_write(b, &rec, a, data + a, c), 0, "%s", berth_error_last());
    fs_commit_and_compare(&rec, data, a + c);
    berth_record_clear(&rec);
    free(junk);
    free(data);
}

static void fs_parts_in_reverse(uint64_t part_size, uint64_t total)
{
    uint64_t nparts = (total + part_size - 1) / part_size;
    berth_record_t rec;
    unsigned char *data;

    cr_assert_not_null(data = malloc(total));
    fs_fill(data, total, (unsigned)part_size);
    berth_record_init(&rec);
    cr_assert_eq(berth_id_generate(rec.id), 0);
    rec.kind = BERTH_SESSION_PARTS;
    rec.part_size = part_size;
    rec.total_parts = nparts;
    rec.total_size = total;
    cr_assert_eq(berth_storage_upload_create(b, &rec), 0, "%s", berth_error_last());
    /* Last part first: every later write has a neighbour already stored
     * after it that padding or a read-modify-write would clobber. */
    for (uint64_t n = nparts; n >= 1; n--) {
        uint64_t off = (n - 1) * part_size;
        size_t len = (size_t)(n == nparts ? total - off : part_size);
        cr_assert_eq(berth_storage_upload_write(b, &rec, off, data + off, len), 0, "%s", berth_error_last());
    }
    fs_commit_and_compare(&rec, data, (size_t)total);
    berth_record_clear(&rec);
    free(data);
}

Test(storage_fs, parts_of_an_unaligned_size_written_out_of_order_keep_their_neighbours)
{
    fs_parts_in_reverse(300 * 1024 + 5, 3 * (300 * 1024 + 5) + 1000);
}

Test(storage_fs, aligned_parts_written_out_of_order_keep_their_neighbours)
{
    fs_parts_in_reverse(512 * 1024, 4 * 512 * 1024 + 777);
}

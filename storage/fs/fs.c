/*
 * The filesystem backend (layout in fs.h): the helpers its files share,
 * blobs, and the method table. Objects are in fsobj.c, session data in
 * fsdata.c.
 *
 * Every path is resolved relative to a descriptor of the root opened once,
 * so the backend keeps working if the root is renamed, and it holds no
 * mutable state of its own: concurrent calls, of this process or another,
 * only ever meet in the filesystem, where creation races are settled by
 * EEXIST and rename, and compare-and-swap by a lock file (fsobj.c).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include "core/digest.h"
#include "core/error.h"
#include "storage/fs/fs.h"
#include "storage/fs/fsint.h"

/* ---- helpers shared by the backend's files ------------------------------ */

/* Unique suffixes for temporary files within this process; the pid and tid
 * in the name make them unique across processes sharing a root. */
static unsigned long fs__tmp_counter;

int berth__fs_errno(int err, const char *op, const char *path)
{
    switch (err) {
    case ENOENT:
        return berth_error_set(BERTH_ENOTFOUND, "%s %s: %s", op, path, strerror(err));
    case ENOSPC:
    case EDQUOT:
        return berth_error_set(BERTH_ENOSPACE, "%s %s: %s", op, path, strerror(err));
    case ENOMEM:
        return berth_error_set(BERTH_ERR, "%s %s: %s", op, path, strerror(err));
    default:
        return berth_error_set(BERTH_EIO, "%s %s: %s", op, path, strerror(err));
    }
}

int berth__fs_path(char *out, const char *fmt, ...)
{
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(out, BERTH__FS_PATH_MAX, fmt, ap);
    va_end(ap);
    if (n < 0 || n >= BERTH__FS_PATH_MAX)
        return berth_error_set(BERTH_EINVALID, "storage path too long");
    return 0;
}

int berth__fs_tmp_name(char *out, const char *dir, const char *name)
{
    return berth__fs_path(out, "%s/%s~tmp.%ld.%ld.%lu", dir, name, (long)getpid(), (long)gettid(),
                          __atomic_add_fetch(&fs__tmp_counter, 1, __ATOMIC_RELAXED));
}

int berth__fs_mkdirs(berth_fs_t *fs, const char *rel)
{
    char tmp[BERTH__FS_PATH_MAX];
    size_t len = strlen(rel);

    if (len >= sizeof(tmp))
        return berth_error_set(BERTH_EINVALID, "storage path too long");
    memcpy(tmp, rel, len + 1);
    for (size_t i = 1; i <= len; i++) {
        if (tmp[i] != '/' && tmp[i] != '\0')
            continue;
        tmp[i] = '\0';
        if (mkdirat(fs->rootfd, tmp, 0755) < 0 && errno != EEXIST)
            return berth__fs_errno(errno, "mkdir", tmp);
        if (i < len)
            tmp[i] = '/';
    }
    return 0;
}

/* A rename into a directory survives power loss only once the directory
 * itself is synced. */
int berth__fs_sync_dir(berth_fs_t *fs, const char *rel)
{
    int fd, err = 0;

    if ((fd = openat(fs->rootfd, rel, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
        return berth__fs_errno(errno, "open", rel);
    if (fsync(fd) < 0)
        err = berth__fs_errno(errno, "fsync", rel);
    close(fd);
    return err;
}

int berth__fs_write_all(int fd, const void *buf, size_t len, uint64_t offset, const char *path)
{
    const char *p = buf;

    while (len > 0) {
        ssize_t n = pwrite(fd, p, len, (off_t)offset);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return berth__fs_errno(errno, "write", path);
        }
        p += n;
        len -= (size_t)n;
        offset += (uint64_t)n;
    }
    return 0;
}

int berth__fs_pread_full(int fd, void *buf, size_t len, uint64_t offset, const char *path, size_t *got)
{
    size_t total = 0;

    while (total < len) {
        ssize_t n = pread(fd, (char *)buf + total, len - total, (off_t)(offset + total));
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return berth__fs_errno(errno, "read", path);
        }
        if (n == 0)
            break;
        total += (size_t)n;
    }
    *got = total;
    return 0;
}

/* ---- walking directories ------------------------------------------------ */

/* The directories still to visit. The walk keeps paths, not open
 * descriptors: a repository name may nest a hundred directories deep, and
 * one descriptor per level, on every thread listing at once, would run a
 * server out of them. Only the directory being read is open. */
typedef struct fs__todo {
    char **dirs;
    size_t n, cap;
} fs__todo_t;

static int fs__todo_push(fs__todo_t *t, const char *rel)
{
    char *copy;

    if (t->n == t->cap) {
        size_t cap = t->cap != 0 ? t->cap * 2 : 16;
        char **dirs = realloc(t->dirs, cap * sizeof(*dirs));
        if (dirs == NULL)
            return berth_error_set(BERTH_ERR, "out of memory");
        t->dirs = dirs;
        t->cap = cap;
    }
    if ((copy = strdup(rel)) == NULL)
        return berth_error_set(BERTH_ERR, "out of memory");
    t->dirs[t->n++] = copy;
    return 0;
}

/* Reads one directory: files go to cb, subdirectories onto the to-do list. */
static int fs__walk_dir(berth_fs_t *fs, const char *rel, fs__todo_t *todo, int (*skip)(const char *rel),
                        berth__fs_walk_cb cb, void *ctx)
{
    char child[BERTH__FS_PATH_MAX];
    size_t base = strlen(rel);
    struct dirent *de;
    DIR *dir;
    int fd, err = 0;

    /* "" is the root itself; its children's paths have no leading '/'. */
    if ((fd = openat(fs->rootfd, base != 0 ? rel : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
        return errno == ENOENT || errno == ENOTDIR ? 0 : berth__fs_errno(errno, "open", rel);
    if ((dir = fdopendir(fd)) == NULL) {
        err = berth__fs_errno(errno, "opendir", rel);
        close(fd);
        return err;
    }
    memcpy(child, rel, base);
    if (base != 0)
        child[base++] = '/';
    while (errno = 0, (de = readdir(dir)) != NULL) {
        size_t nlen = strlen(de->d_name);
        struct stat st;

        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0 || base + nlen >= sizeof(child))
            continue; /* too long: not a name berth made */
        if (fstatat(dirfd(dir), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
            if (errno == ENOENT)
                continue;
            err = berth__fs_errno(errno, "stat", de->d_name);
            break;
        }
        memcpy(child + base, de->d_name, nlen + 1);
        if (S_ISDIR(st.st_mode) && (skip == NULL || !skip(child)))
            err = fs__todo_push(todo, child);
        else if (S_ISREG(st.st_mode))
            err = cb(ctx, child, &st);
        if (err != 0)
            break;
    }
    if (err == 0 && errno != 0)
        err = berth__fs_errno(errno, "readdir", rel);
    closedir(dir);
    return err;
}

int berth__fs_walk(berth_fs_t *fs, const char *rel, int (*skip)(const char *rel), berth__fs_walk_cb cb, void *ctx)
{
    fs__todo_t todo = {.n = 0};
    int err;

    if ((err = fs__todo_push(&todo, rel)) < 0)
        goto done;
    while (todo.n > 0) {
        char *dir = todo.dirs[--todo.n];
        err = fs__walk_dir(fs, dir, &todo, skip, cb, ctx);
        free(dir);
        if (err != 0)
            goto done;
    }

done:
    while (todo.n > 0)
        free(todo.dirs[--todo.n]);
    free(todo.dirs);
    return err;
}

/* ---- blobs ---------------------------------------------------------------- */

/* The 64 hex digits of a validated "sha256:<hex>" digest. */
static const char *fs__hex(const char *digest)
{
    return digest + 7;
}

int berth__fs_blob_path(char *out, const char *digest)
{
    const char *hex = fs__hex(digest);
    return berth__fs_path(out, "blobs/sha256/%.2s/%s/data", hex, hex);
}

static int fs__blob_stat(berth_storage_t *b, const char *digest, uint64_t *size)
{
    berth_fs_t *fs = berth__fs_of(b);
    char path[BERTH__FS_PATH_MAX];
    struct stat st;
    int err;

    if ((err = berth__fs_blob_path(path, digest)) < 0)
        return err;
    if (fstatat(fs->rootfd, path, &st, 0) < 0)
        return berth__fs_errno(errno, "stat", path);
    if (!S_ISREG(st.st_mode))
        return berth_error_set(BERTH_EIO, "stat %s: not a regular file", path);
    *size = (uint64_t)st.st_size;
    return 0;
}

#define FS__READAHEAD_MIN (256 * 1024)
#define FS__READAHEAD (8 * 1024 * 1024)

static int fs__blob_read(berth_storage_t *b, const char *digest, uint64_t offset, void *buf, size_t len, size_t *got)
{
    berth_fs_t *fs = berth__fs_of(b);
    char path[BERTH__FS_PATH_MAX];
    int fd = -1, err;

    *got = 0;
    if ((err = berth__fs_blob_path(path, digest)) < 0)
        goto done;
    if ((fd = openat(fs->rootfd, path, O_RDONLY | O_CLOEXEC)) < 0) {
        err = berth__fs_errno(errno, "open", path);
        goto done;
    }
    if (offset > (uint64_t)INT64_MAX)
        goto done; /* past any possible end */
    /* Readers go through a blob slice by slice, each on a fresh descriptor,
     * which defeats the kernel's readahead; ask for the next slices now so
     * that they come from the disk while this one is sent. Blobs written
     * with direct I/O are not in the page cache at all. */
    if (len >= FS__READAHEAD_MIN)
        (void)posix_fadvise(fd, (off_t)offset, (off_t)(len + FS__READAHEAD), POSIX_FADV_WILLNEED);
    err = berth__fs_pread_full(fd, buf, len, offset, path, got);

done:
    if (fd >= 0)
        close(fd);
    return err;
}

static int fs__blob_remove(berth_storage_t *b, const char *digest)
{
    berth_fs_t *fs = berth__fs_of(b);
    char path[BERTH__FS_PATH_MAX];
    int err;

    /* The blob's directories stay: removing them would race with a commit
     * of the same digest creating them. */
    if ((err = berth__fs_blob_path(path, digest)) < 0)
        return err;
    if (unlinkat(fs->rootfd, path, 0) < 0)
        return berth__fs_errno(errno, "unlink", path);
    return 0;
}

typedef struct fs__blob_walk {
    berth_blob_cb cb;
    void *ctx;
} fs__blob_walk_t;

static int fs__hex64(const char *s)
{
    for (int i = 0; i < 64; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return 0;
    return 1;
}

static int fs__blob_walk_cb(void *ctx, const char *rel, const struct stat *st)
{
    fs__blob_walk_t *w = ctx;
    char digest[BERTH_DIGEST_LEN];
    /* "blobs/sha256/<aa>/<hex>/data" */
    static const size_t want = 13 + 3 + 65 + 4;

    if (strlen(rel) != want || memcmp(rel, "blobs/sha256/", 13) != 0 || rel[15] != '/' ||
        memcmp(rel + 16, rel + 13, 2) != 0 || !fs__hex64(rel + 16) || strcmp(rel + 80, "/data") != 0)
        return 0;
    snprintf(digest, sizeof(digest), "sha256:%.64s", rel + 16);
    return w->cb(w->ctx, digest, (uint64_t)st->st_size, (int64_t)st->st_mtime);
}

static int fs__blob_list(berth_storage_t *b, berth_blob_cb cb, void *ctx)
{
    fs__blob_walk_t w = {.cb = cb, .ctx = ctx};

    return berth__fs_walk(berth__fs_of(b), "blobs/sha256", NULL, fs__blob_walk_cb, &w);
}

/* ---- lifecycle ------------------------------------------------------------ */

static void fs__free(berth_storage_t *b)
{
    berth_fs_t *fs = berth__fs_of(b);

    if (fs == NULL)
        return;
    if (fs->rootfd >= 0)
        close(fs->rootfd);
    free(fs->root);
    free(fs);
}

/* blob_url is left out: the server sends blobs itself. */
static const berth_storage_methods_t fs__methods = {
    .name = "filesystem",
    .free = fs__free,
    .obj_get = berth__fs_obj_get,
    .obj_put = berth__fs_obj_put,
    .obj_delete = berth__fs_obj_delete,
    .obj_list = berth__fs_obj_list,
    .data_create = berth__fs_data_create,
    .data_open = berth__fs_data_open,
    .writer_write = berth__fs_writer_write,
    .writer_close = berth__fs_writer_close,
    .data_read = berth__fs_data_read,
    .data_commit = berth__fs_data_commit,
    .data_remove = berth__fs_data_remove,
    .data_list = berth__fs_data_list,
    .blob_stat = fs__blob_stat,
    .blob_read = fs__blob_read,
    .blob_remove = fs__blob_remove,
    .blob_list = fs__blob_list,
};

/* mkdir -p of the root itself, which may be absolute or relative to the
 * working directory. */
static int fs__mkdirs_root(const char *root)
{
    char tmp[PATH_MAX];
    size_t len = strlen(root);

    if (len == 0 || len >= sizeof(tmp))
        return berth_error_set(BERTH_EINVALID, "storage root \"%s\": bad path", root);
    memcpy(tmp, root, len + 1);
    for (size_t i = 1; i <= len; i++) {
        if (tmp[i] != '/' && tmp[i] != '\0')
            continue;
        tmp[i] = '\0';
        if (mkdir(tmp, 0755) < 0 && errno != EEXIST)
            return berth__fs_errno(errno, "mkdir", tmp);
        if (i < len)
            tmp[i] = '/';
    }
    return 0;
}

int berth_storage_fs_new(berth_storage_t **out, const berth_fs_options_t *o)
{
    static const char *const dirs[] = {"uploads", "blobs/sha256", "repositories", "meta", "sessions"};
    berth_fs_t *fs = NULL;
    int err;

    if (out == NULL)
        return berth_error_set(BERTH_EINVALID, "fs_new: missing argument");
    *out = NULL;
    if (o == NULL || o->root == NULL)
        return berth_error_set(BERTH_EINVALID, "storage.filesystem.rootdirectory is not set");
    if ((fs = calloc(1, sizeof(*fs))) == NULL)
        return berth_error_set(BERTH_ERR, "out of memory");
    fs->super.methods = &fs__methods;
    fs->rootfd = -1;
    fs->sync = o->sync;
    atomic_init(&fs->direct, 1);

    if ((fs->root = strdup(o->root)) == NULL) {
        err = berth_error_set(BERTH_ERR, "out of memory");
        goto done;
    }
    if ((err = fs__mkdirs_root(fs->root)) < 0)
        goto done;
    if ((fs->rootfd = open(fs->root, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
        err = berth__fs_errno(errno, "open", fs->root);
        goto done;
    }
    for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
        if ((err = berth__fs_mkdirs(fs, dirs[i])) < 0)
            goto done;
    }
    *out = &fs->super;
    fs = NULL;

done:
    if (fs != NULL)
        fs__free(&fs->super);
    return err;
}

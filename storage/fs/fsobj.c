/*
 * Objects of the filesystem backend: one file per key (layout in fs.h),
 * replaced whole by write + rename, with compare-and-swap.
 *
 * Versions. A put writes a new file and renames it over the old one, so
 * every stored value is a new inode; its version is the file's identity
 * "<inode>.<mtime s>.<mtime ns>.<size>" (hex), read with fstat from the
 * descriptor the value is read through, so a value and its version always
 * match. An inode number alone could come back: once a file is replaced
 * its inode is free for the next one. So every put stamps its file with
 * the clock in nanoseconds, and, under the lock below, later than the file
 * it replaces: versions of one key never repeat, even when an inode does.
 * (On a filesystem keeping whole seconds only, a key replaced twice within
 * a second by values of one size could see its inode, and so a version,
 * come back; berth's stores are ext4, XFS or tmpfs, which keep ns.)
 *
 * Atomic check-and-write. Every put and delete of a key, conditional or
 * not, holds an OFD lock (fcntl F_OFD_SETLKW) on one byte of the lock file
 * <root>/.lock~, picked by a hash of the key, from the look at the current
 * version to the rename or unlink. OFD locks belong to an open file
 * description, so each operation opens the lock file itself: two threads
 * exclude each other as two processes do, and a process that dies drops
 * its locks. Unconditional writes take the lock too, only around their
 * rename: one landing between another writer's check and its rename
 * would break that writer's atomicity. The new file is written and
 * synced before the lock is taken, so the lock is held for a stat and a
 * rename, never for a disk flush.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/error.h"
#include "storage/fs/fsint.h"

/* A name that is no key ('~'), so no object ever lands on it. */
#define FSOBJ__LOCK ".lock~"
/* Bytes of the lock file keys hash onto: unrelated keys rarely share one. */
#define FSOBJ__LOCK_SLOTS (1u << 20)
/* A put whose directory a concurrent delete keeps removing tries again. */
#define FSOBJ__ATTEMPTS 8

/* Where a key lives: its file, the directory holding it and its name. */
typedef struct fsobj__where {
    char path[BERTH__FS_PATH_MAX];
    char dir[BERTH__FS_PATH_MAX];
    const char *name; /* in path */
    int durable;      /* fsync the file and its directory */
} fsobj__where_t;

/* The backend's own directories at the top (fs.h) hold no objects: 1 when
 * a key's first component, of length len, names one. */
static int fsobj__reserved(const char *key, size_t len)
{
    return (len == 7 && memcmp(key, "uploads", 7) == 0) || (len == 5 && memcmp(key, "blobs", 5) == 0);
}

static int fsobj__where(berth_fs_t *fs, const char *key, fsobj__where_t *w)
{
    const char *slash = strchr(key, '/');
    char *last;
    int err;

    /* Key "meta" would be the directory of the keys under meta/. */
    if (fsobj__reserved(key, slash != NULL ? (size_t)(slash - key) : strlen(key)) || strcmp(key, "meta") == 0)
        return berth_error_set(BERTH_EINVALID, "object key \"%s\": reserved by the filesystem backend", key);
    /* Keys under meta/ nest, so their files carry a '~' (never in a key)
     * to leave the plain name free for a directory. */
    if (strncmp(key, "meta/", 5) == 0)
        err = berth__fs_path(w->path, "%s~", key);
    else
        err = berth__fs_path(w->path, "%s", key);
    if (err < 0)
        return err;
    memcpy(w->dir, w->path, sizeof(w->dir));
    if ((last = strrchr(w->dir, '/')) != NULL) {
        *last = '\0';
        w->name = w->path + (last - w->dir) + 1;
    } else {
        memcpy(w->dir, ".", 2);
        w->name = w->path;
    }
    /* Today's rules: session records are synced with sync "always" only
     * (they are rewritten on every chunk), links and metadata unless
     * "none". */
    if (strncmp(key, "sessions/", 9) == 0)
        w->durable = fs->sync == BERTH_SYNC_ALWAYS;
    else
        w->durable = fs->sync != BERTH_SYNC_NONE;
    return 0;
}

static void fsobj__version(const struct stat *st, berth_version_t *ver)
{
    snprintf(ver->tag, sizeof(ver->tag), "%llx.%llx.%lx.%llx", (unsigned long long)st->st_ino,
             (unsigned long long)st->st_mtim.tv_sec, (long)st->st_mtim.tv_nsec, (unsigned long long)st->st_size);
}

/* ---- the lock ------------------------------------------------------------- */

static int fsobj__lock(berth_fs_t *fs, const char *key, int *out)
{
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_len = 1};
    uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a */
    int fd;

    for (const char *p = key; *p != '\0'; p++)
        h = (h ^ (unsigned char)*p) * 0x100000001b3ull;
    fl.l_start = (off_t)(h % FSOBJ__LOCK_SLOTS);
    if ((fd = openat(fs->rootfd, FSOBJ__LOCK, O_RDWR | O_CREAT | O_CLOEXEC, 0644)) < 0)
        return berth__fs_errno(errno, "open", FSOBJ__LOCK);
    while (fcntl(fd, F_OFD_SETLKW, &fl) < 0) {
        if (errno != EINTR) {
            int err = berth__fs_errno(errno, "lock", FSOBJ__LOCK);
            close(fd);
            return err;
        }
    }
    *out = fd;
    return 0;
}

/* Closing the only descriptor of the description releases its lock. */
static void fsobj__unlock(int fd)
{
    close(fd);
}

/* The stored file of a key, under the lock: 1 and *st when there is one,
 * 0 when absent. */
static int fsobj__current(berth_fs_t *fs, const fsobj__where_t *w, struct stat *st)
{
    if (fstatat(fs->rootfd, w->path, st, AT_SYMLINK_NOFOLLOW) < 0) {
        if (errno == ENOENT || errno == ENOTDIR)
            return 0;
        return berth__fs_errno(errno, "stat", w->path);
    }
    return S_ISREG(st->st_mode) ? 1 : 0;
}

/* The condition of a put or delete against the current file. */
static int fsobj__check(const char *key, int exists, const struct stat *st, const berth_version_t *expect)
{
    berth_version_t cur;

    if (expect == NULL)
        return 0;
    if (expect->tag[0] == '\0') {
        if (exists)
            return berth_error_set(BERTH_ECONFLICT, "object %s: exists", key);
        return 0;
    }
    if (!exists)
        return berth_error_set(BERTH_ECONFLICT, "object %s: gone", key);
    fsobj__version(st, &cur);
    if (strcmp(cur.tag, expect->tag) != 0)
        return berth_error_set(BERTH_ECONFLICT, "object %s: changed", key);
    return 0;
}

/* ---- get ------------------------------------------------------------------ */

int berth__fs_obj_get(berth_storage_t *b, const char *key, char **buf, size_t *len, berth_version_t *ver)
{
    berth_fs_t *fs = berth__fs_of(b);
    fsobj__where_t w;
    char *data = NULL;
    struct stat st;
    size_t got = 0;
    int fd = -1, err;

    if ((err = fsobj__where(fs, key, &w)) < 0)
        goto done;
    if ((fd = openat(fs->rootfd, w.path, O_RDONLY | O_CLOEXEC)) < 0) {
        /* A path component that is a file (key "a" when "a/b" is asked
         * for) means the object is not there. */
        err = berth__fs_errno(errno == ENOTDIR ? ENOENT : errno, "open", w.path);
        goto done;
    }
    if (fstat(fd, &st) < 0) {
        err = berth__fs_errno(errno, "stat", w.path);
        goto done;
    }
    if (!S_ISREG(st.st_mode)) {
        err = berth_error_set(BERTH_ENOTFOUND, "object %s: not found", key);
        goto done;
    }
    /* Files are only ever replaced by rename, never written in place, so
     * the size cannot change under us. One over the limit is corrupt. */
    if ((uint64_t)st.st_size > BERTH_OBJ_VALUE_MAX) {
        err = berth_error_set(BERTH_EIO, "object %s: too large (%lld bytes)", key, (long long)st.st_size);
        goto done;
    }
    if ((data = malloc((size_t)st.st_size + 1)) == NULL) {
        err = berth_error_set(BERTH_ERR, "out of memory");
        goto done;
    }
    if ((err = berth__fs_pread_full(fd, data, (size_t)st.st_size, 0, w.path, &got)) < 0)
        goto done;
    data[got] = '\0';
    if (ver != NULL)
        fsobj__version(&st, ver);
    *buf = data;
    *len = got;
    data = NULL;

done:
    if (fd >= 0)
        close(fd);
    free(data);
    return err;
}

/* ---- put ------------------------------------------------------------------ */

/* Writes the new value as a temporary file beside the key's file, stamped
 * with the clock, synced when durable; *fd stays open for the rename.
 * BERTH_ENOTFOUND when a delete removed the directory meanwhile. */
static int fsobj__write_tmp(berth_fs_t *fs, const fsobj__where_t *w, const void *buf, size_t len, char *tmp, int *fdp)
{
    struct timespec ts[2] = {{.tv_nsec = UTIME_OMIT}};
    int fd = -1, err;

    if ((err = berth__fs_tmp_name(tmp, w->dir, w->name)) < 0)
        return err;
    if ((fd = openat(fs->rootfd, tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644)) < 0) {
        if (errno == ENOTDIR)
            return berth_error_set(BERTH_EINVALID, "object %s: a key above it is an object", w->path);
        return berth__fs_errno(errno, "create", tmp);
    }
    clock_gettime(CLOCK_REALTIME, &ts[1]);
    if ((err = berth__fs_write_all(fd, buf, len, 0, tmp)) < 0)
        goto done;
    if (futimens(fd, ts) < 0) {
        err = berth__fs_errno(errno, "utimens", tmp);
        goto done;
    }
    if (w->durable && fsync(fd) < 0) {
        err = berth__fs_errno(errno, "fsync", tmp);
        goto done;
    }
    *fdp = fd;
    fd = -1;

done:
    if (fd >= 0) {
        close(fd);
        unlinkat(fs->rootfd, tmp, 0);
    }
    return err;
}

/* Under the key's lock: checks the condition, makes the new file's mtime
 * later than the one it replaces, renames it into place. */
static int fsobj__install(berth_fs_t *fs, const fsobj__where_t *w, const char *key, const char *tmp, int fd,
                          const berth_version_t *expect)
{
    struct stat cur, mine;
    int lockfd = -1, exists, err;

    if ((err = fsobj__lock(fs, key, &lockfd)) < 0)
        goto done;
    if ((exists = err = fsobj__current(fs, w, &cur)) < 0 || (err = fsobj__check(key, exists, &cur, expect)) < 0)
        goto done;
    if (fstat(fd, &mine) < 0) {
        err = berth__fs_errno(errno, "stat", tmp);
        goto done;
    }
    if (exists && (mine.st_mtim.tv_sec < cur.st_mtim.tv_sec ||
                   (mine.st_mtim.tv_sec == cur.st_mtim.tv_sec && mine.st_mtim.tv_nsec <= cur.st_mtim.tv_nsec))) {
        /* A clock step back, or the same nanosecond: one past the old. */
        struct timespec ts[2] = {{.tv_nsec = UTIME_OMIT}, cur.st_mtim};
        if (++ts[1].tv_nsec == 1000000000L) {
            ts[1].tv_sec++;
            ts[1].tv_nsec = 0;
        }
        if (futimens(fd, ts) < 0) {
            err = berth__fs_errno(errno, "utimens", tmp);
            goto done;
        }
    }
    if (renameat(fs->rootfd, tmp, fs->rootfd, w->path) < 0) {
        if (errno == EISDIR || errno == ENOTEMPTY || errno == EEXIST)
            err = berth_error_set(BERTH_EINVALID, "object %s: keys exist below it", key);
        else
            err = berth__fs_errno(errno, "rename", tmp);
        goto done;
    }

done:
    if (lockfd >= 0)
        fsobj__unlock(lockfd);
    return err;
}

int berth__fs_obj_put(berth_storage_t *b, const char *key, const void *buf, size_t len, const berth_version_t *expect,
                      berth_version_t *ver)
{
    berth_fs_t *fs = berth__fs_of(b);
    char tmp[BERTH__FS_PATH_MAX];
    fsobj__where_t w;
    struct stat st;
    int fd = -1, err;

    tmp[0] = '\0';
    if ((err = fsobj__where(fs, key, &w)) < 0)
        goto done;
    /* A delete emptying the directory removes it; a put losing that race
     * finds its directory gone and makes it again. */
    for (int attempt = 0; attempt < FSOBJ__ATTEMPTS; attempt++) {
        if ((err = berth__fs_mkdirs(fs, w.dir)) < 0)
            goto done;
        if ((err = fsobj__write_tmp(fs, &w, buf, len, tmp, &fd)) != BERTH_ENOTFOUND)
            break;
    }
    if (err < 0) {
        tmp[0] = '\0';
        goto done;
    }
    if ((err = fsobj__install(fs, &w, key, tmp, fd, expect)) < 0)
        goto done;
    tmp[0] = '\0'; /* renamed: nothing left to clean up */
    if (ver != NULL) {
        if (fstat(fd, &st) < 0) {
            err = berth__fs_errno(errno, "stat", w.path);
            goto done;
        }
        fsobj__version(&st, ver);
    }
    if (w.durable)
        err = berth__fs_sync_dir(fs, w.dir);

done:
    if (fd >= 0)
        close(fd);
    if (tmp[0] != '\0')
        unlinkat(fs->rootfd, tmp, 0);
    return err;
}

/* ---- delete ---------------------------------------------------------------- */

/* Best effort: drops the directories a delete left empty, up to the top
 * one (sessions, repositories, meta), which stays. */
static void fsobj__prune(berth_fs_t *fs, const char *dir)
{
    char path[BERTH__FS_PATH_MAX];
    char *slash;

    memcpy(path, dir, strlen(dir) + 1);
    while ((slash = strrchr(path, '/')) != NULL) {
        if (unlinkat(fs->rootfd, path, AT_REMOVEDIR) < 0)
            break;
        *slash = '\0';
    }
}

int berth__fs_obj_delete(berth_storage_t *b, const char *key, const berth_version_t *expect)
{
    berth_fs_t *fs = berth__fs_of(b);
    fsobj__where_t w;
    struct stat cur;
    int lockfd = -1, exists, err;

    if ((err = fsobj__where(fs, key, &w)) < 0)
        return err;
    if ((err = fsobj__lock(fs, key, &lockfd)) < 0)
        return err;
    if ((exists = err = fsobj__current(fs, &w, &cur)) < 0)
        goto done;
    if (!exists) {
        err = berth_error_set(BERTH_ENOTFOUND, "object %s: not found", key);
        goto done;
    }
    if ((err = fsobj__check(key, exists, &cur, expect)) < 0)
        goto done;
    if (unlinkat(fs->rootfd, w.path, 0) < 0)
        err = berth__fs_errno(errno, "unlink", w.path);

done:
    fsobj__unlock(lockfd);
    if (err == 0 && w.durable)
        err = berth__fs_sync_dir(fs, w.dir);
    if (err == 0)
        fsobj__prune(fs, w.dir);
    return err;
}

/* ---- list ------------------------------------------------------------------ */

typedef struct fsobj__walk {
    berth_obj_cb cb;
    void *ctx;
} fsobj__walk_t;

/* Directories whose name is no key component hold no objects: temporary
 * or foreign ones (lost+found), and the backend's own at the top. */
static int fsobj__skip(const char *rel)
{
    const char *name = strrchr(rel, '/');

    name = name != NULL ? name + 1 : rel;
    if (!berth_obj_key_valid(name, strlen(name)))
        return 1;
    return name == rel && fsobj__reserved(rel, strlen(rel));
}

static int fsobj__walk_cb(void *ctx, const char *rel, const struct stat *st)
{
    fsobj__walk_t *w = ctx;
    char key[BERTH__FS_PATH_MAX];
    size_t len = strlen(rel);
    const char *slash = strchr(rel, '/');

    /* "meta/<key>~" is key "meta/<key>"; anything else under meta/ is a
     * temporary file or a stranger. */
    if (strncmp(rel, "meta/", 5) == 0) {
        if (rel[len - 1] != '~')
            return 0;
        len--;
    }
    memcpy(key, rel, len);
    key[len] = '\0';
    if (!berth_obj_key_valid(key, len) || fsobj__reserved(key, slash != NULL ? (size_t)(slash - rel) : len))
        return 0;
    return w->cb(w->ctx, key, (uint64_t)st->st_size, (int64_t)st->st_mtime);
}

int berth__fs_obj_list(berth_storage_t *b, const char *prefix, berth_obj_cb cb, void *ctx)
{
    char dir[BERTH__FS_PATH_MAX];
    fsobj__walk_t w = {.cb = cb, .ctx = ctx};
    size_t plen = strlen(prefix);
    const char *slash = strchr(prefix, '/');
    int err;

    /* The prefix's directory is the prefix without its '/': directories
     * are named as key components, also under meta/. */
    if (slash != NULL && fsobj__reserved(prefix, (size_t)(slash - prefix)))
        return 0;
    if ((err = berth__fs_path(dir, "%.*s", (int)(plen > 0 ? plen - 1 : 0), prefix)) < 0)
        return err;
    return berth__fs_walk(berth__fs_of(b), dir, fsobj__skip, fsobj__walk_cb, &w);
}

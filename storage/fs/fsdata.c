/*
 * Session data of the filesystem backend: one file per session,
 * uploads/<id>/data, written in place at offsets, renamed into blobs/ at
 * commit (layout in fs.h).
 *
 * The state string. Files need none to find a session's bytes; the one
 * thing a writer must know is who else may write near it, for direct I/O
 * (below). Append layouts have no state (NULL): one write at a time, and
 * nothing anyone claims after it. Unit layouts get "u=<unit>;n=<units>",
 * from which a writer knows where its unit ends and whether it is the last
 * one. A state this file cannot read makes writes take the careful path.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/error.h"
#include "core/validate.h"
#include "storage/fs/fsint.h"

/* Large pieces bypass the page cache (O_DIRECT): an upload is written once
 * and read rarely, so caching it only costs memory bandwidth and page
 * allocations, and with sync "commit" it leaves nothing dirty for the final
 * fsync, so completion does not grow with the blob. Direct I/O wants block
 * alignment of the buffer, length and offset; the bytes go through a
 * per-thread aligned bounce buffer and the block holding the start offset is
 * read back first. The last block is padded with zeros past the piece:
 * bytes past what the engine recorded are never believed, and commit
 * truncates them. */
#define FSDATA__ALIGN 4096
#define FSDATA__DIRECT_MIN (256 * 1024)
#define FSDATA__BOUNCE_SIZE (4 * 1024 * 1024)

typedef struct fsdata__writer {
    berth_writer_t super;
    char path[BERTH__FS_PATH_MAX];
    int fd;            /* buffered writes */
    int dfd;           /* direct writes, opened on the first one; -1 */
    uint64_t start;    /* the write's offset */
    uint64_t pos;      /* where the next piece goes */
    uint64_t head_min; /* a direct write may rewrite bytes from here on */
    uint64_t tail_max; /* ... and pad up to here (UINT64_MAX: no one after) */
    int failed;        /* a piece failed: the pieces before it are kept */
} fsdata__writer_t;

static int fsdata__path(char *out, const char *id)
{
    return berth__fs_path(out, "uploads/%s/data", id);
}

/* ---- create ---------------------------------------------------------------- */

int berth__fs_data_create(berth_storage_t *b, const char *id, const berth_layout_t *layout, char **state)
{
    berth_fs_t *fs = berth__fs_of(b);
    char dir[BERTH__FS_PATH_MAX], path[BERTH__FS_PATH_MAX], *st = NULL;
    int fd = -1, err;

    if ((err = berth__fs_path(dir, "uploads/%s", id)) < 0 || (err = fsdata__path(path, id)) < 0)
        goto done;
    if (layout->unit > 0 && asprintf(&st, "u=%" PRIu64 ";n=%" PRIu64, layout->unit, layout->units) < 0) {
        st = NULL;
        err = berth_error_set(BERTH_ERR, "out of memory");
        goto done;
    }
    if ((err = berth__fs_mkdirs(fs, dir)) < 0)
        goto done;
    /* The data file exists from the start, so that data_open never creates
     * it: a write to a session whose data is gone (committed, or removed)
     * fails instead of silently starting a file full of holes. */
    if ((fd = openat(fs->rootfd, path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644)) < 0) {
        err = berth__fs_errno(errno, "create", path);
        goto done;
    }
    if (fs->sync == BERTH_SYNC_ALWAYS &&
        ((err = berth__fs_sync_dir(fs, dir)) < 0 || (err = berth__fs_sync_dir(fs, "uploads")) < 0))
        goto done;
    *state = st;
    st = NULL;

done:
    if (fd >= 0)
        close(fd);
    free(st);
    return err;
}

/* ---- writes ---------------------------------------------------------------- */

static pthread_key_t fsdata__bounce_key;
static pthread_once_t fsdata__bounce_once = PTHREAD_ONCE_INIT;

static void fsdata__bounce_key_init(void)
{
    (void)pthread_key_create(&fsdata__bounce_key, free);
}

/* The calling thread's bounce buffer, kept for its lifetime so its pages
 * stay mapped (a fresh buffer per piece would fault every page in again). */
static char *fsdata__bounce(void)
{
    char *p;

    pthread_once(&fsdata__bounce_once, fsdata__bounce_key_init);
    if ((p = pthread_getspecific(fsdata__bounce_key)) != NULL)
        return p;
    if (posix_memalign((void **)&p, FSDATA__ALIGN, FSDATA__BOUNCE_SIZE) != 0)
        return NULL;
    if (pthread_setspecific(fsdata__bounce_key, p) != 0) {
        free(p);
        return NULL;
    }
    return p;
}

/* Reads the bytes of the first block before `head` into the bounce buffer:
 * they are the session's and must be written back unchanged. */
static int fsdata__read_head(fsdata__writer_t *w, char *bounce, uint64_t pos, size_t head)
{
    ssize_t n;

    while ((n = pread(w->dfd, bounce, FSDATA__ALIGN, (off_t)pos)) < 0 && errno == EINTR)
        ;
    if (n < 0)
        return berth__fs_errno(errno, "read", w->path);
    if ((size_t)n < head)
        return berth_error_set(BERTH_EIO, "write %s: data ends before offset %llu", w->path,
                               (unsigned long long)(pos + head));
    return 0;
}

/* 1 written, 0 when direct I/O is unavailable (the caller falls back to
 * buffered writes), or an error code. */
static int fsdata__write_direct(berth_fs_t *fs, fsdata__writer_t *w, const char *buf, size_t len)
{
    char *bounce = fsdata__bounce();
    uint64_t pos = w->pos - w->pos % FSDATA__ALIGN;
    size_t head = (size_t)(w->pos - pos);
    int err;

    if (bounce == NULL)
        return 0;
    if (w->dfd < 0 && (w->dfd = openat(fs->rootfd, w->path, O_RDWR | O_DIRECT | O_CLOEXEC)) < 0) {
        if (errno == EINVAL) {
            atomic_store(&fs->direct, 0);
            return 0;
        }
        return berth__fs_errno(errno, "open", w->path);
    }
    if (head > 0 && (err = fsdata__read_head(w, bounce, pos, head)) < 0)
        return err;
    while (len > 0) {
        size_t take = FSDATA__BOUNCE_SIZE - head < len ? FSDATA__BOUNCE_SIZE - head : len;
        size_t fill = head + take;
        size_t out = (fill + FSDATA__ALIGN - 1) / FSDATA__ALIGN * FSDATA__ALIGN;

        memcpy(bounce + head, buf, take);
        memset(bounce + fill, 0, out - fill);
        if ((err = berth__fs_write_all(w->dfd, bounce, out, pos, w->path)) < 0)
            return err;
        buf += take;
        len -= take;
        pos += out;
        head = 0;
    }
    return 1;
}

/* The read-modify-write of the first block and the padding of the last one
 * are safe when nobody else writes in those blocks: always for append
 * layouts (one writer, nothing claimed past it); for units, written in
 * parallel, only within the writer's own unit, or past the end for the
 * last unit. */
static int fsdata__direct_safe(const fsdata__writer_t *w, size_t len)
{
    uint64_t end = w->pos + len;
    uint64_t pad_end = (end + FSDATA__ALIGN - 1) / FSDATA__ALIGN * FSDATA__ALIGN;

    return w->pos - w->pos % FSDATA__ALIGN >= w->head_min && (end % FSDATA__ALIGN == 0 || pad_end <= w->tail_max);
}

/* Sets the writer's bounds from the state; see the top of the file. */
static int fsdata__bounds(fsdata__writer_t *w, const char *state, uint64_t offset)
{
    uint64_t unit, units;
    int used = 0;

    w->start = w->pos = offset;
    if (state == NULL) {
        w->head_min = 0;
        w->tail_max = UINT64_MAX;
        return 0;
    }
    if (sscanf(state, "u=%" SCNu64 ";n=%" SCNu64 "%n", &unit, &units, &used) != 2 || state[used] != '\0' ||
        unit == 0 || units == 0) {
        w->head_min = w->tail_max = offset; /* unknown: aligned pieces only */
        return 0;
    }
    if (offset % unit != 0 || offset / unit >= units)
        return berth_error_set(BERTH_ERANGE, "write %s: offset %llu is no unit's", w->path, (unsigned long long)offset);
    w->head_min = offset;
    w->tail_max = offset / unit == units - 1 ? UINT64_MAX : offset + unit;
    return 0;
}

int berth__fs_data_open(berth_storage_t *b, const char *id, const char *state, uint64_t offset, uint64_t hint,
                        berth_writer_t **out)
{
    berth_fs_t *fs = berth__fs_of(b);
    fsdata__writer_t *w;
    int err;

    if ((w = calloc(1, sizeof(*w))) == NULL)
        return berth_error_set(BERTH_ERR, "out of memory");
    w->super.storage = b;
    w->fd = w->dfd = -1;
    if ((err = fsdata__path(w->path, id)) < 0 || (err = fsdata__bounds(w, state, offset)) < 0)
        goto done;
    /* Room for a direct write's padding past the end, too. */
    if (offset > (uint64_t)INT64_MAX / 2) {
        err = berth_error_set(BERTH_ERANGE, "write %s: offset out of range", w->path);
        goto done;
    }
    if ((w->fd = openat(fs->rootfd, w->path, O_WRONLY | O_CLOEXEC)) < 0) {
        err = berth__fs_errno(errno == ENOTDIR ? ENOENT : errno, "open", w->path);
        goto done;
    }
    *out = &w->super;
    w = NULL;

done:
    if (w != NULL) {
        if (w->fd >= 0)
            close(w->fd);
        free(w);
    }
    return err;
}

int berth__fs_writer_write(berth_writer_t *bw, const void *buf, size_t len)
{
    fsdata__writer_t *w = (fsdata__writer_t *)bw;
    berth_fs_t *fs = berth__fs_of(bw->storage);
    int err = 0;

    /* The bytes kept must be a prefix of what was taken. */
    if (w->failed)
        return berth_error_set(BERTH_EIO, "write %s: an earlier piece failed", w->path);
    if (len > (uint64_t)INT64_MAX / 2 - w->pos) {
        err = berth_error_set(BERTH_ERANGE, "write %s: offset out of range", w->path);
        goto done;
    }
    if (len >= FSDATA__DIRECT_MIN && atomic_load(&fs->direct) && fsdata__direct_safe(w, len)) {
        if ((err = fsdata__write_direct(fs, w, buf, len)) != 0)
            goto done;
    }
    err = berth__fs_write_all(w->fd, buf, len, w->pos, w->path);

done:
    if (err < 0) {
        w->failed = 1;
        return err;
    }
    w->pos += len;
    return 0;
}

int berth__fs_writer_close(berth_writer_t *bw, int keep, uint64_t *kept, char **state)
{
    fsdata__writer_t *w = (fsdata__writer_t *)bw;
    berth_fs_t *fs = berth__fs_of(bw->storage);
    int err = 0;

    /* One fdatasync covers both descriptors: they share the inode. */
    if (keep && fs->sync == BERTH_SYNC_ALWAYS && w->pos > w->start && fdatasync(w->fd) < 0)
        err = berth__fs_errno(errno, "fsync", w->path);
    if (keep && err == 0)
        *kept = w->pos - w->start;
    close(w->fd);
    if (w->dfd >= 0)
        close(w->dfd);
    free(w);
    return err;
}

int berth__fs_data_read(berth_storage_t *b, const char *id, const char *state, uint64_t offset, void *buf, size_t len,
                        size_t *got)
{
    berth_fs_t *fs = berth__fs_of(b);
    char path[BERTH__FS_PATH_MAX];
    int fd = -1, err;

    *got = 0;
    if ((err = fsdata__path(path, id)) < 0)
        goto done;
    if ((fd = openat(fs->rootfd, path, O_RDONLY | O_CLOEXEC)) < 0) {
        err = berth__fs_errno(errno == ENOTDIR ? ENOENT : errno, "open", path);
        goto done;
    }
    if (offset > (uint64_t)INT64_MAX)
        goto done;
    err = berth__fs_pread_full(fd, buf, len, offset, path, got);

done:
    if (fd >= 0)
        close(fd);
    return err;
}

/* ---- commit ----------------------------------------------------------------- */

/* Makes the data file exactly `size` bytes and, when durable, synced. */
static int fsdata__trim(berth_fs_t *fs, const char *src, uint64_t size, int durable)
{
    struct stat st;
    int fd, err = 0;

    if ((fd = openat(fs->rootfd, src, O_WRONLY | O_CLOEXEC)) < 0)
        return berth__fs_errno(errno == ENOTDIR ? ENOENT : errno, "open", src);
    if (fstat(fd, &st) < 0) {
        err = berth__fs_errno(errno, "stat", src);
        goto done;
    }
    /* Extending the file would invent zero bytes the digest was never
     * computed over: the engine must not claim bytes the data lacks. */
    if ((uint64_t)st.st_size < size) {
        err = berth_error_set(BERTH_EIO, "commit %s: data holds %lld bytes, not %llu", src, (long long)st.st_size,
                              (unsigned long long)size);
        goto done;
    }
    /* Bytes stored but never recorded (a crash before the record was
     * saved, a direct write's padding) are not the blob's. */
    if ((uint64_t)st.st_size > size && ftruncate(fd, (off_t)size) < 0) {
        err = berth__fs_errno(errno, "truncate", src);
        goto done;
    }
    if (durable && fsync(fd) < 0)
        err = berth__fs_errno(errno, "fsync", src);

done:
    close(fd);
    return err;
}

/* Renames the data into place; if the blob exists, drops the data. */
static int fsdata__install(berth_fs_t *fs, const char *src, const char *dst)
{
    struct stat st;

    /* RENAME_NOREPLACE settles a race between two sessions committing the
     * same content: the first blob stays, the second copy is dropped. */
    if (renameat2(fs->rootfd, src, fs->rootfd, dst, RENAME_NOREPLACE) == 0)
        return 0;
    if (errno == EEXIST) {
        if (unlinkat(fs->rootfd, src, 0) < 0 && errno != ENOENT)
            return berth__fs_errno(errno, "unlink", src);
        return 0;
    }
    if (errno != EINVAL && errno != ENOSYS)
        return berth__fs_errno(errno, "rename", src);
    /* Filesystems without RENAME_NOREPLACE: a check then a rename. Losing
     * the race replaces a blob with identical bytes. */
    if (fstatat(fs->rootfd, dst, &st, 0) == 0) {
        unlinkat(fs->rootfd, src, 0);
        return 0;
    }
    if (renameat(fs->rootfd, src, fs->rootfd, dst) < 0)
        return berth__fs_errno(errno, "rename", src);
    return 0;
}

int berth__fs_data_commit(berth_storage_t *b, const char *id, const char *state, uint64_t size, const char *digest)
{
    berth_fs_t *fs = berth__fs_of(b);
    char src[BERTH__FS_PATH_MAX], dst[BERTH__FS_PATH_MAX], dir[BERTH__FS_PATH_MAX], parent[BERTH__FS_PATH_MAX];
    const char *hex = digest + 7;
    int durable = fs->sync != BERTH_SYNC_NONE;
    struct stat st;
    int err;

    if ((err = fsdata__path(src, id)) < 0 || (err = berth__fs_blob_path(dst, digest)) < 0 ||
        (err = berth__fs_path(dir, "blobs/sha256/%.2s/%s", hex, hex)) < 0 ||
        (err = berth__fs_path(parent, "blobs/sha256/%.2s", hex)) < 0)
        return err;
    if ((err = fsdata__trim(fs, src, size, durable)) < 0) {
        /* Committed before (a crash before the engine saved its record):
         * the data is gone, and the blob is what it became. */
        if (err == BERTH_ENOTFOUND && fstatat(fs->rootfd, dst, &st, 0) == 0 && (uint64_t)st.st_size == size)
            return 0;
        return err;
    }
    if ((err = berth__fs_mkdirs(fs, dir)) < 0 || (err = fsdata__install(fs, src, dst)) < 0)
        return err;
    /* The new entry, and the directories a first commit under a prefix
     * created, must reach the disk before the client is told 201. */
    if (durable && ((err = berth__fs_sync_dir(fs, dir)) < 0 || (err = berth__fs_sync_dir(fs, parent)) < 0 ||
                    (err = berth__fs_sync_dir(fs, "blobs/sha256")) < 0))
        return err;
    /* Best effort: the session's directory, now empty (data_remove or a
     * purge takes it otherwise). */
    if (berth__fs_path(src, "uploads/%s", id) == 0)
        unlinkat(fs->rootfd, src, AT_REMOVEDIR);
    return 0;
}

/* ---- remove and list --------------------------------------------------------- */

int berth__fs_data_remove(berth_storage_t *b, const char *id, const char *state)
{
    berth_fs_t *fs = berth__fs_of(b);
    char path[BERTH__FS_PATH_MAX];
    struct dirent *de;
    DIR *dir = NULL;
    int fd, err = 0;

    if ((err = berth__fs_path(path, "uploads/%s", id)) < 0)
        return err;
    if ((fd = openat(fs->rootfd, path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
        return berth__fs_errno(errno == ENOTDIR ? ENOENT : errno, "open", path);
    if ((dir = fdopendir(fd)) == NULL) {
        err = berth__fs_errno(errno, "opendir", path);
        close(fd);
        goto done;
    }
    /* Everything in a session's directory is its own: data, the temporary
     * files a crash may have left, and record.json where an earlier berth
     * kept the record. There are no subdirectories. */
    while ((de = readdir(dir)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        if (unlinkat(dirfd(dir), de->d_name, 0) < 0 && errno != ENOENT) {
            err = berth__fs_errno(errno, "unlink", de->d_name);
            goto done;
        }
    }
    if (unlinkat(fs->rootfd, path, AT_REMOVEDIR) < 0 && errno != ENOENT)
        err = berth__fs_errno(errno, "rmdir", path);

done:
    if (dir != NULL)
        closedir(dir);
    return err;
}

/* The time of a session's last write: its data file's, or its directory's
 * when the data is gone. 0 when the session vanished meanwhile. */
static int fsdata__mtime(int dirfd, const char *id, int64_t *mtime)
{
    char rel[BERTH__FS_PATH_MAX];
    struct stat st;

    if (berth__fs_path(rel, "%s/data", id) == 0 && fstatat(dirfd, rel, &st, 0) == 0) {
        *mtime = (int64_t)st.st_mtime;
        return 1;
    }
    if (fstatat(dirfd, id, &st, 0) == 0 && S_ISDIR(st.st_mode)) {
        *mtime = (int64_t)st.st_mtime;
        return 1;
    }
    return 0;
}

int berth__fs_data_list(berth_storage_t *b, berth_data_cb cb, void *ctx)
{
    berth_fs_t *fs = berth__fs_of(b);
    struct dirent *de;
    DIR *dir = NULL;
    int64_t mtime;
    int fd, err = 0;

    if ((fd = openat(fs->rootfd, "uploads", O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
        return errno == ENOENT ? 0 : berth__fs_errno(errno, "open", "uploads");
    if ((dir = fdopendir(fd)) == NULL) {
        err = berth__fs_errno(errno, "opendir", "uploads");
        close(fd);
        return err;
    }
    /* A directory without a valid session id name is not ours: skip it
     * rather than hand a path-like name to the engine. */
    while (errno = 0, (de = readdir(dir)) != NULL) {
        if (!berth_id_valid(de->d_name, strlen(de->d_name)) || !fsdata__mtime(dirfd(dir), de->d_name, &mtime))
            continue;
        if ((err = cb(ctx, de->d_name, mtime)) != 0)
            break;
    }
    if (err == 0 && errno != 0)
        err = berth__fs_errno(errno, "readdir", "uploads");
    closedir(dir);
    return err;
}

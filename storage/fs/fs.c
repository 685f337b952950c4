/*
 * The filesystem backend (layout in fs.h).
 *
 * Every path is resolved relative to a descriptor of the root opened once,
 * so the backend keeps working if the root is renamed, and holds no mutable
 * state at all: concurrent calls only ever meet in the filesystem, where
 * creation races are settled by EEXIST and rename.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include "core/error.h"
#include "core/log.h"
#include "storage/fs/fs.h"

#define FS__PATH_MAX 1024
#define FS__SHA256_PREFIX "sha256:"
#define FS__SHA256_PREFIX_LEN 7

typedef struct berth_fs {
    berth_storage_t super;
    char *root;
    int rootfd;
    berth_sync_mode_t sync;
    atomic_int direct; /* large writes bypass the page cache; 0 once refused */
} berth_fs_t;

/* Unique suffixes for temporary files within this process; the tid and pid
 * in the name make them unique across processes sharing a root. */
static unsigned long fs__tmp_counter;

static berth_fs_t *fs__of(berth_storage_t *b)
{
    return (berth_fs_t *)b;
}

static int fs__errno(int err, const char *op, const char *path)
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

static int fs__path(char *out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fs__path(char *out, const char *fmt, ...)
{
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(out, FS__PATH_MAX, fmt, ap);
    va_end(ap);
    if (n < 0 || n >= FS__PATH_MAX)
        return berth_error_set(BERTH_EINVALID, "storage path too long");
    return 0;
}

/* The 64 hex digits of a validated "sha256:<hex>" digest. */
static const char *fs__hex(const char *digest)
{
    return digest + FS__SHA256_PREFIX_LEN;
}

/* mkdir -p of a path relative to the root. Concurrent creators race
 * harmlessly: EEXIST is success. */
static int fs__mkdirs(berth_fs_t *fs, const char *rel)
{
    char tmp[FS__PATH_MAX];
    size_t len = strlen(rel);

    if (len >= sizeof(tmp))
        return berth_error_set(BERTH_EINVALID, "storage path too long");
    memcpy(tmp, rel, len + 1);
    for (size_t i = 1; i <= len; i++) {
        if (tmp[i] != '/' && tmp[i] != '\0')
            continue;
        tmp[i] = '\0';
        if (mkdirat(fs->rootfd, tmp, 0755) < 0 && errno != EEXIST)
            return fs__errno(errno, "mkdir", tmp);
        if (i < len)
            tmp[i] = '/';
    }
    return 0;
}

/* fsync of a directory relative to the root, so a rename into it survives
 * power loss. */
static int fs__sync_dir(berth_fs_t *fs, const char *rel)
{
    int fd, err = 0;

    if ((fd = openat(fs->rootfd, rel, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
        return fs__errno(errno, "open", rel);
    if (fsync(fd) < 0)
        err = fs__errno(errno, "fsync", rel);
    close(fd);
    return err;
}

static int fs__write_all(int fd, const void *buf, size_t len, uint64_t offset, const char *path)
{
    const char *p = buf;

    while (len > 0) {
        ssize_t n = pwrite(fd, p, len, (off_t)offset);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return fs__errno(errno, "write", path);
        }
        p += n;
        len -= (size_t)n;
        offset += (uint64_t)n;
    }
    return 0;
}

/* Writes buf at offset, fdatasyncs if `durable`, and closes fd whatever
 * happens. */
static int fs__write_close(int fd, const void *buf, size_t len, uint64_t offset, int durable, const char *path)
{
    int err = fs__write_all(fd, buf, len, offset, path);

    if (err == 0 && durable && fdatasync(fd) < 0)
        err = fs__errno(errno, "fsync", path);
    if (close(fd) < 0 && err == 0)
        err = fs__errno(errno, "close", path);
    return err;
}

/* Writes buf as file `dir`/`name` atomically: a unique temporary file in the
 * same directory, fsync'd if `durable`, renamed over the target, and the
 * directory fsync'd if `durable`. A reader sees the old file or the new one,
 * never a part. */
static int fs__replace_file(berth_fs_t *fs, const char *dir, const char *name, const void *buf, size_t len, int durable)
{
    char tmp[FS__PATH_MAX], dst[FS__PATH_MAX];
    int fd = -1, err;

    tmp[0] = '\0';
    if ((err = fs__path(dst, "%s/%s", dir, name)) < 0)
        goto done;
    if ((err = fs__path(tmp, "%s/%s.tmp.%ld.%ld.%lu", dir, name, (long)getpid(), (long)gettid(),
                        __atomic_add_fetch(&fs__tmp_counter, 1, __ATOMIC_RELAXED))) < 0)
        goto done;
    if ((fd = openat(fs->rootfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644)) < 0) {
        err = fs__errno(errno, "create", tmp);
        goto done;
    }
    err = fs__write_close(fd, buf, len, 0, durable, tmp);
    fd = -1;
    if (err < 0)
        goto done;
    if (renameat(fs->rootfd, tmp, fs->rootfd, dst) < 0) {
        err = fs__errno(errno, "rename", tmp);
        goto done;
    }
    tmp[0] = '\0'; /* renamed: nothing left to clean up */
    if (durable)
        err = fs__sync_dir(fs, dir);

done:
    if (fd >= 0)
        close(fd);
    if (err < 0 && tmp[0] != '\0')
        unlinkat(fs->rootfd, tmp, 0);
    return err;
}

/* ---- records ------------------------------------------------------------- */

/* Reads up to len bytes at `offset` into buf, stopping early only at the
 * end of the file; *got is what was read. */
static int fs__pread_full(int fd, void *buf, size_t len, uint64_t offset, const char *path, size_t *got)
{
    size_t total = 0;

    while (total < len) {
        ssize_t n = pread(fd, (char *)buf + total, len - total, (off_t)(offset + total));
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return fs__errno(errno, "read", path);
        }
        if (n == 0)
            break;
        total += (size_t)n;
    }
    *got = total;
    return 0;
}

/* Reads the whole file at `path` (relative to the root) into a malloc'd,
 * NUL-terminated *buf. Files read this way are only ever replaced by
 * rename, never written in place, so their size cannot change under us.
 * One over `max` bytes is corrupt, not something to slurp: `toolarge`. */
static int fs__read_small(berth_fs_t *fs, const char *path, size_t max, int toolarge, const char *what, char **buf,
                          size_t *len)
{
    char *data = NULL;
    struct stat st;
    size_t got = 0;
    int fd = -1, err = 0;

    if ((fd = openat(fs->rootfd, path, O_RDONLY | O_CLOEXEC)) < 0) {
        /* A path component that is a file (meta key "a" when "a/b" is
         * asked for) means the object is not there. */
        err = fs__errno(errno == ENOTDIR ? ENOENT : errno, "open", path);
        goto done;
    }
    if (fstat(fd, &st) < 0) {
        err = fs__errno(errno, "stat", path);
        goto done;
    }
    if ((uint64_t)st.st_size > max) {
        err = berth_error_set(toolarge, "%s: %s too large (%lld bytes)", path, what, (long long)st.st_size);
        goto done;
    }
    if ((data = malloc((size_t)st.st_size + 1)) == NULL) {
        err = berth_error_set(BERTH_ERR, "out of memory");
        goto done;
    }
    if ((err = fs__pread_full(fd, data, (size_t)st.st_size, 0, path, &got)) < 0)
        goto done;
    data[got] = '\0';
    *buf = data;
    *len = got;
    data = NULL;

done:
    if (fd >= 0)
        close(fd);
    free(data);
    return err;
}

static int fs__record_get(berth_storage_t *b, const char *id, char **buf, size_t *len)
{
    char path[FS__PATH_MAX];
    int err;

    if ((err = fs__path(path, "uploads/%s/record.json", id)) < 0)
        return err;
    return fs__read_small(fs__of(b), path, 16 * 1024 * 1024, BERTH_EINVALID, "record", buf, len);
}

static int fs__record_put(berth_storage_t *b, const char *id, const char *buf, size_t len)
{
    berth_fs_t *fs = fs__of(b);
    char dir[FS__PATH_MAX];
    int err;

    if ((err = fs__path(dir, "uploads/%s", id)) < 0)
        return err;
    if ((err = fs__mkdirs(fs, dir)) < 0)
        return err;
    return fs__replace_file(fs, dir, "record.json", buf, len, fs->sync == BERTH_SYNC_ALWAYS);
}

static int fs__record_list(berth_storage_t *b, berth_storage_list_cb cb, void *ctx)
{
    berth_fs_t *fs = fs__of(b);
    struct dirent *de;
    DIR *dir = NULL;
    int fd, err = 0;

    if ((fd = openat(fs->rootfd, "uploads", O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
        if (errno == ENOENT)
            return 0;
        return fs__errno(errno, "open", "uploads");
    }
    if ((dir = fdopendir(fd)) == NULL) {
        err = fs__errno(errno, "opendir", "uploads");
        close(fd);
        goto done;
    }
    /* A directory without a valid session id name is not ours; skip it
     * rather than hand a path-like name to the engine. */
    errno = 0;
    while ((de = readdir(dir)) != NULL) {
        if (berth_id_valid(de->d_name, strlen(de->d_name)) && (err = cb(ctx, de->d_name)) != 0)
            goto done;
        errno = 0;
    }
    if (errno != 0)
        err = fs__errno(errno, "readdir", "uploads");

done:
    if (dir != NULL)
        closedir(dir);
    return err;
}

/* ---- uploads ------------------------------------------------------------- */

static int fs__upload_create(berth_storage_t *b, berth_record_t *rec)
{
    berth_fs_t *fs = fs__of(b);
    char dir[FS__PATH_MAX], path[FS__PATH_MAX];
    int fd = -1, err;

    if ((err = fs__path(dir, "uploads/%s", rec->id)) < 0 || (err = fs__path(path, "uploads/%s/data", rec->id)) < 0)
        goto done;
    if ((err = fs__mkdirs(fs, dir)) < 0)
        goto done;
    /* The data file exists from the start, so that upload_write never
     * creates it: a write to a session whose data is gone (committed, or
     * removed) fails instead of silently starting a file full of holes. */
    if ((fd = openat(fs->rootfd, path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644)) < 0) {
        err = fs__errno(errno, "create", path);
        goto done;
    }
    if (fs->sync == BERTH_SYNC_ALWAYS && (err = fs__sync_dir(fs, dir)) < 0)
        goto done;

done:
    if (fd >= 0)
        close(fd);
    return err;
}

/* Large chunks bypass the page cache (O_DIRECT): an upload is written once
 * and read rarely, so caching it only costs memory bandwidth and page
 * allocations, and with sync "commit" it leaves nothing dirty for the final
 * fsync, so completion does not grow with the blob. Direct I/O wants block
 * alignment of the buffer, length and offset; the bytes go through a
 * per-thread aligned bounce buffer and the block holding the start offset is
 * read back first. The last block is padded with zeros past the chunk: bytes
 * past the record's offset are never believed, and commit truncates them. */
#define FS__DIRECT_ALIGN 4096
#define FS__DIRECT_MIN (256 * 1024)
#define FS__BOUNCE_SIZE (4 * 1024 * 1024)

static pthread_key_t fs__bounce_key;
static pthread_once_t fs__bounce_once = PTHREAD_ONCE_INIT;

static void fs__bounce_key_init(void)
{
    (void)pthread_key_create(&fs__bounce_key, free);
}

/* The calling thread's bounce buffer, kept for its lifetime so its pages
 * stay mapped (a fresh buffer per chunk would fault every page in again). */
static char *fs__bounce(void)
{
    char *p;

    pthread_once(&fs__bounce_once, fs__bounce_key_init);
    if ((p = pthread_getspecific(fs__bounce_key)) != NULL)
        return p;
    if (posix_memalign((void **)&p, FS__DIRECT_ALIGN, FS__BOUNCE_SIZE) != 0)
        return NULL;
    if (pthread_setspecific(fs__bounce_key, p) != 0) {
        free(p);
        return NULL;
    }
    return p;
}

/* 1 written, 0 when the filesystem refuses O_DIRECT (the caller falls back
 * to buffered writes), or an error code. */
static int fs__write_direct(berth_fs_t *fs, const char *path, uint64_t offset, const char *buf, size_t len)
{
    char *bounce = fs__bounce();
    uint64_t pos = offset - offset % FS__DIRECT_ALIGN;
    size_t head = (size_t)(offset - pos);
    int fd, err = 1;

    if (bounce == NULL)
        return 0;
    if ((fd = openat(fs->rootfd, path, O_RDWR | O_DIRECT | O_CLOEXEC)) < 0) {
        if (errno == EINVAL) {
            atomic_store(&fs->direct, 0);
            return 0;
        }
        return fs__errno(errno, "open", path);
    }
    if (head > 0) {
        /* The bytes of the first block before `offset` are the session's
         * and must be written back unchanged. */
        ssize_t n;
        while ((n = pread(fd, bounce, FS__DIRECT_ALIGN, (off_t)pos)) < 0 && errno == EINTR)
            ;
        if (n < 0) {
            err = fs__errno(errno, "read", path);
            goto done;
        }
        if ((size_t)n < head) {
            err = berth_error_set(BERTH_EIO, "write %s: data ends before offset %llu", path,
                                  (unsigned long long)offset);
            goto done;
        }
    }
    while (len > 0) {
        size_t take = FS__BOUNCE_SIZE - head < len ? FS__BOUNCE_SIZE - head : len;
        size_t fill = head + take;
        size_t out = (fill + FS__DIRECT_ALIGN - 1) / FS__DIRECT_ALIGN * FS__DIRECT_ALIGN;

        memcpy(bounce + head, buf, take);
        memset(bounce + fill, 0, out - fill);
        if ((err = fs__write_all(fd, bounce, out, pos, path)) < 0)
            goto done;
        err = 1;
        buf += take;
        len -= take;
        pos += out;
        head = 0;
    }
    if (fs->sync == BERTH_SYNC_ALWAYS && fdatasync(fd) < 0)
        err = fs__errno(errno, "fsync", path);

done:
    close(fd);
    return err;
}

/* The read-modify-write of the first block and the padding of the last one
 * are safe when nobody else writes near them: always for OCI sessions (one
 * writer, nothing past the offset); for part sessions, whose parts are
 * written concurrently, only for a block-aligned part that ends on a block
 * boundary or at the end of the object. */
static int fs__direct_safe(const berth_record_t *rec, uint64_t offset, size_t len)
{
    if (rec->kind == BERTH_SESSION_OCI)
        return 1;
    return offset % FS__DIRECT_ALIGN == 0 &&
           (len % FS__DIRECT_ALIGN == 0 || (rec->total_size != 0 && offset + len == rec->total_size));
}

static int fs__upload_write(berth_storage_t *b, berth_record_t *rec, uint64_t offset, const void *buf, size_t len)
{
    berth_fs_t *fs = fs__of(b);
    char path[FS__PATH_MAX];
    int fd, err;

    if ((err = fs__path(path, "uploads/%s/data", rec->id)) < 0)
        return err;
    /* Room for a direct write's padding past the end, too. */
    if (offset > (uint64_t)INT64_MAX / 2 || len > (uint64_t)INT64_MAX / 2)
        return berth_error_set(BERTH_ERANGE, "write %s: offset out of range", path);
    if (len >= FS__DIRECT_MIN && atomic_load(&fs->direct) && fs__direct_safe(rec, offset, len)) {
        if ((err = fs__write_direct(fs, path, offset, buf, len)) != 0)
            return err < 0 ? err : 0;
    }
    if ((fd = openat(fs->rootfd, path, O_WRONLY | O_CLOEXEC)) < 0)
        return fs__errno(errno, "open", path);
    return fs__write_close(fd, buf, len, offset, fs->sync == BERTH_SYNC_ALWAYS, path);
}

static int fs__upload_commit(berth_storage_t *b, berth_record_t *rec, const char *digest)
{
    berth_fs_t *fs = fs__of(b);
    char src[FS__PATH_MAX], dir[FS__PATH_MAX], dst[FS__PATH_MAX];
    const char *hex = fs__hex(digest);
    int durable = fs->sync != BERTH_SYNC_NONE;
    struct stat st;
    int fd = -1, err;

    if ((err = fs__path(src, "uploads/%s/data", rec->id)) < 0 ||
        (err = fs__path(dir, "blobs/sha256/%.2s/%s", hex, hex)) < 0 || (err = fs__path(dst, "%s/data", dir)) < 0)
        goto done;
    if ((fd = openat(fs->rootfd, src, O_WRONLY | O_CLOEXEC)) < 0) {
        err = fs__errno(errno, "open", src);
        goto done;
    }
    if (fstat(fd, &st) < 0) {
        err = fs__errno(errno, "stat", src);
        goto done;
    }
    /* Extending the file would invent zero bytes the digest was never
     * computed over; the record must not claim bytes the data lacks. */
    if ((uint64_t)st.st_size < rec->offset) {
        err = berth_error_set(BERTH_EIO, "commit %s: data holds %lld bytes, record claims %llu", src,
                              (long long)st.st_size, (unsigned long long)rec->offset);
        goto done;
    }
    /* A crash (or a failed record write) between storing a chunk and saving
     * the record leaves bytes past the offset that no record claims. */
    if ((uint64_t)st.st_size > rec->offset && ftruncate(fd, (off_t)rec->offset) < 0) {
        err = fs__errno(errno, "truncate", src);
        goto done;
    }
    if (durable && fsync(fd) < 0) {
        err = fs__errno(errno, "fsync", src);
        goto done;
    }
    close(fd);
    fd = -1;

    if ((err = fs__mkdirs(fs, dir)) < 0)
        goto done;
    /* RENAME_NOREPLACE settles a race between two sessions committing the
     * same content: the first blob stays, the second copy is dropped. */
    if (renameat2(fs->rootfd, src, fs->rootfd, dst, RENAME_NOREPLACE) < 0) {
        if (errno == EEXIST) {
            if (unlinkat(fs->rootfd, src, 0) < 0 && errno != ENOENT) {
                err = fs__errno(errno, "unlink", src);
                goto done;
            }
        } else if (errno == EINVAL || errno == ENOSYS) {
            /* Filesystems without RENAME_NOREPLACE: a check then a rename.
             * Losing the race replaces a blob with identical bytes. */
            if (fstatat(fs->rootfd, dst, &st, 0) == 0) {
                unlinkat(fs->rootfd, src, 0);
            } else if (renameat(fs->rootfd, src, fs->rootfd, dst) < 0) {
                err = fs__errno(errno, "rename", src);
                goto done;
            }
        } else {
            err = fs__errno(errno, "rename", src);
            goto done;
        }
    }
    /* The new entry, and the directories a first commit under a prefix
     * created, must reach the disk before the client is told 201. */
    if (durable) {
        char parent[FS__PATH_MAX];
        if ((err = fs__sync_dir(fs, dir)) < 0 || (err = fs__path(parent, "blobs/sha256/%.2s", hex)) < 0 ||
            (err = fs__sync_dir(fs, parent)) < 0 || (err = fs__sync_dir(fs, "blobs/sha256")) < 0)
            goto done;
    }

done:
    if (fd >= 0)
        close(fd);
    return err;
}

static int fs__upload_remove(berth_storage_t *b, const char *id, berth_record_t *rec)
{
    berth_fs_t *fs = fs__of(b);
    char path[FS__PATH_MAX];
    struct dirent *de;
    DIR *dir = NULL;
    int fd, err = 0;

    if ((err = fs__path(path, "uploads/%s", id)) < 0)
        return err;
    if ((fd = openat(fs->rootfd, path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
        return fs__errno(errno, "open", path);
    if ((dir = fdopendir(fd)) == NULL) {
        err = fs__errno(errno, "opendir", path);
        close(fd);
        goto done;
    }
    /* Everything in an upload directory is ours: data, record.json and the
     * temporary files a crash may have left. There are no subdirectories. */
    while ((de = readdir(dir)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        if (unlinkat(dirfd(dir), de->d_name, 0) < 0 && errno != ENOENT) {
            err = fs__errno(errno, "unlink", de->d_name);
            goto done;
        }
    }
    if (unlinkat(fs->rootfd, path, AT_REMOVEDIR) < 0 && errno != ENOENT)
        err = fs__errno(errno, "rmdir", path);

done:
    if (dir != NULL)
        closedir(dir);
    return err;
}

/* Reads what upload_write stored; the engine asks only for recorded bytes,
 * so a short read means the data is shorter than the record says. */
static int fs__upload_read(berth_storage_t *b, berth_record_t *rec, uint64_t offset, void *buf, size_t len,
                           size_t *got)
{
    berth_fs_t *fs = fs__of(b);
    char path[FS__PATH_MAX];
    int fd = -1, err;

    *got = 0;
    if ((err = fs__path(path, "uploads/%s/data", rec->id)) < 0)
        goto done;
    if ((fd = openat(fs->rootfd, path, O_RDONLY | O_CLOEXEC)) < 0) {
        err = fs__errno(errno, "open", path);
        goto done;
    }
    if (offset > (uint64_t)INT64_MAX)
        goto done;
    err = fs__pread_full(fd, buf, len, offset, path, got);

done:
    if (fd >= 0)
        close(fd);
    return err;
}

/* ---- blobs --------------------------------------------------------------- */

static int fs__blob_path(char *out, const char *digest)
{
    const char *hex = fs__hex(digest);
    return fs__path(out, "blobs/sha256/%.2s/%s/data", hex, hex);
}

static int fs__blob_stat(berth_storage_t *b, const char *digest, uint64_t *size)
{
    berth_fs_t *fs = fs__of(b);
    char path[FS__PATH_MAX];
    struct stat st;
    int err;

    if ((err = fs__blob_path(path, digest)) < 0)
        return err;
    if (fstatat(fs->rootfd, path, &st, 0) < 0)
        return fs__errno(errno, "stat", path);
    if (!S_ISREG(st.st_mode))
        return berth_error_set(BERTH_EIO, "stat %s: not a regular file", path);
    *size = (uint64_t)st.st_size;
    return 0;
}

#define FS__READAHEAD_MIN (256 * 1024)
#define FS__READAHEAD (8 * 1024 * 1024)

static int fs__blob_read(berth_storage_t *b, const char *digest, uint64_t offset, void *buf, size_t len, size_t *got)
{
    berth_fs_t *fs = fs__of(b);
    char path[FS__PATH_MAX];
    int fd = -1, err;

    *got = 0;
    if ((err = fs__blob_path(path, digest)) < 0)
        goto done;
    if ((fd = openat(fs->rootfd, path, O_RDONLY | O_CLOEXEC)) < 0) {
        err = fs__errno(errno, "open", path);
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
    err = fs__pread_full(fd, buf, len, offset, path, got);

done:
    if (fd >= 0)
        close(fd);
    return err;
}

static int fs__blob_remove(berth_storage_t *b, const char *digest)
{
    berth_fs_t *fs = fs__of(b);
    char path[FS__PATH_MAX];
    int err;

    /* The blob's directories stay: removing them would race with a commit
     * of the same digest creating them. */
    if ((err = fs__blob_path(path, digest)) < 0)
        return err;
    if (unlinkat(fs->rootfd, path, 0) < 0)
        return fs__errno(errno, "unlink", path);
    return 0;
}

/* ---- links --------------------------------------------------------------- */

static int fs__link_dir(char *out, const char *repo, const char *digest)
{
    return fs__path(out, "repositories/%s/_layers/sha256/%s", repo, fs__hex(digest));
}

static int fs__link_put(berth_storage_t *b, const char *repo, const char *digest)
{
    berth_fs_t *fs = fs__of(b);
    char dir[FS__PATH_MAX], body[BERTH_DIGEST_LEN + 1];
    int n, err;

    if ((err = fs__link_dir(dir, repo, digest)) < 0)
        return err;
    if ((err = fs__mkdirs(fs, dir)) < 0)
        return err;
    n = snprintf(body, sizeof(body), "%s\n", digest);
    /* Replacing an existing link with the same text keeps link_put
     * idempotent without a check-then-write race. */
    return fs__replace_file(fs, dir, "link", body, (size_t)n, fs->sync != BERTH_SYNC_NONE);
}

static int fs__link_get(berth_storage_t *b, const char *repo, const char *digest)
{
    berth_fs_t *fs = fs__of(b);
    char dir[FS__PATH_MAX], path[FS__PATH_MAX];
    struct stat st;
    int err;

    if ((err = fs__link_dir(dir, repo, digest)) < 0 || (err = fs__path(path, "%s/link", dir)) < 0)
        return err;
    if (fstatat(fs->rootfd, path, &st, 0) < 0)
        return fs__errno(errno, "stat", path);
    return 0;
}

static int fs__link_remove(berth_storage_t *b, const char *repo, const char *digest)
{
    berth_fs_t *fs = fs__of(b);
    char dir[FS__PATH_MAX], path[FS__PATH_MAX];
    int err;

    if ((err = fs__link_dir(dir, repo, digest)) < 0 || (err = fs__path(path, "%s/link", dir)) < 0)
        return err;
    if (unlinkat(fs->rootfd, path, 0) < 0)
        return fs__errno(errno, "unlink", path);
    /* Best effort: the empty directory is harmless if a concurrent link_put
     * got there first. */
    unlinkat(fs->rootfd, dir, AT_REMOVEDIR);
    return 0;
}

/* ---- version 3: metadata and listings ----------------------------------- */

#define FS__META_SUFFIX '~'
#define FS__WALK_DEPTH 64

/* Called for each regular file under a walked directory with its path
 * relative to the root and its stat; non-zero stops the walk. */
typedef int (*fs__walk_cb)(void *ctx, const char *rel, const struct stat *st);

/* Depth-first walk of directory `rel` (a path relative to the root, in a
 * buffer of FS__PATH_MAX that is extended and restored in place). A missing
 * directory, or an entry vanishing under us, is not an error: listings race
 * with deletes by design. */
static int fs__walk(berth_fs_t *fs, char *rel, int depth, fs__walk_cb cb, void *ctx)
{
    size_t base = strlen(rel);
    struct dirent *de;
    DIR *dir = NULL;
    int fd, err = 0;

    if (depth > FS__WALK_DEPTH)
        return berth_error_set(BERTH_EIO, "walk %s: too deep", rel);
    if ((fd = openat(fs->rootfd, rel, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
        return errno == ENOENT || errno == ENOTDIR ? 0 : fs__errno(errno, "open", rel);
    if ((dir = fdopendir(fd)) == NULL) {
        err = fs__errno(errno, "opendir", rel);
        close(fd);
        return err;
    }
    errno = 0;
    while ((de = readdir(dir)) != NULL) {
        struct stat st;
        size_t nlen = strlen(de->d_name);
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            goto next;
        if (base + 1 + nlen >= FS__PATH_MAX)
            goto next; /* not a name berth made */
        if (fstatat(dirfd(dir), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
            if (errno == ENOENT)
                goto next;
            err = fs__errno(errno, "stat", de->d_name);
            goto done;
        }
        rel[base] = '/';
        memcpy(rel + base + 1, de->d_name, nlen + 1);
        if (S_ISDIR(st.st_mode))
            err = fs__walk(fs, rel, depth + 1, cb, ctx);
        else if (S_ISREG(st.st_mode))
            err = cb(ctx, rel, &st);
        rel[base] = '\0';
        if (err != 0)
            goto done;
    next:
        errno = 0;
    }
    if (errno != 0)
        err = fs__errno(errno, "readdir", rel);

done:
    rel[base] = '\0';
    closedir(dir);
    return err;
}

static int fs__meta_path(char *out, const char *key)
{
    return fs__path(out, "meta/%s%c", key, FS__META_SUFFIX);
}

static int fs__meta_get(berth_storage_t *b, const char *key, char **buf, size_t *len)
{
    char path[FS__PATH_MAX];
    int err;

    if ((err = fs__meta_path(path, key)) < 0)
        return err;
    return fs__read_small(fs__of(b), path, BERTH_META_VALUE_MAX, BERTH_EIO, "metadata object", buf, len);
}

static int fs__meta_put(berth_storage_t *b, const char *key, const char *buf, size_t len)
{
    berth_fs_t *fs = fs__of(b);
    char dir[FS__PATH_MAX], name[FS__PATH_MAX];
    const char *slash = strrchr(key, '/');
    int err = 0;

    if (slash != NULL)
        err = fs__path(dir, "meta/%.*s", (int)(slash - key), key);
    else
        err = fs__path(dir, "meta");
    if (err < 0 || (err = fs__path(name, "%s%c", slash != NULL ? slash + 1 : key, FS__META_SUFFIX)) < 0)
        return err;
    /* A meta_delete emptying the directory removes it; a put that loses
     * that race finds its directory gone and makes it again. */
    for (int attempt = 0; attempt < 4; attempt++) {
        if ((err = fs__mkdirs(fs, dir)) < 0)
            return err;
        err = fs__replace_file(fs, dir, name, buf, len, fs->sync != BERTH_SYNC_NONE);
        if (err != BERTH_ENOTFOUND)
            return err;
    }
    return err;
}

static int fs__meta_delete(berth_storage_t *b, const char *key)
{
    berth_fs_t *fs = fs__of(b);
    char path[FS__PATH_MAX];
    char *slash;
    int err;

    if ((err = fs__meta_path(path, key)) < 0)
        return err;
    if (unlinkat(fs->rootfd, path, 0) < 0)
        return fs__errno(errno == ENOTDIR ? ENOENT : errno, "unlink", path);
    if (fs->sync == BERTH_SYNC_ALWAYS) {
        char dir[FS__PATH_MAX];
        memcpy(dir, path, sizeof(dir));
        if ((slash = strrchr(dir, '/')) != NULL) {
            *slash = '\0';
            fs__sync_dir(fs, dir);
        }
    }
    /* Best effort: drop the directories this leaves empty, up to meta/. */
    while ((slash = strrchr(path, '/')) != NULL) {
        *slash = '\0';
        if (strcmp(path, "meta") == 0 || unlinkat(fs->rootfd, path, AT_REMOVEDIR) < 0)
            break;
    }
    return 0;
}

typedef struct fs__meta_walk {
    berth_storage_list_cb cb;
    void *ctx;
} fs__meta_walk_t;

static int fs__meta_walk_cb(void *ctx, const char *rel, const struct stat *st)
{
    fs__meta_walk_t *w = ctx;
    char key[FS__PATH_MAX];
    size_t len = strlen(rel);

    /* "meta/<key>~"; temporary files and strangers are skipped. */
    if (len < 6 || rel[len - 1] != FS__META_SUFFIX)
        return 0;
    memcpy(key, rel + 5, len - 6);
    key[len - 6] = '\0';
    if (!berth_meta_key_valid(key, len - 6))
        return 0;
    return w->cb(w->ctx, key);
}

static int fs__meta_list(berth_storage_t *b, const char *prefix, berth_storage_list_cb cb, void *ctx)
{
    berth_fs_t *fs = fs__of(b);
    char rel[FS__PATH_MAX];
    fs__meta_walk_t w = {.cb = cb, .ctx = ctx};
    size_t plen = strlen(prefix);
    int err;

    /* The prefix ends in '/': its directory, without the slash. */
    if (plen == 0)
        err = fs__path(rel, "meta");
    else
        err = fs__path(rel, "meta/%.*s", (int)(plen - 1), prefix);
    if (err < 0)
        return err;
    return fs__walk(fs, rel, 0, fs__meta_walk_cb, &w);
}

typedef struct fs__blob_walk {
    berth_storage_blob_cb cb;
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

static int fs__blob_list(berth_storage_t *b, berth_storage_blob_cb cb, void *ctx)
{
    char rel[FS__PATH_MAX] = "blobs/sha256";
    fs__blob_walk_t w = {.cb = cb, .ctx = ctx};

    return fs__walk(fs__of(b), rel, 0, fs__blob_walk_cb, &w);
}

typedef struct fs__link_walk {
    berth_storage_link_cb cb;
    void *ctx;
} fs__link_walk_t;

static int fs__link_walk_cb(void *ctx, const char *rel, const struct stat *st)
{
    fs__link_walk_t *w = ctx;
    char repo[BERTH_NAME_MAX + 1], digest[BERTH_DIGEST_LEN];
    /* "repositories/<repo>/_layers/sha256/<hex>/link" */
    static const char mid[] = "/_layers/sha256/";
    size_t len = strlen(rel), rlen;

    if (len < 13 + 1 + sizeof(mid) - 1 + 64 + 5 || memcmp(rel, "repositories/", 13) != 0 ||
        strcmp(rel + len - 5, "/link") != 0)
        return 0;
    rlen = len - 5 - 64 - (sizeof(mid) - 1) - 13;
    if (memcmp(rel + 13 + rlen, mid, sizeof(mid) - 1) != 0 || !fs__hex64(rel + len - 5 - 64) || rlen > BERTH_NAME_MAX)
        return 0;
    memcpy(repo, rel + 13, rlen);
    repo[rlen] = '\0';
    if (!berth_name_valid(repo, rlen))
        return 0;
    snprintf(digest, sizeof(digest), "sha256:%.64s", rel + len - 5 - 64);
    return w->cb(w->ctx, repo, digest, (int64_t)st->st_mtime);
}

static int fs__link_list(berth_storage_t *b, berth_storage_link_cb cb, void *ctx)
{
    char rel[FS__PATH_MAX] = "repositories";
    fs__link_walk_t w = {.cb = cb, .ctx = ctx};

    return fs__walk(fs__of(b), rel, 0, fs__link_walk_cb, &w);
}

/* ---- lifecycle ----------------------------------------------------------- */

static void fs__free(berth_storage_t *b)
{
    berth_fs_t *fs = fs__of(b);

    if (fs == NULL)
        return;
    if (fs->rootfd >= 0)
        close(fs->rootfd);
    free(fs->root);
    free(fs);
}

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
            return fs__errno(errno, "mkdir", tmp);
        if (i < len)
            tmp[i] = '/';
    }
    return 0;
}

int berth_storage_fs_new(berth_storage_t **out, const berth_fs_options_t *o)
{
    static const char *const dirs[] = {"uploads", "blobs/sha256", "repositories", "meta"};
    berth_fs_t *fs = NULL;
    int err;

    if (out == NULL)
        return berth_error_set(BERTH_EINVALID, "fs_new: missing argument");
    *out = NULL;
    if (o == NULL || o->root == NULL)
        return berth_error_set(BERTH_EINVALID, "storage.filesystem.rootdirectory is not set");
    if ((fs = calloc(1, sizeof(*fs))) == NULL)
        return berth_error_set(BERTH_ERR, "out of memory");
    fs->rootfd = -1;
    fs->super.version = BERTH_STORAGE_VERSION;
    fs->super.name = "filesystem";
    fs->super.free = fs__free;
    fs->super.record_get = fs__record_get;
    fs->super.record_put = fs__record_put;
    fs->super.record_list = fs__record_list;
    fs->super.upload_create = fs__upload_create;
    fs->super.upload_write = fs__upload_write;
    fs->super.upload_commit = fs__upload_commit;
    fs->super.upload_remove = fs__upload_remove;
    fs->super.blob_stat = fs__blob_stat;
    fs->super.blob_read = fs__blob_read;
    fs->super.blob_remove = fs__blob_remove;
    fs->super.link_put = fs__link_put;
    fs->super.link_get = fs__link_get;
    fs->super.link_remove = fs__link_remove;
    fs->super.upload_read = fs__upload_read;
    fs->super.meta_get = fs__meta_get;
    fs->super.meta_put = fs__meta_put;
    fs->super.meta_delete = fs__meta_delete;
    fs->super.meta_list = fs__meta_list;
    fs->super.blob_list = fs__blob_list;
    fs->super.link_list = fs__link_list;
    fs->sync = o->sync;
    atomic_init(&fs->direct, 1);

    if ((fs->root = strdup(o->root)) == NULL) {
        err = berth_error_set(BERTH_ERR, "out of memory");
        goto done;
    }
    if ((err = fs__mkdirs_root(fs->root)) < 0)
        goto done;
    if ((fs->rootfd = open(fs->root, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
        err = fs__errno(errno, "open", fs->root);
        goto done;
    }
    for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
        if ((err = fs__mkdirs(fs, dirs[i])) < 0)
            goto done;
    }
    *out = &fs->super;
    fs = NULL;

done:
    if (fs != NULL)
        fs__free(&fs->super);
    return err;
}

/*
 * Resume state files. See state.h.
 */
#include "client/state.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/error.h"
#include "core/validate.h"

static int state__mkdirs(char *path)
{
    for (char *p = path + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        int r = mkdir(path, 0700);
        *p = '/';
        if (r != 0 && errno != EEXIST)
            return -1;
    }
    if (mkdir(path, 0700) != 0 && errno != EEXIST)
        return -1;
    return 0;
}

int berth_state_dir(char **out, const char *sub)
{
    const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
    char buf[4096];

    *out = NULL;
    if (xdg != NULL && xdg[0] == '/')
        snprintf(buf, sizeof(buf), "%s/berth/%s", xdg, sub);
    else if (home != NULL && home[0] != '\0')
        snprintf(buf, sizeof(buf), "%s/.cache/berth/%s", home, sub);
    else
        return berth_error_set(BERTH_ERR, "neither XDG_CACHE_HOME nor HOME is set: no place for resume state");
    if (state__mkdirs(buf) != 0)
        return berth_error_set(BERTH_EIO, "mkdir %s: %s", buf, strerror(errno));
    if ((*out = strdup(buf)) == NULL)
        return berth_error_set(BERTH_ERR, "out of memory");
    return 0;
}

static int state__keyed_path(char **out, const char *sub, const char *key_text, const char *suffix)
{
    char d[BERTH_DIGEST_LEN], *dir = NULL;
    int err;

    *out = NULL;
    if ((err = berth_state_dir(&dir, sub)) < 0)
        return err;
    berth_sha256_of(key_text, strlen(key_text), d);
    size_t n = strlen(dir) + 80;
    if ((*out = malloc(n)) != NULL)
        snprintf(*out, n, "%s/%s%s", dir, d + 7, suffix);
    free(dir);
    return *out != NULL ? 0 : berth_error_set(BERTH_ERR, "out of memory");
}

int berth_state_path(char **out, const char *mode, const char *base, const char *repo, const char *file, uint64_t size,
                     int64_t mtime_ns)
{
    char *key = NULL;
    int err;

    if (asprintf(&key, "berth-upload-v1\n%s\n%s\n%s\n%s\n%llu\n%lld", mode, base, repo, file, (unsigned long long)size,
                 (long long)mtime_ns) < 0)
        return berth_error_set(BERTH_ERR, "out of memory");
    err = state__keyed_path(out, "uploads", key, ".json");
    free(key);
    return err;
}

void berth_upload_state_clear(berth_upload_state_t *st)
{
    free(st->url);
    memset(st, 0, sizeof(*st));
}

static uint64_t state__u64(json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    return json_is_integer(v) && json_integer_value(v) >= 0 ? (uint64_t)json_integer_value(v) : 0;
}

int berth_state_load(const char *path, berth_upload_state_t *st)
{
    json_error_t je;
    json_t *j;
    const char *s;

    memset(st, 0, sizeof(*st));
    if (path == NULL || access(path, F_OK) != 0)
        return berth_error_set(BERTH_ENOTFOUND, "no state file %s", path);
    if ((j = json_load_file(path, 0, &je)) == NULL || !json_is_object(j))
        goto bad;
    if ((s = json_string_value(json_object_get(j, "url"))) == NULL ||
        (strncmp(s, "http://", 7) != 0 && strncmp(s, "https://", 8) != 0))
        goto bad;
    if ((st->url = strdup(s)) == NULL) {
        json_decref(j);
        return berth_error_set(BERTH_ERR, "out of memory");
    }
    st->offset = state__u64(j, "offset");
    st->part_size = state__u64(j, "part_size");
    st->total_parts = state__u64(j, "total_parts");
    if ((s = json_string_value(json_object_get(j, "hash"))) != NULL) {
        if (strlen(s) >= sizeof(st->hash))
            goto bad;
        strcpy(st->hash, s);
    }
    if ((s = json_string_value(json_object_get(j, "digest"))) != NULL) {
        if (!berth_digest_valid(s, strlen(s)))
            goto bad;
        strcpy(st->digest, s);
    }
    json_decref(j);
    return 0;
bad:
    json_decref(j);
    berth_upload_state_clear(st);
    return berth_error_set(BERTH_EINVALID, "malformed state file %s", path);
}

static int state__write_file(const char *path, const char *text)
{
    char tmp[4200];
    size_t n = strlen(text);
    int fd;

    snprintf(tmp, sizeof(tmp), "%s.tmp.%d", path, (int)getpid());
    if ((fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600)) < 0)
        return berth_error_set(BERTH_EIO, "open %s: %s", tmp, strerror(errno));
    for (size_t done = 0; done < n;) {
        ssize_t w = write(fd, text + done, n - done);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            int e = errno;
            close(fd);
            unlink(tmp);
            return berth_error_set(BERTH_EIO, "write %s: %s", tmp, strerror(e));
        }
        done += (size_t)w;
    }
    /* No fsync: losing the state on a power cut only costs re-sending from
     * zero (the server's session is found again by nothing else). */
    if (close(fd) != 0 || rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        return berth_error_set(BERTH_EIO, "write %s: %s", path, strerror(e));
    }
    return 0;
}

int berth_state_save(const char *path, const berth_upload_state_t *st)
{
    json_t *j;
    char *text = NULL;
    int err;

    if (path == NULL)
        return 0;
    if ((j = json_object()) == NULL)
        return berth_error_set(BERTH_ERR, "out of memory");
    json_object_set_new(j, "version", json_integer(1));
    json_object_set_new(j, "url", json_string(st->url));
    json_object_set_new(j, "offset", json_integer((json_int_t)st->offset));
    if (st->hash[0])
        json_object_set_new(j, "hash", json_string(st->hash));
    if (st->digest[0])
        json_object_set_new(j, "digest", json_string(st->digest));
    if (st->part_size)
        json_object_set_new(j, "part_size", json_integer((json_int_t)st->part_size));
    if (st->total_parts)
        json_object_set_new(j, "total_parts", json_integer((json_int_t)st->total_parts));
    text = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    if (text == NULL)
        return berth_error_set(BERTH_ERR, "out of memory");
    err = state__write_file(path, text);
    free(text);
    return err;
}

int berth_state_remove(const char *path)
{
    if (path == NULL)
        return 0;
    if (unlink(path) != 0 && errno != ENOENT)
        return berth_error_set(BERTH_EIO, "unlink %s: %s", path, strerror(errno));
    return 0;
}

static int state__digest_path(char **out, const char *file, uint64_t size, int64_t mtime_ns)
{
    char *key = NULL;
    int err;

    if (asprintf(&key, "berth-digest-v1\n%s\n%llu\n%lld", file, (unsigned long long)size, (long long)mtime_ns) < 0)
        return berth_error_set(BERTH_ERR, "out of memory");
    err = state__keyed_path(out, "digests", key, "");
    free(key);
    return err;
}

int berth_digest_cache_get(const char *file, uint64_t size, int64_t mtime_ns, char out[BERTH_DIGEST_LEN])
{
    char *path = NULL, buf[BERTH_DIGEST_LEN + 8];
    FILE *f;
    int err;

    out[0] = '\0';
    if ((err = state__digest_path(&path, file, size, mtime_ns)) < 0)
        return err;
    f = fopen(path, "r");
    free(path);
    if (f == NULL)
        return berth_error_set(BERTH_ENOTFOUND, "no cached digest");
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    buf[strcspn(buf, "\n")] = '\0';
    if (!berth_digest_valid(buf, strlen(buf)))
        return berth_error_set(BERTH_ENOTFOUND, "no cached digest");
    strcpy(out, buf);
    return 0;
}

int berth_digest_cache_put(const char *file, uint64_t size, int64_t mtime_ns, const char *digest)
{
    char *path = NULL, text[BERTH_DIGEST_LEN + 2];
    int err;

    if ((err = state__digest_path(&path, file, size, mtime_ns)) < 0)
        return err;
    snprintf(text, sizeof(text), "%s\n", digest);
    err = state__write_file(path, text);
    free(path);
    return err;
}

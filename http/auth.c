/*
 * htpasswd + bcrypt authentication (contract in auth.h).
 */
#include <crypt.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "core/digest.h"
#include "core/error.h"
#include "core/log.h"
#include "http/app.h"
#include "http/auth.h"
#include "http/error.h"
#include "http/response.h"
#include "http/task.h"

/* Remembered credentials: direct-mapped, a new entry replaces whatever
 * shares its slot. Big enough for every client of a registry at once. */
#define AUTH__CACHE_SLOTS 1024
/* Longest Authorization header looked at; longer ones are refused. */
#define AUTH__HEADER_MAX 4096

typedef struct auth__user {
    char *name;
    char *hash;
} auth__user_t;

typedef struct auth__slot {
    unsigned char key[32]; /* SHA-256(salt || header) */
    int used;
    size_t user; /* index into users */
} auth__slot_t;

struct berth_auth {
    char *realm;
    auth__user_t *users;
    size_t nusers;
    unsigned char salt[32];
    pthread_mutex_t lock; /* the cache */
    auth__slot_t cache[AUTH__CACHE_SLOTS];
};

static int auth__bcrypt(const char *hash)
{
    return strncmp(hash, "$2a$", 4) == 0 || strncmp(hash, "$2b$", 4) == 0 || strncmp(hash, "$2y$", 4) == 0;
}

void berth_auth_free(berth_auth_t *a)
{
    if (a == NULL)
        return;
    for (size_t i = 0; i < a->nusers; i++) {
        free(a->users[i].name);
        free(a->users[i].hash);
    }
    free(a->users);
    free(a->realm);
    pthread_mutex_destroy(&a->lock);
    free(a);
}

size_t berth_auth_users(const berth_auth_t *a)
{
    return a != NULL ? a->nusers : 0;
}

static int auth__add(berth_auth_t *a, const char *name, size_t nlen, const char *hash, size_t hlen)
{
    auth__user_t *v = realloc(a->users, (a->nusers + 1) * sizeof(*v));

    if (v == NULL)
        return berth_error_set(BERTH_ERR, "out of memory");
    a->users = v;
    if ((v[a->nusers].name = strndup(name, nlen)) == NULL || (v[a->nusers].hash = strndup(hash, hlen)) == NULL) {
        free(v[a->nusers].name);
        return berth_error_set(BERTH_ERR, "out of memory");
    }
    a->nusers++;
    return 0;
}

int berth_auth_new(berth_auth_t **out, const char *realm, const char *path)
{
    berth_auth_t *a = NULL;
    FILE *f = NULL;
    char *line = NULL;
    size_t cap = 0, lineno = 0;
    ssize_t n;
    int err = 0;

    if (out == NULL)
        return berth_error_set(BERTH_EINVALID, "auth_new: missing argument");
    *out = NULL;
    if (realm == NULL || path == NULL)
        return berth_error_set(BERTH_EINVALID, "auth.htpasswd: realm and path are required");
    if ((a = calloc(1, sizeof(*a))) == NULL)
        return berth_error_set(BERTH_ERR, "out of memory");
    pthread_mutex_init(&a->lock, NULL);
    if ((a->realm = strdup(realm)) == NULL) {
        err = berth_error_set(BERTH_ERR, "out of memory");
        goto done;
    }
    if (RAND_bytes(a->salt, sizeof(a->salt)) != 1) {
        err = berth_error_set(BERTH_ERR, "auth: no randomness for the credential cache");
        goto done;
    }
    if ((f = fopen(path, "r")) == NULL) {
        int e = errno;
        err = berth_error_set(e == ENOENT ? BERTH_ENOTFOUND : BERTH_EIO, "auth.htpasswd.path %s: %s", path,
                              strerror(e));
        goto done;
    }
    while ((n = getline(&line, &cap, f)) >= 0) {
        size_t len = (size_t)n;
        lineno++;
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r' || line[len - 1] == ' ' ||
                           line[len - 1] == '\t'))
            len--;
        line[len] = '\0';
        if (len == 0 || line[0] == '#')
            continue;
        char *colon = memchr(line, ':', len);
        if (colon == NULL || colon == line || colon == line + len - 1) {
            err = berth_error_set(BERTH_EINVALID, "auth.htpasswd.path %s:%zu: expected user:hash", path, lineno);
            goto done;
        }
        const char *hash = colon + 1;
        if (!auth__bcrypt(hash)) {
            berth_log_warn("%s:%zu: user '%.*s' has no bcrypt hash (use htpasswd -B); it cannot log in", path, lineno,
                           (int)(colon - line), line);
            continue;
        }
        for (size_t i = 0; i < a->nusers; i++) {
            if (strlen(a->users[i].name) == (size_t)(colon - line) &&
                memcmp(a->users[i].name, line, (size_t)(colon - line)) == 0) {
                err = berth_error_set(BERTH_EINVALID, "auth.htpasswd.path %s:%zu: user '%s' appears twice", path,
                                      lineno, a->users[i].name);
                goto done;
            }
        }
        if ((err = auth__add(a, line, (size_t)(colon - line), hash, strlen(hash))) < 0)
            goto done;
    }
    if (ferror(f)) {
        err = berth_error_set(BERTH_EIO, "auth.htpasswd.path %s: read error", path);
        goto done;
    }
    if (a->nusers == 0)
        berth_log_warn("auth.htpasswd.path %s: no bcrypt users: nobody can log in", path);
    *out = a;
    a = NULL;

done:
    free(line);
    if (f != NULL)
        fclose(f);
    berth_auth_free(a);
    return err;
}

static void auth__key(const berth_auth_t *a, const char *header, size_t len, unsigned char key[32])
{
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    unsigned int n = 32;

    /* Allocation failure leaves a key no entry has: a cache miss. */
    memset(key, 0, 32);
    if (c == NULL)
        return;
    if (EVP_DigestInit_ex(c, EVP_sha256(), NULL) != 1 || EVP_DigestUpdate(c, a->salt, sizeof(a->salt)) != 1 ||
        EVP_DigestUpdate(c, header, len) != 1 || EVP_DigestFinal_ex(c, key, &n) != 1)
        memset(key, 0, 32);
    EVP_MD_CTX_free(c);
}

static int auth__lookup(berth_auth_t *a, const unsigned char key[32], const char **user)
{
    auth__slot_t *s = &a->cache[(key[0] | (unsigned)key[1] << 8) % AUTH__CACHE_SLOTS];
    int hit;

    pthread_mutex_lock(&a->lock);
    hit = s->used && CRYPTO_memcmp(s->key, key, 32) == 0;
    if (hit)
        *user = a->users[s->user].name;
    pthread_mutex_unlock(&a->lock);
    return hit;
}

static void auth__remember(berth_auth_t *a, const unsigned char key[32], size_t user)
{
    auth__slot_t *s = &a->cache[(key[0] | (unsigned)key[1] << 8) % AUTH__CACHE_SLOTS];

    pthread_mutex_lock(&a->lock);
    memcpy(s->key, key, 32);
    s->used = 1;
    s->user = user;
    pthread_mutex_unlock(&a->lock);
}

/* "Basic <token68>", scheme case-insensitive: the token's span. */
static int auth__basic(const char *header, size_t len, const char **tok, size_t *tlen)
{
    size_t i = 5;

    if (header == NULL || len < 7 || len > AUTH__HEADER_MAX || strncasecmp(header, "Basic", 5) != 0 ||
        header[5] != ' ')
        return -1;
    while (i < len && header[i] == ' ')
        i++;
    while (len > i && header[len - 1] == ' ')
        len--;
    if (i == len)
        return -1;
    *tok = header + i;
    *tlen = len - i;
    return 0;
}

/* Basic credentials "user:password" from their base64 token into out
 * (NUL-terminated); -1 when malformed or when they hold a NUL. */
static int auth__decode_token(const char *tok, size_t len, char *out, size_t outsz)
{
    size_t n;

    if (outsz == 0 || berth_base64_decode(tok, len, (unsigned char *)out, outsz - 1, &n) < 0 ||
        memchr(out, '\0', n) != NULL)
        return -1;
    out[n] = '\0';
    return 0;
}

int berth_auth_check(berth_auth_t *a, const char *header, size_t len, const char **user)
{
    unsigned char key[32];
    const char *tok;
    size_t tlen;

    *user = NULL;
    if (a == NULL || auth__basic(header, len, &tok, &tlen) < 0)
        return BERTH_AUTH_DENIED;
    auth__key(a, header, len, key);
    if (auth__lookup(a, key, user))
        return BERTH_AUTH_OK;
    return BERTH_AUTH_VERIFY;
}

int berth_auth_verify(berth_auth_t *a, const char *header, size_t len, const char **user)
{
    char plain[AUTH__HEADER_MAX];
    struct crypt_data *cd = NULL;
    const char *tok, *pass, *hash;
    size_t tlen, found = SIZE_MAX;
    unsigned char key[32];
    char *colon, *res;
    int ok = 0;

    *user = NULL;
    if (a == NULL || a->nusers == 0 || auth__basic(header, len, &tok, &tlen) < 0 ||
        auth__decode_token(tok, tlen, plain, sizeof(plain)) < 0 || (colon = strchr(plain, ':')) == NULL)
        return BERTH_AUTH_DENIED;
    *colon = '\0';
    pass = colon + 1;
    for (size_t i = 0; i < a->nusers; i++)
        if (strcmp(a->users[i].name, plain) == 0)
            found = i;
    /* An unknown user costs the same bcrypt as a known one, so timing does
     * not tell which names exist. */
    hash = a->users[found != SIZE_MAX ? found : 0].hash;
    if ((cd = calloc(1, sizeof(*cd))) == NULL)
        goto done;
    res = crypt_r(pass, hash, cd);
    ok = found != SIZE_MAX && res != NULL && res[0] != '*' && strlen(res) == strlen(hash) &&
         CRYPTO_memcmp(res, hash, strlen(hash)) == 0;

done:
    OPENSSL_cleanse(plain, sizeof(plain));
    if (cd != NULL) {
        OPENSSL_cleanse(cd, sizeof(*cd));
        free(cd);
    }
    if (!ok)
        return BERTH_AUTH_DENIED;
    auth__key(a, header, len, key);
    auth__remember(a, key, found);
    *user = a->users[found].name;
    return BERTH_AUTH_OK;
}

/* ---- the HTTP side ---------------------------------------------------------- */

typedef struct auth__task {
    berth_task_t super;
    berth_http_app_t *app;
    berth_auth_route_cb route;
    char *header;
    size_t len;
    int result;
    const char *user;
} auth__task_t;

static int auth__has_prefix(h2o_req_t *req, const char *prefix)
{
    size_t plen = req->query_at != SIZE_MAX ? req->query_at : req->path.len;
    size_t n = strlen(prefix);

    if (plen < n || memcmp(req->path.base, prefix, n) != 0)
        return 0;
    return plen == n || req->path.base[n] == '/';
}

static void auth__send_401(berth_http_app_t *app, h2o_req_t *req, const char *message)
{
    const char *realm = app->auth != NULL ? app->auth->realm : "berth";

    berth_api_t api = auth__has_prefix(req, "/v2") ? BERTH_API_OCI : BERTH_API_SESSIONS;

    if (api == BERTH_API_OCI)
        berth_http_header(req, "Docker-Distribution-API-Version", "registry/2.0");
    berth_http_headerf(req, "WWW-Authenticate", "Basic realm=\"%s\"", realm);
    berth_http_send_failure(req, api, BERTH_EINVALID, BERTH_SUBJECT_CREDENTIALS, message, NULL);
}

static void auth__work(berth_task_t *bt)
{
    auth__task_t *t = (auth__task_t *)bt;
    t->result = berth_auth_verify(t->app->auth, t->header, t->len, &t->user);
}

static void auth__done(berth_task_t *bt, h2o_req_t *req)
{
    auth__task_t *t = (auth__task_t *)bt;

    if (req == NULL)
        return;
    if (t->result != BERTH_AUTH_OK)
        return auth__send_401(t->app, req, "authentication required");
    t->route(t->app, req, t->user);
}

static void auth__dispose(berth_task_t *bt)
{
    auth__task_t *t = (auth__task_t *)bt;
    if (t->header != NULL)
        OPENSSL_cleanse(t->header, t->len);
    free(t->header);
}

void berth_auth_dispatch(berth_http_app_t *app, h2o_req_t *req, berth_auth_route_cb route)
{
    int sessions = auth__has_prefix(req, "/uploads");
    const char *user = NULL;
    ssize_t hi;
    h2o_iovec_t v = {NULL, 0};

    if (!sessions && !(app->auth != NULL && auth__has_prefix(req, "/v2"))) {
        route(app, req, NULL);
        return;
    }
    if (app->auth == NULL) {
        auth__send_401(app, req, "authentication is not configured on this server (auth.htpasswd)");
        return;
    }
    if ((hi = h2o_find_header(&req->headers, H2O_TOKEN_AUTHORIZATION, -1)) != -1)
        v = req->headers.entries[hi].value;
    switch (berth_auth_check(app->auth, v.base, v.len, &user)) {
    case BERTH_AUTH_OK:
        route(app, req, user);
        return;
    case BERTH_AUTH_VERIFY: {
        auth__task_t *t = (auth__task_t *)berth_task_new(berth_http_loop_of(req), req, sizeof(*t), 0, auth__work,
                                                         auth__done);
        t->super.dispose = auth__dispose;
        t->app = app;
        t->route = route;
        t->header = h2o_mem_alloc(v.len + 1);
        memcpy(t->header, v.base, v.len);
        t->header[v.len] = '\0';
        t->len = v.len;
        berth_task_submit(&t->super);
        return;
    }
    default:
        auth__send_401(app, req, "authentication required");
        return;
    }
}

/*
 * htpasswd + bcrypt: reading the file, verifying Basic credentials, and the
 * cache that makes bcrypt a once-per-credentials cost.
 */
#include <criterion/criterion.h>
#include <crypt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/error.h"
#include "http/auth.h"

static char path[64];

static char *bcrypt_of(const char *pw, int cost)
{
    char salt[CRYPT_GENSALT_OUTPUT_SIZE];
    struct crypt_data cd;

    memset(&cd, 0, sizeof(cd));
    cr_assert_not_null(crypt_gensalt_rn("$2y$", (unsigned long)cost, NULL, 0, salt, sizeof(salt)));
    cr_assert_not_null(crypt_r(pw, salt, &cd));
    return strdup(cd.output);
}

static void write_file(const char *text)
{
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs(text, f);
    fclose(f);
}

static void setup(void)
{
    int fd;
    snprintf(path, sizeof(path), "/tmp/berth-htpasswd-XXXXXX");
    cr_assert_geq(fd = mkstemp(path), 0);
    close(fd);
}

static void teardown(void)
{
    unlink(path);
}

TestSuite(auth, .init = setup, .fini = teardown);

static const char *header_of(const char *user, const char *pw)
{
    static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    static char out[512];
    char plain[256];
    size_t n = (size_t)snprintf(plain, sizeof(plain), "%s:%s", user, pw), o = 6;

    memcpy(out, "Basic ", 6);
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned char)plain[i] << 16 | (i + 1 < n ? (unsigned char)plain[i + 1] << 8 : 0) |
                     (i + 2 < n ? (unsigned char)plain[i + 2] : 0);
        out[o++] = tbl[v >> 18 & 63];
        out[o++] = tbl[v >> 12 & 63];
        out[o++] = i + 1 < n ? tbl[v >> 6 & 63] : '=';
        out[o++] = i + 2 < n ? tbl[v & 63] : '=';
    }
    out[o] = '\0';
    return out;
}

static int verify(berth_auth_t *a, const char *user, const char *pw, const char **who)
{
    const char *h = header_of(user, pw);
    return berth_auth_verify(a, h, strlen(h), who);
}

static int check(berth_auth_t *a, const char *user, const char *pw, const char **who)
{
    const char *h = header_of(user, pw);
    return berth_auth_check(a, h, strlen(h), who);
}

Test(auth, reads_bcrypt_entries_and_skips_comments_blank_lines_and_other_hashes)
{
    char *h1 = bcrypt_of("secret", 4), *h2 = bcrypt_of("pw:with colon", 4);
    char text[1024];
    berth_auth_t *a = NULL;
    const char *who = NULL;

    snprintf(text, sizeof(text), "# users\n\nalice:%s\r\nmd5user:$apr1$abc$def\ncarol:%s\n", h1, h2);
    write_file(text);
    cr_assert_eq(berth_auth_new(&a, "realm", path), 0, "%s", berth_error_last());
    cr_assert_eq(berth_auth_users(a), 2);
    cr_assert_eq(verify(a, "alice", "secret", &who), BERTH_AUTH_OK);
    cr_assert_str_eq(who, "alice");
    cr_assert_eq(verify(a, "carol", "pw:with colon", &who), BERTH_AUTH_OK);
    cr_assert_str_eq(who, "carol");
    cr_assert_eq(verify(a, "md5user", "anything", &who), BERTH_AUTH_DENIED);
    berth_auth_free(a);
    free(h1);
    free(h2);
}

Test(auth, refuses_malformed_files)
{
    char *h = bcrypt_of("x", 4);
    char text[512];
    berth_auth_t *a = (berth_auth_t *)1;

    write_file("no colon here\n");
    cr_assert_eq(berth_auth_new(&a, "r", path), BERTH_EINVALID);
    cr_assert_null(a);
    snprintf(text, sizeof(text), "bob:%s\nbob:%s\n", h, h);
    write_file(text);
    cr_assert_eq(berth_auth_new(&a, "r", path), BERTH_EINVALID);
    cr_assert(strstr(berth_error_last(), "twice") != NULL, "%s", berth_error_last());
    cr_assert_eq(berth_auth_new(&a, "r", "/nonexistent/htpasswd"), BERTH_ENOTFOUND);
    free(h);
}

Test(auth, denies_wrong_missing_and_malformed_credentials)
{
    char *h = bcrypt_of("secret", 4);
    char text[256];
    berth_auth_t *a = NULL;
    const char *who = "x";
    static const char *const malformed[] = {"", "Basic", "Basic ", "Bearer abc", "Basic !!!!", "Basic YWxpY2U=",
                                            "Basicxyz", "Digest username=alice"};

    snprintf(text, sizeof(text), "alice:%s\n", h);
    write_file(text);
    cr_assert_eq(berth_auth_new(&a, "r", path), 0);
    cr_assert_eq(verify(a, "alice", "wrong", &who), BERTH_AUTH_DENIED);
    cr_assert_null(who);
    cr_assert_eq(verify(a, "mallory", "secret", &who), BERTH_AUTH_DENIED);
    cr_assert_eq(verify(a, "alice", "", &who), BERTH_AUTH_DENIED);
    cr_assert_eq(berth_auth_check(a, NULL, 0, &who), BERTH_AUTH_DENIED);
    for (size_t i = 0; i < sizeof(malformed) / sizeof(malformed[0]); i++) {
        cr_assert_eq(berth_auth_check(a, malformed[i], strlen(malformed[i]), &who) == BERTH_AUTH_OK, 0);
        cr_assert_eq(berth_auth_verify(a, malformed[i], strlen(malformed[i]), &who), BERTH_AUTH_DENIED, "%s",
                     malformed[i]);
    }
    /* Wrong credentials are never remembered. */
    cr_assert_eq(check(a, "alice", "wrong", &who), BERTH_AUTH_VERIFY);
    berth_auth_free(a);
    free(h);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

Test(auth, verified_credentials_are_cached_so_bcrypt_runs_once)
{
    char *h = bcrypt_of("secret", 10);
    char text[256];
    berth_auth_t *a = NULL;
    const char *who = NULL;
    double t0, once, many;

    snprintf(text, sizeof(text), "alice:%s\n", h);
    write_file(text);
    cr_assert_eq(berth_auth_new(&a, "r", path), 0);
    cr_assert_eq(check(a, "alice", "secret", &who), BERTH_AUTH_VERIFY);
    t0 = now_s();
    cr_assert_eq(verify(a, "alice", "secret", &who), BERTH_AUTH_OK);
    once = now_s() - t0;
    t0 = now_s();
    for (int i = 0; i < 1000; i++) {
        cr_assert_eq(check(a, "alice", "secret", &who), BERTH_AUTH_OK);
        cr_assert_str_eq(who, "alice");
    }
    many = now_s() - t0;
    cr_assert_lt(many, once, "1000 cached checks (%.4f s) cost less than one bcrypt (%.4f s)", many, once);
    /* Another password for the same user is not a cache hit. */
    cr_assert_eq(check(a, "alice", "secreT", &who), BERTH_AUTH_VERIFY);
    berth_auth_free(a);
    free(h);
}

/*
 * The client's pure parts: references and URLs, Range parsing, retry
 * delays, progress text, resume state files and the digest cache.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "client/http.h"
#include "client/progress.h"
#include "client/ref.h"
#include "client/state.h"
#include "core/error.h"

#define D64 "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

Test(client_ref, loopback_hosts_default_to_http_others_to_https)
{
    berth_ref_t r;

    cr_assert_eq(berth_ref_parse(&r, "127.0.0.1:5000/library/demo", 0), 0);
    cr_assert_str_eq(r.base, "http://127.0.0.1:5000");
    cr_assert_str_eq(r.repo, "library/demo");
    cr_assert_str_eq(r.digest, "");
    berth_ref_clear(&r);
    cr_assert_eq(berth_ref_parse(&r, "localhost/a", 0), 0);
    cr_assert_str_eq(r.base, "http://localhost");
    berth_ref_clear(&r);
    cr_assert_eq(berth_ref_parse(&r, "[::1]:5000/a", 0), 0);
    cr_assert_str_eq(r.base, "http://[::1]:5000");
    berth_ref_clear(&r);
    cr_assert_eq(berth_ref_parse(&r, "registry.example:443/team/app/", 0), 0);
    cr_assert_str_eq(r.base, "https://registry.example:443");
    cr_assert_str_eq(r.repo, "team/app");
    berth_ref_clear(&r);
    cr_assert_eq(berth_ref_parse(&r, "https://localhost:5000/a@" D64, 1), 0);
    cr_assert_str_eq(r.base, "https://localhost:5000");
    cr_assert_str_eq(r.digest, D64);
    berth_ref_clear(&r);
}

Test(client_ref, malformed_references_are_refused)
{
    berth_ref_t r;
    const char *bad0[] = {"noslash", "/repo", "host/", "host/UPPER", "host/a@" D64, "ftp://h/a", NULL};
    for (const char **p = bad0; *p != NULL; p++) {
        int err = berth_ref_parse(&r, *p, 0);
        if (strncmp(*p, "ftp", 3) == 0) {
            /* "ftp:" is taken as a host name: the repository part is then "/h/a" */
            cr_assert_neq(err, 0, "%s", *p);
        } else {
            cr_assert_eq(err, BERTH_EINVALID, "%s", *p);
        }
        cr_assert_null(r.base);
    }
    cr_assert_eq(berth_ref_parse(&r, "h/a", 1), BERTH_EINVALID);
    cr_assert_eq(berth_ref_parse(&r, "h/a@sha256:abc", 1), BERTH_EINVALID);
    cr_assert_eq(berth_ref_parse(&r, "h/a@md5:0123456789abcdef0123456789abcdef", 1), BERTH_EINVALID);
}

Test(client_url, locations_resolve_and_queries_append)
{
    char *u = berth_url_resolve("http://h:1", "/v2/a/blobs/uploads/x?_state=1");
    cr_assert_str_eq(u, "http://h:1/v2/a/blobs/uploads/x?_state=1");
    free(u);
    u = berth_url_resolve("http://h:1", "https://other/x");
    cr_assert_str_eq(u, "https://other/x");
    free(u);
    u = berth_url_add_query("http://h/x", "digest=" D64);
    cr_assert_str_eq(u, "http://h/x?digest=" D64);
    free(u);
    u = berth_url_add_query("http://h/x?_state=a", "digest=d");
    cr_assert_str_eq(u, "http://h/x?_state=a&digest=d");
    free(u);

    char *b, *p;
    cr_assert_eq(berth_url_split("https://h:5/v2/a/blobs/uploads/x?y", &b, &p), 0);
    cr_assert_str_eq(b, "https://h:5");
    cr_assert_str_eq(p, "/v2/a/blobs/uploads/x?y");
    free(b);
    free(p);
    cr_assert_eq(berth_url_split("h/x", &b, &p), BERTH_EINVALID);
    cr_assert_null(b);
}

Test(client_range, oci_range_gives_the_next_offset)
{
    uint64_t off = 99;
    cr_assert_eq(berth_oci_range_offset("0-0", 0, &off), 0);
    cr_assert_eq(off, 0);
    cr_assert_eq(berth_oci_range_offset("0-0", 1, &off), 0);
    cr_assert_eq(off, 1);
    cr_assert_eq(berth_oci_range_offset("0-16777215", 0, &off), 0);
    cr_assert_eq(off, 16777216);
    cr_assert_eq(berth_oci_range_offset("bytes=0-9", 0, &off), 0);
    cr_assert_eq(off, 10);
    cr_assert_eq(berth_oci_range_offset(" 0-9 ", 0, &off), 0);
    cr_assert_eq(off, 10);
    const char *bad[] = {"",  "5-9", "0-", "-9", "0-9x", "a-b", "0-18446744073709551615", "0-99999999999999999999999",
                         NULL};
    for (const char **p = bad; *p != NULL; p++)
        cr_assert_eq(berth_oci_range_offset(*p, 0, &off), BERTH_EINVALID, "%s", *p);
    cr_assert_eq(berth_oci_range_offset(NULL, 0, &off), BERTH_EINVALID);
}

Test(client_range, part_ranges_parse)
{
    uint64_t a, b;
    cr_assert_eq(berth_part_range_parse("7", &a, &b), 0);
    cr_assert(a == 7 && b == 7);
    cr_assert_eq(berth_part_range_parse("3-9", &a, &b), 0);
    cr_assert(a == 3 && b == 9);
    const char *bad[] = {"", "0", "0-3", "9-3", "3-", "-3", "3-4-5", "x", "3 ", NULL};
    for (const char **p = bad; *p != NULL; p++)
        cr_assert_eq(berth_part_range_parse(*p, &a, &b), BERTH_EINVALID, "%s", *p);
}

Test(client_retry, backoff_grows_is_capped_and_jittered)
{
    for (unsigned attempt = 1; attempt < 40; attempt++) {
        uint64_t bound = 200;
        for (unsigned i = 1; i < attempt && bound < 10000; i++)
            bound *= 2;
        if (bound > 10000)
            bound = 10000;
        uint64_t lo = UINT64_MAX, hi = 0;
        for (uint64_t rnd = 0; rnd < 20000; rnd += 7) {
            uint64_t ms = berth_backoff_ms(attempt, 200, 10000, rnd * 2654435761u);
            lo = ms < lo ? ms : lo;
            hi = ms > hi ? ms : hi;
        }
        cr_assert_geq(lo, bound / 2, "attempt %u: %llu < %llu", attempt, (unsigned long long)lo,
                      (unsigned long long)(bound / 2));
        cr_assert_leq(hi, bound, "attempt %u", attempt);
        cr_assert_gt(hi, lo, "attempt %u: no jitter", attempt);
    }
    cr_assert_eq(berth_backoff_ms(1, 0, 10000, 12345), 0);
}

Test(client_progress, human_sizes)
{
    char b[32];
    cr_assert_str_eq(berth_human_bytes(0, b, sizeof(b)), "0 B");
    cr_assert_str_eq(berth_human_bytes(1023, b, sizeof(b)), "1023 B");
    cr_assert_str_eq(berth_human_bytes(1536, b, sizeof(b)), "1.5 KiB");
    cr_assert_str_eq(berth_human_bytes(16u << 20, b, sizeof(b)), "16.0 MiB");
    cr_assert_str_eq(berth_human_bytes(3ull << 40, b, sizeof(b)), "3.0 TiB");
}

Test(client_progress, text_has_bar_bytes_rate_eta_resume_and_retries)
{
    char buf[512];
    berth_progress_view_t v = {
        .done = 512u << 20, .total = 1024u << 20, .resumed_from = 256u << 20, .retries = 3, .elapsed_s = 2.0};
    berth_progress_format(&v, "push", 10, buf, sizeof(buf));
    /* 256 MiB moved in 2 s: 128 MiB/s; 512 MiB left: 4 s. */
    cr_assert_str_eq(buf,
                     "[#####>....] push 512.0 MiB / 1.0 GiB  50% 128.0 MiB/s ETA 00:04 resumed at 256.0 MiB retries 3");
    v = (berth_progress_view_t){.done = 0, .total = 100, .elapsed_s = 0.0};
    berth_progress_format(&v, "pull", 0, buf, sizeof(buf));
    cr_assert_str_eq(buf, "pull 0 B / 100 B   0% 0 B/s ETA --:--");
    v = (berth_progress_view_t){.done = 100, .total = 100, .elapsed_s = 1.0};
    berth_progress_format(&v, "pull", 4, buf, sizeof(buf));
    cr_assert_str_eq(buf, "[####] pull 100 B / 100 B 100% 100 B/s ETA 00:00");
    /* A tiny buffer truncates, never overflows. */
    char small[8];
    berth_progress_format(&v, "pull", 4, small, sizeof(small));
    cr_assert_eq(strlen(small), 7);
}

static char tmpdir[64];

static void state_setup(void)
{
    strcpy(tmpdir, "/tmp/berth-unit-client-XXXXXX");
    cr_assert_not_null(mkdtemp(tmpdir));
    setenv("XDG_CACHE_HOME", tmpdir, 1);
}

static void state_teardown(void)
{
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    cr_assert_eq(system(cmd), 0);
}

Test(client_state, round_trip_and_keying, .init = state_setup, .fini = state_teardown)
{
    char *p1 = NULL, *p2 = NULL, *p3 = NULL;
    berth_upload_state_t st = {0}, got;

    cr_assert_eq(berth_state_path(&p1, "oci", "http://h:1", "a/b", "/data/f", 100, 5), 0);
    cr_assert_eq(berth_state_path(&p2, "oci", "http://h:1", "a/b", "/data/f", 100, 6), 0);
    cr_assert_eq(berth_state_path(&p3, "parts", "http://h:1", "a/b", "/data/f", 100, 5), 0);
    cr_assert_str_neq(p1, p2, "another mtime is another upload");
    cr_assert_str_neq(p1, p3, "another mode is another upload");
    cr_assert(strncmp(p1, tmpdir, strlen(tmpdir)) == 0, "%s under %s", p1, tmpdir);

    cr_assert_eq(berth_state_load(p1, &got), BERTH_ENOTFOUND);
    st.url = strdup("http://h:1/v2/a/b/blobs/uploads/x");
    st.offset = 1u << 20;
    strcpy(st.hash, "v1:abc");
    strcpy(st.digest, D64);
    st.part_size = 4096;
    st.total_parts = 7;
    cr_assert_eq(berth_state_save(p1, &st), 0);
    cr_assert_eq(berth_state_load(p1, &got), 0);
    cr_assert_str_eq(got.url, st.url);
    cr_assert_eq(got.offset, st.offset);
    cr_assert_str_eq(got.hash, "v1:abc");
    cr_assert_str_eq(got.digest, D64);
    cr_assert_eq(got.part_size, 4096);
    cr_assert_eq(got.total_parts, 7);
    berth_upload_state_clear(&got);

    struct stat sb;
    cr_assert_eq(stat(p1, &sb), 0);
    cr_assert_eq(sb.st_mode & 0777, 0600);

    /* A malformed file is refused (the caller starts over). */
    FILE *f = fopen(p2, "w");
    fputs("{\"url\": 42}", f);
    fclose(f);
    cr_assert_eq(berth_state_load(p2, &got), BERTH_EINVALID);
    cr_assert_null(got.url);
    f = fopen(p2, "w");
    fputs("not json", f);
    fclose(f);
    cr_assert_eq(berth_state_load(p2, &got), BERTH_EINVALID);

    cr_assert_eq(berth_state_remove(p1), 0);
    cr_assert_eq(berth_state_remove(p1), 0, "removing twice is fine");
    cr_assert_eq(berth_state_load(p1, &got), BERTH_ENOTFOUND);
    berth_upload_state_clear(&st);
    free(p1);
    free(p2);
    free(p3);
}

Test(client_state, digest_cache, .init = state_setup, .fini = state_teardown)
{
    char d[BERTH_DIGEST_LEN];

    cr_assert_eq(berth_digest_cache_get("/x", 10, 1, d), BERTH_ENOTFOUND);
    cr_assert_eq(berth_digest_cache_put("/x", 10, 1, D64), 0);
    cr_assert_eq(berth_digest_cache_get("/x", 10, 1, d), 0);
    cr_assert_str_eq(d, D64);
    cr_assert_eq(berth_digest_cache_get("/x", 11, 1, d), BERTH_ENOTFOUND, "another size");
    cr_assert_eq(berth_digest_cache_get("/x", 10, 2, d), BERTH_ENOTFOUND, "another mtime");
}

static berth_http_resp_t resp_with(const char *body)
{
    berth_http_resp_t r = {.status = 400, .content_length = -1};
    r.body = strdup(body);
    r.body_len = strlen(body);
    return r;
}

Test(client_http, error_bodies_in_words)
{
    char buf[128];
    berth_http_resp_t r = resp_with("{\"errors\":[{\"code\":\"DIGEST_INVALID\",\"message\":\"digest mismatch\"}]}");
    cr_assert_str_eq(berth_http_resp_error(&r, buf, sizeof(buf)), "DIGEST_INVALID: digest mismatch");
    berth_http_resp_clear(&r);
    r = resp_with("{\"error\":{\"code\":\"PART_INVALID\",\"message\":\"wrong size\"}}");
    cr_assert_str_eq(berth_http_resp_error(&r, buf, sizeof(buf)), "PART_INVALID: wrong size");
    berth_http_resp_clear(&r);
    r = resp_with("{\"error\":\"nope\"}");
    cr_assert_str_eq(berth_http_resp_error(&r, buf, sizeof(buf)), "nope");
    berth_http_resp_clear(&r);
    r = resp_with("<html>\r\nbad gateway</html>");
    cr_assert_str_eq(berth_http_resp_error(&r, buf, sizeof(buf)), "<html>  bad gateway</html>");
    berth_http_resp_clear(&r);
    cr_assert_eq(r.content_length, -1, "cleared responses have no length");
    cr_assert_str_eq(berth_http_resp_error(&r, buf, sizeof(buf)), "");
}

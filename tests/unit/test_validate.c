/*
 * Validators of names, digests, ids and tags: what reaches a storage path.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "core/validate.h"

#define V(f, s) f(s, strlen(s))

Test(validate, repository_names_that_match_the_spec)
{
    static const char *const good[] = {
        "a",
        "0",
        "library/ubuntu",
        "a/b-c/d__e",
        "a.b",
        "a_b",
        "a__b",
        "a-b",
        "a---b",
        "a0/b1/c2",
        "foo.bar_baz-qux/x",
        "123",
        "ab/cd/ef/gh/ij",
    };
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        cr_assert(V(berth_name_valid, good[i]), "rejected \"%s\"", good[i]);

    char longest[BERTH_NAME_MAX + 1];
    memset(longest, 'a', BERTH_NAME_MAX);
    longest[BERTH_NAME_MAX] = '\0';
    cr_assert(berth_name_valid(longest, BERTH_NAME_MAX));
}

Test(validate, repository_names_that_do_not)
{
    static const char *const bad[] = {
        "",    "../x", "..",  ".",   "x/..", "x/../y", "A",    "Library/ubuntu", "a//b", "a/",    "/a",
        "-a",  "a-",   "_a",  "a_",  ".a",   "a.",     "a..b", "a___b",          "a._b", "a-.b",  "a.-b",
        "a b", "a\\b", "a:b", "a@b", "ä",    "a/-b",   "a/_b", "a/.b",           "a\nb", "a%2fb",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_assert_not(V(berth_name_valid, bad[i]), "accepted \"%s\"", bad[i]);

    char toolong[BERTH_NAME_MAX + 2];
    memset(toolong, 'a', BERTH_NAME_MAX + 1);
    toolong[BERTH_NAME_MAX + 1] = '\0';
    cr_assert_not(berth_name_valid(toolong, BERTH_NAME_MAX + 1));
    /* The length is explicit: an embedded NUL does not end the name early. */
    cr_assert_not(berth_name_valid("ab\0cd", 5));
    cr_assert(berth_name_valid("ab/cd", 2));
    cr_assert_not(berth_name_valid(NULL, 0));
}

Test(validate, sha256_digests)
{
    const char *good = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    cr_assert(V(berth_digest_valid, good));
    cr_assert(V(berth_digest_wellformed, good));

    static const char *const bad[] = {
        "",
        "sha256:",
        "sha256:E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855",
        "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b85",
        "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b8555",
        "sha256:g3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "sha512:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "SHA256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "sha256-e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_assert_not(V(berth_digest_valid, bad[i]), "accepted \"%s\"", bad[i]);
    cr_assert_not(berth_digest_valid(good, strlen(good) - 1));
}

Test(validate, digest_general_grammar)
{
    static const char *const good[] = {
        "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        "sha512:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
        "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        "multihash+base58:QmRZxt2b1FVZPNqd8hsiykDL3TdBDeTSPX9Kv46HmX4Gx8",
        "sha256+b64u:LCa0a2j_xo_5m0U8HTBBNBNCLXBkg7-g-YpeiGJm564",
        "a.b_c-d:x=",
        "0:0",
    };
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        cr_assert(V(berth_digest_wellformed, good[i]), "rejected \"%s\"", good[i]);

    static const char *const bad[] = {
        "",           ":",           "sha256",      "sha256:",      ":abc",
        "SHA256:abc", "sha256+:abc", "+sha256:abc", "sha..256:abc", "sha256:a/b",
        "sha256:a+b", "sha256:a b",  "sha256::abc", "sha 256:abc",  "sha256:abc\n",
        /* registered algorithms with a wrong encoding */
        "sha256:abc", "sha256:ABC", "sha512:0123",
        "sha256:0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef",
        "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_assert_not(V(berth_digest_wellformed, bad[i]), "accepted \"%s\"", bad[i]);
}

Test(validate, generated_ids_are_valid_version_4_and_distinct)
{
    enum { N = 2000 };
    static char ids[N][BERTH_ID_LEN];

    for (int i = 0; i < N; i++) {
        cr_assert_eq(berth_id_generate(ids[i]), 0);
        cr_assert_eq(strlen(ids[i]), BERTH_ID_LEN - 1);
        cr_assert(V(berth_id_valid, ids[i]), "generated \"%s\" invalid", ids[i]);
        cr_assert_eq(ids[i][14], '4', "version nibble in %s", ids[i]);
        cr_assert(strchr("89ab", ids[i][19]) != NULL, "variant nibble in %s", ids[i]);
    }
    for (int i = 0; i < N; i++)
        for (int j = i + 1; j < N; j++)
            cr_assert_str_neq(ids[i], ids[j]);
}

Test(validate, session_ids)
{
    cr_assert(V(berth_id_valid, "0f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0"));
    cr_assert(V(berth_id_valid, "00000000-0000-0000-0000-000000000000"));

    static const char *const bad[] = {
        "",
        "0F1E2D3C-4B5A-4968-8776-A5B4C3D2E1F0",
        "0f1e2d3c4b5a49688776a5b4c3d2e1f0",
        "0f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f",
        "0f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f00",
        "0f1e2d3c-4b5a-4968-8776_a5b4c3d2e1f0",
        "0f1e2d3c-4b5a-4968-8776-a5b4c3d2e1g0",
        "0f1e2d3-c4b5a-4968-8776-a5b4c3d2e1f0",
        "../../../../../../../../etc/passwdxx",
        "0f1e2d3c-4b5a-4968-8776-a5b4c3d2e1/0",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_assert_not(V(berth_id_valid, bad[i]), "accepted \"%s\"", bad[i]);
}

Test(validate, tags)
{
    static const char *const good[] = {"latest", "v1.0.0", "_x", "A", "1", "a-b_c.d", "X_"};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        cr_assert(V(berth_tag_valid, good[i]), "rejected \"%s\"", good[i]);

    static const char *const bad[] = {"", ".a", "-a", "a/b", "a:b", "a b", "a+b"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_assert_not(V(berth_tag_valid, bad[i]), "accepted \"%s\"", bad[i]);

    char t[130];
    memset(t, 'a', sizeof(t));
    cr_assert(berth_tag_valid(t, 128));
    cr_assert_not(berth_tag_valid(t, 129));
}

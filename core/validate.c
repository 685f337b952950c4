/*
 * Validators for everything that becomes part of a storage path or key.
 *
 * The grammars are matched by hand rather than with regcomp(3): they are
 * tiny, the matcher is locale-independent, and an explicit length means a
 * name with an embedded NUL cannot pass as a shorter one.
 */
#include <openssl/rand.h>
#include <stdio.h>
#include <string.h>

#include "core/error.h"
#include "core/validate.h"

static int validate__lower_alnum(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

static int validate__lower_hex(char c)
{
    return (c >= 'a' && c <= 'f') || (c >= '0' && c <= '9');
}

static int validate__alnum(char c)
{
    return validate__lower_alnum(c) || (c >= 'A' && c <= 'Z');
}

/* Skips a run of [a-z0-9]; 0 if the run is empty. */
static int validate__alnum_run(const char *s, size_t len, size_t *i)
{
    size_t start = *i;
    while (*i < len && validate__lower_alnum(s[*i]))
        (*i)++;
    return *i > start;
}

int berth_name_valid(const char *name, size_t len)
{
    size_t i = 0;

    if (name == NULL || len == 0 || len > BERTH_NAME_MAX)
        return 0;
    /* Each component is [a-z0-9]+ joined by ".", "_", "__" or "-+"; components
     * are joined by "/". So every separator must be followed by an alnum run,
     * which rules out "..", "a/", "//", leading separators and "." alone. */
    for (;;) {
        if (!validate__alnum_run(name, len, &i))
            return 0;
        if (i == len)
            return 1;
        switch (name[i]) {
        case '/':
        case '.':
            i++;
            break;
        case '_':
            i++;
            if (i < len && name[i] == '_')
                i++;
            break;
        case '-':
            while (i < len && name[i] == '-')
                i++;
            break;
        default:
            return 0;
        }
    }
}

int berth_digest_valid(const char *digest, size_t len)
{
    static const char prefix[] = "sha256:";

    if (digest == NULL || len != sizeof(prefix) - 1 + 64 || memcmp(digest, prefix, sizeof(prefix) - 1) != 0)
        return 0;
    for (size_t i = sizeof(prefix) - 1; i < len; i++)
        if (!validate__lower_hex(digest[i]))
            return 0;
    return 1;
}

int berth_digest_wellformed(const char *digest, size_t len)
{
    size_t i = 0;

    if (digest == NULL)
        return 0;
    /* algorithm := component ([+._-] component)*, component := [a-z0-9]+ */
    for (;;) {
        if (!validate__alnum_run(digest, len, &i))
            return 0;
        if (i == len)
            return 0;
        char c = digest[i++];
        if (c == ':')
            break;
        if (c != '+' && c != '.' && c != '_' && c != '-')
            return 0;
    }
    /* encoded := [a-zA-Z0-9=_-]+ */
    if (i == len)
        return 0;
    size_t enc = i;
    for (; i < len; i++) {
        char c = digest[i];
        if (!validate__alnum(c) && c != '=' && c != '_' && c != '-')
            return 0;
    }
    /* The registered algorithms fix their encoding: lowercase hex of the
     * hash's length. "sha256:ABC" is malformed, not merely unsupported. */
    size_t hexlen = 0;
    if (enc == 7 && memcmp(digest, "sha256:", 7) == 0)
        hexlen = 64;
    else if (enc == 7 && memcmp(digest, "sha512:", 7) == 0)
        hexlen = 128;
    if (hexlen != 0) {
        if (len - enc != hexlen)
            return 0;
        for (i = enc; i < len; i++)
            if (!validate__lower_hex(digest[i]))
                return 0;
    }
    return 1;
}

int berth_id_valid(const char *id, size_t len)
{
    if (id == NULL || len != BERTH_ID_LEN - 1)
        return 0;
    for (size_t i = 0; i < len; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (id[i] != '-')
                return 0;
        } else if (!validate__lower_hex(id[i])) {
            return 0;
        }
    }
    return 1;
}

int berth_id_generate(char out[BERTH_ID_LEN])
{
    unsigned char b[16];

    if (RAND_bytes(b, sizeof(b)) != 1)
        return berth_error_set(BERTH_ERR, "session id: the random generator failed");
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40); /* version 4 */
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80); /* RFC 4122 variant */
    snprintf(out, BERTH_ID_LEN, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1],
             b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]);
    return BERTH_OK;
}

int berth_tag_valid(const char *tag, size_t len)
{
    if (tag == NULL || len == 0 || len > 128)
        return 0;
    if (!validate__alnum(tag[0]) && tag[0] != '_')
        return 0;
    for (size_t i = 1; i < len; i++)
        if (!validate__alnum(tag[i]) && tag[i] != '.' && tag[i] != '_' && tag[i] != '-')
            return 0;
    return 1;
}

/*
 * Validation of the names that reach the storage: repository names, digests
 * and session ids. Everything a client sends that becomes part of a storage
 * path or key passes one of these first, so no request can escape the
 * storage root.
 */
#ifndef BERTH_CORE_VALIDATE_H
#define BERTH_CORE_VALIDATE_H

#include <stddef.h>

/* 32 hex digits in 8-4-4-4-12 form + NUL */
#define BERTH_ID_LEN 37
#define BERTH_NAME_MAX 255

/* 1 if name matches the distribution-spec's repository name grammar
 * [a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(\/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*
 * and is at most BERTH_NAME_MAX bytes; else 0. */
int berth_name_valid(const char *name, size_t len);

/* 1 if digest is "sha256:" followed by exactly 64 lowercase hex digits. */
int berth_digest_valid(const char *digest, size_t len);

/* 1 if digest has the spec's general digest grammar
 * (algorithm ":" encoded) even if berth does not support the algorithm; the
 * registered algorithms sha256 and sha512 must have their exact lowercase hex
 * encoding. Malformed digests are DIGEST_INVALID, well-formed ones of another
 * algorithm simply name no stored blob. */
int berth_digest_wellformed(const char *digest, size_t len);

/* 1 if id is a session id as berth_id_generate writes them (lowercase). */
int berth_id_valid(const char *id, size_t len);

/* Writes a new random 128-bit session id (RFC 4122 version 4 layout, from
 * the OpenSSL CSPRNG). BERTH_ERR if the CSPRNG fails. */
int berth_id_generate(char out[BERTH_ID_LEN]);

/* 1 if tag matches [a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}. */
int berth_tag_valid(const char *tag, size_t len);

#endif

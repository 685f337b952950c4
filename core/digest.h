/*
 * SHA-256 with a state that can be saved and restored.
 *
 * A session keeps the hash of every byte it has received, saved in its
 * record after each chunk, so completing an upload never re-reads the data:
 * the final PUT costs the same for 1 KiB and for 10 GiB.
 */
#ifndef BERTH_CORE_DIGEST_H
#define BERTH_CORE_DIGEST_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "core/workq.h"

/* "sha256:" + 64 hex digits + NUL */
#define BERTH_DIGEST_LEN 72
/* Upper bound of a saved state's text, NUL included. */
#define BERTH_SHA256_STATE_LEN 256

typedef struct berth_sha256 {
    /* Opaque; big enough for OpenSSL's SHA256_CTX, checked at build time. */
    uint64_t opaque[16];
} berth_sha256_t;

void berth_sha256_init(berth_sha256_t *h);
void berth_sha256_update(berth_sha256_t *h, const void *data, size_t len);

/* Writes "sha256:<hex>" of everything hashed so far to out. Does not change
 * h, so hashing may continue. */
void berth_sha256_digest(const berth_sha256_t *h, char out[BERTH_DIGEST_LEN]);

/* Number of bytes hashed so far. */
uint64_t berth_sha256_length(const berth_sha256_t *h);

/* Serialises the state as printable ASCII (version-tagged, with a checksum)
 * into out. */
void berth_sha256_save(const berth_sha256_t *h, char out[BERTH_SHA256_STATE_LEN]);

/* Restores a state written by berth_sha256_save. BERTH_EINVALID when the text
 * is malformed, from another version or fails its checksum. */
int berth_sha256_restore(berth_sha256_t *h, const char *text);

/* Hashing beside other work: berth_sha256_update_start hashes `data` into
 * *h on a thread of `pool` when there is one and `len` makes that worth it
 * (otherwise at once, on the caller's thread), so a piece can be hashed
 * while it is written. Until berth_sha256_update_wait returns, *h and
 * `data` belong to the job. */
typedef struct berth_sha256_job {
    berth_job_t job; /* must stay first */
    pthread_mutex_t mu;
    pthread_cond_t cond;
    int queued, done;
    berth_sha256_t *h;
    const void *data;
    size_t len;
} berth_sha256_job_t;

void berth_sha256_update_start(berth_sha256_job_t *job, berth_workq_t *pool, berth_sha256_t *h, const void *data,
                               size_t len);
void berth_sha256_update_wait(berth_sha256_job_t *job);

/* One-shot "sha256:<hex>" of a buffer. */
void berth_sha256_of(const void *data, size_t len, char out[BERTH_DIGEST_LEN]);

/* Decodes standard base64 (RFC 4648 section 4, padding optional) of `len`
 * characters into out, at most `outsz` bytes; *outlen gets the decoded
 * length. -1 when the text is malformed or decodes to more than outsz
 * bytes, else 0. (Used by Basic credentials and Content-Digest.) */
int berth_base64_decode(const char *in, size_t len, unsigned char *out, size_t outsz, size_t *outlen);

#endif

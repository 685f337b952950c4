/*
 * Resumable SHA-256.
 *
 * OpenSSL 3's EVP API cannot export a hash state, and resuming an upload
 * after a restart (or on another instance) needs one: so this module uses
 * the deprecated low-level SHA256_CTX, whose fields are public, and
 * serialises them itself.
 */
#define OPENSSL_SUPPRESS_DEPRECATED

#include <limits.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/digest.h"
#include "core/error.h"

_Static_assert(sizeof(SHA256_CTX) <= sizeof(berth_sha256_t), "berth_sha256_t too small for SHA256_CTX");
_Static_assert(_Alignof(SHA256_CTX) <= _Alignof(berth_sha256_t), "berth_sha256_t under-aligned for SHA256_CTX");

#define DIGEST__VERSION "v1:"
/* h[8], Nl, Nh, data (64 bytes), num, md_len: 28 words of 4 bytes. */
#define DIGEST__PAYLOAD_BYTES (28 * 4)
#define DIGEST__CHECK_HEX 8
#define DIGEST__TEXT_LEN (sizeof(DIGEST__VERSION) - 1 + 2 * DIGEST__PAYLOAD_BYTES + 1 + DIGEST__CHECK_HEX)

_Static_assert(DIGEST__TEXT_LEN < BERTH_SHA256_STATE_LEN, "saved state does not fit BERTH_SHA256_STATE_LEN");
_Static_assert(sizeof(((SHA256_CTX *)0)->data) == 64, "unexpected SHA256_CTX layout");

static const char digest__hex[] = "0123456789abcdef";

static void digest__to_hex(const unsigned char *in, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digest__hex[in[i] >> 4];
        out[2 * i + 1] = digest__hex[in[i] & 15];
    }
}

static int digest__nibble(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1; /* save writes lowercase only, so anything else is corruption */
}

static int digest__from_hex(const char *in, size_t n, unsigned char *out)
{
    for (size_t i = 0; i < n; i++) {
        int hi = digest__nibble(in[2 * i]), lo = digest__nibble(in[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return -1;
        out[i] = (unsigned char)(hi << 4 | lo);
    }
    return 0;
}

static void digest__put32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
    p[2] = (unsigned char)(v >> 16);
    p[3] = (unsigned char)(v >> 24);
}

static uint32_t digest__get32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

void berth_sha256_init(berth_sha256_t *h)
{
    memset(h, 0, sizeof(*h));
    SHA256_Init((SHA256_CTX *)h);
}

void berth_sha256_update(berth_sha256_t *h, const void *data, size_t len)
{
    if (len > 0)
        SHA256_Update((SHA256_CTX *)h, data, len);
}

void berth_sha256_digest(const berth_sha256_t *h, char out[BERTH_DIGEST_LEN])
{
    /* Finalise a copy so the caller can keep hashing into h. */
    SHA256_CTX copy;
    unsigned char md[SHA256_DIGEST_LENGTH];

    memcpy(&copy, h, sizeof(copy));
    SHA256_Final(md, &copy);
    memcpy(out, "sha256:", 7);
    digest__to_hex(md, sizeof(md), out + 7);
    out[7 + 2 * SHA256_DIGEST_LENGTH] = '\0';
}

uint64_t berth_sha256_length(const berth_sha256_t *h)
{
    SHA256_CTX c;

    memcpy(&c, h, sizeof(c));
    return ((uint64_t)c.Nh << 32 | (uint64_t)c.Nl) / 8;
}

/* The checksum: the first DIGEST__CHECK_HEX hex digits of SHA-256 of `text`. */
static void digest__check(const char *text, size_t len, char out[DIGEST__CHECK_HEX])
{
    unsigned char md[SHA256_DIGEST_LENGTH];

    SHA256((const unsigned char *)text, len, md);
    digest__to_hex(md, DIGEST__CHECK_HEX / 2, out);
}

void berth_sha256_save(const berth_sha256_t *h, char out[BERTH_SHA256_STATE_LEN])
{
    SHA256_CTX c;
    unsigned char raw[DIGEST__PAYLOAD_BYTES], *p = raw;

    memcpy(&c, h, sizeof(c));
    for (int i = 0; i < 8; i++, p += 4)
        digest__put32(p, c.h[i]);
    digest__put32(p, c.Nl), p += 4;
    digest__put32(p, c.Nh), p += 4;
    /* OpenSSL fills the block buffer bytewise, so its bytes (not its words)
     * are the state: copying them keeps a saved state portable across
     * byte orders. */
    memcpy(p, c.data, sizeof(c.data)), p += sizeof(c.data);
    digest__put32(p, c.num), p += 4;
    digest__put32(p, c.md_len);

    size_t n = sizeof(DIGEST__VERSION) - 1;
    memcpy(out, DIGEST__VERSION, n);
    digest__to_hex(raw, sizeof(raw), out + n);
    n += 2 * sizeof(raw);
    digest__check(out, n, out + n + 1);
    out[n] = ':';
    out[DIGEST__TEXT_LEN] = '\0';
}

int berth_sha256_restore(berth_sha256_t *h, const char *text)
{
    const size_t vlen = sizeof(DIGEST__VERSION) - 1, plen = vlen + 2 * DIGEST__PAYLOAD_BYTES;
    unsigned char raw[DIGEST__PAYLOAD_BYTES];
    const unsigned char *p = raw;
    char check[DIGEST__CHECK_HEX];
    SHA256_CTX c;

    if (text == NULL || strncmp(text, DIGEST__VERSION, vlen) != 0)
        return berth_error_set(BERTH_EINVALID, "hash state: unknown version");
    if (strlen(text) != DIGEST__TEXT_LEN || text[plen] != ':')
        return berth_error_set(BERTH_EINVALID, "hash state: wrong length");
    if (digest__from_hex(text + vlen, sizeof(raw), raw) < 0)
        return berth_error_set(BERTH_EINVALID, "hash state: not hex");
    digest__check(text, plen, check);
    if (memcmp(check, text + plen + 1, DIGEST__CHECK_HEX) != 0)
        return berth_error_set(BERTH_EINVALID, "hash state: checksum mismatch");

    memset(&c, 0, sizeof(c));
    for (int i = 0; i < 8; i++, p += 4)
        c.h[i] = digest__get32(p);
    c.Nl = digest__get32(p), p += 4;
    c.Nh = digest__get32(p), p += 4;
    memcpy(c.data, p, sizeof(c.data)), p += sizeof(c.data);
    c.num = digest__get32(p), p += 4;
    c.md_len = digest__get32(p);

    /* The checksum catches accidents; these catch a state that could make
     * OpenSSL read past its block buffer or that no byte stream produces. */
    if (c.num >= SHA256_CBLOCK || c.md_len != SHA256_DIGEST_LENGTH)
        return berth_error_set(BERTH_EINVALID, "hash state: impossible block fill or digest length");
    if ((c.Nl & 7) != 0 || ((c.Nl >> 3) & (SHA256_CBLOCK - 1)) != c.num)
        return berth_error_set(BERTH_EINVALID, "hash state: length and block fill disagree");

    memset(h, 0, sizeof(*h));
    memcpy(h, &c, sizeof(c));
    return BERTH_OK;
}

void berth_sha256_of(const void *data, size_t len, char out[BERTH_DIGEST_LEN])
{
    berth_sha256_t h;

    berth_sha256_init(&h);
    berth_sha256_update(&h, data, len);
    berth_sha256_digest(&h, out);
}

/* Below this a hand-off costs more than it saves. */
#define DIGEST__POOL_MIN (1024 * 1024)

static void digest__job_run(berth_job_t *j)
{
    berth_sha256_job_t *job = (berth_sha256_job_t *)j;

    berth_sha256_update(job->h, job->data, job->len);
    pthread_mutex_lock(&job->mu);
    job->done = 1;
    pthread_cond_signal(&job->cond);
    pthread_mutex_unlock(&job->mu);
}

void berth_sha256_update_start(berth_sha256_job_t *job, berth_workq_t *pool, berth_sha256_t *h, const void *data,
                               size_t len)
{
    job->h = h;
    job->data = data;
    job->len = len;
    job->queued = pool != NULL && len >= DIGEST__POOL_MIN;
    if (!job->queued) {
        berth_sha256_update(h, data, len);
        return;
    }
    job->done = 0;
    job->job.run = digest__job_run;
    pthread_mutex_init(&job->mu, NULL);
    pthread_cond_init(&job->cond, NULL);
    berth_workq_submit(pool, &job->job);
}

void berth_sha256_update_wait(berth_sha256_job_t *job)
{
    if (!job->queued)
        return;
    pthread_mutex_lock(&job->mu);
    while (!job->done)
        pthread_cond_wait(&job->cond, &job->mu);
    pthread_mutex_unlock(&job->mu);
    pthread_mutex_destroy(&job->mu);
    pthread_cond_destroy(&job->cond);
    job->queued = 0;
}

int berth_base64_decode(const char *in, size_t len, unsigned char *out, size_t outsz, size_t *outlen)
{
    unsigned char *tmp = NULL;
    char *padded = NULL;
    size_t pad, n;
    int got, ret = -1;

    /* EVP_DecodeBlock wants whole quanta, skips blanks and takes '=' inside
     * the text: give it the padding a client may leave out, and accept
     * only the alphabet followed by at most two '='. */
    size_t body = len;
    while (body > 0 && len - body < 2 && in[body - 1] == '=')
        body--;
    if (body % 4 == 1 || (len > body && (len % 4 != 0 || body % 4 == 0)) || len > (size_t)INT_MAX - 4)
        return -1;
    for (size_t i = 0; i < body; i++)
        if (strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/", in[i]) == NULL || in[i] == '\0')
            return -1;
    pad = (4 - len % 4) % 4;
    if ((padded = malloc(len + pad + 1)) == NULL || (tmp = malloc((len + pad) / 4 * 3 + 1)) == NULL)
        goto done;
    memcpy(padded, in, len);
    memset(padded + len, '=', pad);
    if ((got = EVP_DecodeBlock(tmp, (const unsigned char *)padded, (int)(len + pad))) < 0)
        goto done;
    /* EVP_DecodeBlock counts padding as zero bytes. */
    n = (size_t)got;
    for (size_t i = len + pad; i > 0 && padded[i - 1] == '=' && n > 0; i--)
        n--;
    if (n > outsz)
        goto done;
    memcpy(out, tmp, n);
    *outlen = n;
    ret = 0;
done:
    free(padded);
    free(tmp);
    return ret;
}

/*
 * The session record as JSON.
 *
 * Decoding trusts nothing: a record may have been truncated by a crash on a
 * filesystem without atomic rename, edited by hand or written by a future
 * version. Every field is type-checked and the OCI invariants (received is
 * exactly 0..offset-1, the hash covers exactly offset bytes) are verified, so
 * a resume is never built on a record that lies about the stored bytes.
 */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/record.h"

_Static_assert(sizeof(json_int_t) == sizeof(long long), "jansson built without long long integers");

static const char *const record__status_names[] = {
    [BERTH_STATUS_INIT] = "INIT",     [BERTH_STATUS_IN_PROGRESS] = "IN_PROGRESS", [BERTH_STATUS_COMPLETE] = "COMPLETE",
    [BERTH_STATUS_FAILED] = "FAILED", [BERTH_STATUS_ABORTED] = "ABORTED",
};

#define RECORD__NSTATUS (sizeof(record__status_names) / sizeof(record__status_names[0]))

const char *berth_status_name(berth_session_status_t s)
{
    if ((unsigned)s >= RECORD__NSTATUS)
        return "UNKNOWN";
    return record__status_names[s];
}

static const char *record__kind_name(berth_session_kind_t k)
{
    switch (k) {
    case BERTH_SESSION_OCI:
        return "oci";
    case BERTH_SESSION_PARTS:
        return "parts";
    default:
        return NULL;
    }
}

void berth_record_init(berth_record_t *rec)
{
    memset(rec, 0, sizeof(*rec));
    /* Zero is not a kind; OCI is the only kind a fresh session can be today. */
    rec->kind = BERTH_SESSION_OCI;
    rec->status = BERTH_STATUS_INIT;
    berth_rangeset_init(&rec->received);
    berth_sha256_init(&rec->hash);
}

void berth_record_clear(berth_record_t *rec)
{
    if (rec == NULL)
        return;
    free(rec->repository);
    free(rec->owner);
    free(rec->digest);
    berth_rangeset_clear(&rec->received);
    free(rec->state);
    berth_record_init(rec);
}

/* Sets root[key] to v, stealing it; a NULL v is an allocation failure. */
static int record__set(json_t *root, const char *key, json_t *v)
{
    if (v == NULL || json_object_set_new(root, key, v) < 0)
        return berth_error_set(BERTH_ERR, "record: out of memory encoding '%s'", key);
    return BERTH_OK;
}

/* jansson integers are signed 64-bit: an unsigned value past INT64_MAX
 * cannot be stored faithfully, so refuse it rather than wrap it. */
static int record__set_u64(json_t *root, const char *key, uint64_t v)
{
    if (v > (uint64_t)LLONG_MAX)
        return berth_error_set(BERTH_EINVALID, "record: field '%s': %llu does not fit a JSON integer", key,
                               (unsigned long long)v);
    return record__set(root, key, json_integer((json_int_t)v));
}

static int record__set_opt_str(json_t *root, const char *key, const char *v)
{
    return v == NULL ? BERTH_OK : record__set(root, key, json_string(v));
}

int berth_record_encode(const berth_record_t *rec, char **out, size_t *len)
{
    json_t *root = NULL;
    char *received = NULL;
    char hash[BERTH_SHA256_STATE_LEN];
    const char *kind = record__kind_name(rec->kind);
    int err;

    *out = NULL;
    if (len != NULL)
        *len = 0;
    if (kind == NULL)
        return berth_error_set(BERTH_EINVALID, "record: field 'kind': unknown kind %d", (int)rec->kind);
    if ((unsigned)rec->status >= RECORD__NSTATUS)
        return berth_error_set(BERTH_EINVALID, "record: field 'status': unknown status %d", (int)rec->status);
    if ((err = berth_rangeset_format(&rec->received, &received)) < 0)
        goto done;
    berth_sha256_save(&rec->hash, hash);

    if ((root = json_object()) == NULL) {
        err = berth_error_set(BERTH_ERR, "record: out of memory");
        goto done;
    }
    if ((err = record__set(root, "version", json_integer(BERTH_RECORD_VERSION))) < 0 ||
        (err = record__set(root, "id", json_string(rec->id))) < 0 ||
        (err = record__set(root, "kind", json_string(kind))) < 0 ||
        (err = record__set(root, "status", json_string(berth_status_name(rec->status)))) < 0 ||
        (err = record__set_opt_str(root, "repository", rec->repository)) < 0 ||
        (err = record__set(root, "created_at", json_integer(rec->created_at))) < 0 ||
        (err = record__set(root, "updated_at", json_integer(rec->updated_at))) < 0 ||
        (err = record__set_u64(root, "offset", rec->offset)) < 0 ||
        (err = record__set(root, "received", json_string(received))) < 0 ||
        (err = record__set(root, "hash", json_string(hash))) < 0 ||
        (err = record__set_u64(root, "part_size", rec->part_size)) < 0 ||
        (err = record__set_u64(root, "total_parts", rec->total_parts)) < 0 ||
        (err = record__set_u64(root, "total_size", rec->total_size)) < 0 ||
        (err = record__set_opt_str(root, "owner", rec->owner)) < 0 ||
        (err = record__set_opt_str(root, "digest", rec->digest)) < 0)
        goto done;
    if ((err = record__set_opt_str(root, "state", rec->state)) < 0)
        goto done;

    /* An id that is not valid UTF-8 would make json_string fail above; a
     * record with any other strange value still encodes, and decode judges. */
    if ((*out = json_dumps(root, JSON_COMPACT)) == NULL) {
        err = berth_error_set(BERTH_ERR, "record: cannot serialise");
        goto done;
    }
    if (len != NULL)
        *len = strlen(*out);
    err = BERTH_OK;

done:
    json_decref(root);
    free(received);
    return err;
}

/* Fetches a field that must be present (unless optional) with the given
 * type. A JSON null counts as absent for optional fields. */
static int record__field(json_t *root, const char *key, json_type type, int optional, json_t **out)
{
    static const char *const type_names[] = {
        [JSON_OBJECT] = "an object",   [JSON_ARRAY] = "an array", [JSON_STRING] = "a string",
        [JSON_INTEGER] = "an integer", [JSON_REAL] = "a number",  [JSON_TRUE] = "a boolean",
        [JSON_FALSE] = "a boolean",    [JSON_NULL] = "null",
    };
    json_t *v = json_object_get(root, key);

    *out = NULL;
    if (v == NULL || (optional && json_is_null(v))) {
        if (optional)
            return BERTH_OK;
        return berth_error_set(BERTH_EINVALID, "record: field '%s' is missing", key);
    }
    if (json_typeof(v) != type)
        return berth_error_set(BERTH_EINVALID, "record: field '%s': expected %s", key, type_names[type]);
    *out = v;
    return BERTH_OK;
}

static int record__u64(json_t *root, const char *key, uint64_t *out)
{
    json_t *v;
    int err;

    if ((err = record__field(root, key, JSON_INTEGER, 0, &v)) < 0)
        return err;
    if (json_integer_value(v) < 0)
        return berth_error_set(BERTH_EINVALID, "record: field '%s': negative", key);
    *out = (uint64_t)json_integer_value(v);
    return BERTH_OK;
}

static int record__time(json_t *root, const char *key, int64_t *out)
{
    json_t *v;
    int err;

    if ((err = record__field(root, key, JSON_INTEGER, 0, &v)) < 0)
        return err;
    if (json_integer_value(v) < 0)
        return berth_error_set(BERTH_EINVALID, "record: field '%s': negative time", key);
    *out = (int64_t)json_integer_value(v);
    return BERTH_OK;
}

static int record__opt_str(json_t *root, const char *key, char **out)
{
    json_t *v;
    int err;

    if ((err = record__field(root, key, JSON_STRING, 1, &v)) < 0 || v == NULL)
        return err;
    if ((*out = strdup(json_string_value(v))) == NULL)
        return berth_error_set(BERTH_ERR, "record: out of memory");
    return BERTH_OK;
}

static int record__decode(berth_record_t *rec, json_t *root)
{
    json_t *v;
    const char *s;
    int err;

    if (!json_is_object(root))
        return berth_error_set(BERTH_EINVALID, "record: not a JSON object");

    if ((err = record__field(root, "version", JSON_INTEGER, 0, &v)) < 0)
        return err;
    if (json_integer_value(v) != BERTH_RECORD_VERSION)
        return berth_error_set(BERTH_EINVALID, "record: field 'version': unsupported version %lld",
                               (long long)json_integer_value(v));

    if ((err = record__field(root, "id", JSON_STRING, 0, &v)) < 0)
        return err;
    if (!berth_id_valid(json_string_value(v), json_string_length(v)))
        return berth_error_set(BERTH_EINVALID, "record: field 'id': not a session id");
    memcpy(rec->id, json_string_value(v), BERTH_ID_LEN);

    if ((err = record__field(root, "kind", JSON_STRING, 0, &v)) < 0)
        return err;
    s = json_string_value(v);
    if (strcmp(s, "oci") == 0)
        rec->kind = BERTH_SESSION_OCI;
    else if (strcmp(s, "parts") == 0)
        rec->kind = BERTH_SESSION_PARTS;
    else
        return berth_error_set(BERTH_EINVALID, "record: field 'kind': unknown kind");

    if ((err = record__field(root, "status", JSON_STRING, 0, &v)) < 0)
        return err;
    s = json_string_value(v);
    size_t st;
    for (st = 0; st < RECORD__NSTATUS; st++)
        if (strcmp(s, record__status_names[st]) == 0)
            break;
    if (st == RECORD__NSTATUS)
        return berth_error_set(BERTH_EINVALID, "record: field 'status': unknown status");
    rec->status = (berth_session_status_t)st;

    if ((err = record__field(root, "repository", JSON_STRING, 1, &v)) < 0)
        return err;
    if (v != NULL) {
        if (!berth_name_valid(json_string_value(v), json_string_length(v)))
            return berth_error_set(BERTH_EINVALID, "record: field 'repository': not a repository name");
        if ((rec->repository = strdup(json_string_value(v))) == NULL)
            return berth_error_set(BERTH_ERR, "record: out of memory");
    }

    if ((err = record__time(root, "created_at", &rec->created_at)) < 0 ||
        (err = record__time(root, "updated_at", &rec->updated_at)) < 0 ||
        (err = record__u64(root, "offset", &rec->offset)) < 0 ||
        (err = record__u64(root, "part_size", &rec->part_size)) < 0 ||
        (err = record__u64(root, "total_parts", &rec->total_parts)) < 0 ||
        (err = record__u64(root, "total_size", &rec->total_size)) < 0)
        return err;

    if ((err = record__field(root, "received", JSON_STRING, 0, &v)) < 0)
        return err;
    if (berth_rangeset_parse(&rec->received, json_string_value(v), json_string_length(v)) < 0)
        return berth_error_set(BERTH_EINVALID, "record: field 'received': not a range set");

    if ((err = record__field(root, "hash", JSON_STRING, 0, &v)) < 0)
        return err;
    if (strlen(json_string_value(v)) != json_string_length(v) ||
        berth_sha256_restore(&rec->hash, json_string_value(v)) < 0)
        return berth_error_set(BERTH_EINVALID, "record: field 'hash': not a saved hash state");

    if ((err = record__opt_str(root, "owner", &rec->owner)) < 0 ||
        (err = record__opt_str(root, "digest", &rec->digest)) < 0)
        return err;
    if (rec->digest != NULL && !berth_digest_wellformed(rec->digest, strlen(rec->digest)))
        return berth_error_set(BERTH_EINVALID, "record: field 'digest': not a digest");

    if ((err = record__opt_str(root, "state", &rec->state)) < 0)
        return err;

    if (rec->kind == BERTH_SESSION_OCI) {
        /* OCI bytes arrive in order: the received set is exactly 0..offset-1
         * (one range, or none), and the hash covers exactly those bytes. */
        const berth_rangeset_t *r = &rec->received;
        int ok = rec->offset == 0 ? r->n == 0 : (r->n == 1 && r->v[0].first == 0 && r->v[0].last == rec->offset - 1);
        if (!ok)
            return berth_error_set(BERTH_EINVALID, "record: field 'received' does not match offset %llu",
                                   (unsigned long long)rec->offset);
        if (berth_sha256_length(&rec->hash) != rec->offset)
            return berth_error_set(BERTH_EINVALID, "record: field 'hash' covers %llu bytes, offset is %llu",
                                   (unsigned long long)berth_sha256_length(&rec->hash),
                                   (unsigned long long)rec->offset);
    } else {
        /* Part sessions: `received` holds part numbers 1..total_parts,
         * `offset` the bytes those parts hold, and the hash covers a prefix
         * of them. */
        const berth_rangeset_t *r = &rec->received;
        if (rec->part_size == 0 || rec->total_parts == 0 || rec->total_parts > BERTH_RECORD_MAX_PARTS)
            return berth_error_set(BERTH_EINVALID, "record: part layout %llu x %llu is not valid",
                                   (unsigned long long)rec->total_parts, (unsigned long long)rec->part_size);
        if (r->n > 0 && (r->v[0].first == 0 || r->v[r->n - 1].last > rec->total_parts))
            return berth_error_set(BERTH_EINVALID, "record: field 'received' names parts outside 1..%llu",
                                   (unsigned long long)rec->total_parts);
        if (berth_sha256_length(&rec->hash) > rec->offset)
            return berth_error_set(BERTH_EINVALID, "record: field 'hash' covers %llu bytes, parts hold %llu",
                                   (unsigned long long)berth_sha256_length(&rec->hash),
                                   (unsigned long long)rec->offset);
    }
    return BERTH_OK;
}

int berth_record_decode(berth_record_t *rec, const char *buf, size_t len)
{
    json_error_t jerr;
    json_t *root = NULL;
    int err;

    berth_record_clear(rec);
    /* Duplicate keys are rejected: two "offset"s would make the record's
     * meaning depend on the parser. */
    if ((root = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr)) == NULL) {
        err = berth_error_set(BERTH_EINVALID, "record: malformed JSON at line %d column %d: %s", jerr.line, jerr.column,
                              jerr.text);
        goto done;
    }
    err = record__decode(rec, root);

done:
    json_decref(root);
    if (err < 0)
        berth_record_clear(rec);
    return err;
}

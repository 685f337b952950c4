/*
 * Configuration from YAML.
 *
 * Every key lives in one table (config__keys) with its type, field, bounds
 * and default. Defaults are written as text and go through the same parser
 * as the file, so a default can never fall outside its own bounds, and
 * config.example.yaml can show exactly the same strings.
 *
 * The YAML is loaded with libyaml's document API and walked recursively; the
 * walker knows only sections (mappings) and leaves (table entries), so a new
 * key is one table line.
 */
#include <errno.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yaml.h>

#include "core/config.h"
#include "core/error.h"

_Static_assert(sizeof(berth_sync_mode_t) == sizeof(int), "enum fields are stored as int");
_Static_assert(sizeof(berth_log_level_t) == sizeof(int), "enum fields are stored as int");

#define CONFIG__KIB 1024ULL
#define CONFIG__GIB (1024ULL * 1024 * 1024)
#define CONFIG__TIB (1024ULL * CONFIG__GIB)
#define CONFIG__SEC 1000ULL
#define CONFIG__DAY (86400ULL * CONFIG__SEC)
/* Ten years: long enough for any TTL, short enough that seconds * 1000 stays far from overflow. */
#define CONFIG__DECADE (3650ULL * CONFIG__DAY)

typedef enum config__type {
    CONFIG__STRING,      /* char *, malloc'd; min/max bound its length */
    CONFIG__INT,         /* int, min..max (all berth ints are non-negative) */
    CONFIG__SIZE,        /* uint64_t bytes */
    CONFIG__DURATION_MS, /* uint64_t milliseconds; bounds in ms */
    CONFIG__DURATION_S,  /* uint64_t seconds; bounds in ms, value stored / 1000 */
    CONFIG__BOOL,        /* int 0/1 */
    CONFIG__ENUM,        /* int, index into names */
} config__type_t;

typedef struct config__key {
    const char *key;
    config__type_t type;
    size_t offset;
    uint64_t min, max;
    const char *const *names; /* CONFIG__ENUM: NULL-terminated, indexed by value */
    const char *def;          /* default as it would be written in the file; NULL for an unset string */
    /* Extra check of a string value; returns a message, or NULL if fine. */
    const char *(*check)(const char *value);
} config__key_t;

static const char *const config__sync_names[] = {"none", "commit", "always", NULL};
static const char *const config__level_names[] = {"error", "warn", "info", "debug", NULL};

static const char *config__check_addr(const char *value);
static const char *config__check_realm(const char *value);

#define F(field) offsetof(berth_config_t, field)

static const config__key_t config__keys[] = {
    {"http.addr", CONFIG__STRING, F(http_addr), 1, 300, NULL, "127.0.0.1:5000", config__check_addr},
    {"http.threads", CONFIG__INT, F(http_threads), 0, 1024, NULL, "0", NULL},
    {"http.tls.certificate", CONFIG__STRING, F(http_tls_certificate), 1, 4096, NULL, NULL, NULL},
    {"http.tls.key", CONFIG__STRING, F(http_tls_key), 1, 4096, NULL, NULL, NULL},
    /* A 1 GiB chunk (the default maxchunksize) needs 54s at 20 MB/s; 300s leaves room down to about 3.6 MB/s. */
    {"http.timeout", CONFIG__DURATION_MS, F(http_timeout_ms), CONFIG__SEC, CONFIG__DAY, NULL, "300s", NULL},
    {"http.maxchunksize", CONFIG__SIZE, F(http_maxchunksize), CONFIG__KIB, CONFIG__TIB, NULL, "1GiB", NULL},
    {"http.bodybufferdir", CONFIG__STRING, F(http_bodybufferdir), 1, 4096, NULL, "/tmp", NULL},
    {"http.shutdowntimeout", CONFIG__DURATION_MS, F(http_shutdowntimeout_ms), 0, CONFIG__DAY, NULL, "30s", NULL},
    {"http.http2.maxconcurrentstreams", CONFIG__INT, F(http_h2_maxconcurrentstreams), 1, 1000, NULL, "100", NULL},
    {"storage.filesystem.rootdirectory", CONFIG__STRING, F(storage_fs_root), 1, 4096, NULL, "./data", NULL},
    {"storage.filesystem.sync", CONFIG__ENUM, F(storage_fs_sync), 0, 0, config__sync_names, "commit", NULL},
    {"storage.workers", CONFIG__INT, F(storage_workers), 0, 1024, NULL, "0", NULL},
    {"storage.delete.enabled", CONFIG__BOOL, F(storage_delete_enabled), 0, 1, NULL, "false", NULL},
    {"storage.s3.bucket", CONFIG__STRING, F(storage_s3_bucket), 3, 63, NULL, NULL, NULL},
    {"storage.s3.region", CONFIG__STRING, F(storage_s3_region), 1, 64, NULL, "us-east-1", NULL},
    {"storage.s3.regionendpoint", CONFIG__STRING, F(storage_s3_regionendpoint), 1, 1024, NULL, NULL, NULL},
    {"storage.s3.accesskey", CONFIG__STRING, F(storage_s3_accesskey), 1, 256, NULL, NULL, NULL},
    {"storage.s3.secretkey", CONFIG__STRING, F(storage_s3_secretkey), 1, 256, NULL, NULL, NULL},
    {"storage.s3.rootdirectory", CONFIG__STRING, F(storage_s3_rootdirectory), 0, 512, NULL, "", NULL},
    {"storage.s3.secure", CONFIG__BOOL, F(storage_s3_secure), 0, 1, NULL, "true", NULL},
    /* S3's minimum part size is 5 MiB; 10 MiB is the reference registry's default. */
    {"storage.s3.chunksize", CONFIG__SIZE, F(storage_s3_chunksize), 5ULL << 20, 5ULL << 30, NULL, "10MiB", NULL},
    {"storage.s3.redirect", CONFIG__BOOL, F(storage_s3_redirect), 0, 1, NULL, "false", NULL},
    {"storage.s3.connecttimeout", CONFIG__DURATION_MS, F(storage_s3_connecttimeout_ms), 100, 600 * CONFIG__SEC, NULL,
     "5s", NULL},
    {"storage.s3.timeout", CONFIG__DURATION_MS, F(storage_s3_timeout_ms), CONFIG__SEC, CONFIG__DAY, NULL, "300s", NULL},
    {"storage.s3.maxretries", CONFIG__INT, F(storage_s3_maxretries), 0, 20, NULL, "4", NULL},
    {"validation.manifests.maxsize", CONFIG__SIZE, F(validation_manifests_maxsize), CONFIG__KIB, 64ULL << 20, NULL,
     "4MiB", NULL},
    {"uploads.ttl", CONFIG__DURATION_S, F(uploads_ttl_s), CONFIG__SEC, CONFIG__DECADE, NULL, "7d", NULL},
    {"uploads.purgeinterval", CONFIG__DURATION_S, F(uploads_purgeinterval_s), CONFIG__SEC, CONFIG__DECADE, NULL, "1h",
     NULL},
    {"auth.htpasswd.realm", CONFIG__STRING, F(auth_htpasswd_realm), 1, 256, NULL, NULL, config__check_realm},
    {"auth.htpasswd.path", CONFIG__STRING, F(auth_htpasswd_path), 1, 4096, NULL, NULL, NULL},
    {"log.level", CONFIG__ENUM, F(log_level), 0, 0, config__level_names, "info", NULL},
    {"log.accesslog", CONFIG__STRING, F(log_accesslog), 0, 4096, NULL, "-", NULL},
};

#undef F

#define CONFIG__NKEYS (sizeof(config__keys) / sizeof(config__keys[0]))

/* Mappings that hold keys. Storage drivers are sections too, but only one of
 * them may appear (checked in config__mapping). */
static const char *const config__sections[] = {
    "http",    "http.tls", "http.http2",    "storage", "storage.filesystem", "storage.s3", "storage.delete",
    "uploads", "auth",     "auth.htpasswd", "log",     "validation",         "validation.manifests",
    NULL,
};

/* Driver names the reference registry knows; berth implements the first. Any
 * of them under storage: counts as a driver, so "two drivers" is reported as
 * such even when one is unsupported. */
static const char *const config__drivers[] = {"filesystem", "s3", "azure", "gcs", "swift", "oss", "inmemory", NULL};
#define CONFIG__DEFAULT_DRIVER "filesystem"

typedef struct config__state {
    berth_config_t *cfg;
    const char *name;
    size_t tls_line; /* line of the last http.tls key, for the both-or-neither check */
    size_t auth_line; /* the same for auth.htpasswd */
} config__state_t;

static int config__in(const char *const *list, const char *s)
{
    for (size_t i = 0; list[i] != NULL; i++)
        if (strcmp(list[i], s) == 0)
            return 1;
    return 0;
}

static const config__key_t *config__lookup(const char *key)
{
    for (size_t i = 0; i < CONFIG__NKEYS; i++)
        if (strcmp(config__keys[i].key, key) == 0)
            return &config__keys[i];
    return NULL;
}

/* ---- numbers, sizes and durations ---- */

/* Parses leading decimal digits of s into *v; returns a pointer past them,
 * or NULL when there are none or the value overflows. */
static const char *config__digits(const char *s, uint64_t *v)
{
    uint64_t x = 0;
    const char *p = s;

    while (*p >= '0' && *p <= '9') {
        unsigned d = (unsigned)(*p - '0');
        if (x > (UINT64_MAX - d) / 10)
            return NULL;
        x = x * 10 + d;
        p++;
    }
    if (p == s)
        return NULL;
    *v = x;
    return p;
}

static int config__mul(uint64_t a, uint64_t b, uint64_t *out)
{
    if (b != 0 && a > UINT64_MAX / b)
        return -1;
    *out = a * b;
    return 0;
}

int berth_parse_size(const char *s, uint64_t *out)
{
    static const struct {
        const char *suffix;
        uint64_t mult;
    } units[] = {
        {"", 1},
        {"b", 1},
        {"k", 1ULL << 10},
        {"kb", 1000ULL},
        {"kib", 1ULL << 10},
        {"m", 1ULL << 20},
        {"mb", 1000ULL * 1000},
        {"mib", 1ULL << 20},
        {"g", 1ULL << 30},
        {"gb", 1000ULL * 1000 * 1000},
        {"gib", 1ULL << 30},
        {"t", 1ULL << 40},
        {"tb", 1000ULL * 1000 * 1000 * 1000},
        {"tib", 1ULL << 40},
        {"p", 1ULL << 50},
        {"pb", 1000ULL * 1000 * 1000 * 1000 * 1000},
        {"pib", 1ULL << 50},
    };
    uint64_t n;
    const char *p;

    if (s == NULL || (p = config__digits(s, &n)) == NULL)
        return berth_error_set(BERTH_EINVALID, "size '%s': expected a number like 512KiB, 64MiB or 1GiB", s ? s : "");
    /* "1 GiB" reads naturally; "1 " is a typo, not one byte. */
    if (*p == ' ') {
        while (*p == ' ')
            p++;
        if (*p == '\0')
            return berth_error_set(BERTH_EINVALID, "size '%s': missing unit after the space", s);
    }
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        if (strcasecmp(p, units[i].suffix) == 0) {
            if (config__mul(n, units[i].mult, out) < 0)
                return berth_error_set(BERTH_EINVALID, "size '%s': too large", s);
            return BERTH_OK;
        }
    }
    return berth_error_set(BERTH_EINVALID, "size '%s': unknown unit '%s'", s, p);
}

int berth_parse_duration_ms(const char *s, uint64_t *out)
{
    static const struct {
        const char *unit;
        uint64_t ms;
    } units[] = {
        /* "ms" before "m": the longest unit that matches wins. */
        {"ms", 1}, {"s", CONFIG__SEC}, {"m", 60 * CONFIG__SEC}, {"h", 3600 * CONFIG__SEC}, {"d", CONFIG__DAY},
    };
    uint64_t total = 0, n, part;
    const char *p;

    if (s == NULL || (p = config__digits(s, &n)) == NULL)
        goto bad;
    /* A bare number is seconds, as in the reference registry's integer timeouts. */
    if (*p == '\0')
        return config__mul(n, CONFIG__SEC, out) < 0 ? berth_error_set(BERTH_EINVALID, "duration '%s': too large", s)
                                                    : BERTH_OK;
    /* Otherwise one or more number+unit pairs, as Go writes them ("1h30m"). */
    for (;;) {
        size_t i, len = 0;
        for (i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
            len = strlen(units[i].unit);
            if (strncmp(p, units[i].unit, len) == 0 && !(p[len] >= 'a' && p[len] <= 'z'))
                break;
        }
        if (i == sizeof(units) / sizeof(units[0]))
            goto bad;
        if (config__mul(n, units[i].ms, &part) < 0 || part > UINT64_MAX - total)
            return berth_error_set(BERTH_EINVALID, "duration '%s': too large", s);
        total += part;
        p += len;
        if (*p == '\0')
            break;
        if ((p = config__digits(p, &n)) == NULL)
            goto bad;
    }
    *out = total;
    return BERTH_OK;

bad:
    return berth_error_set(BERTH_EINVALID, "duration '%s': expected a number with a unit (ms, s, m, h, d) like 30s",
                           s ? s : "");
}

/* Human forms of bounds for messages: "1KiB", "7d". */
static void config__fmt_size(uint64_t v, char *buf, size_t n)
{
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
    size_t u = 0;

    while (u + 1 < sizeof(units) / sizeof(units[0]) && v >= 1024 && v % 1024 == 0) {
        v /= 1024;
        u++;
    }
    snprintf(buf, n, "%" PRIu64 "%s", v, units[u]);
}

static void config__fmt_duration(uint64_t ms, char *buf, size_t n)
{
    static const struct {
        const char *unit;
        uint64_t ms;
    } units[] = {{"d", CONFIG__DAY}, {"h", 3600 * CONFIG__SEC}, {"m", 60 * CONFIG__SEC}, {"s", CONFIG__SEC}};

    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        if (ms != 0 && ms % units[i].ms == 0) {
            snprintf(buf, n, "%" PRIu64 "%s", ms / units[i].ms, units[i].unit);
            return;
        }
    }
    if (ms == 0)
        snprintf(buf, n, "0s");
    else
        snprintf(buf, n, "%" PRIu64 "ms", ms);
}

/* ---- values ---- */

static const char *config__check_addr(const char *value)
{
    const char *colon = strrchr(value, ':');
    uint64_t port;
    const char *end;

    if (colon == NULL)
        return "expected host:port, like 127.0.0.1:5000, [::1]:5000 or :5000";
    if ((end = config__digits(colon + 1, &port)) == NULL || *end != '\0' || port < 1 || port > 65535)
        return "expected a port in 1..65535 after the last ':'";
    size_t hlen = (size_t)(colon - value);
    if (hlen > 0 && value[0] == '[') {
        if (hlen < 3 || value[hlen - 1] != ']' || memchr(value + 1, ']', hlen - 2) != NULL)
            return "expected [ipv6-address]:port";
    } else if (memchr(value, ':', hlen) != NULL) {
        return "an IPv6 host must be in brackets, like [::1]:5000";
    }
    return NULL;
}

/* The realm is sent inside a quoted string of WWW-Authenticate. */
static const char *config__check_realm(const char *value)
{
    for (const char *p = value; *p != '\0'; p++)
        if (*p == '"' || *p == '\\' || (unsigned char)*p < 0x20 || *p == 0x7f)
            return "a realm may not contain quotes, backslashes or control characters";
    return NULL;
}

static int config__is_null(const yaml_node_t *node)
{
    const char *v = (const char *)node->data.scalar.value;

    if (node->type != YAML_SCALAR_NODE || node->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return 0;
    return v[0] == '\0' || strcmp(v, "~") == 0 || strcmp(v, "null") == 0 || strcmp(v, "Null") == 0 ||
           strcmp(v, "NULL") == 0;
}

static int config__set_string(char **field, const char *value)
{
    char *copy = NULL;

    if (value != NULL && (copy = strdup(value)) == NULL)
        return berth_error_set(BERTH_ERR, "config: out of memory");
    free(*field);
    *field = copy;
    return BERTH_OK;
}

/* Describes what a key accepts, for error messages. */
static void config__expected(const config__key_t *k, char *buf, size_t n)
{
    char lo[32], hi[32];

    switch (k->type) {
    case CONFIG__STRING:
        snprintf(buf, n, "a string of %" PRIu64 "..%" PRIu64 " bytes", k->min, k->max);
        break;
    case CONFIG__INT:
        snprintf(buf, n, "an integer in %" PRIu64 "..%" PRIu64, k->min, k->max);
        break;
    case CONFIG__SIZE:
        config__fmt_size(k->min, lo, sizeof(lo));
        config__fmt_size(k->max, hi, sizeof(hi));
        snprintf(buf, n, "a size (like 64MiB) in %s..%s", lo, hi);
        break;
    case CONFIG__DURATION_MS:
    case CONFIG__DURATION_S:
        config__fmt_duration(k->min, lo, sizeof(lo));
        config__fmt_duration(k->max, hi, sizeof(hi));
        snprintf(buf, n, "a duration (like 30s, 10m, 7d) in %s..%s", lo, hi);
        break;
    case CONFIG__BOOL:
        snprintf(buf, n, "true or false");
        break;
    case CONFIG__ENUM: {
        size_t pos = (size_t)snprintf(buf, n, "one of ");
        for (size_t i = 0; k->names[i] != NULL && pos < n; i++)
            pos += (size_t)snprintf(buf + pos, n - pos, "%s%s", i > 0 ? "|" : "", k->names[i]);
        break;
    }
    }
}

/* Applies a textual value to the field of k. Returns BERTH_EINVALID without
 * setting a message when the value does not fit the key; the caller adds
 * file, line and key. */
static int config__apply(berth_config_t *cfg, const config__key_t *k, const char *value, const char **why)
{
    char *field = (char *)cfg + k->offset;
    uint64_t u;
    const char *end;

    *why = NULL;
    switch (k->type) {
    case CONFIG__STRING:
        if (value == NULL)
            return config__set_string((char **)field, NULL);
        if (strlen(value) < k->min || strlen(value) > k->max)
            return BERTH_EINVALID;
        if (k->check != NULL && (*why = k->check(value)) != NULL)
            return BERTH_EINVALID;
        return config__set_string((char **)field, value);
    case CONFIG__INT:
        /* Every integer key is non-negative, so a sign is simply not a digit. */
        if ((end = config__digits(value, &u)) == NULL || *end != '\0' || u < k->min || u > k->max)
            return BERTH_EINVALID;
        *(int *)field = (int)u;
        return BERTH_OK;
    case CONFIG__SIZE:
        if (berth_parse_size(value, &u) < 0 || u < k->min || u > k->max)
            return BERTH_EINVALID;
        *(uint64_t *)field = u;
        return BERTH_OK;
    case CONFIG__DURATION_MS:
    case CONFIG__DURATION_S:
        if (berth_parse_duration_ms(value, &u) < 0 || u < k->min || u > k->max)
            return BERTH_EINVALID;
        *(uint64_t *)field = k->type == CONFIG__DURATION_S ? u / CONFIG__SEC : u;
        return BERTH_OK;
    case CONFIG__BOOL:
        if (strcmp(value, "true") == 0 || strcmp(value, "yes") == 0 || strcmp(value, "on") == 0)
            *(int *)field = 1;
        else if (strcmp(value, "false") == 0 || strcmp(value, "no") == 0 || strcmp(value, "off") == 0)
            *(int *)field = 0;
        else
            return BERTH_EINVALID;
        return BERTH_OK;
    case CONFIG__ENUM:
        for (int i = 0; k->names[i] != NULL; i++) {
            if (strcasecmp(value, k->names[i]) == 0) {
                *(int *)field = i;
                return BERTH_OK;
            }
        }
        return BERTH_EINVALID;
    }
    return BERTH_EINVALID;
}

void berth_config_defaults(berth_config_t *cfg)
{
    const char *why;

    memset(cfg, 0, sizeof(*cfg));
    for (size_t i = 0; i < CONFIG__NKEYS; i++) {
        /* The table's defaults are constants checked by the unit tests; only
         * strdup can fail here, and then the field stays NULL. */
        if (config__apply(cfg, &config__keys[i], config__keys[i].def, &why) < 0)
            continue;
    }
    cfg->storage_driver = strdup(CONFIG__DEFAULT_DRIVER);
}

void berth_config_clear(berth_config_t *cfg)
{
    if (cfg == NULL)
        return;
    for (size_t i = 0; i < CONFIG__NKEYS; i++) {
        if (config__keys[i].type == CONFIG__STRING) {
            char **field = (char **)((char *)cfg + config__keys[i].offset);
            free(*field);
            *field = NULL;
        }
    }
    free(cfg->storage_driver);
    cfg->storage_driver = NULL;
}

/* ---- the YAML walk ---- */

static size_t config__line(const yaml_node_t *node)
{
    return node->start_mark.line + 1;
}

static const char *config__node_kind(const yaml_node_t *node)
{
    switch (node->type) {
    case YAML_MAPPING_NODE:
        return "a mapping";
    case YAML_SEQUENCE_NODE:
        return "a list";
    default:
        return "a scalar";
    }
}

static int config__leaf(config__state_t *st, const config__key_t *k, const yaml_node_t *node)
{
    char expected[128];
    const char *why = NULL;
    const char *value;
    int err;

    if (node->type != YAML_SCALAR_NODE)
        goto bad;
    value = (const char *)node->data.scalar.value;
    if (strlen(value) != node->data.scalar.length)
        goto bad; /* an embedded NUL ("\0" in a quoted string) */
    if (config__is_null(node)) {
        /* An empty string key ("accesslog:") means its default; other types
         * need a value. */
        if (k->type != CONFIG__STRING)
            goto bad;
        value = k->def;
    }
    if ((err = config__apply(st->cfg, k, value, &why)) == BERTH_OK || err != BERTH_EINVALID)
        return err;

bad:
    if (why != NULL)
        return berth_error_set(BERTH_EINVALID, "%s:%zu: %s: %s", st->name, config__line(node), k->key, why);
    config__expected(k, expected, sizeof(expected));
    return berth_error_set(BERTH_EINVALID, "%s:%zu: %s: expected %s", st->name, config__line(node), k->key, expected);
}

static int config__mapping(config__state_t *st, yaml_document_t *doc, const yaml_node_t *node, const char *path);

static int config__pair(config__state_t *st, yaml_document_t *doc, const char *path, const yaml_node_t *knode,
                        const yaml_node_t *vnode)
{
    char full[256];
    const char *key = (const char *)knode->data.scalar.value;
    const config__key_t *k;

    /* A dotted key ("http.threads: 4" at the top) would alias a nested one. */
    if (strchr(key, '.') != NULL || strlen(key) != knode->data.scalar.length ||
        (size_t)snprintf(full, sizeof(full), "%s%s%s", path, path[0] ? "." : "", key) >= sizeof(full))
        return berth_error_set(BERTH_EINVALID, "%s:%zu: unknown key '%s%s%.64s'", st->name, config__line(knode), path,
                               path[0] ? "." : "", key);

    if (path[0] == '\0' && strcmp(key, "version") == 0) {
        /* The reference registry's "version: 0.1": accepted for
         * compatibility of config files, and ignored. */
        if (vnode->type != YAML_SCALAR_NODE)
            return berth_error_set(BERTH_EINVALID, "%s:%zu: version: expected a scalar", st->name, config__line(vnode));
        return BERTH_OK;
    }
    if ((k = config__lookup(full)) != NULL) {
        if (strncmp(full, "http.tls.", 9) == 0)
            st->tls_line = config__line(knode);
        if (strncmp(full, "auth.htpasswd.", 14) == 0)
            st->auth_line = config__line(knode);
        return config__leaf(st, k, vnode);
    }
    if (strcmp(path, "storage") == 0 && config__in(config__drivers, key)) {
        if (!config__in(config__sections, full))
            return berth_error_set(BERTH_EINVALID, "%s:%zu: storage: unsupported storage driver '%s' (supported: %s)",
                                   st->name, config__line(knode), key, CONFIG__DEFAULT_DRIVER ", s3");
        int err = config__set_string(&st->cfg->storage_driver, key);
        if (err < 0)
            return err;
    }
    if (config__in(config__sections, full))
        return config__mapping(st, doc, vnode, full);
    if (strcmp(path, "storage") == 0)
        return berth_error_set(BERTH_EINVALID, "%s:%zu: unknown key '%s' (not a setting or a storage driver)", st->name,
                               config__line(knode), full);
    return berth_error_set(BERTH_EINVALID, "%s:%zu: unknown key '%s'", st->name, config__line(knode), full);
}

static int config__mapping(config__state_t *st, yaml_document_t *doc, const yaml_node_t *node, const char *path)
{
    const char *driver = NULL;
    int err;

    /* "http:" with nothing under it is an empty section. */
    if (config__is_null(node))
        return BERTH_OK;
    if (node->type != YAML_MAPPING_NODE)
        return berth_error_set(BERTH_EINVALID, "%s:%zu: %s: expected a mapping, found %s", st->name, config__line(node),
                               path[0] ? path : "top level", config__node_kind(node));

    for (const yaml_node_pair_t *pair = node->data.mapping.pairs.start; pair < node->data.mapping.pairs.top; pair++) {
        const yaml_node_t *knode = yaml_document_get_node(doc, pair->key);
        const yaml_node_t *vnode = yaml_document_get_node(doc, pair->value);

        if (knode == NULL || vnode == NULL)
            return berth_error_set(BERTH_EINVALID, "%s: malformed document", st->name);
        if (knode->type != YAML_SCALAR_NODE)
            return berth_error_set(BERTH_EINVALID, "%s:%zu: %s: keys must be plain names", st->name,
                                   config__line(knode), path[0] ? path : "top level");
        const char *key = (const char *)knode->data.scalar.value;

        /* libyaml keeps duplicates; the last would silently win. */
        for (const yaml_node_pair_t *prev = node->data.mapping.pairs.start; prev < pair; prev++) {
            const yaml_node_t *pk = yaml_document_get_node(doc, prev->key);
            if (pk != NULL && pk->type == YAML_SCALAR_NODE && strcmp((const char *)pk->data.scalar.value, key) == 0)
                return berth_error_set(BERTH_EINVALID, "%s:%zu: duplicate key '%s%s%s' (first at line %zu)", st->name,
                                       config__line(knode), path, path[0] ? "." : "", key, config__line(pk));
        }
        if (strcmp(path, "storage") == 0 && config__in(config__drivers, key)) {
            if (driver != NULL)
                return berth_error_set(BERTH_EINVALID, "%s:%zu: storage: more than one driver ('%s' and '%s')",
                                       st->name, config__line(knode), driver, key);
            driver = key;
        }
    }
    for (const yaml_node_pair_t *pair = node->data.mapping.pairs.start; pair < node->data.mapping.pairs.top; pair++) {
        if ((err = config__pair(st, doc, path, yaml_document_get_node(doc, pair->key),
                                yaml_document_get_node(doc, pair->value))) < 0)
            return err;
    }
    return BERTH_OK;
}

static int config__check(config__state_t *st)
{
    const berth_config_t *cfg = st->cfg;

    if ((cfg->http_tls_certificate == NULL) != (cfg->http_tls_key == NULL))
        return berth_error_set(BERTH_EINVALID, "%s:%zu: http.tls: certificate and key must be given together", st->name,
                               st->tls_line);
    if ((cfg->auth_htpasswd_realm == NULL) != (cfg->auth_htpasswd_path == NULL))
        return berth_error_set(BERTH_EINVALID, "%s:%zu: auth.htpasswd: realm and path must be given together", st->name,
                               st->auth_line);
    if (cfg->storage_driver != NULL && strcmp(cfg->storage_driver, "s3") == 0 && cfg->storage_s3_bucket == NULL)
        return berth_error_set(BERTH_EINVALID, "%s: storage.s3.bucket is required", st->name);
    return BERTH_OK;
}

int berth_config_load_string(berth_config_t *cfg, const char *name, const char *yaml, size_t len)
{
    config__state_t st = {cfg, name, 0};
    yaml_parser_t parser;
    yaml_document_t doc, extra;
    int have_doc = 0, have_extra = 0, err;

    if (!yaml_parser_initialize(&parser))
        return berth_error_set(BERTH_ERR, "%s: out of memory", name);
    yaml_parser_set_input_string(&parser, (const unsigned char *)yaml, len);

    if (!yaml_parser_load(&parser, &doc)) {
        err = berth_error_set(BERTH_EINVALID, "%s:%zu: malformed YAML: %s%s%s", name, parser.problem_mark.line + 1,
                              parser.problem ? parser.problem : "syntax error", parser.context ? " " : "",
                              parser.context ? parser.context : "");
        goto done;
    }
    have_doc = 1;

    yaml_node_t *root = yaml_document_get_root_node(&doc);
    if (root != NULL && (err = config__mapping(&st, &doc, root, "")) < 0)
        goto done;

    /* A second document would be ignored silently; refuse it instead. */
    if (!yaml_parser_load(&parser, &extra)) {
        err = berth_error_set(BERTH_EINVALID, "%s:%zu: malformed YAML: %s", name, parser.problem_mark.line + 1,
                              parser.problem ? parser.problem : "syntax error");
        goto done;
    }
    have_extra = 1;
    if (yaml_document_get_root_node(&extra) != NULL) {
        err = berth_error_set(BERTH_EINVALID, "%s:%zu: more than one YAML document", name, extra.start_mark.line + 1);
        goto done;
    }
    err = config__check(&st);

done:
    if (have_extra)
        yaml_document_delete(&extra);
    if (have_doc)
        yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    return err;
}

int berth_config_load(berth_config_t *cfg, const char *path)
{
    FILE *f = NULL;
    char *buf = NULL;
    size_t len = 0, cap = 0;
    int err;

    if ((f = fopen(path, "rb")) == NULL) {
        int e = errno;
        return berth_error_set(e == ENOENT ? BERTH_ENOTFOUND : BERTH_EIO, "%s: %s", path, strerror(e));
    }
    for (;;) {
        if (len == cap) {
            /* A config file is small; a runaway one (a device, a huge log by
             * mistake) is refused rather than read whole. */
            if (cap >= 16 * 1024 * 1024) {
                err = berth_error_set(BERTH_EINVALID, "%s: too large for a config file", path);
                goto done;
            }
            cap = cap ? cap * 2 : 4096;
            char *nb = realloc(buf, cap);
            if (nb == NULL) {
                err = berth_error_set(BERTH_ERR, "%s: out of memory", path);
                goto done;
            }
            buf = nb;
        }
        size_t r = fread(buf + len, 1, cap - len, f);
        len += r;
        if (r == 0) {
            if (ferror(f)) {
                err = berth_error_set(BERTH_EIO, "%s: read error", path);
                goto done;
            }
            break;
        }
    }
    err = berth_config_load_string(cfg, path, buf ? buf : "", len);

done:
    free(buf);
    fclose(f);
    return err;
}

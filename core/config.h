/*
 * berth configuration, read from YAML (libyaml).
 *
 * One declarative table in config.c maps each key to a field of
 * berth_config_t with its type, default and bounds. Key names follow the
 * reference registry's config.yml where the meaning is the same.
 * Every key is documented in config.example.yaml.
 */
#ifndef BERTH_CORE_CONFIG_H
#define BERTH_CORE_CONFIG_H

#include <stddef.h>
#include <stdint.h>

typedef enum berth_sync_mode {
    BERTH_SYNC_NONE = 0,   /* never fsync: survives a berth crash, not power loss */
    BERTH_SYNC_COMMIT = 1, /* fsync blobs when an upload completes (default) */
    BERTH_SYNC_ALWAYS = 2, /* fsync data and record before every 2xx */
} berth_sync_mode_t;

typedef enum berth_log_level {
    BERTH_LOG_ERROR = 0,
    BERTH_LOG_WARN = 1,
    BERTH_LOG_INFO = 2,
    BERTH_LOG_DEBUG = 3,
} berth_log_level_t;

typedef struct berth_config {
    /* http */
    char *http_addr;                 /* http.addr: "host:port", default "127.0.0.1:5000" */
    int http_threads;                /* http.threads: event-loop threads, 0 = one per core */
    char *http_tls_certificate;      /* http.tls.certificate: PEM path or NULL */
    char *http_tls_key;              /* http.tls.key: PEM path or NULL */
    uint64_t http_timeout_ms;        /* http.timeout: whole-request timeout (HTTP/1) and idle timeout */
    uint64_t http_maxchunksize;      /* http.maxchunksize: largest request body accepted */
    char *http_bodybufferdir;        /* http.bodybufferdir: where large bodies are buffered */
    uint64_t http_shutdowntimeout_ms;/* http.shutdowntimeout: bound on in-flight requests at exit */
    int http_h2_maxconcurrentstreams;/* http.http2.maxconcurrentstreams */

    /* storage */
    char *storage_driver;            /* "filesystem" (the key under storage:) */
    char *storage_fs_root;           /* storage.filesystem.rootdirectory, default "./data" */
    berth_sync_mode_t storage_fs_sync; /* storage.filesystem.sync: always|commit|none */
    int storage_workers;             /* storage.workers: worker threads, 0 = 4 per core */
    /* storage.s3.* (the reference registry's names) */
    char *storage_s3_bucket;         /* storage.s3.bucket (required with s3) */
    char *storage_s3_region;         /* storage.s3.region, default us-east-1 */
    char *storage_s3_regionendpoint; /* storage.s3.regionendpoint: "http://host:port", path-style */
    char *storage_s3_accesskey;      /* storage.s3.accesskey, else AWS_ACCESS_KEY_ID */
    char *storage_s3_secretkey;      /* storage.s3.secretkey, else AWS_SECRET_ACCESS_KEY */
    char *storage_s3_rootdirectory;  /* storage.s3.rootdirectory: key prefix */
    int storage_s3_secure;           /* storage.s3.secure: https, default true */
    uint64_t storage_s3_chunksize;   /* storage.s3.chunksize: S3 part size of OCI uploads, >= 5 MiB */
    int storage_s3_redirect;         /* storage.s3.redirect: blob GETs answer 307 to a presigned URL */
    uint64_t storage_s3_connecttimeout_ms; /* storage.s3.connecttimeout */
    uint64_t storage_s3_timeout_ms;  /* storage.s3.timeout: per S3 request */
    int storage_s3_maxretries;       /* storage.s3.maxretries: retries of idempotent requests */
    int storage_delete_enabled;      /* storage.delete.enabled: DELETE of manifests, tags and blobs, default false */

    /* validation */
    uint64_t validation_manifests_maxsize; /* validation.manifests.maxsize: largest manifest accepted, default 4MiB */

    /* uploads */
    uint64_t uploads_ttl_s;          /* uploads.ttl: idle time before a session is purged, default 7d */
    uint64_t uploads_purgeinterval_s;/* uploads.purgeinterval: how often to look, default 1h */

    /* auth (both or neither; with neither, /v2/ is open and the sessions API refuses everyone) */
    char *auth_htpasswd_realm;       /* auth.htpasswd.realm: realm of the Basic challenge */
    char *auth_htpasswd_path;        /* auth.htpasswd.path: Apache htpasswd file of bcrypt entries */

    /* log */
    berth_log_level_t log_level;     /* log.level: error|warn|info|debug */
    char *log_accesslog;             /* log.accesslog: path, "-" for stdout, "" to disable */
} berth_config_t;

/* Fills *cfg with every default (nothing to free but what berth_config_clear
 * frees). */
void berth_config_defaults(berth_config_t *cfg);

/* Loads `path` over the defaults. BERTH_EINVALID for an unknown key, a bad
 * value, a duplicate key or malformed YAML, with a message naming the file,
 * line and key ("config.yaml:12: http.threads: expected an integer 0..1024");
 * BERTH_ENOTFOUND / BERTH_EIO when the file cannot be read. On failure *cfg
 * still holds only owned, freeable values. */
int berth_config_load(berth_config_t *cfg, const char *path);

/* The same from a string (tests). `name` is used in messages. */
int berth_config_load_string(berth_config_t *cfg, const char *name, const char *yaml, size_t len);

void berth_config_clear(berth_config_t *cfg);

/* Parses "1GiB", "16MiB", "512KiB", "4096", "10MB" etc. into bytes. */
int berth_parse_size(const char *s, uint64_t *out);

/* Parses "7d", "168h", "90m", "30s", "500ms", or plain seconds "30", into
 * milliseconds. */
int berth_parse_duration_ms(const char *s, uint64_t *out);

#endif

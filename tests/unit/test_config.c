/*
 * Configuration: defaults, a full file, every kind of error with its line,
 * and the size and duration parsers.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/config.h"
#include "core/error.h"

static int load(berth_config_t *cfg, const char *yaml)
{
    berth_config_defaults(cfg);
    return berth_config_load_string(cfg, "test.yaml", yaml, strlen(yaml));
}

static void assert_defaults(const berth_config_t *c)
{
    cr_assert_str_eq(c->http_addr, "127.0.0.1:5000");
    cr_assert_eq(c->http_threads, 0);
    cr_assert_null(c->http_tls_certificate);
    cr_assert_null(c->http_tls_key);
    cr_assert_eq(c->http_timeout_ms, 300000);
    cr_assert_eq(c->http_maxchunksize, 1ULL << 30);
    cr_assert_str_eq(c->http_bodybufferdir, "/tmp");
    cr_assert_eq(c->http_shutdowntimeout_ms, 30000);
    cr_assert_eq(c->http_h2_maxconcurrentstreams, 100);
    cr_assert_str_eq(c->storage_driver, "filesystem");
    cr_assert_str_eq(c->storage_fs_root, "./data");
    cr_assert_eq(c->storage_fs_sync, BERTH_SYNC_COMMIT);
    cr_assert_eq(c->storage_workers, 0);
    cr_assert_eq(c->storage_delete_enabled, 0);
    cr_assert_eq(c->validation_manifests_maxsize, 4ULL << 20);
    cr_assert_eq(c->uploads_ttl_s, 7 * 86400);
    cr_assert_eq(c->uploads_purgeinterval_s, 3600);
    cr_assert_eq(c->log_level, BERTH_LOG_INFO);
    cr_assert_str_eq(c->log_accesslog, "-");
}

Test(config, defaults)
{
    berth_config_t c;
    berth_config_defaults(&c);
    assert_defaults(&c);
    /* The default timeout must let a 1 GiB chunk arrive at 20 MB/s. */
    cr_assert_geq(c.http_timeout_ms, c.http_maxchunksize * 1000 / (20 * 1000 * 1000));
    berth_config_clear(&c);
    cr_assert_null(c.http_addr);
    berth_config_clear(&c); /* twice is harmless */
    berth_config_clear(NULL);
}

Test(config, empty_documents_give_defaults)
{
    static const char *const empties[] = {"", "\n", "# only a comment\n", "---\n", "~\n", "http:\nstorage:\nlog:\n"};
    for (size_t i = 0; i < sizeof(empties) / sizeof(empties[0]); i++) {
        berth_config_t c;
        cr_assert_eq(load(&c, empties[i]), 0, "\"%s\": %s", empties[i], berth_error_last());
        assert_defaults(&c);
        berth_config_clear(&c);
    }
}

Test(config, example_file_holds_exactly_the_defaults)
{
    /* The example sits at the top of the source tree, two levels above this file. */
    char path[4096];
    const char *here = __FILE__;
    const char *slash = strstr(here, "tests/unit/");
    cr_assert_not_null(slash, "cannot locate the source tree from %s", here);
    snprintf(path, sizeof(path), "%.*sconfig.example.yaml", (int)(slash - here), here);

    berth_config_t c;
    berth_config_defaults(&c);
    cr_assert_eq(berth_config_load(&c, path), 0, "%s", berth_error_last());
    assert_defaults(&c);
    berth_config_clear(&c);
}

Test(config, full_file_sets_every_key)
{
    const char *yaml = "version: 0.1\n"
                       "http:\n"
                       "  addr: \"[::1]:8443\"\n"
                       "  threads: 8\n"
                       "  tls:\n"
                       "    certificate: /etc/berth/cert.pem\n"
                       "    key: /etc/berth/key.pem\n"
                       "  timeout: 10m\n"
                       "  maxchunksize: 64MiB\n"
                       "  bodybufferdir: /var/tmp\n"
                       "  shutdowntimeout: 1500ms\n"
                       "  http2:\n"
                       "    maxconcurrentstreams: 1000\n"
                       "storage:\n"
                       "  filesystem:\n"
                       "    rootdirectory: /srv/berth\n"
                       "    sync: always\n"
                       "  workers: 16\n"
                       "  delete:\n"
                       "    enabled: true\n"
                       "validation:\n"
                       "  manifests:\n"
                       "    maxsize: 1MiB\n"
                       "uploads:\n"
                       "  ttl: 1h30m\n"
                       "  purgeinterval: 90\n"
                       "log:\n"
                       "  level: debug\n"
                       "  accesslog: \"\"\n";
    berth_config_t c;

    cr_assert_eq(load(&c, yaml), 0, "%s", berth_error_last());
    cr_assert_str_eq(c.http_addr, "[::1]:8443");
    cr_assert_eq(c.http_threads, 8);
    cr_assert_str_eq(c.http_tls_certificate, "/etc/berth/cert.pem");
    cr_assert_str_eq(c.http_tls_key, "/etc/berth/key.pem");
    cr_assert_eq(c.http_timeout_ms, 600000);
    cr_assert_eq(c.http_maxchunksize, 64ULL << 20);
    cr_assert_str_eq(c.http_bodybufferdir, "/var/tmp");
    cr_assert_eq(c.http_shutdowntimeout_ms, 1500);
    cr_assert_eq(c.http_h2_maxconcurrentstreams, 1000);
    cr_assert_str_eq(c.storage_driver, "filesystem");
    cr_assert_str_eq(c.storage_fs_root, "/srv/berth");
    cr_assert_eq(c.storage_fs_sync, BERTH_SYNC_ALWAYS);
    cr_assert_eq(c.storage_workers, 16);
    cr_assert_eq(c.storage_delete_enabled, 1);
    cr_assert_eq(c.validation_manifests_maxsize, 1ULL << 20);
    cr_assert_eq(c.uploads_ttl_s, 5400);
    cr_assert_eq(c.uploads_purgeinterval_s, 90);
    cr_assert_eq(c.log_level, BERTH_LOG_DEBUG);
    cr_assert_str_eq(c.log_accesslog, "");
    berth_config_clear(&c);
}

Test(config, partial_file_keeps_other_defaults_and_flow_style_works)
{
    berth_config_t c;

    cr_assert_eq(load(&c, "log: {level: warn}\nstorage: {filesystem: {sync: none}}\n"), 0, "%s", berth_error_last());
    cr_assert_eq(c.log_level, BERTH_LOG_WARN);
    cr_assert_eq(c.storage_fs_sync, BERTH_SYNC_NONE);
    cr_assert_str_eq(c.storage_fs_root, "./data");
    cr_assert_str_eq(c.http_addr, "127.0.0.1:5000");
    berth_config_clear(&c);

    /* A driver with nothing under it, as reference configs write "inmemory:". */
    cr_assert_eq(load(&c, "storage:\n  filesystem:\n"), 0, "%s", berth_error_last());
    cr_assert_str_eq(c.storage_driver, "filesystem");
    berth_config_clear(&c);

    cr_assert_eq(load(&c, "http:\n  addr: :5000\n"), 0, "%s", berth_error_last());
    cr_assert_str_eq(c.http_addr, ":5000");
    berth_config_clear(&c);
}

/* Loads yaml expecting BERTH_EINVALID and a message containing `want`;
 * then clears (ASan checks nothing leaks from a half-applied file). */
static void assert_error(const char *yaml, const char *want)
{
    berth_config_t c;
    cr_assert_eq(load(&c, yaml), BERTH_EINVALID, "accepted:\n%s", yaml);
    cr_assert_not_null(strstr(berth_error_last(), want), "message \"%s\" lacks \"%s\"", berth_error_last(), want);
    berth_config_clear(&c);
}

Test(config, unknown_keys_are_named_with_their_line)
{
    assert_error("http:\n  addr: 127.0.0.1:5000\n  foo: 1\n", "test.yaml:3: unknown key 'http.foo'");
    assert_error("\n\nsecret: x\n", "test.yaml:3: unknown key 'secret'");
    assert_error("http:\n  tls:\n    ca: x\n", "test.yaml:3: unknown key 'http.tls.ca'");
    assert_error("storage:\n  filesystem:\n    maxthreads: 100\n",
                 "test.yaml:3: unknown key 'storage.filesystem.maxthreads'");
    assert_error("storage:\n  redirect:\n    disable: true\n", "test.yaml:2: unknown key 'storage.redirect'");
    assert_error("http.threads: 4\n", "test.yaml:1: unknown key 'http.threads'");
    assert_error("log:\n  level: info\n  version: 1\n", "unknown key 'log.version'");
}

Test(config, wrong_types_and_bounds_are_named_with_their_line)
{
    assert_error("http:\n  threads: 2000\n", "test.yaml:2: http.threads: expected an integer in 0..1024");
    assert_error("http:\n  threads: -1\n", "test.yaml:2: http.threads: expected an integer in 0..1024");
    assert_error("http:\n  threads: four\n", "test.yaml:2: http.threads: expected an integer in 0..1024");
    assert_error("http:\n  threads: 1.5\n", "http.threads: expected an integer");
    assert_error("http:\n  threads: 99999999999999999999999\n", "http.threads: expected an integer");
    assert_error("http:\n  threads:\n", "test.yaml:2: http.threads: expected");
    assert_error("http:\n  threads: [1, 2]\n", "test.yaml:2: http.threads: expected");
    assert_error("http:\n  http2:\n    maxconcurrentstreams: 0\n", "test.yaml:3: http.http2.maxconcurrentstreams");
    assert_error("http:\n  maxchunksize: 512\n", "test.yaml:2: http.maxchunksize: expected a size");
    assert_error("http:\n  maxchunksize: lots\n", "http.maxchunksize: expected a size");
    assert_error("http:\n  timeout: 5 parsecs\n", "test.yaml:2: http.timeout: expected a duration");
    assert_error("uploads:\n  ttl: 500ms\n", "test.yaml:2: uploads.ttl: expected a duration");
    assert_error("storage:\n  delete:\n    enabled: maybe\n", "test.yaml:3: storage.delete.enabled: expected");
    assert_error("validation:\n  manifests:\n    maxsize: 65MiB\n", "test.yaml:3: validation.manifests.maxsize");
    assert_error("validation:\n  manifests:\n    urls: {}\n", "unknown key 'validation.manifests.urls'");
    assert_error("uploads:\n  purgeinterval: 0s\n", "uploads.purgeinterval");
    assert_error("log:\n  level: verbose\n", "test.yaml:2: log.level: expected one of error|warn|info|debug");
    assert_error("storage:\n  filesystem:\n    sync: sometimes\n", "test.yaml:3: storage.filesystem.sync");
    assert_error("storage:\n  filesystem:\n    rootdirectory: \"\"\n", "storage.filesystem.rootdirectory");
    assert_error("storage:\n  workers: 1025\n", "storage.workers: expected an integer in 0..1024");
}

Test(config, listen_addresses_need_a_port)
{
    assert_error("http:\n  addr: localhost\n", "test.yaml:2: http.addr");
    assert_error("http:\n  addr: \"127.0.0.1:0\"\n", "http.addr");
    assert_error("http:\n  addr: \"127.0.0.1:65536\"\n", "http.addr");
    assert_error("http:\n  addr: \"127.0.0.1:\"\n", "http.addr");
    assert_error("http:\n  addr: \"127.0.0.1:http\"\n", "http.addr");
    assert_error("http:\n  addr: \"::1:5000\"\n", "brackets");
    assert_error("http:\n  addr: \"[::1:5000\"\n", "http.addr");
    assert_error("http:\n  addr: \"[]:5000\"\n", "http.addr");

    berth_config_t c;
    cr_assert_eq(load(&c, "http:\n  addr: \"0.0.0.0:65535\"\n"), 0, "%s", berth_error_last());
    berth_config_clear(&c);
}

Test(config, structural_errors)
{
    assert_error("http:\n  addr: 127.0.0.1:5000\nhttp:\n  threads: 2\n", "test.yaml:3: duplicate key 'http'");
    assert_error("log:\n  level: info\n  level: warn\n", "test.yaml:3: duplicate key 'log.level'");
    assert_error("http: 5\n", "test.yaml:1: http: expected a mapping");
    assert_error("http:\n  - addr\n", "test.yaml:2: http: expected a mapping");
    assert_error("- a\n- b\n", "test.yaml:1: top level: expected a mapping");
    assert_error("http:\n  tls: yes\n", "test.yaml:2: http.tls: expected a mapping");
    assert_error("storage:\n  azure:\n    accountname: b\n", "test.yaml:2: storage: unsupported storage driver 'azure'");
    assert_error("storage:\n  filesystem:\n    rootdirectory: /a\n  inmemory:\n",
                 "test.yaml:4: storage: more than one driver ('filesystem' and 'inmemory')");
    assert_error("http:\n  tls:\n    certificate: /c.pem\n", "test.yaml:3: http.tls: certificate and key");
    assert_error("http:\n  tls:\n    key: /k.pem\n", "http.tls: certificate and key");
    assert_error("http:\n  addr: [unclosed\n", "test.yaml:");
    assert_error("http:\n\taddr: x\n", "malformed YAML");
    assert_error("log:\n  level: info\n---\nlog:\n  level: warn\n", "test.yaml:3: more than one YAML document");
    assert_error("version: [1]\n", "version");
    assert_error("? [a, b]\n: c\n", "keys must be plain names");
}

Test(config, load_from_file_and_missing_file)
{
    char path[] = "/tmp/berth-test-config-XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    const char *yaml = "http:\n  threads: 3\n  bogus: 1\n";
    cr_assert_eq(write(fd, yaml, strlen(yaml)), (ssize_t)strlen(yaml));
    close(fd);

    berth_config_t c;
    berth_config_defaults(&c);
    cr_assert_eq(berth_config_load(&c, path), BERTH_EINVALID);
    char want[128];
    snprintf(want, sizeof(want), "%s:3: unknown key 'http.bogus'", path);
    cr_assert_str_eq(berth_error_last(), want);
    berth_config_clear(&c);

    berth_config_defaults(&c);
    cr_assert_eq(berth_config_load(&c, "/nonexistent/berth.yaml"), BERTH_ENOTFOUND);
    cr_assert_not_null(strstr(berth_error_last(), "/nonexistent/berth.yaml"));
    assert_defaults(&c);
    berth_config_clear(&c);
    unlink(path);
}

Test(config, sizes)
{
    static const struct {
        const char *in;
        uint64_t want;
    } ok[] = {
        {"0", 0},
        {"4096", 4096},
        {"1B", 1},
        {"1K", 1024},
        {"1KB", 1000},
        {"1KiB", 1024},
        {"1kib", 1024},
        {"1kb", 1000},
        {"512KiB", 512 * 1024},
        {"10MB", 10 * 1000 * 1000},
        {"16MiB", 16 << 20},
        {"16M", 16 << 20},
        {"1GiB", 1ULL << 30},
        {"2GB", 2000000000ULL},
        {"1 GiB", 1ULL << 30},
        {"3TiB", 3ULL << 40},
        {"1TB", 1000000000000ULL},
        {"18446744073709551615", UINT64_MAX},
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        uint64_t v = 7;
        cr_assert_eq(berth_parse_size(ok[i].in, &v), 0, "rejected \"%s\": %s", ok[i].in, berth_error_last());
        cr_assert_eq(v, ok[i].want, "\"%s\" gave %llu", ok[i].in, (unsigned long long)v);
    }
    static const char *const bad[] = {
        "",
        "GiB",
        "-1",
        "+1",
        "1.5GiB",
        "1 ",
        "1XB",
        "1GiBs",
        "1iB",
        "0x10",
        "18446744073709551616",
        "16777216TiB",
        "20000000000GB",
        " 1",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        uint64_t v = 7;
        cr_assert_eq(berth_parse_size(bad[i], &v), BERTH_EINVALID, "accepted \"%s\"", bad[i]);
        cr_assert_eq(v, 7);
    }
}

Test(config, durations)
{
    static const struct {
        const char *in;
        uint64_t want;
    } ok[] = {
        {"0", 0},
        {"30", 30000},
        {"500ms", 500},
        {"30s", 30000},
        {"90m", 5400000},
        {"168h", 168ULL * 3600000},
        {"7d", 7ULL * 86400000},
        {"1h30m", 5400000},
        {"1m30s500ms", 90500},
        {"0s", 0},
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        uint64_t v = 7;
        cr_assert_eq(berth_parse_duration_ms(ok[i].in, &v), 0, "rejected \"%s\": %s", ok[i].in, berth_error_last());
        cr_assert_eq(v, ok[i].want, "\"%s\" gave %llu", ok[i].in, (unsigned long long)v);
    }
    static const char *const bad[] = {
        "",
        "s",
        "-1s",
        "+1s",
        "1.5h",
        "1 s",
        "1sec",
        "1min",
        "1w",
        "1y",
        "1S",
        "1H",
        "1h30",
        "30s ",
        "18446744073709551616",
        "18446744073709551615s",
        "213503982335d",
        "9999999999999999d1s",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        uint64_t v = 7;
        cr_assert_eq(berth_parse_duration_ms(bad[i], &v), BERTH_EINVALID, "accepted \"%s\"", bad[i]);
        cr_assert_eq(v, 7);
    }
}

Test(config, s3_section_in_the_reference_registry_vocabulary)
{
    berth_config_t c;

    cr_assert_eq(load(&c, "storage:\n  s3:\n    bucket: reg\n    region: eu-west-1\n"
                          "    regionendpoint: http://127.0.0.1:9000\n    accesskey: a\n    secretkey: s\n"
                          "    rootdirectory: /r\n    secure: false\n    chunksize: 8MiB\n    redirect: true\n"
                          "    connecttimeout: 2s\n    timeout: 30s\n    maxretries: 1\n"),
                 0, "%s", berth_error_last());
    cr_assert_str_eq(c.storage_driver, "s3");
    cr_assert_str_eq(c.storage_s3_bucket, "reg");
    cr_assert_str_eq(c.storage_s3_region, "eu-west-1");
    cr_assert_str_eq(c.storage_s3_regionendpoint, "http://127.0.0.1:9000");
    cr_assert_str_eq(c.storage_s3_accesskey, "a");
    cr_assert_str_eq(c.storage_s3_secretkey, "s");
    cr_assert_str_eq(c.storage_s3_rootdirectory, "/r");
    cr_assert_eq(c.storage_s3_secure, 0);
    cr_assert_eq(c.storage_s3_chunksize, 8ULL << 20);
    cr_assert_eq(c.storage_s3_redirect, 1);
    cr_assert_eq(c.storage_s3_connecttimeout_ms, 2000);
    cr_assert_eq(c.storage_s3_timeout_ms, 30000);
    cr_assert_eq(c.storage_s3_maxretries, 1);
    berth_config_clear(&c);

    /* Defaults. */
    cr_assert_eq(load(&c, "storage:\n  s3:\n    bucket: reg\n"), 0, "%s", berth_error_last());
    cr_assert_str_eq(c.storage_s3_region, "us-east-1");
    cr_assert_eq(c.storage_s3_secure, 1);
    cr_assert_eq(c.storage_s3_chunksize, 10ULL << 20);
    cr_assert_eq(c.storage_s3_redirect, 0);
    cr_assert_null(c.storage_s3_accesskey, "unset: the environment's AWS_ACCESS_KEY_ID applies");
    berth_config_clear(&c);

    assert_error("storage:\n  s3:\n    bucket: reg\n    chunksize: 4MiB\n", "storage.s3.chunksize");
    assert_error("storage:\n  s3:\n    region: eu-west-1\n", "storage.s3.bucket is required");
    assert_error("storage:\n  s3:\n    bucket: reg\n    v4auth: true\n", "unknown key 'storage.s3.v4auth'");
}

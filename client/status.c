/*
 * berth status URL [--json]: what the server holds for an upload session.
 * An OCI session URL (/v2/<name>/blobs/uploads/<id>) answers with its
 * Range; a part session (/uploads/sessions/<id>) with its JSON state.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/cli.h"
#include "client/client.h"
#include "client/http.h"
#include "client/progress.h"
#include "client/ref.h"
#include "core/error.h"

static void status__list(json_t *j, const char *key, char *buf, size_t len)
{
    json_t *a = json_object_get(j, key), *v;
    size_t i, k = 0;

    buf[0] = '\0';
    if (!json_is_array(a) || json_array_size(a) == 0) {
        snprintf(buf, len, "none");
        return;
    }
    json_array_foreach(a, i, v)
    {
        const char *s = json_string_value(v);
        char tmp[32];
        if (s == NULL && json_is_integer(v)) {
            snprintf(tmp, sizeof(tmp), "%lld", (long long)json_integer_value(v));
            s = tmp;
        }
        if (s == NULL)
            continue;
        int n = snprintf(buf + k, len - k, "%s%s", k ? "," : "", s);
        if (n < 0 || (size_t)n >= len - k) {
            if (len > 4)
                strcpy(buf + len - 4, "...");
            return;
        }
        k += (size_t)n;
    }
}

static int status__parts(const berth_cli_t *cli, const berth_http_resp_t *r)
{
    json_error_t je;
    json_t *j = r->body ? json_loadb(r->body, r->body_len, 0, &je) : NULL;
    char recv[512], miss[512], hb[32];

    if (!json_is_object(j)) {
        fprintf(stderr, "berth status: the answer is not a JSON object\n");
        json_decref(j);
        return 1;
    }
    if (cli->json) {
        json_object_set_new(j, "type", json_string("parts"));
        char *s = json_dumps(j, JSON_COMPACT);
        printf("%s\n", s ? s : "{}");
        free(s);
    } else {
        const char *st = json_string_value(json_object_get(j, "status"));
        json_int_t tp = json_integer_value(json_object_get(j, "total_parts"));
        json_int_t cp = json_integer_value(json_object_get(j, "completed_parts"));
        json_int_t rb = json_integer_value(json_object_get(j, "received_bytes"));
        const char *dg = json_string_value(json_object_get(j, "digest"));
        status__list(j, "received_parts", recv, sizeof(recv));
        status__list(j, "missing_parts", miss, sizeof(miss));
        printf("part session %s: %s, %lld of %lld parts received (%s)%s%s\n",
               json_string_value(json_object_get(j, "session_id")) ? json_string_value(json_object_get(j, "session_id"))
                                                                   : "?",
               st ? st : "?", (long long)cp, (long long)tp,
               berth_human_bytes((uint64_t)(rb > 0 ? rb : 0), hb, sizeof(hb)), dg ? ", " : "", dg ? dg : "");
        printf("received parts: %s\nmissing parts: %s\n", recv, miss);
    }
    json_decref(j);
    return 0;
}

int berth_client_status(int argc, char **argv)
{
    berth_cli_t cli;
    berth_http_t *http = NULL;
    berth_http_resp_t r;
    int rc, err;

    memset(&r, 0, sizeof(r));
    if ((rc = berth_cli_parse(&cli, "status", argc, argv, 1)) != 0)
        return rc < 0 ? 0 : rc;
    rc = 1;
    const char *url = cli.pos[0];
    if (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0) {
        fprintf(stderr, "berth status: '%s' is not an http:// or https:// URL of a session\n", url);
        berth_cli_clear(&cli);
        return 2;
    }
    int parts = strstr(url, "/uploads/sessions/") != NULL;
    if (berth_http_global_init() != 0 || berth_http_new(&http, &cli.http) != 0) {
        fprintf(stderr, "berth status: %s\n", berth_error_last());
        goto out;
    }
    for (unsigned attempt = 1;; attempt++) {
        err = berth_http_request(http, "GET", url, NULL, NULL, NULL, &r);
        if (!berth_cli_retryable(err, r.status) || r.status == 416 || attempt > cli.retries)
            break;
        berth_http_resp_clear(&r);
        berth_cli_backoff(attempt);
    }
    if (err < 0) {
        fprintf(stderr, "berth status: %s\n", berth_error_last());
        goto out;
    }
    if (r.status == 404) {
        if (cli.json)
            printf("{\"type\":\"%s\",\"url\":\"%s\",\"state\":\"unknown\"}\n", parts ? "parts" : "oci", url);
        else
            printf("no such session (unknown, finished, cancelled or expired): %s\n", url);
        rc = 1;
        goto out;
    }
    if (parts) {
        if (r.status != 200) {
            char msg[300];
            fprintf(stderr, "berth status: HTTP %ld %s\n", r.status, berth_http_resp_error(&r, msg, sizeof(msg)));
            goto out;
        }
        rc = status__parts(&cli, &r);
        goto out;
    }
    if (r.status != 204 && r.status != 200) {
        char msg[300];
        fprintf(stderr, "berth status: HTTP %ld %s\n", r.status, berth_http_resp_error(&r, msg, sizeof(msg)));
        goto out;
    }
    uint64_t off;
    if (berth_oci_range_offset(r.range ? r.range : "0-0", 0, &off) != 0) {
        fprintf(stderr, "berth status: %s\n", berth_error_last());
        goto out;
    }
    if (cli.json) {
        json_t *j = json_pack("{s:s, s:s, s:s, s:I, s:s?}", "type", "oci", "url", url, "range",
                              r.range ? r.range : "0-0", "offset", (json_int_t)off, "uuid", r.uuid);
        char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
        printf("%s\n", s ? s : "{}");
        free(s);
        json_decref(j);
    } else {
        char hb[32];
        printf("OCI upload session: %llu bytes received (%s, Range %s); the next chunk starts at byte %llu\n",
               (unsigned long long)off, berth_human_bytes(off, hb, sizeof(hb)), r.range ? r.range : "0-0",
               (unsigned long long)off);
    }
    rc = 0;
out:
    berth_http_resp_clear(&r);
    berth_http_free(http);
    berth_http_global_cleanup();
    berth_cli_clear(&cli);
    return rc;
}

/*
 * The S3 backend through a proxy of the test's own, in front of the S3
 * peer: an answer lost after the request was carried out, and how many
 * requests a write costs. Included by test_storage_s3.c after its helpers
 * (b, s3_root, s3_open_at, the sessions), under its suite storage_s3.
 */
#ifndef BERTH_TESTS_TEST_STORAGE_S3_PROXY_H
#define BERTH_TESTS_TEST_STORAGE_S3_PROXY_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* ---- a lost answer ---- */

/* A proxy in front of the S3 peer that, when armed, carries out the next
 * conditional request but answers it 500: an S3 whose answer was lost. It
 * counts the requests it forwards. */
typedef struct lossy {
    int fd, port, armed, tripped, requests; /* armed, tripped, requests: atomics */
} lossy_t;

typedef struct lossy_conn {
    lossy_t *l;
    int fd;
} lossy_conn_t;

/* Reads one HTTP message into buf (cap bytes; the first n already there):
 * the head, then as many bytes as its Content-Length says unless `nobody`.
 * A request expecting "100 Continue" gets it. Its length; 0 at the end. */
static size_t http_read(int fd, char *buf, size_t cap, size_t n, int nobody)
{
    static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
    size_t head = 0, want;
    const char *end, *cl;
    ssize_t r;

    buf[n] = '\0';
    while ((end = strstr(buf, "\r\n\r\n")) == NULL) {
        if (n + 1 >= cap || (r = read(fd, buf + n, cap - n - 1)) <= 0)
            return 0;
        n += (size_t)r;
        buf[n] = '\0';
    }
    head = (size_t)(end - buf) + 4;
    cl = strcasestr(buf, "\ncontent-length:");
    want = head + (!nobody && cl != NULL && cl < buf + head ? strtoul(cl + 16, NULL, 10) : 0);
    if (n < want && strcasestr(buf, "\nexpect: 100-continue") != NULL)
        cr_assert_eq(write(fd, cont, sizeof(cont) - 1), (ssize_t)sizeof(cont) - 1);
    while (n < want && (r = read(fd, buf + n, cap - n)) > 0)
        n += (size_t)r;
    return n;
}

static int upstream_connect(void)
{
    const char *ep = getenv("BERTH_TEST_S3_ENDPOINT"), *colon = strrchr(ep, ':');
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(colon + 1))};
    int u = socket(AF_INET, SOCK_STREAM, 0);

    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert_eq(connect(u, (struct sockaddr *)&a, sizeof(a)), 0);
    return u;
}

static void *lossy_serve(void *arg)
{
    static const char lost[] = "HTTP/1.1 500 Internal Server Error\r\nContent-Type: application/xml\r\n"
                               "Content-Length: 41\r\n\r\n<Error><Code>InternalError</Code></Error>";
    lossy_conn_t *lc = arg;
    size_t cap = 4 * MIB, n, m;
    char *req = malloc(cap), *resp = malloc(cap);

    while ((n = http_read(lc->fd, req, cap, 0, 0)) > 0) {
        int u = upstream_connect(), head = strncmp(req, "HEAD ", 5) == 0, cond;
        __atomic_add_fetch(&lc->l->requests, 1, __ATOMIC_SEQ_CST);
        cr_assert_eq(write(u, req, n), (ssize_t)n);
        /* The peer's own "100 Continue" was answered here already. */
        for (m = http_read(u, resp, cap, 0, head); m > 12 && strncmp(resp, "HTTP/1.1 100", 12) == 0;) {
            size_t h = (size_t)(strstr(resp, "\r\n\r\n") - resp) + 4;
            memmove(resp, resp + h, m - h);
            m = http_read(u, resp, cap, m - h, head);
        }
        close(u);
        cond = strcasestr(req, "\nif-match:") != NULL || strcasestr(req, "\nif-none-match:") != NULL;
        if (cond && __atomic_exchange_n(&lc->l->armed, 0, __ATOMIC_SEQ_CST)) {
            __atomic_add_fetch(&lc->l->tripped, 1, __ATOMIC_SEQ_CST);
            cr_assert_eq(write(lc->fd, lost, sizeof(lost) - 1), (ssize_t)sizeof(lost) - 1);
        } else if (m == 0 || write(lc->fd, resp, m) != (ssize_t)m) {
            break;
        }
    }
    free(req);
    free(resp);
    close(lc->fd);
    free(lc);
    return NULL;
}

static void *lossy_accept(void *arg)
{
    lossy_t *l = arg;
    int c;

    while ((c = accept(l->fd, NULL, NULL)) >= 0) {
        lossy_conn_t *lc = malloc(sizeof(*lc));
        pthread_t t;
        lc->l = l;
        lc->fd = c;
        pthread_create(&t, NULL, lossy_serve, lc);
        pthread_detach(t);
    }
    return NULL;
}

static void lossy_start(lossy_t *l)
{
    struct sockaddr_in a = {.sin_family = AF_INET};
    socklen_t alen = sizeof(a);
    pthread_t t;

    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    l->fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert_eq(bind(l->fd, (struct sockaddr *)&a, sizeof(a)), 0);
    cr_assert_eq(listen(l->fd, 8), 0);
    cr_assert_eq(getsockname(l->fd, (struct sockaddr *)&a, &alen), 0);
    l->port = ntohs(a.sin_port);
    pthread_create(&t, NULL, lossy_accept, l);
    pthread_detach(t);
}

Test(storage_s3, a_conditional_write_retried_after_a_lost_answer_finds_its_own_write)
{
    lossy_t l = {0};
    berth_version_t absent = {""}, v1, v2;
    char endpoint[64], *buf = NULL;
    berth_storage_t *flaky;
    size_t len = 0;

    lossy_start(&l);
    snprintf(endpoint, sizeof(endpoint), "http://127.0.0.1:%d", l.port);
    flaky = s3_open_at(endpoint, s3_root, BERTH_S3_MIN_PART, NULL);
    /* Created by the first attempt, whose answer is lost; the retry finds
     * the key there (412) holding exactly its bytes. */
    __atomic_store_n(&l.armed, 1, __ATOMIC_SEQ_CST);
    cr_assert_eq(berth_storage_obj_put(flaky, "meta/lost", "one", 3, &absent, &v1), 0, "%s", berth_error_last());
    cr_assert_eq(l.tripped, 1);
    cr_assert_str_eq(v1.tag, "\"f97c5d29941bfb1b2fdab0874906ab82\"");
    __atomic_store_n(&l.armed, 1, __ATOMIC_SEQ_CST);
    cr_assert_eq(berth_storage_obj_put(flaky, "meta/lost", "two", 3, &v1, &v2), 0, "%s", berth_error_last());
    cr_assert_eq(l.tripped, 2);
    cr_assert_eq(berth_storage_obj_get(b, "meta/lost", &buf, &len, NULL), 0);
    cr_assert_eq(memcmp(buf, "two", 3), 0);
    free(buf);
    /* Someone else's bytes are a conflict, lost answer or not. */
    cr_assert_eq(berth_storage_obj_put(b, "meta/lost", "three", 5, &v2, NULL), 0);
    __atomic_store_n(&l.armed, 1, __ATOMIC_SEQ_CST);
    cr_assert_eq(berth_storage_obj_put(flaky, "meta/lost", "four", 4, &v2, NULL), BERTH_ECONFLICT);
    /* Deleted by the first attempt: the retry finds it gone, as asked. */
    cr_assert_eq(berth_storage_obj_get(b, "meta/lost", &buf, &len, &v1), 0);
    free(buf);
    __atomic_store_n(&l.armed, 1, __ATOMIC_SEQ_CST);
    cr_assert_eq(berth_storage_obj_delete(flaky, "meta/lost", &v1), 0, "%s", berth_error_last());
    cr_assert_eq(l.tripped, 4);
    berth_storage_free(flaky);
    shutdown(l.fd, SHUT_RDWR);
    close(l.fd);
}

/* ---- what a write costs ---- */

/* A write that only stages a tail piece costs one PUT: it asks S3 nothing
 * first (a write into data that is gone leaves only debris; storage.h). */
Test(storage_s3, a_write_that_only_stages_a_piece_is_one_request)
{
    enum { WRITES = 20 };
    berth_layout_t layout = {0, 0};
    char endpoint[64], chunk[1000];
    berth_storage_t *counted;
    lossy_t l = {0};
    int requests;
    sess_t ss;

    lossy_start(&l);
    snprintf(endpoint, sizeof(endpoint), "http://127.0.0.1:%d", l.port);
    counted = s3_open_at(endpoint, s3_root, BERTH_S3_MIN_PART, NULL);
    memset(&ss, 0, sizeof(ss));
    cr_assert_eq(berth_id_generate(ss.id), 0);
    cr_assert_eq(berth_storage_data_create(counted, ss.id, &layout, &ss.state), 0, "%s", berth_error_last());
    requests = __atomic_load_n(&l.requests, __ATOMIC_SEQ_CST);
    for (int i = 0; i < WRITES; i++) {
        berth_writer_t *w = NULL;
        uint64_t kept = 0;
        char *next = NULL;

        memset(chunk, 'a' + i, sizeof(chunk));
        cr_assert_eq(berth_storage_data_open(counted, ss.id, ss.state, ss.size, sizeof(chunk), &w), 0, "%s",
                     berth_error_last());
        cr_assert_eq(berth_storage_writer_write(w, chunk, 400), 0, "%s", berth_error_last());
        cr_assert_eq(berth_storage_writer_write(w, chunk + 400, sizeof(chunk) - 400), 0, "%s", berth_error_last());
        cr_assert_eq(berth_storage_writer_close(w, 1, &kept, &next), 0, "%s", berth_error_last());
        cr_assert_eq(kept, sizeof(chunk));
        cr_assert_not_null(next);
        free(ss.state);
        ss.state = next;
        ss.size += kept;
    }
    requests = __atomic_load_n(&l.requests, __ATOMIC_SEQ_CST) - requests;
    cr_assert_eq(requests, WRITES, "%d S3 requests for %d staging writes", requests, WRITES);
    cr_assert_eq(pieces_of(&ss), WRITES);
    cr_assert_eq(berth_storage_data_remove(b, ss.id, ss.state), 0, "%s", berth_error_last());
    berth_storage_free(counted);
    shutdown(l.fd, SHUT_RDWR);
    close(l.fd);
    sess_clear(&ss);
}

#endif

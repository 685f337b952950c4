/*
 * The server: one h2o event loop per thread sharing a listening socket, a
 * worker pool for storage work, TLS with ALPN, the access log, periodic
 * purging of expired sessions, and graceful shutdown.
 *
 * Signals are blocked in every thread but the maintenance thread, which
 * waits for SIGTERM/SIGINT with a timeout equal to the purge interval, so
 * it both purges on schedule and starts the shutdown.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <malloc.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "core/engine.h"
#include "core/error.h"
#include "core/log.h"
#include "core/registry.h"
#include "core/workq.h"
#include "http/app.h"
#include "http/auth.h"
#include "http/bodywatch.h"
#include "http/error.h"
#include "http/h2ocompat.h"
#include "http/response.h"
#include "http/route.h"
#include "http/server.h"
#include "storage/storage.h"

/* libh2o buffers each request body whole before the handler runs. Bodies
 * up to this size (chunks of the recommended sizes) grow in the heap; larger
 * ones in an unlinked file under http.bodybufferdir, so a 1 GiB chunk costs
 * page cache rather than heap. */
#define SERVER__MMAP_THRESHOLD ((size_t)64 << 20)
/* Freed body memory glibc keeps for the next request instead of returning it
 * to the kernel: receiving into memory that is already mapped is what makes
 * a chunk cheap, since faulting fresh pages in costs as much as the copy.
 * Large buffers must not be mmap'd one by one (that returns them on free),
 * and one arena keeps them reusable by every loop thread: with glibc's
 * per-thread arenas, 4 clients PATCHing 16 and 24 MiB chunks to 2 loop
 * threads (release build, tmpfs) took 13,000-36,000 page faults per GiB
 * and peaked at 309-428 MB RSS, against 0-3,000 faults and 208-245 MB with
 * one arena, and no less throughput. */
#define SERVER__HEAP_KEEP ((size_t)256 << 20)

typedef struct server__loop {
    berth_http_loop_t super; /* first: handlers reach it from req->conn->ctx */
    pthread_t tid;
    h2o_accept_ctx_t accept_ctx;
    h2o_socket_t *listener;
    h2o_multithread_receiver_t shutdown_receiver;
    h2o_multithread_message_t shutdown_msg;
    int shutting_down;
    uint64_t deadline;
    berth_bodywatch_t bodywatch; /* HTTP/2 bodies that stall (http/bodywatch.h) */
} server__loop_t;

typedef struct server__handler {
    h2o_handler_t super;
    berth_http_app_t *app;
} server__handler_t;

static struct {
    const berth_config_t *cfg;
    h2o_globalconf_t globalconf;
    berth_http_app_t app;
    berth_storage_t *storage;
    berth_engine_t *engine;
    berth_auth_t *auth;
    berth_registry_t *registry;
    berth_workq_t *workq;
    SSL_CTX *ssl_ctx;
    int listen_fd;
    int nloops;
    server__loop_t *loops;
    atomic_int ready;   /* loops that can take a shutdown message */
    atomic_int stopped; /* loops that have drained */
} server;

/* Where a request goes once http/auth.c let it through (`user` is set for
 * every request that needed credentials): the boundary parses it, then the
 * handler of its route answers. */
static void server__route(berth_http_app_t *app, h2o_req_t *req, const char *user)
{
    berth_route_input_t in;
    berth_route_t r;
    berth_http_error_t err = {0};
    int rc;

    berth_route_input_of(req, app->cfg, &in);
    rc = berth_route_parse(&in, &r, &err);
    if (r.api == BERTH_API_OCI)
        berth_http_header(req, "Docker-Distribution-API-Version", "registry/2.0");
    if (rc < 0)
        return berth_http_send_error(req, r.api, &err);
    switch (r.kind) {
    case BERTH_ROUTE_BASE:
        return berth_http_send_json(req, 200, json_object());
    case BERTH_ROUTE_UPLOAD_START:
    case BERTH_ROUTE_UPLOAD_MOUNT:
    case BERTH_ROUTE_UPLOAD_MONOLITHIC:
    case BERTH_ROUTE_UPLOAD_STATUS:
    case BERTH_ROUTE_UPLOAD_CHUNK:
    case BERTH_ROUTE_UPLOAD_FINISH:
    case BERTH_ROUTE_UPLOAD_CANCEL:
        return berth_upload_handle(app, req, &r);
    case BERTH_ROUTE_BLOB_GET:
        return berth_blob_handle(app, req, &r);
    case BERTH_ROUTE_SESSION_CREATE:
    case BERTH_ROUTE_SESSION_STATUS:
    case BERTH_ROUTE_SESSION_ABORT:
    case BERTH_ROUTE_SESSION_PART:
    case BERTH_ROUTE_SESSION_COMPLETE:
        /* http/auth.c lets nothing under /uploads through without a user. */
        return berth_sessions_handle(app, req, &r, user != NULL ? user : "");
    default:
        return berth_registry_handle(app, req, &r);
    }
}

static int server__on_req(h2o_handler_t *self, h2o_req_t *req)
{
    server__handler_t *h = (server__handler_t *)self;

    berth_auth_dispatch(h->app, req, server__route);
    return 0;
}

static void server__on_accept(h2o_socket_t *listener, const char *err)
{
    server__loop_t *loop = listener->data;
    h2o_socket_t *sock;

    if (err != NULL)
        return;
    /* Take what is waiting, bounded so one loop does not starve. */
    for (int i = 0; i < 16; i++) {
        if ((sock = h2o_evloop_socket_accept(listener)) == NULL)
            return;
        h2o_accept(&loop->accept_ctx, sock);
    }
}

static uint64_t server__now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void server__on_shutdown(h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages)
{
    server__loop_t *loop = H2O_STRUCT_FROM_MEMBER(server__loop_t, shutdown_receiver, receiver);

    while (!h2o_linklist_is_empty(messages))
        h2o_linklist_unlink(messages->next);
    if (loop->shutting_down)
        return;
    loop->shutting_down = 1;
    loop->deadline = server__now_ms() + server.cfg->http_shutdowntimeout_ms;
    if (loop->listener != NULL) {
        h2o_socket_read_stop(loop->listener);
        h2o_socket_close(loop->listener);
        loop->listener = NULL;
    }
    /* HTTP/2 connections get a GOAWAY; HTTP/1 ones close after their
     * current response. */
    h2o_context_request_shutdown(&loop->super.ctx);
}

/* A loop may stop once no request of its own is being worked on and no
 * HTTP/2 stream is still open, or at the shutdown deadline. */
static int server__drained(server__loop_t *loop)
{
    if (server__now_ms() >= loop->deadline) {
        if (loop->super.inflight != 0)
            berth_log_warn("shutdown timeout: %u request(s) still in flight", loop->super.inflight);
        return 1;
    }
    return loop->super.inflight == 0 && !berth_h2o_conns_busy(&loop->super.ctx);
}

static void *server__loop_main(void *arg)
{
    server__loop_t *loop = arg;
    h2o_evloop_t *evloop = h2o_evloop_create();
    int fd;

    h2o_context_init(&loop->super.ctx, evloop, &server.globalconf);
    berth_task_loop_init(&loop->super, server.workq);
    h2o_multithread_register_receiver(loop->super.ctx.queue, &loop->shutdown_receiver, server__on_shutdown);
    atomic_fetch_add(&server.ready, 1);

    loop->accept_ctx.ctx = &loop->super.ctx;
    loop->accept_ctx.hosts = server.globalconf.hosts;
    loop->accept_ctx.ssl_ctx = server.ssl_ctx;

    /* Without a listener of its own the loop accepts nothing, but still
     * takes part in the shutdown. */
    if ((fd = dup(server.listen_fd)) < 0) {
        berth_log_error("dup(listener): %s", strerror(errno));
    } else {
        loop->listener = h2o_evloop_socket_create(evloop, fd, H2O_SOCKET_FLAG_DONT_READ);
        loop->listener->data = loop;
        h2o_socket_read_start(loop->listener, server__on_accept);
    }

    for (;;) {
        h2o_evloop_run(evloop, 100);
        berth_bodywatch_sweep(&loop->bodywatch, &loop->super.ctx, server__now_ms(), server.cfg->http_timeout_ms);
        if (loop->shutting_down && server__drained(loop))
            break;
    }
    berth_bodywatch_dispose(&loop->bodywatch);
    h2o_multithread_unregister_receiver(loop->super.ctx.queue, &loop->shutdown_receiver);
    atomic_fetch_add(&server.stopped, 1);
    /* Park instead of exiting: h2o keeps per-thread allocation caches in
     * thread-local storage, which a thread exit would orphan; the process
     * exits from the main thread. */
    for (;;)
        pause();
    return NULL;
}

static int server__listen(const char *addr)
{
    char host[256];
    const char *colon = strrchr(addr, ':');
    const char *port;
    struct addrinfo hints = {0}, *res = NULL;
    int fd = -1, on = 1, r;

    if (colon == NULL || (size_t)(colon - addr) >= sizeof(host))
        return berth_error_set(BERTH_EINVALID, "http.addr: '%s' is not host:port", addr);
    memcpy(host, addr, (size_t)(colon - addr));
    host[colon - addr] = '\0';
    port = colon + 1;
    /* "[::1]:5000" */
    if (host[0] == '[' && host[strlen(host) - 1] == ']') {
        memmove(host, host + 1, strlen(host));
        host[strlen(host) - 1] = '\0';
    }
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    if ((r = getaddrinfo(host[0] != '\0' ? host : NULL, port, &hints, &res)) != 0)
        return berth_error_set(BERTH_EINVALID, "http.addr: %s: %s", addr, gai_strerror(r));
    if ((fd = socket(res->ai_family, res->ai_socktype | SOCK_CLOEXEC, 0)) < 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) != 0 ||
        bind(fd, res->ai_addr, res->ai_addrlen) != 0 || listen(fd, SOMAXCONN) != 0 ||
        fcntl(fd, F_SETFL, O_NONBLOCK) != 0) {
        int e = errno;
        if (fd >= 0)
            close(fd);
        freeaddrinfo(res);
        return berth_error_set(BERTH_EIO, "listen on %s: %s", addr, strerror(e));
    }
    freeaddrinfo(res);
    return fd;
}

static int server__setup_tls(const berth_config_t *cfg)
{
    if (cfg->http_tls_certificate == NULL)
        return 0;
    server.ssl_ctx = SSL_CTX_new(TLS_server_method());
    if (server.ssl_ctx == NULL)
        return berth_error_set(BERTH_ERR, "SSL_CTX_new failed");
    SSL_CTX_set_min_proto_version(server.ssl_ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(server.ssl_ctx, SSL_OP_NO_COMPRESSION);
    if (SSL_CTX_use_certificate_chain_file(server.ssl_ctx, cfg->http_tls_certificate) != 1) {
        char buf[256];
        ERR_error_string_n(ERR_get_error(), buf, sizeof(buf));
        return berth_error_set(BERTH_EINVALID, "http.tls.certificate %s: %s", cfg->http_tls_certificate, buf);
    }
    if (SSL_CTX_use_PrivateKey_file(server.ssl_ctx, cfg->http_tls_key, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(server.ssl_ctx) != 1) {
        char buf[256];
        ERR_error_string_n(ERR_get_error(), buf, sizeof(buf));
        return berth_error_set(BERTH_EINVALID, "http.tls.key %s: %s", cfg->http_tls_key, buf);
    }
    /* ALPN: h2 first, then http/1.1. */
    h2o_ssl_register_alpn_protocols(server.ssl_ctx, h2o_http2_alpn_protocols);
    return 0;
}

static int server__setup_h2o(const berth_config_t *cfg)
{
    h2o_hostconf_t *hostconf;
    h2o_pathconf_t *pathconf;
    server__handler_t *handler;

    h2o_config_init(&server.globalconf);
    server.globalconf.server_name = h2o_iovec_init(H2O_STRLIT("berth/" BERTH_VERSION));
    if (berth_h2o_set_max_body(&server.globalconf, cfg->http_maxchunksize) < cfg->http_maxchunksize)
        berth_log_warn("http.maxchunksize is %" PRIu64 " bytes, but on h2o %s an HTTP/2 request body stops at "
                       "2 GiB - 1 (its flow-control window) until berth streams bodies: send larger chunks over "
                       "HTTP/1.1",
                       cfg->http_maxchunksize, H2O_VERSION);
    /* HTTP/1's timeout covers the whole request, body included, and is not
     * re-armed as bytes arrive: it must fit the largest chunk at the slowest
     * link the operator supports. */
    berth_h2o_set_timeouts(&server.globalconf, cfg->http_timeout_ms);
    server.globalconf.http2.graceful_shutdown_timeout = cfg->http_shutdowntimeout_ms;
    server.globalconf.http2.max_concurrent_requests_per_connection = (size_t)cfg->http_h2_maxconcurrentstreams;

    mallopt(M_ARENA_MAX, 1);
    mallopt(M_MMAP_MAX, 0);
    mallopt(M_TRIM_THRESHOLD, (int)SERVER__HEAP_KEEP);
    mallopt(M_TOP_PAD, (int)(SERVER__HEAP_KEEP / 4));
    h2o_socket_buffer_mmap_settings.threshold = SERVER__MMAP_THRESHOLD;
    if ((size_t)snprintf(h2o_socket_buffer_mmap_settings.fn_template,
                         sizeof(h2o_socket_buffer_mmap_settings.fn_template), "%s/berth.body.XXXXXX",
                         cfg->http_bodybufferdir) >= sizeof(h2o_socket_buffer_mmap_settings.fn_template))
        return berth_error_set(BERTH_EINVALID, "http.bodybufferdir: path too long");
    if (access(cfg->http_bodybufferdir, W_OK) != 0)
        return berth_error_set(BERTH_EINVALID, "http.bodybufferdir: %s: %s", cfg->http_bodybufferdir,
                               strerror(errno));

    hostconf = h2o_config_register_host(&server.globalconf, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    pathconf = h2o_config_register_path(hostconf, "/", 0);
    handler = (server__handler_t *)h2o_create_handler(pathconf, sizeof(*handler));
    handler->super.on_req = server__on_req;
    handler->app = &server.app;

    if (cfg->log_accesslog != NULL && cfg->log_accesslog[0] != '\0') {
        const char *path = strcmp(cfg->log_accesslog, "-") == 0 ? "/dev/stdout" : cfg->log_accesslog;
        h2o_access_log_filehandle_t *fh = h2o_access_log_open_handle(
            path,
            "{\"time\":\"%{%Y-%m-%dT%H:%M:%S%z}t\",\"remote\":\"%h\",\"method\":\"%m\",\"path\":\"%U%q\","
            "\"protocol\":\"%H\",\"status\":%s,\"bytes_sent\":%b,\"duration\":\"%{duration}x\","
            "\"user_agent\":\"%{user-agent}i\"}",
            H2O_LOGCONF_ESCAPE_JSON);
        if (fh == NULL)
            return berth_error_set(BERTH_EINVALID, "log.accesslog: cannot open %s", path);
        h2o_access_log_register(pathconf, fh);
    }
    return 0;
}

static void server__purge(void)
{
    size_t n = 0;
    if (berth_engine_purge(server.engine, (int64_t)time(NULL), &n) != 0)
        berth_log_warn("purging expired sessions: %s", berth_error_last());
    else if (n != 0)
        berth_log_info("purged %zu expired upload session(s)", n);
}

/* Runs on the main thread: purges on schedule until a signal asks to stop. */
static void server__maintain(const sigset_t *sigs)
{
    for (;;) {
        struct timespec ts;
        uint64_t s = server.cfg->uploads_purgeinterval_s;
        ts.tv_sec = (time_t)(s > 86400 ? 86400 : s);
        ts.tv_nsec = 0;
        int sig = sigtimedwait(sigs, NULL, &ts);
        if (sig == SIGTERM || sig == SIGINT) {
            berth_log_info("received %s, shutting down", sig == SIGTERM ? "SIGTERM" : "SIGINT");
            return;
        }
        if (sig < 0 && errno == EAGAIN)
            server__purge();
    }
}

static int server__count_cpus(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

/* The storage, the engine, the registry and the credentials. 0, or the
 * exit code with the error logged. */
static int server__open(const berth_config_t *cfg)
{
    berth_engine_options_t eo = {.storage = NULL, .ttl_s = cfg->uploads_ttl_s,
                                 .max_part_size = cfg->http_maxchunksize, .hash_threads = server__count_cpus()};
    berth_registry_options_t ro = {.manifest_max = cfg->validation_manifests_maxsize};

    if (berth_storage_open(&server.storage, cfg) != 0) {
        berth_log_error("storage: %s", berth_error_last());
        return 1;
    }
    eo.storage = ro.storage = server.storage;
    if (berth_engine_new(&server.engine, &eo) != 0) {
        berth_log_error("engine: %s", berth_error_last());
        return 1;
    }
    ro.engine = server.engine;
    if (berth_registry_new(&server.registry, &ro) != 0) {
        berth_log_error("registry: %s", berth_error_last());
        return 1;
    }
    if (cfg->auth_htpasswd_path == NULL) {
        berth_log_warn("no auth configured: the OCI API (/v2/) is open to everyone and the sessions API "
                       "(/uploads/sessions) refuses every request; set auth.htpasswd.realm and .path");
        return 0;
    }
    if (berth_auth_new(&server.auth, cfg->auth_htpasswd_realm, cfg->auth_htpasswd_path) != 0) {
        berth_log_error("%s", berth_error_last());
        return 2;
    }
    berth_log_info("auth: htpasswd %s, %zu user(s), realm \"%s\"", cfg->auth_htpasswd_path,
                   berth_auth_users(server.auth), cfg->auth_htpasswd_realm);
    return 0;
}

/* Starts the loop threads; on failure the ones started still run (and
 * server.nloops counts them). */
static int server__start_loops(int nloops)
{
    int e;

    server.nloops = 0;
    if ((server.loops = calloc((size_t)nloops, sizeof(*server.loops))) == NULL)
        return berth_error_set(BERTH_ERR, "loop threads: out of memory");
    for (int i = 0; i < nloops; i++) {
        if ((e = pthread_create(&server.loops[i].tid, NULL, server__loop_main, &server.loops[i])) != 0)
            return berth_error_set(BERTH_ERR, "starting loop thread %d of %d: %s", i + 1, nloops, strerror(e));
        server.nloops++;
    }
    return 0;
}

/* Asks every loop thread started to drain and waits until they have. */
static void server__stop_loops(void)
{
    while (atomic_load(&server.ready) < server.nloops)
        usleep(1000);
    for (int i = 0; i < server.nloops; i++)
        h2o_multithread_send_message(&server.loops[i].shutdown_receiver, &server.loops[i].shutdown_msg);
    while (atomic_load(&server.stopped) < server.nloops)
        usleep(1000);
}

static void server__close(void)
{
    /* The workers finish what was queued before the engine goes away. */
    berth_workq_free(server.workq);
    server.workq = NULL;
    berth_auth_free(server.auth);
    server.auth = NULL;
    berth_registry_free(server.registry);
    server.registry = NULL;
    berth_engine_free(server.engine);
    server.engine = NULL;
    berth_storage_free(server.storage);
    server.storage = NULL;
    if (server.listen_fd >= 0)
        close(server.listen_fd);
    server.listen_fd = -1;
}

const char *berth_server_h2o_version(void)
{
    return H2O_VERSION;
}

const char *berth_server_h2o_origin(void)
{
    return BERTH_H2O_ORIGIN;
}

const char *berth_server_request_bodies(void)
{
    return BERTH_H2O_REQUEST_BODIES;
}

int berth_server_run(const berth_config_t *cfg)
{
    sigset_t sigs;
    int rc, nworkers;

    server.cfg = cfg;
    server.listen_fd = -1;
    berth_log_set_level(cfg->log_level);

    /* Every thread created from here on inherits the blocked set; only
     * server__maintain receives these signals. */
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    if ((rc = server__open(cfg)) != 0)
        goto done;
    server.app = (berth_http_app_t){.cfg = cfg, .engine = server.engine, .auth = server.auth,
                                    .registry = server.registry};
    rc = 2;
    if (server__setup_h2o(cfg) != 0 || server__setup_tls(cfg) != 0) {
        berth_log_error("%s", berth_error_last());
        goto done;
    }
    rc = 1;
    if ((server.listen_fd = server__listen(cfg->http_addr)) < 0) {
        berth_log_error("%s", berth_error_last());
        goto done;
    }
    nworkers = cfg->storage_workers > 0 ? cfg->storage_workers : 4 * server__count_cpus();
    if (berth_workq_new(&server.workq, nworkers) != 0) {
        berth_log_error("workers: %s", berth_error_last());
        goto done;
    }
    server__purge();

    if (server__start_loops(cfg->http_threads > 0 ? cfg->http_threads : server__count_cpus()) != 0) {
        berth_log_error("%s", berth_error_last());
        server__stop_loops();
        goto done;
    }
    berth_log_info("berth %s serving %s on %s (storage %s, %d loop thread(s), %d worker(s))", BERTH_VERSION,
                   server.ssl_ctx != NULL ? "https (h2, http/1.1)" : "http (http/1.1, h2c)", cfg->http_addr,
                   cfg->storage_driver, server.nloops, nworkers);
    server__maintain(&sigs);
    server__stop_loops();
    rc = 0;

done:
    server__close();
    if (rc == 0)
        berth_log_info("stopped");
    return rc;
}

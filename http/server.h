/*
 * The HTTP frontend: h2o event-loop threads, listeners, TLS, graceful
 * shutdown. Requests are parsed in http/route.c and answered by the
 * handler of their route (http/app.h).
 */
#ifndef BERTH_HTTP_SERVER_H
#define BERTH_HTTP_SERVER_H

#include "core/config.h"

/* Runs the server until SIGTERM/SIGINT; returns the process exit code. */
int berth_server_run(const berth_config_t *cfg);

/* The libh2o berth was built with, for `berth version`: its version
 * (H2O_VERSION, e.g. "2.3.0-DEV" or "2.2.5"), where it came from (e.g.
 * "built from h2o <commit>", "system libh2o-evloop 0.13.5"), and how request
 * bodies are received ("buffered whole"). Static strings. */
const char *berth_server_h2o_version(void);
const char *berth_server_h2o_origin(void);
const char *berth_server_request_bodies(void);

#endif

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

#endif

/*
 * berth's client commands, called from cmd/main.c with the arguments after
 * the command name. Each returns the process exit code: 0 success, 1 the
 * transfer failed (message on stderr), 2 usage error.
 *
 *   berth push FILE REGISTRY/REPO   OCI chunked (or --parts N) upload, prints the digest
 *   berth status URL                a session's state, in words or --json
 *   berth pull REGISTRY/REPO@DIGEST FILE   resumable download, digest verified
 */
#ifndef BERTH_CLIENT_CLIENT_H
#define BERTH_CLIENT_CLIENT_H

int berth_client_push(int argc, char **argv);
int berth_client_status(int argc, char **argv);
int berth_client_pull(int argc, char **argv);

/* The client part of `berth --help`. */
extern const char berth_client_usage[];

#endif

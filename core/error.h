/*
 * berth error codes and the per-thread last error.
 *
 * Every fallible berth function returns an int: 0 on success, one of the
 * named negative codes below for outcomes a caller is expected to handle, or
 * BERTH_ERR for anything else. The human-readable message (and, where there
 * is one, the raw errno) of the most recent failure on the calling thread is
 * kept by berth_error_set() and read back with berth_error_last().
 *
 * Mapping these codes to HTTP statuses and JSON bodies happens in exactly one
 * place: http/error.c.
 */
#ifndef BERTH_CORE_ERROR_H
#define BERTH_CORE_ERROR_H

#include <stdarg.h>

enum {
    BERTH_OK = 0,
    BERTH_ERR = -1,          /* unexpected failure (bug, out of memory) */
    BERTH_ENOTFOUND = -2,    /* no such session, blob, link or record */
    BERTH_EEXISTS = -3,      /* the object is already there */
    BERTH_EINVALID = -4,     /* malformed input or a corrupt stored record */
    BERTH_ERANGE = -5,       /* offset or range does not fit the session */
    BERTH_EIO = -6,          /* the storage failed to read or write */
    BERTH_EUNAVAILABLE = -7, /* the storage is unreachable; try again later */
    BERTH_EBUSY = -8,        /* another request holds the session */
    BERTH_EDIGEST = -9,      /* content does not match the given digest */
    BERTH_ETOOLARGE = -10,   /* over a configured size limit */
    BERTH_ENOSPACE = -11,    /* the storage is full */
    BERTH_ECONFLICT = -12,   /* a conditional write found the object changed */
};

/* Records the calling thread's last error and returns `code`, so that
 * `return berth_error_set(BERTH_EIO, "write %s: %s", path, strerror(errno));`
 * reads naturally. The message is truncated to 512 bytes. */
int berth_error_set(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int berth_error_setv(int code, const char *fmt, va_list ap);

/* The message of the calling thread's last berth_error_set(), or "" if none.
 * Valid until the next berth_error_set() on the same thread. */
const char *berth_error_last(void);

/* The code of the calling thread's last berth_error_set(), or 0. */
int berth_error_last_code(void);

/* Clears the calling thread's last error. */
void berth_error_clear(void);

/* A short stable name for a code ("not found", "i/o error", ...). */
const char *berth_error_name(int code);

#endif

/*
 * The per-thread last error. Each thread owns its buffer, so worker threads
 * and event loops never see each other's messages and need no locking.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "core/error.h"

#define ERROR__MSG_MAX 512

static _Thread_local struct {
    int code;
    char msg[ERROR__MSG_MAX];
} error__last;

int berth_error_setv(int code, const char *fmt, va_list ap)
{
    /* Format into a scratch buffer first: callers commonly wrap the previous
     * message ("open: %s", berth_error_last()), which points into error__last. */
    char tmp[ERROR__MSG_MAX];

    if (fmt == NULL) {
        tmp[0] = '\0';
    } else if (vsnprintf(tmp, sizeof(tmp), fmt, ap) < 0) {
        snprintf(tmp, sizeof(tmp), "%s", fmt);
    }
    memcpy(error__last.msg, tmp, sizeof(tmp));
    error__last.code = code;
    return code;
}

int berth_error_set(int code, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    berth_error_setv(code, fmt, ap);
    va_end(ap);
    return code;
}

const char *berth_error_last(void)
{
    return error__last.msg;
}

int berth_error_last_code(void)
{
    return error__last.code;
}

void berth_error_clear(void)
{
    error__last.code = 0;
    error__last.msg[0] = '\0';
}

const char *berth_error_name(int code)
{
    switch (code) {
    case BERTH_OK:
        return "ok";
    case BERTH_ERR:
        return "error";
    case BERTH_ENOTFOUND:
        return "not found";
    case BERTH_EEXISTS:
        return "exists";
    case BERTH_EINVALID:
        return "invalid";
    case BERTH_ERANGE:
        return "out of range";
    case BERTH_EIO:
        return "i/o error";
    case BERTH_EUNAVAILABLE:
        return "unavailable";
    case BERTH_EBUSY:
        return "busy";
    case BERTH_EDIGEST:
        return "digest mismatch";
    case BERTH_ETOOLARGE:
        return "too large";
    case BERTH_ENOSPACE:
        return "no space";
    case BERTH_ECONFLICT:
        return "conflict";
    default:
        return "unknown error";
    }
}

/* err.c — see err.h. */
#include "engine/err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static void err_vset(struct err *e, enum err_code code, const char *param,
                     const char *fmt, va_list ap)
{
    e->code = code;
    snprintf(e->param, sizeof e->param, "%s", param ? param : "");
    vsnprintf(e->msg, sizeof e->msg, fmt, ap);
}

bool err_set(struct err *e, enum err_code code, const char *fmt, ...)
{
    if (!e)
        return false;
    va_list ap;
    va_start(ap, fmt);
    err_vset(e, code, NULL, fmt, ap);
    va_end(ap);
    return false;
}

bool err_set_param(struct err *e, enum err_code code, const char *param,
                   const char *fmt, ...)
{
    if (!e)
        return false;
    va_list ap;
    va_start(ap, fmt);
    err_vset(e, code, param, fmt, ap);
    va_end(ap);
    return false;
}

bool err_wrap(struct err *e, const char *fmt, ...)
{
    if (!e)
        return false;
    char prefix[sizeof e->msg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    char joined[2 * sizeof e->msg + 2];
    snprintf(joined, sizeof joined, "%s: %s", prefix, e->msg);
    size_t n = strlen(joined);
    if (n >= sizeof e->msg)
        n = sizeof e->msg - 1; /* truncation is fine for a message */
    memcpy(e->msg, joined, n);
    e->msg[n] = '\0';
    return false;
}

void err_clear(struct err *e)
{
    if (e)
        memset(e, 0, sizeof *e);
}

const char *err_code_name(enum err_code code)
{
    switch (code) {
    case ERR_OK: return "ok";
    case ERR_INVALID: return "invalid";
    case ERR_UNAUTHENTICATED: return "unauthenticated";
    case ERR_FORBIDDEN: return "forbidden";
    case ERR_NOT_FOUND: return "not_found";
    case ERR_METHOD: return "method_not_allowed";
    case ERR_CONFLICT: return "conflict";
    case ERR_TOO_LARGE: return "too_large";
    case ERR_MEDIA_TYPE: return "unsupported_media_type";
    case ERR_UNPROCESSABLE: return "unprocessable";
    case ERR_RATE_LIMITED: return "rate_limited";
    case ERR_QUOTA: return "quota_exhausted";
    case ERR_OVERLOADED: return "overloaded";
    case ERR_UNAVAILABLE: return "unavailable";
    case ERR_TIMEOUT: return "timeout";
    case ERR_CORRUPT: return "corrupt";
    case ERR_UNSUPPORTED: return "unsupported";
    case ERR_IO: return "io";
    case ERR_NOMEM: return "nomem";
    case ERR_INTERNAL: return "internal";
    }
    return "unknown";
}

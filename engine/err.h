/*
 * err.h — errors as values, shared by every module of maasd.
 *
 * Contract
 *   A function that can fail takes a `struct err *` as its last argument,
 *   returns a value that says "failed" (false, -1, NULL) and, on failure,
 *   fills the err with a code and a human-readable message. Callers pass the
 *   err up unchanged (or re-word it with err_set) until it reaches the one
 *   place that renders errors for the outside world (api/render.c for HTTP,
 *   server/main.c for the CLI). No module prints an error itself.
 *
 *   The err is caller-owned storage; it holds no pointers, so it can be
 *   copied, stored in a request, and passed across threads freely.
 *
 *   `param` names the offending input (a JSON field, a setting, a GGUF key or
 *   tensor) when there is one; OpenAI's error object carries it as "param".
 */
#ifndef MAASD_ERR_H
#define MAASD_ERR_H

#include <stdbool.h>

enum err_code {
    ERR_OK = 0,
    ERR_INVALID,          /* the caller's input is wrong (HTTP 400) */
    ERR_UNAUTHENTICATED,  /* no or bad credentials (401) */
    ERR_FORBIDDEN,        /* credentials fine, action not allowed (403) */
    ERR_NOT_FOUND,        /* no such thing (404) */
    ERR_METHOD,           /* route exists, method does not (405) */
    ERR_CONFLICT,         /* state conflict, e.g. still in flight (409) */
    ERR_TOO_LARGE,        /* body or file over a limit (413) */
    ERR_MEDIA_TYPE,       /* unsupported Content-Type (415) */
    ERR_UNPROCESSABLE,    /* well-formed but unusable, e.g. idempotency misuse (422) */
    ERR_RATE_LIMITED,     /* over a rate limit (429 rate_limit_exceeded) */
    ERR_QUOTA,            /* plan quota exhausted (429 insufficient_quota) */
    ERR_OVERLOADED,       /* queue full, try later (503) */
    ERR_UNAVAILABLE,      /* not ready, shutting down (503) */
    ERR_TIMEOUT,          /* deadline passed (504) */
    ERR_CORRUPT,          /* a file (database, GGUF) is malformed */
    ERR_UNSUPPORTED,      /* valid but not implemented here (e.g. an architecture) */
    ERR_IO,               /* operating-system or database failure */
    ERR_NOMEM,            /* allocation or budget failure */
    ERR_INTERNAL,         /* a bug: an invariant did not hold (500) */
};

struct err {
    enum err_code code;
    char param[64];
    char msg[320];
};

/* Set code and printf-style message; returns false so callers can write
 * `return err_set(e, ERR_INVALID, "...")`. A NULL err is allowed. */
bool err_set(struct err *e, enum err_code code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Same, also naming the offending parameter. */
bool err_set_param(struct err *e, enum err_code code, const char *param,
                   const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Prefix the existing message with context ("loading model x: ..."). */
bool err_wrap(struct err *e, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

void err_clear(struct err *e);

/* Stable lower-case name of a code, e.g. "invalid". */
const char *err_code_name(enum err_code code);

#endif

/*
 * log.h — structured logs: one JSON object per line on stderr.
 *
 * Contract
 *   Every line has "time" (RFC 3339, UTC, milliseconds), "level" and "msg",
 *   then the caller's fields. A line is written with a single write(2), so
 *   lines from different threads never interleave. Lines below the configured
 *   level are dropped before any formatting work.
 *
 * Privacy
 *   Nothing here inspects what it is given: callers must never pass request
 *   or response bodies, prompts, completions, API keys or Authorization
 *   values (see docs/privacy.md). Field values are escaped as JSON strings.
 *
 * Threads
 *   log_set_level() is called once at start-up, before other threads exist;
 *   everything else is safe from any thread.
 */
#ifndef MAASD_LOG_H
#define MAASD_LOG_H

#include <stdbool.h>
#include <stdint.h>

enum log_level { LOG_DEBUG = 0, LOG_INFO, LOG_WARN, LOG_ERROR, LOG_OFF };

void log_set_level(enum log_level level);
bool log_enabled(enum log_level level);
/* "debug" | "info" | "warn" | "error" | "off"; false when unknown. */
bool log_level_parse(const char *s, enum log_level *out);

/* Fields are given as a NULL-terminated list of (key, kind, value) triples,
 * built with the macros below, e.g.
 *   log_line(LOG_INFO, "listening", LF_STR("host", h), LF_INT("port", p), LF_END);
 */
enum log_field_kind { LF_KIND_END = 0, LF_KIND_STR, LF_KIND_INT, LF_KIND_F64, LF_KIND_BOOL };
struct log_field {
    const char *key;
    enum log_field_kind kind;
    const char *s;
    int64_t i;
    double f;
};
#define LF_STR(k, v) ((struct log_field){.key = (k), .kind = LF_KIND_STR, .s = (v)})
#define LF_INT(k, v) ((struct log_field){.key = (k), .kind = LF_KIND_INT, .i = (int64_t)(v)})
#define LF_F64(k, v) ((struct log_field){.key = (k), .kind = LF_KIND_F64, .f = (double)(v)})
#define LF_BOOL(k, v) ((struct log_field){.key = (k), .kind = LF_KIND_BOOL, .i = (v) ? 1 : 0})
#define LF_END ((struct log_field){.key = NULL, .kind = LF_KIND_END})

void log_line(enum log_level level, const char *msg, ...);

/* Current time as RFC 3339 UTC with milliseconds into buf (>= 32 bytes). */
void log_time_rfc3339(char *buf, unsigned long size);

#endif

/* log.c — see log.h. */
#include "server/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Written once before threads start (log.h), read-only afterwards. */
static enum log_level log_min_level = LOG_INFO;

void log_set_level(enum log_level level) { log_min_level = level; }

bool log_enabled(enum log_level level) { return level >= log_min_level && level < LOG_OFF; }

bool log_level_parse(const char *s, enum log_level *out)
{
    static const char *const names[] = {"debug", "info", "warn", "error", "off"};
    for (int i = 0; i <= LOG_OFF; i++) {
        if (strcmp(s, names[i]) == 0) {
            *out = (enum log_level)i;
            return true;
        }
    }
    return false;
}

void log_time_rfc3339(char *buf, unsigned long size)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    snprintf(buf, size, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
             ts.tv_nsec / 1000000);
}

struct line {
    char buf[4096];
    size_t len;
};

static void put(struct line *l, const char *s, size_t n)
{
    /* Leave room for the closing "}\n"; a longer line is cut, never overrun. */
    if (l->len + n > sizeof l->buf - 3)
        n = sizeof l->buf - 3 - l->len;
    memcpy(l->buf + l->len, s, n);
    l->len += n;
}

static void put_str(struct line *l, const char *s)
{
    put(l, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)s; p && *p; p++) {
        char esc[8];
        if (*p == '"' || *p == '\\') {
            esc[0] = '\\';
            esc[1] = (char)*p;
            put(l, esc, 2);
        } else if (*p < 0x20) {
            int n = snprintf(esc, sizeof esc, "\\u%04x", *p);
            put(l, esc, (size_t)n);
        } else {
            put(l, (const char *)p, 1);
        }
    }
    put(l, "\"", 1);
}

static const char *level_name(enum log_level level)
{
    switch (level) {
    case LOG_DEBUG: return "debug";
    case LOG_INFO: return "info";
    case LOG_WARN: return "warn";
    case LOG_ERROR: return "error";
    default: return "off";
    }
}

void log_line(enum log_level level, const char *msg, ...)
{
    if (!log_enabled(level))
        return;
    struct line l = {.len = 0};
    char ts[40];
    log_time_rfc3339(ts, sizeof ts);
    put(&l, "{\"time\":", 8);
    put_str(&l, ts);
    put(&l, ",\"level\":", 9);
    put_str(&l, level_name(level));
    put(&l, ",\"msg\":", 7);
    put_str(&l, msg);

    va_list ap;
    va_start(ap, msg);
    for (;;) {
        struct log_field f = va_arg(ap, struct log_field);
        if (f.kind == LF_KIND_END)
            break;
        put(&l, ",", 1);
        put_str(&l, f.key);
        put(&l, ":", 1);
        char num[64];
        int n = 0;
        switch (f.kind) {
        case LF_KIND_STR:
            if (f.s)
                put_str(&l, f.s);
            else
                put(&l, "null", 4);
            break;
        case LF_KIND_INT:
            n = snprintf(num, sizeof num, "%lld", (long long)f.i);
            put(&l, num, (size_t)n);
            break;
        case LF_KIND_F64:
            n = snprintf(num, sizeof num, "%.6g", f.f);
            put(&l, num, (size_t)n);
            break;
        case LF_KIND_BOOL:
            put(&l, f.i ? "true" : "false", f.i ? 4 : 5);
            break;
        case LF_KIND_END:
            break;
        }
    }
    va_end(ap);
    l.buf[l.len++] = '}';
    l.buf[l.len++] = '\n';
    /* One write: lines from several threads never interleave. A failed log
     * write has nowhere better to go. */
    ssize_t w = write(STDERR_FILENO, l.buf, l.len);
    (void)w;
}

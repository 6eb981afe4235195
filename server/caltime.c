/* caltime.c — see caltime.h. */
#include "server/caltime.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool caltime_is_leap(int y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

int caltime_days_in_month(int year, int month)
{
    static const int days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return month == 2 && caltime_is_leap(year) ? 29 : days[month - 1];
}

/* Days from 1970-01-01, counting in 400-year eras (146097 days each) of
 * March-based years so that the leap day is the last day of a year. */
int64_t caltime_days_from_date(struct caltime_date d)
{
    int64_t y = d.year - (d.month <= 2);
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;                                   /* [0, 399] */
    int64_t mp = (d.month + 9) % 12;                               /* March = 0 */
    int64_t doy = (153 * mp + 2) / 5 + d.day - 1;                  /* [0, 365] */
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;           /* [0, 146096] */
    return era * 146097 + doe - 719468;
}

struct caltime_date caltime_date_from_days(int64_t z)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t y = yoe + era * 400;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    int64_t d = doy - (153 * mp + 2) / 5 + 1;
    int64_t m = mp < 10 ? mp + 3 : mp - 9;
    return (struct caltime_date){(int)(y + (m <= 2)), (int)m, (int)d};
}

int64_t caltime_day_of(int64_t ms)
{
    int64_t q = ms / CALTIME_DAY_MS;
    return ms % CALTIME_DAY_MS < 0 ? q - 1 : q;
}

struct caltime_date caltime_date_of(int64_t ms) { return caltime_date_from_days(caltime_day_of(ms)); }

int64_t caltime_ms_from_date(struct caltime_date d)
{
    return caltime_days_from_date(d) * CALTIME_DAY_MS;
}

int64_t caltime_anchor_boundary(int year, int month, int anchor_day)
{
    int dim = caltime_days_in_month(year, month);
    struct caltime_date d = {year, month, anchor_day < dim ? anchor_day : dim};
    return caltime_ms_from_date(d);
}

static int64_t boundary_of_index(int64_t month_index, int anchor_day)
{
    int64_t y = month_index >= 0 ? month_index / 12 : -((-month_index + 11) / 12);
    int m = (int)(month_index - y * 12) + 1;
    return caltime_anchor_boundary((int)y, m, anchor_day);
}

void caltime_period_containing(int anchor_day, int anchor_month, int interval_months, int64_t t,
                               int64_t *start, int64_t *end)
{
    int n = interval_months < 1 ? 1 : interval_months;
    struct caltime_date d = caltime_date_of(t);
    int64_t mi = (int64_t)d.year * 12 + (d.month - 1);
    /* The latest month index at or before t's month that is a boundary month. */
    int64_t off = (mi - (anchor_month - 1)) % n;
    if (off < 0)
        off += n;
    int64_t k = mi - off;
    if (boundary_of_index(k, anchor_day) > t)
        k -= n;
    *start = boundary_of_index(k, anchor_day);
    *end = boundary_of_index(k + n, anchor_day);
}

static bool digits(const char *s, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return true;
}

bool caltime_parse(const char *s, int64_t *out_ms, struct err *e)
{
    if (!s || !*s)
        return err_set(e, ERR_INVALID, "empty time");
    size_t len = strlen(s);
    if (strspn(s, "0123456789") == len) {
        errno = 0;
        long long v = strtoll(s, NULL, 10);
        if (errno)
            return err_set(e, ERR_INVALID, "time out of range: '%s'", s);
        *out_ms = v;
        return true;
    }
    struct caltime_date d;
    int hh = 0, mi = 0, ss = 0, ms = 0;
    bool ok = len >= 10 && digits(s, 4, &d.year) && s[4] == '-' && digits(s + 5, 2, &d.month) &&
              s[7] == '-' && digits(s + 8, 2, &d.day);
    const char *p = s + 10;
    if (ok && *p) {
        ok = (*p == 'T' || *p == ' ') && digits(p + 1, 2, &hh) && p[3] == ':' &&
             digits(p + 4, 2, &mi) && p[6] == ':' && digits(p + 7, 2, &ss);
        p += ok ? 9 : 0;
        if (ok && *p == '.') {
            ok = digits(p + 1, 3, &ms);
            p += 4;
        }
        ok = ok && strcmp(p, "Z") == 0;
    }
    if (!ok || d.month < 1 || d.month > 12 || d.day < 1 ||
        d.day > caltime_days_in_month(d.year, d.month) || hh > 23 || mi > 59 || ss > 59)
        return err_set(e, ERR_INVALID,
                       "not a UTC time: '%s' (use 2025-01-31, 2025-01-31T12:00:00Z or "
                       "milliseconds since the epoch)", s);
    *out_ms = caltime_ms_from_date(d) + ((int64_t)hh * 3600 + mi * 60 + ss) * 1000 + ms;
    return true;
}

void caltime_format(int64_t ms, char *buf, size_t size)
{
    int64_t day = caltime_day_of(ms);
    int64_t rest = ms - day * CALTIME_DAY_MS;
    struct caltime_date d = caltime_date_from_days(day);
    snprintf(buf, size, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", d.year, d.month, d.day,
             (int)(rest / 3600000), (int)(rest / 60000 % 60), (int)(rest / 1000 % 60),
             (int)(rest % 1000));
}

bool caltime_parse_duration(const char *s, int64_t *out_ms, struct err *e)
{
    static const struct { const char *sfx; int64_t mul; } units[] = {
        {"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}, {"d", CALTIME_DAY_MS}};
    char *end = NULL;
    errno = 0;
    long long v = s && *s >= '0' && *s <= '9' ? strtoll(s, &end, 10) : -1;
    if (v >= 0 && !errno) {
        for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
            if (strcmp(end, units[i].sfx) == 0 && v <= INT64_MAX / units[i].mul) {
                *out_ms = v * units[i].mul;
                return true;
            }
        }
    }
    return err_set(e, ERR_INVALID, "not a duration: '%s' (use 500ms, 30s, 5m, 24h or 30d)",
                   s ? s : "");
}

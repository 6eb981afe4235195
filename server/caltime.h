/*
 * caltime.h — calendar arithmetic on UTC milliseconds: civil dates,
 * billing-period boundaries, and the text forms the CLI and API accept.
 *
 * Why a module: billing periods are calendar months (or years), not fixed
 * durations, and get their edge cases wrong quietly (a subscription
 * anchored on the 31st, February in a leap year). Everything here is pure
 * integer arithmetic on the proleptic Gregorian calendar in UTC: no time
 * zones, no libc tm, no floating point, any thread.
 *
 * Billing periods
 *   A subscription has an anchor day (1..31), an anchor month (1..12) and
 *   an interval of n months (1 = monthly, 12 = yearly). Its boundaries are
 *   00:00:00.000 UTC on the anchor day — clamped to the last day of shorter
 *   months — of every month m for which (m - anchor month) is a multiple of
 *   n. Anchored on the 31st, a monthly subscription renews on Jan 31,
 *   Feb 28 (29 in leap years), Mar 31, Apr 30, ... : the clamp never
 *   drifts the anchor. Periods are half-open [start, end).
 */
#ifndef MAASD_CALTIME_H
#define MAASD_CALTIME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/err.h"

#define CALTIME_DAY_MS 86400000LL

struct caltime_date {
    int year;
    int month;   /* 1..12 */
    int day;     /* 1..31 */
};

bool caltime_is_leap(int year);
int caltime_days_in_month(int year, int month);
/* Days since 1970-01-01 for a civil date, and back. */
int64_t caltime_days_from_date(struct caltime_date d);
struct caltime_date caltime_date_from_days(int64_t days);
/* Floor division of ms into days (correct for times before 1970 too). */
int64_t caltime_day_of(int64_t ms);
struct caltime_date caltime_date_of(int64_t ms);
int64_t caltime_ms_from_date(struct caltime_date d);

/* 00:00 UTC on `anchor_day` (clamped) of the given month. */
int64_t caltime_anchor_boundary(int year, int month, int anchor_day);

/* The billing period containing t. interval_months >= 1. */
void caltime_period_containing(int anchor_day, int anchor_month, int interval_months, int64_t t,
                               int64_t *start, int64_t *end);

/* "2025-01-31", "2025-01-31T12:00:00Z", "2025-01-31T12:00:00.250Z", or an
 * integer of milliseconds since the epoch. */
bool caltime_parse(const char *s, int64_t *out_ms, struct err *e);
/* "2025-01-31T12:00:00.250Z" (buf >= 32 bytes). */
void caltime_format(int64_t ms, char *buf, size_t size);
/* "500ms", "30s", "5m", "24h", "30d" (a unit is required). */
bool caltime_parse_duration(const char *s, int64_t *out_ms, struct err *e);

#endif

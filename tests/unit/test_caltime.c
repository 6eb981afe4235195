/* test_caltime.c — calendar arithmetic and billing periods
 * (server/caltime.c), money text (server/money.c). */
#include "tests/unit/testutil.h"

#include <string.h>

#include "server/caltime.h"
#include "server/money.h"

static int64_t at(const char *s)
{
    int64_t ms = 0;
    struct err e = {0};
    if (!caltime_parse(s, &ms, &e))
        fail_msg("%s", e.msg);
    return ms;
}

static void test_civil_round_trip(void **state)
{
    (void)state;
    assert_int_equal(caltime_days_from_date((struct caltime_date){1970, 1, 1}), 0);
    assert_int_equal(caltime_days_from_date((struct caltime_date){2000, 3, 1}), 11017);
    assert_int_equal(caltime_days_from_date((struct caltime_date){1969, 12, 31}), -1);
    /* Every day from 1900 to 2200 converts back to itself. */
    for (int64_t d = -25567; d < 84000; d++) {
        struct caltime_date c = caltime_date_from_days(d);
        assert_int_equal(caltime_days_from_date(c), d);
        assert_true(c.day >= 1 && c.day <= caltime_days_in_month(c.year, c.month));
    }
    assert_true(caltime_is_leap(2024));
    assert_true(caltime_is_leap(2000));
    assert_false(caltime_is_leap(1900));
    assert_false(caltime_is_leap(2100));
    assert_int_equal(caltime_days_in_month(2024, 2), 29);
    assert_int_equal(caltime_days_in_month(2025, 2), 28);
    assert_int_equal(caltime_day_of(-1), -1);
}

static void test_parse_and_format(void **state)
{
    (void)state;
    struct err e = {0};
    assert_int_equal(at("1970-01-01"), 0);
    assert_int_equal(at("2025-01-31T12:00:00Z"), 1738324800000LL);
    assert_int_equal(at("2025-01-31T12:00:00.250Z"), 1738324800250LL);
    assert_int_equal(at("1738324800250"), 1738324800250LL);
    char buf[32];
    caltime_format(1738324800250LL, buf, sizeof buf);
    assert_string_equal(buf, "2025-01-31T12:00:00.250Z");
    int64_t v;
    assert_false(caltime_parse("2025-02-29", &v, &e)); /* not a leap year */
    assert_true(caltime_parse("2024-02-29", &v, &e));
    assert_false(caltime_parse("2025-13-01", &v, &e));
    assert_false(caltime_parse("2025-01-01T10:00:00", &v, &e)); /* no zone: refused */
    assert_false(caltime_parse("yesterday", &v, &e));
    assert_true(caltime_parse_duration("24h", &v, &e));
    assert_int_equal(v, 86400000);
    assert_true(caltime_parse_duration("30d", &v, &e));
    assert_int_equal(v, 30 * 86400000LL);
    assert_false(caltime_parse_duration("30", &v, &e));
    assert_false(caltime_parse_duration("-1s", &v, &e));
}

static void expect_period(int day, int month, int interval, const char *t, const char *start,
                          const char *end)
{
    int64_t s, en;
    caltime_period_containing(day, month, interval, at(t), &s, &en);
    char bs[32], be[32];
    caltime_format(s, bs, sizeof bs);
    caltime_format(en, be, sizeof be);
    if (s != at(start) || en != at(end))
        fail_msg("anchor %d/%d every %d months, t=%s: got [%s, %s), want [%s, %s)", day, month,
                 interval, t, bs, be, start, end);
}

static void test_monthly_periods_anchor_31(void **state)
{
    (void)state;
    /* Anchored on the 31st: renews on the last day of shorter months, and
     * returns to the 31st afterwards (no drift). */
    expect_period(31, 1, 1, "2025-01-31T00:00:00Z", "2025-01-31", "2025-02-28");
    expect_period(31, 1, 1, "2025-02-27T23:59:59.999Z", "2025-01-31", "2025-02-28");
    expect_period(31, 1, 1, "2025-02-28T00:00:00Z", "2025-02-28", "2025-03-31");
    expect_period(31, 1, 1, "2025-03-30T12:00:00Z", "2025-02-28", "2025-03-31");
    expect_period(31, 1, 1, "2025-04-15", "2025-03-31", "2025-04-30");
    expect_period(31, 1, 1, "2025-12-31", "2025-12-31", "2026-01-31");
    /* Leap year: February 29th. */
    expect_period(31, 1, 1, "2024-02-10", "2024-01-31", "2024-02-29");
    expect_period(31, 1, 1, "2024-02-29T08:00:00Z", "2024-02-29", "2024-03-31");
    expect_period(30, 1, 1, "2024-02-29", "2024-02-29", "2024-03-30");
    expect_period(29, 1, 1, "2025-03-01", "2025-02-28", "2025-03-29");
    /* An ordinary anchor. */
    expect_period(15, 1, 1, "2025-06-15", "2025-06-15", "2025-07-15");
    expect_period(15, 1, 1, "2025-06-14T23:59:59.999Z", "2025-05-15", "2025-06-15");
    expect_period(1, 1, 1, "2025-01-01", "2025-01-01", "2025-02-01");
}

static void test_yearly_periods(void **state)
{
    (void)state;
    /* Yearly from Feb 29th: Feb 28th in common years. */
    expect_period(29, 2, 12, "2024-02-29", "2024-02-29", "2025-02-28");
    expect_period(29, 2, 12, "2025-03-01", "2025-02-28", "2026-02-28");
    expect_period(29, 2, 12, "2028-02-29", "2028-02-29", "2029-02-28");
    expect_period(29, 2, 12, "2028-02-28", "2027-02-28", "2028-02-29");
    expect_period(10, 11, 12, "2025-01-01", "2024-11-10", "2025-11-10");
    /* Before the epoch still works (floor, not truncation). */
    expect_period(1, 1, 1, "1969-12-15", "1969-12-01", "1970-01-01");
}

static void test_money(void **state)
{
    (void)state;
    struct err e = {0};
    int64_t m;
    assert_true(money_parse("20", &m, &e));
    assert_int_equal(m, 20000000);
    assert_true(money_parse("0.50", &m, &e));
    assert_int_equal(m, 500000);
    assert_true(money_parse("0.000001", &m, &e));
    assert_int_equal(m, 1);
    assert_true(money_parse("-3.5", &m, &e));
    assert_int_equal(m, -3500000);
    assert_false(money_parse("0.0000001", &m, &e));
    assert_false(money_parse("1,50", &m, &e));
    assert_false(money_parse("5.", &m, &e));
    assert_false(money_parse(".5", &m, &e));
    assert_false(money_parse("", &m, &e));
    assert_false(money_parse("99999999999999", &m, &e));
    char buf[32];
    money_format(20500000, buf, sizeof buf);
    assert_string_equal(buf, "20.50");
    money_format(1, buf, sizeof buf);
    assert_string_equal(buf, "0.000001");
    money_format(-3000000, buf, sizeof buf);
    assert_string_equal(buf, "-3.00");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_civil_round_trip),
        cmocka_unit_test(test_parse_and_format),
        cmocka_unit_test(test_monthly_periods_anchor_31),
        cmocka_unit_test(test_yearly_periods),
        cmocka_unit_test(test_money),
    };
    return cmocka_run_group_tests_name("caltime", tests, NULL, NULL);
}

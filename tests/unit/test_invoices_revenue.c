/* test_invoices_revenue.c — the month's revenue summary (server/revenue.c)
 * on hand-built subscriptions; docs/finance.md's revenue example is this
 * test's March 2031.
 *
 *   A  basic ($10/month) from 2031-02-10        invoice [Feb 10, Mar 10) is March's
 *   B  team ($50/month) from 2031-03-05         new in March
 *   C  basic from 2031-01-10, canceled 2031-03-20 at once: churned
 *   D  annual ($1000/year) from 2031-03-10      new; counts 1000/12 in MRR
 *   E  pro from 2031-03-25, trialing at the end of March: new, not in MRR */
#include "tests/unit/testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/revenue.h"
#include "tests/unit/finance_fixture.h"

static void monthly(struct fixture *f, const char *id, int64_t fee, int64_t included)
{
    char json[768];
    snprintf(json, sizeof json,
             "{\"billing_interval\":\"month\",\"base_fee_micros\":%lld,\"included_tokens\":%lld,"
             "\"price_input_per_1m_micros\":1000000,\"price_output_per_1m_micros\":2000000,"
             "\"price_per_request_micros\":0,\"requests_per_minute\":1000,"
             "\"tokens_per_minute\":10000000,\"max_concurrent_requests\":10,"
             "\"max_tokens_per_request\":4096,\"trial_days\":0,\"hard_cap\":false,"
             "\"effective_from\":%lld}",
             (long long)fee, (long long)included, (long long)ff_at("2031-01-01"));
    ff_plan(f, id, json);
}

static const cJSON *find(const cJSON *array, const char *k1, const char *v1, const char *k2,
                         const char *v2)
{
    const cJSON *it;
    cJSON_ArrayForEach(it, array) {
        if (strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(it, k1)), v1) == 0 &&
            (!k2 || strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(it, k2)), v2) == 0))
            return it;
    }
    fail_msg("no %s=%s %s=%s", k1, v1, k2 ? k2 : "", v2 ? v2 : "");
    return NULL;
}

static int64_t num(const cJSON *o, const char *k)
{
    const cJSON *n = cJSON_GetObjectItem(o, k);
    if (!cJSON_IsNumber(n))
        fail_msg("no number %s", k);
    return (int64_t)n->valuedouble;
}

static void test_march(void **state)
{
    (void)state;
    struct fixture f;
    fixture_open(&f);
    monthly(&f, "basic", 10000000, 1000000);
    monthly(&f, "team", 50000000, 5000000);
    char json[768];
    snprintf(json, sizeof json,
             "{\"billing_interval\":\"year\",\"base_fee_micros\":1000000000,"
             "\"included_tokens\":100000000,\"price_input_per_1m_micros\":500000,"
             "\"price_output_per_1m_micros\":1000000,\"price_per_request_micros\":0,"
             "\"requests_per_minute\":1000,\"tokens_per_minute\":10000000,"
             "\"max_concurrent_requests\":10,\"max_tokens_per_request\":4096,\"trial_days\":0,"
             "\"hard_cap\":false,\"effective_from\":%lld}",
             (long long)ff_at("2031-01-01"));
    ff_plan(&f, "annual", json);
    char a[40], ka[40], b[40], kb[40], c[40], kc[40], d[40], kd[40], e_[40], ke[40];
    ff_customer(&f, "A", a, ka);
    ff_customer(&f, "B", b, kb);
    ff_customer(&f, "C", c, kc);
    ff_customer(&f, "D", d, kd);
    ff_customer(&f, "E", e_, ke);
    ff_subscribe(&f, c, "basic", ff_at("2031-01-10"));
    ff_subscribe(&f, a, "basic", ff_at("2031-02-10"));
    ff_subscribe(&f, b, "team", ff_at("2031-03-05"));
    ff_subscribe(&f, d, "annual", ff_at("2031-03-10"));
    ff_cancel(&f, c, false, ff_at("2031-03-20"));
    ff_subscribe(&f, e_, "pro", ff_at("2031-03-25"));
    ff_row(&f, "ra1", a, ka, "basic", ff_at("2031-03-05"), 100000, 10000, 0);
    ff_row(&f, "ra2", a, ka, "basic", ff_at("2031-03-06"), 100000, 10000, 0);
    ff_row(&f, "rb1", b, kb, "team", ff_at("2031-03-07"), 1000000, 0, 0);

    cJSON *s = NULL;
    struct err e = {0};
    assert_true(revenue_summary(f.db, "2031-03", ff_at("2031-04-02"), &s, &e));
    assert_false(cJSON_IsTrue(cJSON_GetObjectItem(s, "closed")));
    const cJSON *subs = cJSON_GetObjectItem(s, "active_subscriptions");
    assert_int_equal(cJSON_GetArraySize(subs), 4);
    assert_int_equal(num(find(subs, "tier", "basic", "plan", "basic@1"), "paying"), 1);
    assert_int_equal(num(find(subs, "tier", "team", NULL, NULL), "paying"), 1);
    assert_int_equal(num(find(subs, "tier", "annual", NULL, NULL), "paying"), 1);
    assert_int_equal(num(find(subs, "tier", "pro", NULL, NULL), "trialing"), 1);
    assert_int_equal(num(find(subs, "tier", "pro", NULL, NULL), "paying"), 0);
    const cJSON *cus = cJSON_GetObjectItem(s, "customers");
    assert_int_equal(num(cus, "new"), 3);
    assert_int_equal(num(cus, "churned"), 1);
    assert_int_equal(num(cus, "active_at_end"), 4);
    /* MRR = 10 + 50 + 1000/12 = 143.333333…; ARR = 12 × 60 + 1000. */
    const cJSON *usd = find(cJSON_GetObjectItem(s, "recurring_revenue"), "currency", "USD", NULL, NULL);
    assert_int_equal(num(usd, "mrr_micros"), 143333333);
    assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(usd, "mrr")), "143.333333");
    assert_int_equal(num(usd, "arr_micros"), 1720000000);
    assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(usd, "arr")), "1720.00");
    const cJSON *usage = cJSON_GetObjectItem(s, "usage_by_tier");
    assert_int_equal(num(find(usage, "tier", "basic", NULL, NULL), "requests"), 2);
    assert_int_equal(num(find(usage, "tier", "basic", NULL, NULL), "input_tokens"), 200000);
    assert_int_equal(num(find(usage, "tier", "team", NULL, NULL), "input_tokens"), 1000000);
    /* March's invoices: A [Feb 10, Mar 10), C [Feb 10, Mar 10) and C's
     * last [Mar 10, Mar 20) with 21 of 31 days credited back. */
    const cJSON *billed = cJSON_GetObjectItem(s, "billed_by_tier");
    const cJSON *base = find(billed, "tier", "basic", "line_type", "base_fee");
    assert_int_equal(num(base, "lines"), 3);
    assert_int_equal(num(base, "amount_micros"), 30000000);
    assert_int_equal(num(find(billed, "tier", "basic", "line_type", "proration_credit"),
                         "amount_micros"), -6770000);
    const cJSON *tot = find(cJSON_GetObjectItem(s, "billed_totals"), "currency", "USD", NULL, NULL);
    assert_int_equal(num(tot, "invoices"), 3);
    assert_int_equal(num(tot, "drafts"), 3);
    assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(tot, "total")), "23.23");

    size_t len = 0;
    char *csv = revenue_csv(s, &len);
    assert_non_null(strstr(csv, "section,tier,plan,line_type,currency,metric,value\r\n"));
    assert_non_null(strstr(csv, "recurring,,,,USD,mrr,143.333333\r\n"));
    assert_non_null(strstr(csv, "subscriptions,pro,pro@1,,,trialing,1\r\n"));
    assert_non_null(strstr(csv, "billed,basic,,proration_credit,USD,amount,-6.77\r\n"));
    assert_non_null(strstr(csv, "customers,,,,,churned,1\r\n"));
    free(csv);
    cJSON_Delete(s);

    /* Closed, the same month reports finalized invoices. */
    ff_close(&f, "2031-01", ff_at("2031-04-05"));
    ff_close(&f, "2031-02", ff_at("2031-04-05"));
    ff_close(&f, "2031-03", ff_at("2031-04-05"));
    assert_true(revenue_summary(f.db, "2031-03", ff_at("2031-04-05"), &s, &e));
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(s, "closed")));
    tot = find(cJSON_GetObjectItem(s, "billed_totals"), "currency", "USD", NULL, NULL);
    assert_int_equal(num(tot, "finalized"), 3);
    assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(tot, "total")), "23.23");
    cJSON_Delete(s);
    assert_false(revenue_summary(f.db, "March", 0, &s, &e));
    assert_string_equal(e.param, "period");
    fixture_close(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_march),
    };
    return cmocka_run_group_tests_name("invoices_revenue", tests, NULL, NULL);
}

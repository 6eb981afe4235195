/* test_invoices.c — hand-computed invoices on a real database
 * (server/invoices.c). Every figure here is also a worked example in
 * docs/finance.md: change one, change the other.
 *
 * Plans used (all in USD, versions effective 2031-01-01):
 *   basic  monthly  $10   1 000 000 tokens included, $1.00 in / $2.00 out per 1M
 *   team   monthly  $50   5 000 000 tokens included, $0.80 in / $1.60 out per 1M
 *   metered monthly $0      100 000 tokens included, $1.00 / $2.00 per 1M, $0.0025 a request;
 *          version 2 from 2031-03-16: $2.00 / $4.00 per 1M, $0.0030 a request
 *   pro and enterprise: the seeded plans (docs/billing.md). */
#include "tests/unit/testutil.h"

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/caltime.h"
#include "server/credits.h"
#include "server/invoices.h"
#include "server/plans.h"
#include "server/sq.h"
#include "server/store.h"
#include "tests/unit/finance_fixture.h"

#define GRACE (72 * 3600000LL)

static void plan(struct fixture *f, const char *id, int64_t fee, int64_t included, int64_t in,
                 int64_t out, int64_t per_request, const char *effective)
{
    char json[1024];
    snprintf(json, sizeof json,
             "{\"billing_interval\":\"month\",\"base_fee_micros\":%lld,\"included_tokens\":%lld,"
             "\"price_input_per_1m_micros\":%lld,\"price_output_per_1m_micros\":%lld,"
             "\"price_per_request_micros\":%lld,\"requests_per_minute\":1000,"
             "\"tokens_per_minute\":10000000,\"max_concurrent_requests\":10,"
             "\"max_tokens_per_request\":4096,\"trial_days\":0,\"hard_cap\":false,"
             "\"effective_from\":%lld}",
             (long long)fee, (long long)included, (long long)in, (long long)out,
             (long long)per_request, (long long)ff_at(effective));
    ff_plan(f, id, json);
}

static void plans(struct fixture *f)
{
    plan(f, "basic", 10000000, 1000000, 1000000, 2000000, 0, "2031-01-01");
    plan(f, "team", 50000000, 5000000, 800000, 1600000, 0, "2031-01-01");
    plan(f, "metered", 0, 100000, 1000000, 2000000, 2500, "2031-01-01");
    plan(f, "metered", 0, 100000, 2000000, 4000000, 3000, "2031-03-16");
}

static void check_sums(const struct invoice *inv)
{
    int64_t sum = 0;
    for (int i = 0; i < inv->n_lines; i++) {
        sum += inv->lines[i].amount_micros;
        assert_int_equal(inv->lines[i].amount_micros % 10000, 0); /* whole cents */
    }
    assert_int_equal(sum, inv->total_micros);
}

/* docs/billing.md's "A pro customer's month", as an invoice: the same
 * $21.05 as plans_rate(), here with whole cents on every line. */
static void test_pro_month(void **state)
{
    (void)state;
    struct fixture f;
    fixture_open(&f);
    char cus[40], key[40];
    ff_customer(&f, "Pro", cus, key);
    ff_subscribe(&f, cus, "pro", ff_at("2031-01-01")); /* trial until Jan 15 */
    fixture_begin(&f);
    for (int i = 0; i < 420; i++) {
        char id[16];
        snprintf(id, sizeof id, "p%d", i);
        ff_row_nt(&f, id, cus, key, "pro", ff_at("2031-02-02") + i * 60000, i < 400 ? 3750 : 0,
                  i < 400 ? 3000 : 0, 0);
    }
    fixture_commit(&f);
    struct invoice inv;
    ff_invoice(&f, "2031-02", cus, ff_at("2031-03-02"), &inv);
    assert_int_equal(inv.n_lines, 5);
    assert_int_equal(ff_line(&inv, "base_fee", 0)->amount_micros, 20000000);
    assert_int_equal(ff_line(&inv, "usage_input", 0)->quantity, 1500000);
    assert_int_equal(ff_line(&inv, "usage_input", 0)->included_quantity, 1500000);
    assert_int_equal(ff_line(&inv, "usage_output", 0)->included_quantity, 500000);
    assert_int_equal(ff_line(&inv, "usage_output", 0)->amount_micros, 1050000);
    assert_int_equal(ff_line(&inv, "usage_requests", 0)->quantity, 420);
    assert_int_equal(inv.total_micros, 21050000);
    struct plan_version pv;
    struct plan_charges ch;
    struct err e = {0};
    assert_true(plans_version_at(f.db, "pro", ff_at("2031-02-01"), &pv, &e));
    plans_rate(&pv, 1500000, 1200000, 420, &ch);
    assert_int_equal(ch.total_micros, inv.total_micros);
    invoice_free(&inv);
    fixture_close(&f);
}

static void test_upgrade_mid_month(void **state)
{
    (void)state;
    struct fixture f;
    fixture_open(&f);
    plans(&f);
    char cus[40], key[40];
    ff_customer(&f, "Upgrader", cus, key);
    ff_subscribe(&f, cus, "basic", ff_at("2031-03-01"));
    ff_row(&f, "a1", cus, key, "basic", ff_at("2031-03-05T10:00:00Z"), 300000, 50000, 0);
    ff_row(&f, "a2", cus, key, "basic", ff_at("2031-03-05T11:00:00Z"), 300000, 50000, 0);
    ff_change(&f, cus, "team", ff_at("2031-03-11"));
    for (int i = 0; i < 3; i++) {
        char id[16];
        snprintf(id, sizeof id, "a%d", 3 + i);
        ff_row(&f, id, cus, key, "team", ff_at("2031-03-20T12:00:00Z") + i, 1000000, 1000000, 0);
    }
    struct invoice inv;
    ff_invoice(&f, "2031-03", cus, ff_at("2031-04-02"), &inv);
    assert_string_equal(inv.period, "2031-03");
    assert_string_equal(inv.plan_id, "team");
    assert_int_equal(inv.number, 0); /* a draft */
    assert_int_equal(inv.n_lines, 10);
    const struct invoice_line *l = &inv.lines[0];
    assert_string_equal(l->type, "base_fee");
    assert_int_equal(l->quantity, 31 * 86400);
    assert_int_equal(l->amount_micros, 10000000);
    l = &inv.lines[1]; /* unused basic: 21 of 31 days of $10 = 6.774… */
    assert_string_equal(l->type, "proration_credit");
    assert_int_equal(l->quantity, 21 * 86400);
    assert_int_equal(l->amount_micros, -6770000);
    l = &inv.lines[2]; /* team for the rest: 21/31 of $50 = 33.870… */
    assert_string_equal(l->type, "proration_charge");
    assert_int_equal(l->quantity, 21 * 86400);
    assert_int_equal(l->amount_micros, 33870000);
    l = &inv.lines[3]; /* team's allowance for the whole period */
    assert_string_equal(l->type, "allowance");
    assert_int_equal(l->quantity, 5000000);
    assert_int_equal(l->included_quantity, 5000000);
    /* basic's rows first (time order), all included */
    l = &inv.lines[4];
    assert_string_equal(l->type, "usage_input");
    assert_int_equal(l->quantity, 600000);
    assert_int_equal(l->included_quantity, 600000);
    assert_int_equal(l->ledger_rows, 2);
    assert_int_equal(inv.lines[5].quantity, 100000);
    assert_int_equal(inv.lines[6].quantity, 2);
    /* team: 3M in included, 1.3M of 3M out included, 1.7M × $1.60 = $2.72 */
    assert_int_equal(inv.lines[7].included_quantity, 3000000);
    assert_int_equal(inv.lines[8].quantity, 3000000);
    assert_int_equal(inv.lines[8].included_quantity, 1300000);
    assert_int_equal(inv.lines[8].amount_micros, 2720000);
    assert_int_equal(inv.lines[9].ledger_rows, 3);
    assert_int_equal(inv.total_micros, 39820000);
    check_sums(&inv);
    invoice_free(&inv);
    fixture_close(&f);
}

static void test_downgrade_mid_month(void **state)
{
    (void)state;
    struct fixture f;
    fixture_open(&f);
    plans(&f);
    char cus[40], key[40];
    ff_customer(&f, "Downgrader", cus, key);
    ff_subscribe(&f, cus, "team", ff_at("2031-03-01"));
    ff_row(&f, "b1", cus, key, "team", ff_at("2031-03-10"), 4000000, 500000, 0);
    ff_change(&f, cus, "basic", ff_at("2031-03-21"));
    ff_row(&f, "b2", cus, key, "basic", ff_at("2031-03-25"), 200000, 300000, 0);
    struct invoice inv;
    ff_invoice(&f, "2031-03", cus, ff_at("2031-04-02"), &inv);
    assert_int_equal(ff_line(&inv, "base_fee", 0)->amount_micros, 50000000);
    assert_int_equal(ff_line(&inv, "proration_credit", 0)->amount_micros, -17740000); /* 11/31 of $50 */
    assert_int_equal(ff_line(&inv, "proration_charge", 0)->amount_micros, 3550000);   /* 11/31 of $10 */
    /* basic's allowance (the plan the period ends on) goes to team's rows first */
    assert_int_equal(ff_line(&inv, "allowance", 0)->quantity, 1000000);
    assert_int_equal(ff_line(&inv, "usage_input", 0)->amount_micros, 2400000);  /* 3M × $0.80 */
    assert_int_equal(ff_line(&inv, "usage_output", 0)->amount_micros, 800000);  /* 0.5M × $1.60 */
    assert_int_equal(ff_line(&inv, "usage_input", 1)->amount_micros, 200000);   /* at basic's prices */
    assert_int_equal(ff_line(&inv, "usage_output", 1)->amount_micros, 600000);
    assert_int_equal(inv.total_micros, 39810000);
    check_sums(&inv);
    invoice_free(&inv);
    fixture_close(&f);
}

static void test_cancel_at_period_end(void **state)
{
    (void)state;
    struct fixture f;
    fixture_open(&f);
    plans(&f);
    char cus[40], key[40];
    ff_customer(&f, "Leaver", cus, key);
    ff_subscribe(&f, cus, "basic", ff_at("2031-03-01"));
    ff_row(&f, "c1", cus, key, "basic", ff_at("2031-03-03"), 500000, 200000, 0);
    ff_cancel(&f, cus, true, ff_at("2031-03-15T12:00:00Z"));
    struct invoice inv;
    ff_invoice(&f, "2031-03", cus, ff_at("2031-04-20"), &inv);
    assert_int_equal(inv.service_end, ff_at("2031-04-01"));
    assert_int_equal(ff_line(&inv, "base_fee", 0)->amount_micros, 10000000);
    assert_int_equal(inv.total_micros, 10000000);
    for (int i = 0; i < inv.n_lines; i++)
        assert_string_not_equal(inv.lines[i].type, "proration_credit");
    invoice_free(&inv);
    /* Nothing in April, before and after the renewal job cancels it. */
    struct invoice *list = NULL;
    int n = -1;
    struct err e = {0};
    assert_true(invoices_for_period(f.db, "2031-04", cus, ff_at("2031-04-20"), &list, &n, &e));
    assert_int_equal(n, 0);
    invoices_free(list, n);
    ff_roll(&f, ff_at("2031-04-20"));
    assert_true(invoices_for_period(f.db, "2031-04", cus, ff_at("2031-04-20"), &list, &n, &e));
    assert_int_equal(n, 0);
    invoices_free(list, n);
    fixture_close(&f);
}

/* docs/billing.md's timeline: pro with a trial from 2031-01-31 15:30,
 * enterprise (yearly) from 2031-04-10 09:00, canceled at the end of that
 * year, which holds 2032-02-29. */
static void test_trial_then_yearly_through_a_leap_year(void **state)
{
    (void)state;
    struct fixture f;
    fixture_open(&f);
    char cus[40], key[40];
    ff_customer(&f, "Acme", cus, key);
    ff_subscribe(&f, cus, "pro", ff_at("2031-01-31T15:30:00Z"));
    ff_row(&f, "d1", cus, key, "pro", ff_at("2031-02-01"), 500000, 200000, 0);  /* trialing */
    ff_row(&f, "d2", cus, key, "pro", ff_at("2031-02-20"), 1000000, 1000000, 0);
    ff_change(&f, cus, "enterprise", ff_at("2031-04-10T09:00:00Z"));
    ff_cancel(&f, cus, true, ff_at("2031-04-10T09:00:00Z") + 1);
    ff_row(&f, "d3", cus, key, "enterprise", ff_at("2031-06-01"), 100000000, 50000000, 0);
    ff_row(&f, "d4", cus, key, "enterprise", ff_at("2032-02-29T12:00:00Z"), 10000000, 10000000, 0);
    int64_t now = ff_at("2032-05-01");
    ff_roll(&f, now);

    /* 1. [Jan 31, Feb 28): no base fee while trialing; the rest of the
     * period (13 days 8.5 hours of 28 days) at $20 = $9.538… */
    struct invoice inv;
    ff_invoice(&f, "2031-02", cus, now, &inv);
    assert_int_equal(inv.period_start, ff_at("2031-01-31"));
    assert_int_equal(inv.service_start, ff_at("2031-01-31T15:30:00Z"));
    assert_int_equal(inv.service_end, ff_at("2031-02-28"));
    const struct invoice_line *l = ff_line(&inv, "proration_charge", 0);
    assert_int_equal(l->quantity, 13 * 86400 + 8 * 3600 + 1800);
    assert_int_equal(l->amount_micros, 9540000);
    assert_int_equal(ff_line(&inv, "usage_output", 0)->amount_micros, 1050000); /* 700k × $1.50 */
    assert_int_equal(inv.total_micros, 10590000);
    check_sums(&inv);
    invoice_free(&inv);

    /* 2. [Feb 28, Mar 31): the full $20. */
    ff_invoice(&f, "2031-03", cus, now, &inv);
    assert_int_equal(inv.period_start, ff_at("2031-02-28"));
    assert_int_equal(ff_line(&inv, "base_fee", 0)->amount_micros, 20000000);
    assert_int_equal(inv.total_micros, 20000000);
    invoice_free(&inv);

    /* 3. [Mar 31, Apr 30) cut at Apr 10 09:00: 19 days 15 hours unused of 30. */
    ff_invoice(&f, "2031-04", cus, now, &inv);
    assert_int_equal(inv.service_end, ff_at("2031-04-10T09:00:00Z"));
    assert_string_equal(inv.plan_id, "pro");
    l = ff_line(&inv, "proration_credit", 0);
    assert_int_equal(l->quantity, 19 * 86400 + 15 * 3600);
    assert_int_equal(l->amount_micros, -13080000);
    assert_int_equal(inv.total_micros, 6920000);
    invoice_free(&inv);

    /* 4. enterprise [2031-04-10, 2032-04-10): 366 days; from 09:00 on. */
    ff_invoice(&f, "2032-04", cus, now, &inv);
    assert_int_equal(inv.period_end - inv.period_start, 366 * CALTIME_DAY_MS);
    l = ff_line(&inv, "proration_charge", 0);
    assert_int_equal(l->quantity, 366 * 86400 - 9 * 3600);
    assert_int_equal(l->amount_micros, 5993850000LL);
    assert_int_equal(ff_line(&inv, "usage_input", 0)->quantity, 110000000);
    assert_int_equal(ff_line(&inv, "usage_input", 0)->ledger_rows, 2);
    assert_int_equal(inv.total_micros, 5993850000LL);
    invoice_free(&inv);
    /* Nothing after the cancellation. */
    struct invoice *list = NULL;
    int n = -1;
    struct err e = {0};
    assert_true(invoices_for_period(f.db, "2032-05", cus, now, &list, &n, &e));
    assert_int_equal(n, 0);
    invoices_free(list, n);
    fixture_close(&f);
}

static void test_anchor_31_through_leap_february(void **state)
{
    (void)state;
    struct fixture f;
    fixture_open(&f);
    plans(&f);
    char cus[40], key[40];
    ff_customer(&f, "Month-ender", cus, key);
    ff_subscribe(&f, cus, "basic", ff_at("2032-01-31"));
    ff_row(&f, "e1", cus, key, "basic", ff_at("2032-02-29") - 1, 100000, 0, 0);
    ff_row(&f, "e2", cus, key, "basic", ff_at("2032-02-29"), 200000, 0, 0);
    int64_t now = ff_at("2032-05-01");
    struct invoice inv;
    ff_invoice(&f, "2032-02", cus, now, &inv);
    assert_int_equal(inv.period_start, ff_at("2032-01-31"));
    assert_int_equal(inv.period_end, ff_at("2032-02-29"));
    assert_int_equal(ff_line(&inv, "base_fee", 0)->quantity, 29 * 86400);
    assert_int_equal(ff_line(&inv, "base_fee", 0)->amount_micros, 10000000);
    assert_int_equal(ff_line(&inv, "usage_input", 0)->quantity, 100000);
    invoice_free(&inv);
    ff_invoice(&f, "2032-03", cus, now, &inv);
    assert_int_equal(inv.period_start, ff_at("2032-02-29"));
    assert_int_equal(inv.period_end, ff_at("2032-03-31"));
    assert_int_equal(ff_line(&inv, "usage_input", 0)->quantity, 200000);
    invoice_free(&inv);
    ff_invoice(&f, "2032-04", cus, now, &inv);
    assert_int_equal(inv.period_start, ff_at("2032-03-31"));
    assert_int_equal(inv.period_end, ff_at("2032-04-30"));
    invoice_free(&inv);
    fixture_close(&f);
}

static void grant(struct fixture *f, const char *cus, const char *kind, const char *unit,
                  const char *currency, int64_t amount, int64_t expires_at, int64_t now,
                  char *id_out)
{
    struct err e = {0};
    char *json = NULL;
    struct credit_grant g = {.customer_id = cus, .kind = kind, .unit = unit, .currency = currency,
                             .amount = amount, .expires_at = expires_at, .reason = "test"};
    fixture_begin(f);
    if (!credits_grant(f->db, "test", &g, now, &json, &e))
        fail_msg("%s", e.msg);
    fixture_commit(f);
    snprintf(id_out, 40, "%s", fixture_json_str(json, "id"));
    free(json);
}

static int64_t remaining(struct fixture *f, const char *credit)
{
    char sql[160];
    snprintf(sql, sizeof sql, "SELECT remaining FROM credits WHERE id = '%s'", credit);
    return ff_int(f, sql);
}

static void test_credits_partly_consumed(void **state)
{
    (void)state;
    struct fixture f;
    fixture_open(&f);
    plans(&f);
    char cus[40], key[40], tokens[40], usd[40], expiring[40], eur[40];
    ff_customer(&f, "Credited", cus, key);
    ff_subscribe(&f, cus, "basic", ff_at("2031-03-01"));
    int64_t t = ff_at("2031-03-01T01:00:00Z");
    grant(&f, cus, "promotional", "tokens", NULL, 1000000, 0, t, tokens);
    grant(&f, cus, "prepaid", "micros", "USD", 25000000, 0, t, usd);
    grant(&f, cus, "promotional", "tokens", NULL, 500000, ff_at("2031-03-20"), t, expiring);
    grant(&f, cus, "prepaid", "micros", "EUR", 5000000, 0, t, eur);
    ff_row(&f, "f1", cus, key, "basic", ff_at("2031-03-10"), 1200000, 600000, 0);
    struct invoice inv;
    ff_invoice(&f, "2031-03", cus, ff_at("2031-04-02"), &inv);
    assert_int_equal(ff_line(&inv, "usage_input", 0)->amount_micros, 200000);   /* 200k over */
    assert_int_equal(ff_line(&inv, "usage_output", 0)->amount_micros, 1200000); /* 600k over */
    const struct invoice_line *l = ff_line(&inv, "credit_tokens", 0);
    assert_string_equal(l->ref, tokens);      /* not the one expiring mid-period */
    assert_int_equal(l->quantity, 800000);
    assert_int_equal(l->amount_micros, -1400000);
    l = ff_line(&inv, "credit_amount", 0);
    assert_string_equal(l->ref, usd);         /* not the EUR one */
    assert_int_equal(l->quantity, 10000000);
    assert_int_equal(l->amount_micros, -10000000);
    assert_int_equal(inv.total_micros, 0);
    check_sums(&inv);
    invoice_free(&inv);
    /* A draft consumes nothing; finalizing does. */
    assert_int_equal(remaining(&f, tokens), 1000000);
    ff_close(&f, "2031-03", ff_at("2031-04-05"));
    assert_int_equal(remaining(&f, tokens), 200000);
    assert_int_equal(remaining(&f, usd), 15000000);
    assert_int_equal(remaining(&f, expiring), 500000);
    assert_int_equal(remaining(&f, eur), 5000000);

    /* April: 500k over, 200k of it on what is left of the token credit. */
    ff_row(&f, "f2", cus, key, "basic", ff_at("2031-04-10"), 1500000, 0, 0);
    ff_invoice(&f, "2031-04", cus, ff_at("2031-05-02"), &inv);
    assert_int_equal(ff_line(&inv, "usage_input", 0)->amount_micros, 500000);
    assert_int_equal(ff_line(&inv, "credit_tokens", 0)->quantity, 200000);
    assert_int_equal(ff_line(&inv, "credit_tokens", 0)->amount_micros, -200000);
    assert_int_equal(ff_line(&inv, "credit_amount", 0)->amount_micros, -10300000);
    assert_int_equal(inv.total_micros, 0);
    invoice_free(&inv);
    ff_close(&f, "2031-04", ff_at("2031-05-05"));
    assert_int_equal(remaining(&f, tokens), 0);
    assert_int_equal(remaining(&f, usd), 4700000);
    assert_int_equal(ff_reconcile(&f, "2031-03", ff_at("2031-05-05")), 0);
    assert_int_equal(ff_reconcile(&f, "2031-04", ff_at("2031-05-05")), 0);
    fixture_close(&f);
}

static void test_two_price_versions_and_half_even(void **state)
{
    (void)state;
    struct fixture f;
    fixture_open(&f);
    plans(&f);
    char cus[40], key[40];
    ff_customer(&f, "Metered", cus, key);
    ff_subscribe(&f, cus, "metered", ff_at("2031-03-01"));
    fixture_begin(&f);
    for (int i = 0; i < 10; i++) {
        char id[16];
        snprintf(id, sizeof id, "g1-%d", i);
        ff_row_nt(&f, id, cus, key, "metered", ff_at("2031-03-10") + i * 1000, 30000, 5000, 0);
    }
    for (int i = 0; i < 5; i++) {
        char id[16];
        snprintf(id, sizeof id, "g2-%d", i);
        ff_row_nt(&f, id, cus, key, "metered", ff_at("2031-03-20") + i * 1000, 40000, 20000, 0);
    }
    fixture_commit(&f);
    struct invoice inv;
    ff_invoice(&f, "2031-03", cus, ff_at("2031-04-02"), &inv);
    /* version 1: 100k of 300k in included; 200k × $1 + 50k × $2; 10 × $0.0025
     * = $0.025, a tie, rounds to the even $0.02 */
    assert_int_equal(ff_line(&inv, "usage_input", 0)->amount_micros, 200000);
    assert_int_equal(ff_line(&inv, "usage_output", 0)->amount_micros, 100000);
    assert_int_equal(ff_line(&inv, "usage_requests", 0)->amount_micros, 20000);
    /* version 2 from Mar 16: 200k × $2 + 100k × $4; 5 × $0.003 = $0.015 → $0.02 */
    const struct invoice_line *l = ff_line(&inv, "usage_input", 1);
    assert_int_not_equal(l->plan_version_id, ff_line(&inv, "usage_input", 0)->plan_version_id);
    assert_int_equal(l->ledger_rows, 5);
    assert_int_equal(l->amount_micros, 400000);
    assert_int_equal(ff_line(&inv, "usage_output", 1)->amount_micros, 400000);
    assert_int_equal(ff_line(&inv, "usage_requests", 1)->amount_micros, 20000);
    assert_int_equal(inv.total_micros, 1140000);
    check_sums(&inv);
    /* The digest of version 2's rows, recomputed the way docs/finance.md shows. */
    char text[512] = "";
    for (int i = 0; i < 5; i++) {
        size_t n = strlen(text);
        snprintf(text + n, sizeof text - n, "g2-%d\t40000\t20000\n", i);
    }
    uint8_t d[32];
    assert_int_equal(gnutls_hash_fast(GNUTLS_DIG_SHA256, text, strlen(text), d), 0);
    char hexd[65];
    for (int i = 0; i < 32; i++)
        snprintf(hexd + 2 * i, 3, "%02x", d[i]);
    assert_string_equal(l->digest, hexd);
    invoice_free(&inv);
    fixture_close(&f);
}

static void test_late_usage_is_an_adjustment(void **state)
{
    (void)state;
    struct fixture f;
    fixture_open(&f);
    plans(&f);
    char cus[40], key[40];
    ff_customer(&f, "Late", cus, key);
    ff_subscribe(&f, cus, "basic", ff_at("2031-03-01"));
    ff_row(&f, "h1", cus, key, "basic", ff_at("2031-03-05"), 900000, 0, 0);
    struct err e = {0};
    cJSON *summary = NULL;
    /* Not before the month's end plus the grace. */
    fixture_begin(&f);
    assert_false(invoices_close(f.db, "test", "2031-03", ff_at("2031-04-03"), GRACE, &summary, &e));
    assert_int_equal(e.code, ERR_CONFLICT);
    assert_false(invoices_close(f.db, "test", "2031-04", ff_at("2031-05-05"), GRACE, &summary, &e));
    assert_int_equal(e.code, ERR_CONFLICT); /* March first */
    assert_non_null(strstr(e.msg, "2031-03"));
    fixture_commit(&f);
    ff_close(&f, "2031-03", ff_at("2031-04-05"));
    fixture_begin(&f);
    assert_false(invoices_close(f.db, "test", "2031-03", ff_at("2031-04-06"), GRACE, &summary, &e));
    fixture_commit(&f);

    struct invoice march;
    ff_invoice(&f, "2031-03", cus, ff_at("2031-04-06"), &march);
    assert_int_equal(march.number, 1);
    assert_int_equal(march.finalized_at, ff_at("2031-04-05"));
    assert_int_equal(march.total_micros, 10000000);

    /* A request of March 20, recovered after a crash, lands on April 6. */
    ff_row(&f, "h-late", cus, key, "basic", ff_at("2031-03-20"), 300000, 50000,
           ff_at("2031-04-06"));
    ff_row(&f, "h2", cus, key, "basic", ff_at("2031-04-10"), 100000, 0, 0);
    assert_int_equal(ff_reconcile(&f, "2031-03", ff_at("2031-04-20")), 0);
    struct invoice again;
    ff_invoice(&f, "2031-03", cus, ff_at("2031-04-20"), &again);
    assert_int_equal(again.total_micros, march.total_micros); /* never edited */
    invoice_free(&again);

    struct invoice april;
    ff_invoice(&f, "2031-04", cus, ff_at("2031-05-02"), &april);
    const struct invoice_line *l = ff_line(&april, "adjustment", 0);
    assert_string_equal(l->ref, march.id);
    assert_int_equal(l->ledger_rows, 1);
    /* March with the row: 1.2M in (200k over × $1) and 50k out over (× $2). */
    assert_int_equal(l->amount_micros, 300000);
    uint8_t d[32];
    const char row[] = "h-late\t300000\t50000\n";
    assert_int_equal(gnutls_hash_fast(GNUTLS_DIG_SHA256, row, strlen(row), d), 0);
    char hexd[65];
    for (int i = 0; i < 32; i++)
        snprintf(hexd + 2 * i, 3, "%02x", d[i]);
    assert_string_equal(l->digest, hexd);
    assert_int_equal(april.total_micros, 10300000);
    invoice_free(&april);
    assert_int_equal(ff_int(&f, "SELECT count(*) FROM late_usage"), 1);

    ff_close(&f, "2031-04", ff_at("2031-05-05"));
    assert_int_equal(ff_reconcile(&f, "2031-03", ff_at("2031-05-06")), 0);
    assert_int_equal(ff_reconcile(&f, "2031-04", ff_at("2031-05-06")), 0);
    /* A second late row for March, after April closed: on May's draft. */
    ff_row(&f, "h-later", cus, key, "basic", ff_at("2031-03-21"), 0, 100000, ff_at("2031-05-06"));
    struct invoice may;
    ff_invoice(&f, "2031-05", cus, ff_at("2031-06-02"), &may);
    assert_int_equal(ff_line(&may, "adjustment", 0)->amount_micros, 200000); /* 100k out × $2 */
    invoice_free(&may);
    assert_int_equal(ff_reconcile(&f, "2031-04", ff_at("2031-06-02")), 0);

    /* Finalized invoices refuse every change. */
    char sql[400];
    snprintf(sql, sizeof sql, "UPDATE invoice_lines SET amount_micros = 0 WHERE invoice_id = '%s'",
             march.id);
    assert_false(sq_exec(f.db, sql, NULL, &e, SQ_END));
    assert_non_null(strstr(e.msg, "finalized"));
    snprintf(sql, sizeof sql, "DELETE FROM invoices WHERE id = '%s'", march.id);
    assert_false(sq_exec(f.db, sql, NULL, &e, SQ_END));
    snprintf(sql, sizeof sql,
             "INSERT INTO invoice_lines (invoice_id, line_no, type, description, start_at, end_at, "
             "quantity, included_quantity, unit, unit_price_micros, amount_micros) VALUES ('%s', "
             "99, 'adjustment', 'x', 0, 1, 1, 0, 'request', 0, -1000000)", march.id);
    assert_false(sq_exec(f.db, sql, NULL, &e, SQ_END));
    assert_false(sq_exec(f.db, "DELETE FROM invoice_periods", NULL, &e, SQ_END));
    /* A tampered line is what reconciliation reports. */
    assert_true(sq_exec(f.db, "DROP TRIGGER invoice_lines_no_update", NULL, &e, SQ_END));
    snprintf(sql, sizeof sql,
             "UPDATE invoice_lines SET quantity = quantity - 1 WHERE invoice_id = '%s' AND "
             "type = 'usage_input'", march.id);
    assert_true(sq_exec(f.db, sql, NULL, &e, SQ_END));
    assert_int_equal(ff_reconcile(&f, "2031-03", ff_at("2031-06-02")), 1);
    invoice_free(&march);
    fixture_close(&f);
}

static void test_period_parse(void **state)
{
    (void)state;
    int64_t a, b;
    struct err e = {0};
    assert_true(invoices_period_parse("2032-02", &a, &b, &e));
    assert_int_equal(a, ff_at("2032-02-01"));
    assert_int_equal(b, ff_at("2032-03-01"));
    assert_true(invoices_period_parse("2031-12", &a, &b, &e));
    assert_int_equal(b, ff_at("2032-01-01"));
    assert_false(invoices_period_parse("2031-13", &a, &b, &e));
    assert_string_equal(e.param, "period");
    assert_false(invoices_period_parse("2031-3", &a, &b, &e));
    assert_false(invoices_period_parse("31-03-01", &a, &b, &e));
    char buf[32];
    invoices_amount_text(21050000, "USD", buf, sizeof buf);
    assert_string_equal(buf, "21.05");
    invoices_amount_text(-6770000, "USD", buf, sizeof buf);
    assert_string_equal(buf, "-6.77");
    invoices_amount_text(2000000000, "JPY", buf, sizeof buf);
    assert_string_equal(buf, "2000");
    invoices_amount_text(1234000, "BHD", buf, sizeof buf);
    assert_string_equal(buf, "1.234");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_period_parse),
        cmocka_unit_test(test_pro_month),
        cmocka_unit_test(test_upgrade_mid_month),
        cmocka_unit_test(test_downgrade_mid_month),
        cmocka_unit_test(test_cancel_at_period_end),
        cmocka_unit_test(test_trial_then_yearly_through_a_leap_year),
        cmocka_unit_test(test_anchor_31_through_leap_february),
        cmocka_unit_test(test_credits_partly_consumed),
        cmocka_unit_test(test_two_price_versions_and_half_even),
        cmocka_unit_test(test_late_usage_is_an_adjustment),
    };
    return cmocka_run_group_tests_name("invoices", tests, NULL, NULL);
}

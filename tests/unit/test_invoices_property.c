/* test_invoices_property.c — invoices on random histories (fixed seeds):
 * random plans with price versions taking effect mid-period, monthly and
 * yearly, trials; customers subscribing, changing plan (and interval),
 * canceling now or at the period's end, coming back; ledger rows at random
 * instants, some of them committed after their month was closed.
 *
 * Properties, month after month:
 *   - reconciliation of every closed month reports no difference;
 *   - every invoice's usage quantities equal the ledger's sums over its
 *     window (the rows known to it), line by line, with the same row
 *     counts and the same digests recomputed independently here;
 *   - totals are the sum of lines, every amount is whole cents;
 *   - late rows are billed once, as adjustments, for customers who go on. */
#include "tests/unit/testutil.h"

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/caltime.h"
#include "server/invoices.h"
#include "server/plans.h"
#include "server/sq.h"
#include "server/subscriptions.h"
#include "tests/unit/finance_fixture.h"

#define N_CUSTOMERS 6
#define N_PLANS 3
#define ROWS_PER_CUSTOMER 40
#define MONTHS 6                    /* 2031-01 .. 2031-06 closed, July open */

static uint64_t rng;

static uint64_t next(void)
{
    rng ^= rng >> 12;
    rng ^= rng << 25;
    rng ^= rng >> 27;
    return rng * 2685821657736338717ULL;
}

static int64_t pick(int64_t lo, int64_t hi) /* [lo, hi) */
{
    return lo + (int64_t)(next() % (uint64_t)(hi - lo));
}

static const char *const plan_ids[N_PLANS] = {"p0", "p1", "p2"};

static void make_plans(struct fixture *f)
{
    static const int64_t fees[] = {0, 5000000, 10000000, 19990000, 120000000};
    static const int64_t included[] = {0, 1000, 50000, 1000000};
    static const int64_t prices[] = {0, 150000, 1000000, 3333333};
    static const int64_t per_request[] = {0, 100, 2500};
    for (int p = 0; p < N_PLANS; p++) {
        int64_t eff = ff_at("2031-01-01");
        int versions = 1 + (int)pick(0, 3);
        for (int v = 0; v < versions; v++) {
            char json[1024];
            snprintf(json, sizeof json,
                     "{\"billing_interval\":\"%s\",\"base_fee_micros\":%lld,"
                     "\"included_tokens\":%lld,\"price_input_per_1m_micros\":%lld,"
                     "\"price_output_per_1m_micros\":%lld,\"price_per_request_micros\":%lld,"
                     "\"requests_per_minute\":1000,\"tokens_per_minute\":10000000,"
                     "\"max_concurrent_requests\":10,\"max_tokens_per_request\":4096,"
                     "\"trial_days\":%d,\"hard_cap\":false,\"effective_from\":%lld}",
                     v == 0 && pick(0, 3) == 0 ? "year" : "month",
                     (long long)fees[pick(0, 5)], (long long)included[pick(0, 4)],
                     (long long)prices[pick(0, 4)], (long long)prices[pick(0, 4)],
                     (long long)per_request[pick(0, 3)], pick(0, 3) == 0 ? 7 : 0,
                     (long long)eff);
            ff_plan(f, plan_ids[p], json);
            eff += pick(10, 60) * CALTIME_DAY_MS + pick(0, CALTIME_DAY_MS);
        }
    }
}

struct row {
    char id[32];
    int cus;
    int64_t at;
    int64_t in, out;
    int64_t insert_after;         /* inserted once this instant has passed */
    bool inserted;
};

struct world {
    struct fixture f;
    char cus[N_CUSTOMERS][40], key[N_CUSTOMERS][40];
    struct row rows[N_CUSTOMERS * ROWS_PER_CUSTOMER];
    int n_rows;
};

static bool live_plan(struct world *w, int c, char *plan)
{
    struct err e = {0};
    char *json = NULL;
    if (!subscriptions_get(w->f.db, w->cus[c], &json, &e))
        return false;
    bool live = strcmp(fixture_json_str(json, "status"), "canceled") != 0;
    snprintf(plan, PLAN_ID_MAX, "%s", fixture_json_str(json, "plan_id"));
    free(json);
    return live;
}

/* The customer's plan at t (from its subscriptions), or NULL. */
static bool plan_at(struct world *w, int c, int64_t t, char *plan)
{
    struct err e = {0};
    sqlite3_stmt *st;
    if (!sq_prepare(w->f.db, "SELECT id FROM subscriptions WHERE customer_id = ?", &st, &e,
                    SQ_TEXT(w->cus[c]), SQ_END))
        fail_msg("%s", e.msg);
    bool found = false;
    while (!found && sqlite3_step(st) == SQLITE_ROW) {
        struct invoice_sub_state s;
        if (!invoices_subscription_at(w->f.db, (const char *)sqlite3_column_text(st, 0), t, &s, &e))
            fail_msg("%s", e.msg);
        if (s.live) {
            snprintf(plan, PLAN_ID_MAX, "%s", s.plan_id);
            found = true;
        }
    }
    sqlite3_finalize(st);
    return found;
}

static int64_t month_start(int m) /* m = 0 → 2031-01 */
{
    return caltime_ms_from_date((struct caltime_date){2031 + m / 12, m % 12 + 1, 1});
}

static void history(struct world *w)
{
    /* Subscriptions first, in time order: creation in January or February,
     * then about four random events per customer until July. */
    struct ev {
        int64_t at;
        int cus;
    } ev[N_CUSTOMERS * 6];
    int n = 0;
    for (int c = 0; c < N_CUSTOMERS; c++) {
        int k = 4 + (int)pick(0, 3);
        for (int i = 0; i < k; i++)
            ev[n++] = (struct ev){pick(month_start(0), month_start(MONTHS)), c};
    }
    for (int i = 0; i < n; i++) /* insertion sort: few events */
        for (int j = i; j > 0 && ev[j].at < ev[j - 1].at; j--) {
            struct ev t = ev[j];
            ev[j] = ev[j - 1];
            ev[j - 1] = t;
        }
    bool ever[N_CUSTOMERS] = {0};
    for (int i = 0; i < n; i++) {
        int c = ev[i].cus;
        ff_roll(&w->f, ev[i].at);
        char plan[PLAN_ID_MAX] = "";
        bool live = ever[c] && live_plan(w, c, plan);
        const char *to = plan_ids[pick(0, N_PLANS)];
        if (!live) {
            ff_subscribe(&w->f, w->cus[c], to, ev[i].at);
            ever[c] = true;
            continue;
        }
        int what = (int)pick(0, 10);
        if (what < 6 && strcmp(to, plan) != 0)
            ff_change(&w->f, w->cus[c], to, ev[i].at);
        else if (what < 8)
            ff_cancel(&w->f, w->cus[c], true, ev[i].at);
        else if (what < 9)
            ff_cancel(&w->f, w->cus[c], false, ev[i].at);
    }
    ff_roll(&w->f, month_start(MONTHS + 1));
}

static void make_rows(struct world *w)
{
    w->n_rows = 0;
    for (int c = 0; c < N_CUSTOMERS; c++) {
        for (int i = 0; i < ROWS_PER_CUSTOMER; i++) {
            struct row *r = &w->rows[w->n_rows];
            snprintf(r->id, sizeof r->id, "c%d-r%d", c, i);
            r->cus = c;
            r->at = pick(month_start(0), month_start(MONTHS + 1));
            r->in = pick(0, 400000);
            r->out = pick(0, 200000);
            /* Most rows commit at once; one in eight after its month was
             * closed, some even after the next one. */
            r->insert_after = r->at;
            int late = (int)pick(0, 16);
            if (late < 2) {
                struct caltime_date d = caltime_date_of(r->at);
                int m = (d.year - 2031) * 12 + d.month - 1;
                r->insert_after = month_start(m + 1 + late) + 73 * 3600000LL + pick(0, 86400000);
            }
            w->n_rows++;
        }
    }
}

/* Insert every row due by `now`. */
static void insert_due(struct world *w, int64_t now)
{
    fixture_begin(&w->f);
    for (int i = 0; i < w->n_rows; i++) {
        struct row *r = &w->rows[i];
        if (r->inserted || r->insert_after > now)
            continue;
        char plan[PLAN_ID_MAX];
        if (!plan_at(w, r->cus, r->at, plan))
            snprintf(plan, sizeof plan, "free"); /* no subscription: never billed */
        ff_row_nt(&w->f, r->id, w->cus[r->cus], w->key[r->cus], plan, r->at, r->in, r->out,
                  now);
        r->inserted = true;
    }
    fixture_commit(&w->f);
}

/* The digest of one plan version's rows in a window, as docs/finance.md
 * tells a reader to recompute it, with the rows known to invoice `number`
 * (0: a draft, every row). */
static void independent(struct world *w, const struct invoice *inv, int64_t version,
                        int64_t *rows, int64_t *in, int64_t *out, char digest[65])
{
    struct err e = {0};
    sqlite3_stmt *st;
    if (!sq_prepare(w->f.db,
                    "SELECT request_id, prompt_tokens, completion_tokens FROM usage_ledger WHERE "
                    "customer_id = ?1 AND started_at >= ?2 AND started_at < ?3 AND "
                    "plan_version_id = ?4 AND request_id NOT IN (SELECT request_id FROM "
                    "late_usage WHERE invoice_id = ?5) ORDER BY started_at, request_id",
                    &st, &e, SQ_TEXT(inv->customer_id), SQ_INT(inv->service_start),
                    SQ_INT(inv->service_end), SQ_INT(version), SQ_TEXT(inv->id), SQ_END))
        fail_msg("%s", e.msg);
    gnutls_hash_hd_t h;
    assert_int_equal(gnutls_hash_init(&h, GNUTLS_DIG_SHA256), 0);
    *rows = *in = *out = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        char line[160];
        int n = snprintf(line, sizeof line, "%s\t%lld\t%lld\n", sqlite3_column_text(st, 0),
                         (long long)sqlite3_column_int64(st, 1),
                         (long long)sqlite3_column_int64(st, 2));
        gnutls_hash(h, line, (size_t)n);
        (*rows)++;
        *in += sqlite3_column_int64(st, 1);
        *out += sqlite3_column_int64(st, 2);
    }
    sqlite3_finalize(st);
    uint8_t d[32];
    gnutls_hash_deinit(h, d);
    for (int i = 0; i < 32; i++)
        snprintf(digest + 2 * i, 3, "%02x", d[i]);
}

static void check_invoice(struct world *w, const struct invoice *inv, int64_t *adjusted)
{
    int64_t sum = 0, in = 0, out = 0, req = 0, usage_rows = 0;
    for (int i = 0; i < inv->n_lines; i++) {
        const struct invoice_line *l = &inv->lines[i];
        sum += l->amount_micros;
        assert_int_equal(l->amount_micros % 10000, 0);
        if (strcmp(l->type, "adjustment") == 0)
            *adjusted += l->ledger_rows;
        if (strcmp(l->type, "usage_input") != 0)
            continue;
        /* A version group: three lines with the same rows. */
        const struct invoice_line *o = &inv->lines[i + 1], *q = &inv->lines[i + 2];
        assert_string_equal(o->type, "usage_output");
        assert_string_equal(q->type, "usage_requests");
        int64_t rows, gin, gout;
        char digest[65];
        independent(w, inv, l->plan_version_id, &rows, &gin, &gout, digest);
        assert_int_equal(l->quantity, gin);
        assert_int_equal(o->quantity, gout);
        assert_int_equal(q->quantity, rows);
        assert_int_equal(l->ledger_rows, rows);
        assert_string_equal(l->digest, digest);
        assert_string_equal(q->digest, digest);
        assert_true(l->included_quantity <= l->quantity);
        in += l->quantity;
        out += o->quantity;
        req += q->quantity;
        usage_rows += l->ledger_rows;
    }
    assert_int_equal(sum, inv->total_micros);
    /* And the window as a whole, whatever the versions. */
    char sql[600];
    snprintf(sql, sizeof sql,
             "SELECT count(*) || ' ' || coalesce(sum(prompt_tokens), 0) || ' ' || "
             "coalesce(sum(completion_tokens), 0) FROM usage_ledger WHERE customer_id = '%s' AND "
             "started_at >= %lld AND started_at < %lld AND request_id NOT IN (SELECT request_id "
             "FROM late_usage WHERE invoice_id = '%s')",
             inv->customer_id, (long long)inv->service_start, (long long)inv->service_end, inv->id);
    struct err e = {0};
    char *text = NULL;
    if (!sq_text(w->f.db, sql, &text, &e, SQ_END))
        fail_msg("%s", e.msg);
    char mine[96];
    snprintf(mine, sizeof mine, "%lld %lld %lld", (long long)req, (long long)in, (long long)out);
    assert_string_equal(mine, text);
    assert_int_equal(usage_rows, req);
    free(text);
}

static void one_world(uint64_t seed)
{
    rng = seed * 0x9E3779B97F4A7C15ULL + 1;
    struct world *w = calloc(1, sizeof *w);
    assert_non_null(w);
    fixture_open(&w->f);
    make_plans(&w->f);
    for (int c = 0; c < N_CUSTOMERS; c++) {
        char name[16];
        snprintf(name, sizeof name, "C%d", c);
        ff_customer(&w->f, name, w->cus[c], w->key[c]);
    }
    history(w);
    make_rows(w);
    int closes = 0;
    for (int m = 0; m < MONTHS; m++) {
        int64_t now = month_start(m + 1) + 72 * 3600000LL + pick(0, 3600000);
        insert_due(w, now);
        char period[8];
        invoices_period_of(month_start(m), period);
        ff_close(&w->f, period, now);
        closes++;
        insert_due(w, now + 1);
        for (int k = 0; k <= m; k++) {
            invoices_period_of(month_start(k), period);
            assert_int_equal(ff_reconcile(&w->f, period, now + 2), 0);
        }
    }
    int64_t end = month_start(MONTHS + 1) + 3 * CALTIME_DAY_MS;
    insert_due(w, end);
    /* Every invoice of every month, finalized or draft. */
    int64_t adjusted[N_CUSTOMERS] = {0};
    bool goes_on[N_CUSTOMERS] = {0};
    int invoices = 0, finalized = 0;
    for (int m = 0; m < MONTHS + 14; m++) {
        char period[8];
        invoices_period_of(month_start(m), period);
        struct invoice *list = NULL;
        int n = 0;
        struct err e = {0};
        if (!invoices_for_period(w->f.db, period, NULL, end, &list, &n, &e))
            fail_msg("%s", e.msg);
        for (int i = 0; i < n; i++) {
            int c = 0;
            while (c < N_CUSTOMERS && strcmp(w->cus[c], list[i].customer_id) != 0)
                c++;
            assert_true(c < N_CUSTOMERS);
            check_invoice(w, &list[i], &adjusted[c]);
            if (!list[i].number && list[i].service_end > month_start(MONTHS))
                goes_on[c] = true;
            invoices++;
            finalized += list[i].number != 0;
        }
        invoices_free(list, n);
    }
    assert_true(finalized > 0 && invoices > finalized);
    int64_t late_total = 0, adjusted_total = 0;
    for (int c = 0; c < N_CUSTOMERS; c++) {
        char sql[160];
        snprintf(sql, sizeof sql, "SELECT count(*) FROM late_usage WHERE customer_id = '%s'",
                 w->cus[c]);
        int64_t late = ff_int(&w->f, sql);
        late_total += late;
        adjusted_total += adjusted[c];
        if (goes_on[c])
            assert_int_equal(adjusted[c], late); /* each late row billed once */
        else
            assert_true(adjusted[c] <= late);
    }
    fprintf(stderr, "seed %llu: %d invoices (%d finalized) in %d closes, %lld late rows, %lld "
                    "billed as adjustments\n",
            (unsigned long long)seed, invoices, finalized, closes, (long long)late_total,
            (long long)adjusted_total);
    fixture_close(&w->f);
    free(w);
}

static void test_random_histories(void **state)
{
    (void)state;
    for (uint64_t seed = 1; seed <= 10; seed++)
        one_world(seed);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_random_histories),
    };
    return cmocka_run_group_tests_name("invoices_property", tests, NULL, NULL);
}

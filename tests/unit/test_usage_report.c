/* test_usage_report.c — the ledger by UTC bucket and group
 * (server/usage_report.c): hour, day and calendar-month buckets, clipping
 * to the query, grouping, the customer filter and the CSV lines. */
#include "tests/unit/testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/ledger.h"
#include "server/plans.h"
#include "server/usage_report.h"
#include "tests/unit/finance_fixture.h"

struct world {
    struct fixture f;
    char a[40], ka[40], b[40], kb[40];
};

static void row(struct world *w, const char *id, const char *cus, const char *key,
                const char *plan, const char *at, const char *model, int64_t in, int64_t out,
                bool aborted, int64_t compute_ms)
{
    struct err e = {0};
    struct plan_version pv;
    if (!plans_version_at(w->f.db, plan, ff_at(at), &pv, &e))
        fail_msg("%s", e.msg);
    struct usage_record r = {0};
    snprintf(r.request_id, sizeof r.request_id, "%s", id);
    snprintf(r.customer_id, sizeof r.customer_id, "%s", cus);
    snprintf(r.api_key_id, sizeof r.api_key_id, "%s", key);
    snprintf(r.model, sizeof r.model, "%s", model);
    snprintf(r.endpoint, sizeof r.endpoint, "/v1/completions");
    r.prompt_tokens = in;
    r.completion_tokens = out;
    r.client_aborted = aborted;
    r.status = 200;
    r.compute_ms = compute_ms;
    r.started_at = ff_at(at);
    r.finished_at = r.started_at + compute_ms;
    r.plan_version_id = pv.id;
    fixture_begin(&w->f);
    if (!ledger_insert(w->f.db, &r, r.finished_at, NULL, &e))
        fail_msg("%s", e.msg);
    fixture_commit(&w->f);
}

static void world_open(struct world *w)
{
    fixture_open(&w->f);
    ff_customer(&w->f, "A", w->a, w->ka);
    ff_customer(&w->f, "B", w->b, w->kb);
    ff_subscribe(&w->f, w->a, "free", ff_at("2031-02-01"));
    ff_subscribe(&w->f, w->b, "pro", ff_at("2031-02-01"));
    row(w, "r1", w->a, w->ka, "free", "2031-03-01T00:10:00Z", "m1", 100, 10, false, 10);
    row(w, "r2", w->a, w->ka, "free", "2031-03-01T00:50:00Z", "m1", 200, 20, true, 10);
    row(w, "r3", w->a, w->ka, "free", "2031-03-01T01:05:00Z", "m2", 300, 30, false, 1234);
    row(w, "r4", w->a, w->ka, "free", "2031-03-31T23:59:59.999Z", "m1", 1, 1, false, 0);
    row(w, "r5", w->a, w->ka, "free", "2031-04-01T00:00:00Z", "m1", 5, 5, false, 0);
    row(w, "r6", w->b, w->kb, "pro", "2031-03-15T12:00:00Z", "m1", 1000, 100, false, 1500);
}

/* Every bucket of a query: rows copied into one array (test sizes only). */
struct seen {
    struct usage_report_row rows[32];
    char names[32][4][48];
    int n, buckets;
};

static void run(struct world *w, const char *from, const char *to, const char *bucket,
                const char *group_by, const char *customer, struct seen *s)
{
    struct usage_report_query q = {.start = ff_at(from), .end = ff_at(to)};
    struct err e = {0};
    assert_true(usage_report_parse_bucket(bucket, &q.bucket, &e));
    assert_true(usage_report_parse_group_by(group_by, &q.group_by, &e));
    snprintf(q.customer_id, sizeof q.customer_id, "%s", customer ? customer : "");
    struct usage_report *r = NULL;
    assert_true(usage_report_open(w->f.db, &q, &r, &e));
    memset(s, 0, sizeof *s);
    for (;;) {
        const struct usage_report_row *rows;
        int n;
        bool done;
        assert_true(usage_report_next(r, &rows, &n, &done, &e));
        if (done)
            break;
        assert_true(n > 0);
        s->buckets++;
        for (int i = 0; i < n && s->n < 32; i++) {
            struct usage_report_row *o = &s->rows[s->n];
            *o = rows[i];
            const char *src[4] = {rows[i].customer_id, rows[i].api_key_id, rows[i].model,
                                  rows[i].plan_id};
            const char **dst[4] = {&o->customer_id, &o->api_key_id, &o->model, &o->plan_id};
            for (int k = 0; k < 4; k++) {
                snprintf(s->names[s->n][k], 48, "%s", src[k] ? src[k] : "");
                *dst[k] = src[k] ? s->names[s->n][k] : NULL;
            }
            s->n++;
        }
    }
    usage_report_close(r);
}

static void test_hours(void **state)
{
    (void)state;
    struct world w;
    world_open(&w);
    struct seen s;
    run(&w, "2031-03-01", "2031-03-01T02:00:00Z", "1h", "", NULL, &s);
    assert_int_equal(s.n, 2);
    assert_int_equal(s.rows[0].bucket_start, ff_at("2031-03-01"));
    assert_int_equal(s.rows[0].bucket_end, ff_at("2031-03-01T01:00:00Z"));
    assert_int_equal(s.rows[0].requests, 2);
    assert_int_equal(s.rows[0].input_tokens, 300);
    assert_int_equal(s.rows[0].output_tokens, 30);
    assert_int_equal(s.rows[0].aborted_requests, 1);
    assert_int_equal(s.rows[0].compute_ms, 20);
    assert_null(s.rows[0].customer_id);
    assert_int_equal(s.rows[1].requests, 1);
    assert_int_equal(s.rows[1].compute_ms, 1234);
    /* The CSV lines, exactly. */
    char line[USAGE_REPORT_CSV_LINE_MAX];
    usage_report_csv_header(line, sizeof line);
    assert_string_equal(line, "bucket_start,bucket_end,customer_id,api_key_id,model,plan,"
                              "requests,input_tokens,output_tokens,aborted_requests,"
                              "compute_seconds\r\n");
    usage_report_csv_row(&s.rows[1], line, sizeof line);
    assert_string_equal(line, "2031-03-01T01:00:00Z,2031-03-01T02:00:00Z,,,,,1,300,30,0,1.234\r\n");
    /* Clipped to a start inside the hour. */
    run(&w, "2031-03-01T00:30:00Z", "2031-03-01T01:10:00Z", "1h", "", NULL, &s);
    assert_int_equal(s.n, 2);
    assert_int_equal(s.rows[0].bucket_start, ff_at("2031-03-01T00:30:00Z"));
    assert_int_equal(s.rows[0].requests, 1);
    assert_int_equal(s.rows[1].bucket_end, ff_at("2031-03-01T01:10:00Z"));
    fixture_close(&w.f);
}

static void test_days_by_customer(void **state)
{
    (void)state;
    struct world w;
    world_open(&w);
    struct seen s;
    run(&w, "2031-03-01", "2031-04-01", "1d", "customer_id", NULL, &s);
    assert_int_equal(s.buckets, 3); /* Mar 1, Mar 15, Mar 31: empty days are not listed */
    assert_int_equal(s.n, 3);
    assert_string_equal(s.rows[0].customer_id, w.a);
    assert_int_equal(s.rows[0].requests, 3);
    assert_string_equal(s.rows[1].customer_id, w.b);
    assert_int_equal(s.rows[1].bucket_start, ff_at("2031-03-15"));
    assert_int_equal(s.rows[2].bucket_start, ff_at("2031-03-31"));
    assert_int_equal(s.rows[2].input_tokens, 1); /* 23:59:59.999 is still March 31 */
    /* One customer only. */
    run(&w, "2031-03-01", "2031-04-01", "1d", "", w.b, &s);
    assert_int_equal(s.n, 1);
    assert_int_equal(s.rows[0].input_tokens, 1000);
    fixture_close(&w.f);
}

static void test_calendar_months_and_groups(void **state)
{
    (void)state;
    struct world w;
    world_open(&w);
    struct seen s;
    run(&w, "2031-02-15", "2031-04-15", "1mo", "customer_id,model,plan", NULL, &s);
    assert_int_equal(s.buckets, 2);
    /* March: A/m1, A/m2, B/m1, sorted by customer then model. */
    int a_m1 = -1, a_m2 = -1, b_m1 = -1;
    for (int i = 0; i < 3; i++) {
        assert_int_equal(s.rows[i].bucket_start, ff_at("2031-03-01"));
        assert_int_equal(s.rows[i].bucket_end, ff_at("2031-04-01"));
        bool is_a = strcmp(s.rows[i].customer_id, w.a) == 0;
        if (is_a && strcmp(s.rows[i].model, "m1") == 0)
            a_m1 = i;
        else if (is_a)
            a_m2 = i;
        else
            b_m1 = i;
    }
    assert_true(a_m1 >= 0 && a_m2 >= 0 && b_m1 >= 0);
    assert_int_equal(s.rows[a_m1].requests, 3);
    assert_int_equal(s.rows[a_m1].input_tokens, 301);
    assert_string_equal(s.rows[a_m1].plan_id, "free");
    assert_string_equal(s.rows[b_m1].plan_id, "pro");
    assert_null(s.rows[a_m1].api_key_id);
    /* April is clipped to the query's end. */
    assert_int_equal(s.rows[3].bucket_start, ff_at("2031-04-01"));
    assert_int_equal(s.rows[3].bucket_end, ff_at("2031-04-15"));
    assert_int_equal(s.rows[3].input_tokens, 5);
    /* Month boundaries: December to January, February in a leap year. */
    assert_int_equal(usage_report_bucket_next(USAGE_BUCKET_MONTH, ff_at("2031-12-31T23:00:00Z")),
                     ff_at("2032-01-01"));
    assert_int_equal(usage_report_bucket_next(USAGE_BUCKET_MONTH, ff_at("2032-02-10")),
                     ff_at("2032-03-01"));
    assert_int_equal(usage_report_bucket_floor(USAGE_BUCKET_HOUR, ff_at("2031-03-01T05:59:59Z")),
                     ff_at("2031-03-01T05:00:00Z"));
    fixture_close(&w.f);
}

static void test_csv_fill_streams_in_chunks(void **state)
{
    (void)state;
    struct world w;
    world_open(&w);
    struct usage_report_query q = {.start = ff_at("2031-03-01"), .end = ff_at("2031-05-01"),
                                   .bucket = USAGE_BUCKET_HOUR,
                                   .group_by = USAGE_GROUP_CUSTOMER | USAGE_GROUP_KEY};
    struct err e = {0};
    struct usage_report *r = NULL;
    assert_true(usage_report_open(w.f.db, &q, &r, &e));
    char *buf = NULL;
    size_t len = 0, cap = 0;
    bool done = false;
    int calls = 0;
    while (!done) {
        assert_true(usage_report_csv_fill(r, &buf, &len, &cap, len + 1, &done, &e));
        calls++;
    }
    usage_report_close(r);
    assert_int_equal(calls, 6); /* one bucket per call with a 1-byte goal, then done */
    int lines = 0;
    for (size_t i = 0; i < len; i++)
        lines += buf[i] == '\n';
    assert_int_equal(lines, 5);
    free(buf);
    /* Bad input. */
    enum usage_bucket b;
    unsigned g;
    assert_false(usage_report_parse_bucket("1w", &b, &e));
    assert_string_equal(e.param, "bucket_width");
    assert_false(usage_report_parse_group_by("model,project", &g, &e));
    assert_string_equal(e.param, "group_by");
    q.end = q.start;
    assert_false(usage_report_open(w.f.db, &q, &r, &e));
    fixture_close(&w.f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hours),
        cmocka_unit_test(test_days_by_customer),
        cmocka_unit_test(test_calendar_months_and_groups),
        cmocka_unit_test(test_csv_fill_streams_in_chunks),
    };
    return cmocka_run_group_tests_name("usage_report", tests, NULL, NULL);
}

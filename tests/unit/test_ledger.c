/* test_ledger.c — the usage ledger (server/ledger.c): a request is
 * recorded once however often it is submitted, through the real writer
 * thread; the daily rollup agrees with the ledger; rows are immutable and
 * hold no text. */
#include "tests/unit/testutil.h"

#include <stdio.h>
#include <string.h>
#include <uv.h>

#include "server/caltime.h"
#include "server/ledger.h"
#include "server/mailbox.h"
#include "server/sq.h"
#include "server/store.h"
#include "server/writer.h"
#include "tests/unit/tenancy_fixture.h"

#define DAY0 1893456000000LL /* 2030-01-01 */

static void record(struct usage_record *r, const char *customer, const char *key, const char *id,
                   int64_t started, int64_t prompt, int64_t completion)
{
    memset(r, 0, sizeof *r);
    snprintf(r->request_id, sizeof r->request_id, "%s", id);
    snprintf(r->customer_id, sizeof r->customer_id, "%s", customer);
    snprintf(r->api_key_id, sizeof r->api_key_id, "%s", key);
    snprintf(r->model, sizeof r->model, "stories");
    snprintf(r->endpoint, sizeof r->endpoint, "/v1/chat/completions");
    snprintf(r->finish_reason, sizeof r->finish_reason, "stop");
    r->prompt_tokens = prompt;
    r->completion_tokens = completion;
    r->status = 200;
    r->queue_ms = 3;
    r->compute_ms = 40;
    r->started_at = started;
    r->finished_at = started + 43;
    r->plan_version_id = 1;
}

static int64_t count(sqlite3 *db, const char *sql)
{
    int64_t n = -1;
    struct err e = {0};
    if (!sq_int(db, sql, &n, NULL, &e, SQ_END))
        fail_msg("%s", e.msg);
    return n;
}

struct waiter {
    int done, failed;
};

static void on_done(void *arg, const struct err *e)
{
    struct waiter *w = arg;
    w->done++;
    if (e)
        w->failed++;
}

static void test_recorded_once_through_the_writer(void **state)
{
    (void)state;
    struct fixture f;
    fixture_open(&f);
    char cus[40], kid[40], secret[APIKEY_LEN + 1];
    fixture_customer(&f, "Acme", cus);
    fixture_key(&f, cus, SCOPE_INFERENCE, kid, secret);

    uv_loop_t loop;
    uv_loop_init(&loop);
    struct mailbox mb;
    mailbox_init(&mb, &loop);
    struct writer *w;
    struct err e = {0};
    assert_true(writer_start(f.db_path, &mb, &w, &e));
    struct waiter wt = {0};
    struct usage_record r;
    record(&r, cus, kid, "req_1", DAY0 + 1000, 100, 20);
    /* The same request three times (a retried completion path), and a second one. */
    ledger_record(w, &r, on_done, &wt);
    ledger_record(w, &r, on_done, &wt);
    ledger_record(w, &r, on_done, &wt);
    record(&r, cus, kid, "req_2", DAY0 + 2000, 50, 5);
    ledger_record(w, &r, on_done, &wt);
    while (wt.done < 4)
        uv_run(&loop, UV_RUN_ONCE);
    assert_int_equal(wt.failed, 0);
    writer_stop(w);
    mailbox_close(&mb);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);

    assert_int_equal(count(f.db, "SELECT count(*) FROM usage_ledger"), 2);
    assert_int_equal(count(f.db, "SELECT sum(requests) FROM usage_daily"), 2);
    assert_int_equal(count(f.db, "SELECT sum(prompt_tokens) FROM usage_daily"), 150);
    assert_int_equal(count(f.db, "SELECT count(*) FROM usage_ledger WHERE recorded_at > 0"), 2);
    fixture_close(&f);
}

static void test_insert_reports_duplicates_and_refuses_edits(void **state)
{
    (void)state;
    struct fixture f;
    fixture_open(&f);
    char cus[40], kid[40], secret[APIKEY_LEN + 1];
    fixture_customer(&f, "Acme", cus);
    fixture_key(&f, cus, SCOPE_INFERENCE, kid, secret);
    struct usage_record r;
    record(&r, cus, kid, "req_a", DAY0, 10, 1);
    struct err e = {0};
    bool inserted = false;
    assert_true(ledger_insert(f.db, &r, DAY0 + 50, &inserted, &e));
    assert_true(inserted);
    r.prompt_tokens = 999; /* a different count for the same request: still ignored */
    assert_true(ledger_insert(f.db, &r, DAY0 + 60, &inserted, &e));
    assert_false(inserted);
    assert_int_equal(count(f.db, "SELECT prompt_tokens FROM usage_ledger"), 10);
    assert_false(sq_exec(f.db, "UPDATE usage_ledger SET prompt_tokens = 0", NULL, &e, SQ_END));
    assert_non_null(strstr(e.msg, "append-only"));
    assert_false(sq_exec(f.db, "DELETE FROM usage_ledger", NULL, &e, SQ_END));
    /* The ledger has no column that could hold prompt or completion text. */
    assert_int_equal(count(f.db, "SELECT count(*) FROM pragma_table_info('usage_ledger') WHERE "
                                 "type = 'TEXT' AND name NOT IN ('request_id', 'customer_id', "
                                 "'api_key_id', 'model', 'endpoint', 'finish_reason')"), 0);
    /* Foreign keys: a ledger row names a real customer and key. */
    record(&r, "cus_nobody", kid, "req_b", DAY0, 1, 1);
    assert_false(ledger_insert(f.db, &r, DAY0, &inserted, &e));
    fixture_close(&f);
}

static void test_period_usage(void **state)
{
    (void)state;
    struct fixture f;
    fixture_open(&f);
    char cus[40], other[40], kid[40], kid2[40], secret[APIKEY_LEN + 1];
    fixture_customer(&f, "Acme", cus);
    fixture_customer(&f, "Other", other);
    fixture_key(&f, cus, SCOPE_INFERENCE, kid, secret);
    fixture_key(&f, other, SCOPE_INFERENCE, kid2, secret);
    struct err e = {0};
    struct usage_record r;
    char id[32];
    /* 3 days, 4 requests a day, plus one just before and one at the end. */
    fixture_begin(&f);
    for (int d = 0; d < 3; d++) {
        for (int i = 0; i < 4; i++) {
            snprintf(id, sizeof id, "req_%d_%d", d, i);
            record(&r, cus, kid, id, DAY0 + d * CALTIME_DAY_MS + i * 3600000, 100, 10);
            assert_true(ledger_insert(f.db, &r, 0, NULL, &e));
        }
    }
    record(&r, cus, kid, "req_before", DAY0 - 1, 1000, 1000);
    assert_true(ledger_insert(f.db, &r, 0, NULL, &e));
    record(&r, cus, kid, "req_end", DAY0 + 3 * CALTIME_DAY_MS, 1000, 1000);
    assert_true(ledger_insert(f.db, &r, 0, NULL, &e));
    record(&r, other, kid2, "req_other", DAY0 + 5, 7777, 7777);
    assert_true(ledger_insert(f.db, &r, 0, NULL, &e));
    fixture_commit(&f);

    struct usage_totals u;
    assert_true(ledger_usage(f.db, cus, DAY0, DAY0 + 3 * CALTIME_DAY_MS, &u, &e));
    assert_int_equal(u.requests, 12);
    assert_int_equal(u.prompt_tokens, 1200);
    assert_int_equal(u.completion_tokens, 120);
    /* Unaligned bounds read the ledger itself and agree with it. */
    assert_true(ledger_usage(f.db, cus, DAY0 + 1, DAY0 + 3 * CALTIME_DAY_MS, &u, &e));
    assert_int_equal(u.requests, 11);
    assert_true(ledger_usage(f.db, cus, DAY0 - 1, DAY0, &u, &e));
    assert_int_equal(u.prompt_tokens, 1000);
    assert_true(ledger_usage(f.db, other, DAY0, DAY0 + CALTIME_DAY_MS, &u, &e));
    assert_int_equal(u.requests, 1);
    fixture_close(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_recorded_once_through_the_writer),
        cmocka_unit_test(test_insert_reports_duplicates_and_refuses_edits),
        cmocka_unit_test(test_period_usage),
    };
    return cmocka_run_group_tests_name("ledger", tests, NULL, NULL);
}

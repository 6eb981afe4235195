/* test_tenancy_store.c — customers, keys, subscriptions and credits on a
 * real database (server/customers.c, keys.c, subscriptions.c, credits.c):
 * each change writes its audit row, secrets are never stored, one live
 * subscription per customer, and time moves subscriptions along. */
#include "tests/unit/testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/audit.h"
#include "server/caltime.h"
#include "server/credits.h"
#include "server/customers.h"
#include "server/keys.h"
#include "server/plans.h"
#include "server/sq.h"
#include "server/store.h"
#include "server/subscriptions.h"
#include "tests/unit/tenancy_fixture.h"

static int64_t at(const char *s)
{
    int64_t ms = 0;
    struct err e = {0};
    if (!caltime_parse(s, &ms, &e))
        fail_msg("%s", e.msg);
    return ms;
}

static int64_t count(struct fixture *f, const char *sql)
{
    struct err e = {0};
    int64_t n = -1;
    if (!sq_int(f->db, sql, &n, NULL, &e, SQ_END))
        fail_msg("%s", e.msg);
    return n;
}

static void test_customers(void **state)
{
    (void)state;
    struct fixture f;
    fixture_open(&f);
    struct err e = {0};
    char *json = NULL;
    fixture_begin(&f);
    assert_false(customers_create(f.db, "t", "", NULL, 1, &json, &e));
    assert_string_equal(e.param, "name");
    assert_false(customers_create(f.db, "t", "A", "not-an-email", 1, &json, &e));
    assert_string_equal(e.param, "email");
    fixture_commit(&f);
    char ids[5][40];
    for (int i = 0; i < 5; i++) {
        char name[16];
        snprintf(name, sizeof name, "C%d", i);
        fixture_customer(&f, name, ids[i]);
        assert_memory_equal(ids[i], "cus_", 4);
        assert_int_equal(strlen(ids[i]), 24);
    }
    /* Pagination: limit + after, ordered by (created_at, id), every customer
     * exactly once across pages. */
    char seen[5][40];
    int n_seen = 0;
    const char *after = NULL;
    char cursor[40];
    for (int pages = 0; pages < 3; pages++) {
        cJSON *page = NULL;
        assert_true(customers_list(f.db, 2, after, &page, &e));
        const cJSON *it;
        cJSON_ArrayForEach(it, cJSON_GetObjectItem(page, "data"))
            snprintf(seen[n_seen++], 40, "%s", cJSON_GetStringValue(cJSON_GetObjectItem(it, "id")));
        bool more = cJSON_IsTrue(cJSON_GetObjectItem(page, "has_more"));
        assert_int_equal(more, pages < 2);
        snprintf(cursor, sizeof cursor, "%s",
                 cJSON_GetStringValue(cJSON_GetObjectItem(page, "last_id")));
        after = cursor;
        cJSON_Delete(page);
    }
    assert_int_equal(n_seen, 5);
    for (int i = 0; i < 5; i++) {
        int hits = 0;
        for (int j = 0; j < 5; j++)
            hits += strcmp(ids[i], seen[j]) == 0;
        assert_int_equal(hits, 1);
    }
    cJSON *page = NULL;
    assert_false(customers_list(f.db, 10, "cus_nope", &page, &e));
    assert_string_equal(e.param, "after");

    fixture_begin(&f);
    struct customer_update u = {.name = "Renamed", .email = "a@b.test", .status = "suspended"};
    assert_true(customers_update(f.db, "t", ids[0], &u, 10, &json, &e));
    assert_string_equal(fixture_json_str(json, "status"), "suspended");
    assert_string_equal(fixture_json_str(json, "email"), "a@b.test");
    free(json);
    struct customer_update bad = {.status = "deleted"};
    assert_false(customers_update(f.db, "t", ids[0], &bad, 10, &json, &e));
    assert_string_equal(e.param, "status");
    free(json);
    fixture_commit(&f);
    /* 5 creations + 1 update audited; the update keeps before and after. */
    assert_int_equal(count(&f, "SELECT count(*) FROM audit_log"), 6);
    assert_int_equal(count(&f, "SELECT count(*) FROM audit_log WHERE action = 'customer.update' "
                               "AND before_json LIKE '%\"C0\"%' AND after_json LIKE '%Renamed%'"), 1);
    fixture_close(&f);
}

static void test_keys_never_store_secrets(void **state)
{
    (void)state;
    struct fixture f;
    fixture_open(&f);
    struct err e = {0};
    char cus[40], kid[40], secret[APIKEY_LEN + 1];
    fixture_customer(&f, "Acme", cus);
    fixture_key(&f, cus, SCOPE_INFERENCE, kid, secret);
    assert_true(apikey_check_format(secret, strlen(secret), &e));
    /* Nowhere in the database: not in api_keys, not in the audit log. */
    char sql[512];
    snprintf(sql, sizeof sql,
             "SELECT (SELECT count(*) FROM api_keys WHERE instr(name || display_prefix || scopes, '%s'))"
             " + (SELECT count(*) FROM audit_log WHERE instr(coalesce(after_json, ''), '%s'))",
             secret + 8, secret + 8);
    assert_int_equal(count(&f, sql), 0);
    /* The stored hash is HMAC(pepper, secret). */
    uint8_t h[32];
    assert_true(apikey_hash(f.pepper, secret, strlen(secret), h, &e));
    sqlite3_stmt *st;
    assert_true(sq_prepare(f.db, "SELECT count(*) FROM api_keys WHERE hash = ?", &st, &e,
                           SQ_BLOB(h, 32), SQ_END));
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(st, 0), 1);
    sqlite3_finalize(st);

    /* Issue refuses an unknown customer and past expiry. */
    char *json = NULL;
    char s2[APIKEY_LEN + 1];
    struct key_issue in = {.customer_id = "cus_nope", .scopes = SCOPE_INFERENCE};
    fixture_begin(&f);
    assert_false(keys_issue(f.db, "t", f.pepper, &in, 100, s2, &json, &e));
    assert_int_equal(e.code, ERR_NOT_FOUND);
    assert_string_equal(s2, "");
    in.customer_id = cus;
    in.expires_at = 50;
    assert_false(keys_issue(f.db, "t", f.pepper, &in, 100, s2, &json, &e));
    assert_string_equal(e.param, "expires_at");
    fixture_commit(&f);
    free(json);
    fixture_close(&f);
}

static void test_revoke_and_rotate(void **state)
{
    (void)state;
    struct fixture f;
    fixture_open(&f);
    struct err e = {0};
    char cus[40], kid[40], secret[APIKEY_LEN + 1], new_secret[APIKEY_LEN + 1];
    fixture_customer(&f, "Acme", cus);
    fixture_key(&f, cus, SCOPE_INFERENCE | SCOPE_USAGE_READ, kid, secret);
    char *json = NULL;
    int64_t now = store_now_ms();
    fixture_begin(&f);
    assert_true(keys_rotate(f.db, "t", f.pepper, kid, 3600000, now, new_secret, &json, &e));
    fixture_commit(&f);
    assert_string_not_equal(secret, new_secret);
    char new_id[40];
    snprintf(new_id, sizeof new_id, "%s", fixture_json_str(json, "id"));
    assert_string_not_equal(new_id, kid);
    assert_string_equal(fixture_json_str(json, "customer_id"), cus);
    free(json);
    assert_true(keys_get(f.db, kid, &json, &e));
    assert_int_equal(fixture_json_int(json, "revoked_at"), now + 3600000); /* grace */
    assert_string_equal(fixture_json_str(json, "rotated_to"), new_id);
    free(json);
    /* Rotating again is refused; revoking ends the grace at once. */
    fixture_begin(&f);
    assert_false(keys_rotate(f.db, "t", f.pepper, kid, 0, now, new_secret, &json, &e));
    assert_int_equal(e.code, ERR_CONFLICT);
    free(json);
    assert_true(keys_revoke(f.db, "t", kid, now + 5, &json, &e));
    assert_int_equal(fixture_json_int(json, "revoked_at"), now + 5);
    free(json);
    assert_true(keys_revoke(f.db, "t", kid, now + 9, &json, &e)); /* keeps the first instant */
    assert_int_equal(fixture_json_int(json, "revoked_at"), now + 5);
    free(json);
    fixture_commit(&f);
    cJSON *list = NULL;
    assert_true(keys_list(f.db, cus, 10, NULL, &list, &e));
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(list, "data")), 2);
    cJSON_Delete(list);
    assert_int_equal(count(&f, "SELECT count(*) FROM audit_log WHERE action LIKE 'key.%'"), 5);

    /* last_used_at moves at most once a minute. */
    assert_true(keys_touch(f.db, new_id, 1000000, &e));
    assert_true(keys_touch(f.db, new_id, 1030000, &e));
    assert_true(keys_get(f.db, new_id, &json, &e));
    assert_int_equal(fixture_json_int(json, "last_used_at"), 1000000);
    free(json);
    assert_true(keys_touch(f.db, new_id, 1060000, &e));
    assert_true(keys_get(f.db, new_id, &json, &e));
    assert_int_equal(fixture_json_int(json, "last_used_at"), 1060000);
    free(json);
    fixture_close(&f);
}

static void test_erasure(void **state)
{
    (void)state;
    struct fixture f;
    fixture_open(&f);
    struct err e = {0};
    char cus[40], kid[40], secret[APIKEY_LEN + 1];
    fixture_customer(&f, "Private Person", cus);
    fixture_key(&f, cus, SCOPE_INFERENCE, kid, secret);
    fixture_subscribe(&f, cus, "free", store_now_ms());
    char *json = NULL;
    struct customer_update u = {.status = "erased"};
    fixture_begin(&f);
    assert_true(customers_update(f.db, "t", cus, &u, store_now_ms(), &json, &e));
    fixture_commit(&f);
    assert_string_equal(fixture_json_str(json, "name"), "(erased)");
    free(json);
    assert_int_equal(count(&f, "SELECT count(*) FROM api_keys WHERE revoked_at IS NULL"), 0);
    assert_int_equal(count(&f, "SELECT count(*) FROM subscriptions WHERE status <> 'canceled'"), 0);
    fixture_begin(&f);
    struct customer_update back = {.status = "active"};
    assert_false(customers_update(f.db, "t", cus, &back, store_now_ms(), &json, &e));
    assert_int_equal(e.code, ERR_CONFLICT);
    free(json);
    fixture_commit(&f);
    fixture_close(&f);
}

static void test_subscription_lifecycle(void **state)
{
    (void)state;
    struct fixture f;
    fixture_open(&f);
    struct err e = {0};
    char cus[40];
    fixture_customer(&f, "Acme", cus);
    char *json = NULL;
    int64_t t0 = at("2031-01-31T15:30:00Z");
    fixture_begin(&f);
    assert_true(subscriptions_create(f.db, "t", cus, "pro", 0, t0, &json, &e));
    /* Pro has a 14-day trial; the anchor is the 31st. */
    assert_string_equal(fixture_json_str(json, "status"), "trialing");
    assert_int_equal(fixture_json_int(json, "billing_anchor_day"), 31);
    assert_int_equal(fixture_json_int(json, "current_period_start"), at("2031-01-31"));
    assert_int_equal(fixture_json_int(json, "current_period_end"), at("2031-02-28"));
    assert_int_equal(fixture_json_int(json, "trial_end"), t0 + 14 * CALTIME_DAY_MS);
    free(json);
    /* One live subscription per customer. */
    assert_false(subscriptions_create(f.db, "t", cus, "free", 0, t0, &json, &e));
    assert_int_equal(e.code, ERR_CONFLICT);
    free(json);
    fixture_commit(&f);

    /* Time passes: trial ends Feb 14, period renews Feb 28, Mar 31. */
    int n = 0, failed = 0;
    fixture_begin(&f);
    assert_true(subscriptions_roll(f.db, at("2031-04-01"), &n, &failed, &e));
    assert_int_equal(failed, 0);
    fixture_commit(&f);
    assert_int_equal(n, 1);
    assert_true(subscriptions_get(f.db, cus, &json, &e));
    assert_string_equal(fixture_json_str(json, "status"), "active");
    assert_int_equal(fixture_json_int(json, "current_period_start"), at("2031-03-31"));
    assert_int_equal(fixture_json_int(json, "current_period_end"), at("2031-04-30"));
    free(json);
    assert_int_equal(count(&f, "SELECT group_concat(kind) = 'created,trial_ended,renewed,renewed' "
                               "FROM (SELECT kind FROM subscription_changes ORDER BY id)"), 1);

    /* Change to enterprise (yearly): the anchor moves to the change day. */
    int64_t t1 = at("2031-04-10T09:00:00Z");
    fixture_begin(&f);
    assert_true(subscriptions_change_plan(f.db, "t", cus, "enterprise", t1, &json, &e));
    assert_int_equal(fixture_json_int(json, "current_period_start"), at("2031-04-10"));
    assert_int_equal(fixture_json_int(json, "current_period_end"), at("2032-04-10"));
    free(json);
    assert_false(subscriptions_change_plan(f.db, "t", cus, "enterprise", t1, &json, &e));
    free(json);
    /* Cancel at period end, then the renewal cancels instead. */
    assert_true(subscriptions_cancel(f.db, "t", cus, true, t1 + 1, &json, &e));
    free(json);
    assert_true(subscriptions_roll(f.db, at("2032-05-01"), &n, &failed, &e));
    fixture_commit(&f);
    assert_true(subscriptions_get(f.db, cus, &json, &e));
    assert_string_equal(fixture_json_str(json, "status"), "canceled");
    assert_int_equal(fixture_json_int(json, "canceled_at"), at("2032-04-10"));
    free(json);
    /* The plan change is recorded with its instant and both versions. */
    assert_int_equal(count(&f, "SELECT count(*) FROM subscription_changes c JOIN plan_versions a "
                               "ON a.id = c.from_plan_version_id JOIN plan_versions b ON b.id = "
                               "c.to_plan_version_id WHERE c.kind = 'plan_changed' AND "
                               "a.plan_id = 'pro' AND b.plan_id = 'enterprise' AND c.at = 1933578000000"),
                     1);
    /* A new subscription after cancellation: allowed, but no second trial. */
    fixture_begin(&f);
    assert_true(subscriptions_create(f.db, "t", cus, "pro", 0, at("2032-06-01"), &json, &e));
    assert_string_equal(fixture_json_str(json, "status"), "active");
    free(json);
    assert_true(subscriptions_cancel(f.db, "t", cus, false, at("2032-06-02"), &json, &e));
    free(json);
    fixture_commit(&f);
    assert_int_equal(count(&f, "SELECT count(*) FROM audit_log WHERE action LIKE 'subscription.%'"), 5);
    assert_false(sq_exec(f.db, "DELETE FROM subscription_changes", NULL, &e, SQ_END));
    fixture_close(&f);
}

static void test_renewal_isolates_failures(void **state)
{
    (void)state;
    struct fixture f;
    fixture_open(&f);
    struct err e = {0};
    char good[40], bad[40];
    fixture_customer(&f, "Good", good);
    fixture_customer(&f, "Bad", bad);
    fixture_subscribe(&f, good, "free", at("2031-01-05T10:00:00Z"));
    /* A plan whose only version starts in the future cannot price a past
     * renewal: that subscription must not hold the other back. */
    int64_t future = store_now_ms() + 365 * CALTIME_DAY_MS;
    cJSON *in = cJSON_Parse("{\"billing_interval\":\"month\",\"base_fee_micros\":0,"
                            "\"included_tokens\":1,\"price_input_per_1m_micros\":0,"
                            "\"price_output_per_1m_micros\":0,\"requests_per_minute\":1,"
                            "\"tokens_per_minute\":1,\"max_concurrent_requests\":1,"
                            "\"max_tokens_per_request\":1,\"hard_cap\":true}");
    cJSON_AddNumberToObject(in, "effective_from", (double)future);
    char *json = NULL;
    fixture_begin(&f);
    assert_true(plans_create_version(f.db, "t", "later", NULL, in, store_now_ms(), &json, &e));
    free(json);
    cJSON_Delete(in);
    assert_true(sq_exec(f.db,
                        "INSERT INTO subscriptions (id, customer_id, plan_id, status, "
                        "billing_anchor_day, billing_anchor_month, current_period_start, "
                        "current_period_end, created_at, updated_at) VALUES ('sub_bad', ?, "
                        "'later', 'active', 5, 1, ?, ?, 0, 0)",
                        NULL, &e, SQ_TEXT(bad), SQ_INT(future - 31 * CALTIME_DAY_MS),
                        SQ_INT(future - CALTIME_DAY_MS), SQ_END));
    int n = 0, failed = 0;
    assert_true(subscriptions_roll(f.db, at("2031-02-10"), &n, &failed, &e));
    fixture_commit(&f);
    assert_int_equal(n, 1);
    assert_int_equal(failed, 1);
    assert_non_null(strstr(e.msg, "sub_bad"));
    assert_int_equal(count(&f, "SELECT count(*) FROM subscription_changes WHERE kind = 'renewed'"), 1);
    assert_int_equal(count(&f, "SELECT current_period_end FROM subscriptions WHERE id = 'sub_bad'"),
                     future - CALTIME_DAY_MS);
    fixture_close(&f);
}

static void test_credits(void **state)
{
    (void)state;
    struct fixture f;
    fixture_open(&f);
    struct err e = {0};
    char cus[40];
    fixture_customer(&f, "Acme", cus);
    char *json = NULL;
    struct credit_grant g = {.customer_id = cus, .kind = "promotional", .unit = "tokens",
                             .amount = 50000, .reason = "launch"};
    fixture_begin(&f);
    assert_true(credits_grant(f.db, "t", &g, 100, &json, &e));
    assert_int_equal(fixture_json_int(json, "remaining"), 50000);
    free(json);
    struct credit_grant m = {.customer_id = cus, .kind = "prepaid", .unit = "micros",
                             .currency = "USD", .amount = 10000000, .reason = "top-up",
                             .expires_at = 200};
    assert_true(credits_grant(f.db, "t", &m, 101, &json, &e));
    free(json);
    m.currency = NULL;
    assert_false(credits_grant(f.db, "t", &m, 101, &json, &e));
    assert_string_equal(e.param, "currency");
    free(json);
    g.amount = 0;
    assert_false(credits_grant(f.db, "t", &g, 101, &json, &e));
    free(json);
    fixture_commit(&f);
    cJSON *list = NULL;
    assert_true(credits_list(f.db, cus, 1, NULL, &list, &e));
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(list, "has_more")));
    cJSON_Delete(list);
    fixture_close(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_customers),
        cmocka_unit_test(test_keys_never_store_secrets),
        cmocka_unit_test(test_revoke_and_rotate),
        cmocka_unit_test(test_erasure),
        cmocka_unit_test(test_subscription_lifecycle),
        cmocka_unit_test(test_renewal_isolates_failures),
        cmocka_unit_test(test_credits),
    };
    return cmocka_run_group_tests_name("tenancy_store", tests, NULL, NULL);
}

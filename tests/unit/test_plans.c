/* test_plans.c — plan versions: history is never rewritten (triggers in
 * migrations/0002_tenancy.sql), versions copy what they do not change,
 * the version in force at an instant, and the rating rule
 * (server/plans.c). */
#include "tests/unit/testutil.h"

#include <stdlib.h>
#include <string.h>

#include "server/caltime.h"
#include "server/plans.h"
#include "server/sq.h"
#include "server/store.h"
#include "tests/unit/tenancy_fixture.h"

static void test_seeded_plans(void **state)
{
    (void)state;
    struct fixture f;
    fixture_open(&f);
    struct err e = {0};
    struct plan_version v;
    assert_true(plans_version_at(f.db, "free", store_now_ms(), &v, &e));
    assert_true(v.hard_cap);
    assert_int_equal(v.included_tokens, 100000);
    assert_int_equal(v.interval_months, 1);
    assert_true(plans_version_at(f.db, "pro", store_now_ms(), &v, &e));
    assert_false(v.hard_cap);
    assert_int_equal(v.base_fee_micros, 20000000);
    assert_int_equal(v.trial_days, 14);
    assert_true(plans_version_at(f.db, "enterprise", store_now_ms(), &v, &e));
    assert_int_equal(v.interval_months, 12);
    assert_false(plans_version_at(f.db, "gold", store_now_ms(), &v, &e));
    assert_int_equal(e.code, ERR_NOT_FOUND);
    cJSON *list = NULL;
    assert_true(plans_list(f.db, store_now_ms(), &list, &e));
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(list, "data")), 3);
    cJSON_Delete(list);
    fixture_close(&f);
}

static void test_versions_in_force_are_immutable(void **state)
{
    (void)state;
    struct fixture f;
    fixture_open(&f);
    struct err e = {0};
    int changes = 0;
    /* Seeded versions have been in force since 1970. */
    assert_false(sq_exec(f.db, "UPDATE plan_versions SET base_fee_micros = 1 WHERE plan_id = 'pro'",
                         &changes, &e, SQ_END));
    assert_non_null(strstr(e.msg, "in force cannot be changed"));
    assert_false(sq_exec(f.db, "DELETE FROM plan_versions WHERE plan_id = 'free'", &changes, &e,
                         SQ_END));
    assert_non_null(strstr(e.msg, "cannot be deleted"));
    /* Back-dating a new version is refused by the database itself. */
    assert_false(sq_exec(f.db,
                         "INSERT INTO plan_versions (plan_id, version, effective_from, "
                         "billing_interval, currency, base_fee_micros, included_tokens, "
                         "price_input_per_1m_micros, price_output_per_1m_micros, "
                         "price_per_request_micros, requests_per_minute, tokens_per_minute, "
                         "max_concurrent_requests, max_tokens_per_request, scheduler_weight, "
                         "trial_days, hard_cap, created_at) VALUES ('pro', 2, 1000, 'month', "
                         "'USD', 1, 1, 1, 1, 0, 1, 1, 1, 1, 1, 0, 0, 0)",
                         &changes, &e, SQ_END));
    assert_non_null(strstr(e.msg, "in the past"));
    fixture_close(&f);
}

static void test_new_version_copies_and_schedules(void **state)
{
    (void)state;
    struct fixture f;
    fixture_open(&f);
    struct err e = {0};
    int64_t now = store_now_ms();
    int64_t future = now + 30 * CALTIME_DAY_MS;
    cJSON *in = cJSON_CreateObject();
    cJSON_AddNumberToObject(in, "base_fee_micros", 25000000);
    cJSON_AddNumberToObject(in, "effective_from", (double)future);
    char *json = NULL;
    fixture_begin(&f);
    assert_true(plans_create_version(f.db, "test", "pro", NULL, in, now, &json, &e));
    fixture_commit(&f);
    assert_int_equal(fixture_json_int(json, "version"), 2);
    assert_int_equal(fixture_json_int(json, "included_tokens"), 2000000); /* copied */
    int64_t v2 = fixture_json_int(json, "id");
    free(json);
    cJSON_Delete(in);

    struct plan_version v;
    assert_true(plans_version_at(f.db, "pro", now, &v, &e));
    assert_int_equal(v.version, 1);
    assert_int_equal(v.base_fee_micros, 20000000);
    assert_true(plans_version_at(f.db, "pro", future - 1, &v, &e));
    assert_int_equal(v.version, 1);
    assert_true(plans_version_at(f.db, "pro", future, &v, &e));
    assert_int_equal(v.version, 2);
    assert_int_equal(v.base_fee_micros, 25000000);
    assert_int_equal(v.id, v2);

    /* Not yet in force: may still be corrected or withdrawn. */
    int changes = 0;
    assert_true(sq_exec(f.db, "UPDATE plan_versions SET base_fee_micros = 24000000 WHERE id = ?",
                        &changes, &e, SQ_INT(v2), SQ_END));
    assert_int_equal(changes, 1);
    /* ... but not moved into the past, and versions stay in order. */
    assert_false(sq_exec(f.db, "UPDATE plan_versions SET effective_from = 5 WHERE id = ?", &changes,
                         &e, SQ_INT(v2), SQ_END));
    in = cJSON_CreateObject();
    cJSON_AddNumberToObject(in, "effective_from", (double)(future - CALTIME_DAY_MS));
    fixture_begin(&f);
    assert_false(plans_create_version(f.db, "test", "pro", NULL, in, now, &json, &e));
    assert_non_null(strstr(e.msg, "after the latest version"));
    fixture_commit(&f);
    free(json);
    cJSON_Delete(in);
    assert_true(sq_exec(f.db, "DELETE FROM plan_versions WHERE id = ?", &changes, &e, SQ_INT(v2),
                        SQ_END));
    assert_int_equal(changes, 1);
    fixture_close(&f);
}

static void test_new_plan_needs_every_field(void **state)
{
    (void)state;
    struct fixture f;
    fixture_open(&f);
    struct err e = {0};
    char *json = NULL;
    cJSON *in = cJSON_Parse("{\"billing_interval\":\"month\",\"base_fee_micros\":5000000}");
    fixture_begin(&f);
    assert_false(plans_create_version(f.db, "test", "team", "Team", in, store_now_ms(), &json, &e));
    assert_string_equal(e.param, "included_tokens");
    cJSON_Delete(in);
    in = cJSON_Parse("{\"billing_interval\":\"month\",\"base_fee_micros\":5000000,"
                     "\"included_tokens\":500000,\"price_input_per_1m_micros\":400000,"
                     "\"price_output_per_1m_micros\":1200000,\"requests_per_minute\":100,"
                     "\"tokens_per_minute\":50000,\"max_concurrent_requests\":4,"
                     "\"max_tokens_per_request\":2048,\"hard_cap\":false,"
                     "\"allowed_models\":[\"stories\"],\"bogus\":1}");
    assert_false(plans_create_version(f.db, "test", "team", "Team", in, store_now_ms(), &json, &e));
    assert_string_equal(e.param, "bogus");
    cJSON_DeleteItemFromObject(in, "bogus");
    assert_true(plans_create_version(f.db, "test", "team", "Team", in, store_now_ms(), &json, &e));
    fixture_commit(&f);
    assert_int_equal(fixture_json_int(json, "version"), 1);
    free(json);
    cJSON_Delete(in);
    struct plan_version v;
    assert_true(plans_version_at(f.db, "team", store_now_ms(), &v, &e));
    assert_int_equal(v.n_models, 1);
    assert_true(plans_model_allowed(&v, "stories"));
    assert_false(plans_model_allowed(&v, "other"));
    assert_int_equal(v.scheduler_weight, 1);
    fixture_close(&f);
}

/* The worked example of docs/billing.md ("A pro customer's month"). */
static void test_rating_worked_example(void **state)
{
    (void)state;
    struct fixture f;
    fixture_open(&f);
    struct err e = {0};
    struct plan_version pro;
    assert_true(plans_version_at(f.db, "pro", store_now_ms(), &pro, &e));
    struct plan_charges c;
    plans_rate(&pro, 1500000, 1200000, 420, &c);
    /* 2M included: 1.5M input covered, 0.5M of the output covered. */
    assert_int_equal(c.overage_input_tokens, 0);
    assert_int_equal(c.overage_output_tokens, 700000);
    assert_int_equal(c.base_fee_micros, 20000000);
    assert_int_equal(c.input_micros, 0);
    assert_int_equal(c.output_micros, 1050000);     /* 0.7M x $1.50 */
    assert_int_equal(c.request_micros, 0);
    assert_int_equal(c.total_micros, 21050000);     /* $21.05 */
    /* Heavier month: both kinds over. */
    plans_rate(&pro, 2600000, 900000, 1000, &c);
    assert_int_equal(c.overage_input_tokens, 600000);
    assert_int_equal(c.overage_output_tokens, 900000);
    assert_int_equal(c.total_micros, 20000000 + 300000 + 1350000);
    /* Rounding: half a micro-unit rounds up, on the period total. */
    struct plan_version odd = pro;
    odd.included_tokens = 0;
    odd.price_input_per_1m_micros = 1;
    odd.price_output_per_1m_micros = 0;
    plans_rate(&odd, 500000, 0, 0, &c);
    assert_int_equal(c.input_micros, 1);
    plans_rate(&odd, 499999, 0, 0, &c);
    assert_int_equal(c.input_micros, 0);
    fixture_close(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_seeded_plans),
        cmocka_unit_test(test_versions_in_force_are_immutable),
        cmocka_unit_test(test_new_version_copies_and_schedules),
        cmocka_unit_test(test_new_plan_needs_every_field),
        cmocka_unit_test(test_rating_worked_example),
    };
    return cmocka_run_group_tests_name("plans", tests, NULL, NULL);
}

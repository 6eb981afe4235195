/* test_export.c — a customer's export (everything held about them, found
 * from the schema, including tables a later migration adds) and erasure
 * (personal data scrubbed, financial records kept, audited), on a real
 * migrated database. */
#include <cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/credits.h"
#include "server/customers.h"
#include "server/export.h"
#include "server/idempotency.h"
#include "server/ledger.h"
#include "server/sq.h"
#include "server/store.h"
#include "tests/unit/tenancy_fixture.h"
#include "tests/unit/testutil.h"

#define NOW 1790000000000LL

struct world {
    struct fixture f;
    char alice[64], bob[64], alice_key[64], bob_key[64];
};

static void ledger_row(struct world *w, const char *cust, const char *key, const char *rid)
{
    struct usage_record r;
    memset(&r, 0, sizeof r);
    snprintf(r.request_id, sizeof r.request_id, "%s", rid);
    snprintf(r.customer_id, sizeof r.customer_id, "%s", cust);
    snprintf(r.api_key_id, sizeof r.api_key_id, "%s", key);
    snprintf(r.model, sizeof r.model, "demo");
    snprintf(r.endpoint, sizeof r.endpoint, "/v1/chat/completions");
    snprintf(r.finish_reason, sizeof r.finish_reason, "stop");
    r.prompt_tokens = 5;
    r.completion_tokens = 7;
    r.status = 200;
    r.started_at = NOW;
    r.finished_at = NOW + 10;
    int64_t pv = 0;
    struct err e = {0};
    assert_true(sq_int(w->f.db, "SELECT id FROM plan_versions WHERE plan_id = 'pro'", &pv, NULL,
                       &e, SQ_END));
    r.plan_version_id = pv;
    bool inserted = false;
    assert_true(ledger_insert(w->f.db, &r, NOW + 20, &inserted, &e));
    assert_true(inserted);
}

static void world_open(struct world *w)
{
    memset(w, 0, sizeof *w);
    fixture_open(&w->f);
    char secret[128];
    fixture_customer(&w->f, "Alice Example", w->alice);
    fixture_customer(&w->f, "Bob Other", w->bob);
    fixture_key(&w->f, w->alice, SCOPE_INFERENCE, w->alice_key, secret);
    fixture_key(&w->f, w->bob, SCOPE_INFERENCE, w->bob_key, secret);
    fixture_subscribe(&w->f, w->alice, "pro", NOW);
    fixture_subscribe(&w->f, w->bob, "pro", NOW);
    struct err e = {0};
    char *json = NULL;
    fixture_begin(&w->f);
    struct customer_update u = {NULL, "alice@example.com", NULL};
    assert_true(customers_update(w->f.db, "test", w->alice, &u, NOW, &json, &e));
    free(json);
    struct credit_grant g = {w->alice, "promotional", "tokens", NULL, 1000, 0, "welcome"};
    assert_true(credits_grant(w->f.db, "test", &g, NOW, &json, &e));
    free(json);
    ledger_row(w, w->alice, w->alice_key, "req_a1");
    ledger_row(w, w->alice, w->alice_key, "req_a2");
    ledger_row(w, w->bob, w->bob_key, "req_b1");
    uint8_t hash[IDEMPOTENCY_HASH_LEN] = {1, 2, 3};
    const char *body = "{\"choices\":[{\"text\":\"a stored completion\"}]}";
    assert_true(idempotency_store_done(w->f.db, w->alice, "idem-1", hash, 200, body, strlen(body),
                                       NOW, 24LL * 3600 * 1000, &e));
    assert_true(idempotency_store_done(w->f.db, w->bob, "idem-1", hash, 200, body, strlen(body),
                                       NOW, 24LL * 3600 * 1000, &e));
    fixture_commit(&w->f);
}

static cJSON *do_export(struct world *w, const char *id)
{
    char path[4400];
    snprintf(path, sizeof path, "%s/export.json", w->f.dir);
    FILE *out = fopen(path, "w");
    struct err e = {0};
    assert_true(export_customer(w->f.db, id, NOW + 1000, out, &e));
    fclose(out);
    char *text = test_read_file(path, NULL);
    cJSON *j = cJSON_Parse(text);
    free(text);
    assert_non_null(j); /* valid JSON */
    return j;
}

static cJSON *table(cJSON *ex, const char *name)
{
    return cJSON_GetObjectItem(cJSON_GetObjectItem(ex, "tables"), name);
}

/* Every row of `name` belongs to `cust` (through customer_id). */
static void all_of(cJSON *ex, const char *name, const char *cust, int want)
{
    cJSON *rows = table(ex, name), *row;
    assert_non_null(rows);
    assert_int_equal(cJSON_GetArraySize(rows), want);
    cJSON_ArrayForEach(row, rows)
        assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(row, "customer_id")), cust);
}

static void test_export(void **state)
{
    (void)state;
    struct world w;
    world_open(&w);
    cJSON *ex = do_export(&w, w.alice);
    assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(ex, "object")), "customer.export");
    assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(ex, "customer_id")), w.alice);
    cJSON *c = cJSON_GetArrayItem(table(ex, "customers"), 0);
    assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(c, "email")), "alice@example.com");
    all_of(ex, "api_keys", w.alice, 1);
    all_of(ex, "subscriptions", w.alice, 1);
    all_of(ex, "credits", w.alice, 1);
    all_of(ex, "usage_ledger", w.alice, 2);
    all_of(ex, "usage_daily", w.alice, 1);
    all_of(ex, "idempotency_keys", w.alice, 1);
    /* Never the key hash; JSON columns embedded as JSON. */
    cJSON *k = cJSON_GetArrayItem(table(ex, "api_keys"), 0);
    assert_null(cJSON_GetObjectItem(k, "hash"));
    assert_true(cJSON_IsArray(cJSON_GetObjectItem(k, "scopes")));
    /* Reached through a foreign key: the subscription's history. */
    assert_true(cJSON_GetArraySize(table(ex, "subscription_changes")) >= 1);
    /* The stored response is readable text. */
    cJSON *idem = cJSON_GetArrayItem(table(ex, "idempotency_keys"), 0);
    assert_non_null(strstr(cJSON_GetStringValue(cJSON_GetObjectItem(idem, "response_body")),
                           "a stored completion"));
    /* Audit rows about the customer and what it owns, none about Bob. */
    cJSON *audit = table(ex, "audit_log"), *row;
    bool saw_create = false, saw_key = false, saw_credit = false;
    cJSON_ArrayForEach(row, audit) {
        const char *action = cJSON_GetStringValue(cJSON_GetObjectItem(row, "action"));
        const char *target = cJSON_GetStringValue(cJSON_GetObjectItem(row, "target"));
        assert_string_not_equal(target, w.bob);
        assert_string_not_equal(target, w.bob_key);
        saw_create |= strcmp(action, "customer.create") == 0;
        saw_key |= strcmp(target, w.alice_key) == 0;
        saw_credit |= strncmp(action, "credit", 6) == 0;
        assert_true(cJSON_IsObject(cJSON_GetObjectItem(row, "after_json")));
    }
    assert_true(saw_create && saw_key && saw_credit);
    cJSON_Delete(ex);

    struct err e = {0};
    FILE *out = fopen("/dev/null", "w");
    assert_false(export_customer(w.f.db, "cus_nobody", NOW, out, &e));
    fclose(out);
    assert_int_equal(e.code, ERR_NOT_FOUND);
    fixture_close(&w.f);
}

/* A table added by a later migration is in the export without a change to
 * the exporter, and so are its child rows (finance's invoices and
 * invoice_lines arrived that way). */
static void test_export_finds_new_tables(void **state)
{
    (void)state;
    struct world w;
    world_open(&w);
    struct err e = {0};
    assert_true(store_exec(w.f.db,
                           "CREATE TABLE future_orders (id TEXT PRIMARY KEY, customer_id TEXT NOT NULL "
                           "REFERENCES customers (id), total_micros INTEGER NOT NULL);"
                           "CREATE TABLE future_order_lines (id INTEGER PRIMARY KEY, order_id TEXT "
                           "NOT NULL REFERENCES future_orders (id), amount_micros INTEGER NOT NULL);",
                           &e));
    char sql[512];
    snprintf(sql, sizeof sql,
             "INSERT INTO future_orders VALUES ('ord_a', '%s', 100), ('ord_b', '%s', 200);"
             "INSERT INTO future_order_lines (order_id, amount_micros) VALUES ('ord_a', 60), "
             "('ord_a', 40), ('ord_b', 200);",
             w.alice, w.bob);
    assert_true(store_exec(w.f.db, sql, &e));
    cJSON *ex = do_export(&w, w.alice);
    all_of(ex, "future_orders", w.alice, 1);
    cJSON *lines = table(ex, "future_order_lines"), *row;
    assert_int_equal(cJSON_GetArraySize(lines), 2);
    cJSON_ArrayForEach(row, lines)
        assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(row, "order_id")), "ord_a");
    /* finance's own tables are covered the same way */
    assert_non_null(table(ex, "invoices"));
    cJSON_Delete(ex);
    fixture_close(&w.f);
}

static void test_erase(void **state)
{
    (void)state;
    struct world w;
    world_open(&w);
    struct err e = {0};
    char *json = NULL;
    fixture_begin(&w.f);
    struct customer_update u = {NULL, NULL, "erased"};
    assert_true(customers_update(w.f.db, "cli:test", w.alice, &u, NOW + 5000, &json, &e));
    fixture_commit(&w.f);
    assert_string_equal(fixture_json_str(json, "name"), "(erased)");
    assert_string_equal(fixture_json_str(json, "status"), "erased");
    free(json);

    cJSON *ex = do_export(&w, w.alice);
    cJSON *c = cJSON_GetArrayItem(table(ex, "customers"), 0);
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(c, "email")));
    /* Keys revoked, subscription canceled, stored responses gone... */
    cJSON *k = cJSON_GetArrayItem(table(ex, "api_keys"), 0);
    assert_int_equal((int64_t)cJSON_GetNumberValue(cJSON_GetObjectItem(k, "revoked_at")), NOW + 5000);
    cJSON *s = cJSON_GetArrayItem(table(ex, "subscriptions"), 0);
    assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(s, "status")), "canceled");
    assert_int_equal(cJSON_GetArraySize(table(ex, "idempotency_keys")), 0);
    /* ...while the books stay: ledger rows and credits. */
    all_of(ex, "usage_ledger", w.alice, 2);
    all_of(ex, "credits", w.alice, 1);
    /* Audited. */
    cJSON *row;
    bool audited = false;
    cJSON_ArrayForEach(row, table(ex, "audit_log"))
        audited |= strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(row, "action")), "customer.erase") == 0 &&
                   strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(row, "actor")), "cli:test") == 0;
    assert_true(audited);
    cJSON_Delete(ex);

    /* Bob is untouched. */
    int64_t n = 0;
    assert_true(sq_int(w.f.db, "SELECT count(*) FROM idempotency_keys WHERE customer_id = ?", &n,
                       NULL, &e, SQ_TEXT(w.bob), SQ_END));
    assert_int_equal(n, 1);
    /* Erasure is final. */
    fixture_begin(&w.f);
    assert_false(customers_update(w.f.db, "cli:test", w.alice, &u, NOW + 6000, &json, &e));
    assert_int_equal(e.code, ERR_CONFLICT);
    fixture_commit(&w.f);
    fixture_close(&w.f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_export),
        cmocka_unit_test(test_export_finds_new_tables),
        cmocka_unit_test(test_erase),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

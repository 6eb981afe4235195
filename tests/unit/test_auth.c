/* test_auth.c — from Authorization header to principal (server/auth.c),
 * on a real database read through a separate read-only connection, as the
 * daemon does; and the first start (server/bootstrap.c). */
#include "tests/unit/testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "server/auth.h"
#include "server/bootstrap.h"
#include "server/caltime.h"
#include "server/credits.h"
#include "server/customers.h"
#include "server/keys.h"
#include "server/sq.h"
#include "server/store.h"
#include "server/subscriptions.h"
#include "tests/unit/tenancy_fixture.h"

struct env {
    struct fixture f;
    sqlite3 *ro;
    struct auth *auth;
    char customer[40], key_id[40], secret[APIKEY_LEN + 1];
    char bearer[APIKEY_LEN + 16];
};

static void env_open(struct env *v)
{
    memset(v, 0, sizeof *v);
    fixture_open(&v->f);
    struct err e = {0};
    assert_true(store_open(v->f.db_path, STORE_READONLY, &v->ro, &e));
    assert_true(auth_open(v->ro, v->f.pepper, &v->auth, &e));
    fixture_customer(&v->f, "Acme", v->customer);
    fixture_subscribe(&v->f, v->customer, "free", store_now_ms());
    fixture_key(&v->f, v->customer, SCOPE_INFERENCE | SCOPE_USAGE_READ, v->key_id, v->secret);
    snprintf(v->bearer, sizeof v->bearer, "Bearer %s", v->secret);
}

static void env_close(struct env *v)
{
    auth_close(v->auth);
    store_close(v->ro);
    fixture_close(&v->f);
}

static void test_valid_key_gives_principal(void **state)
{
    (void)state;
    struct env v;
    env_open(&v);
    struct err e = {0};
    struct principal p;
    int64_t now = store_now_ms();
    assert_true(auth_authenticate(v.auth, v.bearer, now, &p, &e));
    assert_string_equal(p.customer_id, v.customer);
    assert_string_equal(p.key_id, v.key_id);
    assert_int_equal(p.scopes, SCOPE_INFERENCE | SCOPE_USAGE_READ);
    assert_true(p.has_plan);
    assert_string_equal(p.plan.plan_id, "free");
    assert_true(p.plan.hard_cap);
    assert_string_equal(p.subscription_status, "active");
    assert_true(p.period_start <= now && now < p.period_end);
    assert_int_equal(p.period_start % CALTIME_DAY_MS, 0);
    assert_int_equal(p.credit_tokens, 0);
    assert_true(auth_require_scope(&p, SCOPE_INFERENCE, &e));
    assert_false(auth_require_scope(&p, SCOPE_ADMIN, &e));
    assert_int_equal(e.code, ERR_FORBIDDEN);
    /* Case-insensitive scheme, surrounding blanks tolerated. */
    char loose[APIKEY_LEN + 16];
    snprintf(loose, sizeof loose, "bearer  %s ", v.secret);
    assert_true(auth_authenticate(v.auth, loose, now, &p, &e));

    /* Token credits count, expired ones do not. */
    struct credit_grant g = {.customer_id = v.customer, .kind = "promotional", .unit = "tokens",
                             .amount = 700, .reason = "r"};
    char *json = NULL;
    fixture_begin(&v.f);
    assert_true(credits_grant(v.f.db, "t", &g, now, &json, &e));
    free(json);
    g.expires_at = now + 10;
    g.amount = 50;
    assert_true(credits_grant(v.f.db, "t", &g, now, &json, &e));
    free(json);
    fixture_commit(&v.f);
    assert_true(auth_authenticate(v.auth, v.bearer, now, &p, &e));
    assert_int_equal(p.credit_tokens, 750);
    assert_true(auth_authenticate(v.auth, v.bearer, now + 10, &p, &e));
    assert_int_equal(p.credit_tokens, 700);
    env_close(&v);
}

static void expect_401(struct env *v, const char *header, int64_t now, const char *msg)
{
    struct err e = {0};
    struct principal p;
    assert_false(auth_authenticate(v->auth, header, now, &p, &e));
    assert_int_equal(e.code, ERR_UNAUTHENTICATED);
    if (msg && !strstr(e.msg, msg))
        fail_msg("expected '%s' in '%s'", msg, e.msg);
}

static void test_refusals(void **state)
{
    (void)state;
    struct env v;
    env_open(&v);
    int64_t now = store_now_ms();
    expect_401(&v, NULL, now, "didn't provide");
    expect_401(&v, "", now, "didn't provide");
    expect_401(&v, "Basic dXNlcjpwYXNz", now, "Bearer");
    expect_401(&v, "Bearer sk-not-ours", now, "malformed");
    /* Well-formed, right checksum, never issued. */
    char other[APIKEY_LEN + 1], hdr[64];
    struct err e = {0};
    assert_true(apikey_generate(other, &e));
    snprintf(hdr, sizeof hdr, "Bearer %s", other);
    expect_401(&v, hdr, now, "Incorrect API key");
    /* The right key under another pepper is unknown too. */
    struct auth *a2;
    uint8_t pepper2[APIKEY_PEPPER_LEN] = {9};
    assert_true(auth_open(v.ro, pepper2, &a2, &e));
    struct principal p;
    assert_false(auth_authenticate(a2, v.bearer, now, &p, &e));
    auth_close(a2);
    env_close(&v);
}

static void test_revocation_is_immediate(void **state)
{
    (void)state;
    struct env v;
    env_open(&v);
    struct err e = {0};
    struct principal p;
    int64_t now = store_now_ms();
    assert_true(auth_authenticate(v.auth, v.bearer, now, &p, &e));
    /* Revoked on the read-write connection (the CLI, say); the read-only
     * connection's very next lookup sees it. */
    char *json = NULL;
    fixture_begin(&v.f);
    assert_true(keys_revoke(v.f.db, "t", v.key_id, now, &json, &e));
    fixture_commit(&v.f);
    free(json);
    expect_401(&v, v.bearer, now, "revoked");
    env_close(&v);
}

static void test_expiry_rotation_and_status(void **state)
{
    (void)state;
    struct env v;
    env_open(&v);
    struct err e = {0};
    struct principal p;
    int64_t now = store_now_ms();
    /* A key that expires at now + 1000. */
    struct key_issue in = {.customer_id = v.customer, .scopes = SCOPE_INFERENCE,
                           .expires_at = now + 1000};
    char secret[APIKEY_LEN + 1], hdr[64], *json = NULL;
    fixture_begin(&v.f);
    assert_true(keys_issue(v.f.db, "t", v.f.pepper, &in, now, secret, &json, &e));
    fixture_commit(&v.f);
    free(json);
    snprintf(hdr, sizeof hdr, "Bearer %s", secret);
    assert_true(auth_authenticate(v.auth, hdr, now + 999, &p, &e));
    expect_401(&v, hdr, now + 1000, "expired");

    /* Rotation: the old key works through the grace period, then not. */
    char fresh[APIKEY_LEN + 1], fresh_hdr[64];
    fixture_begin(&v.f);
    assert_true(keys_rotate(v.f.db, "t", v.f.pepper, v.key_id, 5000, now, fresh, &json, &e));
    fixture_commit(&v.f);
    free(json);
    snprintf(fresh_hdr, sizeof fresh_hdr, "Bearer %s", fresh);
    assert_true(auth_authenticate(v.auth, v.bearer, now + 4999, &p, &e));
    expect_401(&v, v.bearer, now + 5000, "revoked");
    assert_true(auth_authenticate(v.auth, fresh_hdr, now + 5000, &p, &e));
    assert_int_equal(p.scopes, SCOPE_INFERENCE | SCOPE_USAGE_READ);

    /* Suspended: 403; active again: fine; erased: 401. */
    struct customer_update u = {.status = "suspended"};
    fixture_begin(&v.f);
    assert_true(customers_update(v.f.db, "t", v.customer, &u, now, &json, &e));
    fixture_commit(&v.f);
    free(json);
    assert_false(auth_authenticate(v.auth, fresh_hdr, now, &p, &e));
    assert_int_equal(e.code, ERR_FORBIDDEN);
    u.status = "erased";
    fixture_begin(&v.f);
    assert_true(customers_update(v.f.db, "t", v.customer, &u, now, &json, &e));
    fixture_commit(&v.f);
    free(json);
    expect_401(&v, fresh_hdr, now + 1, NULL);
    env_close(&v);
}

static void test_models_and_touch(void **state)
{
    (void)state;
    struct env v;
    env_open(&v);
    struct err e = {0};
    struct principal p;
    int64_t now = store_now_ms();
    struct key_issue in = {.customer_id = v.customer, .scopes = SCOPE_INFERENCE,
                           .allowed_models_json = "[\"stories\"]"};
    char secret[APIKEY_LEN + 1], hdr[64], *json = NULL;
    fixture_begin(&v.f);
    assert_true(keys_issue(v.f.db, "t", v.f.pepper, &in, now, secret, &json, &e));
    fixture_commit(&v.f);
    free(json);
    snprintf(hdr, sizeof hdr, "Bearer %s", secret);
    assert_true(auth_authenticate(v.auth, hdr, now, &p, &e));
    assert_true(auth_model_allowed(&p, "stories", &e));
    assert_false(auth_model_allowed(&p, "llama", &e));
    assert_int_equal(e.code, ERR_FORBIDDEN);
    assert_string_equal(e.param, "model");

    /* Once a minute per key. */
    assert_true(auth_touch_due(v.auth, &p, now));
    assert_false(auth_touch_due(v.auth, &p, now + 1000));
    assert_true(auth_touch_due(v.auth, &p, now + 60000));
    p.last_used_at = now + 60000;
    assert_false(auth_touch_due(v.auth, &p, now + 100000));
    env_close(&v);
}

static void test_no_subscription(void **state)
{
    (void)state;
    struct env v;
    env_open(&v);
    struct err e = {0};
    struct principal p;
    char *json = NULL;
    fixture_begin(&v.f);
    assert_true(subscriptions_cancel(v.f.db, "t", v.customer, false, store_now_ms(), &json, &e));
    fixture_commit(&v.f);
    free(json);
    assert_true(auth_authenticate(v.auth, v.bearer, store_now_ms(), &p, &e));
    assert_false(p.has_plan);
    env_close(&v);
}

static void test_first_start(void **state)
{
    (void)state;
    struct fixture f;
    fixture_open(&f);
    struct err e = {0};
    char cred[4400], out_path[4400];
    snprintf(cred, sizeof cred, "%s/maasd-credentials.txt", f.dir);
    snprintf(out_path, sizeof out_path, "%s/stderr.txt", f.dir);
    char expect[4400];
    assert_true(bootstrap_credentials_path(f.db_path, expect, sizeof expect, &e));
    assert_string_equal(expect, cred);
    FILE *out = fopen(out_path, "w");
    bool created = false;
    assert_true(bootstrap_first_start(f.db, f.pepper, cred, out, &created, &e));
    assert_true(created);
    fclose(out);
    struct stat st;
    assert_int_equal(stat(cred, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    char *text = test_read_file(cred, NULL);
    char admin[APIKEY_LEN + 1] = "", demo[APIKEY_LEN + 1] = "";
    const char *a = strstr(text, "MAASD_ADMIN_KEY="), *d = strstr(text, "MAASD_DEMO_KEY=");
    assert_non_null(a);
    assert_non_null(d);
    memcpy(admin, a + 16, APIKEY_LEN);
    memcpy(demo, d + 15, APIKEY_LEN);
    free(text);
    /* Printed once on the given stream, as plain lines. */
    char *printed = test_read_file(out_path, NULL);
    assert_non_null(strstr(printed, admin));
    assert_non_null(strstr(printed, demo));
    free(printed);

    sqlite3 *ro;
    struct auth *auth;
    assert_true(store_open(f.db_path, STORE_READONLY, &ro, &e));
    assert_true(auth_open(ro, f.pepper, &auth, &e));
    struct principal p;
    char hdr[64];
    snprintf(hdr, sizeof hdr, "Bearer %s", admin);
    assert_true(auth_authenticate(auth, hdr, store_now_ms(), &p, &e));
    assert_int_equal(p.scopes, SCOPE_ADMIN | SCOPE_FINANCE);
    assert_false(p.has_plan);
    snprintf(hdr, sizeof hdr, "Bearer %s", demo);
    assert_true(auth_authenticate(auth, hdr, store_now_ms(), &p, &e));
    assert_int_equal(p.scopes, SCOPE_INFERENCE | SCOPE_USAGE_READ);
    assert_string_equal(p.plan.plan_id, "free");
    auth_close(auth);
    store_close(ro);

    /* Never again. */
    assert_true(bootstrap_first_start(f.db, f.pepper, cred, NULL, &created, &e));
    assert_false(created);
    int64_t n = 0;
    assert_true(sq_int(f.db, "SELECT count(*) FROM customers", &n, NULL, &e, SQ_END));
    assert_int_equal(n, 2);
    assert_true(sq_int(f.db, "SELECT count(*) FROM audit_log WHERE actor = 'system:bootstrap'", &n,
                       NULL, &e, SQ_END));
    assert_int_equal(n, 5);
    fixture_close(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_key_gives_principal),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_revocation_is_immediate),
        cmocka_unit_test(test_expiry_rotation_and_status),
        cmocka_unit_test(test_models_and_touch),
        cmocka_unit_test(test_no_subscription),
        cmocka_unit_test(test_first_start),
    };
    return cmocka_run_group_tests_name("auth", tests, NULL, NULL);
}

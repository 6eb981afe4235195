/* tenancy_fixture.c — see tenancy_fixture.h. */
#include "tests/unit/tenancy_fixture.h"

#include <cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/customers.h"
#include "server/keys.h"
#include "server/migrate.h"
#include "server/store.h"
#include "server/subscriptions.h"
#include "tests/unit/testutil.h"

static void check(bool ok, const struct err *e)
{
    if (!ok)
        fail_msg("%s", e->msg);
}

void fixture_open(struct fixture *f)
{
    memset(f, 0, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "%s", test_tmpdir());
    snprintf(f->db_path, sizeof f->db_path, "%s/maasd.db", f->dir);
    struct err e = {0};
    int n = 0;
    check(store_open(f->db_path, STORE_CREATE, &f->db, &e), &e);
    check(migrate_apply(f->db, false, NULL, &n, &e), &e);
    for (int i = 0; i < APIKEY_PEPPER_LEN; i++)
        f->pepper[i] = (uint8_t)(i * 7 + 1);
}

void fixture_close(struct fixture *f)
{
    store_close(f->db);
    f->db = NULL;
}

void fixture_begin(struct fixture *f)
{
    struct err e = {0};
    check(store_exec(f->db, "BEGIN IMMEDIATE", &e), &e);
}

void fixture_commit(struct fixture *f)
{
    struct err e = {0};
    check(store_exec(f->db, "COMMIT", &e), &e);
}

void fixture_customer(struct fixture *f, const char *name, char *out)
{
    struct err e = {0};
    char *json = NULL;
    fixture_begin(f);
    check(customers_create(f->db, "test", name, NULL, store_now_ms(), &json, &e), &e);
    fixture_commit(f);
    snprintf(out, 40, "%s", fixture_json_str(json, "id"));
    free(json);
}

void fixture_key(struct fixture *f, const char *customer, unsigned scopes, char *id_out,
                 char *secret_out)
{
    struct err e = {0};
    char *json = NULL;
    struct key_issue in = {.customer_id = customer, .name = "test", .scopes = scopes};
    fixture_begin(f);
    check(keys_issue(f->db, "test", f->pepper, &in, store_now_ms(), secret_out, &json, &e), &e);
    fixture_commit(f);
    snprintf(id_out, 40, "%s", fixture_json_str(json, "id"));
    free(json);
}

void fixture_subscribe(struct fixture *f, const char *customer, const char *plan, int64_t now)
{
    struct err e = {0};
    char *json = NULL;
    fixture_begin(f);
    check(subscriptions_create(f->db, "test", customer, plan, 0, now, &json, &e), &e);
    fixture_commit(f);
    free(json);
}

const char *fixture_json_str(const char *json, const char *field)
{
    static char buf[1024];
    cJSON *j = cJSON_Parse(json);
    const char *s = cJSON_GetStringValue(cJSON_GetObjectItem(j, field));
    snprintf(buf, sizeof buf, "%s", s ? s : "");
    cJSON_Delete(j);
    return buf;
}

int64_t fixture_json_int(const char *json, const char *field)
{
    cJSON *j = cJSON_Parse(json);
    const cJSON *v = cJSON_GetObjectItem(j, field);
    int64_t n = cJSON_IsNumber(v) ? (int64_t)v->valuedouble : -1;
    cJSON_Delete(j);
    return n;
}

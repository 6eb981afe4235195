/* auth.c — see auth.h. */
#include "server/auth.h"

#include <cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "server/caltime.h"
#include "server/sq.h"

#define TOUCH_SLOTS 1024

struct touch {
    char key_id[RANDID_MAX];
    int64_t at;
};

struct auth {
    sqlite3 *db;
    sqlite3_stmt *lookup;
    uint8_t pepper[APIKEY_PEPPER_LEN];
    struct touch touches[TOUCH_SLOTS];
};

/* One indexed read: key by hash (unique index), customer by id, the live
 * subscription (partial unique index), the plan version in force
 * (plan_id, effective_from index), the token credits (customer index). */
static const char lookup_sql[] =
    "SELECT k.id, k.customer_id, k.hash, k.scopes, k.allowed_models, "
    "coalesce(k.expires_at, 0), coalesce(k.revoked_at, 0), coalesce(k.last_used_at, 0), "
    "c.status, s.id, s.status, s.billing_anchor_day, s.billing_anchor_month, "
    "(SELECT coalesce(sum(cr.remaining), 0) FROM credits cr WHERE cr.customer_id = k.customer_id "
    "  AND cr.unit = 'tokens' AND cr.remaining > 0 AND (cr.expires_at IS NULL OR cr.expires_at > ?2)), "
    PLANS_VERSION_COLUMNS " "
    "FROM api_keys k JOIN customers c ON c.id = k.customer_id "
    "LEFT JOIN subscriptions s ON s.customer_id = k.customer_id AND s.status <> 'canceled' "
    "LEFT JOIN plan_versions pv ON pv.id = (SELECT v.id FROM plan_versions v WHERE "
    "  v.plan_id = s.plan_id AND v.effective_from <= ?2 ORDER BY v.effective_from DESC LIMIT 1) "
    "WHERE k.hash = ?1";
#define COL_PLAN 14

bool auth_open(sqlite3 *db_read, const uint8_t pepper[APIKEY_PEPPER_LEN], struct auth **out,
               struct err *e)
{
    struct auth *a = calloc(1, sizeof *a);
    if (!a)
        return err_set(e, ERR_NOMEM, "out of memory");
    a->db = db_read;
    memcpy(a->pepper, pepper, APIKEY_PEPPER_LEN);
    if (sqlite3_prepare_v3(db_read, lookup_sql, -1, SQLITE_PREPARE_PERSISTENT, &a->lookup, NULL) !=
        SQLITE_OK) {
        sq_fail(db_read, "preparing the key lookup", e);
        free(a);
        return false;
    }
    *out = a;
    return true;
}

void auth_close(struct auth *a)
{
    if (!a)
        return;
    sqlite3_finalize(a->lookup);
    memset(a->pepper, 0, sizeof a->pepper);
    free(a);
}

static void models_into(const char *json, struct principal *p)
{
    p->n_key_models = 0;
    cJSON *arr = json ? cJSON_Parse(json) : NULL;
    const cJSON *it;
    cJSON_ArrayForEach(it, arr) {
        if (cJSON_IsString(it) && p->n_key_models < KEYS_MAX_MODELS)
            snprintf(p->key_models[p->n_key_models++], KEYS_MODEL_MAX, "%s", it->valuestring);
    }
    cJSON_Delete(arr);
}

static bool fill(sqlite3_stmt *st, const uint8_t hash[APIKEY_HASH_LEN], int64_t now,
                 struct principal *p, struct err *e)
{
    const void *stored = sqlite3_column_blob(st, 2);
    if (sqlite3_column_bytes(st, 2) != APIKEY_HASH_LEN || !apikey_hash_equal(stored, hash))
        return err_set(e, ERR_UNAUTHENTICATED, "Incorrect API key provided");
    int64_t expires = sqlite3_column_int64(st, 5), revoked = sqlite3_column_int64(st, 6);
    if (revoked && revoked <= now)
        return err_set(e, ERR_UNAUTHENTICATED, "This API key has been revoked");
    if (expires && expires <= now)
        return err_set(e, ERR_UNAUTHENTICATED, "This API key has expired");
    const char *cstatus = (const char *)sqlite3_column_text(st, 8);
    if (cstatus && strcmp(cstatus, "erased") == 0)
        return err_set(e, ERR_UNAUTHENTICATED, "Incorrect API key provided");
    if (cstatus && strcmp(cstatus, "suspended") == 0)
        return err_set(e, ERR_FORBIDDEN, "This account is suspended; contact the operator");

    memset(p, 0, sizeof *p);
    snprintf(p->key_id, sizeof p->key_id, "%s", (const char *)sqlite3_column_text(st, 0));
    snprintf(p->customer_id, sizeof p->customer_id, "%s", (const char *)sqlite3_column_text(st, 1));
    cJSON *scopes = cJSON_Parse((const char *)sqlite3_column_text(st, 3));
    struct err ignored;
    if (!apikey_scopes_from_json(scopes, &p->scopes, &ignored))
        p->scopes = 0;
    cJSON_Delete(scopes);
    models_into((const char *)sqlite3_column_text(st, 4), p);
    p->last_used_at = sqlite3_column_int64(st, 7);
    p->credit_tokens = sqlite3_column_int64(st, 13);
    if (sqlite3_column_type(st, 9) != SQLITE_NULL && sqlite3_column_type(st, COL_PLAN) != SQLITE_NULL) {
        p->has_plan = true;
        snprintf(p->subscription_id, sizeof p->subscription_id, "%s",
                 (const char *)sqlite3_column_text(st, 9));
        snprintf(p->subscription_status, sizeof p->subscription_status, "%s",
                 (const char *)sqlite3_column_text(st, 10));
        plans_version_from_row(st, COL_PLAN, &p->plan);
        caltime_period_containing(sqlite3_column_int(st, 11), sqlite3_column_int(st, 12),
                                  p->plan.interval_months, now, &p->period_start, &p->period_end);
    }
    return true;
}

bool auth_authenticate(struct auth *a, const char *authorization, int64_t now,
                       struct principal *out, struct err *e)
{
    if (!authorization || !*authorization)
        return err_set(e, ERR_UNAUTHENTICATED,
                       "You didn't provide an API key. Send it in the Authorization header: "
                       "Authorization: Bearer mk_live_...");
    if (strncasecmp(authorization, "Bearer ", 7) != 0)
        return err_set(e, ERR_UNAUTHENTICATED,
                       "The Authorization header must be 'Bearer <API key>'");
    const char *key = authorization + 7;
    while (*key == ' ')
        key++;
    size_t len = strlen(key);
    while (len > 0 && key[len - 1] == ' ')
        len--;
    if (!apikey_check_format(key, len, e))
        return false;
    uint8_t hash[APIKEY_HASH_LEN];
    if (!apikey_hash(a->pepper, key, len, hash, e))
        return false;
    sqlite3_stmt *st = a->lookup;
    sqlite3_reset(st);
    sqlite3_bind_blob(st, 1, hash, sizeof hash, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, now);
    int rc = sqlite3_step(st);
    bool ok;
    if (rc == SQLITE_ROW)
        ok = fill(st, hash, now, out, e);
    else if (rc == SQLITE_DONE)
        ok = err_set(e, ERR_UNAUTHENTICATED, "Incorrect API key provided");
    else
        ok = sq_fail(a->db, "reading API keys", e);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return ok;
}

bool auth_require_scope(const struct principal *p, unsigned scope, struct err *e)
{
    if ((p->scopes & scope) == scope)
        return true;
    return err_set(e, ERR_FORBIDDEN, "This API key lacks the '%s' scope required here",
                   apikey_scope_name(scope));
}

bool auth_model_allowed(const struct principal *p, const char *model, struct err *e)
{
    bool key_ok = p->n_key_models == 0;
    for (int i = 0; i < p->n_key_models && !key_ok; i++)
        key_ok = strcmp(p->key_models[i], model) == 0;
    if (!key_ok)
        return err_set_param(e, ERR_FORBIDDEN, "model",
                             "This API key is not allowed to use model '%s'", model);
    if (p->has_plan && !plans_model_allowed(&p->plan, model))
        return err_set_param(e, ERR_FORBIDDEN, "model",
                             "Your plan does not include model '%s'", model);
    return true;
}

static unsigned slot_of(const char *key_id)
{
    unsigned h = 2166136261u;
    for (const unsigned char *s = (const unsigned char *)key_id; *s; s++)
        h = (h ^ *s) * 16777619u;
    return h % TOUCH_SLOTS;
}

bool auth_touch_due(struct auth *a, const struct principal *p, int64_t now)
{
    if (p->last_used_at && now - p->last_used_at < 60000)
        return false;
    /* A slot remembers the last touch submitted for a key, so a burst of
     * requests before the write commits submits one touch, not hundreds. A
     * collision only costs an extra (idempotent) write. */
    struct touch *t = &a->touches[slot_of(p->key_id)];
    if (strcmp(t->key_id, p->key_id) == 0 && now - t->at < 60000)
        return false;
    snprintf(t->key_id, sizeof t->key_id, "%s", p->key_id);
    t->at = now;
    return true;
}

/* plans.c — see plans.h. */
#include "server/plans.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/audit.h"
#include "server/sq.h"

#define VERSION_JSON(p)                                                                        \
    "json_object('object', 'plan_version', 'id', " p "id, 'plan_id', " p "plan_id, "            \
    "'version', " p "version, 'effective_from', " p "effective_from, 'billing_interval', "      \
    p "billing_interval, 'currency', " p "currency, 'base_fee_micros', " p "base_fee_micros, "  \
    "'included_tokens', " p "included_tokens, 'price_input_per_1m_micros', "                   \
    p "price_input_per_1m_micros, 'price_output_per_1m_micros', "                               \
    p "price_output_per_1m_micros, 'price_per_request_micros', " p "price_per_request_micros, " \
    "'requests_per_minute', " p "requests_per_minute, 'tokens_per_minute', "                    \
    p "tokens_per_minute, 'max_concurrent_requests', " p "max_concurrent_requests, "            \
    "'max_tokens_per_request', " p "max_tokens_per_request, 'allowed_models', json("            \
    p "allowed_models), 'scheduler_weight', " p "scheduler_weight, 'trial_days', "              \
    p "trial_days, 'hard_cap', json(CASE WHEN " p "hard_cap THEN 'true' ELSE 'false' END), "    \
    "'created_at', " p "created_at)"

static void models_from_text(const char *text, struct plan_version *out)
{
    out->n_models = 0;
    cJSON *a = text ? cJSON_Parse(text) : NULL;
    const cJSON *it;
    cJSON_ArrayForEach(it, a) {
        if (out->n_models < KEYS_MAX_MODELS && cJSON_IsString(it))
            snprintf(out->models[out->n_models++], KEYS_MODEL_MAX, "%s", it->valuestring);
    }
    cJSON_Delete(a);
}

void plans_version_from_row(sqlite3_stmt *st, int c, struct plan_version *out)
{
    memset(out, 0, sizeof *out);
    out->id = sqlite3_column_int64(st, c);
    snprintf(out->plan_id, sizeof out->plan_id, "%s", (const char *)sqlite3_column_text(st, c + 1));
    out->version = sqlite3_column_int(st, c + 2);
    out->effective_from = sqlite3_column_int64(st, c + 3);
    const char *interval = (const char *)sqlite3_column_text(st, c + 4);
    out->interval_months = interval && strcmp(interval, "year") == 0 ? 12 : 1;
    snprintf(out->currency, sizeof out->currency, "%s", (const char *)sqlite3_column_text(st, c + 5));
    out->base_fee_micros = sqlite3_column_int64(st, c + 6);
    out->included_tokens = sqlite3_column_int64(st, c + 7);
    out->price_input_per_1m_micros = sqlite3_column_int64(st, c + 8);
    out->price_output_per_1m_micros = sqlite3_column_int64(st, c + 9);
    out->price_per_request_micros = sqlite3_column_int64(st, c + 10);
    out->requests_per_minute = sqlite3_column_int64(st, c + 11);
    out->tokens_per_minute = sqlite3_column_int64(st, c + 12);
    out->max_concurrent_requests = sqlite3_column_int64(st, c + 13);
    out->max_tokens_per_request = sqlite3_column_int64(st, c + 14);
    models_from_text((const char *)sqlite3_column_text(st, c + 15), out);
    out->scheduler_weight = sqlite3_column_int64(st, c + 16);
    out->trial_days = sqlite3_column_int64(st, c + 17);
    out->hard_cap = sqlite3_column_int(st, c + 18) != 0;
}

static bool version_query(sqlite3 *db, const char *sql, const struct sq_arg *args, int n,
                          struct plan_version *out, bool *found, struct err *e)
{
    sqlite3_stmt *st;
    if (!sq_prepare(db, sql, &st, e, SQ_END))
        return false;
    if (!sq_bind_list(db, st, args, n, e)) {
        sqlite3_finalize(st);
        return false;
    }
    int rc = sqlite3_step(st);
    *found = rc == SQLITE_ROW;
    if (*found)
        plans_version_from_row(st, 0, out);
    sqlite3_finalize(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return sq_fail(db, "reading plan versions", e);
    return true;
}

bool plans_version_at(sqlite3 *db, const char *plan_id, int64_t t, struct plan_version *out,
                      struct err *e)
{
    bool found;
    if (!version_query(db,
                       "SELECT " PLANS_VERSION_COLUMNS " FROM plan_versions pv WHERE plan_id = ? "
                       "AND effective_from <= ? ORDER BY effective_from DESC LIMIT 1",
                       (struct sq_arg[]){SQ_TEXT(plan_id), SQ_INT(t)}, 2, out, &found, e))
        return false;
    if (!found)
        return err_set_param(e, ERR_NOT_FOUND, "plan", "no plan '%s' in force", plan_id);
    return true;
}

bool plans_version_get(sqlite3 *db, int64_t version_id, struct plan_version *out, struct err *e)
{
    bool found;
    if (!version_query(db, "SELECT " PLANS_VERSION_COLUMNS " FROM plan_versions pv WHERE id = ?",
                       (struct sq_arg[]){SQ_INT(version_id)}, 1, out, &found, e))
        return false;
    if (!found)
        return err_set(e, ERR_NOT_FOUND, "no plan version %lld", (long long)version_id);
    return true;
}

bool plans_version_json(sqlite3 *db, int64_t version_id, char **json_out, struct err *e)
{
    if (!sq_text(db, "SELECT " VERSION_JSON("") " FROM plan_versions WHERE id = ?", json_out, e,
                 SQ_INT(version_id), SQ_END))
        return false;
    if (!*json_out)
        return err_set(e, ERR_NOT_FOUND, "no plan version %lld", (long long)version_id);
    return true;
}

bool plans_list(sqlite3 *db, int64_t now, cJSON **out, struct err *e)
{
    cJSON *data = cJSON_CreateArray();
    if (!sq_json_rows(db,
                      "SELECT json_object('object', 'plan', 'id', p.id, 'name', p.name, "
                      "'current_version', (SELECT json(" VERSION_JSON("v.") ") FROM plan_versions v "
                      "WHERE v.plan_id = p.id AND v.effective_from <= ?1 "
                      "ORDER BY v.effective_from DESC LIMIT 1), "
                      "'versions', (SELECT json_group_array(json(j)) FROM (SELECT "
                      VERSION_JSON("v.") " AS j FROM plan_versions v WHERE v.plan_id = p.id "
                      "ORDER BY v.version))) FROM plans p ORDER BY p.created_at, p.id",
                      data, NULL, e, SQ_INT(now), SQ_END)) {
        cJSON_Delete(data);
        return false;
    }
    *out = sq_list_envelope(data, -1);
    return true;
}

/* ---- creating a version ----------------------------------------------------------- */

enum field_kind { FK_INT, FK_INTERVAL, FK_CURRENCY, FK_MODELS, FK_BOOL };

struct field {
    const char *name;
    enum field_kind kind;
    size_t off;             /* FK_INT: an int64_t in struct plan_version */
    int64_t min, max;
    bool required;          /* for a new plan */
};

#define OFF(f) offsetof(struct plan_version, f)
static const struct field fields[] = {
    {"billing_interval", FK_INTERVAL, 0, 0, 0, true},
    {"currency", FK_CURRENCY, 0, 0, 0, false},
    {"base_fee_micros", FK_INT, OFF(base_fee_micros), 0, 1000000000000000LL, true},
    {"included_tokens", FK_INT, OFF(included_tokens), 0, 1000000000000000LL, true},
    {"price_input_per_1m_micros", FK_INT, OFF(price_input_per_1m_micros), 0, 1000000000000LL, true},
    {"price_output_per_1m_micros", FK_INT, OFF(price_output_per_1m_micros), 0, 1000000000000LL, true},
    {"price_per_request_micros", FK_INT, OFF(price_per_request_micros), 0, 1000000000000LL, false},
    {"requests_per_minute", FK_INT, OFF(requests_per_minute), 1, 100000000, true},
    {"tokens_per_minute", FK_INT, OFF(tokens_per_minute), 1, 100000000000LL, true},
    {"max_concurrent_requests", FK_INT, OFF(max_concurrent_requests), 1, 100000, true},
    {"max_tokens_per_request", FK_INT, OFF(max_tokens_per_request), 1, 10000000, true},
    {"allowed_models", FK_MODELS, 0, 0, 0, false},
    {"scheduler_weight", FK_INT, OFF(scheduler_weight), 1, 1000, false},
    {"trial_days", FK_INT, OFF(trial_days), 0, 365, false},
    {"hard_cap", FK_BOOL, 0, 0, 0, true},
};
#define N_FIELDS (sizeof fields / sizeof fields[0])

static bool plan_id_ok(const char *id)
{
    size_t n = strlen(id);
    if (n == 0 || n >= PLAN_ID_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((id[i] >= 'a' && id[i] <= 'z') || (id[i] >= '0' && id[i] <= '9') || id[i] == '-' ||
              id[i] == '_'))
            return false;
    return true;
}

static bool apply_field(const struct field *f, const cJSON *v, struct plan_version *pv,
                        char **models_json, struct err *e)
{
    switch (f->kind) {
    case FK_INT: {
        double d = cJSON_IsNumber(v) ? v->valuedouble : -1;
        int64_t n = (int64_t)d;
        if (!cJSON_IsNumber(v) || (double)n != d || n < f->min || n > f->max)
            return err_set_param(e, ERR_INVALID, f->name, "%s must be an integer in %lld..%lld",
                                 f->name, (long long)f->min, (long long)f->max);
        *(int64_t *)((char *)pv + f->off) = n;
        return true;
    }
    case FK_INTERVAL: {
        const char *s = cJSON_GetStringValue(v);
        if (!s || (strcmp(s, "month") != 0 && strcmp(s, "year") != 0))
            return err_set_param(e, ERR_INVALID, f->name, "billing_interval must be month or year");
        pv->interval_months = strcmp(s, "year") == 0 ? 12 : 1;
        return true;
    }
    case FK_CURRENCY: {
        const char *s = cJSON_GetStringValue(v);
        if (!s || strlen(s) != 3 || strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") != 3)
            return err_set_param(e, ERR_INVALID, f->name,
                                 "currency must be an ISO 4217 code such as USD");
        memcpy(pv->currency, s, 4);
        return true;
    }
    case FK_MODELS:
        free(*models_json);
        if (!keys_models_from_json(v, f->name, models_json, e))
            return false;
        models_from_text(*models_json, pv);
        return true;
    case FK_BOOL:
        if (!cJSON_IsBool(v))
            return err_set_param(e, ERR_INVALID, f->name, "%s must be true or false", f->name);
        pv->hard_cap = cJSON_IsTrue(v);
        return true;
    }
    return false;
}

static char *models_to_json(const struct plan_version *pv)
{
    if (pv->n_models == 0)
        return NULL;
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; i < pv->n_models; i++)
        cJSON_AddItemToArray(a, cJSON_CreateString(pv->models[i]));
    char *s = cJSON_PrintUnformatted(a);
    cJSON_Delete(a);
    return s;
}

static bool build_version(sqlite3 *db, const char *plan_id, const cJSON *in, bool *new_plan,
                          struct plan_version *pv, char **models_json, struct err *e)
{
    struct plan_version latest;
    bool found;
    if (!version_query(db,
                       "SELECT " PLANS_VERSION_COLUMNS " FROM plan_versions pv WHERE plan_id = ? "
                       "ORDER BY version DESC LIMIT 1",
                       (struct sq_arg[]){SQ_TEXT(plan_id)}, 1, &latest, &found, e))
        return false;
    *new_plan = !found;
    if (found) {
        *pv = latest;
        *models_json = models_to_json(&latest);
    } else {
        memset(pv, 0, sizeof *pv);
        memcpy(pv->currency, "USD", 4);
        pv->scheduler_weight = 1;
    }
    const cJSON *it;
    cJSON_ArrayForEach(it, in) {
        bool known = strcmp(it->string, "effective_from") == 0 || strcmp(it->string, "name") == 0;
        for (size_t i = 0; i < N_FIELDS && !known; i++)
            known = strcmp(fields[i].name, it->string) == 0;
        if (!known)
            return err_set_param(e, ERR_INVALID, it->string, "unknown plan field '%s'", it->string);
    }
    for (size_t i = 0; i < N_FIELDS; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(in, fields[i].name);
        if (!v) {
            if (*new_plan && fields[i].required)
                return err_set_param(e, ERR_INVALID, fields[i].name,
                                     "%s is required for a new plan", fields[i].name);
            continue;
        }
        if (!apply_field(&fields[i], v, pv, models_json, e))
            return false;
    }
    return true;
}

bool plans_create_version(sqlite3 *db, const char *actor, const char *plan_id,
                          const char *plan_name, const cJSON *in, int64_t now, char **json_out,
                          struct err *e)
{
    *json_out = NULL;
    if (!plan_id || !plan_id_ok(plan_id))
        return err_set_param(e, ERR_INVALID, "plan",
                             "a plan id is 1 to 32 characters of a-z, 0-9, - and _");
    if (!cJSON_IsObject(in))
        return err_set(e, ERR_INVALID, "plan fields must be a JSON object");
    const cJSON *eff = cJSON_GetObjectItemCaseSensitive(in, "effective_from");
    int64_t effective_from = now;
    if (eff) {
        if (!cJSON_IsNumber(eff) || eff->valuedouble < 0)
            return err_set_param(e, ERR_INVALID, "effective_from",
                                 "effective_from must be ms since the epoch");
        effective_from = (int64_t)eff->valuedouble;
        if (effective_from < now)
            return err_set_param(e, ERR_INVALID, "effective_from",
                                 "a plan version cannot take effect in the past: history is "
                                 "never rewritten");
    }
    struct plan_version pv;
    char *models = NULL;
    bool new_plan = false;
    bool ok = build_version(db, plan_id, in, &new_plan, &pv, &models, e);
    if (ok && new_plan)
        ok = sq_exec(db, "INSERT INTO plans (id, name, created_at) VALUES (?, ?, ?)", NULL, e,
                     SQ_TEXT(plan_id), SQ_TEXT(plan_name && *plan_name ? plan_name : plan_id),
                     SQ_INT(now), SQ_END);
    int64_t version = 0;
    ok = ok && sq_int(db, "SELECT coalesce(max(version), 0) + 1 FROM plan_versions WHERE plan_id = ?",
                      &version, NULL, e, SQ_TEXT(plan_id), SQ_END);
    ok = ok && sq_exec(db,
                       "INSERT INTO plan_versions (plan_id, version, effective_from, "
                       "billing_interval, currency, base_fee_micros, included_tokens, "
                       "price_input_per_1m_micros, price_output_per_1m_micros, "
                       "price_per_request_micros, requests_per_minute, tokens_per_minute, "
                       "max_concurrent_requests, max_tokens_per_request, allowed_models, "
                       "scheduler_weight, trial_days, hard_cap, created_at) VALUES "
                       "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                       NULL, e, SQ_TEXT(plan_id), SQ_INT(version), SQ_INT(effective_from),
                       SQ_TEXT(pv.interval_months == 12 ? "year" : "month"), SQ_TEXT(pv.currency),
                       SQ_INT(pv.base_fee_micros), SQ_INT(pv.included_tokens),
                       SQ_INT(pv.price_input_per_1m_micros), SQ_INT(pv.price_output_per_1m_micros),
                       SQ_INT(pv.price_per_request_micros), SQ_INT(pv.requests_per_minute),
                       SQ_INT(pv.tokens_per_minute), SQ_INT(pv.max_concurrent_requests),
                       SQ_INT(pv.max_tokens_per_request), SQ_TEXT(models),
                       SQ_INT(pv.scheduler_weight), SQ_INT(pv.trial_days), SQ_INT(pv.hard_cap),
                       SQ_INT(now), SQ_END);
    free(models);
    if (!ok)
        return false;
    int64_t id = sqlite3_last_insert_rowid(db);
    char target[64];
    snprintf(target, sizeof target, "%s@%lld", plan_id, (long long)version);
    return plans_version_json(db, id, json_out, e) &&
           audit_append(db, actor, "plan.version.create", target, NULL, *json_out, now, e);
}

/* ---- rating ----------------------------------------------------------------------- */

static int64_t per_million(int64_t tokens, int64_t price)
{
    __int128 v = (__int128)tokens * price + 500000;
    return (int64_t)(v / 1000000);
}

void plans_rate(const struct plan_version *v, int64_t input_tokens, int64_t output_tokens,
                int64_t requests, struct plan_charges *out)
{
    memset(out, 0, sizeof *out);
    int64_t left = v->included_tokens;
    int64_t in_covered = input_tokens < left ? input_tokens : left;
    left -= in_covered;
    int64_t out_covered = output_tokens < left ? output_tokens : left;
    out->base_fee_micros = v->base_fee_micros;
    out->overage_input_tokens = input_tokens - in_covered;
    out->overage_output_tokens = output_tokens - out_covered;
    out->input_micros = per_million(out->overage_input_tokens, v->price_input_per_1m_micros);
    out->output_micros = per_million(out->overage_output_tokens, v->price_output_per_1m_micros);
    out->request_micros = requests * v->price_per_request_micros;
    out->total_micros = out->base_fee_micros + out->input_micros + out->output_micros +
                        out->request_micros;
}

bool plans_model_allowed(const struct plan_version *v, const char *model)
{
    if (v->n_models == 0)
        return true;
    for (int i = 0; i < v->n_models; i++)
        if (strcmp(v->models[i], model) == 0)
            return true;
    return false;
}

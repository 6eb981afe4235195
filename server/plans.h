/*
 * plans.h — plans and their versions: the terms a subscription bills on.
 *
 * Model
 *   A plan ("free", "pro", "enterprise", ...) is a name; its terms are in
 *   plan_versions. A price or limit change is a new version with an
 *   effective_from instant; the version in force at instant t is the one
 *   with the greatest effective_from <= t. Subscriptions follow their plan,
 *   so a new version applies to every subscriber from its effective_from
 *   (schedule it on a period boundary to avoid mid-period changes). Ledger
 *   rows record the version in force when the request was admitted.
 *
 *   History is never rewritten, and the database enforces it (triggers in
 *   migrations/0002_tenancy.sql): a version in force (effective_from <= now)
 *   can be neither updated nor deleted, a new version cannot take effect in
 *   the past, and versions of a plan take effect in version order. A
 *   version scheduled for the future may still be deleted and re-created.
 *
 * Contract: as every store module (see customers.h).
 */
#ifndef MAASD_PLANS_H
#define MAASD_PLANS_H

#include <cJSON.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>

#include "engine/err.h"
#include "server/keys.h"

#define PLAN_ID_MAX 33

struct plan_version {
    int64_t id;                       /* plan_versions.id, what ledger rows reference */
    char plan_id[PLAN_ID_MAX];
    int version;
    int64_t effective_from;
    int interval_months;              /* 1 (month) or 12 (year) */
    char currency[4];
    int64_t base_fee_micros;          /* per interval */
    int64_t included_tokens;          /* per interval, input + output */
    int64_t price_input_per_1m_micros;
    int64_t price_output_per_1m_micros;
    int64_t price_per_request_micros;
    int64_t requests_per_minute;
    int64_t tokens_per_minute;
    int64_t max_concurrent_requests;
    int64_t max_tokens_per_request;
    int n_models;                     /* 0: every model */
    char models[KEYS_MAX_MODELS][KEYS_MODEL_MAX];
    int64_t scheduler_weight;         /* relative share of engine time, 1..1000 */
    int64_t trial_days;
    bool hard_cap;                    /* refuse once included_tokens are used up */
};

/* The version of `plan_id` in force at instant t; ERR_NOT_FOUND if none. */
bool plans_version_at(sqlite3 *db, const char *plan_id, int64_t t, struct plan_version *out,
                      struct err *e);
bool plans_version_get(sqlite3 *db, int64_t version_id, struct plan_version *out, struct err *e);
/* Fill *out from a row of PLANS_VERSION_COLUMNS starting at column `first`. */
void plans_version_from_row(sqlite3_stmt *st, int first, struct plan_version *out);
#define PLANS_VERSION_COLUMNS                                                                  \
    "pv.id, pv.plan_id, pv.version, pv.effective_from, pv.billing_interval, pv.currency, "     \
    "pv.base_fee_micros, pv.included_tokens, pv.price_input_per_1m_micros, "                   \
    "pv.price_output_per_1m_micros, pv.price_per_request_micros, pv.requests_per_minute, "     \
    "pv.tokens_per_minute, pv.max_concurrent_requests, pv.max_tokens_per_request, "            \
    "pv.allowed_models, pv.scheduler_weight, pv.trial_days, pv.hard_cap"
#define PLANS_VERSION_NCOLS 19

/* Every plan with its version in force now and its full version history. */
bool plans_list(sqlite3 *db, int64_t now, cJSON **out, struct err *e);
bool plans_version_json(sqlite3 *db, int64_t version_id, char **json_out, struct err *e);

/* Create the next version of `plan_id` (and the plan itself, named
 * `plan_name` or its id, when it does not exist). `fields` is a JSON object
 * with any of the plan_versions column names (money in micro-units,
 * billing_interval "month"|"year", allowed_models an array or null,
 * hard_cap a boolean, effective_from in ms, default now); fields left out
 * are copied from the plan's latest version, and all are required for a
 * new plan. */
bool plans_create_version(sqlite3 *db, const char *actor, const char *plan_id,
                          const char *plan_name, const cJSON *fields, int64_t now,
                          char **json_out, struct err *e);

/* The rating rule invoicing applies to one billing period's totals
 * (docs/billing.md): included tokens are consumed first by input tokens,
 * then by output tokens; tokens beyond them are charged per 1M (rounded
 * half up to a micro-unit, on the period total); requests are charged per
 * request; the base fee is charged once. Hard-capped plans never exceed
 * their included tokens, so their overage is zero. */
struct plan_charges {
    int64_t base_fee_micros;
    int64_t overage_input_tokens, overage_output_tokens;
    int64_t input_micros, output_micros, request_micros;
    int64_t total_micros;
};
void plans_rate(const struct plan_version *v, int64_t input_tokens, int64_t output_tokens,
                int64_t requests, struct plan_charges *out);

/* Whether `model` is allowed by a plan version's list. */
bool plans_model_allowed(const struct plan_version *v, const char *model);

#endif

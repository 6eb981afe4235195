/* subscriptions.c — see subscriptions.h. */
#include "server/subscriptions.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/audit.h"
#include "server/caltime.h"
#include "server/customers.h"
#include "server/plans.h"
#include "server/randid.h"
#include "server/sq.h"
#include "server/store.h"

#define SUB_JSON(p)                                                                            \
    "json_object('object', 'subscription', 'id', " p "id, 'customer_id', " p "customer_id, "    \
    "'plan_id', " p "plan_id, 'status', " p "status, 'billing_anchor_day', "                    \
    p "billing_anchor_day, 'billing_anchor_month', " p "billing_anchor_month, "                 \
    "'current_period_start', " p "current_period_start, 'current_period_end', "                 \
    p "current_period_end, 'trial_end', " p "trial_end, 'cancel_at_period_end', json(CASE WHEN " \
    p "cancel_at_period_end THEN 'true' ELSE 'false' END), 'canceled_at', " p "canceled_at, "   \
    "'created_at', " p "created_at, 'updated_at', " p "updated_at)"

#define CHANGE_JSON                                                                            \
    "json_object('at', c.at, 'kind', c.kind, 'from_plan_version_id', c.from_plan_version_id, "  \
    "'to_plan_version_id', c.to_plan_version_id, 'from_status', c.from_status, 'to_status', "   \
    "c.to_status, 'actor', c.actor)"

struct sub {
    char id[RANDID_MAX];
    char customer_id[RANDID_MAX];
    char plan_id[PLAN_ID_MAX];
    char status[16];
    int anchor_day, anchor_month;
    int64_t period_start, period_end, trial_end;
    bool cancel_at_period_end;
};

#define SUB_COLUMNS                                                                            \
    "id, customer_id, plan_id, status, billing_anchor_day, billing_anchor_month, "             \
    "current_period_start, current_period_end, coalesce(trial_end, 0), cancel_at_period_end"

static void sub_from_row(sqlite3_stmt *st, struct sub *s)
{
    memset(s, 0, sizeof *s);
    snprintf(s->id, sizeof s->id, "%s", (const char *)sqlite3_column_text(st, 0));
    snprintf(s->customer_id, sizeof s->customer_id, "%s", (const char *)sqlite3_column_text(st, 1));
    snprintf(s->plan_id, sizeof s->plan_id, "%s", (const char *)sqlite3_column_text(st, 2));
    snprintf(s->status, sizeof s->status, "%s", (const char *)sqlite3_column_text(st, 3));
    s->anchor_day = sqlite3_column_int(st, 4);
    s->anchor_month = sqlite3_column_int(st, 5);
    s->period_start = sqlite3_column_int64(st, 6);
    s->period_end = sqlite3_column_int64(st, 7);
    s->trial_end = sqlite3_column_int64(st, 8);
    s->cancel_at_period_end = sqlite3_column_int(st, 9) != 0;
}

static bool live_sub(sqlite3 *db, const char *customer_id, struct sub *out, struct err *e)
{
    sqlite3_stmt *st;
    if (!sq_prepare(db, "SELECT " SUB_COLUMNS " FROM subscriptions WHERE customer_id = ? AND "
                        "status <> 'canceled'",
                    &st, e, SQ_TEXT(customer_id), SQ_END))
        return false;
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        sub_from_row(st, out);
    sqlite3_finalize(st);
    if (rc == SQLITE_ROW)
        return true;
    if (rc != SQLITE_DONE)
        return sq_fail(db, "reading subscriptions", e);
    return err_set_param(e, ERR_NOT_FOUND, "customer",
                         "customer '%s' has no live subscription", customer_id);
}

static bool sub_json(sqlite3 *db, const char *id, char **out, struct err *e)
{
    if (!sq_text(db, "SELECT " SUB_JSON("") " FROM subscriptions WHERE id = ?", out, e,
                 SQ_TEXT(id), SQ_END))
        return false;
    if (!*out)
        return err_set(e, ERR_NOT_FOUND, "no subscription '%s'", id);
    return true;
}

static bool record_change(sqlite3 *db, const char *sub_id, int64_t at, const char *kind,
                          int64_t from_version, int64_t to_version, const char *from_status,
                          const char *to_status, const char *actor, struct err *e)
{
    return sq_exec(db,
                   "INSERT INTO subscription_changes (subscription_id, at, kind, "
                   "from_plan_version_id, to_plan_version_id, from_status, to_status, actor) "
                   "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                   NULL, e, SQ_TEXT(sub_id), SQ_INT(at), SQ_TEXT(kind),
                   SQ_INT_OR_NULL(from_version), SQ_INT_OR_NULL(to_version), SQ_TEXT(from_status),
                   SQ_TEXT(to_status), SQ_TEXT(actor), SQ_END);
}

bool subscriptions_create(sqlite3 *db, const char *actor, const char *customer_id,
                          const char *plan_id, int anchor_day, int64_t now, char **json_out,
                          struct err *e)
{
    *json_out = NULL;
    if (anchor_day < 0 || anchor_day > 31)
        return err_set_param(e, ERR_INVALID, "billing_anchor_day",
                             "billing_anchor_day must be 1..31");
    struct plan_version pv;
    if (!customers_check_usable(db, customer_id, e) || !plans_version_at(db, plan_id, now, &pv, e))
        return false;
    struct caltime_date today = caltime_date_of(now);
    int day = anchor_day ? anchor_day : today.day;
    int64_t start, end;
    caltime_period_containing(day, today.month, pv.interval_months, now, &start, &end);
    bool had_trial = false;
    int64_t dummy;
    if (!sq_int(db, "SELECT 1 FROM subscriptions WHERE customer_id = ? AND trial_end IS NOT NULL",
                &dummy, &had_trial, e, SQ_TEXT(customer_id), SQ_END))
        return false;
    int64_t trial_end = pv.trial_days > 0 && !had_trial ? now + pv.trial_days * CALTIME_DAY_MS : 0;
    const char *status = trial_end ? "trialing" : "active";
    char id[RANDID_MAX];
    if (!randid_make("sub_", id, sizeof id, e))
        return false;
    struct err ie = {0};
    if (!sq_exec(db,
                 "INSERT INTO subscriptions (id, customer_id, plan_id, status, billing_anchor_day, "
                 "billing_anchor_month, current_period_start, current_period_end, trial_end, "
                 "created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                 NULL, &ie, SQ_TEXT(id), SQ_TEXT(customer_id), SQ_TEXT(plan_id), SQ_TEXT(status),
                 SQ_INT(day), SQ_INT(today.month), SQ_INT(start), SQ_INT(end),
                 SQ_INT_OR_NULL(trial_end), SQ_INT(now), SQ_INT(now), SQ_END)) {
        if (ie.code == ERR_CONFLICT)
            return err_set_param(e, ERR_CONFLICT, "customer",
                                 "customer '%s' already has a live subscription: change its "
                                 "plan or cancel it first", customer_id);
        *e = ie;
        return false;
    }
    return record_change(db, id, now, "created", 0, pv.id, NULL, status, actor, e) &&
           sub_json(db, id, json_out, e) &&
           audit_append(db, actor, "subscription.create", id, NULL, *json_out, now, e);
}

bool subscriptions_get(sqlite3 *db, const char *customer_id, char **json_out, struct err *e)
{
    if (!sq_text(db,
                 "SELECT json_insert(" SUB_JSON("s.") ", '$.changes', (SELECT json_group_array("
                 "json(j)) FROM (SELECT " CHANGE_JSON " AS j FROM subscription_changes c WHERE "
                 "c.subscription_id = s.id ORDER BY c.id))) FROM subscriptions s "
                 "WHERE s.customer_id = ? ORDER BY s.status = 'canceled', s.created_at DESC LIMIT 1",
                 json_out, e, SQ_TEXT(customer_id), SQ_END))
        return false;
    if (!*json_out)
        return err_set_param(e, ERR_NOT_FOUND, "customer",
                             "customer '%s' has no subscription", customer_id);
    return true;
}

bool subscriptions_change_plan(sqlite3 *db, const char *actor, const char *customer_id,
                               const char *plan_id, int64_t now, char **json_out, struct err *e)
{
    *json_out = NULL;
    struct sub s;
    struct plan_version from, to;
    if (!live_sub(db, customer_id, &s, e) || !plans_version_at(db, s.plan_id, now, &from, e) ||
        !plans_version_at(db, plan_id, now, &to, e))
        return false;
    if (strcmp(s.plan_id, plan_id) == 0)
        return err_set_param(e, ERR_CONFLICT, "plan", "the subscription is already on plan '%s'",
                             plan_id);
    char *before = NULL;
    if (!sub_json(db, s.id, &before, e))
        return false;
    int day = s.anchor_day, month = s.anchor_month;
    if (from.interval_months != to.interval_months) {
        struct caltime_date today = caltime_date_of(now);
        day = today.day;
        month = today.month;
    }
    int64_t start, end;
    caltime_period_containing(day, month, to.interval_months, now, &start, &end);
    bool trial = strcmp(s.status, "trialing") == 0;
    const char *status = trial ? "active" : s.status;
    bool ok = sq_exec(db,
                      "UPDATE subscriptions SET plan_id = ?, status = ?, billing_anchor_day = ?, "
                      "billing_anchor_month = ?, current_period_start = ?, current_period_end = ?, "
                      "trial_end = CASE WHEN ? THEN ? ELSE trial_end END, updated_at = ? "
                      "WHERE id = ?",
                      NULL, e, SQ_TEXT(plan_id), SQ_TEXT(status), SQ_INT(day), SQ_INT(month),
                      SQ_INT(start), SQ_INT(end), SQ_INT(trial), SQ_INT(now), SQ_INT(now),
                      SQ_TEXT(s.id), SQ_END) &&
              record_change(db, s.id, now, "plan_changed", from.id, to.id, s.status, status,
                            actor, e) &&
              sub_json(db, s.id, json_out, e) &&
              audit_append(db, actor, "subscription.change", s.id, before, *json_out, now, e);
    free(before);
    return ok;
}

bool subscriptions_cancel(sqlite3 *db, const char *actor, const char *customer_id,
                          bool at_period_end, int64_t now, char **json_out, struct err *e)
{
    *json_out = NULL;
    struct sub s;
    struct plan_version pv;
    if (!live_sub(db, customer_id, &s, e) || !plans_version_at(db, s.plan_id, now, &pv, e))
        return false;
    char *before = NULL;
    if (!sub_json(db, s.id, &before, e))
        return false;
    bool ok;
    if (at_period_end)
        ok = sq_exec(db, "UPDATE subscriptions SET cancel_at_period_end = 1, updated_at = ? "
                         "WHERE id = ?",
                     NULL, e, SQ_INT(now), SQ_TEXT(s.id), SQ_END) &&
             record_change(db, s.id, now, "cancel_scheduled", pv.id, pv.id, s.status, s.status,
                           actor, e);
    else
        ok = sq_exec(db, "UPDATE subscriptions SET status = 'canceled', canceled_at = ?, "
                         "updated_at = ? WHERE id = ?",
                     NULL, e, SQ_INT(now), SQ_INT(now), SQ_TEXT(s.id), SQ_END) &&
             record_change(db, s.id, now, "canceled", pv.id, 0, s.status, "canceled", actor, e);
    ok = ok && sub_json(db, s.id, json_out, e) &&
         audit_append(db, actor, at_period_end ? "subscription.cancel_at_period_end"
                                               : "subscription.cancel",
                      s.id, before, *json_out, now, e);
    free(before);
    return ok;
}

/* Apply, in time order, every event up to `now` of one subscription. */
static bool roll_one(sqlite3 *db, struct sub *s, int64_t now, struct err *e)
{
    const char *actor = "system:renewal";
    int64_t canceled_at = 0;
    for (;;) {
        bool trial = strcmp(s->status, "trialing") == 0 && s->trial_end && s->trial_end <= now;
        bool renew = s->period_end <= now;
        if (trial && (!renew || s->trial_end <= s->period_end)) {
            struct plan_version pv;
            if (!plans_version_at(db, s->plan_id, s->trial_end, &pv, e) ||
                !record_change(db, s->id, s->trial_end, "trial_ended", pv.id, pv.id, "trialing",
                               "active", actor, e))
                return false;
            snprintf(s->status, sizeof s->status, "active");
            continue;
        }
        if (!renew)
            break;
        int64_t at = s->period_end;
        struct plan_version before, after;
        if (!plans_version_at(db, s->plan_id, at - 1, &before, e) ||
            !plans_version_at(db, s->plan_id, at, &after, e))
            return false;
        if (s->cancel_at_period_end) {
            if (!record_change(db, s->id, at, "canceled", before.id, 0, s->status, "canceled",
                               actor, e))
                return false;
            snprintf(s->status, sizeof s->status, "canceled");
            canceled_at = at;
            break;
        }
        int64_t start, end;
        caltime_period_containing(s->anchor_day, s->anchor_month, after.interval_months, at,
                                  &start, &end);
        s->period_start = start;
        s->period_end = end;
        if (!record_change(db, s->id, at, "renewed", before.id, after.id, s->status, s->status,
                           actor, e))
            return false;
    }
    return sq_exec(db,
                   "UPDATE subscriptions SET status = ?, current_period_start = ?, "
                   "current_period_end = ?, canceled_at = coalesce(?, canceled_at), updated_at = ? "
                   "WHERE id = ?",
                   NULL, e, SQ_TEXT(s->status), SQ_INT(s->period_start), SQ_INT(s->period_end),
                   SQ_INT_OR_NULL(canceled_at), SQ_INT(now), SQ_TEXT(s->id), SQ_END);
}

bool subscriptions_roll(sqlite3 *db, int64_t now, int *n_changed, int *n_failed, struct err *e)
{
    *n_changed = 0;
    *n_failed = 0;
    sqlite3_stmt *st;
    if (!sq_prepare(db,
                    /* Two index searches; an OR would scan every live subscription. */
                    "SELECT " SUB_COLUMNS " FROM subscriptions WHERE status <> 'canceled' AND "
                    "current_period_end <= ?1 UNION SELECT " SUB_COLUMNS " FROM subscriptions "
                    "WHERE status = 'trialing' AND trial_end <= ?1",
                    &st, e, SQ_INT(now), SQ_END))
        return false;
    /* Collect first: the updates below must not run under an open cursor
     * on the same table. */
    struct sub *subs = NULL;
    size_t n = 0, cap = 0;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            struct sub *ns = realloc(subs, cap * sizeof *ns);
            if (!ns) {
                free(subs);
                sqlite3_finalize(st);
                return err_set(e, ERR_NOMEM, "out of memory");
            }
            subs = ns;
        }
        sub_from_row(st, &subs[n++]);
    }
    sqlite3_finalize(st);
    bool ok = rc == SQLITE_DONE || sq_fail(db, "reading subscriptions", e);
    for (size_t i = 0; ok && i < n; i++) {
        struct err one = {0};
        if (!store_exec(db, "SAVEPOINT roll_one", e))
            ok = false;
        else if (roll_one(db, &subs[i], now, &one) && store_exec(db, "RELEASE roll_one", &one)) {
            (*n_changed)++;
        } else {
            sqlite3_exec(db, "ROLLBACK TO roll_one; RELEASE roll_one", NULL, NULL, NULL);
            (*n_failed)++;
            err_set(e, one.code, "subscription %s: %s", subs[i].id, one.msg);
        }
    }
    free(subs);
    return ok;
}

/* admin_subscriptions.c — /admin/v1/customers/{id}/subscription: create,
 * get (with its change history), change plan, cancel now or at period end
 * (server/subscriptions.h has the rules). */
#include <stdlib.h>

#include "api/admin.h"
#include "server/daemon.h"
#include "server/subscriptions.h"

static bool create_job(sqlite3 *db, struct admin_write *w, struct err *e)
{
    const char *plan;
    int64_t anchor = 0;
    if (!admin_field_str(w->body, "plan", &plan, e) ||
        !admin_field_int(w->body, "billing_anchor_day", &anchor, NULL, e))
        return false;
    if (!plan)
        return err_set_param(e, ERR_INVALID, "plan", "plan is required");
    if (anchor < 0 || anchor > 31)
        return err_set_param(e, ERR_INVALID, "billing_anchor_day", "billing_anchor_day must be 1..31");
    return subscriptions_create(db, w->actor, w->id, plan, (int)anchor, w->now, &w->result, e);
}

void api_admin_subscriptions_create(struct api_call *c)
{
    admin_write(c, create_job);
}

static bool change_job(sqlite3 *db, struct admin_write *w, struct err *e)
{
    const char *plan;
    if (!admin_field_str(w->body, "plan", &plan, e))
        return false;
    if (!plan)
        return err_set_param(e, ERR_INVALID, "plan", "plan is required");
    return subscriptions_change_plan(db, w->actor, w->id, plan, w->now, &w->result, e);
}

void api_admin_subscriptions_change(struct api_call *c)
{
    admin_write(c, change_job);
}

static bool cancel_job(sqlite3 *db, struct admin_write *w, struct err *e)
{
    bool at_period_end = false;
    return admin_field_bool(w->body, "at_period_end", &at_period_end, e) &&
           subscriptions_cancel(db, w->actor, w->id, at_period_end, w->now, &w->result, e);
}

void api_admin_subscriptions_cancel(struct api_call *c)
{
    admin_write(c, cancel_job);
}

void api_admin_subscriptions_get(struct api_call *c)
{
    struct err e = {0};
    char *json = NULL;
    bool ok = admin_customer_exists(c->d->db_read, c->params[0], &e) &&
              subscriptions_get(c->d->db_read, c->params[0], &json, &e);
    admin_answer(c, ok, json, NULL, &e);
}

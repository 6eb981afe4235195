/* admin_credits.c — /admin/v1/customers/{id}/credits: grant and list
 * (server/credits.h). Body of a grant: {"unit": "tokens"|"micros",
 * "amount": N, "currency": "USD" (micros only), "kind": "promotional"|
 * "prepaid" (default promotional), "reason": "...", "expires_at": ms}. */
#include <stdlib.h>

#include "api/admin.h"
#include "server/credits.h"
#include "server/daemon.h"

static bool grant_job(sqlite3 *db, struct admin_write *w, struct err *e)
{
    struct credit_grant g = {.customer_id = w->id};
    bool has_amount = false;
    if (!admin_field_str(w->body, "kind", &g.kind, e) ||
        !admin_field_str(w->body, "unit", &g.unit, e) ||
        !admin_field_str(w->body, "currency", &g.currency, e) ||
        !admin_field_str(w->body, "reason", &g.reason, e) ||
        !admin_field_int(w->body, "amount", &g.amount, &has_amount, e) ||
        !admin_field_int(w->body, "expires_at", &g.expires_at, NULL, e))
        return false;
    if (!g.kind)
        g.kind = "promotional";
    if (!has_amount)
        return err_set_param(e, ERR_INVALID, "amount", "amount is required");
    return credits_grant(db, w->actor, &g, w->now, &w->result, e);
}

void api_admin_credits_grant(struct api_call *c)
{
    admin_write(c, grant_job);
}

void api_admin_credits_list(struct api_call *c)
{
    int limit;
    const char *after;
    if (!admin_page(c, &limit, &after))
        return;
    struct err e = {0};
    cJSON *list = NULL;
    bool ok = admin_customer_exists(c->d->db_read, c->params[0], &e) &&
              credits_list(c->d->db_read, c->params[0], limit, after, &list, &e);
    admin_answer(c, ok, NULL, list, &e);
}

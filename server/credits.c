/* credits.c — see credits.h. */
#include "server/credits.h"

#include <string.h>

#include "server/audit.h"
#include "server/customers.h"
#include "server/randid.h"
#include "server/sq.h"

#define CREDIT_JSON                                                                            \
    "json_object('object', 'credit', 'id', id, 'customer_id', customer_id, 'kind', kind, "      \
    "'unit', unit, 'currency', currency, 'amount', amount, 'remaining', remaining, "           \
    "'granted_at', granted_at, 'expires_at', expires_at, 'reason', reason, 'granted_by', "     \
    "granted_by)"

bool credits_grant(sqlite3 *db, const char *actor, const struct credit_grant *g, int64_t now,
                   char **json_out, struct err *e)
{
    *json_out = NULL;
    if (!g->kind || (strcmp(g->kind, "prepaid") != 0 && strcmp(g->kind, "promotional") != 0))
        return err_set_param(e, ERR_INVALID, "kind", "kind must be prepaid or promotional");
    if (!g->unit || (strcmp(g->unit, "micros") != 0 && strcmp(g->unit, "tokens") != 0))
        return err_set_param(e, ERR_INVALID, "unit", "unit must be micros or tokens");
    bool money = strcmp(g->unit, "micros") == 0;
    if (money && (!g->currency || strlen(g->currency) != 3 ||
                  strspn(g->currency, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") != 3))
        return err_set_param(e, ERR_INVALID, "currency",
                             "a money credit needs an ISO 4217 currency such as USD");
    if (!money && g->currency && *g->currency)
        return err_set_param(e, ERR_INVALID, "currency", "a token credit has no currency");
    if (g->amount <= 0)
        return err_set_param(e, ERR_INVALID, "amount", "amount must be positive");
    if (!g->reason || !*g->reason || strlen(g->reason) > 200)
        return err_set_param(e, ERR_INVALID, "reason", "a reason of 1 to 200 characters is required");
    if (g->expires_at && g->expires_at <= now)
        return err_set_param(e, ERR_INVALID, "expires_at", "expires_at is in the past");
    if (!customers_check_usable(db, g->customer_id, e))
        return false;
    char id[RANDID_MAX];
    if (!randid_make("cred_", id, sizeof id, e))
        return false;
    return sq_exec(db,
                   "INSERT INTO credits (id, customer_id, kind, unit, currency, amount, remaining, "
                   "granted_at, expires_at, reason, granted_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?, "
                   "?, ?, ?)",
                   NULL, e, SQ_TEXT(id), SQ_TEXT(g->customer_id), SQ_TEXT(g->kind),
                   SQ_TEXT(g->unit), SQ_TEXT(money ? g->currency : NULL), SQ_INT(g->amount),
                   SQ_INT(g->amount), SQ_INT(now), SQ_INT_OR_NULL(g->expires_at),
                   SQ_TEXT(g->reason), SQ_TEXT(actor), SQ_END) &&
           sq_text(db, "SELECT " CREDIT_JSON " FROM credits WHERE id = ?", json_out, e,
                   SQ_TEXT(id), SQ_END) &&
           audit_append(db, actor, "credit.grant", id, NULL, *json_out, now, e);
}

bool credits_list(sqlite3 *db, const char *customer_id, int limit, const char *after,
                  cJSON **out, struct err *e)
{
    *out = NULL;
    if (after && *after) {
        bool found = false;
        int64_t dummy;
        if (!sq_int(db, "SELECT 1 FROM credits WHERE id = ? AND customer_id = ?", &dummy, &found,
                    e, SQ_TEXT(after), SQ_TEXT(customer_id), SQ_END))
            return false;
        if (!found)
            return err_set_param(e, ERR_INVALID, "after", "no credit '%s' to list after", after);
    }
    cJSON *data = cJSON_CreateArray();
    if (!sq_json_rows(db,
                      "SELECT " CREDIT_JSON " FROM credits WHERE customer_id = ?1 AND (?2 IS NULL "
                      "OR (granted_at, id) > (SELECT granted_at, id FROM credits WHERE id = ?2)) "
                      "ORDER BY granted_at, id LIMIT ?3",
                      data, NULL, e, SQ_TEXT(customer_id),
                      SQ_TEXT(after && *after ? after : NULL), SQ_INT(limit + 1), SQ_END)) {
        cJSON_Delete(data);
        return false;
    }
    *out = sq_list_envelope(data, limit);
    return true;
}

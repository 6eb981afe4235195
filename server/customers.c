/* customers.c — see customers.h. */
#include "server/customers.h"

#include <stdlib.h>
#include <string.h>

#include "server/audit.h"
#include "server/randid.h"
#include "server/sq.h"
#include "server/subscriptions.h"

#define CUSTOMER_JSON                                                                        \
    "json_object('object', 'customer', 'id', id, 'name', name, 'email', email, 'status', "   \
    "status, 'created_at', created_at, 'updated_at', updated_at)"

static bool printable(const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p < 0x20 || *p == 0x7f)
            return false;
    return true;
}

static bool check_name(const char *name, struct err *e)
{
    size_t n = name ? strlen(name) : 0;
    if (n == 0 || n > 200 || !printable(name))
        return err_set_param(e, ERR_INVALID, "name",
                             "name must be 1 to 200 printable characters");
    return true;
}

static bool check_email(const char *email, struct err *e)
{
    if (!email || !*email)
        return true;
    size_t n = strlen(email);
    const char *at = strchr(email, '@');
    if (n > 254 || !at || at == email || !at[1] || strchr(at + 1, '@') || strpbrk(email, " \t<>") ||
        !printable(email))
        return err_set_param(e, ERR_INVALID, "email", "email is not an address");
    return true;
}

bool customers_get(sqlite3 *db, const char *id, char **json_out, struct err *e)
{
    if (!sq_text(db, "SELECT " CUSTOMER_JSON " FROM customers WHERE id = ?", json_out, e,
                 SQ_TEXT(id), SQ_END))
        return false;
    if (!*json_out)
        return err_set_param(e, ERR_NOT_FOUND, "customer", "no customer '%s'", id);
    return true;
}

bool customers_check_usable(sqlite3 *db, const char *id, struct err *e)
{
    char *status = NULL;
    if (!sq_text(db, "SELECT status FROM customers WHERE id = ?", &status, e, SQ_TEXT(id), SQ_END))
        return false;
    bool ok = true;
    if (!status)
        ok = err_set_param(e, ERR_NOT_FOUND, "customer", "no customer '%s'", id);
    else if (strcmp(status, "erased") == 0)
        ok = err_set_param(e, ERR_CONFLICT, "customer", "customer '%s' has been erased", id);
    free(status);
    return ok;
}

bool customers_create(sqlite3 *db, const char *actor, const char *name, const char *email,
                      int64_t now, char **json_out, struct err *e)
{
    *json_out = NULL;
    if (!check_name(name, e) || !check_email(email, e))
        return false;
    char id[RANDID_MAX];
    if (!randid_make("cus_", id, sizeof id, e))
        return false;
    if (!sq_exec(db,
                 "INSERT INTO customers (id, name, email, status, created_at, updated_at) "
                 "VALUES (?, ?, ?, 'active', ?, ?)",
                 NULL, e, SQ_TEXT(id), SQ_TEXT(name), SQ_TEXT(email && *email ? email : NULL),
                 SQ_INT(now), SQ_INT(now), SQ_END))
        return false;
    if (!customers_get(db, id, json_out, e))
        return false;
    return audit_append(db, actor, "customer.create", id, NULL, *json_out, now, e);
}

bool customers_list(sqlite3 *db, int limit, const char *after, cJSON **out, struct err *e)
{
    *out = NULL;
    if (after && *after) {
        bool found = false;
        int64_t dummy;
        if (!sq_int(db, "SELECT 1 FROM customers WHERE id = ?", &dummy, &found, e,
                    SQ_TEXT(after), SQ_END))
            return false;
        if (!found)
            return err_set_param(e, ERR_INVALID, "after", "no customer '%s' to list after", after);
    }
    cJSON *data = cJSON_CreateArray();
    if (!sq_json_rows(db,
                      "SELECT " CUSTOMER_JSON " FROM customers WHERE ?1 IS NULL OR "
                      "(created_at, id) > (SELECT created_at, id FROM customers WHERE id = ?1) "
                      "ORDER BY created_at, id LIMIT ?2",
                      data, NULL, e, SQ_TEXT(after && *after ? after : NULL),
                      SQ_INT(limit + 1), SQ_END)) {
        cJSON_Delete(data);
        return false;
    }
    *out = sq_list_envelope(data, limit);
    return true;
}

static bool erase(sqlite3 *db, const char *actor, const char *id, int64_t now, struct err *e)
{
    /* Keys stop working at once; a pending rotation grace ends now too. */
    if (!sq_exec(db,
                 "UPDATE api_keys SET revoked_at = ?1 WHERE customer_id = ?2 AND "
                 "(revoked_at IS NULL OR revoked_at > ?1)",
                 NULL, e, SQ_INT(now), SQ_TEXT(id), SQ_END))
        return false;
    char *sub = NULL;
    struct err se = {0};
    if (!subscriptions_cancel(db, actor, id, false, now, &sub, &se) && se.code != ERR_NOT_FOUND) {
        *e = se;
        return false;
    }
    free(sub);
    /* Stored idempotent responses hold the customer's completions: the
     * only request or response text maasd keeps (docs/privacy.md). */
    if (!sq_exec(db, "DELETE FROM idempotency_keys WHERE customer_id = ?", NULL, e, SQ_TEXT(id),
                 SQ_END))
        return false;
    return sq_exec(db, "UPDATE customers SET name = '(erased)', email = NULL WHERE id = ?", NULL,
                   e, SQ_TEXT(id), SQ_END);
}

bool customers_update(sqlite3 *db, const char *actor, const char *id,
                      const struct customer_update *u, int64_t now, char **json_out,
                      struct err *e)
{
    *json_out = NULL;
    char *before = NULL;
    if (!customers_get(db, id, &before, e))
        return false;
    bool ok = true;
    cJSON *b = cJSON_Parse(before);
    const char *old_status = cJSON_GetStringValue(cJSON_GetObjectItem(b, "status"));
    if (old_status && strcmp(old_status, "erased") == 0)
        ok = err_set_param(e, ERR_CONFLICT, "status", "customer '%s' has been erased", id);
    if (ok && u->status && strcmp(u->status, "active") != 0 &&
        strcmp(u->status, "suspended") != 0 && strcmp(u->status, "erased") != 0)
        ok = err_set_param(e, ERR_INVALID, "status",
                           "status must be active, suspended or erased");
    if (ok && u->name)
        ok = check_name(u->name, e);
    if (ok && u->email)
        ok = check_email(u->email, e);
    if (ok)
        ok = sq_exec(db,
                     "UPDATE customers SET name = coalesce(?2, name), "
                     "email = CASE WHEN ?3 IS NULL THEN email WHEN ?3 = '' THEN NULL ELSE ?3 END, "
                     "status = coalesce(?4, status), updated_at = ?5 WHERE id = ?1",
                     NULL, e, SQ_TEXT(id), SQ_TEXT(u->name), SQ_TEXT(u->email),
                     SQ_TEXT(u->status), SQ_INT(now), SQ_END);
    if (ok && u->status && strcmp(u->status, "erased") == 0)
        ok = erase(db, actor, id, now, e);
    cJSON_Delete(b);
    if (ok)
        ok = customers_get(db, id, json_out, e);
    if (ok)
        ok = audit_append(db, actor,
                          u->status && strcmp(u->status, "erased") == 0 ? "customer.erase"
                                                                          : "customer.update",
                          id, before, *json_out, now, e);
    free(before);
    return ok;
}

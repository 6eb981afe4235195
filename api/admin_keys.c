/* admin_keys.c — /admin/v1 API keys: issue (the secret is in that one
 * response), list and get (display prefix only), revoke, rotate. */
#include <stdlib.h>
#include <string.h>

#include "api/admin.h"
#include "server/daemon.h"
#include "server/keys.h"

static bool issue_job(sqlite3 *db, struct admin_write *w, struct err *e)
{
    struct key_issue in = {.customer_id = w->id};
    const cJSON *scopes = cJSON_GetObjectItemCaseSensitive(w->body, "scopes");
    char *models = NULL;
    bool ok = admin_field_str(w->body, "name", &in.name, e) &&
              admin_field_int(w->body, "expires_at", &in.expires_at, NULL, e);
    if (ok && scopes)
        ok = apikey_scopes_from_json(scopes, &in.scopes, e);
    else if (ok)
        in.scopes = SCOPE_INFERENCE | SCOPE_USAGE_READ;
    ok = ok && keys_models_from_json(cJSON_GetObjectItemCaseSensitive(w->body, "allowed_models"),
                                     "allowed_models", &models, e);
    in.allowed_models_json = models;
    ok = ok && keys_issue(db, w->actor, w->pepper, &in, w->now, w->secret, &w->result, e);
    free(models);
    return ok;
}

void api_admin_keys_issue(struct api_call *c)
{
    admin_write(c, issue_job);
}

static bool revoke_job(sqlite3 *db, struct admin_write *w, struct err *e)
{
    return keys_revoke(db, w->actor, w->id, w->now, &w->result, e);
}

void api_admin_keys_revoke(struct api_call *c)
{
    admin_write(c, revoke_job);
}

static bool rotate_job(sqlite3 *db, struct admin_write *w, struct err *e)
{
    int64_t grace_s = KEYS_DEFAULT_GRACE_MS / 1000;
    return admin_field_int(w->body, "grace_seconds", &grace_s, NULL, e) &&
           keys_rotate(db, w->actor, w->pepper, w->id, grace_s * 1000, w->now, w->secret,
                       &w->result, e);
}

void api_admin_keys_rotate(struct api_call *c)
{
    admin_write(c, rotate_job);
}

void api_admin_keys_get(struct api_call *c)
{
    struct err e = {0};
    char *json = NULL;
    bool ok = keys_get(c->d->db_read, c->params[0], &json, &e);
    admin_answer(c, ok, json, NULL, &e);
}

void api_admin_keys_list(struct api_call *c)
{
    int limit;
    const char *after;
    if (!admin_page(c, &limit, &after))
        return;
    struct err e = {0};
    cJSON *list = NULL;
    bool ok = admin_customer_exists(c->d->db_read, c->params[0], &e) &&
              keys_list(c->d->db_read, c->params[0], limit, after, &list, &e);
    admin_answer(c, ok, NULL, list, &e);
}

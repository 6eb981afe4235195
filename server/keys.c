/* keys.c — see keys.h. */
#include "server/keys.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/audit.h"
#include "server/customers.h"
#include "server/randid.h"
#include "server/sq.h"

#define KEY_JSON                                                                              \
    "json_object('object', 'api_key', 'id', id, 'customer_id', customer_id, 'name', name, "  \
    "'display_prefix', display_prefix, 'scopes', json(scopes), 'allowed_models', "           \
    "json(allowed_models), 'created_at', created_at, 'expires_at', expires_at, "             \
    "'revoked_at', revoked_at, 'last_used_at', last_used_at, 'rotated_to', rotated_to)"

static bool model_ok(const char *m)
{
    size_t n = strlen(m);
    if (n == 0 || n >= KEYS_MODEL_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = m[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || c == '.' || c == ':' || c == '@' || c == '/'))
            return false;
    }
    return true;
}

bool keys_models_from_json(const cJSON *v, const char *param, char **out, struct err *e)
{
    *out = NULL;
    if (!v || cJSON_IsNull(v))
        return true;
    if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) < 1 || cJSON_GetArraySize(v) > KEYS_MAX_MODELS)
        return err_set_param(e, ERR_INVALID, param,
                             "%s must be null or an array of 1 to %d model ids", param,
                             KEYS_MAX_MODELS);
    cJSON *canon = cJSON_CreateArray();
    const cJSON *it;
    cJSON_ArrayForEach(it, v) {
        if (!cJSON_IsString(it) || !model_ok(it->valuestring)) {
            cJSON_Delete(canon);
            return err_set_param(e, ERR_INVALID, param,
                                 "%s: a model id is 1 to 63 characters of letters, digits "
                                 "and - _ . : @ /", param);
        }
        cJSON_AddItemToArray(canon, cJSON_CreateString(it->valuestring));
    }
    *out = cJSON_PrintUnformatted(canon);
    cJSON_Delete(canon);
    return true;
}

bool keys_models_from_list(const char *list, const char *param, char **out, struct err *e)
{
    *out = NULL;
    if (!list || !*list || strcmp(list, "*") == 0)
        return true;
    cJSON *a = cJSON_CreateArray();
    const char *p = list;
    while (*p) {
        p += strspn(p, ", ");
        size_t len = strcspn(p, ", ");
        if (len) {
            char m[KEYS_MODEL_MAX + 1];
            snprintf(m, sizeof m, "%.*s", (int)(len > KEYS_MODEL_MAX ? KEYS_MODEL_MAX : len), p);
            cJSON_AddItemToArray(a, cJSON_CreateString(m));
        }
        p += len;
    }
    bool ok = keys_models_from_json(a, param, out, e);
    cJSON_Delete(a);
    return ok;
}

bool keys_get(sqlite3 *db, const char *id, char **json_out, struct err *e)
{
    if (!sq_text(db, "SELECT " KEY_JSON " FROM api_keys WHERE id = ?", json_out, e, SQ_TEXT(id),
                 SQ_END))
        return false;
    if (!*json_out)
        return err_set_param(e, ERR_NOT_FOUND, "key", "no API key '%s'", id);
    return true;
}

bool keys_any(sqlite3 *db, bool *out, struct err *e)
{
    int64_t v = 0;
    return sq_int(db, "SELECT 1 FROM api_keys LIMIT 1", &v, out, e, SQ_END);
}

/* Insert a new key row; the secret goes to secret_out, its id to id_out. */
static bool insert_key(sqlite3 *db, const uint8_t pepper[APIKEY_PEPPER_LEN],
                       const struct key_issue *in, int64_t now, char *secret_out,
                       char id_out[RANDID_MAX], struct err *e)
{
    char display[APIKEY_DISPLAY_MAX];
    uint8_t hash[APIKEY_HASH_LEN];
    if (!randid_make("key_", id_out, RANDID_MAX, e) || !apikey_generate(secret_out, e) ||
        !apikey_hash(pepper, secret_out, APIKEY_LEN, hash, e))
        return false;
    apikey_display(secret_out, display);
    char *scopes = apikey_scopes_json(in->scopes);
    if (!scopes)
        return err_set(e, ERR_NOMEM, "out of memory");
    bool ok = sq_exec(db,
                      "INSERT INTO api_keys (id, customer_id, name, display_prefix, hash, scopes, "
                      "allowed_models, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                      NULL, e, SQ_TEXT(id_out), SQ_TEXT(in->customer_id),
                      SQ_TEXT(in->name ? in->name : ""), SQ_TEXT(display),
                      SQ_BLOB(hash, sizeof hash), SQ_TEXT(scopes),
                      SQ_TEXT(in->allowed_models_json), SQ_INT(now),
                      SQ_INT_OR_NULL(in->expires_at), SQ_END);
    free(scopes);
    return ok;
}

bool keys_issue(sqlite3 *db, const char *actor, const uint8_t pepper[APIKEY_PEPPER_LEN],
                const struct key_issue *in, int64_t now, char secret_out[APIKEY_LEN + 1],
                char **json_out, struct err *e)
{
    *json_out = NULL;
    secret_out[0] = '\0';
    if (!in->scopes || (in->scopes & ~(unsigned)SCOPE_ALL))
        return err_set_param(e, ERR_INVALID, "scopes", "a key needs at least one known scope");
    if (in->name && strlen(in->name) > 200)
        return err_set_param(e, ERR_INVALID, "name", "name is longer than 200 characters");
    if (in->expires_at && in->expires_at <= now)
        return err_set_param(e, ERR_INVALID, "expires_at", "expires_at is in the past");
    if (!customers_check_usable(db, in->customer_id, e))
        return false;
    char id[RANDID_MAX];
    if (!insert_key(db, pepper, in, now, secret_out, id, e) || !keys_get(db, id, json_out, e) ||
        !audit_append(db, actor, "key.issue", id, NULL, *json_out, now, e)) {
        secret_out[0] = '\0';
        return false;
    }
    return true;
}

bool keys_list(sqlite3 *db, const char *customer_id, int limit, const char *after, cJSON **out,
               struct err *e)
{
    *out = NULL;
    if (after && *after) {
        bool found = false;
        int64_t dummy;
        if (!sq_int(db, "SELECT 1 FROM api_keys WHERE id = ? AND customer_id = ?", &dummy, &found,
                    e, SQ_TEXT(after), SQ_TEXT(customer_id), SQ_END))
            return false;
        if (!found)
            return err_set_param(e, ERR_INVALID, "after", "no key '%s' to list after", after);
    }
    cJSON *data = cJSON_CreateArray();
    if (!sq_json_rows(db,
                      "SELECT " KEY_JSON " FROM api_keys WHERE customer_id = ?1 AND (?2 IS NULL OR "
                      "(created_at, id) > (SELECT created_at, id FROM api_keys WHERE id = ?2)) "
                      "ORDER BY created_at, id LIMIT ?3",
                      data, NULL, e, SQ_TEXT(customer_id),
                      SQ_TEXT(after && *after ? after : NULL), SQ_INT(limit + 1), SQ_END)) {
        cJSON_Delete(data);
        return false;
    }
    *out = sq_list_envelope(data, limit);
    return true;
}

bool keys_revoke(sqlite3 *db, const char *actor, const char *id, int64_t now, char **json_out,
                 struct err *e)
{
    *json_out = NULL;
    char *before = NULL;
    if (!keys_get(db, id, &before, e))
        return false;
    /* Revoking again keeps the first instant; a pending rotation grace ends now. */
    bool ok = sq_exec(db,
                      "UPDATE api_keys SET revoked_at = ?1 WHERE id = ?2 AND "
                      "(revoked_at IS NULL OR revoked_at > ?1)",
                      NULL, e, SQ_INT(now), SQ_TEXT(id), SQ_END) &&
              keys_get(db, id, json_out, e) &&
              audit_append(db, actor, "key.revoke", id, before, *json_out, now, e);
    free(before);
    return ok;
}

bool keys_rotate(sqlite3 *db, const char *actor, const uint8_t pepper[APIKEY_PEPPER_LEN],
                 const char *id, int64_t grace_ms, int64_t now, char secret_out[APIKEY_LEN + 1],
                 char **json_out, struct err *e)
{
    *json_out = NULL;
    secret_out[0] = '\0';
    if (grace_ms < 0 || grace_ms > 30LL * 24 * 3600 * 1000)
        return err_set_param(e, ERR_INVALID, "grace", "grace must be between 0 and 30 days");
    sqlite3_stmt *st;
    if (!sq_prepare(db,
                    "SELECT customer_id, name, scopes, allowed_models, coalesce(expires_at, 0), "
                    "revoked_at IS NOT NULL AND revoked_at <= ?2, rotated_to, " KEY_JSON
                    " FROM api_keys WHERE id = ?1",
                    &st, e, SQ_TEXT(id), SQ_INT(now), SQ_END))
        return false;
    if (sqlite3_step(st) != SQLITE_ROW) {
        sqlite3_finalize(st);
        return err_set_param(e, ERR_NOT_FOUND, "key", "no API key '%s'", id);
    }
    char customer[RANDID_MAX], name[256];
    snprintf(customer, sizeof customer, "%s", (const char *)sqlite3_column_text(st, 0));
    snprintf(name, sizeof name, "%s", (const char *)sqlite3_column_text(st, 1));
    char *models = sqlite3_column_type(st, 3) == SQLITE_NULL
                       ? NULL : strdup((const char *)sqlite3_column_text(st, 3));
    cJSON *scopes_json = cJSON_Parse((const char *)sqlite3_column_text(st, 2));
    struct key_issue in = {.customer_id = customer, .name = name, .allowed_models_json = models,
                           .expires_at = sqlite3_column_int64(st, 4)};
    bool revoked = sqlite3_column_int(st, 5) != 0;
    bool rotated = sqlite3_column_type(st, 6) != SQLITE_NULL;
    char *before = strdup((const char *)sqlite3_column_text(st, 7));
    sqlite3_finalize(st);

    bool ok = true;
    if (revoked)
        ok = err_set_param(e, ERR_CONFLICT, "key", "API key '%s' is revoked; issue a new one", id);
    else if (rotated)
        ok = err_set_param(e, ERR_CONFLICT, "key", "API key '%s' was already rotated", id);
    else if (in.expires_at && in.expires_at <= now)
        ok = err_set_param(e, ERR_CONFLICT, "key", "API key '%s' has expired; issue a new one", id);
    ok = ok && apikey_scopes_from_json(scopes_json, &in.scopes, e) &&
         customers_check_usable(db, customer, e);
    char new_id[RANDID_MAX];
    char *old_after = NULL;
    ok = ok && insert_key(db, pepper, &in, now, secret_out, new_id, e) &&
         sq_exec(db,
                 "UPDATE api_keys SET rotated_to = ?1, revoked_at = CASE WHEN revoked_at IS NULL "
                 "OR revoked_at > ?2 THEN ?2 ELSE revoked_at END WHERE id = ?3",
                 NULL, e, SQ_TEXT(new_id), SQ_INT(now + grace_ms), SQ_TEXT(id), SQ_END) &&
         keys_get(db, id, &old_after, e) &&
         audit_append(db, actor, "key.rotate", id, before, old_after, now, e) &&
         keys_get(db, new_id, json_out, e) &&
         audit_append(db, actor, "key.issue", new_id, NULL, *json_out, now, e);
    if (!ok)
        secret_out[0] = '\0';
    free(old_after);
    free(before);
    free(models);
    cJSON_Delete(scopes_json);
    return ok;
}

bool keys_touch(sqlite3 *db, const char *id, int64_t now, struct err *e)
{
    return sq_exec(db,
                   "UPDATE api_keys SET last_used_at = ?1 WHERE id = ?2 AND "
                   "(last_used_at IS NULL OR last_used_at <= ?1 - 60000)",
                   NULL, e, SQ_INT(now), SQ_TEXT(id), SQ_END);
}

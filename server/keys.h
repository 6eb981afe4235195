/*
 * keys.h — the api_keys table: issue, list, revoke, rotate, touch.
 *
 * Contract: as every store module (see customers.h): caller's connection,
 * mutations inside the caller's write transaction with their audit row.
 *
 * Secrets
 *   keys_issue() and keys_rotate() generate a secret (apikey.h), store only
 *   its HMAC under the pepper, and hand the secret to the caller in
 *   secret_out — the only time it exists outside the client. It is never
 *   part of the returned JSON, the audit row or a log line.
 *
 * Revocation and rotation
 *   revoked_at is the instant a key stops working; auth compares it with
 *   the current time on every request, so a revocation is effective on the
 *   very next request. Rotation issues a new key with the same customer,
 *   name, scopes, model list and expiry, and sets the old key's revoked_at
 *   to now + grace (default 24 h) so clients can switch over; rotated_to
 *   links old to new.
 *
 * Model lists
 *   allowed_models is NULL (every model) or a JSON array of 1..16 model ids
 *   (1..63 characters each). The helpers below validate both input forms.
 */
#ifndef MAASD_KEYS_H
#define MAASD_KEYS_H

#include <cJSON.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>

#include "engine/err.h"
#include "server/apikey.h"

#define KEYS_MAX_MODELS 16
#define KEYS_MODEL_MAX 64
#define KEYS_DEFAULT_GRACE_MS (24LL * 3600 * 1000)

struct key_issue {
    const char *customer_id;
    const char *name;                 /* may be NULL */
    unsigned scopes;                  /* apikey.h SCOPE_* bits, at least one */
    const char *allowed_models_json;  /* JSON array text, or NULL for every model */
    int64_t expires_at;               /* 0: never */
};

bool keys_issue(sqlite3 *db, const char *actor, const uint8_t pepper[APIKEY_PEPPER_LEN],
                const struct key_issue *in, int64_t now, char secret_out[APIKEY_LEN + 1],
                char **json_out, struct err *e);
bool keys_get(sqlite3 *db, const char *id, char **json_out, struct err *e);
bool keys_list(sqlite3 *db, const char *customer_id, int limit, const char *after, cJSON **out,
               struct err *e);
bool keys_revoke(sqlite3 *db, const char *actor, const char *id, int64_t now, char **json_out,
                 struct err *e);
/* json_out: the new key. */
bool keys_rotate(sqlite3 *db, const char *actor, const uint8_t pepper[APIKEY_PEPPER_LEN],
                 const char *id, int64_t grace_ms, int64_t now, char secret_out[APIKEY_LEN + 1],
                 char **json_out, struct err *e);
/* last_used_at = now unless it is already within the last minute (not audited). */
bool keys_touch(sqlite3 *db, const char *id, int64_t now, struct err *e);
/* Whether any key exists (the pepper may only be created when none does). */
bool keys_any(sqlite3 *db, bool *out, struct err *e);

/* A model list from JSON (an array of strings; null means every model) or
 * from "a,b,c" text into canonical JSON array text (*out NULL for every
 * model). `param` names the field in errors. */
bool keys_models_from_json(const cJSON *v, const char *param, char **out, struct err *e);
bool keys_models_from_list(const char *list, const char *param, char **out, struct err *e);

#endif

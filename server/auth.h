/*
 * auth.h — from an `Authorization: Bearer mk_live_…` header to the
 * principal a request acts for.
 *
 * Contract (loop thread)
 *   auth_authenticate() checks the key's format and checksum (no lookup for
 *   a malformed key), computes HMAC(pepper, key), reads the key row joined
 *   with its customer, live subscription, the plan version in force and
 *   the customer's unexpired token credits in ONE indexed point read on the
 *   daemon's read-only connection, and compares the stored hash in
 *   constant time. Failures:
 *     ERR_UNAUTHENTICATED (401 invalid_api_key): no header, not Bearer,
 *       malformed, unknown, expired, revoked, or the customer erased;
 *     ERR_FORBIDDEN (403): the customer is suspended.
 *   The caller adds `WWW-Authenticate: Bearer realm="maasd"` to a 401.
 *
 * Revocation is immediate, by construction
 *   Nothing is cached: every request reads the key row afresh. SQLite in
 *   WAL mode gives each statement a snapshot of the latest commit, so a
 *   revocation committed by the admin API or by `maasd keys revoke` on the
 *   database file refuses the very next request. revoked_at and expires_at
 *   are compared with the request's own clock reading.
 *
 * The principal
 *   Plain data (no pointers): copy it freely, e.g. into a request or an
 *   engine job. `has_plan` is false when the customer has no live
 *   subscription (admin keys of the operator, say): admission refuses
 *   inference then. The billing period is computed from the subscription's
 *   anchor for `now`, not read from current_period_*, so it is right even
 *   before the periodic renewal has run.
 *
 * Ownership: struct auth owns its prepared statements on the connection
 *   given to auth_open(); close it before that connection.
 */
#ifndef MAASD_AUTH_H
#define MAASD_AUTH_H

#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>

#include "engine/err.h"
#include "server/apikey.h"
#include "server/keys.h"
#include "server/plans.h"
#include "server/randid.h"

struct principal {
    char customer_id[RANDID_MAX];
    char key_id[RANDID_MAX];
    unsigned scopes;                                   /* SCOPE_* bits */
    int n_key_models;                                  /* 0: every model */
    char key_models[KEYS_MAX_MODELS][KEYS_MODEL_MAX];
    int64_t last_used_at;                              /* 0: never */

    bool has_plan;                                     /* a live subscription */
    char subscription_id[RANDID_MAX];
    char subscription_status[16];                      /* trialing | active | past_due */
    struct plan_version plan;                          /* in force now */
    int64_t period_start, period_end;                  /* billing period containing now */
    int64_t credit_tokens;                             /* unexpired token credits remaining */
};

struct auth;

bool auth_open(sqlite3 *db_read, const uint8_t pepper[APIKEY_PEPPER_LEN], struct auth **out,
               struct err *e);
void auth_close(struct auth *a);

/* `authorization` is the raw header value (NULL when absent). */
bool auth_authenticate(struct auth *a, const char *authorization, int64_t now,
                       struct principal *out, struct err *e);

/* ERR_FORBIDDEN (403) naming the missing scope. */
bool auth_require_scope(const struct principal *p, unsigned scope, struct err *e);

/* Whether the key's and the plan's model lists allow `model`; else
 * ERR_FORBIDDEN with param "model". */
bool auth_model_allowed(const struct principal *p, const char *model, struct err *e);

/* True at most once a minute per key (and never when the row already shows
 * a use in the last minute): the caller then submits keys_touch() to the
 * writer. Bounded memory: a small table of recent touches. */
bool auth_touch_due(struct auth *a, const struct principal *p, int64_t now);

#endif

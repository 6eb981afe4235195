/*
 * customers.h — the customers table: create, read, list, update, erase.
 *
 * Contract (every store module: customers, keys, plans, subscriptions,
 * credits)
 *   Functions work on a caller's sqlite3 connection, so both the CLI (on
 *   the database file) and the daemon's writer thread (inside a writer job)
 *   use them. Mutating functions expect the caller to hold a write
 *   transaction (the writer's batch, or cli_store_begin()) and write their
 *   audit row (server/audit.h) in it, with `actor` as given. Reads need no
 *   transaction. Entities come back as JSON text (malloc'ed, caller frees):
 *   the same rendering the admin API returns and the audit log stores.
 *   Lists come back as an OpenAI list envelope (cJSON, caller deletes),
 *   ordered by creation, paginated with `limit` and an `after` id.
 *
 * Status
 *   active → suspended → active: a suspended customer's keys are refused
 *   (403) but kept. erased is final: name and email are scrubbed, every key
 *   is revoked, a live subscription is canceled and stored idempotent
 *   responses (which may hold completions) are deleted; ledger rows (which
 *   hold no personal data) stay for the books.
 */
#ifndef MAASD_CUSTOMERS_H
#define MAASD_CUSTOMERS_H

#include <cJSON.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>

#include "engine/err.h"

#define TENANCY_LIST_MAX 100

struct customer_update {
    const char *name;     /* NULL: unchanged */
    const char *email;    /* NULL: unchanged; "" clears */
    const char *status;   /* NULL: unchanged; "active" | "suspended" | "erased" */
};

bool customers_create(sqlite3 *db, const char *actor, const char *name, const char *email,
                      int64_t now, char **json_out, struct err *e);
bool customers_get(sqlite3 *db, const char *id, char **json_out, struct err *e);
bool customers_list(sqlite3 *db, int limit, const char *after, cJSON **out, struct err *e);
bool customers_update(sqlite3 *db, const char *actor, const char *id,
                      const struct customer_update *u, int64_t now, char **json_out,
                      struct err *e);
/* ERR_NOT_FOUND when missing, ERR_CONFLICT when erased. */
bool customers_check_usable(sqlite3 *db, const char *id, struct err *e);

#endif

/*
 * export.h — everything the database holds about one customer, as JSON
 * (the right of access; docs/privacy.md).
 *
 * What is exported
 *   Found from the schema, not from a fixed list, so tables added by later
 *   migrations (invoices, say) are included without a change here:
 *     - the customers row;
 *     - every row of every table with a customer_id column equal to the
 *       customer's (keys, subscriptions, credits, usage ledger and daily
 *       rollup, idempotency records, invoices when that migration exists);
 *     - every row of a table that has no customer_id but a foreign key into
 *       one of those tables, for the customer's rows there (subscription
 *       changes, invoice lines);
 *     - audit_log rows whose target is the customer or one of those rows'
 *       ids (keys, subscriptions, credits, ...).
 *   Never exported: api_keys.hash (derived from the secret; useless to the
 *   customer and a target for guessing). Columns holding JSON text
 *   (scopes, allowed_models, *_json) are embedded as JSON; other BLOBs
 *   are text when they are UTF-8 (stored idempotent responses), else hex.
 *
 * Output
 *   {"object": "customer.export", "customer_id", "exported_at" (ms),
 *    "tables": {"<table>": [row objects, columns by name], ...}}
 *   written to `out` row by row: memory stays flat whatever the ledger's
 *   size. Run it inside one read transaction (export_customer does) so the
 *   tables agree with each other.
 *
 * Errors: ERR_NOT_FOUND for an unknown customer (nothing written then);
 * a failure after output started leaves `out` truncated (the CLI exits 1).
 */
#ifndef MAASD_EXPORT_H
#define MAASD_EXPORT_H

#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "engine/err.h"

bool export_customer(sqlite3 *db, const char *customer_id, int64_t now_ms, FILE *out,
                     struct err *e);

#endif

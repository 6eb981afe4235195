/*
 * migrate.h — the schema, as numbered SQL files applied in order.
 *
 * Contract
 *   migrations/NNNN_name.sql are embedded at build time (migrations/embed.sh)
 *   into migrations_embedded[], sorted by version. migrate_apply() applies,
 *   in order, each one whose version is not yet recorded in the
 *   schema_migrations table, each in its own transaction together with its
 *   schema_migrations row, so a failure leaves the database at the previous
 *   version. A database that records a version this binary does not have
 *   is refused with ERR_UNSUPPORTED before anything is changed.
 *
 *   A migration is immutable once released: fix forward with a new file.
 */
#ifndef MAASD_MIGRATE_H
#define MAASD_MIGRATE_H

#include <sqlite3.h>
#include <stdbool.h>
#include <stdio.h>

#include "engine/err.h"

struct migration {
    int version;
    const char *name;   /* file name without .sql */
    const char *sql;
};

extern const struct migration migrations_embedded[];
extern const int migrations_embedded_count;

/* Latest version this binary knows. */
int migrate_latest_version(void);

/* Highest version recorded in the database (0 for a new database). */
bool migrate_current_version(sqlite3 *db, int *out, struct err *e);

/* Apply what is pending. With dry_run nothing changes. `report`, when not
 * NULL, gets one line per pending migration ("apply 0002_tenancy" or
 * "pending 0002_tenancy"). *n_applied counts them. */
bool migrate_apply(sqlite3 *db, bool dry_run, FILE *report, int *n_applied, struct err *e);

#endif

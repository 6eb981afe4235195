/* migrate.c — see migrate.h. */
#include "server/migrate.h"

#include "server/store.h"

int migrate_latest_version(void)
{
    return migrations_embedded_count > 0
        ? migrations_embedded[migrations_embedded_count - 1].version : 0;
}

bool migrate_current_version(sqlite3 *db, int *out, struct err *e)
{
    *out = 0;
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db,
            "SELECT count(*) FROM sqlite_schema WHERE type='table' AND name='schema_migrations'",
            -1, &st, NULL) != SQLITE_OK)
        return store_fail(db, "reading schema version", e);
    int has_table = sqlite3_step(st) == SQLITE_ROW && sqlite3_column_int(st, 0) > 0;
    sqlite3_finalize(st);
    if (!has_table)
        return true;
    if (sqlite3_prepare_v2(db, "SELECT coalesce(max(version), 0) FROM schema_migrations", -1,
                           &st, NULL) != SQLITE_OK)
        return store_fail(db, "reading schema version", e);
    if (sqlite3_step(st) == SQLITE_ROW)
        *out = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    return true;
}

static bool apply_one(sqlite3 *db, const struct migration *m, struct err *e)
{
    if (!store_exec(db, "BEGIN IMMEDIATE", e))
        return false;
    char *msg = NULL;
    if (sqlite3_exec(db, m->sql, NULL, NULL, &msg) != SQLITE_OK) {
        err_set(e, ERR_IO, "migration %s failed: %s", m->name, msg ? msg : "?");
        sqlite3_free(msg);
        sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
        return false;
    }
    sqlite3_stmt *st = NULL;
    bool ok = sqlite3_prepare_v2(db,
                  "INSERT INTO schema_migrations(version, name, applied_at) VALUES (?, ?, ?)",
                  -1, &st, NULL) == SQLITE_OK;
    if (ok) {
        sqlite3_bind_int(st, 1, m->version);
        sqlite3_bind_text(st, 2, m->name, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 3, store_now_ms());
        ok = sqlite3_step(st) == SQLITE_DONE;
    }
    sqlite3_finalize(st);
    if (!ok) {
        store_fail(db, m->name, e);
        sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
        return false;
    }
    return store_exec(db, "COMMIT", e);
}

bool migrate_apply(sqlite3 *db, bool dry_run, FILE *report, int *n_applied, struct err *e)
{
    *n_applied = 0;
    int current;
    if (!migrate_current_version(db, &current, e))
        return false;
    int latest = migrate_latest_version();
    if (current > latest)
        return err_set_param(e, ERR_UNSUPPORTED, "db",
                             "database schema version %d is newer than this maasd binary "
                             "supports (%d); run a newer maasd, or restore a backup made by "
                             "this version",
                             current, latest);
    if (!dry_run && !store_exec(db,
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)",
            e))
        return false;
    for (int i = 0; i < migrations_embedded_count; i++) {
        const struct migration *m = &migrations_embedded[i];
        if (m->version <= current)
            continue;
        if (report)
            fprintf(report, "%s %s\n", dry_run ? "pending" : "apply", m->name);
        if (!dry_run && !apply_one(db, m, e))
            return false;
        (*n_applied)++;
    }
    return true;
}

/* store.c — see store.h. */
#include "server/store.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

bool store_fail(sqlite3 *db, const char *what, struct err *e)
{
    int rc = db ? sqlite3_extended_errcode(db) : SQLITE_ERROR;
    const char *msg = db ? sqlite3_errmsg(db) : "out of memory";
    enum err_code code = ERR_IO;
    switch (rc & 0xff) {
    case SQLITE_NOTADB:
    case SQLITE_CORRUPT: code = ERR_CORRUPT; break;
    case SQLITE_CONSTRAINT: code = ERR_CONFLICT; break;
    case SQLITE_NOMEM: code = ERR_NOMEM; break;
    default: break;
    }
    return err_set(e, code, "%s: %s", what, msg);
}

int64_t store_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

bool store_exec(sqlite3 *db, const char *sql, struct err *e)
{
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        sqlite3_free(msg);
        return store_fail(db, "database", e);
    }
    return true;
}

/* mkdir -p of the file's directory, so `--db data/x.db` works on a fresh
 * checkout. */
static bool make_parent_dir(const char *path, struct err *e)
{
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (!slash || slash == dir)
        return true;
    *slash = '\0';
    for (char *p = dir + 1;; p++) {
        bool end = *p == '\0';
        if (*p == '/' || end) {
            *p = '\0';
            if (mkdir(dir, 0750) != 0 && errno != EEXIST)
                return err_set_param(e, ERR_IO, "db",
                                     "cannot create directory '%s' for the database: %s", dir,
                                     strerror(errno));
            if (end)
                return true;
            *p = '/';
        }
    }
}

bool store_open(const char *path, enum store_mode mode, sqlite3 **out, struct err *e)
{
    *out = NULL;
    int flags = SQLITE_OPEN_NOMUTEX;
    if (mode == STORE_READONLY) {
        flags |= SQLITE_OPEN_READONLY;
    } else {
        flags |= SQLITE_OPEN_READWRITE;
        if (mode == STORE_CREATE) {
            flags |= SQLITE_OPEN_CREATE;
            if (!make_parent_dir(path, e))
                return false;
        }
    }
    sqlite3 *db = NULL;
    int rc = sqlite3_open_v2(path, &db, flags, NULL);
    if (rc != SQLITE_OK) {
        err_set_param(e, ERR_IO, "db", "cannot open database '%s': %s", path,
                      db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
        sqlite3_close(db);
        return false;
    }
    sqlite3_extended_result_codes(db, 1);
    sqlite3_busy_timeout(db, STORE_BUSY_TIMEOUT_MS);

    /* Reading the schema is the cheapest operation that proves the file is
     * a database: garbage fails with SQLITE_NOTADB here. */
    sqlite3_stmt *st = NULL;
    rc = sqlite3_prepare_v2(db, "SELECT count(*) FROM sqlite_schema", -1, &st, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_ROW) {
        char what[PATH_MAX + 32];
        snprintf(what, sizeof what, "database '%s'", path);
        store_fail(db, what, e);
        if (e)
            snprintf(e->param, sizeof e->param, "db");
        sqlite3_close(db);
        return false;
    }

    const char *pragmas = mode == STORE_READONLY
        ? "PRAGMA foreign_keys=ON;"
        : "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;";
    char *msg = NULL;
    if (sqlite3_exec(db, pragmas, NULL, NULL, &msg) != SQLITE_OK) {
        err_set_param(e, ERR_IO, "db", "database '%s': %s", path, msg ? msg : "pragma failed");
        sqlite3_free(msg);
        sqlite3_close(db);
        return false;
    }
    *out = db;
    return true;
}

void store_close(sqlite3 *db)
{
    if (!db)
        return;
    /* Finalize anything a caller leaked rather than leaving the file open. */
    sqlite3_stmt *st;
    while ((st = sqlite3_next_stmt(db, NULL)) != NULL)
        sqlite3_finalize(st);
    sqlite3_close(db);
}

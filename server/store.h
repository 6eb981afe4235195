/*
 * store.h — opening maasd's SQLite database the one right way.
 *
 * Contract
 *   store_open() opens (and with STORE_CREATE creates, with its parent
 *   directory) the database file and applies maasd's connection settings:
 *   WAL journal, foreign keys on, a busy timeout, synchronous=FULL (a
 *   committed ledger row survives power loss, not just a crash). It then
 *   reads the schema once, so a file that is not a database, or is corrupt
 *   at its root, fails here with ERR_CORRUPT and a clear message rather than
 *   later in the middle of a request.
 *
 *   Who writes: the daemon has exactly one writing connection, owned by the
 *   writer thread (server/writer.h); every other connection the daemon opens
 *   is STORE_READONLY. CLI subcommands that change data run while the daemon
 *   may be serving; SQLite's locking plus the busy timeout serialise them
 *   with the daemon's writer.
 *
 * Ownership
 *   The returned sqlite3* is the caller's; close it with store_close().
 */
#ifndef MAASD_STORE_H
#define MAASD_STORE_H

#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>

#include "engine/err.h"

enum store_mode {
    STORE_READONLY,
    STORE_READWRITE, /* the file must exist */
    STORE_CREATE,    /* create file (and parent directory) when missing */
};

#define STORE_BUSY_TIMEOUT_MS 5000

bool store_open(const char *path, enum store_mode mode, sqlite3 **out, struct err *e);
void store_close(sqlite3 *db);

/* Convenience for one-off statements: run `sql` (no results expected). */
bool store_exec(sqlite3 *db, const char *sql, struct err *e);

/* Fill *e from the connection's last error, prefixed with `what`; maps
 * SQLITE_NOTADB/CORRUPT to ERR_CORRUPT, constraint failures to
 * ERR_CONFLICT, the rest to ERR_IO. Returns false. */
bool store_fail(sqlite3 *db, const char *what, struct err *e);

/* Current UTC time in milliseconds since the epoch, the unit every timestamp
 * in the database uses. */
int64_t store_now_ms(void);

#endif

/*
 * backup.h — consistent copies of the live database, while it serves.
 *
 * Consistency
 *   backup_run() uses SQLite's online backup API and copies every page in
 *   ONE sqlite3_backup_step(-1) call. That step holds a read transaction on
 *   the source for the whole copy, so the copy is the database exactly as
 *   of one commit: every transaction committed before the step began is in
 *   it, none that committed later is, and none is half in. In WAL mode a
 *   reader never blocks the daemon's writer, so requests go on being served
 *   and recorded while the copy runs (their rows are simply not in it).
 *
 *   The copy is written to a temporary file beside the destination,
 *   switched to a rollback journal (a self-contained single file: no -wal
 *   to forget), checked with PRAGMA integrity_check, fsync'ed, and only
 *   then renamed into place: a destination file is always a whole, checked
 *   backup. The API key pepper is NOT in the database (server/pepper.h):
 *   operators back it up separately (docs/operators.md).
 *
 * Periodic backups
 *   backup_periodic() names each copy maasd-backup-YYYYMMDDTHHMMSSmmmZ.db
 *   (UTC), so names sort by time, and after a successful copy deletes the
 *   oldest such files beyond `keep`. Other files in the directory are never
 *   touched. It blocks for the length of a copy: the daemon runs it on a
 *   libuv worker thread, never on the loop.
 *
 * Threads: any thread; each call opens its own connections.
 */
#ifndef MAASD_BACKUP_H
#define MAASD_BACKUP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/err.h"

struct backup_result {
    char path[4096];           /* the file written */
    int64_t bytes;
    int pages;
    int64_t duration_ms;
    int deleted;               /* periodic: old backups removed */
};

/* Copy db_path to dest_path, which must not exist yet (ERR_CONFLICT). */
bool backup_run(const char *db_path, const char *dest_path, struct backup_result *out,
                struct err *e);
/* A timestamped copy in `dir` (created when missing), then retention. */
bool backup_periodic(const char *db_path, const char *dir, int keep, int64_t now_ms,
                     struct backup_result *out, struct err *e);

#endif

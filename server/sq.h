/*
 * sq.h — small helpers for one-shot SQLite statements with bound values.
 *
 * Why: the tenancy store modules (customers, keys, plans, subscriptions,
 * credits, audit, ledger) run many short statements; binding by hand in
 * each would bury the SQL. Values are passed as a list of struct sq_arg
 * built with the macros below and terminated by SQ_END, like log_line():
 *
 *     sq_exec(db, "UPDATE api_keys SET revoked_at = ? WHERE id = ?", &changes, e,
 *             SQ_INT(now), SQ_TEXT(id), SQ_END);
 *
 * Entities are rendered to JSON by SQLite itself (json_object), so the
 * admin API, the CLI and the audit log's before/after columns all show
 * the same representation of a row.
 *
 * Contract
 *   Each call prepares, binds, steps and finalizes; nothing is cached.
 *   Errors come back through `e` (store_fail()'s mapping: constraint
 *   failures are ERR_CONFLICT, a RAISE(ABORT) message from a trigger is
 *   kept as the message).
 *
 * Ownership
 *   Text results are malloc'ed; the caller frees them. SQ_TEXT values are
 *   bound SQLITE_TRANSIENT (copied), so they may be stack buffers.
 *   Any thread may call, on a connection only it uses.
 */
#ifndef MAASD_SQ_H
#define MAASD_SQ_H

#include <cJSON.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>

#include "engine/err.h"

enum sq_kind { SQ_KIND_END = 0, SQ_KIND_TEXT, SQ_KIND_INT, SQ_KIND_NULL, SQ_KIND_BLOB };

struct sq_arg {
    enum sq_kind kind;
    const char *s;       /* TEXT (NULL binds NULL) or BLOB bytes */
    int64_t i;           /* INT, or BLOB length */
};

#define SQ_TEXT(v) ((struct sq_arg){.kind = SQ_KIND_TEXT, .s = (v)})
#define SQ_INT(v) ((struct sq_arg){.kind = SQ_KIND_INT, .i = (int64_t)(v)})
#define SQ_NULL ((struct sq_arg){.kind = SQ_KIND_NULL})
/* An int that binds NULL when zero (optional timestamps). */
#define SQ_INT_OR_NULL(v) ((v) ? SQ_INT(v) : SQ_NULL)
#define SQ_BLOB(p, n) ((struct sq_arg){.kind = SQ_KIND_BLOB, .s = (const char *)(p), .i = (int64_t)(n)})
#define SQ_END ((struct sq_arg){.kind = SQ_KIND_END})

/* Prepare and bind; the caller steps and finalizes. */
bool sq_prepare(sqlite3 *db, const char *sql, sqlite3_stmt **out, struct err *e, ...);

/* Run a statement that returns no rows; *changes (may be NULL) gets
 * sqlite3_changes(). */
bool sq_exec(sqlite3 *db, const char *sql, int *changes, struct err *e, ...);

/* First column of the first row as malloc'ed text; *out = NULL when there
 * is no row (not an error) or the value is NULL. */
bool sq_text(sqlite3 *db, const char *sql, char **out, struct err *e, ...);

/* First column of the first row as an integer; *found says whether a row
 * (with a non-NULL value) came back. `found` may be NULL. */
bool sq_int(sqlite3 *db, const char *sql, int64_t *out, bool *found, struct err *e, ...);

/* Rows whose first column is a JSON object, appended to `array` (parsed).
 * Returns the number of rows through *n (may be NULL). */
bool sq_json_rows(sqlite3 *db, const char *sql, cJSON *array, int *n, struct err *e, ...);

/* Same with an explicit argument list (for wrappers). */
bool sq_bind_list(sqlite3 *db, sqlite3_stmt *st, const struct sq_arg *args, int n, struct err *e);

/* The error of a failed step, with trigger messages kept verbatim. */
bool sq_fail(sqlite3 *db, const char *what, struct err *e);

/* The OpenAI list envelope {"object":"list","data":[...],"has_more":b,
 * "first_id","last_id"} around `data` (consumed). When data holds more
 * than `limit` items, the extra one is dropped and has_more is true (query
 * limit+1 rows to use this). */
cJSON *sq_list_envelope(cJSON *data, int limit);

#endif

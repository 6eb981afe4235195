/*
 * audit.h — the append-only, hash-chained log of every administrative
 * change (table audit_log).
 *
 * Contract
 *   audit_append() adds one row inside the caller's write transaction, the
 *   same one as the change it records, so a change and its audit row commit
 *   or roll back together. Rows are numbered 1, 2, 3, ... (seq) and each
 *   stores hash = SHA-256(prev_hash || canonical content), prev_hash being
 *   the previous row's hash (64 '0' for the first row). Triggers refuse
 *   UPDATE and DELETE; someone who drops them and edits a row breaks the
 *   chain at that row, which audit_verify() reports.
 *
 *   Canonical content (docs/billing.md, so anyone can re-verify): the
 *   fields seq, at, actor, action, target, before_json, after_json, in that
 *   order, each as "<byte length>:<bytes>" (a NULL as "-"), each followed
 *   by "\n"; integers in decimal. The hash input is the 64 hex characters
 *   of prev_hash followed by that content.
 *
 *   What it cannot see: rows removed from the end of the log (keep the
 *   latest hash somewhere else — `maasd audit verify` prints it — to detect
 *   that), or a log rewritten wholesale from the first row on.
 *
 * Threads: the caller's connection (writer thread or CLI).
 *   Never put a secret in before/after: callers pass rows as rendered for
 *   the admin API (keys show their display prefix only).
 */
#ifndef MAASD_AUDIT_H
#define MAASD_AUDIT_H

#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>

#include "engine/err.h"

#define AUDIT_HASH_HEX 65    /* 64 hex characters + NUL */

bool audit_append(sqlite3 *db, const char *actor, const char *action, const char *target,
                  const char *before_json, const char *after_json, int64_t at, struct err *e);

struct audit_verify_result {
    int64_t rows;                   /* rows checked */
    int64_t first_bad_seq;          /* 0 when the chain is intact */
    char reason[160];               /* why that row fails */
    char last_hash[AUDIT_HASH_HEX]; /* hash of the last row ("" when empty) */
};

/* Walk the chain from seq 1. Returns false only when it cannot read. */
bool audit_verify(sqlite3 *db, struct audit_verify_result *out, struct err *e);

#endif

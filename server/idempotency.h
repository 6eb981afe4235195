/*
 * idempotency.h — `Idempotency-Key`: a retried POST gets the first
 * attempt's response instead of doing the work twice.
 *
 * State machine, per (customer, key)
 *   begin  → NEW        nothing known: the caller does the work;
 *          → REPLAY     done before, same request: answer with the stored
 *                       status and body (add `Idempotent-Replayed: true`);
 *          → IN_FLIGHT  the first attempt is still running (409);
 *          → MISMATCH   the key was used for a different request (422).
 *   Then exactly one of:
 *     complete   the response is final: stored (status + body) for the
 *                retention window; body NULL for a streamed response,
 *                which is never kept: a retry then gets 409;
 *     abandon    the attempt failed before doing anything lasting: the
 *                key is free again and a retry runs anew.
 *   "Same request" = same SHA-256 over method, path and body.
 *
 * Where the state lives
 *   In memory on the loop thread (this struct) for attempts in flight and
 *   for completions not yet committed: begin/complete/abandon are atomic
 *   without locks because only the loop thread calls them. In the
 *   idempotency_keys table (through the writer) for everything else: an
 *   'in_flight' row at begin, the 'done' row with the response at
 *   complete. A restarted daemon drops 'in_flight' rows it finds
 *   (idempotency_recover): their attempts died with the old process.
 *   Rows are kept until expires_at = created_at + retention (at least 24 h,
 *   setting --idempotency-retention) and then purged (idempotency_purge,
 *   run by the daemon every minute through the writer).
 *
 * Privacy
 *   The stored body is the only place a completion may be stored
 *   (docs/privacy.md): non-streamed responses only, for the retention
 *   window only. Callers must redact secrets (a newly issued API key) from
 *   the body they store.
 *
 * Atomic completion with a change
 *   A writer job that performs a change can call idempotency_store_done()
 *   in the same transaction (the admin API does), then idempotency_forget()
 *   on the loop once it committed: the change and its stored response
 *   commit together.
 */
#ifndef MAASD_IDEMPOTENCY_H
#define MAASD_IDEMPOTENCY_H

#include <sqlite3.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/err.h"
#include "server/writer.h"

#define IDEMPOTENCY_KEY_MAX 255
#define IDEMPOTENCY_HASH_LEN 32
#define IDEMPOTENCY_MIN_RETENTION_MS (24LL * 3600 * 1000)

enum idempotency_outcome {
    IDEMPOTENCY_NEW,
    IDEMPOTENCY_REPLAY,
    IDEMPOTENCY_IN_FLIGHT,
    IDEMPOTENCY_MISMATCH,
};

struct idempotency_replay {
    unsigned status;
    char *body;          /* malloc'ed, caller frees */
    size_t len;
};

struct idempotency;

struct idempotency *idempotency_new(int64_t retention_ms);
void idempotency_free(struct idempotency *idem);

/* SHA-256 over method, NUL, path, NUL, body. */
void idempotency_request_hash(const char *method, const char *path, const char *body, size_t len,
                              uint8_t out[IDEMPOTENCY_HASH_LEN]);

/* Loop thread. Returns false with ERR_INVALID (param Idempotency-Key) for a
 * malformed key, or an I/O error; otherwise true and *outcome. For
 * IN_FLIGHT and MISMATCH, *e is also filled (ERR_CONFLICT 409,
 * ERR_UNPROCESSABLE 422) so the caller can render it directly; for REPLAY
 * *replay holds the stored response. `w` may be NULL (no in_flight row is
 * written; tests). */
bool idempotency_begin(struct idempotency *idem, sqlite3 *db_read, struct writer *w,
                       const char *customer, const char *key,
                       const uint8_t hash[IDEMPOTENCY_HASH_LEN], int64_t now,
                       enum idempotency_outcome *outcome, struct idempotency_replay *replay,
                       struct err *e);
/* Loop thread: record the final response (copied) through the writer. */
void idempotency_complete(struct idempotency *idem, struct writer *w, const char *customer,
                          const char *key, unsigned status, const char *body, size_t len,
                          int64_t now);
/* Loop thread: forget an attempt that failed; the key may be reused. */
void idempotency_abandon(struct idempotency *idem, struct writer *w, const char *customer,
                         const char *key);
/* Loop thread: drop the in-memory entry after idempotency_store_done()
 * committed. */
void idempotency_forget(struct idempotency *idem, const char *customer, const char *key);

/* Any thread, caller's connection and transaction. */
bool idempotency_store_done(sqlite3 *db, const char *customer, const char *key,
                            const uint8_t hash[IDEMPOTENCY_HASH_LEN], unsigned status,
                            const char *body, size_t len, int64_t now, int64_t retention_ms,
                            struct err *e);
bool idempotency_purge(sqlite3 *db, int64_t now, int *n_deleted, struct err *e);
bool idempotency_recover(sqlite3 *db, struct err *e);
int64_t idempotency_retention(const struct idempotency *idem);
/* Attempts in flight in memory (tests, metrics). */
size_t idempotency_in_flight(const struct idempotency *idem);

#endif

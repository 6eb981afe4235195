/*
 * ledger.h — the usage ledger: one row per request that reached the
 * engine, recorded exactly once, the record finance bills from.
 *
 * Contract
 *   ledger_record() copies the record and submits one INSERT to the writer
 *   thread; done(arg, err) runs on the loop thread after the row committed
 *   (err NULL) or failed. The INSERT is `ON CONFLICT(request_id) DO
 *   NOTHING`: recording the same request_id again (a retry after an
 *   uncertain failure, a duplicate completion path) never counts twice,
 *   and is not an error. The row's recorded_at is set on the writer
 *   thread; the trigger usage_ledger_daily adds the row to usage_daily in
 *   the same transaction. Rows can be neither updated nor deleted.
 *
 *   A response should complete only after its ledger row committed: the
 *   caller finishes the HTTP response from done().
 *
 * Privacy: a usage record holds counts, ids and timings; there is no field
 *   for prompt or completion text, and there must never be one.
 */
#ifndef MAASD_LEDGER_H
#define MAASD_LEDGER_H

#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>

#include "engine/err.h"
#include "server/randid.h"
#include "server/writer.h"

struct usage_record {
    char request_id[72];           /* the HTTP request id (X-Request-Id) */
    char customer_id[RANDID_MAX];
    char api_key_id[RANDID_MAX];
    char model[64];
    char endpoint[64];             /* "/v1/chat/completions", ... */
    int64_t prompt_tokens;
    int64_t completion_tokens;
    char finish_reason[24];        /* "stop", "length", ... or "" */
    bool client_aborted;           /* the client went away before the end */
    int status;                    /* HTTP status returned */
    int64_t queue_ms;              /* admitted → engine started */
    int64_t compute_ms;            /* engine time */
    int64_t started_at;            /* admission instant (ms since epoch): decides the period */
    int64_t finished_at;
    int64_t plan_version_id;       /* admission_ticket.plan_version_id */
};

typedef void (*ledger_done_fn)(void *arg, const struct err *e);

void ledger_record(struct writer *w, const struct usage_record *rec, ledger_done_fn done,
                   void *arg);

/* The same INSERT on the caller's connection (inside its transaction);
 * *inserted is false when the request_id was already recorded. */
bool ledger_insert(sqlite3 *db, const struct usage_record *rec, int64_t recorded_at,
                   bool *inserted, struct err *e);

struct usage_totals {
    int64_t requests;
    int64_t prompt_tokens;
    int64_t completion_tokens;
};

/* A customer's usage in [start, end), both at 00:00 UTC day boundaries
 * (billing periods are), from the daily rollup: at most a few hundred
 * indexed rows, cheap enough for the loop thread. Other bounds fall back
 * to the ledger itself. */
bool ledger_usage(sqlite3 *db, const char *customer_id, int64_t start, int64_t end,
                  struct usage_totals *out, struct err *e);

#endif

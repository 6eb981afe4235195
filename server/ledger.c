/* ledger.c — see ledger.h. */
#include "server/ledger.h"

#include <stdlib.h>
#include <string.h>

#include "server/caltime.h"
#include "server/sq.h"
#include "server/store.h"

struct job {
    struct usage_record rec;
    ledger_done_fn done;
    void *arg;
};

bool ledger_insert(sqlite3 *db, const struct usage_record *r, int64_t recorded_at,
                   bool *inserted, struct err *e)
{
    int changes = 0;
    bool ok = sq_exec(db,
                      "INSERT INTO usage_ledger (request_id, customer_id, api_key_id, model, "
                      "endpoint, prompt_tokens, completion_tokens, finish_reason, client_aborted, "
                      "status, queue_ms, compute_ms, started_at, finished_at, recorded_at, "
                      "plan_version_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                      "ON CONFLICT (request_id) DO NOTHING",
                      &changes, e, SQ_TEXT(r->request_id), SQ_TEXT(r->customer_id),
                      SQ_TEXT(r->api_key_id), SQ_TEXT(r->model), SQ_TEXT(r->endpoint),
                      SQ_INT(r->prompt_tokens), SQ_INT(r->completion_tokens),
                      SQ_TEXT(r->finish_reason[0] ? r->finish_reason : NULL),
                      SQ_INT(r->client_aborted), SQ_INT(r->status), SQ_INT(r->queue_ms),
                      SQ_INT(r->compute_ms), SQ_INT(r->started_at), SQ_INT(r->finished_at),
                      SQ_INT(recorded_at), SQ_INT(r->plan_version_id), SQ_END);
    if (inserted)
        *inserted = ok && changes == 1;
    return ok;
}

static bool run(sqlite3 *db, void *arg, struct err *e)
{
    struct job *j = arg;
    return ledger_insert(db, &j->rec, store_now_ms(), NULL, e);
}

static void finished(void *arg, const struct err *e)
{
    struct job *j = arg;
    if (j->done)
        j->done(j->arg, e);
    free(j);
}

void ledger_record(struct writer *w, const struct usage_record *rec, ledger_done_fn done,
                   void *arg)
{
    struct job *j = malloc(sizeof *j);
    if (!j)
        abort(); /* as writer_submit: losing a ledger row silently is worse */
    j->rec = *rec;
    j->done = done;
    j->arg = arg;
    writer_submit(w, run, finished, j);
}

bool ledger_usage(sqlite3 *db, const char *customer_id, int64_t start, int64_t end,
                  struct usage_totals *out, struct err *e)
{
    memset(out, 0, sizeof *out);
    bool aligned = start % CALTIME_DAY_MS == 0 && end % CALTIME_DAY_MS == 0;
    sqlite3_stmt *st;
    if (!sq_prepare(db,
                    aligned ? "SELECT coalesce(sum(requests), 0), coalesce(sum(prompt_tokens), 0), "
                              "coalesce(sum(completion_tokens), 0) FROM usage_daily WHERE "
                              "customer_id = ? AND day >= ? AND day < ?"
                            : "SELECT count(*), coalesce(sum(prompt_tokens), 0), "
                              "coalesce(sum(completion_tokens), 0) FROM usage_ledger WHERE "
                              "customer_id = ? AND started_at >= ? AND started_at < ?",
                    &st, e, SQ_TEXT(customer_id), SQ_INT(start), SQ_INT(end), SQ_END))
        return false;
    bool ok = sqlite3_step(st) == SQLITE_ROW;
    if (ok) {
        out->requests = sqlite3_column_int64(st, 0);
        out->prompt_tokens = sqlite3_column_int64(st, 1);
        out->completion_tokens = sqlite3_column_int64(st, 2);
    } else {
        sq_fail(db, "reading usage", e);
    }
    sqlite3_finalize(st);
    return ok;
}

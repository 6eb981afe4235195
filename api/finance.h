/*
 * finance.h — what the finance handlers (api/admin_finance.c,
 * api/admin_usage.c) share: reads that may be large run off the loop.
 *
 * A finance read (an invoice list computes every draft of a month, a
 * reconciliation recomputes every invoice) can read many ledger rows, so
 * it never runs on the loop thread: finance_read_run() suspends the
 * request, runs fn on libuv's thread pool with its own read-only
 * connection, and answers from the loop thread: the JSON fn left in
 * r->json (200), the text in r->body with r->content_type, or the error.
 * A client that leaves early does not stop the read; its answer is
 * dropped.
 *
 * Ownership: the finance_read belongs to this module from
 *   finance_read_run() on; r->arg (malloc'ed by the handler, may be NULL)
 *   is freed with it, as are json and body.
 */
#ifndef MAASD_API_FINANCE_H
#define MAASD_API_FINANCE_H

#include <cJSON.h>
#include <sqlite3.h>
#include <uv.h>

#include "api/api.h"
#include "server/config.h"
#include "server/invoices.h"

struct finance_read;
typedef bool (*finance_read_fn)(sqlite3 *db, struct finance_read *r, struct err *e);

struct finance_read {
    /* Inputs, set by the handler. */
    char period[16];
    char id[256];
    char customer_id[RANDID_MAX];       /* "" when not restricted to one customer */
    bool csv;                           /* answer CSV rather than JSON */
    int limit;
    char after[64];
    int64_t now;
    void *arg;                          /* handler-specific input */
    /* Outputs, set by fn on the pool thread. */
    cJSON *json;
    char *body;
    size_t body_len;
    const char *content_type;           /* static string */
    char filename[96];                  /* CSV: offered as an attachment named so */
    /* Private to admin_finance.c. */
    uv_work_t work;
    struct http_request *req;
    int refs;
    char db_path[CONFIG_PATH_MAX];
    finance_read_fn fn;
    struct err err;
};

/* A read for this call with now = the call's clock and csv from the
 * request (finance_wants_csv). */
struct finance_read *finance_read_new(struct api_call *c);
void finance_read_run(struct api_call *c, struct finance_read *r, finance_read_fn fn);

/* `format=csv`, or an Accept header that asks for text/csv. */
bool finance_wants_csv(struct api_call *c);

#endif

/*
 * finance_fixture.h — shortcuts for the finance unit tests (invoices, usage
 * reports, revenue) on top of tenancy_fixture.h: UTC instants from text,
 * plans from JSON, subscriptions and ledger rows at chosen instants. Every
 * helper fails the running cmocka test on error.
 */
#ifndef MAASD_FINANCE_FIXTURE_H
#define MAASD_FINANCE_FIXTURE_H

#include <stdint.h>

#include "server/invoices.h"
#include "tests/unit/tenancy_fixture.h"

/* "2031-03-01" or "2031-03-01T09:00:00Z" in ms. */
int64_t ff_at(const char *text);
/* A new version of `plan_id` from JSON fields (plans_create_version);
 * returns its id. */
int64_t ff_plan(struct fixture *f, const char *plan_id, const char *fields_json);
/* A customer with an inference key: ids into cus and key (>= 40 bytes). */
void ff_customer(struct fixture *f, const char *name, char *cus, char *key);
/* Subscription changes at instant `at` (each in its own transaction, after
 * rolling the renewal job to `at`, as the daemon would have). */
void ff_subscribe(struct fixture *f, const char *cus, const char *plan, int64_t at);
void ff_change(struct fixture *f, const char *cus, const char *plan, int64_t at);
void ff_cancel(struct fixture *f, const char *cus, bool at_period_end, int64_t at);
void ff_roll(struct fixture *f, int64_t at);
/* One ledger row at the version of `plan` in force at started_at,
 * recorded at `recorded_at` (0: started_at + 1 s). ff_row_nt runs inside
 * the caller's transaction (fixture_begin/commit), for bulk inserts. */
void ff_row(struct fixture *f, const char *request_id, const char *cus, const char *key,
            const char *plan, int64_t started_at, int64_t in, int64_t out, int64_t recorded_at);
void ff_row_nt(struct fixture *f, const char *request_id, const char *cus, const char *key,
               const char *plan, int64_t started_at, int64_t in, int64_t out,
               int64_t recorded_at);
/* The one invoice of `cus` in `period` (computed at `now`); fails the test
 * unless there is exactly one. Free with invoice_free(). */
void ff_invoice(struct fixture *f, const char *period, const char *cus, int64_t now,
                struct invoice *out);
/* Close a month; fails the test on error. */
void ff_close(struct fixture *f, const char *period, int64_t now);
/* Reconcile a month; returns the number of differences (printed). */
int ff_reconcile(struct fixture *f, const char *period, int64_t now);
/* The first line of `type` (nth: 0 = first), or fail. */
const struct invoice_line *ff_line(const struct invoice *inv, const char *type, int nth);
/* Print an invoice on stderr (for failing tests). */
void ff_dump(const struct invoice *inv);
/* Run SQL returning one integer. */
int64_t ff_int(struct fixture *f, const char *sql);

#endif

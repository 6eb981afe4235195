/*
 * invoices.h — what each subscription owes for each billing period,
 * computed from the usage ledger, plans, subscriptions and credits;
 * period close; reconciliation. docs/finance.md is the description for
 * finance users, with worked examples that tests/unit/test_invoices.c
 * asserts figure by figure.
 *
 * Invoices
 *   One invoice per subscription and billing period. The billing periods
 *   are the subscription's calendar periods (caltime.h), rebuilt from its
 *   history (subscription_changes and the anchors migrations/0003 records
 *   with them); an invoice covers the part of its period the subscription
 *   was live, its "service window" [service_start, service_end): from the
 *   creation instant in the first period, up to a cancellation or to the
 *   instant a change of billing interval moved the anchor.
 *
 *   "Period YYYY-MM" means the invoices whose service window ENDS in that
 *   calendar month (UTC): its last instant, service_end - 1 ms, falls in
 *   the month. A period [2031-03-01, 2031-04-01) is March's.
 *
 *   Lines, in order: the base fee per plan segment (in advance, so a plan
 *   changed mid-period shows a credit for the unused part of the old plan
 *   and a charge for the rest of the period on the new one, by the
 *   second; nothing while trialing), the included allowance, usage per
 *   plan version the ledger rows carry (input tokens, output tokens,
 *   requests, each with ledger_rows and a SHA-256 digest over those rows),
 *   adjustments for usage that arrived after an earlier invoice was
 *   finalized, token credits, then amount credits. Every amount is rounded
 *   ONCE, half-even, to the currency's minor unit (cents for USD); the
 *   total is the sum of the rounded lines.
 *
 * Drafts and finalized invoices
 *   Drafts are not stored: reading one computes it from the current data,
 *   so it is never stale. invoices_close() stores a month's invoices
 *   finalized, numbered 1, 2, 3, ... in order, lowers the credits they
 *   consumed, and records the month as closed; the database refuses any
 *   later change to them (migrations/0003_invoices.sql). A draft keeps its
 *   id when it is finalized.
 *
 *   A ledger row committed after the invoice of its window was finalized
 *   is "late" (a trigger records it in late_usage): it is billed as an
 *   adjustment line on the customer's next invoice — the difference
 *   between the closed invoice's usage lines recomputed with and without
 *   it — never by editing the closed one.
 *
 * Reconciliation
 *   invoices_reconcile() recomputes every finalized invoice of a month from
 *   the ledger, exactly as it was computed when finalized (rows committed
 *   before it, credits as they stood), and reports every difference line by
 *   line. A correct database reports none.
 *
 * Contract: as every store module (see customers.h): the caller's
 *   connection, any thread that owns it; invoices_close() inside the
 *   caller's write transaction. `now` is the caller's clock (ms).
 *
 * Ownership: struct invoice owns its lines; invoice_free() releases them.
 *   cJSON results belong to the caller.
 */
#ifndef MAASD_INVOICES_H
#define MAASD_INVOICES_H

#include <cJSON.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/err.h"
#include "server/plans.h"
#include "server/randid.h"

#define INVOICE_ID_MAX 24            /* "in_" + 20 base62 + NUL */
#define INVOICE_PERIOD_MAX 8         /* "YYYY-MM" + NUL */
#define INVOICE_DIGEST_HEX 65

struct invoice_line {
    char type[20];                   /* base_fee, proration_charge, ... (docs/finance.md) */
    char description[200];
    int64_t plan_version_id;         /* 0: none */
    char ref[RANDID_MAX];            /* the credit, or the invoice adjusted; "" when none */
    int64_t start_at, end_at;        /* the time the line covers, ms, half-open */
    int64_t quantity;
    int64_t included_quantity;       /* tokens covered by the allowance */
    char unit[12];                   /* second, token, request, micros */
    int64_t unit_price_micros;       /* per unit; per 1 000 000 tokens; per full period */
    int64_t amount_micros;           /* a whole number of the currency's minor unit */
    int64_t ledger_rows;             /* -1: the line is not a count of ledger rows */
    char digest[INVOICE_DIGEST_HEX]; /* "" unless ledger_rows >= 0 */
};

struct invoice {
    char id[INVOICE_ID_MAX];
    int64_t number;                  /* 0: draft */
    int64_t finalized_at;            /* 0: draft */
    int64_t late_seq;                /* finalized: the late rows it knew (late_usage.seq <= this) */
    char customer_id[RANDID_MAX];
    char subscription_id[RANDID_MAX];
    char plan_id[PLAN_ID_MAX];       /* at the end of the service window */
    char period[INVOICE_PERIOD_MAX];
    int64_t period_start, period_end;
    int64_t service_start, service_end;
    char currency[4];
    int64_t total_micros;
    struct invoice_line *lines;
    int n_lines, cap_lines;
};

void invoice_free(struct invoice *inv);
void invoices_free(struct invoice *list, int n);

/* "YYYY-MM" into the month's [start, end) in ms; ERR_INVALID (param
 * "period") otherwise. */
bool invoices_period_parse(const char *period, int64_t *start, int64_t *end, struct err *e);
/* The "YYYY-MM" of the month containing `ms`. */
void invoices_period_of(int64_t ms, char out[INVOICE_PERIOD_MAX]);

/* The currency's minor unit in micro-units (10 000 for USD: cents;
 * 1 000 000 for JPY; 1 000 for BHD), and an amount as decimal text in
 * that unit ("21.05", "-6.77"; buf >= 32 bytes). */
int64_t invoices_minor_unit(const char *currency);
void invoices_amount_text(int64_t micros, const char *currency, char *buf, size_t size);

/* Every invoice of the month (finalized as stored, the rest as drafts
 * computed now), ordered by customer then service start; `customer_id`
 * NULL for all customers. Only service windows begun before `now`. */
bool invoices_for_period(sqlite3 *db, const char *period, const char *customer_id, int64_t now,
                         struct invoice **out, int *n, struct err *e);
/* Every invoice of one customer, oldest first. */
bool invoices_for_customer(sqlite3 *db, const char *customer_id, int64_t now,
                           struct invoice **out, int *n, struct err *e);
/* One invoice by id; with `customer_id`, only that customer's (another's
 * is ERR_NOT_FOUND, as an unknown id). */
bool invoices_get(sqlite3 *db, const char *id, const char *customer_id, int64_t now,
                  struct invoice *out, struct err *e);

/* Finalize the month's invoices (see above). Refused (ERR_CONFLICT) before
 * the month's end plus `grace_ms`, when already closed, or while an
 * earlier month with subscriptions is still open. *summary gets the
 * closed month as JSON (object "invoice_period"). Writes one audit row. */
bool invoices_close(sqlite3 *db, const char *actor, const char *period, int64_t now,
                    int64_t grace_ms, cJSON **summary, struct err *e);

/* Recompute the month's finalized invoices and compare (see above).
 * *report: {"object": "reconciliation", "period", "closed", "invoices",
 * "drafts", "differences": [...], "pending_late_rows"}; *n_differences is
 * the length of "differences". false only when the data cannot be read. */
bool invoices_reconcile(sqlite3 *db, const char *period, int64_t now, cJSON **report,
                        int *n_differences, struct err *e);

/* The closed months (object "list" of "invoice_period"). */
bool invoices_periods_list(sqlite3 *db, cJSON **out, struct err *e);

/* Rendering: the invoice as JSON (with or without its lines), and its
 * lines as CSV with a header row (malloc'ed, *len bytes). */
cJSON *invoices_json(const struct invoice *inv, bool with_lines);
char *invoices_lines_csv(const struct invoice *inv, size_t *len);

/* A subscription at instant t, as invoicing sees it (revenue.c). */
struct invoice_sub_state {
    bool live;                       /* created at or before t and not ended */
    bool trialing;
    char plan_id[PLAN_ID_MAX];
    int64_t created_at;
    int64_t ended_at;                /* 0: not ended (or not yet) */
};
bool invoices_subscription_at(sqlite3 *db, const char *subscription_id, int64_t t,
                              struct invoice_sub_state *out, struct err *e);

#endif

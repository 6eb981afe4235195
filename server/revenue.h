/*
 * revenue.h — one month at a glance for finance: GET
 * /admin/v1/reports/revenue and `maasd report revenue`.
 *
 * Figures (docs/finance.md defines each; "tier" is the plan id, "plan" a
 * version of it):
 *   - active subscriptions by tier and plan version at the end of the
 *     month (or now, for the current month), paying or trialing;
 *   - customers: new (first subscription created in the month), churned
 *     (a subscription ended in the month and none is live at its end),
 *     active at the end;
 *   - MRR and ARR per currency from the subscriptions paying at the end:
 *     monthly base fees, plus yearly ones divided by 12 (MRR, rounded
 *     half-even to a micro-unit once, on the sum) or taken whole (ARR =
 *     12 × monthly + yearly);
 *   - requests and tokens by tier: ledger rows started in the month, by
 *     the plan of the version they were billed at;
 *   - billed revenue by tier and line type: the month's invoices
 *     (finalized, or drafts while the month is open), each line under the
 *     tier of its plan version (the invoice's plan for lines without one).
 *
 * Contract: the caller's connection (read-only is enough), any thread that
 *   owns it. The summary is the caller's cJSON.
 */
#ifndef MAASD_REVENUE_H
#define MAASD_REVENUE_H

#include <cJSON.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/err.h"

bool revenue_summary(sqlite3 *db, const char *period, int64_t now, cJSON **out, struct err *e);

/* The summary as CSV: "section,tier,plan,line_type,currency,metric,value"
 * lines (malloc'ed, *len bytes). */
char *revenue_csv(const cJSON *summary, size_t *len);

#endif

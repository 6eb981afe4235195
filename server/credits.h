/*
 * credits.h — prepaid grants and promotional packages (table credits).
 *
 * A credit is an amount of money (unit 'micros', with a currency) or of
 * tokens (unit 'tokens'), granted at an instant, optionally expiring, with
 * a reason. Credits are consumed before overage is billed; invoicing
 * computes the consumption and lowers `remaining` (this module only grants
 * and lists). Admission counts the remaining unexpired token credits on
 * top of a hard-capped plan's included tokens (auth.h).
 *
 * Contract: as every store module (see customers.h).
 */
#ifndef MAASD_CREDITS_H
#define MAASD_CREDITS_H

#include <cJSON.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>

#include "engine/err.h"

struct credit_grant {
    const char *customer_id;
    const char *kind;       /* "prepaid" | "promotional" */
    const char *unit;       /* "micros" | "tokens" */
    const char *currency;   /* ISO 4217 for micros, NULL for tokens */
    int64_t amount;         /* > 0 */
    int64_t expires_at;     /* 0: never */
    const char *reason;     /* required, <= 200 characters */
};

bool credits_grant(sqlite3 *db, const char *actor, const struct credit_grant *g, int64_t now,
                   char **json_out, struct err *e);
bool credits_list(sqlite3 *db, const char *customer_id, int limit, const char *after,
                  cJSON **out, struct err *e);

#endif

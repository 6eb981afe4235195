/*
 * subscriptions.h — which plan a customer is on, and since when.
 *
 * Model
 *   A customer has at most one live subscription (status trialing, active
 *   or past_due; the database enforces it with a partial unique index);
 *   canceled ones stay as history. A subscription follows its plan: the
 *   terms that apply at instant t are the plan's version in force at t
 *   (plans.h).
 *
 *   Billing periods are calendar periods from the billing anchor
 *   (caltime.h): boundaries at 00:00 UTC on the anchor day (clamped to
 *   short months) every month, or every twelfth month from the anchor
 *   month for yearly plans. By default the anchor is the day (and month)
 *   the subscription is created, so its first period began at 00:00 UTC
 *   that day; invoicing prorates from the 'created' change instant.
 *
 *   Every change is a row in subscription_changes with its instant and the
 *   plan versions in force before and after, so invoicing can prorate by
 *   the second: created, plan_changed, renewed (a period started),
 *   trial_ended, cancel_scheduled, canceled.
 *
 * Rules
 *   - A plan with trial_days > 0 starts in 'trialing' until trial_end,
 *     unless the customer had a trial before (one trial per customer).
 *   - Changing plan takes effect at once and ends a trial. If the billing
 *     interval changes (month <-> year) the anchor moves to the change day.
 *   - Cancel now: status canceled at once. Cancel at period end: the flag
 *     is set and the renewal at the period's end cancels instead.
 *   - subscriptions_roll() applies what time has brought (periods started,
 *     trials ended, scheduled cancellations); the daemon runs it every
 *     minute. Auth never depends on it having run: it computes the period
 *     containing "now" from the anchor itself.
 *
 * Contract: as every store module (see customers.h).
 */
#ifndef MAASD_SUBSCRIPTIONS_H
#define MAASD_SUBSCRIPTIONS_H

#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>

#include "engine/err.h"

bool subscriptions_create(sqlite3 *db, const char *actor, const char *customer_id,
                          const char *plan_id, int anchor_day, int64_t now, char **json_out,
                          struct err *e);
/* The live subscription (or, when none is live, the latest), with its
 * changes; ERR_NOT_FOUND when the customer never had one. */
bool subscriptions_get(sqlite3 *db, const char *customer_id, char **json_out, struct err *e);
bool subscriptions_change_plan(sqlite3 *db, const char *actor, const char *customer_id,
                               const char *plan_id, int64_t now, char **json_out, struct err *e);
bool subscriptions_cancel(sqlite3 *db, const char *actor, const char *customer_id,
                          bool at_period_end, int64_t now, char **json_out, struct err *e);
/* Advance every live subscription to `now`; *n_changed counts them. One
 * subscription that cannot be advanced (its changes are rolled back to a
 * savepoint) does not hold the others back: it is counted in *n_failed
 * and its error left in *e, and the call still returns true. false means
 * the subscriptions could not be read at all. */
bool subscriptions_roll(sqlite3 *db, int64_t now, int *n_changed, int *n_failed, struct err *e);

#endif

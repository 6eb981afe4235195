/*
 * admission.h — may this customer start one more request right now?
 *
 * What is checked, atomically and all or nothing (nothing is reserved when
 * anything refuses):
 *   1. a live subscription (ERR_QUOTA when none, or when past_due);
 *   2. max_tokens <= the plan's max_tokens_per_request (ERR_INVALID);
 *   3. concurrent requests < max_concurrent_requests (ERR_RATE_LIMITED);
 *   4. requests per minute (ERR_RATE_LIMITED);
 *   5. for hard-capped plans, the period quota: included_tokens plus the
 *      customer's unexpired token credits, minus the period's usage, minus
 *      the reservations of requests in flight (ERR_QUOTA when nothing is
 *      left). If less than est_prompt_tokens + max_tokens is left, the
 *      request is admitted with a smaller completion budget
 *      (ticket.max_tokens): the engine must stop there (finish_reason
 *      "length"), so a hard cap is never exceeded by more than prompt
 *      estimates were off;
 *   6. tokens per minute, reserving est_prompt_tokens + ticket.max_tokens
 *      (ERR_RATE_LIMITED; a request larger than the whole minute's budget
 *      is refused outright).
 *   Over a rate limit, headers.retry_after_s says when to retry (the
 *   caller sends it as Retry-After); quota exhausted: until the period ends.
 *
 * Rate limits are token buckets: a bucket holds up to one minute's limit
 * and refills continuously at limit/60 s, so bursts up to the limit pass
 * and sustained traffic is held to it. "remaining" is what the bucket
 * holds; "reset" is how long until it is full again — OpenAI's
 * x-ratelimit-{limit,remaining,reset}-{requests,tokens} headers
 * (reset as a duration: "1s", "6m0s", "17ms"), filled on refusals too.
 *
 * Settling
 *   Every admitted ticket is settled exactly once with the tokens really
 *   used (0 and 0 when the request failed before the engine ran): the
 *   concurrency slot is freed, the token bucket refunded or charged the
 *   difference, and the period's usage updated. Settling twice is
 *   harmless (the ticket records it).
 *
 * Period usage (hard-capped plans only)
 *   Loaded through the loader callback once per customer per billing
 *   period — the daemon's loader sums the ledger's daily rollup for the
 *   period, a handful of indexed rows on db_read — then kept in memory:
 *   settled usage is added as requests finish, reservations are held while
 *   they run. Nothing else touches the database: admission does no I/O on
 *   the hot path.
 *
 * Threads: meant for the loop thread; internally locked, so it is also
 *   safe from any thread (the tests admit from 50 threads at once).
 * Memory: one small record per active customer; admission_sweep() (every
 *   minute) forgets customers idle for 5 minutes with nothing in flight.
 */
#ifndef MAASD_ADMISSION_H
#define MAASD_ADMISSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/err.h"
#include "server/auth.h"

/* Tokens the customer used in [start, end): the period's ledger total. */
typedef bool (*admission_usage_fn)(void *arg, const char *customer_id, int64_t start,
                                   int64_t end, int64_t *tokens, struct err *e);

struct admission_ticket {
    char customer_id[RANDID_MAX];
    int64_t plan_version_id;     /* record this version in the ledger row */
    int64_t period_start;
    int64_t max_tokens;          /* completion budget granted: pass it to the engine */
    int64_t reserved_tokens;     /* est_prompt_tokens + max_tokens */
    bool hard_cap;
    bool active;                 /* admitted and not yet settled */
};

struct admission_headers {
    int64_t limit_requests, remaining_requests, reset_requests_ms;
    int64_t limit_tokens, remaining_tokens, reset_tokens_ms;
    int64_t retry_after_s;       /* > 0 on ERR_RATE_LIMITED / ERR_QUOTA */
    bool valid;                  /* false when the principal has no plan */
};

struct admission;

/* `load` may be NULL (no period usage known: counts from zero). */
struct admission *admission_new(admission_usage_fn load, void *load_arg);
void admission_free(struct admission *adm);

/* max_tokens <= 0 means the plan's max_tokens_per_request. On success the
 * ticket is active; on failure nothing was reserved. `h` is filled in both
 * cases. */
bool admission_admit(struct admission *adm, const struct principal *p, int64_t est_prompt_tokens,
                     int64_t max_tokens, int64_t now_ms, struct admission_ticket *ticket,
                     struct admission_headers *h, struct err *e);
void admission_settle(struct admission *adm, struct admission_ticket *ticket,
                      int64_t prompt_tokens, int64_t completion_tokens, int64_t now_ms);
void admission_sweep(struct admission *adm, int64_t now_ms);
/* Customers currently tracked (tests). */
size_t admission_tracked(struct admission *adm);

/* Go-style duration as OpenAI sends it: "17ms", "1s", "1.5s", "6m0s", "1h2m3s". */
void admission_format_duration(int64_t ms, char *buf, size_t size);

#endif

/*
 * api.h — what every route handler gets, and how it answers.
 *
 * Contract
 *   The router (api/router.c) resolves method + path against the route
 *   table (api/routes.c), checks Content-Type, and calls the handler with an
 *   api_call: the HTTP request, the daemon context and the path parameters.
 *   A handler answers exactly once, through api_respond_json() /
 *   api_respond_error() here or the streaming calls in server/http.h, either
 *   before returning or later on the loop thread after
 *   http_request_suspend().
 *
 *   Authentication (api/router.c): every route needs an API key unless it
 *   is ROUTE_PUBLIC, or ROUTE_TEST_ONLY without a scope. The router reads
 *   `Authorization: Bearer …` through server/auth.h before the body is
 *   read: a missing, unknown, malformed, expired or revoked key is 401
 *   invalid_api_key with `WWW-Authenticate: Bearer realm="maasd"`; a key
 *   without the route's `scope` is 403. A non-public route with scope 0 is
 *   refused (403) for every key: fail closed, so a route added without a
 *   scope cannot be used by the wrong kind of key. The handler finds the
 *   caller in call->principal.
 *
 *   Every error a client sees is rendered by api_respond_error(), the one
 *   place that maps an err code to an HTTP status and an error body:
 *   OpenAI's {"error": {"message", "type", "param", "code"}} shape on every
 *   route, so SDKs raise their typed errors.
 *
 * Ownership
 *   The api_call belongs to the request (freed with it). cJSON bodies passed
 *   to api_respond_json() are consumed.
 */
#ifndef MAASD_API_H
#define MAASD_API_H

#include <cJSON.h>
#include <stdbool.h>

#include "engine/err.h"
#include "server/admission.h"
#include "server/auth.h"
#include "server/http.h"
#include "server/ledger.h"

struct daemon_ctx;

#define API_MAX_PARAMS 2

struct api_call {
    struct http_request *req;
    struct daemon_ctx *d;
    char params[API_MAX_PARAMS][256];   /* {id}-style path segments, decoded */
    int n_params;
    bool authenticated;
    struct principal principal;         /* who is calling (authenticated routes) */
    const struct route *route;          /* the matched route (metrics labels) */
};

typedef void (*api_handler)(struct api_call *call);

enum route_flags {
    ROUTE_JSON_BODY = 1 << 0,   /* POST with an application/json body */
    ROUTE_TEST_ONLY = 1 << 1,   /* only with --test-routes; no key needed unless it has a scope */
    ROUTE_PUBLIC = 1 << 2,      /* no key needed (probes) */
    ROUTE_ANY_SCOPE = 1 << 3,   /* the key needs one of the scope bits, not all of them */
};

struct route {
    const char *method;
    const char *pattern;        /* "/v1/models/{id}": {x} matches one segment */
    api_handler handler;
    unsigned flags;
    unsigned scope;             /* SCOPE_* (server/apikey.h) the key must have */
};

extern const struct route api_routes[];
extern const int api_routes_count;

/* server/http.h callbacks, wired by the daemon. */
bool api_on_headers(struct http_request *r, void *daemon);
void api_on_request(struct http_request *r, void *daemon);
void api_on_error(struct http_request *r, const struct err *e, void *daemon);
/* A request ended: its metrics (api/metrics.c). */
void api_on_done(struct http_request *r, unsigned status, double seconds, void *daemon);

/* Answers. */
void api_respond_json(struct http_request *r, unsigned status, cJSON *body);
void api_respond_error(struct http_request *r, const struct err *e);
/* The same, as text (malloc'ed, with its status), for answers that are
 * also kept (idempotent replay). api_json_text consumes the cJSON. */
char *api_json_text(cJSON *body, size_t *len);
char *api_error_text(const struct err *e, unsigned *status, size_t *len);
/* The {"error": {...}} object itself (for an error event inside a stream). */
cJSON *api_error_object(const struct err *e);
/* HTTP status for an error code (render.c's table). */
unsigned api_error_status(enum err_code code);
/* OpenAI's rate-limit headers (x-ratelimit-{limit,remaining,reset}-
 * {requests,tokens}) and, when h->retry_after_s > 0, Retry-After. Call
 * before responding, on successes and 429s alike (api/ratelimit.c). */
void api_ratelimit_headers(struct http_request *r, const struct admission_headers *h);
/* Admission for an inference handler (api/metering.c): checks that the
 * key and plan allow `model`, admits the caller (server/admission.h),
 * adds the rate-limit headers, and on refusal responds (403 model, 400
 * max_tokens, 429 rate_limit_exceeded / insufficient_quota with
 * Retry-After) and returns false. On success the handler must pass
 * ticket->max_tokens to the engine and call admission_settle() exactly
 * once when the request ends, however it ends. */
bool api_admit(struct api_call *c, const char *model, int64_t est_prompt_tokens,
               int64_t max_tokens, struct admission_ticket *ticket);
/* A usage record for this call, with ids, model, endpoint (the path),
 * the ticket's plan version and started_at filled; the caller sets the
 * token counts, finish_reason, client_aborted, status, queue_ms,
 * compute_ms and finished_at, then ledger_record()s it. */
void api_usage_record_init(const struct api_call *c, const struct admission_ticket *t,
                           const char *model, int64_t started_at, struct usage_record *out);
/* Idempotency-Key on a POST whose work is not an admin_write() (inference,
 * model loads): start answers a replay (200 + Idempotent-Replayed), 409
 * (still in flight) or 422 (same key, other body) itself and returns
 * false; otherwise the work runs and must end with finish (the final
 * response, kept for replay; body NULL for a stream) or abandon (refused
 * before doing anything: the key is free again). No-ops without the
 * header. */
struct api_idempotency;
bool api_idempotency_start(struct api_call *c, struct api_idempotency *out);
void api_idempotency_finish(struct daemon_ctx *d, const struct api_idempotency *m,
                            unsigned status, const char *body, size_t len);
void api_idempotency_abandon(struct daemon_ctx *d, const struct api_idempotency *m);

/* Everything an inference call needs before the scheduler (api/metering.c):
 * the Idempotency-Key (a replay, 409 or 422 is answered here), the model
 * as the client named it (`requested`: an alias, an id or a version)
 * allowed for the key and plan, and admission of the whole call (every
 * prompt and choice), with the rate-limit headers. On success p->meter is
 * filled (the ledger row will carry ledger_id, the id the client sees in
 * the response), p->req gets the granted max_tokens, the tenant, the plan's
 * scheduler weight and the deadline; the call must then go through
 * inference_start(), which settles and records it. On failure the answer
 * has been sent. */
struct served_model;
struct inference_params;
bool api_inference_admit(struct api_call *c, struct served_model *m, const char *requested,
                         bool client_max_tokens, const char *ledger_id,
                         struct inference_params *p);
/* "key:<key id>", the audit actor for a change made through the API. */
void api_actor(const struct api_call *c, char *out, size_t size);

/* --- handlers, one file each (api/NAME.c) --- */
void api_healthz(struct api_call *c);
void api_readyz(struct api_call *c);
void api_version(struct api_call *c);
void api_metrics(struct api_call *c);
void api_models_list(struct api_call *c);
void api_admin_models_list(struct api_call *c);
void api_admin_models_register(struct api_call *c);
void api_admin_models_load(struct api_call *c);
void api_admin_models_unload(struct api_call *c);
void api_admin_aliases_set(struct api_call *c);
void api_models_get(struct api_call *c);
void api_chat_completions(struct api_call *c);
void api_completions(struct api_call *c);
void api_embeddings(struct api_call *c);
void api_tokenize(struct api_call *c);
void api_detokenize(struct api_call *c);
void api_test_slow(struct api_call *c);
void api_test_stream(struct api_call *c);
void api_test_echo(struct api_call *c);
void api_test_metered(struct api_call *c);

/* /admin/v1 (api/admin_*.c), scope admin */
void api_admin_customers_create(struct api_call *c);
void api_admin_customers_list(struct api_call *c);
void api_admin_customers_get(struct api_call *c);
void api_admin_customers_update(struct api_call *c);
void api_admin_keys_issue(struct api_call *c);
void api_admin_keys_list(struct api_call *c);
void api_admin_keys_get(struct api_call *c);
void api_admin_keys_revoke(struct api_call *c);
void api_admin_keys_rotate(struct api_call *c);
void api_admin_plans_list(struct api_call *c);
void api_admin_plans_create_version(struct api_call *c);
void api_admin_subscriptions_create(struct api_call *c);
void api_admin_subscriptions_get(struct api_call *c);
void api_admin_subscriptions_change(struct api_call *c);
void api_admin_subscriptions_cancel(struct api_call *c);
void api_admin_credits_grant(struct api_call *c);
void api_admin_credits_list(struct api_call *c);
/* /v1/usage (api/usage.c), scope usage:read */
void api_usage(struct api_call *c);
/* finance (api/admin_finance.c, api/admin_usage.c): scope finance or admin;
 * a customer's own invoices with usage:read */
void api_admin_usage(struct api_call *c);
void api_admin_invoices_list(struct api_call *c);
void api_admin_invoices_get(struct api_call *c);
void api_admin_invoices_close(struct api_call *c);
void api_admin_invoices_reconcile(struct api_call *c);
void api_admin_reports_revenue(struct api_call *c);
void api_invoices_list(struct api_call *c);
void api_invoices_get(struct api_call *c);

#endif

/* metering.c — the glue between a route handler and tenancy: admission
 * with its response headers, the usage record of a call, the audit actor
 * (see api.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "engine/scheduler.h"
#include "server/daemon.h"
#include "server/inference.h"
#include "server/metrics.h"
#include "server/models.h"
#include "server/store.h"

/* x-ratelimit-{limit,remaining,reset}-<what> */
static void limit_headers(struct http_request *r, const char *what, int64_t limit,
                          int64_t remaining, int64_t reset_ms)
{
    char name[48], v[32];
    snprintf(name, sizeof name, "x-ratelimit-limit-%s", what);
    snprintf(v, sizeof v, "%lld", (long long)limit);
    http_response_header(r, name, v);
    snprintf(name, sizeof name, "x-ratelimit-remaining-%s", what);
    snprintf(v, sizeof v, "%lld", (long long)remaining);
    http_response_header(r, name, v);
    snprintf(name, sizeof name, "x-ratelimit-reset-%s", what);
    admission_format_duration(reset_ms, v, sizeof v);
    http_response_header(r, name, v);
}

void api_ratelimit_headers(struct http_request *r, const struct admission_headers *h)
{
    if (!h->valid)
        return;
    limit_headers(r, "requests", h->limit_requests, h->remaining_requests, h->reset_requests_ms);
    limit_headers(r, "tokens", h->limit_tokens, h->remaining_tokens, h->reset_tokens_ms);
    if (h->retry_after_s > 0) {
        char v[32];
        snprintf(v, sizeof v, "%lld", (long long)h->retry_after_s);
        http_response_header(r, "Retry-After", v);
    }
}

void api_actor(const struct api_call *c, char *out, size_t size)
{
    snprintf(out, size, "key:%s", c->authenticated ? c->principal.key_id : "anonymous");
}

bool api_admit(struct api_call *c, const char *model, int64_t est_prompt_tokens,
               int64_t max_tokens, struct admission_ticket *ticket)
{
    struct err e = {0};
    struct admission_headers h;
    memset(&h, 0, sizeof h);
    bool ok = auth_model_allowed(&c->principal, model, &e) &&
              admission_admit(c->d->admission, &c->principal, est_prompt_tokens, max_tokens,
                              store_now_ms(), ticket, &h, &e);
    api_ratelimit_headers(c->req, &h);
    if (!ok)
        metrics_rejected(c->d->metrics, c->principal.has_plan ? c->principal.plan.plan_id : "", e.code);
    if (!ok)
        api_respond_error(c->req, &e);
    return ok;
}

void api_usage_record_init(const struct api_call *c, const struct admission_ticket *t,
                           const char *model, int64_t started_at, struct usage_record *out)
{
    memset(out, 0, sizeof *out);
    snprintf(out->request_id, sizeof out->request_id, "%s", http_request_id(c->req));
    snprintf(out->customer_id, sizeof out->customer_id, "%s", c->principal.customer_id);
    snprintf(out->api_key_id, sizeof out->api_key_id, "%s", c->principal.key_id);
    snprintf(out->model, sizeof out->model, "%s", model);
    snprintf(out->endpoint, sizeof out->endpoint, "%s", http_request_path(c->req));
    out->plan_version_id = t->plan_version_id;
    out->started_at = started_at;
    out->finished_at = started_at;
    out->status = 200;
}

/* FNV-1a: the scheduler's fairness key for a customer. */
static uint64_t tenant_key(const char *customer_id)
{
    uint64_t h = 1469598103934665603ULL;
    for (const unsigned char *p = (const unsigned char *)customer_id; *p; p++)
        h = (h ^ *p) * 1099511628211ULL;
    return h;
}

bool api_idempotency_start(struct api_call *c, struct api_idempotency *m)
{
    const char *ikey = http_request_header(c->req, "Idempotency-Key");
    if (!ikey)
        return true;
    struct daemon_ctx *d = c->d;
    size_t len;
    const char *body = http_request_body(c->req, &len);
    uint8_t hash[IDEMPOTENCY_HASH_LEN];
    idempotency_request_hash(http_request_method(c->req), http_request_path(c->req), body, len,
                             hash);
    enum idempotency_outcome outcome;
    struct idempotency_replay replay;
    struct err e = {0};
    if (!idempotency_begin(d->idempotency, d->db_read, d->writer, c->principal.customer_id, ikey,
                           hash, store_now_ms(), &outcome, &replay, &e) ||
        outcome == IDEMPOTENCY_IN_FLIGHT || outcome == IDEMPOTENCY_MISMATCH) {
        api_respond_error(c->req, &e);
        return false;
    }
    if (outcome == IDEMPOTENCY_REPLAY) {
        http_response_header(c->req, "Idempotent-Replayed", "true");
        http_respond_owned(c->req, replay.status, "application/json", replay.body, replay.len);
        return false;
    }
    m->active = true;
    snprintf(m->customer, sizeof m->customer, "%s", c->principal.customer_id);
    snprintf(m->key, sizeof m->key, "%s", ikey);
    return true;
}

void api_idempotency_finish(struct daemon_ctx *d, const struct api_idempotency *m,
                            unsigned status, const char *body, size_t len)
{
    if (m->active)
        idempotency_complete(d->idempotency, d->writer, m->customer, m->key, status, body, len,
                             store_now_ms());
}

void api_idempotency_abandon(struct daemon_ctx *d, const struct api_idempotency *m)
{
    if (m->active)
        idempotency_abandon(d->idempotency, d->writer, m->customer, m->key);
}

bool api_inference_admit(struct api_call *c, struct served_model *m, const char *requested,
                         bool client_max_tokens, const char *ledger_id,
                         struct inference_params *p)
{
    struct inference_meter *meter = &p->meter;
    memset(meter, 0, sizeof *meter);
    if (!api_idempotency_start(c, &meter->idem))
        return false;

    /* A client that named no max_tokens gets the rest of the context, but
     * never more than the plan allows in one request. */
    int64_t per_choice = p->req.max_tokens;
    const struct plan_version *plan = &c->principal.plan;
    if (!client_max_tokens && c->principal.has_plan && plan->max_tokens_per_request > 0 &&
        per_choice > plan->max_tokens_per_request)
        per_choice = plan->max_tokens_per_request;
    /* Admission reserves the whole call: every prompt, and every choice's
     * completion. The plan's per-request limit applies to one completion. */
    int64_t prompt_total = 0;
    for (int i = 0; i < p->n_prompts; i++)
        prompt_total += (int64_t)p->n_prompt_tokens[i];
    int64_t completions = p->req.embedding ? 0 : (int64_t)p->n_prompts * p->req.n_choices;
    int64_t extra = completions > 1 ? (completions - 1) * per_choice : 0;
    if (!api_admit(c, requested, prompt_total + extra, p->req.embedding ? 0 : per_choice,
                   &meter->ticket)) {
        api_idempotency_abandon(c->d, &meter->idem);
        return false;
    }
    meter->admitted = true;
    if (!p->req.embedding)
        p->req.max_tokens = (int)(meter->ticket.max_tokens < per_choice ? meter->ticket.max_tokens
                                                                         : per_choice);
    api_usage_record_init(c, &meter->ticket, m->name, store_now_ms(), &meter->usage);
    snprintf(meter->usage.request_id, sizeof meter->usage.request_id, "%s", ledger_id);
    p->req.tenant = tenant_key(c->principal.customer_id);
    p->req.weight = plan->scheduler_weight > 0 ? (uint32_t)plan->scheduler_weight : 1;
    p->req.deadline_ms = sched_now_ms() + (int64_t)c->d->cfg.request_timeout_ms;
    p->who = &c->principal;
    return true;
}

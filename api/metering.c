/* metering.c — the glue between a route handler and tenancy: admission
 * with its response headers, the usage record of a call, the audit actor
 * (see api.h). */
#include <stdio.h>
#include <string.h>

#include "api/api.h"
#include "server/daemon.h"
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

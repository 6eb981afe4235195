/* ratelimit.c — admission's figures as response headers (see api.h), and
 * the audit actor of an API call. */
#include <stdio.h>

#include "api/api.h"

void api_ratelimit_headers(struct http_request *r, const struct admission_headers *h)
{
    if (!h->valid)
        return;
    char v[32];
    snprintf(v, sizeof v, "%lld", (long long)h->limit_requests);
    http_response_header(r, "x-ratelimit-limit-requests", v);
    snprintf(v, sizeof v, "%lld", (long long)h->remaining_requests);
    http_response_header(r, "x-ratelimit-remaining-requests", v);
    admission_format_duration(h->reset_requests_ms, v, sizeof v);
    http_response_header(r, "x-ratelimit-reset-requests", v);
    snprintf(v, sizeof v, "%lld", (long long)h->limit_tokens);
    http_response_header(r, "x-ratelimit-limit-tokens", v);
    snprintf(v, sizeof v, "%lld", (long long)h->remaining_tokens);
    http_response_header(r, "x-ratelimit-remaining-tokens", v);
    admission_format_duration(h->reset_tokens_ms, v, sizeof v);
    http_response_header(r, "x-ratelimit-reset-tokens", v);
    if (h->retry_after_s > 0) {
        snprintf(v, sizeof v, "%lld", (long long)h->retry_after_s);
        http_response_header(r, "Retry-After", v);
    }
}

void api_actor(const struct api_call *c, char *out, size_t size)
{
    snprintf(out, size, "key:%s", c->authenticated ? c->principal.key_id : "anonymous");
}

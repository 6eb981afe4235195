/* metrics.c — GET /metrics (Prometheus text format 0.0.4) and the
 * per-request metrics hook (see api.h, server/metrics.h).
 *
 * Access: with --metrics-token-file, only `Authorization: Bearer <token>`
 * (compared in constant time); without it, only clients on a loopback
 * address. The metrics hold no customer or key ids and no text, but they
 * do reveal traffic volumes and plan names, so they are not served to the
 * world by default even when the API port is public. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api/api.h"
#include "server/daemon.h"
#include "server/metrics.h"
#include "server/models.h"

/* Constant-time in the token's content (its length is not a secret worth
 * hiding: it is fixed by the operator). */
static bool token_ok(const char *header, const char *token)
{
    if (!header || strncasecmp(header, "Bearer ", 7) != 0)
        return false;
    const char *given = header + 7;
    size_t n = strlen(token), g = strlen(given);
    unsigned char diff = (unsigned char)(n != g);
    for (size_t i = 0; i < n; i++)
        diff |= (unsigned char)(token[i] ^ (i < g ? given[i] : 0));
    return diff == 0;
}

/* A reverse proxy on the same host connects from loopback on behalf of
 * anyone: a request it forwarded is not a local one. */
static bool forwarded(struct http_request *r)
{
    return http_request_header(r, "Forwarded") || http_request_header(r, "X-Forwarded-For") ||
           http_request_header(r, "X-Real-IP");
}

void api_metrics(struct api_call *c)
{
    struct daemon_ctx *d = c->d;
    struct err e = {0};
    if (d->metrics_token[0]) {
        if (!token_ok(http_request_header(c->req, "Authorization"), d->metrics_token)) {
            http_response_header(c->req, "WWW-Authenticate", "Bearer realm=\"maasd-metrics\"");
            err_set(&e, ERR_UNAUTHENTICATED,
                    "GET /metrics needs the metrics bearer token (--metrics-token-file)");
            api_respond_error(c->req, &e);
            return;
        }
    } else if (!http_request_peer_loopback(c->req) || forwarded(c->req)) {
        err_set(&e, ERR_FORBIDDEN,
                "GET /metrics is served to loopback clients only; set --metrics-token-file "
                "to scrape it from elsewhere");
        api_respond_error(c->req, &e);
        return;
    }
    struct metrics *m = d->metrics;
    for (int i = 0; i < d->models.n; i++) {
        struct sched_stats st;
        sched_get_stats(d->models.items[i]->sched, &st);
        metrics_collect_sched(m, d->models.items[i]->name, &st);
    }
    if (d->writer) {
        struct writer_stats ws;
        writer_get_stats(d->writer, &ws);
        metrics_collect_writer(m, &ws);
    }
    metrics_collect_http(m, http_server_in_flight(d->http));
    metrics_collect_db(m, d->cfg.db_path);
    metrics_collect_process(m);
    size_t len = 0;
    char *text = metrics_render(m, &len);
    http_respond_owned(c->req, 200, "text/plain; version=0.0.4; charset=utf-8", text, len);
}

void api_on_done(struct http_request *r, unsigned status, double seconds, void *daemon)
{
    struct daemon_ctx *d = daemon;
    const struct api_call *call = http_request_state(r);
    const struct route *rt = call ? call->route : NULL;
    metrics_http_done(d->metrics, rt ? rt->method : NULL, rt ? rt->pattern : NULL, status,
                      seconds);
}

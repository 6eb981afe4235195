/*
 * test_metering.c — GET /_test/metered, served only with --test-routes:
 * a stand-in for an inference handler, without a model, that goes through
 * exactly what a real one must (and shows how to wire it):
 *
 *   api_admit()            key/plan model check, admission, rate-limit headers
 *   ... "generation" ...   here a timer of ?ms=N on the loop
 *   admission_settle()     exactly once, with the tokens really used
 *   ledger_record()        one ledger row; the response completes only after
 *                          it committed
 *
 * Query: model (default "test"), prompt_tokens (estimate and actual,
 * default 10), max_tokens (default 16), completion_tokens (default: the
 * granted budget; never more than it), ms (default 0). Unlike the other
 * test routes it needs a key with scope inference. Answer:
 * {"max_tokens": granted, "reserved_tokens", "usage": {"prompt_tokens",
 * "completion_tokens"}, "plan_version_id"}.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "server/daemon.h"
#include "server/store.h"

struct metered {
    struct http_request *req;      /* NULL once the request closed */
    struct daemon_ctx *d;
    int refs;
    uv_timer_t timer;
    struct admission_ticket ticket;
    struct usage_record rec;
    int64_t completion;
};

static void unref(struct metered *m)
{
    if (--m->refs == 0)
        free(m);
}

static void on_timer_closed(uv_handle_t *h) { unref(h->data); }

static void on_close(struct http_request *r, void *arg, bool aborted)
{
    (void)r;
    (void)aborted;
    struct metered *m = arg;
    m->req = NULL;
    unref(m);
}

static void on_recorded(void *arg, const struct err *e)
{
    struct metered *m = arg;
    if (m->req) {
        if (e) {
            api_respond_error(m->req, e);
        } else {
            cJSON *o = cJSON_CreateObject();
            cJSON_AddNumberToObject(o, "max_tokens", (double)m->ticket.max_tokens);
            cJSON_AddNumberToObject(o, "reserved_tokens", (double)m->ticket.reserved_tokens);
            cJSON_AddNumberToObject(o, "plan_version_id", (double)m->ticket.plan_version_id);
            cJSON *u = cJSON_AddObjectToObject(o, "usage");
            cJSON_AddNumberToObject(u, "prompt_tokens", (double)m->rec.prompt_tokens);
            cJSON_AddNumberToObject(u, "completion_tokens", (double)m->rec.completion_tokens);
            api_respond_json(m->req, 200, o);
        }
    }
    unref(m);
}

static void on_generated(uv_timer_t *t)
{
    struct metered *m = t->data;
    int64_t now = store_now_ms();
    m->rec.completion_tokens = m->completion;
    snprintf(m->rec.finish_reason, sizeof m->rec.finish_reason, "%s",
             m->completion < m->ticket.max_tokens ? "stop" : "length");
    m->rec.client_aborted = m->req == NULL;
    m->rec.finished_at = now;
    m->rec.compute_ms = now - m->rec.started_at;
    m->rec.status = 200;
    admission_settle(m->d->admission, &m->ticket, m->rec.prompt_tokens, m->rec.completion_tokens,
                     now);
    ledger_record(m->d->writer, &m->rec, on_recorded, m);
    uv_close((uv_handle_t *)&m->timer, on_timer_closed);
}

static int64_t q(struct http_request *r, const char *name, int64_t def)
{
    const char *v = http_request_query(r, name);
    return v ? strtoll(v, NULL, 10) : def;
}

void api_test_metered(struct api_call *c)
{
    const char *model = http_request_query(c->req, "model");
    if (!model)
        model = "test";
    struct metered *m = calloc(1, sizeof *m);
    if (!m)
        abort();
    int64_t prompt = q(c->req, "prompt_tokens", 10);
    if (!api_admit(c, model, prompt, q(c->req, "max_tokens", 16), &m->ticket)) {
        free(m);
        return;
    }
    m->d = c->d;
    m->req = c->req;
    m->completion = q(c->req, "completion_tokens", m->ticket.max_tokens);
    if (m->completion > m->ticket.max_tokens)
        m->completion = m->ticket.max_tokens;
    if (m->completion < 0)
        m->completion = 0;
    api_usage_record_init(c, &m->ticket, model, store_now_ms(), &m->rec);
    m->rec.prompt_tokens = prompt;
    /* The request, the timer handle and the ledger callback. */
    m->refs = 3;
    http_request_on_close(c->req, on_close, m);
    http_request_suspend(c->req);
    uv_timer_init(&c->d->loop, &m->timer);
    m->timer.data = m;
    int64_t ms = q(c->req, "ms", 0);
    uv_timer_start(&m->timer, on_generated, (uint64_t)(ms < 0 ? 0 : ms), 0);
}

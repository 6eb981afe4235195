/* inference.c — see inference.h. Everything here runs on the loop thread
 * except on_sched_event(), which runs on a scheduler thread and only copies
 * the event into the mailbox. */
#include "server/inference.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/daemon.h"
#include "server/log.h"
#include "server/mailbox.h"
#include "server/metrics.h"
#include "server/models.h"
#include "server/store.h"

struct inference;

/* One scheduler request (one prompt) of a call. */
struct inf_sub {
    struct inference *inf;
    int index;
    uint64_t sched_id;
    bool done;
    int64_t prompt_tokens, completion_tokens;
    int64_t queue_ms, first_token_ms, compute_ms;
    uint64_t last_token_ns[SCHED_MAX_CHOICES];   /* inter-token latency, per choice */
};

struct inference {
    struct daemon_ctx *d;
    struct inference_meter meter;
    enum sched_finish first_finish;    /* of prompt 0, choice 0: the ledger's finish_reason */
    struct inference_usage usage;
    struct http_request *req;          /* NULL once the client's request closed */
    struct served_model *model;
    struct inference_callbacks cb;
    void *ctx;
    int n_subs, n_done;
    struct inf_sub subs[INFERENCE_MAX_PROMPTS];
    struct err err;                    /* first failure of any sub */
    bool client_gone;
    bool finished;                     /* on_finish called */
    bool http_closed;
    bool freeing;
    uv_timer_t idle;                   /* until the first token, for on_idle */
    bool idle_on;
    char plan[PLAN_ID_MAX];            /* the caller's plan id: a metrics label */
    uint64_t ledger_submit_ns;         /* ledger write latency */
};

/* An event copied off the scheduler thread. */
struct inf_event {
    struct inf_sub *sub;
    enum sched_event_kind kind;
    int choice;
    enum sched_finish finish;
    struct err err;
    char *text;
    size_t text_len;
    int32_t token;
    char *token_text;
    size_t token_text_len;
    bool has_sample;
    struct sampler_result sample;
    int64_t prompt_tokens, completion_tokens, queue_ms, first_token_ms, compute_ms;
    float *embedding;
    int embedding_dim;
};

static void free_now(uv_handle_t *h)
{
    struct inference *inf = h->data;
    models_release(&inf->d->models, inf->model);
    if (inf->cb.ctx_free)
        inf->cb.ctx_free(inf->ctx);
    free(inf);
}

static void stop_idle(struct inference *inf)
{
    if (inf->idle_on) {
        uv_timer_stop(&inf->idle);
        inf->idle_on = false;
    }
}

static void maybe_free(struct inference *inf)
{
    if (!inf->finished || !inf->http_closed || inf->n_done < inf->n_subs || inf->freeing)
        return;
    inf->freeing = true;
    uv_close((uv_handle_t *)&inf->idle, free_now);
}

static void on_idle_timer(uv_timer_t *t)
{
    struct inference *inf = t->data;
    if (inf->req && inf->cb.on_idle)
        inf->cb.on_idle(inf->ctx, inf->req);
}

static char *copy_bytes(const char *s, size_t n)
{
    char *c = malloc(n + 1);
    if (!c)
        abort();
    if (n)
        memcpy(c, s, n);
    c[n] = '\0';
    return c;
}

static const char *finish_name(enum sched_finish f)
{
    switch (f) {
    case SCHED_FINISH_STOP: return "stop";
    case SCHED_FINISH_LENGTH: return "length";
    case SCHED_FINISH_CANCELLED: return "cancelled";
    case SCHED_FINISH_TIMEOUT: return "timeout";
    case SCHED_FINISH_ERROR: return "error";
    default: return "";
    }
}

/* The HTTP status the client gets (or would have got): what the ledger
 * records. Only these failures can happen once the engine has run. */
static int final_status(const struct inference *inf)
{
    if (inf->client_gone)
        return 499; /* client closed the request (nginx's convention) */
    switch (inf->err.code) {
    case ERR_OK: return 200;
    case ERR_TIMEOUT: return 504;
    case ERR_UNAVAILABLE:
    case ERR_OVERLOADED: return 503;
    case ERR_INVALID: return 400;
    default: return 500;
    }
}

/* The ledger row committed (or failed): now, and only now, the response
 * completes. */
static void on_recorded(void *arg, const struct err *e)
{
    struct inference *inf = arg;
    struct daemon_ctx *d = inf->d;
    if (inf->ledger_submit_ns)
        metrics_ledger_write(d->metrics, (double)(metrics_now_ns() - inf->ledger_submit_ns) / 1e9);
    if (e) {
        /* Never show a client a completion that is not in the ledger. */
        log_line(LOG_ERROR, "ledger write failed", LF_STR("request", inf->meter.usage.request_id),
                 LF_STR("error", e->msg), LF_END);
        if (inf->err.code == ERR_OK)
            err_set(&inf->err, ERR_INTERNAL, "the request could not be recorded; it was not billed");
    }
    struct inference_response out = {0};
    inf->finished = true;
    stop_idle(inf);
    inf->cb.on_finish(inf->ctx, inf->req, &inf->usage,
                      inf->err.code == ERR_OK ? NULL : &inf->err, &out);
    if (inf->meter.idem.active) {
        /* Kept for replay: a retry of this call is answered from here and
         * never billed twice. Streams are not kept (body NULL). */
        idempotency_complete(d->idempotency, d->writer, inf->meter.idem.customer,
                             inf->meter.idem.key, out.status, out.body, out.len, store_now_ms());
    }
    if (out.body && inf->req)
        http_respond_owned(inf->req, out.status, "application/json", out.body, out.len);
    else
        free(out.body);
    maybe_free(inf);
}

static void finish(struct inference *inf)
{
    struct inference_usage *u = &inf->usage;
    u->client_aborted = inf->client_gone;
    u->first_token_ms = -1;
    for (int i = 0; i < inf->n_subs; i++) {
        const struct inf_sub *s = &inf->subs[i];
        u->prompt_tokens += s->prompt_tokens;
        u->completion_tokens += s->completion_tokens;
        if (s->queue_ms > u->queue_ms)
            u->queue_ms = s->queue_ms;
        if (s->compute_ms > u->compute_ms)
            u->compute_ms = s->compute_ms;
        if (s->first_token_ms >= 0 && (u->first_token_ms < 0 || s->first_token_ms < u->first_token_ms))
            u->first_token_ms = s->first_token_ms;
    }
    stop_idle(inf);
    struct daemon_ctx *d = inf->d;
    int64_t now = store_now_ms();
    metrics_tokens(d->metrics, inf->model->name, inf->plan, u->prompt_tokens, u->completion_tokens);
    if (u->first_token_ms >= 0)
        metrics_first_token(d->metrics, inf->model->name, (double)u->first_token_ms / 1e3);
    if (!inf->meter.admitted) {
        on_recorded(inf, NULL);
        return;
    }
    admission_settle(d->admission, &inf->meter.ticket, u->prompt_tokens, u->completion_tokens, now);
    struct usage_record rec = inf->meter.usage;
    rec.prompt_tokens = u->prompt_tokens;
    rec.completion_tokens = u->completion_tokens;
    snprintf(rec.finish_reason, sizeof rec.finish_reason, "%s", finish_name(inf->first_finish));
    rec.client_aborted = inf->client_gone;
    rec.status = final_status(inf);
    rec.queue_ms = u->queue_ms;
    rec.compute_ms = u->compute_ms;
    rec.finished_at = now;
    inf->ledger_submit_ns = metrics_now_ns();
    ledger_record(d->writer, &rec, on_recorded, inf);
}

static void on_event_loop(void *arg)
{
    struct inf_event *ev = arg;
    struct inf_sub *sub = ev->sub;
    struct inference *inf = sub->inf;
    switch (ev->kind) {
    case SCHED_EV_PROMPT_TOKEN:
        if (inf->req && !inf->client_gone && inf->cb.on_prompt_token) {
            struct inference_token t = {
                .text = "", .token = ev->token, .token_text = ev->token_text,
                .token_text_len = ev->token_text_len, .has_logprobs = ev->has_sample,
                .sample = ev->sample,
            };
            inf->cb.on_prompt_token(inf->ctx, inf->req, sub->index, &t);
        }
        break;
    case SCHED_EV_TOKEN:
        stop_idle(inf);
        if (ev->choice >= 0 && ev->choice < SCHED_MAX_CHOICES)
            metrics_token_gap(inf->d->metrics, inf->model->name, &sub->last_token_ns[ev->choice]);
        if (inf->req && !inf->client_gone && inf->cb.on_token) {
            struct inference_token t = {
                .text = ev->text, .text_len = ev->text_len, .token = ev->token,
                .token_text = ev->token_text, .token_text_len = ev->token_text_len,
                .has_logprobs = ev->has_sample, .sample = ev->sample,
            };
            inf->cb.on_token(inf->ctx, inf->req, sub->index, ev->choice, &t);
        }
        break;
    case SCHED_EV_CHOICE_DONE:
        if (sub->index == 0 && ev->choice == 0)
            inf->first_finish = ev->finish;
        if (inf->req && !inf->client_gone && inf->cb.on_choice_done)
            inf->cb.on_choice_done(inf->ctx, inf->req, sub->index, ev->choice, ev->finish,
                                   ev->text, ev->text_len);
        break;
    case SCHED_EV_REQUEST_DONE:
        sub->done = true;
        sub->prompt_tokens = ev->prompt_tokens;
        sub->completion_tokens = ev->completion_tokens;
        sub->queue_ms = ev->queue_ms;
        sub->first_token_ms = ev->first_token_ms;
        sub->compute_ms = ev->compute_ms;
        if (ev->err.code != ERR_OK && inf->err.code == ERR_OK)
            inf->err = ev->err;
        if (ev->finish == SCHED_FINISH_CANCELLED && !inf->client_gone && inf->err.code == ERR_OK)
            err_set(&inf->err, ERR_UNAVAILABLE, "the request was cancelled: the server is shutting down");
        if (ev->embedding && inf->req && inf->cb.on_embedding)
            inf->cb.on_embedding(inf->ctx, inf->req, sub->index, ev->embedding, ev->embedding_dim);
        inf->n_done++;
        if (inf->n_done == inf->n_subs)
            finish(inf);
        break;
    }
    free(ev->text);
    free(ev->token_text);
    free(ev->embedding);
    free(ev);
    maybe_free(inf);
}

/* Scheduler thread: copy and post. */
static void on_sched_event(void *user, const struct sched_event *e)
{
    struct inf_sub *sub = user;
    struct inf_event *ev = calloc(1, sizeof *ev);
    if (!ev)
        abort();
    ev->sub = sub;
    ev->kind = e->kind;
    ev->choice = e->choice;
    ev->finish = e->finish;
    ev->err = e->err;
    ev->token = e->token;
    ev->text = copy_bytes(e->text ? e->text : "", e->text ? e->text_len : 0);
    ev->text_len = e->text ? e->text_len : 0;
    if (e->token_text) {
        ev->token_text = copy_bytes(e->token_text, e->token_text_len);
        ev->token_text_len = e->token_text_len;
    }
    if (e->sample) {
        ev->has_sample = true;
        ev->sample = *e->sample;
    }
    ev->prompt_tokens = e->prompt_tokens;
    ev->completion_tokens = e->completion_tokens;
    ev->queue_ms = e->queue_ms;
    ev->first_token_ms = e->first_token_ms;
    ev->compute_ms = e->compute_ms;
    if (e->embedding && e->embedding_dim > 0) {
        ev->embedding = malloc((size_t)e->embedding_dim * sizeof(float));
        if (!ev->embedding)
            abort();
        memcpy(ev->embedding, e->embedding, (size_t)e->embedding_dim * sizeof(float));
        ev->embedding_dim = e->embedding_dim;
    }
    mailbox_post(&sub->inf->d->mailbox, on_event_loop, ev);
}

static void on_http_close(struct http_request *r, void *arg, bool aborted)
{
    (void)r;
    struct inference *inf = arg;
    (void)aborted;
    inf->req = NULL;
    inf->http_closed = true;
    stop_idle(inf);
    if (inf->n_done < inf->n_subs) {
        inf->client_gone = true;
        for (int i = 0; i < inf->n_subs && inf->model->sched; i++)
            if (!inf->subs[i].done)
                sched_cancel(inf->model->sched, inf->subs[i].sched_id);
    }
    maybe_free(inf);
}

bool inference_start(struct daemon_ctx *d, struct http_request *r, const struct inference_params *p,
                     const struct inference_callbacks *cb, void *ctx, struct err *e)
{
    if (p->n_prompts < 1 || p->n_prompts > INFERENCE_MAX_PROMPTS)
        return err_set_param(e, ERR_INVALID, "prompt", "between 1 and %d prompts per request",
                             INFERENCE_MAX_PROMPTS);
    struct inference *inf = calloc(1, sizeof *inf);
    if (!inf)
        abort();
    inf->d = d;
    inf->req = r;
    inf->model = p->model;
    inf->meter = p->meter;
    inf->cb = *cb;
    inf->ctx = ctx;
    inf->n_subs = p->n_prompts;

    struct sched_request reqs[INFERENCE_MAX_PROMPTS];
    uint64_t ids[INFERENCE_MAX_PROMPTS];
    for (int i = 0; i < p->n_prompts; i++) {
        inf->subs[i].inf = inf;
        inf->subs[i].index = i;
        inf->subs[i].first_token_ms = -1;
        reqs[i] = p->req;
        reqs[i].prompt = p->prompts[i];
        reqs[i].n_prompt = p->n_prompt_tokens[i];
        reqs[i].on_event = on_sched_event;
        reqs[i].user = &inf->subs[i];
    }
    if (p->who && p->who->has_plan)
        memcpy(inf->plan, p->who->plan.plan_id, sizeof inf->plan);
    if (!sched_submit(p->model->sched, reqs, p->n_prompts, ids, e)) {
        if (e->code == ERR_OVERLOADED)
            metrics_rejected(d->metrics, inf->plan, e->code);
        if (p->meter.admitted) {
            struct admission_ticket t = p->meter.ticket;
            admission_settle(d->admission, &t, 0, 0, store_now_ms());
        }
        if (p->meter.idem.active)
            idempotency_abandon(d->idempotency, d->writer, p->meter.idem.customer,
                                p->meter.idem.key);
        free(inf);
        return false;
    }
    uv_timer_init(&d->loop, &inf->idle);
    inf->idle.data = inf;
    if (p->idle_ms > 0 && cb->on_idle) {
        uv_timer_start(&inf->idle, on_idle_timer, (uint64_t)p->idle_ms, (uint64_t)p->idle_ms);
        inf->idle_on = true;
    }
    for (int i = 0; i < p->n_prompts; i++)
        inf->subs[i].sched_id = ids[i];
    /* The call keeps its model version alive to the end, whatever aliases
     * or unloads happen meanwhile (server/models.h). */
    models_acquire(p->model);
    http_request_on_close(r, on_http_close, inf);
    if (cb->on_started)
        cb->on_started(ctx, r);
    else
        http_request_suspend(r);
    return true;
}

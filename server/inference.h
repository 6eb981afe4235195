/*
 * inference.h — the one completion path: from a validated API call to the
 * scheduler and back.
 *
 * A route handler (api/completions.c, api/embeddings.c) parses the request,
 * builds the prompts, and calls inference_start(). From there this module
 * owns the call's lifecycle, on the loop thread:
 *
 *   admission (plan limits, reserved: done by the handler, api/metering.c)
 *     → scheduler submit, one per prompt   engine/scheduler.h
 *     → scheduler events, via the mailbox  → the handler's callbacks (render)
 *     → request done: usage settled with admission, one ledger row written
 *       through the writer thread, and only once it has COMMITTED is the
 *       handler's on_finish() called to complete the response. A response a
 *       client saw complete is therefore always in the ledger. A
 *       non-streamed response is then kept for Idempotency-Key replay.
 *
 *   If the client goes away, every scheduler request is cancelled at once;
 *   the tokens already processed are still settled and recorded
 *   (client_aborted). A scheduler request the queue refuses answers 503.
 *
 * Ownership
 *   inference_start() copies the params. The callbacks' ctx belongs to the
 *   handler; ctx_free() is called once after on_finish() (or after a failed
 *   start), when nothing will call back any more. The http_request may be
 *   gone by then: the callbacks get it, or NULL when the client left.
 */
#ifndef MAASD_INFERENCE_H
#define MAASD_INFERENCE_H

#include <stdbool.h>
#include <stdint.h>

#include "engine/err.h"
#include "engine/scheduler.h"
#include "server/admission.h"
#include "server/http.h"
#include "server/idempotency.h"
#include "server/ledger.h"

struct daemon_ctx;
struct served_model;

#define INFERENCE_MAX_PROMPTS 64

/* One generated token as the handler sees it (copied out of the event). */
struct inference_token {
    const char *text;            /* released text (may be empty) */
    size_t text_len;
    int32_t token;
    const char *token_text;      /* the token's own bytes */
    size_t token_text_len;
    bool has_logprobs;
    struct sampler_result sample;
};

struct inference_usage {
    int64_t prompt_tokens;
    int64_t completion_tokens;
    int64_t queue_ms, first_token_ms, compute_ms;
    bool client_aborted;
};

struct inference_response {
    unsigned status;
    char *body;
    size_t len;
};

struct inference_callbacks {
    /* The scheduler accepted the work: a streaming handler starts its stream. */
    void (*on_started)(void *ctx, struct http_request *r);
    /* req.prompt_logprobs: each prompt token after the first, scored, in
     * order, before any on_token of that prompt (text empty). */
    void (*on_prompt_token)(void *ctx, struct http_request *r, int prompt,
                            const struct inference_token *t);
    void (*on_token)(void *ctx, struct http_request *r, int prompt, int choice,
                     const struct inference_token *t);
    void (*on_choice_done)(void *ctx, struct http_request *r, int prompt, int choice,
                           enum sched_finish finish, const char *text, size_t len);
    /* Called every idle_ms while no token has come yet (stream keep-alive). */
    void (*on_idle)(void *ctx, struct http_request *r);
    /* Embeddings: the vector of one prompt. */
    void (*on_embedding)(void *ctx, struct http_request *r, int prompt, const float *v, int dim);
    /* Everything is done and recorded; `e` is set when the call failed
     * (timeout, engine error, the ledger write failed). A non-streamed
     * handler renders its final response into *out (status and a malloc'ed
     * body, also when r is NULL: it is kept for idempotent replay) and
     * inference.c sends it; a streaming handler ends its stream itself and
     * leaves out->body NULL. */
    void (*on_finish)(void *ctx, struct http_request *r, const struct inference_usage *u,
                      const struct err *e, struct inference_response *out);
    void (*ctx_free)(void *ctx);
};

/* An Idempotency-Key in use by a call (api/metering.c). */
struct api_idempotency {
    bool active;
    char customer[RANDID_MAX];
    char key[IDEMPOTENCY_KEY_MAX + 1];
};

/* Billing for the call: admitted by the handler (api_inference_admit),
 * settled and recorded here when the call ends. */
struct inference_meter {
    bool admitted;
    struct admission_ticket ticket;
    struct usage_record usage;            /* ids, model, endpoint, plan version, started_at */
    struct api_idempotency idem;          /* complete the Idempotency-Key at the end */
};

struct inference_params {
    struct served_model *model;
    struct inference_meter meter;
    int idle_ms;                          /* on_idle period until the first token; 0 = never */
    const struct principal *who;          /* NULL while auth is off */
    struct sched_request req;             /* template: prompt/n_prompt per prompt below */
    const int32_t *prompts[INFERENCE_MAX_PROMPTS];
    size_t n_prompt_tokens[INFERENCE_MAX_PROMPTS];
    int n_prompts;
};

/* Start the call. On failure (the queue is full, the server is stopping)
 * nothing was started: the admission ticket is settled at zero, the
 * Idempotency-Key released, and the handler renders `e` itself; ctx_free
 * is NOT called. */
bool inference_start(struct daemon_ctx *d, struct http_request *r, const struct inference_params *p,
                     const struct inference_callbacks *cb, void *ctx, struct err *e);

#endif

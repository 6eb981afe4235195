/*
 * completions.c — POST /v1/chat/completions and POST /v1/completions.
 *
 * The handler validates the body (api/oai_request.c), turns it into prompt
 * token ids (api/prompt.c: chat template, tokenizer, context check) and
 * hands the call to the completion path (server/inference.c). What comes
 * back is rendered here in OpenAI's shapes: one chat.completion /
 * text_completion object, or a Server-Sent-Events stream of chunks ending
 * with `data: [DONE]`.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api/api.h"
#include "api/oai_request.h"
#include "api/oai_response.h"
#include "api/prompt.h"
#include "engine/tokenizer.h"
#include "server/daemon.h"
#include "server/inference.h"
#include "server/models.h"

/* SSE comment sent while a stream waits for its first token (long prompts),
 * so proxies and clients do not time out. */
#define KEEPALIVE_MS 5000

struct choice_state {
    struct oai_buf text;
    struct oai_logprobs lp;
    enum sched_finish finish;
};

struct completion_job {
    struct oai_response_meta meta;
    bool chat, stream, include_usage, echo;
    int logprobs;                    /* -1 off */
    bool score_prompt;               /* echo with logprobs: the prompt's tokens are scored */
    int n_prompts, n;
    struct choice_state *choices;    /* n_prompts * n */
    char **echo_text;                /* completions echo: the prompt text */
    size_t **echo_offsets;           /* score_prompt: where each prompt token starts in it */
    struct oai_logprobs *echo_lp;    /* score_prompt: the prompt's tokens, per prompt */
    struct prompt_set prompts;
};

static struct choice_state *choice(struct completion_job *j, int prompt, int c)
{
    return &j->choices[prompt * j->n + c];
}

static void job_free(void *ctx)
{
    struct completion_job *j = ctx;
    for (int i = 0; i < j->n_prompts * j->n; i++) {
        oai_buf_free(&j->choices[i].text);
        oai_logprobs_free(&j->choices[i].lp);
    }
    free(j->choices);
    if (j->echo_text) {
        for (int i = 0; i < j->n_prompts; i++) {
            free(j->echo_text[i]);
            if (j->score_prompt) {
                free(j->echo_offsets[i]);
                oai_logprobs_free(&j->echo_lp[i]);
            }
        }
        free(j->echo_text);
        free(j->echo_offsets);
        free(j->echo_lp);
    }
    prompt_set_free(&j->prompts);
    free(j);
}

static void on_idle(void *ctx, struct http_request *r)
{
    struct completion_job *j = ctx;
    if (j->stream && http_stream_pending(r) == 0)
        http_stream_write(r, ": keep-alive\n\n", 14);
}

/* A stream's first chunk of each choice of prompt p: the prompt's text,
 * with its tokens' logprobs when scored (so it waits for them). */
static void send_echo(struct completion_job *j, struct http_request *r, int p)
{
    for (int c = 0; c < j->n; c++)
        oai_sse_text(r, &j->meta, false, p * j->n + c, j->echo_text[p], strlen(j->echo_text[p]),
                     j->score_prompt ? &j->echo_lp[p] : NULL, NULL);
}

static bool prompt_scored(const struct completion_job *j, int p)
{
    return !j->score_prompt || j->echo_lp[p].n == j->prompts.n[p];
}

static void on_started(void *ctx, struct http_request *r)
{
    struct completion_job *j = ctx;
    if (!j->stream) {
        http_request_suspend(r);
        return;
    }
    http_stream_start(r, 200, "text/event-stream");
    if (j->chat) {
        /* OpenAI's first chunk of each choice carries the role. */
        for (int p = 0; p < j->n_prompts; p++)
            for (int c = 0; c < j->n; c++)
                oai_sse_chat_role(r, &j->meta, p * j->n + c);
    } else if (j->echo) {
        for (int p = 0; p < j->n_prompts; p++)
            if (prompt_scored(j, p))
                send_echo(j, r, p);
    }
}

static void on_prompt_token(void *ctx, struct http_request *r, int prompt,
                            const struct inference_token *t)
{
    struct completion_job *j = ctx;
    struct oai_logprobs *lp = &j->echo_lp[prompt];
    if (!j->score_prompt || lp->n >= j->prompts.n[prompt])
        return;
    oai_logprobs_add(lp, t, j->echo_offsets[prompt][lp->n]);
    if (j->stream && prompt_scored(j, prompt))
        send_echo(j, r, prompt);
}

static void on_token(void *ctx, struct http_request *r, int prompt, int c,
                     const struct inference_token *t)
{
    struct completion_job *j = ctx;
    struct choice_state *ch = choice(j, prompt, c);
    const struct inference_token *with_lp = j->logprobs >= 0 && t->has_logprobs ? t : NULL;
    if (!j->stream) {
        oai_buf_append(&ch->text, t->text, t->text_len);
        if (with_lp)
            oai_logprobs_add(&ch->lp, t, ch->text.len - t->text_len);
        return;
    }
    if (t->text_len == 0 && !with_lp)
        return;
    struct oai_logprobs one = {0};
    if (with_lp) /* text_offset counts from the start of the choice's text, echo included */
        oai_logprobs_add(&one, t, (j->echo ? strlen(j->echo_text[prompt]) : 0) + ch->text.len);
    oai_buf_append(&ch->text, t->text, t->text_len);
    oai_sse_text(r, &j->meta, j->chat, prompt * j->n + c, t->text, t->text_len,
                 with_lp ? &one : NULL, NULL);
    oai_logprobs_free(&one);
}

static void on_choice_done(void *ctx, struct http_request *r, int prompt, int c,
                           enum sched_finish finish, const char *text, size_t len)
{
    struct completion_job *j = ctx;
    struct choice_state *ch = choice(j, prompt, c);
    ch->finish = finish;
    oai_buf_append(&ch->text, text, len);
    if (j->stream && finish != SCHED_FINISH_CANCELLED) {
        const char *reason = oai_finish_reason(finish);
        oai_sse_text(r, &j->meta, j->chat, prompt * j->n + c, text, len, NULL, reason);
    }
}

static void on_finish(void *ctx, struct http_request *r, const struct inference_usage *u,
                      const struct err *e, struct inference_response *out)
{
    struct completion_job *j = ctx;
    if (j->stream) {
        if (!r)
            return;
        if (e)
            oai_sse_error(r, e);
        else if (j->include_usage)
            oai_sse_usage(r, &j->meta, j->chat, u);
        http_stream_write(r, "data: [DONE]\n\n", 14);
        http_stream_end(r);
        return;
    }
    /* Rendered even when the client left: it is kept for replay. */
    if (e) {
        out->body = api_error_text(e, &out->status, &out->len);
        return;
    }
    cJSON *choices = cJSON_CreateArray();
    for (int p = 0; p < j->n_prompts; p++) {
        for (int c = 0; c < j->n; c++) {
            struct choice_state *ch = choice(j, p, c);
            int index = p * j->n + c;
            if (j->chat) {
                cJSON_AddItemToArray(choices, oai_chat_choice(index, ch->text.data, ch->text.len,
                                                              j->logprobs >= 0 ? &ch->lp : NULL,
                                                              ch->finish, j->meta.tok));
            } else {
                struct oai_buf full = {0};
                size_t echo_len = j->echo ? strlen(j->echo_text[p]) : 0;
                oai_buf_append(&full, j->echo ? j->echo_text[p] : "", echo_len);
                oai_buf_append(&full, ch->text.data, ch->text.len);
                struct oai_logprobs lp = {0};
                if (j->score_prompt)
                    oai_logprobs_append(&lp, &j->echo_lp[p], 0);
                oai_logprobs_append(&lp, &ch->lp, echo_len);
                cJSON_AddItemToArray(choices, oai_text_choice(index, full.data, full.len,
                                                              j->logprobs >= 0 ? &lp : NULL,
                                                              ch->finish, j->meta.tok));
                oai_logprobs_free(&lp);
                oai_buf_free(&full);
            }
        }
    }
    out->status = 200;
    out->body = api_json_text(oai_completion_object(&j->meta, j->chat, choices, u), &out->len);
}

static void handle(struct api_call *c, enum oai_endpoint ep)
{
    struct daemon_ctx *d = c->d;
    struct err e = {0};
    struct oai_request req;
    size_t len;
    const char *body = http_request_body(c->req, &len);
    if (!oai_request_parse(ep, body, len, &req, &e)) {
        api_respond_error(c->req, &e);
        return;
    }
    struct served_model *m = models_find(&d->models, req.model);
    if (!m) {
        err_set_param(&e, ERR_NOT_FOUND, "model", "The model '%s' does not exist.", req.model);
        api_respond_error(c->req, &e);
        oai_request_free(&req);
        return;
    }

    struct completion_job *j = calloc(1, sizeof *j);
    if (!j)
        abort();
    j->chat = ep == OAI_CHAT_COMPLETIONS;
    j->stream = req.stream;
    j->include_usage = req.include_usage;
    j->logprobs = req.logprobs;
    j->echo = req.echo;
    j->score_prompt = !j->chat && req.echo && req.logprobs >= 0;
    j->n = req.n;

    struct inference_params p = {.model = m,
                                 .idle_ms = j->stream ? KEEPALIVE_MS : 0};
    if (!prompt_build(m, &req, &j->prompts, &p, &e)) {
        api_respond_error(c->req, &e);
        oai_request_free(&req);
        job_free(j);
        return;
    }
    p.req.prompt_logprobs = j->score_prompt;
    oai_response_meta_init(&j->meta, j->chat, m->name, m->tok);
    j->meta.include_usage = j->include_usage;
    if (!api_inference_admit(c, m, req.model, req.max_tokens >= 0, j->meta.id, &p)) {
        oai_request_free(&req);
        job_free(j);
        return;
    }
    j->n_prompts = p.n_prompts;
    j->choices = calloc((size_t)(j->n_prompts * j->n), sizeof *j->choices);
    if (!j->choices)
        abort();
    if (j->echo) {
        j->echo_text = calloc((size_t)j->n_prompts, sizeof *j->echo_text);
        j->echo_offsets = calloc((size_t)j->n_prompts, sizeof *j->echo_offsets);
        j->echo_lp = calloc((size_t)j->n_prompts, sizeof *j->echo_lp);
        if (!j->echo_text || !j->echo_offsets || !j->echo_lp)
            abort();
        for (int i = 0; i < j->n_prompts; i++) {
            j->echo_text[i] = prompt_echo_text(m, &j->prompts, i,
                                               j->score_prompt ? &j->echo_offsets[i] : NULL);
            if (j->score_prompt && j->prompts.n[i] > 0) {
                /* The first token has nothing before it: logprob null. */
                struct gguf_str piece = tokenizer_token_piece(m->tok, j->prompts.ids[i][0], 0);
                struct inference_token first = {.token = j->prompts.ids[i][0],
                                                .token_text = piece.ptr,
                                                .token_text_len = piece.len};
                oai_logprobs_add(&j->echo_lp[i], &first, 0);
            }
        }
    }

    static const struct inference_callbacks cb = {
        .on_started = on_started,
        .on_prompt_token = on_prompt_token,
        .on_token = on_token,
        .on_choice_done = on_choice_done,
        .on_idle = on_idle,
        .on_finish = on_finish,
        .ctx_free = job_free,
    };
    /* The scheduler copies the request (prompts, stops, logit bias), so the
     * parsed body can go once the call has started. */
    bool started = inference_start(d, c->req, &p, &cb, j, &e);
    oai_request_free(&req);
    if (!started) {
        api_respond_error(c->req, &e);
        job_free(j);
    }
}

void api_chat_completions(struct api_call *c) { handle(c, OAI_CHAT_COMPLETIONS); }
void api_completions(struct api_call *c) { handle(c, OAI_COMPLETIONS); }

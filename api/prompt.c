/* prompt.c — see prompt.h. */
#include "api/prompt.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "engine/chat_template.h"
#include "engine/sampler.h"
#include "engine/stop.h"
#include "engine/tokenizer.h"
#include "server/models.h"

void prompt_set_free(struct prompt_set *ps)
{
    for (int i = 0; i < ps->count; i++)
        free(ps->ids[i]);
    memset(ps, 0, sizeof *ps);
}

static bool add_ids(struct prompt_set *ps, int32_t *ids, size_t n, struct err *e)
{
    if (ps->count >= INFERENCE_MAX_PROMPTS) {
        free(ids);
        return err_set_param(e, ERR_INVALID, "prompt", "at most %d prompts per request",
                             INFERENCE_MAX_PROMPTS);
    }
    ps->ids[ps->count] = ids;
    ps->n[ps->count] = n;
    ps->count++;
    return true;
}

static bool encode(const struct served_model *m, const char *text, size_t len, unsigned flags,
                   const struct tokenizer_span *literal, size_t n_literal, struct prompt_set *ps,
                   struct err *e)
{
    int32_t *ids = NULL;
    size_t n = 0;
    if (!tokenizer_encode_literal(m->tok, text, len, flags, literal, n_literal, &ids, &n, e))
        return false;
    return add_ids(ps, ids, n, e);
}

static bool build_chat(const struct served_model *m, const struct oai_request *req,
                       struct prompt_set *ps, struct err *e)
{
    struct chat_message *msgs = calloc(req->n_messages, sizeof *msgs);
    if (!msgs)
        abort();
    for (size_t i = 0; i < req->n_messages; i++) {
        msgs[i].role = req->messages[i].role == OAI_ROLE_SYSTEM ? CHAT_ROLE_SYSTEM
                       : req->messages[i].role == OAI_ROLE_USER ? CHAT_ROLE_USER
                                                                : CHAT_ROLE_ASSISTANT;
        msgs[i].content = req->messages[i].content;
        msgs[i].len = strlen(req->messages[i].content);
    }
    size_t len = 0, n_spans = 0;
    bool has_bos = false;
    struct chat_span *spans = NULL;
    char *text = chat_template_render(m->tmpl, msgs, req->n_messages, &len, &has_bos, &spans,
                                      &n_spans, e);
    free(msgs);
    if (!text)
        return false;
    /* The template's own special tokens (<|im_start|>, [INST]) are meant as
     * special tokens; BOS is added unless the template wrote it. Message
     * text that spells a control token stays text, as with OpenAI: a user
     * must not be able to close their turn and open another role's. */
    struct tokenizer_span *literal = malloc((n_spans ? n_spans : 1) * sizeof *literal);
    if (!literal)
        abort();
    for (size_t i = 0; i < n_spans; i++)
        literal[i] = (struct tokenizer_span){spans[i].start, spans[i].len};
    unsigned flags = TOKENIZER_PARSE_SPECIAL | (has_bos ? 0 : TOKENIZER_ADD_SPECIAL);
    bool ok = encode(m, text, len, flags, literal, n_spans, ps, e);
    free(literal);
    free(spans);
    free(text);
    return ok;
}

static bool build_completion(const struct served_model *m, const struct oai_request *req,
                             struct prompt_set *ps, struct err *e)
{
    for (size_t i = 0; i < req->n_inputs; i++) {
        const struct oai_input *in = &req->inputs[i];
        char param[32];
        snprintf(param, sizeof param, req->n_inputs > 1 ? "prompt[%zu]" : "prompt", i);
        if (in->text) {
            /* Plain text: special-token texts are just text (no injection of
             * control tokens through a completion prompt). */
            if (!encode(m, in->text, strlen(in->text), TOKENIZER_ADD_SPECIAL, NULL, 0, ps, e))
                return false;
            if (ps->n[ps->count - 1] == 0)
                return err_set_param(e, ERR_INVALID, param, "Invalid '%s': the prompt is empty.",
                                     param);
        } else {
            for (size_t k = 0; k < in->n_ids; k++)
                if (in->ids[k] >= m->n_vocab)
                    return err_set_param(e, ERR_INVALID, param,
                                         "Invalid '%s': token id %d is outside the vocabulary "
                                         "(0..%d).", param, in->ids[k], m->n_vocab - 1);
            int32_t *ids = malloc(in->n_ids * sizeof *ids);
            if (!ids)
                abort();
            memcpy(ids, in->ids, in->n_ids * sizeof *ids);
            if (!add_ids(ps, ids, in->n_ids, e))
                return false;
        }
    }
    return true;
}

static bool fill_sampling(const struct served_model *m, const struct oai_request *req,
                          struct sampler_params *sp, struct err *e)
{
    sampler_params_default(sp);
    sp->temperature = req->temperature;
    /* OpenAI accepts top_p 0 (keep the single most likely token); the
     * sampler's nucleus is (0, 1], whose smallest value does the same. */
    sp->top_p = req->top_p > 0 ? req->top_p : 1e-9f;
    sp->top_k = req->top_k;
    sp->min_p = req->min_p;
    sp->presence_penalty = req->presence_penalty;
    sp->frequency_penalty = req->frequency_penalty;
    sp->repetition_penalty = req->repetition_penalty;
    sp->logit_bias = req->logit_bias;
    sp->n_logit_bias = (int32_t)req->n_logit_bias;
    if (req->has_seed) {
        sp->seed = req->seed;
    } else if (getrandom(&sp->seed, sizeof sp->seed, 0) != (ssize_t)sizeof sp->seed) {
        sp->seed = 0;
    }
    if (req->logprobs >= 0) {
        sp->logprobs = true;
        sp->top_logprobs = req->logprobs;
    }
    return sampler_params_check(sp, m->n_vocab, e);
}

bool prompt_build(struct served_model *m, const struct oai_request *req, struct prompt_set *ps,
                  struct inference_params *p, struct err *e)
{
    memset(ps, 0, sizeof *ps);
    bool ok = req->endpoint == OAI_CHAT_COMPLETIONS ? build_chat(m, req, ps, e)
                                                    : build_completion(m, req, ps, e);
    if (!ok)
        return false;

    size_t longest = 0;
    for (int i = 0; i < ps->count; i++) {
        if (ps->n[i] > longest)
            longest = ps->n[i];
        p->prompts[i] = ps->ids[i];
        p->n_prompt_tokens[i] = ps->n[i];
    }
    p->n_prompts = ps->count;

    struct sched_request *sr = &p->req;
    memset(sr, 0, sizeof *sr);
    const char *where = req->endpoint == OAI_CHAT_COMPLETIONS ? "messages" : "prompt";
    int64_t max_tokens = req->max_tokens;
    if (longest >= (size_t)m->n_ctx)
        return err_set_param(e, ERR_INVALID, where,
                             "This model's maximum context length is %d tokens. However, your "
                             "prompt is %zu tokens long. Please reduce the length of the %s.",
                             m->n_ctx, longest, where);
    if (max_tokens < 0)
        max_tokens = m->n_ctx - (int64_t)longest;
    if ((int64_t)longest + max_tokens > m->n_ctx)
        return err_set_param(e, ERR_INVALID, "max_tokens",
                             "This model's maximum context length is %d tokens. However, you "
                             "requested %lld tokens (%zu in the %s, %lld in the completion). "
                             "Please reduce the length of the %s or completion.",
                             m->n_ctx, (long long)((int64_t)longest + max_tokens), longest, where,
                             (long long)max_tokens, where);
    sr->max_tokens = (int)max_tokens;
    sr->n_choices = req->n;
    if (!fill_sampling(m, req, &sr->sampling, e))
        return false;
    if (!stop_check((const char *const *)req->stop, req->n_stop, e)) {
        snprintf(e->param, sizeof e->param, "stop");
        return false;
    }
    for (int i = 0; i < req->n_stop; i++)
        sr->stop[i] = req->stop[i];
    sr->n_stop = req->n_stop;
    sr->json_mode = req->json_mode;
    sr->weight = 1;
    return true;
}

char *prompt_echo_text(const struct served_model *m, const struct prompt_set *ps, int i,
                       size_t **offsets)
{
    /* tokenizer_decode() is this same stream, pushed and flushed. */
    size_t n = ps->n[i], step = tokenizer_stream_out_max(m->tok), len = 0;
    char *text = malloc(n * step + step + 1);
    size_t *off = offsets ? malloc((n ? n : 1) * sizeof *off) : NULL;
    if (!text || (offsets && !off))
        abort();
    struct tokenizer_stream st;
    tokenizer_stream_init(&st, 0);
    for (size_t k = 0; k < n; k++) {
        if (off)
            off[k] = len;
        len += tokenizer_stream_push(m->tok, &st, ps->ids[i][k], text + len);
    }
    len += tokenizer_stream_flush(&st, text + len);
    text[len] = '\0';
    if (offsets)
        *offsets = off;
    return text;
}

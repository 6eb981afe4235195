/*
 * scheduler.c — see scheduler.h.
 *
 * Vocabulary. A *request* is one prompt of an API call with n choices; each
 * choice is a *sequence* (struct seq) with its own KV-cache sequence, its
 * full token list (prompt + generated), and how many of those tokens are in
 * the cache (n_cached). A sequence with tokens not yet cached has *pending*
 * work: a whole prompt chunk (prefill), or exactly one token (decode: the
 * token sampled last step). One step = one forward pass over pending tokens
 * of many sequences, chosen as follows:
 *
 *   1. every decoding sequence contributes its one token (inter-token
 *      latency first);
 *   2. what is left of max_batch_tokens (while any sequence decodes: at
 *      most prefill_chunk, and at most what the pacer's step budget leaves)
 *      goes to prefilling sequences, the tenant with the smallest virtual
 *      time first (weighted fair queuing);
 *   3. waiting requests join the running set while there are slots (the
 *      smaller of max_running and the pacer's step budget) and KV memory,
 *      tenant with the smallest virtual time first; a tenant running fewer
 *      sequences (per weight) than another may preempt it.
 *
 * Preemption frees a sequence's KV memory and sets n_cached = 0: it is
 * recomputed from its token list when readmitted, invisibly to the client
 * (recomputed tokens are not billed). Requests with n > 1 fork the prompt's
 * KV (kvcache_seq_fork) once the prompt has been evaluated.
 */
#include "engine/scheduler.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/forward.h"
#include "engine/json_guard.h"
#include "engine/kvcache.h"
#include "engine/model.h"
#include "engine/pacer.h"
#include "engine/stop.h"
#include "engine/threadpool.h"
#include "engine/tokenizer.h"

struct req;

struct seq {
    struct req *req;
    int choice;
    int32_t kv;                    /* KV-cache sequence id, -1 when none */
    int32_t *tokens;               /* prompt + generated */
    size_t n_tokens, cap_tokens;
    size_t n_cached;               /* tokens[0..n_cached) are in the KV cache */
    int n_generated;
    bool forked;                   /* waiting for the prompt's KV to copy */
    bool done;
    enum sched_finish finish;
    struct sampler *sampler;
    struct tokenizer_stream detok;
    struct stop_matcher *stop;
    struct json_guard json;
    int plan;                      /* tokens planned for this step */
};

enum req_state { REQ_WAITING, REQ_RUNNING, REQ_DONE };

struct tenant {
    uint64_t id;
    uint32_t weight;
    double vtime;                  /* tokens served / weight */
    int n_requests;                /* waiting + running */
    int n_running_seqs;
    struct tenant *next;
};

struct req {
    uint64_t id;
    struct sched_request p;        /* copied; p.prompt points at prompt_copy */
    int32_t *prompt_copy;
    char *stop_copy[SCHED_MAX_STOP];
    struct sampler_bias *bias_copy;
    struct tenant *tenant;
    enum req_state state;
    struct seq *seqs;
    int n_seqs;
    bool cancel;
    bool admitted;                 /* has left the queue once (max_queue counts the others) */
    struct err err;
    enum sched_finish finish;      /* request-level reason when ended early */
    int64_t prompt_evaluated;      /* prompt tokens evaluated once (billing) */
    size_t prompt_scored;          /* prompt_logprobs: tokens [1, prompt_scored) reported */
    int64_t submit_ms, first_pass_ms, first_token_ms;
    float *pool;                   /* embeddings: sum (mean) or last hidden */
    size_t pool_count;
    struct req *prev, *next;       /* in waiting or running list */
};

struct sched {
    const struct tokenizer *tok;
    struct sched_options opt;
    int n_vocab, n_embd;
    struct kvcache *kv;
    struct forward *fwd;
    pthread_mutex_t *tp_lock;      /* the pool is shared by every model's scheduler */

    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    /* under lock: */
    struct req *incoming_head, *incoming_tail;
    uint64_t *cancels;
    size_t n_cancels, cap_cancels;
    bool stopping;
    uint64_t next_id;
    int n_queued;                  /* incoming + waiting, for max_queue */
    struct sched_stats stats;

    /* scheduler thread only: */
    struct req *waiting, *running;
    int n_running_seqs;
    struct tenant *tenants;
    struct pacer pacer;

    /* per-step scratch, sized once */
    int32_t *b_token, *b_seq;
    uint32_t *b_pos;
    uint8_t *b_out;                /* FORWARD_OUT_* per batch token */
    struct seq **b_owner;          /* sequence of each batch token */
    float *scratch_logits;         /* one row: samplers modify logits in place */
    char *text_buf;                /* tokenizer_stream_out_max() bytes */
};

int64_t sched_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- lists ---------------------------------------------------------------- */

static void list_push(struct req **head, struct req *r)
{
    r->prev = NULL;
    r->next = *head;
    if (*head)
        (*head)->prev = r;
    *head = r;
}

static void list_remove(struct req **head, struct req *r)
{
    if (r->prev)
        r->prev->next = r->next;
    else
        *head = r->next;
    if (r->next)
        r->next->prev = r->prev;
    r->prev = r->next = NULL;
}

/* ---- tenants ---------------------------------------------------------------- */

static struct tenant *tenant_get(struct sched *s, uint64_t id, uint32_t weight)
{
    struct tenant *t;
    for (t = s->tenants; t; t = t->next)
        if (t->id == id)
            break;
    if (!t) {
        t = calloc(1, sizeof *t);
        if (!t)
            abort();
        t->id = id;
        t->next = s->tenants;
        s->tenants = t;
    }
    t->weight = weight ? weight : 1;
    if (t->n_requests == 0) {
        /* A tenant returning from idleness starts at the least-served active
         * tenant's virtual time: no banking of credit while away. */
        double min_v = -1;
        for (struct tenant *o = s->tenants; o; o = o->next)
            if (o != t && o->n_requests > 0 && (min_v < 0 || o->vtime < min_v))
                min_v = o->vtime;
        if (min_v > t->vtime)
            t->vtime = min_v;
    }
    return t;
}

static void tenant_charge(struct tenant *t, size_t tokens)
{
    t->vtime += (double)tokens / (double)t->weight;
}

/* ---- events ---------------------------------------------------------------- */

static void emit(struct req *r, struct sched_event *ev)
{
    ev->request_id = r->id;
    r->p.on_event(r->p.user, ev);
}

static void seq_release_kv(struct sched *s, struct seq *q)
{
    if (q->kv >= 0) {
        kvcache_seq_free(s->kv, q->kv);
        q->kv = -1;
        q->req->tenant->n_running_seqs--;
        s->n_running_seqs--;
    }
    q->n_cached = 0;
}

static void seq_finish(struct sched *s, struct seq *q, enum sched_finish why)
{
    if (q->done)
        return;
    q->done = true;
    q->finish = why;
    seq_release_kv(s, q);
    struct req *r = q->req;
    if (r->p.embedding)
        return;
    /* Text still held back (half a character in the detokenizer, a
     * possible stop-sequence prefix in the matcher) is released now. The
     * matcher's spans live until its next call: copy each one out. */
    if (why != SCHED_FINISH_CANCELLED && why != SCHED_FINISH_ERROR) {
        char tail[8];
        size_t n_tail = tokenizer_stream_flush(&q->detok, tail);
        size_t cap = n_tail + STOP_MAX_SEQUENCES * STOP_MAX_BYTES + 16, len = 0;
        char *text = malloc(cap);
        if (!text)
            abort();
        struct stop_out out;
        struct err e;
        if (n_tail > 0 && stop_push(q->stop, tail, n_tail, &out, &e) && out.len <= cap) {
            memcpy(text, out.text, out.len);
            len = out.len;
        }
        stop_flush(q->stop, &out);
        if (len + out.len <= cap) {
            memcpy(text + len, out.text, out.len);
            len += out.len;
        }
        struct sched_event ev = {.kind = SCHED_EV_CHOICE_DONE, .choice = q->choice,
                                 .text = text, .text_len = len, .finish = why};
        emit(r, &ev);
        free(text);
        return;
    }
    struct sched_event ev = {.kind = SCHED_EV_CHOICE_DONE, .choice = q->choice,
                             .text = "", .text_len = 0, .finish = why};
    emit(r, &ev);
}

static void req_free(struct req *r)
{
    for (int i = 0; i < r->n_seqs; i++) {
        free(r->seqs[i].tokens);
        sampler_free(r->seqs[i].sampler);
        stop_free(r->seqs[i].stop);
    }
    free(r->seqs);
    free(r->prompt_copy);
    for (int i = 0; i < SCHED_MAX_STOP; i++)
        free(r->stop_copy[i]);
    free(r->bias_copy);
    free(r->pool);
    free(r);
}

/* End a request: finish its sequences, free its KV, report usage, free it. */
static void req_end(struct sched *s, struct req *r, enum sched_finish why)
{
    for (int i = 0; i < r->n_seqs; i++)
        seq_finish(s, &r->seqs[i], why);
    if (r->state == REQ_RUNNING)
        list_remove(&s->running, r);
    else if (r->state == REQ_WAITING)
        list_remove(&s->waiting, r);
    r->state = REQ_DONE;
    r->tenant->n_requests--;

    int64_t now = sched_now_ms();
    struct sched_event ev = {.kind = SCHED_EV_REQUEST_DONE, .finish = why, .err = r->err};
    ev.prompt_tokens = r->prompt_evaluated;
    for (int i = 0; i < r->n_seqs; i++)
        ev.completion_tokens += r->seqs[i].n_generated;
    ev.queue_ms = (r->first_pass_ms ? r->first_pass_ms : now) - r->submit_ms;
    ev.first_token_ms = r->first_token_ms ? r->first_token_ms - r->submit_ms : -1;
    ev.compute_ms = r->first_pass_ms ? now - r->first_pass_ms : 0;
    if (r->p.embedding && why == SCHED_FINISH_STOP && r->pool && r->pool_count > 0) {
        double norm = 0;
        if (r->p.pooling == SCHED_POOL_MEAN)
            for (int i = 0; i < s->n_embd; i++)
                r->pool[i] /= (float)r->pool_count;
        for (int i = 0; i < s->n_embd; i++)
            norm += (double)r->pool[i] * r->pool[i];
        float inv = norm > 0 ? (float)(1.0 / sqrt(norm)) : 0.0f;
        for (int i = 0; i < s->n_embd; i++)
            r->pool[i] *= inv;
        ev.embedding = r->pool;
        ev.embedding_dim = s->n_embd;
    }
    pthread_mutex_lock(&s->lock);
    s->stats.tokens_generated += (uint64_t)ev.completion_tokens;
    pthread_mutex_unlock(&s->lock);
    emit(r, &ev);
    req_free(r);
}

/* ---- sequences ---------------------------------------------------------------- */

static void seq_push_token(struct seq *q, int32_t tok)
{
    if (q->n_tokens == q->cap_tokens) {
        size_t cap = q->cap_tokens ? q->cap_tokens * 2 : 64;
        int32_t *t = realloc(q->tokens, cap * sizeof *t);
        if (!t)
            abort();
        q->tokens = t;
        q->cap_tokens = cap;
    }
    q->tokens[q->n_tokens++] = tok;
}

static bool seq_init(struct sched *s, struct req *r, struct seq *q, int choice, struct err *e)
{
    memset(q, 0, sizeof *q);
    q->req = r;
    q->choice = choice;
    q->kv = -1;
    if (r->p.embedding)
        return true;
    struct sampler_params sp = r->p.sampling;
    sp.seed += (uint64_t)choice;
    q->sampler = sampler_new(&sp, s->n_vocab, e);
    if (!q->sampler)
        return false;
    for (size_t i = 0; i < r->p.n_prompt; i++)
        if (!sampler_accept(q->sampler, r->p.prompt[i], true, e))
            return false;
    /* SentencePiece's dummy-prefix space belongs to the start of the text:
     * when the prompt itself renders no text (BOS alone), the first
     * generated word loses it, as SentencePiece decoding does. */
    bool prompt_has_text = false;
    for (size_t i = 0; i < r->p.n_prompt && !prompt_has_text; i++)
        prompt_has_text = tokenizer_token_piece(s->tok, r->p.prompt[i], 0).len > 0;
    unsigned detok_flags = tokenizer_kind(s->tok) == TOKENIZER_SPM && !prompt_has_text
                               ? TOKENIZER_STRIP_LEADING_SPACE : 0;
    tokenizer_stream_init(&q->detok, detok_flags);
    q->stop = stop_new(r->p.stop, r->p.n_stop, e);
    if (!q->stop)
        return false;
    if (r->p.json_mode)
        json_guard_init(&q->json);
    return true;
}

/* The JSON filter: may this token come next? End of generation only once
 * the document is complete; other control tokens never. */
struct json_filter {
    const struct tokenizer *tok;
    const struct json_guard *guard;
};

static bool json_allowed(void *ctx, int32_t token)
{
    const struct json_filter *f = ctx;
    if (tokenizer_is_eog(f->tok, token))
        return json_guard_complete(f->guard);
    struct gguf_str piece = tokenizer_token_piece(f->tok, token, 0);
    return piece.len > 0 && json_guard_accepts(f->guard, piece.ptr, piece.len);
}

/* Sample the next token of q from `logits` (one row, modified), emit it, and
 * finish the sequence when it should stop. */
static void seq_sample(struct sched *s, struct seq *q, float *logits)
{
    struct req *r = q->req;
    struct sampler_result res;
    struct err e = {0};
    struct json_filter jf = {s->tok, &q->json};
    if (!sampler_sample(q->sampler, logits, r->p.json_mode ? json_allowed : NULL, &jf, &res, &e)) {
        r->err = e;
        seq_finish(s, q, SCHED_FINISH_ERROR);
        return;
    }
    int32_t tok = res.token;
    sampler_accept(q->sampler, tok, false, NULL);
    seq_push_token(q, tok);
    q->n_generated++;
    if (!r->first_token_ms)
        r->first_token_ms = sched_now_ms();

    bool eog = tokenizer_is_eog(s->tok, tok);
    struct gguf_str piece = tokenizer_token_piece(s->tok, tok, 0);
    struct stop_out out = {.text = "", .len = 0};
    if (!eog) {
        if (r->p.json_mode)
            json_guard_push(&q->json, piece.ptr, piece.len);
        size_t n = tokenizer_stream_push(s->tok, &q->detok, tok, s->text_buf);
        if (!stop_push(q->stop, s->text_buf, n, &out, &e)) {
            r->err = e;
            seq_finish(s, q, SCHED_FINISH_ERROR);
            return;
        }
    }
    bool stopped = out.stopped;
    struct sched_event ev = {.kind = SCHED_EV_TOKEN, .choice = q->choice, .token = tok,
                             .text = out.text, .text_len = out.len,
                             .sample = r->p.sampling.logprobs ? &res : NULL,
                             .token_text = piece.ptr, .token_text_len = piece.len};
    emit(r, &ev);

    if (eog || stopped || (r->p.json_mode && json_guard_complete(&q->json)))
        seq_finish(s, q, SCHED_FINISH_STOP);
    else if (q->n_generated >= r->p.max_tokens || q->n_tokens >= (size_t)s->opt.n_ctx)
        seq_finish(s, q, SCHED_FINISH_LENGTH);
}

/* Report prompt token `pos`, scored by the logits of the position before. */
static void seq_score_prompt(struct sched *s, struct seq *q, size_t pos, const float *logits)
{
    struct req *r = q->req;
    if (pos != r->prompt_scored)
        return;
    memcpy(s->scratch_logits, logits, (size_t)s->n_vocab * sizeof(float));
    struct sampler_result res;
    struct err e = {0};
    int32_t tok = q->tokens[pos];
    if (!sampler_score(q->sampler, s->scratch_logits, tok, &res, &e)) {
        r->err = e;
        seq_finish(s, q, SCHED_FINISH_ERROR);
        return;
    }
    r->prompt_scored++;
    struct gguf_str piece = tokenizer_token_piece(s->tok, tok, 0);
    struct sched_event ev = {.kind = SCHED_EV_PROMPT_TOKEN, .choice = 0, .token = tok,
                             .text = "", .sample = &res, .token_text = piece.ptr,
                             .token_text_len = piece.len};
    emit(r, &ev);
}

/* ---- admission into the running set ------------------------------------------------ */

static size_t seq_kv_need(const struct seq *q)
{
    return q->n_tokens + 1;
}

/* KV tokens a waiting request needs to start. */
static size_t req_kv_need(const struct req *r)
{
    size_t need = 0;
    for (int i = 0; i < r->n_seqs; i++)
        if (!r->seqs[i].done && !r->seqs[i].forked)
            need += seq_kv_need(&r->seqs[i]);
    return need;
}

static int req_live_seqs(const struct req *r)
{
    int n = 0;
    for (int i = 0; i < r->n_seqs; i++)
        n += !r->seqs[i].done;
    return n;
}

static double tenant_share(const struct tenant *t)
{
    return (double)t->n_running_seqs / (double)t->weight;
}

/* The running request to give up memory for `cand`: from the tenant
 * running the most (per weight) — only if that is more than cand's tenant —
 * its most recently submitted request (least work lost). */
static struct req *pick_victim(struct sched *s, const struct tenant *cand)
{
    struct req *victim = NULL;
    for (struct req *r = s->running; r; r = r->next) {
        if (r->tenant == cand || r->n_seqs > 1)
            continue; /* forks are never preempted: their KV is shared */
        if (tenant_share(r->tenant) <= tenant_share(cand) + 1.0 / cand->weight)
            continue;
        if (!victim || tenant_share(r->tenant) > tenant_share(victim->tenant) ||
            (r->tenant == victim->tenant && r->submit_ms > victim->submit_ms))
            victim = r;
    }
    return victim;
}

static void preempt(struct sched *s, struct req *r)
{
    for (int i = 0; i < r->n_seqs; i++)
        seq_release_kv(s, &r->seqs[i]);
    list_remove(&s->running, r);
    r->state = REQ_WAITING;
    list_push(&s->waiting, r);
    pthread_mutex_lock(&s->lock);
    s->stats.preemptions++;
    pthread_mutex_unlock(&s->lock);
}

static bool seq_attach_kv(struct sched *s, struct seq *q)
{
    struct err e;
    int32_t id;
    if (!kvcache_seq_new(s->kv, &id, &e))
        return false;
    if (!kvcache_seq_reserve(s->kv, id, (uint32_t)seq_kv_need(q), &e)) {
        kvcache_seq_free(s->kv, id);
        return false;
    }
    q->kv = id;
    q->n_cached = 0;
    q->req->tenant->n_running_seqs++;
    s->n_running_seqs++;
    return true;
}

/* Could the cache take a new sequence of n tokens right now? */
static bool kv_fits(struct sched *s, size_t n)
{
    return kvcache_free_seqs(s->kv) > 0 &&
           kvcache_blocks_needed(s->kv, -1, (uint32_t)n) <= kvcache_free_blocks(s->kv);
}

static struct req *pick_waiting(struct sched *s)
{
    struct req *best = NULL;
    for (struct req *r = s->waiting; r; r = r->next)
        if (!best || r->tenant->vtime < best->tenant->vtime ||
            (r->tenant->vtime == best->tenant->vtime && r->submit_ms < best->submit_ms))
            best = r;
    return best;
}

/* Would `seqs` more running sequences exceed the slots? The pacer's budget
 * bounds the running set only while something runs: a request larger than
 * the budget still runs, alone. */
static bool slots_full(struct sched *s, int seqs)
{
    int paced = pacer_step_tokens(&s->pacer, s->opt.max_running);
    return s->n_running_seqs + seqs > s->opt.max_running ||
           (s->n_running_seqs > 0 && s->n_running_seqs + seqs > paced);
}

static void admit(struct sched *s)
{
    for (;;) {
        struct req *r = pick_waiting(s);
        if (!r)
            return;
        int seqs = r->n_seqs;
        size_t need = req_kv_need(r);
        while (slots_full(s, seqs) || !kv_fits(s, need)) {
            struct req *victim = pick_victim(s, r->tenant);
            if (!victim)
                return; /* wait for running requests to finish */
            preempt(s, victim);
        }
        bool ok = true;
        for (int i = 0; i < r->n_seqs && ok; i++) {
            struct seq *q = &r->seqs[i];
            if (!q->done && !q->forked)
                ok = seq_attach_kv(s, q);
        }
        if (!ok) {
            for (int i = 0; i < r->n_seqs; i++)
                seq_release_kv(s, &r->seqs[i]);
            return;
        }
        list_remove(&s->waiting, r);
        r->state = REQ_RUNNING;
        list_push(&s->running, r);
        if (!r->admitted) {
            r->admitted = true;
            pthread_mutex_lock(&s->lock);
            s->n_queued--;
            pthread_mutex_unlock(&s->lock);
        }
    }
}

/* ---- one step ---------------------------------------------------------------------- */

/* Make room in the KV cache for q's next `n` tokens, preempting others if
 * needed. False when q itself had to give way. */
/* Make room in the KV cache for q's next n tokens, preempting others if
 * needed. False when q itself had to give way. */
static bool ensure_kv(struct sched *s, struct seq *q, size_t n)
{
    struct err e;
    while (!kvcache_seq_reserve(s->kv, q->kv, (uint32_t)n, &e)) {
        if (e.code != ERR_NOMEM)
            return false;
        struct req *victim = pick_victim(s, q->req->tenant);
        if (!victim) {
            /* Nobody owes us memory: the youngest running request yields. */
            for (struct req *r = s->running; r; r = r->next)
                if (r->n_seqs == 1 && (!victim || r->submit_ms > victim->submit_ms))
                    victim = r;
        }
        if (!victim)
            return false;
        bool self = victim == q->req;
        preempt(s, victim);
        if (self)
            return false;
    }
    return true;
}

/* Put q's planned tokens into the batch. */
static void add_tokens(struct sched *s, struct seq *q, int *n)
{
    for (int i = 0; i < q->plan; i++) {
        int k = (*n)++;
        size_t pos = q->n_cached + (size_t)i;
        s->b_token[k] = q->tokens[pos];
        s->b_seq[k] = q->kv;
        s->b_pos[k] = (uint32_t)pos;
        s->b_owner[k] = q;
        /* Logits only where the next token is sampled (the last pending
         * token) or where a prompt token not yet reported is scored (once:
         * not again when a preempted sequence is recomputed). Embeddings
         * want every position's hidden state instead. */
        const struct req *r = q->req;
        bool score = r->p.prompt_logprobs && q->choice == 0 && pos + 1 < r->p.n_prompt &&
                     pos + 1 >= r->prompt_scored;
        s->b_out[k] = r->p.embedding ? FORWARD_OUT_HIDDEN
                      : pos == q->n_tokens - 1 || score ? FORWARD_OUT_LOGITS : 0;
    }
}

static bool seq_runnable(const struct seq *q)
{
    return !q->done && q->kv >= 0 && q->req->state == REQ_RUNNING;
}

/* Decide how many tokens each running sequence gets this step, then make
 * KV room for them (which may preempt; a preempted sequence's plan is
 * void, see seq_runnable). Returns the planned sequences in `order`. */
static int plan_step(struct sched *s, struct seq **order, int max_order)
{
    int budget = s->opt.max_batch_tokens, n_order = 0;
    for (struct req *r = s->running; r; r = r->next)
        for (int i = 0; i < r->n_seqs; i++)
            r->seqs[i].plan = 0;
    /* 1. every decoding sequence: one token */
    for (struct req *r = s->running; r && budget > 0; r = r->next)
        for (int i = 0; i < r->n_seqs && budget > 0 && n_order < max_order; i++) {
            struct seq *q = &r->seqs[i];
            if (seq_runnable(q) && q->n_tokens - q->n_cached == 1) {
                q->plan = 1;
                budget--;
                order[n_order++] = q;
            }
        }
    /* 2. prefill chunks, least-served tenant first. While sequences are
     * decoding, prefill gets at most prefill_chunk tokens a step and what
     * the pacer's step budget leaves (at least one token, so prompts always
     * progress): a step's length is every decoding sequence's inter-token
     * latency, and a long prompt must not stall them all (stall-free chunked
     * prefill). With nothing decoding, prompts get the whole budget. */
    if (n_order > 0) {
        if (s->opt.prefill_chunk > 0 && budget > s->opt.prefill_chunk)
            budget = s->opt.prefill_chunk;
        int left = pacer_step_tokens(&s->pacer, s->opt.max_batch_tokens) - n_order;
        if (budget > left)
            budget = left > 1 ? left : 1;
    }
    while (budget > 0 && n_order < max_order) {
        struct seq *best = NULL;
        for (struct req *r = s->running; r; r = r->next)
            for (int i = 0; i < r->n_seqs; i++) {
                struct seq *q = &r->seqs[i];
                if (seq_runnable(q) && q->plan == 0 && q->n_tokens - q->n_cached > 1 &&
                    (!best || r->tenant->vtime < best->req->tenant->vtime))
                    best = q;
            }
        if (!best)
            break;
        size_t pending = best->n_tokens - best->n_cached;
        best->plan = (int)(pending < (size_t)budget ? pending : (size_t)budget);
        budget -= best->plan;
        order[n_order++] = best;
    }
    /* 3. memory, in priority order */
    for (int i = 0; i < n_order; i++) {
        struct seq *q = order[i];
        if (!seq_runnable(q))
            continue;
        if (!ensure_kv(s, q, (size_t)q->plan + 1))
            q->plan = 0;
    }
    return n_order;
}

static void fork_choices(struct sched *s, struct req *r)
{
    /* Choice 0 has just evaluated the prompt: the others copy its KV. */
    for (int i = 1; i < r->n_seqs; i++) {
        struct seq *q = &r->seqs[i];
        if (!q->forked || q->done)
            continue;
        struct err e;
        int32_t id;
        if (!kvcache_seq_fork(s->kv, r->seqs[0].kv, &id, &e)) {
            r->err = e;
            seq_finish(s, q, SCHED_FINISH_ERROR);
            continue;
        }
        q->kv = id;
        q->n_cached = r->seqs[0].n_cached;
        q->forked = false;
        r->tenant->n_running_seqs++;
        s->n_running_seqs++;
    }
}

static void end_finished(struct sched *s)
{
    for (struct req *r = s->running, *next; r; r = next) {
        next = r->next;
        if (req_live_seqs(r) == 0)
            req_end(s, r, r->n_seqs > 0 ? r->seqs[0].finish : SCHED_FINISH_STOP);
    }
}

/* The SCHED_HIST_BUCKETS bucket of a pass of v: the smallest i with
 * v <= 2^i, or the last bucket. */
static int hist_bucket(uint64_t v)
{
    int i = 0;
    while (i < SCHED_HIST_BUCKETS - 1 && v > (1ULL << i))
        i++;
    return i;
}

/* One forward pass on the shared pool; *ms is its duration, timed inside
 * the lock: another model's pass is not this one's cost. */
static bool run_pass(struct sched *s, const struct forward_batch *b, double *ms, struct err *e)
{
    struct timespec t0, t1;
    pthread_mutex_lock(s->tp_lock);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    bool ran = forward_run(s->fwd, b, e);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    pthread_mutex_unlock(s->tp_lock);
    *ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
    return ran;
}

static bool step(struct sched *s)
{
    admit(s);
    if (!s->running)
        return false;

    struct seq *order[SCHED_MAX_CHOICES * 256];
    int max_order = (int)(sizeof order / sizeof order[0]);
    int n_order = plan_step(s, order, max_order);
    int n = 0, n_seqs = 0;
    for (int i = 0; i < n_order; i++) {
        if (seq_runnable(order[i]) && order[i]->plan > 0) {
            add_tokens(s, order[i], &n);
            n_seqs++;
        }
    }
    if (n == 0)
        return false;

    struct forward_batch b = {.n_tokens = (uint32_t)n, .tokens = s->b_token, .seq = s->b_seq,
                              .pos = s->b_pos, .out = s->b_out};
    struct err e = {0};
    int64_t t0 = sched_now_ms();
    double ms;
    if (!run_pass(s, &b, &ms, &e)) {
        /* An engine failure fails the requests of this batch, not the daemon. */
        for (int k = 0; k < n; k++) {
            struct req *r = s->b_owner[k]->req;
            if (r->err.code == ERR_OK)
                r->err = e;
            seq_finish(s, s->b_owner[k], SCHED_FINISH_ERROR);
        }
        end_finished(s);
        return true;
    }
    pacer_observe(&s->pacer, n, ms);

    /* Account: cached tokens, billing, fairness, first pass. */
    for (int k = 0; k < n; k++) {
        struct seq *q = s->b_owner[k];
        struct req *r = q->req;
        if (!r->first_pass_ms)
            r->first_pass_ms = t0;
        q->n_cached++;
        if (q->choice == 0 && q->n_cached <= r->p.n_prompt && (int64_t)q->n_cached > r->prompt_evaluated)
            r->prompt_evaluated = (int64_t)q->n_cached;
        tenant_charge(r->tenant, 1);
        if (r->p.embedding) {
            const float *h = forward_hidden(s->fwd, (uint32_t)k);
            if (r->p.pooling == SCHED_POOL_MEAN || q->n_cached == q->n_tokens) {
                if (r->p.pooling == SCHED_POOL_LAST)
                    memset(r->pool, 0, (size_t)s->n_embd * sizeof(float));
                for (int i = 0; i < s->n_embd; i++)
                    r->pool[i] += h[i];
                r->pool_count++;
            }
        }
    }
    pthread_mutex_lock(&s->lock);
    s->stats.steps++;
    s->stats.tokens_prefilled += (uint64_t)n;
    s->stats.batch_seqs_hist[hist_bucket((uint64_t)n_seqs)]++;
    s->stats.batch_tokens_hist[hist_bucket((uint64_t)n)]++;
    s->stats.batch_seqs_sum += (uint64_t)n_seqs;
    s->stats.step_target_ms = pacer_target_ms(&s->pacer);
    s->stats.step_token_budget = s->stats.step_target_ms > 0
                                     ? pacer_step_tokens(&s->pacer, s->opt.max_batch_tokens)
                                     : 0;
    pthread_mutex_unlock(&s->lock);

    /* Sample where logits were computed; finish embeddings. */
    for (int k = 0; k < n; k++) {
        struct seq *q = s->b_owner[k];
        struct req *r = q->req;
        if (r->p.embedding) {
            if (q->n_cached == q->n_tokens && !q->done)
                seq_finish(s, q, SCHED_FINISH_STOP);
            continue;
        }
        if (!(s->b_out[k] & FORWARD_OUT_LOGITS) || q->done)
            continue;
        const float *row_logits = forward_logits(s->fwd, (uint32_t)k);
        if ((size_t)s->b_pos[k] + 1 < q->n_tokens) {
            seq_score_prompt(s, q, (size_t)s->b_pos[k] + 1, row_logits);
            continue;
        }
        bool forks = q->choice == 0 && r->n_seqs > 1 && r->seqs[1].forked;
        if (forks) {
            fork_choices(s, r);
            for (int i = 1; i < r->n_seqs; i++) {
                if (r->seqs[i].done)
                    continue;
                memcpy(s->scratch_logits, row_logits, (size_t)s->n_vocab * sizeof(float));
                seq_sample(s, &r->seqs[i], s->scratch_logits);
            }
        }
        memcpy(s->scratch_logits, row_logits, (size_t)s->n_vocab * sizeof(float));
        seq_sample(s, q, s->scratch_logits);
    }
    end_finished(s);
    return true;
}

/* ---- thread and API -------------------------------------------------------------------- */

static bool take_cancel(struct sched *s, uint64_t id)
{
    for (size_t i = 0; i < s->n_cancels; i++)
        if (s->cancels[i] == id) {
            s->cancels[i] = s->cancels[--s->n_cancels];
            return true;
        }
    return false;
}

/* Move submissions in, apply cancels and deadlines. Under lock. */
static void intake(struct sched *s, bool stopping)
{
    for (struct req *r = s->incoming_head, *next; r; r = next) {
        next = r->next;
        r->tenant = tenant_get(s, r->p.tenant, r->p.weight);
        r->tenant->n_requests++;
        r->state = REQ_WAITING;
        list_push(&s->waiting, r);
    }
    s->incoming_head = s->incoming_tail = NULL;
    int64_t now = sched_now_ms();
    struct req *lists[2] = {s->waiting, s->running};
    for (int l = 0; l < 2; l++)
        for (struct req *r = lists[l]; r; r = r->next) {
            if (stopping || take_cancel(s, r->id))
                r->cancel = true;
            else if (r->p.deadline_ms && now >= r->p.deadline_ms && !r->cancel) {
                r->cancel = true;
                r->finish = SCHED_FINISH_TIMEOUT;
                err_set(&r->err, ERR_TIMEOUT, "the request did not finish within its deadline");
            }
        }
    s->n_cancels = 0; /* ids of requests already gone */
}

static void end_cancelled(struct sched *s)
{
    struct req **lists[2] = {&s->waiting, &s->running};
    for (int l = 0; l < 2; l++)
        for (struct req *r = *lists[l], *next; r; r = next) {
            next = r->next;
            if (r->cancel) {
                if (!r->admitted) {
                    pthread_mutex_lock(&s->lock);
                    s->n_queued--;
                    pthread_mutex_unlock(&s->lock);
                }
                req_end(s, r, r->finish ? r->finish : SCHED_FINISH_CANCELLED);
            }
        }
}

/* Two one-token passes on a scratch sequence, before any request: the pacer
 * knows the base step before the first burst arrives (the first pass pages
 * the weights in and is not counted). Without KV room it learns later. */
static void calibrate(struct sched *s)
{
    struct err e;
    int32_t id;
    if (s->opt.itl_factor <= 0 || !kvcache_seq_new(s->kv, &id, &e))
        return;
    if (kvcache_seq_reserve(s->kv, id, 2, &e)) {
        for (uint32_t pos = 0; pos < 2; pos++) {
            int32_t token = 0;
            uint8_t out = FORWARD_OUT_LOGITS;
            struct forward_batch b = {.n_tokens = 1, .tokens = &token, .seq = &id, .pos = &pos,
                                      .out = &out};
            double ms;
            if (!run_pass(s, &b, &ms, &e))
                break;
            if (pos == 1)
                pacer_observe(&s->pacer, 1, ms);
        }
    }
    kvcache_seq_free(s->kv, id);
}

static void *sched_main(void *arg)
{
    struct sched *s = arg;
    calibrate(s);
    for (;;) {
        pthread_mutex_lock(&s->lock);
        while (!s->incoming_head && !s->n_cancels && !s->stopping && !s->waiting && !s->running)
            pthread_cond_wait(&s->cond, &s->lock);
        bool stopping = s->stopping;
        intake(s, stopping);
        pthread_mutex_unlock(&s->lock);

        end_cancelled(s);
        if (stopping)
            break;
        bool progressed = step(s);
        int waiting = 0;
        for (struct req *r = s->waiting; r; r = r->next)
            waiting++;
        pthread_mutex_lock(&s->lock);
        s->stats.queued = waiting;
        s->stats.running = s->n_running_seqs;
        uint64_t bt = kvcache_block_tokens(s->kv);
        s->stats.kv_tokens_total = bt * kvcache_total_blocks(s->kv);
        s->stats.kv_tokens_used = bt * (kvcache_total_blocks(s->kv) - kvcache_free_blocks(s->kv));
        if (!progressed && s->waiting && !s->incoming_head && !s->n_cancels && !s->stopping) {
            /* Requests wait for memory that only a cancel or a deadline can
             * free: sleep briefly instead of spinning. */
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_nsec += 20 * 1000000;
            if (ts.tv_nsec >= 1000000000) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000;
            }
            pthread_cond_timedwait(&s->cond, &s->lock, &ts);
        }
        pthread_mutex_unlock(&s->lock);
    }
    return NULL;
}

static void sched_free_buffers(struct sched *s)
{
    if (s->fwd)
        forward_destroy(s->fwd);
    if (s->kv)
        kvcache_destroy(s->kv);
    free(s->b_token);
    free(s->b_seq);
    free(s->b_pos);
    free(s->b_out);
    free(s->b_owner);
    free(s->scratch_logits);
    free(s->text_buf);
    free(s->cancels);
}

bool sched_start(const struct model *m, const struct tokenizer *tok, struct threadpool *tp,
                 pthread_mutex_t *tp_lock, const struct sched_options *opt, struct sched **out,
                 struct err *e)
{
    struct sched *s = calloc(1, sizeof *s);
    if (!s)
        return err_set(e, ERR_NOMEM, "out of memory");
    s->tok = tok;
    s->tp_lock = tp_lock;
    s->opt = *opt;
    const struct model_hparams *hp = &m->hp;
    s->n_vocab = (int)hp->n_vocab;
    s->n_embd = (int)hp->n_embd;
    if (s->opt.n_ctx <= 0 || s->opt.n_ctx > (int)hp->n_ctx_train)
        s->opt.n_ctx = (int)hp->n_ctx_train;
    if (s->opt.max_batch_tokens < 1)
        s->opt.max_batch_tokens = 512;
    if (s->opt.max_running < 1)
        s->opt.max_running = 64;
    if (s->opt.max_queue < 1)
        s->opt.max_queue = 256;
    pacer_init(&s->pacer, s->opt.itl_factor, s->opt.itl_min_target_ms);

    struct kvcache_config kc = {
        .n_layer = hp->n_layer,
        .n_head_kv = hp->n_head_kv,
        .head_dim = hp->head_dim,
        .max_seqs = (uint32_t)(s->opt.max_running + SCHED_MAX_CHOICES),
        .max_seq_tokens = (uint32_t)s->opt.n_ctx + 1,
        .budget_bytes = s->opt.kv_cache_bytes,
    };
    /* Every output row of a step may be wanted (embeddings want all). */
    struct forward_options fo = {.max_batch = (uint32_t)s->opt.max_batch_tokens,
                                 .max_outputs = (uint32_t)s->opt.max_batch_tokens,
                                 .isa = -1};
    if (kc.budget_bytes < kvcache_block_bytes(&kc)) {
        err_set_param(e, ERR_INVALID, "kv-cache-bytes",
                      "--kv-cache-bytes is smaller than one KV block (%zu bytes) for this model",
                      kvcache_block_bytes(&kc));
        goto fail;
    }
    if (!kvcache_create(&kc, &s->kv, e) || !forward_create(m, s->kv, tp, &fo, &s->fwd, e))
        goto fail;
    size_t B = (size_t)s->opt.max_batch_tokens;
    s->b_token = calloc(B, sizeof *s->b_token);
    s->b_seq = calloc(B, sizeof *s->b_seq);
    s->b_pos = calloc(B, sizeof *s->b_pos);
    s->b_out = calloc(B, 1);
    s->b_owner = calloc(B, sizeof *s->b_owner);
    s->scratch_logits = malloc((size_t)s->n_vocab * sizeof(float));
    s->text_buf = malloc(tokenizer_stream_out_max(tok));
    if (!s->b_token || !s->b_seq || !s->b_pos || !s->b_out || !s->b_owner ||
        !s->scratch_logits || !s->text_buf) {
        err_set(e, ERR_NOMEM, "out of memory for the scheduler's batch buffers");
        goto fail;
    }
    /* Capacity is known now; the thread refreshes it with use after each step. */
    s->stats.kv_tokens_total = (uint64_t)kvcache_block_tokens(s->kv) * kvcache_total_blocks(s->kv);
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->cond, NULL);
    if (pthread_create(&s->thread, NULL, sched_main, s) != 0) {
        err_set(e, ERR_IO, "cannot start the scheduler thread");
        pthread_mutex_destroy(&s->lock);
        pthread_cond_destroy(&s->cond);
        goto fail;
    }
    *out = s;
    return true;
fail:
    sched_free_buffers(s);
    free(s);
    return false;
}

void sched_stop(struct sched *s)
{
    if (!s)
        return;
    pthread_mutex_lock(&s->lock);
    s->stopping = true;
    pthread_cond_signal(&s->cond);
    pthread_mutex_unlock(&s->lock);
    pthread_join(s->thread, NULL);
    /* Submissions that raced with stop never reached the thread. */
    for (struct req *r = s->incoming_head, *next; r; r = next) {
        next = r->next;
        r->tenant = tenant_get(s, r->p.tenant, r->p.weight);
        r->tenant->n_requests++;
        r->state = REQ_WAITING;
        list_push(&s->waiting, r);
        req_end(s, r, SCHED_FINISH_CANCELLED);
    }
    for (struct tenant *t = s->tenants, *next; t; t = next) {
        next = t->next;
        free(t);
    }
    sched_free_buffers(s);
    pthread_mutex_destroy(&s->lock);
    pthread_cond_destroy(&s->cond);
    free(s);
}

static bool req_prepare(struct sched *s, const struct sched_request *p, struct req **out,
                        struct err *e)
{
    if (p->n_prompt == 0)
        return err_set_param(e, ERR_INVALID, "prompt", "the prompt is empty");
    int choices = p->embedding ? 1 : p->n_choices < 1 ? 1 : p->n_choices;
    if (choices > SCHED_MAX_CHOICES || choices > s->opt.max_running)
        return err_set_param(e, ERR_INVALID, "n", "n must be at most %d",
                             s->opt.max_running < SCHED_MAX_CHOICES ? s->opt.max_running
                                                                    : SCHED_MAX_CHOICES);
    size_t limit = (size_t)s->opt.n_ctx;
    size_t want = p->n_prompt + (p->embedding ? 0 : (size_t)(p->max_tokens > 0 ? p->max_tokens : 0));
    if (want > limit)
        return err_set_param(e, ERR_INVALID, p->embedding ? "input" : "max_tokens",
                             "This model's maximum context length is %zu tokens. However, you "
                             "requested %zu tokens (%zu in the prompt, %zu in the completion).",
                             limit, want, p->n_prompt, want - p->n_prompt);
    for (size_t i = 0; i < p->n_prompt; i++)
        if (p->prompt[i] < 0 || p->prompt[i] >= s->n_vocab)
            return err_set_param(e, ERR_INVALID, "prompt",
                                 "token id %d is outside the vocabulary (0..%d)", p->prompt[i],
                                 s->n_vocab - 1);

    struct req *r = calloc(1, sizeof *r);
    if (!r)
        return err_set(e, ERR_NOMEM, "out of memory");
    r->p = *p;
    r->p.n_choices = choices;
    r->prompt_scored = 1; /* the first token has nothing before it */
    r->prompt_copy = malloc(p->n_prompt * sizeof(int32_t));
    r->seqs = calloc((size_t)choices, sizeof *r->seqs);
    if (!r->prompt_copy || !r->seqs)
        abort();
    memcpy(r->prompt_copy, p->prompt, p->n_prompt * sizeof(int32_t));
    r->p.prompt = r->prompt_copy;
    for (int i = 0; i < p->n_stop && i < SCHED_MAX_STOP; i++) {
        r->stop_copy[i] = strdup(p->stop[i]);
        if (!r->stop_copy[i])
            abort();
        r->p.stop[i] = r->stop_copy[i];
    }
    if (p->sampling.n_logit_bias > 0) {
        r->bias_copy = malloc((size_t)p->sampling.n_logit_bias * sizeof *r->bias_copy);
        if (!r->bias_copy)
            abort();
        memcpy(r->bias_copy, p->sampling.logit_bias,
               (size_t)p->sampling.n_logit_bias * sizeof *r->bias_copy);
        r->p.sampling.logit_bias = r->bias_copy;
    }
    if (p->embedding) {
        r->pool = calloc((size_t)s->n_embd, sizeof(float));
        if (!r->pool)
            abort();
    }
    r->n_seqs = choices;
    for (int i = 0; i < choices; i++) {
        if (!seq_init(s, r, &r->seqs[i], i, e)) {
            r->n_seqs = i + 1;
            req_free(r);
            return false;
        }
        r->n_seqs = i + 1;
        /* Every choice starts from the prompt; choices > 0 wait to fork. */
        for (size_t k = 0; k < p->n_prompt; k++)
            seq_push_token(&r->seqs[i], p->prompt[k]);
        r->seqs[i].forked = i > 0;
    }
    r->submit_ms = sched_now_ms();
    *out = r;
    return true;
}

bool sched_submit(struct sched *s, const struct sched_request *reqs, int n, uint64_t *ids,
                  struct err *e)
{
    struct req *made[64];
    if (n < 1 || n > 64)
        return err_set(e, ERR_INVALID, "between 1 and 64 prompts per call");
    for (int i = 0; i < n; i++) {
        if (!req_prepare(s, &reqs[i], &made[i], e)) {
            for (int k = 0; k < i; k++)
                req_free(made[k]);
            return false;
        }
    }
    pthread_mutex_lock(&s->lock);
    if (s->stopping || s->n_queued + n > s->opt.max_queue) {
        bool stopping = s->stopping;
        pthread_mutex_unlock(&s->lock);
        for (int i = 0; i < n; i++)
            req_free(made[i]);
        if (stopping)
            return err_set(e, ERR_UNAVAILABLE, "the server is shutting down");
        return err_set(e, ERR_OVERLOADED,
                       "The server is overloaded: %d requests are already waiting. Retry shortly.",
                       s->opt.max_queue);
    }
    for (int i = 0; i < n; i++) {
        made[i]->id = ++s->next_id;
        ids[i] = made[i]->id;
        made[i]->next = NULL;
        if (s->incoming_tail)
            s->incoming_tail->next = made[i];
        else
            s->incoming_head = made[i];
        s->incoming_tail = made[i];
    }
    s->n_queued += n;
    pthread_cond_signal(&s->cond);
    pthread_mutex_unlock(&s->lock);
    return true;
}

void sched_cancel(struct sched *s, uint64_t id)
{
    pthread_mutex_lock(&s->lock);
    if (s->n_cancels == s->cap_cancels) {
        size_t cap = s->cap_cancels ? s->cap_cancels * 2 : 16;
        uint64_t *c = realloc(s->cancels, cap * sizeof *c);
        if (!c)
            abort();
        s->cancels = c;
        s->cap_cancels = cap;
    }
    s->cancels[s->n_cancels++] = id;
    pthread_cond_signal(&s->cond);
    pthread_mutex_unlock(&s->lock);
}

void sched_get_stats(struct sched *s, struct sched_stats *out)
{
    pthread_mutex_lock(&s->lock);
    *out = s->stats;
    pthread_mutex_unlock(&s->lock);
}

/*
 * scheduler.h — continuous batching: many requests, one forward pass per step.
 *
 * On a CPU one decode step of one sequence streams the whole model through
 * memory for a single token; serving many customers is affordable only if
 * their decode steps share each pass over the weights. A scheduler owns one
 * loaded model's KV cache and forward context and runs a thread that, at
 * every step, builds ONE batch out of the next token of every running
 * sequence plus chunks of waiting prompts (chunked prefill), runs it, samples,
 * detokenises, applies stop sequences, and reports what happened.
 *
 * Contract
 *   - sched_submit() (any thread) queues requests and returns their ids, or
 *     ERR_OVERLOADED when the queue (max_queue requests) cannot take them.
 *   - Events for a request are delivered by calling its on_event() on the
 *     scheduler thread, in order: with prompt_logprobs, one "prompt token"
 *     per prompt token after the first, then token events per choice, one
 *     "choice done" per choice, then exactly one final event (`request_done`) carrying the
 *     usage: every token the engine processed for the request, also when it
 *     was cancelled, timed out or failed. The final event is always
 *     delivered, even at sched_stop(). Event data is valid only during the
 *     call: copy what you keep. on_event must not block (post and return).
 *   - sched_cancel() (any thread) stops a request at the next step; its KV
 *     memory is freed at once and its final event reports finish CANCELLED
 *     with the tokens processed so far.
 *   - A request whose deadline passes ends with finish TIMEOUT (same rules).
 *   - Admission into the running set respects the KV-cache budget: when
 *     memory is short, requests wait, or the running sequence of the
 *     most-served tenant is preempted (its KV freed; it is recomputed later,
 *     transparently to the client). The scheduler never fails a request for
 *     lack of KV memory unless the request alone cannot fit.
 *   - Fairness: capacity is shared between tenants by weighted fair queuing
 *     over tokens (prompt and generated): a tenant's virtual time advances by
 *     tokens / weight, and the tenant furthest behind is served first, both
 *     when picking waiting requests and when dividing the prefill budget.
 *   - Latency: with itl_factor set, the sequences running and the prompt
 *     tokens of a step are kept within what fits in itl_factor times a
 *     one-token step (pacer.h); more requests wait in the queue rather than
 *     slow every running stream. A request always runs when nothing else does.
 *   - Batch invariance: a request produces the same tokens (greedy, or with a
 *     seed) whether it runs alone or batched with others.
 *
 * Ownership
 *   sched_submit() copies everything in the request (prompt, stop strings,
 *   logit bias); the caller's memory may be freed at once. `user` is opaque.
 *   The scheduler borrows the model and tokenizer; they must outlive it.
 */
#ifndef MAASD_SCHEDULER_H
#define MAASD_SCHEDULER_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/err.h"
#include "engine/sampler.h"

struct model;
struct tokenizer;
struct threadpool;
struct sched;

#define SCHED_MAX_STOP 4
#define SCHED_MAX_CHOICES 16

struct sched_options {
    int max_running;          /* sequences decoding at once */
    int max_batch_tokens;     /* tokens per forward pass (decode + prefill) */
    int prefill_chunk;        /* prompt tokens per pass while others decode; 0 = no cap */
    int itl_factor;           /* keep a step within this many one-token steps; 0 = off (pacer.h) */
    double itl_min_target_ms; /* step targets below this do not limit */
    int max_queue;            /* requests waiting; beyond: ERR_OVERLOADED */
    uint64_t kv_cache_bytes;  /* KV-cache budget */
    int n_ctx;                /* context per sequence (<= the model's) */
};

enum sched_finish {
    SCHED_FINISH_NONE = 0,
    SCHED_FINISH_STOP,        /* EOS, a stop sequence, or JSON complete */
    SCHED_FINISH_LENGTH,      /* max_tokens or the context filled */
    SCHED_FINISH_CANCELLED,   /* sched_cancel() (client left) or shutdown */
    SCHED_FINISH_TIMEOUT,     /* deadline passed */
    SCHED_FINISH_ERROR,       /* see ev->err */
};

enum sched_pooling { SCHED_POOL_MEAN, SCHED_POOL_LAST };

enum sched_event_kind {
    SCHED_EV_PROMPT_TOKEN,    /* prompt_logprobs: a prompt token, scored (once, in order) */
    SCHED_EV_TOKEN,           /* a generated token (and maybe text) for a choice */
    SCHED_EV_CHOICE_DONE,     /* a choice finished; `finish` says why; flushed text */
    SCHED_EV_REQUEST_DONE,    /* last event: usage, timings, embedding */
};

struct sched_event {
    enum sched_event_kind kind;
    uint64_t request_id;
    int choice;

    /* TOKEN / CHOICE_DONE: text released for this choice (complete UTF-8,
     * stop sequences removed; may be empty while text is held back). */
    const char *text;
    size_t text_len;

    /* TOKEN: the sampled token and, when asked, its log-probabilities.
     * PROMPT_TOKEN: the prompt's next token and its log-probabilities given
     * the tokens before it (sampler_score: the model's own distribution). */
    int32_t token;
    const struct sampler_result *sample;   /* NULL unless logprobs asked (always for PROMPT_TOKEN) */
    const char *token_text;                /* raw bytes of the token */
    size_t token_text_len;

    /* CHOICE_DONE and REQUEST_DONE */
    enum sched_finish finish;
    struct err err;                        /* finish == ERROR / TIMEOUT */

    /* REQUEST_DONE: usage and timings (ms) */
    int64_t prompt_tokens;                 /* prompt tokens evaluated (once, shared by choices) */
    int64_t completion_tokens;             /* generated tokens, all choices */
    int64_t queue_ms;                      /* submit -> first forward pass */
    int64_t first_token_ms;                /* submit -> first generated token (-1 none) */
    int64_t compute_ms;                    /* first pass -> done */
    const float *embedding;                /* embeddings: the pooled, L2-normalised vector */
    int embedding_dim;
};

typedef void (*sched_event_fn)(void *user, const struct sched_event *ev);

struct sched_request {
    const int32_t *prompt;
    size_t n_prompt;
    int n_choices;                        /* 1..SCHED_MAX_CHOICES (share the prompt's KV) */
    int max_tokens;                       /* per choice */
    struct sampler_params sampling;       /* choice i uses seed + i */
    const char *stop[SCHED_MAX_STOP];
    int n_stop;
    bool json_mode;                       /* constrain output to one JSON object */
    bool prompt_logprobs;                 /* score the prompt: SCHED_EV_PROMPT_TOKEN events */
    bool embedding;                       /* embeddings: no generation */
    enum sched_pooling pooling;
    uint64_t tenant;                      /* fairness key (customer) */
    uint32_t weight;                      /* fairness weight (plan), >= 1 */
    int64_t deadline_ms;                  /* CLOCK_MONOTONIC ms; 0 = none */
    sched_event_fn on_event;
    void *user;
};

/* Forward passes by size (sequences, tokens): bucket i counts passes of
 * at most 2^i, the last bucket the larger ones (metrics histograms). */
#define SCHED_HIST_BUCKETS 12

struct sched_stats {
    int queued;
    int running;
    uint64_t kv_tokens_used, kv_tokens_total;
    uint64_t steps;
    uint64_t tokens_prefilled;
    uint64_t tokens_generated;
    uint64_t preemptions;
    uint64_t batch_seqs_hist[SCHED_HIST_BUCKETS];
    uint64_t batch_tokens_hist[SCHED_HIST_BUCKETS];
    uint64_t batch_seqs_sum;               /* sequences over every pass */
    int step_token_budget;                 /* the pacer's tokens per step; 0 = no limit */
    double step_target_ms;                 /* the pacer's step target; 0 = none */
};

/* tp is the compute pool; it may be shared by several schedulers (one per
 * model), each taking tp_lock around its forward passes. */
bool sched_start(const struct model *m, const struct tokenizer *tok, struct threadpool *tp,
                 pthread_mutex_t *tp_lock, const struct sched_options *opt, struct sched **out,
                 struct err *e);
/* Cancel everything (final events are delivered), join the thread, free. */
void sched_stop(struct sched *s);

/* Queue n requests, all or none (a multi-prompt API call is one unit):
 * ids[i] receives each request's id. ERR_OVERLOADED when the queue cannot
 * take all n; ERR_INVALID for a request that can never run (prompt +
 * max_tokens beyond n_ctx, more choices than max_running). */
bool sched_submit(struct sched *s, const struct sched_request *reqs, int n, uint64_t *ids,
                  struct err *e);
void sched_cancel(struct sched *s, uint64_t request_id);
void sched_get_stats(struct sched *s, struct sched_stats *out);

/* Milliseconds of CLOCK_MONOTONIC, the clock of deadline_ms. */
int64_t sched_now_ms(void);

#endif

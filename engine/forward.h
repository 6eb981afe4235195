/*
 * forward.h — the batched forward pass of a LLaMA-family model over a paged
 * KV cache.
 *
 * Contract
 *   forward_run() evaluates a batch of tokens that may come from many
 *   sequences at once: each token carries its KV sequence, its position and
 *   what it wants back. So one call can mix prompt chunks of some requests
 *   with single decode tokens of others. Rules, checked up front (ERR_INVALID
 *   naming the field, nothing computed on failure):
 *   - 1 <= n_tokens <= max_batch; token ids < n_vocab; sequences valid;
 *   - the tokens of one sequence appear in position order and continue it:
 *     len, len + 1, ... (len = kvcache_seq_len() before the call), within
 *     the capacity reserved with kvcache_seq_reserve();
 *   - at most max_outputs tokens ask for outputs.
 *   After the call each sequence's length has advanced by its token count.
 *
 *   Token i attends to positions [0, pos_i] of its own sequence. The result
 *   for a token does not depend on the rest of the batch, on how a prompt is
 *   split into calls, or on the thread count: every kernel computes each
 *   output element with one fixed arithmetic (kernels.h), so greedy decoding
 *   gives the same tokens alone or batched.
 *
 *   Outputs per token (flags): FORWARD_OUT_LOGITS, the n_vocab logits;
 *   FORWARD_OUT_HIDDEN, the final RMS-normalised hidden state (n_embd), the
 *   input of the output projection, which is what embeddings are pooled
 *   from. The output projection runs only for tokens that asked for logits.
 *
 * Memory
 *   forward_create() allocates every buffer once, sized for max_batch tokens
 *   and the KV cache's context length; forward_run() allocates nothing.
 *   Output pointers stay valid until the next forward_run(). The model, KV
 *   cache and thread pool are borrowed and must outlive the context.
 *
 * Threads
 *   One caller thread (the scheduler's); the work is spread over the pool.
 */
#ifndef MAASD_FORWARD_H
#define MAASD_FORWARD_H

#include <stdbool.h>
#include <stdint.h>

#include "engine/err.h"
#include "engine/kernels.h"
#include "engine/kvcache.h"
#include "engine/model.h"
#include "engine/threadpool.h"

struct forward_options {
    uint32_t max_batch;   /* tokens per call; 0 = 512 */
    uint32_t max_outputs; /* tokens per call that want outputs; 0 = min(max_batch, 64) */
    int isa;              /* a kernels_isa to force (tests); -1 = the best this CPU has */
};

enum {
    FORWARD_OUT_LOGITS = 1,
    FORWARD_OUT_HIDDEN = 2,
};

struct forward_batch {
    uint32_t n_tokens;
    const int32_t *tokens;
    const int32_t *seq;    /* KV sequence of each token */
    const uint32_t *pos;   /* position of each token */
    const uint8_t *out;    /* FORWARD_OUT_* flags per token; NULL = none */
};

struct forward;

bool forward_create(const struct model *m, struct kvcache *kv, struct threadpool *tp,
                    const struct forward_options *o, struct forward **out, struct err *e);
void forward_destroy(struct forward *f);

bool forward_run(struct forward *f, const struct forward_batch *b, struct err *e);

/* Outputs of batch token i from the last run; NULL if it did not ask, if i
 * is beyond that batch, or if the last run failed. Asking for logits also
 * gives the hidden state. */
const float *forward_logits(const struct forward *f, uint32_t i);
const float *forward_hidden(const struct forward *f, uint32_t i);

/* --- embeddings --- */
enum forward_pooling {
    FORWARD_POOL_MEAN,   /* mean of the final hidden states of all tokens */
    FORWARD_POOL_LAST,   /* the last token's */
};
/* Run tokens[0..n) as a fresh sequence (a temporary KV sequence, freed
 * before returning; ERR_NOMEM if the cache cannot hold it), pool the final
 * hidden states and L2-normalise into out[n_embd]. */
bool forward_embed(struct forward *f, const int32_t *tokens, uint32_t n,
                   enum forward_pooling pool, float *out, struct err *e);

#endif

/*
 * sampler.h — choose the next token from a row of logits, per sequence.
 *
 * Contract
 *   A struct sampler holds one sequence's sampling state: its parameters, a
 *   private PRNG and the token counts the penalties need. For each step the
 *   caller passes the model's logits (n_vocab floats) to sampler_sample(),
 *   which returns one token id, and then reports the token it keeps with
 *   sampler_accept(s, token, false). Prompt tokens are reported the same way
 *   with is_prompt = true before the first sample.
 *
 *   Processing of one step, in this order:
 *     1. penalties, over the counts kept by sampler_accept():
 *        - repetition_penalty (CTRL / llama.cpp style): for every distinct
 *          token in the window, a positive logit is divided by the penalty
 *          and a non-positive one multiplied by it. The window is the last
 *          penalty_last_n tokens of prompt + generated text (-1: every token
 *          seen so far, the HF transformers / vLLM semantics; 0: off).
 *        - presence_penalty and frequency_penalty (OpenAI semantics), over
 *          GENERATED tokens only: logit -= presence * [count > 0]
 *                                          + frequency * count.
 *     2. logit_bias: bias added to the token's logit, last, so that -100
 *        bans and +100 forces regardless of the penalties.
 *     The logits array is modified in place by 1-2 (NaN becomes -inf, +inf
 *     becomes FLT_MAX); nothing else is written to it.
 *     3. temperature 0 (or below 1e-4): the highest logit, ties broken by
 *        the lowest id.
 *        Otherwise, on p ∝ exp(logit / temperature) (HF / vLLM order:
 *        temperature first, then truncation): top_k keeps the k most likely,
 *        top_p the smallest most-likely prefix whose mass reaches top_p of the
 *        mass left by top_k, min_p those with p >= min_p * p_max. A token is
 *        drawn from what is left, with one uniform draw from the sampler's
 *        PRNG (xoshiro256** seeded through splitmix64 from `seed`).
 *
 *   Constrained output. `allowed` (may be NULL) is asked about candidates
 *   lazily, in probability order for the first 256, never about the whole
 *   vocabulary unless it has to be (then once per token, with no sorting).
 *   The result is an exact draw from the truncated distribution restricted
 *   to allowed tokens (temperature 0: the most likely allowed token). When no token of the truncated set is allowed,
 *   the most likely allowed token of the whole vocabulary is taken; when no
 *   token at all is allowed, sampling fails with ERR_UNPROCESSABLE.
 *
 *   Determinism. Same parameters, same seed, same accepted tokens and same
 *   logits give the same token on every platform: the PRNG is our own, the
 *   exponential is computed with plain IEEE float arithmetic (no libm), and
 *   every sum is taken in a fixed order, so SIMD width does not matter. One
 *   PRNG draw is consumed per call when temperature > 0, none when it is 0.
 *
 *   Log-probabilities (when params.logprobs) are those of the model's
 *   distribution AFTER penalties and logit_bias, BEFORE temperature,
 *   truncation and the `allowed` filter: log-softmax over the full vocabulary
 *   of the processed logits, computed stably (max subtracted, sum in double).
 *   `top` lists the top_logprobs most likely tokens of that distribution,
 *   most likely first (ties: lowest id); the chosen token need not be among
 *   them (it may have been drawn from the tail or forced by `allowed`).
 *   Values are clamped to >= -9999 (OpenAI's floor), so they are always
 *   finite and JSON-encodable.
 *
 * Ownership
 *   sampler_new() copies the parameters, logit_bias included; the caller's
 *   arrays may be freed afterwards. The sampler owns its scratch memory:
 *   about 21 KB in the object, 4 bytes per vocabulary entry once it samples
 *   with temperature > 0, up to about 14 per entry when a step needs large
 *   candidate sets (big top_k, top_p over a flat tail, a constraint that
 *   walks far), and 16 bytes per allowed token a filtered draw visits, all
 *   allocated on first need and kept; plus the penalty counts, proportional
 *   to the number of distinct tokens seen.
 *
 * Threads
 *   A sampler is used by one thread at a time; different samplers are
 *   independent. `allowed` is called on the sampling thread.
 *
 * Speed: bench/sampler.c; figures in docs/engine.md (under 0.1 ms per call
 * at a 32k vocabulary for typical settings on the development machine).
 */
#ifndef MAASD_SAMPLER_H
#define MAASD_SAMPLER_H

#include <stdbool.h>
#include <stdint.h>

#include "engine/err.h"

#define SAMPLER_MAX_TOP_LOGPROBS 20

/* Which row kernels run. AUTO (0) picks the widest the CPU has; the others
 * exist so tests can prove the targets agree bit for bit and benchmarks can
 * show what SIMD buys. */
enum sampler_isa {
    SAMPLER_ISA_AUTO = 0,
    SAMPLER_ISA_GENERIC,
    SAMPLER_ISA_AVX2,
    SAMPLER_ISA_AVX512,
};

struct sampler_bias {
    int32_t token;
    float bias; /* added to the logit; [-100, 100] */
};

struct sampler_params {
    float temperature;        /* [0, 2]; 0 = greedy */
    int32_t top_k;            /* >= 0; 0 = off */
    float top_p;              /* (0, 1]; 1 = off */
    float min_p;              /* [0, 1]; 0 = off */
    float repetition_penalty; /* (0, 10]; 1 = off */
    int32_t penalty_last_n;   /* window of repetition_penalty: -1 = all, 0 = off */
    float presence_penalty;   /* [-2, 2] */
    float frequency_penalty;  /* [-2, 2] */
    const struct sampler_bias *logit_bias; /* copied by sampler_new */
    int32_t n_logit_bias;     /* entries for the same token add up */
    uint64_t seed;            /* the API layer draws one when the client gave none */
    bool logprobs;            /* fill sampler_result.logprob */
    int32_t top_logprobs;     /* 0..20 alternatives; needs logprobs */
    enum sampler_isa isa;     /* tests and benchmarks only; AUTO otherwise */
};

struct sampler_token_logprob {
    int32_t token;
    float logprob;
};

struct sampler_result {
    int32_t token;
    float logprob; /* of `token`; 0 unless params.logprobs */
    int32_t n_top; /* = params.top_logprobs when params.logprobs */
    struct sampler_token_logprob top[SAMPLER_MAX_TOP_LOGPROBS];
};

/* May `token` come next? Called lazily, in probability order. */
typedef bool (*sampler_allowed_fn)(void *ctx, int32_t token);

struct sampler;

/* OpenAI defaults: temperature 1, top_p 1, no penalties, no bias, seed 0,
 * penalty_last_n -1, no logprobs. */
void sampler_params_default(struct sampler_params *p);

/* Validate against the ranges above. On failure: ERR_INVALID with `param`
 * set to the API field name ("temperature", "top_p", "top_k", "min_p",
 * "repetition_penalty", "penalty_last_n", "presence_penalty",
 * "frequency_penalty", "logit_bias", "top_logprobs"), so the API layer can
 * answer 400 as is. logit_bias keys must be token ids in [0, n_vocab). */
bool sampler_params_check(const struct sampler_params *p, int32_t n_vocab, struct err *e);

/* Validates (as above) and creates the per-sequence state. ERR_UNSUPPORTED
 * when params.isa names instructions this CPU lacks. */
struct sampler *sampler_new(const struct sampler_params *p, int32_t n_vocab, struct err *e);
void sampler_free(struct sampler *s);

/* Record a token of the sequence (prompt or generated) for the penalties.
 * ERR_INVALID for an id outside [0, n_vocab), ERR_NOMEM. */
bool sampler_accept(struct sampler *s, int32_t token, bool is_prompt, struct err *e);

/* Choose the next token from `logits` (n_vocab floats, modified in place as
 * described above). `allowed` may be NULL. Does not record the token: call
 * sampler_accept() for the token the sequence keeps. Fails with
 * ERR_UNPROCESSABLE when no token can be chosen (all logits -inf, or nothing
 * allowed), ERR_NOMEM. */
/* Score `token` as what `logits` predict, without choosing: its
 * log-probability under the model's own distribution (no penalties, bias or
 * temperature: a prompt is scored, not sampled) and the params.top_logprobs
 * most likely alternatives, into *out. `logits` is scratch (modified).
 * ERR_INVALID for a token outside the vocabulary. */
bool sampler_score(struct sampler *s, float *logits, int32_t token, struct sampler_result *out,
                   struct err *e);

bool sampler_sample(struct sampler *s, float *logits, sampler_allowed_fn allowed,
                    void *allowed_ctx, struct sampler_result *out, struct err *e);

#endif

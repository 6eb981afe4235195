/*
 * pacer.h — how many tokens one forward pass may carry to keep a latency
 * target.
 *
 * Every sequence that is decoding waits for the whole step: a step's length
 * is every stream's inter-token latency (ITL). On a CPU a step with one
 * token costs about as much as streaming the weights once (the *base* step);
 * beyond a few tokens a step becomes compute-bound and grows with every
 * token it carries, while the throughput it buys stops growing. Batching
 * past that point only makes every stream slower. The pacer therefore
 * learns, from the steps the scheduler runs, how many tokens fit in a step
 * of `factor` times the base step, and the scheduler admits sequences and
 * prompt chunks within that budget: the others wait in the queue (their
 * time to first token grows instead of everyone's ITL).
 *
 * Model of a step's cost, learned online:
 *   - base_ms: a moving average of steps carrying one token;
 *   - the budget: at a step that took t ms for n tokens, t and n near the
 *     target T and the budget, n * T / t tokens would take T (the average
 *     cost per token at the operating point); the budget moves halfway
 *     there each step. Shorter steps that used the whole budget only prove
 *     that more would fit: the budget at most doubles (memory-bound steps
 *     cost about the same whatever n, so n * T / t over-estimates there).
 *     Other steps (light load, one token) do not move the budget.
 * Until a one-token step has been seen nothing is known: no limit. When
 * factor * base_ms is under min_target_ms the pacer does not limit either
 * (a small model's steps are too short for anyone to notice).
 *
 * Contract: plain value type, no allocation, not thread-safe (the scheduler
 * thread owns it). Pure arithmetic: tests feed it synthetic step times.
 */
#ifndef MAASD_PACER_H
#define MAASD_PACER_H

struct pacer {
    int factor;               /* target step = factor * base step; 0 = off */
    double min_target_ms;     /* targets below this do not limit */
    double base_ms;           /* one-token step, moving average; 0 = unknown */
    double budget;            /* tokens per step; 0 = unknown */
};

void pacer_init(struct pacer *p, int factor, double min_target_ms);
/* A forward pass of n_tokens tokens took ms milliseconds. */
void pacer_observe(struct pacer *p, int n_tokens, double ms);
/* The step target in ms, 0 when the pacer does not limit. */
double pacer_target_ms(const struct pacer *p);
/* Tokens a step may carry: at least 1, at most max; max when not limiting. */
int pacer_step_tokens(const struct pacer *p, int max);

#endif

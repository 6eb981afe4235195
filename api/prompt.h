/*
 * prompt.h — from an OpenAI request to prompt token ids and engine settings.
 *
 * Contract
 *   prompt_build() renders chat messages with the model's chat template (or
 *   takes completion prompts as given: text or token ids), tokenizes them,
 *   checks every id against the vocabulary and each prompt + max_tokens
 *   against the context (a 400 naming both numbers, never a silent
 *   truncation), and fills the scheduler request template in `p`: sampling
 *   parameters (validated, OpenAI field names in `param`), stop sequences,
 *   JSON mode, n, logprobs, and a random seed when the client gave none.
 *   It runs on the loop thread: tokenization is fast (a 10 kB prompt takes
 *   well under a millisecond).
 *
 * Ownership
 *   The prompt_set owns the token arrays that `p->prompts` points at; free
 *   it after the call has been handed to the scheduler (which copies).
 */
#ifndef MAASD_PROMPT_H
#define MAASD_PROMPT_H

#include <stdbool.h>

#include "api/oai_request.h"
#include "engine/err.h"
#include "server/inference.h"

struct served_model;

struct prompt_set {
    int32_t *ids[INFERENCE_MAX_PROMPTS];
    size_t n[INFERENCE_MAX_PROMPTS];
    int count;
};

bool prompt_build(struct served_model *m, const struct oai_request *req, struct prompt_set *ps,
                  struct inference_params *p, struct err *e);
/* The text of prompt i, detokenized (completions `echo`); malloc'ed. When
 * offsets is not NULL, *offsets (malloc'ed, one per prompt token) receives
 * where each token's text starts in it (logprobs' text_offset). */
char *prompt_echo_text(const struct served_model *m, const struct prompt_set *ps, int i,
                       size_t **offsets);
void prompt_set_free(struct prompt_set *ps);

#endif

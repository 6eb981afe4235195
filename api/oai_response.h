/*
 * oai_response.h — OpenAI response objects and Server-Sent-Events chunks.
 *
 * Contract
 *   Builders for chat.completion / text_completion objects (cJSON, consumed
 *   by api_respond_json), their streamed chunks (written straight to the
 *   request's stream as `data: {...}\n\n`), usage, finish reasons and
 *   logprobs in both of OpenAI's formats (chat: logprobs.content[], legacy
 *   completions: tokens/token_logprobs/top_logprobs/text_offset).
 *   Token texts that are not valid UTF-8 on their own (a byte-fallback token
 *   in the middle of a character) are rendered with U+FFFD in "token"; the
 *   exact bytes are in "bytes" (chat format).
 *
 * Ownership
 *   oai_buf and oai_logprobs own their memory (free with *_free). The meta
 *   borrows the tokenizer (to name top-logprob alternatives).
 */
#ifndef MAASD_OAI_RESPONSE_H
#define MAASD_OAI_RESPONSE_H

#include <cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/scheduler.h"
#include "server/http.h"
#include "server/inference.h"

struct tokenizer;

struct oai_buf {
    char *data;
    size_t len, cap;
};
void oai_buf_append(struct oai_buf *b, const char *s, size_t n);
void oai_buf_free(struct oai_buf *b);

struct oai_logprob_entry {
    int32_t token;
    char *text;                   /* the token's bytes */
    size_t text_len;
    size_t text_offset;           /* in the choice's text (completions format) */
    bool scored;                  /* false: a prompt's first token (logprob null) */
    float logprob;
    int n_top;
    struct sampler_token_logprob top[SAMPLER_MAX_TOP_LOGPROBS];
};

struct oai_logprobs {
    struct oai_logprob_entry *items;
    size_t n, cap;
};
/* Scored when t->has_logprobs. */
void oai_logprobs_add(struct oai_logprobs *lp, const struct inference_token *t, size_t text_offset);
/* Copies of src's entries at the end of dst, their text offsets moved by shift. */
void oai_logprobs_append(struct oai_logprobs *dst, const struct oai_logprobs *src, size_t shift);
void oai_logprobs_free(struct oai_logprobs *lp);

struct oai_response_meta {
    char id[64];                  /* chatcmpl-… / cmpl-… */
    int64_t created;              /* unix seconds */
    char model[64];
    const struct tokenizer *tok;
    bool include_usage;           /* streamed with stream_options.include_usage */
};
/* prefix + 24 random hex digits. */
void oai_new_id(const char *prefix, char *out, size_t size);
void oai_response_meta_init(struct oai_response_meta *m, bool chat, const char *model,
                            const struct tokenizer *tok);

/* "stop" / "length"; NULL while running or when cancelled. */
const char *oai_finish_reason(enum sched_finish f);
/* "fp_maasd_" and the build's commit. */
void oai_system_fingerprint(char *out, size_t size);

cJSON *oai_chat_choice(int index, const char *text, size_t len, const struct oai_logprobs *lp,
                       enum sched_finish finish, const struct tokenizer *tok);
cJSON *oai_text_choice(int index, const char *text, size_t len, const struct oai_logprobs *lp,
                       enum sched_finish finish, const struct tokenizer *tok);
cJSON *oai_chat_logprobs(const struct oai_logprobs *lp, const struct tokenizer *tok);
cJSON *oai_usage(const struct inference_usage *u);
cJSON *oai_completion_object(const struct oai_response_meta *m, bool chat, cJSON *choices,
                             const struct inference_usage *u);

/* Stream chunks. */
void oai_sse_chat_role(struct http_request *r, const struct oai_response_meta *m, int index);
void oai_sse_text(struct http_request *r, const struct oai_response_meta *m, bool chat, int index,
                  const char *text, size_t len, const struct oai_logprobs *lp,
                  const char *finish_reason);
void oai_sse_usage(struct http_request *r, const struct oai_response_meta *m, bool chat,
                   const struct inference_usage *u);
void oai_sse_error(struct http_request *r, const struct err *e);
/* Write one `data: <json>\n\n` event (consumes json). */
void oai_sse_json(struct http_request *r, cJSON *json);

/* A copy of s with invalid UTF-8 replaced by U+FFFD (malloc'ed, NUL-ended). */
char *oai_utf8_sanitize(const char *s, size_t len);

#endif

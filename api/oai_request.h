/*
 * oai_request.h — OpenAI-compatible request bodies, parsed and validated.
 *
 * Contract
 *   oai_request_parse() turns the JSON body of POST /v1/chat/completions,
 *   /v1/completions or /v1/embeddings into a struct oai_request, checking
 *   everything that can be checked without the model: JSON syntax, that the
 *   body is an object, each known field's type and range, UTF-8 validity of
 *   every string, and OpenAI's cross-field rules (stream_options only with
 *   stream, top_logprobs only with logprobs, at most 4 stop sequences…).
 *   Unknown fields are ignored, as OpenAI's SDKs expect. A failure is
 *   ERR_INVALID with `param` naming the field ("messages[2].content") and a
 *   message in OpenAI's style. What needs the model (token ids within the
 *   vocabulary, context length, the chat template) is checked by the handler.
 *
 * Ownership
 *   The request owns every string and array it points to; free it with
 *   oai_request_free(). It does not point into the body.
 */
#ifndef MAASD_OAI_REQUEST_H
#define MAASD_OAI_REQUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/err.h"
#include "engine/sampler.h"

enum oai_endpoint {
    OAI_CHAT_COMPLETIONS,
    OAI_COMPLETIONS,
    OAI_EMBEDDINGS,
};

#define OAI_MAX_STOP 4
#define OAI_MAX_N 16
#define OAI_MAX_LOGPROBS_COMPLETIONS 5
#define OAI_MAX_TOP_LOGPROBS 20

enum oai_role { OAI_ROLE_SYSTEM, OAI_ROLE_USER, OAI_ROLE_ASSISTANT };

struct oai_message {
    enum oai_role role;
    char *content;          /* text parts joined; never NULL */
};

/* One prompt (completions) or input (embeddings): text, or token ids. */
struct oai_input {
    char *text;             /* NULL when given as token ids */
    int32_t *ids;
    size_t n_ids;
};

struct oai_request {
    enum oai_endpoint endpoint;
    char model[256];

    /* chat */
    struct oai_message *messages;
    size_t n_messages;
    bool json_mode;                 /* response_format {"type":"json_object"} */

    /* completions (prompts) and embeddings (inputs) */
    struct oai_input *inputs;
    size_t n_inputs;
    bool echo;

    /* generation */
    int64_t max_tokens;             /* -1: not given (the rest of the context) */
    int n;
    char *stop[OAI_MAX_STOP];
    int n_stop;
    bool stream;
    bool include_usage;             /* stream_options.include_usage */
    int logprobs;                   /* -1 off; completions 0..5; chat: top_logprobs (0..20) */
    char user[256];

    /* sampling; defaults are OpenAI's */
    float temperature;              /* 1.0 */
    float top_p;                    /* 1.0 */
    int top_k;                      /* 0 = off (extension) */
    float min_p;                    /* 0 = off (extension) */
    float presence_penalty;         /* 0 */
    float frequency_penalty;        /* 0 */
    float repetition_penalty;       /* 1.0 = off (extension) */
    bool has_seed;
    uint64_t seed;
    struct sampler_bias *logit_bias;
    size_t n_logit_bias;

    /* embeddings */
    bool base64;                    /* encoding_format "base64" */
    int dimensions;                 /* 0 = the model's */
};

bool oai_request_parse(enum oai_endpoint ep, const char *body, size_t len,
                       struct oai_request *out, struct err *e);
void oai_request_free(struct oai_request *r);

/* True when s[0..len) is valid UTF-8 (no overlongs, no surrogates). */
bool oai_utf8_valid(const char *s, size_t len);

#endif

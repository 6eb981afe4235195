/* oai_response.c — see oai_response.h. */
#include "api/oai_response.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "api/api.h"
#include "api/oai_request.h"
#include "engine/gguf.h"
#include "engine/tokenizer.h"
#include "server/version.h"

void oai_buf_append(struct oai_buf *b, const char *s, size_t n)
{
    if (n == 0)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *d = realloc(b->data, cap);
        if (!d)
            abort();
        b->data = d;
        b->cap = cap;
    }
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
}

void oai_buf_free(struct oai_buf *b)
{
    free(b->data);
    memset(b, 0, sizeof *b);
}

static struct oai_logprob_entry *logprobs_push(struct oai_logprobs *lp)
{
    if (lp->n == lp->cap) {
        size_t cap = lp->cap ? lp->cap * 2 : 16;
        struct oai_logprob_entry *it = realloc(lp->items, cap * sizeof *it);
        if (!it)
            abort();
        lp->items = it;
        lp->cap = cap;
    }
    struct oai_logprob_entry *en = &lp->items[lp->n++];
    memset(en, 0, sizeof *en);
    return en;
}

void oai_logprobs_add(struct oai_logprobs *lp, const struct inference_token *t, size_t text_offset)
{
    struct oai_logprob_entry *en = logprobs_push(lp);
    en->token = t->token;
    en->text = malloc(t->token_text_len + 1);
    if (!en->text)
        abort();
    memcpy(en->text, t->token_text, t->token_text_len);
    en->text[t->token_text_len] = '\0';
    en->text_len = t->token_text_len;
    en->text_offset = text_offset;
    en->scored = t->has_logprobs;
    if (en->scored) {
        en->logprob = t->sample.logprob;
        en->n_top = t->sample.n_top;
        memcpy(en->top, t->sample.top, sizeof en->top);
    }
}

void oai_logprobs_append(struct oai_logprobs *dst, const struct oai_logprobs *src, size_t shift)
{
    for (size_t i = 0; i < src->n; i++) {
        struct oai_logprob_entry *en = logprobs_push(dst);
        *en = src->items[i];
        en->text_offset += shift;
        en->text = malloc(en->text_len + 1);
        if (!en->text)
            abort();
        memcpy(en->text, src->items[i].text, en->text_len + 1);
    }
}

void oai_logprobs_free(struct oai_logprobs *lp)
{
    for (size_t i = 0; i < lp->n; i++)
        free(lp->items[i].text);
    free(lp->items);
    memset(lp, 0, sizeof *lp);
}

char *oai_utf8_sanitize(const char *s, size_t len)
{
    char *out = malloc(len * 3 + 1);
    if (!out)
        abort();
    size_t o = 0, i = 0;
    while (i < len) {
        size_t n = 1;
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x80)
            n = (c & 0xe0) == 0xc0 ? 2 : (c & 0xf0) == 0xe0 ? 3 : (c & 0xf8) == 0xf0 ? 4 : 0;
        if (n == 1) {
            out[o++] = s[i++];
        } else if (n > 0 && i + n <= len && oai_utf8_valid(s + i, n)) {
            memcpy(out + o, s + i, n);
            o += n;
            i += n;
        } else {
            memcpy(out + o, "\xef\xbf\xbd", 3);
            o += 3;
            i++;
        }
    }
    out[o] = '\0';
    return out;
}

static void add_text(cJSON *o, const char *name, const char *s, size_t len)
{
    char *clean = oai_utf8_sanitize(s, len);
    cJSON_AddStringToObject(o, name, clean);
    free(clean);
}

static cJSON *bytes_array(const char *s, size_t len)
{
    cJSON *a = cJSON_CreateArray();
    for (size_t i = 0; i < len; i++)
        cJSON_AddItemToArray(a, cJSON_CreateNumber((unsigned char)s[i]));
    return a;
}

void oai_new_id(const char *prefix, char *out, size_t size)
{
    /* 96 random bits: unique across restarts, so the id can be the ledger's
     * primary key (a client-chosen X-Request-Id could repeat). */
    unsigned char rnd[12] = {0};
    if (getrandom(rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd)
        abort();
    int n = snprintf(out, size, "%s", prefix);
    for (size_t i = 0; i < sizeof rnd && (size_t)n + 2 < size; i++)
        n += snprintf(out + n, size - (size_t)n, "%02x", rnd[i]);
}

void oai_response_meta_init(struct oai_response_meta *m, bool chat, const char *model,
                            const struct tokenizer *tok)
{
    oai_new_id(chat ? "chatcmpl-" : "cmpl-", m->id, sizeof m->id);
    m->created = (int64_t)time(NULL);
    snprintf(m->model, sizeof m->model, "%s", model);
    m->tok = tok;
}

const char *oai_finish_reason(enum sched_finish f)
{
    switch (f) {
    case SCHED_FINISH_STOP: return "stop";
    case SCHED_FINISH_LENGTH: return "length";
    default: return NULL;
    }
}

void oai_system_fingerprint(char *out, size_t size)
{
    snprintf(out, size, "fp_maasd_%.12s", maasd_git_commit);
}

static void add_finish(cJSON *o, enum sched_finish finish)
{
    const char *r = oai_finish_reason(finish);
    if (r)
        cJSON_AddStringToObject(o, "finish_reason", r);
    else
        cJSON_AddNullToObject(o, "finish_reason");
}

static cJSON *top_entry(const struct tokenizer *tok, int32_t id, float logprob)
{
    cJSON *o = cJSON_CreateObject();
    struct gguf_str piece = tokenizer_token_piece(tok, id, 0);
    add_text(o, "token", piece.ptr, piece.len);
    cJSON_AddNumberToObject(o, "logprob", logprob);
    cJSON_AddItemToObject(o, "bytes", bytes_array(piece.ptr, piece.len));
    return o;
}

cJSON *oai_chat_logprobs(const struct oai_logprobs *lp, const struct tokenizer *tok)
{
    cJSON *o = cJSON_CreateObject();
    cJSON *content = cJSON_AddArrayToObject(o, "content");
    for (size_t i = 0; i < lp->n; i++) {
        const struct oai_logprob_entry *en = &lp->items[i];
        cJSON *item = cJSON_CreateObject();
        add_text(item, "token", en->text, en->text_len);
        cJSON_AddNumberToObject(item, "logprob", en->logprob);
        cJSON_AddItemToObject(item, "bytes", bytes_array(en->text, en->text_len));
        cJSON *top = cJSON_AddArrayToObject(item, "top_logprobs");
        for (int k = 0; k < en->n_top; k++)
            cJSON_AddItemToArray(top, top_entry(tok, en->top[k].token, en->top[k].logprob));
        cJSON_AddItemToArray(content, item);
    }
    cJSON_AddNullToObject(o, "refusal");
    return o;
}

static cJSON *text_logprobs(const struct oai_logprobs *lp, const struct tokenizer *tok)
{
    cJSON *o = cJSON_CreateObject();
    cJSON *tokens = cJSON_AddArrayToObject(o, "tokens");
    cJSON *lps = cJSON_AddArrayToObject(o, "token_logprobs");
    cJSON *tops = cJSON_AddArrayToObject(o, "top_logprobs");
    cJSON *offs = cJSON_AddArrayToObject(o, "text_offset");
    for (size_t i = 0; i < lp->n; i++) {
        const struct oai_logprob_entry *en = &lp->items[i];
        char *clean = oai_utf8_sanitize(en->text, en->text_len);
        cJSON_AddItemToArray(tokens, cJSON_CreateString(clean));
        free(clean);
        if (!en->scored) {
            /* OpenAI's shape for a prompt's first token: nothing before it. */
            cJSON_AddItemToArray(lps, cJSON_CreateNull());
            cJSON_AddItemToArray(tops, cJSON_CreateNull());
            cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)en->text_offset));
            continue;
        }
        cJSON_AddItemToArray(lps, cJSON_CreateNumber(en->logprob));
        cJSON *top = cJSON_CreateObject();
        for (int k = 0; k < en->n_top; k++) {
            struct gguf_str piece = tokenizer_token_piece(tok, en->top[k].token, 0);
            char *c = oai_utf8_sanitize(piece.ptr, piece.len);
            if (!cJSON_GetObjectItemCaseSensitive(top, c))
                cJSON_AddNumberToObject(top, c, en->top[k].logprob);
            free(c);
        }
        cJSON_AddItemToArray(tops, top);
        cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)en->text_offset));
    }
    return o;
}

cJSON *oai_chat_choice(int index, const char *text, size_t len, const struct oai_logprobs *lp,
                       enum sched_finish finish, const struct tokenizer *tok)
{
    cJSON *c = cJSON_CreateObject();
    cJSON_AddNumberToObject(c, "index", index);
    cJSON *msg = cJSON_AddObjectToObject(c, "message");
    cJSON_AddStringToObject(msg, "role", "assistant");
    add_text(msg, "content", text ? text : "", len);
    cJSON_AddNullToObject(msg, "refusal");
    if (lp)
        cJSON_AddItemToObject(c, "logprobs", oai_chat_logprobs(lp, tok));
    else
        cJSON_AddNullToObject(c, "logprobs");
    add_finish(c, finish);
    return c;
}

cJSON *oai_text_choice(int index, const char *text, size_t len, const struct oai_logprobs *lp,
                       enum sched_finish finish, const struct tokenizer *tok)
{
    cJSON *c = cJSON_CreateObject();
    add_text(c, "text", text ? text : "", len);
    cJSON_AddNumberToObject(c, "index", index);
    if (lp)
        cJSON_AddItemToObject(c, "logprobs", text_logprobs(lp, tok));
    else
        cJSON_AddNullToObject(c, "logprobs");
    add_finish(c, finish);
    return c;
}

cJSON *oai_usage(const struct inference_usage *u)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "prompt_tokens", (double)u->prompt_tokens);
    cJSON_AddNumberToObject(o, "completion_tokens", (double)u->completion_tokens);
    cJSON_AddNumberToObject(o, "total_tokens", (double)(u->prompt_tokens + u->completion_tokens));
    return o;
}

static cJSON *envelope(const struct oai_response_meta *m, const char *object)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", m->id);
    cJSON_AddStringToObject(o, "object", object);
    cJSON_AddNumberToObject(o, "created", (double)m->created);
    cJSON_AddStringToObject(o, "model", m->model);
    char fp[32];
    oai_system_fingerprint(fp, sizeof fp);
    cJSON_AddStringToObject(o, "system_fingerprint", fp);
    return o;
}

cJSON *oai_completion_object(const struct oai_response_meta *m, bool chat, cJSON *choices,
                             const struct inference_usage *u)
{
    cJSON *o = envelope(m, chat ? "chat.completion" : "text_completion");
    cJSON_AddItemToObject(o, "choices", choices);
    cJSON_AddItemToObject(o, "usage", oai_usage(u));
    return o;
}

void oai_sse_json(struct http_request *r, cJSON *json)
{
    char *text = cJSON_PrintUnformatted(json);
    cJSON_Delete(json);
    if (!text)
        abort();
    size_t n = strlen(text);
    char *ev = malloc(n + 9);
    if (!ev)
        abort();
    memcpy(ev, "data: ", 6);
    memcpy(ev + 6, text, n);
    memcpy(ev + 6 + n, "\n\n", 2);
    http_stream_write(r, ev, n + 8);
    free(ev);
    free(text);
}

static cJSON *chunk(const struct oai_response_meta *m, bool chat)
{
    cJSON *o = envelope(m, chat ? "chat.completion.chunk" : "text_completion");
    /* With stream_options.include_usage every chunk has "usage": null but
     * the last, as OpenAI sends them. */
    if (m->include_usage)
        cJSON_AddNullToObject(o, "usage");
    return o;
}

void oai_sse_chat_role(struct http_request *r, const struct oai_response_meta *m, int index)
{
    cJSON *o = chunk(m, true);
    cJSON *c = cJSON_CreateObject();
    cJSON_AddNumberToObject(c, "index", index);
    cJSON *delta = cJSON_AddObjectToObject(c, "delta");
    cJSON_AddStringToObject(delta, "role", "assistant");
    cJSON_AddStringToObject(delta, "content", "");
    cJSON_AddNullToObject(c, "logprobs");
    cJSON_AddNullToObject(c, "finish_reason");
    cJSON_AddItemToArray(cJSON_AddArrayToObject(o, "choices"), c);
    oai_sse_json(r, o);
}

void oai_sse_text(struct http_request *r, const struct oai_response_meta *m, bool chat, int index,
                  const char *text, size_t len, const struct oai_logprobs *lp,
                  const char *finish_reason)
{
    cJSON *o = chunk(m, chat);
    cJSON *c = cJSON_CreateObject();
    cJSON_AddNumberToObject(c, "index", index);
    if (chat) {
        cJSON *delta = cJSON_AddObjectToObject(c, "delta");
        if (len > 0 || !finish_reason)
            add_text(delta, "content", text ? text : "", len);
        if (lp)
            cJSON_AddItemToObject(c, "logprobs", oai_chat_logprobs(lp, m->tok));
        else
            cJSON_AddNullToObject(c, "logprobs");
    } else {
        add_text(c, "text", text ? text : "", len);
        if (lp)
            cJSON_AddItemToObject(c, "logprobs", text_logprobs(lp, m->tok));
        else
            cJSON_AddNullToObject(c, "logprobs");
    }
    if (finish_reason)
        cJSON_AddStringToObject(c, "finish_reason", finish_reason);
    else
        cJSON_AddNullToObject(c, "finish_reason");
    cJSON_AddItemToArray(cJSON_AddArrayToObject(o, "choices"), c);
    oai_sse_json(r, o);
}

void oai_sse_usage(struct http_request *r, const struct oai_response_meta *m, bool chat,
                   const struct inference_usage *u)
{
    cJSON *o = envelope(m, chat ? "chat.completion.chunk" : "text_completion");
    cJSON_AddArrayToObject(o, "choices");
    cJSON_AddItemToObject(o, "usage", oai_usage(u));
    oai_sse_json(r, o);
}

void oai_sse_error(struct http_request *r, const struct err *e)
{
    /* The same object, type and code a non-streamed answer would carry. */
    oai_sse_json(r, api_error_object(e));
}

/*
 * embeddings.c — POST /v1/embeddings.
 *
 * Each input is evaluated by the model without generating (a prefill-only
 * scheduler request); the final normalised hidden states are mean-pooled
 * and L2-normalised. `dimensions` truncates the vector and re-normalises it
 * (the Matryoshka convention OpenAI uses); base64 is the little-endian
 * float32 array, as the OpenAI SDKs expect.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "api/oai_request.h"
#include "api/oai_response.h"
#include "engine/tokenizer.h"
#include "server/daemon.h"
#include "server/inference.h"
#include "server/models.h"

struct embed_job {
    char id[64];
    char model[64];
    bool base64;
    int dimensions;
    int n_inputs;
    float *vectors[INFERENCE_MAX_PROMPTS];
    int dim;
    int32_t *ids[INFERENCE_MAX_PROMPTS];
};

static void job_free(void *ctx)
{
    struct embed_job *j = ctx;
    for (int i = 0; i < INFERENCE_MAX_PROMPTS; i++) {
        free(j->vectors[i]);
        free(j->ids[i]);
    }
    free(j);
}

static void on_embedding(void *ctx, struct http_request *r, int prompt, const float *v, int dim)
{
    (void)r;
    struct embed_job *j = ctx;
    int keep = j->dimensions > 0 && j->dimensions < dim ? j->dimensions : dim;
    j->vectors[prompt] = malloc((size_t)keep * sizeof(float));
    if (!j->vectors[prompt])
        abort();
    double norm = 0;
    for (int i = 0; i < keep; i++)
        norm += (double)v[i] * v[i];
    float inv = keep < dim && norm > 0 ? (float)(1.0 / sqrt(norm)) : 1.0f;
    for (int i = 0; i < keep; i++)
        j->vectors[prompt][i] = v[i] * inv;
    j->dim = keep;
}

static char *base64(const unsigned char *p, size_t n)
{
    static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char *out = malloc((n + 2) / 3 * 4 + 1), *o = out;
    if (!out)
        abort();
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (i + 1 < n ? (uint32_t)p[i + 1] << 8 : 0) |
                     (i + 2 < n ? p[i + 2] : 0);
        *o++ = tbl[v >> 18 & 63];
        *o++ = tbl[v >> 12 & 63];
        *o++ = i + 1 < n ? tbl[v >> 6 & 63] : '=';
        *o++ = i + 2 < n ? tbl[v & 63] : '=';
    }
    *o = '\0';
    return out;
}

static void on_finish(void *ctx, struct http_request *r, const struct inference_usage *u,
                      const struct err *e, struct inference_response *out)
{
    (void)r;
    struct embed_job *j = ctx;
    if (e) {
        out->body = api_error_text(e, &out->status, &out->len);
        return;
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "object", "list");
    cJSON *data = cJSON_AddArrayToObject(o, "data");
    for (int i = 0; i < j->n_inputs; i++) {
        cJSON *item = cJSON_CreateObject();
        cJSON_AddStringToObject(item, "object", "embedding");
        cJSON_AddNumberToObject(item, "index", i);
        if (j->base64) {
            char *b = base64((const unsigned char *)j->vectors[i], (size_t)j->dim * sizeof(float));
            cJSON_AddStringToObject(item, "embedding", b);
            free(b);
        } else {
            cJSON *arr = cJSON_AddArrayToObject(item, "embedding");
            for (int k = 0; k < j->dim; k++)
                cJSON_AddItemToArray(arr, cJSON_CreateNumber(j->vectors[i][k]));
        }
        cJSON_AddItemToArray(data, item);
    }
    cJSON_AddStringToObject(o, "model", j->model);
    cJSON *usage = cJSON_AddObjectToObject(o, "usage");
    cJSON_AddNumberToObject(usage, "prompt_tokens", (double)u->prompt_tokens);
    cJSON_AddNumberToObject(usage, "total_tokens", (double)u->prompt_tokens);
    out->status = 200;
    out->body = api_json_text(o, &out->len);
}

void api_embeddings(struct api_call *c)
{
    struct daemon_ctx *d = c->d;
    struct err e = {0};
    struct oai_request req;
    size_t len;
    const char *body = http_request_body(c->req, &len);
    if (!oai_request_parse(OAI_EMBEDDINGS, body, len, &req, &e)) {
        api_respond_error(c->req, &e);
        return;
    }
    struct served_model *m = models_find(&d->models, req.model);
    if (!m) {
        err_set_param(&e, ERR_NOT_FOUND, "model", "The model '%s' does not exist.", req.model);
        goto fail;
    }
    if (req.n_inputs > INFERENCE_MAX_PROMPTS) {
        err_set_param(&e, ERR_INVALID, "input", "at most %d inputs per request",
                      INFERENCE_MAX_PROMPTS);
        goto fail;
    }
    struct embed_job *j = calloc(1, sizeof *j);
    if (!j)
        abort();
    snprintf(j->model, sizeof j->model, "%s", m->name);
    j->base64 = req.base64;
    j->dimensions = req.dimensions;
    j->n_inputs = (int)req.n_inputs;

    struct inference_params p = {.model = m, .n_prompts = j->n_inputs};
    p.req.embedding = true;
    p.req.pooling = SCHED_POOL_MEAN;
    p.req.n_choices = 1;
    p.req.weight = 1;
    for (int i = 0; i < j->n_inputs; i++) {
        const struct oai_input *in = &req.inputs[i];
        char param[32];
        snprintf(param, sizeof param, j->n_inputs > 1 ? "input[%d]" : "input", i);
        size_t n = 0;
        if (in->text) {
            if (!tokenizer_encode(m->tok, in->text, strlen(in->text), TOKENIZER_ADD_SPECIAL,
                                  &j->ids[i], &n, &e))
                goto fail_job;
        } else {
            j->ids[i] = malloc(in->n_ids * sizeof(int32_t));
            if (!j->ids[i])
                abort();
            memcpy(j->ids[i], in->ids, in->n_ids * sizeof(int32_t));
            n = in->n_ids;
        }
        for (size_t k = 0; k < n; k++)
            if (j->ids[i][k] < 0 || j->ids[i][k] >= m->n_vocab) {
                err_set_param(&e, ERR_INVALID, param, "Invalid '%s': token id %d is outside the vocabulary.",
                              param, j->ids[i][k]);
                goto fail_job;
            }
        if (n == 0 || n > (size_t)m->n_ctx) {
            err_set_param(&e, ERR_INVALID, param,
                          "Invalid '%s': %zu tokens; this model takes 1 to %d tokens per input.",
                          param, n, m->n_ctx);
            goto fail_job;
        }
        p.prompts[i] = j->ids[i];
        p.n_prompt_tokens[i] = n;
    }
    oai_new_id("emb-", j->id, sizeof j->id);
    if (!api_inference_admit(c, m, req.model, true, j->id, &p)) {
        job_free(j);
        oai_request_free(&req);
        return;
    }
    oai_request_free(&req);
    static const struct inference_callbacks cb = {
        .on_embedding = on_embedding,
        .on_finish = on_finish,
        .ctx_free = job_free,
    };
    if (!inference_start(d, c->req, &p, &cb, j, &e)) {
        api_respond_error(c->req, &e);
        job_free(j);
    }
    return;
fail_job:
    job_free(j);
fail:
    oai_request_free(&req);
    api_respond_error(c->req, &e);
}

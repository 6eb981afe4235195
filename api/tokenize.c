/*
 * tokenize.c — POST /v1/tokenize and POST /v1/detokenize (maasd
 * extensions, also offered by llama.cpp and vLLM): what the model's
 * tokenizer makes of a text, and back. Billing-free and cheap: they run on
 * the loop thread and never reach the scheduler.
 *
 *   {"model": "...", "prompt": "text", "add_special": true,
 *    "parse_special": false}                                 -> {"tokens": [...], "count": n}
 *   (add_special: BOS/EOS as the model's metadata says; parse_special:
 *   control-token texts such as <|im_end|> become their ids)
 *   {"model": "...", "tokens": [1, 2, 3]}                     -> {"text": "..."}
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "api/oai_request.h"
#include "engine/tokenizer.h"
#include "server/daemon.h"
#include "server/models.h"

static struct served_model *parse_model(struct api_call *c, cJSON **root, struct err *e)
{
    size_t len;
    const char *body = http_request_body(c->req, &len);
    *root = cJSON_ParseWithLength(body, len);
    if (!*root || !cJSON_IsObject(*root)) {
        err_set(e, ERR_INVALID, "The request body must be a JSON object.");
        return NULL;
    }
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(*root, "model");
    if (!cJSON_IsString(model)) {
        err_set_param(e, ERR_INVALID, "model", "you must provide a model parameter");
        return NULL;
    }
    struct served_model *m = models_find(&c->d->models, model->valuestring);
    if (!m)
        err_set_param(e, ERR_NOT_FOUND, "model", "The model '%s' does not exist.",
                      model->valuestring);
    return m;
}

void api_tokenize(struct api_call *c)
{
    struct err e = {0};
    cJSON *root = NULL;
    struct served_model *m = parse_model(c, &root, &e);
    const cJSON *prompt = m ? cJSON_GetObjectItemCaseSensitive(root, "prompt") : NULL;
    if (m && !cJSON_IsString(prompt))
        err_set_param(&e, ERR_INVALID, "prompt", "Invalid 'prompt': expected a string.");
    else if (m && !oai_utf8_valid(prompt->valuestring, strlen(prompt->valuestring)))
        err_set_param(&e, ERR_INVALID, "prompt", "Invalid 'prompt': the string is not valid UTF-8.");
    if (e.code != ERR_OK) {
        cJSON_Delete(root);
        api_respond_error(c->req, &e);
        return;
    }
    const cJSON *add = cJSON_GetObjectItemCaseSensitive(root, "add_special");
    const cJSON *parse = cJSON_GetObjectItemCaseSensitive(root, "parse_special");
    unsigned flags = (cJSON_IsFalse(add) ? 0 : TOKENIZER_ADD_SPECIAL) |
                     (cJSON_IsTrue(parse) ? TOKENIZER_PARSE_SPECIAL : 0);
    int32_t *ids = NULL;
    size_t n = 0;
    if (!tokenizer_encode(m->tok, prompt->valuestring, strlen(prompt->valuestring), flags, &ids, &n, &e)) {
        cJSON_Delete(root);
        api_respond_error(c->req, &e);
        return;
    }
    cJSON *o = cJSON_CreateObject();
    cJSON *arr = cJSON_AddArrayToObject(o, "tokens");
    for (size_t i = 0; i < n; i++)
        cJSON_AddItemToArray(arr, cJSON_CreateNumber(ids[i]));
    cJSON_AddNumberToObject(o, "count", (double)n);
    cJSON_AddNumberToObject(o, "max_model_len", m->n_ctx);
    free(ids);
    cJSON_Delete(root);
    api_respond_json(c->req, 200, o);
}

void api_detokenize(struct api_call *c)
{
    struct err e = {0};
    cJSON *root = NULL;
    struct served_model *m = parse_model(c, &root, &e);
    const cJSON *tokens = m ? cJSON_GetObjectItemCaseSensitive(root, "tokens") : NULL;
    int n = cJSON_IsArray(tokens) ? cJSON_GetArraySize(tokens) : 0;
    int32_t *ids = calloc((size_t)(n ? n : 1), sizeof *ids);
    if (!ids)
        abort();
    if (m && !cJSON_IsArray(tokens))
        err_set_param(&e, ERR_INVALID, "tokens", "Invalid 'tokens': expected an array of token ids.");
    for (int i = 0; m && e.code == ERR_OK && i < n; i++) {
        const cJSON *t = cJSON_GetArrayItem(tokens, i);
        if (!cJSON_IsNumber(t) || t->valuedouble != floor(t->valuedouble) || t->valuedouble < 0 ||
            t->valuedouble >= m->n_vocab)
            err_set_param(&e, ERR_INVALID, "tokens", "Invalid 'tokens[%d]': not a token id of this model.", i);
        else
            ids[i] = (int32_t)t->valuedouble;
    }
    char *text = NULL;
    size_t len = 0;
    if (e.code == ERR_OK)
        tokenizer_decode(m->tok, ids, (size_t)n, 0, &text, &len, &e);
    free(ids);
    cJSON_Delete(root);
    if (e.code != ERR_OK) {
        api_respond_error(c->req, &e);
        return;
    }
    cJSON *o = cJSON_CreateObject();
    /* Detokenized text is valid UTF-8 by construction (stream decoder). */
    cJSON_AddStringToObject(o, "text", text);
    free(text);
    api_respond_json(c->req, 200, o);
}

/* oai_request.c — see oai_request.h. Messages follow OpenAI's wording so
 * that users recognise them. */
#include "api/oai_request.h"

#include <cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool oai_utf8_valid(const char *str, size_t len)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;
    while (i < len) {
        unsigned char c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t n;
        uint32_t cp;
        if ((c & 0xe0) == 0xc0) {
            n = 2;
            cp = c & 0x1f;
        } else if ((c & 0xf0) == 0xe0) {
            n = 3;
            cp = c & 0x0f;
        } else if ((c & 0xf8) == 0xf0) {
            n = 4;
            cp = c & 0x07;
        } else {
            return false;
        }
        if (i + n > len)
            return false;
        for (size_t k = 1; k < n; k++) {
            if ((s[i + k] & 0xc0) != 0x80)
                return false;
            cp = (cp << 6) | (s[i + k] & 0x3f);
        }
        if ((n == 2 && cp < 0x80) || (n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) ||
            cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        i += n;
    }
    return true;
}

static const char *json_type_name(const cJSON *v)
{
    if (cJSON_IsString(v)) return "a string";
    if (cJSON_IsNumber(v)) return "a number";
    if (cJSON_IsBool(v)) return "a boolean";
    if (cJSON_IsArray(v)) return "an array";
    if (cJSON_IsObject(v)) return "an object";
    if (cJSON_IsNull(v)) return "null";
    return "an unknown type";
}

static bool bad_type(struct err *e, const char *param, const char *expected, const cJSON *v)
{
    return err_set_param(e, ERR_INVALID, param,
                         "Invalid type for '%s': expected %s, but got %s instead.", param,
                         expected, json_type_name(v));
}

/* Present and not null? (OpenAI treats null as "not given".) */
static const cJSON *field(const cJSON *obj, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);
    return v && !cJSON_IsNull(v) ? v : NULL;
}

static bool get_number(const cJSON *obj, const char *name, double min, double max, double *out,
                       struct err *e)
{
    const cJSON *v = field(obj, name);
    if (!v)
        return true;
    if (!cJSON_IsNumber(v))
        return bad_type(e, name, "a number", v);
    double x = v->valuedouble;
    if (!isfinite(x) || x < min || x > max)
        return err_set_param(e, ERR_INVALID, name,
                             "Invalid '%s': expected a value between %g and %g, but got %g instead.",
                             name, min, max, x);
    *out = x;
    return true;
}

static bool get_float(const cJSON *obj, const char *name, double min, double max, float *out,
                      struct err *e)
{
    double x = *out;
    if (!get_number(obj, name, min, max, &x, e))
        return false;
    *out = (float)x;
    return true;
}

static bool get_int(const cJSON *obj, const char *name, int64_t min, int64_t max, int64_t *out,
                    struct err *e)
{
    const cJSON *v = field(obj, name);
    if (!v)
        return true;
    if (!cJSON_IsNumber(v))
        return bad_type(e, name, "an integer", v);
    double x = v->valuedouble;
    if (!isfinite(x) || x != floor(x))
        return bad_type(e, name, "an integer", v);
    if (x < (double)min || x > (double)max)
        return err_set_param(e, ERR_INVALID, name,
                             "Invalid '%s': expected an integer between %lld and %lld, but got "
                             "%.0f instead.",
                             name, (long long)min, (long long)max, x);
    *out = (int64_t)x;
    return true;
}

static bool get_bool(const cJSON *obj, const char *name, bool *out, struct err *e)
{
    const cJSON *v = field(obj, name);
    if (!v)
        return true;
    if (!cJSON_IsBool(v))
        return bad_type(e, name, "a boolean", v);
    *out = cJSON_IsTrue(v);
    return true;
}

static bool check_utf8(const char *s, const char *param, struct err *e)
{
    if (!oai_utf8_valid(s, strlen(s)))
        return err_set_param(e, ERR_INVALID, param, "Invalid '%s': the string is not valid UTF-8.",
                             param);
    return true;
}

static char *dup_or_die(const char *s)
{
    char *d = strdup(s);
    if (!d)
        abort();
    return d;
}

/* A message's content: a string, or an array of {"type":"text","text":…}
 * parts (joined), or null for an assistant turn. */
static bool parse_content(const cJSON *content, const char *param, char **out, struct err *e)
{
    if (!content || cJSON_IsNull(content)) {
        *out = dup_or_die("");
        return true;
    }
    if (cJSON_IsString(content)) {
        if (!check_utf8(content->valuestring, param, e))
            return false;
        *out = dup_or_die(content->valuestring);
        return true;
    }
    if (!cJSON_IsArray(content))
        return bad_type(e, param, "a string or an array of content parts", content);
    size_t total = 0;
    const cJSON *part;
    int i = 0;
    cJSON_ArrayForEach(part, content) {
        char p[96];
        snprintf(p, sizeof p, "%s[%d]", param, i++);
        const cJSON *type = cJSON_GetObjectItemCaseSensitive(part, "type");
        const cJSON *text = cJSON_GetObjectItemCaseSensitive(part, "text");
        if (!cJSON_IsObject(part) || !cJSON_IsString(type))
            return err_set_param(e, ERR_INVALID, p, "Invalid '%s': expected a content part object with a 'type'.", p);
        if (strcmp(type->valuestring, "text") != 0)
            return err_set_param(e, ERR_INVALID, p,
                                 "Invalid '%s': content part type '%s' is not supported; only "
                                 "'text' is.", p, type->valuestring);
        if (!cJSON_IsString(text))
            return bad_type(e, p, "a text part with a string 'text'", text ? text : part);
        if (!check_utf8(text->valuestring, p, e))
            return false;
        total += strlen(text->valuestring);
    }
    char *buf = malloc(total + 1);
    if (!buf)
        abort();
    size_t off = 0;
    cJSON_ArrayForEach(part, content) {
        const char *t = cJSON_GetObjectItemCaseSensitive(part, "text")->valuestring;
        size_t n = strlen(t);
        memcpy(buf + off, t, n);
        off += n;
    }
    buf[off] = '\0';
    *out = buf;
    return true;
}

static bool parse_messages(const cJSON *root, struct oai_request *r, struct err *e)
{
    const cJSON *msgs = field(root, "messages");
    if (!msgs)
        return err_set_param(e, ERR_INVALID, "messages", "Missing required parameter: 'messages'.");
    if (!cJSON_IsArray(msgs))
        return bad_type(e, "messages", "an array", msgs);
    int n = cJSON_GetArraySize(msgs);
    if (n == 0)
        return err_set_param(e, ERR_INVALID, "messages",
                             "Invalid 'messages': empty array. Expected an array with minimum "
                             "length 1, but got an empty array instead.");
    r->messages = calloc((size_t)n, sizeof *r->messages);
    if (!r->messages)
        abort();
    const cJSON *m;
    cJSON_ArrayForEach(m, msgs) {
        size_t i = r->n_messages;
        char p[64];
        snprintf(p, sizeof p, "messages[%zu]", i);
        if (!cJSON_IsObject(m))
            return bad_type(e, p, "an object", m);
        const cJSON *role = cJSON_GetObjectItemCaseSensitive(m, "role");
        char prole[80];
        snprintf(prole, sizeof prole, "%s.role", p);
        if (!role)
            return err_set_param(e, ERR_INVALID, prole, "Missing required parameter: '%s'.", prole);
        if (!cJSON_IsString(role))
            return bad_type(e, prole, "a string", role);
        const char *rs = role->valuestring;
        if (strcmp(rs, "system") == 0 || strcmp(rs, "developer") == 0)
            r->messages[i].role = OAI_ROLE_SYSTEM;
        else if (strcmp(rs, "user") == 0)
            r->messages[i].role = OAI_ROLE_USER;
        else if (strcmp(rs, "assistant") == 0)
            r->messages[i].role = OAI_ROLE_ASSISTANT;
        else
            return err_set_param(e, ERR_INVALID, prole,
                                 "Invalid value for '%s': '%.64s' is not supported; expected "
                                 "'system', 'developer', 'user' or 'assistant'.",
                                 prole, rs);
        char pc[80];
        snprintf(pc, sizeof pc, "%s.content", p);
        const cJSON *content = cJSON_GetObjectItemCaseSensitive(m, "content");
        if (!content && r->messages[i].role != OAI_ROLE_ASSISTANT)
            return err_set_param(e, ERR_INVALID, pc, "Missing required parameter: '%s'.", pc);
        if (!parse_content(content, pc, &r->messages[i].content, e))
            return false;
        r->n_messages++;
    }
    return true;
}

/* One input: a string, or an array of integer token ids. */
static bool parse_one_input(const cJSON *v, const char *param, struct oai_input *in,
                            bool allow_empty, struct err *e)
{
    if (cJSON_IsString(v)) {
        if (!check_utf8(v->valuestring, param, e))
            return false;
        if (!allow_empty && v->valuestring[0] == '\0')
            return err_set_param(e, ERR_INVALID, param, "Invalid '%s': empty string.", param);
        in->text = dup_or_die(v->valuestring);
        return true;
    }
    if (!cJSON_IsArray(v))
        return bad_type(e, param, "a string or an array of token ids", v);
    int n = cJSON_GetArraySize(v);
    if (n == 0)
        return err_set_param(e, ERR_INVALID, param, "Invalid '%s': empty array.", param);
    in->ids = malloc((size_t)n * sizeof *in->ids);
    if (!in->ids)
        abort();
    const cJSON *t;
    cJSON_ArrayForEach(t, v) {
        if (!cJSON_IsNumber(t) || !isfinite(t->valuedouble) || t->valuedouble != floor(t->valuedouble) ||
            t->valuedouble < 0 || t->valuedouble > INT32_MAX)
            return err_set_param(e, ERR_INVALID, param,
                                 "Invalid '%s': token ids must be non-negative integers.", param);
        in->ids[in->n_ids++] = (int32_t)t->valuedouble;
    }
    return true;
}

/* prompt / input: a string, an array of strings, an array of token ids, or
 * an array of arrays of token ids. */
static bool parse_inputs(const cJSON *root, const char *name, bool required, bool allow_empty,
                         struct oai_request *r, struct err *e)
{
    const cJSON *v = field(root, name);
    if (!v) {
        if (required)
            return err_set_param(e, ERR_INVALID, name, "Missing required parameter: '%s'.", name);
        return true;
    }
    bool list_of_inputs = cJSON_IsArray(v) && cJSON_GetArraySize(v) > 0 &&
                          !cJSON_IsNumber(cJSON_GetArrayItem(v, 0));
    if (!list_of_inputs) {
        r->inputs = calloc(1, sizeof *r->inputs);
        if (!r->inputs)
            abort();
        r->n_inputs = 1;
        return parse_one_input(v, name, &r->inputs[0], allow_empty, e);
    }
    int n = cJSON_GetArraySize(v);
    if (n > 2048)
        return err_set_param(e, ERR_INVALID, name, "Invalid '%s': at most 2048 inputs.", name);
    r->inputs = calloc((size_t)n, sizeof *r->inputs);
    if (!r->inputs)
        abort();
    const cJSON *it;
    cJSON_ArrayForEach(it, v) {
        char p[64];
        snprintf(p, sizeof p, "%s[%zu]", name, r->n_inputs);
        if (!cJSON_IsString(it) && !cJSON_IsArray(it))
            return bad_type(e, p, "a string or an array of token ids", it);
        if (!parse_one_input(it, p, &r->inputs[r->n_inputs], allow_empty, e)) {
            r->n_inputs++;
            return false;
        }
        r->n_inputs++;
    }
    return true;
}

static bool parse_stop(const cJSON *root, struct oai_request *r, struct err *e)
{
    const cJSON *v = field(root, "stop");
    if (!v)
        return true;
    if (cJSON_IsString(v)) {
        if (!check_utf8(v->valuestring, "stop", e))
            return false;
        if (v->valuestring[0])
            r->stop[r->n_stop++] = dup_or_die(v->valuestring);
        return true;
    }
    if (!cJSON_IsArray(v))
        return bad_type(e, "stop", "a string or an array of strings", v);
    if (cJSON_GetArraySize(v) > OAI_MAX_STOP)
        return err_set_param(e, ERR_INVALID, "stop",
                             "Invalid 'stop': array too long. Expected an array with maximum "
                             "length %d, but got an array with length %d instead.",
                             OAI_MAX_STOP, cJSON_GetArraySize(v));
    const cJSON *s;
    cJSON_ArrayForEach(s, v) {
        if (!cJSON_IsString(s))
            return bad_type(e, "stop", "an array of strings", v);
        if (!check_utf8(s->valuestring, "stop", e))
            return false;
        if (s->valuestring[0])
            r->stop[r->n_stop++] = dup_or_die(s->valuestring);
    }
    return true;
}

static bool parse_logit_bias(const cJSON *root, struct oai_request *r, struct err *e)
{
    const cJSON *v = field(root, "logit_bias");
    if (!v)
        return true;
    if (!cJSON_IsObject(v))
        return bad_type(e, "logit_bias", "an object", v);
    int n = cJSON_GetArraySize(v);
    if (n > 1024)
        return err_set_param(e, ERR_INVALID, "logit_bias", "Invalid 'logit_bias': at most 1024 entries.");
    r->logit_bias = calloc((size_t)(n ? n : 1), sizeof *r->logit_bias);
    if (!r->logit_bias)
        abort();
    const cJSON *b;
    cJSON_ArrayForEach(b, v) {
        char *end = NULL;
        long tok = strtol(b->string, &end, 10);
        if (!b->string[0] || *end || tok < 0 || tok > INT32_MAX)
            return err_set_param(e, ERR_INVALID, "logit_bias",
                                 "Invalid key in 'logit_bias': '%.32s' is not a token id.", b->string);
        if (!cJSON_IsNumber(b) || !isfinite(b->valuedouble) || b->valuedouble < -100 ||
            b->valuedouble > 100)
            return err_set_param(e, ERR_INVALID, "logit_bias",
                                 "Invalid value in 'logit_bias' for token %ld: expected a number "
                                 "between -100 and 100.", tok);
        r->logit_bias[r->n_logit_bias].token = (int32_t)tok;
        r->logit_bias[r->n_logit_bias].bias = (float)b->valuedouble;
        r->n_logit_bias++;
    }
    return true;
}

static bool parse_generation(const cJSON *root, struct oai_request *r, struct err *e)
{
    /* max_completion_tokens is the newer name; when both are sent both must
     * be valid and the newer one wins. */
    int64_t v = -1;
    if (!get_int(root, "max_tokens", 1, 1 << 30, &v, e) ||
        !get_int(root, "max_completion_tokens", 1, 1 << 30, &v, e))
        return false;
    r->max_tokens = v;
    v = 1;
    if (!get_int(root, "n", 1, OAI_MAX_N, &v, e))
        return false;
    r->n = (int)v;
    if (!parse_stop(root, r, e) || !get_bool(root, "stream", &r->stream, e))
        return false;

    const cJSON *so = field(root, "stream_options");
    if (so) {
        if (!cJSON_IsObject(so))
            return bad_type(e, "stream_options", "an object", so);
        if (!r->stream)
            return err_set_param(e, ERR_INVALID, "stream_options",
                                 "The 'stream_options' parameter is only allowed when 'stream' "
                                 "is enabled.");
        if (!get_bool(so, "include_usage", &r->include_usage, e)) {
            snprintf(e->param, sizeof e->param, "stream_options.include_usage");
            return false;
        }
    }

    if (!get_float(root, "temperature", 0, 2, &r->temperature, e) ||
        !get_float(root, "top_p", 0, 1, &r->top_p, e) ||
        !get_float(root, "min_p", 0, 1, &r->min_p, e) ||
        !get_float(root, "presence_penalty", -2, 2, &r->presence_penalty, e) ||
        !get_float(root, "frequency_penalty", -2, 2, &r->frequency_penalty, e) ||
        !get_float(root, "repetition_penalty", 0.01, 10, &r->repetition_penalty, e))
        return false;
    v = 0;
    if (!get_int(root, "top_k", 0, 1 << 20, &v, e))
        return false;
    r->top_k = (int)v;
    const cJSON *seed = field(root, "seed");
    if (seed) {
        v = 0;
        if (!get_int(root, "seed", INT64_MIN / 2, INT64_MAX / 2, &v, e))
            return false;
        r->has_seed = true;
        r->seed = (uint64_t)v;
    }
    if (!parse_logit_bias(root, r, e))
        return false;

    const cJSON *user = field(root, "user");
    if (user) {
        if (!cJSON_IsString(user))
            return bad_type(e, "user", "a string", user);
        if (!check_utf8(user->valuestring, "user", e))
            return false;
        snprintf(r->user, sizeof r->user, "%s", user->valuestring);
    }
    return true;
}

static bool parse_chat_extras(const cJSON *root, struct oai_request *r, struct err *e)
{
    /* Tool calling is not implemented: refusing beats silently answering
     * in plain text to a client that expects tool calls. Empty lists, as
     * some clients always send, are fine. */
    static const char *const tools[] = {"tools", "functions"};
    for (int i = 0; i < 2; i++) {
        const cJSON *t = field(root, tools[i]);
        if (t && !(cJSON_IsArray(t) && cJSON_GetArraySize(t) == 0))
            return err_set_param(e, ERR_INVALID, tools[i],
                                 "Invalid '%s': tool and function calling are not supported by "
                                 "this server.", tools[i]);
    }
    bool logprobs = false;
    if (!get_bool(root, "logprobs", &logprobs, e))
        return false;
    int64_t top = -1;
    if (!get_int(root, "top_logprobs", 0, OAI_MAX_TOP_LOGPROBS, &top, e))
        return false;
    if (top >= 0 && !logprobs)
        return err_set_param(e, ERR_INVALID, "top_logprobs",
                             "Invalid 'top_logprobs': 'logprobs' must be set to true when "
                             "'top_logprobs' is used.");
    r->logprobs = logprobs ? (int)(top >= 0 ? top : 0) : -1;

    const cJSON *rf = field(root, "response_format");
    if (rf) {
        const cJSON *type = cJSON_GetObjectItemCaseSensitive(rf, "type");
        if (!cJSON_IsObject(rf) || !cJSON_IsString(type))
            return err_set_param(e, ERR_INVALID, "response_format",
                                 "Invalid 'response_format': expected an object with a 'type'.");
        if (strcmp(type->valuestring, "json_object") == 0)
            r->json_mode = true;
        else if (strcmp(type->valuestring, "text") != 0)
            return err_set_param(e, ERR_INVALID, "response_format.type",
                                 "Invalid 'response_format.type': '%.32s' is not supported; "
                                 "expected 'text' or 'json_object'.",
                                 type->valuestring);
    }
    return true;
}

static bool parse_completions_extras(const cJSON *root, struct oai_request *r, struct err *e)
{
    int64_t lp = -1;
    if (!get_int(root, "logprobs", 0, OAI_MAX_LOGPROBS_COMPLETIONS, &lp, e))
        return false;
    r->logprobs = (int)lp;
    if (!get_bool(root, "echo", &r->echo, e))
        return false;
    int64_t best_of = r->n;
    if (!get_int(root, "best_of", 1, OAI_MAX_N, &best_of, e))
        return false;
    if (best_of != r->n)
        return err_set_param(e, ERR_INVALID, "best_of",
                             "Invalid 'best_of': only best_of equal to n is supported.");
    const cJSON *suffix = field(root, "suffix");
    if (suffix && !(cJSON_IsString(suffix) && suffix->valuestring[0] == '\0'))
        return err_set_param(e, ERR_INVALID, "suffix", "Invalid 'suffix': not supported.");
    return true;
}

static bool parse_embeddings(const cJSON *root, struct oai_request *r, struct err *e)
{
    if (!parse_inputs(root, "input", true, false, r, e))
        return false;
    const cJSON *fmt = field(root, "encoding_format");
    if (fmt) {
        if (!cJSON_IsString(fmt))
            return bad_type(e, "encoding_format", "a string", fmt);
        if (strcmp(fmt->valuestring, "base64") == 0)
            r->base64 = true;
        else if (strcmp(fmt->valuestring, "float") != 0)
            return err_set_param(e, ERR_INVALID, "encoding_format",
                                 "Invalid 'encoding_format': expected 'float' or 'base64'.");
    }
    int64_t dims = 0;
    if (!get_int(root, "dimensions", 1, 1 << 20, &dims, e))
        return false;
    r->dimensions = (int)dims;
    const cJSON *user = field(root, "user");
    if (user && !cJSON_IsString(user))
        return bad_type(e, "user", "a string", user);
    return true;
}

bool oai_request_parse(enum oai_endpoint ep, const char *body, size_t len,
                       struct oai_request *r, struct err *e)
{
    memset(r, 0, sizeof *r);
    r->endpoint = ep;
    r->max_tokens = -1;
    r->n = 1;
    r->logprobs = -1;
    r->temperature = 1.0f;
    r->top_p = 1.0f;
    r->repetition_penalty = 1.0f;

    cJSON *root = cJSON_ParseWithLength(body, len);
    if (!root)
        return err_set(e, ERR_INVALID,
                       "We could not parse the JSON body of your request. The API expects a "
                       "JSON payload; what was sent was not valid JSON.");
    bool ok = false;
    if (!cJSON_IsObject(root)) {
        err_set(e, ERR_INVALID, "The request body must be a JSON object.");
        goto out;
    }
    const cJSON *model = field(root, "model");
    if (!model) {
        err_set_param(e, ERR_INVALID, "model", "you must provide a model parameter");
        goto out;
    }
    if (!cJSON_IsString(model)) {
        bad_type(e, "model", "a string", model);
        goto out;
    }
    if (strlen(model->valuestring) >= sizeof r->model || !check_utf8(model->valuestring, "model", e)) {
        if (e && e->code == ERR_OK)
            err_set_param(e, ERR_INVALID, "model", "Invalid 'model': too long.");
        goto out;
    }
    snprintf(r->model, sizeof r->model, "%s", model->valuestring);

    switch (ep) {
    case OAI_CHAT_COMPLETIONS:
        ok = parse_messages(root, r, e) && parse_generation(root, r, e) &&
             parse_chat_extras(root, r, e);
        break;
    case OAI_COMPLETIONS:
        ok = parse_inputs(root, "prompt", true, true, r, e) && parse_generation(root, r, e) &&
             parse_completions_extras(root, r, e);
        break;
    case OAI_EMBEDDINGS:
        ok = parse_embeddings(root, r, e);
        break;
    }
out:
    cJSON_Delete(root);
    if (!ok)
        oai_request_free(r);
    return ok;
}

void oai_request_free(struct oai_request *r)
{
    for (size_t i = 0; i < r->n_messages; i++)
        free(r->messages[i].content);
    free(r->messages);
    for (size_t i = 0; i < r->n_inputs; i++) {
        free(r->inputs[i].text);
        free(r->inputs[i].ids);
    }
    free(r->inputs);
    for (int i = 0; i < r->n_stop; i++)
        free(r->stop[i]);
    free(r->logit_bias);
    memset(r, 0, sizeof *r);
}

/* render.c — the one place errors become HTTP responses (see api.h). */
#include <stdlib.h>
#include <string.h>

#include "api/api.h"

unsigned api_error_status(enum err_code code)
{
    switch (code) {
    case ERR_OK: return 200;
    case ERR_INVALID: return 400;
    case ERR_UNAUTHENTICATED: return 401;
    case ERR_FORBIDDEN: return 403;
    case ERR_NOT_FOUND: return 404;
    case ERR_METHOD: return 405;
    case ERR_CONFLICT: return 409;
    case ERR_TOO_LARGE: return 413;
    case ERR_MEDIA_TYPE: return 415;
    case ERR_UNPROCESSABLE: return 422;
    case ERR_RATE_LIMITED: return 429;
    case ERR_QUOTA: return 429;
    case ERR_OVERLOADED: return 503;
    case ERR_UNAVAILABLE: return 503;
    case ERR_TIMEOUT: return 504;
    case ERR_CORRUPT:
    case ERR_UNSUPPORTED: return 400;
    case ERR_IO:
    case ERR_NOMEM:
    case ERR_INTERNAL: return 500;
    }
    return 500;
}

/* OpenAI's `type` and `code` strings for each error code. */
static void openai_names(enum err_code code, const char **type, const char **ocode)
{
    *ocode = NULL;
    switch (code) {
    case ERR_INVALID:
    case ERR_CORRUPT:
    case ERR_UNSUPPORTED:
    case ERR_METHOD:
    case ERR_MEDIA_TYPE:
    case ERR_TOO_LARGE:
    case ERR_UNPROCESSABLE:
    case ERR_CONFLICT:
        *type = "invalid_request_error";
        break;
    case ERR_NOT_FOUND:
        *type = "invalid_request_error";
        *ocode = "not_found";
        break;
    case ERR_UNAUTHENTICATED:
        *type = "invalid_request_error";
        *ocode = "invalid_api_key";
        break;
    case ERR_FORBIDDEN:
        *type = "invalid_request_error";
        *ocode = "permission_denied";
        break;
    case ERR_RATE_LIMITED:
        *type = "rate_limit_error";
        *ocode = "rate_limit_exceeded";
        break;
    case ERR_QUOTA:
        *type = "insufficient_quota";
        *ocode = "insufficient_quota";
        break;
    case ERR_OVERLOADED:
        *type = "server_error";
        *ocode = "server_overloaded";
        break;
    case ERR_UNAVAILABLE:
        *type = "server_error";
        *ocode = "service_unavailable";
        break;
    case ERR_TIMEOUT:
        *type = "server_error";
        *ocode = "timeout";
        break;
    default:
        *type = "server_error";
        *ocode = "internal_error";
        break;
    }
    if (!*ocode) {
        switch (code) {
        case ERR_METHOD: *ocode = "method_not_allowed"; break;
        case ERR_MEDIA_TYPE: *ocode = "unsupported_media_type"; break;
        case ERR_TOO_LARGE: *ocode = "request_too_large"; break;
        case ERR_CONFLICT: *ocode = "conflict"; break;
        case ERR_UNPROCESSABLE: *ocode = "unprocessable"; break;
        default: break;
        }
    }
}

char *api_json_text(cJSON *body, size_t *len)
{
    char *text = cJSON_PrintUnformatted(body);
    cJSON_Delete(body);
    if (!text)
        abort();
    size_t n = strlen(text);
    /* cJSON allocates with malloc (default hooks), so http may free it. */
    char *with_nl = realloc(text, n + 2);
    if (!with_nl)
        abort();
    with_nl[n] = '\n';
    with_nl[n + 1] = '\0';
    *len = n + 1;
    return with_nl;
}

void api_respond_json(struct http_request *r, unsigned status, cJSON *body)
{
    size_t len;
    char *text = api_json_text(body, &len);
    http_respond_owned(r, status, "application/json", text, len);
}

static cJSON *error_object(const struct err *e);

char *api_error_text(const struct err *e, unsigned *status, size_t *len)
{
    *status = api_error_status(e->code);
    return api_json_text(error_object(e), len);
}

void api_respond_error(struct http_request *r, const struct err *e)
{
    if (e->code == ERR_OVERLOADED || e->code == ERR_UNAVAILABLE)
        http_response_header(r, "Retry-After", "1");
    unsigned status;
    size_t len;
    char *text = api_error_text(e, &status, &len);
    http_respond_owned(r, status, "application/json", text, len);
}

static cJSON *error_object(const struct err *e)
{
    const char *type, *code;
    openai_names(e->code, &type, &code);
    cJSON *root = cJSON_CreateObject();
    cJSON *obj = cJSON_AddObjectToObject(root, "error");
    cJSON_AddStringToObject(obj, "message", e->msg[0] ? e->msg : err_code_name(e->code));
    cJSON_AddStringToObject(obj, "type", type);
    if (e->param[0])
        cJSON_AddStringToObject(obj, "param", e->param);
    else
        cJSON_AddNullToObject(obj, "param");
    if (code)
        cJSON_AddStringToObject(obj, "code", code);
    else
        cJSON_AddNullToObject(obj, "code");
    return root;
}

/*
 * api.h — what every route handler gets, and how it answers.
 *
 * Contract
 *   The router (api/router.c) resolves method + path against the route
 *   table (api/routes.c), checks Content-Type, and calls the handler with an
 *   api_call: the HTTP request, the daemon context and the path parameters.
 *   A handler answers exactly once, through api_respond_json() /
 *   api_respond_error() here or the streaming calls in server/http.h, either
 *   before returning or later on the loop thread after
 *   http_request_suspend().
 *
 *   Every error a client sees is rendered by api_respond_error(), the one
 *   place that maps an err code to an HTTP status and an error body:
 *   OpenAI's {"error": {"message", "type", "param", "code"}} shape on every
 *   route, so SDKs raise their typed errors.
 *
 * Ownership
 *   The api_call belongs to the request (freed with it). cJSON bodies passed
 *   to api_respond_json() are consumed.
 */
#ifndef MAASD_API_H
#define MAASD_API_H

#include <cJSON.h>
#include <stdbool.h>

#include "engine/err.h"
#include "server/http.h"

struct daemon_ctx;

#define API_MAX_PARAMS 2

struct api_call {
    struct http_request *req;
    struct daemon_ctx *d;
    char params[API_MAX_PARAMS][256];   /* {id}-style path segments, decoded */
    int n_params;
};

typedef void (*api_handler)(struct api_call *call);

enum route_flags {
    ROUTE_JSON_BODY = 1 << 0,   /* POST with an application/json body */
    ROUTE_TEST_ONLY = 1 << 1,   /* only with --test-routes */
};

struct route {
    const char *method;
    const char *pattern;        /* "/v1/models/{id}": {x} matches one segment */
    api_handler handler;
    unsigned flags;
};

extern const struct route api_routes[];
extern const int api_routes_count;

/* server/http.h callbacks, wired by the daemon. */
bool api_on_headers(struct http_request *r, void *daemon);
void api_on_request(struct http_request *r, void *daemon);
void api_on_error(struct http_request *r, const struct err *e, void *daemon);

/* Answers. */
void api_respond_json(struct http_request *r, unsigned status, cJSON *body);
void api_respond_error(struct http_request *r, const struct err *e);
/* HTTP status for an error code (render.c's table). */
unsigned api_error_status(enum err_code code);

/* --- handlers, one file each (api/NAME.c) --- */
void api_healthz(struct api_call *c);
void api_readyz(struct api_call *c);
void api_version(struct api_call *c);
void api_models_list(struct api_call *c);
void api_models_get(struct api_call *c);
void api_chat_completions(struct api_call *c);
void api_completions(struct api_call *c);
void api_embeddings(struct api_call *c);
void api_tokenize(struct api_call *c);
void api_detokenize(struct api_call *c);
void api_test_slow(struct api_call *c);
void api_test_stream(struct api_call *c);
void api_test_echo(struct api_call *c);

#endif

/* routes.c — every route maasd serves. api/openapi.yaml documents the same
 * list (a test keeps the two in step). */
#include "api/api.h"

const struct route api_routes[] = {
    {"GET", "/healthz", api_healthz, 0},
    {"GET", "/readyz", api_readyz, 0},
    {"GET", "/version", api_version, 0},

    {"GET", "/v1/models", api_models_list, 0},
    {"GET", "/v1/models/{id}", api_models_get, 0},
    {"POST", "/v1/chat/completions", api_chat_completions, ROUTE_JSON_BODY},
    {"POST", "/v1/completions", api_completions, ROUTE_JSON_BODY},
    {"POST", "/v1/embeddings", api_embeddings, ROUTE_JSON_BODY},
    {"POST", "/v1/tokenize", api_tokenize, ROUTE_JSON_BODY},
    {"POST", "/v1/detokenize", api_detokenize, ROUTE_JSON_BODY},

    {"GET", "/_test/slow", api_test_slow, ROUTE_TEST_ONLY},
    {"GET", "/_test/stream", api_test_stream, ROUTE_TEST_ONLY},
    {"POST", "/_test/echo", api_test_echo, ROUTE_JSON_BODY | ROUTE_TEST_ONLY},
};

const int api_routes_count = (int)(sizeof api_routes / sizeof api_routes[0]);

/* routes.c — every route maasd serves. api/openapi.yaml documents the same
 * list (a test keeps the two in step). */
#include "api/api.h"

const struct route api_routes[] = {
    {"GET", "/healthz", api_healthz, 0},
    {"GET", "/readyz", api_readyz, 0},
    {"GET", "/version", api_version, 0},

    {"GET", "/_test/slow", api_test_slow, ROUTE_TEST_ONLY},
    {"GET", "/_test/stream", api_test_stream, ROUTE_TEST_ONLY},
    {"POST", "/_test/echo", api_test_echo, ROUTE_JSON_BODY | ROUTE_TEST_ONLY},
};

const int api_routes_count = (int)(sizeof api_routes / sizeof api_routes[0]);

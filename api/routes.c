/* routes.c — every route maasd serves. api/openapi.yaml documents the same
 * list (a test keeps the two in step). */
#include "api/api.h"

const struct route api_routes[] = {
    {"GET", "/healthz", api_healthz, ROUTE_PUBLIC, 0},
    {"GET", "/readyz", api_readyz, ROUTE_PUBLIC, 0},
    {"GET", "/version", api_version, ROUTE_PUBLIC, 0},
    /* Its own bearer token (--metrics-token-file), checked by the handler. */
    {"GET", "/metrics", api_metrics, ROUTE_PUBLIC, 0},

    {"GET", "/v1/models", api_models_list, 0, SCOPE_INFERENCE},
    {"GET", "/v1/models/{id}", api_models_get, 0, SCOPE_INFERENCE},
    {"POST", "/v1/chat/completions", api_chat_completions, ROUTE_JSON_BODY, SCOPE_INFERENCE},
    {"POST", "/v1/completions", api_completions, ROUTE_JSON_BODY, SCOPE_INFERENCE},
    {"POST", "/v1/embeddings", api_embeddings, ROUTE_JSON_BODY, SCOPE_INFERENCE},
    {"POST", "/v1/tokenize", api_tokenize, ROUTE_JSON_BODY, SCOPE_INFERENCE},
    {"POST", "/v1/detokenize", api_detokenize, ROUTE_JSON_BODY, SCOPE_INFERENCE},
    {"GET", "/v1/usage", api_usage, 0, SCOPE_USAGE_READ},

    {"POST", "/admin/v1/customers", api_admin_customers_create, ROUTE_JSON_BODY, SCOPE_ADMIN},
    {"GET", "/admin/v1/customers", api_admin_customers_list, 0, SCOPE_ADMIN},
    {"GET", "/admin/v1/customers/{id}", api_admin_customers_get, 0, SCOPE_ADMIN},
    {"POST", "/admin/v1/customers/{id}", api_admin_customers_update, ROUTE_JSON_BODY, SCOPE_ADMIN},
    {"POST", "/admin/v1/customers/{id}/keys", api_admin_keys_issue, ROUTE_JSON_BODY, SCOPE_ADMIN},
    {"GET", "/admin/v1/customers/{id}/keys", api_admin_keys_list, 0, SCOPE_ADMIN},
    {"GET", "/admin/v1/keys/{id}", api_admin_keys_get, 0, SCOPE_ADMIN},
    {"POST", "/admin/v1/keys/{id}/revoke", api_admin_keys_revoke, 0, SCOPE_ADMIN},
    {"POST", "/admin/v1/keys/{id}/rotate", api_admin_keys_rotate, 0, SCOPE_ADMIN},
    {"GET", "/admin/v1/plans", api_admin_plans_list, 0, SCOPE_ADMIN},
    {"GET", "/admin/v1/models", api_admin_models_list, 0, SCOPE_ADMIN},
    {"POST", "/admin/v1/models", api_admin_models_register, ROUTE_JSON_BODY, SCOPE_ADMIN},
    {"POST", "/admin/v1/models/{name}/load", api_admin_models_load, 0, SCOPE_ADMIN},
    {"POST", "/admin/v1/models/{name}/unload", api_admin_models_unload, 0, SCOPE_ADMIN},
    {"POST", "/admin/v1/aliases/{alias}", api_admin_aliases_set, ROUTE_JSON_BODY, SCOPE_ADMIN},
    {"POST", "/admin/v1/plans/{id}/versions", api_admin_plans_create_version, ROUTE_JSON_BODY,
     SCOPE_ADMIN},
    {"POST", "/admin/v1/customers/{id}/subscription", api_admin_subscriptions_create,
     ROUTE_JSON_BODY, SCOPE_ADMIN},
    {"GET", "/admin/v1/customers/{id}/subscription", api_admin_subscriptions_get, 0, SCOPE_ADMIN},
    {"POST", "/admin/v1/customers/{id}/subscription/change", api_admin_subscriptions_change,
     ROUTE_JSON_BODY, SCOPE_ADMIN},
    {"POST", "/admin/v1/customers/{id}/subscription/cancel", api_admin_subscriptions_cancel, 0,
     SCOPE_ADMIN},
    {"POST", "/admin/v1/customers/{id}/credits", api_admin_credits_grant, ROUTE_JSON_BODY,
     SCOPE_ADMIN},
    {"GET", "/admin/v1/customers/{id}/credits", api_admin_credits_list, 0, SCOPE_ADMIN},

    /* finance (docs/finance.md): a finance or an admin key */
    {"GET", "/admin/v1/usage", api_admin_usage, ROUTE_ANY_SCOPE, SCOPE_FINANCE | SCOPE_ADMIN},
    {"GET", "/admin/v1/invoices", api_admin_invoices_list, ROUTE_ANY_SCOPE,
     SCOPE_FINANCE | SCOPE_ADMIN},
    {"GET", "/admin/v1/invoices/reconcile", api_admin_invoices_reconcile, ROUTE_ANY_SCOPE,
     SCOPE_FINANCE | SCOPE_ADMIN},
    {"POST", "/admin/v1/invoices/close", api_admin_invoices_close, ROUTE_ANY_SCOPE,
     SCOPE_FINANCE | SCOPE_ADMIN},
    {"GET", "/admin/v1/invoices/{id}", api_admin_invoices_get, ROUTE_ANY_SCOPE,
     SCOPE_FINANCE | SCOPE_ADMIN},
    {"GET", "/admin/v1/reports/revenue", api_admin_reports_revenue, ROUTE_ANY_SCOPE,
     SCOPE_FINANCE | SCOPE_ADMIN},
    {"GET", "/v1/invoices", api_invoices_list, 0, SCOPE_USAGE_READ},
    {"GET", "/v1/invoices/{id}", api_invoices_get, 0, SCOPE_USAGE_READ},

    {"GET", "/_test/slow", api_test_slow, ROUTE_TEST_ONLY, 0},
    {"GET", "/_test/stream", api_test_stream, ROUTE_TEST_ONLY, 0},
    {"POST", "/_test/echo", api_test_echo, ROUTE_JSON_BODY | ROUTE_TEST_ONLY, 0},
    {"GET", "/_test/metered", api_test_metered, ROUTE_TEST_ONLY, SCOPE_INFERENCE},
};

const int api_routes_count = (int)(sizeof api_routes / sizeof api_routes[0]);

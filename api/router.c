/* router.c — from method + path to a handler (see api.h). The table itself
 * is in routes.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api/api.h"
#include "server/daemon.h"
#include "server/keys.h"
#include "server/log.h"
#include "server/store.h"

/* Match `path` against `pattern`, capturing {x} segments into the call. */
static bool match(const char *pattern, const char *path, struct api_call *call)
{
    int n = 0;
    const char *p = pattern, *s = path;
    while (*p && *s) {
        if (*p == '{') {
            const char *pend = strchr(p, '}');
            const char *send = strchr(s, '/');
            if (!pend)
                return false;
            size_t len = send ? (size_t)(send - s) : strlen(s);
            if (len == 0 || n >= API_MAX_PARAMS || len >= sizeof call->params[0])
                return false;
            if (call) {
                memcpy(call->params[n], s, len);
                call->params[n][len] = '\0';
            }
            n++;
            p = pend + 1;
            s += len;
            continue;
        }
        if (*p != *s)
            return false;
        p++;
        s++;
    }
    if (*p || *s)
        return false;
    if (call)
        call->n_params = n;
    return true;
}

static bool route_enabled(const struct route *rt, const struct daemon_ctx *d)
{
    return !(rt->flags & ROUTE_TEST_ONLY) || d->cfg.test_routes;
}

static bool is_json(const char *ct)
{
    if (!ct)
        return false;
    while (*ct == ' ')
        ct++;
    size_t n = strlen("application/json");
    return strncasecmp(ct, "application/json", n) == 0 &&
           (ct[n] == '\0' || ct[n] == ';' || ct[n] == ' ');
}

struct touch_job {
    char key_id[RANDID_MAX];
    int64_t now;
};

static bool touch_run(sqlite3 *db, void *arg, struct err *e)
{
    struct touch_job *t = arg;
    return keys_touch(db, t->key_id, t->now, e);
}

static void touch_done(void *arg, const struct err *e)
{
    if (e)
        log_line(LOG_WARN, "recording a key's last use failed", LF_STR("error", e->msg), LF_END);
    free(arg);
}

/* ROUTE_ANY_SCOPE: one of the route's scopes is enough (finance routes
 * take finance or admin). */
static void any_scope(const struct principal *p, unsigned scopes, struct err *e)
{
    if (p->scopes & scopes)
        return;
    char names[96] = "";
    for (unsigned bit = 1; bit && bit <= scopes; bit <<= 1) {
        if (!(scopes & bit))
            continue;
        size_t used = strlen(names);
        snprintf(names + used, sizeof names - used, "%s'%s'", used ? " or " : "",
                 apikey_scope_name(bit));
    }
    err_set(e, ERR_FORBIDDEN, "This API key lacks the %s scope required here", names);
}

/* The route's key check (api.h): 401 with WWW-Authenticate, or 403. */
static bool authenticate(struct api_call *call, const struct route *rt)
{
    struct daemon_ctx *d = call->d;
    struct err e = {0};
    int64_t now = store_now_ms();
    if (!auth_authenticate(d->auth, http_request_header(call->req, "Authorization"), now,
                           &call->principal, &e)) {
        if (e.code == ERR_UNAUTHENTICATED)
            http_response_header(call->req, "WWW-Authenticate", "Bearer realm=\"maasd\"");
        api_respond_error(call->req, &e);
        return false;
    }
    call->authenticated = true;
    if (auth_touch_due(d->auth, &call->principal, now)) {
        struct touch_job *t = calloc(1, sizeof *t);
        if (!t)
            abort();
        snprintf(t->key_id, sizeof t->key_id, "%s", call->principal.key_id);
        t->now = now;
        writer_submit(d->writer, touch_run, touch_done, t);
    }
    if (rt->scope == 0)
        err_set(&e, ERR_FORBIDDEN, "%s %s has no required scope configured; no key may call it",
                rt->method, rt->pattern);
    else if (rt->flags & ROUTE_ANY_SCOPE)
        any_scope(&call->principal, rt->scope, &e);
    else
        auth_require_scope(&call->principal, rt->scope, &e);
    if (e.code != ERR_OK) {
        api_respond_error(call->req, &e);
        return false;
    }
    return true;
}

bool api_on_headers(struct http_request *r, void *daemon)
{
    struct daemon_ctx *d = daemon;
    const char *method = http_request_method(r), *path = http_request_path(r);
    char allow[128] = "";
    const struct route *found = NULL;
    for (int i = 0; i < api_routes_count && !found; i++) {
        const struct route *rt = &api_routes[i];
        if (!route_enabled(rt, d) || !match(rt->pattern, path, NULL))
            continue;
        if (strcmp(rt->method, method) == 0) {
            found = rt;
        } else if (!strstr(allow, rt->method)) {
            size_t used = strlen(allow);
            snprintf(allow + used, sizeof allow - used, "%s%s", used ? ", " : "", rt->method);
        }
    }
    struct err e = {0};
    if (!found && allow[0]) {
        http_response_header(r, "Allow", allow);
        err_set(&e, ERR_METHOD, "method %s is not allowed on %s (allowed: %s)", method, path, allow);
        api_respond_error(r, &e);
        return false;
    }
    if (!found) {
        err_set(&e, ERR_NOT_FOUND, "no route for %s %s", method, path);
        api_respond_error(r, &e);
        return false;
    }
    struct api_call *call = calloc(1, sizeof *call);
    if (!call)
        abort();
    call->req = r;
    call->d = d;
    call->route = found;
    match(found->pattern, path, call);
    http_request_set_state(r, call, free);
    bool public = (found->flags & ROUTE_PUBLIC) ||
                  ((found->flags & ROUTE_TEST_ONLY) && found->scope == 0);
    if (!public && !authenticate(call, found))
        return false;
    if ((found->flags & ROUTE_JSON_BODY) && !is_json(http_request_header(r, "Content-Type"))) {
        err_set(&e, ERR_MEDIA_TYPE, "Content-Type must be application/json");
        api_respond_error(r, &e);
        return false;
    }
    /* Remember the route through the call; on_request looks it up again,
     * which is cheap and keeps the call free of table pointers. */
    return true;
}

void api_on_request(struct http_request *r, void *daemon)
{
    struct daemon_ctx *d = daemon;
    struct api_call *call = http_request_state(r);
    const char *method = http_request_method(r), *path = http_request_path(r);
    for (int i = 0; i < api_routes_count; i++) {
        const struct route *rt = &api_routes[i];
        if (route_enabled(rt, d) && strcmp(rt->method, method) == 0 &&
            match(rt->pattern, path, NULL)) {
            rt->handler(call);
            return;
        }
    }
    struct err e;
    err_set(&e, ERR_INTERNAL, "route vanished");
    api_respond_error(r, &e);
}

void api_on_error(struct http_request *r, const struct err *e, void *daemon)
{
    (void)daemon;
    api_respond_error(r, e);
}

/*
 * test_openapi.c — api/openapi.yaml documents exactly the routes api/routes.c
 * serves, each with the security and error statuses its table entry implies.
 *
 * The spec is read by a small line reader, not a YAML parser (the build has
 * none; tests/e2e/openapi.test.mjs parses and validates it for real). The
 * reader relies on the regular layout the spec's header comment promises:
 *
 *   - two-space indentation, no tabs, no trailing blanks, LF line ends;
 *     indentation deepens by one level (two spaces) at a time, and only
 *     after a line that opens a block (`key:` with no value, or a `- ` list
 *     item); the text of a block scalar (`key: |`, `key: >-`) is exempt;
 *   - `paths:` at column 0, ending at the next column-0 line;
 *   - a path template at indent 2 (`  /v1/models/{id}:`), spelled exactly as
 *     in api/routes.c;
 *   - an operation at indent 4 (`    get:`); other keys at indent 4 are not
 *     HTTP methods (`parameters:`);
 *   - in an operation, at indent 6: `operationId:`, `summary:`,
 *     `requestBody:`, `responses:`, `x-maasd-pending:`, and `security: []`
 *     (no API key) or `security:` followed by requirements at indent 8,
 *     `        - apiKey: [scopes]`. One requirement listing scopes needs all
 *     of them; several requirements are alternatives (OpenAPI's meaning), so
 *     a route that takes either of two scopes lists each on its own line;
 *   - under `responses:`, quoted status codes at indent 8 (`'404':`).
 *
 * `x-maasd-pending: BRANCH` marks an operation documented ahead of its
 * route (served on another branch, not yet merged here): it may be absent
 * from api/routes.c, and once it is there the marker must be removed.
 */
#include "tests/unit/testutil.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "server/apikey.h"

#define SPEC_PATH "api/openapi.yaml"
#define MAX_OPS 256
#define MAX_ALTERNATIVES 4

enum op_block { BLOCK_NONE, BLOCK_SECURITY, BLOCK_RESPONSES };

struct op {
    char method[8];             /* upper case, as api/routes.c spells it */
    char path[256];
    int line;                   /* of the method key */
    char operation_id[96];
    bool summary, request_body, responses, pending;
    bool security_seen, security_none;
    int n_api_key;              /* apiKey requirements (alternatives) */
    char scopes[MAX_ALTERNATIVES][128]; /* each one's list, e.g. "usage:read" */
    bool status[600];
};

struct spec {
    struct op ops[MAX_OPS];
    int n;
    char why[512];              /* the first problem found */
};

static bool bad(struct spec *s, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static bool bad(struct spec *s, int line, const char *fmt, ...)
{
    int n = snprintf(s->why, sizeof s->why, "%s:%d: ", SPEC_PATH, line);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->why + n, sizeof s->why - (size_t)n, fmt, ap);
    va_end(ap);
    return false;
}

static int indent_of(const char *l)
{
    int n = 0;
    while (l[n] == ' ')
        n++;
    return n;
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

/* `key: |`, `key: >-`, … : the lines after it, deeper than it, are text. */
static bool opens_block_scalar(const char *l)
{
    static const char *const headers[] = {": |", ": |-", ": |+", ": >", ": >-", ": >+"};
    for (size_t i = 0; i < sizeof headers / sizeof headers[0]; i++)
        if (ends_with(l, headers[i]))
            return true;
    return false;
}

static bool is_method(const char *key)
{
    static const char *const methods[] = {"get:",     "post:", "put:",  "patch:",
                                          "delete:",  "head:", "options:", "trace:"};
    for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++)
        if (strcmp(key, methods[i]) == 0)
            return true;
    return false;
}

/* "apiKey: [inference, 'usage:read']" → "inference, usage:read" (YAML may
 * quote a name or not). */
static bool scope_list(const char *req, char *out, size_t size)
{
    const char *open = strchr(req, '['), *close = strrchr(req, ']');
    if (!open || !close || close < open || close[1] != '\0')
        return false;
    size_t n = 0;
    for (const char *p = open + 1; p < close && n + 1 < size; p++)
        if (*p != '\'' && *p != '"')
            out[n++] = *p;
    out[n] = '\0';
    return true;
}

/* One line inside `paths:` (content = the line without its indentation). */
static bool path_line(struct spec *s, int lineno, int ind, const char *content,
                      struct op **cur, enum op_block *block, const char **path)
{
    if (ind == 2) {
        if (content[0] != '/' || !ends_with(content, ":") || strchr(content, ' '))
            return bad(s, lineno, "a path at indent 2 must be `/template:`, got `%s`", content);
        *path = content;
        *cur = NULL;
        for (int i = 0; i < s->n; i++)
            if (strncmp(s->ops[i].path, content, strlen(content) - 1) == 0 &&
                s->ops[i].path[strlen(content) - 1] == '\0')
                return bad(s, lineno, "path %s appears twice", content);
        return true;
    }
    if (ind == 4) {
        *cur = NULL;
        *block = BLOCK_NONE;
        if (!is_method(content))
            return true; /* parameters:, summary:, … of the path itself */
        if (!*path)
            return bad(s, lineno, "an operation outside a path");
        if (s->n == MAX_OPS)
            return bad(s, lineno, "more than %d operations", MAX_OPS);
        struct op *op = &s->ops[s->n];
        memset(op, 0, sizeof *op);
        size_t mlen = strlen(content) - 1;
        for (size_t i = 0; i < mlen && i < sizeof op->method - 1; i++)
            op->method[i] = (char)(content[i] - 'a' + 'A');
        snprintf(op->path, sizeof op->path, "%.*s", (int)(strlen(*path) - 1), *path);
        op->line = lineno;
        for (int i = 0; i < s->n; i++)
            if (strcmp(s->ops[i].path, op->path) == 0 && strcmp(s->ops[i].method, op->method) == 0)
                return bad(s, lineno, "%s %s appears twice", op->method, op->path);
        s->n++;
        *cur = op;
        return true;
    }
    struct op *op = *cur;
    if (!op)
        return true;
    if (ind == 6) {
        *block = BLOCK_NONE;
        if (strncmp(content, "operationId: ", 13) == 0)
            snprintf(op->operation_id, sizeof op->operation_id, "%s", content + 13);
        else if (strncmp(content, "summary: ", 9) == 0)
            op->summary = true;
        else if (strcmp(content, "requestBody:") == 0)
            op->request_body = true;
        else if (strncmp(content, "x-maasd-pending: ", 17) == 0)
            op->pending = true;
        else if (strcmp(content, "security: []") == 0)
            op->security_seen = op->security_none = true;
        else if (strcmp(content, "security:") == 0)
            op->security_seen = true, *block = BLOCK_SECURITY;
        else if (strcmp(content, "responses:") == 0)
            op->responses = true, *block = BLOCK_RESPONSES;
        return true;
    }
    if (ind == 8 && *block == BLOCK_SECURITY) {
        if (strncmp(content, "- ", 2) != 0)
            return bad(s, lineno, "security requirements are list items");
        if (strncmp(content, "- apiKey:", 9) == 0) {
            if (op->n_api_key == MAX_ALTERNATIVES ||
                !scope_list(content, op->scopes[op->n_api_key], sizeof op->scopes[0]))
                return bad(s, lineno, "expected `- apiKey: [scope, ...]`, at most %d of them",
                           MAX_ALTERNATIVES);
            op->n_api_key++;
        }
        return true;
    }
    if (ind == 8 && *block == BLOCK_RESPONSES) {
        unsigned code = 0;
        char tail[4] = "";
        if (sscanf(content, "'%3u'%3s", &code, tail) != 2 || strcmp(tail, ":") != 0 ||
            code < 100 || code > 599)
            return bad(s, lineno, "a response key is a quoted status code, got `%s`", content);
        op->status[code] = true;
    }
    return true;
}

/* Read `text` into `s`: the layout checks for the whole file, the
 * operations of `paths:`. False with s->why on the first problem. */
static bool spec_read(const char *text, struct spec *s)
{
    memset(s, 0, sizeof *s);
    size_t len = strlen(text);
    if (len == 0 || text[len - 1] != '\n')
        return bad(s, 0, "the file must end with a newline");
    char *copy = strdup(text);
    assert_non_null(copy);
    bool ok = true, in_paths = false, seen_paths = false;
    int lineno = 0, prev_ind = 0, block_scalar = -1;
    bool prev_opens = true;
    struct op *cur = NULL;
    enum op_block block = BLOCK_NONE;
    const char *path = NULL;
    for (char *l = copy, *next; ok && *l; l = next) {
        next = strchr(l, '\n');
        *next++ = '\0';
        lineno++;
        if (strchr(l, '\t'))
            ok = bad(s, lineno, "a tab (indent with two spaces)");
        else if (strchr(l, '\r'))
            ok = bad(s, lineno, "a carriage return (LF line ends only)");
        else if (ends_with(l, " "))
            ok = bad(s, lineno, "trailing blanks");
        if (!ok)
            break;
        int ind = indent_of(l);
        const char *content = l + ind;
        if (block_scalar >= 0) {
            if (!*content || ind > block_scalar)
                continue; /* block scalar text, or a blank line in it */
            block_scalar = -1;
        }
        if (!*content || *content == '#')
            continue;
        if (ind % 2)
            ok = bad(s, lineno, "indentation of %d spaces is not a multiple of two", ind);
        else if (ind > prev_ind && (ind != prev_ind + 2 || !prev_opens))
            ok = bad(s, lineno, "indentation jumps from %d to %d spaces", prev_ind, ind);
        if (!ok)
            break;
        prev_ind = ind;
        prev_opens = ends_with(content, ":") || strncmp(content, "- ", 2) == 0;
        if (opens_block_scalar(content))
            block_scalar = ind;
        if (ind == 0) {
            in_paths = strcmp(content, "paths:") == 0;
            if (in_paths && seen_paths)
                ok = bad(s, lineno, "a second `paths:`");
            seen_paths |= in_paths;
            continue;
        }
        if (in_paths)
            ok = path_line(s, lineno, ind, content, &cur, &block, &path);
    }
    free(copy);
    if (ok && !seen_paths)
        ok = bad(s, 0, "no `paths:` section at column 0");
    return ok;
}

static struct spec *spec_load(void)
{
    size_t len = 0;
    char *text = test_read_file(SPEC_PATH, &len);
    if (!text)
        fail_msg("cannot read %s (tests run from the repository root)", SPEC_PATH);
    struct spec *s = calloc(1, sizeof *s);
    assert_non_null(s);
    bool ok = spec_read(text, s);
    free(text);
    if (!ok)
        fail_msg("%s", s->why);
    return s;
}

static const struct op *find_op(const struct spec *s, const char *method, const char *path)
{
    for (int i = 0; i < s->n; i++)
        if (strcmp(s->ops[i].method, method) == 0 && strcmp(s->ops[i].path, path) == 0)
            return &s->ops[i];
    return NULL;
}

static const struct route *find_route(const char *method, const char *path)
{
    for (int i = 0; i < api_routes_count; i++) {
        const struct route *rt = &api_routes[i];
        if (!(rt->flags & ROUTE_TEST_ONLY) && strcmp(rt->method, method) == 0 &&
            strcmp(rt->pattern, path) == 0)
            return rt;
    }
    return NULL;
}

static void test_every_route_is_documented(void **state)
{
    (void)state;
    struct spec *s = spec_load();
    int missing = 0, served = 0;
    for (int i = 0; i < api_routes_count; i++) {
        const struct route *rt = &api_routes[i];
        if (rt->flags & ROUTE_TEST_ONLY)
            continue;
        served++;
        if (!find_op(s, rt->method, rt->pattern)) {
            fprintf(stderr, "%s %s is served (api/routes.c) but not in %s\n", rt->method,
                    rt->pattern, SPEC_PATH);
            missing++;
        }
    }
    assert_true(served > 0);
    free(s);
    assert_int_equal(missing, 0);
}

static void test_every_documented_route_is_served(void **state)
{
    (void)state;
    struct spec *s = spec_load();
    int wrong = 0;
    for (int i = 0; i < s->n; i++) {
        const struct op *op = &s->ops[i];
        const struct route *rt = find_route(op->method, op->path);
        if (!rt && !op->pending) {
            fprintf(stderr, "%s:%d: %s %s is documented but not served (api/routes.c)\n",
                    SPEC_PATH, op->line, op->method, op->path);
            wrong++;
        } else if (rt && op->pending) {
            fprintf(stderr, "%s:%d: %s %s is served now: remove its x-maasd-pending line\n",
                    SPEC_PATH, op->line, op->method, op->path);
            wrong++;
        }
    }
    free(s);
    assert_int_equal(wrong, 0);
}

/* What a route's table entry implies its operation must say: the number
 * of problems, each told on `log` (NULL: quiet). */
static int check_operation(const struct op *op, const struct route *rt, FILE *log)
{
    int wrong = 0;
#define WRONG(...)                                                                       \
    do {                                                                                 \
        if (log) {                                                                       \
            fprintf(log, "%s:%d: %s %s: ", SPEC_PATH, op->line, op->method, op->path);   \
            fprintf(log, __VA_ARGS__);                                                   \
            fputc('\n', log);                                                            \
        }                                                                                \
        wrong++;                                                                         \
    } while (0)
    if (!op->operation_id[0])
        WRONG("no operationId");
    if (!op->summary)
        WRONG("no summary");
    if (!op->responses)
        WRONG("no responses");
    bool success = false;
    for (int c = 200; c < 300; c++)
        success |= op->status[c];
    if (!success)
        WRONG("no 2xx response");
    if (!op->security_seen)
        WRONG("no security (say `security: []` for a route without a key)");
    bool public = (rt->flags & ROUTE_PUBLIC) != 0;
    if (public && op->n_api_key)
        WRONG("a public route (ROUTE_PUBLIC) must not require an API key");
    if (!public) {
        /* One requirement: exactly the route's scopes. Several (either
         * scope will do): one scope each, together the route's. */
        unsigned all = 0;
        for (int i = 0; i < op->n_api_key; i++) {
            unsigned one = 0;
            struct err e = {0};
            if (!apikey_scopes_parse(op->scopes[i], &one, &e))
                WRONG("apiKey scopes [%s]: %s", op->scopes[i], e.msg);
            else if (op->n_api_key > 1 && (one & (one - 1)))
                WRONG("alternative apiKey requirements name one scope each, not [%s]",
                      op->scopes[i]);
            all |= one;
        }
        if (!op->n_api_key)
            WRONG("needs `- apiKey: [scope]` (the route requires a key)");
        else if (all != rt->scope)
            WRONG("its apiKey scopes differ from the route's (scope bits %#x, documented %#x)",
                  rt->scope, all);
        if (!op->status[401] || !op->status[403])
            WRONG("a route with a key must document 401 and 403");
    }
    bool json_body = (rt->flags & ROUTE_JSON_BODY) != 0;
    if (json_body && !op->request_body)
        WRONG("ROUTE_JSON_BODY but no requestBody");
    if (json_body != op->status[415])
        WRONG(json_body ? "ROUTE_JSON_BODY: document 415 (Content-Type)"
                        : "415 is documented but the route does not check Content-Type");
    if (strcmp(rt->method, "POST") == 0 && !op->status[413])
        WRONG("a POST must document 413 (body over --max-body-bytes)");
#undef WRONG
    return wrong;
}

static void test_operations_match_their_routes(void **state)
{
    (void)state;
    struct spec *s = spec_load();
    int wrong = 0;
    for (int i = 0; i < s->n; i++) {
        const struct op *op = &s->ops[i];
        const struct route *rt = find_route(op->method, op->path);
        if (rt)
            wrong += check_operation(op, rt, stderr);
        for (int k = 0; k < i; k++)
            if (op->operation_id[0] && strcmp(op->operation_id, s->ops[k].operation_id) == 0) {
                fprintf(stderr, "%s:%d: operationId %s is used twice\n", SPEC_PATH, op->line,
                        op->operation_id);
                wrong++;
            }
    }
    free(s);
    assert_int_equal(wrong, 0);
}

/* The reader itself: it must refuse what it promises to refuse, or the
 * tests above prove nothing. */
#define GOOD_HEAD "openapi: 3.1.0\npaths:\n  /a/{id}:\n    parameters:\n      - name: id\n"
#define GOOD_OP                                                                            \
    "    get:\n      operationId: getA\n      summary: A\n      description: |\n"           \
    "        text: with a colon\n\n          and deeper text\n      security:\n"           \
    "        - apiKey: [inference, 'usage:read']\n      responses:\n        '200':\n"        \
    "          description: ok\n        '404':\n          description: missing\n"
#define GOOD_TAIL "components:\n  schemas: {}\n"

static void expect_refused(const char *text, const char *needle)
{
    struct spec *s = calloc(1, sizeof *s);
    assert_non_null(s);
    if (spec_read(text, s))
        fail_msg("accepted, expected a complaint about '%s':\n%s", needle, text);
    if (!strstr(s->why, needle))
        fail_msg("complaint '%s' does not mention '%s'", s->why, needle);
    free(s);
}

static void test_reader(void **state)
{
    (void)state;
    struct spec *s = calloc(1, sizeof *s);
    assert_non_null(s);
    const char *good = GOOD_HEAD GOOD_OP "    post:\n      operationId: postA\n" GOOD_TAIL;
    if (!spec_read(good, s))
        fail_msg("%s", s->why);
    assert_int_equal(s->n, 2);
    assert_string_equal(s->ops[0].method, "GET");
    assert_string_equal(s->ops[0].path, "/a/{id}");
    assert_int_equal(s->ops[0].n_api_key, 1);
    assert_string_equal(s->ops[0].scopes[0], "inference, usage:read");
    assert_true(s->ops[0].status[200] && s->ops[0].status[404] && !s->ops[0].status[400]);
    assert_string_equal(s->ops[1].method, "POST");
    assert_false(s->ops[1].security_seen);
    free(s);

    expect_refused(GOOD_HEAD "\t" GOOD_OP GOOD_TAIL, "tab");
    expect_refused(GOOD_HEAD GOOD_OP "      summary: x \n" GOOD_TAIL, "trailing");
    expect_refused(GOOD_HEAD "         odd: 1\n" GOOD_OP GOOD_TAIL, "multiple of two");
    expect_refused(GOOD_HEAD "          deep: 1\n" GOOD_OP GOOD_TAIL, "jumps");
    expect_refused(GOOD_HEAD GOOD_OP "      tags: [a]\n        x: 1\n" GOOD_TAIL, "jumps");
    expect_refused(GOOD_HEAD GOOD_OP GOOD_OP GOOD_TAIL, "appears twice");
    expect_refused(GOOD_HEAD GOOD_OP "  /a/{id}:\n" GOOD_TAIL, "appears twice");
    expect_refused(GOOD_HEAD GOOD_OP "        200:\n" GOOD_TAIL, "quoted status code");
    expect_refused(GOOD_HEAD GOOD_OP "  a/b:\n" GOOD_TAIL, "a path at indent 2");
    expect_refused("openapi: 3.1.0\n" GOOD_TAIL, "no `paths:`");
    expect_refused(GOOD_HEAD GOOD_OP GOOD_TAIL "paths:\n", "a second");
    expect_refused(GOOD_HEAD GOOD_OP "components: {}", "newline");
}

/* The checks a route's flags imply, on hand-made operations. */
static void test_check_operation(void **state)
{
    (void)state;
    struct spec *s = calloc(1, sizeof *s);
    assert_non_null(s);
    const char *doc =
        "paths:\n  /r:\n    post:\n      operationId: r\n      summary: R\n"
        "      requestBody:\n        required: true\n      security:\n"
        "        - apiKey: [finance]\n        - apiKey: [admin]\n      responses:\n"
        "        '200':\n          description: ok\n        '401':\n          description: x\n"
        "        '403':\n          description: x\n        '413':\n          description: x\n"
        "        '415':\n          description: x\n";
    if (!spec_read(doc, s))
        fail_msg("%s", s->why);
    assert_int_equal(s->ops[0].n_api_key, 2);
    struct route rt = {"POST", "/r", NULL, ROUTE_JSON_BODY, SCOPE_FINANCE | SCOPE_ADMIN};
    assert_int_equal(check_operation(&s->ops[0], &rt, NULL), 0);
    rt.scope = SCOPE_ADMIN;                      /* documents finance too */
    assert_int_equal(check_operation(&s->ops[0], &rt, NULL), 1);
    rt.scope = SCOPE_FINANCE | SCOPE_ADMIN;
    rt.flags = 0;                                /* 415 without a JSON body */
    assert_int_equal(check_operation(&s->ops[0], &rt, NULL), 1);
    rt.flags = ROUTE_PUBLIC | ROUTE_JSON_BODY;   /* a key on a public route */
    assert_int_equal(check_operation(&s->ops[0], &rt, NULL), 1);
    struct op *op = &s->ops[0];
    snprintf(op->scopes[0], sizeof op->scopes[0], "finance, admin");
    rt.flags = ROUTE_JSON_BODY;                  /* alternatives name one scope each */
    assert_int_equal(check_operation(op, &rt, NULL), 1);
    op->n_api_key = 1;                           /* one requirement: both scopes */
    assert_int_equal(check_operation(op, &rt, NULL), 0);
    op->status[401] = false;
    op->status[413] = false;
    assert_int_equal(check_operation(op, &rt, NULL), 2);
    free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reader),
        cmocka_unit_test(test_check_operation),
        cmocka_unit_test(test_every_route_is_documented),
        cmocka_unit_test(test_every_documented_route_is_served),
        cmocka_unit_test(test_operations_match_their_routes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

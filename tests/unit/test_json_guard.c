/* test_json_guard.c — the incremental JSON-object validator and its use as a
 * sampler constraint (engine/json_guard.c, engine/sampler.c). */
#include "tests/unit/testutil.h"

#include <cJSON.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/json_guard.h"
#include "engine/sampler.h"

static const char *const valid_docs[] = {
    "{}",
    " \n{ }",
    "{\"a\":1}",
    "{\"\":\"\"}",
    "{\"a\": [1, 2.5, -0, -0.0e+1, 1E10, 3e-7, 0.125], \"b\": {\"c\": null}}",
    "{\"t\":true,\"f\":false,\"n\":null,\"arr\":[[],{},[[{}]]]}",
    "{\"esc\": \"\\\" \\\\ \\/ \\b \\f \\n \\r \\t \\u00e9 \\uD83D\\uDE00 \\u0000 \\uFFFF\"}",
    "{\"raw\": \"caf\xc3\xa9 \xe4\xb8\xad\xe6\x96\x87 \xf0\x9f\x98\x80 \xef\xbf\xbd \xf4\x8f\xbf\xbf\"}",
    "{\n  \"name\": \"x\",\n  \"list\": [\n    1,\n    {\n      \"deep\": true\n    }\n  ]\n}",
    "{\"k\":{\"k\":{\"k\":{\"k\":[\"v\",\"w\"]}}}}\n",
    "{\"n\": 12345678901234567890123456789012345678}", /* 38 digits */
    "{\"a\" : 1 , \"b\" :2\t}\r\n",
};

static void push_all(struct json_guard *g, const char *s, size_t len, bool expect_ok)
{
    bool ok = json_guard_push(g, s, len);
    if (ok != expect_ok)
        fail_msg("'%.*s': push %s", (int)len, s, ok ? "accepted" : "rejected");
}

static void test_every_prefix_of_valid_documents(void **state)
{
    (void)state;
    for (size_t d = 0; d < sizeof valid_docs / sizeof valid_docs[0]; d++) {
        const char *doc = valid_docs[d];
        size_t len = strlen(doc);
        struct json_guard g;
        json_guard_init(&g);
        size_t close = len;
        while (close > 0 && strchr(" \t\r\n", doc[close - 1]))
            close--; /* the final '}' */
        for (size_t i = 0; i < len; i++) {
            assert_true(json_guard_accepts(&g, doc + i, len - i)); /* the rest at once */
            if (!json_guard_push(&g, doc + i, 1))
                fail_msg("document %zu rejected at byte %zu ('%c')", d, i, doc[i]);
            assert_int_equal(json_guard_complete(&g), i + 1 >= close);
        }
        /* pushed whole, the same */
        struct json_guard h;
        json_guard_init(&h);
        push_all(&h, doc, len, true);
        assert_true(json_guard_complete(&h));
        assert_memory_equal(&g, &h, sizeof g);
    }
}

static void test_invalid_continuations(void **state)
{
    (void)state;
    static const struct {
        const char *prefix, *bad;
    } cases[] = {
        {"", "["},           /* the top level must be an object */
        {"", "\"a\""},
        {"", "1"},
        {"", "x"},
        {"{", ","},
        {"{", "a"},
        {"{", "'a'"},
        {"{\"a\"", "1"},
        {"{\"a\"", "}"},
        {"{\"a\":", "}"},
        {"{\"a\":", "01"},   /* leading zero */
        {"{\"a\":", "+1"},
        {"{\"a\":", ".5"},
        {"{\"a\":1.", "}"},
        {"{\"a\":1e", "}"},
        {"{\"a\":1e+", "}"},
        {"{\"a\":-", "}"},
        {"{\"a\":", "-a"},
        {"{\"a\":", "tru "},
        {"{\"a\":", "nul}"},
        {"{\"a\":", "True"},
        {"{\"a\":", "NaN"},
        {"{\"a\":", "Infinity"},
        {"{\"a\":1", ",}"},
        {"{\"a\":1", "]"},
        {"{\"a\":[1", "}"},
        {"{\"a\":[1,", "]"},
        {"{\"a\":", "[,"},
        {"{\"a\":", "\"\x01"},     /* control characters must be escaped */
        {"{\"a\":", "\"\n"},
        {"{\"a\":", "\"\\q"},
        {"{\"a\":", "\"\\u12g"},
        {"{\"a\":", "\"\\uDC"},    /* a low surrogate cannot come first */
        {"{\"a\":", "\"\\udfff"},
        {"{\"a\":", "\"\\uD800x"}, /* a high one must be followed by a low one */
        {"{\"a\":", "\"\\uD800\\n"},
        {"{\"a\":", "\"\\uD800\\u0041"},
        {"{\"a\":", "\"\\uDBFF\\uDB"},
        {"{\"a\":", "\"\x80"},     /* stray continuation byte */
        {"{\"a\":", "\"\xc0\xaf"}, /* overlong */
        {"{\"a\":", "\"\xc1"},
        {"{\"a\":", "\"\xe0\x80"}, /* overlong */
        {"{\"a\":", "\"\xed\xa0"}, /* UTF-8 surrogate */
        {"{\"a\":", "\"\xf0\x80"}, /* overlong */
        {"{\"a\":", "\"\xf4\x90"}, /* above U+10FFFF */
        {"{\"a\":", "\"\xf5"},
        {"{\"a\":", "\"\xff"},
        {"{\"a\":", "\"\xc3\xc3"},
        {"{\"a\":", "\"\xe4\xb8\""},
        {"{}", "x"},
        {"{}", "{}"},
        {"{} ", ","},
        {"{\"a\":", "\0"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct json_guard g;
        json_guard_init(&g);
        if (!json_guard_push(&g, cases[i].prefix, strlen(cases[i].prefix)))
            fail_msg("case %zu: prefix '%s' rejected", i, cases[i].prefix);
        size_t bad_len = strlen(cases[i].bad);
        if (bad_len == 0)
            bad_len = 1; /* the NUL case */
        struct json_guard before = g;
        if (json_guard_accepts(&g, cases[i].bad, bad_len))
            fail_msg("case %zu: '%s' + '%s' accepted", i, cases[i].prefix, cases[i].bad);
        assert_false(json_guard_push(&g, cases[i].bad, bad_len));
        assert_memory_equal(&g, &before, sizeof g); /* a refused push changes nothing */
    }
}

static void test_limits(void **state)
{
    (void)state;
    struct json_guard g;

    /* depth: the top object is 1, so 63 nested arrays reach 64 */
    json_guard_init(&g);
    push_all(&g, "{\"a\":", 5, true);
    for (int i = 0; i < JSON_GUARD_MAX_DEPTH - 1; i++)
        push_all(&g, "[", 1, true);
    assert_false(json_guard_accepts(&g, "[", 1));
    assert_false(json_guard_accepts(&g, "{", 1));
    push_all(&g, "1", 1, true);
    for (int i = 0; i < JSON_GUARD_MAX_DEPTH - 1; i++)
        push_all(&g, "]", 1, true);
    push_all(&g, "}", 1, true);
    assert_true(json_guard_complete(&g));

    /* whitespace runs */
    json_guard_init(&g);
    push_all(&g, "\n\n", 2, true);
    assert_false(json_guard_accepts(&g, "\n", 1));
    push_all(&g, "        ", 8, true); /* 8 + 4 * depth 0 */
    assert_false(json_guard_accepts(&g, " ", 1));
    push_all(&g, "{\n\n", 3, true);
    assert_false(json_guard_accepts(&g, "\n", 1));
    push_all(&g, "            ", 12, true); /* depth 1: 12 */
    assert_false(json_guard_accepts(&g, "\t", 1));
    push_all(&g, "\"a\" \n : \n\n", 10, true); /* every token resets the run */
    assert_false(json_guard_accepts(&g, "\n", 1));
    push_all(&g, "1 \r\n\n", 5, true);
    assert_false(json_guard_accepts(&g, "\n", 1));
    push_all(&g, "}\n\n", 3, true);
    assert_true(json_guard_complete(&g));
    assert_false(json_guard_accepts(&g, "\n", 1));

    /* numbers: at the cap a digit is refused but the number can still end,
     * and nothing that needs another digit is accepted there */
    json_guard_init(&g);
    push_all(&g, "{\"n\":", 5, true);
    char digits[JSON_GUARD_MAX_NUMBER + 1];
    memset(digits, '7', sizeof digits);
    push_all(&g, digits, JSON_GUARD_MAX_NUMBER - 1, true);
    assert_false(json_guard_accepts(&g, ".", 1));
    assert_false(json_guard_accepts(&g, "e", 1));
    push_all(&g, "7", 1, true);
    assert_false(json_guard_accepts(&g, "7", 1));
    push_all(&g, "}", 1, true);
    assert_true(json_guard_complete(&g));
}

/* ---- no dead ends ---------------------------------------------------------------- */

/* Greedy completion: always possible from an accepted prefix, in a number of
 * bytes bounded by the depth. The order puts closers first. */
static size_t complete_greedily(struct json_guard *g, char *out, size_t cap)
{
    static const char prefs[] = "\"}]0:\\udcrealsntf\x80\x90\xa0{";
    size_t n = 0;
    while (!json_guard_complete(g)) {
        size_t k = 0;
        for (; k < sizeof prefs - 1; k++)
            if (json_guard_push(g, &prefs[k], 1))
                break;
        if (k == sizeof prefs - 1)
            return 0; /* stuck: a dead end */
        if (n + 1 >= cap)
            return 0;
        out[n++] = prefs[k];
    }
    out[n] = 0;
    return n;
}

static uint32_t rnd(uint32_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 17;
    *x ^= *x << 5;
    return *x;
}

static void test_random_walks_never_dead_end(void **state)
{
    (void)state;
    static const char alphabet[] = "{}[]\":,  \n\t0123456789-+.eEtruefalsnl\\/bu"
                                   "dDcCaAfF\x80\x90\xa0\xbf\xc3\xe4\xed\xf0\xf4\x01";
    uint32_t x = 777;
    for (int walk = 0; walk < 400; walk++) {
        struct json_guard g;
        json_guard_init(&g);
        char text[4096];
        size_t len = 0;
        int steps = 20 + (int)(rnd(&x) % 300);
        for (int s = 0; s < steps && !json_guard_complete(&g); s++) {
            char c = alphabet[rnd(&x) % (sizeof alphabet - 1)];
            if (json_guard_push(&g, &c, 1))
                text[len++] = c;
        }
        struct json_guard h = g;
        size_t tail = complete_greedily(&h, text + len, sizeof text - len);
        if (!json_guard_complete(&g) && tail == 0)
            fail_msg("walk %d: no completion from '%.*s'", walk, (int)len, text);
        len += tail;
        cJSON *doc = cJSON_ParseWithLength(text, len);
        if (!doc || !cJSON_IsObject(doc))
            fail_msg("walk %d: cJSON refuses '%.*s'", walk, (int)len, text);
        cJSON_Delete(doc);
    }
}

/* ---- as a sampler constraint ---------------------------------------------------- */

struct vocab {
    const char *const *texts; /* NULL = special token */
    int n;
};

static const char *token_text(void *ctx, int32_t id, size_t *len)
{
    const struct vocab *v = ctx;
    const char *t = v->texts[id];
    *len = t ? strlen(t) : 0;
    return t;
}

static const char *const toy[] = {
    NULL,   /* 0: EOS */
    "{",    "}",  "[",   "]",    ":",    ",",   "\"",   " ",   "\n",   "\n\n\n",
    "a",    "b",  "key", "1",    "0",    "-",   ".",    "e",   "true", "null",
    "\"}",  "\":", "{\"", "\",\"", "\\",  "u",   "D83D", "DE00", "00e9", "n",
    "\xc3", "\xa9", "}\n", "}x",  "01",   "  ",  "[]",   "{}",  ",\"",  "\xe4\xb8\xad",
    "l", /* every byte a document needs is spellable, as in real vocabularies */
};
#define N_TOY ((int)(sizeof toy / sizeof toy[0]))

static void test_filter_answers(void **state)
{
    (void)state;
    struct vocab v = {toy, N_TOY};
    struct json_guard g;
    json_guard_init(&g);
    struct json_guard_filter f = {&g, token_text, &v};
    assert_false(json_guard_allowed(&f, 0)); /* EOS before the end */
    assert_true(json_guard_allowed(&f, 1));  /* { */
    assert_true(json_guard_allowed(&f, 23)); /* {" */
    assert_false(json_guard_allowed(&f, 3)); /* [ */
    assert_false(json_guard_allowed(&f, 37)); /* [] */
    assert_true(json_guard_allowed(&f, 38)); /* {} */
    assert_true(json_guard_push(&g, "{\"k\":1", 6));
    assert_true(json_guard_allowed(&f, 2));   /* } */
    assert_true(json_guard_allowed(&f, 33));  /* }\n */
    assert_false(json_guard_allowed(&f, 34)); /* }x */
    assert_true(json_guard_allowed(&f, 14));  /* 1: 11 */
    assert_true(json_guard_push(&g, "}", 1));
    assert_true(json_guard_allowed(&f, 0));   /* EOS once complete */
    assert_true(json_guard_allowed(&f, 9));   /* whitespace */
    assert_false(json_guard_allowed(&f, 2));
}

/* Generate with random logits under the constraint: whatever the logits
 * want, the output is always a valid prefix and, once complete, a JSON
 * object cJSON accepts. */
static void test_constrained_generation(void **state)
{
    (void)state;
    struct vocab v = {toy, N_TOY};
    uint32_t x = 4242;
    int n_complete = 0;
    for (int run = 0; run < 60; run++) {
        struct sampler_params p;
        sampler_params_default(&p);
        p.seed = (uint64_t)run;
        p.temperature = run % 4 == 0 ? 0.0f : 1.0f;
        p.top_k = run % 3 == 0 ? 3 : 0; /* truncation often leaves nothing allowed */
        struct err e = {0};
        struct sampler *s = sampler_new(&p, N_TOY, &e);
        assert_non_null(s);
        struct json_guard g;
        json_guard_init(&g);
        struct json_guard_filter f = {&g, token_text, &v};
        char out[8192];
        size_t len = 0;
        bool eos = false;
        for (int step = 0; step < 300 && !eos; step++) {
            float logits[N_TOY];
            for (int i = 0; i < N_TOY; i++)
                logits[i] = (float)(rnd(&x) % 1000) / 100.0f;
            logits[0] += 3;  /* the model would like to stop early */
            logits[34] += 5; /* and to write "}x" */
            struct sampler_result r;
            if (!sampler_sample(s, logits, json_guard_allowed, &f, &r, &e))
                fail_msg("run %d step %d: %s", run, step, e.msg);
            size_t tl;
            const char *t = token_text(&v, r.token, &tl);
            if (!t || tl == 0) {
                assert_true(json_guard_complete(&g));
                eos = true;
                break;
            }
            assert_true(json_guard_push(&g, t, tl));
            memcpy(out + len, t, tl);
            len += tl;
            if (json_guard_complete(&g))
                break; /* what the scheduler does: finish_reason "stop" */
        }
        if (json_guard_complete(&g)) {
            n_complete++;
            cJSON *doc = cJSON_ParseWithLength(out, len);
            if (!doc || !cJSON_IsObject(doc))
                fail_msg("run %d: cJSON refuses '%.*s'", run, (int)len, out);
            cJSON_Delete(doc);
        } else {
            char tail[512];
            struct json_guard h = g;
            assert_true(complete_greedily(&h, tail, sizeof tail) > 0);
        }
        sampler_free(s);
    }
    assert_true(n_complete > 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_prefix_of_valid_documents),
        cmocka_unit_test(test_invalid_continuations),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_random_walks_never_dead_end),
        cmocka_unit_test(test_filter_answers),
        cmocka_unit_test(test_constrained_generation),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

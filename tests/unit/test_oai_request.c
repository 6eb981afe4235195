/* test_oai_request.c — OpenAI request parsing and validation. */
#include "tests/unit/testutil.h"

#include <stdio.h>
#include <string.h>

#include "api/oai_request.h"

static bool parse(enum oai_endpoint ep, const char *body, struct oai_request *r, struct err *e)
{
    err_clear(e);
    return oai_request_parse(ep, body, strlen(body), r, e);
}

static void expect_error(enum oai_endpoint ep, const char *body, const char *param)
{
    struct oai_request r;
    struct err e;
    if (parse(ep, body, &r, &e)) {
        oai_request_free(&r);
        fail_msg("accepted: %s", body);
    }
    assert_int_equal(e.code, ERR_INVALID);
    if (strcmp(e.param, param) != 0)
        fail_msg("body %s: param '%s', expected '%s' (%s)", body, e.param, param, e.msg);
}

static void test_chat_full(void **state)
{
    (void)state;
    struct oai_request r;
    struct err e;
    assert_true(parse(OAI_CHAT_COMPLETIONS,
        "{\"model\":\"m\",\"messages\":[{\"role\":\"system\",\"content\":\"be brief\"},"
        "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"hel\"},{\"type\":\"text\",\"text\":\"lo\"}]},"
        "{\"role\":\"assistant\",\"content\":null}],"
        "\"max_completion_tokens\":7,\"temperature\":0.5,\"top_p\":0.9,\"stop\":[\"a\",\"b\"],"
        "\"seed\":42,\"logit_bias\":{\"5\":-100,\"7\":3.5},\"logprobs\":true,\"top_logprobs\":3,"
        "\"stream\":true,\"stream_options\":{\"include_usage\":true},"
        "\"response_format\":{\"type\":\"json_object\"},\"unknown_field\":{\"x\":1},\"top_k\":40}",
        &r, &e));
    assert_string_equal(r.model, "m");
    assert_int_equal(r.n_messages, 3);
    assert_int_equal(r.messages[0].role, OAI_ROLE_SYSTEM);
    assert_string_equal(r.messages[1].content, "hello");
    assert_string_equal(r.messages[2].content, "");
    assert_int_equal(r.max_tokens, 7);
    assert_true(r.temperature == 0.5f);
    assert_int_equal(r.n_stop, 2);
    assert_true(r.has_seed);
    assert_int_equal(r.seed, 42);
    assert_int_equal(r.n_logit_bias, 2);
    assert_int_equal(r.logit_bias[1].token, 7);
    assert_int_equal(r.logprobs, 3);
    assert_true(r.stream && r.include_usage && r.json_mode);
    assert_int_equal(r.top_k, 40);
    oai_request_free(&r);
}

static void test_defaults(void **state)
{
    (void)state;
    struct oai_request r;
    struct err e;
    assert_true(parse(OAI_COMPLETIONS, "{\"model\":\"m\",\"prompt\":\"hi\"}", &r, &e));
    assert_int_equal(r.max_tokens, -1);
    assert_int_equal(r.n, 1);
    assert_int_equal(r.logprobs, -1);
    assert_true(r.temperature == 1.0f && r.top_p == 1.0f);
    assert_false(r.stream);
    assert_int_equal(r.n_inputs, 1);
    assert_string_equal(r.inputs[0].text, "hi");
    oai_request_free(&r);
}

static void test_prompt_shapes(void **state)
{
    (void)state;
    struct oai_request r;
    struct err e;
    assert_true(parse(OAI_COMPLETIONS, "{\"model\":\"m\",\"prompt\":[1,2,3]}", &r, &e));
    assert_int_equal(r.n_inputs, 1);
    assert_int_equal(r.inputs[0].n_ids, 3);
    oai_request_free(&r);
    assert_true(parse(OAI_COMPLETIONS, "{\"model\":\"m\",\"prompt\":[\"a\",\"b\"]}", &r, &e));
    assert_int_equal(r.n_inputs, 2);
    oai_request_free(&r);
    assert_true(parse(OAI_COMPLETIONS, "{\"model\":\"m\",\"prompt\":[[1],[2,3]]}", &r, &e));
    assert_int_equal(r.n_inputs, 2);
    assert_int_equal(r.inputs[1].n_ids, 2);
    oai_request_free(&r);
    assert_true(parse(OAI_EMBEDDINGS, "{\"model\":\"m\",\"input\":[\"x\",\"y\"],\"encoding_format\":\"base64\",\"dimensions\":8}", &r, &e));
    assert_true(r.base64);
    assert_int_equal(r.dimensions, 8);
    oai_request_free(&r);
}

static void test_errors_name_the_field(void **state)
{
    (void)state;
    expect_error(OAI_CHAT_COMPLETIONS, "{not json", "");
    expect_error(OAI_CHAT_COMPLETIONS, "[1,2]", "");
    expect_error(OAI_CHAT_COMPLETIONS, "{\"messages\":[]}", "model");
    expect_error(OAI_CHAT_COMPLETIONS, "{\"model\":3,\"messages\":[]}", "model");
    expect_error(OAI_CHAT_COMPLETIONS, "{\"model\":\"m\"}", "messages");
    expect_error(OAI_CHAT_COMPLETIONS, "{\"model\":\"m\",\"messages\":[]}", "messages");
    expect_error(OAI_CHAT_COMPLETIONS, "{\"model\":\"m\",\"messages\":[{\"content\":\"x\"}]}", "messages[0].role");
    expect_error(OAI_CHAT_COMPLETIONS, "{\"model\":\"m\",\"messages\":[{\"role\":\"wizard\",\"content\":\"x\"}]}", "messages[0].role");
    expect_error(OAI_CHAT_COMPLETIONS, "{\"model\":\"m\",\"messages\":[{\"role\":\"user\"}]}", "messages[0].content");
    expect_error(OAI_CHAT_COMPLETIONS, "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":5}]}", "messages[0].content");
    expect_error(OAI_CHAT_COMPLETIONS, "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\"}]}]}", "messages[0].content[0]");
    const char *base = "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],";
    struct { const char *extra, *param; } cases[] = {
        {"\"temperature\":\"hot\"}", "temperature"},
        {"\"temperature\":3}", "temperature"},
        {"\"top_p\":1.5}", "top_p"},
        {"\"max_tokens\":0}", "max_tokens"},
        {"\"max_tokens\":1e300}", "max_tokens"},
        {"\"max_tokens\":2.5}", "max_tokens"},
        {"\"n\":0}", "n"},
        {"\"stop\":[\"a\",\"b\",\"c\",\"d\",\"e\"]}", "stop"},
        {"\"stop\":7}", "stop"},
        {"\"presence_penalty\":-3}", "presence_penalty"},
        {"\"logit_bias\":{\"x\":1}}", "logit_bias"},
        {"\"logit_bias\":{\"5\":101}}", "logit_bias"},
        {"\"top_logprobs\":3}", "top_logprobs"},
        {"\"logprobs\":true,\"top_logprobs\":21}", "top_logprobs"},
        {"\"stream_options\":{\"include_usage\":true}}", "stream_options"},
        {"\"stream\":\"yes\"}", "stream"},
        {"\"response_format\":{\"type\":\"json_schema\"}}", "response_format.type"},
        {"\"seed\":\"x\"}", "seed"},
        {"\"tools\":[{\"type\":\"function\"}]}", "tools"},
        {"\"functions\":[{\"name\":\"f\"}]}", "functions"},
        {"\"max_tokens\":0,\"max_completion_tokens\":5}", "max_tokens"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char body[512];
        snprintf(body, sizeof body, "%s%s", base, cases[i].extra);
        expect_error(OAI_CHAT_COMPLETIONS, body, cases[i].param);
    }
    expect_error(OAI_COMPLETIONS, "{\"model\":\"m\",\"prompt\":[1,-2]}", "prompt");
    expect_error(OAI_COMPLETIONS, "{\"model\":\"m\",\"prompt\":[]}", "prompt");
    expect_error(OAI_COMPLETIONS, "{\"model\":\"m\",\"prompt\":\"x\",\"best_of\":3}", "best_of");
    expect_error(OAI_COMPLETIONS, "{\"model\":\"m\",\"prompt\":\"x\",\"logprobs\":6}", "logprobs");
    expect_error(OAI_EMBEDDINGS, "{\"model\":\"m\",\"input\":\"\"}", "input");
    expect_error(OAI_EMBEDDINGS, "{\"model\":\"m\",\"input\":[\"a\",\"\"]}", "input[1]");
    expect_error(OAI_EMBEDDINGS, "{\"model\":\"m\",\"input\":\"x\",\"encoding_format\":\"hex\"}", "encoding_format");
}

static void test_invalid_utf8(void **state)
{
    (void)state;
    expect_error(OAI_CHAT_COMPLETIONS,
                 "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"a\xff" "b\"}]}",
                 "messages[0].content");
    expect_error(OAI_COMPLETIONS, "{\"model\":\"m\",\"prompt\":\"\xc0\xaf\"}", "prompt");
    assert_true(oai_utf8_valid("h\xc3\xa9llo \xf0\x9f\x98\x80", 11));
    assert_false(oai_utf8_valid("\xed\xa0\x80", 3)); /* surrogate */
    assert_false(oai_utf8_valid("\xe2\x82", 2));      /* truncated */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_chat_full),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_prompt_shapes),
        cmocka_unit_test(test_errors_name_the_field),
        cmocka_unit_test(test_invalid_utf8),
    };
    return cmocka_run_group_tests_name("oai_request", tests, NULL, NULL);
}

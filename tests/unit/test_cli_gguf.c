/* test_cli_gguf.c — the GGUF-facing subcommands (server/cmd_inspect.c,
 * server/cmd_tokenize.c) run on files written here: their output says what
 * the file holds, and bad input fails with a one-line error. */
#include "tests/unit/testutil.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/gguf.h"
#include "server/cli.h"
#include "tests/unit/gguf_writer.h"

/* Run a subcommand with stdout and stderr captured; returns its status and
 * the captured text (malloc'ed) in *out. */
static int run_captured(int (*cmd)(int, char **), int argc, const char **argv, char **out)
{
    char path[4300];
    snprintf(path, sizeof path, "%s/out.txt", test_tmpdir());
    fflush(stdout);
    fflush(stderr);
    int saved_out = dup(1), saved_err = dup(2);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0 && saved_out >= 0 && saved_err >= 0);
    dup2(fd, 1);
    dup2(fd, 2);
    close(fd);
    int rc = cmd(argc, (char **)argv);
    fflush(stdout);
    fflush(stderr);
    dup2(saved_out, 1);
    dup2(saved_err, 2);
    close(saved_out);
    close(saved_err);
    *out = test_read_file(path, NULL);
    assert_non_null(*out);
    return rc;
}

static void test_inspect(void **state)
{
    (void)state;
    struct test_gguf *w = test_gguf_new(3);
    test_gguf_str(w, "general.architecture", "llama");
    test_gguf_str(w, "odd \"key\"", "line\nbreak");
    test_gguf_f32(w, "llama.rope.freq_base", 10000.0f);
    const char *toks[] = {"a", "b", "c", "d", "e", "f", "g", "h", "i", "j"};
    test_gguf_arr_str(w, "tokenizer.ggml.tokens", toks, NULL, 10);
    test_gguf_tensor(w, "token_embd.weight", 2, (const uint64_t[]){32, 10}, GGML_TYPE_Q8_0,
                     NULL);
    size_t len;
    uint8_t *buf = test_gguf_finish(w, &len);
    char path[4300];
    snprintf(path, sizeof path, "%s/m.gguf", test_tmpdir());
    assert_true(test_gguf_save(buf, len, path));
    free(buf);

    const char *argv[] = {path};
    char *out;
    assert_int_equal(run_captured(cmd_inspect, 1, argv, &out), 0);
    assert_non_null(strstr(out, "GGUF v3"));
    assert_non_null(strstr(out, "general.architecture"));
    assert_non_null(strstr(out, "string: \"llama\""));
    assert_non_null(strstr(out, "\"odd \\\"key\\\"\" string: \"line\\nbreak\""));
    assert_non_null(strstr(out, "f32: 10000"));
    assert_non_null(strstr(out, "array[string] (10): [\"a\", \"b\""));
    assert_non_null(strstr(out, ", ...]"));
    assert_null(strstr(out, "\"j\""));
    assert_non_null(strstr(out, "token_embd.weight"));
    assert_non_null(strstr(out, "q8_0  [32x10]"));
    assert_non_null(strstr(out, "340 bytes"));
    free(out);

    const char *full[] = {"--full", path};
    assert_int_equal(run_captured(cmd_inspect, 2, full, &out), 0);
    assert_non_null(strstr(out, "\"j\"]"));
    free(out);

    /* A corrupt file: one line naming the file, status 1. */
    assert_true(test_gguf_save((const uint8_t *)"GGUF\x03\0\0\0", 8, path));
    assert_int_equal(run_captured(cmd_inspect, 1, argv, &out), 1);
    assert_non_null(strstr(out, "maasd: "));
    assert_non_null(strstr(out, path));
    free(out);

    assert_int_equal(run_captured(cmd_inspect, 0, argv, &out), 2);
    assert_non_null(strstr(out, "usage"));
    free(out);
}

static void test_tokenize(void **state)
{
    (void)state;
    /* A vocabulary-only file: SPM, BOS 1, a control token. */
    const char *toks[] = {"<unk>", "<s>", "</s>", "\xe2\x96\x81" "a", "a", "\xe2\x96\x81",
                          "<|x|>", "<0x0A>"};
    int32_t types[] = {2, 3, 3, 1, 1, 1, 3, 6};
    struct test_gguf *w = test_gguf_new(3);
    test_gguf_str(w, "tokenizer.ggml.model", "llama");
    test_gguf_arr_str(w, "tokenizer.ggml.tokens", toks, NULL, 8);
    test_gguf_arr(w, "tokenizer.ggml.token_type", GGUF_TYPE_INT32, types, 8);
    size_t len;
    uint8_t *buf = test_gguf_finish(w, &len);
    char path[4300];
    snprintf(path, sizeof path, "%s/vocab.gguf", test_tmpdir());
    assert_true(test_gguf_save(buf, len, path));
    free(buf);

    char *out;
    const char *ids[] = {"--model", path, "--ids", "a a"};
    assert_int_equal(run_captured(cmd_tokenize, 4, ids, &out), 0);
    assert_string_equal(out, "1 3 3\n");
    free(out);

    const char *lines[] = {"--model", path, "a\n"};
    assert_int_equal(run_captured(cmd_tokenize, 3, lines, &out), 0);
    assert_string_equal(out, "1\t<s>\n3\t a\n7\t\\n\n");
    free(out);

    const char *special[] = {"--model", path, "--special", "--no-bos", "--ids", "<|x|>a"};
    assert_int_equal(run_captured(cmd_tokenize, 6, special, &out), 0);
    assert_string_equal(out, "6 3\n");
    free(out);

    const char *plain[] = {"--model", path, "--no-bos", "--ids", "<|x|>"};
    assert_int_equal(run_captured(cmd_tokenize, 5, plain, &out), 0);
    assert_null(strstr(out, "6"));
    free(out);

    const char *bad[] = {"--model", "/nonexistent.gguf", "a"};
    assert_int_equal(run_captured(cmd_tokenize, 3, bad, &out), 1);
    assert_non_null(strstr(out, "maasd: cannot open /nonexistent.gguf"));
    free(out);

    const char *missing[] = {"--ids", "a"};
    assert_int_equal(run_captured(cmd_tokenize, 2, missing, &out), 2);
    assert_non_null(strstr(out, "usage"));
    free(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_inspect),
        cmocka_unit_test(test_tokenize),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* test_config.c — settings precedence and validation (server/config.c). */
#include "tests/unit/testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/config.h"

static bool load(struct config *cfg, struct err *e, int argc, const char **argv)
{
    return config_load(cfg, argc, (char **)argv, e);
}

static void test_defaults(void **state)
{
    (void)state;
    unsetenv("MAASD_LISTEN");
    struct config cfg;
    struct err e = {0};
    assert_true(load(&cfg, &e, 0, NULL));
    assert_string_equal(cfg.listen_host, "127.0.0.1");
    assert_int_equal(cfg.listen_port, 8080);
    assert_int_equal(cfg.max_body_bytes, 1 << 20);
    assert_int_equal(cfg.shutdown_timeout_ms, 30000);
}

static void test_precedence(void **state)
{
    (void)state;
    const char *dir = test_tmpdir();
    char path[4200];
    snprintf(path, sizeof path, "%s/maasd.conf", dir);
    FILE *f = fopen(path, "w");
    fprintf(f, "# comment\nlisten = 127.0.0.1:7000\nmax-body-bytes = 2M\nlog-level = warn\n"
               "model = a=/x.gguf\nmodel = b=/y.gguf\n");
    fclose(f);
    setenv("MAASD_MAX_BODY_BYTES", "3M", 1);
    const char *argv[] = {"--config", path, "--log-level=debug"};
    struct config cfg;
    struct err e = {0};
    assert_true(load(&cfg, &e, 3, argv));
    assert_int_equal(cfg.listen_port, 7000);               /* file */
    assert_int_equal(cfg.max_body_bytes, 3 << 20);          /* env beats file */
    assert_int_equal(cfg.log_level, LOG_DEBUG);             /* flag beats file */
    assert_int_equal(cfg.n_models, 2);
    assert_string_equal(cfg.models[1].id, "b");
    unsetenv("MAASD_MAX_BODY_BYTES");
}

static void test_invalid_values_name_the_setting(void **state)
{
    (void)state;
    struct {
        const char *argv[2];
        const char *needle;
    } cases[] = {
        {{"--max-body-bytes", "lots"}, "--max-body-bytes"},
        {{"--listen", "localhost"}, "--listen"},
        {{"--listen", "1.2.3.4:70000"}, "--listen"},
        {{"--shutdown-timeout", "10"}, "--shutdown-timeout"},
        {{"--log-level", "chatty"}, "--log-level"},
        {{"--model", "noequals"}, "--model"},
        {{"--max-connections", "0"}, "--max-connections"},
        {{"--bogus", "1"}, "--bogus"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct config cfg;
        struct err e = {0};
        assert_false(load(&cfg, &e, 2, cases[i].argv));
        assert_int_equal(e.code, ERR_INVALID);
        if (!strstr(e.msg, cases[i].needle))
            fail_msg("message '%s' does not name %s", e.msg, cases[i].needle);
    }
    setenv("MAASD_LISTEN", "nope", 1);
    struct config cfg;
    struct err e = {0};
    assert_false(load(&cfg, &e, 0, NULL));
    assert_non_null(strstr(e.msg, "MAASD_LISTEN"));
    unsetenv("MAASD_LISTEN");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_precedence),
        cmocka_unit_test(test_invalid_values_name_the_setting),
    };
    return cmocka_run_group_tests_name("config", tests, NULL, NULL);
}

/* test_apikey.c — API key format, checksum, hashing, comparison, display,
 * scopes (server/apikey.c), and the pepper file (server/pepper.c). */
#include "tests/unit/testutil.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "server/apikey.h"
#include "server/pepper.h"

static void test_generate_and_check(void **state)
{
    (void)state;
    struct err e = {0};
    char a[APIKEY_LEN + 1], b[APIKEY_LEN + 1];
    assert_true(apikey_generate(a, &e));
    assert_true(apikey_generate(b, &e));
    assert_int_equal(strlen(a), 38);
    assert_memory_equal(a, "mk_live_", 8);
    assert_string_not_equal(a, b);
    assert_true(apikey_check_format(a, strlen(a), &e));
    for (size_t i = 8; i < APIKEY_LEN; i++) {
        char c = a[i];
        assert_true((c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z'));
    }
}

static void test_malformed_keys_refused(void **state)
{
    (void)state;
    struct err e = {0};
    char k[APIKEY_LEN + 1];
    assert_true(apikey_generate(k, &e));
    /* Every single-character change in the random or checksum part is caught. */
    for (size_t i = APIKEY_PREFIX_LEN; i < APIKEY_LEN; i++) {
        char m[APIKEY_LEN + 1];
        memcpy(m, k, sizeof m);
        m[i] = m[i] == 'a' ? 'b' : 'a';
        err_clear(&e);
        assert_false(apikey_check_format(m, strlen(m), &e));
        assert_int_equal(e.code, ERR_UNAUTHENTICATED);
        assert_null(strstr(e.msg, m)); /* never echoes the key */
    }
    assert_false(apikey_check_format(k, APIKEY_LEN - 1, &e));
    char wrong_prefix[APIKEY_LEN + 1];
    memcpy(wrong_prefix, k, sizeof wrong_prefix);
    wrong_prefix[3] = 'X';
    assert_false(apikey_check_format(wrong_prefix, APIKEY_LEN, &e));
    char bad_char[APIKEY_LEN + 1];
    memcpy(bad_char, k, sizeof bad_char);
    bad_char[10] = '-';
    assert_false(apikey_check_format(bad_char, APIKEY_LEN, &e));
    assert_false(apikey_check_format("sk-abc", 6, &e));
    assert_false(apikey_check_format("", 0, &e));
}

static void test_hash_depends_on_pepper_and_key(void **state)
{
    (void)state;
    struct err e = {0};
    uint8_t p1[APIKEY_PEPPER_LEN] = {1}, p2[APIKEY_PEPPER_LEN] = {2};
    char k[APIKEY_LEN + 1];
    assert_true(apikey_generate(k, &e));
    uint8_t h1[32], h1b[32], h2[32], h3[32];
    assert_true(apikey_hash(p1, k, APIKEY_LEN, h1, &e));
    assert_true(apikey_hash(p1, k, APIKEY_LEN, h1b, &e));
    assert_true(apikey_hash(p2, k, APIKEY_LEN, h2, &e));
    k[20] ^= 1;
    assert_true(apikey_hash(p1, k, APIKEY_LEN, h3, &e));
    assert_true(apikey_hash_equal(h1, h1b));
    assert_false(apikey_hash_equal(h1, h2));
    assert_false(apikey_hash_equal(h1, h3));
    /* Known answer: HMAC-SHA-256 with a 32-byte key of 0x01..: checks we
     * really use HMAC (RFC 4231 style), not a bare hash. */
    uint8_t key[APIKEY_PEPPER_LEN];
    memset(key, 0x0b, sizeof key);
    uint8_t h[32];
    assert_true(apikey_hash(key, "Hi There", 8, h, &e));
    /* openssl dgst -sha256 -mac HMAC -macopt hexkey:0b*32 <<< -n "Hi There" */
    static const uint8_t want[32] = {
        0x19, 0x8a, 0x60, 0x7e, 0xb4, 0x4b, 0xfb, 0xc6, 0x99, 0x03, 0xa0, 0xf1, 0xcf, 0x2b,
        0xbd, 0xc5, 0xba, 0x0a, 0xa3, 0xf3, 0xd9, 0xae, 0x3c, 0x1c, 0x7a, 0x3b, 0x16, 0x96,
        0xa0, 0xb6, 0x8c, 0xf7};
    assert_memory_equal(h, want, 32);
}

static void test_hash_equal_any_position(void **state)
{
    (void)state;
    uint8_t a[32], b[32];
    for (int i = 0; i < 32; i++)
        a[i] = b[i] = (uint8_t)i;
    assert_true(apikey_hash_equal(a, b));
    for (int i = 0; i < 32; i++) {
        b[i] ^= 0x80;
        assert_false(apikey_hash_equal(a, b));
        b[i] ^= 0x80;
    }
}

static void test_display_prefix(void **state)
{
    (void)state;
    char out[APIKEY_DISPLAY_MAX];
    apikey_display("mk_live_abcdEFGHijklMNOPqrstUVWX123456", out);
    assert_string_equal(out, "mk_live_abcd…3456");
}

static void test_scopes(void **state)
{
    (void)state;
    struct err e = {0};
    unsigned m = 0;
    assert_true(apikey_scopes_parse("inference, usage:read", &m, &e));
    assert_int_equal(m, SCOPE_INFERENCE | SCOPE_USAGE_READ);
    char *j = apikey_scopes_json(m);
    assert_string_equal(j, "[\"inference\",\"usage:read\"]");
    cJSON *arr = cJSON_Parse(j);
    unsigned back = 0;
    assert_true(apikey_scopes_from_json(arr, &back, &e));
    assert_int_equal(back, m);
    cJSON_Delete(arr);
    free(j);
    assert_false(apikey_scopes_parse("inference,root", &m, &e));
    assert_int_equal(e.code, ERR_INVALID);
    assert_string_equal(e.param, "scopes");
    assert_false(apikey_scopes_parse("", &m, &e));
    assert_true(apikey_scopes_parse("admin finance", &m, &e));
    assert_int_equal(m, SCOPE_ADMIN | SCOPE_FINANCE);
}

static void test_pepper_file(void **state)
{
    (void)state;
    struct err e = {0};
    char path[4200];
    snprintf(path, sizeof path, "%s/db.pepper", test_tmpdir());
    uint8_t p1[32], p2[32];
    bool created = false;
    /* Missing and not allowed to create (keys exist): refused, told to restore. */
    assert_false(pepper_open(path, false, p1, &created, &e));
    assert_non_null(strstr(e.msg, "restore"));
    assert_true(pepper_open(path, true, p1, &created, &e));
    assert_true(created);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(st.st_size, 65);
    assert_true(pepper_open(path, true, p2, &created, &e));
    assert_false(created);
    assert_memory_equal(p1, p2, 32);
    chmod(path, 0644);
    assert_false(pepper_open(path, false, p2, &created, &e));
    assert_non_null(strstr(e.msg, "chmod 600"));
    chmod(path, 0600);
    FILE *f = fopen(path, "w");
    fputs("nothex\n", f);
    fclose(f);
    assert_false(pepper_open(path, false, p2, &created, &e));
    assert_int_equal(e.code, ERR_CORRUPT);
    char dflt[4200];
    assert_true(pepper_path("", "data/x.db", dflt, sizeof dflt, &e));
    assert_string_equal(dflt, "data/x.db.pepper");
    assert_true(pepper_path("/etc/p", "data/x.db", dflt, sizeof dflt, &e));
    assert_string_equal(dflt, "/etc/p");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_generate_and_check),
        cmocka_unit_test(test_malformed_keys_refused),
        cmocka_unit_test(test_hash_depends_on_pepper_and_key),
        cmocka_unit_test(test_hash_equal_any_position),
        cmocka_unit_test(test_display_prefix),
        cmocka_unit_test(test_scopes),
        cmocka_unit_test(test_pepper_file),
    };
    return cmocka_run_group_tests_name("apikey", tests, NULL, NULL);
}

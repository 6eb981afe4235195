/* test_audit.c — the hash-chained audit log (server/audit.c): appends,
 * append-only triggers, and detection of edited, re-hashed and missing
 * rows. */
#include "tests/unit/testutil.h"

#include <gnutls/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/audit.h"
#include "server/customers.h"
#include "server/sq.h"
#include "server/store.h"
#include "tests/unit/tenancy_fixture.h"

static void make_rows(struct fixture *f, int n)
{
    struct err e = {0};
    for (int i = 0; i < n; i++) {
        char *json = NULL;
        char name[32];
        snprintf(name, sizeof name, "Customer %d", i);
        fixture_begin(f);
        assert_true(customers_create(f->db, "cli:test", name, NULL, 1700000000000 + i, &json, &e));
        fixture_commit(f);
        free(json);
    }
}

static void test_chain_intact(void **state)
{
    (void)state;
    struct fixture f;
    fixture_open(&f);
    struct err e = {0};
    struct audit_verify_result r;
    assert_true(audit_verify(f.db, &r, &e));
    assert_int_equal(r.rows, 0);
    assert_int_equal(r.first_bad_seq, 0);
    make_rows(&f, 5);
    assert_true(audit_verify(f.db, &r, &e));
    assert_int_equal(r.rows, 5);
    assert_int_equal(r.first_bad_seq, 0);
    assert_int_equal(strlen(r.last_hash), 64);
    int64_t seq = 0;
    assert_true(sq_int(f.db, "SELECT max(seq) FROM audit_log", &seq, NULL, &e, SQ_END));
    assert_int_equal(seq, 5);
    fixture_close(&f);
}

static void test_canonical_form_is_documented(void **state)
{
    (void)state;
    struct fixture f;
    fixture_open(&f);
    struct err e = {0};
    fixture_begin(&f);
    assert_true(audit_append(f.db, "cli:ann", "customer.update", "cus_x", NULL, "{\"a\":1}",
                             1700000000123, &e));
    fixture_commit(&f);
    /* docs/billing.md: SHA-256 of prev_hash hex, then each field as
     * "<len>:<bytes>\n" ("-\n" for NULL). */
    const char *input =
        "0000000000000000000000000000000000000000000000000000000000000000"
        "1:1\n13:1700000000123\n7:cli:ann\n15:customer.update\n5:cus_x\n-\n7:{\"a\":1}\n";
    unsigned char d[32];
    assert_int_equal(gnutls_hash_fast(GNUTLS_DIG_SHA256, input, strlen(input), d), 0);
    char want[65];
    for (int i = 0; i < 32; i++)
        snprintf(want + 2 * i, 3, "%02x", d[i]);
    char *got = NULL;
    assert_true(sq_text(f.db, "SELECT hash FROM audit_log WHERE seq = 1", &got, &e, SQ_END));
    assert_string_equal(got, want);
    free(got);
    fixture_close(&f);
}

static void test_append_only(void **state)
{
    (void)state;
    struct fixture f;
    fixture_open(&f);
    make_rows(&f, 2);
    struct err e = {0};
    assert_false(sq_exec(f.db, "UPDATE audit_log SET actor = 'x' WHERE seq = 1", NULL, &e, SQ_END));
    assert_non_null(strstr(e.msg, "append-only"));
    assert_false(sq_exec(f.db, "DELETE FROM audit_log WHERE seq = 2", NULL, &e, SQ_END));
    assert_non_null(strstr(e.msg, "append-only"));
    fixture_close(&f);
}

static void test_tampering_detected(void **state)
{
    (void)state;
    struct fixture f;
    fixture_open(&f);
    make_rows(&f, 6);
    struct err e = {0};
    struct audit_verify_result r;
    assert_true(store_exec(f.db, "DROP TRIGGER audit_log_no_update; DROP TRIGGER audit_log_no_delete", &e));

    /* An edited row fails its own hash. */
    assert_true(store_exec(f.db, "UPDATE audit_log SET actor = 'cli:mallory' WHERE seq = 3", &e));
    assert_true(audit_verify(f.db, &r, &e));
    assert_int_equal(r.first_bad_seq, 3);
    assert_non_null(strstr(r.reason, "edited"));

    /* Re-hashing the edited row moves the break to the next link. */
    assert_true(store_exec(f.db, "UPDATE audit_log SET actor = 'cli:test' WHERE seq = 3", &e));
    assert_true(audit_verify(f.db, &r, &e));
    assert_int_equal(r.first_bad_seq, 0);
    assert_true(store_exec(f.db, "UPDATE audit_log SET after_json = '{}', hash = "
                                 "'1111111111111111111111111111111111111111111111111111111111111111' "
                                 "WHERE seq = 4", &e));
    assert_true(audit_verify(f.db, &r, &e));
    assert_int_equal(r.first_bad_seq, 4);
    assert_true(store_exec(f.db, "UPDATE audit_log SET after_json = '{}' WHERE seq = 4", &e));

    /* A deleted row is a gap. */
    struct fixture g;
    fixture_open(&g);
    make_rows(&g, 4);
    assert_true(store_exec(g.db, "DROP TRIGGER audit_log_no_delete; DELETE FROM audit_log WHERE seq = 2", &e));
    assert_true(audit_verify(g.db, &r, &e));
    assert_int_equal(r.first_bad_seq, 2);
    assert_non_null(strstr(r.reason, "missing"));
    fixture_close(&g);
    fixture_close(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_chain_intact),
        cmocka_unit_test(test_canonical_form_is_documented),
        cmocka_unit_test(test_append_only),
        cmocka_unit_test(test_tampering_detected),
    };
    return cmocka_run_group_tests_name("audit", tests, NULL, NULL);
}

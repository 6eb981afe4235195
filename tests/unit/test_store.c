/* test_store.c — opening, migrating and refusing databases (server/store.c,
 * server/migrate.c, server/writer.c). */
#include "tests/unit/testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/migrate.h"
#include "server/store.h"

static void path_in(char *out, size_t size, const char *name)
{
    snprintf(out, size, "%s/%s", test_tmpdir(), name);
}

static void test_migrate_fresh_and_idempotent(void **state)
{
    (void)state;
    char path[4200];
    path_in(path, sizeof path, "sub/dir/m.db"); /* parent directories are created */
    sqlite3 *db;
    struct err e = {0};
    assert_true(store_open(path, STORE_CREATE, &db, &e));
    int n = 0;
    assert_true(migrate_apply(db, true, NULL, &n, &e));
    assert_int_equal(n, migrations_embedded_count);       /* dry run: pending */
    int v = -1;
    assert_true(migrate_current_version(db, &v, &e));
    assert_int_equal(v, 0);
    assert_true(migrate_apply(db, false, NULL, &n, &e));
    assert_int_equal(n, migrations_embedded_count);
    assert_true(migrate_apply(db, false, NULL, &n, &e));
    assert_int_equal(n, 0);
    assert_true(migrate_current_version(db, &v, &e));
    assert_int_equal(v, migrate_latest_version());
    store_close(db);
}

static void test_refuses_newer_schema(void **state)
{
    (void)state;
    char path[4200];
    path_in(path, sizeof path, "new.db");
    sqlite3 *db;
    struct err e = {0};
    int n;
    assert_true(store_open(path, STORE_CREATE, &db, &e));
    assert_true(migrate_apply(db, false, NULL, &n, &e));
    assert_true(store_exec(db, "INSERT INTO schema_migrations VALUES (9999, '9999_future', 0)", &e));
    assert_false(migrate_apply(db, false, NULL, &n, &e));
    assert_int_equal(e.code, ERR_UNSUPPORTED);
    assert_non_null(strstr(e.msg, "newer"));
    store_close(db);
}

static void test_refuses_garbage_and_bad_paths(void **state)
{
    (void)state;
    char path[4200];
    path_in(path, sizeof path, "garbage.db");
    FILE *f = fopen(path, "w");
    for (int i = 0; i < 4096; i++)
        fputc('x', f);
    fclose(f);
    sqlite3 *db = NULL;
    struct err e = {0};
    assert_false(store_open(path, STORE_CREATE, &db, &e));
    assert_int_equal(e.code, ERR_CORRUPT);
    assert_non_null(strstr(e.msg, "not a database"));

    err_clear(&e);
    assert_false(store_open("/proc/maasd-cannot-exist/x.db", STORE_CREATE, &db, &e));
    assert_int_equal(e.code, ERR_IO);
    assert_null(db);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_migrate_fresh_and_idempotent),
        cmocka_unit_test(test_refuses_newer_schema),
        cmocka_unit_test(test_refuses_garbage_and_bad_paths),
    };
    return cmocka_run_group_tests_name("store", tests, NULL, NULL);
}

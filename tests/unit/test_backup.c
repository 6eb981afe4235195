/* test_backup.c — online backups of a real database while another
 * connection keeps committing: the copy holds every row committed before
 * the backup began, passes integrity_check, and is one self-contained
 * file; retention of periodic backups; refusals. */
#include <dirent.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "server/backup.h"
#include "server/store.h"
#include "tests/unit/testutil.h"

struct writer_arg {
    const char *db_path;
    atomic_int stop;
    atomic_long committed;       /* rows known committed */
};

/* Commits one row per transaction, as the daemon's ledger does under load
 * (synchronous=FULL, WAL). */
static void *writer_main(void *p)
{
    struct writer_arg *a = p;
    sqlite3 *db = NULL;
    struct err e = {0};
    if (!store_open(a->db_path, STORE_READWRITE, &db, &e)) {
        fprintf(stderr, "writer: %s\n", e.msg);
        atomic_store(&a->committed, -1);
        return NULL;
    }
    for (long i = 1; !atomic_load(&a->stop); i++) {
        char sql[128];
        snprintf(sql, sizeof sql, "INSERT INTO rows (n, pad) VALUES (%ld, zeroblob(512))", 2000 + i);
        if (!store_exec(db, sql, &e)) {
            fprintf(stderr, "writer: %s\n", e.msg);
            atomic_store(&a->committed, -1);
            break;
        }
        atomic_store(&a->committed, i);
    }
    store_close(db);
    return NULL;
}

static int64_t count_rows(const char *path)
{
    sqlite3 *db = NULL;
    struct err e = {0};
    assert_true(store_open(path, STORE_READONLY, &db, &e));
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(db, "SELECT count(*), coalesce(max(n), 0) FROM rows", -1,
                                        &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    int64_t n = sqlite3_column_int64(st, 0), mx = sqlite3_column_int64(st, 1);
    sqlite3_finalize(st);
    store_close(db);
    assert_int_equal(n, mx); /* rows 1..n, no gaps: whole transactions only */
    return n;
}

static void make_db(const char *path, int rows)
{
    sqlite3 *db = NULL;
    struct err e = {0};
    assert_true(store_open(path, STORE_CREATE, &db, &e));
    assert_true(store_exec(db, "CREATE TABLE rows (n INTEGER PRIMARY KEY, pad BLOB)", &e));
    assert_true(store_exec(db, "BEGIN", &e));
    for (int i = 1; i <= rows; i++) {
        char sql[128];
        snprintf(sql, sizeof sql, "INSERT INTO rows (n, pad) VALUES (%d, zeroblob(512))", i);
        assert_true(store_exec(db, sql, &e));
    }
    assert_true(store_exec(db, "COMMIT", &e));
    store_close(db);
}

static void test_backup_under_writes(void **state)
{
    (void)state;
    char db[4200], copy[4200];
    snprintf(db, sizeof db, "%s/live.db", test_tmpdir());
    make_db(db, 2000);
    struct writer_arg a = {.db_path = db};
    pthread_t th;
    pthread_create(&th, NULL, writer_main, &a);
    while (atomic_load(&a.committed) >= 0 && atomic_load(&a.committed) < 50)
        usleep(1000);
    assert_true(atomic_load(&a.committed) >= 50);
    for (int round = 0; round < 3; round++) {
        snprintf(copy, sizeof copy, "%s/copy-%d.db", test_tmpdir(), round);
        long before = atomic_load(&a.committed);
        struct backup_result r;
        struct err e = {0};
        assert_true(backup_run(db, copy, &r, &e));
        long after = atomic_load(&a.committed);
        assert_string_equal(r.path, copy);
        assert_true(r.pages > 0 && r.bytes > 0);
        int64_t n = count_rows(copy);
        /* Every row committed before the backup began is in the copy;
         * nothing committed after it ended can be. */
        assert_true(n >= 2000 + before);
        assert_true(n <= 2000 + after + 1);
        assert_true(after >= 0);
        /* One self-contained file, owner-only. */
        char side[4300];
        snprintf(side, sizeof side, "%s-wal", copy);
        assert_int_not_equal(access(side, F_OK), 0);
        struct stat st;
        assert_int_equal(stat(copy, &st), 0);
        assert_int_equal(st.st_mode & 0777, 0600);
    }
    atomic_store(&a.stop, 1);
    pthread_join(th, NULL);
    /* The writer went on while the copies ran. */
    assert_true(count_rows(db) > 2000 + 50);
}

static void test_refusals(void **state)
{
    (void)state;
    char db[4200], copy[4200], junk[4200];
    snprintf(db, sizeof db, "%s/r.db", test_tmpdir());
    snprintf(copy, sizeof copy, "%s/r-copy.db", test_tmpdir());
    make_db(db, 3);
    struct backup_result r;
    struct err e = {0};
    assert_true(backup_run(db, copy, &r, &e));
    /* An existing destination is never overwritten. */
    assert_false(backup_run(db, copy, &r, &e));
    assert_int_equal(e.code, ERR_CONFLICT);
    /* A source that is not a database fails, and leaves nothing behind. */
    snprintf(junk, sizeof junk, "%s/junk.db", test_tmpdir());
    FILE *f = fopen(junk, "w");
    fputs("this is not a database, not even close, just some text to fill a page", f);
    fclose(f);
    snprintf(copy, sizeof copy, "%s/junk-copy.db", test_tmpdir());
    assert_false(backup_run(junk, copy, &r, &e));
    assert_int_equal(e.code, ERR_CORRUPT);
    assert_int_not_equal(access(copy, F_OK), 0);
    snprintf(copy, sizeof copy, "%s/missing-copy.db", test_tmpdir());
    snprintf(junk, sizeof junk, "%s/missing.db", test_tmpdir());
    assert_false(backup_run(junk, copy, &r, &e));
    assert_int_equal(e.code, ERR_NOT_FOUND);
    DIR *d = opendir(test_tmpdir());
    struct dirent *de;
    while ((de = readdir(d)))
        assert_null(strstr(de->d_name, ".tmp-"));
    closedir(d);
}

static int count_backups(const char *dir)
{
    int n = 0;
    DIR *d = opendir(dir);
    struct dirent *de;
    while ((de = readdir(d)))
        n += strncmp(de->d_name, "maasd-backup-", 13) == 0;
    closedir(d);
    return n;
}

static void test_periodic_retention(void **state)
{
    (void)state;
    char db[4200], dir[4200], other[4300], path[4400];
    snprintf(db, sizeof db, "%s/p.db", test_tmpdir());
    snprintf(dir, sizeof dir, "%s/backups", test_tmpdir());
    make_db(db, 10);
    struct err e = {0};
    struct backup_result r;
    int64_t t0 = 1767225600000; /* 2026-01-01T00:00:00Z */
    assert_true(backup_periodic(db, dir, 2, t0, &r, &e));
    snprintf(path, sizeof path, "%s/maasd-backup-20260101T000000000Z.db", dir);
    assert_string_equal(r.path, path);
    /* Files that are not backups are never touched. */
    snprintf(other, sizeof other, "%s/maasd-backup-notes.txt", dir);
    FILE *f = fopen(other, "w");
    fclose(f);
    assert_true(backup_periodic(db, dir, 2, t0 + 3600000, &r, &e));
    assert_int_equal(r.deleted, 0);
    assert_true(backup_periodic(db, dir, 2, t0 + 7200123, &r, &e));
    assert_int_equal(r.deleted, 1);
    assert_int_equal(count_backups(dir), 3); /* two backups and the notes */
    assert_int_not_equal(access(path, F_OK), 0); /* the oldest went */
    snprintf(path, sizeof path, "%s/maasd-backup-20260101T020000123Z.db", dir);
    assert_int_equal(access(path, F_OK), 0);
    assert_int_equal(access(other, F_OK), 0);
    assert_int_equal(count_rows(path), 10);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_backup_under_writes),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_periodic_retention),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

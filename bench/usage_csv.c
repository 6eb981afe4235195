/* bench/usage_csv.c — the usage CSV export of one month streams with flat
 * memory, whether the month holds 100 000 or 1 000 000 ledger rows.
 *
 *   build/bench/usage_csv [--rows N] [--dir DIR] [--rebuild]
 *
 * The database holds 100 customers with 2 keys each and 3 models, and two
 * months of ledger rows inserted through ledger_insert() (the daemon's
 * INSERT, with its triggers) in transactions of 10 000: March 2031 with
 * N / 10 rows, May 2031 with N (default 1 000 000), spread evenly. It is
 * written once to DIR (default $TMPDIR or /tmp) as
 * maasd-bench-usage-<N>.db — a minute or two for a million rows — and
 * reused by later runs while its schema is current (--rebuild forces it).
 *
 * Both months are then exported as the finance CSV (1h buckets by
 * customer_id,model: server/usage_report.h, the producer behind GET
 * /admin/v1/usage?format=csv and `maasd report usage --format csv`) into
 * /dev/null, each in a fresh process (this binary, re-executed) so that
 * its peak RSS (getrusage) is the export's alone.
 *
 * Reported per month: rows, CSV size, export time, rows/s and MB/s, and —
 * the yardstick measured in the same run, in the same kind of fresh
 * process — the time of the least any export must do: walk the month's
 * rows in started_at order through the same index and read the same
 * columns. The figures that matter are the ratio of peak RSS between the
 * two months (flat memory: about 1) and the export time as a multiple of
 * that scan. It is a benchmark: it asserts nothing. */
#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "server/caltime.h"
#include "server/ledger.h"
#include "server/migrate.h"
#include "server/sq.h"
#include "server/store.h"
#include "server/usage_report.h"

extern char **environ;

#define CUSTOMERS 100
#define KEYS_PER_CUSTOMER 2
#define BATCH 10000
#define CHUNK (64 * 1024)

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static long peak_rss_kb(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss;
}

/* Resident now (the high-water mark alone would also hold whatever the
 * process start touched and freed). */
static long rss_kb(void)
{
    long pages = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f) {
        if (fscanf(f, "%ld %ld", &pages, &resident) != 2)
            resident = 0;
        fclose(f);
    }
    return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

static void die(const char *what, const struct err *e)
{
    fprintf(stderr, "usage_csv: %s: %s\n", what, e ? e->msg : strerror(errno));
    exit(1);
}

static int64_t month(int m)
{
    return caltime_ms_from_date((struct caltime_date){2031, m, 1});
}

/* ---- the database ------------------------------------------------------------------- */

static void build(const char *path, long rows_big)
{
    struct err e = {0};
    sqlite3 *db = NULL;
    int applied = 0;
    if (!store_open(path, STORE_CREATE, &db, &e) || !migrate_apply(db, false, NULL, &applied, &e))
        die("creating the database", &e);
    /* Setting up the data is not what is measured: no fsync per batch. */
    if (!store_exec(db, "PRAGMA synchronous = OFF", &e))
        die("pragma", &e);
    /* Customers and keys straight into their tables: the bench is about the
     * ledger. The key hashes only need to be unique. */
    if (!store_exec(db, "BEGIN", &e) ||
        !sq_exec(db,
                 "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < ?1 - 1) "
                 "INSERT INTO customers (id, name, created_at, updated_at) "
                 "SELECT printf('cus_bench%011d', i), 'Bench ' || i, 0, 0 FROM n",
                 NULL, &e, SQ_INT(CUSTOMERS), SQ_END) ||
        !sq_exec(db,
                 "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < ?1 - 1) "
                 "INSERT INTO api_keys (id, customer_id, display_prefix, hash, scopes, created_at) "
                 "SELECT printf('key_bench%011d', i), printf('cus_bench%011d', i / ?2), 'mk_live_x', "
                 "randomblob(32), '[\"inference\"]', 0 FROM n",
                 NULL, &e, SQ_INT(CUSTOMERS * KEYS_PER_CUSTOMER), SQ_INT(KEYS_PER_CUSTOMER),
                 SQ_END) ||
        !store_exec(db, "COMMIT", &e))
        die("customers", &e);
    static const char *const models[3] = {"stories", "tinyllama", "maasd-demo"};
    const struct { int month; long rows; } months[2] = {{3, rows_big / 10}, {5, rows_big}};
    double t0 = now_s();
    long total = 0;
    for (int m = 0; m < 2; m++) {
        int64_t from = month(months[m].month), span = month(months[m].month + 1) - from;
        for (long i = 0; i < months[m].rows; i++) {
            if (i % BATCH == 0 && !store_exec(db, "BEGIN", &e))
                die("begin", &e);
            struct usage_record r = {0};
            long k = (i * 7919) % (CUSTOMERS * KEYS_PER_CUSTOMER);
            snprintf(r.request_id, sizeof r.request_id, "req_%d_%010ld", months[m].month, i);
            snprintf(r.customer_id, sizeof r.customer_id, "cus_bench%011ld", k / KEYS_PER_CUSTOMER);
            snprintf(r.api_key_id, sizeof r.api_key_id, "key_bench%011ld", k);
            snprintf(r.model, sizeof r.model, "%s", models[i % 3]);
            snprintf(r.endpoint, sizeof r.endpoint, "/v1/chat/completions");
            snprintf(r.finish_reason, sizeof r.finish_reason, "stop");
            r.prompt_tokens = 20 + i % 500;
            r.completion_tokens = 1 + i % 200;
            r.client_aborted = i % 97 == 0;
            r.status = 200;
            r.compute_ms = 5 + i % 300;
            r.started_at = from + (int64_t)((double)span * (double)i / (double)months[m].rows);
            r.finished_at = r.started_at + r.compute_ms;
            r.plan_version_id = 1;
            if (!ledger_insert(db, &r, r.finished_at, NULL, &e))
                die("ledger_insert", &e);
            if ((i + 1) % BATCH == 0 || i + 1 == months[m].rows)
                if (!store_exec(db, "COMMIT", &e))
                    die("commit", &e);
        }
        total += months[m].rows;
    }
    double dt = now_s() - t0;
    store_close(db);
    struct stat st;
    stat(path, &st);
    printf("built: %ld ledger rows in %.1f s (%.0f rows/s through ledger_insert), database %.0f MB\n",
           total, dt, (double)total / dt, (double)st.st_size / 1e6);
}

static void remove_db(const char *path)
{
    char side[1100];
    unlink(path);
    snprintf(side, sizeof side, "%s-wal", path);
    unlink(side);
    snprintf(side, sizeof side, "%s-shm", path);
    unlink(side);
}

/* A database written by an earlier run, complete and at this schema. */
static bool reusable(const char *path, long rows)
{
    struct err e = {0};
    sqlite3 *db = NULL;
    if (access(path, F_OK) != 0 || !store_open(path, STORE_READONLY, &db, &e))
        return false;
    int v = 0;
    int64_t n = 0;
    bool ok = migrate_current_version(db, &v, &e) && v == migrate_latest_version() &&
              sq_int(db, "SELECT count(*) FROM usage_ledger", &n, NULL, &e, SQ_END) &&
              n == rows + rows / 10;
    store_close(db);
    return ok;
}

/* ---- in a fresh process: one export, or the scan ------------------------------------------ */

static int child(const char *what, const char *path, int m)
{
    struct err e = {0};
    long rss0 = rss_kb(), rss_max = rss0;
    sqlite3 *db = NULL;
    if (!store_open(path, STORE_READONLY, &db, &e) || !store_exec(db, "BEGIN", &e))
        die("open", &e);
    struct usage_report_query q = {.start = month(m), .end = month(m + 1),
                                   .bucket = USAGE_BUCKET_HOUR,
                                   .group_by = USAGE_GROUP_CUSTOMER | USAGE_GROUP_MODEL};
    double t0 = now_s();
    long long bytes = 0, lines = 0, rows = 0;
    if (strcmp(what, "scan") == 0) {
        /* The yardstick: the same rows, the same index, the same columns,
         * and nothing done with them but a sum. */
        sqlite3_stmt *st;
        if (!sq_prepare(db,
                        "SELECT started_at, customer_id, api_key_id, model, plan_version_id, "
                        "prompt_tokens, completion_tokens, client_aborted, compute_ms FROM "
                        "usage_ledger WHERE started_at >= ?1 AND started_at < ?2 ORDER BY started_at",
                        &st, &e, SQ_INT(q.start), SQ_INT(q.end), SQ_END))
            die("scan", &e);
        long long sum = 0;
        while (sqlite3_step(st) == SQLITE_ROW) {
            sum += sqlite3_column_int64(st, 5) + sqlite3_column_bytes(st, 1) +
                   sqlite3_column_bytes(st, 3);
            if (++rows % 65536 == 0) {
                long now = rss_kb();
                if (now > rss_max)
                    rss_max = now;
            }
        }
        sqlite3_finalize(st);
        bytes = sum % 2; /* keep the sum alive */
    } else {
        int out = open("/dev/null", O_WRONLY);
        struct usage_report *r = NULL;
        if (out < 0 || !usage_report_open(db, &q, &r, &e))
            die("export", &e);
        size_t cap = CHUNK + USAGE_REPORT_CSV_LINE_MAX, len;
        char *buf = malloc(cap);
        len = usage_report_csv_header(buf, cap);
        bool done = false;
        while (!done) {
            if (!usage_report_csv_fill(r, &buf, &len, &cap, CHUNK, &done, &e))
                die("export", &e);
            for (size_t i = 0; i < len; i++)
                lines += buf[i] == '\n';
            if (write(out, buf, len) != (ssize_t)len)
                die("write", NULL);
            bytes += (long long)len;
            len = 0;
            long now = rss_kb();
            if (now > rss_max)
                rss_max = now;
        }
        free(buf);
        usage_report_close(r);
        close(out);
        char sql[160];
        snprintf(sql, sizeof sql,
                 "SELECT count(*) FROM usage_ledger WHERE started_at >= %lld AND started_at < %lld",
                 (long long)q.start, (long long)q.end);
        sqlite3_stmt *st;
        if (!sq_prepare(db, sql, &st, &e, SQ_END) || sqlite3_step(st) != SQLITE_ROW)
            die("count", &e);
        rows = sqlite3_column_int64(st, 0);
        sqlite3_finalize(st);
    }
    double dt = now_s() - t0;
    store_close(db);
    long now = rss_kb();
    if (now > rss_max)
        rss_max = now;
    printf("%lld %lld %lld %.6f %ld %ld %ld\n", rows, bytes, lines, dt, rss0, rss_max,
           peak_rss_kb());
    return 0;
}

struct result {
    long long rows, bytes, lines;
    double seconds;
    long rss_start_kb, rss_peak_kb, hwm_kb;
};

static struct result spawn_child(const char *self, const char *what, const char *path, int m)
{
    int p[2];
    if (pipe(p) != 0)
        die("pipe", NULL);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, p[1], 1);
    posix_spawn_file_actions_addclose(&fa, p[0]);
    char month_arg[8];
    snprintf(month_arg, sizeof month_arg, "%d", m);
    char *argv[] = {(char *)self, "--child", (char *)what, (char *)path, month_arg, NULL};
    pid_t pid;
    if (posix_spawn(&pid, self, &fa, NULL, argv, environ) != 0)
        die("spawn", NULL);
    posix_spawn_file_actions_destroy(&fa);
    close(p[1]);
    FILE *f = fdopen(p[0], "r");
    struct result r = {0};
    if (fscanf(f, "%lld %lld %lld %lf %ld %ld %ld", &r.rows, &r.bytes, &r.lines, &r.seconds,
               &r.rss_start_kb, &r.rss_peak_kb, &r.hwm_kb) != 7)
        die("child output", NULL);
    fclose(f);
    int status;
    waitpid(pid, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        die("child failed", NULL);
    return r;
}

int main(int argc, char **argv)
{
    if (argc == 5 && strcmp(argv[1], "--child") == 0)
        return child(argv[2], argv[3], atoi(argv[4]));
    long rows = 1000000;
    const char *dir = getenv("TMPDIR");
    bool rebuild = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--rows") == 0 && i + 1 < argc)
            rows = atol(argv[++i]);
        else if (strcmp(argv[i], "--dir") == 0 && i + 1 < argc)
            dir = argv[++i];
        else if (strcmp(argv[i], "--rebuild") == 0)
            rebuild = true;
        else {
            fprintf(stderr, "usage: usage_csv [--rows N] [--dir DIR] [--rebuild]\n");
            return 2;
        }
    }
    if (rows < 1000)
        rows = 1000;
    char path[1024];
    snprintf(path, sizeof path, "%s/maasd-bench-usage-%ld.db", dir && *dir ? dir : "/tmp", rows);
    char self[1024];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0)
        die("readlink /proc/self/exe", NULL);
    self[n] = '\0';

    printf("usage CSV export of one month: 1h buckets by customer_id,model; %d customers, %d "
           "keys, 3 models\n", CUSTOMERS, CUSTOMERS * KEYS_PER_CUSTOMER);
    if (rebuild || !reusable(path, rows)) {
        remove_db(path);
        build(path, rows);
    } else {
        printf("reusing %s (--rebuild writes it again)\n", path);
    }
    struct result scan[2], csv[2];
    const int months[2] = {3, 5};
    for (int i = 0; i < 2; i++) {
        scan[i] = spawn_child(self, "scan", path, months[i]);
        csv[i] = spawn_child(self, "csv", path, months[i]);
    }
    printf("\n%-9s %9s %9s %8s %10s %9s %8s %11s %8s\n", "month", "rows", "CSV MB", "lines",
           "export s", "scan s", "x scan", "rows/s", "MB/s");
    for (int i = 0; i < 2; i++)
        printf("2031-%02d   %9lld %9.1f %8lld %10.3f %9.3f %8.2f %11.0f %8.1f\n", months[i],
               csv[i].rows, (double)csv[i].bytes / 1e6, csv[i].lines, csv[i].seconds,
               scan[i].seconds, csv[i].seconds / scan[i].seconds,
               (double)csv[i].rows / csv[i].seconds, (double)csv[i].bytes / 1e6 / csv[i].seconds);
    printf("\nRSS of the exporting process (resident, sampled after every 64 kB chunk):\n");
    for (int i = 0; i < 2; i++)
        printf("  %8lld rows: %6.1f MB before the export, %6.1f MB at most during it (+%.1f MB); "
               "high-water mark %.1f MB (scan: +%.1f MB)\n",
               csv[i].rows, csv[i].rss_start_kb / 1024.0, csv[i].rss_peak_kb / 1024.0,
               (csv[i].rss_peak_kb - csv[i].rss_start_kb) / 1024.0, csv[i].hwm_kb / 1024.0,
               (scan[i].rss_peak_kb - scan[i].rss_start_kb) / 1024.0);
    printf("peak RSS ratio, %lld rows / %lld rows: %.2f (flat memory: about 1)\n", csv[1].rows,
           csv[0].rows, (double)csv[1].rss_peak_kb / (double)csv[0].rss_peak_kb);
    return 0;
}

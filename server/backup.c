/* backup.c — see backup.h. */
#include "server/backup.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "server/store.h"

#define BACKUP_PREFIX "maasd-backup-"
#define BACKUP_SUFFIX ".db"

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static bool fsync_path(const char *path, bool dir, struct err *e)
{
    int fd = open(path, (dir ? O_RDONLY | O_DIRECTORY : O_RDWR) | O_CLOEXEC);
    if (fd < 0)
        return err_set(e, ERR_IO, "backup: cannot open '%s' to sync it: %s", path,
                       strerror(errno));
    int rc = fsync(fd);
    int err = errno;
    close(fd);
    if (rc != 0)
        return err_set(e, ERR_IO, "backup: fsync '%s': %s", path, strerror(err));
    return true;
}

static void dir_of(const char *path, char *out, size_t size)
{
    snprintf(out, size, "%s", path);
    char *slash = strrchr(out, '/');
    if (!slash)
        snprintf(out, size, ".");
    else if (slash == out)
        out[1] = '\0';
    else
        *slash = '\0';
}

/* Copy into `tmp` (a fresh file): one step, then a self-contained file,
 * checked. */
static bool copy_to(sqlite3 *src, const char *tmp, struct backup_result *out, struct err *e)
{
    sqlite3 *dst = NULL;
    if (sqlite3_open_v2(tmp, &dst, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                        NULL) != SQLITE_OK) {
        store_fail(dst, "backup: cannot create the copy", e);
        sqlite3_close(dst);
        return false;
    }
    sqlite3_busy_timeout(dst, STORE_BUSY_TIMEOUT_MS);
    bool ok = false;
    sqlite3_backup *b = sqlite3_backup_init(dst, "main", src, "main");
    if (!b) {
        store_fail(dst, "backup", e);
        goto done;
    }
    /* One step: the whole copy under one read transaction (backup.h). A
     * busy source (a writer holding the lock at a checkpoint) is retried by
     * the busy timeout of the source connection. */
    int rc = sqlite3_backup_step(b, -1);
    out->pages = sqlite3_backup_pagecount(b);
    int frc = sqlite3_backup_finish(b);
    if (rc != SQLITE_DONE) {
        err_set(e, rc == SQLITE_BUSY || rc == SQLITE_LOCKED ? ERR_UNAVAILABLE : ERR_IO,
                "backup: copying failed: %s", sqlite3_errstr(rc));
        goto done;
    }
    if (frc != SQLITE_OK) {
        store_fail(dst, "backup", e);
        goto done;
    }
    char *check = NULL;
    sqlite3_stmt *st = NULL;
    if (!store_exec(dst, "PRAGMA journal_mode=DELETE", e))
        goto done;
    if (sqlite3_prepare_v2(dst, "PRAGMA integrity_check", -1, &st, NULL) != SQLITE_OK) {
        store_fail(dst, "backup: integrity check", e);
        goto done;
    }
    if (sqlite3_step(st) == SQLITE_ROW)
        check = strdup((const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    if (!check || strcmp(check, "ok") != 0) {
        err_set(e, ERR_CORRUPT, "backup: the copy fails its integrity check: %s",
                check ? check : "no answer");
        free(check);
        goto done;
    }
    free(check);
    ok = true;
done:
    if (sqlite3_close(dst) != SQLITE_OK && ok)
        ok = err_set(e, ERR_IO, "backup: closing the copy failed");
    return ok;
}

bool backup_run(const char *db_path, const char *dest_path, struct backup_result *out,
                struct err *e)
{
    memset(out, 0, sizeof *out);
    int64_t t0 = mono_ms();
    struct stat st;
    if (stat(dest_path, &st) == 0)
        return err_set_param(e, ERR_CONFLICT, "to",
                             "backup: '%s' already exists; choose a new name", dest_path);
    if (access(db_path, R_OK) != 0)
        return err_set_param(e, ERR_NOT_FOUND, "db", "backup: cannot read the database '%s': %s",
                             db_path, strerror(errno));
    char tmp[PATH_MAX];
    if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp-%ld", dest_path, (long)getpid()) >= sizeof tmp)
        return err_set_param(e, ERR_INVALID, "to", "backup: path too long");
    unlink(tmp);

    sqlite3 *src = NULL;
    if (!store_open(db_path, STORE_READONLY, &src, e))
        return false;
    bool ok = copy_to(src, tmp, out, e);
    store_close(src);
    char dir[PATH_MAX];
    dir_of(dest_path, dir, sizeof dir);
    /* A backup holds everything the database does: owner-only. */
    if (ok && chmod(tmp, 0600) != 0)
        ok = err_set(e, ERR_IO, "backup: chmod '%s': %s", tmp, strerror(errno));
    if (ok)
        ok = fsync_path(tmp, false, e);
    if (ok && rename(tmp, dest_path) != 0)
        ok = err_set(e, ERR_IO, "backup: cannot rename the copy to '%s': %s", dest_path,
                     strerror(errno));
    if (ok)
        ok = fsync_path(dir, true, e);
    if (!ok) {
        unlink(tmp);
        char j[PATH_MAX + 16];
        snprintf(j, sizeof j, "%s-journal", tmp);
        unlink(j);
        return false;
    }
    snprintf(out->path, sizeof out->path, "%s", dest_path);
    if (stat(dest_path, &st) == 0)
        out->bytes = (int64_t)st.st_size;
    out->duration_ms = mono_ms() - t0;
    return true;
}

static bool is_backup_name(const char *n)
{
    size_t len = strlen(n), pl = strlen(BACKUP_PREFIX), sl = strlen(BACKUP_SUFFIX);
    /* maasd-backup-20260101T000000000Z.db */
    if (len != pl + 19 + sl || strncmp(n, BACKUP_PREFIX, pl) != 0 ||
        strcmp(n + len - sl, BACKUP_SUFFIX) != 0)
        return false;
    const char *t = n + pl;
    for (int i = 0; i < 19; i++) {
        bool digit = t[i] >= '0' && t[i] <= '9';
        if ((i == 8 && t[i] != 'T') || (i == 18 && t[i] != 'Z') ||
            (i != 8 && i != 18 && !digit))
            return false;
    }
    return true;
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Delete the oldest backups beyond `keep`; returns how many went. */
static int prune(const char *dir, int keep)
{
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (!is_backup_name(de->d_name))
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            char **nn = realloc(names, cap * sizeof *nn);
            if (!nn)
                break;
            names = nn;
        }
        if (!(names[n] = strdup(de->d_name)))
            break;
        n++;
    }
    closedir(d);
    qsort(names, n, sizeof *names, cmp_names);
    int deleted = 0;
    for (size_t i = 0; i < n; i++) {
        if (n - i > (size_t)keep) {
            char path[PATH_MAX];
            snprintf(path, sizeof path, "%s/%s", dir, names[i]);
            if (unlink(path) == 0)
                deleted++;
        }
        free(names[i]);
    }
    free(names);
    return deleted;
}

bool backup_periodic(const char *db_path, const char *dir, int keep, int64_t now_ms,
                     struct backup_result *out, struct err *e)
{
    if (mkdir(dir, 0750) != 0 && errno != EEXIST)
        return err_set_param(e, ERR_IO, "backup-dir", "backup: cannot create '%s': %s", dir,
                             strerror(errno));
    time_t secs = (time_t)(now_ms / 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    char path[PATH_MAX];
    if ((size_t)snprintf(path, sizeof path, "%s/" BACKUP_PREFIX "%04d%02d%02dT%02d%02d%02d%03dZ"
                         BACKUP_SUFFIX, dir, tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                         tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(now_ms % 1000)) >= sizeof path)
        return err_set_param(e, ERR_INVALID, "backup-dir", "backup: path too long");
    if (!backup_run(db_path, path, out, e))
        return false;
    out->deleted = prune(dir, keep);
    return true;
}

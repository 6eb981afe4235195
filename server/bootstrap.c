/* bootstrap.c — see bootstrap.h. */
#include "server/bootstrap.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "server/admission.h"
#include "server/auth.h"
#include "server/caltime.h"
#include "server/customers.h"
#include "server/daemon.h"
#include "server/idempotency.h"
#include "server/keys.h"
#include "server/ledger.h"
#include "server/log.h"
#include "server/pepper.h"
#include "server/sq.h"
#include "server/store.h"
#include "server/subscriptions.h"

#define ACTOR "system:bootstrap"
#define TICK_MS 60000

bool bootstrap_credentials_path(const char *db_path, char *out, size_t size, struct err *e)
{
    const char *slash = strrchr(db_path, '/');
    int n = slash ? snprintf(out, size, "%.*s/maasd-credentials.txt", (int)(slash - db_path), db_path)
                  : snprintf(out, size, "maasd-credentials.txt");
    if (n < 0 || (size_t)n >= size)
        return err_set_param(e, ERR_INVALID, "db", "database path too long");
    return true;
}

struct issued {
    char customer[RANDID_MAX];
    char secret[APIKEY_LEN + 1];
};

static bool make_customer(sqlite3 *db, const uint8_t *pepper, const char *name, unsigned scopes,
                          const char *key_name, const char *plan, int64_t now,
                          struct issued *out, struct err *e)
{
    char *json = NULL;
    bool ok = customers_create(db, ACTOR, name, NULL, now, &json, e);
    if (ok) {
        cJSON *j = cJSON_Parse(json);
        snprintf(out->customer, sizeof out->customer, "%s",
                 cJSON_GetStringValue(cJSON_GetObjectItem(j, "id")));
        cJSON_Delete(j);
    }
    free(json);
    json = NULL;
    if (ok && plan) {
        ok = subscriptions_create(db, ACTOR, out->customer, plan, 0, now, &json, e);
        free(json);
        json = NULL;
    }
    struct key_issue in = {.customer_id = out->customer, .name = key_name, .scopes = scopes};
    ok = ok && keys_issue(db, ACTOR, pepper, &in, now, out->secret, &json, e);
    free(json);
    return ok;
}

/* Written beside, then renamed over any stale file of an older database. */
static bool write_credentials(const char *path, const struct issued *admin,
                              const struct issued *demo, int64_t now, struct err *e)
{
    char tmp[4200], when[32];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    caltime_format(now, when, sizeof when);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return err_set_param(e, ERR_IO, "db", "cannot write '%s': %s", tmp, strerror(errno));
    char text[1024];
    int n = snprintf(text, sizeof text,
                     "# maasd first-start credentials, created %s.\n"
                     "# Shown once: store them somewhere safe, then delete this file.\n"
                     "MAASD_ADMIN_KEY=%s\nMAASD_DEMO_KEY=%s\n"
                     "MAASD_OPERATOR_CUSTOMER=%s\nMAASD_DEMO_CUSTOMER=%s\n",
                     when, admin->secret, demo->secret, admin->customer, demo->customer);
    bool ok = write(fd, text, (size_t)n) == n && fsync(fd) == 0;
    int saved = errno;
    close(fd);
    memset(text, 0, sizeof text);
    if (ok && rename(tmp, path) != 0) {
        saved = errno;
        ok = false;
    }
    if (!ok) {
        unlink(tmp);
        return err_set_param(e, ERR_IO, "db", "cannot write '%s': %s", path, strerror(saved));
    }
    return true;
}

bool bootstrap_first_start(sqlite3 *db, const uint8_t pepper[APIKEY_PEPPER_LEN],
                           const char *credentials_path, FILE *out, bool *created, struct err *e)
{
    *created = false;
    if (!store_exec(db, "BEGIN IMMEDIATE", e))
        return false;
    int64_t any = 0, now = store_now_ms();
    bool found = false;
    struct issued admin = {0}, demo = {0};
    bool ok = sq_int(db, "SELECT 1 FROM customers LIMIT 1", &any, &found, e, SQ_END);
    if (ok && !found) {
        ok = make_customer(db, pepper, "Operator", SCOPE_ADMIN | SCOPE_FINANCE, "operator admin",
                           NULL, now, &admin, e) &&
             make_customer(db, pepper, "Demo", SCOPE_INFERENCE | SCOPE_USAGE_READ, "demo", "free",
                           now, &demo, e) &&
             write_credentials(credentials_path, &admin, &demo, now, e);
        if (ok && !store_exec(db, "COMMIT", e)) {
            unlink(credentials_path);
            ok = false;
        }
        *created = ok;
    }
    if (!*created)
        sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
    if (*created && out) {
        fprintf(out,
                "maasd: first start: created an operator and a demo customer. Their API keys are "
                "shown once, here and in %s (mode 0600):\n"
                "admin key (operator; scopes admin, finance): %s\n"
                "demo key (demo customer, free plan; scopes inference, usage:read): %s\n",
                credentials_path, admin.secret, demo.secret);
        fflush(out);
    }
    memset(&admin, 0, sizeof admin);
    memset(&demo, 0, sizeof demo);
    return ok;
}

/* ---- the minute tick ------------------------------------------------------------- */

struct tick {
    int64_t now;
    int renewed, failed, purged;
    struct err failure;
};

static bool tick_renew(sqlite3 *db, void *arg, struct err *e)
{
    struct tick *t = arg;
    return subscriptions_roll(db, t->now, &t->renewed, &t->failed, &t->failure) ||
           err_set(e, t->failure.code, "%s", t->failure.msg);
}

static bool tick_purge(sqlite3 *db, void *arg, struct err *e)
{
    struct tick *t = arg;
    return idempotency_purge(db, t->now, &t->purged, e);
}

static void tick_renew_done(void *arg, const struct err *e)
{
    struct tick *t = arg;
    if (e)
        log_line(LOG_ERROR, "subscription renewal failed", LF_STR("error", e->msg), LF_END);
    else if (t->failed)
        log_line(LOG_ERROR, "subscriptions could not be renewed", LF_INT("count", t->failed),
                 LF_STR("error", t->failure.msg), LF_END);
    if (!e && t->renewed)
        log_line(LOG_INFO, "subscriptions renewed", LF_INT("count", t->renewed), LF_END);
    free(t);
}

static void tick_purge_done(void *arg, const struct err *e)
{
    struct tick *t = arg;
    if (e)
        log_line(LOG_ERROR, "idempotency purge failed", LF_STR("error", e->msg), LF_END);
    else if (t->purged)
        log_line(LOG_DEBUG, "idempotency keys purged", LF_INT("count", t->purged), LF_END);
    free(t);
}

static void on_tick(uv_timer_t *timer)
{
    struct daemon_ctx *d = timer->data;
    if (d->shutting_down)
        return;
    int64_t now = store_now_ms();
    struct tick *a = calloc(1, sizeof *a), *b = calloc(1, sizeof *b);
    if (!a || !b)
        abort();
    a->now = b->now = now;
    writer_submit(d->writer, tick_renew, tick_renew_done, a);
    writer_submit(d->writer, tick_purge, tick_purge_done, b);
    admission_sweep(d->admission, now);
}

static bool prepare(const struct config *cfg, const uint8_t *pepper, struct err *e)
{
    sqlite3 *db = NULL;
    char cred[CONFIG_PATH_MAX + 32];
    bool created = false;
    bool ok = bootstrap_credentials_path(cfg->db_path, cred, sizeof cred, e) &&
              store_open(cfg->db_path, STORE_READWRITE, &db, e) &&
              bootstrap_first_start(db, pepper, cred, stderr, &created, e) &&
              idempotency_recover(db, e);
    store_close(db);
    if (ok && created)
        log_line(LOG_INFO, "first start: operator and demo customers created",
                 LF_STR("credentials", cred), LF_END);
    return ok;
}

/* Admission's period-usage loader: the daily rollup on db_read. */
static bool load_usage(void *arg, const char *customer_id, int64_t start, int64_t end,
                       int64_t *tokens, struct err *e)
{
    struct daemon_ctx *d = arg;
    struct usage_totals u;
    if (!ledger_usage(d->db_read, customer_id, start, end, &u, e))
        return false;
    *tokens = u.prompt_tokens + u.completion_tokens;
    return true;
}

bool bootstrap_daemon(struct daemon_ctx *d, struct err *e)
{
    char path[CONFIG_PATH_MAX + 16];
    bool any = true, created = false;
    if (!pepper_path(d->cfg.key_pepper_file, d->cfg.db_path, path, sizeof path, e) ||
        !keys_any(d->db_read, &any, e) || !pepper_open(path, !any, d->key_pepper, &created, e))
        return false;
    if (created)
        log_line(LOG_INFO, "created the API key pepper; back it up apart from the database",
                 LF_STR("path", path), LF_END);
    if (!prepare(&d->cfg, d->key_pepper, e) || !auth_open(d->db_read, d->key_pepper, &d->auth, e))
        return false;
    d->idempotency = idempotency_new((int64_t)d->cfg.idempotency_retention_ms);
    d->admission = admission_new(load_usage, d);
    if (!d->idempotency || !d->admission)
        return err_set(e, ERR_NOMEM, "out of memory");
    uv_timer_init(&d->loop, &d->tenancy_timer);
    d->tenancy_timer.data = d;
    uv_timer_start(&d->tenancy_timer, on_tick, TICK_MS, TICK_MS);
    return true;
}

void bootstrap_daemon_stop(struct daemon_ctx *d)
{
    auth_close(d->auth);
    d->auth = NULL;
    idempotency_free(d->idempotency);
    d->idempotency = NULL;
    admission_free(d->admission);
    d->admission = NULL;
    memset(d->key_pepper, 0, sizeof d->key_pepper);
}

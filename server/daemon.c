/* daemon.c — see daemon.h. */
#include "server/daemon.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <errno.h>

#include "api/api.h"
#include "server/backup.h"
#include "server/bootstrap.h"
#include "server/log.h"
#include "server/metrics.h"
#include "server/tls.h"
#include "server/migrate.h"
#include "server/store.h"
#include "server/version.h"

/* Open, check and migrate the database; the connection is closed again (the
 * writer thread and the loop open their own). */
static bool prepare_database(const struct config *cfg, struct err *e)
{
    sqlite3 *db = NULL;
    if (!store_open(cfg->db_path, STORE_CREATE, &db, e))
        return false;
    int applied = 0;
    bool ok = migrate_apply(db, false, NULL, &applied, e);
    if (ok && applied > 0)
        log_line(LOG_INFO, "database migrated", LF_STR("db", cfg->db_path),
                 LF_INT("applied", applied), LF_INT("version", migrate_latest_version()), LF_END);
    store_close(db);
    return ok;
}

static void on_all_closed(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

static void on_http_closed(void *arg)
{
    struct daemon_ctx *d = arg;
    d->http = NULL;
    /* Close whatever handles remain (signals, timers, the mailbox) so that
     * uv_run() returns. */
    mailbox_close(&d->mailbox);
    uv_walk(&d->loop, on_all_closed, NULL);
}

static void on_shutdown_tick(uv_timer_t *t)
{
    struct daemon_ctx *d = t->data;
    unsigned left = http_server_in_flight(d->http);
    bool timed_out = uv_now(&d->loop) >= d->shutdown_deadline_ms;
    if (left > 0 && !timed_out)
        return;
    uv_timer_stop(t);
    if (left > 0)
        log_line(LOG_WARN, "shutdown timeout: aborting requests", LF_INT("in_flight", left),
                 LF_END);
    http_server_stop(d->http, on_http_closed, d);
}

static void on_signal(uv_signal_t *s, int signum)
{
    struct daemon_ctx *d = s->data;
    if (d->shutting_down) {
        log_line(LOG_WARN, "second signal: exiting now", LF_INT("signal", signum), LF_END);
        _exit(1);
    }
    d->shutting_down = true;
    log_line(LOG_INFO, "shutting down", LF_INT("signal", signum),
             LF_INT("in_flight", http_server_in_flight(d->http)),
             LF_INT("timeout_ms", (int64_t)d->cfg.shutdown_timeout_ms), LF_END);
    http_server_quiesce(d->http);
    d->shutdown_deadline_ms = uv_now(&d->loop) + d->cfg.shutdown_timeout_ms;
    uv_timer_start(&d->shutdown_timer, on_shutdown_tick, 0, 20);
}

/* The metrics bearer token: the file's first line, surrounding whitespace
 * dropped (Kubernetes Secrets and `echo` add a newline). */
static bool load_metrics_token(const char *path, char *out, size_t size, struct err *e)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return err_set_param(e, ERR_INVALID, "metrics-token-file",
                             "--metrics-token-file: cannot read '%s': %s", path, strerror(errno));
    char buf[512] = "";
    bool got = fgets(buf, sizeof buf, f) != NULL;
    fclose(f);
    char *p = buf, *end;
    while (*p == ' ' || *p == '\t')
        p++;
    end = p + strlen(p);
    while (end > p && (end[-1] == '\n' || end[-1] == '\r' || end[-1] == ' ' || end[-1] == '\t'))
        *--end = '\0';
    size_t n = strlen(p);
    if (!got || n < 16 || n >= size) {
        memset(buf, 0, sizeof buf);
        return err_set_param(e, ERR_INVALID, "metrics-token-file",
                             "--metrics-token-file: '%s' must hold a token of 16 to %zu "
                             "characters on its first line", path, size - 1);
    }
    memcpy(out, p, n + 1);
    memset(buf, 0, sizeof buf);
    return true;
}

static void on_sighup(uv_signal_t *s, int signum)
{
    (void)signum;
    struct daemon_ctx *d = s->data;
    struct err e = {0};
    if (d->tls) {
        bool ok = tls_reload(d->tls, &e);
        metrics_tls_loaded(d->metrics, ok, ok ? tls_not_after(d->tls) : 0);
        if (ok)
            log_line(LOG_INFO, "TLS certificate reloaded",
                     LF_STR("sha256", tls_fingerprint(d->tls)),
                     LF_INT("not_after", tls_not_after(d->tls)), LF_END);
        else
            log_line(LOG_ERROR, "TLS reload failed; the previous certificate stays in service",
                     LF_STR("error", e.msg), LF_END);
    }
    if (d->cfg.metrics_token_file[0]) {
        char tok[sizeof d->metrics_token];
        if (load_metrics_token(d->cfg.metrics_token_file, tok, sizeof tok, &e)) {
            memcpy(d->metrics_token, tok, sizeof tok);
            log_line(LOG_INFO, "metrics token reloaded", LF_END);
        } else {
            log_line(LOG_ERROR, "metrics token reload failed; the previous token stays",
                     LF_STR("error", e.msg), LF_END);
        }
        memset(tok, 0, sizeof tok);
    }
}

/* ---- periodic backups: the copy runs on a libuv worker thread ---- */

struct backup_job {
    uv_work_t work;
    struct daemon_ctx *d;
    int64_t at_ms;
    bool ok;
    struct backup_result res;
    struct err err;
};

static void backup_work(uv_work_t *w)
{
    struct backup_job *j = w->data;
    const struct config *cfg = &j->d->cfg;
    j->ok = backup_periodic(cfg->db_path, cfg->backup_dir, cfg->backup_keep, j->at_ms, &j->res,
                            &j->err);
}

static void backup_after(uv_work_t *w, int status)
{
    struct backup_job *j = w->data;
    struct daemon_ctx *d = j->d;
    d->backup_running = false;
    bool ok = status == 0 && j->ok;
    metrics_backup_done(d->metrics, ok, (double)j->res.duration_ms / 1e3, j->at_ms);
    if (ok)
        log_line(LOG_INFO, "backup written", LF_STR("path", j->res.path),
                 LF_INT("bytes", j->res.bytes), LF_INT("duration_ms", j->res.duration_ms),
                 LF_INT("deleted_old", j->res.deleted), LF_END);
    else
        log_line(LOG_ERROR, "backup failed", LF_STR("error", status ? "cancelled" : j->err.msg),
                 LF_END);
    free(j);
}

static void on_backup_timer(uv_timer_t *t)
{
    struct daemon_ctx *d = t->data;
    if (d->backup_running || d->shutting_down)
        return; /* the previous copy is still running: skip this turn */
    struct backup_job *j = calloc(1, sizeof *j);
    if (!j)
        return;
    j->d = d;
    j->at_ms = store_now_ms();
    j->work.data = j;
    if (uv_queue_work(&d->loop, &j->work, backup_work, backup_after) != 0) {
        free(j);
        return;
    }
    d->backup_running = true;
}

/* Metrics, TLS and periodic backups, before the listener starts. */
static bool ops_start(struct daemon_ctx *d, struct err *e)
{
    const struct config *cfg = &d->cfg;
    if (!metrics_create(maasd_version, maasd_git_commit, &d->metrics, e))
        return false;
    if (cfg->metrics_token_file[0] &&
        !load_metrics_token(cfg->metrics_token_file, d->metrics_token, sizeof d->metrics_token, e))
        return false;
    if (cfg->tls_cert[0] || cfg->tls_key[0]) {
        if (!tls_open(cfg->tls_cert, cfg->tls_key, &d->tls, e))
            return false;
        metrics_tls_loaded(d->metrics, true, tls_not_after(d->tls));
    }
    return true;
}

int daemon_serve(const struct config *cfg)
{
    struct daemon_ctx *d = calloc(1, sizeof *d);
    if (!d) {
        fprintf(stderr, "maasd: out of memory\n");
        return 1;
    }
    d->cfg = *cfg;
    log_set_level(cfg->log_level);
    signal(SIGPIPE, SIG_IGN);

    struct err e = {0};
    int rc = 1;
    uv_loop_init(&d->loop);
    mailbox_init(&d->mailbox, &d->loop);

    struct http_options hopt = {
        .host = cfg->listen_host,
        .port = cfg->listen_port,
        .max_connections = (unsigned)cfg->max_connections,
        .connection_timeout_s = (unsigned)((cfg->connection_timeout_ms + 999) / 1000),
        .max_body_bytes = cfg->max_body_bytes,
    };
    struct http_handlers handlers = {
        .on_headers = api_on_headers,
        .on_request = api_on_request,
        .on_error = api_on_error,
        .on_done = api_on_done,
        .ctx = d,
    };
    if (!ops_start(d, &e))
        goto fail;
    hopt.tls = d->tls;
    /* Listen first: an occupied port fails before the database is touched.
     * Nothing is accepted until the loop runs, after everything is open. */
    if (!http_server_start(&d->loop, &hopt, &handlers, &d->http, &e))
        goto fail;
    if (!prepare_database(cfg, &e) ||
        !writer_start(cfg->db_path, &d->mailbox, &d->writer, &e) ||
        !store_open(cfg->db_path, STORE_READONLY, &d->db_read, &e) ||
        !bootstrap_daemon(d, &e))
        goto fail;

    if (!models_load(cfg, &d->loop, d->db_read, &d->models, &e))
        goto fail;
    d->models_loaded = true;

    uv_signal_init(&d->loop, &d->sig_term);
    uv_signal_init(&d->loop, &d->sig_int);
    d->sig_term.data = d->sig_int.data = d;
    uv_signal_start(&d->sig_term, on_signal, SIGTERM);
    uv_signal_start(&d->sig_int, on_signal, SIGINT);
    uv_timer_init(&d->loop, &d->shutdown_timer);
    d->shutdown_timer.data = d;
    uv_signal_init(&d->loop, &d->sig_hup);
    d->sig_hup.data = d;
    uv_signal_start(&d->sig_hup, on_sighup, SIGHUP);
    if (cfg->backup_dir[0]) {
        uv_timer_init(&d->loop, &d->backup_timer);
        d->backup_timer.data = d;
        uv_timer_start(&d->backup_timer, on_backup_timer, cfg->backup_every_ms,
                       cfg->backup_every_ms);
    }

    log_line(LOG_INFO, "listening", LF_STR("host", cfg->listen_host),
             LF_INT("port", http_server_port(d->http)), LF_STR("db", cfg->db_path),
             LF_STR("scheme", d->tls ? "https" : "http"),
             LF_STR("version", maasd_version), LF_STR("commit", maasd_git_commit), LF_END);

    uv_run(&d->loop, UV_RUN_DEFAULT);
    rc = 0;
    goto done;

fail:
    fprintf(stderr, "maasd: %s\n", e.msg);
    if (d->http) {
        http_server_stop(d->http, NULL, NULL);
        d->http = NULL;
    }
    mailbox_close(&d->mailbox);
    uv_walk(&d->loop, on_all_closed, NULL);
    uv_run(&d->loop, UV_RUN_DEFAULT);

done:
    /* Stopping the schedulers delivers the final events of whatever they
     * still held (cancelled); those may queue ledger writes, which the
     * writer commits before it stops. Each stage's deliveries are drained
     * here, after the loop has stopped, and the loop turned once more so
     * that handles closed by them are released. */
    models_stop(&d->models);
    mailbox_drain(&d->mailbox);
    uv_run(&d->loop, UV_RUN_NOWAIT);
    writer_stop(d->writer);
    mailbox_drain(&d->mailbox);
    uv_run(&d->loop, UV_RUN_NOWAIT);
    models_free(&d->models);
    bootstrap_daemon_stop(d);
    store_close(d->db_read);
    tls_close(d->tls);
    metrics_destroy(d->metrics);
    memset(d->metrics_token, 0, sizeof d->metrics_token);
    if (uv_loop_close(&d->loop) != 0)
        log_line(LOG_WARN, "event loop closed with handles open", LF_END);
    if (rc == 0)
        log_line(LOG_INFO, "stopped", LF_END);
    free(d);
    return rc;
}

/* daemon.c — see daemon.h. */
#include "server/daemon.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api/api.h"
#include "server/bootstrap.h"
#include "server/log.h"
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
        .ctx = d,
    };
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

    log_line(LOG_INFO, "listening", LF_STR("host", cfg->listen_host),
             LF_INT("port", http_server_port(d->http)), LF_STR("db", cfg->db_path),
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
    if (uv_loop_close(&d->loop) != 0)
        log_line(LOG_WARN, "event loop closed with handles open", LF_END);
    if (rc == 0)
        log_line(LOG_INFO, "stopped", LF_END);
    free(d);
    return rc;
}

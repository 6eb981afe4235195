/*
 * daemon.h — the daemon context: the one place that holds the daemon's
 * mutable state, and `maasd serve`'s lifecycle.
 *
 * Threads (docs/architecture.md)
 *   loop thread    libuv: HTTP (server/http.c), route handlers (api/),
 *                  admission, mailbox deliveries; owns everything below
 *                  unless noted.
 *   writer thread  the only writing database connection (server/writer.h).
 *   engine threads the scheduler and its workers (engine/), added by the
 *                  inference path; they talk to the loop only through the
 *                  mailbox.
 *
 * Lifecycle
 *   daemon_serve() opens and migrates the database, starts the writer,
 *   loads the configured models, listens, and runs the loop until a
 *   SIGTERM/SIGINT: then it stops accepting, lets in-flight requests finish
 *   for up to --shutdown-timeout, aborts the rest, drains the database
 *   writer and returns 0. A second signal exits at once (status 1).
 *   SIGHUP reloads the TLS certificate and key and the metrics token; on
 *   a failure the old ones stay in service and the error is logged.
 */
#ifndef MAASD_DAEMON_H
#define MAASD_DAEMON_H

#include <sqlite3.h>
#include <stdbool.h>
#include <uv.h>

#include "server/apikey.h"
#include "server/config.h"
#include "server/http.h"
#include "server/mailbox.h"
#include "server/models.h"
#include "server/writer.h"

struct daemon_ctx {
    struct config cfg;
    uv_loop_t loop;
    struct mailbox mailbox;
    struct http_server *http;
    sqlite3 *db_read;          /* read-only, loop thread: point reads only */
    struct writer *writer;

    struct models models;      /* loaded before the loop runs */
    bool models_loaded;        /* every configured model is loaded */

    /* Tenancy (server/bootstrap.h sets these up after migration). */
    uint8_t key_pepper[APIKEY_PEPPER_LEN];
    struct auth *auth;                 /* keys → principals, on db_read */
    struct admission *admission;       /* rate limits and quotas, in memory */
    struct idempotency *idempotency;   /* Idempotency-Key attempts in flight */
    uv_timer_t tenancy_timer;          /* renewals, purges, sweeps: once a minute */

    /* Operations: metrics, TLS, periodic backups (docs/operators.md). */
    struct metrics *metrics;           /* server/metrics.h */
    struct tls *tls;                   /* NULL: plain HTTP */
    char metrics_token[256];           /* "" = no token: loopback clients only */
    uv_signal_t sig_hup;               /* reload certificate and metrics token */
    uv_timer_t backup_timer;
    bool backup_running;               /* one periodic backup at a time */

    uv_signal_t sig_term, sig_int;
    uv_timer_t shutdown_timer;
    bool shutting_down;
    uint64_t shutdown_deadline_ms;
    int exit_code;
};

/* Run `maasd serve` with this configuration; returns the process exit
 * status. Start-up failures are printed as one line on stderr. */
int daemon_serve(const struct config *cfg);

#endif

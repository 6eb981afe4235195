/*
 * bootstrap.h — tenancy's part of `maasd serve`: the key pepper, the first
 * start's credentials, and the tenancy state of struct daemon_ctx.
 *
 * bootstrap_daemon() (called once by daemon_serve after the database is
 * migrated, the writer started and db_read opened):
 *   1. loads the key pepper (--key-pepper-file, default <db>.pepper),
 *      creating it only while the database holds no API key (pepper.h);
 *   2. on an empty database (no customer), runs bootstrap_first_start();
 *   3. drops idempotency rows left 'in_flight' by a previous process;
 *   4. creates d->auth, d->admission, d->idempotency, and starts
 *      d->tenancy_timer: once a minute, subscription renewals and the
 *      idempotency purge go to the writer, and admission forgets idle
 *      customers.
 * bootstrap_daemon_stop() frees that state after the loop and the writer
 * have stopped (the timer handle is closed with the loop's other handles).
 *
 * First start
 *   Creates, in one transaction audited as "system:bootstrap": an
 *   "Operator" customer with an admin key (scopes admin, finance), and a
 *   "Demo" customer on the free plan with a key (scopes inference,
 *   usage:read). Both secrets are written to `out` (stderr) as plain lines
 *   — the only time maasd ever prints a secret — and to
 *   <database directory>/maasd-credentials.txt (mode 0600, shell-sourceable:
 *   MAASD_ADMIN_KEY=…, MAASD_DEMO_KEY=…, MAASD_OPERATOR_CUSTOMER=…,
 *   MAASD_DEMO_CUSTOMER=…) so `make run` is usable at once. Later starts
 *   find customers and do nothing.
 */
#ifndef MAASD_BOOTSTRAP_H
#define MAASD_BOOTSTRAP_H

#include <sqlite3.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "engine/err.h"
#include "server/apikey.h"

struct daemon_ctx;

bool bootstrap_daemon(struct daemon_ctx *d, struct err *e);
void bootstrap_daemon_stop(struct daemon_ctx *d);

/* <directory of db_path>/maasd-credentials.txt */
bool bootstrap_credentials_path(const char *db_path, char *out, size_t size, struct err *e);

/* On a database without customers: create the operator and demo customers
 * and keys (see above); *created says whether it did. `db` is read-write
 * and outside any transaction. */
bool bootstrap_first_start(sqlite3 *db, const uint8_t pepper[APIKEY_PEPPER_LEN],
                           const char *credentials_path, FILE *out, bool *created, struct err *e);

#endif

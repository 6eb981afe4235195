/*
 * cli.h — helpers shared by the CLI subcommands (server/main.c and the
 * cmd_*.c files): the one rendering of an error for a terminal, and how a
 * subcommand finds the database when --db is not given.
 */
#ifndef MAASD_CLI_H
#define MAASD_CLI_H

#include <stddef.h>

#include "engine/err.h"

/* Print "maasd: <message>" on stderr; returns the exit status (1). */
int cli_fail(const struct err *e);

/* The database path: `flag` if given, else $MAASD_DB, else the serve
 * default (data/maasd.db). */
bool cli_db_path(const char *flag, char *out, size_t size, struct err *e);

/* Subcommands implemented in their own files (server/cmd_*.c). */
int cmd_inspect(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_generate(int argc, char **argv);
int cmd_demo_model(int argc, char **argv);

#endif

/* ---- tenancy subcommands (server/cmd_*.c) and their helpers (cli_store.c) ---- */

#include <cJSON.h>
#include <sqlite3.h>
#include <stdint.h>

#include "server/apikey.h"

/* Options: `spec` lists the accepted names, space-separated, "name=" for an
 * option with a value (--name V or --name=V), "name" for a flag; "db=" is
 * always accepted. Other arguments are positional (at most 4). */
#define CLI_MAX_OPTS 32
struct cli_parsed {
    int n;
    char names[CLI_MAX_OPTS][40];
    bool takes_value[CLI_MAX_OPTS];
    const char *values[CLI_MAX_OPTS];
    bool present[CLI_MAX_OPTS];
    const char *positional[4];
    int n_positional;
};
bool cli_parse(int argc, char **argv, const char *spec, struct cli_parsed *p, struct err *e);
const char *cli_opt(const struct cli_parsed *p, const char *name);
bool cli_has(const struct cli_parsed *p, const char *name);
/* An optional integer option in [min, max]; *out unchanged when absent. */
bool cli_opt_int(const struct cli_parsed *p, const char *name, int64_t min, int64_t max,
                 int64_t *out, struct err *e);

/* Open the database for a tenancy command (it must exist and be migrated
 * to this binary's schema version); `write` begins an IMMEDIATE transaction
 * that cli_store_finish() commits (ok) or rolls back. */
bool cli_store_open(const struct cli_parsed *p, bool write, sqlite3 **db, struct err *e);
bool cli_store_finish(sqlite3 *db, bool ok, struct err *e);
/* The key pepper for the database (--key-pepper-file, MAASD_KEY_PEPPER_FILE,
 * or <db>.pepper; created only when the database holds no key yet). */
bool cli_store_pepper(const struct cli_parsed *p, sqlite3 *db, uint8_t out[APIKEY_PEPPER_LEN],
                      struct err *e);
/* "cli:<unix user>", the audit actor for CLI changes. */
void cli_actor(char *out, size_t size);
/* Print a JSON text pretty on stdout. */
void cli_print_json(const char *json);
/* The end of a tenancy subcommand: finish the store (commit when ok),
 * print `list` (consumed) or else `json` (freed) on success, and return
 * the exit status (the error rendered by cli_fail otherwise). */
int cli_store_done(sqlite3 *db, bool ok, char *json, cJSON *list, struct err *e);
/* Print `usage`: on stdout with status 0 for `sub` "--help", else on
 * stderr with status 2. */
int cli_usage(const char *usage, const char *sub);

int cmd_customers(int argc, char **argv);
int cmd_keys(int argc, char **argv);
int cmd_plans(int argc, char **argv);
int cmd_subscriptions(int argc, char **argv);
int cmd_credits(int argc, char **argv);
int cmd_audit(int argc, char **argv);
int cmd_invoices(int argc, char **argv);
int cmd_report(int argc, char **argv);
int cmd_backup(int argc, char **argv);

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

#endif

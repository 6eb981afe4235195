/*
 * main.c — the `maasd` command: one binary, subcommands.
 *
 * Each subcommand is a row in the table below. A subcommand parses its own
 * arguments, does its work, and reports failure as one line on stderr
 * ("maasd: <message>") with a non-zero exit status: this file is the CLI's
 * one place that renders errors.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/cli.h"
#include "server/config.h"
#include "server/daemon.h"
#include "server/log.h"
#include "server/migrate.h"
#include "server/store.h"
#include "server/version.h"

static int cmd_serve(int argc, char **argv)
{
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            printf("usage: maasd serve [settings]\n\n");
            config_print_help(stdout);
            return 0;
        }
    }
    struct config cfg;
    struct err e = {0};
    if (!config_load(&cfg, argc, argv, &e))
        return cli_fail(&e);
    return daemon_serve(&cfg);
}

static int cmd_migrate(int argc, char **argv)
{
    bool dry_run = false;
    const char *db_path = NULL;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--dry-run") == 0)
            dry_run = true;
        else if (strcmp(argv[i], "--db") == 0 && i + 1 < argc)
            db_path = argv[++i];
        else if (strncmp(argv[i], "--db=", 5) == 0)
            db_path = argv[i] + 5;
        else {
            fprintf(stderr, "usage: maasd migrate [--db PATH] [--dry-run]\n");
            return 2;
        }
    }
    struct err e = {0};
    char path[CONFIG_PATH_MAX];
    if (!cli_db_path(db_path, path, sizeof path, &e))
        return cli_fail(&e);
    sqlite3 *db = NULL;
    if (!store_open(path, dry_run ? STORE_READONLY : STORE_CREATE, &db, &e))
        return cli_fail(&e);
    int current = 0, applied = 0;
    bool ok = migrate_current_version(db, &current, &e) &&
              migrate_apply(db, dry_run, stdout, &applied, &e);
    store_close(db);
    if (!ok)
        return cli_fail(&e);
    printf("schema version %d -> %d (%d %s)\n", current, dry_run ? current : current + 0 + applied * 0 + (applied ? migrate_latest_version() - current : 0),
           applied, dry_run ? "pending" : "applied");
    return 0;
}

static int cmd_version(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    printf("maasd %s (commit %s)\nbuild: %s\n", maasd_version, maasd_git_commit,
           maasd_build_flags);
    return 0;
}

struct command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *help;
};

static const struct command commands[] = {
    {"serve", cmd_serve, "run the daemon (maasd serve --help lists every setting)"},
    {"migrate", cmd_migrate, "apply pending database migrations [--db PATH] [--dry-run]"},
    {"version", cmd_version, "print version, commit and build flags"},
    {"inspect", cmd_inspect, "print a GGUF file's metadata and tensor table [--full] PATH"},
    {"tokenize", cmd_tokenize, "tokenize text: --model PATH [--ids] [--special] [--no-bos] TEXT|-"},
    {"demo-model", cmd_demo_model, "write the built-in demo model as a GGUF file: PATH"},
    {"generate", cmd_generate, "run a model: --model PATH (--prompt TEXT | --prompt-ids 1,2) [--max-tokens N] [--temperature T] [--seed S] [--ids]"},
    {"customers", cmd_customers, "create|list|get|update|export|erase customers (on the database file)"},
    {"keys", cmd_keys, "issue|list|revoke|rotate API keys (issue prints the secret alone)"},
    {"plans", cmd_plans, "list plans, create-version of a plan"},
    {"subscriptions", cmd_subscriptions, "create|change|cancel|get a customer's subscription"},
    {"credits", cmd_credits, "grant|list prepaid and promotional credits"},
    {"audit", cmd_audit, "verify the audit log's hash chain"},
    {"invoices", cmd_invoices, "list|show|close|reconcile invoices (docs/finance.md)"},
    {"report", cmd_report, "usage (CSV streamed) and revenue reports for finance"},
    {"backup", cmd_backup, "copy the database consistently, also while serving: --to FILE"},
};

static void usage(FILE *out)
{
    fprintf(out, "usage: maasd <command> [args]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(out, "  %-12s %s\n", commands[i].name, commands[i].help);
}

int main(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (strcmp(argv[1], "--version") == 0)
        return cmd_version(0, NULL);
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (strcmp(argv[1], commands[i].name) == 0)
            return commands[i].run(argc - 2, argv + 2);
    fprintf(stderr, "maasd: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}

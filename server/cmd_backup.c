/* cmd_backup.c — `maasd backup --to FILE [--db PATH]`: a consistent copy
 * of the database, also while the daemon serves (server/backup.h). Prints
 * what it wrote as JSON on stdout. */
#include <stdio.h>
#include <string.h>

#include "server/backup.h"
#include "server/cli.h"
#include "server/config.h"

static const char usage[] =
    "usage: maasd backup --to FILE [--db PATH]\n"
    "  copies the database (default $MAASD_DB or data/maasd.db) to FILE, which must not exist,\n"
    "  while the daemon may be serving; the copy is checked with PRAGMA integrity_check.\n"
    "  The API key pepper file is not in the database: back it up separately.\n";

int cmd_backup(int argc, char **argv)
{
    if (argc > 0 && (strcmp(argv[0], "--help") == 0 || strcmp(argv[0], "-h") == 0))
        return cli_usage(usage, "--help");
    struct cli_parsed p;
    struct err e = {0};
    if (!cli_parse(argc, argv, "to=", &p, &e))
        return cli_fail(&e);
    const char *to = cli_opt(&p, "to");
    if (!to || !*to || p.n_positional != 0)
        return cli_usage(usage, "");
    char db[CONFIG_PATH_MAX];
    if (!cli_db_path(cli_opt(&p, "db"), db, sizeof db, &e))
        return cli_fail(&e);
    struct backup_result r;
    if (!backup_run(db, to, &r, &e))
        return cli_fail(&e);
    printf("{\"object\": \"backup\", \"path\": \"");
    for (const char *s = r.path; *s; s++) {
        if (*s == '"' || *s == '\\')
            putchar('\\');
        if ((unsigned char)*s >= 0x20)
            putchar(*s);
    }
    printf("\", \"bytes\": %lld, \"pages\": %d, \"duration_ms\": %lld, \"integrity\": \"ok\"}\n",
           (long long)r.bytes, r.pages, (long long)r.duration_ms);
    return 0;
}

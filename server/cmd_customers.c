/* cmd_customers.c — `maasd customers create|list|get|update` on the
 * database file (works while the daemon serves; changes are audited as
 * cli:<user>). Output is JSON on stdout. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/cli.h"
#include "server/customers.h"
#include "server/store.h"

static const char usage[] =
    "usage: maasd customers create --name NAME [--email EMAIL]\n"
    "       maasd customers list [--limit N] [--after ID]\n"
    "       maasd customers get ID\n"
    "       maasd customers update ID [--name NAME] [--email EMAIL|''] [--status active|suspended|erased]\n"
    "every command takes --db PATH (default $MAASD_DB or data/maasd.db)\n";

int cmd_customers(int argc, char **argv)
{
    const char *sub = argc > 0 ? argv[0] : "";
    if (strcmp(sub, "create") != 0 && strcmp(sub, "list") != 0 && strcmp(sub, "get") != 0 &&
        strcmp(sub, "update") != 0) {
        return cli_usage(usage, sub);
    }
    struct cli_parsed p;
    struct err e = {0};
    if (!cli_parse(argc - 1, argv + 1, "name= email= status= limit= after=", &p, &e))
        return cli_fail(&e);
    bool write = strcmp(sub, "create") == 0 || strcmp(sub, "update") == 0;
    bool need_id = strcmp(sub, "get") == 0 || strcmp(sub, "update") == 0;
    if (need_id != (p.n_positional == 1)) {
        return cli_usage(usage, "");
    }
    char actor[96];
    cli_actor(actor, sizeof actor);
    sqlite3 *db = NULL;
    char *json = NULL;
    cJSON *list = NULL;
    bool ok = cli_store_open(&p, write, &db, &e);
    if (ok && strcmp(sub, "create") == 0) {
        ok = customers_create(db, actor, cli_opt(&p, "name"), cli_opt(&p, "email"),
                              store_now_ms(), &json, &e);
    } else if (ok && strcmp(sub, "get") == 0) {
        ok = customers_get(db, p.positional[0], &json, &e);
    } else if (ok && strcmp(sub, "update") == 0) {
        struct customer_update u = {cli_opt(&p, "name"), cli_opt(&p, "email"),
                                    cli_opt(&p, "status")};
        ok = customers_update(db, actor, p.positional[0], &u, store_now_ms(), &json, &e);
    } else if (ok) {
        int64_t limit = 20;
        ok = cli_opt_int(&p, "limit", 1, TENANCY_LIST_MAX, &limit, &e) &&
             customers_list(db, (int)limit, cli_opt(&p, "after"), &list, &e);
    }
    return cli_store_done(db, ok, json, list, &e);
}

/* cmd_customers.c — `maasd customers create|list|get|update|export|erase`
 * on the database file (works while the daemon serves; changes are audited
 * as cli:<user>). Output is JSON on stdout. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/cli.h"
#include "server/customers.h"
#include "server/export.h"
#include "server/store.h"

static const char usage[] =
    "usage: maasd customers create --name NAME [--email EMAIL]\n"
    "       maasd customers list [--limit N] [--after ID]\n"
    "       maasd customers get ID\n"
    "       maasd customers update ID [--name NAME] [--email EMAIL|''] [--status active|suspended|erased]\n"
    "       maasd customers export ID     everything held about the customer, as JSON\n"
    "       maasd customers erase ID      scrub name and email, revoke keys (final; audited)\n"
    "every command takes --db PATH (default $MAASD_DB or data/maasd.db)\n";

/* export (read-only, streamed) and erase (customers_update to "erased",
 * which scrubs, revokes and audits: server/customers.h). */
static int cmd_customers_privacy(const char *sub, int argc, char **argv)
{
    struct cli_parsed p;
    struct err e = {0};
    if (!cli_parse(argc, argv, "", &p, &e))
        return cli_fail(&e);
    if (p.n_positional != 1)
        return cli_usage(usage, "");
    sqlite3 *db = NULL;
    if (strcmp(sub, "export") == 0) {
        if (!cli_store_open(&p, false, &db, &e))
            return cli_fail(&e);
        bool ok = export_customer(db, p.positional[0], store_now_ms(), stdout, &e);
        store_close(db);
        fflush(stdout);
        return ok ? 0 : cli_fail(&e);
    }
    char actor[96];
    cli_actor(actor, sizeof actor);
    char *json = NULL;
    struct customer_update u = {NULL, NULL, "erased"};
    bool ok = cli_store_open(&p, true, &db, &e) &&
              customers_update(db, actor, p.positional[0], &u, store_now_ms(), &json, &e);
    return cli_store_done(db, ok, json, NULL, &e);
}

int cmd_customers(int argc, char **argv)
{
    const char *sub = argc > 0 ? argv[0] : "";
    if (strcmp(sub, "create") != 0 && strcmp(sub, "list") != 0 && strcmp(sub, "get") != 0 &&
        strcmp(sub, "update") != 0 && strcmp(sub, "export") != 0 && strcmp(sub, "erase") != 0) {
        return cli_usage(usage, sub);
    }
    if (strcmp(sub, "export") == 0 || strcmp(sub, "erase") == 0)
        return cmd_customers_privacy(sub, argc - 1, argv + 1);
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

/* cmd_subscriptions.c — `maasd subscriptions create|change|cancel|get`. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/cli.h"
#include "server/store.h"
#include "server/subscriptions.h"

static const char usage[] =
    "usage: maasd subscriptions create --customer ID --plan PLAN [--anchor-day 1..31]\n"
    "       maasd subscriptions change --customer ID --plan PLAN\n"
    "       maasd subscriptions cancel --customer ID [--at-period-end]\n"
    "       maasd subscriptions get --customer ID\n";

int cmd_subscriptions(int argc, char **argv)
{
    const char *sub = argc > 0 ? argv[0] : "";
    bool create = strcmp(sub, "create") == 0, change = strcmp(sub, "change") == 0;
    bool cancel = strcmp(sub, "cancel") == 0, get = strcmp(sub, "get") == 0;
    if (!create && !change && !cancel && !get) {
        return cli_usage(usage, sub);
    }
    struct cli_parsed p;
    struct err e = {0};
    if (!cli_parse(argc - 1, argv + 1, "customer= plan= anchor-day= at-period-end", &p, &e))
        return cli_fail(&e);
    const char *customer = cli_opt(&p, "customer"), *plan = cli_opt(&p, "plan");
    if (p.n_positional || !customer || ((create || change) && !plan)) {
        return cli_usage(usage, "");
    }
    char actor[96];
    cli_actor(actor, sizeof actor);
    sqlite3 *db = NULL;
    char *json = NULL;
    int64_t anchor = 0;
    bool ok = cli_opt_int(&p, "anchor-day", 1, 31, &anchor, &e) &&
              cli_store_open(&p, !get, &db, &e);
    int64_t now = store_now_ms();
    if (ok && create)
        ok = subscriptions_create(db, actor, customer, plan, (int)anchor, now, &json, &e);
    else if (ok && change)
        ok = subscriptions_change_plan(db, actor, customer, plan, now, &json, &e);
    else if (ok && cancel)
        ok = subscriptions_cancel(db, actor, customer, cli_has(&p, "at-period-end"), now, &json, &e);
    else if (ok)
        ok = subscriptions_get(db, customer, &json, &e);
    return cli_store_done(db, ok, json, NULL, &e);
}

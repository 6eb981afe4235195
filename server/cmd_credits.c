/* cmd_credits.c — `maasd credits grant|list`. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/caltime.h"
#include "server/cli.h"
#include "server/credits.h"
#include "server/customers.h"
#include "server/money.h"
#include "server/store.h"

static const char usage[] =
    "usage: maasd credits grant --customer ID (--tokens N | --amount AMOUNT [--currency USD])\n"
    "                           --reason TEXT [--kind promotional|prepaid] [--expires-at TIME]\n"
    "       maasd credits list --customer ID [--limit N] [--after CREDIT_ID]\n";

static bool grant(const struct cli_parsed *p, sqlite3 *db, const char *actor, char **json,
                  struct err *e)
{
    const char *kind = cli_opt(p, "kind"), *currency = cli_opt(p, "currency");
    struct credit_grant g = {.customer_id = cli_opt(p, "customer"),
                             .kind = kind ? kind : "promotional",
                             .reason = cli_opt(p, "reason")};
    const char *amount = cli_opt(p, "amount"), *exp = cli_opt(p, "expires-at");
    if (!amount == !cli_opt(p, "tokens"))
        return err_set(e, ERR_INVALID, "give exactly one of --tokens and --amount");
    if (amount) {
        g.unit = "micros";
        g.currency = currency ? currency : "USD";
        if (!money_parse(amount, &g.amount, e))
            return err_wrap(e, "--amount");
    } else {
        g.unit = "tokens";
        g.currency = currency;
        if (!cli_opt_int(p, "tokens", 1, INT64_MAX, &g.amount, e))
            return false;
    }
    if (exp && !caltime_parse(exp, &g.expires_at, e))
        return err_wrap(e, "--expires-at");
    return credits_grant(db, actor, &g, store_now_ms(), json, e);
}

int cmd_credits(int argc, char **argv)
{
    const char *sub = argc > 0 ? argv[0] : "";
    bool is_grant = strcmp(sub, "grant") == 0, is_list = strcmp(sub, "list") == 0;
    if (!is_grant && !is_list) {
        return cli_usage(usage, sub);
    }
    struct cli_parsed p;
    struct err e = {0};
    if (!cli_parse(argc - 1, argv + 1,
                   "customer= tokens= amount= currency= reason= kind= expires-at= limit= after=",
                   &p, &e))
        return cli_fail(&e);
    if (p.n_positional || !cli_opt(&p, "customer")) {
        return cli_usage(usage, "");
    }
    char actor[96];
    cli_actor(actor, sizeof actor);
    sqlite3 *db = NULL;
    char *json = NULL;
    cJSON *list = NULL;
    bool ok = cli_store_open(&p, is_grant, &db, &e);
    if (ok && is_grant) {
        ok = grant(&p, db, actor, &json, &e);
    } else if (ok) {
        int64_t limit = 20;
        ok = cli_opt_int(&p, "limit", 1, TENANCY_LIST_MAX, &limit, &e) &&
             credits_list(db, cli_opt(&p, "customer"), (int)limit, cli_opt(&p, "after"), &list, &e);
    }
    return cli_store_done(db, ok, json, list, &e);
}

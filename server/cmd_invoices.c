/* cmd_invoices.c — `maasd invoices list|show|close|reconcile|periods` on
 * the database file (server/invoices.h; docs/finance.md). Works while the
 * daemon serves: reads take one snapshot, a close is one transaction,
 * audited as cli:<user>. Output is JSON on stdout (CSV for `show
 * --format csv`); reconcile exits 1 when it finds a difference. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/caltime.h"
#include "server/cli.h"
#include "server/invoices.h"
#include "server/store.h"

static const char usage[] =
    "usage: maasd invoices list --period YYYY-MM [--customer ID]\n"
    "       maasd invoices show ID [--format json|csv]\n"
    "       maasd invoices close --period YYYY-MM [--invoice-grace DURATION]\n"
    "       maasd invoices reconcile --period YYYY-MM\n"
    "       maasd invoices periods\n"
    "\"period YYYY-MM\" is the invoices whose service ends in that month (UTC); a month can\n"
    "be closed once it has ended plus the invoice grace (--invoice-grace, $MAASD_INVOICE_GRACE,\n"
    "default 72h), after the months before it. Every command takes --db PATH (default\n"
    "$MAASD_DB or data/maasd.db).\n";

static bool grace(const struct cli_parsed *p, int64_t *out, struct err *e)
{
    const char *v = cli_opt(p, "invoice-grace");
    if (!v)
        v = getenv("MAASD_INVOICE_GRACE");
    *out = 72 * 3600000LL;
    struct err why = {0};
    return !v || caltime_parse_duration(v, out, &why) ||
           err_set_param(e, ERR_INVALID, "invoice-grace", "--invoice-grace: %s", why.msg);
}

static bool need_period(const struct cli_parsed *p, struct err *e)
{
    return cli_opt(p, "period") ||
           err_set_param(e, ERR_INVALID, "period", "--period YYYY-MM is required");
}

static cJSON *list_json(struct invoice *list, int n, bool with_lines)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "object", "list");
    cJSON *data = cJSON_AddArrayToObject(o, "data");
    for (int i = 0; i < n; i++)
        cJSON_AddItemToArray(data, invoices_json(&list[i], with_lines));
    return o;
}

int cmd_invoices(int argc, char **argv)
{
    const char *sub = argc > 0 ? argv[0] : "";
    bool list = strcmp(sub, "list") == 0, show = strcmp(sub, "show") == 0;
    bool close = strcmp(sub, "close") == 0, reconcile = strcmp(sub, "reconcile") == 0;
    bool periods = strcmp(sub, "periods") == 0;
    if (!list && !show && !close && !reconcile && !periods)
        return cli_usage(usage, sub);
    struct cli_parsed p;
    struct err e = {0};
    if (!cli_parse(argc - 1, argv + 1, "period= customer= format= invoice-grace=", &p, &e))
        return cli_fail(&e);
    if (show != (p.n_positional == 1))
        return cli_usage(usage, "");
    const char *format = cli_opt(&p, "format");
    if (format && strcmp(format, "json") != 0 && (strcmp(format, "csv") != 0 || !show)) {
        err_set_param(&e, ERR_INVALID, "format", "--format must be json%s", show ? " or csv" : "");
        return cli_fail(&e);
    }
    int64_t grace_ms = 0;
    if ((list || close || reconcile) && !need_period(&p, &e))
        return cli_fail(&e);
    if (close && !grace(&p, &grace_ms, &e))
        return cli_fail(&e);
    sqlite3 *db = NULL;
    if (!cli_store_open(&p, close, &db, &e))
        return cli_fail(&e);
    /* Reads see one snapshot, even while the daemon writes. */
    bool ok = close || store_exec(db, "BEGIN", &e);
    int64_t now = store_now_ms();
    cJSON *out = NULL;
    int differences = 0;
    if (ok && list) {
        struct invoice *inv = NULL;
        int n = 0;
        ok = invoices_for_period(db, cli_opt(&p, "period"), cli_opt(&p, "customer"), now, &inv,
                                 &n, &e);
        if (ok)
            out = list_json(inv, n, false);
        invoices_free(inv, n);
    } else if (ok && show) {
        struct invoice inv;
        ok = invoices_get(db, p.positional[0], NULL, now, &inv, &e);
        if (ok && format && strcmp(format, "csv") == 0) {
            size_t len = 0;
            char *csv = invoices_lines_csv(&inv, &len);
            fwrite(csv, 1, len, stdout);
            free(csv);
        } else if (ok) {
            out = invoices_json(&inv, true);
        }
        if (ok)
            invoice_free(&inv);
    } else if (ok && close) {
        char actor[96];
        cli_actor(actor, sizeof actor);
        ok = invoices_close(db, actor, cli_opt(&p, "period"), now, grace_ms, &out, &e);
    } else if (ok && reconcile) {
        ok = invoices_reconcile(db, cli_opt(&p, "period"), now, &out, &differences, &e);
    } else if (ok) {
        ok = invoices_periods_list(db, &out, &e);
    }
    ok = cli_store_finish(db, ok, &e);
    if (ok && out) {
        char *text = cJSON_Print(out);
        printf("%s\n", text ? text : "null");
        free(text);
    }
    cJSON_Delete(out);
    if (!ok)
        return cli_fail(&e);
    if (differences) {
        err_set(&e, ERR_CONFLICT, "period %s: %d difference%s between the invoices and the ledger",
                cli_opt(&p, "period"), differences, differences == 1 ? "" : "s");
        return cli_fail(&e);
    }
    return 0;
}

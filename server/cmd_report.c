/* cmd_report.c — `maasd report usage|revenue` on the database file
 * (server/usage_report.h, server/revenue.h; docs/finance.md). The usage
 * CSV streams to stdout from one cursor, a chunk at a time, so a month of
 * millions of requests never sits in memory. Reads take one snapshot and
 * work while the daemon serves. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/caltime.h"
#include "server/cli.h"
#include "server/revenue.h"
#include "server/store.h"
#include "server/usage_report.h"

static const char usage[] =
    "usage: maasd report usage --from TIME --to TIME [--bucket 1h|1d|1mo]\n"
    "                          [--group-by customer_id,api_key_id,model,plan] [--customer ID]\n"
    "                          [--format json|csv]\n"
    "       maasd report revenue --period YYYY-MM [--format json|csv]\n"
    "TIME: 2031-03-01, 2031-03-01T12:00:00Z or ms since the epoch; [--from, --to) in UTC.\n"
    "Every command takes --db PATH (default $MAASD_DB or data/maasd.db).\n";

#define CHUNK (64 * 1024)

static bool usage_csv(sqlite3 *db, const struct usage_report_query *q, struct err *e)
{
    struct usage_report *r = NULL;
    if (!usage_report_open(db, q, &r, e))
        return false;
    size_t cap = CHUNK + USAGE_REPORT_CSV_LINE_MAX, len;
    char *buf = malloc(cap);
    if (!buf)
        abort();
    len = usage_report_csv_header(buf, cap);
    bool done = false, ok = true;
    while (ok && !done) {
        ok = usage_report_csv_fill(r, &buf, &len, &cap, CHUNK, &done, e);
        if (len && fwrite(buf, 1, len, stdout) != len)
            ok = err_set(e, ERR_IO, "writing the report to stdout failed");
        len = 0;
    }
    free(buf);
    usage_report_close(r);
    return ok && (fflush(stdout) == 0 || err_set(e, ERR_IO, "writing the report failed"));
}

static bool parse_time(const struct cli_parsed *p, const char *name, int64_t *out, struct err *e)
{
    const char *v = cli_opt(p, name);
    if (!v)
        return err_set_param(e, ERR_INVALID, name, "--%s is required", name);
    struct err why = {0};
    if (!caltime_parse(v, out, &why))
        return err_set_param(e, ERR_INVALID, name, "--%s: %s", name, why.msg);
    return true;
}

int cmd_report(int argc, char **argv)
{
    const char *sub = argc > 0 ? argv[0] : "";
    bool is_usage = strcmp(sub, "usage") == 0, revenue = strcmp(sub, "revenue") == 0;
    if (!is_usage && !revenue)
        return cli_usage(usage, sub);
    struct cli_parsed p;
    struct err e = {0};
    if (!cli_parse(argc - 1, argv + 1, "from= to= bucket= group-by= customer= format= period=", &p,
                   &e))
        return cli_fail(&e);
    if (p.n_positional)
        return cli_usage(usage, "");
    const char *format = cli_opt(&p, "format");
    bool csv = format && strcmp(format, "csv") == 0;
    if (format && !csv && strcmp(format, "json") != 0) {
        err_set_param(&e, ERR_INVALID, "format", "--format must be json or csv");
        return cli_fail(&e);
    }
    struct usage_report_query q = {0};
    if (is_usage) {
        const char *cus = cli_opt(&p, "customer");
        if (!parse_time(&p, "from", &q.start, &e) || !parse_time(&p, "to", &q.end, &e) ||
            !usage_report_parse_bucket(cli_opt(&p, "bucket"), &q.bucket, &e) ||
            !usage_report_parse_group_by(cli_opt(&p, "group-by"), &q.group_by, &e))
            return cli_fail(&e);
        snprintf(q.customer_id, sizeof q.customer_id, "%s", cus ? cus : "");
    } else if (!cli_opt(&p, "period")) {
        err_set_param(&e, ERR_INVALID, "period", "--period YYYY-MM is required");
        return cli_fail(&e);
    }
    sqlite3 *db = NULL;
    if (!cli_store_open(&p, false, &db, &e))
        return cli_fail(&e);
    bool ok = store_exec(db, "BEGIN", &e);
    cJSON *out = NULL;
    if (ok && is_usage && csv) {
        ok = usage_csv(db, &q, &e);
    } else if (ok && is_usage) {
        cJSON *data = NULL;
        ok = usage_report_json(db, &q, &data, &e);
        if (ok) {
            out = cJSON_CreateObject();
            cJSON_AddStringToObject(out, "object", "page");
            cJSON_AddItemToObject(out, "data", data);
            cJSON_AddBoolToObject(out, "has_more", false);
            cJSON_AddNullToObject(out, "next_page");
        }
    } else if (ok) {
        ok = revenue_summary(db, cli_opt(&p, "period"), store_now_ms(), &out, &e);
    }
    ok = cli_store_finish(db, ok, &e);
    if (ok && out && csv) {
        size_t len = 0;
        char *text = revenue_csv(out, &len);
        fwrite(text, 1, len, stdout);
        free(text);
    } else if (ok && out) {
        char *text = cJSON_Print(out);
        printf("%s\n", text ? text : "null");
        free(text);
    }
    cJSON_Delete(out);
    return ok ? 0 : cli_fail(&e);
}

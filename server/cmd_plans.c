/* cmd_plans.c — `maasd plans list|create-version`. A new version copies
 * every field it is not given from the plan's latest version, so a price
 * change is one flag; money is typed in currency units ("20", "0.50") and
 * stored in micro-units. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/caltime.h"
#include "server/cli.h"
#include "server/keys.h"
#include "server/money.h"
#include "server/plans.h"
#include "server/store.h"

static const char usage[] =
    "usage: maasd plans list\n"
    "       maasd plans create-version PLAN [--name NAME] [--effective-from TIME]\n"
    "            [--billing-interval month|year] [--currency USD] [--base-fee AMOUNT]\n"
    "            [--included-tokens N] [--price-input-per-1m AMOUNT]\n"
    "            [--price-output-per-1m AMOUNT] [--price-per-request AMOUNT]\n"
    "            [--requests-per-minute N] [--tokens-per-minute N]\n"
    "            [--max-concurrent-requests N] [--max-tokens-per-request N]\n"
    "            [--allowed-models ID,ID|'*'] [--scheduler-weight N] [--trial-days N]\n"
    "            [--hard-cap true|false]\n"
    "fields not given are copied from the latest version (all are needed for a new plan);\n"
    "TIME is 2025-01-31, 2025-01-31T12:00:00Z or ms since the epoch, default now\n";

enum kind { K_TEXT, K_MONEY, K_INT, K_MODELS, K_BOOL };

static const struct {
    const char *flag, *field;
    enum kind kind;
} flags[] = {
    {"billing-interval", "billing_interval", K_TEXT},
    {"currency", "currency", K_TEXT},
    {"base-fee", "base_fee_micros", K_MONEY},
    {"included-tokens", "included_tokens", K_INT},
    {"price-input-per-1m", "price_input_per_1m_micros", K_MONEY},
    {"price-output-per-1m", "price_output_per_1m_micros", K_MONEY},
    {"price-per-request", "price_per_request_micros", K_MONEY},
    {"requests-per-minute", "requests_per_minute", K_INT},
    {"tokens-per-minute", "tokens_per_minute", K_INT},
    {"max-concurrent-requests", "max_concurrent_requests", K_INT},
    {"max-tokens-per-request", "max_tokens_per_request", K_INT},
    {"allowed-models", "allowed_models", K_MODELS},
    {"scheduler-weight", "scheduler_weight", K_INT},
    {"trial-days", "trial_days", K_INT},
    {"hard-cap", "hard_cap", K_BOOL},
};
#define N_FLAGS (sizeof flags / sizeof flags[0])

static bool build_fields(const struct cli_parsed *p, cJSON *o, struct err *e)
{
    for (size_t i = 0; i < N_FLAGS; i++) {
        const char *v = cli_opt(p, flags[i].flag);
        if (!v)
            continue;
        switch (flags[i].kind) {
        case K_TEXT:
            cJSON_AddStringToObject(o, flags[i].field, v);
            break;
        case K_MONEY: {
            int64_t m;
            if (!money_parse(v, &m, e))
                return err_wrap(e, "--%s", flags[i].flag);
            cJSON_AddNumberToObject(o, flags[i].field, (double)m);
            break;
        }
        case K_INT: {
            char *end = NULL;
            errno = 0;
            long long n = strtoll(v, &end, 10);
            if (errno || !*v || *end)
                return err_set_param(e, ERR_INVALID, flags[i].flag, "--%s: not an integer: '%s'",
                                     flags[i].flag, v);
            cJSON_AddNumberToObject(o, flags[i].field, (double)n);
            break;
        }
        case K_MODELS: {
            char *models = NULL;
            if (!keys_models_from_list(v, flags[i].field, &models, e))
                return false;
            cJSON_AddItemToObject(o, flags[i].field, models ? cJSON_Parse(models) : cJSON_CreateNull());
            free(models);
            break;
        }
        case K_BOOL:
            if (strcmp(v, "true") != 0 && strcmp(v, "false") != 0)
                return err_set_param(e, ERR_INVALID, flags[i].flag, "--%s: true or false",
                                     flags[i].flag);
            cJSON_AddBoolToObject(o, flags[i].field, strcmp(v, "true") == 0);
            break;
        }
    }
    const char *eff = cli_opt(p, "effective-from");
    if (eff) {
        int64_t t;
        if (!caltime_parse(eff, &t, e))
            return err_wrap(e, "--effective-from");
        cJSON_AddNumberToObject(o, "effective_from", (double)t);
    }
    return true;
}

int cmd_plans(int argc, char **argv)
{
    const char *sub = argc > 0 ? argv[0] : "";
    bool is_list = strcmp(sub, "list") == 0, is_create = strcmp(sub, "create-version") == 0;
    if (!is_list && !is_create) {
        return cli_usage(usage, sub);
    }
    char spec[1024] = "name= effective-from=";
    for (size_t i = 0; i < N_FLAGS; i++) {
        size_t used = strlen(spec);
        snprintf(spec + used, sizeof spec - used, " %s=", flags[i].flag);
    }
    struct cli_parsed p;
    struct err e = {0};
    if (!cli_parse(argc - 1, argv + 1, spec, &p, &e))
        return cli_fail(&e);
    if (is_create != (p.n_positional == 1) || (is_list && p.n_positional)) {
        return cli_usage(usage, "");
    }
    char actor[96];
    cli_actor(actor, sizeof actor);
    sqlite3 *db = NULL;
    char *json = NULL;
    cJSON *list = NULL, *fields = cJSON_CreateObject();
    bool ok = cli_store_open(&p, is_create, &db, &e);
    if (ok && is_create) {
        ok = build_fields(&p, fields, &e) &&
             plans_create_version(db, actor, p.positional[0], cli_opt(&p, "name"), fields,
                                  store_now_ms(), &json, &e);
    } else if (ok) {
        ok = plans_list(db, store_now_ms(), &list, &e);
    }
    cJSON_Delete(fields);
    return cli_store_done(db, ok, json, list, &e);
}

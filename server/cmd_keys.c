/* cmd_keys.c — `maasd keys issue|list|revoke|rotate` on the database file.
 * issue and rotate print the new secret ALONE on stdout (so a script can
 * capture it) and the key's id and display prefix on stderr; the secret is
 * never shown again. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/caltime.h"
#include "server/cli.h"
#include "server/customers.h"
#include "server/keys.h"
#include "server/store.h"

static const char usage[] =
    "usage: maasd keys issue --customer ID [--name NAME] [--scopes inference,usage:read]\n"
    "                        [--models ID,ID] [--expires-at TIME | --expires-in 30d]\n"
    "       maasd keys list --customer ID [--limit N] [--after KEY_ID]\n"
    "       maasd keys revoke KEY_ID\n"
    "       maasd keys rotate KEY_ID [--grace 24h]\n"
    "every command takes --db PATH and --key-pepper-file PATH (default <db>.pepper)\n";

static void report(const char *json, FILE *out)
{
    cJSON *j = cJSON_Parse(json);
    fprintf(out, "key %s (%s) for %s\n",
            cJSON_GetStringValue(cJSON_GetObjectItem(j, "id")),
            cJSON_GetStringValue(cJSON_GetObjectItem(j, "display_prefix")),
            cJSON_GetStringValue(cJSON_GetObjectItem(j, "customer_id")));
    cJSON_Delete(j);
}

static bool issue(const struct cli_parsed *p, sqlite3 *db, const char *actor, char *secret,
                  char **json, struct err *e)
{
    uint8_t pepper[APIKEY_PEPPER_LEN];
    int64_t now = store_now_ms(), expires = 0;
    struct key_issue in = {.customer_id = cli_opt(p, "customer"), .name = cli_opt(p, "name")};
    if (!in.customer_id)
        return err_set_param(e, ERR_INVALID, "customer", "--customer is required");
    const char *at = cli_opt(p, "expires-at"), *in_ = cli_opt(p, "expires-in");
    if (at && !caltime_parse(at, &expires, e))
        return err_wrap(e, "--expires-at");
    if (in_) {
        if (!caltime_parse_duration(in_, &expires, e))
            return err_wrap(e, "--expires-in");
        expires += now;
    }
    in.expires_at = expires;
    const char *scopes = cli_opt(p, "scopes");
    char *models = NULL;
    bool ok = apikey_scopes_parse(scopes ? scopes : "inference,usage:read", &in.scopes, e) &&
              keys_models_from_list(cli_opt(p, "models"), "models", &models, e) &&
              cli_store_pepper(p, db, pepper, e);
    in.allowed_models_json = models;
    ok = ok && keys_issue(db, actor, pepper, &in, now, secret, json, e);
    free(models);
    return ok;
}

int cmd_keys(int argc, char **argv)
{
    const char *sub = argc > 0 ? argv[0] : "";
    bool is_issue = strcmp(sub, "issue") == 0, is_list = strcmp(sub, "list") == 0;
    bool is_revoke = strcmp(sub, "revoke") == 0, is_rotate = strcmp(sub, "rotate") == 0;
    if (!is_issue && !is_list && !is_revoke && !is_rotate) {
        return cli_usage(usage, sub);
    }
    struct cli_parsed p;
    struct err e = {0};
    if (!cli_parse(argc - 1, argv + 1,
                   "customer= name= scopes= models= expires-at= expires-in= limit= after= grace=",
                   &p, &e))
        return cli_fail(&e);
    if ((is_revoke || is_rotate) != (p.n_positional == 1) || (is_issue && p.n_positional)) {
        return cli_usage(usage, "");
    }
    char actor[96], secret[APIKEY_LEN + 1] = "";
    cli_actor(actor, sizeof actor);
    sqlite3 *db = NULL;
    char *json = NULL;
    cJSON *list = NULL;
    bool ok = cli_store_open(&p, !is_list, &db, &e);
    if (ok && is_issue) {
        ok = issue(&p, db, actor, secret, &json, &e);
    } else if (ok && is_revoke) {
        ok = keys_revoke(db, actor, p.positional[0], store_now_ms(), &json, &e);
    } else if (ok && is_rotate) {
        int64_t grace = KEYS_DEFAULT_GRACE_MS;
        uint8_t pepper[APIKEY_PEPPER_LEN];
        const char *g = cli_opt(&p, "grace");
        ok = (!g || caltime_parse_duration(g, &grace, &e)) && cli_store_pepper(&p, db, pepper, &e) &&
             keys_rotate(db, actor, pepper, p.positional[0], grace, store_now_ms(), secret, &json,
                         &e);
    } else if (ok) {
        int64_t limit = 20;
        const char *customer = cli_opt(&p, "customer");
        ok = customer ? true : err_set_param(&e, ERR_INVALID, "customer", "--customer is required");
        ok = ok && cli_opt_int(&p, "limit", 1, TENANCY_LIST_MAX, &limit, &e) &&
             keys_list(db, customer, (int)limit, cli_opt(&p, "after"), &list, &e);
    }
    if (!is_issue && !is_rotate)
        return cli_store_done(db, ok, json, list, &e);
    ok = cli_store_finish(db, ok, &e);
    if (ok) {
        printf("%s\n", secret);
        report(json, stderr);
    }
    memset(secret, 0, sizeof secret);
    free(json);
    return ok ? 0 : cli_fail(&e);
}

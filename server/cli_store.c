/* cli_store.c — option parsing and database access shared by the tenancy
 * subcommands (see cli.h). */
#include <cJSON.h>
#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "server/cli.h"
#include "server/config.h"
#include "server/keys.h"
#include "server/migrate.h"
#include "server/pepper.h"
#include "server/store.h"

static int find(const struct cli_parsed *p, const char *name, size_t len)
{
    for (int i = 0; i < p->n; i++)
        if (strlen(p->names[i]) == len && strncmp(p->names[i], name, len) == 0)
            return i;
    return -1;
}

bool cli_parse(int argc, char **argv, const char *spec, struct cli_parsed *p, struct err *e)
{
    memset(p, 0, sizeof *p);
    char all[1024];
    snprintf(all, sizeof all, "db= key-pepper-file= %s", spec);
    for (char *save = NULL, *tok = strtok_r(all, " ", &save); tok && p->n < CLI_MAX_OPTS;
         tok = strtok_r(NULL, " ", &save)) {
        size_t len = strlen(tok);
        p->takes_value[p->n] = tok[len - 1] == '=';
        snprintf(p->names[p->n], sizeof p->names[0], "%.*s",
                 (int)(len - (p->takes_value[p->n] ? 1 : 0)), tok);
        p->n++;
    }
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (strncmp(a, "--", 2) != 0) {
            if (p->n_positional == 4)
                return err_set(e, ERR_INVALID, "unexpected argument '%s'", a);
            p->positional[p->n_positional++] = a;
            continue;
        }
        const char *name = a + 2, *eq = strchr(name, '=');
        size_t len = eq ? (size_t)(eq - name) : strlen(name);
        int k = find(p, name, len);
        if (k < 0)
            return err_set(e, ERR_INVALID, "unknown option '%.*s' (see --help)", (int)len + 2, a);
        p->present[k] = true;
        if (!p->takes_value[k]) {
            if (eq)
                return err_set(e, ERR_INVALID, "--%s takes no value", p->names[k]);
            continue;
        }
        if (eq)
            p->values[k] = eq + 1;
        else if (i + 1 < argc)
            p->values[k] = argv[++i];
        else
            return err_set_param(e, ERR_INVALID, p->names[k], "--%s: missing value", p->names[k]);
    }
    return true;
}

const char *cli_opt(const struct cli_parsed *p, const char *name)
{
    int k = find(p, name, strlen(name));
    return k >= 0 ? p->values[k] : NULL;
}

bool cli_has(const struct cli_parsed *p, const char *name)
{
    int k = find(p, name, strlen(name));
    return k >= 0 && p->present[k];
}

bool cli_opt_int(const struct cli_parsed *p, const char *name, int64_t min, int64_t max,
                 int64_t *out, struct err *e)
{
    const char *v = cli_opt(p, name);
    if (!v)
        return true;
    char *end = NULL;
    errno = 0;
    long long n = strtoll(v, &end, 10);
    if (errno || !*v || *end || n < min || n > max)
        return err_set_param(e, ERR_INVALID, name, "--%s: expected an integer in %lld..%lld: '%s'",
                             name, (long long)min, (long long)max, v);
    *out = n;
    return true;
}

bool cli_store_open(const struct cli_parsed *p, bool write, sqlite3 **db, struct err *e)
{
    char path[CONFIG_PATH_MAX];
    if (!cli_db_path(cli_opt(p, "db"), path, sizeof path, e) ||
        !store_open(path, write ? STORE_READWRITE : STORE_READONLY, db, e))
        return false;
    int v = 0;
    if (!migrate_current_version(*db, &v, e))
        goto fail;
    if (v != migrate_latest_version()) {
        err_set_param(e, ERR_UNSUPPORTED, "db",
                      "database '%s' is at schema version %d, this maasd expects %d: run "
                      "`maasd migrate --db %s` (or start the daemon) first",
                      path, v, migrate_latest_version(), path);
        goto fail;
    }
    if (write && !store_exec(*db, "BEGIN IMMEDIATE", e))
        goto fail;
    return true;
fail:
    store_close(*db);
    *db = NULL;
    return false;
}

bool cli_store_finish(sqlite3 *db, bool ok, struct err *e)
{
    if (!db)
        return ok;
    if (sqlite3_get_autocommit(db) == 0) {
        if (ok)
            ok = store_exec(db, "COMMIT", e);
        if (!ok)
            sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
    }
    store_close(db);
    return ok;
}

bool cli_store_pepper(const struct cli_parsed *p, sqlite3 *db, uint8_t out[APIKEY_PEPPER_LEN],
                      struct err *e)
{
    char dbp[CONFIG_PATH_MAX], path[CONFIG_PATH_MAX + 16];
    const char *flag = cli_opt(p, "key-pepper-file");
    if (!flag)
        flag = getenv("MAASD_KEY_PEPPER_FILE");
    bool any = true, created = false;
    return cli_db_path(cli_opt(p, "db"), dbp, sizeof dbp, e) &&
           pepper_path(flag, dbp, path, sizeof path, e) && keys_any(db, &any, e) &&
           pepper_open(path, !any, out, &created, e);
}

void cli_actor(char *out, size_t size)
{
    struct passwd *pw = getpwuid(getuid());
    if (pw && pw->pw_name)
        snprintf(out, size, "cli:%s", pw->pw_name);
    else
        snprintf(out, size, "cli:uid%ld", (long)getuid());
}

void cli_print_json(const char *json)
{
    cJSON *j = json ? cJSON_Parse(json) : NULL;
    char *s = j ? cJSON_Print(j) : NULL;
    printf("%s\n", s ? s : (json ? json : "null"));
    free(s);
    cJSON_Delete(j);
}

int cli_store_done(sqlite3 *db, bool ok, char *json, cJSON *list, struct err *e)
{
    ok = cli_store_finish(db, ok, e);
    if (ok && list) {
        char *text = cJSON_Print(list);
        printf("%s\n", text ? text : "null");
        free(text);
    } else if (ok) {
        cli_print_json(json);
    }
    free(json);
    cJSON_Delete(list);
    return ok ? 0 : cli_fail(e);
}

int cli_usage(const char *usage, const char *sub)
{
    bool help = sub && strcmp(sub, "--help") == 0;
    fputs(usage, help ? stdout : stderr);
    return help ? 0 : 2;
}

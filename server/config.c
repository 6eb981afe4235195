/* config.c — see config.h. The table below is the single source of truth for
 * every setting; docs/operators.md mirrors it. */
#include "server/config.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

enum setting_kind {
    SK_STRING,   /* char[] field */
    SK_LISTEN,   /* HOST:PORT into listen_host + listen_port */
    SK_INT,      /* int field, within [min, max] */
    SK_SIZE,     /* uint64_t bytes; suffixes K, M, G (powers of 1024) */
    SK_DURATION, /* uint64_t milliseconds; suffixes ms, s, m, h */
    SK_BOOL,     /* true/false/1/0/yes/no/on/off */
    SK_LOGLEVEL, /* enum log_level */
    SK_MODELS,   /* repeatable ID=PATH */
};

struct setting {
    const char *name;       /* flag without "--", config-file key */
    const char *env;
    enum setting_kind kind;
    size_t offset;
    size_t size;            /* SK_STRING: buffer size */
    const char *def;        /* default, parsed like any other value */
    long long min, max;     /* SK_INT / SK_SIZE / SK_DURATION bounds */
    const char *metavar;
    const char *help;
};

#define F(field) offsetof(struct config, field), sizeof(((struct config *)0)->field)

static const struct setting settings[] = {
    {"config", "MAASD_CONFIG", SK_STRING, F(config_file), "", 0, 0, "PATH",
     "optional config file: one `key = value` per line, keys as the flag names"},
    {"listen", "MAASD_LISTEN", SK_LISTEN, 0, 0, "127.0.0.1:8080", 0, 65535, "HOST:PORT",
     "address to serve HTTP on; port 0 picks a free port (logged at start-up)"},
    {"db", "MAASD_DB", SK_STRING, F(db_path), "data/maasd.db", 0, 0, "PATH",
     "SQLite database file (created, and migrated, when missing)"},
    {"model", "MAASD_MODEL", SK_MODELS, 0, 0, "maasd-demo=builtin:demo", 0, 0, "ID=PATH",
     "serve the GGUF file PATH as model ID; repeatable (environment: comma-separated); "
     "builtin:demo is the built-in demo model"},
    {"log-level", "MAASD_LOG_LEVEL", SK_LOGLEVEL, F(log_level), "info", 0, 0, "LEVEL",
     "debug, info, warn, error or off"},
    {"shutdown-timeout", "MAASD_SHUTDOWN_TIMEOUT", SK_DURATION, F(shutdown_timeout_ms), "30s",
     0, 24LL * 3600 * 1000, "DURATION",
     "on SIGTERM/SIGINT, how long in-flight requests may take to finish"},
    {"max-body-bytes", "MAASD_MAX_BODY_BYTES", SK_SIZE, F(max_body_bytes), "1M", 1,
     1LL << 30, "SIZE", "largest request body accepted; larger ones get 413"},
    {"max-connections", "MAASD_MAX_CONNECTIONS", SK_INT, F(max_connections), "1024", 1, 65535,
     "N", "most simultaneous client connections"},
    {"connection-timeout", "MAASD_CONNECTION_TIMEOUT", SK_DURATION, F(connection_timeout_ms),
     "60s", 1000, 24LL * 3600 * 1000, "DURATION",
     "close a connection idle this long (whole seconds; waiting on the model does not count)"},
    {"max-running", "MAASD_MAX_RUNNING", SK_INT, F(max_running), "64", 1, 4096, "N",
     "sequences decoding at once, per model (continuous batching)"},
    {"max-batch-tokens", "MAASD_MAX_BATCH_TOKENS", SK_INT, F(max_batch_tokens), "512", 1, 65536,
     "N", "tokens per forward pass: one per decoding sequence plus prompt chunks"},
    {"prefill-chunk", "MAASD_PREFILL_CHUNK", SK_INT, F(prefill_chunk), "64", 0, 65536, "N",
     "prompt tokens per forward pass while other sequences decode (bounds their inter-token "
     "latency); 0 = up to --max-batch-tokens"},
    {"itl-factor", "MAASD_ITL_FACTOR", SK_INT, F(itl_factor), "3", 0, 1000, "N",
     "keep each forward pass within N times a one-token pass, so that batching never makes a "
     "stream's inter-token latency worse than N times a lone stream's: more requests wait in "
     "the queue instead; 0 = batch up to --max-running"},
    {"max-queue", "MAASD_MAX_QUEUE", SK_INT, F(max_queue), "256", 1, 1000000, "N",
     "requests waiting per model; beyond it 503 server_overloaded with Retry-After"},
    {"kv-cache-bytes", "MAASD_KV_CACHE_BYTES", SK_SIZE, F(kv_cache_bytes), "2G", 1 << 20,
     1LL << 40, "SIZE", "KV-cache memory per model; requests wait when it is full"},
    {"ctx-size", "MAASD_CTX_SIZE", SK_INT, F(ctx_size), "0", 0, 1 << 20, "N",
     "context length per sequence; 0 = the model's trained context"},
    {"threads", "MAASD_THREADS", SK_INT, F(threads), "0", 0, 1024, "N",
     "compute threads; 0 = every online CPU"},
    {"request-timeout", "MAASD_REQUEST_TIMEOUT", SK_DURATION, F(request_timeout_ms), "10m", 100,
     24LL * 3600 * 1000, "DURATION",
     "an inference request still running after this fails with 504 (tokens used are billed)"},
    {"test-routes", "MAASD_TEST_ROUTES", SK_BOOL, F(test_routes), "false", 0, 0, "BOOL",
     "serve the /_test/* routes used by the test suite; never in production"},
    {"key-pepper-file", "MAASD_KEY_PEPPER_FILE", SK_STRING, F(key_pepper_file), "", 0, 0, "PATH",
     "secret that API key hashes are keyed with (default <db>.pepper, created on first start); "
     "losing it invalidates every key: back it up apart from the database"},
    {"idempotency-retention", "MAASD_IDEMPOTENCY_RETENTION", SK_DURATION,
     F(idempotency_retention_ms), "24h", 24LL * 3600 * 1000, 30LL * 24 * 3600 * 1000, "DURATION",
     "how long a response stored for an Idempotency-Key is replayed before it is deleted "
     "(at least 24h)"},
    {"invoice-grace", "MAASD_INVOICE_GRACE", SK_DURATION, F(invoice_grace_ms), "72h", 0,
     90LL * 24 * 3600 * 1000, "DURATION",
     "invoices stay drafts until their month ends plus this long (late usage still lands on "
     "them); POST /admin/v1/invoices/close refuses before"},
    {"metrics-token-file", "MAASD_METRICS_TOKEN_FILE", SK_STRING, F(metrics_token_file), "", 0,
     0, "PATH",
     "file holding the bearer token GET /metrics requires; without one, /metrics answers "
     "loopback clients only"},
    {"tls-cert", "MAASD_TLS_CERT", SK_STRING, F(tls_cert), "", 0, 0, "PATH",
     "serve HTTPS with this PEM certificate chain (with --tls-key); reloaded on SIGHUP"},
    {"tls-key", "MAASD_TLS_KEY", SK_STRING, F(tls_key), "", 0, 0, "PATH",
     "the PEM private key of --tls-cert; reloaded on SIGHUP"},
    {"backup-dir", "MAASD_BACKUP_DIR", SK_STRING, F(backup_dir), "", 0, 0, "PATH",
     "write a consistent online backup of the database here every --backup-every"},
    {"backup-every", "MAASD_BACKUP_EVERY", SK_DURATION, F(backup_every_ms), "24h", 1000,
     30LL * 24 * 3600 * 1000, "DURATION", "interval between periodic backups (with --backup-dir)"},
    {"backup-keep", "MAASD_BACKUP_KEEP", SK_INT, F(backup_keep), "7", 1, 10000, "N",
     "periodic backups kept in --backup-dir; older ones are deleted"},
};

#define N_SETTINGS (sizeof settings / sizeof settings[0])

static bool fail(struct err *e, const struct setting *s, const char *source, const char *why,
                 const char *value)
{
    char where[96];
    if (strcmp(source, "flag") == 0)
        snprintf(where, sizeof where, "--%s", s->name);
    else if (strcmp(source, "env") == 0)
        snprintf(where, sizeof where, "%s", s->env);
    else
        snprintf(where, sizeof where, "%s (%s)", s->name, source);
    return err_set_param(e, ERR_INVALID, s->name, "%s: %s: '%s'", where, why, value);
}

static bool parse_u64_suffixed(const char *v, uint64_t *out, const char *const *suffixes,
                               const uint64_t *mults, int n_suffixes)
{
    errno = 0;
    char *end = NULL;
    if (!isdigit((unsigned char)v[0]))
        return false;
    unsigned long long n = strtoull(v, &end, 10);
    if (errno != 0)
        return false;
    uint64_t mult = 1;
    if (*end != '\0') {
        int found = -1;
        for (int i = 0; i < n_suffixes; i++)
            if (strcmp(end, suffixes[i]) == 0)
                found = i;
        if (found < 0)
            return false;
        mult = mults[found];
    }
    if (mult != 0 && n > UINT64_MAX / mult)
        return false;
    *out = (uint64_t)n * mult;
    return true;
}

static bool parse_bool(const char *v, bool *out)
{
    static const char *const yes[] = {"1", "true", "yes", "on"};
    static const char *const no[] = {"0", "false", "no", "off"};
    for (int i = 0; i < 4; i++) {
        if (strcasecmp(v, yes[i]) == 0) {
            *out = true;
            return true;
        }
        if (strcasecmp(v, no[i]) == 0) {
            *out = false;
            return true;
        }
    }
    return false;
}

static bool parse_listen(struct config *cfg, const char *v)
{
    const char *colon = strrchr(v, ':');
    if (!colon || colon == v)
        return false;
    size_t hlen = (size_t)(colon - v);
    const char *h = v;
    if (h[0] == '[') { /* [::1]:8080 */
        if (hlen < 3 || h[hlen - 1] != ']')
            return false;
        h++;
        hlen -= 2;
    }
    if (hlen >= sizeof cfg->listen_host)
        return false;
    char *end = NULL;
    errno = 0;
    long port = strtol(colon + 1, &end, 10);
    if (errno || *end || colon[1] == '\0' || port < 0 || port > 65535)
        return false;
    memcpy(cfg->listen_host, h, hlen);
    cfg->listen_host[hlen] = '\0';
    cfg->listen_port = (int)port;
    return true;
}

/* One ID=PATH; appended to the model list. */
static bool add_model(struct config *cfg, const char *v, const char **why)
{
    const char *eq = strchr(v, '=');
    if (!eq || eq == v || eq[1] == '\0') {
        *why = "expected ID=PATH";
        return false;
    }
    size_t idlen = (size_t)(eq - v);
    if (idlen >= sizeof cfg->models[0].id) {
        *why = "model id too long";
        return false;
    }
    for (size_t i = 0; i < idlen; i++) {
        unsigned char c = (unsigned char)v[i];
        if (!isalnum(c) && c != '-' && c != '_' && c != '.' && c != ':' && c != '@') {
            *why = "model id may use letters, digits and - _ . : @";
            return false;
        }
    }
    if (strlen(eq + 1) >= sizeof cfg->models[0].path) {
        *why = "path too long";
        return false;
    }
    if (cfg->n_models >= CONFIG_MAX_MODELS) {
        *why = "too many models";
        return false;
    }
    for (int i = 0; i < cfg->n_models; i++) {
        if (strlen(cfg->models[i].id) == idlen && memcmp(cfg->models[i].id, v, idlen) == 0) {
            *why = "duplicate model id";
            return false;
        }
    }
    struct config_model *m = &cfg->models[cfg->n_models++];
    memcpy(m->id, v, idlen);
    m->id[idlen] = '\0';
    snprintf(m->path, sizeof m->path, "%s", eq + 1);
    return true;
}

static bool apply(struct config *cfg, const struct setting *s, const char *v, const char *source,
                  struct err *e)
{
    char *field = (char *)cfg + s->offset;
    static const char *const size_sfx[] = {"K", "M", "G", "KiB", "MiB", "GiB"};
    static const uint64_t size_mul[] = {1ULL << 10, 1ULL << 20, 1ULL << 30,
                                        1ULL << 10, 1ULL << 20, 1ULL << 30};
    static const char *const dur_sfx[] = {"ms", "s", "m", "h"};
    static const uint64_t dur_mul[] = {1, 1000, 60000, 3600000};

    switch (s->kind) {
    case SK_STRING:
        if (strlen(v) >= s->size)
            return fail(e, s, source, "too long", v);
        memcpy(field, v, strlen(v) + 1);
        return true;
    case SK_LISTEN:
        if (!parse_listen(cfg, v))
            return fail(e, s, source, "expected HOST:PORT with a port in 0..65535", v);
        return true;
    case SK_INT: {
        char *end = NULL;
        errno = 0;
        long long n = strtoll(v, &end, 10);
        if (errno || !*v || *end || n < s->min || n > s->max) {
            char why[96];
            snprintf(why, sizeof why, "expected an integer in %lld..%lld", s->min, s->max);
            return fail(e, s, source, why, v);
        }
        *(int *)field = (int)n;
        return true;
    }
    case SK_SIZE: {
        uint64_t n;
        if (!parse_u64_suffixed(v, &n, size_sfx, size_mul, 6))
            return fail(e, s, source, "expected a size such as 1048576, 512K or 1M", v);
        if (n < (uint64_t)s->min || n > (uint64_t)s->max)
            return fail(e, s, source, "size out of range", v);
        *(uint64_t *)field = n;
        return true;
    }
    case SK_DURATION: {
        uint64_t n;
        if (!parse_u64_suffixed(v, &n, dur_sfx, dur_mul, 4) || strspn(v, "0123456789") == strlen(v))
            return fail(e, s, source, "expected a duration with a unit, such as 500ms, 30s or 5m", v);
        if (n < (uint64_t)s->min || n > (uint64_t)s->max)
            return fail(e, s, source, "duration out of range", v);
        *(uint64_t *)field = n;
        return true;
    }
    case SK_BOOL:
        if (!parse_bool(v, (bool *)field))
            return fail(e, s, source, "expected true or false", v);
        return true;
    case SK_LOGLEVEL:
        if (!log_level_parse(v, (enum log_level *)field))
            return fail(e, s, source, "expected debug, info, warn, error or off", v);
        return true;
    case SK_MODELS: {
        /* A source replaces the list of lower-precedence sources wholesale. */
        cfg->n_models = 0;
        char buf[CONFIG_PATH_MAX * 2];
        if (strlen(v) >= sizeof buf)
            return fail(e, s, source, "too long", v);
        memcpy(buf, v, strlen(v) + 1);
        char *save = NULL;
        for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
            const char *why = NULL;
            if (!add_model(cfg, tok, &why))
                return fail(e, s, source, why, tok);
        }
        return true;
    }
    }
    return false;
}

static const struct setting *find_setting(const char *name, size_t len)
{
    for (size_t i = 0; i < N_SETTINGS; i++)
        if (strlen(settings[i].name) == len && strncmp(settings[i].name, name, len) == 0)
            return &settings[i];
    return NULL;
}

static char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    char *end = s + strlen(s);
    while (end > s && isspace((unsigned char)end[-1]))
        *--end = '\0';
    return s;
}

static bool load_file(struct config *cfg, const char *path, struct err *e)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return err_set_param(e, ERR_INVALID, "config", "--config: cannot open '%s': %s", path,
                             strerror(errno));
    char line[CONFIG_PATH_MAX * 2];
    int lineno = 0;
    bool models_seen = false;
    bool ok = true;
    while (ok && fgets(line, sizeof line, f)) {
        lineno++;
        char *p = trim(line);
        if (*p == '\0' || *p == '#')
            continue;
        char *eq = strchr(p, '=');
        if (!eq) {
            ok = err_set_param(e, ERR_INVALID, "config", "%s:%d: expected key = value", path, lineno);
            break;
        }
        *eq = '\0';
        char *key = trim(p), *val = trim(eq + 1);
        const struct setting *s = find_setting(key, strlen(key));
        if (!s || strcmp(key, "config") == 0) {
            ok = err_set_param(e, ERR_INVALID, "config", "%s:%d: unknown setting '%s'", path,
                               lineno, key);
            break;
        }
        char source[CONFIG_PATH_MAX + 16];
        snprintf(source, sizeof source, "%s:%d", path, lineno);
        if (s->kind == SK_MODELS) {
            /* `model = a=x` lines accumulate within the file. */
            if (!models_seen)
                cfg->n_models = 0;
            models_seen = true;
            const char *why = NULL;
            if (!add_model(cfg, val, &why))
                ok = fail(e, s, source, why, val);
        } else {
            ok = apply(cfg, s, val, source, e);
        }
    }
    fclose(f);
    return ok;
}

bool config_load(struct config *cfg, int argc, char **argv, struct err *e)
{
    memset(cfg, 0, sizeof *cfg);
    for (size_t i = 0; i < N_SETTINGS; i++)
        if (!apply(cfg, &settings[i], settings[i].def, "default", e))
            return err_wrap(e, "internal: bad default");

    /* Collect flags first (validating their names), so --config is known
     * before the file is read, then apply sources in precedence order. */
    const char *flag_val[N_SETTINGS];
    memset(flag_val, 0, sizeof flag_val);
    const char *flag_models[CONFIG_MAX_MODELS + 1];
    int n_flag_models = 0;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (strncmp(a, "--", 2) != 0)
            return err_set(e, ERR_INVALID, "unexpected argument '%s' (see --help)", a);
        const char *name = a + 2, *eq = strchr(name, '=');
        size_t nlen = eq ? (size_t)(eq - name) : strlen(name);
        const struct setting *s = find_setting(name, nlen);
        if (!s)
            return err_set(e, ERR_INVALID, "unknown flag '%.*s' (see --help)", (int)nlen + 2, a);
        const char *v = NULL;
        if (eq)
            v = eq + 1;
        else if (s->kind == SK_BOOL)
            v = "true";
        else if (i + 1 < argc)
            v = argv[++i];
        else
            return err_set_param(e, ERR_INVALID, s->name, "--%s: missing value", s->name);
        if (s->kind == SK_MODELS) {
            if (n_flag_models >= CONFIG_MAX_MODELS)
                return err_set_param(e, ERR_INVALID, "model", "--model: too many models");
            flag_models[n_flag_models++] = v;
        } else {
            flag_val[s - settings] = v;
        }
    }

    const struct setting *cfg_setting = find_setting("config", 6);
    const char *cfg_path = flag_val[cfg_setting - settings];
    if (!cfg_path)
        cfg_path = getenv(cfg_setting->env);
    if (cfg_path && *cfg_path) {
        if (!apply(cfg, cfg_setting, cfg_path, cfg_path == getenv(cfg_setting->env) ? "env" : "flag", e))
            return false;
        if (!load_file(cfg, cfg_path, e))
            return false;
    }

    for (size_t i = 0; i < N_SETTINGS; i++) {
        const char *v = getenv(settings[i].env);
        if (v && &settings[i] != cfg_setting && !apply(cfg, &settings[i], v, "env", e))
            return false;
    }
    for (size_t i = 0; i < N_SETTINGS; i++)
        if (flag_val[i] && !apply(cfg, &settings[i], flag_val[i], "flag", e))
            return false;
    if (n_flag_models > 0) {
        cfg->n_models = 0;
        for (int i = 0; i < n_flag_models; i++) {
            const char *why = NULL;
            if (!add_model(cfg, flag_models[i], &why))
                return fail(e, find_setting("model", 5), "flag", why, flag_models[i]);
        }
    }
    return true;
}

void config_print_help(FILE *out)
{
    fprintf(out, "Settings (flag > environment > config file > default):\n\n");
    for (size_t i = 0; i < N_SETTINGS; i++) {
        const struct setting *s = &settings[i];
        char flag[96];
        snprintf(flag, sizeof flag, "--%s %s", s->name, s->metavar);
        fprintf(out, "  %-32s %s\n  %-32s env %s", flag, s->help, "", s->env);
        if (s->def[0])
            fprintf(out, ", default %s", s->def);
        fprintf(out, "\n");
    }
}

/* export.c — see export.h. */
#include "server/export.h"

#include <cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "server/sq.h"

#define MAX_TABLES 64

struct table {
    char name[128];
    bool has_customer_id, has_id;
    /* A table reached through a foreign key: name.fk_from -> parent.fk_to */
    int parent;                 /* index in the tables array, -1 when none */
    char fk_from[128], fk_to[128];
};

/* "name" quoted as an SQL identifier. */
static void quote_ident(char *out, size_t size, const char *name)
{
    size_t n = 0;
    if (size < 3)
        return;
    out[n++] = '"';
    for (const char *p = name; *p && n + 3 < size; p++) {
        if (*p == '"')
            out[n++] = '"';
        out[n++] = *p;
    }
    out[n++] = '"';
    out[n] = '\0';
}

static bool column_exists(sqlite3 *db, const char *table, const char *col, bool *out,
                          struct err *e)
{
    int64_t n = 0;
    if (!sq_int(db, "SELECT count(*) FROM pragma_table_info(?) WHERE name = ?", &n, NULL, e,
                SQ_TEXT(table), SQ_TEXT(col), SQ_END))
        return false;
    *out = n > 0;
    return true;
}

static bool is_json_column(const char *col)
{
    size_t n = strlen(col);
    return strcmp(col, "scopes") == 0 || strcmp(col, "allowed_models") == 0 ||
           (n > 5 && strcmp(col + n - 5, "_json") == 0);
}

static bool utf8_text(const unsigned char *p, int n)
{
    for (int i = 0; i < n;) {
        unsigned char c = p[i];
        int len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
        if (len == 0 || c == 0 || i + len > n)
            return false;
        for (int k = 1; k < len; k++)
            if ((p[i + k] & 0xc0) != 0x80)
                return false;
        i += len;
    }
    return true;
}

/* One result row as a JSON object, columns by name. */
static cJSON *row_json(sqlite3_stmt *st, const char *table)
{
    cJSON *o = cJSON_CreateObject();
    for (int i = 0; i < sqlite3_column_count(st); i++) {
        const char *col = sqlite3_column_name(st, i);
        if (strcmp(table, "api_keys") == 0 && strcmp(col, "hash") == 0)
            continue; /* export.h: never the key hash */
        switch (sqlite3_column_type(st, i)) {
        case SQLITE_INTEGER:
            cJSON_AddItemToObject(o, col, cJSON_CreateNumber((double)sqlite3_column_int64(st, i)));
            break;
        case SQLITE_FLOAT:
            cJSON_AddNumberToObject(o, col, sqlite3_column_double(st, i));
            break;
        case SQLITE_TEXT: {
            const char *t = (const char *)sqlite3_column_text(st, i);
            cJSON *j = is_json_column(col) ? cJSON_Parse(t) : NULL;
            cJSON_AddItemToObject(o, col, j ? j : cJSON_CreateString(t));
            break;
        }
        case SQLITE_BLOB: {
            const unsigned char *b = sqlite3_column_blob(st, i);
            int n = sqlite3_column_bytes(st, i);
            char *s = malloc((size_t)n * 2 + 1);
            if (!s)
                abort();
            if (utf8_text(b, n)) {
                memcpy(s, b, (size_t)n);
                s[n] = '\0';
            } else {
                for (int k = 0; k < n; k++)
                    snprintf(s + 2 * k, 3, "%02x", b[k]);
                s[2 * n] = '\0';
            }
            cJSON_AddStringToObject(o, col, s);
            free(s);
            break;
        }
        default:
            cJSON_AddNullToObject(o, col);
        }
    }
    return o;
}

/* Run `sql` (one text parameter, ?1 = the customer id) and write its rows
 * as the array "table": [...]. */
static bool write_rows(sqlite3 *db, const char *table, const char *sql, const char *id,
                       FILE *out, bool *first_table, struct err *e)
{
    sqlite3_stmt *st = NULL;
    if (!sq_prepare(db, sql, &st, e, SQ_TEXT(id), SQ_END))
        return false;
    fprintf(out, "%s\n    ", *first_table ? "" : ",");
    *first_table = false;
    cJSON *k = cJSON_CreateString(table);
    char *key = cJSON_PrintUnformatted(k);
    cJSON_Delete(k);
    if (!key)
        abort();
    fprintf(out, "%s: [", key);
    free(key);
    int rc, n = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        cJSON *o = row_json(st, table);
        char *text = cJSON_PrintUnformatted(o);
        cJSON_Delete(o);
        if (!text)
            abort();
        fprintf(out, "%s\n      %s", n++ ? "," : "", text);
        free(text);
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE)
        return sq_fail(db, table, e);
    fprintf(out, "%s]", n ? "\n    " : "");
    return true;
}

static bool find_tables(sqlite3 *db, struct table *t, int *n_out, struct err *e)
{
    sqlite3_stmt *st = NULL;
    int n = 0;
    if (!sq_prepare(db,
                    "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE "
                    "'sqlite_%' AND name NOT IN ('audit_log', 'schema_migrations') ORDER BY name",
                    &st, e, SQ_END))
        return false;
    while (sqlite3_step(st) == SQLITE_ROW && n < MAX_TABLES) {
        memset(&t[n], 0, sizeof t[n]);
        snprintf(t[n].name, sizeof t[n].name, "%s", (const char *)sqlite3_column_text(st, 0));
        t[n].parent = -1;
        n++;
    }
    sqlite3_finalize(st);
    for (int i = 0; i < n; i++)
        if (!column_exists(db, t[i].name, "customer_id", &t[i].has_customer_id, e) ||
            !column_exists(db, t[i].name, "id", &t[i].has_id, e))
            return false;
    /* Second level: a foreign key into a customer-owned table. */
    for (int i = 0; i < n; i++) {
        if (t[i].has_customer_id || strcmp(t[i].name, "customers") == 0)
            continue;
        if (!sq_prepare(db, "SELECT \"table\", \"from\", \"to\" FROM pragma_foreign_key_list(?)",
                        &st, e, SQ_TEXT(t[i].name), SQ_END))
            return false;
        while (sqlite3_step(st) == SQLITE_ROW && t[i].parent < 0) {
            const char *parent = (const char *)sqlite3_column_text(st, 0);
            for (int k = 0; k < n; k++) {
                if (k != i && t[k].has_customer_id && strcmp(t[k].name, parent) == 0 &&
                    sqlite3_column_text(st, 2)) {
                    t[i].parent = k;
                    snprintf(t[i].fk_from, sizeof t[i].fk_from, "%s",
                             (const char *)sqlite3_column_text(st, 1));
                    snprintf(t[i].fk_to, sizeof t[i].fk_to, "%s",
                             (const char *)sqlite3_column_text(st, 2));
                    break;
                }
            }
        }
        sqlite3_finalize(st);
    }
    *n_out = n;
    return true;
}

static bool export_tables(sqlite3 *db, const char *id, FILE *out, struct err *e)
{
    struct table t[MAX_TABLES];
    int n = 0;
    if (!find_tables(db, t, &n, e))
        return false;
    bool first = true;
    char sql[2048], q[300], qp[300], qf[300], qt[300];
    if (!write_rows(db, "customers", "SELECT * FROM customers WHERE id = ?1", id, out, &first, e))
        return false;
    for (int i = 0; i < n; i++) {
        quote_ident(q, sizeof q, t[i].name);
        if (t[i].has_customer_id) {
            snprintf(sql, sizeof sql, "SELECT * FROM %s WHERE customer_id = ?1", q);
        } else if (t[i].parent >= 0) {
            quote_ident(qp, sizeof qp, t[t[i].parent].name);
            quote_ident(qf, sizeof qf, t[i].fk_from);
            quote_ident(qt, sizeof qt, t[i].fk_to);
            snprintf(sql, sizeof sql,
                     "SELECT * FROM %s WHERE %s IN (SELECT %s FROM %s WHERE customer_id = ?1)", q,
                     qf, qt, qp);
        } else {
            continue;
        }
        if (!write_rows(db, t[i].name, sql, id, out, &first, e))
            return false;
    }
    /* The audit trail of the customer and of everything it owns. */
    size_t used = (size_t)snprintf(sql, sizeof sql,
                                   "SELECT * FROM audit_log WHERE target = ?1");
    for (int i = 0; i < n && used < sizeof sql; i++) {
        if (!t[i].has_customer_id || !t[i].has_id)
            continue;
        quote_ident(q, sizeof q, t[i].name);
        used += (size_t)snprintf(sql + used, sizeof sql - used,
                                 " OR target IN (SELECT id FROM %s WHERE customer_id = ?1)", q);
    }
    if (used + 20 >= sizeof sql)
        return err_set(e, ERR_INTERNAL, "export: too many tables");
    snprintf(sql + used, sizeof sql - used, " ORDER BY seq");
    return write_rows(db, "audit_log", sql, id, out, &first, e);
}

bool export_customer(sqlite3 *db, const char *customer_id, int64_t now_ms, FILE *out,
                     struct err *e)
{
    int64_t found = 0;
    if (!sq_int(db, "SELECT count(*) FROM customers WHERE id = ?", &found, NULL, e,
                SQ_TEXT(customer_id), SQ_END))
        return false;
    if (!found)
        return err_set_param(e, ERR_NOT_FOUND, "customer", "no customer '%s'", customer_id);
    /* One snapshot for every table. */
    if (!sq_exec(db, "BEGIN", NULL, e, SQ_END))
        return false;
    cJSON *idj = cJSON_CreateString(customer_id);
    char *idtext = cJSON_PrintUnformatted(idj);
    cJSON_Delete(idj);
    fprintf(out, "{\n  \"object\": \"customer.export\",\n  \"customer_id\": %s,\n"
                 "  \"exported_at\": %lld,\n  \"tables\": {",
            idtext, (long long)now_ms);
    free(idtext);
    bool ok = export_tables(db, customer_id, out, e);
    if (ok)
        fprintf(out, "\n  }\n}\n");
    struct err ignore;
    sq_exec(db, "COMMIT", NULL, &ignore, SQ_END);
    return ok;
}

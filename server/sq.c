/* sq.c — see sq.h. */
#include "server/sq.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "server/store.h"

#define SQ_MAX_ARGS 32

bool sq_fail(sqlite3 *db, const char *what, struct err *e)
{
    /* A trigger's RAISE message is written for people; keep it whole. */
    if (db && sqlite3_extended_errcode(db) == SQLITE_CONSTRAINT_TRIGGER)
        return err_set(e, ERR_CONFLICT, "%s", sqlite3_errmsg(db));
    return store_fail(db, what, e);
}

bool sq_bind_list(sqlite3 *db, sqlite3_stmt *st, const struct sq_arg *args, int n, struct err *e)
{
    for (int i = 0; i < n; i++) {
        const struct sq_arg *a = &args[i];
        int rc = SQLITE_OK;
        switch (a->kind) {
        case SQ_KIND_TEXT:
            rc = a->s ? sqlite3_bind_text(st, i + 1, a->s, -1, SQLITE_TRANSIENT)
                      : sqlite3_bind_null(st, i + 1);
            break;
        case SQ_KIND_INT: rc = sqlite3_bind_int64(st, i + 1, a->i); break;
        case SQ_KIND_NULL: rc = sqlite3_bind_null(st, i + 1); break;
        case SQ_KIND_BLOB:
            rc = sqlite3_bind_blob(st, i + 1, a->s, (int)a->i, SQLITE_TRANSIENT);
            break;
        case SQ_KIND_END: break;
        }
        if (rc != SQLITE_OK)
            return sq_fail(db, "binding a value", e);
    }
    return true;
}

static int collect(va_list ap, struct sq_arg *out)
{
    int n = 0;
    for (;;) {
        struct sq_arg a = va_arg(ap, struct sq_arg);
        if (a.kind == SQ_KIND_END || n == SQ_MAX_ARGS)
            break;
        out[n++] = a;
    }
    return n;
}

static bool prepare_v(sqlite3 *db, const char *sql, sqlite3_stmt **out, struct err *e, va_list ap)
{
    struct sq_arg args[SQ_MAX_ARGS];
    int n = collect(ap, args);
    *out = NULL;
    if (sqlite3_prepare_v2(db, sql, -1, out, NULL) != SQLITE_OK)
        return sq_fail(db, "preparing a statement", e);
    if (!sq_bind_list(db, *out, args, n, e)) {
        sqlite3_finalize(*out);
        *out = NULL;
        return false;
    }
    return true;
}

bool sq_prepare(sqlite3 *db, const char *sql, sqlite3_stmt **out, struct err *e, ...)
{
    va_list ap;
    va_start(ap, e);
    bool ok = prepare_v(db, sql, out, e, ap);
    va_end(ap);
    return ok;
}

bool sq_exec(sqlite3 *db, const char *sql, int *changes, struct err *e, ...)
{
    sqlite3_stmt *st;
    va_list ap;
    va_start(ap, e);
    bool ok = prepare_v(db, sql, &st, e, ap);
    va_end(ap);
    if (!ok)
        return false;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW)
        ;
    if (rc != SQLITE_DONE) {
        sq_fail(db, "database", e);
        sqlite3_finalize(st);
        return false;
    }
    if (changes)
        *changes = sqlite3_changes(db);
    sqlite3_finalize(st);
    return true;
}

bool sq_text(sqlite3 *db, const char *sql, char **out, struct err *e, ...)
{
    *out = NULL;
    sqlite3_stmt *st;
    va_list ap;
    va_start(ap, e);
    bool ok = prepare_v(db, sql, &st, e, ap);
    va_end(ap);
    if (!ok)
        return false;
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        const char *t = (const char *)sqlite3_column_text(st, 0);
        if (t) {
            *out = strdup(t);
            if (!*out)
                ok = err_set(e, ERR_NOMEM, "out of memory");
        }
    } else if (rc != SQLITE_DONE) {
        ok = sq_fail(db, "database", e);
    }
    sqlite3_finalize(st);
    return ok;
}

bool sq_int(sqlite3 *db, const char *sql, int64_t *out, bool *found, struct err *e, ...)
{
    if (found)
        *found = false;
    sqlite3_stmt *st;
    va_list ap;
    va_start(ap, e);
    bool ok = prepare_v(db, sql, &st, e, ap);
    va_end(ap);
    if (!ok)
        return false;
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        if (sqlite3_column_type(st, 0) != SQLITE_NULL) {
            *out = sqlite3_column_int64(st, 0);
            if (found)
                *found = true;
        }
    } else if (rc != SQLITE_DONE) {
        ok = sq_fail(db, "database", e);
    }
    sqlite3_finalize(st);
    return ok;
}

bool sq_json_rows(sqlite3 *db, const char *sql, cJSON *array, int *n, struct err *e, ...)
{
    if (n)
        *n = 0;
    sqlite3_stmt *st;
    va_list ap;
    va_start(ap, e);
    bool ok = prepare_v(db, sql, &st, e, ap);
    va_end(ap);
    if (!ok)
        return false;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *t = (const char *)sqlite3_column_text(st, 0);
        cJSON *item = t ? cJSON_Parse(t) : NULL;
        if (!item) {
            sqlite3_finalize(st);
            return err_set(e, ERR_INTERNAL, "a row did not render as JSON");
        }
        cJSON_AddItemToArray(array, item);
        if (n)
            (*n)++;
    }
    if (rc != SQLITE_DONE)
        ok = sq_fail(db, "database", e);
    sqlite3_finalize(st);
    return ok;
}

cJSON *sq_list_envelope(cJSON *data, int limit)
{
    bool has_more = false;
    if (limit >= 0 && cJSON_GetArraySize(data) > limit) {
        cJSON_DeleteItemFromArray(data, limit);
        has_more = true;
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "object", "list");
    cJSON_AddItemToObject(o, "data", data);
    int n = cJSON_GetArraySize(data);
    const cJSON *first = n ? cJSON_GetObjectItem(cJSON_GetArrayItem(data, 0), "id") : NULL;
    const cJSON *last = n ? cJSON_GetObjectItem(cJSON_GetArrayItem(data, n - 1), "id") : NULL;
    if (cJSON_IsString(first))
        cJSON_AddStringToObject(o, "first_id", first->valuestring);
    else
        cJSON_AddNullToObject(o, "first_id");
    if (cJSON_IsString(last))
        cJSON_AddStringToObject(o, "last_id", last->valuestring);
    else
        cJSON_AddNullToObject(o, "last_id");
    cJSON_AddBoolToObject(o, "has_more", has_more);
    return o;
}

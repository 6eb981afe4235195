/* model_registry.c — see model_registry.h. */
#include "server/model_registry.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/audit.h"
#include "server/sq.h"

bool model_registry_check_id(const char *id, const char *param, struct err *e)
{
    size_t n = strlen(id);
    if (n == 0 || n >= MODEL_ID_MAX)
        return err_set_param(e, ERR_INVALID, param, "'%s' must be 1 to %d characters", param,
                             MODEL_ID_MAX - 1);
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)id[i]) && id[i] != '-' && id[i] != '_' && id[i] != '.')
            return err_set_param(e, ERR_INVALID, param,
                                 "'%s' may use letters, digits and - _ . only", param);
    return true;
}

bool model_registry_parse_name(const char *name, char id[MODEL_ID_MAX], int *version,
                               struct err *e)
{
    const char *at = strrchr(name, '@');
    char *end = NULL;
    long v = at ? strtol(at + 1, &end, 10) : 0;
    if (!at || at == name || (size_t)(at - name) >= MODEL_ID_MAX || !end || *end || v < 1 ||
        v > 1000000)
        return err_set_param(e, ERR_INVALID, "model", "expected a model version as <id>@<version>: '%s'",
                             name);
    memcpy(id, name, (size_t)(at - name));
    id[at - name] = '\0';
    *version = (int)v;
    return model_registry_check_id(id, "model", e);
}

static void row_json(const char *id, int version, const char *path, bool loaded, char *out,
                     size_t size)
{
    /* Paths are operator-given; keep the audit JSON valid whatever they hold. */
    char safe[1024];
    size_t k = 0;
    for (const char *p = path; *p && k + 2 < sizeof safe; p++)
        if (*p != '"' && *p != '\\' && (unsigned char)*p >= 0x20)
            safe[k++] = *p;
    safe[k] = '\0';
    snprintf(out, size, "{\"model\":\"%s@%d\",\"path\":\"%s\",\"loaded\":%s}", id, version, safe,
             loaded ? "true" : "false");
}

bool model_registry_add(sqlite3 *db, const char *actor, const char *model_id, const char *path,
                        int64_t now, int *version, struct err *e)
{
    if (!model_registry_check_id(model_id, "id", e))
        return false;
    int64_t used = 0;
    bool found = false;
    if (!sq_int(db, "SELECT 1 FROM model_aliases WHERE alias = ?", &used, &found, e,
                SQ_TEXT(model_id), SQ_END))
        return false;
    if (found)
        return err_set_param(e, ERR_CONFLICT, "id", "'%s' is already an alias", model_id);
    int64_t max = 0;
    if (!sq_int(db, "SELECT coalesce(max(version), 0) FROM model_versions WHERE model_id = ?",
                &max, &found, e, SQ_TEXT(model_id), SQ_END))
        return false;
    *version = (int)max + 1;
    if (!sq_exec(db,
                 "INSERT INTO model_versions (model_id, version, path, loaded, created_at, "
                 "updated_at) VALUES (?, ?, ?, 1, ?, ?)",
                 NULL, e, SQ_TEXT(model_id), SQ_INT(*version), SQ_TEXT(path), SQ_INT(now),
                 SQ_INT(now), SQ_END))
        return false;
    char after[1200], target[MODEL_NAME_MAX];
    row_json(model_id, *version, path, true, after, sizeof after);
    snprintf(target, sizeof target, "%s@%d", model_id, *version);
    return audit_append(db, actor, "model.register", target, NULL, after, now, e);
}

bool model_registry_set_loaded(sqlite3 *db, const char *actor, const char *model_id,
                               int version, bool loaded, int64_t now, struct err *e)
{
    int changes = 0;
    if (!sq_exec(db, "UPDATE model_versions SET loaded = ?, updated_at = ? WHERE model_id = ? AND version = ?",
                 &changes, e, SQ_INT(loaded), SQ_INT(now), SQ_TEXT(model_id), SQ_INT(version),
                 SQ_END))
        return false;
    if (changes == 0)
        return err_set_param(e, ERR_NOT_FOUND, "model", "no model %s@%d", model_id, version);
    char target[MODEL_NAME_MAX];
    snprintf(target, sizeof target, "%s@%d", model_id, version);
    return audit_append(db, actor, loaded ? "model.load" : "model.unload", target,
                        loaded ? "{\"loaded\":false}" : "{\"loaded\":true}",
                        loaded ? "{\"loaded\":true}" : "{\"loaded\":false}", now, e);
}

bool model_registry_set_alias(sqlite3 *db, const char *actor, const char *alias,
                              const char *model_id, int version, int64_t now, struct err *e)
{
    if (!model_registry_check_id(alias, "alias", e))
        return false;
    int64_t one = 0;
    bool found = false;
    if (!sq_int(db, "SELECT 1 FROM model_versions WHERE model_id = ? LIMIT 1", &one, &found, e,
                SQ_TEXT(alias), SQ_END))
        return false;
    if (found)
        return err_set_param(e, ERR_CONFLICT, "alias", "'%s' is a model id, not an alias", alias);
    char *before = NULL;
    if (!sq_text(db, "SELECT json_object('model', model_id || '@' || version) FROM model_aliases WHERE alias = ?",
                 &before, e, SQ_TEXT(alias), SQ_END))
        return false;
    bool ok = sq_exec(db,
                      "INSERT INTO model_aliases (alias, model_id, version, updated_at) VALUES "
                      "(?1, ?2, ?3, ?4) ON CONFLICT(alias) DO UPDATE SET model_id = ?2, "
                      "version = ?3, updated_at = ?4",
                      NULL, e, SQ_TEXT(alias), SQ_TEXT(model_id), SQ_INT(version), SQ_INT(now),
                      SQ_END);
    char after[MODEL_NAME_MAX + 32];
    snprintf(after, sizeof after, "{\"model\":\"%s@%d\"}", model_id, version);
    if (ok)
        ok = audit_append(db, actor, "model.alias", alias, before, after, now, e);
    free(before);
    return ok;
}

bool model_registry_versions(sqlite3 *db, struct model_version_row **rows, int *n, struct err *e)
{
    *rows = NULL;
    *n = 0;
    sqlite3_stmt *st = NULL;
    if (!sq_prepare(db, "SELECT model_id, version, path, loaded FROM model_versions ORDER BY model_id, version",
                    &st, e, SQ_END))
        return false;
    int cap = 0, rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (*n == cap) {
            cap = cap ? cap * 2 : 8;
            struct model_version_row *g = realloc(*rows, (size_t)cap * sizeof *g);
            if (!g)
                abort();
            *rows = g;
        }
        struct model_version_row *r = &(*rows)[(*n)++];
        snprintf(r->model_id, sizeof r->model_id, "%s", (const char *)sqlite3_column_text(st, 0));
        r->version = sqlite3_column_int(st, 1);
        snprintf(r->path, sizeof r->path, "%s", (const char *)sqlite3_column_text(st, 2));
        r->loaded = sqlite3_column_int(st, 3) != 0;
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        free(*rows);
        *rows = NULL;
        *n = 0;
        return sq_fail(db, "model registry", e);
    }
    return true;
}

bool model_registry_aliases(sqlite3 *db, struct model_alias_row **rows, int *n, struct err *e)
{
    *rows = NULL;
    *n = 0;
    sqlite3_stmt *st = NULL;
    if (!sq_prepare(db, "SELECT alias, model_id, version FROM model_aliases ORDER BY alias", &st,
                    e, SQ_END))
        return false;
    int cap = 0, rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (*n == cap) {
            cap = cap ? cap * 2 : 8;
            struct model_alias_row *g = realloc(*rows, (size_t)cap * sizeof *g);
            if (!g)
                abort();
            *rows = g;
        }
        struct model_alias_row *r = &(*rows)[(*n)++];
        snprintf(r->alias, sizeof r->alias, "%s", (const char *)sqlite3_column_text(st, 0));
        snprintf(r->model_id, sizeof r->model_id, "%s", (const char *)sqlite3_column_text(st, 1));
        r->version = sqlite3_column_int(st, 2);
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        free(*rows);
        *rows = NULL;
        *n = 0;
        return sq_fail(db, "model aliases", e);
    }
    return true;
}

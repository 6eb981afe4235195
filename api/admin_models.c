/*
 * admin_models.c — /admin/v1/models: the model registry (versions and
 * aliases) and what is loaded, changed without a restart.
 *
 *   GET  /admin/v1/models                      configured + registered + aliases
 *   POST /admin/v1/models {"id","path"}        register a new version and load it
 *   POST /admin/v1/models/{name}/load          load a registered version again
 *   POST /admin/v1/models/{name}/unload        stop serving a version
 *   POST /admin/v1/aliases/{alias} {"model"}   point an alias at a version
 *
 * Order of effects. A load runs first, on a worker thread (the loop keeps
 * serving), and only a model that loaded is recorded (writer thread,
 * audited) and then listed. An unload or alias switch is recorded first
 * and applied on the loop once it committed. Either way, calls already
 * running keep the version they started with (server/models.h), so a
 * switch under load fails no request.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/admin.h"
#include "engine/chat_template.h"
#include "server/daemon.h"
#include "server/inference.h"
#include "server/model_registry.h"
#include "server/models.h"
#include "server/sq.h"
#include "server/store.h"

enum op { OP_REGISTER, OP_LOAD, OP_UNLOAD, OP_ALIAS };

struct model_op {
    enum op op;
    struct daemon_ctx *d;
    struct http_request *req;         /* NULL once the client left */
    struct api_idempotency idem;
    char actor[64];
    char model_id[MODEL_ID_MAX];
    int version;
    char path[CONFIG_PATH_MAX];
    char alias[MODEL_ID_MAX];
    struct served_model *loaded;      /* OP_REGISTER / OP_LOAD: before it is listed */
    struct served_model *target;      /* OP_UNLOAD / OP_ALIAS */
    int refs;                         /* the request and the pending work */
};

static void op_unref(struct model_op *o)
{
    if (--o->refs == 0)
        free(o);
}

static void on_close(struct http_request *r, void *arg, bool aborted)
{
    (void)r;
    (void)aborted;
    struct model_op *o = arg;
    o->req = NULL;
    op_unref(o);
}

static cJSON *model_json(const struct models *ms, const struct served_model *m)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "name", m->name);
    cJSON_AddStringToObject(o, "id", m->model_id);
    if (m->version > 0)
        cJSON_AddNumberToObject(o, "version", m->version);
    else
        cJSON_AddStringToObject(o, "source", "configuration");
    cJSON_AddStringToObject(o, "path", m->path);
    cJSON_AddStringToObject(o, "state", "loaded");
    cJSON_AddNumberToObject(o, "loaded_at", (double)m->created);
    cJSON_AddNumberToObject(o, "memory_bytes", (double)m->memory_bytes);
    cJSON_AddNumberToObject(o, "context_length", m->n_ctx);
    cJSON_AddStringToObject(o, "chat_template", chat_family_name(chat_template_family(m->tmpl)));
    cJSON_AddNumberToObject(o, "calls_in_flight", m->refs - 1);
    const char *alias = models_alias_of(ms, m);
    if (alias)
        cJSON_AddStringToObject(o, "alias", alias);
    return o;
}

/* Answer, keep the answer for Idempotency-Key, release. */
static void finish(struct model_op *o, const struct err *e, cJSON *body)
{
    unsigned status = 200;
    size_t len = 0;
    char *text = e ? api_error_text(e, &status, &len) : api_json_text(body, &len);
    if (e)
        api_idempotency_abandon(o->d, &o->idem);
    else
        api_idempotency_finish(o->d, &o->idem, status, text, len);
    if (o->req)
        http_respond_owned(o->req, status, "application/json", text, len);
    else
        free(text);
    op_unref(o);
}

/* ---- writer jobs: record the change (audited) ---- */

static bool record(sqlite3 *db, void *arg, struct err *e)
{
    struct model_op *o = arg;
    int64_t now = store_now_ms();
    switch (o->op) {
    case OP_REGISTER: {
        int version = 0;
        if (!model_registry_add(db, o->actor, o->model_id, o->path, now, &version, e))
            return false;
        if (version != o->version)
            return err_set(e, ERR_CONFLICT, "another registration of %s took version %d; retry",
                           o->model_id, o->version);
        return true;
    }
    case OP_LOAD:
        return model_registry_set_loaded(db, o->actor, o->model_id, o->version, true, now, e);
    case OP_UNLOAD:
        return model_registry_set_loaded(db, o->actor, o->model_id, o->version, false, now, e);
    case OP_ALIAS:
        return model_registry_set_alias(db, o->actor, o->alias, o->model_id, o->version, now, e);
    }
    return false;
}

/* ---- after the commit: apply it on the loop ---- */

static void recorded(void *arg, const struct err *e)
{
    struct model_op *o = arg;
    struct models *ms = &o->d->models;
    if (e) {
        if (o->target) {
            models_release(ms, o->target);
            o->target = NULL;
        }
        if (o->loaded) {
            /* Loaded but not recorded: it must not be served. */
            models_list(ms, o->loaded);
            models_retire(ms, o->loaded);
            o->loaded = NULL;
        }
        finish(o, e, NULL);
        return;
    }
    switch (o->op) {
    case OP_REGISTER:
    case OP_LOAD: {
        char name[MODEL_NAME_MAX];
        snprintf(name, sizeof name, "%s@%d", o->model_id, o->version);
        models_forget_failure(ms, name);
        models_list(ms, o->loaded);
        finish(o, NULL, model_json(ms, o->loaded));
        o->loaded = NULL;
        return;
    }
    case OP_UNLOAD: {
        char name[MODEL_NAME_MAX];
        snprintf(name, sizeof name, "%s@%d", o->model_id, o->version);
        models_forget_failure(ms, name);
        struct served_model *m = models_find_exact(ms, name);
        if (m)
            models_retire(ms, m);
        cJSON *body = cJSON_CreateObject();
        cJSON_AddStringToObject(body, "name", name);
        cJSON_AddStringToObject(body, "state", "unloaded");
        finish(o, NULL, body);
        return;
    }
    case OP_ALIAS: {
        struct served_model *t = o->target;
        o->target = NULL;
        struct err gone = {0};
        cJSON *body = NULL;
        if (models_find_exact(ms, t->name) == t) {
            models_alias_set(ms, o->alias, t);
            body = cJSON_CreateObject();
            cJSON_AddStringToObject(body, "alias", o->alias);
            cJSON_AddStringToObject(body, "model", t->name);
        } else {
            err_set_param(&gone, ERR_CONFLICT, "model", "%s was unloaded meanwhile", t->name);
        }
        models_release(ms, t);
        finish(o, body ? NULL : &gone, body);
        return;
    }
    }
}

static void on_loaded(void *arg, struct served_model *m, const struct err *e)
{
    struct model_op *o = arg;
    if (!m) {
        finish(o, e, NULL);
        return;
    }
    o->loaded = m;
    writer_submit(o->d->writer, record, recorded, o);
}

/* ---- handlers ---- */

static struct model_op *op_new(struct api_call *c, enum op op)
{
    struct model_op *o = calloc(1, sizeof *o);
    if (!o)
        abort();
    o->op = op;
    o->d = c->d;
    o->req = c->req;
    api_actor(c, o->actor, sizeof o->actor);
    if (!api_idempotency_start(c, &o->idem)) {
        free(o);
        return NULL;
    }
    o->refs = 2;
    http_request_on_close(c->req, on_close, o);
    http_request_suspend(c->req);
    return o;
}

static cJSON *parse_body(struct api_call *c, struct err *e)
{
    size_t len;
    const char *text = http_request_body(c->req, &len);
    cJSON *body = len ? cJSON_ParseWithLength(text, len) : cJSON_CreateObject();
    if (!cJSON_IsObject(body)) {
        cJSON_Delete(body);
        err_set(e, ERR_INVALID, "the request body must be a JSON object");
        return NULL;
    }
    return body;
}

void api_admin_models_list(struct api_call *c)
{
    struct daemon_ctx *d = c->d;
    struct models *ms = &d->models;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "object", "list");
    cJSON *data = cJSON_AddArrayToObject(o, "data");
    for (int i = 0; i < ms->n; i++)
        cJSON_AddItemToArray(data, model_json(ms, ms->items[i]));
    /* Registered versions not loaded (unloaded, or failed at start-up). */
    struct model_version_row *rows = NULL;
    int n = 0;
    struct err e = {0};
    if (!model_registry_versions(d->db_read, &rows, &n, &e)) {
        cJSON_Delete(o);
        api_respond_error(c->req, &e);
        return;
    }
    for (int i = 0; i < n; i++) {
        char name[MODEL_NAME_MAX];
        snprintf(name, sizeof name, "%s@%d", rows[i].model_id, rows[i].version);
        if (models_find_exact(ms, name))
            continue;
        cJSON *r = cJSON_CreateObject();
        cJSON_AddStringToObject(r, "name", name);
        cJSON_AddStringToObject(r, "id", rows[i].model_id);
        cJSON_AddNumberToObject(r, "version", rows[i].version);
        cJSON_AddStringToObject(r, "path", rows[i].path);
        const char *state = "unloaded";
        for (int k = 0; k < ms->n_failed; k++)
            if (strcmp(ms->failed[k].name, name) == 0) {
                state = "failed";
                cJSON_AddStringToObject(r, "error", ms->failed[k].err.msg);
            }
        cJSON_AddStringToObject(r, "state", state);
        cJSON_AddItemToArray(data, r);
    }
    free(rows);
    cJSON *aliases = cJSON_AddArrayToObject(o, "aliases");
    for (int i = 0; i < ms->n_aliases; i++) {
        cJSON *a = cJSON_CreateObject();
        cJSON_AddStringToObject(a, "alias", ms->aliases[i].alias);
        cJSON_AddStringToObject(a, "model", ms->aliases[i].target->name);
        cJSON_AddItemToArray(aliases, a);
    }
    api_respond_json(c->req, 200, o);
}

void api_admin_models_register(struct api_call *c)
{
    struct daemon_ctx *d = c->d;
    struct err e = {0};
    cJSON *body = parse_body(c, &e);
    const char *id = NULL, *path = NULL;
    bool fields = body && admin_field_str(body, "id", &id, &e) &&
                  admin_field_str(body, "path", &path, &e);
    if (fields && (!id || !path))
        err_set_param(&e, ERR_INVALID, id ? "path" : "id", "'id' and 'path' are required");
    else if (fields && model_registry_check_id(id, "id", &e) && strlen(path) >= CONFIG_PATH_MAX)
        err_set_param(&e, ERR_INVALID, "path", "path too long");
    int64_t max = 0;
    bool found = false;
    if (e.code == ERR_OK)
        sq_int(d->db_read, "SELECT coalesce(max(version), 0) FROM model_versions WHERE model_id = ?",
               &max, &found, &e, SQ_TEXT(id), SQ_END);
    if (e.code != ERR_OK) {
        cJSON_Delete(body);
        api_respond_error(c->req, &e);
        return;
    }
    struct model_op *o = op_new(c, OP_REGISTER);
    if (o) {
        snprintf(o->model_id, sizeof o->model_id, "%s", id);
        snprintf(o->path, sizeof o->path, "%s", path);
        o->version = (int)max + 1;
        models_load_async(&d->models, o->model_id, o->version, o->path, on_loaded, o);
    }
    cJSON_Delete(body);
}

/* {name} of a registered version: "<id>@<version>". */
static bool named_version(struct api_call *c, char id[MODEL_ID_MAX], int *version,
                          char path[CONFIG_PATH_MAX], struct err *e)
{
    if (!model_registry_parse_name(c->params[0], id, version, e))
        return false;
    char *p = NULL;
    if (!sq_text(c->d->db_read, "SELECT path FROM model_versions WHERE model_id = ? AND version = ?",
                 &p, e, SQ_TEXT(id), SQ_INT(*version), SQ_END))
        return false;
    if (!p)
        return err_set_param(e, ERR_NOT_FOUND, "model", "no registered model %s", c->params[0]);
    snprintf(path, CONFIG_PATH_MAX, "%s", p);
    free(p);
    return true;
}

void api_admin_models_load(struct api_call *c)
{
    struct err e = {0};
    char id[MODEL_ID_MAX], path[CONFIG_PATH_MAX];
    int version;
    if (!named_version(c, id, &version, path, &e)) {
        api_respond_error(c->req, &e);
        return;
    }
    if (models_find_exact(&c->d->models, c->params[0])) {
        err_set_param(&e, ERR_CONFLICT, "model", "%s is already loaded", c->params[0]);
        api_respond_error(c->req, &e);
        return;
    }
    struct model_op *o = op_new(c, OP_LOAD);
    if (o) {
        snprintf(o->model_id, sizeof o->model_id, "%s", id);
        o->version = version;
        snprintf(o->path, sizeof o->path, "%s", path);
        models_load_async(&c->d->models, id, version, path, on_loaded, o);
    }
}

void api_admin_models_unload(struct api_call *c)
{
    struct err e = {0};
    char id[MODEL_ID_MAX], path[CONFIG_PATH_MAX];
    int version;
    if (!named_version(c, id, &version, path, &e)) {
        api_respond_error(c->req, &e);
        return;
    }
    struct served_model *m = models_find_exact(&c->d->models, c->params[0]);
    const char *alias = m ? models_alias_of(&c->d->models, m) : NULL;
    if (alias) {
        err_set_param(&e, ERR_CONFLICT, "model",
                      "alias '%s' points at %s: switch it to another version first", alias,
                      c->params[0]);
        api_respond_error(c->req, &e);
        return;
    }
    struct model_op *o = op_new(c, OP_UNLOAD);
    if (o) {
        snprintf(o->model_id, sizeof o->model_id, "%s", id);
        o->version = version;
        writer_submit(c->d->writer, record, recorded, o);
    }
}

void api_admin_aliases_set(struct api_call *c)
{
    struct err e = {0};
    cJSON *body = parse_body(c, &e);
    const char *target = NULL;
    struct served_model *m = NULL;
    char id[MODEL_ID_MAX];
    int version = 0;
    if (body && admin_field_str(body, "model", &target, &e) && !target)
        err_set_param(&e, ERR_INVALID, "model", "'model' (<id>@<version>) is required");
    if (e.code == ERR_OK && body && model_registry_check_id(c->params[0], "alias", &e) &&
        model_registry_parse_name(target, id, &version, &e)) {
        m = models_find_exact(&c->d->models, target);
        if (!m)
            err_set_param(&e, ERR_CONFLICT, "model",
                          "%s is not loaded: load it before pointing an alias at it", target);
    }
    if (e.code != ERR_OK) {
        cJSON_Delete(body);
        api_respond_error(c->req, &e);
        return;
    }
    cJSON_Delete(body);
    struct model_op *o = op_new(c, OP_ALIAS);
    if (o) {
        /* model_registry_check_id() bounded it to MODEL_ID_MAX - 1. */
        memcpy(o->alias, c->params[0], strlen(c->params[0]) + 1);
        snprintf(o->model_id, sizeof o->model_id, "%s", id);
        o->version = version;
        o->target = m;
        /* The target stays alive until the switch is applied. */
        models_acquire(m);
        writer_submit(c->d->writer, record, recorded, o);
    }
}

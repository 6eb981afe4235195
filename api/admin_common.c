/* admin_common.c — see admin.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/admin.h"
#include "server/customers.h"
#include "server/daemon.h"
#include "server/idempotency.h"
#include "server/store.h"

void admin_respond_text(struct http_request *r, unsigned status, const char *json)
{
    size_t len = strlen(json);
    char *body = malloc(len + 2);
    if (!body)
        abort();
    memcpy(body, json, len);
    body[len] = '\n';
    body[len + 1] = '\0';
    http_respond_owned(r, status, "application/json", body, len + 1);
}

bool admin_page(struct api_call *c, int *limit, const char **after)
{
    *limit = 20;
    *after = http_request_query(c->req, "after");
    const char *l = http_request_query(c->req, "limit");
    if (l) {
        char *end = NULL;
        long n = strtol(l, &end, 10);
        if (!*l || *end || n < 1 || n > 100) {
            struct err e;
            err_set_param(&e, ERR_INVALID, "limit", "limit must be an integer in 1..100");
            api_respond_error(c->req, &e);
            return false;
        }
        *limit = (int)n;
    }
    return true;
}

bool admin_field_str(const cJSON *body, const char *name, const char **out, struct err *e)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(body, name);
    *out = NULL;
    if (!v || cJSON_IsNull(v))
        return true;
    if (!cJSON_IsString(v))
        return err_set_param(e, ERR_INVALID, name, "%s must be a string", name);
    *out = v->valuestring;
    return true;
}

bool admin_field_int(const cJSON *body, const char *name, int64_t *out, bool *present,
                     struct err *e)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(body, name);
    if (present)
        *present = false;
    if (!v || cJSON_IsNull(v))
        return true;
    double d = cJSON_IsNumber(v) ? v->valuedouble : 0.5;
    if ((double)(int64_t)d != d || d < -9e15 || d > 9e15)
        return err_set_param(e, ERR_INVALID, name, "%s must be an integer", name);
    *out = (int64_t)d;
    if (present)
        *present = true;
    return true;
}

bool admin_field_bool(const cJSON *body, const char *name, bool *out, struct err *e)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(body, name);
    if (!v || cJSON_IsNull(v))
        return true;
    if (!cJSON_IsBool(v))
        return err_set_param(e, ERR_INVALID, name, "%s must be true or false", name);
    *out = cJSON_IsTrue(v);
    return true;
}

static void write_free(struct admin_write *w)
{
    if (--w->refs > 0)
        return;
    cJSON_Delete(w->body);
    free(w->result);
    free(w->response);
    memset(w->secret, 0, sizeof w->secret);
    memset(w->pepper, 0, sizeof w->pepper);
    free(w);
}

static void on_close(struct http_request *r, void *arg, bool aborted)
{
    (void)r;
    (void)aborted;
    struct admin_write *w = arg;
    w->req = NULL;
    write_free(w);
}

static struct admin_write *write_new(struct api_call *c, admin_job_fn job)
{
    size_t len;
    const char *text = http_request_body(c->req, &len);
    cJSON *body = len ? cJSON_ParseWithLength(text, len) : cJSON_CreateObject();
    if (!cJSON_IsObject(body)) {
        cJSON_Delete(body);
        struct err e;
        err_set(&e, ERR_INVALID, "the request body must be a JSON object");
        api_respond_error(c->req, &e);
        return NULL;
    }
    struct admin_write *w = calloc(1, sizeof *w);
    if (!w)
        abort();
    w->job = job;
    w->body = body;
    w->now = store_now_ms();
    w->d = c->d;
    api_actor(c, w->actor, sizeof w->actor);
    snprintf(w->id, sizeof w->id, "%s", c->n_params > 0 ? c->params[0] : "");
    memcpy(w->pepper, c->d->key_pepper, sizeof w->pepper);
    return w;
}

/* Writer thread: the change, the answer, and (idempotent) the stored
 * answer, all in the writer's transaction. */
static bool run(sqlite3 *db, void *arg, struct err *e)
{
    struct admin_write *w = arg;
    if (!w->job(db, w, e))
        return false;
    if (!w->result)
        return err_set(e, ERR_INTERNAL, "admin job produced no answer");
    if (w->secret[0]) {
        cJSON *j = cJSON_Parse(w->result);
        cJSON_AddStringToObject(j, "secret", w->secret);
        w->response = cJSON_PrintUnformatted(j);
        cJSON_Delete(j);
    } else {
        w->response = strdup(w->result);
    }
    if (!w->response)
        return err_set(e, ERR_NOMEM, "out of memory");
    if (!w->idempotent)
        return true;
    /* Stored without the secret (admin.h). */
    return idempotency_store_done(db, w->idem_customer, w->idem_key, w->idem_hash, 200,
                                  w->result, strlen(w->result), w->now, w->idem_retention_ms, e);
}

static void done(void *arg, const struct err *e)
{
    struct admin_write *w = arg;
    struct daemon_ctx *d = w->d;
    if (w->idempotent) {
        if (e)
            idempotency_abandon(d->idempotency, d->writer, w->idem_customer, w->idem_key);
        else
            idempotency_forget(d->idempotency, w->idem_customer, w->idem_key);
    }
    if (w->req) {
        if (e)
            api_respond_error(w->req, e);
        else
            admin_respond_text(w->req, 200, w->response);
    }
    write_free(w);
}

static void write_submit(struct api_call *c, struct admin_write *w)
{
    struct daemon_ctx *d = c->d;
    const char *ikey = http_request_header(c->req, "Idempotency-Key");
    if (ikey) {
        size_t len;
        const char *body = http_request_body(c->req, &len);
        idempotency_request_hash(http_request_method(c->req), http_request_path(c->req), body, len,
                                 w->idem_hash);
        enum idempotency_outcome outcome;
        struct idempotency_replay replay;
        struct err e = {0};
        if (!idempotency_begin(d->idempotency, d->db_read, d->writer, c->principal.customer_id,
                               ikey, w->idem_hash, w->now, &outcome, &replay, &e) ||
            outcome == IDEMPOTENCY_IN_FLIGHT || outcome == IDEMPOTENCY_MISMATCH) {
            api_respond_error(c->req, &e);
            w->refs = 1;
            write_free(w);
            return;
        }
        if (outcome == IDEMPOTENCY_REPLAY) {
            http_response_header(c->req, "Idempotent-Replayed", "true");
            http_respond_owned(c->req, replay.status, "application/json", replay.body, replay.len);
            w->refs = 1;
            write_free(w);
            return;
        }
        w->idempotent = true;
        snprintf(w->idem_customer, sizeof w->idem_customer, "%s", c->principal.customer_id);
        snprintf(w->idem_key, sizeof w->idem_key, "%s", ikey);
        w->idem_retention_ms = idempotency_retention(d->idempotency);
    }
    w->req = c->req;
    w->refs = 2; /* the request and the writer */
    http_request_on_close(c->req, on_close, w);
    http_request_suspend(c->req);
    writer_submit(d->writer, run, done, w);
}

bool admin_customer_exists(sqlite3 *db, const char *customer_id, struct err *e)
{
    char *json = NULL;
    bool ok = customers_get(db, customer_id, &json, e);
    free(json);
    return ok;
}

void admin_write(struct api_call *c, admin_job_fn job)
{
    struct admin_write *w = write_new(c, job);
    if (w)
        write_submit(c, w);
}

void admin_answer(struct api_call *c, bool ok, char *json, cJSON *list, const struct err *e)
{
    if (!ok)
        api_respond_error(c->req, e);
    else if (list)
        api_respond_json(c->req, 200, list);
    else
        admin_respond_text(c->req, 200, json);
    if (!ok)
        cJSON_Delete(list);
    free(json);
}

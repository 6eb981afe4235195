/*
 * usage.c — GET /v1/usage: the caller's own usage, in the shape of
 * OpenAI's organization usage API (completions).
 *
 *   start_time    unix seconds, required; bucket edges are start_time +
 *                 k * bucket_width (UTC, half-open)
 *   end_time      unix seconds, exclusive; default now
 *   bucket_width  1d (default), 1h or 1m
 *   group_by      any of model, api_key_id (comma-separated)
 *   limit         buckets per page: default 7 / 24 / 60, at most 31 / 168 / 1440
 *   page          the next_page cursor of a previous answer
 *
 * Answer: {"object": "page", "data": [{"object": "bucket", "start_time",
 * "end_time", "results": [{"object": "organization.usage.completions.result",
 * "input_tokens", "output_tokens", "input_cached_tokens": 0,
 * "input_audio_tokens": 0, "output_audio_tokens": 0, "num_model_requests",
 * "project_id": null, "user_id": null, "api_key_id", "model", "batch": null}]}],
 * "has_more", "next_page"}. Every bucket of the page is listed, with no
 * results when nothing was used.
 *
 * Isolation: the customer is the calling key's; there is no parameter to
 * name another. The query runs on libuv's thread pool with its own
 * read-only connection (a page of 1440 minutes may scan many ledger rows),
 * never on the loop thread. Day buckets starting at 00:00 UTC are read
 * from the daily rollup, others from the ledger's (customer, started_at)
 * index.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "server/caltime.h"
#include "server/daemon.h"
#include "server/sq.h"
#include "server/store.h"

struct usage_job {
    uv_work_t work;
    struct http_request *req;     /* NULL once the request closed */
    int refs;
    char db_path[CONFIG_PATH_MAX];
    char customer[RANDID_MAX];
    int64_t start_s, width_s, page_s, n_buckets;
    int64_t end_s;                /* the query's end */
    bool by_model, by_key;
    cJSON *answer;
    struct err err;
};

static void job_unref(struct usage_job *j)
{
    if (--j->refs > 0)
        return;
    cJSON_Delete(j->answer);
    free(j);
}

static void on_close(struct http_request *r, void *arg, bool aborted)
{
    (void)r;
    (void)aborted;
    struct usage_job *j = arg;
    j->req = NULL;
    job_unref(j);
}

static cJSON *result_new(const struct usage_job *j, const char *model, const char *key)
{
    cJSON *r = cJSON_CreateObject();
    cJSON_AddStringToObject(r, "object", "organization.usage.completions.result");
    cJSON_AddNumberToObject(r, "input_tokens", 0);
    cJSON_AddNumberToObject(r, "output_tokens", 0);
    cJSON_AddNumberToObject(r, "input_cached_tokens", 0);
    cJSON_AddNumberToObject(r, "input_audio_tokens", 0);
    cJSON_AddNumberToObject(r, "output_audio_tokens", 0);
    cJSON_AddNumberToObject(r, "num_model_requests", 0);
    cJSON_AddNullToObject(r, "project_id");
    cJSON_AddNullToObject(r, "user_id");
    if (j->by_key)
        cJSON_AddStringToObject(r, "api_key_id", key);
    else
        cJSON_AddNullToObject(r, "api_key_id");
    if (j->by_model)
        cJSON_AddStringToObject(r, "model", model);
    else
        cJSON_AddNullToObject(r, "model");
    cJSON_AddNullToObject(r, "batch");
    return r;
}

static void add_to(cJSON *r, const char *field, int64_t v)
{
    cJSON *n = cJSON_GetObjectItem(r, field);
    cJSON_SetNumberValue(n, n->valuedouble + (double)v);
}

/* The result of `results` matching this row's group, created on first use. */
static cJSON *result_for(const struct usage_job *j, cJSON *results, const char *model,
                         const char *key)
{
    cJSON *r;
    cJSON_ArrayForEach(r, results) {
        const char *m = cJSON_GetStringValue(cJSON_GetObjectItem(r, "model"));
        const char *k = cJSON_GetStringValue(cJSON_GetObjectItem(r, "api_key_id"));
        if ((!j->by_model || strcmp(m, model) == 0) && (!j->by_key || strcmp(k, key) == 0))
            return r;
    }
    r = result_new(j, model, key);
    cJSON_AddItemToArray(results, r);
    return r;
}

static void run_query(uv_work_t *work)
{
    struct usage_job *j = work->data;
    int64_t page_end_s = j->page_s + j->n_buckets * j->width_s;
    if (page_end_s > j->end_s)
        page_end_s = j->end_s;
    int64_t from = j->page_s * 1000, to = page_end_s * 1000, width = j->width_s * 1000;
    bool rollup = width == CALTIME_DAY_MS && from % CALTIME_DAY_MS == 0;
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    if (!store_open(j->db_path, STORE_READONLY, &db, &j->err) ||
        !sq_prepare(db,
                    rollup ? "SELECT (day - ?2) / ?4, model, api_key_id, sum(requests), "
                             "sum(prompt_tokens), sum(completion_tokens) FROM usage_daily "
                             "WHERE customer_id = ?1 AND day >= ?2 AND day < ?3 "
                             "GROUP BY 1, 2, 3 ORDER BY 1, 2, 3"
                           : "SELECT (started_at - ?2) / ?4, model, api_key_id, count(*), "
                             "sum(prompt_tokens), sum(completion_tokens) FROM usage_ledger "
                             "WHERE customer_id = ?1 AND started_at >= ?2 AND started_at < ?3 "
                             "GROUP BY 1, 2, 3 ORDER BY 1, 2, 3",
                    &st, &j->err, SQ_TEXT(j->customer), SQ_INT(from), SQ_INT(to), SQ_INT(width),
                    SQ_END)) {
        store_close(db);
        return;
    }
    int64_t n = (page_end_s - j->page_s + j->width_s - 1) / j->width_s;
    cJSON *data = cJSON_CreateArray();
    /* Index the buckets: cJSON arrays are lists, and a page may hold 1440. */
    cJSON **results = calloc((size_t)n, sizeof *results);
    if (!results)
        abort();
    for (int64_t i = 0; i < n; i++) {
        cJSON *b = cJSON_CreateObject();
        cJSON_AddStringToObject(b, "object", "bucket");
        int64_t bs = j->page_s + i * j->width_s, be = bs + j->width_s;
        cJSON_AddNumberToObject(b, "start_time", (double)bs);
        cJSON_AddNumberToObject(b, "end_time", (double)(be < j->end_s ? be : j->end_s));
        results[i] = cJSON_AddArrayToObject(b, "results");
        cJSON_AddItemToArray(data, b);
    }
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        int64_t i = sqlite3_column_int64(st, 0);
        if (i < 0 || i >= n)
            continue;
        cJSON *r = result_for(j, results[i],
                              (const char *)sqlite3_column_text(st, 1),
                              (const char *)sqlite3_column_text(st, 2));
        add_to(r, "num_model_requests", sqlite3_column_int64(st, 3));
        add_to(r, "input_tokens", sqlite3_column_int64(st, 4));
        add_to(r, "output_tokens", sqlite3_column_int64(st, 5));
    }
    if (rc != SQLITE_DONE)
        sq_fail(db, "reading usage", &j->err);
    free(results);
    sqlite3_finalize(st);
    store_close(db);
    if (j->err.code != ERR_OK) {
        cJSON_Delete(data);
        return;
    }
    j->answer = cJSON_CreateObject();
    cJSON_AddStringToObject(j->answer, "object", "page");
    cJSON_AddItemToObject(j->answer, "data", data);
    bool more = page_end_s < j->end_s;
    cJSON_AddBoolToObject(j->answer, "has_more", more);
    if (more) {
        char next[32];
        snprintf(next, sizeof next, "%lld", (long long)page_end_s);
        cJSON_AddStringToObject(j->answer, "next_page", next);
    } else {
        cJSON_AddNullToObject(j->answer, "next_page");
    }
}

static void after_query(uv_work_t *work, int status)
{
    (void)status;
    struct usage_job *j = work->data;
    if (j->req) {
        if (j->answer) {
            api_respond_json(j->req, 200, j->answer);
            j->answer = NULL;
        } else {
            api_respond_error(j->req, &j->err);
        }
    }
    job_unref(j);
}

static bool query_int(struct http_request *r, const char *name, bool required, int64_t *out,
                      struct err *e)
{
    const char *v = http_request_query(r, name);
    if (!v)
        return required ? err_set_param(e, ERR_INVALID, name, "%s is required (unix seconds)", name)
                        : true;
    char *end = NULL;
    long long n = strtoll(v, &end, 10);
    if (!*v || *end || n < 0 || n > 253402300799LL)
        return err_set_param(e, ERR_INVALID, name, "%s must be an integer", name);
    *out = n;
    return true;
}

static bool parse(struct api_call *c, struct usage_job *j, struct err *e)
{
    struct http_request *r = c->req;
    const char *bw = http_request_query(r, "bucket_width");
    int64_t def_limit, max_limit;
    if (!bw || strcmp(bw, "1d") == 0) {
        j->width_s = 86400, def_limit = 7, max_limit = 31;
    } else if (strcmp(bw, "1h") == 0) {
        j->width_s = 3600, def_limit = 24, max_limit = 168;
    } else if (strcmp(bw, "1m") == 0) {
        j->width_s = 60, def_limit = 60, max_limit = 1440;
    } else {
        return err_set_param(e, ERR_INVALID, "bucket_width", "bucket_width must be 1m, 1h or 1d");
    }
    j->end_s = (store_now_ms() + 999) / 1000;
    j->n_buckets = def_limit;
    if (!query_int(r, "start_time", true, &j->start_s, e) ||
        !query_int(r, "end_time", false, &j->end_s, e) ||
        !query_int(r, "limit", false, &j->n_buckets, e))
        return false;
    if (j->end_s <= j->start_s)
        return err_set_param(e, ERR_INVALID, "end_time", "end_time must be after start_time");
    if (j->n_buckets < 1 || j->n_buckets > max_limit)
        return err_set_param(e, ERR_INVALID, "limit", "limit must be 1..%lld for this bucket_width",
                             (long long)max_limit);
    j->page_s = j->start_s;
    const char *page = http_request_query(r, "page");
    if (page) {
        char *end = NULL;
        long long p = strtoll(page, &end, 10);
        if (!*page || *end || p < j->start_s || p >= j->end_s || (p - j->start_s) % j->width_s)
            return err_set_param(e, ERR_INVALID, "page", "page is not a cursor of this query");
        j->page_s = p;
    }
    const char *g = http_request_query(r, "group_by");
    for (const char *p = g ? g : ""; *p;) {
        p += strspn(p, ", ");
        size_t len = strcspn(p, ", ");
        if (len == 5 && strncmp(p, "model", 5) == 0)
            j->by_model = true;
        else if (len == 10 && strncmp(p, "api_key_id", 10) == 0)
            j->by_key = true;
        else if (len)
            return err_set_param(e, ERR_INVALID, "group_by",
                                 "group_by may list model and api_key_id");
        p += len;
    }
    return true;
}

void api_usage(struct api_call *c)
{
    struct usage_job *j = calloc(1, sizeof *j);
    if (!j)
        abort();
    struct err e = {0};
    if (!parse(c, j, &e)) {
        free(j);
        api_respond_error(c->req, &e);
        return;
    }
    snprintf(j->db_path, sizeof j->db_path, "%s", c->d->cfg.db_path);
    snprintf(j->customer, sizeof j->customer, "%s", c->principal.customer_id);
    j->req = c->req;
    j->refs = 2; /* the request and the thread pool */
    j->work.data = j;
    http_request_on_close(c->req, on_close, j);
    http_request_suspend(c->req);
    if (uv_queue_work(&c->d->loop, &j->work, run_query, after_query) != 0) {
        err_set(&j->err, ERR_INTERNAL, "cannot queue the usage query");
        after_query(&j->work, 0);
    }
}

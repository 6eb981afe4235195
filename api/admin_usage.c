/*
 * admin_usage.c — GET /admin/v1/usage: everyone's usage for finance
 * (server/usage_report.h), scope finance or admin.
 *
 *   start_time    unix seconds, required
 *   end_time      unix seconds, exclusive; default now
 *   bucket_width  1h, 1d (default) or 1mo; buckets are aligned to UTC
 *                 (calendar months for 1mo), the first and last clipped to
 *                 the range
 *   group_by      any of customer_id, api_key_id, model, plan
 *   customer_id   one customer only
 *   limit, page   buckets per page (default 24 / 7 / 12, at most 168 / 31
 *                 / 24) and the next_page cursor of the previous answer
 *   format=csv or Accept: text/csv
 *                 the whole range as CSV, streamed (no pages)
 *
 * JSON: OpenAI's usage page ({"object": "page", "data": [buckets],
 * "has_more", "next_page"}), every bucket of the page listed, each result
 * an "organization.usage.completions.result" with customer_id, plan,
 * num_aborted_requests and compute_seconds added.
 *
 * CSV is produced on libuv's thread pool a chunk (64 kB) at a time from one
 * cursor on its own read-only connection (one snapshot for the whole
 * export) and written to a chunked response from the loop thread. The next
 * chunk is produced only once the connection has taken the previous ones
 * (fewer than 256 kB waiting), so a slow client holds one chunk and one
 * cursor in memory, never the month. No pool thread waits on a client.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/finance.h"
#include "server/caltime.h"
#include "server/daemon.h"
#include "server/log.h"
#include "server/store.h"
#include "server/usage_report.h"

#define CSV_CHUNK (64 * 1024)
#define CSV_HIGH_WATER (256 * 1024)
#define CSV_WAIT_MS 2

struct usage_args {
    struct usage_report_query q;   /* the whole range */
    int64_t page_start, page_end;  /* this page, ms */
};

/* ---- JSON pages -------------------------------------------------------------------------- */

static bool page_job(sqlite3 *db, struct finance_read *fr, struct err *e)
{
    struct usage_args *a = fr->arg;
    struct usage_report_query q = a->q;
    q.start = a->page_start;
    q.end = a->page_end;
    cJSON *data = NULL;
    if (!usage_report_json(db, &q, &data, e))
        return false;
    fr->json = cJSON_CreateObject();
    cJSON_AddStringToObject(fr->json, "object", "page");
    cJSON_AddItemToObject(fr->json, "data", data);
    bool more = a->page_end < a->q.end;
    cJSON_AddBoolToObject(fr->json, "has_more", more);
    if (more) {
        char next[32];
        snprintf(next, sizeof next, "%lld", (long long)(a->page_end / 1000));
        cJSON_AddStringToObject(fr->json, "next_page", next);
    } else {
        cJSON_AddNullToObject(fr->json, "next_page");
    }
    return true;
}

/* ---- CSV stream ---------------------------------------------------------------------------- */

struct csv_stream {
    uv_work_t work;
    uv_timer_t timer;
    struct http_request *req;      /* NULL once the request closed */
    uv_loop_t *loop;
    int refs;                      /* the request, and the producer */
    char db_path[CONFIG_PATH_MAX];
    struct usage_report_query q;
    char filename[96];
    /* The producer's, on whichever thread holds the chunk. */
    sqlite3 *db;
    struct usage_report *cur;
    char *buf;
    size_t len, cap;
    bool started, done;
    struct err err;
};

static void stream_freed(uv_handle_t *h)
{
    struct csv_stream *s = h->data;
    free(s->buf);
    free(s);
}

static void stream_unref(struct csv_stream *s)
{
    if (--s->refs > 0)
        return;
    uv_close((uv_handle_t *)&s->timer, stream_freed);
}

static void stream_on_close(struct http_request *r, void *arg, bool aborted)
{
    (void)r;
    (void)aborted;
    struct csv_stream *s = arg;
    s->req = NULL;
    stream_unref(s);
}

/* Pool thread: the next chunk. */
static void produce(uv_work_t *work)
{
    struct csv_stream *s = work->data;
    if (!s->db) {
        if (!store_open(s->db_path, STORE_READONLY, &s->db, &s->err) ||
            !store_exec(s->db, "BEGIN", &s->err) ||
            !usage_report_open(s->db, &s->q, &s->cur, &s->err)) {
            s->done = true;
            return;
        }
        char head[256];
        size_t n = usage_report_csv_header(head, sizeof head);
        s->buf = malloc(CSV_CHUNK + USAGE_REPORT_CSV_LINE_MAX);
        if (!s->buf)
            abort();
        s->cap = CSV_CHUNK + USAGE_REPORT_CSV_LINE_MAX;
        memcpy(s->buf, head, n);
        s->len = n;
    }
    if (!usage_report_csv_fill(s->cur, &s->buf, &s->len, &s->cap, CSV_CHUNK, &s->done, &s->err))
        s->done = true;
}

static void producer_end(struct csv_stream *s)
{
    usage_report_close(s->cur);
    s->cur = NULL;
    if (s->db)
        sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL);
    store_close(s->db);
    s->db = NULL;
    stream_unref(s);
}

static void produced(uv_work_t *work, int status);

/* Produce more once the connection has taken what is queued. */
static void on_wait(uv_timer_t *t)
{
    struct csv_stream *s = t->data;
    if (!s->req) {
        producer_end(s);
        return;
    }
    if (http_stream_pending(s->req) > CSV_HIGH_WATER) {
        uv_timer_start(&s->timer, on_wait, CSV_WAIT_MS, 0);
        return;
    }
    if (uv_queue_work(s->loop, &s->work, produce, produced) != 0) {
        err_set(&s->err, ERR_INTERNAL, "cannot queue the usage export");
        s->done = true;
        produced(&s->work, 0);
    }
}

static void produced(uv_work_t *work, int status)
{
    (void)status;
    struct csv_stream *s = work->data;
    if (!s->req) {
        producer_end(s);
        return;
    }
    if (!s->started && s->err.code != ERR_OK) {
        api_respond_error(s->req, &s->err);
        producer_end(s);
        return;
    }
    if (!s->started) {
        char cd[160];
        snprintf(cd, sizeof cd, "attachment; filename=\"%s\"", s->filename);
        http_response_header(s->req, "Content-Disposition", cd);
        http_stream_start(s->req, 200, "text/csv; charset=utf-8");
        s->started = true;
    }
    if (s->len) {
        http_stream_write(s->req, s->buf, s->len);
        s->len = 0;
    }
    if (s->err.code != ERR_OK) {
        /* The status is sent: say so where a reader cannot take it for data. */
        char line[400];
        int n = snprintf(line, sizeof line, "#error,%s\r\n", s->err.msg);
        http_stream_write(s->req, line, (size_t)n);
        log_line(LOG_ERROR, "usage export failed", LF_STR("error", s->err.msg), LF_END);
    }
    if (s->done) {
        http_stream_end(s->req);
        producer_end(s);
        return;
    }
    on_wait(&s->timer);
}

static void stream_csv(struct api_call *c, const struct usage_report_query *q)
{
    struct csv_stream *s = calloc(1, sizeof *s);
    if (!s)
        abort();
    s->q = *q;
    s->loop = &c->d->loop;
    snprintf(s->db_path, sizeof s->db_path, "%s", c->d->cfg.db_path);
    char a[40], b[40];
    caltime_format(q->start, a, sizeof a);
    caltime_format(q->end, b, sizeof b);
    snprintf(s->filename, sizeof s->filename, "usage-%.10s-%.10s.csv", a, b);
    uv_timer_init(s->loop, &s->timer);
    s->timer.data = s;
    s->work.data = s;
    s->req = c->req;
    s->refs = 2;
    http_request_on_close(c->req, stream_on_close, s);
    http_request_suspend(c->req);
    on_wait(&s->timer);
}

/* ---- the handler ---------------------------------------------------------------------------- */

static bool query_s(struct api_call *c, const char *name, bool required, int64_t *out,
                    struct err *e)
{
    const char *v = http_request_query(c->req, name);
    if (!v)
        return !required || err_set_param(e, ERR_INVALID, name, "%s is required (unix seconds)", name);
    char *end = NULL;
    long long n = strtoll(v, &end, 10);
    if (!*v || *end || n < 0 || n > 253402300799LL)
        return err_set_param(e, ERR_INVALID, name, "%s must be an integer", name);
    *out = n;
    return true;
}

static bool parse(struct api_call *c, struct usage_args *a, struct err *e)
{
    struct usage_report_query *q = &a->q;
    int64_t start_s = 0, end_s = (store_now_ms() + 999) / 1000, limit = 0;
    if (!usage_report_parse_bucket(http_request_query(c->req, "bucket_width"), &q->bucket, e) ||
        !usage_report_parse_group_by(http_request_query(c->req, "group_by"), &q->group_by, e) ||
        !query_s(c, "start_time", true, &start_s, e) || !query_s(c, "end_time", false, &end_s, e) ||
        !query_s(c, "limit", false, &limit, e))
        return false;
    if (end_s <= start_s)
        return err_set_param(e, ERR_INVALID, "end_time", "end_time must be after start_time");
    q->start = start_s * 1000;
    q->end = end_s * 1000;
    const char *cus = http_request_query(c->req, "customer_id");
    if (cus && strlen(cus) >= sizeof q->customer_id)
        return err_set_param(e, ERR_INVALID, "customer_id", "no customer '%s'", cus);
    snprintf(q->customer_id, sizeof q->customer_id, "%s", cus ? cus : "");
    static const int64_t def[] = {24, 7, 12}, max[] = {168, 31, 24};
    if (!limit)
        limit = def[q->bucket];
    if (limit < 1 || limit > max[q->bucket])
        return err_set_param(e, ERR_INVALID, "limit", "limit must be 1..%lld for this bucket_width",
                             (long long)max[q->bucket]);
    a->page_start = q->start;
    const char *page = http_request_query(c->req, "page");
    if (page) {
        char *end = NULL;
        long long p = strtoll(page, &end, 10);
        int64_t ms = p * 1000;
        if (!*page || *end || ms < q->start || ms >= q->end ||
            (ms != q->start && usage_report_bucket_floor(q->bucket, ms) != ms))
            return err_set_param(e, ERR_INVALID, "page", "page is not a cursor of this query");
        a->page_start = ms;
    }
    a->page_end = a->page_start;
    for (int64_t i = 0; i < limit && a->page_end < q->end; i++)
        a->page_end = usage_report_bucket_next(q->bucket, a->page_end);
    if (a->page_end > q->end)
        a->page_end = q->end;
    return true;
}

void api_admin_usage(struct api_call *c)
{
    struct usage_args *a = calloc(1, sizeof *a);
    if (!a)
        abort();
    struct err e = {0};
    const char *f = http_request_query(c->req, "format");
    if (f && strcmp(f, "csv") != 0 && strcmp(f, "json") != 0)
        err_set_param(&e, ERR_INVALID, "format", "format must be json or csv");
    if (e.code != ERR_OK || !parse(c, a, &e)) {
        free(a);
        api_respond_error(c->req, &e);
        return;
    }
    if (finance_wants_csv(c)) {
        stream_csv(c, &a->q);
        free(a);
        return;
    }
    struct finance_read *r = finance_read_new(c);
    r->arg = a;
    finance_read_run(c, r, page_job);
}

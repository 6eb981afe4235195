/*
 * admin_finance.c — invoices and the revenue summary over HTTP
 * (server/invoices.h, server/revenue.h; docs/finance.md):
 *
 *   GET  /admin/v1/invoices?period=YYYY-MM[&customer_id][&limit][&after]
 *   GET  /admin/v1/invoices/{id}                 JSON, or CSV of its lines
 *   POST /admin/v1/invoices/close?period=YYYY-MM  (or {"period": …})
 *   GET  /admin/v1/invoices/reconcile?period=YYYY-MM
 *   GET  /admin/v1/reports/revenue?period=YYYY-MM JSON or CSV
 *   GET  /v1/invoices[?period]  /v1/invoices/{id} the caller's own (usage:read)
 *
 * The /admin routes take a finance or an admin key. A customer's key sees
 * its own invoices and nothing else: another customer's invoice id is 404,
 * exactly as an id that does not exist.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/admin.h"
#include "api/finance.h"
#include "server/daemon.h"
#include "server/revenue.h"
#include "server/sq.h"
#include "server/store.h"

/* ---- running a read off the loop (finance.h) ---------------------------------------- */

static void read_unref(struct finance_read *r)
{
    if (--r->refs > 0)
        return;
    cJSON_Delete(r->json);
    free(r->body);
    free(r->arg);
    free(r);
}

static void read_on_close(struct http_request *req, void *arg, bool aborted)
{
    (void)req;
    (void)aborted;
    struct finance_read *r = arg;
    r->req = NULL;
    read_unref(r);
}

static void read_work(uv_work_t *work)
{
    struct finance_read *r = work->data;
    sqlite3 *db = NULL;
    if (store_open(r->db_path, STORE_READONLY, &db, &r->err)) {
        /* One snapshot for the whole read: a month's invoices must not mix
         * states of the ledger. */
        if (store_exec(db, "BEGIN", &r->err)) {
            if (!r->fn(db, r, &r->err) && r->err.code == ERR_OK)
                err_set(&r->err, ERR_INTERNAL, "a finance read failed without a reason");
            sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
        }
    }
    store_close(db);
}

static void read_done(uv_work_t *work, int status)
{
    (void)status;
    struct finance_read *r = work->data;
    if (r->req) {
        if (r->err.code != ERR_OK) {
            api_respond_error(r->req, &r->err);
        } else if (r->body) {
            if (r->filename[0]) {
                char cd[160];
                snprintf(cd, sizeof cd, "attachment; filename=\"%s\"", r->filename);
                http_response_header(r->req, "Content-Disposition", cd);
            }
            http_respond_owned(r->req, 200, r->content_type, r->body, r->body_len);
            r->body = NULL;
        } else {
            api_respond_json(r->req, 200, r->json);
            r->json = NULL;
        }
    }
    read_unref(r);
}

struct finance_read *finance_read_new(struct api_call *c)
{
    struct finance_read *r = calloc(1, sizeof *r);
    if (!r)
        abort();
    r->now = store_now_ms();
    r->csv = finance_wants_csv(c);
    r->limit = 20;
    snprintf(r->db_path, sizeof r->db_path, "%s", c->d->cfg.db_path);
    return r;
}

void finance_read_run(struct api_call *c, struct finance_read *r, finance_read_fn fn)
{
    r->fn = fn;
    r->req = c->req;
    r->refs = 2; /* the request and the thread pool */
    r->work.data = r;
    http_request_on_close(c->req, read_on_close, r);
    http_request_suspend(c->req);
    if (uv_queue_work(&c->d->loop, &r->work, read_work, read_done) != 0) {
        err_set(&r->err, ERR_INTERNAL, "cannot queue the finance read");
        read_done(&r->work, 0);
    }
}

bool finance_wants_csv(struct api_call *c)
{
    const char *f = http_request_query(c->req, "format");
    if (f)
        return strcmp(f, "csv") == 0;
    const char *accept = http_request_header(c->req, "Accept");
    return accept && strstr(accept, "text/csv");
}

/* ---- inputs ------------------------------------------------------------------------------ */

static bool copy_query(struct api_call *c, const char *name, char *out, size_t size, bool required,
                       struct err *e)
{
    const char *v = http_request_query(c->req, name);
    if (!v || !*v)
        return !required || err_set_param(e, ERR_INVALID, name, "%s is required", name);
    if (strlen(v) >= size)
        return err_set_param(e, ERR_INVALID, name, "%s is too long", name);
    snprintf(out, size, "%s", v);
    return true;
}

/* period (required unless optional) and the format: CSV only where offered. */
static struct finance_read *read_for(struct api_call *c, bool period_required, bool csv_offered)
{
    struct finance_read *r = finance_read_new(c);
    struct err e = {0};
    int64_t a, b;
    if (!copy_query(c, "period", r->period, sizeof r->period, period_required, &e) ||
        (r->period[0] && !invoices_period_parse(r->period, &a, &b, &e))) {
        api_respond_error(c->req, &e);
        free(r);
        return NULL;
    }
    const char *f = http_request_query(c->req, "format");
    if (f && strcmp(f, "json") != 0 && (strcmp(f, "csv") != 0 || !csv_offered)) {
        err_set_param(&e, ERR_INVALID, "format", "format must be json%s", csv_offered ? " or csv" : "");
        api_respond_error(c->req, &e);
        free(r);
        return NULL;
    }
    if (!csv_offered)
        r->csv = false;
    return r;
}

/* ---- lists ---------------------------------------------------------------------------- */

/* One page of invoice summaries (OpenAI's list envelope), after the
 * invoice `after` in the list's order. */
static bool page_of(struct invoice *list, int n, const struct finance_read *r, cJSON **out,
                    struct err *e)
{
    int i = 0;
    if (r->after[0]) {
        while (i < n && strcmp(list[i].id, r->after) != 0)
            i++;
        if (i == n)
            return err_set_param(e, ERR_INVALID, "after", "no invoice '%s' to list after", r->after);
        i++;
    }
    cJSON *data = cJSON_CreateArray();
    for (int k = 0; i < n && k <= r->limit; i++, k++)
        cJSON_AddItemToArray(data, invoices_json(&list[i], false));
    *out = sq_list_envelope(data, r->limit);
    return true;
}

static bool admin_list_job(sqlite3 *db, struct finance_read *r, struct err *e)
{
    if (r->customer_id[0] && !admin_customer_exists(db, r->customer_id, e))
        return false;
    struct invoice *list = NULL;
    int n = 0;
    if (!invoices_for_period(db, r->period, r->customer_id[0] ? r->customer_id : NULL, r->now,
                             &list, &n, e))
        return false;
    bool ok = page_of(list, n, r, &r->json, e);
    invoices_free(list, n);
    return ok;
}

static bool paged(struct api_call *c, struct finance_read *r)
{
    const char *after;
    if (!admin_page(c, &r->limit, &after)) {
        free(r);
        return false;
    }
    snprintf(r->after, sizeof r->after, "%s", after ? after : "");
    return true;
}

void api_admin_invoices_list(struct api_call *c)
{
    struct finance_read *r = read_for(c, true, false);
    struct err e = {0};
    if (!r || !paged(c, r))
        return;
    if (!copy_query(c, "customer_id", r->customer_id, sizeof r->customer_id, false, &e)) {
        api_respond_error(c->req, &e);
        free(r);
        return;
    }
    finance_read_run(c, r, admin_list_job);
}

static bool customer_list_job(sqlite3 *db, struct finance_read *r, struct err *e)
{
    struct invoice *list = NULL;
    int n = 0;
    bool ok = r->period[0]
                  ? invoices_for_period(db, r->period, r->customer_id, r->now, &list, &n, e)
                  : invoices_for_customer(db, r->customer_id, r->now, &list, &n, e);
    ok = ok && page_of(list, n, r, &r->json, e);
    invoices_free(list, n);
    return ok;
}

void api_invoices_list(struct api_call *c)
{
    struct finance_read *r = read_for(c, false, false);
    if (!r || !paged(c, r))
        return;
    snprintf(r->customer_id, sizeof r->customer_id, "%s", c->principal.customer_id);
    finance_read_run(c, r, customer_list_job);
}

/* ---- one invoice ---------------------------------------------------------------------- */

static bool get_job(sqlite3 *db, struct finance_read *r, struct err *e)
{
    struct invoice inv;
    if (!invoices_get(db, r->id, r->customer_id[0] ? r->customer_id : NULL, r->now, &inv, e))
        return false;
    if (r->csv) {
        r->body = invoices_lines_csv(&inv, &r->body_len);
        r->content_type = "text/csv; charset=utf-8";
        snprintf(r->filename, sizeof r->filename, "%s.csv", inv.id);
    } else {
        r->json = invoices_json(&inv, true);
    }
    invoice_free(&inv);
    return true;
}

static void get(struct api_call *c, const char *customer_id)
{
    struct finance_read *r = read_for(c, false, true);
    if (!r)
        return;
    snprintf(r->id, sizeof r->id, "%s", c->params[0]);
    snprintf(r->customer_id, sizeof r->customer_id, "%s", customer_id ? customer_id : "");
    finance_read_run(c, r, get_job);
}

void api_admin_invoices_get(struct api_call *c) { get(c, NULL); }

void api_invoices_get(struct api_call *c) { get(c, c->principal.customer_id); }

/* ---- close, reconcile, revenue --------------------------------------------------------- */

static bool close_job(sqlite3 *db, struct admin_write *w, struct err *e)
{
    const char *period = w->id[0] ? w->id : NULL;
    if (!period && !admin_field_str(w->body, "period", &period, e))
        return false;
    if (!period)
        return err_set_param(e, ERR_INVALID, "period", "period is required (YYYY-MM)");
    /* The configuration never changes once the daemon runs: reading it
     * from the writer thread is safe. */
    cJSON *summary = NULL;
    if (!invoices_close(db, w->actor, period, w->now, (int64_t)w->d->cfg.invoice_grace_ms,
                        &summary, e))
        return false;
    w->result = cJSON_PrintUnformatted(summary);
    cJSON_Delete(summary);
    return w->result || err_set(e, ERR_NOMEM, "out of memory");
}

void api_admin_invoices_close(struct api_call *c)
{
    /* The month travels to the job as the route's id would. */
    const char *p = http_request_query(c->req, "period");
    if (p) {
        snprintf(c->params[0], sizeof c->params[0], "%s", p);
        c->n_params = 1;
    }
    admin_write(c, close_job);
}

static bool reconcile_job(sqlite3 *db, struct finance_read *r, struct err *e)
{
    int n = 0;
    return invoices_reconcile(db, r->period, r->now, &r->json, &n, e);
}

void api_admin_invoices_reconcile(struct api_call *c)
{
    struct finance_read *r = read_for(c, true, false);
    if (r)
        finance_read_run(c, r, reconcile_job);
}

static bool revenue_job(sqlite3 *db, struct finance_read *r, struct err *e)
{
    if (!revenue_summary(db, r->period, r->now, &r->json, e))
        return false;
    if (r->csv) {
        r->body = revenue_csv(r->json, &r->body_len);
        r->content_type = "text/csv; charset=utf-8";
        snprintf(r->filename, sizeof r->filename, "revenue-%s.csv", r->period);
    }
    return true;
}

void api_admin_reports_revenue(struct api_call *c)
{
    struct finance_read *r = read_for(c, true, true);
    if (r)
        finance_read_run(c, r, revenue_job);
}

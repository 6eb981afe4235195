/* finance_fixture.c — see finance_fixture.h. */
#include "tests/unit/finance_fixture.h"

#include <cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/caltime.h"
#include "server/ledger.h"
#include "server/plans.h"
#include "server/sq.h"
#include "server/store.h"
#include "server/subscriptions.h"
#include "tests/unit/testutil.h"

static void check(bool ok, const struct err *e)
{
    if (!ok)
        fail_msg("%s", e->msg);
}

int64_t ff_at(const char *text)
{
    int64_t ms = 0;
    struct err e = {0};
    check(caltime_parse(text, &ms, &e), &e);
    return ms;
}

int64_t ff_plan(struct fixture *f, const char *plan_id, const char *fields_json)
{
    struct err e = {0};
    cJSON *in = cJSON_Parse(fields_json);
    if (!in)
        fail_msg("bad plan JSON: %s", fields_json);
    char *json = NULL;
    fixture_begin(f);
    check(plans_create_version(f->db, "test", plan_id, NULL, in, store_now_ms(), &json, &e), &e);
    fixture_commit(f);
    cJSON_Delete(in);
    int64_t id = fixture_json_int(json, "id");
    free(json);
    return id;
}

void ff_customer(struct fixture *f, const char *name, char *cus, char *key)
{
    char secret[APIKEY_LEN + 1];
    fixture_customer(f, name, cus);
    fixture_key(f, cus, SCOPE_INFERENCE | SCOPE_USAGE_READ, key, secret);
}

void ff_roll(struct fixture *f, int64_t at)
{
    struct err e = {0};
    int n = 0, failed = 0;
    fixture_begin(f);
    check(subscriptions_roll(f->db, at, &n, &failed, &e), &e);
    fixture_commit(f);
    if (failed)
        fail_msg("renewal failed: %s", e.msg);
}

void ff_subscribe(struct fixture *f, const char *cus, const char *plan, int64_t at)
{
    ff_roll(f, at);
    struct err e = {0};
    char *json = NULL;
    fixture_begin(f);
    check(subscriptions_create(f->db, "test", cus, plan, 0, at, &json, &e), &e);
    fixture_commit(f);
    free(json);
}

void ff_change(struct fixture *f, const char *cus, const char *plan, int64_t at)
{
    ff_roll(f, at);
    struct err e = {0};
    char *json = NULL;
    fixture_begin(f);
    check(subscriptions_change_plan(f->db, "test", cus, plan, at, &json, &e), &e);
    fixture_commit(f);
    free(json);
}

void ff_cancel(struct fixture *f, const char *cus, bool at_period_end, int64_t at)
{
    ff_roll(f, at);
    struct err e = {0};
    char *json = NULL;
    fixture_begin(f);
    check(subscriptions_cancel(f->db, "test", cus, at_period_end, at, &json, &e), &e);
    fixture_commit(f);
    free(json);
}

void ff_row_nt(struct fixture *f, const char *request_id, const char *cus, const char *key,
               const char *plan, int64_t started_at, int64_t in, int64_t out,
               int64_t recorded_at)
{
    struct err e = {0};
    struct plan_version pv;
    check(plans_version_at(f->db, plan, started_at, &pv, &e), &e);
    struct usage_record r = {0};
    snprintf(r.request_id, sizeof r.request_id, "%s", request_id);
    snprintf(r.customer_id, sizeof r.customer_id, "%s", cus);
    snprintf(r.api_key_id, sizeof r.api_key_id, "%s", key);
    snprintf(r.model, sizeof r.model, "m1");
    snprintf(r.endpoint, sizeof r.endpoint, "/v1/chat/completions");
    snprintf(r.finish_reason, sizeof r.finish_reason, "stop");
    r.prompt_tokens = in;
    r.completion_tokens = out;
    r.status = 200;
    r.compute_ms = 10;
    r.started_at = started_at;
    r.finished_at = started_at + 10;
    r.plan_version_id = pv.id;
    bool inserted = false;
    check(ledger_insert(f->db, &r, recorded_at ? recorded_at : started_at + 1000, &inserted, &e),
          &e);
    if (!inserted)
        fail_msg("request %s was already recorded", request_id);
}

void ff_row(struct fixture *f, const char *request_id, const char *cus, const char *key,
            const char *plan, int64_t started_at, int64_t in, int64_t out, int64_t recorded_at)
{
    fixture_begin(f);
    ff_row_nt(f, request_id, cus, key, plan, started_at, in, out, recorded_at);
    fixture_commit(f);
}

void ff_dump(const struct invoice *inv)
{
    char total[32];
    invoices_amount_text(inv->total_micros, inv->currency, total, sizeof total);
    fprintf(stderr, "invoice %s #%lld %s %s total %s %s\n", inv->id, (long long)inv->number,
            inv->period, inv->plan_id, total, inv->currency);
    for (int i = 0; i < inv->n_lines; i++) {
        const struct invoice_line *l = &inv->lines[i];
        fprintf(stderr, "  %2d %-17s q=%-10lld inc=%-9lld amt=%-11lld rows=%lld %s\n", i + 1,
                l->type, (long long)l->quantity, (long long)l->included_quantity,
                (long long)l->amount_micros, (long long)l->ledger_rows, l->description);
    }
}

void ff_invoice(struct fixture *f, const char *period, const char *cus, int64_t now,
                struct invoice *out)
{
    struct err e = {0};
    struct invoice *list = NULL;
    int n = 0;
    check(invoices_for_period(f->db, period, cus, now, &list, &n, &e), &e);
    if (n != 1) {
        for (int i = 0; i < n; i++)
            ff_dump(&list[i]);
        fail_msg("%d invoices for %s in %s, expected 1", n, cus, period);
    }
    *out = list[0];
    free(list);
}

void ff_close(struct fixture *f, const char *period, int64_t now)
{
    struct err e = {0};
    cJSON *summary = NULL;
    fixture_begin(f);
    check(invoices_close(f->db, "test", period, now, 72 * 3600000LL, &summary, &e), &e);
    fixture_commit(f);
    cJSON_Delete(summary);
}

int ff_reconcile(struct fixture *f, const char *period, int64_t now)
{
    struct err e = {0};
    cJSON *report = NULL;
    int n = 0;
    check(invoices_reconcile(f->db, period, now, &report, &n, &e), &e);
    if (n) {
        char *s = cJSON_Print(report);
        fprintf(stderr, "%s\n", s);
        free(s);
    }
    cJSON_Delete(report);
    return n;
}

const struct invoice_line *ff_line(const struct invoice *inv, const char *type, int nth)
{
    for (int i = 0; i < inv->n_lines; i++)
        if (strcmp(inv->lines[i].type, type) == 0 && nth-- == 0)
            return &inv->lines[i];
    ff_dump(inv);
    fail_msg("invoice %s has no line %s", inv->id, type);
    return NULL;
}

int64_t ff_int(struct fixture *f, const char *sql)
{
    struct err e = {0};
    int64_t v = 0;
    check(sq_int(f->db, sql, &v, NULL, &e, SQ_END), &e);
    return v;
}

/* revenue.c — see revenue.h. */
#include "server/revenue.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/invoices.h"
#include "server/plans.h"
#include "server/sq.h"
#include "server/textbuf.h"

/* The array element whose string fields equal the given values (NULL
 * name ends the list), created with them when missing. */
static cJSON *row_for(cJSON *array, const char *k1, const char *v1, const char *k2,
                      const char *v2, const char *k3, const char *v3)
{
    const char *keys[3] = {k1, k2, k3}, *vals[3] = {v1, v2, v3};
    cJSON *it;
    cJSON_ArrayForEach(it, array) {
        bool same = true;
        for (int i = 0; i < 3 && keys[i] && same; i++)
            same = strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(it, keys[i])), vals[i]) == 0;
        if (same)
            return it;
    }
    it = cJSON_CreateObject();
    for (int i = 0; i < 3 && keys[i]; i++)
        cJSON_AddStringToObject(it, keys[i], vals[i]);
    cJSON_AddItemToArray(array, it);
    return it;
}

static void add(cJSON *o, const char *field, int64_t v)
{
    cJSON *n = cJSON_GetObjectItem(o, field);
    if (!n)
        cJSON_AddNumberToObject(o, field, (double)v);
    else
        cJSON_SetNumberValue(n, n->valuedouble + (double)v);
}

static void money_text(cJSON *o, const char *micros_field, const char *text_field,
                       const char *currency)
{
    char buf[32];
    invoices_amount_text((int64_t)cJSON_GetObjectItem(o, micros_field)->valuedouble, currency, buf,
                         sizeof buf);
    cJSON_AddStringToObject(o, text_field, buf);
}

/* Plain decimal of micro-units with six places trimmed to at least two
 * (MRR is not a billed amount: it keeps its micro-units). */
static void micros_text(int64_t v, char *buf, size_t size)
{
    unsigned long long a = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
    char frac[8];
    snprintf(frac, sizeof frac, "%06llu", a % 1000000);
    for (int i = 5; i >= 2 && frac[i] == '0'; i--)
        frac[i] = '\0';
    snprintf(buf, size, "%s%llu.%s", v < 0 ? "-" : "", a / 1000000, frac);
}

struct names {
    char (*ids)[RANDID_MAX];
    int n, cap;
};

static void names_add(struct names *s, const char *id)
{
    for (int i = 0; i < s->n; i++)
        if (strcmp(s->ids[i], id) == 0)
            return;
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 16;
        void *p = realloc(s->ids, (size_t)s->cap * sizeof *s->ids);
        if (!p)
            abort();
        s->ids = p;
    }
    snprintf(s->ids[s->n++], RANDID_MAX, "%s", id);
}

static bool names_has(const struct names *s, const char *id)
{
    for (int i = 0; i < s->n; i++)
        if (strcmp(s->ids[i], id) == 0)
            return true;
    return false;
}

/* Subscriptions at the end instant, customers, MRR/ARR. */
static bool subscriptions_part(sqlite3 *db, int64_t from, int64_t to, int64_t at, cJSON *out,
                               struct err *e)
{
    sqlite3_stmt *st;
    if (!sq_prepare(db,
                    "SELECT id, customer_id FROM subscriptions WHERE created_at < ?2 AND "
                    "(canceled_at IS NULL OR canceled_at > ?1) ORDER BY customer_id, created_at",
                    &st, e, SQ_INT(from), SQ_INT(to), SQ_END))
        return false;
    cJSON *subs = cJSON_AddArrayToObject(out, "active_subscriptions");
    cJSON *rec = cJSON_AddArrayToObject(out, "recurring_revenue");
    struct names live = {0}, ended = {0};
    /* Per currency: monthly fees and yearly fees, summed exactly. */
    struct { char currency[4]; int64_t monthly, yearly; } cur[8];
    int n_cur = 0;
    int rc;
    bool ok = true;
    while (ok && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *sub = (const char *)sqlite3_column_text(st, 0);
        const char *cus = (const char *)sqlite3_column_text(st, 1);
        struct invoice_sub_state s;
        ok = invoices_subscription_at(db, sub, at, &s, e);
        if (!ok)
            break;
        if (s.ended_at > from && s.ended_at <= to)
            names_add(&ended, cus);
        if (!s.live)
            continue;
        names_add(&live, cus);
        struct plan_version v;
        ok = plans_version_at(db, s.plan_id, at, &v, e);
        if (!ok)
            break;
        char name[PLAN_ID_MAX + 16];
        snprintf(name, sizeof name, "%s@%d", v.plan_id, v.version); /* as the audit log names it */
        cJSON *row = row_for(subs, "tier", s.plan_id, "plan", name, NULL, NULL);
        if (!cJSON_GetObjectItem(row, "plan_version_id")) {
            cJSON_AddNumberToObject(row, "plan_version_id", (double)v.id);
            cJSON_AddStringToObject(row, "billing_interval", v.interval_months == 12 ? "year" : "month");
            cJSON_AddNumberToObject(row, "paying", 0);
            cJSON_AddNumberToObject(row, "trialing", 0);
        }
        add(row, s.trialing ? "trialing" : "paying", 1);
        if (s.trialing)
            continue;
        int k = 0;
        while (k < n_cur && strcmp(cur[k].currency, v.currency) != 0)
            k++;
        if (k == n_cur && n_cur < (int)(sizeof cur / sizeof cur[0])) {
            memset(&cur[n_cur], 0, sizeof cur[n_cur]);
            memcpy(cur[n_cur].currency, v.currency, 4);
            n_cur++;
        }
        if (k < n_cur) {
            if (v.interval_months == 12)
                cur[k].yearly += v.base_fee_micros;
            else
                cur[k].monthly += v.base_fee_micros;
        }
    }
    sqlite3_finalize(st);
    if (ok && rc != SQLITE_DONE)
        ok = sq_fail(db, "reading subscriptions", e);
    for (int k = 0; ok && k < n_cur; k++) {
        int64_t y = cur[k].yearly;
        int64_t q = y / 12, r = y % 12;
        if (2 * r > 12 || (2 * r == 12 && (q & 1)))
            q++; /* half-even, once, on the sum */
        int64_t mrr = cur[k].monthly + q, arr = 12 * cur[k].monthly + y;
        cJSON *row = cJSON_CreateObject();
        char buf[40];
        cJSON_AddStringToObject(row, "currency", cur[k].currency);
        cJSON_AddNumberToObject(row, "mrr_micros", (double)mrr);
        micros_text(mrr, buf, sizeof buf);
        cJSON_AddStringToObject(row, "mrr", buf);
        cJSON_AddNumberToObject(row, "arr_micros", (double)arr);
        micros_text(arr, buf, sizeof buf);
        cJSON_AddStringToObject(row, "arr", buf);
        cJSON_AddItemToArray(rec, row);
    }
    int64_t first_in_month = 0, churned = 0;
    for (int i = 0; i < ended.n; i++)
        churned += !names_has(&live, ended.ids[i]);
    ok = ok && sq_int(db,
                      "SELECT count(*) FROM (SELECT min(created_at) AS first FROM subscriptions "
                      "GROUP BY customer_id) WHERE first >= ? AND first < ?",
                      &first_in_month, NULL, e, SQ_INT(from), SQ_INT(to), SQ_END);
    if (ok) {
        cJSON *c = cJSON_AddObjectToObject(out, "customers");
        cJSON_AddNumberToObject(c, "new", (double)first_in_month);
        cJSON_AddNumberToObject(c, "churned", (double)churned);
        cJSON_AddNumberToObject(c, "active_at_end", live.n);
    }
    free(live.ids);
    free(ended.ids);
    return ok;
}

static bool usage_part(sqlite3 *db, int64_t from, int64_t to, cJSON *out, struct err *e)
{
    cJSON *usage = cJSON_AddArrayToObject(out, "usage_by_tier");
    return sq_json_rows(db,
                        "SELECT json_object('tier', pv.plan_id, 'requests', count(*), "
                        "'input_tokens', sum(u.prompt_tokens), 'output_tokens', "
                        "sum(u.completion_tokens), 'aborted_requests', sum(u.client_aborted)) "
                        "FROM usage_ledger u JOIN plan_versions pv ON pv.id = u.plan_version_id "
                        "WHERE u.started_at >= ? AND u.started_at < ? GROUP BY pv.plan_id "
                        "ORDER BY pv.plan_id",
                        usage, NULL, e, SQ_INT(from), SQ_INT(to), SQ_END);
}

static bool billed_part(sqlite3 *db, const char *period, int64_t now, cJSON *out, struct err *e)
{
    struct invoice *list = NULL;
    int n = 0;
    if (!invoices_for_period(db, period, NULL, now, &list, &n, e))
        return false;
    cJSON *by = cJSON_AddArrayToObject(out, "billed_by_tier");
    cJSON *totals = cJSON_AddArrayToObject(out, "billed_totals");
    struct { int64_t id; char plan[PLAN_ID_MAX]; } cache[64];
    int n_cache = 0;
    bool ok = true;
    for (int i = 0; ok && i < n; i++) {
        const struct invoice *inv = &list[i];
        cJSON *t = row_for(totals, "currency", inv->currency, NULL, NULL, NULL, NULL);
        add(t, "invoices", 1);
        add(t, inv->number ? "finalized" : "drafts", 1);
        add(t, "total_micros", inv->total_micros);
        for (int k = 0; ok && k < inv->n_lines; k++) {
            const struct invoice_line *l = &inv->lines[k];
            const char *tier = inv->plan_id;
            if (l->plan_version_id) {
                int c = 0;
                while (c < n_cache && cache[c].id != l->plan_version_id)
                    c++;
                if (c == n_cache) {
                    struct plan_version v;
                    ok = plans_version_get(db, l->plan_version_id, &v, e);
                    if (!ok)
                        break;
                    c = n_cache < 64 ? n_cache++ : 63;
                    cache[c].id = v.id;
                    snprintf(cache[c].plan, sizeof cache[c].plan, "%s", v.plan_id);
                }
                tier = cache[c].plan;
            }
            cJSON *row = row_for(by, "tier", tier, "line_type", l->type, "currency", inv->currency);
            add(row, "lines", 1);
            add(row, "amount_micros", l->amount_micros);
        }
    }
    invoices_free(list, n);
    if (!ok)
        return false;
    cJSON *it;
    cJSON_ArrayForEach(it, by)
        money_text(it, "amount_micros", "amount",
                   cJSON_GetStringValue(cJSON_GetObjectItem(it, "currency")));
    cJSON_ArrayForEach(it, totals) {
        if (!cJSON_GetObjectItem(it, "finalized"))
            cJSON_AddNumberToObject(it, "finalized", 0);
        if (!cJSON_GetObjectItem(it, "drafts"))
            cJSON_AddNumberToObject(it, "drafts", 0);
        money_text(it, "total_micros", "total",
                   cJSON_GetStringValue(cJSON_GetObjectItem(it, "currency")));
    }
    return true;
}

bool revenue_summary(sqlite3 *db, const char *period, int64_t now, cJSON **out, struct err *e)
{
    *out = NULL;
    int64_t from, to, dummy;
    bool closed = false;
    if (!invoices_period_parse(period, &from, &to, e) ||
        !sq_int(db, "SELECT 1 FROM invoice_periods WHERE period = ?", &dummy, &closed, e,
                SQ_TEXT(period), SQ_END))
        return false;
    /* Subscriptions are counted at the month's last instant, or now. */
    int64_t at = (now < to ? now : to) - 1;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "object", "revenue_summary");
    cJSON_AddStringToObject(o, "period", period);
    cJSON_AddNumberToObject(o, "period_start", (double)from);
    cJSON_AddNumberToObject(o, "period_end", (double)to);
    cJSON_AddBoolToObject(o, "closed", closed);
    cJSON_AddNumberToObject(o, "as_of", (double)at);
    if (!subscriptions_part(db, from, to, at, o, e) || !usage_part(db, from, to, o, e) ||
        !billed_part(db, period, now, o, e)) {
        cJSON_Delete(o);
        return false;
    }
    *out = o;
    return true;
}


static const char *str(const cJSON *o, const char *k)
{
    const char *s = cJSON_GetStringValue(cJSON_GetObjectItem(o, k));
    return s ? s : "";
}

static long long num(const cJSON *o, const char *k)
{
    const cJSON *n = cJSON_GetObjectItem(o, k);
    return cJSON_IsNumber(n) ? (long long)n->valuedouble : 0;
}

char *revenue_csv(const cJSON *s, size_t *len)
{
    struct textbuf t = {0};
    textbuf_printf(&t, "section,tier,plan,line_type,currency,metric,value\r\n");
    const cJSON *it;
    cJSON_ArrayForEach(it, cJSON_GetObjectItem(s, "active_subscriptions")) {
        textbuf_printf(&t, "subscriptions,%s,%s,,,paying,%lld\r\n", str(it, "tier"), str(it, "plan"),
             num(it, "paying"));
        textbuf_printf(&t, "subscriptions,%s,%s,,,trialing,%lld\r\n", str(it, "tier"), str(it, "plan"),
             num(it, "trialing"));
    }
    const cJSON *c = cJSON_GetObjectItem(s, "customers");
    textbuf_printf(&t, "customers,,,,,new,%lld\r\n", num(c, "new"));
    textbuf_printf(&t, "customers,,,,,churned,%lld\r\n", num(c, "churned"));
    textbuf_printf(&t, "customers,,,,,active_at_end,%lld\r\n", num(c, "active_at_end"));
    cJSON_ArrayForEach(it, cJSON_GetObjectItem(s, "recurring_revenue")) {
        textbuf_printf(&t, "recurring,,,,%s,mrr,%s\r\n", str(it, "currency"), str(it, "mrr"));
        textbuf_printf(&t, "recurring,,,,%s,arr,%s\r\n", str(it, "currency"), str(it, "arr"));
    }
    cJSON_ArrayForEach(it, cJSON_GetObjectItem(s, "usage_by_tier")) {
        textbuf_printf(&t, "usage,%s,,,,requests,%lld\r\n", str(it, "tier"), num(it, "requests"));
        textbuf_printf(&t, "usage,%s,,,,input_tokens,%lld\r\n", str(it, "tier"), num(it, "input_tokens"));
        textbuf_printf(&t, "usage,%s,,,,output_tokens,%lld\r\n", str(it, "tier"), num(it, "output_tokens"));
        textbuf_printf(&t, "usage,%s,,,,aborted_requests,%lld\r\n", str(it, "tier"),
             num(it, "aborted_requests"));
    }
    cJSON_ArrayForEach(it, cJSON_GetObjectItem(s, "billed_by_tier"))
        textbuf_printf(&t, "billed,%s,,%s,%s,amount,%s\r\n", str(it, "tier"), str(it, "line_type"),
             str(it, "currency"), str(it, "amount"));
    cJSON_ArrayForEach(it, cJSON_GetObjectItem(s, "billed_totals")) {
        textbuf_printf(&t, "billed,,,,%s,total,%s\r\n", str(it, "currency"), str(it, "total"));
        textbuf_printf(&t, "billed,,,,%s,invoices,%lld\r\n", str(it, "currency"), num(it, "invoices"));
    }
    *len = t.len;
    return t.p;
}

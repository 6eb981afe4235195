/* invoices.c — see invoices.h; docs/finance.md explains each rule. */
#include "server/invoices.h"

#include <ctype.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/audit.h"
#include "server/caltime.h"
#include "server/sq.h"
#include "server/textbuf.h"

/* What an invoice knows (a draft: everything). Rows of its window: every
 * row that is not late, and the late ones up to a late_usage seq. Credits:
 * what the invoices numbered below it consumed. */
#define NO_BOUND INT64_MAX
#define OPEN_END INT64_MAX
#define MICROS_PER_1M 1000000

/* ---- money and text ------------------------------------------------------------- */

int64_t invoices_minor_unit(const char *currency)
{
    /* ISO 4217 currencies whose minor unit is not the cent. */
    static const char zero[] = "BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX UYI VND VUV XAF XOF XPF";
    static const char three[] = "BHD IQD JOD KWD LYD OMR TND";
    if (currency && strlen(currency) == 3) {
        if (strstr(zero, currency))
            return 1000000;
        if (strstr(three, currency))
            return 1000;
    }
    return 10000;
}

void invoices_amount_text(int64_t micros, const char *currency, char *buf, size_t size)
{
    int64_t unit = invoices_minor_unit(currency);
    int digits = unit == 1000000 ? 0 : unit == 1000 ? 3 : 2;
    unsigned long long a = micros < 0 ? 0ULL - (unsigned long long)micros : (unsigned long long)micros;
    const char *sign = micros < 0 ? "-" : "";
    if (digits == 0)
        snprintf(buf, size, "%s%llu", sign, a / 1000000);
    else
        snprintf(buf, size, "%s%llu.%0*llu", sign, a / 1000000, digits,
                 (a % 1000000) / (unsigned long long)unit);
}

/* num / den rounded half to even (den > 0). */
static int64_t div_half_even(__int128 num, __int128 den)
{
    bool neg = num < 0;
    if (neg)
        num = -num;
    __int128 q = num / den, r = num % den;
    if (2 * r > den || (2 * r == den && (q & 1)))
        q++;
    return (int64_t)(neg ? -q : q);
}

/* The amount num/den micro-units, rounded once, half-even, to a whole
 * number of the minor unit (`unit` micro-units). */
static int64_t to_minor(__int128 num, __int128 den, int64_t unit)
{
    return div_half_even(num, den * unit) * unit;
}

static int64_t tokens_amount(int64_t tokens, int64_t price_per_1m, int64_t unit)
{
    return to_minor((__int128)tokens * price_per_1m, MICROS_PER_1M, unit);
}

/* "2031-03-11" at midnight, else "2031-03-11T09:00:00Z" (ms when any). */
static void fmt_time(int64_t ms, char *buf, size_t size)
{
    caltime_format(ms, buf, size);
    size_t n = strlen(buf);
    if (n >= 24 && strcmp(buf + 10, "T00:00:00.000Z") == 0)
        buf[10] = '\0';
    else if (n >= 5 && strcmp(buf + n - 5, ".000Z") == 0)
        snprintf(buf + n - 5, size - (n - 5), "Z");
}

bool invoices_period_parse(const char *p, int64_t *start, int64_t *end, struct err *e)
{
    bool ok = p && strlen(p) == 7 && p[4] == '-';
    for (int i = 0; ok && i < 7; i++)
        ok = i == 4 || isdigit((unsigned char)p[i]);
    int y = ok ? atoi(p) : 0, m = ok ? atoi(p + 5) : 0;
    if (!ok || y < 1970 || m < 1 || m > 12)
        return err_set_param(e, ERR_INVALID, "period",
                             "period must be a month written YYYY-MM, e.g. 2031-03: '%s'",
                             p ? p : "");
    *start = caltime_ms_from_date((struct caltime_date){y, m, 1});
    *end = caltime_ms_from_date(m == 12 ? (struct caltime_date){y + 1, 1, 1}
                                        : (struct caltime_date){y, m + 1, 1});
    return true;
}

void invoices_period_of(int64_t ms, char out[INVOICE_PERIOD_MAX])
{
    struct caltime_date d = caltime_date_of(ms);
    char tmp[32];
    snprintf(tmp, sizeof tmp, "%04d-%02d", d.year, d.month);
    snprintf(out, INVOICE_PERIOD_MAX, "%.7s", tmp);
}

/* A draft and its finalized invoice share this id: it depends only on
 * the subscription and where the service window starts. */
static void invoice_id(const char *sub_id, int64_t ws, char out[INVOICE_ID_MAX])
{
    char in[96];
    int n = snprintf(in, sizeof in, "invoice\n%s\n%lld", sub_id, (long long)ws);
    uint8_t d[32] = {0};
    /* SHA-256 over a few bytes cannot fail short of a broken library. */
    (void)gnutls_hash_fast(GNUTLS_DIG_SHA256, in, (size_t)n, d);
    memcpy(out, "in_", 3);
    for (int i = 0; i < RANDID_LEN; i++)
        out[3 + i] = randid_alphabet[d[i] % 62];
    out[3 + RANDID_LEN] = '\0';
}

static void hex(const uint8_t *d, size_t n, char *out)
{
    static const char x[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = x[d[i] >> 4];
        out[2 * i + 1] = x[d[i] & 15];
    }
    out[2 * n] = '\0';
}

void invoice_free(struct invoice *inv)
{
    if (!inv)
        return;
    free(inv->lines);
    inv->lines = NULL;
    inv->n_lines = inv->cap_lines = 0;
}

void invoices_free(struct invoice *list, int n)
{
    for (int i = 0; i < n; i++)
        invoice_free(&list[i]);
    free(list);
}

static struct invoice_line *line_add(struct invoice *inv, const char *type)
{
    if (inv->n_lines == inv->cap_lines) {
        int cap = inv->cap_lines ? inv->cap_lines * 2 : 16;
        struct invoice_line *nl = realloc(inv->lines, (size_t)cap * sizeof *nl);
        if (!nl)
            abort();
        inv->lines = nl;
        inv->cap_lines = cap;
    }
    struct invoice_line *l = &inv->lines[inv->n_lines++];
    memset(l, 0, sizeof *l);
    snprintf(l->type, sizeof l->type, "%s", type);
    l->ledger_rows = -1;
    return l;
}

/* ---- a subscription's history: its billing periods ----------------------------- */

/* From a 'created' or 'plan_changed' change on: one plan, one anchor. */
struct stretch {
    int64_t at;
    char plan_id[PLAN_ID_MAX];
    int anchor_day, anchor_month, interval_months;
};

struct timeline {
    char id[RANDID_MAX];
    char customer_id[RANDID_MAX];
    int64_t created_at;
    int64_t trial_end;          /* 0: no trial; the trial is [created_at, trial_end) */
    int64_t end;                /* when it stopped being live; OPEN_END: it did not */
    struct stretch *st;
    int n;
};

/* One invoice's window: the billing period [ps, pe) and the part of it the
 * subscription was live [ws, we), within the era of stretches first..last
 * (same anchor and interval) that ends at era_end. */
struct window {
    int64_t ps, pe, ws, we;
    int first, last;
    int64_t era_end;
};

static void timeline_free(struct timeline *tl)
{
    free(tl->st);
    tl->st = NULL;
    tl->n = 0;
}

static void stretch_push(struct timeline *tl, int *cap, const struct stretch *s)
{
    if (tl->n == *cap) {
        *cap = *cap ? *cap * 2 : 8;
        struct stretch *ns = realloc(tl->st, (size_t)*cap * sizeof *ns);
        if (!ns)
            abort();
        tl->st = ns;
    }
    tl->st[tl->n++] = *s;
}

static const struct stretch *stretch_at(const struct timeline *tl, int64_t t)
{
    const struct stretch *s = &tl->st[0];
    for (int i = 1; i < tl->n && tl->st[i].at <= t; i++)
        s = &tl->st[i];
    return s;
}

static bool timeline_load(sqlite3 *db, const char *sub_id, struct timeline *tl, struct err *e)
{
    memset(tl, 0, sizeof *tl);
    sqlite3_stmt *st;
    if (!sq_prepare(db,
                    "SELECT id, customer_id, plan_id, status, billing_anchor_day, "
                    "billing_anchor_month, created_at, coalesce(trial_end, 0), "
                    "cancel_at_period_end, coalesce(canceled_at, 0) FROM subscriptions WHERE id = ?",
                    &st, e, SQ_TEXT(sub_id), SQ_END))
        return false;
    int rc = sqlite3_step(st);
    if (rc != SQLITE_ROW) {
        sqlite3_finalize(st);
        return rc == SQLITE_DONE ? err_set(e, ERR_NOT_FOUND, "no subscription '%s'", sub_id)
                                 : sq_fail(db, "reading a subscription", e);
    }
    snprintf(tl->id, sizeof tl->id, "%s", (const char *)sqlite3_column_text(st, 0));
    snprintf(tl->customer_id, sizeof tl->customer_id, "%s", (const char *)sqlite3_column_text(st, 1));
    char row_plan[PLAN_ID_MAX], status[16];
    snprintf(row_plan, sizeof row_plan, "%s", (const char *)sqlite3_column_text(st, 2));
    snprintf(status, sizeof status, "%s", (const char *)sqlite3_column_text(st, 3));
    int row_day = sqlite3_column_int(st, 4), row_month = sqlite3_column_int(st, 5);
    tl->created_at = sqlite3_column_int64(st, 6);
    tl->trial_end = sqlite3_column_int64(st, 7);
    bool flag = sqlite3_column_int(st, 8) != 0;
    int64_t canceled_at = sqlite3_column_int64(st, 9);
    sqlite3_finalize(st);

    if (!sq_prepare(db,
                    "SELECT c.at, c.kind, coalesce(pv.plan_id, ''), coalesce(pv.billing_interval, "
                    "'month'), coalesce(a.billing_anchor_day, 0), coalesce(a.billing_anchor_month, 0) "
                    "FROM subscription_changes c "
                    "LEFT JOIN plan_versions pv ON pv.id = c.to_plan_version_id "
                    "LEFT JOIN subscription_anchors a ON a.change_id = c.id "
                    "WHERE c.subscription_id = ? ORDER BY c.at, c.id",
                    &st, e, SQ_TEXT(sub_id), SQ_END))
        return false;
    int cap = 0;
    int64_t canceled = 0, flag_at = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        int64_t at = sqlite3_column_int64(st, 0);
        const char *kind = (const char *)sqlite3_column_text(st, 1);
        if (strcmp(kind, "created") == 0 || strcmp(kind, "plan_changed") == 0) {
            struct stretch s = {.at = at};
            const char *plan = (const char *)sqlite3_column_text(st, 2);
            snprintf(s.plan_id, sizeof s.plan_id, "%s", *plan ? plan : row_plan);
            s.interval_months = strcmp((const char *)sqlite3_column_text(st, 3), "year") == 0 ? 12 : 1;
            s.anchor_day = sqlite3_column_int(st, 4);
            s.anchor_month = sqlite3_column_int(st, 5);
            if (s.anchor_day == 0) { /* written before migration 0003 could record it */
                s.anchor_day = row_day;
                s.anchor_month = row_month;
            }
            stretch_push(tl, &cap, &s);
            if (flag_at && strcmp(kind, "plan_changed") == 0)
                flag_at = at; /* the cancellation follows the period that now runs */
        } else if (strcmp(kind, "canceled") == 0 && !canceled) {
            canceled = at;
        } else if (strcmp(kind, "cancel_scheduled") == 0) {
            flag_at = at;
        }
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        timeline_free(tl);
        return sq_fail(db, "reading subscription changes", e);
    }
    if (tl->n == 0) {
        /* No recorded creation (rows written by hand): the row itself. */
        struct plan_version pv;
        struct err ignored = {0};
        struct stretch s = {.at = tl->created_at, .anchor_day = row_day, .anchor_month = row_month,
                            .interval_months = 1};
        snprintf(s.plan_id, sizeof s.plan_id, "%s", row_plan);
        if (plans_version_at(db, row_plan, tl->created_at, &pv, &ignored))
            s.interval_months = pv.interval_months;
        stretch_push(tl, &cap, &s);
    }
    tl->end = OPEN_END;
    if (canceled) {
        tl->end = canceled;
    } else if (strcmp(status, "canceled") == 0) {
        tl->end = canceled_at ? canceled_at : tl->created_at;
    } else if (flag && flag_at) {
        /* Scheduled to cancel and the renewal job has not run yet: it will
         * cancel at the end of the period that contains the request. */
        const struct stretch *s = stretch_at(tl, flag_at);
        int64_t ps, pe;
        caltime_period_containing(s->anchor_day, s->anchor_month, s->interval_months, flag_at, &ps,
                                  &pe);
        tl->end = pe;
    }
    return true;
}

static bool same_era(const struct stretch *a, const struct stretch *b)
{
    return a->anchor_day == b->anchor_day && a->interval_months == b->interval_months &&
           (a->interval_months == 1 || a->anchor_month == b->anchor_month);
}

typedef bool (*window_fn)(const struct timeline *tl, const struct window *w, void *arg,
                          struct err *e);

/* Every service window of the subscription that begins before `horizon`,
 * in time order. */
static bool timeline_windows(const struct timeline *tl, int64_t horizon, window_fn fn, void *arg,
                             struct err *e)
{
    for (int i = 0; i < tl->n;) {
        int j = i;
        while (j + 1 < tl->n && same_era(&tl->st[i], &tl->st[j + 1]))
            j++;
        int64_t era_end = j + 1 < tl->n ? tl->st[j + 1].at : OPEN_END;
        if (era_end > tl->end)
            era_end = tl->end;
        const struct stretch *s = &tl->st[i];
        for (int64_t t = s->at; t < era_end && t < horizon;) {
            struct window w = {.ws = t, .first = i, .last = j, .era_end = era_end};
            caltime_period_containing(s->anchor_day, s->anchor_month, s->interval_months, t, &w.ps,
                                      &w.pe);
            w.we = w.pe < era_end ? w.pe : era_end;
            if (!fn(tl, &w, arg, e))
                return false;
            t = w.pe;
        }
        i = j + 1;
    }
    return true;
}

struct find_window {
    int64_t ws;
    struct window w;
    bool found;
};

static bool find_window_cb(const struct timeline *tl, const struct window *w, void *arg,
                           struct err *e)
{
    (void)tl;
    (void)e;
    struct find_window *f = arg;
    if (w->ws == f->ws) {
        f->w = *w;
        f->found = true;
    }
    return true;
}

/* The window of `tl` that starts at ws. */
static bool window_find(const struct timeline *tl, int64_t ws, struct window *out, struct err *e)
{
    struct find_window f = {.ws = ws};
    if (!timeline_windows(tl, ws + 1, find_window_cb, &f, e))
        return false;
    if (!f.found)
        return err_set(e, ERR_CORRUPT,
                       "subscription %s has no billing period starting at %lld any more: its "
                       "history no longer matches a finalized invoice", tl->id, (long long)ws);
    *out = f.w;
    return true;
}

struct segment {
    int64_t a, b;
    const struct stretch *s;
};

/* The window cut where the plan changed; *out is malloc'ed. */
static int window_segments(const struct timeline *tl, const struct window *w, struct segment **out)
{
    struct segment *seg = calloc((size_t)(w->last - w->first + 1), sizeof *seg);
    if (!seg)
        abort();
    int n = 0;
    for (int k = w->first; k <= w->last; k++) {
        int64_t a = tl->st[k].at, b = k < w->last ? tl->st[k + 1].at : w->era_end;
        if (a < w->ws)
            a = w->ws;
        if (b > w->we)
            b = w->we;
        if (a < b)
            seg[n++] = (struct segment){a, b, &tl->st[k]};
    }
    *out = seg;
    return n;
}

/* ---- usage: the ledger rows of a window ------------------------------------------ */

struct group {
    struct plan_version v;           /* the version the rows carry */
    int64_t rows, in, out, first_at, last_at;
    int64_t in_cov, out_cov;         /* covered by the allowance */
    int64_t in_cr, out_cr;           /* covered by token credits */
    gnutls_hash_hd_t h;
    char digest[INVOICE_DIGEST_HEX];
};

struct usage {
    struct group *g;
    int n, cap;
};

static void usage_free(struct usage *u)
{
    for (int i = 0; i < u->n; i++)
        if (u->g[i].h)
            gnutls_hash_deinit(u->g[i].h, NULL);
    free(u->g);
    memset(u, 0, sizeof *u);
}

/* One row into the digest: "request_id TAB prompt_tokens TAB
 * completion_tokens LF" (docs/finance.md shows how to recompute it). */
static void digest_row(gnutls_hash_hd_t h, const char *request_id, int64_t in, int64_t out)
{
    char buf[160];
    int n = snprintf(buf, sizeof buf, "%s\t%lld\t%lld\n", request_id, (long long)in, (long long)out);
    gnutls_hash(h, buf, (size_t)n);
}

static void digest_end(gnutls_hash_hd_t *h, char out[INVOICE_DIGEST_HEX])
{
    uint8_t d[32];
    gnutls_hash_deinit(*h, d);
    *h = NULL;
    hex(d, 32, out);
}

static bool digest_begin(gnutls_hash_hd_t *h, struct err *e)
{
    if (gnutls_hash_init(h, GNUTLS_DIG_SHA256) != 0)
        return err_set(e, ERR_INTERNAL, "SHA-256 is not available");
    return true;
}

/* The window's rows known at `late_bound`, in (started_at, request_id) order,
 * grouped by the plan version they carry in order of first use. */
static bool usage_scan(sqlite3 *db, const char *customer_id, int64_t from, int64_t to,
                       int64_t late_bound, struct usage *u, struct err *e)
{
    memset(u, 0, sizeof *u);
    sqlite3_stmt *st;
    if (!sq_prepare(db,
                    "SELECT u.request_id, u.started_at, u.prompt_tokens, u.completion_tokens, "
                    "u.plan_version_id FROM usage_ledger u "
                    "LEFT JOIN late_usage l ON l.request_id = u.request_id "
                    "WHERE u.customer_id = ?1 AND u.started_at >= ?2 AND u.started_at < ?3 "
                    "AND (l.seq IS NULL OR l.seq <= ?4) "
                    "ORDER BY u.started_at, u.request_id",
                    &st, e, SQ_TEXT(customer_id), SQ_INT(from), SQ_INT(to), SQ_INT(late_bound),
                    SQ_END))
        return false;
    int rc = SQLITE_DONE;
    bool ok = true;
    while (ok && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        int64_t vid = sqlite3_column_int64(st, 4), at = sqlite3_column_int64(st, 1);
        int64_t in = sqlite3_column_int64(st, 2), out = sqlite3_column_int64(st, 3);
        struct group *g = NULL;
        for (int i = 0; i < u->n && !g; i++)
            if (u->g[i].v.id == vid)
                g = &u->g[i];
        if (!g) {
            if (u->n == u->cap) {
                u->cap = u->cap ? u->cap * 2 : 4;
                struct group *ng = realloc(u->g, (size_t)u->cap * sizeof *ng);
                if (!ng)
                    abort();
                u->g = ng;
            }
            g = &u->g[u->n++];
            memset(g, 0, sizeof *g);
            g->first_at = at;
            ok = plans_version_get(db, vid, &g->v, e) && digest_begin(&g->h, e);
            if (!ok)
                break;
        }
        g->rows++;
        g->in += in;
        g->out += out;
        g->last_at = at;
        digest_row(g->h, (const char *)sqlite3_column_text(st, 0), in, out);
    }
    sqlite3_finalize(st);
    if (ok && rc != SQLITE_DONE)
        ok = sq_fail(db, "reading the usage ledger", e);
    for (int i = 0; ok && i < u->n; i++)
        digest_end(&u->g[i].h, u->g[i].digest);
    if (!ok)
        usage_free(u);
    return ok;
}

/* The allowance is consumed in time order: version group by version
 * group, input tokens before output tokens in each (plans_rate's rule). */
static void usage_allow(struct usage *u, int64_t allowance)
{
    int64_t left = allowance;
    for (int i = 0; i < u->n; i++) {
        struct group *g = &u->g[i];
        g->in_cov = g->in < left ? g->in : left;
        left -= g->in_cov;
        g->out_cov = g->out < left ? g->out : left;
        left -= g->out_cov;
    }
}

/* The three usage amounts of a group, before credits. */
static void group_amounts(const struct group *g, int64_t unit, int64_t *in, int64_t *out,
                          int64_t *req)
{
    *in = tokens_amount(g->in - g->in_cov, g->v.price_input_per_1m_micros, unit);
    *out = tokens_amount(g->out - g->out_cov, g->v.price_output_per_1m_micros, unit);
    *req = to_minor((__int128)g->rows * g->v.price_per_request_micros, 1, unit);
}

/* A window rated: its segments, the allowance version and the usage. */
struct rated {
    struct segment *seg;
    int n_seg;
    struct plan_version allowance_v;
    struct usage u;
};

static void rated_free(struct rated *r)
{
    free(r->seg);
    usage_free(&r->u);
    memset(r, 0, sizeof *r);
}

static bool window_rate(sqlite3 *db, const struct timeline *tl, const struct window *w,
                        int64_t late_bound, struct rated *r, struct err *e)
{
    memset(r, 0, sizeof *r);
    r->n_seg = window_segments(tl, w, &r->seg);
    if (r->n_seg == 0) {
        rated_free(r);
        return err_set(e, ERR_INTERNAL, "an empty service window for subscription %s", tl->id);
    }
    /* The allowance is the plan's the window ends on, at the version in
     * force when that plan began in it: what admission enforces. */
    const struct segment *last = &r->seg[r->n_seg - 1];
    if (!plans_version_at(db, last->s->plan_id, last->a, &r->allowance_v, e) ||
        !usage_scan(db, tl->customer_id, w->ws, w->we, late_bound, &r->u, e)) {
        rated_free(r);
        return false;
    }
    usage_allow(&r->u, r->allowance_v.included_tokens);
    return true;
}

/* ---- credits ------------------------------------------------------------------------ */

struct credit {
    char id[RANDID_MAX];
    char kind[16];
    int64_t avail;
};

/* The customer's credits of `unit` usable by an invoice whose window ends
 * at `we`: granted before it and not expired at it; what is left of each
 * after the invoices numbered below `bound`; soonest expiry first. */
static bool credits_usable(sqlite3 *db, const char *customer_id, const char *unit,
                           const char *currency, int64_t we, int64_t bound, struct credit **out,
                           int *n, struct err *e)
{
    *out = NULL;
    *n = 0;
    sqlite3_stmt *st;
    if (!sq_prepare(db,
                    "SELECT c.id, c.kind, c.amount - coalesce((SELECT sum(l.quantity) FROM "
                    "invoice_lines l JOIN invoices i ON i.id = l.invoice_id WHERE l.ref = c.id "
                    "AND l.type IN ('credit_tokens', 'credit_amount') AND i.number < ?5), 0) "
                    "FROM credits c WHERE c.customer_id = ?1 AND c.unit = ?2 AND "
                    "(?3 IS NULL OR c.currency = ?3) AND c.granted_at < ?4 AND "
                    "(c.expires_at IS NULL OR c.expires_at >= ?4) "
                    "ORDER BY c.expires_at IS NULL, c.expires_at, c.granted_at, c.id",
                    &st, e, SQ_TEXT(customer_id), SQ_TEXT(unit), SQ_TEXT(currency), SQ_INT(we),
                    SQ_INT(bound), SQ_END))
        return false;
    int rc, cap = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        int64_t avail = sqlite3_column_int64(st, 2);
        if (avail <= 0)
            continue;
        if (*n == cap) {
            cap = cap ? cap * 2 : 4;
            struct credit *nc = realloc(*out, (size_t)cap * sizeof *nc);
            if (!nc)
                abort();
            *out = nc;
        }
        struct credit *c = &(*out)[(*n)++];
        snprintf(c->id, sizeof c->id, "%s", (const char *)sqlite3_column_text(st, 0));
        snprintf(c->kind, sizeof c->kind, "%s", (const char *)sqlite3_column_text(st, 1));
        c->avail = avail;
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        free(*out);
        *out = NULL;
        *n = 0;
        return sq_fail(db, "reading credits", e);
    }
    return true;
}

/* Token credits cover overage before it is billed, in the allowance's
 * order; each credit used is one negative line worth the overage it
 * covered at that overage's prices. */
static bool apply_token_credits(sqlite3 *db, const struct window *w, int64_t bound,
                                struct usage *u, int64_t unit, struct invoice *inv, struct err *e)
{
    struct credit *cr;
    int n;
    if (!credits_usable(db, inv->customer_id, "tokens", NULL, w->we, bound, &cr, &n, e))
        return false;
    for (int k = 0; k < n; k++) {
        int64_t taken = 0;
        __int128 value = 0;
        for (int i = 0; i < u->n && taken < cr[k].avail; i++) {
            struct group *g = &u->g[i];
            int64_t t = g->in - g->in_cov - g->in_cr;
            if (t > cr[k].avail - taken)
                t = cr[k].avail - taken;
            g->in_cr += t;
            taken += t;
            value += (__int128)t * g->v.price_input_per_1m_micros;
            t = g->out - g->out_cov - g->out_cr;
            if (t > cr[k].avail - taken)
                t = cr[k].avail - taken;
            g->out_cr += t;
            taken += t;
            value += (__int128)t * g->v.price_output_per_1m_micros;
        }
        if (taken == 0)
            break;
        struct invoice_line *l = line_add(inv, "credit_tokens");
        snprintf(l->description, sizeof l->description, "Token credit %s (%s): %lld tokens",
                 cr[k].id, cr[k].kind, (long long)taken);
        snprintf(l->ref, sizeof l->ref, "%s", cr[k].id);
        l->start_at = w->ws;
        l->end_at = w->we;
        l->quantity = taken;
        snprintf(l->unit, sizeof l->unit, "token");
        l->amount_micros = -to_minor(value, MICROS_PER_1M, unit);
    }
    free(cr);
    return true;
}

/* Amount credits in the invoice's currency pay what is left, down to
 * zero; a credit gives whole minor units only. */
static bool apply_amount_credits(sqlite3 *db, const struct window *w, int64_t bound,
                                 int64_t unit, struct invoice *inv, struct err *e)
{
    int64_t due = 0;
    for (int i = 0; i < inv->n_lines; i++)
        due += inv->lines[i].amount_micros;
    if (due <= 0)
        return true;
    struct credit *cr;
    int n;
    if (!credits_usable(db, inv->customer_id, "micros", inv->currency, w->we, bound, &cr, &n, e))
        return false;
    for (int k = 0; k < n && due > 0; k++) {
        int64_t take = cr[k].avail / unit * unit;
        if (take > due)
            take = due;
        if (take <= 0)
            continue;
        due -= take;
        char amount[32];
        invoices_amount_text(take, inv->currency, amount, sizeof amount);
        struct invoice_line *l = line_add(inv, "credit_amount");
        snprintf(l->description, sizeof l->description, "Credit %s (%s): %s %s", cr[k].id,
                 cr[k].kind, amount, inv->currency);
        snprintf(l->ref, sizeof l->ref, "%s", cr[k].id);
        l->start_at = w->ws;
        l->end_at = w->we;
        l->quantity = take;
        snprintf(l->unit, sizeof l->unit, "micros");
        l->unit_price_micros = 1;
        l->amount_micros = -take;
    }
    free(cr);
    return true;
}

/* ---- computing one invoice -------------------------------------------------------- */

static void base_lines(const struct window *w, const struct segment *sg,
                       const struct plan_version *v, int64_t trial_end, int64_t unit,
                       struct invoice *inv)
{
    int64_t cs = sg->a;
    if (trial_end > cs)
        cs = trial_end < sg->b ? trial_end : sg->b;
    if (cs >= sg->b)
        return; /* trialing throughout */
    /* By the second: instants are counted in whole seconds. */
    int64_t period_s = w->pe / 1000 - w->ps / 1000;
    char from[40], to[40];
    fmt_time(w->ps, from, sizeof from);
    fmt_time(w->pe, to, sizeof to);
    struct invoice_line *l;
    if (cs == w->ps) {
        l = line_add(inv, "base_fee");
        snprintf(l->description, sizeof l->description, "%s v%d base fee, %s to %s", v->plan_id,
                 v->version, from, to);
        l->start_at = w->ps;
        l->quantity = period_s;
    } else {
        l = line_add(inv, "proration_charge");
        fmt_time(cs, from, sizeof from);
        l->quantity = w->pe / 1000 - cs / 1000;
        snprintf(l->description, sizeof l->description,
                 "Remaining time on %s v%d from %s: %lld of %lld seconds", v->plan_id, v->version,
                 from, (long long)l->quantity, (long long)period_s);
        l->start_at = cs;
    }
    l->plan_version_id = v->id;
    l->end_at = w->pe;
    snprintf(l->unit, sizeof l->unit, "second");
    l->unit_price_micros = v->base_fee_micros;
    l->amount_micros = to_minor((__int128)v->base_fee_micros * l->quantity, period_s, unit);
    if (sg->b >= w->pe)
        return;
    l = line_add(inv, "proration_credit");
    fmt_time(sg->b, from, sizeof from);
    l->quantity = w->pe / 1000 - sg->b / 1000;
    snprintf(l->description, sizeof l->description,
             "Unused time on %s v%d after %s: %lld of %lld seconds", v->plan_id, v->version, from,
             (long long)l->quantity, (long long)period_s);
    l->plan_version_id = v->id;
    l->start_at = sg->b;
    l->end_at = w->pe;
    snprintf(l->unit, sizeof l->unit, "second");
    l->unit_price_micros = v->base_fee_micros;
    l->amount_micros = -to_minor((__int128)v->base_fee_micros * l->quantity, period_s, unit);
}

static bool check_currency(const struct invoice *inv, const struct plan_version *v, struct err *e)
{
    if (strcmp(inv->currency, v->currency) == 0)
        return true;
    return err_set(e, ERR_UNSUPPORTED,
                   "invoice %s would mix currencies (%s and %s of %s v%d): one billing period "
                   "must be in one currency", inv->id, inv->currency, v->currency, v->plan_id,
                   v->version);
}

static void usage_lines(const struct usage *u, int64_t unit, struct invoice *inv)
{
    for (int i = 0; i < u->n; i++) {
        const struct group *g = &u->g[i];
        int64_t a_in, a_out, a_req;
        group_amounts(g, unit, &a_in, &a_out, &a_req);
        static const char *const types[3] = {"usage_input", "usage_output", "usage_requests"};
        static const char *const what[3] = {"Input tokens", "Output tokens", "Requests"};
        for (int k = 0; k < 3; k++) {
            struct invoice_line *l = line_add(inv, types[k]);
            l->plan_version_id = g->v.id;
            l->start_at = g->first_at;
            l->end_at = g->last_at + 1;
            l->ledger_rows = g->rows;
            memcpy(l->digest, g->digest, sizeof l->digest);
            if (k == 0) {
                l->quantity = g->in;
                l->included_quantity = g->in_cov;
                l->unit_price_micros = g->v.price_input_per_1m_micros;
                l->amount_micros = a_in;
            } else if (k == 1) {
                l->quantity = g->out;
                l->included_quantity = g->out_cov;
                l->unit_price_micros = g->v.price_output_per_1m_micros;
                l->amount_micros = a_out;
            } else {
                l->quantity = g->rows;
                l->unit_price_micros = g->v.price_per_request_micros;
                l->amount_micros = a_req;
            }
            snprintf(l->unit, sizeof l->unit, "%s", k == 2 ? "request" : "token");
            if (k == 2)
                snprintf(l->description, sizeof l->description, "%s at %s v%d prices: %lld",
                         what[k], g->v.plan_id, g->v.version, (long long)l->quantity);
            else
                snprintf(l->description, sizeof l->description,
                         "%s at %s v%d prices: %lld, %lld included, %lld billed", what[k],
                         g->v.plan_id, g->v.version, (long long)l->quantity,
                         (long long)l->included_quantity,
                         (long long)(l->quantity - l->included_quantity));
        }
    }
}

static int64_t usage_total(const struct usage *u, int64_t unit)
{
    int64_t sum = 0;
    for (int i = 0; i < u->n; i++) {
        int64_t a, b, c;
        group_amounts(&u->g[i], unit, &a, &b, &c);
        sum += a + b + c;
    }
    return sum;
}

/* Late rows for finalized invoice `j_id` with prev_late < seq <= late_bound
 * (they arrived after the invoice before `inv` was finalized, and before
 * `inv` was): one adjustment line on `inv`. */
static bool adjustment_line(sqlite3 *db, const char *j_id, int64_t prev_late, int64_t late_bound,
                            int64_t unit, struct invoice *inv, struct err *e)
{
    sqlite3_stmt *st;
    if (!sq_prepare(db,
                    "SELECT subscription_id, service_start, number, period, currency FROM invoices "
                    "WHERE id = ?",
                    &st, e, SQ_TEXT(j_id), SQ_END))
        return false;
    if (sqlite3_step(st) != SQLITE_ROW) {
        sqlite3_finalize(st);
        return err_set(e, ERR_CORRUPT, "late usage names invoice %s, which cannot be read", j_id);
    }
    char sub[RANDID_MAX], period[INVOICE_PERIOD_MAX], currency[4];
    snprintf(sub, sizeof sub, "%s", (const char *)sqlite3_column_text(st, 0));
    int64_t ws = sqlite3_column_int64(st, 1), j_number = sqlite3_column_int64(st, 2);
    snprintf(period, sizeof period, "%s", (const char *)sqlite3_column_text(st, 3));
    snprintf(currency, sizeof currency, "%s", (const char *)sqlite3_column_text(st, 4));
    sqlite3_finalize(st);
    if (strcmp(currency, inv->currency) != 0)
        return err_set(e, ERR_UNSUPPORTED,
                       "late usage of invoice %s (%s) cannot be billed on invoice %s (%s)", j_id,
                       currency, inv->id, inv->currency);

    struct timeline tl;
    struct window w;
    struct rated before, after;
    if (!timeline_load(db, sub, &tl, e))
        return false;
    bool ok = window_find(&tl, ws, &w, e);
    if (ok && window_rate(db, &tl, &w, prev_late, &before, e)) {
        if (window_rate(db, &tl, &w, late_bound, &after, e)) {
            /* What the closed invoice's usage lines would have been with
             * these rows, minus what they were without them. */
            int64_t delta = usage_total(&after.u, unit) - usage_total(&before.u, unit);
            gnutls_hash_hd_t h = NULL;
            ok = digest_begin(&h, e) &&
                 sq_prepare(db,
                            "SELECT u.request_id, u.prompt_tokens, u.completion_tokens, "
                            "u.started_at FROM late_usage l JOIN usage_ledger u ON u.request_id = "
                            "l.request_id WHERE l.invoice_id = ?1 AND l.seq > ?2 AND l.seq <= ?3 "
                            "ORDER BY u.started_at, u.request_id",
                            &st, e, SQ_TEXT(j_id), SQ_INT(prev_late), SQ_INT(late_bound), SQ_END);
            int64_t rows = 0, in = 0, out = 0;
            int rc = SQLITE_DONE;
            while (ok && (rc = sqlite3_step(st)) == SQLITE_ROW) {
                int64_t a = sqlite3_column_int64(st, 1), b = sqlite3_column_int64(st, 2);
                digest_row(h, (const char *)sqlite3_column_text(st, 0), a, b);
                rows++;
                in += a;
                out += b;
            }
            if (ok) {
                sqlite3_finalize(st);
                if (rc != SQLITE_DONE)
                    ok = sq_fail(db, "reading late usage", e);
            }
            if (ok) {
                struct invoice_line *l = line_add(inv, "adjustment");
                digest_end(&h, l->digest);
                snprintf(l->description, sizeof l->description,
                         "Usage recorded after invoice %lld (%s) was finalized: %lld requests, "
                         "%lld input and %lld output tokens",
                         (long long)j_number, period, (long long)rows, (long long)in,
                         (long long)out);
                snprintf(l->ref, sizeof l->ref, "%s", j_id);
                l->start_at = w.ws;
                l->end_at = w.we;
                l->quantity = rows;
                l->ledger_rows = rows;
                snprintf(l->unit, sizeof l->unit, "request");
                l->amount_micros = delta;
            } else if (h) {
                gnutls_hash_deinit(h, NULL);
            }
            rated_free(&after);
        } else {
            ok = false;
        }
        rated_free(&before);
    } else {
        ok = false;
    }
    timeline_free(&tl);
    return ok;
}

static bool adjustments(sqlite3 *db, int64_t prev_late, int64_t late_bound, int64_t unit,
                        struct invoice *inv, struct err *e)
{
    if (prev_late < 0)
        return true; /* no finalized invoice just before: nothing is late for this one */
    sqlite3_stmt *st;
    if (!sq_prepare(db,
                    "SELECT DISTINCT l.invoice_id, i.number FROM late_usage l JOIN invoices i ON "
                    "i.id = l.invoice_id WHERE l.customer_id = ?1 AND l.seq > ?2 AND l.seq <= ?3 "
                    "ORDER BY i.number",
                    &st, e, SQ_TEXT(inv->customer_id), SQ_INT(prev_late), SQ_INT(late_bound),
                    SQ_END))
        return false;
    char (*ids)[INVOICE_ID_MAX] = NULL;
    int n = 0, cap = 0, rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (n == cap) {
            cap = cap ? cap * 2 : 4;
            void *p = realloc(ids, (size_t)cap * sizeof *ids);
            if (!p)
                abort();
            ids = p;
        }
        snprintf(ids[n++], INVOICE_ID_MAX, "%s", (const char *)sqlite3_column_text(st, 0));
    }
    sqlite3_finalize(st);
    bool ok = rc == SQLITE_DONE || sq_fail(db, "reading late usage", e);
    for (int i = 0; ok && i < n; i++)
        ok = adjustment_line(db, ids[i], prev_late, late_bound, unit, inv, e);
    free(ids);
    return ok;
}

/* The invoice of window w as invoice number `number` knows it: rows up to
 * late seq `late_bound`, credits as invoices numbered below `number` left
 * them (NO_BOUND for both: a draft now). prev_late: the late_seq of the
 * customer's finalized invoice just before, -1 when there is none or it is
 * still a draft. */
static bool invoice_compute(sqlite3 *db, const struct timeline *tl, const struct window *w,
                            int64_t number, int64_t late_bound, int64_t prev_late,
                            struct invoice *inv, struct err *e)
{
    memset(inv, 0, sizeof *inv);
    invoice_id(tl->id, w->ws, inv->id);
    snprintf(inv->customer_id, sizeof inv->customer_id, "%s", tl->customer_id);
    snprintf(inv->subscription_id, sizeof inv->subscription_id, "%s", tl->id);
    invoices_period_of(w->we - 1, inv->period);
    inv->period_start = w->ps;
    inv->period_end = w->pe;
    inv->service_start = w->ws;
    inv->service_end = w->we;

    struct rated r;
    if (!window_rate(db, tl, w, late_bound, &r, e))
        return false;
    const struct segment *last = &r.seg[r.n_seg - 1];
    snprintf(inv->plan_id, sizeof inv->plan_id, "%s", last->s->plan_id);
    snprintf(inv->currency, sizeof inv->currency, "%s", r.allowance_v.currency);
    int64_t unit = invoices_minor_unit(inv->currency);
    bool ok = true;
    for (int k = 0; ok && k < r.n_seg; k++) {
        struct plan_version v;
        ok = plans_version_at(db, r.seg[k].s->plan_id, r.seg[k].a, &v, e) &&
             check_currency(inv, &v, e);
        if (ok)
            base_lines(w, &r.seg[k], &v, tl->trial_end, unit, inv);
    }
    if (ok) {
        int64_t used = 0;
        for (int i = 0; i < r.u.n; i++) {
            used += r.u.g[i].in_cov + r.u.g[i].out_cov;
            ok = ok && check_currency(inv, &r.u.g[i].v, e);
        }
        struct invoice_line *l = line_add(inv, "allowance");
        snprintf(l->description, sizeof l->description,
                 "Included tokens of %s v%d: %lld, used %lld", r.allowance_v.plan_id,
                 r.allowance_v.version, (long long)r.allowance_v.included_tokens,
                 (long long)used);
        l->plan_version_id = r.allowance_v.id;
        l->start_at = w->ws;
        l->end_at = w->we;
        l->quantity = r.allowance_v.included_tokens;
        l->included_quantity = used;
        snprintf(l->unit, sizeof l->unit, "token");
    }
    if (ok) {
        usage_lines(&r.u, unit, inv);
        ok = adjustments(db, prev_late, late_bound, unit, inv, e) &&
             apply_token_credits(db, w, number, &r.u, unit, inv, e) &&
             apply_amount_credits(db, w, number, unit, inv, e);
    }
    rated_free(&r);
    if (!ok) {
        invoice_free(inv);
        return false;
    }
    for (int i = 0; i < inv->n_lines; i++)
        inv->total_micros += inv->lines[i].amount_micros;
    return true;
}

/* ---- stored (finalized) invoices -------------------------------------------------- */

#define HEADER_COLUMNS                                                                         \
    "id, number, finalized_at, customer_id, subscription_id, plan_id, period, period_start, "  \
    "period_end, service_start, service_end, currency, total_micros, late_seq"

static void header_from_row(sqlite3_stmt *st, struct invoice *inv)
{
    memset(inv, 0, sizeof *inv);
    snprintf(inv->id, sizeof inv->id, "%s", (const char *)sqlite3_column_text(st, 0));
    inv->number = sqlite3_column_int64(st, 1);
    inv->finalized_at = sqlite3_column_int64(st, 2);
    snprintf(inv->customer_id, sizeof inv->customer_id, "%s", (const char *)sqlite3_column_text(st, 3));
    snprintf(inv->subscription_id, sizeof inv->subscription_id, "%s",
             (const char *)sqlite3_column_text(st, 4));
    snprintf(inv->plan_id, sizeof inv->plan_id, "%s", (const char *)sqlite3_column_text(st, 5));
    snprintf(inv->period, sizeof inv->period, "%s", (const char *)sqlite3_column_text(st, 6));
    inv->period_start = sqlite3_column_int64(st, 7);
    inv->period_end = sqlite3_column_int64(st, 8);
    inv->service_start = sqlite3_column_int64(st, 9);
    inv->service_end = sqlite3_column_int64(st, 10);
    snprintf(inv->currency, sizeof inv->currency, "%s", (const char *)sqlite3_column_text(st, 11));
    inv->total_micros = sqlite3_column_int64(st, 12);
    inv->late_seq = sqlite3_column_int64(st, 13);
}

static const char *col_text(sqlite3_stmt *st, int i)
{
    const char *s = (const char *)sqlite3_column_text(st, i);
    return s ? s : "";
}

/* A stored invoice by id; *found false (no error) when there is none. */
static bool stored_load(sqlite3 *db, const char *id, struct invoice *inv, bool *found,
                        struct err *e)
{
    *found = false;
    sqlite3_stmt *st;
    if (!sq_prepare(db, "SELECT " HEADER_COLUMNS " FROM invoices WHERE id = ?", &st, e,
                    SQ_TEXT(id), SQ_END))
        return false;
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        header_from_row(st, inv);
    sqlite3_finalize(st);
    if (rc != SQLITE_ROW)
        return rc == SQLITE_DONE || sq_fail(db, "reading an invoice", e);
    if (!sq_prepare(db,
                    "SELECT type, description, coalesce(plan_version_id, 0), coalesce(ref, ''), "
                    "start_at, end_at, quantity, included_quantity, unit, unit_price_micros, "
                    "amount_micros, coalesce(ledger_rows, -1), coalesce(digest, '') "
                    "FROM invoice_lines WHERE invoice_id = ? ORDER BY line_no",
                    &st, e, SQ_TEXT(id), SQ_END))
        return false;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        struct invoice_line *l = line_add(inv, col_text(st, 0));
        snprintf(l->description, sizeof l->description, "%s", col_text(st, 1));
        l->plan_version_id = sqlite3_column_int64(st, 2);
        snprintf(l->ref, sizeof l->ref, "%s", col_text(st, 3));
        l->start_at = sqlite3_column_int64(st, 4);
        l->end_at = sqlite3_column_int64(st, 5);
        l->quantity = sqlite3_column_int64(st, 6);
        l->included_quantity = sqlite3_column_int64(st, 7);
        snprintf(l->unit, sizeof l->unit, "%s", col_text(st, 8));
        l->unit_price_micros = sqlite3_column_int64(st, 9);
        l->amount_micros = sqlite3_column_int64(st, 10);
        l->ledger_rows = sqlite3_column_int64(st, 11);
        snprintf(l->digest, sizeof l->digest, "%s", col_text(st, 12));
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        invoice_free(inv);
        return sq_fail(db, "reading invoice lines", e);
    }
    *found = true;
    return true;
}

static bool stored_late_seq(sqlite3 *db, const char *id, int64_t *late_seq, bool *found,
                            struct err *e)
{
    return sq_int(db, "SELECT late_seq FROM invoices WHERE id = ?", late_seq, found, e,
                  SQ_TEXT(id), SQ_END);
}

/* Lines first, then the header: the header's trigger checks that every
 * line is there, and after it no line can be added (migration 0003). */
static bool stored_insert(sqlite3 *db, const struct invoice *inv, const char *actor,
                          struct err *e)
{
    for (int i = 0; i < inv->n_lines; i++) {
        const struct invoice_line *l = &inv->lines[i];
        if (!sq_exec(db,
                     "INSERT INTO invoice_lines (invoice_id, line_no, type, description, "
                     "plan_version_id, ref, start_at, end_at, quantity, included_quantity, unit, "
                     "unit_price_micros, amount_micros, ledger_rows, digest) VALUES (?, ?, ?, ?, ?, "
                     "?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                     NULL, e, SQ_TEXT(inv->id), SQ_INT(i + 1), SQ_TEXT(l->type),
                     SQ_TEXT(l->description), SQ_INT_OR_NULL(l->plan_version_id),
                     SQ_TEXT(l->ref[0] ? l->ref : NULL), SQ_INT(l->start_at), SQ_INT(l->end_at),
                     SQ_INT(l->quantity), SQ_INT(l->included_quantity), SQ_TEXT(l->unit),
                     SQ_INT(l->unit_price_micros), SQ_INT(l->amount_micros),
                     l->ledger_rows >= 0 ? SQ_INT(l->ledger_rows) : SQ_NULL,
                     SQ_TEXT(l->ledger_rows >= 0 ? l->digest : NULL), SQ_END))
            return false;
    }
    return sq_exec(db,
                   "INSERT INTO invoices (id, number, customer_id, subscription_id, plan_id, "
                   "period, period_start, period_end, service_start, service_end, currency, "
                   "total_micros, line_count, late_seq, finalized_at, finalized_by) VALUES (?, ?, ?, "
                   "?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                   NULL, e, SQ_TEXT(inv->id), SQ_INT(inv->number), SQ_TEXT(inv->customer_id),
                   SQ_TEXT(inv->subscription_id), SQ_TEXT(inv->plan_id), SQ_TEXT(inv->period),
                   SQ_INT(inv->period_start), SQ_INT(inv->period_end), SQ_INT(inv->service_start),
                   SQ_INT(inv->service_end), SQ_TEXT(inv->currency), SQ_INT(inv->total_micros),
                   SQ_INT(inv->n_lines), SQ_INT(inv->late_seq), SQ_INT(inv->finalized_at),
                   SQ_TEXT(actor), SQ_END);
}

/* ---- collecting service windows ----------------------------------------------------- */

struct pending {
    int tl;                     /* index into wlist.tls */
    struct window w;
};

struct wlist {
    struct timeline *tls;
    int n_tl, cap_tl;
    struct pending *p;
    int n, cap;
    int64_t from, to;           /* keep windows whose last instant is in [from, to) */
};

static void wlist_free(struct wlist *l)
{
    for (int i = 0; i < l->n_tl; i++)
        timeline_free(&l->tls[i]);
    free(l->tls);
    free(l->p);
    memset(l, 0, sizeof *l);
}

static bool wlist_cb(const struct timeline *tl, const struct window *w, void *arg, struct err *e)
{
    (void)e;
    struct wlist *l = arg;
    if (w->we - 1 < l->from || w->we - 1 >= l->to)
        return true;
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 16;
        struct pending *np = realloc(l->p, (size_t)l->cap * sizeof *np);
        if (!np)
            abort();
        l->p = np;
    }
    l->p[l->n++] = (struct pending){(int)(tl - l->tls), *w};
    return true;
}

static int pending_cmp(const void *a, const void *b, void *arg)
{
    const struct wlist *l = arg;
    const struct pending *x = a, *y = b;
    int c = strcmp(l->tls[x->tl].customer_id, l->tls[y->tl].customer_id);
    if (c)
        return c;
    return x->w.ws < y->w.ws ? -1 : x->w.ws > y->w.ws;
}

/* The windows ending in [from, to) and begun before `horizon` of the
 * subscriptions that can have one (of `customer_id`, or everyone's),
 * ordered by customer then start. */
static bool wlist_collect(sqlite3 *db, const char *customer_id, int64_t from, int64_t to,
                          int64_t horizon, struct wlist *l, struct err *e)
{
    memset(l, 0, sizeof *l);
    l->from = from;
    l->to = to;
    sqlite3_stmt *st;
    if (!sq_prepare(db,
                    "SELECT id FROM subscriptions WHERE created_at < ?2 AND (canceled_at IS NULL "
                    "OR canceled_at > ?1) AND (?3 IS NULL OR customer_id = ?3) "
                    "ORDER BY customer_id, created_at, id",
                    &st, e, SQ_INT(from), SQ_INT(to), SQ_TEXT(customer_id), SQ_END))
        return false;
    int rc = SQLITE_DONE;
    bool ok = true;
    while (ok && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (l->n_tl == l->cap_tl) {
            l->cap_tl = l->cap_tl ? l->cap_tl * 2 : 16;
            struct timeline *nt = realloc(l->tls, (size_t)l->cap_tl * sizeof *nt);
            if (!nt)
                abort();
            l->tls = nt;
        }
        ok = timeline_load(db, (const char *)sqlite3_column_text(st, 0), &l->tls[l->n_tl], e);
        if (ok)
            l->n_tl++;
    }
    sqlite3_finalize(st);
    if (ok && rc != SQLITE_DONE)
        ok = sq_fail(db, "reading subscriptions", e);
    for (int i = 0; ok && i < l->n_tl; i++)
        ok = timeline_windows(&l->tls[i], horizon, wlist_cb, l, e);
    if (!ok) {
        wlist_free(l);
        return false;
    }
    if (l->n > 1)
        qsort_r(l->p, (size_t)l->n, sizeof *l->p, pending_cmp, l);
    return true;
}

struct latest {
    int64_t before;
    int64_t ws;
    char sub[RANDID_MAX];
};

static bool latest_cb(const struct timeline *tl, const struct window *w, void *arg, struct err *e)
{
    (void)e;
    struct latest *x = arg;
    if (w->ws < x->before && (!x->sub[0] || w->ws > x->ws)) {
        x->ws = w->ws;
        snprintf(x->sub, sizeof x->sub, "%s", tl->id);
    }
    return true;
}

/* The late_seq of the customer's invoice just before the window starting
 * at ws (its windows never overlap); -1 when there is none or it is still
 * a draft. */
static bool predecessor_late(sqlite3 *db, const char *customer_id, int64_t ws, int64_t *out,
                             struct err *e)
{
    *out = -1;
    struct wlist l;
    if (!wlist_collect(db, customer_id, INT64_MIN, INT64_MAX, ws, &l, e))
        return false;
    struct latest x = {.before = ws};
    for (int i = 0; i < l.n; i++)
        latest_cb(&l.tls[l.p[i].tl], &l.p[i].w, &x, e);
    wlist_free(&l);
    if (!x.sub[0])
        return true;
    char id[INVOICE_ID_MAX];
    invoice_id(x.sub, x.ws, id);
    bool found = false;
    if (!stored_late_seq(db, id, out, &found, e))
        return false;
    if (!found)
        *out = -1;
    return true;
}

/* The invoice of a window: as stored when finalized, else a draft now. */
static bool window_invoice(sqlite3 *db, const struct timeline *tl, const struct window *w,
                           struct invoice *inv, struct err *e)
{
    char id[INVOICE_ID_MAX];
    invoice_id(tl->id, w->ws, id);
    bool found = false;
    if (!stored_load(db, id, inv, &found, e))
        return false;
    if (found)
        return true;
    int64_t prev;
    return predecessor_late(db, tl->customer_id, w->ws, &prev, e) &&
           invoice_compute(db, tl, w, NO_BOUND, NO_BOUND, prev, inv, e);
}

static bool invoices_of(sqlite3 *db, struct wlist *l, struct invoice **out, int *n,
                        struct err *e)
{
    *out = calloc((size_t)(l->n ? l->n : 1), sizeof **out);
    if (!*out)
        abort();
    *n = 0;
    for (int i = 0; i < l->n; i++) {
        if (!window_invoice(db, &l->tls[l->p[i].tl], &l->p[i].w, &(*out)[i], e)) {
            invoices_free(*out, i);
            *out = NULL;
            return false;
        }
        *n = i + 1;
    }
    return true;
}

bool invoices_for_period(sqlite3 *db, const char *period, const char *customer_id, int64_t now,
                         struct invoice **out, int *n, struct err *e)
{
    *out = NULL;
    *n = 0;
    int64_t from, to;
    struct wlist l;
    if (!invoices_period_parse(period, &from, &to, e) ||
        !wlist_collect(db, customer_id, from, to, now < to ? now : to, &l, e))
        return false;
    bool ok = invoices_of(db, &l, out, n, e);
    wlist_free(&l);
    return ok;
}

bool invoices_for_customer(sqlite3 *db, const char *customer_id, int64_t now,
                           struct invoice **out, int *n, struct err *e)
{
    *out = NULL;
    *n = 0;
    struct wlist l;
    if (!wlist_collect(db, customer_id, INT64_MIN, INT64_MAX, now, &l, e))
        return false;
    bool ok = invoices_of(db, &l, out, n, e);
    wlist_free(&l);
    return ok;
}

bool invoices_get(sqlite3 *db, const char *id, const char *customer_id, int64_t now,
                  struct invoice *out, struct err *e)
{
    memset(out, 0, sizeof *out);
    bool found = false;
    if (!id || strlen(id) != INVOICE_ID_MAX - 1 || strncmp(id, "in_", 3) != 0)
        return err_set_param(e, ERR_NOT_FOUND, "id", "no invoice '%s'", id ? id : "");
    if (!stored_load(db, id, out, &found, e))
        return false;
    if (found) {
        if (!customer_id || strcmp(out->customer_id, customer_id) == 0)
            return true;
        invoice_free(out);
        return err_set_param(e, ERR_NOT_FOUND, "id", "no invoice '%s'", id);
    }
    /* A draft: its id is a hash, so look among the windows begun so far. */
    struct wlist l;
    if (!wlist_collect(db, customer_id, INT64_MIN, INT64_MAX, now, &l, e))
        return false;
    bool ok = true;
    for (int i = 0; i < l.n && !found; i++) {
        char wid[INVOICE_ID_MAX];
        invoice_id(l.tls[l.p[i].tl].id, l.p[i].w.ws, wid);
        if (strcmp(wid, id) == 0) {
            found = true;
            ok = window_invoice(db, &l.tls[l.p[i].tl], &l.p[i].w, out, e);
        }
    }
    wlist_free(&l);
    if (ok && !found)
        return err_set_param(e, ERR_NOT_FOUND, "id", "no invoice '%s'", id);
    return ok;
}

/* ---- close --------------------------------------------------------------------------- */

static bool period_closed(sqlite3 *db, const char *period, bool *closed, struct err *e)
{
    int64_t dummy;
    return sq_int(db, "SELECT 1 FROM invoice_periods WHERE period = ?", &dummy, closed, e,
                  SQ_TEXT(period), SQ_END);
}

/* Months close in order, so that a customer's invoices are finalized in
 * the order of their windows (adjustments rely on it). */
static bool earlier_months_closed(sqlite3 *db, int64_t from, struct err *e)
{
    int64_t first = 0;
    bool any = false;
    if (!sq_int(db, "SELECT min(created_at) FROM subscriptions", &first, &any, e, SQ_END))
        return false;
    if (!any)
        return true;
    struct caltime_date d = caltime_date_of(first);
    for (int64_t m = caltime_ms_from_date((struct caltime_date){d.year, d.month, 1}); m < from;) {
        char p[INVOICE_PERIOD_MAX];
        invoices_period_of(m, p);
        bool closed = false;
        if (!period_closed(db, p, &closed, e))
            return false;
        if (!closed)
            return err_set_param(e, ERR_CONFLICT, "period",
                                 "period %s is still open: months close in order, close %s first",
                                 p, p);
        int64_t s, next;
        invoices_period_parse(p, &s, &next, NULL);
        m = next;
    }
    return true;
}

static void totals_add(cJSON *totals, const char *currency, int64_t amount)
{
    cJSON *t;
    cJSON_ArrayForEach(t, totals) {
        if (strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(t, "currency")), currency) == 0) {
            cJSON *v = cJSON_GetObjectItem(t, "total_micros");
            cJSON_SetNumberValue(v, v->valuedouble + (double)amount);
            return;
        }
    }
    t = cJSON_CreateObject();
    cJSON_AddStringToObject(t, "currency", currency);
    cJSON_AddNumberToObject(t, "total_micros", (double)amount);
    cJSON_AddItemToArray(totals, t);
}

static void totals_text(cJSON *totals)
{
    cJSON *t;
    cJSON_ArrayForEach(t, totals) {
        char buf[32];
        const char *cur = cJSON_GetStringValue(cJSON_GetObjectItem(t, "currency"));
        invoices_amount_text((int64_t)cJSON_GetObjectItem(t, "total_micros")->valuedouble, cur, buf,
                             sizeof buf);
        cJSON_AddStringToObject(t, "total", buf);
    }
}

bool invoices_close(sqlite3 *db, const char *actor, const char *period, int64_t now,
                    int64_t grace_ms, cJSON **summary, struct err *e)
{
    *summary = NULL;
    int64_t from, to;
    bool closed = false;
    if (!invoices_period_parse(period, &from, &to, e) || !period_closed(db, period, &closed, e))
        return false;
    if (closed)
        return err_set_param(e, ERR_CONFLICT, "period", "period %s is already closed", period);
    if (to + grace_ms > now) {
        char when[40];
        fmt_time(to + grace_ms, when, sizeof when);
        return err_set_param(e, ERR_CONFLICT, "period",
                             "period %s can be closed from %s (the month's end plus the invoice "
                             "grace of %lld h): usage may still be arriving",
                             period, when, (long long)(grace_ms / 3600000));
    }
    if (!earlier_months_closed(db, from, e))
        return false;
    struct wlist l;
    if (!wlist_collect(db, NULL, from, to, to, &l, e))
        return false;
    int64_t number = 0, late_seq = 0;
    bool ok = sq_int(db, "SELECT coalesce(max(number), 0) FROM invoices", &number, NULL, e,
                     SQ_END) &&
              sq_int(db, "SELECT coalesce(max(seq), 0) FROM late_usage", &late_seq, NULL, e,
                     SQ_END);
    int64_t first = number + 1;
    cJSON *totals = cJSON_CreateArray(), *consumed = cJSON_CreateArray();
    for (int i = 0; ok && i < l.n; i++) {
        const struct timeline *tl = &l.tls[l.p[i].tl];
        const struct window *w = &l.p[i].w;
        struct invoice inv;
        int64_t prev;
        number++;
        ok = predecessor_late(db, tl->customer_id, w->ws, &prev, e) &&
             invoice_compute(db, tl, w, number, late_seq, prev, &inv, e);
        if (!ok)
            break;
        inv.number = number;
        inv.late_seq = late_seq;
        inv.finalized_at = now;
        ok = stored_insert(db, &inv, actor, e);
        for (int k = 0; ok && k < inv.n_lines; k++) {
            const struct invoice_line *ln = &inv.lines[k];
            if (strcmp(ln->type, "credit_tokens") != 0 && strcmp(ln->type, "credit_amount") != 0)
                continue;
            ok = sq_exec(db, "UPDATE credits SET remaining = remaining - ? WHERE id = ?", NULL, e,
                         SQ_INT(ln->quantity), SQ_TEXT(ln->ref), SQ_END);
            cJSON *c = cJSON_CreateObject();
            cJSON_AddStringToObject(c, "credit_id", ln->ref);
            cJSON_AddStringToObject(c, "invoice_id", inv.id);
            cJSON_AddStringToObject(c, "unit", strcmp(ln->type, "credit_tokens") == 0 ? "tokens"
                                                                                    : "micros");
            cJSON_AddNumberToObject(c, "amount", (double)ln->quantity);
            cJSON_AddItemToArray(consumed, c);
        }
        totals_add(totals, inv.currency, inv.total_micros);
        invoice_free(&inv);
    }
    wlist_free(&l);
    int count = (int)(number - first + 1);
    ok = ok && sq_exec(db,
                       "INSERT INTO invoice_periods (period, closed_at, closed_by, invoices, "
                       "first_number, last_number) VALUES (?, ?, ?, ?, ?, ?)",
                       NULL, e, SQ_TEXT(period), SQ_INT(now), SQ_TEXT(actor), SQ_INT(count),
                       count ? SQ_INT(first) : SQ_NULL, count ? SQ_INT(number) : SQ_NULL, SQ_END);
    if (!ok) {
        cJSON_Delete(totals);
        cJSON_Delete(consumed);
        return false;
    }
    totals_text(totals);
    cJSON *s = cJSON_CreateObject();
    cJSON_AddStringToObject(s, "object", "invoice_period");
    cJSON_AddStringToObject(s, "period", period);
    cJSON_AddNumberToObject(s, "closed_at", (double)now);
    cJSON_AddStringToObject(s, "closed_by", actor);
    cJSON_AddNumberToObject(s, "invoices", count);
    if (count) {
        cJSON_AddNumberToObject(s, "first_number", (double)first);
        cJSON_AddNumberToObject(s, "last_number", (double)number);
    } else {
        cJSON_AddNullToObject(s, "first_number");
        cJSON_AddNullToObject(s, "last_number");
    }
    cJSON_AddItemToObject(s, "totals", totals);
    cJSON_AddItemToObject(s, "credits_consumed", consumed);
    char *text = cJSON_PrintUnformatted(s);
    char target[32];
    snprintf(target, sizeof target, "period:%s", period);
    ok = text && audit_append(db, actor, "invoices.close", target, NULL, text, now, e);
    free(text);
    if (!ok) {
        cJSON_Delete(s);
        return e->code != ERR_OK || err_set(e, ERR_NOMEM, "out of memory");
    }
    *summary = s;
    return true;
}

bool invoices_periods_list(sqlite3 *db, cJSON **out, struct err *e)
{
    cJSON *data = cJSON_CreateArray();
    if (!sq_json_rows(db,
                      "SELECT json_object('object', 'invoice_period', 'period', period, "
                      "'closed_at', closed_at, 'closed_by', closed_by, 'invoices', invoices, "
                      "'first_number', first_number, 'last_number', last_number) "
                      "FROM invoice_periods ORDER BY period",
                      data, NULL, e, SQ_END)) {
        cJSON_Delete(data);
        return false;
    }
    *out = cJSON_CreateObject();
    cJSON_AddStringToObject(*out, "object", "list");
    cJSON_AddItemToObject(*out, "data", data);
    return true;
}

/* ---- reconcile ------------------------------------------------------------------------ */

static void diff_add(cJSON *diffs, const struct invoice *inv, int line_no, const char *field,
                     cJSON *stored, cJSON *recomputed)
{
    cJSON *d = cJSON_CreateObject();
    cJSON_AddStringToObject(d, "invoice_id", inv->id);
    if (inv->number)
        cJSON_AddNumberToObject(d, "number", (double)inv->number);
    else
        cJSON_AddNullToObject(d, "number");
    cJSON_AddStringToObject(d, "customer_id", inv->customer_id);
    if (line_no)
        cJSON_AddNumberToObject(d, "line_no", line_no);
    else
        cJSON_AddNullToObject(d, "line_no");
    cJSON_AddStringToObject(d, "field", field);
    cJSON_AddItemToObject(d, "stored", stored ? stored : cJSON_CreateNull());
    cJSON_AddItemToObject(d, "recomputed", recomputed ? recomputed : cJSON_CreateNull());
    cJSON_AddItemToArray(diffs, d);
}

#define CMP_INT(inv, line_no, field, a, b)                                                      \
    do {                                                                                       \
        if ((a) != (b))                                                                        \
            diff_add(diffs, inv, line_no, field, cJSON_CreateNumber((double)(a)),              \
                     cJSON_CreateNumber((double)(b)));                                         \
    } while (0)
#define CMP_STR(inv, line_no, field, a, b)                                                      \
    do {                                                                                       \
        if (strcmp((a), (b)) != 0)                                                             \
            diff_add(diffs, inv, line_no, field, cJSON_CreateString(a), cJSON_CreateString(b)); \
    } while (0)

static void compare(const struct invoice *s, const struct invoice *r, cJSON *diffs)
{
    CMP_STR(s, 0, "customer_id", s->customer_id, r->customer_id);
    CMP_STR(s, 0, "plan_id", s->plan_id, r->plan_id);
    CMP_STR(s, 0, "period", s->period, r->period);
    CMP_STR(s, 0, "currency", s->currency, r->currency);
    CMP_INT(s, 0, "period_start", s->period_start, r->period_start);
    CMP_INT(s, 0, "period_end", s->period_end, r->period_end);
    CMP_INT(s, 0, "service_end", s->service_end, r->service_end);
    CMP_INT(s, 0, "total_micros", s->total_micros, r->total_micros);
    int64_t sum = 0;
    for (int i = 0; i < s->n_lines; i++)
        sum += s->lines[i].amount_micros;
    if (sum != s->total_micros)
        diff_add(diffs, s, 0, "total_micros (sum of the stored lines)",
                 cJSON_CreateNumber((double)s->total_micros), cJSON_CreateNumber((double)sum));
    CMP_INT(s, 0, "line_count", s->n_lines, r->n_lines);
    int n = s->n_lines < r->n_lines ? s->n_lines : r->n_lines;
    for (int i = 0; i < n; i++) {
        const struct invoice_line *a = &s->lines[i], *b = &r->lines[i];
        int no = i + 1;
        CMP_STR(s, no, "type", a->type, b->type);
        CMP_INT(s, no, "plan_version_id", a->plan_version_id, b->plan_version_id);
        CMP_STR(s, no, "ref", a->ref, b->ref);
        CMP_INT(s, no, "start_at", a->start_at, b->start_at);
        CMP_INT(s, no, "end_at", a->end_at, b->end_at);
        CMP_INT(s, no, "quantity", a->quantity, b->quantity);
        CMP_INT(s, no, "included_quantity", a->included_quantity, b->included_quantity);
        CMP_STR(s, no, "unit", a->unit, b->unit);
        CMP_INT(s, no, "unit_price_micros", a->unit_price_micros, b->unit_price_micros);
        CMP_INT(s, no, "amount_micros", a->amount_micros, b->amount_micros);
        CMP_INT(s, no, "ledger_rows", a->ledger_rows, b->ledger_rows);
        CMP_STR(s, no, "digest", a->digest, b->digest);
    }
}

bool invoices_reconcile(sqlite3 *db, const char *period, int64_t now, cJSON **report,
                        int *n_differences, struct err *e)
{
    *report = NULL;
    *n_differences = 0;
    int64_t from, to;
    bool closed = false;
    struct wlist l;
    if (!invoices_period_parse(period, &from, &to, e) || !period_closed(db, period, &closed, e) ||
        !wlist_collect(db, NULL, from, to, now < to ? now : to, &l, e))
        return false;
    cJSON *diffs = cJSON_CreateArray();
    int checked = 0, drafts = 0;
    bool ok = true;
    /* Each window of the month: its stored invoice recomputed exactly as it
     * was when finalized. */
    for (int i = 0; ok && i < l.n; i++) {
        const struct timeline *tl = &l.tls[l.p[i].tl];
        const struct window *w = &l.p[i].w;
        char id[INVOICE_ID_MAX];
        invoice_id(tl->id, w->ws, id);
        struct invoice stored, again;
        bool found = false;
        if (!stored_load(db, id, &stored, &found, e)) {
            ok = false;
            break;
        }
        if (!found) {
            drafts++;
            if (closed) {
                struct invoice ghost = {0};
                snprintf(ghost.id, sizeof ghost.id, "%s", id);
                snprintf(ghost.customer_id, sizeof ghost.customer_id, "%s", tl->customer_id);
                diff_add(diffs, &ghost, 0, "invoice", NULL,
                         cJSON_CreateString("a billing period of the closed month has no "
                                            "finalized invoice"));
            }
            continue;
        }
        checked++;
        int64_t prev;
        ok = predecessor_late(db, tl->customer_id, w->ws, &prev, e) &&
             invoice_compute(db, tl, w, stored.number, stored.late_seq, prev, &again, e);
        if (ok) {
            compare(&stored, &again, diffs);
            invoice_free(&again);
        }
        invoice_free(&stored);
    }
    wlist_free(&l);
    /* Stored invoices of the month that no billing period explains. */
    sqlite3_stmt *st = NULL;
    int64_t stored_count = 0;
    ok = ok && sq_int(db, "SELECT count(*) FROM invoices WHERE period = ?", &stored_count, NULL,
                      e, SQ_TEXT(period), SQ_END);
    if (ok && stored_count != checked) {
        ok = sq_prepare(db, "SELECT " HEADER_COLUMNS " FROM invoices WHERE period = ? ORDER BY number",
                        &st, e, SQ_TEXT(period), SQ_END);
        int rc;
        while (ok && (rc = sqlite3_step(st)) == SQLITE_ROW) {
            struct invoice h;
            header_from_row(st, &h);
            bool seen = false;
            struct timeline tl;
            struct window w;
            struct err ignored = {0};
            if (timeline_load(db, h.subscription_id, &tl, &ignored)) {
                seen = window_find(&tl, h.service_start, &w, &ignored) && w.we - 1 >= from &&
                       w.we - 1 < to;
                timeline_free(&tl);
            }
            if (!seen)
                diff_add(diffs, &h, 0, "invoice", cJSON_CreateString(h.id),
                         cJSON_CreateString("no billing period of its subscription matches"));
        }
        if (st)
            sqlite3_finalize(st);
    }
    /* Credits: what is left must be what was granted minus every line that
     * consumed it. */
    ok = ok && sq_prepare(db,
                          "SELECT c.id, c.remaining, c.amount - coalesce((SELECT sum(x.quantity) "
                          "FROM invoice_lines x WHERE x.ref = c.id AND x.type IN "
                          "('credit_tokens', 'credit_amount')), 0) FROM credits c WHERE c.id IN "
                          "(SELECT l.ref FROM invoice_lines l JOIN invoices i ON i.id = "
                          "l.invoice_id WHERE i.period = ? AND l.ref LIKE 'cred_%')",
                          &st, e, SQ_TEXT(period), SQ_END);
    if (ok) {
        int rc;
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
            int64_t have = sqlite3_column_int64(st, 1), should = sqlite3_column_int64(st, 2);
            if (have != should) {
                struct invoice c = {0};
                snprintf(c.id, sizeof c.id, "-");
                snprintf(c.customer_id, sizeof c.customer_id, "-");
                char field[80];
                snprintf(field, sizeof field, "credit %s remaining", col_text(st, 0));
                diff_add(diffs, &c, 0, field, cJSON_CreateNumber((double)have),
                         cJSON_CreateNumber((double)should));
            }
        }
        sqlite3_finalize(st);
        if (rc != SQLITE_DONE)
            ok = sq_fail(db, "reading credits", e);
    }
    /* Late rows not yet on any finalized invoice: billed on a draft to come. */
    int64_t pending = 0;
    ok = ok && sq_int(db,
                      "SELECT count(*) FROM late_usage l JOIN invoices j ON j.id = l.invoice_id "
                      "WHERE j.period = ? AND NOT EXISTS (SELECT 1 FROM invoices k WHERE "
                      "k.customer_id = l.customer_id AND k.late_seq >= l.seq)",
                      &pending, NULL, e, SQ_TEXT(period), SQ_END);
    if (!ok) {
        cJSON_Delete(diffs);
        return false;
    }
    *n_differences = cJSON_GetArraySize(diffs);
    cJSON *r = cJSON_CreateObject();
    cJSON_AddStringToObject(r, "object", "reconciliation");
    cJSON_AddStringToObject(r, "period", period);
    cJSON_AddBoolToObject(r, "closed", closed);
    cJSON_AddNumberToObject(r, "invoices", checked);
    cJSON_AddNumberToObject(r, "drafts", drafts);
    cJSON_AddNumberToObject(r, "pending_late_rows", (double)pending);
    cJSON_AddItemToObject(r, "differences", diffs);
    *report = r;
    return true;
}

/* ---- a subscription at an instant ------------------------------------------------------ */

bool invoices_subscription_at(sqlite3 *db, const char *subscription_id, int64_t t,
                              struct invoice_sub_state *out, struct err *e)
{
    memset(out, 0, sizeof *out);
    struct timeline tl;
    if (!timeline_load(db, subscription_id, &tl, e))
        return false;
    out->created_at = tl.created_at;
    out->ended_at = tl.end == OPEN_END ? 0 : tl.end;
    out->live = tl.created_at <= t && t < tl.end;
    out->trialing = out->live && tl.trial_end > t;
    snprintf(out->plan_id, sizeof out->plan_id, "%s", stretch_at(&tl, t)->plan_id);
    timeline_free(&tl);
    return true;
}

/* ---- rendering ------------------------------------------------------------------------- */

static void add_int_or_null(cJSON *o, const char *name, bool present, int64_t v)
{
    if (present)
        cJSON_AddNumberToObject(o, name, (double)v);
    else
        cJSON_AddNullToObject(o, name);
}

static void add_str_or_null(cJSON *o, const char *name, const char *v)
{
    if (v && *v)
        cJSON_AddStringToObject(o, name, v);
    else
        cJSON_AddNullToObject(o, name);
}

cJSON *invoices_json(const struct invoice *inv, bool with_lines)
{
    char buf[32];
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "object", "invoice");
    cJSON_AddStringToObject(o, "id", inv->id);
    add_int_or_null(o, "number", inv->number != 0, inv->number);
    cJSON_AddStringToObject(o, "status", inv->number ? "finalized" : "draft");
    cJSON_AddStringToObject(o, "customer_id", inv->customer_id);
    cJSON_AddStringToObject(o, "subscription_id", inv->subscription_id);
    cJSON_AddStringToObject(o, "plan_id", inv->plan_id);
    cJSON_AddStringToObject(o, "period", inv->period);
    cJSON_AddNumberToObject(o, "period_start", (double)inv->period_start);
    cJSON_AddNumberToObject(o, "period_end", (double)inv->period_end);
    cJSON_AddNumberToObject(o, "service_start", (double)inv->service_start);
    cJSON_AddNumberToObject(o, "service_end", (double)inv->service_end);
    cJSON_AddStringToObject(o, "currency", inv->currency);
    cJSON_AddNumberToObject(o, "total_micros", (double)inv->total_micros);
    invoices_amount_text(inv->total_micros, inv->currency, buf, sizeof buf);
    cJSON_AddStringToObject(o, "total", buf);
    add_int_or_null(o, "finalized_at", inv->finalized_at != 0, inv->finalized_at);
    cJSON_AddNumberToObject(o, "line_count", inv->n_lines);
    if (!with_lines)
        return o;
    cJSON *lines = cJSON_AddArrayToObject(o, "lines");
    for (int i = 0; i < inv->n_lines; i++) {
        const struct invoice_line *l = &inv->lines[i];
        cJSON *j = cJSON_CreateObject();
        cJSON_AddNumberToObject(j, "line_no", i + 1);
        cJSON_AddStringToObject(j, "type", l->type);
        cJSON_AddStringToObject(j, "description", l->description);
        add_int_or_null(j, "plan_version_id", l->plan_version_id != 0, l->plan_version_id);
        add_str_or_null(j, "ref", l->ref);
        cJSON_AddNumberToObject(j, "start_at", (double)l->start_at);
        cJSON_AddNumberToObject(j, "end_at", (double)l->end_at);
        cJSON_AddNumberToObject(j, "quantity", (double)l->quantity);
        cJSON_AddNumberToObject(j, "included_quantity", (double)l->included_quantity);
        cJSON_AddStringToObject(j, "unit", l->unit);
        cJSON_AddNumberToObject(j, "unit_price_micros", (double)l->unit_price_micros);
        cJSON_AddNumberToObject(j, "amount_micros", (double)l->amount_micros);
        invoices_amount_text(l->amount_micros, inv->currency, buf, sizeof buf);
        cJSON_AddStringToObject(j, "amount", buf);
        add_int_or_null(j, "ledger_rows", l->ledger_rows >= 0, l->ledger_rows);
        add_str_or_null(j, "digest", l->digest);
        cJSON_AddItemToArray(lines, j);
    }
    return o;
}


/* A CSV field: quoted, with quotes doubled, when it needs to be. */
static void csv_field(struct textbuf *t, const char *s)
{
    if (!strpbrk(s, ",\"\r\n")) {
        textbuf_printf(t, "%s", s);
        return;
    }
    textbuf_printf(t, "\"");
    for (const char *p = s; *p; p++)
        textbuf_printf(t, *p == '"' ? "\"\"" : "%c", *p);
    textbuf_printf(t, "\"");
}

char *invoices_lines_csv(const struct invoice *inv, size_t *len)
{
    struct textbuf t = {0};
    textbuf_printf(&t, "invoice_id,line_no,type,description,plan_version_id,ref,start_at,end_at,"
                 "quantity,included_quantity,unit,unit_price_micros,amount_micros,amount,"
                 "currency,ledger_rows,digest\r\n");
    for (int i = 0; i < inv->n_lines; i++) {
        const struct invoice_line *l = &inv->lines[i];
        char amount[32], pv[24] = "", rows[24] = "";
        invoices_amount_text(l->amount_micros, inv->currency, amount, sizeof amount);
        if (l->plan_version_id)
            snprintf(pv, sizeof pv, "%lld", (long long)l->plan_version_id);
        if (l->ledger_rows >= 0)
            snprintf(rows, sizeof rows, "%lld", (long long)l->ledger_rows);
        textbuf_printf(&t, "%s,%d,%s,", inv->id, i + 1, l->type);
        csv_field(&t, l->description);
        textbuf_printf(&t, ",%s,%s,%lld,%lld,%lld,%lld,%s,%lld,%lld,%s,%s,%s,%s\r\n", pv, l->ref,
                 (long long)l->start_at, (long long)l->end_at, (long long)l->quantity,
                 (long long)l->included_quantity, l->unit, (long long)l->unit_price_micros,
                 (long long)l->amount_micros, amount, inv->currency, rows, l->digest);
    }
    *len = t.len;
    return t.p;
}

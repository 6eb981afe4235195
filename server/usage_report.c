/* usage_report.c — see usage_report.h. */
#include "server/usage_report.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/caltime.h"
#include "server/plans.h"
#include "server/sq.h"

#define HOUR_MS 3600000LL

bool usage_report_parse_bucket(const char *s, enum usage_bucket *out, struct err *e)
{
    if (!s || strcmp(s, "1d") == 0)
        *out = USAGE_BUCKET_DAY;
    else if (strcmp(s, "1h") == 0)
        *out = USAGE_BUCKET_HOUR;
    else if (strcmp(s, "1mo") == 0)
        *out = USAGE_BUCKET_MONTH;
    else
        return err_set_param(e, ERR_INVALID, "bucket_width", "bucket_width must be 1h, 1d or 1mo");
    return true;
}

bool usage_report_parse_group_by(const char *s, unsigned *out, struct err *e)
{
    static const struct { const char *name; unsigned bit; } names[] = {
        {"customer_id", USAGE_GROUP_CUSTOMER}, {"api_key_id", USAGE_GROUP_KEY},
        {"model", USAGE_GROUP_MODEL}, {"plan", USAGE_GROUP_PLAN}};
    *out = 0;
    for (const char *p = s ? s : ""; *p;) {
        p += strspn(p, ", ");
        size_t len = strcspn(p, ", ");
        if (!len)
            break;
        bool known = false;
        for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
            if (strlen(names[i].name) == len && strncmp(p, names[i].name, len) == 0) {
                *out |= names[i].bit;
                known = true;
            }
        }
        if (!known)
            return err_set_param(e, ERR_INVALID, "group_by",
                                 "group_by may list customer_id, api_key_id, model and plan");
        p += len;
    }
    return true;
}

int64_t usage_report_bucket_floor(enum usage_bucket b, int64_t t)
{
    switch (b) {
    case USAGE_BUCKET_HOUR:
        return t - ((t % HOUR_MS) + HOUR_MS) % HOUR_MS;
    case USAGE_BUCKET_DAY:
        return caltime_day_of(t) * CALTIME_DAY_MS;
    case USAGE_BUCKET_MONTH:
        break;
    }
    struct caltime_date d = caltime_date_of(t);
    return caltime_ms_from_date((struct caltime_date){d.year, d.month, 1});
}

int64_t usage_report_bucket_next(enum usage_bucket b, int64_t t)
{
    int64_t start = usage_report_bucket_floor(b, t);
    switch (b) {
    case USAGE_BUCKET_HOUR:
        return start + HOUR_MS;
    case USAGE_BUCKET_DAY:
        return start + CALTIME_DAY_MS;
    case USAGE_BUCKET_MONTH:
        break;
    }
    struct caltime_date d = caltime_date_of(start);
    return caltime_ms_from_date(d.month == 12 ? (struct caltime_date){d.year + 1, 1, 1}
                                              : (struct caltime_date){d.year, d.month + 1, 1});
}

/* One group of the current bucket. */
struct entry {
    char customer[RANDID_MAX], key[RANDID_MAX], model[64], plan[PLAN_ID_MAX];
    uint64_t hash;
    struct usage_report_row row;
};

struct plan_name {
    int64_t version_id;
    char plan_id[PLAN_ID_MAX];
};

struct usage_report {
    sqlite3_stmt *st;
    struct usage_report_query q;
    struct plan_name *plans;
    int n_plans;
    bool have_row;                 /* st holds a row not yet counted */
    bool exhausted;
    /* The current bucket's groups: entries[0..n) and an open-addressing
     * index into them. Reused bucket after bucket, so memory stays at the
     * largest bucket's. */
    struct entry *entries;
    int n, cap;
    int32_t *index;
    size_t index_size;             /* a power of two, >= 2 * cap */
    struct usage_report_row *out;  /* sorted copies handed to the caller */
    int out_cap;
};

static int plan_cmp(const void *a, const void *b)
{
    const struct plan_name *x = a, *y = b;
    return x->version_id < y->version_id ? -1 : x->version_id > y->version_id;
}

static const char *plan_of(const struct usage_report *r, int64_t version_id)
{
    struct plan_name key = {.version_id = version_id};
    const struct plan_name *p = bsearch(&key, r->plans, (size_t)r->n_plans, sizeof *r->plans,
                                        plan_cmp);
    return p ? p->plan_id : "";
}

static bool load_plans(sqlite3 *db, struct usage_report *r, struct err *e)
{
    sqlite3_stmt *st;
    if (!sq_prepare(db, "SELECT id, plan_id FROM plan_versions ORDER BY id", &st, e, SQ_END))
        return false;
    int rc, cap = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (r->n_plans == cap) {
            cap = cap ? cap * 2 : 16;
            struct plan_name *np = realloc(r->plans, (size_t)cap * sizeof *np);
            if (!np)
                abort();
            r->plans = np;
        }
        r->plans[r->n_plans].version_id = sqlite3_column_int64(st, 0);
        snprintf(r->plans[r->n_plans].plan_id, PLAN_ID_MAX, "%s",
                 (const char *)sqlite3_column_text(st, 1));
        r->n_plans++;
    }
    sqlite3_finalize(st);
    return rc == SQLITE_DONE || sq_fail(db, "reading plans", e);
}

bool usage_report_open(sqlite3 *db, const struct usage_report_query *q, struct usage_report **out,
                       struct err *e)
{
    *out = NULL;
    if (q->end <= q->start)
        return err_set_param(e, ERR_INVALID, "end_time", "end_time must be after start_time");
    struct usage_report *r = calloc(1, sizeof *r);
    if (!r)
        abort();
    r->q = *q;
    const char *by_customer =
        "SELECT started_at, customer_id, api_key_id, model, plan_version_id, prompt_tokens, "
        "completion_tokens, client_aborted, compute_ms FROM usage_ledger "
        "WHERE customer_id = ?3 AND started_at >= ?1 AND started_at < ?2 ORDER BY started_at";
    const char *all =
        "SELECT started_at, customer_id, api_key_id, model, plan_version_id, prompt_tokens, "
        "completion_tokens, client_aborted, compute_ms FROM usage_ledger "
        "WHERE started_at >= ?1 AND started_at < ?2 ORDER BY started_at";
    bool ok = load_plans(db, r, e);
    if (ok && q->customer_id[0])
        ok = sq_prepare(db, by_customer, &r->st, e, SQ_INT(q->start), SQ_INT(q->end),
                        SQ_TEXT(q->customer_id), SQ_END);
    else if (ok)
        ok = sq_prepare(db, all, &r->st, e, SQ_INT(q->start), SQ_INT(q->end), SQ_END);
    if (!ok) {
        free(r->plans);
        free(r);
        return false;
    }
    *out = r;
    return true;
}

void usage_report_close(struct usage_report *r)
{
    if (!r)
        return;
    sqlite3_finalize(r->st);
    free(r->plans);
    free(r->entries);
    free(r->index);
    free(r->out);
    free(r);
}

static uint64_t fnv(uint64_t h, const char *s)
{
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return (h ^ 0xff) * 1099511628211ULL; /* field separator */
}

static void index_reset(struct usage_report *r, size_t size)
{
    free(r->index);
    r->index = malloc(size * sizeof *r->index);
    if (!r->index)
        abort();
    memset(r->index, 0xff, size * sizeof *r->index); /* -1: empty */
    r->index_size = size;
    for (int i = 0; i < r->n; i++) {
        size_t k = r->entries[i].hash & (size - 1);
        while (r->index[k] >= 0)
            k = (k + 1) & (size - 1);
        r->index[k] = i;
    }
}

/* The entry of this row's group, created on first use. */
static struct entry *entry_for(struct usage_report *r, const char *customer, const char *key,
                               const char *model, const char *plan)
{
    unsigned g = r->q.group_by;
    const char *c = g & USAGE_GROUP_CUSTOMER ? customer : "";
    const char *k = g & USAGE_GROUP_KEY ? key : "";
    const char *m = g & USAGE_GROUP_MODEL ? model : "";
    const char *p = g & USAGE_GROUP_PLAN ? plan : "";
    uint64_t h = fnv(fnv(fnv(fnv(1469598103934665603ULL, c), k), m), p);
    if (r->index_size == 0)
        index_reset(r, 64);
    size_t i = h & (r->index_size - 1);
    for (; r->index[i] >= 0; i = (i + 1) & (r->index_size - 1)) {
        struct entry *x = &r->entries[r->index[i]];
        if (x->hash == h && strcmp(x->customer, c) == 0 && strcmp(x->key, k) == 0 &&
            strcmp(x->model, m) == 0 && strcmp(x->plan, p) == 0)
            return x;
    }
    if (r->n == r->cap) {
        r->cap = r->cap ? r->cap * 2 : 32;
        struct entry *ne = realloc(r->entries, (size_t)r->cap * sizeof *ne);
        if (!ne)
            abort();
        r->entries = ne;
    }
    struct entry *x = &r->entries[r->n];
    memset(x, 0, sizeof *x);
    snprintf(x->customer, sizeof x->customer, "%s", c);
    snprintf(x->key, sizeof x->key, "%s", k);
    snprintf(x->model, sizeof x->model, "%s", m);
    snprintf(x->plan, sizeof x->plan, "%s", p);
    x->hash = h;
    r->index[i] = r->n++;
    if ((size_t)r->n * 2 > r->index_size)
        index_reset(r, r->index_size * 2);
    return x;
}

static int row_cmp(const void *a, const void *b)
{
    const struct usage_report_row *x = a, *y = b;
    const char *xs[4] = {x->customer_id, x->api_key_id, x->model, x->plan_id};
    const char *ys[4] = {y->customer_id, y->api_key_id, y->model, y->plan_id};
    for (int i = 0; i < 4; i++) {
        int c = strcmp(xs[i] ? xs[i] : "", ys[i] ? ys[i] : "");
        if (c)
            return c;
    }
    return 0;
}

bool usage_report_next(struct usage_report *r, const struct usage_report_row **rows, int *n,
                       bool *done, struct err *e)
{
    *rows = NULL;
    *n = 0;
    *done = false;
    if (!r->have_row && !r->exhausted) {
        int rc = sqlite3_step(r->st);
        if (rc == SQLITE_ROW)
            r->have_row = true;
        else if (rc == SQLITE_DONE)
            r->exhausted = true;
        else
            return sq_fail(sqlite3_db_handle(r->st), "reading the usage ledger", e);
    }
    if (!r->have_row) {
        *done = true;
        return true;
    }
    /* The bucket of the row in hand, clipped to the query. */
    int64_t t = sqlite3_column_int64(r->st, 0);
    int64_t bs = usage_report_bucket_floor(r->q.bucket, t);
    int64_t be = usage_report_bucket_next(r->q.bucket, t);
    if (bs < r->q.start)
        bs = r->q.start;
    if (be > r->q.end)
        be = r->q.end;
    r->n = 0;
    if (r->index)
        memset(r->index, 0xff, r->index_size * sizeof *r->index);
    unsigned g = r->q.group_by;
    while (r->have_row && sqlite3_column_int64(r->st, 0) < be) {
        sqlite3_stmt *st = r->st;
        struct entry *x = entry_for(r, (const char *)sqlite3_column_text(st, 1),
                                    (const char *)sqlite3_column_text(st, 2),
                                    (const char *)sqlite3_column_text(st, 3),
                                    plan_of(r, sqlite3_column_int64(st, 4)));
        x->row.requests++;
        x->row.input_tokens += sqlite3_column_int64(st, 5);
        x->row.output_tokens += sqlite3_column_int64(st, 6);
        x->row.aborted_requests += sqlite3_column_int64(st, 7) != 0;
        x->row.compute_ms += sqlite3_column_int64(st, 8);
        int rc = sqlite3_step(st);
        if (rc == SQLITE_DONE) {
            r->have_row = false;
            r->exhausted = true;
        } else if (rc != SQLITE_ROW) {
            r->have_row = false;
            return sq_fail(sqlite3_db_handle(st), "reading the usage ledger", e);
        }
    }
    if (r->out_cap < r->n) {
        r->out_cap = r->cap;
        free(r->out);
        r->out = malloc((size_t)r->out_cap * sizeof *r->out);
        if (!r->out)
            abort();
    }
    for (int i = 0; i < r->n; i++) {
        struct entry *x = &r->entries[i];
        struct usage_report_row *o = &r->out[i];
        *o = x->row;
        o->bucket_start = bs;
        o->bucket_end = be;
        o->customer_id = g & USAGE_GROUP_CUSTOMER ? x->customer : NULL;
        o->api_key_id = g & USAGE_GROUP_KEY ? x->key : NULL;
        o->model = g & USAGE_GROUP_MODEL ? x->model : NULL;
        o->plan_id = g & USAGE_GROUP_PLAN ? x->plan : NULL;
    }
    if (r->n > 1)
        qsort(r->out, (size_t)r->n, sizeof *r->out, row_cmp);
    *rows = r->out;
    *n = r->n;
    return true;
}

/* "2031-03-01T00:00:00Z", with milliseconds only when there are some. */
static void iso(int64_t ms, char *buf, size_t size)
{
    caltime_format(ms, buf, size);
    size_t n = strlen(buf);
    if (n >= 5 && strcmp(buf + n - 5, ".000Z") == 0)
        snprintf(buf + n - 5, size - (n - 5), "Z");
}

size_t usage_report_csv_header(char *buf, size_t size)
{
    int n = snprintf(buf, size, "bucket_start,bucket_end,customer_id,api_key_id,model,plan,"
                                "requests,input_tokens,output_tokens,aborted_requests,"
                                "compute_seconds\r\n");
    return n < 0 ? 0 : (size_t)n;
}

/* Ids, model names and plan ids never hold a comma or a quote (their
 * formats forbid it), but a model name is the operator's choice: quote
 * anything unusual rather than trust it. */
static void csv_text(const char *s, char *out, size_t size)
{
    if (!s) {
        out[0] = '\0';
        return;
    }
    if (!strpbrk(s, ",\"\r\n")) {
        snprintf(out, size, "%s", s);
        return;
    }
    size_t j = 0;
    out[j++] = '"';
    for (; *s && j + 3 < size; s++) {
        if (*s == '"')
            out[j++] = '"';
        out[j++] = *s;
    }
    out[j++] = '"';
    out[j] = '\0';
}

size_t usage_report_csv_row(const struct usage_report_row *row, char *buf, size_t size)
{
    char bs[40], be[40], c[RANDID_MAX * 2], k[RANDID_MAX * 2], m[140], p[PLAN_ID_MAX * 2];
    iso(row->bucket_start, bs, sizeof bs);
    iso(row->bucket_end, be, sizeof be);
    csv_text(row->customer_id, c, sizeof c);
    csv_text(row->api_key_id, k, sizeof k);
    csv_text(row->model, m, sizeof m);
    csv_text(row->plan_id, p, sizeof p);
    int n = snprintf(buf, size, "%s,%s,%s,%s,%s,%s,%lld,%lld,%lld,%lld,%lld.%03lld\r\n", bs, be, c,
                     k, m, p, (long long)row->requests, (long long)row->input_tokens,
                     (long long)row->output_tokens, (long long)row->aborted_requests,
                     (long long)(row->compute_ms / 1000), (long long)(row->compute_ms % 1000));
    return n < 0 ? 0 : (size_t)n >= size ? size - 1 : (size_t)n;
}

static void reserve(char **buf, size_t *cap, size_t need)
{
    if (*cap >= need)
        return;
    size_t c = *cap ? *cap : 65536;
    while (c < need)
        c *= 2;
    char *nb = realloc(*buf, c);
    if (!nb)
        abort();
    *buf = nb;
    *cap = c;
}

bool usage_report_csv_fill(struct usage_report *r, char **buf, size_t *len, size_t *cap,
                           size_t min_bytes, bool *done, struct err *e)
{
    *done = false;
    while (*len < min_bytes) {
        const struct usage_report_row *rows;
        int n;
        if (!usage_report_next(r, &rows, &n, done, e))
            return false;
        if (*done)
            return true;
        for (int i = 0; i < n; i++) {
            reserve(buf, cap, *len + USAGE_REPORT_CSV_LINE_MAX);
            *len += usage_report_csv_row(&rows[i], *buf + *len, USAGE_REPORT_CSV_LINE_MAX);
        }
    }
    return true;
}

static cJSON *result_json(const struct usage_report_row *row)
{
    cJSON *r = cJSON_CreateObject();
    cJSON_AddStringToObject(r, "object", "organization.usage.completions.result");
    cJSON_AddNumberToObject(r, "input_tokens", (double)row->input_tokens);
    cJSON_AddNumberToObject(r, "output_tokens", (double)row->output_tokens);
    cJSON_AddNumberToObject(r, "input_cached_tokens", 0);
    cJSON_AddNumberToObject(r, "input_audio_tokens", 0);
    cJSON_AddNumberToObject(r, "output_audio_tokens", 0);
    cJSON_AddNumberToObject(r, "num_model_requests", (double)row->requests);
    cJSON_AddNullToObject(r, "project_id");
    cJSON_AddNullToObject(r, "user_id");
    const char *names[4] = {"api_key_id", "model", "customer_id", "plan"};
    const char *vals[4] = {row->api_key_id, row->model, row->customer_id, row->plan_id};
    for (int i = 0; i < 4; i++) {
        if (vals[i])
            cJSON_AddStringToObject(r, names[i], vals[i]);
        else
            cJSON_AddNullToObject(r, names[i]);
        if (i == 1)
            cJSON_AddNullToObject(r, "batch");
    }
    cJSON_AddNumberToObject(r, "num_aborted_requests", (double)row->aborted_requests);
    cJSON_AddNumberToObject(r, "compute_seconds", (double)row->compute_ms / 1000.0);
    return r;
}

bool usage_report_json(sqlite3 *db, const struct usage_report_query *q, cJSON **out,
                       struct err *e)
{
    *out = NULL;
    struct usage_report *cur = NULL;
    if (!usage_report_open(db, q, &cur, e))
        return false;
    cJSON *data = cJSON_CreateArray();
    const struct usage_report_row *rows = NULL;
    int n = 0;
    bool done = false;
    bool ok = usage_report_next(cur, &rows, &n, &done, e);
    /* Every bucket of the range; the cursor's (only those with usage, with
     * the same edges, in order) fill theirs. */
    for (int64_t b = q->start; ok && b < q->end;) {
        int64_t be = usage_report_bucket_next(q->bucket, b);
        if (be > q->end)
            be = q->end;
        cJSON *bucket = cJSON_CreateObject();
        cJSON_AddStringToObject(bucket, "object", "bucket");
        cJSON_AddNumberToObject(bucket, "start_time", (double)(b / 1000));
        cJSON_AddNumberToObject(bucket, "end_time", (double)(be / 1000));
        cJSON *results = cJSON_AddArrayToObject(bucket, "results");
        cJSON_AddItemToArray(data, bucket);
        if (!done && rows[0].bucket_start == b) {
            for (int i = 0; i < n; i++)
                cJSON_AddItemToArray(results, result_json(&rows[i]));
            ok = usage_report_next(cur, &rows, &n, &done, e);
        }
        b = be;
    }
    usage_report_close(cur);
    if (!ok) {
        cJSON_Delete(data);
        return false;
    }
    *out = data;
    return true;
}

/*
 * usage_report.h — the usage ledger summed by time bucket and group, for
 * finance: GET /admin/v1/usage (JSON pages, or CSV streamed) and
 * `maasd report usage`.
 *
 * Figures per bucket and group: requests, input (prompt) tokens, output
 * (completion) tokens, requests the client aborted, compute time. A row
 * belongs to the bucket containing its started_at (the admission
 * instant, which also decides its billing period).
 *
 * Buckets are aligned to UTC: hours, days at 00:00, calendar months
 * (1mo). They are half-open, and the first and last are clipped to the
 * query's [start, end). Groups: any of customer_id, api_key_id, model,
 * plan (the plan of the version the row was billed at).
 *
 * Memory stays flat however many rows a range holds: a cursor walks the
 * ledger in started_at order (index usage_ledger_by_started, or the
 * per-customer index) and keeps only the current bucket's groups, whose
 * number depends on how many customers, keys and models there are, never
 * on how many requests.
 *
 * Contract: the cursor uses the caller's connection, which must stay open
 *   and unused by anyone else until usage_report_close(); one thread at a
 *   time (it may move between threads between calls). Rows returned by
 *   usage_report_next() are valid until the next call.
 */
#ifndef MAASD_USAGE_REPORT_H
#define MAASD_USAGE_REPORT_H

#include <cJSON.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/err.h"
#include "server/randid.h"

enum usage_bucket { USAGE_BUCKET_HOUR, USAGE_BUCKET_DAY, USAGE_BUCKET_MONTH };

#define USAGE_GROUP_CUSTOMER (1u << 0)
#define USAGE_GROUP_KEY (1u << 1)
#define USAGE_GROUP_MODEL (1u << 2)
#define USAGE_GROUP_PLAN (1u << 3)

struct usage_report_query {
    int64_t start, end;                /* ms, half-open */
    enum usage_bucket bucket;
    unsigned group_by;                 /* USAGE_GROUP_* */
    char customer_id[RANDID_MAX];      /* "" for every customer */
};

struct usage_report_row {
    int64_t bucket_start, bucket_end;  /* ms, clipped to the query */
    const char *customer_id, *api_key_id, *model, *plan_id; /* NULL when not grouped by it */
    int64_t requests, input_tokens, output_tokens, aborted_requests, compute_ms;
};

/* "1h", "1d", "1mo"; "customer_id,api_key_id,model,plan" (any, commas). */
bool usage_report_parse_bucket(const char *s, enum usage_bucket *out, struct err *e);
bool usage_report_parse_group_by(const char *s, unsigned *out, struct err *e);
/* Where the bucket containing t starts, and where the next one does. */
int64_t usage_report_bucket_floor(enum usage_bucket b, int64_t t);
int64_t usage_report_bucket_next(enum usage_bucket b, int64_t t);

struct usage_report;

bool usage_report_open(sqlite3 *db, const struct usage_report_query *q, struct usage_report **out,
                       struct err *e);
/* The next bucket that has usage: its rows sorted by group (customer,
 * key, model, plan). *done when the range is exhausted (then *n is 0). */
bool usage_report_next(struct usage_report *r, const struct usage_report_row **rows, int *n,
                       bool *done, struct err *e);
void usage_report_close(struct usage_report *r);

/* The range as the "data" of OpenAI's usage page: every bucket (empty
 * ones too) as {"object": "bucket", "start_time", "end_time" (unix
 * seconds), "results": [...]}, each result an
 * "organization.usage.completions.result" plus customer_id, plan,
 * num_aborted_requests and compute_seconds. */
bool usage_report_json(sqlite3 *db, const struct usage_report_query *q, cJSON **data,
                       struct err *e);

/* CSV: the header line, and one line per row ("\r\n" ended), into buf;
 * each returns the length written (buf >= USAGE_REPORT_CSV_LINE_MAX). */
#define USAGE_REPORT_CSV_LINE_MAX 512
size_t usage_report_csv_header(char *buf, size_t size);
size_t usage_report_csv_row(const struct usage_report_row *row, char *buf, size_t size);

/* Append CSV lines (after the header when `header`) to *buf (malloc'ed,
 * grown as needed) until at least `min_bytes` are there or the report is
 * done (*done). The streaming producer of the HTTP and CLI exports. */
bool usage_report_csv_fill(struct usage_report *r, char **buf, size_t *len, size_t *cap,
                           size_t min_bytes, bool *done, struct err *e);

#endif

/*
 * metrics.h — Prometheus metrics: a small registry, and the daemon's
 * metric families with one hook function per event.
 *
 * The registry (metrics_registry_*, metrics_family_*)
 *   Families are counters, gauges or histograms with fixed buckets, each
 *   with up to METRICS_MAX_LABELS label names fixed at registration. A
 *   series (one set of label values) is created on first use. Label sets
 *   are bounded by construction: callers pass only values from bounded
 *   sets (route patterns from the route table, status codes, configured
 *   model ids, plan ids, fixed reason words), never customer or key ids;
 *   as a backstop a family holds at most METRICS_MAX_SERIES series, and a
 *   new label set beyond that is folded into one series whose every label
 *   is "_other" (so a bug cannot grow memory without bound).
 *   Rendering is the Prometheus text exposition format 0.0.4.
 *
 * The daemon's families (struct metrics, metrics_*)
 *   metrics_create() registers every family the daemon exports (the list
 *   is in docs/operators.md, "Metrics"). Hooks elsewhere in the code are
 *   one call each (metrics_http_done, metrics_tokens, ...); each accepts
 *   m == NULL and then does nothing, so code under unit test needs no
 *   registry. Values that already live elsewhere (scheduler, writer,
 *   database file, /proc/self) are copied in at scrape time by the
 *   metrics_collect_* functions, called from the /metrics handler.
 *
 * Threads: every function may be called from any thread; the registry
 *   has one mutex, held for a few pointer and string comparisons per
 *   update (most updates come from the loop thread).
 * Memory: the registry owns its families and series; metrics_destroy()
 *   frees everything. metrics_render() returns a malloc'ed text the
 *   caller frees.
 */
#ifndef MAASD_METRICS_H
#define MAASD_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/err.h"
#include "engine/scheduler.h"
#include "server/writer.h"

#define METRICS_MAX_LABELS 3
#define METRICS_MAX_BUCKETS 24
#define METRICS_MAX_SERIES 512
#define METRICS_MAX_FAMILIES 64

enum metric_type { METRIC_COUNTER, METRIC_GAUGE, METRIC_HISTOGRAM };

struct metrics_registry;
struct metric_family;

struct metrics_registry *metrics_registry_new(void);
void metrics_registry_free(struct metrics_registry *r);

/* `labels` is a comma-separated list of label names ("route,method,code")
 * or NULL; `bounds` (histograms) are the buckets' upper bounds, ascending,
 * +Inf implied. NULL when the name, labels or bounds are invalid or the
 * registry is full (a programming error: the families are fixed). */
struct metric_family *metrics_family_add(struct metrics_registry *r, enum metric_type type,
                                         const char *name, const char *help, const char *labels,
                                         const double *bounds, int n_bounds);
/* `lv` holds one value per label name (ignored for families without
 * labels). Counters only grow: a negative add is ignored. */
void metrics_family_add_value(struct metric_family *f, const char *const *lv, double v);
/* Gauges, and counters copied from a monotonic source elsewhere. */
void metrics_family_set(struct metric_family *f, const char *const *lv, double v);
void metrics_family_observe(struct metric_family *f, const char *const *lv, double v);
/* A histogram kept elsewhere: per-bucket (not cumulative) counts, one per
 * bound plus the +Inf bucket, and the sum of observations. */
void metrics_family_set_histogram(struct metric_family *f, const char *const *lv,
                                  const uint64_t *counts, double sum);
/* The whole registry as exposition text (malloc'ed). */
char *metrics_registry_render(struct metrics_registry *r, size_t *len);

/* ---- the daemon's metrics ------------------------------------------------------ */

struct metrics {
    struct metrics_registry *reg;
    struct metric_family *build_info;
    struct metric_family *http_requests, *http_duration, *http_in_flight;
    struct metric_family *prompt_tokens, *completion_tokens, *ttft, *itl;
    struct metric_family *rejections;
    struct metric_family *ledger_write, *ledger_backlog, *ledger_jobs, *ledger_commit;
    struct metric_family *queue_depth, *running, *batch_seqs, *batch_tokens, *kv_used, *kv_total;
    struct metric_family *step_budget, *step_target;
    struct metric_family *steps, *preemptions;
    struct metric_family *db_bytes;
    struct metric_family *cpu, *rss, *vms, *fds, *max_fds, *start_time;
    struct metric_family *backups, *backup_last_success, *backup_duration;
    struct metric_family *tls_reloads, *tls_not_after;
};

bool metrics_create(const char *version, const char *commit, struct metrics **out,
                    struct err *e);
void metrics_destroy(struct metrics *m);
char *metrics_render(struct metrics *m, size_t *len);

/* Hooks (any thread; m may be NULL). */
/* A finished HTTP request: `route` is the matched route pattern (NULL when
 * none matched), `method` the route's method, `status` what was sent
 * (499 when the client left first). */
void metrics_http_done(struct metrics *m, const char *method, const char *route,
                       unsigned status, double seconds);
void metrics_tokens(struct metrics *m, const char *model, const char *plan, int64_t prompt,
                    int64_t completion);
void metrics_first_token(struct metrics *m, const char *model, double seconds);
/* A generated token arrived: observes the gap since *last_ns (when set)
 * and stores now in it; keep one last_ns per generated sequence. */
void metrics_token_gap(struct metrics *m, const char *model, uint64_t *last_ns);
/* A request refused before it reached the engine (admission or a full
 * queue); `code` is the refusal's error code, reported as a reason word. */
void metrics_rejected(struct metrics *m, const char *plan, enum err_code code);
/* Time from handing a ledger row to the writer to its commit. */
void metrics_ledger_write(struct metrics *m, double seconds);
void metrics_backup_done(struct metrics *m, bool ok, double seconds, int64_t at_ms);
/* A certificate load (start-up or SIGHUP): not_after in unix seconds. */
void metrics_tls_loaded(struct metrics *m, bool ok, int64_t not_after);

/* Scrape-time collection. */
void metrics_collect_sched(struct metrics *m, const char *model, const struct sched_stats *st);
void metrics_collect_writer(struct metrics *m, const struct writer_stats *st);
void metrics_collect_http(struct metrics *m, unsigned in_flight);
void metrics_collect_db(struct metrics *m, const char *db_path);
void metrics_collect_process(struct metrics *m);

/* Monotonic nanoseconds (the clock of metrics_token_gap). */
uint64_t metrics_now_ns(void);

#endif

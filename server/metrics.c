/* metrics.c — see metrics.h. */
#include "server/metrics.h"

#include <ctype.h>
#include <dirent.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

struct metric_series {
    uint64_t hash;
    char *lv[METRICS_MAX_LABELS];
    double value;
    uint64_t *counts;        /* histograms: n_bounds + 1, per bucket */
    double sum;
};

struct metric_family {
    struct metrics_registry *reg;
    enum metric_type type;
    char name[96];
    char help[256];
    int n_labels;
    char label_names[METRICS_MAX_LABELS][32];
    double bounds[METRICS_MAX_BUCKETS];
    int n_bounds;
    struct metric_series *series;
    int n_series, cap_series;
};

struct metrics_registry {
    pthread_mutex_t lock;
    struct metric_family *fam[METRICS_MAX_FAMILIES];
    int n_fam;
};

/* ---- the registry --------------------------------------------------------------- */

struct metrics_registry *metrics_registry_new(void)
{
    struct metrics_registry *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    pthread_mutex_init(&r->lock, NULL);
    return r;
}

void metrics_registry_free(struct metrics_registry *r)
{
    if (!r)
        return;
    for (int i = 0; i < r->n_fam; i++) {
        struct metric_family *f = r->fam[i];
        for (int s = 0; s < f->n_series; s++) {
            for (int k = 0; k < f->n_labels; k++)
                free(f->series[s].lv[k]);
            free(f->series[s].counts);
        }
        free(f->series);
        free(f);
    }
    pthread_mutex_destroy(&r->lock);
    free(r);
}

/* [a-zA-Z_:][a-zA-Z0-9_:]* (labels: no colon, no leading "__"). */
static bool valid_name(const char *s, bool label)
{
    if (!*s || isdigit((unsigned char)*s) || (label && strncmp(s, "__", 2) == 0))
        return false;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && *s != '_' && (label || *s != ':'))
            return false;
    return true;
}

struct metric_family *metrics_family_add(struct metrics_registry *r, enum metric_type type,
                                         const char *name, const char *help, const char *labels,
                                         const double *bounds, int n_bounds)
{
    if (!r || r->n_fam >= METRICS_MAX_FAMILIES || !valid_name(name, false) ||
        strlen(name) >= sizeof r->fam[0]->name || n_bounds < 0 || n_bounds > METRICS_MAX_BUCKETS ||
        (type == METRIC_HISTOGRAM) != (n_bounds > 0))
        return NULL;
    struct metric_family *f = calloc(1, sizeof *f);
    if (!f)
        return NULL;
    f->reg = r;
    f->type = type;
    snprintf(f->name, sizeof f->name, "%s", name);
    snprintf(f->help, sizeof f->help, "%s", help);
    for (const char *p = labels; p && *p;) {
        const char *comma = strchr(p, ',');
        size_t n = comma ? (size_t)(comma - p) : strlen(p);
        if (f->n_labels == METRICS_MAX_LABELS || n == 0 || n >= sizeof f->label_names[0])
            goto bad;
        memcpy(f->label_names[f->n_labels], p, n);
        f->label_names[f->n_labels][n] = '\0';
        if (!valid_name(f->label_names[f->n_labels], true) ||
            strcmp(f->label_names[f->n_labels], "le") == 0)
            goto bad;
        f->n_labels++;
        p = comma ? comma + 1 : p + n;
    }
    for (int i = 0; i < n_bounds; i++) {
        if (!isfinite(bounds[i]) || (i > 0 && bounds[i] <= bounds[i - 1]))
            goto bad;
        f->bounds[i] = bounds[i];
    }
    f->n_bounds = n_bounds;
    pthread_mutex_lock(&r->lock);
    r->fam[r->n_fam++] = f;
    pthread_mutex_unlock(&r->lock);
    return f;
bad:
    free(f);
    return NULL;
}

static uint64_t labels_hash(const struct metric_family *f, const char *const *lv)
{
    uint64_t h = 1469598103934665603ULL;
    for (int k = 0; k < f->n_labels; k++) {
        for (const unsigned char *p = (const unsigned char *)(lv[k] ? lv[k] : ""); *p; p++)
            h = (h ^ *p) * 1099511628211ULL;
        h = (h ^ 0xff) * 1099511628211ULL; /* separator: ("ab","c") != ("a","bc") */
    }
    return h;
}

static bool labels_equal(const struct metric_family *f, const struct metric_series *s,
                         const char *const *lv)
{
    for (int k = 0; k < f->n_labels; k++)
        if (strcmp(s->lv[k], lv[k] ? lv[k] : "") != 0)
            return false;
    return true;
}

static struct metric_series *series_new(struct metric_family *f, const char *const *lv,
                                        uint64_t h)
{
    if (f->n_series == f->cap_series) {
        int cap = f->cap_series ? f->cap_series * 2 : 8;
        struct metric_series *ns = realloc(f->series, (size_t)cap * sizeof *ns);
        if (!ns)
            return NULL;
        f->series = ns;
        f->cap_series = cap;
    }
    struct metric_series *s = &f->series[f->n_series];
    memset(s, 0, sizeof *s);
    s->hash = h;
    for (int k = 0; k < f->n_labels; k++) {
        s->lv[k] = strdup(lv[k] ? lv[k] : "");
        if (!s->lv[k])
            abort();
    }
    if (f->type == METRIC_HISTOGRAM) {
        s->counts = calloc((size_t)f->n_bounds + 1, sizeof *s->counts);
        if (!s->counts)
            abort();
    }
    f->n_series++;
    return s;
}

/* Under the registry lock. */
static struct metric_series *series_get(struct metric_family *f, const char *const *lv)
{
    static const char *const other[METRICS_MAX_LABELS] = {"_other", "_other", "_other"};
    uint64_t h = labels_hash(f, lv);
    for (int i = 0; i < f->n_series; i++)
        if (f->series[i].hash == h && labels_equal(f, &f->series[i], lv))
            return &f->series[i];
    if (f->n_series >= METRICS_MAX_SERIES - 1) {
        /* The backstop (see metrics.h): one shared overflow series. */
        uint64_t oh = labels_hash(f, other);
        for (int i = 0; i < f->n_series; i++)
            if (f->series[i].hash == oh && labels_equal(f, &f->series[i], other))
                return &f->series[i];
        return series_new(f, other, oh);
    }
    return series_new(f, lv, h);
}

void metrics_family_add_value(struct metric_family *f, const char *const *lv, double v)
{
    if (!f || f->type == METRIC_HISTOGRAM || (f->type == METRIC_COUNTER && !(v >= 0)))
        return;
    pthread_mutex_lock(&f->reg->lock);
    struct metric_series *s = series_get(f, lv);
    if (s)
        s->value += v;
    pthread_mutex_unlock(&f->reg->lock);
}

void metrics_family_set(struct metric_family *f, const char *const *lv, double v)
{
    if (!f || f->type == METRIC_HISTOGRAM)
        return;
    pthread_mutex_lock(&f->reg->lock);
    struct metric_series *s = series_get(f, lv);
    if (s)
        s->value = v;
    pthread_mutex_unlock(&f->reg->lock);
}

void metrics_family_observe(struct metric_family *f, const char *const *lv, double v)
{
    if (!f || f->type != METRIC_HISTOGRAM || isnan(v))
        return;
    int b = 0;
    while (b < f->n_bounds && v > f->bounds[b])
        b++;
    pthread_mutex_lock(&f->reg->lock);
    struct metric_series *s = series_get(f, lv);
    if (s) {
        s->counts[b]++;
        s->sum += v;
    }
    pthread_mutex_unlock(&f->reg->lock);
}

void metrics_family_set_histogram(struct metric_family *f, const char *const *lv,
                                  const uint64_t *counts, double sum)
{
    if (!f || f->type != METRIC_HISTOGRAM)
        return;
    pthread_mutex_lock(&f->reg->lock);
    struct metric_series *s = series_get(f, lv);
    if (s) {
        memcpy(s->counts, counts, ((size_t)f->n_bounds + 1) * sizeof *counts);
        s->sum = sum;
    }
    pthread_mutex_unlock(&f->reg->lock);
}

/* ---- rendering ------------------------------------------------------------------- */

struct sbuf {
    char *p;
    size_t len, cap;
};

static void sb_reserve(struct sbuf *b, size_t more)
{
    if (b->len + more + 1 <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + more + 1)
        cap *= 2;
    char *np = realloc(b->p, cap);
    if (!np)
        abort();
    b->p = np;
    b->cap = cap;
}

static void sb_printf(struct sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(struct sbuf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    sb_reserve(b, (size_t)n);
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

/* Escapes of the text format: \\ and \n everywhere, \" in label values. */
static void sb_escaped(struct sbuf *b, const char *s, bool quotes)
{
    for (; *s; s++) {
        if (*s == '\\')
            sb_printf(b, "\\\\");
        else if (*s == '\n')
            sb_printf(b, "\\n");
        else if (*s == '"' && quotes)
            sb_printf(b, "\\\"");
        else
            sb_printf(b, "%c", *s);
    }
}

static void sb_number(struct sbuf *b, double v)
{
    if (isnan(v))
        sb_printf(b, "NaN");
    else if (isinf(v))
        sb_printf(b, v > 0 ? "+Inf" : "-Inf");
    else if (v == floor(v) && fabs(v) < 9007199254740992.0)
        sb_printf(b, "%.0f", v);
    else {
        /* The shortest text that reads back as the same double: 0.005,
         * not 0.0050000000000000001. */
        char t[40];
        for (int prec = 1; prec <= 17; prec++) {
            snprintf(t, sizeof t, "%.*g", prec, v);
            if (strtod(t, NULL) == v)
                break;
        }
        sb_printf(b, "%s", t);
    }
}

/* name{a="x",b="y"[,le="..."]} */
static void sb_series_name(struct sbuf *b, const struct metric_family *f, const char *suffix,
                           const struct metric_series *s, const char *le)
{
    sb_printf(b, "%s%s", f->name, suffix);
    if (f->n_labels == 0 && !le)
        return;
    sb_printf(b, "{");
    for (int k = 0; k < f->n_labels; k++) {
        sb_printf(b, "%s%s=\"", k ? "," : "", f->label_names[k]);
        sb_escaped(b, s ? s->lv[k] : "", true);
        sb_printf(b, "\"");
    }
    if (le)
        sb_printf(b, "%sle=\"%s\"", f->n_labels ? "," : "", le);
    sb_printf(b, "}");
}

static void render_family(struct sbuf *b, const struct metric_family *f)
{
    static const char *const types[] = {"counter", "gauge", "histogram"};
    sb_printf(b, "# HELP %s ", f->name);
    sb_escaped(b, f->help, false);
    sb_printf(b, "\n# TYPE %s %s\n", f->name, types[f->type]);
    if (f->n_series == 0 && f->n_labels == 0 && f->type != METRIC_HISTOGRAM) {
        /* An unlabelled counter or gauge exists from the start. */
        sb_printf(b, "%s 0\n", f->name);
        return;
    }
    for (int i = 0; i < f->n_series; i++) {
        const struct metric_series *s = &f->series[i];
        if (f->type != METRIC_HISTOGRAM) {
            sb_series_name(b, f, "", s, NULL);
            sb_printf(b, " ");
            sb_number(b, s->value);
            sb_printf(b, "\n");
            continue;
        }
        uint64_t cum = 0;
        for (int k = 0; k <= f->n_bounds; k++) {
            cum += s->counts[k];
            char le[40];
            if (k == f->n_bounds) {
                snprintf(le, sizeof le, "+Inf");
            } else {
                struct sbuf t = {0};
                sb_number(&t, f->bounds[k]);
                snprintf(le, sizeof le, "%s", t.p);
                free(t.p);
            }
            sb_series_name(b, f, "_bucket", s, le);
            sb_printf(b, " %llu\n", (unsigned long long)cum);
        }
        sb_series_name(b, f, "_sum", s, NULL);
        sb_printf(b, " ");
        sb_number(b, s->sum);
        sb_printf(b, "\n");
        sb_series_name(b, f, "_count", s, NULL);
        sb_printf(b, " %llu\n", (unsigned long long)cum);
    }
}

char *metrics_registry_render(struct metrics_registry *r, size_t *len)
{
    struct sbuf b = {0};
    sb_reserve(&b, 0);
    pthread_mutex_lock(&r->lock);
    for (int i = 0; i < r->n_fam; i++)
        render_family(&b, r->fam[i]);
    pthread_mutex_unlock(&r->lock);
    b.p[b.len] = '\0';
    if (len)
        *len = b.len;
    return b.p;
}

/* ---- the daemon's families ----------------------------------------------------------- */

/* Seconds, from a millisecond to ten minutes: request latencies. */
static const double latency_bounds[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1,
                                        2.5, 5, 10, 30, 60, 120, 300, 600};
/* Per-token gaps are short. */
static const double itl_bounds[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                    0.25, 0.5, 1, 2.5, 5};
/* Powers of two, as the scheduler counts them (SCHED_HIST_BUCKETS). */
static const double pow2_bounds[SCHED_HIST_BUCKETS - 1] = {1, 2, 4, 8, 16, 32, 64, 128,
                                                           256, 512, 1024};
static const double commit_bounds[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                       0.1, 0.25, 0.5, 1, 2.5, 5};

#define NB(a) (int)(sizeof(a) / sizeof((a)[0]))

bool metrics_create(const char *version, const char *commit, struct metrics **out,
                    struct err *e)
{
    struct metrics *m = calloc(1, sizeof *m);
    if (!m || !(m->reg = metrics_registry_new())) {
        free(m);
        return err_set(e, ERR_NOMEM, "out of memory for the metrics registry");
    }
    struct metrics_registry *r = m->reg;
#define C(field, name, help, labels) \
    m->field = metrics_family_add(r, METRIC_COUNTER, name, help, labels, NULL, 0)
#define G(field, name, help, labels) \
    m->field = metrics_family_add(r, METRIC_GAUGE, name, help, labels, NULL, 0)
#define H(field, name, help, labels, b) \
    m->field = metrics_family_add(r, METRIC_HISTOGRAM, name, help, labels, b, NB(b))
    G(build_info, "maasd_build_info", "Always 1; the labels name the running build.",
      "version,commit");
    C(http_requests, "maasd_http_requests_total",
      "HTTP requests finished, by route pattern, method and status code (499: the client left "
      "first).", "route,method,code");
    H(http_duration, "maasd_http_request_duration_seconds",
      "Time from a request's headers to the end of its response.", "route,method",
      latency_bounds);
    G(http_in_flight, "maasd_http_requests_in_flight", "HTTP requests received and not finished.",
      NULL);
    C(prompt_tokens, "maasd_prompt_tokens_total", "Prompt tokens evaluated for finished calls.",
      "model,plan");
    C(completion_tokens, "maasd_generated_tokens_total", "Tokens generated for finished calls.",
      "model,plan");
    H(ttft, "maasd_time_to_first_token_seconds",
      "From a call reaching the scheduler to its first generated token.", "model",
      latency_bounds);
    H(itl, "maasd_inter_token_latency_seconds",
      "Gap between consecutive tokens of one generated sequence, as the loop delivers them.",
      "model", itl_bounds);
    C(rejections, "maasd_admission_rejections_total",
      "Calls refused before the engine: rate_limited, quota, forbidden (model not allowed), "
      "invalid (max_tokens over the plan), queue_full.", "reason,plan");
    H(ledger_write, "maasd_ledger_write_duration_seconds",
      "From handing a usage row to the database writer to its commit.", NULL, commit_bounds);
    G(ledger_backlog, "maasd_ledger_writer_backlog",
      "Database writer jobs queued and not yet committed.", NULL);
    C(ledger_jobs, "maasd_ledger_writer_jobs_total", "Database writer jobs, by result.",
      "result");
    G(ledger_commit, "maasd_ledger_writer_last_commit_seconds",
      "Duration of the database writer's most recent COMMIT.", NULL);
    G(queue_depth, "maasd_scheduler_queue_depth", "Requests waiting for the engine.", "model");
    G(running, "maasd_scheduler_running_sequences", "Sequences in the running batch.", "model");
    H(batch_seqs, "maasd_scheduler_batch_sequences",
      "Sequences per forward pass.", "model", pow2_bounds);
    H(batch_tokens, "maasd_scheduler_batch_tokens", "Tokens per forward pass.", "model",
      pow2_bounds);
    G(step_budget, "maasd_scheduler_step_token_budget",
      "Tokens a forward pass may carry to keep the inter-token latency target "
      "(--itl-factor); 0: no limit.", "model");
    G(step_target, "maasd_scheduler_step_target_seconds",
      "The step duration the scheduler paces to (--itl-factor times a one-token step); "
      "0: not pacing.", "model");
    G(kv_used, "maasd_kv_cache_used_tokens", "KV-cache token slots in use.", "model");
    G(kv_total, "maasd_kv_cache_capacity_tokens", "KV-cache token slots in all.", "model");
    C(steps, "maasd_scheduler_forward_passes_total", "Forward passes run.", "model");
    C(preemptions, "maasd_scheduler_preemptions_total",
      "Running sequences preempted for memory (recomputed later).", "model");
    G(db_bytes, "maasd_database_size_bytes", "Size of the database files (db: main, wal: log).",
      "file");
    C(cpu, "maasd_process_cpu_seconds_total", "User and system CPU time of the process.", NULL);
    G(rss, "maasd_process_resident_memory_bytes", "Resident memory of the process.", NULL);
    G(vms, "maasd_process_virtual_memory_bytes", "Virtual memory of the process.", NULL);
    G(fds, "maasd_process_open_fds", "Open file descriptors.", NULL);
    G(max_fds, "maasd_process_max_fds", "Limit on open file descriptors.", NULL);
    G(start_time, "maasd_process_start_time_seconds", "Start time, unix seconds.", NULL);
    C(backups, "maasd_backups_total", "Periodic database backups, by result.", "result");
    G(backup_last_success, "maasd_backup_last_success_timestamp_seconds",
      "When the last periodic backup succeeded, unix seconds (0: never).", NULL);
    G(backup_duration, "maasd_backup_last_duration_seconds",
      "How long the last periodic backup took.", NULL);
    C(tls_reloads, "maasd_tls_certificate_loads_total",
      "TLS certificate loads (start-up and SIGHUP), by result.", "result");
    G(tls_not_after, "maasd_tls_certificate_not_after_timestamp_seconds",
      "Expiry of the certificate being served, unix seconds.", NULL);
#undef C
#undef G
#undef H
    /* Every family is fixed above: a NULL means a bad name or a full
     * registry, a bug caught by the first test run. */
    struct metric_family **all[] = {
        &m->build_info, &m->http_requests, &m->http_duration, &m->http_in_flight,
        &m->prompt_tokens, &m->completion_tokens, &m->ttft, &m->itl, &m->rejections,
        &m->ledger_write, &m->ledger_backlog, &m->ledger_jobs, &m->ledger_commit,
        &m->queue_depth, &m->running, &m->batch_seqs, &m->batch_tokens, &m->step_budget, &m->step_target, &m->kv_used,
        &m->kv_total, &m->steps, &m->preemptions, &m->db_bytes, &m->cpu, &m->rss, &m->vms,
        &m->fds, &m->max_fds, &m->start_time, &m->backups, &m->backup_last_success,
        &m->backup_duration, &m->tls_reloads, &m->tls_not_after};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
        if (!*all[i]) {
            metrics_destroy(m);
            return err_set(e, ERR_INTERNAL, "metrics: family %zu could not be registered", i);
        }
    }
    metrics_family_set(m->build_info, (const char *const[]){version, commit}, 1);
    *out = m;
    return true;
}

void metrics_destroy(struct metrics *m)
{
    if (!m)
        return;
    metrics_registry_free(m->reg);
    free(m);
}

char *metrics_render(struct metrics *m, size_t *len) { return metrics_registry_render(m->reg, len); }

uint64_t metrics_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---- hooks -------------------------------------------------------------------------- */

void metrics_http_done(struct metrics *m, const char *method, const char *route,
                       unsigned status, double seconds)
{
    if (!m)
        return;
    /* An unmatched path or method is client-chosen text: never a label. */
    const char *rt = route ? route : "unmatched";
    const char *me = route && method ? method : "other";
    char code[8];
    snprintf(code, sizeof code, "%u", status < 1000 ? status : 0);
    metrics_family_add_value(m->http_requests, (const char *const[]){rt, me, code}, 1);
    metrics_family_observe(m->http_duration, (const char *const[]){rt, me}, seconds);
}

void metrics_tokens(struct metrics *m, const char *model, const char *plan, int64_t prompt,
                    int64_t completion)
{
    if (!m)
        return;
    const char *pl = plan && *plan ? plan : "none";
    metrics_family_add_value(m->prompt_tokens, (const char *const[]){model, pl}, (double)prompt);
    metrics_family_add_value(m->completion_tokens, (const char *const[]){model, pl},
                             (double)completion);
}

void metrics_first_token(struct metrics *m, const char *model, double seconds)
{
    if (m)
        metrics_family_observe(m->ttft, (const char *const[]){model}, seconds);
}

void metrics_token_gap(struct metrics *m, const char *model, uint64_t *last_ns)
{
    if (!m)
        return;
    uint64_t now = metrics_now_ns();
    if (*last_ns)
        metrics_family_observe(m->itl, (const char *const[]){model},
                               (double)(now - *last_ns) / 1e9);
    *last_ns = now;
}

void metrics_rejected(struct metrics *m, const char *plan, enum err_code code)
{
    if (!m)
        return;
    const char *reason = code == ERR_RATE_LIMITED ? "rate_limited"
                         : code == ERR_QUOTA      ? "quota"
                         : code == ERR_FORBIDDEN  ? "forbidden"
                         : code == ERR_INVALID    ? "invalid"
                         : code == ERR_OVERLOADED ? "queue_full"
                                                  : "other";
    metrics_family_add_value(m->rejections,
                             (const char *const[]){reason, plan && *plan ? plan : "none"}, 1);
}

void metrics_ledger_write(struct metrics *m, double seconds)
{
    if (m)
        metrics_family_observe(m->ledger_write, NULL, seconds);
}

void metrics_backup_done(struct metrics *m, bool ok, double seconds, int64_t at_ms)
{
    if (!m)
        return;
    metrics_family_add_value(m->backups, (const char *const[]){ok ? "ok" : "error"}, 1);
    metrics_family_set(m->backup_duration, NULL, seconds);
    if (ok)
        metrics_family_set(m->backup_last_success, NULL, (double)at_ms / 1000.0);
}

void metrics_tls_loaded(struct metrics *m, bool ok, int64_t not_after)
{
    if (!m)
        return;
    metrics_family_add_value(m->tls_reloads, (const char *const[]){ok ? "ok" : "error"}, 1);
    if (ok)
        metrics_family_set(m->tls_not_after, NULL, (double)not_after);
}

/* ---- scrape-time collection ------------------------------------------------------------ */

void metrics_collect_sched(struct metrics *m, const char *model, const struct sched_stats *st)
{
    if (!m)
        return;
    const char *const lv[] = {model};
    metrics_family_set(m->queue_depth, lv, st->queued);
    metrics_family_set(m->running, lv, st->running);
    metrics_family_set(m->kv_used, lv, (double)st->kv_tokens_used);
    metrics_family_set(m->kv_total, lv, (double)st->kv_tokens_total);
    metrics_family_set(m->steps, lv, (double)st->steps);
    metrics_family_set(m->preemptions, lv, (double)st->preemptions);
    metrics_family_set_histogram(m->batch_seqs, lv, st->batch_seqs_hist,
                                 (double)st->batch_seqs_sum);
    metrics_family_set_histogram(m->batch_tokens, lv, st->batch_tokens_hist,
                                 (double)st->tokens_prefilled);
    metrics_family_set(m->step_budget, lv, st->step_token_budget);
    metrics_family_set(m->step_target, lv, st->step_target_ms / 1e3);
}

void metrics_collect_writer(struct metrics *m, const struct writer_stats *st)
{
    if (!m)
        return;
    metrics_family_set(m->ledger_backlog, NULL, (double)st->backlog);
    metrics_family_set(m->ledger_jobs, (const char *const[]){"ok"},
                       (double)(st->jobs_done - st->jobs_failed));
    metrics_family_set(m->ledger_jobs, (const char *const[]){"error"}, (double)st->jobs_failed);
    metrics_family_set(m->ledger_commit, NULL, (double)st->last_commit_us / 1e6);
}

void metrics_collect_http(struct metrics *m, unsigned in_flight)
{
    if (m)
        metrics_family_set(m->http_in_flight, NULL, in_flight);
}

static double file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (double)st.st_size : 0;
}

void metrics_collect_db(struct metrics *m, const char *db_path)
{
    if (!m)
        return;
    char wal[4096 + 8];
    snprintf(wal, sizeof wal, "%s-wal", db_path);
    metrics_family_set(m->db_bytes, (const char *const[]){"db"}, file_size(db_path));
    metrics_family_set(m->db_bytes, (const char *const[]){"wal"}, file_size(wal));
}

/* Boot time, unix seconds (the "btime" line of /proc/stat). */
static double boot_time(void)
{
    FILE *f = fopen("/proc/stat", "r");
    if (!f)
        return 0;
    char line[256];
    double bt = 0;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, "btime ", 6) == 0) {
            bt = strtod(line + 6, NULL);
            break;
        }
    fclose(f);
    return bt;
}

void metrics_collect_process(struct metrics *m)
{
    if (!m)
        return;
    FILE *f = fopen("/proc/self/stat", "r");
    if (f) {
        char buf[1024];
        size_t n = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[n] = '\0';
        /* Fields after the command name, which may itself hold spaces and
         * parentheses: start after the last ')'. Field 3 is the state. */
        char *p = strrchr(buf, ')');
        unsigned long long v[32] = {0};
        int k = 3;
        for (char *save = NULL, *tok = p ? strtok_r(p + 1, " ", &save) : NULL; tok && k < 32;
             tok = strtok_r(NULL, " ", &save), k++)
            v[k] = strtoull(tok, NULL, 10);
        double tck = (double)sysconf(_SC_CLK_TCK);
        double page = (double)sysconf(_SC_PAGESIZE);
        if (tck > 0) {
            /* utime 14, stime 15, starttime 22 (ticks since boot) */
            metrics_family_set(m->cpu, NULL, (double)(v[14] + v[15]) / tck);
            metrics_family_set(m->start_time, NULL, boot_time() + (double)v[22] / tck);
        }
        metrics_family_set(m->vms, NULL, (double)v[23]);        /* bytes */
        metrics_family_set(m->rss, NULL, (double)v[24] * page); /* pages */
    }
    int n_fds = 0;
    DIR *dir = opendir("/proc/self/fd");
    if (dir) {
        struct dirent *de;
        while ((de = readdir(dir)))
            if (de->d_name[0] != '.')
                n_fds++;
        closedir(dir);
        metrics_family_set(m->fds, NULL, n_fds - 1); /* less the one opendir holds */
    }
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
        metrics_family_set(m->max_fds, NULL,
                           rl.rlim_cur == RLIM_INFINITY ? INFINITY : (double)rl.rlim_cur);
}

/* test_metrics.c — the metrics registry: exposition text, escaping, the
 * label-set backstop, thread safety, and the daemon's families. */
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "server/metrics.h"
#include "tests/unit/testutil.h"

static bool has_line(const char *text, const char *line)
{
    size_t n = strlen(line);
    for (const char *p = text; (p = strstr(p, line)); p++)
        if ((p == text || p[-1] == '\n') && (p[n] == '\n' || p[n] == '\0'))
            return true;
    return false;
}

static void test_counter_gauge_text(void **state)
{
    (void)state;
    struct metrics_registry *r = metrics_registry_new();
    struct metric_family *c =
        metrics_family_add(r, METRIC_COUNTER, "t_requests_total", "Requests.", "route,code", NULL, 0);
    struct metric_family *g = metrics_family_add(r, METRIC_GAUGE, "t_depth", "Depth.", NULL, NULL, 0);
    assert_non_null(c);
    assert_non_null(g);
    metrics_family_add_value(c, (const char *const[]){"/v1/models/{id}", "200"}, 1);
    metrics_family_add_value(c, (const char *const[]){"/v1/models/{id}", "200"}, 2);
    metrics_family_add_value(c, (const char *const[]){"/v1/models/{id}", "200"}, -5); /* ignored */
    metrics_family_add_value(c, (const char *const[]){"/healthz", "404"}, 1);
    metrics_family_set(g, NULL, 0.25);
    size_t len = 0;
    char *t = metrics_registry_render(r, &len);
    assert_int_equal(len, strlen(t));
    assert_true(has_line(t, "# HELP t_requests_total Requests."));
    assert_true(has_line(t, "# TYPE t_requests_total counter"));
    assert_true(has_line(t, "t_requests_total{route=\"/v1/models/{id}\",code=\"200\"} 3"));
    assert_true(has_line(t, "t_requests_total{route=\"/healthz\",code=\"404\"} 1"));
    assert_true(has_line(t, "# TYPE t_depth gauge"));
    assert_true(has_line(t, "t_depth 0.25"));
    free(t);
    metrics_registry_free(r);
}

static void test_unlabelled_starts_at_zero(void **state)
{
    (void)state;
    struct metrics_registry *r = metrics_registry_new();
    metrics_family_add(r, METRIC_COUNTER, "t_x_total", "X.", NULL, NULL, 0);
    metrics_family_add(r, METRIC_COUNTER, "t_y_total", "Y.", "a", NULL, 0);
    char *t = metrics_registry_render(r, NULL);
    assert_true(has_line(t, "t_x_total 0"));
    /* A labelled family without series has only its HELP and TYPE. */
    assert_null(strstr(t, "t_y_total{"));
    assert_true(has_line(t, "# TYPE t_y_total counter"));
    free(t);
    metrics_registry_free(r);
}

static void test_histogram_text(void **state)
{
    (void)state;
    static const double b[] = {0.005, 0.1, 1};
    struct metrics_registry *r = metrics_registry_new();
    struct metric_family *h =
        metrics_family_add(r, METRIC_HISTOGRAM, "t_seconds", "Latency.", "model", b, 3);
    assert_non_null(h);
    const char *const m[] = {"demo"};
    metrics_family_observe(h, m, 0.001);
    metrics_family_observe(h, m, 0.005);  /* le is inclusive */
    metrics_family_observe(h, m, 0.5);
    metrics_family_observe(h, m, 7);
    metrics_family_observe(h, m, NAN);    /* ignored */
    char *t = metrics_registry_render(r, NULL);
    assert_true(has_line(t, "# TYPE t_seconds histogram"));
    assert_true(has_line(t, "t_seconds_bucket{model=\"demo\",le=\"0.005\"} 2"));
    assert_true(has_line(t, "t_seconds_bucket{model=\"demo\",le=\"0.1\"} 2"));
    assert_true(has_line(t, "t_seconds_bucket{model=\"demo\",le=\"1\"} 3"));
    assert_true(has_line(t, "t_seconds_bucket{model=\"demo\",le=\"+Inf\"} 4"));
    assert_true(has_line(t, "t_seconds_sum{model=\"demo\"} 7.506"));
    assert_true(has_line(t, "t_seconds_count{model=\"demo\"} 4"));
    free(t);

    /* A histogram kept elsewhere (the scheduler's): per-bucket counts in. */
    const uint64_t counts[4] = {1, 0, 2, 5};
    metrics_family_set_histogram(h, (const char *const[]){"other"}, counts, 42);
    t = metrics_registry_render(r, NULL);
    assert_true(has_line(t, "t_seconds_bucket{model=\"other\",le=\"0.1\"} 1"));
    assert_true(has_line(t, "t_seconds_bucket{model=\"other\",le=\"1\"} 3"));
    assert_true(has_line(t, "t_seconds_bucket{model=\"other\",le=\"+Inf\"} 8"));
    assert_true(has_line(t, "t_seconds_sum{model=\"other\"} 42"));
    free(t);
    metrics_registry_free(r);
}

static void test_escaping(void **state)
{
    (void)state;
    struct metrics_registry *r = metrics_registry_new();
    struct metric_family *c = metrics_family_add(r, METRIC_COUNTER, "t_e_total",
                                                 "Back\\slash and\nnewline.", "v", NULL, 0);
    metrics_family_add_value(c, (const char *const[]){"a\"b\\c\nd"}, 1);
    char *t = metrics_registry_render(r, NULL);
    assert_true(has_line(t, "# HELP t_e_total Back\\\\slash and\\nnewline."));
    assert_true(has_line(t, "t_e_total{v=\"a\\\"b\\\\c\\nd\"} 1"));
    free(t);
    metrics_registry_free(r);
}

static void test_invalid_families(void **state)
{
    (void)state;
    static const double bad[] = {1, 1};
    static const double ok[] = {1};
    struct metrics_registry *r = metrics_registry_new();
    assert_null(metrics_family_add(r, METRIC_COUNTER, "1abc", "", NULL, NULL, 0));
    assert_null(metrics_family_add(r, METRIC_COUNTER, "a-b", "", NULL, NULL, 0));
    assert_null(metrics_family_add(r, METRIC_COUNTER, "t_a", "", "le", NULL, 0));
    assert_null(metrics_family_add(r, METRIC_COUNTER, "t_a", "", "__x", NULL, 0));
    assert_null(metrics_family_add(r, METRIC_COUNTER, "t_a", "", "a,b,c,d", NULL, 0));
    assert_null(metrics_family_add(r, METRIC_COUNTER, "t_a", "", "a,,b", NULL, 0));
    assert_null(metrics_family_add(r, METRIC_HISTOGRAM, "t_h", "", NULL, bad, 2));
    assert_null(metrics_family_add(r, METRIC_HISTOGRAM, "t_h", "", NULL, NULL, 0));
    assert_null(metrics_family_add(r, METRIC_GAUGE, "t_g", "", NULL, ok, 1));
    assert_non_null(metrics_family_add(r, METRIC_COUNTER, "t:ok_total", "", "a_1,b", NULL, 0));
    metrics_registry_free(r);
}

static void test_series_backstop(void **state)
{
    (void)state;
    struct metrics_registry *r = metrics_registry_new();
    struct metric_family *c = metrics_family_add(r, METRIC_COUNTER, "t_b_total", "", "id", NULL, 0);
    char id[32];
    for (int i = 0; i < METRICS_MAX_SERIES * 2; i++) {
        snprintf(id, sizeof id, "v%d", i);
        metrics_family_add_value(c, (const char *const[]){id}, 1);
    }
    char *t = metrics_registry_render(r, NULL);
    int lines = 0;
    for (const char *p = t; (p = strstr(p, "\nt_b_total{")); p++)
        lines++;
    assert_int_equal(lines, METRICS_MAX_SERIES);
    char want[64];
    snprintf(want, sizeof want, "t_b_total{id=\"_other\"} %d", METRICS_MAX_SERIES + 1);
    assert_true(has_line(t, want));
    free(t);
    metrics_registry_free(r);
}

struct thread_arg {
    struct metric_family *c, *h;
};

static void *adder(void *p)
{
    struct thread_arg *a = p;
    for (int i = 0; i < 10000; i++) {
        metrics_family_add_value(a->c, (const char *const[]){i % 2 ? "odd" : "even"}, 1);
        metrics_family_observe(a->h, NULL, 0.5);
    }
    return NULL;
}

static void test_threads(void **state)
{
    (void)state;
    static const double b[] = {1};
    struct metrics_registry *r = metrics_registry_new();
    struct thread_arg a = {
        metrics_family_add(r, METRIC_COUNTER, "t_t_total", "", "k", NULL, 0),
        metrics_family_add(r, METRIC_HISTOGRAM, "t_t_seconds", "", NULL, b, 1),
    };
    pthread_t th[4];
    for (int i = 0; i < 4; i++)
        pthread_create(&th[i], NULL, adder, &a);
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    char *t = metrics_registry_render(r, NULL);
    assert_true(has_line(t, "t_t_total{k=\"even\"} 20000"));
    assert_true(has_line(t, "t_t_total{k=\"odd\"} 20000"));
    assert_true(has_line(t, "t_t_seconds_count 40000"));
    free(t);
    metrics_registry_free(r);
}

static void test_daemon_families(void **state)
{
    (void)state;
    struct metrics *m = NULL;
    struct err e = {0};
    assert_true(metrics_create("1.2.3", "abc", &m, &e));
    /* Hooks accept NULL (unit tests of other modules run without). */
    metrics_http_done(NULL, "GET", "/x", 200, 0.1);
    metrics_rejected(NULL, "free", ERR_QUOTA);

    metrics_http_done(m, "GET", "/v1/models/{id}", 200, 0.002);
    metrics_http_done(m, "DELETE", NULL, 405, 0.001);  /* client text never a label */
    metrics_tokens(m, "demo", "pro", 10, 4);
    metrics_tokens(m, "demo", "", 1, 1);
    metrics_rejected(m, "free", ERR_RATE_LIMITED);
    metrics_rejected(m, "free", ERR_OVERLOADED);
    uint64_t last = 0;
    metrics_token_gap(m, "demo", &last);
    assert_true(last != 0);
    metrics_token_gap(m, "demo", &last);
    struct sched_stats st = {.queued = 3, .running = 2, .kv_tokens_used = 64,
                             .kv_tokens_total = 1024, .steps = 5, .tokens_prefilled = 40,
                             .batch_seqs_sum = 7};
    st.batch_seqs_hist[0] = 3;   /* passes of 1 sequence */
    st.batch_seqs_hist[1] = 2;   /* of 2 */
    st.batch_tokens_hist[3] = 5; /* of 5..8 tokens */
    metrics_collect_sched(m, "demo", &st);
    metrics_collect_process(m);
    char *t = metrics_render(m, NULL);
    assert_true(has_line(t, "maasd_build_info{version=\"1.2.3\",commit=\"abc\"} 1"));
    assert_true(has_line(t, "maasd_http_requests_total{route=\"/v1/models/{id}\",method=\"GET\",code=\"200\"} 1"));
    assert_true(has_line(t, "maasd_http_requests_total{route=\"unmatched\",method=\"other\",code=\"405\"} 1"));
    assert_true(has_line(t, "maasd_prompt_tokens_total{model=\"demo\",plan=\"pro\"} 10"));
    assert_true(has_line(t, "maasd_generated_tokens_total{model=\"demo\",plan=\"none\"} 1"));
    assert_true(has_line(t, "maasd_admission_rejections_total{reason=\"rate_limited\",plan=\"free\"} 1"));
    assert_true(has_line(t, "maasd_admission_rejections_total{reason=\"queue_full\",plan=\"free\"} 1"));
    assert_true(has_line(t, "maasd_inter_token_latency_seconds_count{model=\"demo\"} 1"));
    assert_true(has_line(t, "maasd_scheduler_queue_depth{model=\"demo\"} 3"));
    assert_true(has_line(t, "maasd_kv_cache_capacity_tokens{model=\"demo\"} 1024"));
    assert_true(has_line(t, "maasd_scheduler_batch_sequences_bucket{model=\"demo\",le=\"2\"} 5"));
    assert_true(has_line(t, "maasd_scheduler_batch_sequences_sum{model=\"demo\"} 7"));
    assert_true(has_line(t, "maasd_scheduler_batch_tokens_bucket{model=\"demo\",le=\"4\"} 0"));
    assert_true(has_line(t, "maasd_scheduler_batch_tokens_bucket{model=\"demo\",le=\"8\"} 5"));
    assert_true(has_line(t, "maasd_scheduler_batch_tokens_bucket{model=\"demo\",le=\"+Inf\"} 5"));
    assert_non_null(strstr(t, "\nmaasd_process_resident_memory_bytes "));
    assert_null(strstr(t, "maasd_process_resident_memory_bytes 0\n"));
    free(t);
    metrics_destroy(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_counter_gauge_text), cmocka_unit_test(test_unlabelled_starts_at_zero),
        cmocka_unit_test(test_histogram_text),     cmocka_unit_test(test_escaping),
        cmocka_unit_test(test_invalid_families),   cmocka_unit_test(test_series_backstop),
        cmocka_unit_test(test_threads),            cmocka_unit_test(test_daemon_families),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

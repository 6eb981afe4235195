/* test_admission.c — rate limits, concurrency and quotas, all or nothing
 * (server/admission.c), including 50 threads admitting at once against a
 * nearly exhausted quota. Admission is pure memory: the principal is built
 * here, the period usage comes from a loader that counts its calls. */
#include "tests/unit/testutil.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "server/admission.h"
#include "server/caltime.h"

#define T0 1893456000000LL /* 2030-01-01T00:00:00Z */

struct loader {
    int64_t used;
    int calls;
};

static bool load(void *arg, const char *customer, int64_t start, int64_t end, int64_t *tokens,
                 struct err *e)
{
    (void)customer;
    (void)start;
    (void)end;
    (void)e;
    struct loader *l = arg;
    l->calls++;
    *tokens = l->used;
    return true;
}

static void principal(struct principal *p, bool hard_cap)
{
    memset(p, 0, sizeof *p);
    snprintf(p->customer_id, sizeof p->customer_id, "cus_test");
    snprintf(p->key_id, sizeof p->key_id, "key_test");
    p->scopes = SCOPE_INFERENCE;
    p->has_plan = true;
    snprintf(p->subscription_status, sizeof p->subscription_status, "active");
    p->plan.id = 7;
    p->plan.requests_per_minute = 20;
    p->plan.tokens_per_minute = 10000;
    p->plan.max_concurrent_requests = 2;
    p->plan.max_tokens_per_request = 1024;
    p->plan.included_tokens = 100000;
    p->plan.hard_cap = hard_cap;
    p->period_start = T0;
    p->period_end = T0 + 31 * CALTIME_DAY_MS;
}

static void test_requests_per_minute(void **state)
{
    (void)state;
    struct admission *adm = admission_new(NULL, NULL);
    struct principal p;
    principal(&p, false);
    struct admission_ticket t;
    struct admission_headers h;
    struct err e = {0};
    for (int i = 0; i < 20; i++) {
        assert_true(admission_admit(adm, &p, 10, 10, T0, &t, &h, &e));
        assert_int_equal(h.limit_requests, 20);
        assert_int_equal(h.remaining_requests, 19 - i);
        admission_settle(adm, &t, 10, 10, T0);
    }
    assert_false(admission_admit(adm, &p, 10, 10, T0, &t, &h, &e));
    assert_int_equal(e.code, ERR_RATE_LIMITED);
    assert_non_null(strstr(e.msg, "requests"));
    assert_int_equal(h.retry_after_s, 3);          /* one request refills every 3 s */
    assert_int_equal(h.remaining_requests, 0);
    assert_int_equal(h.reset_requests_ms, 60000);  /* empty bucket: a minute to full */
    assert_false(t.active);
    assert_false(admission_admit(adm, &p, 10, 10, T0 + 2999, &t, &h, &e));
    assert_true(admission_admit(adm, &p, 10, 10, T0 + 3000, &t, &h, &e));
    admission_settle(adm, &t, 0, 0, T0 + 3000);
    admission_free(adm);
}

static void test_concurrency_and_all_or_nothing(void **state)
{
    (void)state;
    struct admission *adm = admission_new(NULL, NULL);
    struct principal p;
    principal(&p, false);
    struct admission_ticket a, b, c;
    struct admission_headers h;
    struct err e = {0};
    assert_true(admission_admit(adm, &p, 100, 100, T0, &a, &h, &e));
    assert_true(admission_admit(adm, &p, 100, 100, T0, &b, &h, &e));
    int64_t req_left = h.remaining_requests, tok_left = h.remaining_tokens;
    assert_false(admission_admit(adm, &p, 100, 100, T0, &c, &h, &e));
    assert_int_equal(e.code, ERR_RATE_LIMITED);
    assert_non_null(strstr(e.msg, "concurrent"));
    assert_int_equal(h.retry_after_s, 1);
    /* Nothing was taken by the refusal. */
    assert_int_equal(h.remaining_requests, req_left);
    assert_int_equal(h.remaining_tokens, tok_left);
    admission_settle(adm, &a, 100, 50, T0);
    admission_settle(adm, &a, 100, 50, T0); /* twice: harmless */
    assert_true(admission_admit(adm, &p, 100, 100, T0, &c, &h, &e));
    assert_int_equal(h.remaining_requests, req_left - 1);
    /* A refusal on tokens takes no request either. */
    admission_settle(adm, &b, 0, 0, T0);
    struct admission_ticket d;
    int64_t before = h.remaining_requests;
    assert_false(admission_admit(adm, &p, 9000, 1024, T0, &d, &h, &e));
    assert_int_equal(e.code, ERR_RATE_LIMITED);
    assert_int_equal(h.remaining_requests, before);
    admission_settle(adm, &c, 0, 0, T0);
    admission_free(adm);
}

static void test_tokens_per_minute(void **state)
{
    (void)state;
    struct admission *adm = admission_new(NULL, NULL);
    struct principal p;
    principal(&p, false);
    p.plan.max_concurrent_requests = 100;
    struct admission_ticket t;
    struct admission_headers h;
    struct err e = {0};
    /* Reserve prompt + max_tokens: 2000 + 1000 = 3000. */
    assert_true(admission_admit(adm, &p, 2000, 1000, T0, &t, &h, &e));
    assert_int_equal(t.reserved_tokens, 3000);
    assert_int_equal(t.max_tokens, 1000);
    assert_int_equal(h.limit_tokens, 10000);
    assert_int_equal(h.remaining_tokens, 7000);
    assert_int_equal(h.reset_tokens_ms, 18000);    /* 3000 tokens at 10000/min */
    /* Settling with fewer tokens refunds the difference. */
    admission_settle(adm, &t, 2000, 200, T0);
    assert_true(admission_admit(adm, &p, 0, 1, T0, &t, &h, &e));
    assert_int_equal(h.remaining_tokens, 10000 - 2200 - 1);
    admission_settle(adm, &t, 0, 1, T0);
    /* A request bigger than the whole minute's budget is refused outright. */
    p.plan.max_tokens_per_request = 20000;
    assert_false(admission_admit(adm, &p, 5000, 6000, T0, &t, &h, &e));
    assert_non_null(strstr(e.msg, "too large"));
    /* max_tokens over the plan's limit is the caller's error. */
    p.plan.max_tokens_per_request = 1024;
    assert_false(admission_admit(adm, &p, 10, 2000, T0, &t, &h, &e));
    assert_int_equal(e.code, ERR_INVALID);
    assert_string_equal(e.param, "max_tokens");
    /* max_tokens 0: the plan's maximum. */
    assert_true(admission_admit(adm, &p, 10, 0, T0 + 60000, &t, &h, &e));
    assert_int_equal(t.max_tokens, 1024);
    admission_settle(adm, &t, 10, 5, T0 + 60000);
    admission_free(adm);
}

static void test_hard_cap_quota(void **state)
{
    (void)state;
    struct loader l = {.used = 100000 - 500};
    struct admission *adm = admission_new(load, &l);
    struct principal p;
    principal(&p, true);
    struct admission_ticket t, u;
    struct admission_headers h;
    struct err e = {0};
    /* 500 left: prompt 100, so at most 400 completion tokens are granted. */
    assert_true(admission_admit(adm, &p, 100, 1000, T0, &t, &h, &e));
    assert_int_equal(t.max_tokens, 400);
    assert_int_equal(t.reserved_tokens, 500);
    assert_true(t.hard_cap);
    assert_int_equal(t.plan_version_id, 7);
    assert_false(admission_admit(adm, &p, 1, 10, T0, &u, &h, &e));
    assert_int_equal(e.code, ERR_QUOTA);
    assert_int_equal(h.retry_after_s, 31 * 86400); /* until the period ends */
    /* The request used less: the rest comes back. */
    admission_settle(adm, &t, 100, 250, T0);
    assert_true(admission_admit(adm, &p, 50, 1000, T0, &u, &h, &e));
    assert_int_equal(u.max_tokens, 100);
    admission_settle(adm, &u, 50, 100, T0);
    assert_false(admission_admit(adm, &p, 0, 10, T0, &u, &h, &e));
    assert_int_equal(e.code, ERR_QUOTA);
    assert_int_equal(l.calls, 1);                  /* loaded once this period */
    /* Token credits extend a hard cap. */
    p.credit_tokens = 300;
    assert_true(admission_admit(adm, &p, 0, 1000, T0, &u, &h, &e));
    assert_int_equal(u.max_tokens, 300);
    admission_settle(adm, &u, 0, 300, T0);
    /* A new period starts from the ledger again. */
    p.period_start = p.period_end;
    p.period_end += 28 * CALTIME_DAY_MS;
    l.used = 0;
    assert_true(admission_admit(adm, &p, 10, 1000, p.period_start, &u, &h, &e));
    assert_int_equal(u.max_tokens, 1000);
    assert_int_equal(l.calls, 2);
    admission_settle(adm, &u, 10, 10, p.period_start);
    /* Not hard-capped: no quota, and no loading at all. */
    struct admission *adm2 = admission_new(load, &l);
    principal(&p, false);
    l.used = 10 * p.plan.included_tokens;
    assert_true(admission_admit(adm2, &p, 10, 100, T0, &u, &h, &e));
    assert_int_equal(l.calls, 2);
    admission_settle(adm2, &u, 10, 100, T0);
    admission_free(adm2);
    admission_free(adm);
}

static void test_refusals_without_plan(void **state)
{
    (void)state;
    struct admission *adm = admission_new(NULL, NULL);
    struct principal p;
    principal(&p, false);
    struct admission_ticket t;
    struct admission_headers h;
    struct err e = {0};
    snprintf(p.subscription_status, sizeof p.subscription_status, "past_due");
    assert_false(admission_admit(adm, &p, 1, 1, T0, &t, &h, &e));
    assert_int_equal(e.code, ERR_QUOTA);
    p.has_plan = false;
    assert_false(admission_admit(adm, &p, 1, 1, T0, &t, &h, &e));
    assert_int_equal(e.code, ERR_QUOTA);
    assert_false(h.valid);
    assert_int_equal(admission_tracked(adm), 0);
    admission_free(adm);
}

/* --- 50 threads against a nearly exhausted quota ---------------------------------- */

#define THREADS 50

struct race {
    struct admission *adm;
    const struct principal *p;
    pthread_barrier_t *start;
    struct admission_ticket ticket;
    bool admitted;
};

static void *racer(void *arg)
{
    struct race *r = arg;
    struct admission_headers h;
    struct err e = {0};
    pthread_barrier_wait(r->start);
    r->admitted = admission_admit(r->adm, r->p, 10, 100, T0, &r->ticket, &h, &e);
    if (!r->admitted && e.code != ERR_QUOTA)
        fprintf(stderr, "unexpected refusal: %s\n", e.msg);
    return NULL;
}

static void test_parallel_admits_never_overshoot(void **state)
{
    (void)state;
    const int64_t left = 1000;
    struct loader l = {.used = 100000 - left};
    struct admission *adm = admission_new(load, &l);
    struct principal p;
    principal(&p, true);
    p.plan.requests_per_minute = 1000;
    p.plan.tokens_per_minute = 1000000;
    p.plan.max_concurrent_requests = 1000;
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, THREADS);
    struct race r[THREADS];
    pthread_t th[THREADS];
    for (int i = 0; i < THREADS; i++) {
        r[i] = (struct race){.adm = adm, .p = &p, .start = &start};
        assert_int_equal(pthread_create(&th[i], NULL, racer, &r[i]), 0);
    }
    int64_t reserved = 0, admitted = 0;
    for (int i = 0; i < THREADS; i++) {
        pthread_join(th[i], NULL);
        if (r[i].admitted) {
            admitted++;
            reserved += r[i].ticket.reserved_tokens;
        }
    }
    pthread_barrier_destroy(&start);
    /* Every admit saw the reservations before it: together they fit. */
    assert_true(reserved <= left);
    assert_true(admitted >= 9);           /* 9 x 110 fit; the 10th gets what is left */
    assert_true(admitted < THREADS);
    /* Each request used its whole budget: usage ends exactly within quota. */
    int64_t used = 0;
    for (int i = 0; i < THREADS; i++) {
        if (r[i].admitted) {
            used += 10 + r[i].ticket.max_tokens;
            admission_settle(adm, &r[i].ticket, 10, r[i].ticket.max_tokens, T0);
        }
    }
    assert_true(used <= left);
    struct admission_ticket t;
    struct admission_headers h;
    struct err e = {0};
    assert_false(admission_admit(adm, &p, 10, 100, T0, &t, &h, &e));
    assert_int_equal(e.code, ERR_QUOTA);
    assert_int_equal(l.calls, 1);
    admission_free(adm);

    /* The one way past a hard cap: a prompt estimate that was too low. The
     * overshoot is that error and nothing more. */
    struct loader l2 = {.used = 100000 - 200};
    adm = admission_new(load, &l2);
    assert_true(admission_admit(adm, &p, 10, 1000, T0, &t, &h, &e));
    assert_int_equal(t.max_tokens, 190);
    admission_settle(adm, &t, 40, 190, T0);     /* the prompt really had 40 tokens */
    assert_false(admission_admit(adm, &p, 1, 1, T0, &t, &h, &e));
    assert_int_equal(e.code, ERR_QUOTA);
    admission_free(adm);
}

static void test_duration_format(void **state)
{
    (void)state;
    char b[32];
    admission_format_duration(17, b, sizeof b);
    assert_string_equal(b, "17ms");
    admission_format_duration(1000, b, sizeof b);
    assert_string_equal(b, "1s");
    admission_format_duration(1500, b, sizeof b);
    assert_string_equal(b, "1.5s");
    admission_format_duration(360000, b, sizeof b);
    assert_string_equal(b, "6m0s");
    admission_format_duration(3723004, b, sizeof b);
    assert_string_equal(b, "1h2m3.004s");
    admission_format_duration(0, b, sizeof b);
    assert_string_equal(b, "0ms");
}

static void test_sweep(void **state)
{
    (void)state;
    struct admission *adm = admission_new(NULL, NULL);
    struct principal p;
    principal(&p, false);
    struct admission_ticket t;
    struct admission_headers h;
    struct err e = {0};
    assert_true(admission_admit(adm, &p, 1, 1, T0, &t, &h, &e));
    admission_sweep(adm, T0 + 3600000);
    assert_int_equal(admission_tracked(adm), 1);   /* in flight: kept */
    admission_settle(adm, &t, 1, 1, T0 + 1);
    admission_sweep(adm, T0 + 60000);
    assert_int_equal(admission_tracked(adm), 1);   /* recent: kept */
    admission_sweep(adm, T0 + 3600000);
    assert_int_equal(admission_tracked(adm), 0);
    admission_free(adm);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_requests_per_minute),
        cmocka_unit_test(test_concurrency_and_all_or_nothing),
        cmocka_unit_test(test_tokens_per_minute),
        cmocka_unit_test(test_hard_cap_quota),
        cmocka_unit_test(test_refusals_without_plan),
        cmocka_unit_test(test_parallel_admits_never_overshoot),
        cmocka_unit_test(test_duration_format),
        cmocka_unit_test(test_sweep),
    };
    return cmocka_run_group_tests_name("admission", tests, NULL, NULL);
}

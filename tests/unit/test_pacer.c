/* test_pacer.c — engine/pacer.c against synthetic step costs: the budget it
 * learns keeps steps within the target, starts small and grows, follows the
 * machine, and never limits when it must not. */
#include "tests/unit/testutil.h"

#include <stdint.h>

#include "engine/pacer.h"

/* A CPU-like step: memory-bound (the weights stream once, 30 ms) until the
 * compute of n tokens (3.7 ms each, plus 5 ms of fixed work) takes longer. */
static double cpu_step_ms(int n)
{
    double compute = 5 + 3.7 * n;
    return compute > 30 ? compute : 30;
}

/* Run `steps` saturated steps: every step carries the whole budget, as it
 * does under load. `noise` is a relative +- jitter (deterministic). */
static int run_saturated(struct pacer *p, int steps, double noise, double *max_ms)
{
    uint64_t x = 12345;
    int n = 0;
    *max_ms = 0;
    for (int i = 0; i < steps; i++) {
        n = pacer_step_tokens(p, 512);
        x = x * 6364136223846793005ULL + 1442695040888963407ULL;
        double jitter = 1 + noise * ((double)(x >> 11) / (double)(1ULL << 53) * 2 - 1);
        double ms = cpu_step_ms(n) * jitter;
        if (i >= steps / 2 && cpu_step_ms(n) > *max_ms)
            *max_ms = cpu_step_ms(n);
        pacer_observe(p, n, ms);
    }
    return n;
}

static void test_off_never_limits(void **state)
{
    (void)state;
    struct pacer p;
    pacer_init(&p, 0, 0);
    pacer_observe(&p, 1, 30);
    for (int i = 0; i < 20; i++)
        pacer_observe(&p, 64, cpu_step_ms(64));
    assert_int_equal(pacer_step_tokens(&p, 512), 512);
    assert_true(pacer_target_ms(&p) == 0);
}

static void test_unknown_base_does_not_limit(void **state)
{
    (void)state;
    struct pacer p;
    pacer_init(&p, 3, 0);
    /* Only big steps so far: the one-token cost is unknown. */
    for (int i = 0; i < 20; i++)
        pacer_observe(&p, 64, cpu_step_ms(64));
    assert_int_equal(pacer_step_tokens(&p, 512), 512);
    pacer_observe(&p, 1, 30);
    assert_true(pacer_target_ms(&p) == 90);
    assert_true(pacer_step_tokens(&p, 512) < 512);
}

static void test_converges_to_the_target(void **state)
{
    (void)state;
    struct pacer p;
    pacer_init(&p, 3, 0);
    pacer_observe(&p, 1, 30); /* target 90 ms: (90 - 5) / 3.7 = 22.97 tokens fit */
    double max_ms;
    int n = run_saturated(&p, 60, 0, &max_ms);
    assert_in_range(n, 21, 22);
    assert_true(max_ms <= 90);
}

static void test_slow_start_is_fast(void **state)
{
    (void)state;
    struct pacer p;
    pacer_init(&p, 3, 0);
    pacer_observe(&p, 1, 30);
    /* From factor tokens, doubling while steps prove short: a handful of
     * steps, not hundreds, before the budget is near its value. */
    assert_int_equal(pacer_step_tokens(&p, 512), 3);
    double max_ms;
    int n = run_saturated(&p, 8, 0, &max_ms);
    assert_in_range(n, 18, 23);
}

static void test_memory_bound_steps_grow_by_doubling(void **state)
{
    (void)state;
    struct pacer p;
    pacer_init(&p, 4, 0);
    pacer_observe(&p, 1, 30);
    /* A 4-token step costs the same as 1: 4 * 120 / 30 = 16 would fit by
     * the average, but memory-bound steps say nothing about compute. */
    pacer_observe(&p, 4, 30);
    assert_int_equal(pacer_step_tokens(&p, 512), 8);
    /* A step of a few tokens under light load proves nothing either. */
    pacer_observe(&p, 2, 30);
    assert_int_equal(pacer_step_tokens(&p, 512), 8);
}

static void test_light_load_does_not_shrink(void **state)
{
    (void)state;
    struct pacer p;
    pacer_init(&p, 3, 0);
    pacer_observe(&p, 1, 30);
    double max_ms;
    int n = run_saturated(&p, 40, 0, &max_ms);
    /* Load drops to two streams and a neighbour slows a few of their steps:
     * the budget for the next burst stays where saturated steps put it. */
    for (int i = 0; i < 10; i++)
        pacer_observe(&p, 2, 80);
    assert_int_equal(pacer_step_tokens(&p, 512), n);
}

static void test_noise_keeps_the_budget_near(void **state)
{
    (void)state;
    struct pacer p;
    pacer_init(&p, 3, 0);
    pacer_observe(&p, 1, 30);
    double max_ms;
    run_saturated(&p, 400, 0.2, &max_ms);
    /* 20% jitter on every step: the budget wanders, but no step it allows
     * would take more than a quarter over the target on a quiet machine. */
    assert_true(max_ms <= 90 * 1.25);
    assert_in_range(pacer_step_tokens(&p, 512), 15, 28);
}

static void test_big_prefill_step_teaches(void **state)
{
    (void)state;
    struct pacer p;
    pacer_init(&p, 3, 0);
    pacer_observe(&p, 1, 30);
    /* A 512-token prompt alone (nobody waits on it): its cost per token
     * says how many tokens fit in the target. */
    for (int i = 0; i < 6; i++)
        pacer_observe(&p, 512, cpu_step_ms(512));
    assert_in_range(pacer_step_tokens(&p, 512), 22, 25);
}

static void test_follows_the_machine(void **state)
{
    (void)state;
    struct pacer p;
    pacer_init(&p, 3, 0);
    pacer_observe(&p, 1, 30);
    double max_ms;
    int before = run_saturated(&p, 40, 0, &max_ms);
    /* Memory bandwidth halves (a neighbour on the host): one-token steps
     * slow to 60 ms, so 180 ms is the new target and more tokens fit. */
    for (int i = 0; i < 30; i++)
        pacer_observe(&p, 1, 60);
    assert_true(pacer_target_ms(&p) > 170 && pacer_target_ms(&p) <= 180);
    for (int i = 0; i < 40; i++)
        pacer_observe(&p, pacer_step_tokens(&p, 512), cpu_step_ms(pacer_step_tokens(&p, 512)));
    assert_true(pacer_step_tokens(&p, 512) > before * 3 / 2);
}

static void test_short_targets_do_not_limit(void **state)
{
    (void)state;
    struct pacer p;
    pacer_init(&p, 3, 10);
    /* A small model: 1 ms a token, 3 ms target, under the 10 ms minimum. */
    pacer_observe(&p, 1, 1);
    for (int i = 0; i < 20; i++)
        pacer_observe(&p, 64, 20);
    assert_int_equal(pacer_step_tokens(&p, 512), 512);
    assert_true(pacer_target_ms(&p) == 0);
}

static void test_bad_samples_ignored(void **state)
{
    (void)state;
    struct pacer p;
    pacer_init(&p, 3, 0);
    pacer_observe(&p, 0, 30);
    pacer_observe(&p, 1, 0);
    pacer_observe(&p, 1, -5);
    pacer_observe(&p, -3, 30);
    assert_int_equal(pacer_step_tokens(&p, 512), 512);
    pacer_observe(&p, 1, 30);
    pacer_observe(&p, 1000, 1e9); /* one absurd step: the budget floors at 1 */
    assert_int_equal(pacer_step_tokens(&p, 512), 1);
    assert_int_equal(pacer_step_tokens(&p, 1), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_off_never_limits),
        cmocka_unit_test(test_unknown_base_does_not_limit),
        cmocka_unit_test(test_converges_to_the_target),
        cmocka_unit_test(test_slow_start_is_fast),
        cmocka_unit_test(test_memory_bound_steps_grow_by_doubling),
        cmocka_unit_test(test_light_load_does_not_shrink),
        cmocka_unit_test(test_noise_keeps_the_budget_near),
        cmocka_unit_test(test_big_prefill_step_teaches),
        cmocka_unit_test(test_follows_the_machine),
        cmocka_unit_test(test_short_targets_do_not_limit),
        cmocka_unit_test(test_bad_samples_ignored),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

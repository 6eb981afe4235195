/* test_sampler.c — token choice, truncation, penalties, logprobs, constraints
 * and determinism of engine/sampler.c. */
#include "tests/unit/testutil.h"

#include <float.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/sampler.h"

static struct sampler *make(const struct sampler_params *p, int32_t n_vocab)
{
    struct err e = {0};
    struct sampler *s = sampler_new(p, n_vocab, &e);
    if (!s)
        fail_msg("sampler_new: %s", e.msg);
    return s;
}

static int32_t draw(struct sampler *s, const float *logits, int32_t n,
                    sampler_allowed_fn allowed, void *ctx, struct sampler_result *r)
{
    float *work = malloc((size_t)n * sizeof *work);
    memcpy(work, logits, (size_t)n * sizeof *work);
    struct err e = {0};
    struct sampler_result tmp;
    if (!r)
        r = &tmp;
    bool ok = sampler_sample(s, work, allowed, ctx, r, &e);
    free(work);
    if (!ok)
        fail_msg("sampler_sample: %s", e.msg);
    return r->token;
}

/* Logits whose softmax is exactly the given probabilities (up to rounding). */
static void from_probs(float *l, const double *p, int n)
{
    for (int i = 0; i < n; i++)
        l[i] = p[i] > 0 ? (float)log(p[i]) : -INFINITY;
}

/* Count how often each token is drawn in `n_draws` draws. */
static void histogram(struct sampler *s, const float *l, int32_t n, int n_draws,
                      sampler_allowed_fn allowed, void *ctx, int *count)
{
    memset(count, 0, (size_t)n * sizeof *count);
    for (int i = 0; i < n_draws; i++)
        count[draw(s, l, n, allowed, ctx, NULL)]++;
}

/* |observed - expected| within 5 standard deviations of a binomial: with a
 * fixed seed the test is deterministic, the bound only has to be honest. */
static void assert_freq(int count, int n_draws, double p)
{
    double sd = sqrt(n_draws * p * (1 - p));
    double diff = fabs(count - n_draws * p);
    if (diff > 5 * sd + 1)
        fail_msg("count %d of %d, expected %.1f (p=%.4f)", count, n_draws, n_draws * p, p);
}

/* ---- parameter validation ------------------------------------------------------ */

static void test_params_check(void **state)
{
    (void)state;
    struct sampler_bias good_bias[] = {{5, -100}, {7, 100}};
    struct sampler_bias bad_token[] = {{10, 1}};
    struct sampler_bias neg_token[] = {{-1, 1}};
    struct sampler_bias bad_value[] = {{3, 100.5f}};
    struct sampler_params p;
    sampler_params_default(&p);
    struct err e = {0};
    assert_true(sampler_params_check(&p, 10, &e));
    p.logit_bias = good_bias;
    p.n_logit_bias = 2;
    p.temperature = 2;
    p.top_p = 1;
    p.top_logprobs = 20;
    p.logprobs = true;
    assert_true(sampler_params_check(&p, 10, &e));

    struct bad {
        const char *param;
        struct sampler_params p;
    } bad[32];
    int nb = 0;
#define BAD(name, field, value)                                                      \
    do {                                                                             \
        sampler_params_default(&bad[nb].p);                                          \
        bad[nb].p.field = value;                                                     \
        bad[nb++].param = name;                                                      \
    } while (0)
    BAD("temperature", temperature, -0.1f);
    BAD("temperature", temperature, 2.01f);
    BAD("temperature", temperature, NAN);
    BAD("top_p", top_p, 0);
    BAD("top_p", top_p, 1.01f);
    BAD("top_p", top_p, INFINITY);
    BAD("top_k", top_k, -1);
    BAD("min_p", min_p, -0.1f);
    BAD("min_p", min_p, 1.5f);
    BAD("repetition_penalty", repetition_penalty, 0);
    BAD("repetition_penalty", repetition_penalty, 11);
    BAD("penalty_last_n", penalty_last_n, -2);
    BAD("presence_penalty", presence_penalty, 2.5f);
    BAD("presence_penalty", presence_penalty, -2.5f);
    BAD("frequency_penalty", frequency_penalty, 3);
    BAD("frequency_penalty", frequency_penalty, NAN);
    BAD("top_logprobs", top_logprobs, 21);
    BAD("top_logprobs", top_logprobs, -1);
    BAD("top_logprobs", top_logprobs, 3); /* without logprobs */
    BAD("logit_bias", n_logit_bias, 1);   /* NULL array */
#undef BAD
    sampler_params_default(&bad[nb].p);
    bad[nb].p.logit_bias = bad_token;
    bad[nb].p.n_logit_bias = 1;
    bad[nb++].param = "logit_bias";
    sampler_params_default(&bad[nb].p);
    bad[nb].p.logit_bias = neg_token;
    bad[nb].p.n_logit_bias = 1;
    bad[nb++].param = "logit_bias";
    sampler_params_default(&bad[nb].p);
    bad[nb].p.logit_bias = bad_value;
    bad[nb].p.n_logit_bias = 1;
    bad[nb++].param = "logit_bias";

    for (int i = 0; i < nb; i++) {
        struct err e2 = {0};
        if (sampler_params_check(&bad[i].p, 10, &e2))
            fail_msg("case %d (%s) accepted", i, bad[i].param);
        assert_int_equal(e2.code, ERR_INVALID);
        assert_string_equal(e2.param, bad[i].param);
        assert_true(strlen(e2.msg) > 0);
        /* sampler_new refuses the same way */
        struct err e3 = {0};
        assert_null(sampler_new(&bad[i].p, 10, &e3));
        assert_string_equal(e3.param, bad[i].param);
    }
}

static void test_accept_rejects_bad_ids(void **state)
{
    (void)state;
    struct sampler_params p;
    sampler_params_default(&p);
    p.frequency_penalty = 1;
    struct sampler *s = make(&p, 8);
    struct err e = {0};
    assert_true(sampler_accept(s, 7, false, &e));
    assert_false(sampler_accept(s, 8, false, &e));
    assert_int_equal(e.code, ERR_INVALID);
    assert_false(sampler_accept(s, -1, true, &e));
    sampler_free(s);
    sampler_free(NULL);
}

/* ---- greedy ----------------------------------------------------------------------- */

static void test_greedy_argmax_and_ties(void **state)
{
    (void)state;
    struct sampler_params p;
    sampler_params_default(&p);
    p.temperature = 0;
    float l[40];
    for (int i = 0; i < 40; i++)
        l[i] = (float)(i % 7);
    struct sampler *s = make(&p, 40);
    /* 6 first appears at id 6; later ties (13, 20, ...) lose */
    for (int k = 0; k < 5; k++)
        assert_int_equal(draw(s, l, 40, NULL, NULL, NULL), 6);
    l[33] = 6.5f;
    assert_int_equal(draw(s, l, 40, NULL, NULL, NULL), 33);
    sampler_free(s);

    /* temperatures too small to divide by are greedy too */
    p.temperature = 1e-40f;
    s = make(&p, 40);
    assert_int_equal(draw(s, l, 40, NULL, NULL, NULL), 33);
    sampler_free(s);
}

static void test_special_values(void **state)
{
    (void)state;
    struct sampler_params p;
    sampler_params_default(&p);
    p.temperature = 0;
    float l[20];
    for (int i = 0; i < 20; i++)
        l[i] = NAN;
    l[4] = -3;
    struct sampler *s = make(&p, 20);
    assert_int_equal(draw(s, l, 20, NULL, NULL, NULL), 4); /* NaN is never chosen */
    l[9] = INFINITY;
    assert_int_equal(draw(s, l, 20, NULL, NULL, NULL), 9);
    sampler_free(s);

    /* The same with sampling: +inf takes all the mass. */
    sampler_params_default(&p);
    p.seed = 3;
    s = make(&p, 20);
    for (int k = 0; k < 50; k++)
        assert_int_equal(draw(s, l, 20, NULL, NULL, NULL), 9);
    l[9] = NAN;
    for (int k = 0; k < 50; k++)
        assert_int_equal(draw(s, l, 20, NULL, NULL, NULL), 4);

    /* Nothing finite: an error, not a token. */
    for (int i = 0; i < 20; i++)
        l[i] = i % 2 ? NAN : -INFINITY;
    struct err e = {0};
    struct sampler_result r;
    assert_false(sampler_sample(s, l, NULL, NULL, &r, &e));
    assert_int_equal(e.code, ERR_UNPROCESSABLE);
    sampler_free(s);
}

/* ---- the distribution ---------------------------------------------------------------- */

static void test_temperature_one_matches_softmax(void **state)
{
    (void)state;
    const double probs[5] = {0.1, 0.2, 0.3, 0.4, 0};
    float l[5];
    from_probs(l, probs, 5);
    struct sampler_params p;
    sampler_params_default(&p);
    p.seed = 42;
    struct sampler *s = make(&p, 5);
    int count[5];
    const int n = 20000;
    histogram(s, l, 5, n, NULL, NULL, count);
    for (int i = 0; i < 5; i++)
        assert_freq(count[i], n, probs[i]);
    assert_int_equal(count[4], 0);
    sampler_free(s);
}

static void test_temperature_sharpens(void **state)
{
    (void)state;
    const double probs[3] = {0.5, 0.3, 0.2};
    float l[3];
    from_probs(l, probs, 3);
    struct sampler_params p;
    sampler_params_default(&p);
    p.temperature = 0.5f; /* p^2 renormalised: .25 .09 .04 over .38 */
    p.seed = 7;
    struct sampler *s = make(&p, 3);
    int count[3];
    histogram(s, l, 3, 20000, NULL, NULL, count);
    assert_freq(count[0], 20000, 0.25 / 0.38);
    assert_freq(count[1], 20000, 0.09 / 0.38);
    assert_freq(count[2], 20000, 0.04 / 0.38);
    sampler_free(s);
}

static void test_top_k_top_p_min_p(void **state)
{
    (void)state;
    const double probs[6] = {0.4, 0.25, 0.15, 0.1, 0.06, 0.04};
    float l[6];
    from_probs(l, probs, 6);
    int count[6];
    struct sampler_params p;

    sampler_params_default(&p);
    p.top_k = 2;
    struct sampler *s = make(&p, 6);
    histogram(s, l, 6, 10000, NULL, NULL, count);
    assert_freq(count[0], 10000, 0.4 / 0.65);
    assert_freq(count[1], 10000, 0.25 / 0.65);
    sampler_free(s);

    /* top_p 0.7: .4, .65, .8 -> three tokens */
    sampler_params_default(&p);
    p.top_p = 0.7f;
    s = make(&p, 6);
    histogram(s, l, 6, 10000, NULL, NULL, count);
    assert_freq(count[2], 10000, 0.15 / 0.8);
    assert_int_equal(count[3] + count[4] + count[5], 0);
    sampler_free(s);

    /* min_p 0.2: p >= 0.08 -> four tokens */
    sampler_params_default(&p);
    p.min_p = 0.2f;
    s = make(&p, 6);
    histogram(s, l, 6, 10000, NULL, NULL, count);
    assert_freq(count[3], 10000, 0.1 / 0.9);
    assert_int_equal(count[4] + count[5], 0);
    sampler_free(s);

    /* all three: top_k 5 (.96), min_p .2 (four, .9), top_p .5 of .9 = .45 -> two */
    sampler_params_default(&p);
    p.top_k = 5;
    p.min_p = 0.2f;
    p.top_p = 0.5f;
    s = make(&p, 6);
    histogram(s, l, 6, 10000, NULL, NULL, count);
    assert_freq(count[0], 10000, 0.4 / 0.65);
    assert_int_equal(count[2] + count[3] + count[4] + count[5], 0);
    sampler_free(s);

    /* top_p applies after temperature: at T=0.5 (.16 .0625 .0225 ...) the
     * first token alone holds 0.6 of the mass */
    sampler_params_default(&p);
    p.temperature = 0.5f;
    p.top_p = 0.6f;
    s = make(&p, 6);
    histogram(s, l, 6, 2000, NULL, NULL, count);
    assert_int_equal(count[0], 2000);
    sampler_free(s);
}

/* Large candidate sets go through the histogram cut: check it against a
 * plain full sort. Logits descend with the id (some ties), so the order is
 * simply by id and the sets are prefixes 0..m-1. */
static void test_large_sets_match_full_sort(void **state)
{
    (void)state;
    const int32_t n = 50000;
    float *l = malloc((size_t)n * sizeof *l);
    for (int32_t i = 0; i < n; i++)
        l[i] = -(float)(i / 2) * 0.0004f; /* pairs of ties, about 10 nats overall */
    int *count = malloc((size_t)n * sizeof *count);
    struct sampler_params p;

    /* top_k far above the small-set threshold */
    sampler_params_default(&p);
    p.top_k = 3001;
    struct sampler *s = make(&p, n);
    histogram(s, l, n, 3000, NULL, NULL, count);
    int32_t max_seen = 0;
    for (int32_t i = 0; i < n; i++)
        if (count[i])
            max_seen = i;
    assert_true(max_seen <= 3000);
    assert_true(max_seen > 2900);
    sampler_free(s);

    /* top_p: the reference cut from a sequential sum in double */
    for (int t = 0; t < 3; t++) {
        const float temps[3] = {1.0f, 0.7f, 1.9f};
        const float tops[3] = {0.5f, 0.9f, 0.35f};
        double z = 0, cum = 0;
        for (int32_t i = 0; i < n; i++)
            z += exp((double)l[i] / temps[t]);
        int32_t cut = 0;
        while (cum < tops[t] * z)
            cum += exp((double)l[cut++] / temps[t]);
        sampler_params_default(&p);
        p.temperature = temps[t];
        p.top_p = tops[t];
        p.seed = (uint64_t)t;
        s = make(&p, n);
        histogram(s, l, n, 4000, NULL, NULL, count);
        max_seen = 0;
        for (int32_t i = 0; i < n; i++)
            if (count[i])
                max_seen = i;
        if (max_seen > cut) /* cut is the count; the last member is cut - 1, +1 for rounding */
            fail_msg("T=%g top_p=%g: drew %d, reference set ends at %d", temps[t], tops[t],
                     max_seen, cut - 1);
        assert_true(max_seen > cut * 9 / 10);
        sampler_free(s);
    }

    /* min_p on the whole vocabulary: p >= min_p <=> i/2 * 0.0004 <= ln(1/min_p) */
    sampler_params_default(&p);
    p.min_p = 0.5f;
    s = make(&p, n);
    histogram(s, l, n, 4000, NULL, NULL, count);
    max_seen = 0;
    for (int32_t i = 0; i < n; i++)
        if (count[i])
            max_seen = i;
    int32_t last = 2 * (int32_t)(log(2.0) / 0.0004) + 1; /* 3465 */
    assert_true(max_seen <= last);
    assert_true(max_seen > last - 200);
    sampler_free(s);
    free(l);
    free(count);
}

/* ---- penalties and bias (visible in the logits, which are processed in place) -- */

static void process(struct sampler *s, float *l)
{
    struct err e = {0};
    struct sampler_result r;
    if (!sampler_sample(s, l, NULL, NULL, &r, &e))
        fail_msg("%s", e.msg);
}

static void test_repetition_penalty_window(void **state)
{
    (void)state;
    struct sampler_params p;
    sampler_params_default(&p);
    p.temperature = 0;
    p.repetition_penalty = 2;
    p.penalty_last_n = 3;
    struct sampler *s = make(&p, 6);
    struct err e = {0};
    /* prompt 0 1, generated 2 3: the window (last 3) is 1 2 3 */
    assert_true(sampler_accept(s, 0, true, &e));
    assert_true(sampler_accept(s, 1, true, &e));
    assert_true(sampler_accept(s, 2, false, &e));
    assert_true(sampler_accept(s, 3, false, &e));
    float l[6] = {4, 4, -4, 0, 4, -4};
    process(s, l);
    assert_true(l[0] == 4);    /* left the window */
    assert_true(l[1] == 2);    /* positive: divided */
    assert_true(l[2] == -8);   /* negative: multiplied */
    assert_true(l[3] == 0);    /* zero stays zero */
    assert_true(l[4] == 4 && l[5] == -4);
    /* a token seen twice in the window is penalised once */
    assert_true(sampler_accept(s, 1, false, &e));
    assert_true(sampler_accept(s, 1, false, &e)); /* window: 3 1 1 */
    float m[6] = {4, 4, 4, 4, 4, 4};
    process(s, m);
    assert_true(m[1] == 2 && m[2] == 4 && m[3] == 2);
    sampler_free(s);

    /* -1: every token seen, prompt included */
    p.penalty_last_n = -1;
    s = make(&p, 6);
    for (int32_t t = 0; t < 5; t++)
        assert_true(sampler_accept(s, t, t < 3, &e));
    float k[6] = {3, 3, 3, 3, 3, 3};
    process(s, k);
    for (int i = 0; i < 5; i++)
        assert_true(k[i] == 1.5f);
    assert_true(k[5] == 3);
    sampler_free(s);

    /* 0: off */
    p.penalty_last_n = 0;
    s = make(&p, 6);
    assert_true(sampler_accept(s, 2, false, &e));
    float z[6] = {3, 3, 3, 3, 3, 3};
    process(s, z);
    assert_true(z[2] == 3);
    sampler_free(s);
}

static void test_presence_frequency_bias(void **state)
{
    (void)state;
    struct sampler_bias bias[] = {{4, -100}, {5, 2.5f}, {5, 0.5f}, {1, 1}};
    struct sampler_params p;
    sampler_params_default(&p);
    p.temperature = 0;
    p.presence_penalty = 0.5f;
    p.frequency_penalty = 0.25f;
    p.repetition_penalty = 2;
    p.logit_bias = bias;
    p.n_logit_bias = 4;
    struct sampler *s = make(&p, 8);
    bias[0].bias = 0; /* the sampler holds its own copy */
    struct err e = {0};
    assert_true(sampler_accept(s, 0, true, &e)); /* prompt: no presence/frequency */
    assert_true(sampler_accept(s, 1, false, &e));
    assert_true(sampler_accept(s, 1, false, &e));
    assert_true(sampler_accept(s, 1, false, &e));
    assert_true(sampler_accept(s, 2, false, &e));
    float l[8] = {2, 2, 2, 2, 2, 2, 2, 2};
    process(s, l);
    assert_true(l[0] == 1);                       /* repetition only */
    assert_true(l[1] == 1 - 0.5f - 0.75f + 1);    /* rep, presence, 3x frequency, bias */
    assert_true(l[2] == 1 - 0.5f - 0.25f);
    assert_true(l[3] == 2);
    assert_true(l[4] == -98);                     /* bias after penalties */
    assert_true(l[5] == 5);                       /* entries for one token add up */
    sampler_free(s);
}

static void test_logit_bias_bans_and_forces(void **state)
{
    (void)state;
    struct sampler_bias ban[] = {{0, -100}};
    struct sampler_bias force[] = {{3, 100}};
    float l[4] = {10, 5, 4, -20};
    struct sampler_params p;
    sampler_params_default(&p);
    p.seed = 11;
    p.logit_bias = ban;
    p.n_logit_bias = 1;
    struct sampler *s = make(&p, 4);
    for (int i = 0; i < 500; i++)
        assert_int_not_equal(draw(s, l, 4, NULL, NULL, NULL), 0);
    sampler_free(s);
    p.logit_bias = force;
    s = make(&p, 4);
    for (int i = 0; i < 500; i++)
        assert_int_equal(draw(s, l, 4, NULL, NULL, NULL), 3);
    sampler_free(s);
}

/* ---- logprobs -------------------------------------------------------------------- */

static void test_logprobs(void **state)
{
    (void)state;
    float l[7] = {1, 3, 3, -2, 0.5f, -1e30f, 2};
    struct sampler_bias bias[] = {{6, 1.5f}}; /* 3.5: now the best */
    struct sampler_params p;
    sampler_params_default(&p);
    p.temperature = 0.3f; /* does not change the logprobs */
    p.logprobs = true;
    p.top_logprobs = 4;
    p.logit_bias = bias;
    p.n_logit_bias = 1;
    struct sampler *s = make(&p, 7);
    struct sampler_result r;
    int32_t tok = draw(s, l, 7, NULL, NULL, &r);
    double z = 0;
    float ref[7] = {1, 3, 3, -2, 0.5f, -1e30f, 3.5f};
    for (int i = 0; i < 7; i++)
        z += exp((double)ref[i] - 3.5);
    double lse = 3.5 + log(z);
    assert_int_equal(r.n_top, 4);
    const int32_t want[4] = {6, 1, 2, 0}; /* ties 1 and 2: lower id first */
    for (int j = 0; j < 4; j++) {
        assert_int_equal(r.top[j].token, want[j]);
        assert_true(fabs(r.top[j].logprob - (ref[want[j]] - lse)) < 1e-5);
    }
    assert_true(fabs(r.logprob - (ref[tok] - lse)) < 1e-5);
    sampler_free(s);

    /* the floor, and top_logprobs larger than the vocabulary */
    sampler_params_default(&p);
    p.temperature = 0;
    p.logprobs = true;
    p.top_logprobs = 20;
    s = make(&p, 7);
    float m[7] = {1, 3, 3, -2, 0.5f, -1e30f, 2};
    draw(s, m, 7, NULL, NULL, &r);
    assert_int_equal(r.token, 1);
    assert_int_equal(r.n_top, 7);
    assert_int_equal(r.top[6].token, 5);
    assert_true(r.top[6].logprob == -9999.0f);
    double total = 0;
    for (int j = 0; j < 7; j++)
        total += exp(r.top[j].logprob);
    assert_true(fabs(total - 1) < 1e-5);
    sampler_free(s);

    /* logprobs without alternatives */
    sampler_params_default(&p);
    p.logprobs = true;
    s = make(&p, 7);
    draw(s, m, 7, NULL, NULL, &r);
    assert_int_equal(r.n_top, 0);
    assert_true(r.logprob < 0);
    sampler_free(s);
}

/* ---- the allowed filter ---------------------------------------------------------- */

struct filter {
    const bool *ok;
    int calls;
    int max_id_asked;
};

static bool filter_fn(void *ctx, int32_t token)
{
    struct filter *f = ctx;
    f->calls++;
    if (token > f->max_id_asked)
        f->max_id_asked = token;
    return f->ok[token];
}

static void test_allowed_greedy_and_errors(void **state)
{
    (void)state;
    float l[6] = {5, 1, 4, 3, 2, 0};
    bool ok[6] = {false, true, false, true, false, false};
    struct filter f = {ok, 0, 0};
    struct sampler_params p;
    sampler_params_default(&p);
    p.temperature = 0;
    struct sampler *s = make(&p, 6);
    assert_int_equal(draw(s, l, 6, filter_fn, &f, NULL), 3);
    assert_int_equal(f.calls, 3); /* 0, 2, 3 in order: lazily */
    bool none[6] = {0};
    f.ok = none;
    struct err e = {0};
    struct sampler_result r;
    float m[6] = {5, 1, 4, 3, 2, 0};
    assert_false(sampler_sample(s, m, filter_fn, &f, &r, &e));
    assert_int_equal(e.code, ERR_UNPROCESSABLE);
    sampler_free(s);
}

static void test_allowed_distribution(void **state)
{
    (void)state;
    const double probs[5] = {0.3, 0.1, 0.25, 0.2, 0.15};
    float l[5];
    from_probs(l, probs, 5);
    bool ok[5] = {false, true, false, true, true};
    struct filter f = {ok, 0, 0};
    struct sampler_params p;
    sampler_params_default(&p);
    p.seed = 99;
    struct sampler *s = make(&p, 5);
    int count[5];
    const int n = 20000;
    histogram(s, l, 5, n, filter_fn, &f, count);
    assert_int_equal(count[0] + count[2], 0);
    assert_freq(count[1], n, 0.1 / 0.45);
    assert_freq(count[3], n, 0.2 / 0.45);
    assert_freq(count[4], n, 0.15 / 0.45);
    sampler_free(s);
}

/* A big vocabulary where the likely tokens are allowed: the filter is asked
 * about a handful of candidates, not the vocabulary. (A draw that lands in
 * a heavy tail has to walk to its token; that is the price of exactness.) */
static void test_allowed_is_lazy(void **state)
{
    (void)state;
    const int32_t n = 32000;
    float *l = malloc((size_t)n * sizeof *l);
    bool *ok = malloc((size_t)n);
    for (int32_t i = 0; i < n; i++) {
        l[i] = (float)((i * 7919) % 1000) * 0.001f - 10; /* a tail of ~0.1% mass */
        ok[i] = i % 3 != 0;
    }
    l[100] = 12;
    l[200] = 11.5f;
    l[300] = 11; /* disallowed */
    ok[300] = false;
    struct filter f = {ok, 0, 0};
    struct sampler_params p;
    sampler_params_default(&p);
    p.seed = 5;
    struct sampler *s = make(&p, n);
    int calls = 0;
    for (int i = 0; i < 200; i++) {
        f.calls = 0;
        int32_t t = draw(s, l, n, filter_fn, &f, NULL);
        assert_true(ok[t]);
        calls += f.calls;
    }
    assert_true(calls < 200 * 8);
    sampler_free(s);

    /* top_k leaves nothing allowed: the best allowed token outside it */
    sampler_params_default(&p);
    p.top_k = 1;
    p.seed = 1;
    l[100] = 13;
    ok[100] = false;
    s = make(&p, n);
    assert_int_equal(draw(s, l, n, filter_fn, &f, NULL), 200);
    sampler_free(s);
    free(l);
    free(ok);
}

/* Allowed tokens far down the order: past the sorted head the filtered draw
 * visits the rest in id order and must stay exact, and the greedy and
 * beyond-truncation fallbacks must still find the best allowed token. */
static void test_allowed_far_down(void **state)
{
    (void)state;
    const int32_t n = 3000;
    float *l = malloc((size_t)n * sizeof *l);
    bool *ok = calloc((size_t)n, 1);
    int *count = malloc((size_t)n * sizeof *count);
    for (int32_t i = 0; i < n; i++)
        l[i] = -(float)i * 0.002f; /* order = id order, gently decreasing */
    const int32_t picks[4] = {700, 1300, 2100, 2999};
    double z = 0;
    for (int k = 0; k < 4; k++) {
        ok[picks[k]] = true;
        z += exp(l[picks[k]]);
    }
    struct filter f = {ok, 0, 0};
    struct sampler_params p;
    sampler_params_default(&p);
    p.seed = 31;
    struct sampler *s = make(&p, n);
    const int draws = 8000;
    histogram(s, l, n, draws, filter_fn, &f, count);
    for (int k = 0; k < 4; k++)
        assert_freq(count[picks[k]], draws, exp(l[picks[k]]) / z);
    sampler_free(s);

    /* greedy: the best allowed, past the sorted head; ties to the lower id */
    sampler_params_default(&p);
    p.temperature = 0;
    s = make(&p, n);
    assert_int_equal(draw(s, l, n, filter_fn, &f, NULL), 700);
    for (int32_t i = 0; i < n; i++)
        l[i] = 1;
    ok[650] = true;
    assert_int_equal(draw(s, l, n, filter_fn, &f, NULL), 650);
    sampler_free(s);

    /* a truncated set above the small-set size with nothing allowed in it */
    for (int32_t i = 0; i < n; i++)
        l[i] = -(float)i * 0.002f;
    sampler_params_default(&p);
    p.top_k = 500;
    s = make(&p, n);
    for (int k = 0; k < 20; k++)
        assert_int_equal(draw(s, l, n, filter_fn, &f, NULL), 650);
    sampler_free(s);
    free(l);
    free(ok);
    free(count);
}

/* ---- determinism ----------------------------------------------------------------- */

static void fill_row(float *l, int32_t n, uint32_t salt)
{
    uint32_t x = 2463534242u ^ salt;
    for (int32_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        l[i] = (float)(x % 20000) / 1000.0f - 10.0f;
    }
}

static void run_sequence(enum sampler_isa isa, const struct sampler_params *base, int32_t n,
                         int steps, int32_t *tokens, float *logprobs)
{
    struct sampler_params p = *base;
    p.isa = isa;
    struct sampler *s = make(&p, n);
    float *l = malloc((size_t)n * sizeof *l);
    struct err e = {0};
    for (int i = 0; i < steps; i++) {
        fill_row(l, n, (uint32_t)i);
        struct sampler_result r;
        if (!sampler_sample(s, l, NULL, NULL, &r, &e))
            fail_msg("%s", e.msg);
        tokens[i] = r.token;
        logprobs[i] = r.logprob;
        assert_true(sampler_accept(s, r.token, false, &e));
    }
    free(l);
    sampler_free(s);
}

static bool isa_available(enum sampler_isa isa)
{
    struct sampler_params p;
    sampler_params_default(&p);
    p.isa = isa;
    struct err e = {0};
    struct sampler *s = sampler_new(&p, 4, &e);
    if (!s)
        return false;
    sampler_free(s);
    return true;
}

/* Scoring a given token (a prompt's) ignores penalties, bias and
 * temperature, and leaves the sampler's state alone. */
static void test_score(void **state)
{
    (void)state;
    struct sampler_bias bias[] = {{0, 50.0f}};
    struct sampler_params p;
    sampler_params_default(&p);
    p.temperature = 0.3f;
    p.presence_penalty = 2;
    p.logit_bias = bias;
    p.n_logit_bias = 1;
    p.logprobs = true;
    p.top_logprobs = 2;
    struct sampler *s = make(&p, 7);
    assert_true(sampler_accept(s, 1, true, NULL));
    float l[7] = {1, 3, 3, -2, 0.5f, -1e30f, 2};
    double z = 0;
    for (int i = 0; i < 7; i++)
        z += exp((double)l[i] - 3);
    double lse = 3 + log(z);
    float work[7];
    struct sampler_result r;
    struct err e = {0};
    for (int32_t t = 0; t < 7; t++) {
        memcpy(work, l, sizeof work);
        assert_true(sampler_score(s, work, t, &r, &e));
        assert_int_equal(r.token, t);
        double want = t == 5 ? -9999.0 : l[t] - lse;
        assert_true(fabs(r.logprob - want) < 1e-5);
        assert_int_equal(r.n_top, 2);
        assert_int_equal(r.top[0].token, 1); /* the raw best, penalty and bias not applied */
        assert_int_equal(r.top[1].token, 2);
    }
    memcpy(work, l, sizeof work);
    assert_false(sampler_score(s, work, 7, &r, &e));
    assert_int_equal(e.code, ERR_INVALID);
    sampler_free(s);
}

/* Same seed, same logits: same tokens, whichever kernels run, and the same
 * tokens as recorded here (which is what every platform must produce). */
static void test_determinism_golden(void **state)
{
    (void)state;
    enum { STEPS = 24 };
    struct sampler_params p;
    sampler_params_default(&p);
    p.seed = 20240601;
    p.temperature = 1.3f;
    p.top_p = 0.9f;
    p.frequency_penalty = 0.3f;
    p.logprobs = true;
    const int32_t n = 4099;
    int32_t ref[STEPS], got[STEPS];
    float ref_lp[STEPS], got_lp[STEPS];
    run_sequence(SAMPLER_ISA_GENERIC, &p, n, STEPS, ref, ref_lp);
    const enum sampler_isa isas[] = {SAMPLER_ISA_AUTO, SAMPLER_ISA_AVX2, SAMPLER_ISA_AVX512};
    for (size_t k = 0; k < sizeof isas / sizeof isas[0]; k++) {
        if (!isa_available(isas[k])) {
            fprintf(stderr, "skip: instruction set %d not available here\n", (int)isas[k]);
            continue;
        }
        run_sequence(isas[k], &p, n, STEPS, got, got_lp);
        assert_memory_equal(got, ref, sizeof ref);
        assert_memory_equal(got_lp, ref_lp, sizeof ref_lp);
    }
    static const int32_t golden[STEPS] = {1530, 1960, 3644, 2390, 2771, 1386, 244,  1887,
                                          3683, 1482, 1754, 1456, 1394, 844,  3343, 2406,
                                          1598, 1479, 1208, 2941, 3005, 99,   225,  2870};
    for (int i = 0; i < STEPS; i++)
        if (ref[i] != golden[i])
            fail_msg("step %d: token %d, recorded %d", i, ref[i], golden[i]);

    /* another seed gives another sequence */
    p.seed++;
    run_sequence(SAMPLER_ISA_GENERIC, &p, n, STEPS, got, got_lp);
    assert_true(memcmp(got, ref, sizeof ref) != 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_params_check),
        cmocka_unit_test(test_accept_rejects_bad_ids),
        cmocka_unit_test(test_greedy_argmax_and_ties),
        cmocka_unit_test(test_special_values),
        cmocka_unit_test(test_temperature_one_matches_softmax),
        cmocka_unit_test(test_temperature_sharpens),
        cmocka_unit_test(test_top_k_top_p_min_p),
        cmocka_unit_test(test_large_sets_match_full_sort),
        cmocka_unit_test(test_repetition_penalty_window),
        cmocka_unit_test(test_presence_frequency_bias),
        cmocka_unit_test(test_logit_bias_bans_and_forces),
        cmocka_unit_test(test_logprobs),
        cmocka_unit_test(test_allowed_greedy_and_errors),
        cmocka_unit_test(test_allowed_distribution),
        cmocka_unit_test(test_allowed_is_lazy),
        cmocka_unit_test(test_allowed_far_down),
        cmocka_unit_test(test_score),
        cmocka_unit_test(test_determinism_golden),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * bench/sampler.c — cost of one sampler_sample() call for typical settings.
 *
 * The baseline, measured in the same run on the same rows, is the least any
 * sampler must do: copy the logits row (sampler_sample works in place, so
 * every timed call gets a fresh copy) and take its argmax. Figures are
 * reported as a ratio to that baseline, with microseconds for orientation.
 * Each figure is the best of ROUNDS rounds, so that other work on a shared
 * machine inflates it less.
 *
 *   build/bench/sampler [iterations]      (default 300 per round)
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/sampler.h"

#define N_ROWS 16
#define ROUNDS 5

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

/* Two kinds of rows. "peaked": what a trained model mostly gives, a few
 * strong candidates over a roughly normal bulk (sd 2) holding well under 1%
 * of the mass. "flat": an uncertain step, bulk sd 2.5 holding a quarter of
 * the mass at T=0.8, the worst case for top_p. */
static void make_rows(float *rows, int32_t n_vocab, bool flat, uint64_t seed)
{
    uint64_t x = seed;
    float sd = flat ? 4.3f : 3.5f, top = flat ? 14.0f : 18.0f;
    for (int r = 0; r < N_ROWS; r++) {
        float *l = rows + (size_t)r * (size_t)n_vocab;
        for (int32_t i = 0; i < n_vocab; i++) {
            float s = 0;
            for (int k = 0; k < 4; k++) {
                x = x * 6364136223846793005ull + 1442695040888963407ull;
                s += (float)(x >> 40) / (float)(1 << 24);
            }
            l[i] = (s - 2.0f) * sd; /* sum of 4 uniforms: sd = 0.58 * scale */
        }
        for (int k = 0; k < 8; k++) {
            x = x * 6364136223846793005ull + 1442695040888963407ull;
            l[(x >> 33) % (uint64_t)n_vocab] = top - (float)k;
        }
    }
}

static volatile int32_t sink;

static double time_baseline(const float *rows, float *work, int32_t n_vocab, int iters)
{
    double fastest = 1e300;
    for (int round = 0; round < ROUNDS; round++) {
        double t0 = now_us();
        for (int it = 0; it < iters; it++) {
            const float *src = rows + (size_t)(it % N_ROWS) * (size_t)n_vocab;
            memcpy(work, src, (size_t)n_vocab * sizeof *work);
            int32_t best = 0;
            float bv = work[0];
            for (int32_t i = 1; i < n_vocab; i++) {
                if (work[i] > bv) {
                    bv = work[i];
                    best = i;
                }
            }
            sink = best;
        }
        double t = (now_us() - t0) / iters;
        fastest = t < fastest ? t : fastest;
    }
    return fastest;
}

/* Constraint stand-ins: inside a JSON string most tokens fit; at a
 * structural position only a few, usually not the likely ones. */
static bool allow_half(void *ctx, int32_t token)
{
    (void)ctx;
    return token % 2 == 0;
}

static bool allow_rare(void *ctx, int32_t token)
{
    (void)ctx;
    return token % 1000 == 7;
}

static double time_case(const struct sampler_params *p, sampler_allowed_fn allowed,
                        const float *rows, float *work, int32_t n_vocab, int iters)
{
    struct err e = {0};
    struct sampler *s = sampler_new(p, n_vocab, &e);
    if (!s) {
        fprintf(stderr, "sampler_new: %s\n", e.msg);
        exit(1);
    }
    /* A generated history, so the penalties have something to do. */
    for (int32_t i = 0; i < 256; i++)
        sampler_accept(s, (i * 7919) % n_vocab, i < 128, &e);
    struct sampler_result r;
    double fastest = 1e300;
    for (int round = 0; round < ROUNDS; round++) {
        double t0 = now_us();
        for (int it = 0; it < iters; it++) {
            const float *src = rows + (size_t)(it % N_ROWS) * (size_t)n_vocab;
            memcpy(work, src, (size_t)n_vocab * sizeof *work);
            if (!sampler_sample(s, work, allowed, NULL, &r, &e)) {
                fprintf(stderr, "sampler_sample: %s\n", e.msg);
                exit(1);
            }
            sink = r.token;
        }
        double t = (now_us() - t0) / iters;
        fastest = t < fastest ? t : fastest;
    }
    sampler_free(s);
    return fastest;
}

int main(int argc, char **argv)
{
    int iters = argc > 1 ? atoi(argv[1]) : 300;
    if (iters < 1)
        iters = 1;
    const int32_t vocabs[] = {32000, 152064};
    for (size_t v = 0; v < 4; v++) {
        int32_t n = vocabs[v / 2];
        bool flat = v % 2;
        const char *kind = flat ? "flat" : "peaked";
        float *rows = malloc((size_t)N_ROWS * (size_t)n * sizeof *rows);
        float *work = malloc((size_t)n * sizeof *work);
        if (!rows || !work)
            return 1;
        make_rows(rows, n, flat, 42);
        double base = time_baseline(rows, work, n, iters);
        printf("sampler n_vocab=%d %s rows: baseline (copy row + argmax) %.1f us/call\n",
               (int)n, kind, base);

        struct {
            const char *name;
            struct sampler_params p;
            sampler_allowed_fn allowed;
        } cases[10] = {0};
        int nc = 0;
        for (int i = 0; i < 10; i++)
            sampler_params_default(&cases[i].p);
        cases[nc].name = "greedy";
        cases[nc++].p.temperature = 0;
        cases[nc].name = "T=1 (no truncation)";
        nc++;
        cases[nc].name = "T=0.8 top_p=0.95";
        cases[nc].p.temperature = 0.8f;
        cases[nc++].p.top_p = 0.95f;
        cases[nc].name = "T=0.7 top_k=40";
        cases[nc].p.temperature = 0.7f;
        cases[nc++].p.top_k = 40;
        cases[nc].name = "T=0.8 top_k=40 top_p=0.9 min_p=0.05";
        cases[nc].p.temperature = 0.8f;
        cases[nc].p.top_k = 40;
        cases[nc].p.top_p = 0.9f;
        cases[nc++].p.min_p = 0.05f;
        cases[nc].name = "T=0.8 top_p=0.95 penalties logprobs=5";
        cases[nc].p.temperature = 0.8f;
        cases[nc].p.top_p = 0.95f;
        cases[nc].p.repetition_penalty = 1.1f;
        cases[nc].p.presence_penalty = 0.5f;
        cases[nc].p.frequency_penalty = 0.3f;
        cases[nc].p.logprobs = true;
        cases[nc++].p.top_logprobs = 5;
        cases[nc].name = "T=1, generic (non-SIMD-dispatched) kernels";
        cases[nc++].p.isa = SAMPLER_ISA_GENERIC;
        cases[nc].name = "T=1, filter allows 1 token in 2";
        cases[nc++].allowed = allow_half;
        cases[nc].name = "T=1, filter allows 1 token in 1000";
        cases[nc++].allowed = allow_rare;
        for (int i = 0; i < nc; i++) {
            double t = time_case(&cases[i].p, cases[i].allowed, rows, work, n, iters);
            printf("sampler n_vocab=%-6d %-6s %-40s %7.1f us/call %5.2fx baseline\n", (int)n,
                   kind, cases[i].name, t, t / base);
        }
        free(rows);
        free(work);
    }
    return 0;
}

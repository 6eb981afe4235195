/*
 * pacer.c — see pacer.h.
 */
#include "engine/pacer.h"

void pacer_init(struct pacer *p, int factor, double min_target_ms)
{
    *p = (struct pacer){.factor = factor > 0 ? factor : 0, .min_target_ms = min_target_ms};
}

double pacer_target_ms(const struct pacer *p)
{
    double t = p->factor * p->base_ms;
    return p->factor > 0 && p->base_ms > 0 && t >= p->min_target_ms ? t : 0;
}

void pacer_observe(struct pacer *p, int n_tokens, double ms)
{
    if (p->factor == 0 || n_tokens < 1 || !(ms > 0))
        return;
    if (n_tokens == 1) {
        /* A fifth of each new sample: the base follows the machine's memory
         * bandwidth as it drifts, but one descheduled step moves it little.
         * One token says nothing about the cost of many. */
        p->base_ms = p->base_ms > 0 ? p->base_ms + 0.2 * (ms - p->base_ms) : ms;
        if (p->budget <= 0)
            p->budget = p->factor; /* slow start: grows as steps prove it fits */
        return;
    }
    if (!(p->base_ms > 0))
        return;
    double target = p->factor * p->base_ms, fits = n_tokens * target / ms;
    /* Only steps near the operating point teach: a light-load step of a few
     * tokens, slowed by a neighbour, must not shrink the budget. */
    if (ms >= target / 2 && n_tokens >= p->budget / 2)
        p->budget += 0.5 * (fits - p->budget);
    else if (ms < target / 2 && n_tokens >= (int)p->budget)
        p->budget = fits < 2 * p->budget ? fits : 2 * p->budget;
    if (p->budget < 1)
        p->budget = 1;
}

int pacer_step_tokens(const struct pacer *p, int max)
{
    if (pacer_target_ms(p) == 0 || p->budget <= 0 || p->budget >= max)
        return max;
    return p->budget < 1 ? 1 : (int)p->budget;
}

/* sampler.c — see sampler.h for the contract. */
#include "engine/sampler.h"

#include <float.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

/* Cross-platform determinism rests on every float operation being rounded
 * on its own. GCC in ISO C mode (-std=c17) already never fuses a*b+c; clang
 * would, unless told. */
#ifdef __clang__
#pragma STDC FP_CONTRACT OFF
#endif

#define ORDER_MIN 64                          /* first batch of the sorted prefix */
#define GREEDY_BELOW 1e-4f                    /* temperatures this small are greedy */
#define SMALL_SET 256                         /* prefixes sorted outright */
#define HIST_PER_NAT 32                       /* histogram buckets per unit of x */
#define HIST_BUCKETS (HIST_PER_NAT * 32 + 1)  /* x >= 32 (p < 1.3e-14 p_max) share the last */

struct row_kernels {
    float (*max)(const float *l, int32_t n, bool *special);
    double (*exp)(const float *l, int32_t n, float max, float inv_t, float *w);
};

struct tok_count {
    int32_t token;
    uint32_t window;    /* occurrences in the repetition-penalty window */
    uint32_t generated; /* occurrences among generated tokens */
};

struct allowed_mark {
    int32_t token;
    double cum;         /* allowed mass up to and including it */
};

struct sampler {
    struct sampler_params p;
    struct sampler_bias *bias;
    int32_t n_vocab;
    uint64_t rng[4];

    /* Penalty counts: a dense array of the distinct tokens seen, indexed by
     * an open-addressing table, so memory follows the text, not the vocab. */
    bool track_window, track_generated;
    struct tok_count *counts;
    int32_t n_counts, cap_counts;
    int32_t *slots; /* index into counts, -1 = empty */
    uint32_t slot_mask;
    int32_t *ring;  /* last penalty_last_n tokens when that is > 0 */
    int32_t ring_cap, ring_len, ring_head;

    struct row_kernels kern;

    /* Per-step scratch, grown on first need: order[0..n_sorted) are the best
     * tokens, best first; w the weight of every token; pool, bucket and hist
     * serve the histogram cut; marks the allowed tokens of a filtered draw. */
    int32_t *order;
    int32_t order_cap, n_sorted;
    float *w;
    int32_t *pool;
    int32_t pool_cap;
    uint16_t *bucket;
    struct allowed_mark *marks;
    int32_t marks_cap;
    int32_t hist_count[HIST_BUCKETS];
    double hist_mass[2][HIST_BUCKETS];
};

/* ---- PRNG: xoshiro256**, seeded through splitmix64 ------------------------ */

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

static uint64_t rng_next(uint64_t st[4])
{
    uint64_t result = rotl(st[1] * 5, 7) * 9;
    uint64_t t = st[1] << 17;
    st[2] ^= st[0];
    st[3] ^= st[1];
    st[1] ^= st[2];
    st[0] ^= st[3];
    st[2] ^= t;
    st[3] = rotl(st[3], 45);
    return result;
}

/* Uniform in [0, 1), 53 bits. */
static double rng_uniform(uint64_t st[4])
{
    return (double)(rng_next(st) >> 11) * 0x1.0p-53;
}

/* ---- row kernels ------------------------------------------------------------
 *
 * Written once with GCC vector extensions (16 floats) and compiled for three
 * targets, chosen at run time. Every lane does the same IEEE operations as
 * every other target would, and sums keep 16 fixed lanes added in a fixed
 * order, so the results are bit-identical whichever target runs. */

typedef float vf16 __attribute__((vector_size(64)));
typedef int32_t vi16 __attribute__((vector_size(64)));
typedef double vd16 __attribute__((vector_size(128)));

#define LANES 16

/* e^-x for x >= 0 (+inf and NaN give 0), per lane. Cody-Waite reduction and
 * a degree-6 Taylor polynomial: relative error below 3e-7 (checked against
 * libm over every float in [-87, 0]), e^0 = 1 exactly. Not monotone at the
 * last bit, so sets are never defined by thresholding weights. */
static inline __attribute__((always_inline)) void vexp_neg(vf16 *v)
{
    const vf16 lim = (vf16){0} - 87.0f;
    vf16 y = -*v;
    vi16 keep = y > lim;
    y = (vf16)(((vi16)y & keep) | ((vi16)lim & ~keep));
    vf16 k = (y * 1.44269504088896341f + 12582912.0f) - 12582912.0f; /* round */
    vf16 r = (y - k * 0.693145751953125f) - k * 1.428606765330187e-06f;
    vf16 p = 1.0f + r * (1.0f + r * (0.5f + r * (1.0f / 6 + r * (1.0f / 24 +
             r * (1.0f / 120 + r * (1.0f / 720))))));
    vi16 bits = (__builtin_convertvector(k, vi16) + 127) << 23; /* 2^k, k in [-126, 0] */
    *v = (vf16)((vi16)(p * (vf16)bits) & keep);
}

/* Vectors travel by pointer: by value, their ABI differs between targets. */
static inline __attribute__((always_inline)) void load_pad(vf16 *v, const float *l, int32_t i,
                                                           int32_t n)
{
    if (i + LANES <= n) {
        memcpy(v, l + i, sizeof *v);
    } else {
        for (int j = 0; j < LANES; j++)
            (*v)[j] = i + j < n ? l[i + j] : -INFINITY;
    }
}

/* Maximum of the row; *special when it holds a NaN or +inf. NaN is found on
 * the bit pattern: a float compare of v != v is not vectorised by GCC. */
static inline __attribute__((always_inline)) float row_max_body(const float *l, int32_t n,
                                                                bool *special)
{
    vf16 m, v;
    load_pad(&m, l, 0, n);
    vi16 nan = ((vi16)m & 0x7fffffff) > 0x7f800000;
    for (int32_t i = LANES; i < n; i += LANES) {
        load_pad(&v, l, i, n);
        nan |= ((vi16)v & 0x7fffffff) > 0x7f800000;
        vi16 gt = v > m;
        m = (vf16)(((vi16)v & gt) | ((vi16)m & ~gt));
    }
    float r = -INFINITY;
    int any = 0;
    for (int j = 0; j < LANES; j++) {
        r = m[j] > r ? m[j] : r;
        any |= nan[j];
    }
    *special = any != 0 || r > FLT_MAX;
    return r;
}

/* w[i] = e^-((max - l[i]) * inv_t) (w may be NULL); returns the sum. */
static inline __attribute__((always_inline)) double row_exp_body(const float *l, int32_t n,
                                                                 float max, float inv_t,
                                                                 float *w)
{
    vd16 acc = {0};
    for (int32_t i = 0; i < n; i += LANES) {
        vf16 e;
        load_pad(&e, l, i, n);
        e = (max - e) * inv_t;
        vexp_neg(&e);
        if (w) {
            if (i + LANES <= n)
                memcpy(w + i, &e, sizeof e);
            else
                for (int j = 0; i + j < n; j++)
                    w[i + j] = e[j];
        }
        acc += __builtin_convertvector(e, vd16);
    }
    double s = 0;
    for (int j = 0; j < LANES; j++)
        s += acc[j];
    return s;
}

#define ROW_KERNELS(sfx, attr)                                                              \
    attr static float row_max_##sfx(const float *l, int32_t n, bool *special)              \
    {                                                                                       \
        return row_max_body(l, n, special);                                                 \
    }                                                                                       \
    attr static double row_exp_##sfx(const float *l, int32_t n, float max, float inv_t,    \
                                     float *w)                                              \
    {                                                                                       \
        return row_exp_body(l, n, max, inv_t, w);                                           \
    }

ROW_KERNELS(base, )
#if defined(__x86_64__) || defined(__i386__)
ROW_KERNELS(avx2, __attribute__((target("avx2"))))
ROW_KERNELS(avx512, __attribute__((target("avx512f"))))
#endif

static bool row_kernels_pick(enum sampler_isa isa, struct row_kernels *k, struct err *e)
{
    *k = (struct row_kernels){row_max_base, row_exp_base};
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    bool avx512 = __builtin_cpu_supports("avx512f"), avx2 = __builtin_cpu_supports("avx2");
    if ((isa == SAMPLER_ISA_AVX512 && !avx512) || (isa == SAMPLER_ISA_AVX2 && !avx2))
        return err_set(e, ERR_UNSUPPORTED, "sampler: this CPU lacks the requested instructions");
    if (isa == SAMPLER_ISA_AVX512 || (isa == SAMPLER_ISA_AUTO && avx512))
        *k = (struct row_kernels){row_max_avx512, row_exp_avx512};
    else if (isa == SAMPLER_ISA_AVX2 || (isa == SAMPLER_ISA_AUTO && avx2))
        *k = (struct row_kernels){row_max_avx2, row_exp_avx2};
#else
    if (isa != SAMPLER_ISA_AUTO && isa != SAMPLER_ISA_GENERIC)
        return err_set(e, ERR_UNSUPPORTED, "sampler: this CPU lacks the requested instructions");
#endif
    return true;
}

/* ln(y) for y > 0 with double arithmetic only (frexp is exact), so the
 * min_p threshold is the same everywhere. */
static double log_det(double y)
{
    int ex;
    double m = frexp(y, &ex);
    if (m < 0.70710678118654752) {
        m *= 2;
        ex--;
    }
    double t = (m - 1) / (m + 1), t2 = t * t, sum = 0;
    for (int k = 21; k >= 1; k -= 2)
        sum = sum * t2 + 1.0 / k;
    return ex * 0.69314718055994531 + 2 * t * sum;
}

/* ---- parameters ----------------------------------------------------------- */

void sampler_params_default(struct sampler_params *p)
{
    *p = (struct sampler_params){
        .temperature = 1.0f,
        .top_p = 1.0f,
        .repetition_penalty = 1.0f,
        .penalty_last_n = -1,
    };
}

static bool in_range(float v, float lo, float hi)
{
    return isfinite(v) && v >= lo && v <= hi;
}

bool sampler_params_check(const struct sampler_params *p, int32_t n_vocab, struct err *e)
{
    if (n_vocab <= 0)
        return err_set(e, ERR_INTERNAL, "sampler: vocabulary size %d", (int)n_vocab);
    if (!in_range(p->temperature, 0, 2))
        return err_set_param(e, ERR_INVALID, "temperature",
                             "temperature must be between 0 and 2");
    if (!in_range(p->top_p, 0, 1) || p->top_p == 0)
        return err_set_param(e, ERR_INVALID, "top_p",
                             "top_p must be greater than 0 and at most 1");
    if (p->top_k < 0)
        return err_set_param(e, ERR_INVALID, "top_k", "top_k must be 0 (off) or positive");
    if (!in_range(p->min_p, 0, 1))
        return err_set_param(e, ERR_INVALID, "min_p", "min_p must be between 0 and 1");
    if (!in_range(p->repetition_penalty, 0, 10) || p->repetition_penalty == 0)
        return err_set_param(e, ERR_INVALID, "repetition_penalty",
                             "repetition_penalty must be greater than 0 and at most 10");
    if (p->penalty_last_n < -1)
        return err_set_param(e, ERR_INVALID, "penalty_last_n",
                             "penalty_last_n must be -1 (all tokens), 0 (off) or positive");
    if (!in_range(p->presence_penalty, -2, 2))
        return err_set_param(e, ERR_INVALID, "presence_penalty",
                             "presence_penalty must be between -2 and 2");
    if (!in_range(p->frequency_penalty, -2, 2))
        return err_set_param(e, ERR_INVALID, "frequency_penalty",
                             "frequency_penalty must be between -2 and 2");
    if (p->n_logit_bias < 0 || (p->n_logit_bias > 0 && !p->logit_bias))
        return err_set_param(e, ERR_INVALID, "logit_bias", "logit_bias is malformed");
    for (int32_t i = 0; i < p->n_logit_bias; i++) {
        const struct sampler_bias *b = &p->logit_bias[i];
        if (b->token < 0 || b->token >= n_vocab)
            return err_set_param(e, ERR_INVALID, "logit_bias",
                                 "logit_bias: token id %ld is not in this model's vocabulary "
                                 "(0..%ld)", (long)b->token, (long)n_vocab - 1);
        if (!in_range(b->bias, -100, 100))
            return err_set_param(e, ERR_INVALID, "logit_bias",
                                 "logit_bias: the bias of token %ld must be between -100 and 100",
                                 (long)b->token);
    }
    if (p->top_logprobs < 0 || p->top_logprobs > SAMPLER_MAX_TOP_LOGPROBS)
        return err_set_param(e, ERR_INVALID, "top_logprobs",
                             "top_logprobs must be between 0 and %d", SAMPLER_MAX_TOP_LOGPROBS);
    if (p->top_logprobs > 0 && !p->logprobs)
        return err_set_param(e, ERR_INVALID, "top_logprobs",
                             "top_logprobs requires logprobs to be true");
    if ((unsigned)p->isa > SAMPLER_ISA_AVX512)
        return err_set(e, ERR_INVALID, "sampler: unknown instruction set %d", (int)p->isa);
    return true;
}

/* ---- lifetime --------------------------------------------------------------- */

struct sampler *sampler_new(const struct sampler_params *p, int32_t n_vocab, struct err *e)
{
    if (!sampler_params_check(p, n_vocab, e))
        return NULL;
    struct sampler *s = calloc(1, sizeof *s);
    if (!s) {
        err_set(e, ERR_NOMEM, "sampler: out of memory");
        return NULL;
    }
    s->p = *p;
    s->n_vocab = n_vocab;
    if (p->n_logit_bias > 0) {
        s->bias = malloc((size_t)p->n_logit_bias * sizeof *s->bias);
        if (!s->bias) {
            free(s);
            err_set(e, ERR_NOMEM, "sampler: out of memory");
            return NULL;
        }
        memcpy(s->bias, p->logit_bias, (size_t)p->n_logit_bias * sizeof *s->bias);
    }
    s->p.logit_bias = s->bias;
    s->track_window = p->repetition_penalty != 1.0f && p->penalty_last_n != 0;
    s->track_generated = p->presence_penalty != 0 || p->frequency_penalty != 0;
    if (!row_kernels_pick(p->isa, &s->kern, e)) {
        sampler_free(s);
        return NULL;
    }
    uint64_t x = p->seed;
    for (int i = 0; i < 4; i++)
        s->rng[i] = splitmix64(&x);
    return s;
}

void sampler_free(struct sampler *s)
{
    if (!s)
        return;
    free(s->bias);
    free(s->counts);
    free(s->slots);
    free(s->ring);
    free(s->order);
    free(s->w);
    free(s->pool);
    free(s->bucket);
    free(s->marks);
    free(s);
}

/* ---- penalty counts --------------------------------------------------------- */

static uint32_t slot_of(int32_t token, uint32_t mask)
{
    return ((uint32_t)token * 2654435761u) & mask;
}

static bool counts_rehash(struct sampler *s, uint32_t n_slots)
{
    int32_t *slots = malloc((size_t)n_slots * sizeof *slots);
    if (!slots)
        return false;
    memset(slots, 0xff, (size_t)n_slots * sizeof *slots);
    for (int32_t i = 0; i < s->n_counts; i++) {
        uint32_t h = slot_of(s->counts[i].token, n_slots - 1);
        while (slots[h] >= 0)
            h = (h + 1) & (n_slots - 1);
        slots[h] = i;
    }
    free(s->slots);
    s->slots = slots;
    s->slot_mask = n_slots - 1;
    return true;
}

/* Index of token's entry, or -1. */
static int32_t counts_find(const struct sampler *s, int32_t token)
{
    if (!s->slots)
        return -1;
    for (uint32_t h = slot_of(token, s->slot_mask);; h = (h + 1) & s->slot_mask) {
        int32_t i = s->slots[h];
        if (i < 0 || s->counts[i].token == token)
            return i;
    }
}

static struct tok_count *counts_get(struct sampler *s, int32_t token)
{
    int32_t i = counts_find(s, token);
    if (i >= 0)
        return &s->counts[i];
    if (s->n_counts == s->cap_counts) {
        int32_t cap = s->cap_counts ? s->cap_counts * 2 : 64;
        struct tok_count *c = realloc(s->counts, (size_t)cap * sizeof *c);
        if (!c)
            return NULL;
        s->counts = c;
        s->cap_counts = cap;
    }
    /* Keep the table at most half full so probes stay short. */
    if (!s->slots || (uint32_t)(s->n_counts + 1) * 2 > s->slot_mask + 1) {
        if (!counts_rehash(s, s->slots ? (s->slot_mask + 1) * 2 : 128))
            return NULL;
    }
    i = s->n_counts++;
    s->counts[i] = (struct tok_count){.token = token};
    uint32_t h = slot_of(token, s->slot_mask);
    while (s->slots[h] >= 0)
        h = (h + 1) & s->slot_mask;
    s->slots[h] = i;
    return &s->counts[i];
}

/* Slide the repetition window: remember `token`, forget the oldest. */
static bool window_push(struct sampler *s, int32_t token)
{
    int32_t n = s->p.penalty_last_n;
    if (n < 0)
        return true;
    if (s->ring_len == n) {
        int32_t old = s->ring[s->ring_head];
        s->ring[s->ring_head] = token;
        s->ring_head = (s->ring_head + 1) % n;
        s->counts[counts_find(s, old)].window--;
        return true;
    }
    /* Not yet full, so never wrapped: growing is a plain realloc. */
    if (s->ring_len == s->ring_cap) {
        int32_t cap = s->ring_cap ? s->ring_cap * 2 : 64;
        if (cap > n)
            cap = n;
        int32_t *r = realloc(s->ring, (size_t)cap * sizeof *r);
        if (!r)
            return false;
        s->ring = r;
        s->ring_cap = cap;
    }
    s->ring[s->ring_len++] = token;
    return true;
}

bool sampler_accept(struct sampler *s, int32_t token, bool is_prompt, struct err *e)
{
    if (token < 0 || token >= s->n_vocab)
        return err_set(e, ERR_INVALID, "sampler: token id %ld is outside the vocabulary",
                       (long)token);
    bool gen = s->track_generated && !is_prompt;
    if (!s->track_window && !gen)
        return true;
    struct tok_count *c = counts_get(s, token);
    if (!c)
        return err_set(e, ERR_NOMEM, "sampler: out of memory");
    if (gen)
        c->generated++;
    if (s->track_window) {
        c->window++;
        /* window_push may look entries up again; c stays valid (no realloc). */
        if (!window_push(s, token))
            return err_set(e, ERR_NOMEM, "sampler: out of memory");
    }
    return true;
}

/* ---- one step ----------------------------------------------------------------- *
 *
 * Candidate sets are always prefixes of one total order: logit descending,
 * then id ascending. A prefix is described by its last token (`struct cut`),
 * so membership is one comparison, whatever selected it. Small prefixes are
 * found by heap selection; large ones (a big top_k, top_p over a flat tail)
 * by a histogram of x = (max - logit) / T and an exact sort of one bucket,
 * which keeps every step O(n) plus a small sort. */

struct step {
    const float *l;  /* processed logits */
    const float *w;  /* e^-x per token (temperature > 0 only) */
    float max;
    float inv_t;
};

struct cut {
    float l;
    int32_t id;
};

struct cand {
    struct cut cut;  /* last member */
    int32_t m;       /* number of members */
    double mass;     /* sum of their weights */
    bool ordered;    /* s->order[0..m) holds them */
};

static void apply_penalties(const struct sampler *s, float *l)
{
    float rep = s->p.repetition_penalty;
    for (int32_t i = 0; i < s->n_counts; i++) {
        const struct tok_count *c = &s->counts[i];
        float *v = &l[c->token];
        if (c->window > 0)
            *v = *v > 0 ? *v / rep : *v * rep;
        if (c->generated > 0)
            *v -= s->p.presence_penalty + s->p.frequency_penalty * (float)c->generated;
    }
    for (int32_t i = 0; i < s->p.n_logit_bias; i++)
        l[s->bias[i].token] += s->bias[i].bias;
}

/* NaN becomes -inf and +inf FLT_MAX, so that differences stay defined. */
static void sanitize(float *l, int32_t n)
{
    for (int32_t i = 0; i < n; i++) {
        if (isnan(l[i]))
            l[i] = -INFINITY;
        else if (l[i] > FLT_MAX)
            l[i] = FLT_MAX;
    }
}

static inline float x_of(const struct step *st, int32_t i)
{
    return (st->max - st->l[i]) * st->inv_t; /* the same operations as the kernel's */
}

static inline bool in_cut(const float *l, struct cut c, int32_t i)
{
    return l[i] > c.l || (l[i] == c.l && i <= c.id);
}

static bool ranks_before(const float *l, int32_t a, int32_t b)
{
    return l[a] > l[b] || (l[a] == l[b] && a < b);
}

/* Min-heap on "ranks_before": the root is the worst token kept. */
static void sift_down(const float *l, int32_t *h, int32_t n, int32_t i)
{
    for (;;) {
        int32_t c = 2 * i + 1;
        if (c >= n)
            return;
        if (c + 1 < n && ranks_before(l, h[c], h[c + 1]))
            c++;
        if (!ranks_before(l, h[i], h[c]))
            return;
        int32_t t = h[i];
        h[i] = h[c];
        h[c] = t;
        i = c;
    }
}

static void heapify(const float *l, int32_t *h, int32_t k)
{
    for (int32_t i = k / 2 - 1; i >= 0; i--)
        sift_down(l, h, k, i);
}

/* h must be a heap; leaves it sorted best first. */
static void heap_sort(const float *l, int32_t *h, int32_t k)
{
    for (int32_t end = k - 1; end > 0; end--) {
        int32_t t = h[0];
        h[0] = h[end];
        h[end] = t;
        sift_down(l, h, end, 0);
    }
}

static bool grow_ints(int32_t **p, int32_t *cap, int32_t want, struct err *e)
{
    if (want <= *cap)
        return true;
    int32_t *q = realloc(*p, (size_t)want * sizeof *q);
    if (!q)
        return err_set(e, ERR_NOMEM, "sampler: out of memory");
    *p = q;
    *cap = want;
    return true;
}

/* Make order[0..want) the `want` best tokens, best first. The order is total,
 * so a longer prefix extends a shorter one. Heap selection, O(n log k); k at
 * least doubles each time, so walking far down pays O(n log n) once. */
static bool order_ensure(struct sampler *s, const float *l, int32_t want, struct err *e)
{
    if (want <= s->n_sorted)
        return true;
    int32_t n = s->n_vocab;
    int32_t k = want;
    if (k < 2 * s->n_sorted)
        k = 2 * s->n_sorted;
    if (k < ORDER_MIN)
        k = ORDER_MIN;
    if (k > n)
        k = n;
    if (!grow_ints(&s->order, &s->order_cap, k, e))
        return false;
    int32_t *h = s->order;
    for (int32_t i = 0; i < k; i++)
        h[i] = i;
    heapify(l, h, k);
    float worst = l[h[0]];
    for (int32_t i = k; i < n; i++) {
        /* Ids only grow, so a tie never beats the root. */
        if (l[i] > worst) {
            h[0] = i;
            sift_down(l, h, k, 0);
            worst = l[h[0]];
        }
    }
    heap_sort(l, h, k);
    s->n_sorted = k;
    return true;
}

/* c = the first m tokens of the order. */
static bool cand_prefix(struct sampler *s, const struct step *st, int32_t m, struct cand *c,
                        struct err *e)
{
    if (!order_ensure(s, st->l, m, e))
        return false;
    double mass = 0;
    for (int32_t j = 0; j < m; j++)
        mass += st->w[s->order[j]];
    int32_t last = s->order[m - 1];
    *c = (struct cand){.cut = {st->l[last], last}, .m = m, .mass = mass, .ordered = true};
    return true;
}

static int32_t bucket_of(float x)
{
    float b = x * HIST_PER_NAT;
    return b < HIST_BUCKETS - 1 ? (int32_t)b : HIST_BUCKETS - 1;
}

/* Shrink c to its shortest prefix that holds `rank` tokens (rank > 0) or
 * reaches `target` mass (rank == 0). */
static bool cand_cut_hist(struct sampler *s, const struct step *st, struct cand *c,
                          int32_t rank, double target, struct err *e)
{
    int32_t n = s->n_vocab;
    if (!s->bucket) {
        s->bucket = malloc((size_t)n * sizeof *s->bucket);
        if (!s->bucket)
            return err_set(e, ERR_NOMEM, "sampler: out of memory");
    }
    memset(s->hist_count, 0, sizeof s->hist_count);
    memset(s->hist_mass, 0, sizeof s->hist_mass);
    /* Two mass histograms, even and odd ids, so that neighbours landing in
     * the same bucket do not wait on each other's store. */
    for (int32_t i = 0; i < n; i++) {
        uint16_t b = HIST_BUCKETS; /* not a member */
        if (in_cut(st->l, c->cut, i)) {
            b = (uint16_t)bucket_of(x_of(st, i));
            s->hist_count[b]++;
            s->hist_mass[i & 1][b] += st->w[i];
        }
        s->bucket[i] = b;
    }
    int32_t b = 0, before = 0;
    double cum = 0;
    for (; b < HIST_BUCKETS - 1; b++) {
        double mb = s->hist_mass[0][b] + s->hist_mass[1][b];
        if (rank > 0 ? before + s->hist_count[b] >= rank : cum + mb >= target)
            break;
        before += s->hist_count[b];
        cum += mb;
    }
    /* Sort the members of bucket b and cut inside it. */
    if (!grow_ints(&s->pool, &s->pool_cap, s->hist_count[b] + 1, e))
        return false;
    int32_t k = 0;
    for (int32_t i = 0; i < n && k < s->hist_count[b]; i++) {
        s->pool[k] = i; /* branch-free: kept only when it belongs */
        k += s->bucket[i] == b;
    }
    heapify(st->l, s->pool, k);
    heap_sort(st->l, s->pool, k);
    int32_t take = 0;
    while (take < k) {
        cum += st->w[s->pool[take++]];
        before++;
        if (rank > 0 ? before >= rank : cum >= target)
            break;
    }
    if (take == 0) /* rounding left the mass short in an empty last bucket */
        return true;
    int32_t last = s->pool[take - 1];
    *c = (struct cand){.cut = {st->l[last], last}, .m = before, .mass = cum};
    return true;
}

/* Keep the members of c with x <= x_max (min_p), when c is not sorted. */
static void cand_min_p(struct sampler *s, const struct step *st, struct cand *c, double x_max)
{
    struct cut worst = {INFINITY, -1};
    int32_t m = 0;
    double mass = 0;
    for (int32_t i = 0; i < s->n_vocab; i++) {
        if (!in_cut(st->l, c->cut, i) || (double)x_of(st, i) > x_max)
            continue;
        m++;
        mass += st->w[i];
        if (st->l[i] < worst.l || (st->l[i] == worst.l && i > worst.id))
            worst = (struct cut){st->l[i], i};
    }
    *c = (struct cand){.cut = worst, .m = m, .mass = mass};
}

/* top_p over c: the shortest prefix whose mass reaches top_p of c's. */
static bool cand_top_p(struct sampler *s, const struct step *st, struct cand *c, struct err *e)
{
    double target = (double)s->p.top_p * c->mass;
    /* Usually a few dozen tokens carry the mass: try the first sorted batch. */
    int32_t probe = c->ordered ? c->m : c->m < ORDER_MIN ? c->m : ORDER_MIN;
    if (!order_ensure(s, st->l, probe, e))
        return false;
    double cum = 0;
    for (int32_t j = 0; j < probe; j++) {
        cum += st->w[s->order[j]];
        if (cum >= target || j == c->m - 1)
            return cand_prefix(s, st, j + 1, c, e);
    }
    return cand_cut_hist(s, st, c, 0, target, e);
}

/* Unconstrained draw: the first member whose running mass exceeds u * mass. */
static void draw_free(struct sampler *s, const struct step *st, const struct cand *c, double u,
                      int32_t *pick)
{
    double target = u * c->mass, cum = 0;
    int32_t last = -1;
    int32_t end = c->ordered ? c->m : s->n_vocab;
    for (int32_t j = 0; j < end; j++) {
        int32_t t = c->ordered ? s->order[j] : j;
        if (!c->ordered && !in_cut(st->l, c->cut, t))
            continue;
        float w = st->w[t];
        if (w <= 0)
            continue;
        cum += w;
        last = t;
        if (cum > target)
            break;
    }
    /* Rounding can leave cum a hair under target: the last token then. */
    *pick = last;
}

static bool marks_reserve(struct sampler *s, int32_t k, struct err *e)
{
    if (k <= s->marks_cap)
        return true;
    int32_t cap = s->marks_cap ? s->marks_cap * 2 : 64;
    struct allowed_mark *m = realloc(s->marks, (size_t)cap * sizeof *m);
    if (!m)
        return err_set(e, ERR_NOMEM, "sampler: out of memory");
    s->marks = m;
    s->marks_cap = cap;
    return true;
}

/* The state of a filtered draw, fed one member of the candidate set at a
 * time. The pick is the first allowed member, in the order visited, whose
 * running allowed mass exceeds u * A. A, the total allowed mass, is only
 * known to lie in [a, a + unvisited]; once both ends select the same
 * member, further answers cannot change it. Any fixed visiting order gives
 * an exact draw; visiting likely tokens first makes it stop early. */
struct filtered {
    double u, mass; /* the draw, the set's total mass */
    double a, visited;
    int32_t n_marks;
    int32_t lo, hi; /* first marks above u * a and above u * (a + unvisited) */
};

/* Visit `tok`; sets *pick once the pick is certain. False only on ENOMEM. */
static bool filtered_visit(struct sampler *s, struct filtered *f, const struct step *st,
                           int32_t tok, bool last, sampler_allowed_fn allowed, void *ctx,
                           int32_t *pick, struct err *e)
{
    float w = st->w[tok];
    f->visited += w;
    if (allowed(ctx, tok)) {
        if (!marks_reserve(s, f->n_marks + 1, e))
            return false;
        f->a += w;
        s->marks[f->n_marks++] = (struct allowed_mark){.token = tok, .cum = f->a};
    }
    if (f->n_marks == 0)
        return true;
    /* Both thresholds move one way (up to rounding, hence both loops on hi),
     * so the two positions are kept, not searched: O(1) amortised. */
    double rest = last ? 0 : fmax(f->mass - f->visited, 0);
    double t_lo = f->u * f->a, t_hi = f->u * (f->a + rest);
    const struct allowed_mark *m = s->marks;
    while (f->lo < f->n_marks && m[f->lo].cum <= t_lo)
        f->lo++;
    while (f->hi < f->n_marks && m[f->hi].cum <= t_hi)
        f->hi++;
    while (f->hi > 0 && m[f->hi - 1].cum > t_hi)
        f->hi--;
    if (f->hi < f->n_marks && f->lo == f->hi)
        *pick = m[f->hi].token;
    else if (last) /* every allowed member had zero weight: the first of them */
        *pick = m[0].token;
    return true;
}

/* Draw from c restricted to allowed tokens: the first SMALL_SET members in
 * probability order, then the others in id order (sorting further would
 * cost more than asking). *pick = -1 when no member is allowed. */
static bool draw_allowed(struct sampler *s, const struct step *st, const struct cand *c,
                         double u, sampler_allowed_fn allowed, void *ctx, int32_t *pick,
                         struct err *e)
{
    struct filtered f = {.u = u, .mass = c->mass};
    int32_t head = c->m < SMALL_SET ? c->m : SMALL_SET;
    *pick = -1;
    if (!order_ensure(s, st->l, head, e))
        return false;
    for (int32_t j = 0; j < head && *pick < 0; j++)
        if (!filtered_visit(s, &f, st, s->order[j], j == c->m - 1, allowed, ctx, pick, e))
            return false;
    if (*pick >= 0 || head == c->m)
        return true;
    struct cut sorted = {st->l[s->order[head - 1]], s->order[head - 1]};
    int32_t seen = head;
    for (int32_t i = 0; i < s->n_vocab && *pick < 0; i++) {
        if (!in_cut(st->l, c->cut, i) || in_cut(st->l, sorted, i))
            continue;
        if (!filtered_visit(s, &f, st, i, ++seen == c->m, allowed, ctx, pick, e))
            return false;
    }
    return true;
}

/* The most likely allowed token among those ranked after the first `from`
 * of the order (`after` is the one at from - 1), or -1. The first
 * SMALL_SET are asked in order; past them, one pass asks only about tokens
 * that would beat the best found so far. */
static bool best_allowed_from(struct sampler *s, const float *l, int32_t from, struct cut after,
                              sampler_allowed_fn allowed, void *ctx, int32_t *pick,
                              struct err *e)
{
    int32_t n = s->n_vocab;
    *pick = -1;
    if (from < SMALL_SET) {
        int32_t head = n < SMALL_SET ? n : SMALL_SET;
        if (!order_ensure(s, l, head, e))
            return false;
        for (int32_t j = from; j < head; j++) {
            if (allowed(ctx, s->order[j])) {
                *pick = s->order[j];
                return true;
            }
        }
        if (head == n)
            return true;
        after = (struct cut){l[s->order[head - 1]], s->order[head - 1]};
    }
    int32_t best = -1;
    for (int32_t i = 0; i < n; i++) {
        if (in_cut(l, after, i) || (best >= 0 && !ranks_before(l, i, best)))
            continue;
        if (allowed(ctx, i))
            best = i;
    }
    *pick = best;
    return true;
}

/* Truncate (top_k, min_p, top_p) and draw. */
static bool sample_temperature(struct sampler *s, const struct step *st, double z,
                               sampler_allowed_fn allowed, void *ctx, int32_t *pick,
                               struct err *e)
{
    const struct sampler_params *p = &s->p;
    int32_t n = s->n_vocab;
    struct cand c = {.cut = {-INFINITY, n - 1}, .m = n, .mass = z};
    if (p->top_k > 0 && p->top_k < n) {
        bool ok = p->top_k <= SMALL_SET ? cand_prefix(s, st, p->top_k, &c, e)
                                        : cand_cut_hist(s, st, &c, p->top_k, 0, e);
        if (!ok)
            return false;
    }
    if (p->min_p > 0) {
        /* p >= min_p * p_max  <=>  x <= -ln(min_p); a prefix, as x follows the order. */
        double x_max = -log_det(p->min_p);
        if (c.ordered) {
            int32_t j = 1;
            while (j < c.m && (double)x_of(st, s->order[j]) <= x_max)
                j++;
            if (j < c.m && !cand_prefix(s, st, j, &c, e))
                return false;
        } else {
            cand_min_p(s, st, &c, x_max);
        }
    }
    if (p->top_p < 1.0f && !cand_top_p(s, st, &c, e))
        return false;

    double u = rng_uniform(s->rng);
    if (!allowed) {
        draw_free(s, st, &c, u, pick);
        return true;
    }
    if (!draw_allowed(s, st, &c, u, allowed, ctx, pick, e))
        return false;
    /* Nothing in the truncated set fits the constraint: the constraint wins
     * over truncation, with the most likely allowed token. */
    if (*pick < 0)
        return best_allowed_from(s, st->l, c.m, c.cut, allowed, ctx, pick, e);
    return true;
}

static float clamp_logprob(double v)
{
    return v < -9999.0 ? -9999.0f : (float)v;
}

/* The largest logit, after NaN and +inf are made harmless; fails when no
 * token has any probability. */
static bool row_max(struct sampler *s, float *logits, float *max, struct err *e)
{
    bool special;
    *max = s->kern.max(logits, s->n_vocab, &special);
    if (special) {
        sanitize(logits, s->n_vocab);
        *max = s->kern.max(logits, s->n_vocab, &special);
    }
    if (*max == -INFINITY)
        return err_set(e, ERR_UNPROCESSABLE, "every token has probability zero");
    return true;
}

/* out->logprob of `token` and the top_logprobs alternatives, given the
 * row's log-sum-exp at temperature 1. */
static bool fill_logprobs(struct sampler *s, const float *logits, double lse, int32_t token,
                          struct sampler_result *out, struct err *e)
{
    out->logprob = clamp_logprob((double)logits[token] - lse);
    int32_t k = s->p.top_logprobs < s->n_vocab ? s->p.top_logprobs : s->n_vocab;
    if (k > 0 && !order_ensure(s, logits, k, e))
        return false;
    for (int32_t j = 0; j < k; j++) {
        int32_t t = s->order[j];
        out->top[j] = (struct sampler_token_logprob){
            .token = t, .logprob = clamp_logprob((double)logits[t] - lse)};
    }
    out->n_top = k;
    return true;
}

bool sampler_score(struct sampler *s, float *logits, int32_t token, struct sampler_result *out,
                   struct err *e)
{
    memset(out, 0, offsetof(struct sampler_result, top));
    if (token < 0 || token >= s->n_vocab)
        return err_set(e, ERR_INVALID, "token %d is not in the vocabulary", token);
    float max;
    if (!row_max(s, logits, &max, e))
        return false;
    double lse = (double)max + log(s->kern.exp(logits, s->n_vocab, max, 1.0f, NULL));
    out->token = token;
    s->n_sorted = 0;
    return fill_logprobs(s, logits, lse, token, out, e);
}

bool sampler_sample(struct sampler *s, float *logits, sampler_allowed_fn allowed,
                    void *allowed_ctx, struct sampler_result *out, struct err *e)
{
    int32_t n = s->n_vocab;
    memset(out, 0, offsetof(struct sampler_result, top));
    apply_penalties(s, logits);
    float max;
    if (!row_max(s, logits, &max, e))
        return false;
    s->n_sorted = 0;
    struct step st = {.l = logits, .max = max, .inv_t = 1.0f};
    double z = -1; /* sum of the weights at inv_t, when computed */
    int32_t pick = -1;

    /* Below GREEDY_BELOW, 1/T could overflow, and the answer is greedy anyway. */
    if (s->p.temperature < GREEDY_BELOW) {
        int32_t argmax = 0;
        while (logits[argmax] != max)
            argmax++;
        if (!allowed || allowed(allowed_ctx, argmax))
            pick = argmax;
        else if (!best_allowed_from(s, logits, 1, (struct cut){max, argmax}, allowed,
                                    allowed_ctx, &pick, e))
            return false;
    } else {
        if (!s->w) {
            s->w = malloc((size_t)n * sizeof *s->w);
            if (!s->w)
                return err_set(e, ERR_NOMEM, "sampler: out of memory");
        }
        st.w = s->w;
        st.inv_t = 1.0f / s->p.temperature;
        z = s->kern.exp(logits, n, max, st.inv_t, s->w);
        if (!sample_temperature(s, &st, z, allowed, allowed_ctx, &pick, e))
            return false;
    }
    if (pick < 0)
        return err_set(e, ERR_UNPROCESSABLE, "no token satisfies the output constraint");
    out->token = pick;

    if (s->p.logprobs) {
        if (z < 0 || st.inv_t != 1.0f)
            z = s->kern.exp(logits, n, max, 1.0f, NULL);
        return fill_logprobs(s, logits, (double)max + log(z), pick, out, e);
    }
    return true;
}

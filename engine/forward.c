/* forward.c — see forward.h.
 *
 * forward_run() reads top to bottom like llama2.c's forward(): embed the
 * tokens, then for every layer an attention block and a feed-forward block,
 * each added back into the residual stream x, then the final norm and the
 * output projection. Each step is one parallel loop on the thread pool, over
 * tokens (norms, RoPE, KV writes, activation conversion), over output-column
 * chunks (matrix products) or over (token, KV head) pairs (attention). */
#include "engine/forward.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define MAX_ACTS 3 /* distinct activation kinds among the matrices of one step */

struct act_set {
    int n;
    struct kernels_act a[MAX_ACTS];
};

struct forward {
    const struct model *m;
    struct kvcache *kv;
    struct threadpool *tp;
    enum kernels_isa isa;
    int n_threads;
    uint32_t max_batch, max_outputs, max_ctx;
    uint32_t d, dq, dkv, ff, hd, n_rep, n_kv, bt;

    /* activations, max_batch rows each */
    float *x;      /* residual stream [d] */
    float *xb;     /* normalised input of a block [d] */
    float *q;      /* [dq] */
    float *k, *v;  /* [dkv] */
    float *att;    /* attention output [dq] */
    float *tmp;    /* a block's output before the residual add [d] */
    float *gate, *up; /* [ff] */
    /* outputs, max_outputs rows */
    float *hidden; /* final normalised hidden state [d] */
    float *logits; /* [n_vocab] */
    uint8_t *act_mem[MAX_ACTS];
    struct act_set acts;   /* the conversion of the current step's input */
    float *scores;         /* per thread: n_rep * max_ctx */
    float *rope;           /* [max_ctx][n_rot / 2] (cos, sin) */

    /* the current call */
    const struct forward_batch *b;
    uint32_t n;
    uint32_t n_done;       /* tokens of the last successful run (outputs valid) */
    uint32_t layer;
    int32_t *hidden_row;   /* per batch token: row in `hidden`, or -1 */
    int32_t *logit_row;    /* per batch token: row in `logits`, or -1 */
    int32_t *logit_tok;    /* per logits row: batch token */
    uint32_t n_hidden, n_logits;
    uint32_t *seq_stamp, stamp;
    uint32_t *seq_next;
    int32_t *batch_seqs;
    uint32_t n_batch_seqs;

    /* forward_embed() */
    int32_t *emb_seq;
    uint32_t *emb_pos;
    uint8_t *emb_out;
    double *emb_acc;
};

/* ---- small helpers ---------------------------------------------------------- */

static void *alloc64(size_t bytes)
{
    return aligned_alloc(64, (bytes + 63) & ~(size_t)63);
}

/* RMSNorm as ggml computes it: squares summed in double, 1/sqrt in float,
 * x scaled, then multiplied by the weight. */
static void rmsnorm(float *out, const float *x, const float *w, uint32_t n, float eps)
{
    double sum = 0;
    for (uint32_t i = 0; i < n; i++)
        sum += (double)(x[i] * x[i]);
    float mean = (float)(sum / n);
    float scale = 1.0f / sqrtf(mean + eps);
    for (uint32_t i = 0; i < n; i++)
        out[i] = (x[i] * scale) * w[i];
}

/* Rotate the first n_rot dims of each head: pairs (2i, 2i+1), or (i, i +
 * n_rot/2) for NEOX; cs holds (cos, sin) of this position per pair. */
static void rope(float *v, uint32_t n_heads, uint32_t hd, uint32_t n_rot, bool neox,
                 const float *cs)
{
    uint32_t half = n_rot / 2;
    for (uint32_t h = 0; h < n_heads; h++) {
        float *x = v + (size_t)h * hd;
        for (uint32_t i = 0; i < half; i++) {
            uint32_t a = neox ? i : 2 * i, b = neox ? i + half : 2 * i + 1;
            float c = cs[2 * i], s = cs[2 * i + 1];
            float x0 = x[a], x1 = x[b];
            x[a] = x0 * c - x1 * s;
            x[b] = x0 * s + x1 * c;
        }
    }
}

/* ggml's angle recurrence: theta starts at the position and is multiplied by
 * base^(-2/n_rot) per pair (in float), which is what the reference used;
 * pair i's angle is then divided by its frequency factor and scaled (ggml's
 * rope cache, without YaRN: theta / ff * freq_scale, exact when both are 1). */
static void rope_table(float *t, uint32_t max_ctx, uint32_t n_rot, float base, float freq_scale,
                       const float *freq_factors)
{
    float theta_scale = powf(base, -2.0f / (float)n_rot);
    for (uint32_t p = 0; p < max_ctx; p++) {
        float theta = (float)p;
        for (uint32_t i = 0; i < n_rot / 2; i++) {
            float ff = freq_factors ? freq_factors[i] : 1.0f;
            float angle = freq_scale * (theta / ff);
            t[((size_t)p * (n_rot / 2) + i) * 2] = cosf(angle);
            t[((size_t)p * (n_rot / 2) + i) * 2 + 1] = sinf(angle);
            theta *= theta_scale;
        }
    }
}

/* ---- parallel loops ----------------------------------------------------------- */

typedef void (*token_fn)(struct forward *f, uint32_t i);

struct token_loop {
    struct forward *f;
    token_fn fn;
    uint32_t n, chunk;
};

static void token_task(void *ctx, int task, int thread)
{
    (void)thread;
    const struct token_loop *l = ctx;
    uint32_t i0 = (uint32_t)task * l->chunk, i1 = i0 + l->chunk;
    for (uint32_t i = i0; i < i1 && i < l->n; i++)
        l->fn(l->f, i);
}

static void for_each_token(struct forward *f, token_fn fn)
{
    uint32_t target = (uint32_t)f->n_threads * 4;
    uint32_t chunk = (f->n + target - 1) / target;
    struct token_loop l = {.f = f, .fn = fn, .n = f->n, .chunk = chunk ? chunk : 1};
    threadpool_run(f->tp, token_task, &l, (int)((f->n + l.chunk - 1) / l.chunk));
}

struct mm_job {
    const struct kernels_matrix *w;
    const struct kernels_act *a;
    float *y;
    size_t ldy;
};

/* At most this many tasks per loop: the guided split below stays far below
 * it (about 2 * threads * (1 + ln(groups / (2 * threads * step))) tasks),
 * and a floor on the chunk size guarantees it. */
#define MM_MAX_TASKS 512

struct mm_task_range {
    uint32_t job, g0, g1;
};

struct mm_loop {
    const struct mm_job *jobs;
    enum kernels_isa isa;
    struct mm_task_range task[MM_MAX_TASKS];
};

static void mm_task(void *ctx, int task, int thread)
{
    (void)thread;
    const struct mm_loop *l = ctx;
    const struct mm_task_range *t = &l->task[task];
    const struct mm_job *job = &l->jobs[t->job];
    kernels_matmul(job->w, job->a, job->y, job->ldy, t->g0, t->g1, l->isa);
}

/* Several products that share nothing but the step, as one parallel loop
 * over ranges of 16-column groups. Guided split: each task takes about
 * 1/(2 * threads) of the groups still left (rounded to whole kernel tiles),
 * so tasks shrink towards the end and the threads finish together; equal
 * chunks left one thread idle for up to a whole chunk at the end of every
 * product (~7% of the matmul time at 64 rows). Tasks are claimed in order. */
static void run_matmuls(struct forward *f, const struct mm_job *jobs, int n_jobs)
{
    uint32_t left = 0;
    for (int j = 0; j < n_jobs; j++)
        left += jobs[j].w->n_groups;
    const uint32_t div = (uint32_t)f->n_threads * 2;
    const uint32_t min_chunk = (left + MM_MAX_TASKS / 2 - 1) / (MM_MAX_TASKS / 2);
    struct mm_loop l = {.jobs = jobs, .isa = f->isa};
    uint32_t tasks = 0;
    for (int j = 0; j < n_jobs; j++) {
        const struct kernels_matrix *w = jobs[j].w;
        uint32_t step = kernels_matmul_group_step(w, jobs[j].a->n_rows, f->isa);
        for (uint32_t g = 0; g < w->n_groups;) {
            uint32_t c = (left + div - 1) / div;
            c = c > min_chunk ? c : min_chunk;
            c = (c + step - 1) / step * step;
            c = c < w->n_groups - g ? c : w->n_groups - g;
            l.task[tasks++] = (struct mm_task_range){(uint32_t)j, g, g + c};
            g += c;
            left -= c;
        }
    }
    threadpool_run(f->tp, mm_task, &l, (int)tasks);
}

/* Prepare f->acts for `rows` rows of input to the given matrices: one
 * converted copy per distinct activation kind. */
static void acts_prepare(struct forward *f, const struct kernels_matrix *const *w, int nw,
                         uint32_t rows)
{
    f->acts.n = 0;
    for (int i = 0; i < nw; i++) {
        enum kernels_act_kind kind = kernels_act_kind_for(w[i]->type);
        bool have = false;
        for (int j = 0; j < f->acts.n; j++)
            have |= f->acts.a[j].kind == kind;
        if (!have) {
            kernels_act_init(&f->acts.a[f->acts.n], kind, rows, w[i]->n_in, f->act_mem[f->acts.n]);
            f->acts.n++;
        }
    }
}

static const struct kernels_act *act_for(const struct forward *f, const struct kernels_matrix *w)
{
    enum kernels_act_kind kind = kernels_act_kind_for(w->type);
    for (int j = 0; j < f->acts.n; j++)
        if (f->acts.a[j].kind == kind)
            return &f->acts.a[j];
    return &f->acts.a[0];
}

static void acts_convert(struct forward *f, const float *x, size_t ldx, uint32_t row)
{
    for (int j = 0; j < f->acts.n; j++)
        kernels_act_convert_row(&f->acts.a[j], row, x + (size_t)row * ldx, f->isa);
}

/* ---- the steps, per token ------------------------------------------------------- */

static const struct model_layer *cur_layer(const struct forward *f)
{
    return &f->m->layers[f->layer];
}

static void step_embed(struct forward *f, uint32_t i)
{
    model_token_embedding(f->m, f->b->tokens[i], f->x + (size_t)i * f->d);
}

/* x += tmp (the previous block's output, if any), then the attention norm. */
static void step_attn_norm(struct forward *f, uint32_t i)
{
    float *x = f->x + (size_t)i * f->d, *xb = f->xb + (size_t)i * f->d;
    if (f->layer > 0)
        for (uint32_t j = 0; j < f->d; j++)
            x[j] += f->tmp[(size_t)i * f->d + j];
    rmsnorm(xb, x, cur_layer(f)->attn_norm, f->d, f->m->hp.rms_eps);
    acts_convert(f, f->xb, f->d, i);
}

/* Biases, RoPE, and this token's keys and values into its KV block. */
static void step_rope_store(struct forward *f, uint32_t i)
{
    const struct model_hparams *hp = &f->m->hp;
    const struct model_layer *L = cur_layer(f);
    float *q = f->q + (size_t)i * f->dq, *k = f->k + (size_t)i * f->dkv, *v = f->v + (size_t)i * f->dkv;
    if (L->bq) {
        for (uint32_t j = 0; j < f->dq; j++)
            q[j] += L->bq[j];
        for (uint32_t j = 0; j < f->dkv; j++) {
            k[j] += L->bk[j];
            v[j] += L->bv[j];
        }
    }
    uint32_t pos = f->b->pos[i];
    const float *cs = f->rope + (size_t)pos * hp->n_rot;
    rope(q, hp->n_head, f->hd, hp->n_rot, hp->rope_neox, cs);
    rope(k, f->n_kv, f->hd, hp->n_rot, hp->rope_neox, cs);

    const int32_t *blocks = kvcache_seq_blocks(f->kv, f->b->seq[i]);
    float *blk = kvcache_pool(f->kv) + (size_t)blocks[pos / f->bt] * kvcache_block_floats(f->kv) +
                 (size_t)f->layer * f->n_kv * 2 * f->bt * f->hd;
    uint32_t o = pos % f->bt;
    for (uint32_t h = 0; h < f->n_kv; h++) {
        float *K = blk + (size_t)h * 2 * f->bt * f->hd, *V = K + (size_t)f->bt * f->hd;
        for (uint32_t j = 0; j < f->hd; j++)
            K[(size_t)j * f->bt + o] = k[h * f->hd + j];
        memcpy(V + (size_t)o * f->hd, v + h * f->hd, f->hd * sizeof(float));
    }
}

static void step_attn_out_convert(struct forward *f, uint32_t i)
{
    acts_convert(f, f->att, f->dq, i);
}

static void step_ffn_norm(struct forward *f, uint32_t i)
{
    float *x = f->x + (size_t)i * f->d;
    for (uint32_t j = 0; j < f->d; j++)
        x[j] += f->tmp[(size_t)i * f->d + j];
    rmsnorm(f->xb + (size_t)i * f->d, x, cur_layer(f)->ffn_norm, f->d, f->m->hp.rms_eps);
    acts_convert(f, f->xb, f->d, i);
}

static void step_swiglu(struct forward *f, uint32_t i)
{
    kernels_silu_mul(f->gate + (size_t)i * f->ff, f->up + (size_t)i * f->ff, f->ff, f->isa);
    acts_convert(f, f->gate, f->ff, i);
}

/* ---- attention ------------------------------------------------------------------- */

static void attn_task(void *ctx, int task, int thread)
{
    struct forward *f = ctx;
    uint32_t i = (uint32_t)task / f->n_kv, h = (uint32_t)task % f->n_kv;
    size_t head0 = (size_t)h * f->n_rep * f->hd;
    size_t koff = ((size_t)f->layer * f->n_kv + h) * 2 * f->bt * f->hd;
    struct kernels_attn a = {
        .q = f->q + (size_t)i * f->dq + head0,
        .out = f->att + (size_t)i * f->dq + head0,
        .n_rep = f->n_rep,
        .head_dim = f->hd,
        .scale = 1.0f / sqrtf((float)f->hd),
        .n_keys = f->b->pos[i] + 1,
        .base = kvcache_pool(f->kv),
        .blocks = kvcache_seq_blocks(f->kv, f->b->seq[i]),
        .block_tokens = f->bt,
        .block_stride = kvcache_block_floats(f->kv),
        .k_off = koff,
        .v_off = koff + (size_t)f->bt * f->hd,
        .scores = f->scores + (size_t)thread * f->n_rep * f->max_ctx,
    };
    kernels_attend(&a, f->isa);
}

/* ---- the pass ---------------------------------------------------------------------- */

static void layer_forward(struct forward *f, uint32_t l)
{
    const struct model_layer *L = &f->m->layers[l];
    f->layer = l;

    /* attention block: x += Wo · attention(rope(Wq·xb), rope(Wk·xb), Wv·xb) */
    const struct kernels_matrix *qkv[3] = {&L->wq, &L->wk, &L->wv};
    acts_prepare(f, qkv, 3, f->n);
    for_each_token(f, step_attn_norm);
    struct mm_job j_qkv[3] = {
        {&L->wq, act_for(f, &L->wq), f->q, f->dq},
        {&L->wk, act_for(f, &L->wk), f->k, f->dkv},
        {&L->wv, act_for(f, &L->wv), f->v, f->dkv},
    };
    run_matmuls(f, j_qkv, 3);
    for_each_token(f, step_rope_store);
    threadpool_run(f->tp, attn_task, f, (int)(f->n * f->n_kv));
    const struct kernels_matrix *wo = &L->wo;
    acts_prepare(f, &wo, 1, f->n);
    for_each_token(f, step_attn_out_convert);
    struct mm_job j_o = {&L->wo, act_for(f, &L->wo), f->tmp, f->d};
    run_matmuls(f, &j_o, 1);

    /* feed-forward block: x += Wdown · (silu(Wgate·xb) * (Wup·xb)) */
    const struct kernels_matrix *gu[2] = {&L->w_gate, &L->w_up};
    acts_prepare(f, gu, 2, f->n);
    for_each_token(f, step_ffn_norm);
    struct mm_job j_gu[2] = {
        {&L->w_gate, act_for(f, &L->w_gate), f->gate, f->ff},
        {&L->w_up, act_for(f, &L->w_up), f->up, f->ff},
    };
    run_matmuls(f, j_gu, 2);
    const struct kernels_matrix *wd = &L->w_down;
    acts_prepare(f, &wd, 1, f->n);
    for_each_token(f, step_swiglu);
    struct mm_job j_d = {&L->w_down, act_for(f, &L->w_down), f->tmp, f->d};
    run_matmuls(f, &j_d, 1);
}

/* The last residual add and the final norm, for tokens that want outputs. */
static void final_norm(struct forward *f)
{
    for (uint32_t i = 0; i < f->n; i++) {
        if (f->hidden_row[i] < 0)
            continue;
        float *x = f->x + (size_t)i * f->d;
        for (uint32_t j = 0; j < f->d; j++)
            x[j] += f->tmp[(size_t)i * f->d + j];
        rmsnorm(f->hidden + (size_t)f->hidden_row[i] * f->d, x, f->m->output_norm, f->d,
                f->m->hp.rms_eps);
    }
}

static void output_projection(struct forward *f)
{
    if (f->n_logits == 0)
        return;
    const struct kernels_matrix *w = &f->m->output;
    acts_prepare(f, &w, 1, f->n_logits);
    for (uint32_t r = 0; r < f->n_logits; r++)
        kernels_act_convert_row(&f->acts.a[0], r,
                                f->hidden + (size_t)f->hidden_row[f->logit_tok[r]] * f->d, f->isa);
    struct mm_job j = {w, &f->acts.a[0], f->logits, f->m->hp.n_vocab};
    run_matmuls(f, &j, 1);
}

static bool check_batch(struct forward *f, const struct forward_batch *b, struct err *e)
{
    if (b->n_tokens == 0 || b->n_tokens > f->max_batch)
        return err_set_param(e, ERR_INVALID, "n_tokens", "a batch has 1 to %u tokens, not %u",
                             f->max_batch, b->n_tokens);
    if (++f->stamp == 0)
        f->stamp = 1;
    f->n_batch_seqs = 0;
    f->n_hidden = f->n_logits = 0;
    const uint32_t max_seqs = kvcache_get_config(f->kv)->max_seqs;
    for (uint32_t i = 0; i < b->n_tokens; i++) {
        if (b->tokens[i] < 0 || (uint32_t)b->tokens[i] >= f->m->hp.n_vocab)
            return err_set_param(e, ERR_INVALID, "tokens", "token %d at batch index %u is not in the vocabulary (%u)",
                                 b->tokens[i], i, f->m->hp.n_vocab);
        int32_t s = b->seq[i];
        if (!kvcache_seq_valid(f->kv, s))
            return err_set_param(e, ERR_INVALID, "seq", "batch index %u names no KV sequence (%d)", i, s);
        if ((uint32_t)s >= max_seqs)
            return err_set_param(e, ERR_INVALID, "seq", "sequence %d out of range", s);
        if (f->seq_stamp[s] != f->stamp) {
            f->seq_stamp[s] = f->stamp;
            f->seq_next[s] = kvcache_seq_len(f->kv, s);
            f->batch_seqs[f->n_batch_seqs++] = s;
        }
        if (b->pos[i] != f->seq_next[s])
            return err_set_param(e, ERR_INVALID, "pos",
                                 "batch index %u has position %u; sequence %d continues at %u", i,
                                 b->pos[i], s, f->seq_next[s]);
        if (b->pos[i] >= kvcache_seq_capacity(f->kv, s))
            return err_set_param(e, ERR_INVALID, "pos",
                                 "batch index %u: position %u of sequence %d is not reserved", i,
                                 b->pos[i], s);
        f->seq_next[s]++;
        uint8_t out = b->out ? b->out[i] : 0;
        f->hidden_row[i] = f->logit_row[i] = -1;
        if (out & (FORWARD_OUT_LOGITS | FORWARD_OUT_HIDDEN)) {
            if (f->n_hidden == f->max_outputs)
                return err_set_param(e, ERR_INVALID, "out", "more than %u tokens of the batch want outputs",
                                     f->max_outputs);
            f->hidden_row[i] = (int32_t)f->n_hidden++;
            if (out & FORWARD_OUT_LOGITS) {
                f->logit_tok[f->n_logits] = (int32_t)i;
                f->logit_row[i] = (int32_t)f->n_logits++;
            }
        }
    }
    return true;
}

bool forward_run(struct forward *f, const struct forward_batch *b, struct err *e)
{
    f->n_done = 0;
    if (!check_batch(f, b, e))
        return false;
    f->b = b;
    f->n = b->n_tokens;

    for_each_token(f, step_embed);
    for (uint32_t l = 0; l < f->m->hp.n_layer; l++)
        layer_forward(f, l);
    final_norm(f);
    output_projection(f);

    for (uint32_t s = 0; s < f->n_batch_seqs; s++)
        kvcache_seq_set_len(f->kv, f->batch_seqs[s], f->seq_next[f->batch_seqs[s]]);
    f->b = NULL;
    f->n_done = f->n;
    return true;
}

const float *forward_logits(const struct forward *f, uint32_t i)
{
    if (i >= f->n_done || f->logit_row[i] < 0)
        return NULL;
    return f->logits + (size_t)f->logit_row[i] * f->m->hp.n_vocab;
}

const float *forward_hidden(const struct forward *f, uint32_t i)
{
    if (i >= f->n_done || f->hidden_row[i] < 0)
        return NULL;
    return f->hidden + (size_t)f->hidden_row[i] * f->d;
}

/* ---- embeddings --------------------------------------------------------------------- */

bool forward_embed(struct forward *f, const int32_t *tokens, uint32_t n,
                   enum forward_pooling pool, float *out, struct err *e)
{
    if (n == 0)
        return err_set_param(e, ERR_INVALID, "input", "nothing to embed");
    int32_t seq;
    if (!kvcache_seq_new(f->kv, &seq, e))
        return false;
    bool ok = kvcache_seq_reserve(f->kv, seq, n, e);
    uint32_t chunk = pool == FORWARD_POOL_MEAN ? f->max_outputs : f->max_batch;
    if (chunk > f->max_batch)
        chunk = f->max_batch;
    for (uint32_t j = 0; j < f->d; j++)
        f->emb_acc[j] = 0;
    for (uint32_t start = 0; ok && start < n; start += chunk) {
        uint32_t m = n - start < chunk ? n - start : chunk;
        for (uint32_t i = 0; i < m; i++) {
            f->emb_seq[i] = seq;
            f->emb_pos[i] = start + i;
            f->emb_out[i] = (pool == FORWARD_POOL_MEAN || start + i == n - 1) ? FORWARD_OUT_HIDDEN : 0;
        }
        struct forward_batch b = {.n_tokens = m, .tokens = tokens + start, .seq = f->emb_seq,
                                  .pos = f->emb_pos, .out = f->emb_out};
        ok = forward_run(f, &b, e);
        for (uint32_t i = 0; ok && i < m; i++) {
            const float *h = forward_hidden(f, i);
            if (h)
                for (uint32_t j = 0; j < f->d; j++)
                    f->emb_acc[j] += h[j];
        }
    }
    kvcache_seq_free(f->kv, seq);
    if (!ok)
        return false;
    double norm = 0;
    for (uint32_t j = 0; j < f->d; j++) {
        if (pool == FORWARD_POOL_MEAN)
            f->emb_acc[j] /= n;
        norm += f->emb_acc[j] * f->emb_acc[j];
    }
    norm = sqrt(norm);
    for (uint32_t j = 0; j < f->d; j++)
        out[j] = (float)(norm > 0 ? f->emb_acc[j] / norm : 0);
    return true;
}

/* ---- lifetime ----------------------------------------------------------------------- */

bool forward_create(const struct model *m, struct kvcache *kv, struct threadpool *tp,
                    const struct forward_options *o, struct forward **out, struct err *e)
{
    *out = NULL;
    const struct model_hparams *hp = &m->hp;
    const struct kvcache_config *kc = kvcache_get_config(kv);
    if (kc->n_layer != hp->n_layer || kc->n_head_kv != hp->n_head_kv || kc->head_dim != hp->head_dim)
        return err_set(e, ERR_INVALID, "the KV cache was made for another model shape");
    struct forward *f = calloc(1, sizeof *f);
    if (!f)
        return err_set(e, ERR_NOMEM, "out of memory for the forward pass");
    f->m = m;
    f->kv = kv;
    f->tp = tp;
    f->n_threads = threadpool_size(tp);
    f->isa = o && o->isa >= 0 ? (enum kernels_isa)o->isa : kernels_isa_best();
    if (f->isa > kernels_isa_best())
        f->isa = kernels_isa_best();
    f->max_batch = o && o->max_batch ? o->max_batch : 512;
    f->max_outputs = o && o->max_outputs ? o->max_outputs : (f->max_batch < 64 ? f->max_batch : 64);
    if (f->max_outputs > f->max_batch)
        f->max_outputs = f->max_batch;
    f->max_ctx = kc->max_seq_tokens;
    f->d = hp->n_embd;
    f->hd = hp->head_dim;
    f->n_kv = hp->n_head_kv;
    f->n_rep = hp->n_head / hp->n_head_kv;
    f->dq = hp->n_head * hp->head_dim;
    f->dkv = hp->n_head_kv * hp->head_dim;
    f->ff = hp->n_ff;
    f->bt = kc->block_tokens;

    const size_t B = f->max_batch, O = f->max_outputs, F = sizeof(float);
    uint32_t max_in = f->d > f->dq ? f->d : f->dq;
    if (f->ff > max_in)
        max_in = f->ff;
    /* Enough for any kind, rows and input length one step can need. */
    size_t act_bytes = 0;
    for (int kind = KERNELS_ACT_F32; kind <= KERNELS_ACT_Q8_K; kind++) {
        uint32_t in = kind == KERNELS_ACT_Q8_K ? (max_in + 255) / 256 * 256 : (max_in + 31) / 32 * 32;
        size_t bytes = kernels_act_bytes((enum kernels_act_kind)kind, (uint32_t)B, in);
        if (bytes > act_bytes)
            act_bytes = bytes;
    }
    f->x = alloc64(B * f->d * F);
    f->xb = alloc64(B * f->d * F);
    f->q = alloc64(B * f->dq * F);
    f->k = alloc64(B * f->dkv * F);
    f->v = alloc64(B * f->dkv * F);
    f->att = alloc64(B * f->dq * F);
    f->tmp = alloc64(B * f->d * F);
    f->gate = alloc64(B * f->ff * F);
    f->up = alloc64(B * f->ff * F);
    f->hidden = alloc64(O * f->d * F);
    f->logits = alloc64(O * hp->n_vocab * F);
    for (int i = 0; i < MAX_ACTS; i++)
        f->act_mem[i] = alloc64(act_bytes);
    f->scores = alloc64((size_t)f->n_threads * f->n_rep * f->max_ctx * F);
    f->rope = alloc64((size_t)f->max_ctx * hp->n_rot * F);
    f->hidden_row = calloc(B, sizeof *f->hidden_row);
    f->logit_row = calloc(B, sizeof *f->logit_row);
    f->logit_tok = calloc(O, sizeof *f->logit_tok);
    f->seq_stamp = calloc(kc->max_seqs, sizeof *f->seq_stamp);
    f->seq_next = calloc(kc->max_seqs, sizeof *f->seq_next);
    f->batch_seqs = calloc(kc->max_seqs, sizeof *f->batch_seqs);
    f->emb_seq = calloc(B, sizeof *f->emb_seq);
    f->emb_pos = calloc(B, sizeof *f->emb_pos);
    f->emb_out = calloc(B, sizeof *f->emb_out);
    f->emb_acc = calloc(f->d, sizeof *f->emb_acc);
    bool ok = f->x && f->xb && f->q && f->k && f->v && f->att && f->tmp && f->gate && f->up &&
              f->hidden && f->logits && f->scores && f->rope && f->hidden_row && f->logit_row &&
              f->logit_tok && f->seq_stamp && f->seq_next && f->batch_seqs && f->emb_seq &&
              f->emb_pos && f->emb_out && f->emb_acc;
    for (int i = 0; i < MAX_ACTS; i++)
        ok = ok && f->act_mem[i];
    if (!ok) {
        forward_destroy(f);
        return err_set(e, ERR_NOMEM, "out of memory for the forward pass buffers (max_batch %u)",
                       f->max_batch);
    }
    for (size_t i = 0; i < B; i++)
        f->hidden_row[i] = f->logit_row[i] = -1;
    rope_table(f->rope, f->max_ctx, hp->n_rot, hp->rope_freq_base, hp->rope_freq_scale,
               m->rope_freqs);
    *out = f;
    return true;
}

void forward_destroy(struct forward *f)
{
    if (!f)
        return;
    free(f->x);
    free(f->xb);
    free(f->q);
    free(f->k);
    free(f->v);
    free(f->att);
    free(f->tmp);
    free(f->gate);
    free(f->up);
    free(f->hidden);
    free(f->logits);
    for (int i = 0; i < MAX_ACTS; i++)
        free(f->act_mem[i]);
    free(f->scores);
    free(f->rope);
    free(f->hidden_row);
    free(f->logit_row);
    free(f->logit_tok);
    free(f->seq_stamp);
    free(f->seq_next);
    free(f->batch_seqs);
    free(f->emb_seq);
    free(f->emb_pos);
    free(f->emb_out);
    free(f->emb_acc);
    free(f);
}

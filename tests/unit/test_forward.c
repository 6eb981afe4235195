/* test_forward.c — the forward pass on small random models written by the
 * test (no shared data needed): batch invariance across sequences, chunks
 * and threads; forked sequences; batch validation; embeddings; a model
 * mixing Q4_K and Q6_K like Q4_K_M files do. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/demo_model.h"
#include "engine/forward.h"
#include "engine/kernels.h"
#include "engine/kvcache.h"
#include "engine/model.h"
#include "tests/unit/gguf_writer.h"
#include "tests/unit/testutil.h"

struct engine {
    void *buf;
    struct gguf_file *file;
    struct model *model;
    struct kvcache *kv;
    struct threadpool *tp;
    struct forward *fw;
    uint32_t V;
};

static void engine_open_buf(struct engine *g, void *buf, size_t len, int threads, int isa,
                            uint32_t max_batch, uint32_t max_outputs)
{
    struct err e;
    g->buf = buf;
    if (!gguf_open_memory(buf, len, &g->file, &e) || !threadpool_create(threads, &g->tp, &e) ||
        !model_load(g->file, g->tp, &g->model, &e))
        fail_msg("%s", e.msg);
    struct kvcache_config kc = {
        .n_layer = g->model->hp.n_layer, .n_head_kv = g->model->hp.n_head_kv,
        .head_dim = g->model->hp.head_dim, .max_seqs = 16, .max_seq_tokens = 256,
    };
    kc.budget_bytes = kvcache_block_bytes(&kc) * 128;
    struct forward_options fo = {.max_batch = max_batch, .max_outputs = max_outputs, .isa = isa};
    if (!kvcache_create(&kc, &g->kv, &e) || !forward_create(g->model, g->kv, g->tp, &fo, &g->fw, &e))
        fail_msg("%s", e.msg);
    g->V = g->model->hp.n_vocab;
}

static void engine_open(struct engine *g, const struct demo_model_spec *s, int threads, int isa)
{
    void *buf;
    size_t len;
    struct err e;
    if (!demo_model_build(s, &buf, &len, &e))
        fail_msg("%s", e.msg);
    engine_open_buf(g, buf, len, threads, isa, 64, 64);
}

static void engine_close(struct engine *g)
{
    forward_destroy(g->fw);
    kvcache_destroy(g->kv);
    model_free(g->model);
    threadpool_destroy(g->tp);
    gguf_close(g->file);
    free(g->buf);
}

static const struct demo_model_spec spec_q8 = {
    .arch = "llama", .n_embd = 128, .n_layer = 2, .n_head = 8, .n_head_kv = 2, .n_ff = 192,
    .n_ctx = 256, .n_vocab = 300, .type = GGML_TYPE_Q8_0, .seed = 7,
};
static const struct demo_model_spec spec_qwen = {
    .arch = "qwen2", .n_embd = 64, .n_layer = 2, .n_head = 4, .n_head_kv = 4, .n_ff = 96,
    .n_ctx = 256, .n_vocab = 100, .type = GGML_TYPE_F16, .qkv_bias = true, .tied = true,
    .rope_freq_base = 1e6f, .seed = 8,
};

static int argmax(const float *v, uint32_t n)
{
    uint32_t best = 0;
    for (uint32_t i = 1; i < n; i++)
        if (v[i] > v[best])
            best = i;
    return (int)best;
}

enum { NSEQ = 4, PROMPT = 23, GEN = 12 };

/* Logits of every prompt position and every generated step, per sequence. */
struct trace {
    float *logits; /* [NSEQ][PROMPT + GEN][V] */
};

static int prompt_token(int s, int i)
{
    return 3 + (s * 37 + i * 11) % 90;
}

/* Each sequence alone: the prompt in one batch, then greedy decoding. */
static void run_alone(struct engine *g, struct trace *t)
{
    struct err e;
    const uint32_t V = g->V;
    t->logits = malloc(sizeof(float) * NSEQ * (PROMPT + GEN) * V);
    for (int s = 0; s < NSEQ; s++) {
        int32_t seq;
        assert_true(kvcache_seq_new(g->kv, &seq, &e));
        assert_true(kvcache_seq_reserve(g->kv, seq, PROMPT + GEN, &e));
        int32_t tok[PROMPT], sq[PROMPT];
        uint32_t pos[PROMPT];
        uint8_t out[PROMPT];
        for (int i = 0; i < PROMPT; i++) {
            tok[i] = prompt_token(s, i);
            sq[i] = seq;
            pos[i] = (uint32_t)i;
            out[i] = FORWARD_OUT_LOGITS;
        }
        struct forward_batch b = {PROMPT, tok, sq, pos, out};
        if (!forward_run(g->fw, &b, &e))
            fail_msg("%s", e.msg);
        float *row = t->logits + (size_t)s * (PROMPT + GEN) * V;
        for (int i = 0; i < PROMPT; i++)
            memcpy(row + (size_t)i * V, forward_logits(g->fw, (uint32_t)i), V * sizeof(float));
        int32_t next = argmax(row + (size_t)(PROMPT - 1) * V, V);
        for (int j = 0; j < GEN; j++) {
            uint32_t p = (uint32_t)(PROMPT + j);
            uint8_t o = FORWARD_OUT_LOGITS;
            struct forward_batch d = {1, &next, &seq, &p, &o};
            assert_true(forward_run(g->fw, &d, &e));
            memcpy(row + (size_t)(PROMPT + j) * V, forward_logits(g->fw, 0), V * sizeof(float));
            next = argmax(forward_logits(g->fw, 0), V);
        }
        kvcache_seq_free(g->kv, seq);
    }
}

/* All sequences together: prompts in uneven chunks, decodes of the
 * sequences that are done with their prompt in the same batches. */
static void run_mixed(struct engine *g, const struct trace *ref)
{
    struct err e;
    const uint32_t V = g->V;
    int32_t seq[NSEQ];
    int fed[NSEQ] = {0}; /* tokens fed so far */
    int32_t next[NSEQ];
    for (int s = 0; s < NSEQ; s++) {
        assert_true(kvcache_seq_new(g->kv, &seq[s], &e));
        assert_true(kvcache_seq_reserve(g->kv, seq[s], PROMPT + GEN, &e));
    }
    const int chunk[NSEQ] = {5, 23, 1, 9};
    for (int round = 0; round < 64; round++) {
        int32_t tok[64], sq[64];
        uint32_t pos[64];
        uint8_t out[64];
        int owner[64], at[64];
        uint32_t n = 0;
        for (int k = 0; k < NSEQ; k++) {
            int s = (k + round) % NSEQ; /* vary the order inside the batch */
            int m = fed[s] < PROMPT ? chunk[s] : 1;
            for (int i = 0; i < m && fed[s] < PROMPT + GEN; i++) {
                int p = fed[s];
                if (p >= PROMPT && i > 0)
                    break;
                tok[n] = p < PROMPT ? prompt_token(s, p) : next[s];
                sq[n] = seq[s];
                pos[n] = (uint32_t)p;
                out[n] = FORWARD_OUT_LOGITS;
                owner[n] = s;
                at[n] = p;
                n++;
                fed[s]++;
                if (fed[s] == PROMPT)
                    break;
            }
        }
        if (n == 0)
            break;
        struct forward_batch b = {n, tok, sq, pos, out};
        if (!forward_run(g->fw, &b, &e))
            fail_msg("%s", e.msg);
        for (uint32_t i = 0; i < n; i++) {
            const float *want = ref->logits + ((size_t)owner[i] * (PROMPT + GEN) + (size_t)at[i]) * V;
            const float *got = forward_logits(g->fw, i);
            if (memcmp(got, want, V * sizeof(float)) != 0)
                fail_msg("sequence %d position %d: batched logits differ from alone", owner[i], at[i]);
            if (at[i] >= PROMPT - 1)
                next[owner[i]] = argmax(got, V);
        }
    }
    for (int s = 0; s < NSEQ; s++) {
        assert_int_equal(kvcache_seq_len(g->kv, seq[s]), PROMPT + GEN);
        kvcache_seq_free(g->kv, seq[s]);
    }
}

static void check_invariance(const struct demo_model_spec *spec)
{
    struct engine g;
    engine_open(&g, spec, 2, -1);
    struct trace ref;
    run_alone(&g, &ref);
    for (size_t i = 0; i < (size_t)NSEQ * (PROMPT + GEN) * g.V; i++)
        assert_true(isfinite(ref.logits[i]));
    run_mixed(&g, &ref);
    engine_close(&g);
    /* other thread counts: bitwise the same */
    for (int threads = 1; threads <= 3; threads += 2) {
        engine_open(&g, spec, threads, -1);
        run_mixed(&g, &ref);
        engine_close(&g);
    }
    /* other instruction sets: the products are bitwise equal, attention's
     * exp is not, so close but not identical */
    for (int isa = KERNELS_ISA_SCALAR; isa < (int)kernels_isa_best(); isa++) {
        struct trace t;
        engine_open(&g, spec, 2, isa);
        run_alone(&g, &t);
        double worst = 0;
        for (size_t i = 0; i < (size_t)NSEQ * PROMPT * g.V; i++)
            worst = fmax(worst, fabs((double)t.logits[i] - ref.logits[i]));
        /* quantised activations amplify the tiny attention differences */
        double tol = spec->type == GGML_TYPE_Q8_0 ? 0.1 : 1e-3;
        if (worst > tol)
            fail_msg("%s differs from %s by %g", kernels_isa_name((enum kernels_isa)isa),
                     kernels_isa_name(kernels_isa_best()), worst);
        free(t.logits);
        engine_close(&g);
    }
    free(ref.logits);
}

static void test_batch_invariance_llama_q8_0(void **state)
{
    (void)state;
    check_invariance(&spec_q8);
}

static void test_batch_invariance_qwen2_f16(void **state)
{
    (void)state;
    check_invariance(&spec_qwen);
}

static void test_fork_continues_identically(void **state)
{
    (void)state;
    struct engine g;
    engine_open(&g, &spec_q8, 2, -1);
    struct err e;
    int32_t a, b;
    assert_true(kvcache_seq_new(g.kv, &a, &e));
    assert_true(kvcache_seq_reserve(g.kv, a, 40, &e));
    int32_t tok[20], sq[20];
    uint32_t pos[20];
    for (int i = 0; i < 20; i++) {
        tok[i] = prompt_token(1, i);
        sq[i] = a;
        pos[i] = (uint32_t)i;
    }
    struct forward_batch p = {20, tok, sq, pos, NULL};
    assert_true(forward_run(g.fw, &p, &e));
    assert_true(kvcache_seq_fork(g.kv, a, &b, &e));
    assert_true(kvcache_seq_reserve(g.kv, b, 5, &e));
    /* the same next token on both, in one batch: identical logits */
    int32_t t2[2] = {42, 42}, s2[2] = {a, b};
    uint32_t p2[2] = {20, 20};
    uint8_t o2[2] = {FORWARD_OUT_LOGITS, FORWARD_OUT_LOGITS};
    struct forward_batch d = {2, t2, s2, p2, o2};
    assert_true(forward_run(g.fw, &d, &e));
    assert_memory_equal(forward_logits(g.fw, 0), forward_logits(g.fw, 1), g.V * sizeof(float));
    /* different tokens diverge without disturbing each other */
    float keep[512];
    t2[0] = 43;
    t2[1] = 44;
    p2[0] = p2[1] = 21;
    assert_true(forward_run(g.fw, &d, &e));
    memcpy(keep, forward_logits(g.fw, 1), g.V * sizeof(float));
    kvcache_seq_truncate(g.kv, b, 21);
    struct forward_batch one = {1, &t2[1], &s2[1], &p2[1], &o2[1]};
    assert_true(forward_run(g.fw, &one, &e));
    assert_memory_equal(forward_logits(g.fw, 0), keep, g.V * sizeof(float));
    engine_close(&g);
}

static void expect_invalid(struct engine *g, struct forward_batch *b, const char *param)
{
    struct err e;
    assert_false(forward_run(g->fw, b, &e));
    assert_int_equal(e.code, ERR_INVALID);
    assert_string_equal(e.param, param);
}

static void test_batch_validation(void **state)
{
    (void)state;
    struct engine g;
    void *buf;
    size_t len;
    struct err e;
    assert_true(demo_model_build(&spec_q8, &buf, &len, &e));
    engine_open_buf(&g, buf, len, 2, -1, 8, 2);
    int32_t s;
    assert_true(kvcache_seq_new(g.kv, &s, &e));
    assert_true(kvcache_seq_reserve(g.kv, s, 4, &e));
    int32_t tok[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9}, sq[9] = {s, s, s, s, s, s, s, s, s};
    uint32_t pos[9] = {0, 1, 2, 3, 4, 5, 6, 7, 8};
    uint8_t out[9] = {0};
    struct forward_batch b = {0, tok, sq, pos, out};
    expect_invalid(&g, &b, "n_tokens");
    b.n_tokens = 9;
    expect_invalid(&g, &b, "n_tokens"); /* over max_batch */
    int32_t bare;
    assert_true(kvcache_seq_new(g.kv, &bare, &e));
    sq[0] = bare;
    b.n_tokens = 1;
    expect_invalid(&g, &b, "pos");      /* nothing reserved */
    sq[0] = s;
    b.n_tokens = 2;
    pos[1] = 2;
    expect_invalid(&g, &b, "pos");      /* a gap */
    pos[1] = 1;
    tok[1] = (int32_t)g.V;
    expect_invalid(&g, &b, "tokens");
    tok[1] = 2;
    sq[1] = 15;
    expect_invalid(&g, &b, "seq");
    sq[1] = s;
    out[0] = out[1] = FORWARD_OUT_LOGITS;
    b.n_tokens = 3;
    out[2] = FORWARD_OUT_HIDDEN;
    expect_invalid(&g, &b, "out");      /* more than max_outputs */
    out[2] = 0;
    assert_int_equal(kvcache_seq_len(g.kv, s), 0); /* nothing happened */
    assert_true(forward_run(g.fw, &b, &e));
    assert_int_equal(kvcache_seq_len(g.kv, s), 3);
    assert_non_null(forward_logits(g.fw, 1));
    assert_null(forward_logits(g.fw, 2));
    assert_null(forward_hidden(g.fw, 2));
    assert_non_null(forward_hidden(g.fw, 0)); /* logits imply the hidden state */
    /* a smaller or failed run leaves no stale outputs behind */
    b.n_tokens = 1;
    pos[0] = 3;
    assert_true(forward_run(g.fw, &b, &e));
    assert_non_null(forward_logits(g.fw, 0));
    assert_null(forward_logits(g.fw, 1));
    pos[0] = 9;
    assert_false(forward_run(g.fw, &b, &e));
    assert_null(forward_logits(g.fw, 0));
    engine_close(&g);
}

static void test_embeddings(void **state)
{
    (void)state;
    struct engine g, small;
    void *buf, *buf2;
    size_t len;
    struct err e;
    assert_true(demo_model_build(&spec_q8, &buf, &len, &e));
    assert_true(demo_model_build(&spec_q8, &buf2, &len, &e));
    engine_open_buf(&g, buf, len, 2, -1, 64, 64);
    engine_open_buf(&small, buf2, len, 2, -1, 8, 3); /* forces chunking */
    const uint32_t d = g.model->hp.n_embd;
    int32_t tok[30];
    for (int i = 0; i < 30; i++)
        tok[i] = prompt_token(2, i);
    float *mean = malloc(d * 4), *mean2 = malloc(d * 4), *last = malloc(d * 4), *last2 = malloc(d * 4);
    assert_true(forward_embed(g.fw, tok, 30, FORWARD_POOL_MEAN, mean, &e));
    assert_true(forward_embed(small.fw, tok, 30, FORWARD_POOL_MEAN, mean2, &e));
    assert_true(forward_embed(g.fw, tok, 30, FORWARD_POOL_LAST, last, &e));
    assert_true(forward_embed(small.fw, tok, 30, FORWARD_POOL_LAST, last2, &e));
    double n1 = 0, n2 = 0, dot = 0;
    for (uint32_t i = 0; i < d; i++) {
        n1 += (double)mean[i] * mean[i];
        n2 += (double)last[i] * last[i];
        dot += (double)mean[i] * last[i];
    }
    assert_true(fabs(n1 - 1) < 1e-5 && fabs(n2 - 1) < 1e-5);
    assert_true(dot < 0.9999); /* mean and last differ */
    assert_memory_equal(last, last2, d * 4);
    for (uint32_t i = 0; i < d; i++)
        assert_true(fabsf(mean[i] - mean2[i]) < 1e-6f);
    /* the temporary sequence is gone */
    assert_int_equal(kvcache_free_seqs(g.kv), 16);
    assert_int_equal(kvcache_free_blocks(g.kv), kvcache_total_blocks(g.kv));
    /* last pooling = the normalised hidden state of the last token */
    int32_t s;
    assert_true(kvcache_seq_new(g.kv, &s, &e));
    assert_true(kvcache_seq_reserve(g.kv, s, 30, &e));
    int32_t sq[30];
    uint32_t pos[30];
    uint8_t out[30] = {0};
    for (int i = 0; i < 30; i++) {
        sq[i] = s;
        pos[i] = (uint32_t)i;
    }
    out[29] = FORWARD_OUT_HIDDEN;
    struct forward_batch b = {30, tok, sq, pos, out};
    assert_true(forward_run(g.fw, &b, &e));
    const float *h = forward_hidden(g.fw, 29);
    assert_null(forward_logits(g.fw, 29));
    double n = 0;
    for (uint32_t i = 0; i < d; i++)
        n += (double)h[i] * h[i];
    for (uint32_t i = 0; i < d; i++)
        assert_true(fabs(h[i] / sqrt(n) - last[i]) < 1e-6);
    assert_false(forward_embed(g.fw, tok, 0, FORWARD_POOL_MEAN, mean, &e));
    free(mean);
    free(mean2);
    free(last);
    free(last2);
    engine_close(&g);
    engine_close(&small);
}

/* ---- a Q4_K / Q6_K mix, written with sane random blocks ---- */

static uint32_t rng = 99;

static uint8_t rnd8(void)
{
    rng = rng * 1664525u + 1013904223u;
    return (uint8_t)(rng >> 24);
}

static void *kquant_data(enum ggml_type t, uint64_t n)
{
    uint64_t blocks = n / 256;
    uint32_t bb = ggml_type_block_bytes(t);
    uint8_t *p = malloc(blocks * bb);
    for (uint64_t i = 0; i < blocks * bb; i++)
        p[i] = rnd8();
    for (uint64_t b = 0; b < blocks; b++) {
        uint8_t *blk = p + b * bb;
        uint16_t d = kernels_f32_to_f16(t == GGML_TYPE_Q4_K ? 0.002f : 0.0004f);
        uint16_t dmin = kernels_f32_to_f16(0.004f);
        if (t == GGML_TYPE_Q4_K) {
            memcpy(blk, &d, 2);
            memcpy(blk + 2, &dmin, 2);
        } else {
            memcpy(blk + 208, &d, 2);
        }
    }
    return p;
}

static void *f32_data(uint64_t n, float base, float spread)
{
    float *p = malloc(n * 4);
    for (uint64_t i = 0; i < n; i++)
        p[i] = base + spread * ((float)rnd8() / 128.0f - 1.0f);
    return p;
}

static void add(struct test_gguf *w, const char *name, uint64_t ne0, uint64_t ne1, enum ggml_type t)
{
    uint64_t ne[2] = {ne0, ne1};
    void *data = t == GGML_TYPE_F32 ? f32_data(ne0 * ne1, ne1 == 1 ? 1.0f : 0.0f, ne1 == 1 ? 0.1f : 0.5f)
                                    : kquant_data(t, ne0 * ne1);
    test_gguf_tensor(w, name, ne1 > 1 ? 2 : 1, ne, t, data);
    free(data);
}

static void test_kquant_mix(void **state)
{
    (void)state;
    enum { D = 256, FF = 512, V = 128, L = 2 };
    struct test_gguf *w = test_gguf_new(3);
    test_gguf_str(w, "general.architecture", "llama");
    test_gguf_u32(w, "llama.embedding_length", D);
    test_gguf_u32(w, "llama.block_count", L);
    test_gguf_u32(w, "llama.attention.head_count", 4);
    test_gguf_u32(w, "llama.attention.head_count_kv", 2);
    test_gguf_u32(w, "llama.feed_forward_length", FF);
    test_gguf_u32(w, "llama.context_length", 256);
    test_gguf_f32(w, "llama.attention.layer_norm_rms_epsilon", 1e-5f);
    add(w, "token_embd.weight", D, V, GGML_TYPE_Q4_K);
    add(w, "output_norm.weight", D, 1, GGML_TYPE_F32);
    add(w, "output.weight", D, V, GGML_TYPE_Q6_K);
    for (int l = 0; l < L; l++) {
        char n[64];
        enum ggml_type alt = l % 2 ? GGML_TYPE_Q6_K : GGML_TYPE_Q4_K; /* as Q4_K_M does */
#define T(s, a, b, ty) (snprintf(n, sizeof n, "blk.%d.%s", l, s), add(w, n, a, b, ty))
        T("attn_norm.weight", D, 1, GGML_TYPE_F32);
        T("attn_q.weight", D, D, GGML_TYPE_Q4_K);
        T("attn_k.weight", D, 128, GGML_TYPE_Q4_K);
        T("attn_v.weight", D, 128, alt);
        T("attn_output.weight", D, D, GGML_TYPE_Q4_K);
        T("ffn_norm.weight", D, 1, GGML_TYPE_F32);
        T("ffn_gate.weight", D, FF, GGML_TYPE_Q4_K);
        T("ffn_up.weight", D, FF, GGML_TYPE_Q4_K);
        T("ffn_down.weight", FF, D, alt);
#undef T
    }
    size_t len;
    uint8_t *buf = test_gguf_finish(w, &len);
    struct engine g;
    engine_open_buf(&g, buf, len, 2, -1, 64, 64);
    struct trace ref;
    run_alone(&g, &ref);
    for (size_t i = 0; i < (size_t)NSEQ * (PROMPT + GEN) * V; i++)
        assert_true(isfinite(ref.logits[i]));
    run_mixed(&g, &ref);
    engine_close(&g);
    free(ref.logits);
}

/* ---- an independent float64 forward pass, the textbook way ---- */

static const float *tensor_f32(const struct gguf_file *f, const char *name)
{
    const struct gguf_tensor *t = gguf_tensor_find(f, name);
    if (!t)
        return NULL;
    assert_int_equal(t->type, GGML_TYPE_F32);
    return t->data;
}

/* y[o] = sum_i W[o][i] x[i] for a GGUF matrix ne = [n_in, n_out] */
static void ref_matvec(const float *w, const double *x, uint32_t n_in, uint32_t n_out, double *y)
{
    for (uint32_t o = 0; o < n_out; o++) {
        double s = 0;
        for (uint32_t i = 0; i < n_in; i++)
            s += (double)w[(size_t)o * n_in + i] * x[i];
        y[o] = s;
    }
}

static void ref_rmsnorm(const double *x, const float *w, uint32_t n, double eps, double *y)
{
    double ss = 0;
    for (uint32_t i = 0; i < n; i++)
        ss += x[i] * x[i];
    double sc = 1.0 / sqrt(ss / n + eps);
    for (uint32_t i = 0; i < n; i++)
        y[i] = x[i] * sc * w[i];
}

static void ref_rope(double *v, uint32_t heads, const struct model *m, uint32_t pos)
{
    const struct model_hparams *hp = &m->hp;
    for (uint32_t h = 0; h < heads; h++)
        for (uint32_t i = 0; i < hp->n_rot / 2; i++) {
            double th = pos * pow(hp->rope_freq_base, -2.0 * i / hp->n_rot) * hp->rope_freq_scale /
                        (m->rope_freqs ? m->rope_freqs[i] : 1.0);
            uint32_t a = hp->rope_neox ? i : 2 * i, b = hp->rope_neox ? i + hp->n_rot / 2 : 2 * i + 1;
            double *x = v + (size_t)h * hp->head_dim, x0 = x[a], x1 = x[b];
            x[a] = x0 * cos(th) - x1 * sin(th);
            x[b] = x0 * sin(th) + x1 * cos(th);
        }
}

static void ref_forward(const struct gguf_file *f, const struct model *m, const int32_t *tok,
                        uint32_t n, double *logits)
{
    const struct model_hparams *hp = &m->hp;
    const uint32_t d = hp->n_embd, hd = hp->head_dim, dq = hp->n_head * hd,
                   dkv = hp->n_head_kv * hd, ff = hp->n_ff, V = hp->n_vocab;
    double *x = calloc((size_t)n * d, 8), *xb = calloc(d, 8), *K = calloc((size_t)n * dkv, 8),
           *Vv = calloc((size_t)n * dkv, 8), *Q = calloc((size_t)n * dq, 8), *att = calloc(dq, 8),
           *o = calloc(d, 8), *g = calloc(ff, 8), *u = calloc(ff, 8), *p = calloc(n, 8);
    const float *emb = tensor_f32(f, "token_embd.weight");
    for (uint32_t i = 0; i < n; i++)
        for (uint32_t j = 0; j < d; j++)
            x[(size_t)i * d + j] = emb[(size_t)tok[i] * d + j];
    char name[64];
#define W(s) (snprintf(name, sizeof name, "blk.%u.%s", l, s), tensor_f32(f, name))
    for (uint32_t l = 0; l < hp->n_layer; l++) {
        for (uint32_t i = 0; i < n; i++) {
            ref_rmsnorm(x + (size_t)i * d, W("attn_norm.weight"), d, hp->rms_eps, xb);
            ref_matvec(W("attn_q.weight"), xb, d, dq, Q + (size_t)i * dq);
            ref_matvec(W("attn_k.weight"), xb, d, dkv, K + (size_t)i * dkv);
            ref_matvec(W("attn_v.weight"), xb, d, dkv, Vv + (size_t)i * dkv);
            if (hp->qkv_bias) {
                for (uint32_t j = 0; j < dq; j++)
                    Q[(size_t)i * dq + j] += W("attn_q.bias")[j];
                for (uint32_t j = 0; j < dkv; j++) {
                    K[(size_t)i * dkv + j] += W("attn_k.bias")[j];
                    Vv[(size_t)i * dkv + j] += W("attn_v.bias")[j];
                }
            }
            ref_rope(Q + (size_t)i * dq, hp->n_head, m, i);
            ref_rope(K + (size_t)i * dkv, hp->n_head_kv, m, i);
        }
        for (uint32_t i = 0; i < n; i++) {
            for (uint32_t h = 0; h < hp->n_head; h++) {
                uint32_t kvh = h / (hp->n_head / hp->n_head_kv);
                double max = -INFINITY, sum = 0;
                for (uint32_t j = 0; j <= i; j++) {
                    double s = 0;
                    for (uint32_t c = 0; c < hd; c++)
                        s += Q[(size_t)i * dq + h * hd + c] * K[(size_t)j * dkv + kvh * hd + c];
                    p[j] = s / sqrt(hd);
                    max = fmax(max, p[j]);
                }
                for (uint32_t j = 0; j <= i; j++)
                    sum += p[j] = exp(p[j] - max);
                for (uint32_t c = 0; c < hd; c++) {
                    double a = 0;
                    for (uint32_t j = 0; j <= i; j++)
                        a += p[j] / sum * Vv[(size_t)j * dkv + kvh * hd + c];
                    att[h * hd + c] = a;
                }
            }
            ref_matvec(W("attn_output.weight"), att, dq, d, o);
            double *xi = x + (size_t)i * d;
            for (uint32_t j = 0; j < d; j++)
                xi[j] += o[j];
            ref_rmsnorm(xi, W("ffn_norm.weight"), d, hp->rms_eps, xb);
            ref_matvec(W("ffn_gate.weight"), xb, d, ff, g);
            ref_matvec(W("ffn_up.weight"), xb, d, ff, u);
            for (uint32_t j = 0; j < ff; j++)
                g[j] = g[j] / (1 + exp(-g[j])) * u[j];
            ref_matvec(W("ffn_down.weight"), g, ff, d, o);
            for (uint32_t j = 0; j < d; j++)
                xi[j] += o[j];
        }
    }
#undef W
    const float *out = tensor_f32(f, "output.weight");
    for (uint32_t i = 0; i < n; i++) {
        ref_rmsnorm(x + (size_t)i * d, tensor_f32(f, "output_norm.weight"), d, hp->rms_eps, xb);
        ref_matvec(out ? out : emb, xb, d, V, logits + (size_t)i * V);
    }
    free(x);
    free(xb);
    free(K);
    free(Vv);
    free(Q);
    free(att);
    free(o);
    free(g);
    free(u);
    free(p);
}

/* Partial rotary embeddings (rope.dimension_count < head size), both pair
 * layouts, biases, tied embeddings, and RoPE scaling (Llama 3.1's frequency
 * factors, linear), against the float64 pass above. */
static void test_matches_float64_reference(void **state)
{
    (void)state;
    const struct demo_model_spec specs[] = {
        {.arch = "llama", .n_embd = 64, .n_layer = 2, .n_head = 4, .n_head_kv = 2, .n_ff = 96,
         .n_ctx = 256, .n_vocab = 100, .type = GGML_TYPE_F32, .n_rot = 8, .seed = 11},
        {.arch = "qwen2", .n_embd = 64, .n_layer = 2, .n_head = 4, .n_head_kv = 1, .n_ff = 80,
         .n_ctx = 256, .n_vocab = 90, .type = GGML_TYPE_F32, .n_rot = 12, .qkv_bias = true,
         .tied = true, .rope_freq_base = 1e6f, .seed = 12},
        {.arch = "llama", .n_embd = 48, .n_layer = 1, .n_head = 3, .n_head_kv = 3, .n_ff = 64,
         .n_ctx = 256, .n_vocab = 70, .type = GGML_TYPE_F32, .seed = 13},
        {.arch = "llama", .n_embd = 64, .n_layer = 2, .n_head = 4, .n_head_kv = 2, .n_ff = 96,
         .n_ctx = 256, .n_vocab = 100, .type = GGML_TYPE_F32, .rope_freqs = true,
         .rope_freq_base = 5e5f, .seed = 14},
        {.arch = "qwen2", .n_embd = 64, .n_layer = 2, .n_head = 4, .n_head_kv = 2, .n_ff = 96,
         .n_ctx = 256, .n_vocab = 100, .type = GGML_TYPE_F32, .rope_linear = 4, .qkv_bias = true,
         .seed = 15},
    };
    enum { N = 37 };
    for (size_t k = 0; k < sizeof specs / sizeof specs[0]; k++) {
        struct engine g;
        engine_open(&g, &specs[k], 2, -1);
        const struct model_hparams *hp = &g.model->hp;
        assert_int_equal(hp->n_rot, specs[k].n_rot ? specs[k].n_rot : hp->head_dim);
        struct err e;
        int32_t s, tok[N], sq[N];
        uint32_t pos[N];
        uint8_t out[N];
        assert_true(kvcache_seq_new(g.kv, &s, &e));
        assert_true(kvcache_seq_reserve(g.kv, s, N, &e));
        for (int i = 0; i < N; i++) {
            tok[i] = prompt_token((int)k, i) % (int)hp->n_vocab;
            sq[i] = s;
            pos[i] = (uint32_t)i;
            out[i] = FORWARD_OUT_LOGITS;
        }
        struct forward_batch b = {N, tok, sq, pos, out};
        assert_true(forward_run(g.fw, &b, &e));
        double *want = malloc(sizeof(double) * N * hp->n_vocab);
        ref_forward(g.file, g.model, tok, N, want);
        double worst = 0, spread = 0;
        for (int i = 0; i < N; i++)
            for (uint32_t v = 0; v < hp->n_vocab; v++) {
                double w = want[(size_t)i * hp->n_vocab + v];
                worst = fmax(worst, fabs(forward_logits(g.fw, (uint32_t)i)[v] - w));
                spread = fmax(spread, fabs(w));
            }
        if (worst > 1e-4 * (1 + spread))
            fail_msg("%s n_rot %u: logits differ from float64 by %g (max |logit| %g)", specs[k].arch,
                     hp->n_rot, worst, spread);
        free(want);
        engine_close(&g);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_batch_invariance_llama_q8_0),
        cmocka_unit_test(test_batch_invariance_qwen2_f16),
        cmocka_unit_test(test_fork_continues_identically),
        cmocka_unit_test(test_batch_validation),
        cmocka_unit_test(test_embeddings),
        cmocka_unit_test(test_kquant_mix),
        cmocka_unit_test(test_matches_float64_reference),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

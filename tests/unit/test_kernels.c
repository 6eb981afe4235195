/* test_kernels.c — the weight kernels against their scalar reference (bit for
 * bit), against a float64 product of the dequantised operands (tolerance),
 * batch invariance (a row alone == the same row in a batch), conversions,
 * attention and SiLU. */
#include <immintrin.h>
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/kernels.h"
#include "engine/threadpool.h"
#include "tests/unit/testutil.h"

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint32_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 16);
}

static float rndf(void) /* in [-1, 1) */
{
    return (float)(rnd() & 0xffffff) / 8388608.0f - 1.0f;
}

static void put16(uint8_t *p, uint16_t v)
{
    memcpy(p, &v, 2);
}

static size_t gguf_row_bytes(enum ggml_type t, uint32_t k)
{
    return (size_t)k / ggml_type_block_elems(t) * ggml_type_block_bytes(t);
}

/* A random tensor of n rows in GGUF layout. Scales are kept small and sane;
 * quants cover their whole range (including -128 for Q8_0). */
static uint8_t *random_tensor(enum ggml_type t, uint32_t k, uint32_t n)
{
    size_t rb = gguf_row_bytes(t, k);
    uint8_t *buf = malloc(rb * n);
    assert_non_null(buf);
    for (size_t i = 0; i < rb * n; i++)
        buf[i] = (uint8_t)rnd();
    for (uint32_t r = 0; r < n; r++) {
        uint8_t *row = buf + r * rb;
        switch (t) {
        case GGML_TYPE_F32:
            for (uint32_t i = 0; i < k; i++) {
                float f = rndf();
                memcpy(row + 4 * i, &f, 4);
            }
            break;
        case GGML_TYPE_F16:
            for (uint32_t i = 0; i < k; i++)
                put16(row + 2 * i, kernels_f32_to_f16(rndf()));
            break;
        case GGML_TYPE_BF16:
            for (uint32_t i = 0; i < k; i++)
                put16(row + 2 * i, kernels_f32_to_bf16(rndf()));
            break;
        case GGML_TYPE_Q8_0:
            for (uint32_t b = 0; b < k / 32; b++)
                put16(row + 34 * b, kernels_f32_to_f16(0.001f + 0.01f * fabsf(rndf())));
            break;
        case GGML_TYPE_Q4_0:
            for (uint32_t b = 0; b < k / 32; b++)
                put16(row + 18 * b, kernels_f32_to_f16(0.01f + 0.05f * fabsf(rndf())));
            break;
        case GGML_TYPE_Q4_K:
            for (uint32_t b = 0; b < k / 256; b++) {
                put16(row + 144 * b, kernels_f32_to_f16(0.001f + 0.002f * fabsf(rndf())));
                put16(row + 144 * b + 2, kernels_f32_to_f16(0.001f * fabsf(rndf())));
            }
            break;
        case GGML_TYPE_Q6_K:
            for (uint32_t b = 0; b < k / 256; b++)
                put16(row + 210 * b + 208, kernels_f32_to_f16(0.0005f + 0.001f * fabsf(rndf())));
            break;
        default:
            fail();
        }
    }
    return buf;
}

static const enum ggml_type all_types[] = {
    GGML_TYPE_F32, GGML_TYPE_F16, GGML_TYPE_BF16, GGML_TYPE_Q8_0,
    GGML_TYPE_Q4_0, GGML_TYPE_Q4_K, GGML_TYPE_Q6_K,
};

struct packed {
    struct kernels_matrix m;
    void *mem;
};

static void pack(enum ggml_type t, uint32_t k, uint32_t n, const uint8_t *src, struct packed *p)
{
    size_t bytes;
    struct err e;
    assert_true(kernels_pack_size(t, k, n, &bytes, &e));
    p->mem = aligned_alloc(64, bytes);
    assert_non_null(p->mem);
    kernels_pack_init(t, k, n, p->mem, &p->m);
    kernels_pack_groups(&p->m, src, 0, p->m.n_groups);
}

struct acts {
    struct kernels_act a;
    void *mem;
};

static void make_act(enum kernels_act_kind kind, const float *x, uint32_t rows, uint32_t k,
                     struct acts *out)
{
    size_t bytes = kernels_act_bytes(kind, rows, k);
    out->mem = aligned_alloc(64, bytes < 64 ? 64 : bytes);
    assert_non_null(out->mem);
    memset(out->mem, 0, bytes); /* padding, so rows compare as bytes */
    kernels_act_init(&out->a, kind, rows, k, out->mem);
    kernels_act_convert_rows(&out->a, x, k, 0, rows, KERNELS_ISA_SCALAR);
    /* every ISA converts to the same bytes */
    for (int isa = KERNELS_ISA_AVX2; isa <= (int)kernels_isa_best(); isa++) {
        void *mem = aligned_alloc(64, bytes < 64 ? 64 : bytes);
        memset(mem, 0, bytes);
        struct kernels_act b;
        kernels_act_init(&b, kind, rows, k, mem);
        kernels_act_convert_rows(&b, x, k, 0, rows, (enum kernels_isa)isa);
        assert_memory_equal(mem, out->mem, bytes);
        free(mem);
    }
}

/* The activation values the kernel actually multiplies by (dequantised). */
static void act_values(const struct kernels_act *a, const float *x, uint32_t k, double *out)
{
    float *tmp = malloc(sizeof(float) * k);
    switch (a->kind) {
    case KERNELS_ACT_Q8_0:
    case KERNELS_ACT_Q8_K: {
        /* Re-derive from the stored row: q * d. */
        const int8_t *q = (const int8_t *)a->data;
        const float *d = (const float *)(a->data + ((k + 63) & ~63u));
        uint32_t blk = a->kind == KERNELS_ACT_Q8_0 ? 32 : 256;
        for (uint32_t i = 0; i < k; i++)
            out[i] = (double)d[i / blk] * q[i];
        break;
    }
    default:
        memcpy(tmp, a->data, sizeof(float) * k);
        for (uint32_t i = 0; i < k; i++)
            out[i] = tmp[i];
        (void)x;
    }
    free(tmp);
}

static void check_type(enum ggml_type t, uint32_t k, uint32_t n, uint32_t rows)
{
    uint8_t *src = random_tensor(t, k, n);
    struct packed p;
    pack(t, k, n, src, &p);
    float *x = malloc(sizeof(float) * k * rows);
    for (uint32_t i = 0; i < k * rows; i++)
        x[i] = rndf() * 2;
    for (uint32_t i = 0; i < k; i++) /* an all-zero row: amax = 0 paths */
        x[(rows - 1) * k + i] = 0;
    struct acts a;
    make_act(kernels_act_kind_for(t), x, rows, k, &a);

    size_t ldy = n + 3;
    float *ref = calloc(rows * ldy, sizeof(float));
    kernels_matmul(&p.m, &a.a, ref, ldy, 0, p.m.n_groups, KERNELS_ISA_SCALAR);

    /* float64 product of the dequantised operands, on row 0 */
    double *xv = malloc(sizeof(double) * k);
    float *wr = malloc(sizeof(float) * k);
    act_values(&a.a, x, k, xv);
    double worst = 0;
    for (uint32_t c = 0; c < n; c++) {
        kernels_row_dequant(t, src + c * gguf_row_bytes(t, k), k, wr);
        double s = 0, mag = 0;
        for (uint32_t i = 0; i < k; i++) {
            s += xv[i] * wr[i];
            mag += fabs(xv[i] * wr[i]);
        }
        double err = fabs(s - ref[c]) / (mag + 1e-30);
        if (err > worst)
            worst = err;
    }
    if (worst > 1e-5)
        fail_msg("%s: scalar kernel differs from float64 by %g (relative to sum |x*w|)",
                 ggml_type_name(t), worst);

    enum kernels_isa best = kernels_isa_best();
    for (int isa = KERNELS_ISA_AVX2; isa <= (int)best; isa++) {
        float *y = calloc(rows * ldy, sizeof(float));
        kernels_matmul(&p.m, &a.a, y, ldy, 0, p.m.n_groups, (enum kernels_isa)isa);
        for (uint32_t r = 0; r < rows; r++)
            for (uint32_t c = 0; c < n; c++)
                if (memcmp(&y[r * ldy + c], &ref[r * ldy + c], sizeof(float)) != 0)
                    fail_msg("%s %s: row %u col %u: %.9g vs scalar %.9g", ggml_type_name(t),
                             kernels_isa_name((enum kernels_isa)isa), r, c, y[r * ldy + c],
                             ref[r * ldy + c]);
        /* nothing written past n_out in the padding columns */
        for (uint32_t r = 0; r < rows; r++)
            for (uint32_t c = n; c < ldy; c++)
                assert_true(y[r * ldy + c] == 0);

        /* All rows over column ranges split anywhere (forward.c splits at
         * multiples of kernels_matmul_group_step(), tasks of any size). */
        uint32_t step = kernels_matmul_group_step(&p.m, rows, (enum kernels_isa)isa);
        assert_true(step >= 1 && step <= 16);
        uint32_t cuts[] = {0, 1, step + 1 < p.m.n_groups ? step + 1 : p.m.n_groups, p.m.n_groups};
        float *ys = calloc(rows * ldy, sizeof(float));
        for (int c = 3; c > 0; c--)
            kernels_matmul(&p.m, &a.a, ys, ldy, cuts[c - 1], cuts[c], (enum kernels_isa)isa);
        assert_memory_equal(ys, ref, rows * ldy * sizeof(float));
        free(ys);

        /* Batch invariance: each row alone, and a split column range. */
        for (uint32_t r = 0; r < rows; r++) {
            struct acts one;
            make_act(kernels_act_kind_for(t), x + r * k, 1, k, &one);
            float *y1 = calloc(ldy, sizeof(float));
            uint32_t mid = p.m.n_groups / 2;
            kernels_matmul(&p.m, &one.a, y1, ldy, mid, p.m.n_groups, (enum kernels_isa)isa);
            kernels_matmul(&p.m, &one.a, y1, ldy, 0, mid, (enum kernels_isa)isa);
            assert_memory_equal(y1, &ref[r * ldy], n * sizeof(float));
            free(y1);
            free(one.mem);
        }
        free(y);
    }
    free(xv);
    free(wr);
    free(ref);
    free(x);
    free(a.mem);
    free(p.mem);
    free(src);
}

static void test_matmul_all_types(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof all_types / sizeof all_types[0]; i++) {
        enum ggml_type t = all_types[i];
        uint32_t k = (t == GGML_TYPE_Q4_K || t == GGML_TYPE_Q6_K) ? 512 : 96;
        uint32_t rows_list[] = {1, 2, 5, 13};
        for (size_t r = 0; r < 4; r++)
            check_type(t, k, 40, rows_list[r]);
        check_type(t, k, 64, 7);
    }
    /* float types accept any row length, including odd ones (K-chunking
     * kicks in above 512 with many rows) */
    check_type(GGML_TYPE_F32, 1037, 19, 9);
    check_type(GGML_TYPE_F16, 1037, 19, 9);
    check_type(GGML_TYPE_BF16, 17, 3, 2);
}

static void test_pack_size_refuses(void **state)
{
    (void)state;
    size_t bytes;
    struct err e;
    assert_false(kernels_pack_size(GGML_TYPE_Q8_0, 48, 16, &bytes, &e));
    assert_int_equal(e.code, ERR_CORRUPT);
    assert_false(kernels_pack_size(GGML_TYPE_Q5_0, 64, 16, &bytes, &e));
    assert_int_equal(e.code, ERR_UNSUPPORTED);
    assert_true(kernels_pack_size(GGML_TYPE_Q8_0, 64, 17, &bytes, &e));
    assert_int_equal(bytes, 2 * 2 * 544);
}

static void test_f16_conversions(void **state)
{
    (void)state;
    /* every finite f16 survives f16 -> f32 -> f16 */
    for (uint32_t h = 0; h < 65536; h++) {
        if ((h & 0x7c00) == 0x7c00 && (h & 0x3ff))
            continue; /* NaN payloads are not preserved exactly */
        float f = kernels_f16_to_f32((uint16_t)h);
        assert_int_equal(kernels_f32_to_f16(f), h);
    }
    assert_true(kernels_f16_to_f32(0x3c00) == 1.0f);
    assert_true(kernels_f16_to_f32(0x0001) == ldexpf(1, -24));
    /* ties to even, overflow, underflow */
    assert_int_equal(kernels_f32_to_f16(1.0f + ldexpf(1, -11)), 0x3c00);
    assert_int_equal(kernels_f32_to_f16(1.0f + 3 * ldexpf(1, -11)), 0x3c02);
    assert_int_equal(kernels_f32_to_f16(65520.f), 0x7c00);
    assert_int_equal(kernels_f32_to_f16(65519.f), 0x7bff);
    assert_int_equal(kernels_f32_to_f16(ldexpf(1, -25)), 0);
    assert_int_equal(kernels_f32_to_f16(ldexpf(1.5f, -25)), 1);
    assert_int_equal(kernels_f32_to_f16(-ldexpf(3, -25)), 0x8002);
    assert_int_equal(kernels_f32_to_bf16(1.0f + ldexpf(1, -8)), 0x3f80);
    assert_int_equal(kernels_f32_to_bf16(1.0f + 3 * ldexpf(1, -8)), 0x3f82);
    assert_true(kernels_bf16_to_f32(0x3f80) == 1.0f);
}

/* Hardware conversion as a cross-check of the scalar one. */
__attribute__((target("f16c"))) static uint16_t hw_f16(float f)
{
    return (uint16_t)_cvtss_sh(f, 0);
}

static void test_f16_matches_hardware(void **state)
{
    (void)state;
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("f16c")) {
        skip();
        return;
    }
    for (int i = 0; i < 2000000; i++) {
        uint32_t u = rnd() | ((uint32_t)rnd() << 16);
        float f;
        memcpy(&f, &u, 4);
        if (isnan(f))
            continue;
        assert_int_equal(kernels_f32_to_f16(f), hw_f16(f));
    }
}

static void test_q8_0_quantisation_is_ggml(void **state)
{
    (void)state;
    float x[32];
    for (int i = 0; i < 32; i++)
        x[i] = (float)i - 10.5f;
    struct acts a;
    make_act(KERNELS_ACT_Q8_0, x, 1, 32, &a);
    const int8_t *q = (const int8_t *)a.a.data;
    const float *d = (const float *)(a.a.data + 64);
    const int32_t *s = (const int32_t *)(a.a.data + 128);
    float id = 127.f / 20.5f;
    int32_t sum = 0;
    for (int i = 0; i < 32; i++) {
        assert_int_equal(q[i], (int)rintf(x[i] * id));
        sum += q[i];
    }
    assert_int_equal(s[0], sum);
    assert_true(d[0] == kernels_f16_to_f32(kernels_f32_to_f16(20.5f / 127.f)));
    /* half-way cases round to even: 2.5 * (127/127) */
    float y[32] = {0};
    y[0] = 127.f;
    y[1] = 2.5f;
    y[2] = -3.5f;
    free(a.mem);
    make_act(KERNELS_ACT_Q8_0, y, 1, 32, &a);
    q = (const int8_t *)a.a.data;
    assert_int_equal(q[0], 127);
    assert_int_equal(q[1], 2);
    assert_int_equal(q[2], -4);
    free(a.mem);

    /* Q8_K takes the sign of the FIRST element of largest magnitude:
     * here -3 comes before +3, so the scale is -127/-3: -3 -> -127, 3 -> 127 */
    float z[256] = {0};
    z[5] = -3.f;
    z[100] = 3.f;
    z[7] = 1.5f;
    make_act(KERNELS_ACT_Q8_K, z, 1, 256, &a); /* also compares every ISA */
    q = (const int8_t *)a.a.data;
    assert_int_equal(q[5], -127);
    assert_int_equal(q[100], 127);
    assert_int_equal(q[7], 64); /* rint(63.5) is even */
    free(a.mem);
}

/* A small paged KV pool with keys [head_dim][bt] and values [bt][head_dim]. */
static void check_attention(uint32_t hd, uint32_t n_rep, uint32_t nk, uint32_t bt)
{
    uint32_t nblk = (nk + bt - 1) / bt + 1;
    size_t stride = (size_t)2 * bt * hd;
    float *pool = malloc(sizeof(float) * stride * nblk);
    for (size_t i = 0; i < stride * nblk; i++)
        pool[i] = rndf();
    int32_t *blocks = malloc(sizeof(int32_t) * nblk);
    for (uint32_t b = 0; b < nblk; b++)
        blocks[b] = (int32_t)(nblk - 1 - b); /* out of order on purpose */
    float *q = malloc(sizeof(float) * n_rep * hd);
    for (uint32_t i = 0; i < n_rep * hd; i++)
        q[i] = rndf() * 3;
    float *ref = malloc(sizeof(float) * n_rep * hd), *out = malloc(sizeof(float) * n_rep * hd);
    float *sc = malloc(sizeof(float) * n_rep * nk);
    struct kernels_attn a = {
        .q = q, .out = ref, .n_rep = n_rep, .head_dim = hd, .scale = 1.0f / sqrtf((float)hd),
        .n_keys = nk, .base = pool, .blocks = blocks, .block_tokens = bt,
        .block_stride = stride, .k_off = 0, .v_off = (size_t)bt * hd, .scores = sc,
    };
    kernels_attend(&a, KERNELS_ISA_SCALAR);
    /* float64 softmax by hand for head 0 */
    double *p = malloc(sizeof(double) * nk), max = -INFINITY, sum = 0;
    for (uint32_t t = 0; t < nk; t++) {
        const float *blk = pool + blocks[t / bt] * stride;
        double dot = 0;
        for (uint32_t i = 0; i < hd; i++)
            dot += (double)q[i] * blk[(size_t)i * bt + t % bt];
        p[t] = dot / sqrt(hd);
        if (p[t] > max)
            max = p[t];
    }
    for (uint32_t t = 0; t < nk; t++) {
        p[t] = exp(p[t] - max);
        sum += p[t];
    }
    for (uint32_t i = 0; i < hd; i++) {
        double o = 0;
        for (uint32_t t = 0; t < nk; t++)
            o += p[t] / sum * pool[blocks[t / bt] * stride + (size_t)bt * hd + (t % bt) * hd + i];
        assert_true(fabs(o - ref[i]) < 1e-5);
    }
    for (int isa = KERNELS_ISA_AVX2; isa <= (int)kernels_isa_best(); isa++) {
        a.out = out;
        kernels_attend(&a, (enum kernels_isa)isa);
        for (uint32_t i = 0; i < n_rep * hd; i++)
            if (fabsf(out[i] - ref[i]) > 1e-5f)
                fail_msg("attention %s hd %u nk %u: %g vs %g", kernels_isa_name((enum kernels_isa)isa),
                         hd, nk, out[i], ref[i]);
    }
    free(p);
    free(sc);
    free(out);
    free(ref);
    free(q);
    free(blocks);
    free(pool);
}

static void test_attention(void **state)
{
    (void)state;
    check_attention(64, 8, 1, 16);
    check_attention(64, 8, 37, 16);
    check_attention(8, 2, 100, 16);
    check_attention(32, 1, 300, 32);
    check_attention(160, 3, 17, 16);
}

static void test_silu_mul(void **state)
{
    (void)state;
    enum { N = 203 };
    float g[N], u[N], ref[N], out[N];
    for (int i = 0; i < N; i++) {
        g[i] = rndf() * 20;
        u[i] = rndf();
        ref[i] = (float)(g[i] / (1.0 + exp(-(double)g[i])) * u[i]);
    }
    for (int isa = KERNELS_ISA_SCALAR; isa <= (int)kernels_isa_best(); isa++) {
        memcpy(out, g, sizeof out);
        kernels_silu_mul(out, u, N, (enum kernels_isa)isa);
        for (int i = 0; i < N; i++)
            assert_true(fabsf(out[i] - ref[i]) <= 1e-6f * (1 + fabsf(ref[i])));
    }
}

/* ---- thread pool ---- */

struct count_ctx {
    _Atomic int hits[1000];
    _Atomic int bad_thread;
    int n_threads;
};

static void count_task(void *ctx, int task, int thread)
{
    struct count_ctx *c = ctx;
    atomic_fetch_add(&c->hits[task], 1);
    if (thread < 0 || thread >= c->n_threads)
        atomic_store(&c->bad_thread, 1);
}

static void test_threadpool(void **state)
{
    (void)state;
    int sizes[] = {1, 2, 3, 0};
    for (size_t s = 0; s < 4; s++) {
        struct threadpool *tp;
        struct err e;
        assert_true(threadpool_create(sizes[s], &tp, &e));
        static struct count_ctx c;
        for (int round = 0; round < 300; round++) {
            int n = (round * 37) % 1000 + 1;
            memset(&c, 0, sizeof c);
            c.n_threads = threadpool_size(tp);
            threadpool_run(tp, count_task, &c, n);
            for (int i = 0; i < 1000; i++)
                assert_int_equal(atomic_load(&c.hits[i]), i < n ? 1 : 0);
            assert_int_equal(atomic_load(&c.bad_thread), 0);
        }
        threadpool_destroy(tp);
    }
    struct threadpool *tp;
    struct err e;
    assert_false(threadpool_create(-1, &tp, &e));
    assert_int_equal(e.code, ERR_INVALID);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_f16_conversions),
        cmocka_unit_test(test_f16_matches_hardware),
        cmocka_unit_test(test_q8_0_quantisation_is_ggml),
        cmocka_unit_test(test_pack_size_refuses),
        cmocka_unit_test(test_matmul_all_types),
        cmocka_unit_test(test_attention),
        cmocka_unit_test(test_silu_mul),
        cmocka_unit_test(test_threadpool),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* kernels_avx2.c — AVX2 + FMA + F16C kernels for x86-64 CPUs without
 * AVX-512. A packed group of 16 columns is two ymm halves. Same per-element
 * arithmetic as the scalar reference (kernels.h); int8 products use
 * vpmaddubsw on operands arranged so that no 16-bit pair sum can saturate. */
/* Every function in this file is compiled for these features (GCC and
 * clang spell it differently; the fuzz build uses clang). */
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2,fma,f16c"))), apply_to = function)
#else
#pragma GCC target("avx2,fma,f16c")
#endif

#include <immintrin.h>
#include <math.h>
#include <string.h>

#include "engine/kernels_internal.h"

#define INLINE static inline __attribute__((always_inline))

INLINE __m256i lane_mask(uint32_t n) /* first n of 8 lanes set */
{
    const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)n), idx);
}

/* Store the two halves of a group, clipped to `cols` valid columns. */
INLINE void store_group(float *y, __m256 lo, __m256 hi, uint32_t cols)
{
    if (cols == 16) {
        _mm256_storeu_ps(y, lo);
        _mm256_storeu_ps(y + 8, hi);
        return;
    }
    _mm256_maskstore_ps(y, lane_mask(cols), lo);
    if (cols > 8)
        _mm256_maskstore_ps(y + 8, lane_mask(cols - 8), hi);
}

INLINE __m256 load_group(const float *y, int half, uint32_t cols)
{
    int n = (int)cols - 8 * half;
    if (n >= 8)
        return _mm256_loadu_ps(y + 8 * half);
    if (n <= 0)
        return _mm256_setzero_ps();
    return _mm256_maskload_ps(y + 8 * half, lane_mask((uint32_t)n));
}

/* ---- F32 / F16 / BF16 ----------------------------------------------------- */

enum { T_F32, T_F16, T_BF16 };

INLINE __m256 load_w(const int T, const uint8_t *W, size_t i, int half)
{
    if (T == T_F32)
        return _mm256_load_ps((const float *)(W + i * 64 + half * 32));
    __m128i h = _mm_load_si128((const __m128i *)(W + i * 32 + half * 16));
    if (T == T_F16)
        return _mm256_cvtph_ps(h);
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}

INLINE void float_tile(const int T, const int MR, const struct kernels_matrix *w,
                       const struct kernels_act *a, uint32_t g, uint32_t m0, uint32_t k0,
                       uint32_t k1, bool first, float *y, size_t ldy)
{
    const uint8_t *W = w->data + (size_t)g * w->group_bytes;
    const uint32_t cols = kernels_group_cols(w, g);
    const float *X[4];
    __m256 acc[4][2];
    for (int m = 0; m < MR; m++) {
        X[m] = (const float *)(a->data + (size_t)(m0 + m) * a->row_bytes);
        for (int h = 0; h < 2; h++)
            acc[m][h] = first ? _mm256_setzero_ps()
                              : load_group(y + (size_t)(m0 + m) * ldy + g * 16, h, cols);
    }
    for (uint32_t i = k0; i < k1; i++) {
        __m256 w0 = load_w(T, W, i, 0), w1 = load_w(T, W, i, 1);
#pragma GCC unroll 8
        for (int m = 0; m < MR; m++) {
            __m256 av = _mm256_broadcast_ss(X[m] + i);
            acc[m][0] = _mm256_fmadd_ps(av, w0, acc[m][0]);
            acc[m][1] = _mm256_fmadd_ps(av, w1, acc[m][1]);
        }
    }
    for (int m = 0; m < MR; m++)
        store_group(y + (size_t)(m0 + m) * ldy + g * 16, acc[m][0], acc[m][1], cols);
}

#define AVX2_MR 4
#define FLOAT_KC 512

INLINE void mm_float(const int T, const struct kernels_matrix *w, const struct kernels_act *a,
                     float *y, size_t ldy, uint32_t g0, uint32_t g1)
{
    const uint32_t M = a->n_rows, K = w->n_in;
    const uint32_t kc = M <= AVX2_MR ? K : FLOAT_KC;
    for (uint32_t k0 = 0; k0 < K; k0 += kc) {
        uint32_t k1 = K - k0 < kc ? K : k0 + kc;
        for (uint32_t g = g0; g < g1; g++)
            for (uint32_t m0 = 0; m0 < M; m0 += AVX2_MR) {
                switch (M - m0 < AVX2_MR ? M - m0 : AVX2_MR) {
                case 1: float_tile(T, 1, w, a, g, m0, k0, k1, k0 == 0, y, ldy); break;
                case 2: float_tile(T, 2, w, a, g, m0, k0, k1, k0 == 0, y, ldy); break;
                case 3: float_tile(T, 3, w, a, g, m0, k0, k1, k0 == 0, y, ldy); break;
                default: float_tile(T, 4, w, a, g, m0, k0, k1, k0 == 0, y, ldy); break;
                }
            }
    }
}

static void mm_f32(const struct kernels_matrix *w, const struct kernels_act *a, float *y,
                   size_t ldy, uint32_t g0, uint32_t g1)
{
    mm_float(T_F32, w, a, y, ldy, g0, g1);
}

static void mm_f16(const struct kernels_matrix *w, const struct kernels_act *a, float *y,
                   size_t ldy, uint32_t g0, uint32_t g1)
{
    mm_float(T_F16, w, a, y, ldy, g0, g1);
}

static void mm_bf16(const struct kernels_matrix *w, const struct kernels_act *a, float *y,
                    size_t ldy, uint32_t g0, uint32_t g1)
{
    mm_float(T_BF16, w, a, y, ldy, g0, g1);
}

/* ---- integer helpers -------------------------------------------------------- */

/* Sum of 4 products per int32 lane, u unsigned (<= 255) and s signed, exact
 * while every adjacent pair of products fits int16. */
INLINE __m256i dot_u8s8(__m256i u, __m256i s)
{
    return _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1));
}

/* ---- Q8_0 / Q4_0 ---------------------------------------------------------- */

INLINE void q8_tile(const bool Q4, const int MR, const struct kernels_matrix *w,
                    const struct kernels_act *a, uint32_t g, uint32_t m0, float *y, size_t ldy)
{
    const uint32_t K = w->n_in, nb = K / KQ_BLOCK;
    const uint8_t *W = w->data + (size_t)g * w->group_bytes;
    const uint8_t *S = W + (Q4 ? kq4_0_scales_off(K) : kq8_0_scales_off(K));
    const uint32_t cols = kernels_group_cols(w, g);
    const int8_t *X[4];
    const float *D[4];
    const int32_t *SUM[4];
    for (int m = 0; m < MR; m++) {
        const uint8_t *row = a->data + (size_t)(m0 + m) * a->row_bytes;
        X[m] = (const int8_t *)row;
        D[m] = (const float *)(row + kq8_d_off(K));
        SUM[m] = (const int32_t *)(row + kq8_s_off(K));
    }
    const __m256i low4 = _mm256_set1_epi8(0x0f), bias = _mm256_set1_epi8((char)0x80);
    __m256 acc[4][2];
    for (int m = 0; m < MR; m++)
        acc[m][0] = acc[m][1] = _mm256_setzero_ps();
    for (uint32_t b = 0; b < nb; b++) {
        for (int h = 0; h < 2; h++) {
            __m256i ia[4];
            for (int m = 0; m < MR; m++)
                ia[m] = Q4 ? _mm256_set1_epi32(-8 * SUM[m][b]) : _mm256_setzero_si256();
            if (!Q4) {
                /* |w| * (a * sign(w)): |w| <= 128 unsigned, |a| <= 127. */
#pragma GCC unroll 8
                for (int c = 0; c < 8; c++) {
                    __m256i u = _mm256_load_si256((const __m256i *)(W + (size_t)b * 512 + c * 64 + h * 32));
                    __m256i ws = _mm256_xor_si256(u, bias);
                    __m256i aw = _mm256_abs_epi8(ws);
                    for (int m = 0; m < MR; m++) {
                        __m256i av = _mm256_set1_epi32(kernels_ld32(X[m] + b * 32 + c * 4));
                        ia[m] = _mm256_add_epi32(ia[m], dot_u8s8(aw, _mm256_sign_epi8(av, ws)));
                    }
                }
            } else {
#pragma GCC unroll 4
                for (int c = 0; c < 4; c++) {
                    __m256i v = _mm256_load_si256((const __m256i *)(W + (size_t)b * 256 + c * 64 + h * 32));
                    __m256i lo = _mm256_and_si256(v, low4);
                    __m256i hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), low4);
                    for (int m = 0; m < MR; m++) {
                        const int8_t *xq = X[m] + b * 32 + c * 8;
                        ia[m] = _mm256_add_epi32(ia[m], dot_u8s8(lo, _mm256_set1_epi32(kernels_ld32(xq))));
                        ia[m] = _mm256_add_epi32(ia[m], dot_u8s8(hi, _mm256_set1_epi32(kernels_ld32(xq + 4))));
                    }
                }
            }
            __m256 dw = _mm256_cvtph_ps(_mm_load_si128((const __m128i *)(S + (size_t)b * 32 + h * 16)));
            for (int m = 0; m < MR; m++)
                acc[m][h] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(ia[m]),
                                            _mm256_mul_ps(dw, _mm256_set1_ps(D[m][b])), acc[m][h]);
        }
    }
    for (int m = 0; m < MR; m++)
        store_group(y + (size_t)(m0 + m) * ldy + g * 16, acc[m][0], acc[m][1], cols);
}

/* ---- Q4_K ----------------------------------------------------------------- */

INLINE void q4k_tile(const int MR, const struct kernels_matrix *w, const struct kernels_act *a,
                     uint32_t g, uint32_t m0, float *y, size_t ldy)
{
    const uint32_t K = w->n_in;
    const uint8_t *W = w->data + (size_t)g * w->group_bytes;
    const uint32_t cols = kernels_group_cols(w, g);
    const int8_t *X[4];
    const float *D[4];
    const int16_t *S32[4];
    for (int m = 0; m < MR; m++) {
        const uint8_t *row = a->data + (size_t)(m0 + m) * a->row_bytes;
        X[m] = (const int8_t *)row;
        D[m] = (const float *)(row + kq8_d_off(K));
        S32[m] = (const int16_t *)(row + kq8k_s32_off(K));
    }
    const __m256i low4 = _mm256_set1_epi8(0x0f);
    __m256 acc[4][2];
    for (int m = 0; m < MR; m++)
        acc[m][0] = acc[m][1] = _mm256_setzero_ps();
    for (uint32_t s = 0; s < K / KQ_SUPER; s++) {
        const uint8_t *sb = W + (size_t)s * Q4K_SB_BYTES;
        for (int h = 0; h < 2; h++) {
            __m256i isum[4], msum[4];
            for (int m = 0; m < MR; m++)
                isum[m] = msum[m] = _mm256_setzero_si256();
            for (int j = 0; j < 8; j++) {
                __m256i ij[4];
                for (int m = 0; m < MR; m++)
                    ij[m] = _mm256_setzero_si256();
                for (int c = 0; c < 4; c++) {
                    __m256i v = _mm256_load_si256((const __m256i *)(sb + j * 256 + c * 64 + h * 32));
                    __m256i lo = _mm256_and_si256(v, low4);
                    __m256i hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), low4);
                    for (int m = 0; m < MR; m++) {
                        const int8_t *xq = X[m] + s * KQ_SUPER + j * 32 + c * 8;
                        ij[m] = _mm256_add_epi32(ij[m], dot_u8s8(lo, _mm256_set1_epi32(kernels_ld32(xq))));
                        ij[m] = _mm256_add_epi32(ij[m], dot_u8s8(hi, _mm256_set1_epi32(kernels_ld32(xq + 4))));
                    }
                }
                __m256i sc = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(sb + 2048 + j * 16 + h * 8)));
                for (int m = 0; m < MR; m++)
                    isum[m] = _mm256_add_epi32(isum[m], _mm256_mullo_epi32(ij[m], sc));
            }
            for (int p = 0; p < 4; p++) {
                __m256i mn = _mm256_cvtepu8_epi16(_mm_load_si128((const __m128i *)(sb + 2176 + p * 32 + h * 16)));
                for (int m = 0; m < MR; m++)
                    msum[m] = _mm256_add_epi32(msum[m], _mm256_madd_epi16(mn, _mm256_set1_epi32(kernels_ld32(S32[m] + s * 8 + 2 * p))));
            }
            __m256 dd = _mm256_cvtph_ps(_mm_load_si128((const __m128i *)(sb + 2304 + h * 16)));
            __m256 dmin = _mm256_cvtph_ps(_mm_load_si128((const __m128i *)(sb + 2336 + h * 16)));
            for (int m = 0; m < MR; m++) {
                __m256 dm = _mm256_set1_ps(D[m][s]);
                acc[m][h] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum[m]), _mm256_mul_ps(dd, dm), acc[m][h]);
                acc[m][h] = _mm256_fnmadd_ps(_mm256_cvtepi32_ps(msum[m]), _mm256_mul_ps(dmin, dm), acc[m][h]);
            }
        }
    }
    for (int m = 0; m < MR; m++)
        store_group(y + (size_t)(m0 + m) * ldy + g * 16, acc[m][0], acc[m][1], cols);
}

/* ---- Q6_K ----------------------------------------------------------------- */

INLINE void q6k_tile(const int MR, const struct kernels_matrix *w, const struct kernels_act *a,
                     uint32_t g, uint32_t m0, float *y, size_t ldy)
{
    const uint32_t K = w->n_in;
    const uint8_t *W = w->data + (size_t)g * w->group_bytes;
    const uint8_t *DW = W + kq6_k_d_off(K);
    const uint32_t cols = kernels_group_cols(w, g);
    const int8_t *X[4];
    const float *D[4];
    const int32_t *S16[4];
    for (int m = 0; m < MR; m++) {
        const uint8_t *row = a->data + (size_t)(m0 + m) * a->row_bytes;
        X[m] = (const int8_t *)row;
        D[m] = (const float *)(row + kq8_d_off(K));
        S16[m] = (const int32_t *)(row + kq8k_s16_off(K));
    }
    const __m256i low4 = _mm256_set1_epi8(0x0f), m30 = _mm256_set1_epi8(0x30);
    __m256 acc[4][2];
    for (int m = 0; m < MR; m++)
        acc[m][0] = acc[m][1] = _mm256_setzero_ps();
    for (uint32_t s = 0; s < K / KQ_SUPER; s++) {
        const uint8_t *sb = W + (size_t)s * Q6K_SB_BYTES;
        for (int h = 0; h < 2; h++) {
            __m256i isum[4];
            for (int m = 0; m < MR; m++)
                isum[m] = _mm256_setzero_si256();
            for (int j = 0; j < 16; j++) {
                const uint8_t *sub = sb + j * 192 + h * 32;
                __m256i l0 = _mm256_load_si256((const __m256i *)sub);
                __m256i l1 = _mm256_load_si256((const __m256i *)(sub + 64));
                __m256i hb = _mm256_load_si256((const __m256i *)(sub + 128));
                __m256i q[4];
                q[0] = _mm256_or_si256(_mm256_and_si256(l0, low4), _mm256_and_si256(_mm256_slli_epi16(hb, 4), m30));
                q[1] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), low4),
                                       _mm256_and_si256(_mm256_slli_epi16(hb, 2), m30));
                q[2] = _mm256_or_si256(_mm256_and_si256(l1, low4), _mm256_and_si256(hb, m30));
                q[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), low4),
                                       _mm256_and_si256(_mm256_srli_epi16(hb, 2), m30));
                __m256i sc = _mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(sb + 3072 + j * 16 + h * 8)));
                for (int m = 0; m < MR; m++) {
                    const int8_t *xq = X[m] + s * KQ_SUPER + j * 16;
                    __m256i ij = _mm256_set1_epi32(-32 * S16[m][s * 16 + j]);
                    for (int c = 0; c < 4; c++)
                        ij = _mm256_add_epi32(ij, dot_u8s8(q[c], _mm256_set1_epi32(kernels_ld32(xq + 4 * c))));
                    isum[m] = _mm256_add_epi32(isum[m], _mm256_mullo_epi32(ij, sc));
                }
            }
            __m256 dd = _mm256_cvtph_ps(_mm_load_si128((const __m128i *)(DW + (size_t)s * 32 + h * 16)));
            for (int m = 0; m < MR; m++)
                acc[m][h] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum[m]),
                                            _mm256_mul_ps(dd, _mm256_set1_ps(D[m][s])), acc[m][h]);
        }
    }
    for (int m = 0; m < MR; m++)
        store_group(y + (size_t)(m0 + m) * ldy + g * 16, acc[m][0], acc[m][1], cols);
}

#define INT_TILES(FN)                                                           \
    for (uint32_t g = g0; g < g1; g++)                                          \
        for (uint32_t m0 = 0; m0 < a->n_rows; m0 += AVX2_MR) {                  \
            switch (a->n_rows - m0 < AVX2_MR ? a->n_rows - m0 : AVX2_MR) {      \
            case 1: FN(1); break;                                               \
            case 2: FN(2); break;                                               \
            case 3: FN(3); break;                                               \
            default: FN(4); break;                                              \
            }                                                                   \
        }

static void mm_q8_0(const struct kernels_matrix *w, const struct kernels_act *a, float *y,
                    size_t ldy, uint32_t g0, uint32_t g1)
{
#define FN(MR) q8_tile(false, MR, w, a, g, m0, y, ldy)
    INT_TILES(FN)
#undef FN
}

static void mm_q4_0(const struct kernels_matrix *w, const struct kernels_act *a, float *y,
                    size_t ldy, uint32_t g0, uint32_t g1)
{
#define FN(MR) q8_tile(true, MR, w, a, g, m0, y, ldy)
    INT_TILES(FN)
#undef FN
}

static void mm_q4_k(const struct kernels_matrix *w, const struct kernels_act *a, float *y,
                    size_t ldy, uint32_t g0, uint32_t g1)
{
#define FN(MR) q4k_tile(MR, w, a, g, m0, y, ldy)
    INT_TILES(FN)
#undef FN
}

static void mm_q6_k(const struct kernels_matrix *w, const struct kernels_act *a, float *y,
                    size_t ldy, uint32_t g0, uint32_t g1)
{
#define FN(MR) q6k_tile(MR, w, a, g, m0, y, ldy)
    INT_TILES(FN)
#undef FN
}

kernels_mm_fn kernels_avx2_matmul(enum ggml_type t)
{
    switch (t) {
    case GGML_TYPE_F32: return mm_f32;
    case GGML_TYPE_F16: return mm_f16;
    case GGML_TYPE_BF16: return mm_bf16;
    case GGML_TYPE_Q8_0: return mm_q8_0;
    case GGML_TYPE_Q4_0: return mm_q4_0;
    case GGML_TYPE_Q4_K: return mm_q4_k;
    case GGML_TYPE_Q6_K: return mm_q6_k;
    default: return NULL;
    }
}

/* ---- exp, SiLU, attention --------------------------------------------------- */

/* e^x to about 1 ulp for x in [-87, 88]; the range is clamped so 2^n stays a
 * normal float (e^-87 stands in for smaller results, harmless here). */
INLINE __m256 exp256(__m256 x)
{
    x = _mm256_max_ps(_mm256_min_ps(x, _mm256_set1_ps(88.3f)), _mm256_set1_ps(-87.0f));
    __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.442695041f)),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693145751953125f), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(1.428606765330187e-06f), r);
    __m256 p = _mm256_set1_ps(1.f / 720);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.f / 120));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.f / 24));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.f / 6));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.f));
    __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

INLINE float hsum256(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

INLINE float hmax256(__m256 v)
{
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

void kernels_avx2_silu_mul(float *gate, const float *up, uint32_t n)
{
    const __m256 one = _mm256_set1_ps(1.f);
    for (uint32_t i = 0; i < n; i += 8) {
        __m256i k = lane_mask(n - i >= 8 ? 8 : n - i);
        __m256 x = _mm256_maskload_ps(gate + i, k);
        __m256 u = _mm256_maskload_ps(up + i, k);
        __m256 e = exp256(_mm256_sub_ps(_mm256_setzero_ps(), x));
        __m256 s = _mm256_div_ps(x, _mm256_add_ps(one, e));
        _mm256_maskstore_ps(gate + i, k, _mm256_mul_ps(s, u));
    }
}

void kernels_avx2_attend(const struct kernels_attn *a)
{
    const uint32_t hd = a->head_dim, bt = a->block_tokens, nk = a->n_keys;
    const __m256 scale = _mm256_set1_ps(a->scale);
    for (uint32_t h = 0; h < a->n_rep; h++) {
        const float *q = a->q + (size_t)h * hd;
        float *sc = a->scores + (size_t)h * nk;
        __m256 vmax = _mm256_set1_ps(-INFINITY);
        for (uint32_t t0 = 0; t0 < nk; t0 += 8) {
            __m256i k = lane_mask(nk - t0 >= 8 ? 8 : nk - t0);
            const float *kt = a->base + (size_t)a->blocks[t0 / bt] * a->block_stride + a->k_off +
                              t0 % bt;
            __m256 acc = _mm256_setzero_ps();
            for (uint32_t i = 0; i < hd; i++)
                acc = _mm256_fmadd_ps(_mm256_broadcast_ss(q + i), _mm256_loadu_ps(kt + (size_t)i * bt), acc);
            acc = _mm256_mul_ps(acc, scale);
            _mm256_maskstore_ps(sc + t0, k, acc);
            vmax = _mm256_blendv_ps(vmax, _mm256_max_ps(vmax, acc), _mm256_castsi256_ps(k));
        }
        __m256 max = _mm256_set1_ps(hmax256(vmax));
        double sum = 0;
        for (uint32_t t0 = 0; t0 < nk; t0 += 8) {
            __m256i k = lane_mask(nk - t0 >= 8 ? 8 : nk - t0);
            __m256 e = exp256(_mm256_sub_ps(_mm256_maskload_ps(sc + t0, k), max));
            e = _mm256_and_ps(e, _mm256_castsi256_ps(k));
            _mm256_maskstore_ps(sc + t0, k, e);
            sum += (double)hsum256(e);
        }
        float inv = (float)(1.0 / sum);
        for (uint32_t t = 0; t < nk; t++)
            sc[t] *= inv;
        float *out = a->out + (size_t)h * hd;
        for (uint32_t i = 0; i < hd; i++)
            out[i] = 0;
        for (uint32_t t = 0; t < nk; t++) {
            const float *vr = a->base + (size_t)a->blocks[t / bt] * a->block_stride + a->v_off +
                              (size_t)(t % bt) * hd;
            __m256 pv = _mm256_set1_ps(sc[t]);
            uint32_t i = 0;
            for (; i + 8 <= hd; i += 8)
                _mm256_storeu_ps(out + i, _mm256_fmadd_ps(pv, _mm256_loadu_ps(vr + i), _mm256_loadu_ps(out + i)));
            for (; i < hd; i++)
                out[i] = fmaf(sc[t], vr[i], out[i]);
        }
    }
}

#if defined(__clang__)
#pragma clang attribute pop
#endif

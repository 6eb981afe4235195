/* kernels_avx512.c — AVX-512 (F/BW/VL/DQ) + VNNI kernels. Only called after
 * kernels_isa_best() found these features; every product reproduces the
 * scalar reference of kernels.c bit for bit (see kernels.h).
 *
 * One zmm register holds 16 output columns (a packed group). Tiles of MR
 * activation rows x NG groups keep MR*NG accumulators in registers so each
 * weight vector loaded is used MR times and each activation broadcast NG
 * times. Tile sizes are template parameters (always_inline + constant
 * arguments): the per-element arithmetic does not depend on them. */
/* Every function in this file is compiled for these features (GCC and
 * clang spell it differently; the fuzz build uses clang). */
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,fma,f16c"))), apply_to = function)
#else
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,fma,f16c")
#endif

#include <immintrin.h>
#include <math.h>
#include <string.h>

#include "engine/kernels_internal.h"

#define INLINE static inline __attribute__((always_inline))

INLINE __mmask16 cols_mask(uint32_t cols)
{
    return (__mmask16)((1u << cols) - 1);
}

INLINE void store_acc(float *y, __m512 v, uint32_t cols)
{
    if (cols == 16)
        _mm512_storeu_ps(y, v);
    else
        _mm512_mask_storeu_ps(y, cols_mask(cols), v);
}

/* ---- F32 / F16 / BF16 ----------------------------------------------------- */

enum { T_F32, T_F16, T_BF16 };

INLINE __m512 load_w(const int T, const uint8_t *W, size_t i)
{
    if (T == T_F32)
        return _mm512_load_ps((const float *)(W + i * 64));
    __m256i h = _mm256_load_si256((const __m256i *)(W + i * 32));
    if (T == T_F16)
        return _mm512_cvtph_ps(h);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

/* Rows m0..m0+MR-1, groups g..g+NG-1, inputs [k0, k1): acc = fma(x, w, acc),
 * continuing from y when `first` is false (K-chunking stores exact floats, so
 * it does not change the result). */
INLINE void float_tile(const int T, const int MR, const int NG, const struct kernels_matrix *w,
                       const struct kernels_act *a, uint32_t g, uint32_t m0, uint32_t k0,
                       uint32_t k1, bool first, float *y, size_t ldy)
{
    const uint8_t *W[4];
    uint32_t cols[4];
    for (int j = 0; j < NG; j++) {
        W[j] = w->data + (size_t)(g + j) * w->group_bytes;
        cols[j] = kernels_group_cols(w, g + j);
    }
    const float *X[6];
    for (int m = 0; m < MR; m++)
        X[m] = (const float *)(a->data + (size_t)(m0 + m) * a->row_bytes);
    __m512 acc[6][4];
    for (int m = 0; m < MR; m++)
        for (int j = 0; j < NG; j++)
            acc[m][j] = first ? _mm512_setzero_ps()
                              : _mm512_maskz_loadu_ps(cols_mask(cols[j]),
                                                      y + (size_t)(m0 + m) * ldy + (g + j) * 16);
    for (uint32_t i = k0; i < k1; i++) {
        __m512 wv[4];
#pragma GCC unroll 8
        for (int j = 0; j < NG; j++)
            wv[j] = load_w(T, W[j], i);
#pragma GCC unroll 8
        for (int m = 0; m < MR; m++) {
            __m512 av = _mm512_set1_ps(X[m][i]);
#pragma GCC unroll 8
            for (int j = 0; j < NG; j++)
                acc[m][j] = _mm512_fmadd_ps(av, wv[j], acc[m][j]);
        }
    }
    for (int m = 0; m < MR; m++)
        for (int j = 0; j < NG; j++)
            store_acc(y + (size_t)(m0 + m) * ldy + (g + j) * 16, acc[m][j], cols[j]);
}

#define FLOAT_MR 6
#define FLOAT_NG 4
#define FLOAT_KC 512

#define FT_CASE(T, MR, NG)                                                      \
    case (MR) * 8 + (NG):                                                       \
        float_tile(T, MR, NG, w, a, g, m0, k0, k1, first, y, ldy);              \
        break;
#define FT_ROW(T, MR) FT_CASE(T, MR, 1) FT_CASE(T, MR, 2) FT_CASE(T, MR, 3) FT_CASE(T, MR, 4)

INLINE void mm_float(const int T, const struct kernels_matrix *w, const struct kernels_act *a,
                     float *y, size_t ldy, uint32_t g0, uint32_t g1)
{
    const uint32_t M = a->n_rows, K = w->n_in;
    /* Chunk K only when weights are reused across several row tiles: it
     * keeps the rows' slice of x in L1. */
    const uint32_t kc = M <= FLOAT_MR ? K : FLOAT_KC;
    for (uint32_t k0 = 0; k0 < K; k0 += kc) {
        uint32_t k1 = K - k0 < kc ? K : k0 + kc;
        bool first = k0 == 0;
        for (uint32_t g = g0; g < g1; g += FLOAT_NG) {
            uint32_t ng = g1 - g < FLOAT_NG ? g1 - g : FLOAT_NG;
            for (uint32_t m0 = 0; m0 < M; m0 += FLOAT_MR) {
                uint32_t mr = M - m0 < FLOAT_MR ? M - m0 : FLOAT_MR;
                switch (mr * 8 + ng) {
                    FT_ROW(T, 1) FT_ROW(T, 2) FT_ROW(T, 3) FT_ROW(T, 4) FT_ROW(T, 5) FT_ROW(T, 6)
                }
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

/* ---- Q8_0 / Q4_0 ---------------------------------------------------------- */

/* Weights are unsigned (Q8_0 stored as q+128, Q4_0 nibbles 0..15), the
 * activations signed: vpdpbusd's operand order. The bias (128 or 8) times the
 * block's activation sum is subtracted by starting the integer accumulator
 * at -bias*sum, so the block sum is exact. */
INLINE void q8_tile(const bool Q4, const int MR, const int NG, const struct kernels_matrix *w,
                    const struct kernels_act *a, uint32_t g, uint32_t m0, float *y, size_t ldy,
                    const uint8_t *pf, uint32_t pf_lines)
{
    const uint32_t K = w->n_in, nb = K / KQ_BLOCK;
    const size_t soff = Q4 ? kq4_0_scales_off(K) : kq8_0_scales_off(K);
    const size_t bstride = Q4 ? 256 : 512;
    const uint8_t *W[4];
    uint32_t cols[4];
    for (int j = 0; j < NG; j++) {
        W[j] = w->data + (size_t)(g + j) * w->group_bytes;
        cols[j] = kernels_group_cols(w, g + j);
    }
    const int8_t *X[4];
    const float *D[4];
    const int32_t *SUM[4];
    for (int m = 0; m < MR; m++) {
        const uint8_t *row = a->data + (size_t)(m0 + m) * a->row_bytes;
        X[m] = (const int8_t *)row;
        D[m] = (const float *)(row + kq8_d_off(K));
        SUM[m] = (const int32_t *)(row + kq8_s_off(K));
    }
    const __m512i low4 = _mm512_set1_epi8(0x0f);
    __m512 acc[6][4];
    for (int m = 0; m < MR; m++)
        for (int j = 0; j < NG; j++)
            acc[m][j] = _mm512_setzero_ps();
    for (uint32_t b = 0; b < nb; b++) {
        for (uint32_t i = 0; i < pf_lines; i++)
            _mm_prefetch((const char *)pf + ((size_t)b * pf_lines + i) * 64, _MM_HINT_T1);
        __m512i ia[4][4];
#pragma GCC unroll 8
        for (int m = 0; m < MR; m++) {
            __m512i c = _mm512_set1_epi32(SUM[m][b] * (Q4 ? -8 : -128));
#pragma GCC unroll 8
            for (int j = 0; j < NG; j++)
                ia[m][j] = c;
        }
        if (!Q4) {
#pragma GCC unroll 8
            for (int c = 0; c < 8; c++) {
                __m512i wv[4];
#pragma GCC unroll 8
                for (int j = 0; j < NG; j++)
                    wv[j] = _mm512_load_si512(W[j] + (size_t)b * bstride + c * 64);
#pragma GCC unroll 8
                for (int m = 0; m < MR; m++) {
                    __m512i av = _mm512_set1_epi32(kernels_ld32(X[m] + b * 32 + c * 4));
#pragma GCC unroll 8
                    for (int j = 0; j < NG; j++)
                        ia[m][j] = _mm512_dpbusd_epi32(ia[m][j], wv[j], av);
                }
            }
        } else {
#pragma GCC unroll 4
            for (int c = 0; c < 4; c++) {
                __m512i lo[4], hi[4];
#pragma GCC unroll 8
                for (int j = 0; j < NG; j++) {
                    __m512i v = _mm512_load_si512(W[j] + (size_t)b * bstride + c * 64);
                    lo[j] = _mm512_and_si512(v, low4);
                    hi[j] = _mm512_and_si512(_mm512_srli_epi16(v, 4), low4);
                }
#pragma GCC unroll 8
                for (int m = 0; m < MR; m++) {
                    __m512i al = _mm512_set1_epi32(kernels_ld32(X[m] + b * 32 + c * 8));
                    __m512i ah = _mm512_set1_epi32(kernels_ld32(X[m] + b * 32 + c * 8 + 4));
#pragma GCC unroll 8
                    for (int j = 0; j < NG; j++) {
                        ia[m][j] = _mm512_dpbusd_epi32(ia[m][j], lo[j], al);
                        ia[m][j] = _mm512_dpbusd_epi32(ia[m][j], hi[j], ah);
                    }
                }
            }
        }
        __m512 dw[4];
#pragma GCC unroll 8
        for (int j = 0; j < NG; j++)
            dw[j] = _mm512_cvtph_ps(_mm256_load_si256((const __m256i *)(W[j] + soff + (size_t)b * 32)));
#pragma GCC unroll 8
        for (int m = 0; m < MR; m++) {
            __m512 dm = _mm512_set1_ps(D[m][b]);
#pragma GCC unroll 8
            for (int j = 0; j < NG; j++)
                acc[m][j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(ia[m][j]), _mm512_mul_ps(dw[j], dm),
                                            acc[m][j]);
        }
    }
    for (int m = 0; m < MR; m++)
        for (int j = 0; j < NG; j++)
            store_acc(y + (size_t)(m0 + m) * ldy + (g + j) * 16, acc[m][j], cols[j]);
}

#define Q8_MR 4
#define Q8_NG 3

#define Q8_CASE(Q4, MR, NG)                                                     \
    case (MR) * 8 + (NG):                                                       \
        q8_tile(Q4, MR, NG, w, a, g, m0, y, ldy, pf + (m0 / Q8_MR) * pf_tile, pf_lines); \
        break;
#define Q8_ROW(Q4, MR) Q8_CASE(Q4, MR, 1) Q8_CASE(Q4, MR, 2) Q8_CASE(Q4, MR, 3) Q8_CASE(Q4, MR, 4)

/* Row tiles sweep a panel of groups: the first tile reads the panel from
 * memory, the others from L2. With two or more tiles per panel the next
 * panel is prefetched into L2 meanwhile, spread evenly over the tiles'
 * blocks, so that memory streams while the tiles compute instead of only
 * during the first tile (decode@16: +18%). With one tile the hardware
 * prefetcher's streams are enough. Panels are contiguous in memory. */
INLINE void mm_q8(const bool Q4, const struct kernels_matrix *w, const struct kernels_act *a,
                  float *y, size_t ldy, uint32_t g0, uint32_t g1)
{
    const uint32_t M = a->n_rows, nb = w->n_in / KQ_BLOCK;
    /* Few rows: memory-bound, more groups in flight. Many rows: reuse. */
    const uint32_t ngmax = M < Q8_MR ? 4 : Q8_NG;
    const size_t tiles = (M + Q8_MR - 1) / Q8_MR;
    for (uint32_t g = g0; g < g1; g += ngmax) {
        uint32_t ng = g1 - g < ngmax ? g1 - g : ngmax;
        uint32_t gn = g + ng, ngn = gn >= g1 ? 0 : g1 - gn < ngmax ? g1 - gn : ngmax;
        const uint8_t *pf = w->data + (size_t)gn * w->group_bytes;
        size_t lines = ngn * w->group_bytes / 64;
        uint32_t pf_lines = tiles >= 2 ? (uint32_t)((lines + tiles * nb - 1) / (tiles * nb)) : 0;
        size_t pf_tile = (size_t)nb * pf_lines * 64;
        for (uint32_t m0 = 0; m0 < M; m0 += Q8_MR) {
            uint32_t mr = M - m0 < Q8_MR ? M - m0 : Q8_MR;
            switch (mr * 8 + ng) {
                Q8_ROW(Q4, 1) Q8_ROW(Q4, 2) Q8_ROW(Q4, 3) Q8_ROW(Q4, 4)
            }
        }
    }
}

static void mm_q8_0(const struct kernels_matrix *w, const struct kernels_act *a, float *y,
                    size_t ldy, uint32_t g0, uint32_t g1)
{
    mm_q8(false, w, a, y, ldy, g0, g1);
}

static void mm_q4_0(const struct kernels_matrix *w, const struct kernels_act *a, float *y,
                    size_t ldy, uint32_t g0, uint32_t g1)
{
    mm_q8(true, w, a, y, ldy, g0, g1);
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
    const __m512i low4 = _mm512_set1_epi8(0x0f);
    __m512 acc[4];
    for (int m = 0; m < MR; m++)
        acc[m] = _mm512_setzero_ps();
    for (uint32_t s = 0; s < K / KQ_SUPER; s++) {
        const uint8_t *sb = W + (size_t)s * Q4K_SB_BYTES;
        __m512i isum[4];
        for (int m = 0; m < MR; m++)
            isum[m] = _mm512_setzero_si512();
        for (int j = 0; j < 8; j++) {
            __m512i ij[4];
            for (int m = 0; m < MR; m++)
                ij[m] = _mm512_setzero_si512();
#pragma GCC unroll 4
            for (int c = 0; c < 4; c++) {
                __m512i v = _mm512_load_si512(sb + j * 256 + c * 64);
                __m512i lo = _mm512_and_si512(v, low4);
                __m512i hi = _mm512_and_si512(_mm512_srli_epi16(v, 4), low4);
#pragma GCC unroll 8
                for (int m = 0; m < MR; m++) {
                    const int8_t *xq = X[m] + s * KQ_SUPER + j * 32 + c * 8;
                    ij[m] = _mm512_dpbusd_epi32(ij[m], lo, _mm512_set1_epi32(kernels_ld32(xq)));
                    ij[m] = _mm512_dpbusd_epi32(ij[m], hi, _mm512_set1_epi32(kernels_ld32(xq + 4)));
                }
            }
            __m512i sc = _mm512_cvtepu8_epi32(_mm_load_si128((const __m128i *)(sb + 2048 + j * 16)));
            for (int m = 0; m < MR; m++)
                isum[m] = _mm512_add_epi32(isum[m], _mm512_mullo_epi32(ij[m], sc));
        }
        __m512i msum[4];
        for (int m = 0; m < MR; m++)
            msum[m] = _mm512_setzero_si512();
#pragma GCC unroll 4
        for (int p = 0; p < 4; p++) {
            __m512i mn = _mm512_cvtepu8_epi16(_mm256_load_si256((const __m256i *)(sb + 2176 + p * 32)));
            for (int m = 0; m < MR; m++)
                msum[m] = _mm512_dpwssd_epi32(msum[m], mn,
                                              _mm512_set1_epi32(kernels_ld32(S32[m] + s * 8 + 2 * p)));
        }
        __m512 dd = _mm512_cvtph_ps(_mm256_load_si256((const __m256i *)(sb + 2304)));
        __m512 dmin = _mm512_cvtph_ps(_mm256_load_si256((const __m256i *)(sb + 2336)));
        for (int m = 0; m < MR; m++) {
            __m512 dm = _mm512_set1_ps(D[m][s]);
            acc[m] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum[m]), _mm512_mul_ps(dd, dm), acc[m]);
            acc[m] = _mm512_fnmadd_ps(_mm512_cvtepi32_ps(msum[m]), _mm512_mul_ps(dmin, dm), acc[m]);
        }
    }
    for (int m = 0; m < MR; m++)
        store_acc(y + (size_t)(m0 + m) * ldy + g * 16, acc[m], cols);
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
    const __m512i low4 = _mm512_set1_epi8(0x0f);
    const __m512i m30 = _mm512_set1_epi8(0x30);
    __m512 acc[4];
    for (int m = 0; m < MR; m++)
        acc[m] = _mm512_setzero_ps();
    for (uint32_t s = 0; s < K / KQ_SUPER; s++) {
        const uint8_t *sb = W + (size_t)s * Q6K_SB_BYTES;
        __m512i isum[4];
        for (int m = 0; m < MR; m++)
            isum[m] = _mm512_setzero_si512();
        for (int j = 0; j < 16; j++) {
            const uint8_t *sub = sb + j * 192;
            __m512i l0 = _mm512_load_si512(sub), l1 = _mm512_load_si512(sub + 64);
            __m512i h = _mm512_load_si512(sub + 128);
            __m512i q[4];
            q[0] = _mm512_or_si512(_mm512_and_si512(l0, low4),
                                   _mm512_and_si512(_mm512_slli_epi16(h, 4), m30));
            q[1] = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(l0, 4), low4),
                                   _mm512_and_si512(_mm512_slli_epi16(h, 2), m30));
            q[2] = _mm512_or_si512(_mm512_and_si512(l1, low4), _mm512_and_si512(h, m30));
            q[3] = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(l1, 4), low4),
                                   _mm512_and_si512(_mm512_srli_epi16(h, 2), m30));
            __m512i sc = _mm512_cvtepi8_epi32(_mm_load_si128((const __m128i *)(sb + 3072 + j * 16)));
#pragma GCC unroll 8
            for (int m = 0; m < MR; m++) {
                const int8_t *xq = X[m] + s * KQ_SUPER + j * 16;
                __m512i ij = _mm512_set1_epi32(-32 * S16[m][s * 16 + j]);
#pragma GCC unroll 4
                for (int c = 0; c < 4; c++)
                    ij = _mm512_dpbusd_epi32(ij, q[c], _mm512_set1_epi32(kernels_ld32(xq + 4 * c)));
                isum[m] = _mm512_add_epi32(isum[m], _mm512_mullo_epi32(ij, sc));
            }
        }
        __m512 dd = _mm512_cvtph_ps(_mm256_load_si256((const __m256i *)(DW + (size_t)s * 32)));
        for (int m = 0; m < MR; m++)
            acc[m] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum[m]),
                                     _mm512_mul_ps(dd, _mm512_set1_ps(D[m][s])), acc[m]);
    }
    for (int m = 0; m < MR; m++)
        store_acc(y + (size_t)(m0 + m) * ldy + g * 16, acc[m], cols);
}

#define KQ_MR 4

static void mm_q4_k(const struct kernels_matrix *w, const struct kernels_act *a, float *y,
                    size_t ldy, uint32_t g0, uint32_t g1)
{
    for (uint32_t g = g0; g < g1; g++)
        for (uint32_t m0 = 0; m0 < a->n_rows; m0 += KQ_MR) {
            switch (a->n_rows - m0 < KQ_MR ? a->n_rows - m0 : KQ_MR) {
            case 1: q4k_tile(1, w, a, g, m0, y, ldy); break;
            case 2: q4k_tile(2, w, a, g, m0, y, ldy); break;
            case 3: q4k_tile(3, w, a, g, m0, y, ldy); break;
            default: q4k_tile(4, w, a, g, m0, y, ldy); break;
            }
        }
}

static void mm_q6_k(const struct kernels_matrix *w, const struct kernels_act *a, float *y,
                    size_t ldy, uint32_t g0, uint32_t g1)
{
    for (uint32_t g = g0; g < g1; g++)
        for (uint32_t m0 = 0; m0 < a->n_rows; m0 += KQ_MR) {
            switch (a->n_rows - m0 < KQ_MR ? a->n_rows - m0 : KQ_MR) {
            case 1: q6k_tile(1, w, a, g, m0, y, ldy); break;
            case 2: q6k_tile(2, w, a, g, m0, y, ldy); break;
            case 3: q6k_tile(3, w, a, g, m0, y, ldy); break;
            default: q6k_tile(4, w, a, g, m0, y, ldy); break;
            }
        }
}

kernels_mm_fn kernels_avx512_matmul(enum ggml_type t)
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

uint32_t kernels_avx512_group_step(enum ggml_type t, uint32_t n_rows)
{
    switch (t) {
    case GGML_TYPE_F32:
    case GGML_TYPE_F16:
    case GGML_TYPE_BF16: return FLOAT_NG;
    case GGML_TYPE_Q8_0:
    case GGML_TYPE_Q4_0: return n_rows < Q8_MR ? 4 : Q8_NG;
    default: return 1;
    }
}

/* ---- exp, SiLU, attention --------------------------------------------------- */

/* e^x to about 1 ulp: x = n ln2 + r, |r| <= ln2/2, degree-6 Taylor
 * polynomial for e^r, 2^n applied with scalef (which also saturates). */
INLINE __m512 exp512(__m512 x)
{
    x = _mm512_max_ps(_mm512_min_ps(x, _mm512_set1_ps(88.75f)), _mm512_set1_ps(-104.f));
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.442695041f)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693145751953125f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(1.428606765330187e-06f), r);
    __m512 p = _mm512_set1_ps(1.f / 720);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.f / 120));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.f / 24));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.f / 6));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.f));
    return _mm512_scalef_ps(p, n);
}

void kernels_avx512_silu_mul(float *gate, const float *up, uint32_t n)
{
    const __m512 one = _mm512_set1_ps(1.f);
    for (uint32_t i = 0; i < n; i += 16) {
        __mmask16 k = n - i >= 16 ? 0xffff : cols_mask(n - i);
        __m512 x = _mm512_maskz_loadu_ps(k, gate + i);
        __m512 u = _mm512_maskz_loadu_ps(k, up + i);
        __m512 e = exp512(_mm512_sub_ps(_mm512_setzero_ps(), x));
        __m512 s = _mm512_div_ps(x, _mm512_add_ps(one, e));
        _mm512_mask_storeu_ps(gate + i, k, _mm512_mul_ps(s, u));
    }
}

/* Scores of heads h0..h0+NH-1 against keys [t0, t0 + 16*NC): for each head
 * and key, acc = fma(q[i], k[i], acc) over i in order, then * scale. The
 * NH*NC chains are independent, which hides the FMA latency; each element's
 * arithmetic is the same whatever NH and NC. */
INLINE void attn_scores(const int NH, const int NC, const struct kernels_attn *a, uint32_t h0,
                        uint32_t t0, __m512 *vmax)
{
    const uint32_t hd = a->head_dim, bt = a->block_tokens, nk = a->n_keys;
    const float *kt[4];
    __mmask16 km[4];
    for (int c = 0; c < NC; c++) {
        uint32_t t = t0 + 16 * (uint32_t)c;
        kt[c] = a->base + (size_t)a->blocks[t / bt] * a->block_stride + a->k_off + t % bt;
        km[c] = nk - t >= 16 ? 0xffff : cols_mask(nk - t);
    }
    const float *q[4];
    for (int h = 0; h < NH; h++)
        q[h] = a->q + (size_t)(h0 + h) * hd;
    __m512 acc[4][4];
    for (int h = 0; h < NH; h++)
        for (int c = 0; c < NC; c++)
            acc[h][c] = _mm512_setzero_ps();
    for (uint32_t i = 0; i < hd; i++) {
        __m512 kv[4];
#pragma GCC unroll 4
        for (int c = 0; c < NC; c++)
            kv[c] = _mm512_loadu_ps(kt[c] + (size_t)i * bt);
#pragma GCC unroll 4
        for (int h = 0; h < NH; h++) {
            __m512 qv = _mm512_set1_ps(q[h][i]);
#pragma GCC unroll 4
            for (int c = 0; c < NC; c++)
                acc[h][c] = _mm512_fmadd_ps(qv, kv[c], acc[h][c]);
        }
    }
    const __m512 scale = _mm512_set1_ps(a->scale);
    for (int h = 0; h < NH; h++)
        for (int c = 0; c < NC; c++) {
            __m512 s = _mm512_mul_ps(acc[h][c], scale);
            _mm512_mask_storeu_ps(a->scores + (size_t)(h0 + h) * nk + t0 + 16 * c, km[c], s);
            vmax[h] = _mm512_mask_max_ps(vmax[h], km[c], vmax[h], s);
        }
}

INLINE void attn_scores_heads(const int NH, const struct kernels_attn *a, uint32_t h0, __m512 *vmax)
{
    /* four chains in flight: 4 heads x 1 chunk, 2 x 2 or 1 x 4 */
    const uint32_t nk = a->n_keys;
    uint32_t t0 = 0;
    if (NH == 1)
        for (; t0 + 64 <= nk; t0 += 64)
            attn_scores(1, 4, a, h0, t0, vmax);
    if (NH == 2)
        for (; t0 + 32 <= nk; t0 += 32)
            attn_scores(2, 2, a, h0, t0, vmax);
    for (; t0 < nk; t0 += 16)
        attn_scores(NH, 1, a, h0, t0, vmax);
}

/* out[h] += p_h[t] * v[t] over all keys for heads h0..h0+NH-1, head_dim
 * slice [d0, d0 + 16*NV) (last vector masked): one V load serves NH heads. */
INLINE void attn_values(const int NH, const int NV, const struct kernels_attn *a, uint32_t h0,
                        uint32_t d0, __mmask16 last)
{
    const uint32_t bt = a->block_tokens, hd = a->head_dim, nk = a->n_keys;
    __m512 acc[2][8];
    for (int h = 0; h < NH; h++)
        for (int v = 0; v < NV; v++)
            acc[h][v] = _mm512_setzero_ps();
    const float *p[2];
    for (int h = 0; h < NH; h++)
        p[h] = a->scores + (size_t)(h0 + h) * nk;
    for (uint32_t t = 0; t < nk; t++) {
        const float *vr = a->base + (size_t)a->blocks[t / bt] * a->block_stride + a->v_off +
                          (size_t)(t % bt) * hd + d0;
        __m512 pv[2];
        for (int h = 0; h < NH; h++)
            pv[h] = _mm512_set1_ps(p[h][t]);
#pragma GCC unroll 8
        for (int v = 0; v < NV; v++) {
            __mmask16 k = v == NV - 1 ? last : 0xffff;
            __m512 x = _mm512_maskz_loadu_ps(k, vr + v * 16);
            for (int h = 0; h < NH; h++)
                acc[h][v] = _mm512_fmadd_ps(pv[h], x, acc[h][v]);
        }
    }
    for (int h = 0; h < NH; h++)
        for (int v = 0; v < NV; v++)
            _mm512_mask_storeu_ps(a->out + (size_t)(h0 + h) * hd + d0 + v * 16,
                                  v == NV - 1 ? last : 0xffff, acc[h][v]);
}

#define AV_CASE(NH, NV)                                                         \
    case NV:                                                                    \
        attn_values(NH, NV, a, h0, d0, last);                                   \
        break;
#define AV_SWITCH(NH)                                                           \
    switch (nv) {                                                               \
        AV_CASE(NH, 1) AV_CASE(NH, 2) AV_CASE(NH, 3) AV_CASE(NH, 4)             \
        AV_CASE(NH, 5) AV_CASE(NH, 6) AV_CASE(NH, 7) default : attn_values(NH, 8, a, h0, d0, last); \
    }

void kernels_avx512_attend(const struct kernels_attn *a)
{
    const uint32_t hd = a->head_dim, nk = a->n_keys;
    __m512 vmax[4];
    for (uint32_t h0 = 0; h0 < a->n_rep; h0 += 4) {
        uint32_t nh = a->n_rep - h0 < 4 ? a->n_rep - h0 : 4;
        for (int h = 0; h < 4; h++)
            vmax[h] = _mm512_set1_ps(-INFINITY);
        switch (nh) {
        case 1: attn_scores_heads(1, a, h0, vmax); break;
        case 2: attn_scores_heads(2, a, h0, vmax); break;
        case 3: attn_scores_heads(3, a, h0, vmax); break;
        default: attn_scores_heads(4, a, h0, vmax); break;
        }
        /* softmax of each head's row, the sum in double as ggml */
        for (uint32_t h = 0; h < nh; h++) {
            float *sc = a->scores + (size_t)(h0 + h) * nk;
            __m512 max = _mm512_set1_ps(_mm512_reduce_max_ps(vmax[h]));
            double sum = 0;
            for (uint32_t t0 = 0; t0 < nk; t0 += 16) {
                __mmask16 k = nk - t0 >= 16 ? 0xffff : cols_mask(nk - t0);
                __m512 e = exp512(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, sc + t0), max));
                e = _mm512_maskz_mov_ps(k, e);
                _mm512_mask_storeu_ps(sc + t0, k, e);
                sum += (double)_mm512_reduce_add_ps(e);
            }
            const __m512 inv = _mm512_set1_ps((float)(1.0 / sum));
            for (uint32_t t0 = 0; t0 < nk; t0 += 16) {
                __mmask16 k = nk - t0 >= 16 ? 0xffff : cols_mask(nk - t0);
                _mm512_mask_storeu_ps(sc + t0, k, _mm512_mul_ps(_mm512_maskz_loadu_ps(k, sc + t0), inv));
            }
        }
    }
    for (uint32_t h0 = 0; h0 < a->n_rep; h0 += 2) {
        for (uint32_t d0 = 0; d0 < hd; d0 += 128) {
            uint32_t n = hd - d0 < 128 ? hd - d0 : 128;
            uint32_t nv = (n + 15) / 16;
            __mmask16 last = n % 16 ? cols_mask(n % 16) : 0xffff;
            if (a->n_rep - h0 >= 2) {
                AV_SWITCH(2)
            } else {
                AV_SWITCH(1)
            }
        }
    }
}

/* ---- activation conversion ------------------------------------------------------ */

/* The same bytes as the scalar conversion in kernels.c: max is exact in any
 * order, the products and roundings are the same single operations. */
void kernels_avx512_act_convert_row(struct kernels_act *a, uint32_t r, const float *x)
{
    uint8_t *row = a->data + (size_t)r * a->row_bytes;
    const uint32_t k = a->n_in;
    float *f = (float *)row;
    const __m512 sign = _mm512_castsi512_ps(_mm512_set1_epi32(0x7fffffff));
    switch (a->kind) {
    case KERNELS_ACT_F32:
        memcpy(f, x, (size_t)k * 4);
        return;
    case KERNELS_ACT_F16:
        for (uint32_t i = 0; i < k; i += 16) {
            __mmask16 m = k - i >= 16 ? 0xffff : cols_mask(k - i);
            __m256i h = _mm512_cvtps_ph(_mm512_maskz_loadu_ps(m, x + i),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
            _mm512_mask_storeu_ps(f + i, m, _mm512_cvtph_ps(h));
        }
        return;
    case KERNELS_ACT_BF16:
        for (uint32_t i = 0; i < k; i += 16) {
            __mmask16 m = k - i >= 16 ? 0xffff : cols_mask(k - i);
            __m512i u = _mm512_castps_si512(_mm512_maskz_loadu_ps(m, x + i));
            __mmask16 nan = _mm512_cmpgt_epu32_mask(_mm512_and_si512(u, _mm512_set1_epi32(0x7fffffff)),
                                                    _mm512_set1_epi32(0x7f800000));
            __m512i hi = _mm512_srli_epi32(u, 16);
            __m512i rnd = _mm512_add_epi32(_mm512_set1_epi32(0x7fff), _mm512_and_si512(hi, _mm512_set1_epi32(1)));
            __m512i b = _mm512_srli_epi32(_mm512_add_epi32(u, rnd), 16);
            b = _mm512_mask_mov_epi32(b, nan, _mm512_or_si512(hi, _mm512_set1_epi32(64)));
            _mm512_mask_storeu_ps(f + i, m, _mm512_castsi512_ps(_mm512_slli_epi32(b, 16)));
        }
        return;
    case KERNELS_ACT_Q8_0: {
        int8_t *q = (int8_t *)row;
        float *d = (float *)(row + kq8_d_off(k));
        int32_t *s = (int32_t *)(row + kq8_s_off(k));
        for (uint32_t b = 0; b < k / KQ_BLOCK; b++) {
            __m512 x0 = _mm512_loadu_ps(x + b * 32), x1 = _mm512_loadu_ps(x + b * 32 + 16);
            float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_and_ps(x0, sign), _mm512_and_ps(x1, sign)));
            d[b] = _cvtsh_ss(_cvtss_sh(amax / 127.f, 0));
            __m512 id = _mm512_set1_ps(amax != 0 ? 127.f / amax : 0.f);
            __m512i q0 = _mm512_cvtps_epi32(_mm512_mul_ps(x0, id));
            __m512i q1 = _mm512_cvtps_epi32(_mm512_mul_ps(x1, id));
            _mm_storeu_si128((__m128i *)(q + b * 32), _mm512_cvtepi32_epi8(q0));
            _mm_storeu_si128((__m128i *)(q + b * 32 + 16), _mm512_cvtepi32_epi8(q1));
            s[b] = _mm512_reduce_add_epi32(_mm512_add_epi32(q0, q1));
        }
        return;
    }
    case KERNELS_ACT_Q8_K: {
        int8_t *q = (int8_t *)row;
        float *d = (float *)(row + kq8_d_off(k));
        int32_t *s16 = (int32_t *)(row + kq8k_s16_off(k));
        int16_t *s32 = (int16_t *)(row + kq8k_s32_off(k));
        for (uint32_t b = 0; b < k / KQ_SUPER; b++) {
            const float *xb = x + b * KQ_SUPER;
            __m512 vmax = _mm512_setzero_ps();
            for (int j = 0; j < 16; j++)
                vmax = _mm512_max_ps(vmax, _mm512_and_ps(_mm512_loadu_ps(xb + 16 * j), sign));
            float amax = _mm512_reduce_max_ps(vmax);
            if (amax == 0) {
                d[b] = 0;
                memset(q + b * KQ_SUPER, 0, KQ_SUPER);
                for (int j = 0; j < 16; j++)
                    s16[b * 16 + j] = 0;
                for (int j = 0; j < 8; j++)
                    s32[b * 8 + j] = 0;
                continue;
            }
            /* the signed value of the first element of largest magnitude */
            float max = 0;
            for (int j = 0; j < 16; j++) {
                __mmask16 m = _mm512_cmpeq_ps_mask(_mm512_and_ps(_mm512_loadu_ps(xb + 16 * j), sign),
                                                   _mm512_set1_ps(amax));
                if (m) {
                    max = xb[16 * j + __builtin_ctz(m)];
                    break;
                }
            }
            float iscale = -127.f / max;
            __m512 is = _mm512_set1_ps(iscale);
            for (int j = 0; j < 16; j++) {
                __m512i v = _mm512_cvtps_epi32(_mm512_mul_ps(is, _mm512_loadu_ps(xb + 16 * j)));
                v = _mm512_min_epi32(v, _mm512_set1_epi32(127));
                _mm_storeu_si128((__m128i *)(q + b * KQ_SUPER + 16 * j), _mm512_cvtepi32_epi8(v));
                s16[b * 16 + j] = _mm512_reduce_add_epi32(v);
            }
            for (int j = 0; j < 8; j++)
                s32[b * 8 + j] = (int16_t)(s16[b * 16 + 2 * j] + s16[b * 16 + 2 * j + 1]);
            d[b] = 1 / iscale;
        }
        return;
    }
    }
}

#if defined(__clang__)
#pragma clang attribute pop
#endif

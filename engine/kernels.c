/* kernels.c — see kernels.h. Packing, activation conversion, dispatch, and
 * the scalar kernels that define the arithmetic every SIMD kernel must
 * reproduce bit for bit. Packed layouts: kernels_internal.h. */
#include "engine/kernels.h"

#include <cpuid.h>
#include <math.h>
#include <string.h>

#include "engine/kernels_internal.h"

/* ---- conversions ---------------------------------------------------------- */

static uint32_t f32_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static float f32_from_bits(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

float kernels_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t man = h & 0x3ffu;
    if (exp == 31)
        return f32_from_bits(sign | 0x7f800000u | (man << 13));
    if (exp != 0)
        return f32_from_bits(sign | ((exp + 112) << 23) | (man << 13));
    if (man == 0)
        return f32_from_bits(sign);
    /* Subnormal: shift the leading one up to the implicit-bit position. */
    uint32_t shift = 0;
    while (!(man & 0x400u)) {
        man <<= 1;
        shift++;
    }
    return f32_from_bits(sign | ((113 - shift) << 23) | ((man & 0x3ffu) << 13));
}

uint16_t kernels_f32_to_f16(float f)
{
    uint32_t x = f32_bits(f);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000u);
    uint32_t ax = x & 0x7fffffffu;
    if (ax > 0x7f800000u)
        return sign | 0x7e00u;               /* NaN stays a (quiet) NaN */
    if (ax >= 0x47800000u)
        return sign | 0x7c00u;               /* >= 65536, or infinity */
    int32_t exp = (int32_t)(ax >> 23) - 127;
    if (exp < -25)
        return sign;                         /* below half the smallest subnormal */
    uint32_t man = (ax & 0x7fffffu) | 0x800000u;
    /* Bits of the 24-bit significand that do not fit: 13 for a normal
     * result, more as the result goes subnormal (unit 2^-24). */
    int drop = exp >= -14 ? 13 : -exp - 1;
    uint32_t q = man >> drop;
    uint32_t rem = man & ((1u << drop) - 1);
    uint32_t half = 1u << (drop - 1);
    if (rem > half || (rem == half && (q & 1)))
        q++;
    if (exp >= -14) /* a carry out of the significand bumps the exponent, up to infinity */
        return sign | (uint16_t)(((uint32_t)(exp + 15) << 10) + (q - 0x400u));
    return sign | (uint16_t)q;
}

float kernels_bf16_to_f32(uint16_t h)
{
    return f32_from_bits((uint32_t)h << 16);
}

uint16_t kernels_f32_to_bf16(float f)
{
    uint32_t u = f32_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u)
        return (uint16_t)((u >> 16) | 64);  /* keep NaN a NaN */
    return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1)) >> 16);
}

/* ---- ISA ------------------------------------------------------------------ */

/* CPUID and XGETBV directly: compiler builtins differ in which feature names
 * they know (clang 14 lacks some), and the OS must have enabled the
 * registers (XCR0) for a feature to be usable. */
static uint64_t xgetbv0(void)
{
    uint32_t lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((uint64_t)hi << 32) | lo;
}

enum kernels_isa kernels_isa_best(void)
{
    uint32_t a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d))
        return KERNELS_ISA_SCALAR;
    bool fma = c & (1u << 12), osxsave = c & (1u << 27), avx = c & (1u << 28),
         f16c = c & (1u << 29);
    if (!osxsave || !avx || !fma || !f16c)
        return KERNELS_ISA_SCALAR;
    uint64_t xcr0 = xgetbv0();
    if ((xcr0 & 0x6) != 0x6) /* SSE and AVX state */
        return KERNELS_ISA_SCALAR;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d))
        return KERNELS_ISA_SCALAR;
    bool avx2 = b & (1u << 5);
    bool avx512 = (b & (1u << 16)) && (b & (1u << 17)) && (b & (1u << 30)) && (b & (1u << 31)) &&
                  (c & (1u << 11)); /* F, DQ, BW, VL, VNNI */
    if (avx512 && (xcr0 & 0xe0) == 0xe0) /* opmask and all 32 zmm */
        return KERNELS_ISA_AVX512;
    return avx2 ? KERNELS_ISA_AVX2 : KERNELS_ISA_SCALAR;
}

const char *kernels_isa_name(enum kernels_isa isa)
{
    switch (isa) {
    case KERNELS_ISA_SCALAR: return "scalar";
    case KERNELS_ISA_AVX2: return "avx2";
    case KERNELS_ISA_AVX512: return "avx512-vnni";
    }
    return "?";
}

/* ---- types and sizes -------------------------------------------------------- */

bool kernels_type_supported(enum ggml_type t)
{
    switch (t) {
    case GGML_TYPE_F32:
    case GGML_TYPE_F16:
    case GGML_TYPE_BF16:
    case GGML_TYPE_Q8_0:
    case GGML_TYPE_Q4_0:
    case GGML_TYPE_Q4_K:
    case GGML_TYPE_Q6_K:
        return true;
    default:
        return false;
    }
}

enum kernels_act_kind kernels_act_kind_for(enum ggml_type t)
{
    switch (t) {
    case GGML_TYPE_F16: return KERNELS_ACT_F16;
    case GGML_TYPE_BF16: return KERNELS_ACT_BF16;
    case GGML_TYPE_Q8_0:
    case GGML_TYPE_Q4_0: return KERNELS_ACT_Q8_0;
    case GGML_TYPE_Q4_K:
    case GGML_TYPE_Q6_K: return KERNELS_ACT_Q8_K;
    default: return KERNELS_ACT_F32;
    }
}

static uint32_t type_block(enum ggml_type t)
{
    switch (t) {
    case GGML_TYPE_Q8_0:
    case GGML_TYPE_Q4_0: return KQ_BLOCK;
    case GGML_TYPE_Q4_K:
    case GGML_TYPE_Q6_K: return KQ_SUPER;
    default: return 1;
    }
}

static size_t group_bytes(enum ggml_type t, uint32_t k)
{
    switch (t) {
    case GGML_TYPE_F32: return (size_t)k * 64;
    case GGML_TYPE_F16:
    case GGML_TYPE_BF16: return kernels_round64((size_t)k * 32);
    case GGML_TYPE_Q8_0: return kernels_round64((size_t)k / KQ_BLOCK * (512 + 32));
    case GGML_TYPE_Q4_0: return kernels_round64((size_t)k / KQ_BLOCK * (256 + 32));
    case GGML_TYPE_Q4_K: return (size_t)k / KQ_SUPER * Q4K_SB_BYTES;
    case GGML_TYPE_Q6_K:
        return kq6_k_d_off(k) + kernels_round64((size_t)k / KQ_SUPER * 32);
    default: return 0;
    }
}

bool kernels_pack_size(enum ggml_type t, uint32_t n_in, uint32_t n_out, size_t *bytes,
                       struct err *e)
{
    if (!kernels_type_supported(t))
        return err_set(e, ERR_UNSUPPORTED, "weight type %d is not supported by the kernels",
                       (int)t);
    uint32_t blk = type_block(t);
    if (n_in == 0 || n_out == 0 || n_in % blk != 0)
        return err_set(e, ERR_CORRUPT, "a type-%d matrix needs a row length that is a multiple of %u, not %u",
                       (int)t, blk, n_in);
    size_t groups = (n_out + KERNELS_GROUP - 1) / KERNELS_GROUP;
    *bytes = groups * group_bytes(t, n_in);
    return true;
}

void kernels_pack_init(enum ggml_type t, uint32_t n_in, uint32_t n_out, void *dst,
                       struct kernels_matrix *out)
{
    out->type = t;
    out->n_in = n_in;
    out->n_out = n_out;
    out->n_groups = (n_out + KERNELS_GROUP - 1) / KERNELS_GROUP;
    out->group_bytes = group_bytes(t, n_in);
    out->data = dst;
}

/* ---- packing ---------------------------------------------------------------- */

static uint16_t rd16(const uint8_t *p)
{
    return (uint16_t)(p[0] | (p[1] << 8));
}

static void wr16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

/* GGUF row bytes for n values of type t. */
static size_t row_bytes(enum ggml_type t, uint32_t n)
{
    switch (t) {
    case GGML_TYPE_F32: return (size_t)n * 4;
    case GGML_TYPE_F16:
    case GGML_TYPE_BF16: return (size_t)n * 2;
    case GGML_TYPE_Q8_0: return (size_t)n / 32 * 34;
    case GGML_TYPE_Q4_0: return (size_t)n / 32 * 18;
    case GGML_TYPE_Q4_K: return (size_t)n / 256 * 144;
    case GGML_TYPE_Q6_K: return (size_t)n / 256 * 210;
    default: return 0;
    }
}

/* Quants of one GGUF Q4_K superblock: nibble values of the 256 elements,
 * 6-bit scales and mins of the 8 sub-blocks, and d / dmin bits. */
struct q4k_block {
    uint8_t q[256];
    uint8_t sc[8], mn[8];
    uint16_t d, dmin;
};

static void q4k_decode(const uint8_t *b, struct q4k_block *o)
{
    o->d = rd16(b);
    o->dmin = rd16(b + 2);
    const uint8_t *s = b + 4; /* 12 bytes: sub-blocks 0-3 in the low 6 bits of
                               * s[0..7]; 4-7 split over s[8..11] and the top
                               * two bits of s[0..7] */
    for (int j = 0; j < 4; j++) {
        o->sc[j] = s[j] & 63;
        o->mn[j] = s[j + 4] & 63;
    }
    for (int j = 4; j < 8; j++) {
        o->sc[j] = (uint8_t)((s[j + 4] & 0x0f) | ((s[j - 4] >> 6) << 4));
        o->mn[j] = (uint8_t)((s[j + 4] >> 4) | ((s[j] >> 6) << 4));
    }
    const uint8_t *qs = b + 16;
    /* Each 32 bytes of qs hold 64 elements: low nibbles first, then high. */
    for (int c = 0; c < 4; c++)
        for (int l = 0; l < 32; l++) {
            o->q[64 * c + l] = qs[32 * c + l] & 0x0f;
            o->q[64 * c + 32 + l] = qs[32 * c + l] >> 4;
        }
}

struct q6k_block {
    uint8_t q[256]; /* 0..63; the weight is q - 32 */
    int8_t sc[16];
    uint16_t d;
};

static void q6k_decode(const uint8_t *b, struct q6k_block *o)
{
    const uint8_t *ql = b, *qh = b + 128;
    const int8_t *sc = (const int8_t *)(b + 192);
    o->d = rd16(b + 208);
    for (int j = 0; j < 16; j++)
        o->sc[j] = sc[j];
    /* Each half of 128 elements uses 64 bytes of ql and 32 of qh; quarter
     * u of a half takes low (u < 2) or high nibbles of ql[l + 32*(u&1)] and
     * bits 2u..2u+1 of qh[l]. */
    for (int h = 0; h < 2; h++)
        for (int u = 0; u < 4; u++)
            for (int l = 0; l < 32; l++) {
                uint8_t lo = ql[64 * h + l + 32 * (u & 1)];
                lo = u < 2 ? (lo & 0x0f) : (lo >> 4);
                uint8_t hi = (qh[32 * h + l] >> (2 * u)) & 3;
                o->q[128 * h + 32 * u + l] = (uint8_t)(lo | (hi << 4));
            }
}

/* Place element pairs (e, e+4) of an 8-element run as the nibbles of 4 bytes. */
static void put_nibbles8(uint8_t *dst, const uint8_t *q)
{
    for (int i = 0; i < 4; i++)
        dst[i] = (uint8_t)(q[i] | (q[i + 4] << 4));
}

static void pack_group(const struct kernels_matrix *m, const uint8_t *src, uint32_t g)
{
    uint8_t *dst = (uint8_t *)m->data + (size_t)g * m->group_bytes;
    const uint32_t k = m->n_in;
    const size_t rb = row_bytes(m->type, k);
    memset(dst, 0, m->group_bytes);
    for (uint32_t c = 0; c < KERNELS_GROUP; c++) {
        uint32_t n = g * KERNELS_GROUP + c;
        const uint8_t *row = n < m->n_out ? src + (size_t)n * rb : NULL;
        switch (m->type) {
        case GGML_TYPE_F32:
            if (row) {
                const float *r = (const float *)row;
                float *d = (float *)dst + c;
                for (uint32_t i = 0; i < k; i++)
                    d[(size_t)i * 16] = r[i];
            }
            break;
        case GGML_TYPE_F16:
        case GGML_TYPE_BF16:
            if (row) {
                uint16_t *d = (uint16_t *)dst + c;
                for (uint32_t i = 0; i < k; i++)
                    d[(size_t)i * 16] = rd16(row + (size_t)i * 2);
            }
            break;
        case GGML_TYPE_Q8_0:
            /* whole dwords: 4 quants of one column per 64-byte chunk row */
            for (uint32_t b = 0; b < k / 32; b++) {
                uint8_t *q = dst + (size_t)b * 512 + c * 4;
                uint8_t *sc = dst + kq8_0_scales_off(k) + ((size_t)b * 16 + c) * 2;
                if (!row) {
                    for (int j = 0; j < 8; j++)
                        memset(q + j * 64, 0x80, 4);
                    continue;
                }
                const uint8_t *blk = row + (size_t)b * 34;
                for (int j = 0; j < 8; j++) {
                    uint32_t v;
                    memcpy(&v, blk + 2 + 4 * j, 4);
                    v ^= 0x80808080u;
                    memcpy(q + j * 64, &v, 4);
                }
                memcpy(sc, blk, 2);
            }
            break;
        case GGML_TYPE_Q4_0:
            for (uint32_t b = 0; b < k / 32; b++) {
                const uint8_t *blk = row ? row + (size_t)b * 18 : NULL;
                uint8_t q[32];
                for (int i = 0; i < 16; i++) {
                    q[i] = blk ? blk[2 + i] & 0x0f : 8;
                    q[i + 16] = blk ? blk[2 + i] >> 4 : 8;
                }
                for (int j = 0; j < 4; j++)
                    put_nibbles8(dst + (size_t)b * 256 + j * 64 + c * 4, q + 8 * j);
                wr16(dst + kq4_0_scales_off(k) + ((size_t)b * 16 + c) * 2, blk ? rd16(blk) : 0);
            }
            break;
        case GGML_TYPE_Q4_K:
            for (uint32_t s = 0; s < k / 256; s++) {
                struct q4k_block qb = {0};
                if (row)
                    q4k_decode(row + (size_t)s * 144, &qb);
                uint8_t *sb = dst + (size_t)s * Q4K_SB_BYTES;
                for (int j = 0; j < 8; j++) {
                    for (int ch = 0; ch < 4; ch++)
                        put_nibbles8(sb + j * 256 + ch * 64 + c * 4, qb.q + 32 * j + 8 * ch);
                    sb[2048 + j * 16 + c] = qb.sc[j];
                }
                for (int p = 0; p < 4; p++) {
                    sb[2176 + p * 32 + c * 2] = qb.mn[2 * p];
                    sb[2176 + p * 32 + c * 2 + 1] = qb.mn[2 * p + 1];
                }
                wr16(sb + 2304 + c * 2, qb.d);
                wr16(sb + 2336 + c * 2, qb.dmin);
            }
            break;
        case GGML_TYPE_Q6_K:
            for (uint32_t s = 0; s < k / 256; s++) {
                struct q6k_block qb;
                memset(&qb, 0, sizeof qb);
                if (row)
                    q6k_decode(row + (size_t)s * 210, &qb);
                else
                    memset(qb.q, 32, sizeof qb.q);
                uint8_t *sb = dst + (size_t)s * Q6K_SB_BYTES;
                for (int j = 0; j < 16; j++) {
                    const uint8_t *q = qb.q + 16 * j;
                    uint8_t lo[16];
                    for (int i = 0; i < 16; i++)
                        lo[i] = q[i] & 0x0f;
                    put_nibbles8(sb + j * 192 + c * 4, lo);
                    put_nibbles8(sb + j * 192 + 64 + c * 4, lo + 8);
                    for (int i = 0; i < 4; i++) {
                        uint8_t h = 0;
                        for (int ch = 0; ch < 4; ch++)
                            h |= (uint8_t)(((q[4 * ch + i] >> 4) & 3) << (2 * ch));
                        sb[j * 192 + 128 + c * 4 + i] = h;
                    }
                    sb[3072 + j * 16 + c] = (uint8_t)qb.sc[j];
                }
                wr16(dst + kq6_k_d_off(k) + ((size_t)s * 16 + c) * 2, qb.d);
            }
            break;
        default:
            break;
        }
    }
}

void kernels_pack_groups(const struct kernels_matrix *m, const void *src, uint32_t g0,
                         uint32_t g1)
{
    for (uint32_t g = g0; g < g1 && g < m->n_groups; g++)
        pack_group(m, src, g);
}

/* ---- row dequantisation (GGUF layout) ---------------------------------------- */

void kernels_row_dequant(enum ggml_type t, const void *src, uint32_t n, float *out)
{
    const uint8_t *p = src;
    switch (t) {
    case GGML_TYPE_F32:
        memcpy(out, p, (size_t)n * 4);
        break;
    case GGML_TYPE_F16:
        for (uint32_t i = 0; i < n; i++)
            out[i] = kernels_f16_to_f32(rd16(p + 2 * i));
        break;
    case GGML_TYPE_BF16:
        for (uint32_t i = 0; i < n; i++)
            out[i] = kernels_bf16_to_f32(rd16(p + 2 * i));
        break;
    case GGML_TYPE_Q8_0:
        for (uint32_t b = 0; b < n / 32; b++, p += 34) {
            float d = kernels_f16_to_f32(rd16(p));
            for (int i = 0; i < 32; i++)
                out[b * 32 + i] = d * (float)(int8_t)p[2 + i];
        }
        break;
    case GGML_TYPE_Q4_0:
        for (uint32_t b = 0; b < n / 32; b++, p += 18) {
            float d = kernels_f16_to_f32(rd16(p));
            for (int i = 0; i < 16; i++) {
                out[b * 32 + i] = d * (float)((p[2 + i] & 0x0f) - 8);
                out[b * 32 + 16 + i] = d * (float)((p[2 + i] >> 4) - 8);
            }
        }
        break;
    case GGML_TYPE_Q4_K:
        for (uint32_t s = 0; s < n / 256; s++, p += 144) {
            struct q4k_block qb;
            q4k_decode(p, &qb);
            float d = kernels_f16_to_f32(qb.d), dmin = kernels_f16_to_f32(qb.dmin);
            for (int e = 0; e < 256; e++) {
                int j = e / 32;
                out[s * 256 + e] = d * qb.sc[j] * qb.q[e] - dmin * qb.mn[j];
            }
        }
        break;
    case GGML_TYPE_Q6_K:
        for (uint32_t s = 0; s < n / 256; s++, p += 210) {
            struct q6k_block qb;
            q6k_decode(p, &qb);
            float d = kernels_f16_to_f32(qb.d);
            for (int e = 0; e < 256; e++)
                out[s * 256 + e] = d * qb.sc[e / 16] * (float)(qb.q[e] - 32);
        }
        break;
    default:
        memset(out, 0, (size_t)n * 4);
        break;
    }
}

/* ---- activations ------------------------------------------------------------ */

size_t kernels_act_bytes(enum kernels_act_kind kind, uint32_t n_rows, uint32_t n_in)
{
    size_t row;
    switch (kind) {
    case KERNELS_ACT_Q8_0:
        row = kq8_s_off(n_in) + kernels_round64((size_t)n_in / KQ_BLOCK * 4);
        break;
    case KERNELS_ACT_Q8_K:
        row = kq8k_s32_off(n_in) + kernels_round64((size_t)n_in / KQ_BLOCK * 2);
        break;
    default:
        row = kernels_round64((size_t)n_in * 4);
        break;
    }
    return row * n_rows;
}

void kernels_act_init(struct kernels_act *a, enum kernels_act_kind kind, uint32_t n_rows,
                      uint32_t n_in, void *buf)
{
    a->kind = kind;
    a->n_rows = n_rows;
    a->n_in = n_in;
    a->row_bytes = n_rows ? kernels_act_bytes(kind, n_rows, n_in) / n_rows
                          : kernels_act_bytes(kind, 1, n_in);
    a->data = buf;
}

/* ggml's Q8_0 activation quantisation (the x86 SIMD variant, which the
 * reference logits were computed with): id = 127/amax, q = rint(x * id). */
static void quantize_q8_0(const float *x, uint32_t k, uint8_t *row)
{
    int8_t *q = (int8_t *)row;
    float *d = (float *)(row + kq8_d_off(k));
    int32_t *s = (int32_t *)(row + kq8_s_off(k));
    for (uint32_t b = 0; b < k / KQ_BLOCK; b++) {
        const float *xb = x + b * KQ_BLOCK;
        float amax = 0;
        for (int i = 0; i < 32; i++) {
            float ax = fabsf(xb[i]);
            amax = ax > amax ? ax : amax;
        }
        float id = amax != 0 ? 127.f / amax : 0.f;
        d[b] = kernels_f16_to_f32(kernels_f32_to_f16(amax / 127.f));
        int32_t sum = 0;
        for (int i = 0; i < 32; i++) {
            int v = (int)rintf(xb[i] * id);
            q[b * KQ_BLOCK + i] = (int8_t)v;
            sum += v;
        }
        s[b] = sum;
    }
}

/* ggml's Q8_K: scale from the signed value of largest magnitude, -127/max. */
static void quantize_q8_k(const float *x, uint32_t k, uint8_t *row)
{
    int8_t *q = (int8_t *)row;
    float *d = (float *)(row + kq8_d_off(k));
    int32_t *s16 = (int32_t *)(row + kq8k_s16_off(k));
    int16_t *s32 = (int16_t *)(row + kq8k_s32_off(k));
    for (uint32_t b = 0; b < k / KQ_SUPER; b++) {
        const float *xb = x + b * KQ_SUPER;
        int8_t *qb = q + b * KQ_SUPER;
        float amax = 0, max = 0;
        for (int i = 0; i < 256; i++) {
            float ax = fabsf(xb[i]);
            if (ax > amax) {
                amax = ax;
                max = xb[i];
            }
        }
        if (amax == 0) {
            d[b] = 0;
            memset(qb, 0, 256);
        } else {
            float iscale = -127.f / max;
            for (int i = 0; i < 256; i++) {
                int v = (int)rintf(iscale * xb[i]);
                qb[i] = (int8_t)(v > 127 ? 127 : v);
            }
            d[b] = 1 / iscale;
        }
        for (int j = 0; j < 16; j++) {
            int32_t sum = 0;
            for (int i = 0; i < 16; i++)
                sum += qb[16 * j + i];
            s16[b * 16 + j] = sum;
        }
        for (int j = 0; j < 8; j++)
            s32[b * 8 + j] = (int16_t)(s16[b * 16 + 2 * j] + s16[b * 16 + 2 * j + 1]);
    }
}

void kernels_act_convert_row(struct kernels_act *a, uint32_t r, const float *xr,
                             enum kernels_isa isa)
{
    if (isa >= KERNELS_ISA_AVX512) {
        kernels_avx512_act_convert_row(a, r, xr);
        return;
    }
    uint8_t *row = a->data + (size_t)r * a->row_bytes;
    float *f = (float *)row;
    switch (a->kind) {
    case KERNELS_ACT_F32:
        memcpy(f, xr, (size_t)a->n_in * 4);
        break;
    case KERNELS_ACT_F16:
        for (uint32_t i = 0; i < a->n_in; i++)
            f[i] = kernels_f16_to_f32(kernels_f32_to_f16(xr[i]));
        break;
    case KERNELS_ACT_BF16:
        for (uint32_t i = 0; i < a->n_in; i++)
            f[i] = kernels_bf16_to_f32(kernels_f32_to_bf16(xr[i]));
        break;
    case KERNELS_ACT_Q8_0:
        quantize_q8_0(xr, a->n_in, row);
        break;
    case KERNELS_ACT_Q8_K:
        quantize_q8_k(xr, a->n_in, row);
        break;
    }
}

void kernels_act_convert_rows(struct kernels_act *a, const float *x, size_t ldx, uint32_t r0,
                              uint32_t r1, enum kernels_isa isa)
{
    for (uint32_t r = r0; r < r1 && r < a->n_rows; r++)
        kernels_act_convert_row(a, r, x + (size_t)r * ldx, isa);
}

/* ---- scalar kernels: the reference arithmetic --------------------------------- */

static void store_cols(float *y, const float *acc, uint32_t cols)
{
    for (uint32_t c = 0; c < cols; c++)
        y[c] = acc[c];
}

static void mm_float_scalar(const struct kernels_matrix *w, const struct kernels_act *a, float *y,
                            size_t ldy, uint32_t g0, uint32_t g1)
{
    const uint32_t k = w->n_in;
    for (uint32_t g = g0; g < g1; g++) {
        const uint8_t *W = w->data + (size_t)g * w->group_bytes;
        for (uint32_t r = 0; r < a->n_rows; r++) {
            const float *x = (const float *)(a->data + (size_t)r * a->row_bytes);
            float acc[16] = {0};
            for (uint32_t i = 0; i < k; i++)
                for (int c = 0; c < 16; c++) {
                    float wv;
                    if (w->type == GGML_TYPE_F32)
                        memcpy(&wv, W + ((size_t)i * 16 + c) * 4, 4);
                    else if (w->type == GGML_TYPE_F16)
                        wv = kernels_f16_to_f32(rd16(W + ((size_t)i * 16 + c) * 2));
                    else
                        wv = kernels_bf16_to_f32(rd16(W + ((size_t)i * 16 + c) * 2));
                    acc[c] = fmaf(x[i], wv, acc[c]);
                }
            store_cols(y + (size_t)r * ldy + g * 16, acc, kernels_group_cols(w, g));
        }
    }
}

static void mm_q8_0_scalar(const struct kernels_matrix *w, const struct kernels_act *a, float *y,
                           size_t ldy, uint32_t g0, uint32_t g1)
{
    const uint32_t k = w->n_in, nb = k / KQ_BLOCK;
    const bool q4 = w->type == GGML_TYPE_Q4_0;
    for (uint32_t g = g0; g < g1; g++) {
        const uint8_t *W = w->data + (size_t)g * w->group_bytes;
        const uint8_t *S = W + (q4 ? kq4_0_scales_off(k) : kq8_0_scales_off(k));
        for (uint32_t r = 0; r < a->n_rows; r++) {
            const uint8_t *row = a->data + (size_t)r * a->row_bytes;
            const int8_t *q = (const int8_t *)row;
            const float *d = (const float *)(row + kq8_d_off(k));
            float acc[16] = {0};
            for (uint32_t b = 0; b < nb; b++) {
                const int8_t *qb = q + b * KQ_BLOCK;
                for (int c = 0; c < 16; c++) {
                    int32_t isum = 0;
                    if (q4) {
                        const uint8_t *Q = W + (size_t)b * 256 + c * 4;
                        for (int j = 0; j < 4; j++)
                            for (int i = 0; i < 4; i++) {
                                uint8_t v = Q[j * 64 + i];
                                isum += ((v & 0x0f) - 8) * qb[8 * j + i];
                                isum += ((v >> 4) - 8) * qb[8 * j + 4 + i];
                            }
                    } else {
                        const uint8_t *Q = W + (size_t)b * 512 + c * 4;
                        for (int j = 0; j < 8; j++)
                            for (int i = 0; i < 4; i++)
                                isum += ((int)Q[j * 64 + i] - 128) * qb[4 * j + i];
                    }
                    float scale = kernels_f16_to_f32(rd16(S + ((size_t)b * 16 + c) * 2)) * d[b];
                    acc[c] = fmaf((float)isum, scale, acc[c]);
                }
            }
            store_cols(y + (size_t)r * ldy + g * 16, acc, kernels_group_cols(w, g));
        }
    }
}

static void mm_q4_k_scalar(const struct kernels_matrix *w, const struct kernels_act *a, float *y,
                           size_t ldy, uint32_t g0, uint32_t g1)
{
    const uint32_t k = w->n_in;
    for (uint32_t g = g0; g < g1; g++) {
        const uint8_t *W = w->data + (size_t)g * w->group_bytes;
        for (uint32_t r = 0; r < a->n_rows; r++) {
            const uint8_t *row = a->data + (size_t)r * a->row_bytes;
            const int8_t *q = (const int8_t *)row;
            const float *d = (const float *)(row + kq8_d_off(k));
            const int16_t *s32 = (const int16_t *)(row + kq8k_s32_off(k));
            float acc[16] = {0};
            for (uint32_t s = 0; s < k / KQ_SUPER; s++) {
                const uint8_t *sb = W + (size_t)s * Q4K_SB_BYTES;
                const int8_t *qs = q + s * KQ_SUPER;
                for (int c = 0; c < 16; c++) {
                    int32_t isum = 0, msum = 0;
                    for (int j = 0; j < 8; j++) {
                        int32_t ij = 0;
                        for (int ch = 0; ch < 4; ch++)
                            for (int i = 0; i < 4; i++) {
                                uint8_t v = sb[j * 256 + ch * 64 + c * 4 + i];
                                ij += (v & 0x0f) * qs[32 * j + 8 * ch + i];
                                ij += (v >> 4) * qs[32 * j + 8 * ch + 4 + i];
                            }
                        isum += ij * sb[2048 + j * 16 + c];
                    }
                    for (int p = 0; p < 4; p++)
                        msum += sb[2176 + p * 32 + c * 2] * s32[s * 8 + 2 * p] +
                                sb[2176 + p * 32 + c * 2 + 1] * s32[s * 8 + 2 * p + 1];
                    float dd = kernels_f16_to_f32(rd16(sb + 2304 + c * 2)) * d[s];
                    float dm = kernels_f16_to_f32(rd16(sb + 2336 + c * 2)) * d[s];
                    acc[c] = fmaf((float)isum, dd, acc[c]);
                    acc[c] = fmaf(-(float)msum, dm, acc[c]);
                }
            }
            store_cols(y + (size_t)r * ldy + g * 16, acc, kernels_group_cols(w, g));
        }
    }
}

static void mm_q6_k_scalar(const struct kernels_matrix *w, const struct kernels_act *a, float *y,
                           size_t ldy, uint32_t g0, uint32_t g1)
{
    const uint32_t k = w->n_in;
    for (uint32_t g = g0; g < g1; g++) {
        const uint8_t *W = w->data + (size_t)g * w->group_bytes;
        const uint8_t *D = W + kq6_k_d_off(k);
        for (uint32_t r = 0; r < a->n_rows; r++) {
            const uint8_t *row = a->data + (size_t)r * a->row_bytes;
            const int8_t *q = (const int8_t *)row;
            const float *d = (const float *)(row + kq8_d_off(k));
            float acc[16] = {0};
            for (uint32_t s = 0; s < k / KQ_SUPER; s++) {
                const uint8_t *sb = W + (size_t)s * Q6K_SB_BYTES;
                const int8_t *qs = q + s * KQ_SUPER;
                for (int c = 0; c < 16; c++) {
                    int32_t isum = 0;
                    for (int j = 0; j < 16; j++) {
                        const uint8_t *sub = sb + j * 192;
                        int32_t ij = 0;
                        for (int e = 0; e < 16; e++) {
                            int h = e / 8, i = e % 4, nib = (e / 4) & 1;
                            uint8_t l = sub[h * 64 + c * 4 + i];
                            int lo = nib ? l >> 4 : l & 0x0f;
                            int hi = (sub[128 + c * 4 + i] >> (2 * (e / 4))) & 3;
                            ij += ((lo | (hi << 4)) - 32) * qs[16 * j + e];
                        }
                        isum += ij * (int8_t)sb[3072 + j * 16 + c];
                    }
                    float dd = kernels_f16_to_f32(rd16(D + ((size_t)s * 16 + c) * 2)) * d[s];
                    acc[c] = fmaf((float)isum, dd, acc[c]);
                }
            }
            store_cols(y + (size_t)r * ldy + g * 16, acc, kernels_group_cols(w, g));
        }
    }
}

static kernels_mm_fn scalar_matmul(enum ggml_type t)
{
    switch (t) {
    case GGML_TYPE_F32:
    case GGML_TYPE_F16:
    case GGML_TYPE_BF16: return mm_float_scalar;
    case GGML_TYPE_Q8_0:
    case GGML_TYPE_Q4_0: return mm_q8_0_scalar;
    case GGML_TYPE_Q4_K: return mm_q4_k_scalar;
    case GGML_TYPE_Q6_K: return mm_q6_k_scalar;
    default: return NULL;
    }
}

void kernels_matmul(const struct kernels_matrix *w, const struct kernels_act *a, float *y,
                    size_t ldy, uint32_t g0, uint32_t g1, enum kernels_isa isa)
{
    if (g1 > w->n_groups)
        g1 = w->n_groups;
    if (g0 >= g1 || a->n_rows == 0)
        return;
    kernels_mm_fn fn = NULL;
    if (isa >= KERNELS_ISA_AVX512)
        fn = kernels_avx512_matmul(w->type);
    if (!fn && isa >= KERNELS_ISA_AVX2)
        fn = kernels_avx2_matmul(w->type);
    if (!fn)
        fn = scalar_matmul(w->type);
    fn(w, a, y, ldy, g0, g1);
}

uint32_t kernels_matmul_group_step(const struct kernels_matrix *w, uint32_t n_rows,
                                   enum kernels_isa isa)
{
    if (isa >= KERNELS_ISA_AVX512 && kernels_avx512_matmul(w->type))
        return kernels_avx512_group_step(w->type, n_rows);
    return 1; /* the AVX2 and scalar kernels work one group at a time */
}

/* ---- attention and element-wise ---------------------------------------------- */

static void attend_scalar(const struct kernels_attn *a)
{
    const uint32_t hd = a->head_dim, bt = a->block_tokens;
    for (uint32_t h = 0; h < a->n_rep; h++) {
        const float *q = a->q + (size_t)h * hd;
        float *sc = a->scores + (size_t)h * a->n_keys;
        float max = -INFINITY;
        for (uint32_t t = 0; t < a->n_keys; t++) {
            const float *blk = a->base + (size_t)a->blocks[t / bt] * a->block_stride;
            const float *kt = blk + a->k_off + t % bt; /* keys are [head_dim][block_tokens] */
            float dot = 0;
            for (uint32_t i = 0; i < hd; i++)
                dot = fmaf(q[i], kt[(size_t)i * bt], dot);
            sc[t] = dot * a->scale;
            max = fmaxf(max, sc[t]);
        }
        double sum = 0;
        for (uint32_t t = 0; t < a->n_keys; t++) {
            sc[t] = expf(sc[t] - max);
            sum += sc[t];
        }
        float inv = (float)(1.0 / sum);
        float *out = a->out + (size_t)h * hd;
        for (uint32_t i = 0; i < hd; i++)
            out[i] = 0;
        for (uint32_t t = 0; t < a->n_keys; t++) {
            const float *blk = a->base + (size_t)a->blocks[t / bt] * a->block_stride;
            const float *v = blk + a->v_off + (size_t)(t % bt) * hd;
            float p = sc[t] * inv;
            for (uint32_t i = 0; i < hd; i++)
                out[i] = fmaf(p, v[i], out[i]);
        }
    }
}

void kernels_attend(const struct kernels_attn *a, enum kernels_isa isa)
{
    if (isa >= KERNELS_ISA_AVX512 && a->block_tokens % 16 == 0)
        kernels_avx512_attend(a);
    else if (isa >= KERNELS_ISA_AVX2 && a->block_tokens % 8 == 0)
        kernels_avx2_attend(a);
    else
        attend_scalar(a);
}

void kernels_silu_mul(float *gate, const float *up, uint32_t n, enum kernels_isa isa)
{
    if (isa >= KERNELS_ISA_AVX512) {
        kernels_avx512_silu_mul(gate, up, n);
        return;
    }
    if (isa >= KERNELS_ISA_AVX2) {
        kernels_avx2_silu_mul(gate, up, n);
        return;
    }
    for (uint32_t i = 0; i < n; i++)
        gate[i] = gate[i] / (1.0f + expf(-gate[i])) * up[i];
}

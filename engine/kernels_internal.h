/*
 * kernels_internal.h — packed layouts shared by kernels.c (packing, scalar
 * reference) and the SIMD files kernels_avx2.c / kernels_avx512.c. Not a
 * public interface: only the kernels_* files include it.
 *
 * Packed column group (16 output columns c = 0..15), by weight type:
 *
 *   F32   [K][16] float                               K*64 bytes
 *   F16   [K][16] f16 bits                            K*32
 *   BF16  [K][16] bf16 bits                           K*32
 *   Q8_0  quants [K/32][8 chunks][16 c][4] u8 = q ^ 0x80 (so q + 128),
 *         then scales [K/32][16] f16
 *   Q4_0  quants [K/32][4 chunks][16 c][4]: byte i of chunk j holds
 *         element 8j+i in its low nibble, element 8j+4+i in its high nibble
 *         (unsigned 0..15, the weight is nibble - 8); then scales [K/32][16] f16
 *   Q4_K  per superblock of 256: quants [8 sub][4][16][4] as Q4_0 (2048 B),
 *         scales u8 [8 sub][16 c] (128 B), mins u8 [4][16 c][2] (pairs of
 *         sub-blocks 2p, 2p+1; 128 B), d f16 [16], dmin f16 [16] (64 B): 2368 B
 *   Q6_K  per superblock: for each of 16 sub-blocks of 16: ql [2][16 c][4]
 *         (byte i of ql dword h: element 8h+i low nibble, 8h+4+i high nibble)
 *         and qh [16 c][4] (byte i: bits 2j..2j+1 = high bits of element
 *         4j+i), 192 B per sub-block; then scales i8 [16 sub][16 c]: 3328 B per
 *         superblock; after all superblocks, d f16 [K/256][16]
 *
 * Activation rows (each part padded to 64 bytes):
 *   F32/F16/BF16  float [K]
 *   Q8_0          int8 q [K] | float d [K/32] | int32 sum(q) [K/32]
 *   Q8_K          int8 q [K] | float d [K/256] | int32 sum(q) per 16 [K/16] |
 *                 int16 sum(q) per 32 [K/32]
 */
#ifndef MAASD_KERNELS_INTERNAL_H
#define MAASD_KERNELS_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "engine/kernels.h"

#define KQ_BLOCK 32u
#define KQ_SUPER 256u
#define Q4K_SB_BYTES 2368u
#define Q6K_SB_BYTES 3328u

/* An unaligned little-endian 32-bit load (packed int8 groups are read four
 * bytes at a time). */
static inline int32_t kernels_ld32(const void *p)
{
    int32_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

static inline size_t kernels_round64(size_t n)
{
    return (n + 63) & ~(size_t)63;
}

/* Offsets of the parts of a Q8_0 / Q8_K activation row. */
static inline size_t kq8_d_off(uint32_t k) { return kernels_round64(k); }
static inline size_t kq8_s_off(uint32_t k)
{
    return kq8_d_off(k) + kernels_round64((size_t)k / KQ_BLOCK * 4);
}
static inline size_t kq8k_s16_off(uint32_t k)
{
    return kq8_d_off(k) + kernels_round64((size_t)k / KQ_SUPER * 4);
}
static inline size_t kq8k_s32_off(uint32_t k)
{
    return kq8k_s16_off(k) + kernels_round64((size_t)k / 16 * 4);
}

/* Byte offset of the scales inside a Q8_0 / Q4_0 group, and of the d array
 * inside a Q6_K group. */
static inline size_t kq8_0_scales_off(uint32_t k) { return (size_t)k / KQ_BLOCK * 512; }
static inline size_t kq4_0_scales_off(uint32_t k) { return (size_t)k / KQ_BLOCK * 256; }
static inline size_t kq6_k_d_off(uint32_t k) { return (size_t)k / KQ_SUPER * Q6K_SB_BYTES; }

typedef void (*kernels_mm_fn)(const struct kernels_matrix *w, const struct kernels_act *a,
                              float *y, size_t ldy, uint32_t g0, uint32_t g1);

/* Number of valid columns in group g (16 except possibly the last). */
static inline uint32_t kernels_group_cols(const struct kernels_matrix *w, uint32_t g)
{
    uint32_t left = w->n_out - g * KERNELS_GROUP;
    return left < KERNELS_GROUP ? left : KERNELS_GROUP;
}

/* Per-ISA entry points; NULL where an ISA has no kernel for a type. */
kernels_mm_fn kernels_avx2_matmul(enum ggml_type t);
kernels_mm_fn kernels_avx512_matmul(enum ggml_type t);
uint32_t kernels_avx512_group_step(enum ggml_type t, uint32_t n_rows);
void kernels_avx2_attend(const struct kernels_attn *a);
void kernels_avx512_attend(const struct kernels_attn *a);
void kernels_avx2_silu_mul(float *gate, const float *up, uint32_t n);
void kernels_avx512_act_convert_row(struct kernels_act *a, uint32_t r, const float *x);
void kernels_avx512_silu_mul(float *gate, const float *up, uint32_t n);

#endif

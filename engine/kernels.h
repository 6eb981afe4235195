/*
 * kernels.h — the engine's compute kernels: weight-matrix products over a
 * whole batch of activation rows, activation conversion, attention, and the
 * element-wise helpers of the forward pass.
 *
 * Weights are repacked once, at model load, into "column groups": 16 output
 * columns stored interleaved along the input dimension, so that one vector
 * register holds the same input position (or 4 positions for int8) of 16
 * output columns. A product then broadcasts one activation value (or 4 int8
 * values) and accumulates 16 outputs per instruction, with no horizontal sums
 * and no per-block reductions. The packed copy has the same size as the
 * GGUF tensor (Q4_K +2.8%, padding to 16 columns aside).
 *
 * Batch invariance — the property the scheduler relies on
 *   Every output element y[m][n] is computed by one fixed sequence of
 *   floating-point operations that depends only on row m of the activations
 *   and column n of the weights: never on the number of rows, the tiling,
 *   the thread split or the column range. So a sequence gets bitwise the same
 *   logits alone or batched with others. The arithmetic per element is:
 *     F32/F16/BF16  acc = fma(x[k], w[k], acc) for k = 0, 1, ... in order
 *                   (x rounded to F16 / BF16 first, as ggml does);
 *     Q8_0, Q4_0    per 32-block b in order: acc = fma((float)isum_b, d_w*d_x, acc),
 *                   isum_b the exact integer dot product of the quants;
 *     Q4_K          per 256-superblock: acc = fma((float)isum, d*d_x, acc);
 *                   acc = fma(-(float)msum, dmin*d_x, acc) with exact integer
 *                   sums over the 8 sub-blocks (scales and mins applied);
 *     Q6_K          per 256-superblock: acc = fma((float)isum, d*d_x, acc).
 *   The scalar kernels implement exactly this and are the reference: the
 *   SIMD kernels (AVX2+FMA+F16C, AVX-512 with VNNI) must match them bit for
 *   bit (tests/unit/test_kernels.c checks it).
 *
 * Activations for quantised weights are quantised per row exactly as ggml's
 * CPU backend does: Q8_0 blocks of 32 (d = max|x|/127 stored as F16, q =
 * round-half-even(x * 127/max|x|)) for Q8_0/Q4_0 weights, Q8_K blocks of 256
 * (d = max/-127 as F32) for Q4_K/Q6_K weights.
 *
 * Ownership
 *   kernels_pack() writes into caller-provided memory (the model's arena); a
 *   struct kernels_matrix only points at it. A struct kernels_act points at a
 *   caller-provided buffer of kernels_act_bytes(). Nothing here allocates.
 *
 * Threads
 *   All functions are reentrant. Products are split across threads by the
 *   caller through the column-group range [g0, g1).
 */
#ifndef MAASD_KERNELS_H
#define MAASD_KERNELS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/err.h"
#include "engine/gguf.h"

#define KERNELS_GROUP 16 /* output columns per packed group */

enum kernels_isa {
    KERNELS_ISA_SCALAR = 0,
    KERNELS_ISA_AVX2 = 1,   /* AVX2 + FMA + F16C */
    KERNELS_ISA_AVX512 = 2, /* AVX-512 F/BW/VL/DQ + VNNI */
};

/* The best ISA this CPU supports (runtime detection). */
enum kernels_isa kernels_isa_best(void);
const char *kernels_isa_name(enum kernels_isa isa);

/* What activations are converted to before a product with a weight type. */
enum kernels_act_kind {
    KERNELS_ACT_F32,
    KERNELS_ACT_F16,  /* values rounded to F16, held as F32 */
    KERNELS_ACT_BF16, /* values rounded to BF16, held as F32 */
    KERNELS_ACT_Q8_0,
    KERNELS_ACT_Q8_K,
};

/* A weight matrix W[n_out][n_in] (GGUF ne = [n_in, n_out]) in packed form. */
struct kernels_matrix {
    enum ggml_type type;
    uint32_t n_in;        /* K, the contiguous GGUF dimension */
    uint32_t n_out;       /* N */
    uint32_t n_groups;    /* ceil(n_out / KERNELS_GROUP) */
    size_t group_bytes;   /* packed bytes per group, a multiple of 64 */
    const uint8_t *data;  /* n_groups * group_bytes, 64-byte aligned, not owned */
};

/* Activation rows converted for one kind of weight. */
struct kernels_act {
    enum kernels_act_kind kind;
    uint32_t n_rows;
    uint32_t n_in;
    size_t row_bytes;     /* stride between rows in `data`, a multiple of 64 */
    uint8_t *data;
};

/* True for the weight types the kernels can multiply by:
 * F32, F16, BF16, Q8_0, Q4_0, Q4_K, Q6_K. */
bool kernels_type_supported(enum ggml_type t);
enum kernels_act_kind kernels_act_kind_for(enum ggml_type t);

/* Checks that the shape suits the type (n_in a multiple of the block size)
 * and returns the packed size in bytes through *bytes. */
bool kernels_pack_size(enum ggml_type t, uint32_t n_in, uint32_t n_out, size_t *bytes,
                       struct err *e);
/* Describe the packed matrix at dst (64-byte aligned, kernels_pack_size()
 * bytes) without writing it; then fill groups with kernels_pack_groups(),
 * possibly from several threads on disjoint ranges. `src` is the tensor in
 * GGUF layout. */
void kernels_pack_init(enum ggml_type t, uint32_t n_in, uint32_t n_out, void *dst,
                       struct kernels_matrix *out);
void kernels_pack_groups(const struct kernels_matrix *m, const void *src, uint32_t g0,
                         uint32_t g1);

/* Bytes of a kernels_act buffer for n_rows rows of n_in values. */
size_t kernels_act_bytes(enum kernels_act_kind kind, uint32_t n_rows, uint32_t n_in);
/* Convert rows x[r * ldx + i] (i < n_in) into a->data. buf must hold
 * kernels_act_bytes() and be 64-byte aligned. n_in must be a multiple of the
 * kind's block (32 for Q8_0, 256 for Q8_K). */
void kernels_act_init(struct kernels_act *a, enum kernels_act_kind kind, uint32_t n_rows,
                      uint32_t n_in, void *buf);
void kernels_act_convert_rows(struct kernels_act *a, const float *x, size_t ldx, uint32_t r0,
                              uint32_t r1, enum kernels_isa isa);
/* Convert the n_in values at x into row r. Every ISA gives the same bytes. */
void kernels_act_convert_row(struct kernels_act *a, uint32_t r, const float *x,
                             enum kernels_isa isa);

/* y[r * ldy + n] = sum_k x[r][k] * W[n][k] for every row r of `a` and every
 * column n in groups [g0, g1) (clipped to n_out). a->kind must be
 * kernels_act_kind_for(w->type) and a->n_in == w->n_in. */
void kernels_matmul(const struct kernels_matrix *w, const struct kernels_act *a, float *y,
                    size_t ldy, uint32_t g0, uint32_t g1, enum kernels_isa isa);

/* The width, in column groups, of the tiles kernels_matmul() uses for
 * n_rows rows: a range [g0, g1) split at multiples of it runs at full speed
 * (other splits give the same results, with partial tiles). */
uint32_t kernels_matmul_group_step(const struct kernels_matrix *w, uint32_t n_rows,
                                   enum kernels_isa isa);

/* One GGUF row of n values (n a multiple of the type's block) to F32. */
void kernels_row_dequant(enum ggml_type t, const void *src, uint32_t n, float *out);

/* --- attention --------------------------------------------------------------
 * One query position against the keys [0, n_keys) of one KV head, for the
 * n_rep query heads that share it (grouped-query attention). Keys and values
 * are F32 in fixed-size blocks: block b of the sequence is at
 * base + blocks[b] * block_stride, its keys at + k_off stored transposed
 * [head_dim][block_tokens] (so 16 keys' scores are one vector of FMAs, no
 * horizontal sums), its values at + v_off as [block_tokens][head_dim].
 * Scores are (q . k) * scale, softmax with the maximum subtracted, the sum in
 * double as ggml does. Per query the arithmetic does not depend on the batch.
 * SIMD paths need block_tokens a multiple of 16 (AVX-512) or 8 (AVX2). */
struct kernels_attn {
    const float *q;        /* n_rep * head_dim */
    float *out;            /* n_rep * head_dim */
    uint32_t n_rep;
    uint32_t head_dim;
    float scale;
    uint32_t n_keys;
    const float *base;
    const int32_t *blocks;
    uint32_t block_tokens;
    size_t block_stride;   /* floats */
    size_t k_off, v_off;   /* floats */
    float *scores;         /* scratch: n_rep * n_keys */
};
void kernels_attend(const struct kernels_attn *a, enum kernels_isa isa);

/* gate[i] = silu(gate[i]) * up[i] */
void kernels_silu_mul(float *gate, const float *up, uint32_t n, enum kernels_isa isa);

/* --- scalar conversions (round to nearest even, as ggml) --- */
float kernels_f16_to_f32(uint16_t h);
uint16_t kernels_f32_to_f16(float f);
float kernels_bf16_to_f32(uint16_t h);
uint16_t kernels_f32_to_bf16(float f);

#endif

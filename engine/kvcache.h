/*
 * kvcache.h — the attention key/value cache: one fixed pool of F32 blocks,
 * paged among sequences.
 *
 * Contract
 *   The pool is allocated once, at creation, from an explicit byte budget
 *   (budget / kvcache_block_bytes() blocks); nothing is allocated per token
 *   or per sequence afterwards (the block tables are preallocated too). A
 *   block holds `block_tokens` consecutive positions of one sequence for
 *   every layer and KV head, so sequences of any lengths share the pool.
 *
 *   A sequence is a small integer handle (a slot). Its length is the number
 *   of positions whose K/V are written; its capacity is the blocks it holds.
 *   - kvcache_seq_reserve(seq, n) makes room for positions [len, len + n):
 *     it takes blocks from the pool, or fails with ERR_NOMEM and changes
 *     nothing when the pool is short (the scheduler then waits or preempts;
 *     nothing crashes). Beyond max_seq_tokens it fails with ERR_INVALID.
 *   - kvcache_seq_fork(src) makes a new sequence with src's contents: full
 *     blocks are shared (reference counts), the partial last block is copied.
 *     Shared blocks are never written: positions < len are immutable, and a
 *     reserve that would write into a shared partial block (after a
 *     truncation) copies it first.
 *   - kvcache_seq_truncate() and kvcache_seq_free() return blocks nobody
 *     else references; they cannot fail.
 *   The forward pass (engine/forward.c) writes positions [len, len + n) of a
 *   reserved sequence and then advances the length with
 *   kvcache_seq_set_len(); its contents are only read below the length.
 *
 * Layout of a block (floats), for layer l and KV head h:
 *   at ((l * n_head_kv + h) * 2) * block_tokens * head_dim:
 *   keys [head_dim][block_tokens] (transposed: see kernels_attend), then
 *   values [block_tokens][head_dim].
 *
 * Threads
 *   Not thread-safe: one owner (the scheduler thread, which also runs the
 *   forward pass) calls everything. Handles are not validated against reuse:
 *   a freed handle must not be used again until kvcache_seq_new() returns it.
 */
#ifndef MAASD_KVCACHE_H
#define MAASD_KVCACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/err.h"

struct kvcache_config {
    uint32_t n_layer;
    uint32_t n_head_kv;
    uint32_t head_dim;
    uint32_t block_tokens;   /* positions per block, a multiple of 16; 0 = 16 */
    uint32_t max_seqs;       /* sequence slots */
    uint32_t max_seq_tokens; /* per-sequence limit (the context length) */
    size_t budget_bytes;     /* the pool; at least one block */
};

struct kvcache;

bool kvcache_create(const struct kvcache_config *c, struct kvcache **out, struct err *e);
void kvcache_destroy(struct kvcache *kv);

/* Bytes of one block for this configuration (block_tokens 0 = 16). */
size_t kvcache_block_bytes(const struct kvcache_config *c);

/* A new empty sequence; ERR_OVERLOADED when every slot is in use. */
bool kvcache_seq_new(struct kvcache *kv, int32_t *seq, struct err *e);
/* A new sequence holding src's positions; ERR_OVERLOADED without a slot,
 * ERR_NOMEM when the partial block cannot be copied. */
bool kvcache_seq_fork(struct kvcache *kv, int32_t src, int32_t *dst, struct err *e);
bool kvcache_seq_reserve(struct kvcache *kv, int32_t seq, uint32_t n_more, struct err *e);
/* Keep positions [0, len) (len <= current length). */
void kvcache_seq_truncate(struct kvcache *kv, int32_t seq, uint32_t len);
void kvcache_seq_free(struct kvcache *kv, int32_t seq);

uint32_t kvcache_seq_len(const struct kvcache *kv, int32_t seq);
uint32_t kvcache_seq_capacity(const struct kvcache *kv, int32_t seq);
bool kvcache_seq_valid(const struct kvcache *kv, int32_t seq);

/* Admission: blocks a reserve of n_more would take for seq (-1: a new
 * sequence), and what the pool has. */
uint32_t kvcache_blocks_needed(const struct kvcache *kv, int32_t seq, uint32_t n_more);
uint32_t kvcache_free_blocks(const struct kvcache *kv);
uint32_t kvcache_total_blocks(const struct kvcache *kv);
uint32_t kvcache_block_tokens(const struct kvcache *kv);
uint32_t kvcache_free_seqs(const struct kvcache *kv);

/* The configuration in force (block_tokens filled in). */
const struct kvcache_config *kvcache_get_config(const struct kvcache *kv);

/* --- for the forward pass --- */
float *kvcache_pool(struct kvcache *kv);
size_t kvcache_block_floats(const struct kvcache *kv);
const int32_t *kvcache_seq_blocks(const struct kvcache *kv, int32_t seq);
/* len must not exceed the capacity; positions below it must be written. */
void kvcache_seq_set_len(struct kvcache *kv, int32_t seq, uint32_t len);

#endif

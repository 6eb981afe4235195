/* kvcache.c — see kvcache.h. */
#include "engine/kvcache.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

struct seq {
    bool used;
    uint32_t len;
    uint32_t n_blocks;
    int32_t *blocks;     /* max_blocks_per_seq entries, preallocated */
};

struct kvcache {
    struct kvcache_config c;
    size_t block_floats;
    uint32_t n_blocks;
    uint32_t max_blocks_per_seq;
    float *pool;
    size_t pool_bytes;
    uint32_t *refs;      /* per block; 0 = free */
    int32_t *free_list;  /* stack of free blocks */
    uint32_t n_free;
    struct seq *seqs;
    int32_t *tables;     /* max_seqs * max_blocks_per_seq */
    uint32_t n_free_seqs;
};

size_t kvcache_block_bytes(const struct kvcache_config *c)
{
    size_t bt = c->block_tokens ? c->block_tokens : 16;
    return (size_t)c->n_layer * c->n_head_kv * 2 * bt * c->head_dim * sizeof(float);
}

bool kvcache_create(const struct kvcache_config *cfg, struct kvcache **out, struct err *e)
{
    *out = NULL;
    struct kvcache_config c = *cfg;
    if (!c.block_tokens)
        c.block_tokens = 16;
    if (c.block_tokens % 16 || c.block_tokens > 4096)
        return err_set_param(e, ERR_INVALID, "kv_block_tokens",
                             "KV block size %u is not a multiple of 16 up to 4096", c.block_tokens);
    if (!c.n_layer || !c.n_head_kv || !c.head_dim || !c.max_seqs || !c.max_seq_tokens ||
        c.max_seqs > (1u << 20))
        return err_set(e, ERR_INVALID, "KV cache configuration has a zero or absurd dimension");
    size_t bb = kvcache_block_bytes(&c);
    if (c.budget_bytes < bb)
        return err_set_param(e, ERR_INVALID, "kv_cache_bytes",
                             "KV cache budget of %zu bytes is less than one block (%zu bytes)",
                             c.budget_bytes, bb);
    size_t nb = c.budget_bytes / bb;
    if (nb > INT32_MAX)
        nb = INT32_MAX;

    struct kvcache *kv = calloc(1, sizeof *kv);
    if (!kv)
        return err_set(e, ERR_NOMEM, "out of memory for the KV cache");
    kv->c = c;
    kv->block_floats = bb / sizeof(float);
    kv->n_blocks = (uint32_t)nb;
    kv->max_blocks_per_seq = (c.max_seq_tokens + c.block_tokens - 1) / c.block_tokens;
    kv->pool_bytes = nb * bb;
    /* Anonymous memory is committed on first touch, so an idle cache costs
     * address space only; the budget is still the hard limit. */
    void *pool = mmap(NULL, kv->pool_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                      -1, 0);
    kv->refs = calloc(nb, sizeof *kv->refs);
    kv->free_list = malloc(nb * sizeof *kv->free_list);
    kv->seqs = calloc(c.max_seqs, sizeof *kv->seqs);
    kv->tables = malloc((size_t)c.max_seqs * kv->max_blocks_per_seq * sizeof *kv->tables);
    if (pool == MAP_FAILED || !kv->refs || !kv->free_list || !kv->seqs || !kv->tables) {
        if (pool != MAP_FAILED)
            munmap(pool, kv->pool_bytes);
        kv->pool = NULL;
        size_t want = kv->pool_bytes;
        kvcache_destroy(kv);
        return err_set_param(e, ERR_NOMEM, "kv_cache_bytes",
                             "cannot allocate a KV cache of %zu bytes", want);
    }
    madvise(pool, kv->pool_bytes, MADV_HUGEPAGE);
    kv->pool = pool;
    /* Hand out low blocks first: they are the ones already touched. */
    for (uint32_t i = 0; i < nb; i++)
        kv->free_list[i] = (int32_t)(nb - 1 - i);
    kv->n_free = (uint32_t)nb;
    for (uint32_t s = 0; s < c.max_seqs; s++)
        kv->seqs[s].blocks = kv->tables + (size_t)s * kv->max_blocks_per_seq;
    kv->n_free_seqs = c.max_seqs;
    *out = kv;
    return true;
}

void kvcache_destroy(struct kvcache *kv)
{
    if (!kv)
        return;
    if (kv->pool)
        munmap(kv->pool, kv->pool_bytes);
    free(kv->refs);
    free(kv->free_list);
    free(kv->seqs);
    free(kv->tables);
    free(kv);
}

static int32_t block_take(struct kvcache *kv)
{
    int32_t b = kv->free_list[--kv->n_free];
    kv->refs[b] = 1;
    return b;
}

static void block_drop(struct kvcache *kv, int32_t b)
{
    if (--kv->refs[b] == 0)
        kv->free_list[kv->n_free++] = b;
}

static struct seq *seq_get(const struct kvcache *kv, int32_t s)
{
    return &kv->seqs[s];
}

bool kvcache_seq_valid(const struct kvcache *kv, int32_t s)
{
    return s >= 0 && (uint32_t)s < kv->c.max_seqs && kv->seqs[s].used;
}

static bool seq_alloc(struct kvcache *kv, int32_t *out, struct err *e)
{
    for (uint32_t s = 0; s < kv->c.max_seqs; s++)
        if (!kv->seqs[s].used) {
            kv->seqs[s].used = true;
            kv->seqs[s].len = 0;
            kv->seqs[s].n_blocks = 0;
            kv->n_free_seqs--;
            *out = (int32_t)s;
            return true;
        }
    return err_set(e, ERR_OVERLOADED, "all %u KV cache sequence slots are in use", kv->c.max_seqs);
}

bool kvcache_seq_new(struct kvcache *kv, int32_t *seq, struct err *e)
{
    return seq_alloc(kv, seq, e);
}

/* Whether writing position len would land in a block someone else shares. */
static bool needs_copy(const struct kvcache *kv, const struct seq *q)
{
    uint32_t bi = q->len / kv->c.block_tokens;
    return q->len % kv->c.block_tokens && bi < q->n_blocks && kv->refs[q->blocks[bi]] > 1;
}

static void block_copy(struct kvcache *kv, int32_t dst, int32_t src)
{
    memcpy(kv->pool + (size_t)dst * kv->block_floats, kv->pool + (size_t)src * kv->block_floats,
           kv->block_floats * sizeof(float));
}

bool kvcache_seq_fork(struct kvcache *kv, int32_t src, int32_t *dst, struct err *e)
{
    const struct seq *s = seq_get(kv, src);
    uint32_t full = s->len / kv->c.block_tokens;
    bool partial = s->len % kv->c.block_tokens != 0;
    if (partial && kv->n_free == 0)
        return err_set(e, ERR_NOMEM, "the KV cache has no free block to fork a sequence");
    int32_t d;
    if (!seq_alloc(kv, &d, e))
        return false;
    struct seq *q = seq_get(kv, d);
    for (uint32_t i = 0; i < full; i++) {
        q->blocks[i] = s->blocks[i];
        kv->refs[s->blocks[i]]++;
    }
    q->n_blocks = full;
    if (partial) {
        int32_t b = block_take(kv);
        block_copy(kv, b, s->blocks[full]);
        q->blocks[q->n_blocks++] = b;
    }
    q->len = s->len;
    *dst = d;
    return true;
}

uint32_t kvcache_blocks_needed(const struct kvcache *kv, int32_t seq, uint32_t n_more)
{
    uint32_t bt = kv->c.block_tokens;
    if (seq < 0)
        return (uint32_t)(((uint64_t)n_more + bt - 1) / bt);
    const struct seq *q = seq_get(kv, seq);
    uint64_t want = ((uint64_t)q->len + n_more + bt - 1) / bt;
    uint64_t need = want > q->n_blocks ? want - q->n_blocks : 0;
    if (n_more && needs_copy(kv, q))
        need++;
    return need > UINT32_MAX ? UINT32_MAX : (uint32_t)need;
}

bool kvcache_seq_reserve(struct kvcache *kv, int32_t seq, uint32_t n_more, struct err *e)
{
    struct seq *q = seq_get(kv, seq);
    if ((uint64_t)q->len + n_more > kv->c.max_seq_tokens)
        return err_set(e, ERR_INVALID, "%u more tokens would exceed the context length of %u (at %u)",
                       n_more, kv->c.max_seq_tokens, q->len);
    uint32_t need = kvcache_blocks_needed(kv, seq, n_more);
    if (need > kv->n_free)
        return err_set(e, ERR_NOMEM, "the KV cache is short of %u blocks (%u free)", need - kv->n_free,
                       kv->n_free);
    if (n_more && needs_copy(kv, q)) {
        uint32_t bi = q->len / kv->c.block_tokens;
        int32_t b = block_take(kv);
        block_copy(kv, b, q->blocks[bi]);
        block_drop(kv, q->blocks[bi]);
        q->blocks[bi] = b;
    }
    uint64_t want = ((uint64_t)q->len + n_more + kv->c.block_tokens - 1) / kv->c.block_tokens;
    while (q->n_blocks < want)
        q->blocks[q->n_blocks++] = block_take(kv);
    return true;
}

void kvcache_seq_truncate(struct kvcache *kv, int32_t seq, uint32_t len)
{
    struct seq *q = seq_get(kv, seq);
    if (len >= q->len)
        return;
    q->len = len;
    uint32_t keep = (len + kv->c.block_tokens - 1) / kv->c.block_tokens;
    while (q->n_blocks > keep)
        block_drop(kv, q->blocks[--q->n_blocks]);
}

void kvcache_seq_free(struct kvcache *kv, int32_t seq)
{
    struct seq *q = seq_get(kv, seq);
    if (!q->used)
        return;
    while (q->n_blocks > 0)
        block_drop(kv, q->blocks[--q->n_blocks]);
    q->used = false;
    q->len = 0;
    kv->n_free_seqs++;
}

uint32_t kvcache_seq_len(const struct kvcache *kv, int32_t seq)
{
    return seq_get(kv, seq)->len;
}

uint32_t kvcache_seq_capacity(const struct kvcache *kv, int32_t seq)
{
    return seq_get(kv, seq)->n_blocks * kv->c.block_tokens;
}

uint32_t kvcache_free_blocks(const struct kvcache *kv)
{
    return kv->n_free;
}

uint32_t kvcache_total_blocks(const struct kvcache *kv)
{
    return kv->n_blocks;
}

uint32_t kvcache_block_tokens(const struct kvcache *kv)
{
    return kv->c.block_tokens;
}

uint32_t kvcache_free_seqs(const struct kvcache *kv)
{
    return kv->n_free_seqs;
}

const struct kvcache_config *kvcache_get_config(const struct kvcache *kv)
{
    return &kv->c;
}

float *kvcache_pool(struct kvcache *kv)
{
    return kv->pool;
}

size_t kvcache_block_floats(const struct kvcache *kv)
{
    return kv->block_floats;
}

const int32_t *kvcache_seq_blocks(const struct kvcache *kv, int32_t seq)
{
    return seq_get(kv, seq)->blocks;
}

void kvcache_seq_set_len(struct kvcache *kv, int32_t seq, uint32_t len)
{
    seq_get(kv, seq)->len = len;
}

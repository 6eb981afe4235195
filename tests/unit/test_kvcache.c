/* test_kvcache.c — the paged KV cache: budget, reserve/fork/truncate/free,
 * copy-on-write of shared blocks, and a randomized run against a shadow
 * model of every sequence's contents. */
#include <stdlib.h>
#include <string.h>

#include "engine/kvcache.h"
#include "tests/unit/testutil.h"

static const struct kvcache_config base = {
    .n_layer = 2, .n_head_kv = 2, .head_dim = 8, .block_tokens = 16,
    .max_seqs = 8, .max_seq_tokens = 200,
};

static struct kvcache *make(uint32_t blocks)
{
    struct kvcache_config c = base;
    c.budget_bytes = kvcache_block_bytes(&c) * blocks + 100; /* a partial block is not a block */
    struct kvcache *kv;
    struct err e;
    assert_true(kvcache_create(&c, &kv, &e));
    assert_int_equal(kvcache_total_blocks(kv), blocks);
    return kv;
}

/* The first key float of layer 0, head 0 at position p of seq: a marker. */
static float *slot(struct kvcache *kv, int32_t seq, uint32_t p)
{
    const int32_t *b = kvcache_seq_blocks(kv, seq);
    return kvcache_pool(kv) + (size_t)b[p / 16] * kvcache_block_floats(kv) + p % 16;
}

static void write_tokens(struct kvcache *kv, int32_t seq, uint32_t n, float base_value)
{
    struct err e;
    assert_true(kvcache_seq_reserve(kv, seq, n, &e));
    uint32_t len = kvcache_seq_len(kv, seq);
    for (uint32_t i = 0; i < n; i++)
        *slot(kv, seq, len + i) = base_value + (float)(len + i);
    kvcache_seq_set_len(kv, seq, len + n);
}

static void test_config_checks(void **state)
{
    (void)state;
    struct kvcache *kv;
    struct err e;
    struct kvcache_config c = base;
    c.budget_bytes = kvcache_block_bytes(&c) - 1;
    assert_false(kvcache_create(&c, &kv, &e));
    assert_int_equal(e.code, ERR_INVALID);
    c.budget_bytes = 1 << 20;
    c.block_tokens = 24;
    assert_false(kvcache_create(&c, &kv, &e));
    assert_int_equal(e.code, ERR_INVALID);
    c.block_tokens = 0; /* default 16 */
    assert_true(kvcache_create(&c, &kv, &e));
    assert_int_equal(kvcache_block_tokens(kv), 16);
    assert_int_equal(kvcache_block_bytes(&c), 2 * 2 * 2 * 16 * 8 * 4);
    kvcache_destroy(kv);
}

static void test_reserve_and_budget(void **state)
{
    (void)state;
    struct kvcache *kv = make(4);
    struct err e;
    int32_t s;
    assert_true(kvcache_seq_new(kv, &s, &e));
    assert_int_equal(kvcache_blocks_needed(kv, s, 20), 2);
    assert_int_equal(kvcache_blocks_needed(kv, -1, 33), 3);
    write_tokens(kv, s, 20, 0);
    assert_int_equal(kvcache_free_blocks(kv), 2);
    assert_int_equal(kvcache_seq_capacity(kv, s), 32);
    /* within capacity: nothing taken */
    assert_true(kvcache_seq_reserve(kv, s, 12, &e));
    assert_int_equal(kvcache_free_blocks(kv), 2);
    /* 20 + 45 = 65 tokens = 5 blocks > 4: refused, nothing changes */
    assert_false(kvcache_seq_reserve(kv, s, 45, &e));
    assert_int_equal(e.code, ERR_NOMEM);
    assert_int_equal(kvcache_free_blocks(kv), 2);
    assert_int_equal(kvcache_seq_capacity(kv, s), 32);
    /* over the context length */
    assert_false(kvcache_seq_reserve(kv, s, 181, &e));
    assert_int_equal(e.code, ERR_INVALID);
    kvcache_seq_truncate(kv, s, 5);
    assert_int_equal(kvcache_seq_len(kv, s), 5);
    assert_int_equal(kvcache_free_blocks(kv), 3);
    kvcache_seq_free(kv, s);
    assert_int_equal(kvcache_free_blocks(kv), 4);
    kvcache_destroy(kv);
}

static void test_slots(void **state)
{
    (void)state;
    struct kvcache *kv = make(2);
    struct err e;
    int32_t s[8], extra;
    for (int i = 0; i < 8; i++)
        assert_true(kvcache_seq_new(kv, &s[i], &e));
    assert_int_equal(kvcache_free_seqs(kv), 0);
    assert_false(kvcache_seq_new(kv, &extra, &e));
    assert_int_equal(e.code, ERR_OVERLOADED);
    kvcache_seq_free(kv, s[3]);
    assert_true(kvcache_seq_new(kv, &extra, &e));
    assert_int_equal(extra, s[3]);
    kvcache_destroy(kv);
}

static void test_fork_shares_full_blocks_and_copies_partial(void **state)
{
    (void)state;
    struct kvcache *kv = make(8);
    struct err e;
    int32_t a, b;
    assert_true(kvcache_seq_new(kv, &a, &e));
    write_tokens(kv, a, 20, 1000);
    assert_int_equal(kvcache_free_blocks(kv), 6);
    assert_true(kvcache_seq_fork(kv, a, &b, &e));
    assert_int_equal(kvcache_free_blocks(kv), 5); /* only the partial block copied */
    assert_int_equal(kvcache_seq_len(kv, b), 20);
    assert_int_equal(kvcache_seq_blocks(kv, a)[0], kvcache_seq_blocks(kv, b)[0]);
    assert_int_not_equal(kvcache_seq_blocks(kv, a)[1], kvcache_seq_blocks(kv, b)[1]);
    for (uint32_t p = 0; p < 20; p++)
        assert_true(*slot(kv, b, p) == 1000 + (float)p);
    /* both extend independently */
    write_tokens(kv, b, 5, 2000);
    write_tokens(kv, a, 5, 3000);
    for (uint32_t p = 20; p < 25; p++) {
        assert_true(*slot(kv, a, p) == 3000 + (float)p);
        assert_true(*slot(kv, b, p) == 2000 + (float)p);
    }
    /* truncating into a shared block, then writing, copies it first */
    kvcache_seq_truncate(kv, a, 10);
    uint32_t before = kvcache_free_blocks(kv);
    assert_int_equal(kvcache_blocks_needed(kv, a, 1), 1);
    write_tokens(kv, a, 1, 4000);
    assert_int_equal(kvcache_free_blocks(kv), before - 1);
    assert_true(*slot(kv, a, 10) == 4010);
    assert_true(*slot(kv, b, 10) == 1010); /* b unaffected */
    assert_true(*slot(kv, a, 9) == 1009);  /* the copy kept the prefix */
    kvcache_seq_free(kv, a);
    kvcache_seq_free(kv, b);
    assert_int_equal(kvcache_free_blocks(kv), 8);
    /* a fork needs a free block for a partial last block */
    struct kvcache *small = make(2);
    int32_t c, d;
    assert_true(kvcache_seq_new(small, &c, &e));
    write_tokens(small, c, 20, 0);
    assert_false(kvcache_seq_fork(small, c, &d, &e));
    assert_int_equal(e.code, ERR_NOMEM);
    assert_int_equal(kvcache_free_seqs(small), 7);
    kvcache_destroy(small);
    kvcache_destroy(kv);
}

/* Random operations against a shadow copy of every sequence. */
static void test_random_operations(void **state)
{
    (void)state;
    enum { NB = 24, MAXS = 8, MAXT = 200 };
    struct kvcache *kv = make(NB);
    struct err e;
    float shadow[MAXS][MAXT];
    bool live[MAXS] = {false};
    uint32_t rng = 12345;
    for (int step = 0; step < 20000; step++) {
        rng = rng * 1103515245u + 12345u;
        uint32_t r = rng >> 8;
        int32_t s = (int32_t)(r % MAXS);
        switch ((r >> 4) % 5) {
        case 0:
            if (!live[s]) {
                int32_t n;
                if (kvcache_seq_new(kv, &n, &e)) {
                    live[n] = true;
                }
            }
            break;
        case 1:
            if (live[s]) {
                int32_t n;
                if (kvcache_seq_fork(kv, s, &n, &e)) {
                    live[n] = true;
                    memcpy(shadow[n], shadow[s], sizeof shadow[s]);
                } else {
                    assert_true(e.code == ERR_NOMEM || e.code == ERR_OVERLOADED);
                }
            }
            break;
        case 2:
        case 3:
            if (live[s]) {
                uint32_t len = kvcache_seq_len(kv, s), n = (r >> 8) % 20 + 1;
                if (len + n > MAXT)
                    break;
                uint32_t need = kvcache_blocks_needed(kv, s, n), free0 = kvcache_free_blocks(kv);
                if (kvcache_seq_reserve(kv, s, n, &e)) {
                    assert_true(kvcache_free_blocks(kv) == free0 - need);
                    for (uint32_t i = 0; i < n; i++) {
                        float v = (float)(step * 1000 + (int)i);
                        *slot(kv, s, len + i) = v;
                        shadow[s][len + i] = v;
                    }
                    kvcache_seq_set_len(kv, s, len + n);
                } else {
                    assert_int_equal(e.code, ERR_NOMEM);
                    assert_true(need > free0);
                }
            }
            break;
        default:
            if (live[s]) {
                if ((r >> 9) & 1) {
                    kvcache_seq_free(kv, s);
                    live[s] = false;
                } else {
                    kvcache_seq_truncate(kv, s, kvcache_seq_len(kv, s) / 2);
                }
            }
        }
        /* every live sequence still reads what was written into it */
        for (int q = 0; q < MAXS; q++)
            if (live[q])
                for (uint32_t p = 0; p < kvcache_seq_len(kv, q); p++)
                    if (*slot(kv, q, p) != shadow[q][p])
                        fail_msg("step %d: seq %d pos %u reads %g, wrote %g", step, q, p,
                                 *slot(kv, q, p), shadow[q][p]);
    }
    for (int q = 0; q < MAXS; q++)
        if (live[q])
            kvcache_seq_free(kv, q);
    assert_int_equal(kvcache_free_blocks(kv), NB);
    assert_int_equal(kvcache_free_seqs(kv), MAXS);
    kvcache_destroy(kv);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config_checks),
        cmocka_unit_test(test_reserve_and_budget),
        cmocka_unit_test(test_slots),
        cmocka_unit_test(test_fork_shares_full_blocks_and_copies_partial),
        cmocka_unit_test(test_random_operations),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

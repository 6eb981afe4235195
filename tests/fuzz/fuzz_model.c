/* fuzz_model.c — arbitrary bytes as a GGUF file through the model loader
 * (hyper-parameters, tensor shapes and types are untrusted input), and,
 * when a small model loads, two tokens through the forward pass: loading
 * must accept or refuse, never crash, leak or read out of bounds, and an
 * accepted model must run. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "engine/forward.h"
#include "engine/gguf.h"
#include "engine/kvcache.h"
#include "engine/model.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void run_two_tokens(const struct model *m)
{
    const struct model_hparams *hp = &m->hp;
    /* keep each run fast: the fuzzer is after crashes, not big models */
    if ((uint64_t)hp->n_embd * hp->n_ff > (1u << 20) || hp->n_layer > 8 || hp->n_vocab > 4096 ||
        (uint64_t)hp->n_head * hp->head_dim > 4096)
        return;
    struct err e;
    struct threadpool *tp = NULL;
    struct kvcache *kv = NULL;
    struct forward *fw = NULL;
    struct kvcache_config kc = {
        .n_layer = hp->n_layer, .n_head_kv = hp->n_head_kv, .head_dim = hp->head_dim,
        .max_seqs = 1, .max_seq_tokens = 16,
    };
    kc.budget_bytes = kvcache_block_bytes(&kc);
    struct forward_options fo = {.max_batch = 2, .max_outputs = 2, .isa = -1};
    int32_t seq;
    if (threadpool_create(1, &tp, &e) && kvcache_create(&kc, &kv, &e) &&
        forward_create(m, kv, tp, &fo, &fw, &e) && kvcache_seq_new(kv, &seq, &e) &&
        kvcache_seq_reserve(kv, seq, 2, &e)) {
        int32_t tok[2] = {0, (int32_t)(hp->n_vocab - 1)}, sq[2] = {seq, seq};
        uint32_t pos[2] = {0, 1};
        uint8_t out[2] = {FORWARD_OUT_LOGITS, FORWARD_OUT_HIDDEN};
        struct forward_batch b = {2, tok, sq, pos, out};
        if (forward_run(fw, &b, &e) && !forward_logits(fw, 0))
            abort(); /* asked for logits, got none */
    }
    forward_destroy(fw);
    kvcache_destroy(kv);
    threadpool_destroy(tp);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* tensor data must be aligned relative to an aligned buffer, as a
     * mapping would be */
    uint8_t *buf = aligned_alloc(64, (size + 64) & ~(size_t)63);
    if (!buf)
        return 0;
    memcpy(buf, data, size);
    struct gguf_file *f;
    struct err e;
    if (gguf_open_memory(buf, size, &f, &e)) {
        struct model *m;
        if (model_load(f, NULL, &m, &e)) {
            run_two_tokens(m);
            model_free(m);
        }
        gguf_close(f);
    }
    free(buf);
    return 0;
}

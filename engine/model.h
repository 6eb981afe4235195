/*
 * model.h — a LLaMA-family model loaded from an open GGUF file: validated
 * hyper-parameters and weights ready for the kernels.
 *
 * Contract
 *   model_load() accepts architectures `llama` (grouped-query attention,
 *   optional q/k/v biases, separate `output.weight` or embeddings tied to
 *   `token_embd.weight`) and `qwen2` (q/k/v biases, NEOX RoPE). Any other
 *   architecture fails with ERR_UNSUPPORTED naming it; so do features that
 *   would silently change results (YaRN and other RoPE scalings, experts).
 *   RoPE as ggml computes it: linear scaling (`rope.scaling.type` "linear",
 *   angles times 1/`rope.scaling.factor`) and per-frequency factors
 *   (`rope_freqs.weight`, Llama 3.1 and later: angle i divided by factor i).
 *   Every hyper-parameter is range-checked, and every tensor the forward pass
 *   reads is checked for presence, dimension count, shape and type before
 *   anything is used: a missing or misshapen tensor is ERR_CORRUPT naming it,
 *   a weight type the kernels lack is ERR_UNSUPPORTED naming it.
 *   Weight types: F32, F16, BF16, Q8_0, Q4_0, Q4_K, Q6_K for matrices; norms
 *   and biases must be F32.
 *
 * Memory
 *   The gguf_file is borrowed and must outlive the model: norms, biases and
 *   token-embedding rows are read from its mapping in place. The matrices are
 *   repacked once into one anonymous arena (kernels.h explains the layout),
 *   huge-page backed where the kernel allows: the arena is the size of the
 *   file's matrices (Q4_K +2.8%, F16/BF16/Q8_0/Q6_K/F32 +0%, rounding of
 *   columns to 16 aside), and the file's pages are only read during
 *   loading, so they remain reclaimable page cache. A tied output matrix is
 *   packed once more from token_embd (it is read as rows and as a matrix).
 *
 * Threads
 *   Loading may use a thread pool to pack in parallel (NULL: this thread).
 *   A loaded model is immutable; any number of forward contexts may share it.
 */
#ifndef MAASD_MODEL_H
#define MAASD_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/err.h"
#include "engine/gguf.h"
#include "engine/kernels.h"
#include "engine/threadpool.h"

enum model_arch {
    MODEL_ARCH_LLAMA,
    MODEL_ARCH_QWEN2,
};

struct model_hparams {
    enum model_arch arch;
    uint32_t n_vocab;
    uint32_t n_embd;
    uint32_t n_layer;
    uint32_t n_head;
    uint32_t n_head_kv;
    uint32_t head_dim;
    uint32_t n_ff;
    uint32_t n_ctx_train;
    uint32_t n_rot;          /* rotated dimensions per head, <= head_dim, even */
    float rope_freq_base;
    float rope_freq_scale;   /* linear RoPE scaling: 1 / rope.scaling.factor; 1 = none */
    float rms_eps;
    bool rope_neox;          /* pairs (i, i + n_rot/2) instead of (2i, 2i+1) */
    bool tied_embeddings;
    bool qkv_bias;
};

struct model_layer {
    const float *attn_norm;  /* [n_embd] */
    const float *ffn_norm;   /* [n_embd] */
    const float *bq, *bk, *bv; /* NULL without biases */
    struct kernels_matrix wq, wk, wv, wo, w_gate, w_up, w_down;
};

/* Read-only after model_load(). */
struct model {
    const struct gguf_file *file;
    struct model_hparams hp;
    const struct gguf_tensor *tok_embd; /* GGUF layout: rows read on lookup */
    const float *output_norm;
    const float *rope_freqs; /* [n_rot / 2] divisors of the RoPE angles; NULL = none */
    struct kernels_matrix output;
    struct model_layer *layers;
    void *arena;
    size_t arena_bytes;
    size_t file_weight_bytes; /* bytes of the GGUF tensors the model uses */
};

bool model_load(const struct gguf_file *f, struct threadpool *tp, struct model **out,
                struct err *e);
void model_free(struct model *m);

/* The embedding of token `tok` (0 <= tok < n_vocab), n_embd floats. */
void model_token_embedding(const struct model *m, int32_t tok, float *out);

const char *model_arch_name(enum model_arch a);

#endif

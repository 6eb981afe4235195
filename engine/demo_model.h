/*
 * demo_model.h — the built-in demo model, and the random-weight GGUF builder
 * it is made with (also used by the engine benchmark and tests).
 *
 * The demo model ("maasd-demo", served as `--model maasd-demo=builtin:demo`)
 * lets the daemon run without any model file: a small LLaMA-architecture
 * model (dim 256, 4 layers, 8 heads, 4 KV heads, FFN 768, context 2048,
 * Q8_0 weights, tied embeddings) whose weights are random numbers from a
 * fixed seed. Its output is NOT meaningful text. Its vocabulary is a real
 * byte-level BPE one (tokenizer.ggml.model = gpt2, pre = default): the 256
 * GPT-2 byte tokens, a few dozen common English merges, and the CONTROL
 * tokens <|endoftext|> (BOS and EOS), <|im_start|> and <|im_end|>, with a
 * ChatML chat template. It is built as a GGUF byte buffer and opened with
 * gguf_open_memory(), so it goes through exactly the loader real files do.
 * Building it is deterministic: the same bytes on every machine.
 *
 * Ownership
 *   demo_model_gguf() and demo_model_build() return a malloc'ed buffer the
 *   caller frees (after gguf_close() of anything opened on it).
 */
#ifndef MAASD_DEMO_MODEL_H
#define MAASD_DEMO_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/err.h"
#include "engine/gguf.h"

#define DEMO_MODEL_NAME "maasd-demo"

bool demo_model_gguf(void **buf, size_t *len, struct err *e);

/* A random-weight model of any LLaMA-family shape. */
struct demo_model_spec {
    const char *arch;        /* "llama" or "qwen2" */
    const char *name;        /* general.name */
    uint32_t n_embd, n_layer, n_head, n_head_kv, n_ff, n_ctx;
    uint32_t n_vocab;        /* with_vocab: 0 = the demo's own size, more pads it */
    enum ggml_type type;     /* matrices: F32, F16, BF16, Q8_0 or Q4_0 */
    bool tied;               /* no output.weight */
    bool qkv_bias;
    float rope_freq_base;    /* 0 = 10000 */
    uint32_t n_rot;          /* rope.dimension_count; 0 = the head size */
    float rope_linear;       /* rope.scaling.type linear with this factor; 0 = none */
    bool rope_freqs;         /* a rope_freqs.weight tensor (Llama 3.1), factors in [1, 8) */
    uint64_t seed;
    bool with_vocab;         /* the demo's BPE vocabulary and chat template, padded to
                              * n_vocab with plain tokens that encoding never makes
                              * (so a benchmark model has a real model's vocabulary
                              * size and can still be served) */
};

/* The whole file in memory. */
bool demo_model_build(const struct demo_model_spec *s, void **buf, size_t *len, struct err *e);
/* Written to `path` one tensor at a time, for models too big to hold twice
 * (the 1.1B-parameter benchmark models). Same bytes as demo_model_build(). */
bool demo_model_write(const struct demo_model_spec *s, const char *path, struct err *e);

#endif

/* test_model.c — the model loader: what it accepts (every weight type, both
 * architectures, the demo model) and what it refuses, with the right code
 * and the offending key or tensor named. Files are written by the test. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/demo_model.h"
#include "engine/gguf.h"
#include "engine/model.h"
#include "tests/unit/gguf_writer.h"
#include "tests/unit/testutil.h"

/* A small llama/qwen2 file written tensor by tensor, with knobs to break it. */
struct tiny {
    const char *arch;
    enum ggml_type wtype;     /* matrices */
    enum ggml_type norm_type; /* attn_norm of layer 0 */
    const char *omit;         /* tensor to leave out */
    const char *misshape;     /* tensor to give a wrong ne[1] */
    const char *omit_key;     /* metadata key (suffix after "arch.") to leave out */
    uint32_t head_count_kv;
    int64_t vocab_size_key;   /* -1: no key */
    const char *rope_scaling;
    float rope_factor;        /* rope.scaling.factor when > 0 */
    const float *rope_freqs;  /* a rope_freqs.weight of D / H / 2 values */
    uint64_t rope_freqs_n;    /* its length when not D / H / 2 */
    bool bias;
};

enum { D = 64, L = 2, H = 4, FF = 96, V = 40 };

static void tensor(struct test_gguf *w, const struct tiny *t, const char *name, uint64_t ne0,
                   uint64_t ne1, uint32_t type)
{
    if (t->omit && strcmp(t->omit, name) == 0)
        return;
    if (t->misshape && strcmp(t->misshape, name) == 0)
        ne1 += 16;
    uint64_t ne[2] = {ne0, ne1};
    /* Data is a byte pattern: loading never looks at values. */
    test_gguf_tensor(w, name, ne1 > 1 ? 2 : 1, ne, type, NULL);
}

static uint8_t *tiny_file(const struct tiny *t, size_t *len)
{
    struct test_gguf *w = test_gguf_new(3);
    const char *arch = t->arch ? t->arch : "llama";
    char k[96];
#define KEY(s) (snprintf(k, sizeof k, "%s.%s", arch, s), k)
#define PUT_U32(s, v)                                                    \
    do {                                                                 \
        if (!t->omit_key || strcmp(t->omit_key, s) != 0)                 \
            test_gguf_u32(w, KEY(s), v);                                 \
    } while (0)
    test_gguf_str(w, "general.architecture", arch);
    PUT_U32("embedding_length", D);
    PUT_U32("block_count", L);
    PUT_U32("attention.head_count", H);
    PUT_U32("attention.head_count_kv", t->head_count_kv ? t->head_count_kv : 2);
    PUT_U32("feed_forward_length", FF);
    PUT_U32("context_length", 128);
    if (!t->omit_key || strcmp(t->omit_key, "attention.layer_norm_rms_epsilon") != 0)
        test_gguf_f32(w, KEY("attention.layer_norm_rms_epsilon"), 1e-5f);
    if (t->vocab_size_key >= 0)
        test_gguf_u32(w, KEY("vocab_size"), (uint32_t)t->vocab_size_key);
    if (t->rope_scaling)
        test_gguf_str(w, KEY("rope.scaling.type"), t->rope_scaling);
    if (t->rope_factor > 0)
        test_gguf_f32(w, KEY("rope.scaling.factor"), t->rope_factor);
    if (t->rope_freqs) {
        uint64_t ne[1] = {t->rope_freqs_n ? t->rope_freqs_n : D / H / 2};
        test_gguf_tensor(w, "rope_freqs.weight", 1, ne, GGML_TYPE_F32, t->rope_freqs);
    }
    enum ggml_type wt = t->wtype ? t->wtype : GGML_TYPE_F32;
    uint64_t dkv = (uint64_t)(D / H) * (t->head_count_kv ? t->head_count_kv : 2);
    tensor(w, t, "token_embd.weight", D, V, wt);
    tensor(w, t, "output_norm.weight", D, 1, GGML_TYPE_F32);
    tensor(w, t, "output.weight", D, V, wt);
    for (int l = 0; l < L; l++) {
        char n[64];
#define T(s, a, b, ty) (snprintf(n, sizeof n, "blk.%d.%s", l, s), tensor(w, t, n, a, b, ty))
        T("attn_norm.weight", D, 1, l == 0 && t->norm_type ? t->norm_type : GGML_TYPE_F32);
        T("attn_q.weight", D, D, wt);
        T("attn_k.weight", D, dkv, wt);
        T("attn_v.weight", D, dkv, wt);
        if (t->bias) {
            T("attn_q.bias", D, 1, GGML_TYPE_F32);
            T("attn_k.bias", dkv, 1, GGML_TYPE_F32);
            T("attn_v.bias", dkv, 1, GGML_TYPE_F32);
        }
        T("attn_output.weight", D, D, wt);
        T("ffn_norm.weight", D, 1, GGML_TYPE_F32);
        T("ffn_gate.weight", D, FF, wt);
        T("ffn_up.weight", D, FF, wt);
        T("ffn_down.weight", FF, D, wt);
#undef T
    }
#undef KEY
#undef PUT_U32
    return test_gguf_finish(w, len);
}

/* Load; on failure return the error. */
static bool try_load(const struct tiny *t, struct err *e, struct model_hparams *hp)
{
    size_t len;
    uint8_t *buf = tiny_file(t, &len);
    struct gguf_file *f;
    bool ok = gguf_open_memory(buf, len, &f, e);
    if (!ok)
        fail_msg("the test wrote an unreadable GGUF: %s", e->msg);
    struct model *m = NULL;
    ok = model_load(f, NULL, &m, e);
    if (ok && hp)
        *hp = m->hp;
    model_free(m);
    gguf_close(f);
    free(buf);
    return ok;
}

static void expect_refusal(const struct tiny *t, enum err_code code, const char *param,
                           const char *in_msg)
{
    struct err e;
    if (try_load(t, &e, NULL))
        fail_msg("loaded a model that should be refused (%s)", param);
    if (e.code != code || strcmp(e.param, param) != 0)
        fail_msg("expected %s naming '%s', got %s naming '%s': %s", err_code_name(code), param,
                 err_code_name(e.code), e.param, e.msg);
    if (in_msg && !strstr(e.msg, in_msg))
        fail_msg("message '%s' lacks '%s'", e.msg, in_msg);
}

static void test_accepts_every_weight_type(void **state)
{
    (void)state;
    const enum ggml_type types[] = {GGML_TYPE_F32, GGML_TYPE_F16, GGML_TYPE_BF16, GGML_TYPE_Q8_0,
                                    GGML_TYPE_Q4_0};
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        struct tiny t = {.wtype = types[i], .vocab_size_key = -1};
        struct err e;
        struct model_hparams hp;
        if (!try_load(&t, &e, &hp))
            fail_msg("type %s: %s", ggml_type_name(types[i]), e.msg);
        assert_int_equal(hp.n_vocab, V);
        assert_int_equal(hp.head_dim, D / H);
        assert_int_equal(hp.n_rot, D / H);
        assert_false(hp.tied_embeddings);
        assert_true(hp.rope_freq_base == 10000.0f);
    }
}

static void test_accepts_qwen2(void **state)
{
    (void)state;
    struct tiny t = {.arch = "qwen2", .bias = true, .vocab_size_key = -1};
    struct err e;
    struct model_hparams hp;
    if (!try_load(&t, &e, &hp))
        fail_msg("%s", e.msg);
    assert_int_equal(hp.arch, MODEL_ARCH_QWEN2);
    assert_true(hp.rope_neox);
    assert_true(hp.qkv_bias);
}

static void test_refuses_unsupported_architecture(void **state)
{
    (void)state;
    struct tiny t = {.arch = "gptneox", .vocab_size_key = -1};
    expect_refusal(&t, ERR_UNSUPPORTED, "general.architecture", "gptneox");
    struct tiny s = {.rope_scaling = "yarn", .vocab_size_key = -1};
    expect_refusal(&s, ERR_UNSUPPORTED, "llama.rope.scaling.type", "yarn");
}

/* Linear RoPE scaling and Llama 3.1's frequency factors load; what they
 * need must be there and make sense. */
static void test_rope_scaling(void **state)
{
    (void)state;
    struct err e;
    struct model_hparams hp;
    struct tiny lin = {.rope_scaling = "linear", .rope_factor = 8, .vocab_size_key = -1};
    if (!try_load(&lin, &e, &hp))
        fail_msg("%s", e.msg);
    assert_true(hp.rope_freq_scale == 0.125f);
    struct tiny none = {.rope_scaling = "none", .vocab_size_key = -1};
    assert_true(try_load(&none, &e, &hp) && hp.rope_freq_scale == 1.0f);
    struct tiny no_factor = {.rope_scaling = "linear", .vocab_size_key = -1};
    expect_refusal(&no_factor, ERR_CORRUPT, "llama.rope.scaling.factor", NULL);

    const float good[D / H / 2] = {1, 1, 1, 2, 4, 8, 8, 8};
    struct tiny freqs = {.rope_freqs = good, .vocab_size_key = -1};
    if (!try_load(&freqs, &e, &hp))
        fail_msg("%s", e.msg);
    const float bad[D / H / 2] = {1, 1, 0, 2, 4, 8, 8, 8};
    struct tiny zero = {.rope_freqs = bad, .vocab_size_key = -1};
    expect_refusal(&zero, ERR_CORRUPT, "rope_freqs.weight", "factor 2");
    struct tiny shape = {.rope_freqs = good, .rope_freqs_n = 4, .vocab_size_key = -1};
    expect_refusal(&shape, ERR_CORRUPT, "rope_freqs.weight", "shape");
}

static void test_refuses_missing_or_misshapen_tensors(void **state)
{
    (void)state;
    struct tiny t = {.omit = "blk.1.ffn_up.weight", .vocab_size_key = -1};
    expect_refusal(&t, ERR_CORRUPT, "blk.1.ffn_up.weight", "missing");
    struct tiny u = {.misshape = "blk.0.attn_k.weight", .vocab_size_key = -1};
    expect_refusal(&u, ERR_CORRUPT, "blk.0.attn_k.weight", "shape");
    struct tiny v = {.omit = "output_norm.weight", .vocab_size_key = -1};
    expect_refusal(&v, ERR_CORRUPT, "output_norm.weight", "missing");
    struct tiny w = {.omit = "token_embd.weight", .vocab_size_key = -1};
    expect_refusal(&w, ERR_CORRUPT, "token_embd.weight", "missing");
    struct tiny q = {.arch = "qwen2", .bias = false, .vocab_size_key = -1};
    expect_refusal(&q, ERR_CORRUPT, "blk.0.attn_q.bias", "missing");
}

static void test_refuses_wrong_types(void **state)
{
    (void)state;
    struct tiny t = {.norm_type = GGML_TYPE_F16, .vocab_size_key = -1};
    expect_refusal(&t, ERR_UNSUPPORTED, "blk.0.attn_norm.weight", "f32");
    struct tiny u = {.wtype = GGML_TYPE_Q5_0, .vocab_size_key = -1};
    expect_refusal(&u, ERR_UNSUPPORTED, "token_embd.weight", NULL);
}

static void test_refuses_bad_hparams(void **state)
{
    (void)state;
    struct tiny t = {.omit_key = "embedding_length", .vocab_size_key = -1};
    expect_refusal(&t, ERR_CORRUPT, "llama.embedding_length", NULL);
    struct tiny u = {.omit_key = "attention.layer_norm_rms_epsilon", .vocab_size_key = -1};
    expect_refusal(&u, ERR_CORRUPT, "llama.attention.layer_norm_rms_epsilon", NULL);
    struct tiny v = {.head_count_kv = 3, .vocab_size_key = -1};
    expect_refusal(&v, ERR_CORRUPT, "llama.attention.head_count_kv", NULL);
    struct tiny w = {.vocab_size_key = V + 1};
    expect_refusal(&w, ERR_CORRUPT, "llama.vocab_size", NULL);
    struct tiny x = {.vocab_size_key = V};
    struct err e;
    if (!try_load(&x, &e, NULL))
        fail_msg("%s", e.msg);
}

static void test_demo_model(void **state)
{
    (void)state;
    void *a, *b;
    size_t la, lb;
    struct err e;
    assert_true(demo_model_gguf(&a, &la, &e));
    assert_true(demo_model_gguf(&b, &lb, &e));
    assert_int_equal(la, lb);
    assert_memory_equal(a, b, la); /* deterministic */
    struct gguf_file *f;
    assert_true(gguf_open_memory(a, la, &f, &e));
    struct model *m;
    if (!model_load(f, NULL, &m, &e))
        fail_msg("%s", e.msg);
    assert_int_equal(m->hp.arch, MODEL_ARCH_LLAMA);
    assert_int_equal(m->hp.n_embd, 256);
    assert_int_equal(m->hp.n_layer, 4);
    assert_int_equal(m->hp.n_head_kv, 4);
    assert_true(m->hp.tied_embeddings);
    assert_int_equal(m->output.type, GGML_TYPE_Q8_0);

    struct gguf_str s;
    assert_true(gguf_get_str(f, "general.name", &s, &e));
    assert_true(gguf_str_eq(s, DEMO_MODEL_NAME));
    assert_true(gguf_get_str(f, "tokenizer.ggml.model", &s, &e));
    assert_true(gguf_str_eq(s, "gpt2"));
    assert_true(gguf_get_str(f, "tokenizer.ggml.pre", &s, &e));
    assert_true(gguf_str_eq(s, "default"));
    assert_true(gguf_get_str(f, "tokenizer.chat_template", &s, &e));
    const struct gguf_kv *tokens, *types, *merges;
    assert_true(gguf_get_arr(f, "tokenizer.ggml.tokens", GGUF_TYPE_STRING, &tokens, &e));
    assert_true(gguf_get_arr(f, "tokenizer.ggml.token_type", GGUF_TYPE_INT32, &types, &e));
    assert_true(gguf_get_arr(f, "tokenizer.ggml.merges", GGUF_TYPE_STRING, &merges, &e));
    assert_int_equal(tokens->arr_len, m->hp.n_vocab);
    /* byte tokens: '!' is id 0, the space byte is 'Ġ' (U+0120) */
    assert_true(gguf_str_eq(gguf_kv_arr_str(tokens, 0), "!"));
    bool has_space = false;
    for (uint64_t i = 0; i < 256; i++)
        has_space |= gguf_str_eq(gguf_kv_arr_str(tokens, i), "\xc4\xa0");
    assert_true(has_space);
    const char *specials[] = {"<|endoftext|>", "<|im_start|>", "<|im_end|>"};
    for (int i = 0; i < 3; i++) {
        uint64_t id = tokens->arr_len - 3 + (uint64_t)i;
        assert_true(gguf_str_eq(gguf_kv_arr_str(tokens, id), specials[i]));
        assert_int_equal(gguf_kv_arr_i32(types, id), 3);
    }
    uint32_t bos, eos;
    assert_true(gguf_get_u32(f, "tokenizer.ggml.bos_token_id", &bos, &e));
    assert_true(gguf_get_u32(f, "tokenizer.ggml.eos_token_id", &eos, &e));
    assert_int_equal(bos, tokens->arr_len - 3);
    assert_int_equal(eos, bos);
    /* every merge joins two tokens into a third */
    for (uint64_t i = 0; i < merges->arr_len; i++) {
        struct gguf_str mg = gguf_kv_arr_str(merges, i);
        const char *sp = memchr(mg.ptr, ' ', mg.len);
        assert_non_null(sp);
        bool joined = false;
        for (uint64_t t = 0; t < tokens->arr_len && !joined; t++) {
            struct gguf_str tk = gguf_kv_arr_str(tokens, t);
            joined = tk.len == mg.len - 1 && memcmp(tk.ptr, mg.ptr, (size_t)(sp - mg.ptr)) == 0 &&
                     memcmp(tk.ptr + (sp - mg.ptr), sp + 1, mg.len - (size_t)(sp - mg.ptr) - 1) == 0;
        }
        assert_true(joined);
    }
    model_free(m);
    gguf_close(f);
    free(a);
    free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accepts_every_weight_type),
        cmocka_unit_test(test_accepts_qwen2),
        cmocka_unit_test(test_refuses_unsupported_architecture),
        cmocka_unit_test(test_rope_scaling),
        cmocka_unit_test(test_refuses_missing_or_misshapen_tensors),
        cmocka_unit_test(test_refuses_wrong_types),
        cmocka_unit_test(test_refuses_bad_hparams),
        cmocka_unit_test(test_demo_model),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

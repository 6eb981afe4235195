/* demo_model.c — see demo_model.h. A GGUF v3 writer for random-weight
 * LLaMA-family models, and the demo model made with it. */
#include "engine/demo_model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/kernels.h"

#define ALIGN 32

/* ---- vocabulary ------------------------------------------------------------- */

/* Merges in rank order; each part is a token by the time its merge comes. */
static const char *const demo_merges[] = {
    "Ġ t", "Ġ a", "h e", "i n", "r e", "o n", "Ġt he", "e r", "Ġ s", "a t", "Ġ w", "Ġ o",
    "e n", "Ġ c", "i t", "i s", "a n", "o r", "e s", "Ġ b", "e d", "Ġ f", "in g", "Ġ p",
    "o u", "Ġa n", "a l", "a r", "Ġt o", "Ġ m", "Ġo f", "Ġ in", "Ġ d", "Ġ h", "Ġan d", "i c",
    "a s", "l e", "Ġt h", "i on", "o m", "l l", "en t", "Ġ n", "Ġ l", "s t", "Ġ re", "v e",
    "Ġ e", "r o", "l y", "Ġb e", "Ġ g", "Ġ T", "c t", "Ġ S", "i d", "o t", "Ġ I", "u t",
    "e t", "Ġ A", "Ġ is", "Ġo n", "Ġth at", "Ġf or", "Ġ y", "Ġy ou", "at ion",
    "it h", "Ġw ith",
};
#define N_MERGES (sizeof demo_merges / sizeof demo_merges[0])
static const char *const demo_specials[] = {"<|endoftext|>", "<|im_start|>", "<|im_end|>"};
#define N_SPECIALS 3

static const char demo_chat_template[] =
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + "
    "message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|im_start|>assistant\\n' }}{% endif %}";

struct vocab {
    char **tokens;
    int32_t *types;
    uint32_t n;
};

static void vocab_free(struct vocab *v)
{
    for (uint32_t i = 0; v->tokens && i < v->n; i++)
        free(v->tokens[i]);
    free(v->tokens);
    free(v->types);
}

static bool vocab_has(const struct vocab *v, const char *s, size_t len)
{
    for (uint32_t i = 0; i < v->n; i++)
        if (strlen(v->tokens[i]) == len && memcmp(v->tokens[i], s, len) == 0)
            return true;
    return false;
}

/* GPT-2's byte-to-unicode map: printable bytes stand for themselves, the
 * others for code points 256 + k in byte order; token ids follow that list. */
static bool vocab_build(struct vocab *v, uint32_t pad_to, struct err *e)
{
    uint32_t total = 256 + N_MERGES + N_SPECIALS;
    if (pad_to > total)
        total = pad_to;
    v->tokens = calloc(total, sizeof *v->tokens);
    v->types = calloc(total, sizeof *v->types);
    v->n = 0;
    if (!v->tokens || !v->types)
        return err_set(e, ERR_NOMEM, "out of memory for the demo vocabulary");
    int order[256], n = 0;
    bool printable[256] = {false};
    for (int b = 0; b < 256; b++)
        printable[b] = (b >= '!' && b <= '~') || (b >= 0xa1 && b <= 0xac) || (b >= 0xae);
    for (int b = 0; b < 256; b++)
        if (printable[b])
            order[n++] = b;
    for (int b = 0; b < 256; b++)
        if (!printable[b])
            order[n++] = b;
    int extra = 0;
    for (int i = 0; i < 256; i++) {
        int b = order[i];
        unsigned cp = printable[b] ? (unsigned)b : 256u + (unsigned)extra++;
        char *s = malloc(3);
        if (!s)
            return err_set(e, ERR_NOMEM, "out of memory for the demo vocabulary");
        if (cp < 0x80) {
            s[0] = (char)cp;
            s[1] = 0;
        } else {
            s[0] = (char)(0xc0 | (cp >> 6));
            s[1] = (char)(0x80 | (cp & 0x3f));
            s[2] = 0;
        }
        v->tokens[v->n] = s;
        v->types[v->n++] = 1; /* NORMAL */
    }
    for (size_t i = 0; i < N_MERGES; i++) {
        const char *m = demo_merges[i], *sp = strchr(m, ' ');
        if (!sp || !vocab_has(v, m, (size_t)(sp - m)) || !vocab_has(v, sp + 1, strlen(sp + 1)))
            return err_set(e, ERR_INTERNAL, "demo merge '%s' joins a non-token", m);
        size_t la = (size_t)(sp - m), lb = strlen(sp + 1);
        char *s = malloc(la + lb + 1);
        if (!s)
            return err_set(e, ERR_NOMEM, "out of memory for the demo vocabulary");
        memcpy(s, m, la);
        memcpy(s + la, sp + 1, lb + 1);
        if (vocab_has(v, s, la + lb)) {
            free(s);
            return err_set(e, ERR_INTERNAL, "demo merge '%s' repeats a token", m);
        }
        v->tokens[v->n] = s;
        v->types[v->n++] = 1;
    }
    for (int i = 0; i < N_SPECIALS; i++) {
        v->tokens[v->n] = strdup(demo_specials[i]);
        if (!v->tokens[v->n])
            return err_set(e, ERR_NOMEM, "out of memory for the demo vocabulary");
        v->types[v->n++] = 3; /* CONTROL */
    }
    /* Padding: "Ġpad123" decodes to " pad123"; no merge produces it. */
    for (uint32_t k = 0; v->n < total; k++) {
        char s[32];
        snprintf(s, sizeof s, "\xc4\xa0pad%u", k);
        v->tokens[v->n] = strdup(s);
        if (!v->tokens[v->n])
            return err_set(e, ERR_NOMEM, "out of memory for the demo vocabulary");
        v->types[v->n++] = 1;
    }
    return true;
}

/* ---- a growable byte buffer ----------------------------------------------------- */

struct gbuf {
    uint8_t *p;
    size_t len, cap;
    bool oom;
};

static void put(struct gbuf *b, const void *data, size_t n)
{
    if (b->oom)
        return;
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n)
            cap *= 2;
        uint8_t *p = realloc(b->p, cap);
        if (!p) {
            b->oom = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, data, n);
    b->len += n;
}

static void put_u32(struct gbuf *b, uint32_t v) { put(b, &v, 4); }
static void put_u64(struct gbuf *b, uint64_t v) { put(b, &v, 8); }

static void put_str(struct gbuf *b, const char *s)
{
    put_u64(b, strlen(s));
    put(b, s, strlen(s));
}

static void kv_u32(struct gbuf *b, const char *key, uint32_t v)
{
    put_str(b, key);
    put_u32(b, GGUF_TYPE_UINT32);
    put_u32(b, v);
}

static void kv_f32(struct gbuf *b, const char *key, float v)
{
    put_str(b, key);
    put_u32(b, GGUF_TYPE_FLOAT32);
    put(b, &v, 4);
}

static void kv_bool(struct gbuf *b, const char *key, bool v)
{
    uint8_t x = v;
    put_str(b, key);
    put_u32(b, GGUF_TYPE_BOOL);
    put(b, &x, 1);
}

static void kv_str(struct gbuf *b, const char *key, const char *v)
{
    put_str(b, key);
    put_u32(b, GGUF_TYPE_STRING);
    put_str(b, v);
}

static void kv_strs(struct gbuf *b, const char *key, const char *const *v, uint64_t n)
{
    put_str(b, key);
    put_u32(b, GGUF_TYPE_ARRAY);
    put_u32(b, GGUF_TYPE_STRING);
    put_u64(b, n);
    for (uint64_t i = 0; i < n; i++)
        put_str(b, v[i]);
}

static void kv_i32s(struct gbuf *b, const char *key, const int32_t *v, uint64_t n)
{
    put_str(b, key);
    put_u32(b, GGUF_TYPE_ARRAY);
    put_u32(b, GGUF_TYPE_INT32);
    put_u64(b, n);
    put(b, v, n * 4);
}

/* ---- tensors ----------------------------------------------------------------- */

enum fill { FILL_MATRIX, FILL_EMBED, FILL_NORM, FILL_BIAS, FILL_ROPE_FREQS };

struct tensor {
    char name[64];
    uint64_t ne0, ne1;   /* ne1 = 1 for vectors */
    enum ggml_type type;
    enum fill fill;
    uint64_t bytes, offset;
};

struct plan {
    struct tensor *t;
    size_t n;
    struct gbuf head;     /* header, metadata, tensor infos, padding */
    uint64_t data_bytes;
};

static uint64_t round_up(uint64_t n, uint64_t a)
{
    return (n + a - 1) / a * a;
}

static bool add_tensor(struct plan *p, const char *name, uint64_t ne0, uint64_t ne1,
                       enum ggml_type type, enum fill fill)
{
    struct tensor *t = realloc(p->t, (p->n + 1) * sizeof *t);
    if (!t)
        return false;
    p->t = t;
    t = &p->t[p->n++];
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", name);
    t->ne0 = ne0;
    t->ne1 = ne1;
    t->type = type;
    t->fill = fill;
    t->bytes = ne0 * ne1 / ggml_type_block_elems(type) * ggml_type_block_bytes(type);
    return true;
}

static bool check_spec(const struct demo_model_spec *s, struct err *e)
{
    if (!s->arch || (strcmp(s->arch, "llama") != 0 && strcmp(s->arch, "qwen2") != 0))
        return err_set(e, ERR_INVALID, "demo models are llama or qwen2");
    if (!s->n_embd || !s->n_layer || !s->n_head || !s->n_head_kv || !s->n_ff || !s->n_ctx ||
        (!s->with_vocab && !s->n_vocab) || s->n_embd % s->n_head || s->n_head % s->n_head_kv ||
        (s->n_embd / s->n_head) % 2)
        return err_set(e, ERR_INVALID, "inconsistent demo model shape");
    switch (s->type) {
    case GGML_TYPE_F32:
    case GGML_TYPE_F16:
    case GGML_TYPE_BF16:
        return true;
    case GGML_TYPE_Q8_0:
    case GGML_TYPE_Q4_0:
        if (s->n_embd % 32 || s->n_ff % 32)
            return err_set(e, ERR_INVALID, "quantised demo models need dimensions divisible by 32");
        return true;
    default:
        return err_set(e, ERR_UNSUPPORTED, "demo models are F32, F16, BF16, Q8_0 or Q4_0");
    }
}

static bool plan_fill(const struct demo_model_spec *s, struct plan *p, struct err *e)
{
    struct vocab v = {0};
    if (s->with_vocab && !vocab_build(&v, s->n_vocab, e)) {
        vocab_free(&v);
        return false;
    }
    const uint32_t n_vocab = s->with_vocab ? v.n : s->n_vocab;
    const uint64_t d = s->n_embd, hd = s->n_embd / s->n_head, dkv = hd * s->n_head_kv;
    bool ok = add_tensor(p, "token_embd.weight", d, n_vocab, s->type, FILL_EMBED);
    if (!s->tied)
        ok = ok && add_tensor(p, "output.weight", d, n_vocab, s->type, FILL_MATRIX);
    ok = ok && add_tensor(p, "output_norm.weight", d, 1, GGML_TYPE_F32, FILL_NORM);
    if (s->rope_freqs)
        ok = ok && add_tensor(p, "rope_freqs.weight", (s->n_rot ? s->n_rot : hd) / 2, 1,
                              GGML_TYPE_F32, FILL_ROPE_FREQS);
    char name[64];
#define T(suffix, a, b, type, fill) \
    (snprintf(name, sizeof name, "blk.%u.%s", l, suffix), add_tensor(p, name, a, b, type, fill))
    for (uint32_t l = 0; ok && l < s->n_layer; l++) {
        ok = T("attn_norm.weight", d, 1, GGML_TYPE_F32, FILL_NORM) &&
             T("attn_q.weight", d, d, s->type, FILL_MATRIX) &&
             T("attn_k.weight", d, dkv, s->type, FILL_MATRIX) &&
             T("attn_v.weight", d, dkv, s->type, FILL_MATRIX);
        if (ok && s->qkv_bias)
            ok = T("attn_q.bias", d, 1, GGML_TYPE_F32, FILL_BIAS) &&
                 T("attn_k.bias", dkv, 1, GGML_TYPE_F32, FILL_BIAS) &&
                 T("attn_v.bias", dkv, 1, GGML_TYPE_F32, FILL_BIAS);
        ok = ok && T("attn_output.weight", d, d, s->type, FILL_MATRIX) &&
             T("ffn_norm.weight", d, 1, GGML_TYPE_F32, FILL_NORM) &&
             T("ffn_gate.weight", d, s->n_ff, s->type, FILL_MATRIX) &&
             T("ffn_up.weight", d, s->n_ff, s->type, FILL_MATRIX) &&
             T("ffn_down.weight", s->n_ff, d, s->type, FILL_MATRIX);
    }
#undef T
    if (!ok) {
        vocab_free(&v);
        return err_set(e, ERR_NOMEM, "out of memory while planning a demo model");
    }

    struct gbuf *b = &p->head;
    /* llama files carry rope.dimension_count; qwen2 ones only when partial */
    bool write_rot = s->arch[0] != 'q' || (s->n_rot && s->n_rot != hd);
    uint32_t n_kv = 12 + (s->with_vocab ? 10 : 0) + (write_rot ? 1 : 0) + (s->rope_linear > 0 ? 2 : 0);
    put(b, "GGUF", 4);
    put_u32(b, 3);
    put_u64(b, p->n);
    put_u64(b, n_kv);
    char key[96];
#define AK(suffix) (snprintf(key, sizeof key, "%s.%s", s->arch, suffix), key)
    kv_str(b, "general.architecture", s->arch);
    kv_str(b, "general.name", s->name ? s->name : "random");
    kv_str(b, "general.description",
           "random weights from a fixed seed: the output is not meaningful text");
    kv_u32(b, AK("context_length"), s->n_ctx);
    kv_u32(b, AK("embedding_length"), s->n_embd);
    kv_u32(b, AK("block_count"), s->n_layer);
    kv_u32(b, AK("feed_forward_length"), s->n_ff);
    kv_u32(b, AK("attention.head_count"), s->n_head);
    kv_u32(b, AK("attention.head_count_kv"), s->n_head_kv);
    kv_f32(b, AK("attention.layer_norm_rms_epsilon"), 1e-5f);
    kv_f32(b, AK("rope.freq_base"), s->rope_freq_base > 0 ? s->rope_freq_base : 10000.0f);
    kv_u32(b, "general.quantization_version", 2);
    if (write_rot)
        kv_u32(b, AK("rope.dimension_count"), s->n_rot ? s->n_rot : (uint32_t)hd);
    if (s->rope_linear > 0) {
        kv_str(b, AK("rope.scaling.type"), "linear");
        kv_f32(b, AK("rope.scaling.factor"), s->rope_linear);
    }
#undef AK
    if (s->with_vocab) {
        kv_str(b, "tokenizer.ggml.model", "gpt2");
        kv_str(b, "tokenizer.ggml.pre", "default");
        kv_strs(b, "tokenizer.ggml.tokens", (const char *const *)v.tokens, v.n);
        kv_i32s(b, "tokenizer.ggml.token_type", v.types, v.n);
        kv_strs(b, "tokenizer.ggml.merges", demo_merges, N_MERGES);
        kv_u32(b, "tokenizer.ggml.bos_token_id", 256 + N_MERGES);
        kv_u32(b, "tokenizer.ggml.eos_token_id", 256 + N_MERGES);
        kv_bool(b, "tokenizer.ggml.add_bos_token", false);
        kv_str(b, "tokenizer.chat_template", demo_chat_template);
        kv_u32(b, "tokenizer.ggml.padding_token_id", 256 + N_MERGES);
    }
    vocab_free(&v);

    uint64_t off = 0;
    for (size_t i = 0; i < p->n; i++) {
        struct tensor *t = &p->t[i];
        off = round_up(off, ALIGN);
        t->offset = off;
        off += t->bytes;
        put_str(b, t->name);
        put_u32(b, t->ne1 > 1 ? 2 : 1);
        put_u64(b, t->ne0);
        if (t->ne1 > 1)
            put_u64(b, t->ne1);
        put_u32(b, t->type);
        put_u64(b, t->offset);
    }
    p->data_bytes = off;
    static const uint8_t zeros[ALIGN] = {0};
    put(b, zeros, round_up(b->len, ALIGN) - b->len);
    if (b->oom)
        return err_set(e, ERR_NOMEM, "out of memory while planning a demo model");
    return true;
}

static void plan_free(struct plan *p)
{
    free(p->t);
    free(p->head.p);
}

/* Validate the spec and lay the file out; nothing to free on failure. */
static bool plan_build(const struct demo_model_spec *s, struct plan *p, struct err *e)
{
    memset(p, 0, sizeof *p);
    if (check_spec(s, e) && plan_fill(s, p, e))
        return true;
    plan_free(p);
    return false;
}

/* ---- weights ------------------------------------------------------------------- */

static uint64_t splitmix(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static float uniform(uint64_t *s) /* [-1, 1) */
{
    return (float)(splitmix(s) >> 40) * (2.0f / 16777216.0f) - 1.0f;
}

/* One row of a tensor's values: uniform with the standard deviation that
 * keeps activations of order one (1/sqrt(fan_in) for matrices). */
static void gen_row(const struct tensor *t, uint64_t *rng, float *row)
{
    float scale;
    switch (t->fill) {
    case FILL_MATRIX: scale = sqrtf(3.0f / (float)t->ne0); break;
    case FILL_EMBED: scale = 1.0f; break;
    case FILL_NORM: scale = 0.1f; break;
    default: scale = 0.05f; break;
    }
    for (uint64_t i = 0; i < t->ne0; i++)
        row[i] = t->fill == FILL_ROPE_FREQS ? 4.5f + 3.5f * uniform(rng)
                                            : uniform(rng) * scale + (t->fill == FILL_NORM ? 1.0f : 0.0f);
}

static void put16(uint8_t *p, uint16_t v)
{
    memcpy(p, &v, 2);
}

/* ggml's reference quantisers (round half away from zero). */
static void quantize_row(enum ggml_type type, const float *x, uint64_t n, uint8_t *out)
{
    switch (type) {
    case GGML_TYPE_F32:
        memcpy(out, x, n * 4);
        break;
    case GGML_TYPE_F16:
        for (uint64_t i = 0; i < n; i++)
            put16(out + 2 * i, kernels_f32_to_f16(x[i]));
        break;
    case GGML_TYPE_BF16:
        for (uint64_t i = 0; i < n; i++)
            put16(out + 2 * i, kernels_f32_to_bf16(x[i]));
        break;
    case GGML_TYPE_Q8_0:
        for (uint64_t b = 0; b < n / 32; b++, out += 34) {
            const float *xb = x + b * 32;
            float amax = 0;
            for (int i = 0; i < 32; i++)
                amax = fmaxf(amax, fabsf(xb[i]));
            float d = amax / 127.f, id = d != 0 ? 1.0f / d : 0.0f;
            put16(out, kernels_f32_to_f16(d));
            for (int i = 0; i < 32; i++)
                out[2 + i] = (uint8_t)(int8_t)roundf(xb[i] * id);
        }
        break;
    case GGML_TYPE_Q4_0:
        for (uint64_t b = 0; b < n / 32; b++, out += 18) {
            const float *xb = x + b * 32;
            float amax = 0, max = 0;
            for (int i = 0; i < 32; i++)
                if (fabsf(xb[i]) > amax) {
                    amax = fabsf(xb[i]);
                    max = xb[i];
                }
            float d = max / -8.f, id = d != 0 ? 1.0f / d : 0.0f;
            put16(out, kernels_f32_to_f16(d));
            for (int i = 0; i < 16; i++) {
                int lo = (int)(xb[i] * id + 8.5f), hi = (int)(xb[i + 16] * id + 8.5f);
                lo = lo > 15 ? 15 : lo;
                hi = hi > 15 ? 15 : hi;
                out[2 + i] = (uint8_t)(lo | (hi << 4));
            }
        }
        break;
    default:
        break;
    }
}

/* Fill tensor i's bytes; the generator depends only on (seed, i). */
static bool gen_tensor(const struct demo_model_spec *s, const struct plan *p, size_t i, uint8_t *out)
{
    const struct tensor *t = &p->t[i];
    uint64_t rng = s->seed * 0x100000001b3ull + i;
    float *row = malloc(t->ne0 * sizeof(float));
    if (!row)
        return false;
    size_t rb = t->bytes / t->ne1;
    for (uint64_t r = 0; r < t->ne1; r++) {
        gen_row(t, &rng, row);
        quantize_row(t->type, row, t->ne0, out + r * rb);
    }
    free(row);
    return true;
}

bool demo_model_build(const struct demo_model_spec *s, void **buf, size_t *len, struct err *e)
{
    *buf = NULL;
    struct plan p;
    if (!plan_build(s, &p, e))
        return false;
    size_t total = p.head.len + p.data_bytes;
    uint8_t *out = calloc(1, total);
    if (!out) {
        plan_free(&p);
        return err_set(e, ERR_NOMEM, "cannot allocate %zu bytes for a demo model", total);
    }
    memcpy(out, p.head.p, p.head.len);
    for (size_t i = 0; i < p.n; i++)
        if (!gen_tensor(s, &p, i, out + p.head.len + p.t[i].offset)) {
            free(out);
            plan_free(&p);
            return err_set(e, ERR_NOMEM, "out of memory while building a demo model");
        }
    plan_free(&p);
    *buf = out;
    *len = total;
    return true;
}

bool demo_model_write(const struct demo_model_spec *s, const char *path, struct err *e)
{
    struct plan p;
    if (!plan_build(s, &p, e))
        return false;
    FILE *f = fopen(path, "wb");
    if (!f) {
        plan_free(&p);
        return err_set_param(e, ERR_IO, "path", "cannot create %s", path);
    }
    bool ok = fwrite(p.head.p, 1, p.head.len, f) == p.head.len;
    uint64_t at = 0;
    static const uint8_t zeros[ALIGN] = {0};
    for (size_t i = 0; ok && i < p.n; i++) {
        const struct tensor *t = &p.t[i];
        ok = fwrite(zeros, 1, t->offset - at, f) == t->offset - at;
        uint8_t *data = malloc(t->bytes);
        ok = ok && data && gen_tensor(s, &p, i, data) && fwrite(data, 1, t->bytes, f) == t->bytes;
        free(data);
        at = t->offset + t->bytes;
    }
    ok = fclose(f) == 0 && ok;
    plan_free(&p);
    if (!ok) {
        remove(path);
        return err_set_param(e, ERR_IO, "path", "cannot write the model to %s", path);
    }
    return true;
}

bool demo_model_gguf(void **buf, size_t *len, struct err *e)
{
    const struct demo_model_spec spec = {
        .arch = "llama",
        .name = DEMO_MODEL_NAME,
        .n_embd = 256,
        .n_layer = 4,
        .n_head = 8,
        .n_head_kv = 4,
        .n_ff = 768,
        .n_ctx = 2048,
        .type = GGML_TYPE_Q8_0,
        .tied = true,
        .seed = 20240601,
        .with_vocab = true,
    };
    return demo_model_build(&spec, buf, len, e);
}

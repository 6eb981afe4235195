/* model.c — see model.h. */
#include "engine/model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

/* Sanity limits: far above any real LLaMA-family model, low enough that the
 * scratch sizes computed from them cannot overflow. */
#define MAX_EMBD (1u << 16)
#define MAX_LAYERS 1024u
#define MAX_HEADS 1024u
#define MAX_HEAD_DIM 1024u
#define MAX_FF (1u << 20)
#define MAX_VOCAB (1u << 24)
#define MAX_CTX (1u << 24)

#define PACK_CHUNK_GROUPS 64

const char *model_arch_name(enum model_arch a)
{
    return a == MODEL_ARCH_QWEN2 ? "qwen2" : "llama";
}

/* ---- metadata --------------------------------------------------------------- */

struct loader {
    const struct gguf_file *f;
    char arch[32];
    char key[160];
};

static const char *akey(struct loader *L, const char *suffix)
{
    snprintf(L->key, sizeof L->key, "%s.%s", L->arch, suffix);
    return L->key;
}

static bool get_u32(struct loader *L, const char *suffix, bool required, uint32_t def,
                    uint32_t *out, struct err *e)
{
    const char *key = akey(L, suffix);
    if (!gguf_kv_find(L->f, key)) {
        if (required)
            return err_set_param(e, ERR_CORRUPT, key, "model metadata lacks '%s'", key);
        *out = def;
        return true;
    }
    return gguf_get_u32(L->f, key, out, e);
}

static bool get_f32(struct loader *L, const char *suffix, bool required, float def, float *out,
                    struct err *e)
{
    const char *key = akey(L, suffix);
    if (!gguf_kv_find(L->f, key)) {
        if (required)
            return err_set_param(e, ERR_CORRUPT, key, "model metadata lacks '%s'", key);
        *out = def;
        return true;
    }
    return gguf_get_f32(L->f, key, out, e);
}

static bool check_range(struct loader *L, const char *suffix, uint64_t v, uint64_t lo,
                        uint64_t hi, struct err *e)
{
    if (v >= lo && v <= hi)
        return true;
    const char *key = akey(L, suffix);
    return err_set_param(e, ERR_CORRUPT, key, "'%s' = %llu is out of range [%llu, %llu]", key,
                         (unsigned long long)v, (unsigned long long)lo, (unsigned long long)hi);
}

/* RoPE scaling: none, or linear (angles times 1/factor, as ggml's
 * freq_scale). YaRN and the rest would load and compute something else. */
static bool read_rope_scaling(struct loader *L, struct model_hparams *hp, struct err *e)
{
    hp->rope_freq_scale = 1.0f;
    const char *key = akey(L, "rope.scaling.type");
    if (!gguf_kv_find(L->f, key))
        return true;
    struct gguf_str s;
    if (!gguf_get_str(L->f, key, &s, e))
        return false;
    if (gguf_str_eq(s, "none"))
        return true;
    if (!gguf_str_eq(s, "linear"))
        return err_set_param(e, ERR_UNSUPPORTED, key, "RoPE scaling '%.*s' is not supported",
                             (int)(s.len > 32 ? 32 : s.len), s.ptr);
    float factor;
    if (!get_f32(L, "rope.scaling.factor", true, 1.0f, &factor, e))
        return false;
    if (!(factor > 0) || !isfinite(factor))
        return err_set_param(e, ERR_CORRUPT, akey(L, "rope.scaling.factor"),
                             "the RoPE scaling factor must be a positive number");
    hp->rope_freq_scale = 1.0f / factor;
    return true;
}

/* Refuse what would load but compute something else than the model. */
static bool refuse_unsupported(struct loader *L, struct err *e)
{
    uint32_t experts = 0;
    if (!get_u32(L, "expert_count", false, 0, &experts, e))
        return false;
    if (experts > 0)
        return err_set_param(e, ERR_UNSUPPORTED, akey(L, "expert_count"),
                             "mixture-of-experts models are not supported");
    return true;
}

static bool read_hparams(struct loader *L, struct model_hparams *hp, struct err *e)
{
    struct gguf_str arch;
    if (!gguf_get_str(L->f, "general.architecture", &arch, e))
        return err_set_param(e, ERR_CORRUPT, "general.architecture",
                             "model metadata lacks a valid 'general.architecture'");
    if (gguf_str_eq(arch, "llama"))
        hp->arch = MODEL_ARCH_LLAMA;
    else if (gguf_str_eq(arch, "qwen2"))
        hp->arch = MODEL_ARCH_QWEN2;
    else
        return err_set_param(e, ERR_UNSUPPORTED, "general.architecture",
                             "architecture '%.*s' is not supported (supported: llama, qwen2)",
                             (int)(arch.len > 64 ? 64 : arch.len), arch.ptr);
    snprintf(L->arch, sizeof L->arch, "%s", model_arch_name(hp->arch));
    if (!refuse_unsupported(L, e))
        return false;

    if (!get_u32(L, "embedding_length", true, 0, &hp->n_embd, e) ||
        !check_range(L, "embedding_length", hp->n_embd, 1, MAX_EMBD, e) ||
        !get_u32(L, "block_count", true, 0, &hp->n_layer, e) ||
        !check_range(L, "block_count", hp->n_layer, 1, MAX_LAYERS, e) ||
        !get_u32(L, "attention.head_count", true, 0, &hp->n_head, e) ||
        !check_range(L, "attention.head_count", hp->n_head, 1, MAX_HEADS, e) ||
        !get_u32(L, "attention.head_count_kv", false, hp->n_head, &hp->n_head_kv, e) ||
        !check_range(L, "attention.head_count_kv", hp->n_head_kv, 1, hp->n_head, e) ||
        !get_u32(L, "feed_forward_length", true, 0, &hp->n_ff, e) ||
        !check_range(L, "feed_forward_length", hp->n_ff, 1, MAX_FF, e) ||
        !get_u32(L, "context_length", true, 0, &hp->n_ctx_train, e) ||
        !check_range(L, "context_length", hp->n_ctx_train, 1, MAX_CTX, e))
        return false;
    if (hp->n_head % hp->n_head_kv != 0)
        return err_set_param(e, ERR_CORRUPT, akey(L, "attention.head_count_kv"),
                             "%u query heads cannot share %u key/value heads evenly", hp->n_head,
                             hp->n_head_kv);

    uint32_t def_hd = hp->n_embd % hp->n_head == 0 ? hp->n_embd / hp->n_head : 0;
    uint32_t vdim;
    if (!get_u32(L, "attention.key_length", false, def_hd, &hp->head_dim, e) ||
        !check_range(L, "attention.key_length", hp->head_dim, 2, MAX_HEAD_DIM, e) ||
        !get_u32(L, "attention.value_length", false, hp->head_dim, &vdim, e))
        return false;
    if (vdim != hp->head_dim)
        return err_set_param(e, ERR_UNSUPPORTED, akey(L, "attention.value_length"),
                             "value heads of %u dims differ from key heads of %u", vdim,
                             hp->head_dim);
    if (hp->head_dim % 2)
        return err_set_param(e, ERR_CORRUPT, akey(L, "attention.key_length"),
                             "head dimension %u is odd", hp->head_dim);
    if (!get_u32(L, "rope.dimension_count", false, hp->head_dim, &hp->n_rot, e) ||
        !check_range(L, "rope.dimension_count", hp->n_rot, 2, hp->head_dim, e))
        return false;
    if (hp->n_rot % 2)
        return err_set_param(e, ERR_CORRUPT, akey(L, "rope.dimension_count"),
                             "RoPE dimension count %u is odd", hp->n_rot);
    if (!get_f32(L, "rope.freq_base", false, 10000.0f, &hp->rope_freq_base, e) ||
        !get_f32(L, "attention.layer_norm_rms_epsilon", true, 0, &hp->rms_eps, e))
        return false;
    if (!(hp->rope_freq_base > 0) || !isfinite(hp->rope_freq_base))
        return err_set_param(e, ERR_CORRUPT, akey(L, "rope.freq_base"),
                             "RoPE frequency base must be a positive number");
    if (!read_rope_scaling(L, hp, e))
        return false;
    if (!(hp->rms_eps >= 0) || !isfinite(hp->rms_eps))
        return err_set_param(e, ERR_CORRUPT, akey(L, "attention.layer_norm_rms_epsilon"),
                             "RMS-norm epsilon must be a non-negative number");
    hp->rope_neox = hp->arch == MODEL_ARCH_QWEN2;
    return true;
}

/* n_vocab is the embedding's row count; metadata that says otherwise is a
 * corrupt file, not a hint. */
static bool read_vocab(struct loader *L, const struct gguf_tensor *emb, struct model_hparams *hp,
                       struct err *e)
{
    if (emb->n_dims != 2 || emb->ne[1] < 1 || emb->ne[1] > MAX_VOCAB)
        return err_set_param(e, ERR_CORRUPT, "token_embd.weight",
                             "tensor 'token_embd.weight' must be [n_embd, n_vocab] with n_vocab <= %u",
                             MAX_VOCAB);
    hp->n_vocab = (uint32_t)emb->ne[1];
    uint32_t meta;
    if (gguf_kv_find(L->f, akey(L, "vocab_size"))) {
        if (!gguf_get_u32(L->f, L->key, &meta, e))
            return false;
        if (meta != hp->n_vocab)
            return err_set_param(e, ERR_CORRUPT, L->key,
                                 "'%s' = %u but token_embd.weight has %u rows", L->key, meta,
                                 hp->n_vocab);
    }
    const struct gguf_kv *tokens = gguf_kv_find(L->f, "tokenizer.ggml.tokens");
    if (tokens && tokens->type == GGUF_TYPE_ARRAY && tokens->arr_len != hp->n_vocab)
        return err_set_param(e, ERR_CORRUPT, "tokenizer.ggml.tokens",
                             "the vocabulary has %llu tokens but token_embd.weight has %u rows",
                             (unsigned long long)tokens->arr_len, hp->n_vocab);
    return true;
}

/* ---- tensors ---------------------------------------------------------------- */

static bool shape_is(const struct gguf_tensor *t, uint64_t ne0, uint64_t ne1)
{
    return t->ne[0] == ne0 && t->ne[1] == ne1 && t->ne[2] == 1 && t->ne[3] == 1;
}

static bool find_tensor(const struct gguf_file *f, const char *name, uint64_t ne0, uint64_t ne1,
                        bool optional, const struct gguf_tensor **out, struct err *e)
{
    const struct gguf_tensor *t = gguf_tensor_find(f, name);
    *out = t;
    if (!t) {
        if (optional)
            return true;
        return err_set_param(e, ERR_CORRUPT, name, "tensor '%s' is missing", name);
    }
    if (!shape_is(t, ne0, ne1))
        return err_set_param(e, ERR_CORRUPT, name,
                             "tensor '%s' has shape [%llu, %llu, %llu, %llu]; the hyper-parameters "
                             "need [%llu, %llu]",
                             name, (unsigned long long)t->ne[0], (unsigned long long)t->ne[1],
                             (unsigned long long)t->ne[2], (unsigned long long)t->ne[3],
                             (unsigned long long)ne0, (unsigned long long)ne1);
    return true;
}

static bool vector_f32(const struct gguf_file *f, const char *name, uint64_t n, bool optional,
                       const float **out, struct err *e)
{
    const struct gguf_tensor *t;
    *out = NULL;
    if (!find_tensor(f, name, n, 1, optional, &t, e))
        return false;
    if (!t)
        return true;
    if (t->type != GGML_TYPE_F32)
        return err_set_param(e, ERR_UNSUPPORTED, name, "tensor '%s' is %s; norms and biases must be f32",
                             name, ggml_type_name(t->type));
    *out = t->data;
    return true;
}

struct pack_job {
    const struct gguf_tensor *src;
    struct kernels_matrix *dst;
    size_t offset;
};

struct pack_plan {
    struct pack_job *jobs;
    size_t n, cap;
    size_t bytes;
};

static bool plan_matrix(struct pack_plan *p, const struct gguf_tensor *t, const char *name,
                        struct kernels_matrix *dst, struct err *e)
{
    if (!kernels_type_supported(t->type))
        return err_set_param(e, ERR_UNSUPPORTED, name, "tensor '%s' has weight type %s, not supported",
                             name, ggml_type_name(t->type) ? ggml_type_name(t->type) : "?");
    size_t bytes;
    if (!kernels_pack_size(t->type, (uint32_t)t->ne[0], (uint32_t)t->ne[1], &bytes, e)) {
        e->code = ERR_CORRUPT;
        snprintf(e->param, sizeof e->param, "%s", name);
        return err_wrap(e, "tensor '%s'", name);
    }
    if (p->n == p->cap) {
        size_t cap = p->cap ? p->cap * 2 : 64;
        struct pack_job *j = realloc(p->jobs, cap * sizeof *j);
        if (!j)
            return err_set(e, ERR_NOMEM, "out of memory while loading the model");
        p->jobs = j;
        p->cap = cap;
    }
    p->jobs[p->n++] = (struct pack_job){.src = t, .dst = dst, .offset = p->bytes};
    p->bytes += bytes;
    return true;
}

static bool matrix(const struct gguf_file *f, struct pack_plan *p, const char *name, uint64_t ne0,
                   uint64_t ne1, struct kernels_matrix *dst, struct err *e)
{
    const struct gguf_tensor *t;
    if (!find_tensor(f, name, ne0, ne1, false, &t, e))
        return false;
    return plan_matrix(p, t, name, dst, e);
}

static bool load_layer(const struct gguf_file *f, const struct model_hparams *hp, uint32_t i,
                       struct model_layer *l, struct pack_plan *p, struct err *e)
{
    const uint64_t d = hp->n_embd, dq = (uint64_t)hp->n_head * hp->head_dim,
                   dkv = (uint64_t)hp->n_head_kv * hp->head_dim, ff = hp->n_ff;
    char n[96];
#define NAME(s) (snprintf(n, sizeof n, "blk.%u.%s", i, s), n)
    if (!vector_f32(f, NAME("attn_norm.weight"), d, false, &l->attn_norm, e) ||
        !vector_f32(f, NAME("ffn_norm.weight"), d, false, &l->ffn_norm, e) ||
        !matrix(f, p, NAME("attn_q.weight"), d, dq, &l->wq, e) ||
        !matrix(f, p, NAME("attn_k.weight"), d, dkv, &l->wk, e) ||
        !matrix(f, p, NAME("attn_v.weight"), d, dkv, &l->wv, e) ||
        !matrix(f, p, NAME("attn_output.weight"), dq, d, &l->wo, e) ||
        !matrix(f, p, NAME("ffn_gate.weight"), d, ff, &l->w_gate, e) ||
        !matrix(f, p, NAME("ffn_up.weight"), d, ff, &l->w_up, e) ||
        !matrix(f, p, NAME("ffn_down.weight"), ff, d, &l->w_down, e))
        return false;
    /* qwen2 always has the biases; llama may (some fine-tunes do). */
    bool need = hp->arch == MODEL_ARCH_QWEN2;
    if (!vector_f32(f, NAME("attn_q.bias"), dq, !need, &l->bq, e) ||
        !vector_f32(f, NAME("attn_k.bias"), dkv, !need, &l->bk, e) ||
        !vector_f32(f, NAME("attn_v.bias"), dkv, !need, &l->bv, e))
        return false;
    if ((l->bq != NULL) != (l->bk != NULL) || (l->bq != NULL) != (l->bv != NULL))
        return err_set_param(e, ERR_CORRUPT, NAME("attn_q.bias"),
                             "layer %u has some but not all of the q/k/v biases", i);
#undef NAME
    return true;
}

/* ---- packing ---------------------------------------------------------------- */

struct pack_task {
    const struct pack_job *job;
    uint32_t g0, g1;
};

static void pack_task_run(void *ctx, int task, int thread)
{
    (void)thread;
    const struct pack_task *t = (const struct pack_task *)ctx + task;
    kernels_pack_groups(t->job->dst, t->job->src->data, t->g0, t->g1);
}

static bool pack_all(struct model *m, struct pack_plan *p, struct threadpool *tp, struct err *e)
{
    size_t bytes = p->bytes ? p->bytes : 64;
    void *arena = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (arena == MAP_FAILED)
        return err_set(e, ERR_NOMEM, "cannot allocate %zu bytes for the model's weights", bytes);
    /* Streaming a gigabyte per token through 4 KiB pages costs TLB misses;
     * huge pages are a hint the kernel may ignore. */
    madvise(arena, bytes, MADV_HUGEPAGE);
    m->arena = arena;
    m->arena_bytes = bytes;

    size_t n_tasks = 0;
    for (size_t i = 0; i < p->n; i++) {
        const struct gguf_tensor *t = p->jobs[i].src;
        /* Read-ahead for the file pages packing is about to read (a hint,
         * harmless when the GGUF is a memory buffer). */
        uintptr_t lo = (uintptr_t)t->data & ~(uintptr_t)4095;
        madvise((void *)lo, (uintptr_t)t->data + t->n_bytes - lo, MADV_WILLNEED);
        kernels_pack_init(t->type, (uint32_t)t->ne[0], (uint32_t)t->ne[1],
                          (uint8_t *)arena + p->jobs[i].offset, p->jobs[i].dst);
        n_tasks += (p->jobs[i].dst->n_groups + PACK_CHUNK_GROUPS - 1) / PACK_CHUNK_GROUPS;
    }
    struct pack_task *tasks = calloc(n_tasks ? n_tasks : 1, sizeof *tasks);
    if (!tasks)
        return err_set(e, ERR_NOMEM, "out of memory while loading the model");
    size_t k = 0;
    for (size_t i = 0; i < p->n; i++)
        for (uint32_t g = 0; g < p->jobs[i].dst->n_groups; g += PACK_CHUNK_GROUPS)
            tasks[k++] = (struct pack_task){.job = &p->jobs[i], .g0 = g, .g1 = g + PACK_CHUNK_GROUPS};
    if (tp)
        threadpool_run(tp, pack_task_run, tasks, (int)n_tasks);
    else
        for (size_t i = 0; i < n_tasks; i++)
            pack_task_run(tasks, (int)i, 0);
    free(tasks);
    mprotect(arena, bytes, PROT_READ); /* the weights are constants from here on */
    return true;
}

/* ---- public ----------------------------------------------------------------- */

bool model_load(const struct gguf_file *f, struct threadpool *tp, struct model **out,
                struct err *e)
{
    *out = NULL;
    struct loader L = {.f = f};
    struct model *m = calloc(1, sizeof *m);
    if (!m)
        return err_set(e, ERR_NOMEM, "out of memory while loading the model");
    m->file = f;
    struct pack_plan plan = {0};
    struct model_hparams *hp = &m->hp;
    bool ok = false;

    if (!read_hparams(&L, hp, e))
        goto done;
    const struct gguf_tensor *emb = gguf_tensor_find(f, "token_embd.weight");
    if (!emb) {
        err_set_param(e, ERR_CORRUPT, "token_embd.weight", "tensor 'token_embd.weight' is missing");
        goto done;
    }
    if (emb->ne[0] != hp->n_embd) {
        err_set_param(e, ERR_CORRUPT, "token_embd.weight",
                      "tensor 'token_embd.weight' has rows of %llu values; the model has n_embd %u",
                      (unsigned long long)emb->ne[0], hp->n_embd);
        goto done;
    }
    if (!read_vocab(&L, emb, hp, e))
        goto done;
    size_t unused;
    if (!kernels_pack_size(emb->type, hp->n_embd, hp->n_vocab, &unused, e)) {
        snprintf(e->param, sizeof e->param, "token_embd.weight");
        err_wrap(e, "tensor 'token_embd.weight'");
        goto done;
    }
    m->tok_embd = emb;
    if (!vector_f32(f, "output_norm.weight", hp->n_embd, false, &m->output_norm, e) ||
        !vector_f32(f, "rope_freqs.weight", hp->n_rot / 2, true, &m->rope_freqs, e))
        goto done;
    for (uint32_t i = 0; m->rope_freqs && i < hp->n_rot / 2; i++) {
        if (!(m->rope_freqs[i] > 0) || !isfinite(m->rope_freqs[i])) {
            err_set_param(e, ERR_CORRUPT, "rope_freqs.weight",
                          "RoPE frequency factor %u is %g; factors must be positive numbers", i,
                          (double)m->rope_freqs[i]);
            goto done;
        }
    }
    const struct gguf_tensor *outw;
    if (!find_tensor(f, "output.weight", hp->n_embd, hp->n_vocab, true, &outw, e))
        goto done;
    hp->tied_embeddings = outw == NULL;
    if (!plan_matrix(&plan, outw ? outw : emb, outw ? "output.weight" : "token_embd.weight",
                     &m->output, e))
        goto done;

    m->layers = calloc(hp->n_layer, sizeof *m->layers);
    if (!m->layers) {
        err_set(e, ERR_NOMEM, "out of memory while loading the model");
        goto done;
    }
    for (uint32_t i = 0; i < hp->n_layer; i++)
        if (!load_layer(f, hp, i, &m->layers[i], &plan, e))
            goto done;
    hp->qkv_bias = m->layers[0].bq != NULL;
    for (uint32_t i = 1; i < hp->n_layer; i++)
        if ((m->layers[i].bq != NULL) != hp->qkv_bias) {
            err_set_param(e, ERR_CORRUPT, "attn_q.bias", "q/k/v biases are present in some layers only");
            goto done;
        }
    m->file_weight_bytes = emb->n_bytes;
    for (size_t i = 0; i < plan.n; i++)
        if (plan.jobs[i].src != emb)
            m->file_weight_bytes += plan.jobs[i].src->n_bytes;
    if (!pack_all(m, &plan, tp, e))
        goto done;
    ok = true;
done:
    free(plan.jobs);
    if (!ok) {
        model_free(m);
        return false;
    }
    *out = m;
    return true;
}

void model_free(struct model *m)
{
    if (!m)
        return;
    if (m->arena)
        munmap(m->arena, m->arena_bytes);
    free(m->layers);
    free(m);
}

void model_token_embedding(const struct model *m, int32_t tok, float *out)
{
    const struct gguf_tensor *t = m->tok_embd;
    size_t rb = (size_t)m->hp.n_embd / ggml_type_block_elems(t->type) * ggml_type_block_bytes(t->type);
    kernels_row_dequant(t->type, (const uint8_t *)t->data + (size_t)tok * rb, m->hp.n_embd, out);
}

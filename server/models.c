/* models.c — see models.h. */
#include "server/models.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/chat_template.h"
#include "engine/demo_model.h"
#include "engine/gguf.h"
#include "engine/model.h"
#include "engine/threadpool.h"
#include "engine/tokenizer.h"
#include "server/log.h"

#define BUILTIN_DEMO "builtin:demo"

/* The token's text for the chat template (BOS/EOS), or NULL. */
static char *token_text_dup(const struct tokenizer *tok, int32_t id)
{
    if (id == TOKENIZER_NONE)
        return NULL;
    struct gguf_str s = tokenizer_token_text(tok, id);
    char *c = malloc(s.len + 1);
    if (!c)
        abort();
    memcpy(c, s.ptr, s.len);
    c[s.len] = '\0';
    return c;
}

static bool load_one(const struct config *cfg, const struct config_model *cm,
                     struct threadpool *tp, pthread_mutex_t *tp_lock, struct served_model *m,
                     struct err *e)
{
    memset(m, 0, sizeof *m);
    snprintf(m->id, sizeof m->id, "%s", cm->id);
    snprintf(m->path, sizeof m->path, "%s", cm->path);
    m->created = (int64_t)time(NULL);

    if (strcmp(cm->path, BUILTIN_DEMO) == 0) {
        size_t len = 0;
        if (!demo_model_gguf(&m->gguf_buffer, &len, e) ||
            !gguf_open_memory(m->gguf_buffer, len, &m->gguf, e))
            return false;
    } else if (!gguf_open(cm->path, &m->gguf, e)) {
        return false;
    }
    if (!model_load(m->gguf, tp, &m->model, e) || !tokenizer_load(m->gguf, &m->tok, e))
        return false;

    struct gguf_str src = {NULL, 0};
    struct err ignored;
    gguf_get_str(m->gguf, "tokenizer.chat_template", &src, &ignored);
    char *bos = token_text_dup(m->tok, tokenizer_bos(m->tok));
    char *eos = token_text_dup(m->tok, tokenizer_eos(m->tok));
    m->tmpl = chat_template_new(src.ptr, (size_t)src.len, bos, eos, e);
    free(bos);
    free(eos);
    if (!m->tmpl)
        return false;

    m->n_vocab = (int)m->model->hp.n_vocab;
    m->n_embd = (int)m->model->hp.n_embd;
    if ((uint32_t)m->n_vocab != tokenizer_n_vocab(m->tok))
        return err_set(e, ERR_CORRUPT, "the tokenizer has %u tokens but the model %d",
                       tokenizer_n_vocab(m->tok), m->n_vocab);
    struct sched_options so = {
        .max_running = cfg->max_running,
        .max_batch_tokens = cfg->max_batch_tokens,
        .max_queue = cfg->max_queue,
        .kv_cache_bytes = cfg->kv_cache_bytes,
        .n_ctx = cfg->ctx_size,
    };
    m->n_ctx = cfg->ctx_size > 0 && (uint32_t)cfg->ctx_size < m->model->hp.n_ctx_train
                   ? cfg->ctx_size : (int)m->model->hp.n_ctx_train;
    if (!sched_start(m->model, m->tok, tp, tp_lock, &so, &m->sched, e))
        return false;
    log_line(LOG_INFO, "model loaded", LF_STR("model", m->id),
             LF_STR("architecture", model_arch_name(m->model->hp.arch)),
             LF_INT("layers", m->model->hp.n_layer), LF_INT("embedding", m->n_embd),
             LF_INT("vocabulary", m->n_vocab), LF_INT("context", m->n_ctx),
             LF_INT("weight_bytes", (int64_t)m->model->file_weight_bytes),
             LF_STR("chat_template", chat_family_name(chat_template_family(m->tmpl))), LF_END);
    return true;
}

static void free_one(struct served_model *m)
{
    sched_stop(m->sched);
    chat_template_free(m->tmpl);
    tokenizer_free(m->tok);
    model_free(m->model);
    gguf_close(m->gguf);
    free(m->gguf_buffer);
    memset(m, 0, sizeof *m);
}

bool models_load(const struct config *cfg, struct models *out, struct err *e)
{
    memset(out, 0, sizeof *out);
    if (!threadpool_create(cfg->threads, &out->tp, e))
        return false;
    pthread_mutex_init(&out->tp_lock, NULL);
    out->items = calloc((size_t)(cfg->n_models ? cfg->n_models : 1), sizeof *out->items);
    if (!out->items)
        abort();
    for (int i = 0; i < cfg->n_models; i++) {
        if (!load_one(cfg, &cfg->models[i], out->tp, &out->tp_lock, &out->items[i], e)) {
            err_wrap(e, "model %s (%s)", cfg->models[i].id, cfg->models[i].path);
            snprintf(e->param, sizeof e->param, "model");
            free_one(&out->items[i]);
            models_free(out);
            return false;
        }
        out->n++;
    }
    return true;
}

void models_free(struct models *ms)
{
    for (int i = 0; i < ms->n; i++)
        free_one(&ms->items[i]);
    free(ms->items);
    if (ms->tp) {
        threadpool_destroy(ms->tp);
        pthread_mutex_destroy(&ms->tp_lock);
    }
    memset(ms, 0, sizeof *ms);
}

struct served_model *models_find(struct models *ms, const char *id)
{
    for (int i = 0; i < ms->n; i++)
        if (strcmp(ms->items[i].id, id) == 0)
            return &ms->items[i];
    return NULL;
}

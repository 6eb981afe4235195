/* models.c — see models.h. */
#include "server/models.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
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

static void model_destroy(struct served_model *m)
{
    if (!m)
        return;
    sched_stop(m->sched); /* NULL after models_stop() */
    chat_template_free(m->tmpl);
    tokenizer_free(m->tok);
    model_free(m->model);
    gguf_close(m->gguf);
    free(m->gguf_buffer);
    free(m);
}

static uint64_t mem_available_bytes(void)
{
    FILE *f = fopen("/proc/meminfo", "r");
    if (!f)
        return UINT64_MAX;
    char line[256];
    unsigned long long kb = 0;
    bool found = false;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "MemAvailable: %llu kB", &kb) == 1) {
            found = true;
            break;
        }
    fclose(f);
    return found ? (uint64_t)kb * 1024 : UINT64_MAX;
}

/* Weights (about the file's size once packed) plus the KV cache must fit
 * in what the kernel says is available, with a margin for scratch. */
static bool memory_check(const char *name, const char *path, const struct config *cfg,
                         uint64_t *need, struct err *e)
{
    struct stat st;
    uint64_t weights = 0;
    if (strcmp(path, BUILTIN_DEMO) != 0) {
        if (stat(path, &st) != 0)
            return err_set_param(e, ERR_INVALID, "path", "model %s: cannot read '%s'", name, path);
        weights = (uint64_t)st.st_size;
    }
    *need = weights + cfg->kv_cache_bytes + (64ULL << 20);
    uint64_t avail = mem_available_bytes();
    if (*need > avail)
        return err_set_param(e, ERR_CONFLICT, "path",
                             "not enough memory to load %s: it needs about %llu MiB (weights and "
                             "KV cache), %llu MiB are available",
                             name, (unsigned long long)(*need >> 20),
                             (unsigned long long)(avail >> 20));
    return true;
}

/* Everything a served model needs; runs on any thread. `tp` may be NULL
 * (single-threaded weight packing, for loads while serving); when it is the
 * compute pool, packing holds run_lock like every other user of the pool
 * (a model loaded earlier may already be running its first passes). */
static struct served_model *model_open(const struct config *cfg, const char *name,
                                       const char *model_id, int version, const char *path,
                                       struct threadpool *tp, struct threadpool *run_tp,
                                       pthread_mutex_t *run_lock, struct err *e)
{
    struct served_model *m = calloc(1, sizeof *m);
    if (!m)
        abort();
    snprintf(m->name, sizeof m->name, "%s", name);
    snprintf(m->model_id, sizeof m->model_id, "%s", model_id);
    m->version = version;
    snprintf(m->path, sizeof m->path, "%s", path);
    m->created = (int64_t)time(NULL);
    if (!memory_check(name, path, cfg, &m->memory_bytes, e))
        goto fail;

    if (strcmp(path, BUILTIN_DEMO) == 0) {
        size_t len = 0;
        if (!demo_model_gguf(&m->gguf_buffer, &len, e) ||
            !gguf_open_memory(m->gguf_buffer, len, &m->gguf, e))
            goto fail;
    } else if (!gguf_open(path, &m->gguf, e)) {
        goto fail;
    }
    if (tp)
        pthread_mutex_lock(run_lock);
    bool loaded = model_load(m->gguf, tp, &m->model, e);
    if (tp)
        pthread_mutex_unlock(run_lock);
    if (!loaded || !tokenizer_load(m->gguf, &m->tok, e))
        goto fail;

    struct gguf_str src = {NULL, 0};
    struct err ignored;
    gguf_get_str(m->gguf, "tokenizer.chat_template", &src, &ignored);
    char *bos = token_text_dup(m->tok, tokenizer_bos(m->tok));
    char *eos = token_text_dup(m->tok, tokenizer_eos(m->tok));
    m->tmpl = chat_template_new(src.ptr, (size_t)src.len, bos, eos, e);
    free(bos);
    free(eos);
    if (!m->tmpl)
        goto fail;

    m->n_vocab = (int)m->model->hp.n_vocab;
    m->n_embd = (int)m->model->hp.n_embd;
    if ((uint32_t)m->n_vocab != tokenizer_n_vocab(m->tok)) {
        err_set(e, ERR_CORRUPT, "the tokenizer has %u tokens but the model %d",
                tokenizer_n_vocab(m->tok), m->n_vocab);
        goto fail;
    }
    struct sched_options so = {
        .max_running = cfg->max_running,
        .max_batch_tokens = cfg->max_batch_tokens,
        .prefill_chunk = cfg->prefill_chunk,
        .itl_factor = cfg->itl_factor,
        /* A step this short is not noticed by anyone: small models batch freely. */
        .itl_min_target_ms = 10,
        .max_queue = cfg->max_queue,
        .kv_cache_bytes = cfg->kv_cache_bytes,
        .n_ctx = cfg->ctx_size,
    };
    m->n_ctx = cfg->ctx_size > 0 && (uint32_t)cfg->ctx_size < m->model->hp.n_ctx_train
                   ? cfg->ctx_size : (int)m->model->hp.n_ctx_train;
    if (!sched_start(m->model, m->tok, run_tp, run_lock, &so, &m->sched, e))
        goto fail;
    log_line(LOG_INFO, "model loaded", LF_STR("model", m->name),
             LF_STR("architecture", model_arch_name(m->model->hp.arch)),
             LF_INT("layers", m->model->hp.n_layer), LF_INT("embedding", m->n_embd),
             LF_INT("vocabulary", m->n_vocab), LF_INT("context", m->n_ctx),
             LF_INT("weight_bytes", (int64_t)m->model->file_weight_bytes),
             LF_STR("chat_template", chat_family_name(chat_template_family(m->tmpl))), LF_END);
    return m;
fail:
    err_wrap(e, "model %s (%s)", name, path);
    model_destroy(m);
    return NULL;
}

/* ---- the table ---------------------------------------------------------------- */

void models_list(struct models *ms, struct served_model *m)
{
    if (ms->n == ms->cap) {
        ms->cap = ms->cap ? ms->cap * 2 : 8;
        struct served_model **g = realloc(ms->items, (size_t)ms->cap * sizeof *g);
        if (!g)
            abort();
        ms->items = g;
    }
    m->refs++;
    ms->items[ms->n++] = m;
    if (m->refs == 1) {
        m->next_alive = ms->alive;
        ms->alive = m;
    }
}

void models_acquire(struct served_model *m) { m->refs++; }

void models_release(struct models *ms, struct served_model *m)
{
    if (--m->refs > 0)
        return;
    for (struct served_model **p = &ms->alive; *p; p = &(*p)->next_alive)
        if (*p == m) {
            *p = m->next_alive;
            break;
        }
    log_line(LOG_INFO, "model unloaded", LF_STR("model", m->name), LF_END);
    model_destroy(m);
}

void models_stop(struct models *ms)
{
    for (struct served_model *m = ms->alive; m; m = m->next_alive) {
        sched_stop(m->sched);
        m->sched = NULL;
    }
}

void models_retire(struct models *ms, struct served_model *m)
{
    for (int i = 0; i < ms->n; i++) {
        if (ms->items[i] == m) {
            memmove(&ms->items[i], &ms->items[i + 1], (size_t)(ms->n - i - 1) * sizeof m);
            ms->n--;
            models_release(ms, m);
            return;
        }
    }
}

struct served_model *models_find_exact(struct models *ms, const char *name)
{
    for (int i = 0; i < ms->n; i++)
        if (strcmp(ms->items[i]->name, name) == 0)
            return ms->items[i];
    return NULL;
}

struct served_model *models_find(struct models *ms, const char *name)
{
    for (int i = 0; i < ms->n_aliases; i++)
        if (strcmp(ms->aliases[i].alias, name) == 0)
            return ms->aliases[i].target;
    struct served_model *m = models_find_exact(ms, name);
    if (m)
        return m;
    /* A registered id: its highest loaded version. */
    struct served_model *best = NULL;
    for (int i = 0; i < ms->n; i++) {
        struct served_model *c = ms->items[i];
        if (c->version > 0 && strcmp(c->model_id, name) == 0 && (!best || c->version > best->version))
            best = c;
    }
    return best;
}

void models_alias_set(struct models *ms, const char *alias, struct served_model *target)
{
    for (int i = 0; i < ms->n_aliases; i++) {
        if (strcmp(ms->aliases[i].alias, alias) == 0) {
            /* One pointer store on the loop thread: the switch is atomic for
             * every call resolved after it. */
            ms->aliases[i].target = target;
            return;
        }
    }
    struct model_alias *g = realloc(ms->aliases, (size_t)(ms->n_aliases + 1) * sizeof *g);
    if (!g)
        abort();
    ms->aliases = g;
    snprintf(g[ms->n_aliases].alias, sizeof g[0].alias, "%s", alias);
    g[ms->n_aliases].target = target;
    ms->n_aliases++;
}

const char *models_alias_of(const struct models *ms, const struct served_model *m)
{
    for (int i = 0; i < ms->n_aliases; i++)
        if (ms->aliases[i].target == m)
            return ms->aliases[i].alias;
    return NULL;
}

void models_forget_failure(struct models *ms, const char *name)
{
    for (int i = 0; i < ms->n_failed; i++)
        if (strcmp(ms->failed[i].name, name) == 0) {
            ms->failed[i] = ms->failed[--ms->n_failed];
            return;
        }
}

/* ---- start-up --------------------------------------------------------------------- */

static void note_failure(struct models *ms, const char *name, const struct err *e)
{
    struct model_failure *g = realloc(ms->failed, (size_t)(ms->n_failed + 1) * sizeof *g);
    if (!g)
        abort();
    ms->failed = g;
    snprintf(g[ms->n_failed].name, sizeof g[0].name, "%s", name);
    g[ms->n_failed].err = *e;
    ms->n_failed++;
    log_line(LOG_ERROR, "registered model failed to load", LF_STR("model", name),
             LF_STR("error", e->msg), LF_END);
}

static bool load_registered(struct models *ms, sqlite3 *db, struct err *e)
{
    struct model_version_row *rows = NULL;
    struct model_alias_row *aliases = NULL;
    int n = 0, n_aliases = 0;
    if (!model_registry_versions(db, &rows, &n, e) ||
        !model_registry_aliases(db, &aliases, &n_aliases, e)) {
        free(rows);
        return false;
    }
    for (int i = 0; i < n; i++) {
        if (!rows[i].loaded)
            continue;
        char name[MODEL_NAME_MAX];
        snprintf(name, sizeof name, "%s@%d", rows[i].model_id, rows[i].version);
        struct err le = {0};
        struct served_model *m = model_open(&ms->cfg, name, rows[i].model_id, rows[i].version,
                                            rows[i].path, ms->tp, ms->tp, &ms->tp_lock, &le);
        if (m)
            models_list(ms, m);
        else
            note_failure(ms, name, &le);
    }
    for (int i = 0; i < n_aliases; i++) {
        char name[MODEL_NAME_MAX];
        snprintf(name, sizeof name, "%s@%d", aliases[i].model_id, aliases[i].version);
        struct served_model *target = models_find_exact(ms, name);
        if (target)
            models_alias_set(ms, aliases[i].alias, target);
    }
    free(rows);
    free(aliases);
    return true;
}

bool models_load(const struct config *cfg, uv_loop_t *loop, sqlite3 *db_read, struct models *out,
                 struct err *e)
{
    memset(out, 0, sizeof *out);
    out->cfg = *cfg;
    out->loop = loop;
    if (!threadpool_create(cfg->threads, &out->tp, e))
        return false;
    pthread_mutex_init(&out->tp_lock, NULL);
    for (int i = 0; i < cfg->n_models; i++) {
        const struct config_model *cm = &cfg->models[i];
        struct served_model *m = model_open(cfg, cm->id, cm->id, 0, cm->path, out->tp, out->tp,
                                            &out->tp_lock, e);
        if (!m) {
            snprintf(e->param, sizeof e->param, "model");
            models_free(out);
            return false;
        }
        models_list(out, m);
    }
    if (db_read && !load_registered(out, db_read, e)) {
        models_free(out);
        return false;
    }
    return true;
}

void models_free(struct models *ms)
{
    /* At shutdown every call has ended: only the table's references are
     * left, so each model is destroyed here. */
    while (ms->n > 0)
        models_retire(ms, ms->items[ms->n - 1]);
    free(ms->items);
    free(ms->aliases);
    free(ms->failed);
    if (ms->tp) {
        threadpool_destroy(ms->tp);
        pthread_mutex_destroy(&ms->tp_lock);
    }
    memset(ms, 0, sizeof *ms);
}

/* ---- loading while serving ----------------------------------------------------------- */

struct load_job {
    uv_work_t work;
    struct models *ms;
    char name[MODEL_NAME_MAX];
    char model_id[MODEL_ID_MAX];
    int version;
    char path[CONFIG_PATH_MAX];
    struct served_model *m;
    struct err err;
    models_loaded_fn done;
    void *arg;
};

static void load_work(uv_work_t *w)
{
    struct load_job *j = w->data;
    /* tp = NULL: pack the weights on this worker thread alone, leaving the
     * compute pool to the models that are serving. */
    j->m = model_open(&j->ms->cfg, j->name, j->model_id, j->version, j->path, NULL, j->ms->tp,
                      &j->ms->tp_lock, &j->err);
}

static void load_after(uv_work_t *w, int status)
{
    struct load_job *j = w->data;
    j->ms->loading--;
    if (status != 0 && j->m) {
        model_destroy(j->m);
        j->m = NULL;
        err_set(&j->err, ERR_UNAVAILABLE, "the load of %s was cancelled", j->name);
    }
    j->done(j->arg, j->m, j->m ? NULL : &j->err);
    free(j);
}

void models_load_async(struct models *ms, const char *model_id, int version, const char *path,
                       models_loaded_fn done, void *arg)
{
    struct load_job *j = calloc(1, sizeof *j);
    if (!j)
        abort();
    j->ms = ms;
    snprintf(j->name, sizeof j->name, "%s@%d", model_id, version);
    snprintf(j->model_id, sizeof j->model_id, "%s", model_id);
    j->version = version;
    snprintf(j->path, sizeof j->path, "%s", path);
    j->done = done;
    j->arg = arg;
    j->work.data = j;
    ms->loading++;
    if (uv_queue_work(ms->loop, &j->work, load_work, load_after) != 0) {
        ms->loading--;
        err_set(&j->err, ERR_IO, "cannot start a model load");
        done(arg, NULL, &j->err);
        free(j);
    }
}

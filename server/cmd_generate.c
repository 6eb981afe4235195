/*
 * cmd_generate.c — `maasd generate`: run a model from the command line,
 * through the same scheduler the daemon uses.
 *
 *   maasd generate --model PATH (--prompt TEXT | --prompt-ids 1,2,3)
 *                  [--max-tokens N] [--temperature T] [--seed S] [--ids]
 *
 * --prompt TEXT is tokenized with BOS added as the model's metadata says;
 * --prompt-ids are used exactly as given, nothing prepended. The completion
 * is printed as it is generated (with --ids: the generated token ids,
 * space-separated).
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/demo_model.h"
#include "engine/gguf.h"
#include "engine/model.h"
#include "engine/scheduler.h"
#include "engine/threadpool.h"
#include "engine/tokenizer.h"
#include "server/cli.h"

struct gen_state {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool done, ids;
    int n_out;
    struct err err;
};

/* Scheduler thread: print as tokens arrive. */
static void on_event(void *user, const struct sched_event *ev)
{
    struct gen_state *g = user;
    pthread_mutex_lock(&g->lock);
    if (ev->kind == SCHED_EV_TOKEN && g->ids)
        printf("%s%d", g->n_out++ ? " " : "", ev->token);
    if ((ev->kind == SCHED_EV_TOKEN || ev->kind == SCHED_EV_CHOICE_DONE) && !g->ids)
        fwrite(ev->text, 1, ev->text_len, stdout);
    fflush(stdout);
    if (ev->kind == SCHED_EV_REQUEST_DONE) {
        g->err = ev->err;
        g->done = true;
        pthread_cond_signal(&g->cond);
    }
    pthread_mutex_unlock(&g->lock);
}

static bool parse_ids(const char *s, int32_t **out, size_t *n, struct err *e)
{
    size_t cap = 16;
    *n = 0;
    *out = malloc(cap * sizeof **out);
    if (!*out)
        abort();
    while (*s) {
        char *end = NULL;
        long v = strtol(s, &end, 10);
        if (end == s || v < 0 || v > INT32_MAX)
            return err_set_param(e, ERR_INVALID, "prompt-ids",
                                 "--prompt-ids: expected comma-separated token ids: '%s'", s);
        if (*n == cap) {
            cap *= 2;
            int32_t *grown = realloc(*out, cap * sizeof **out);
            if (!grown)
                abort();
            *out = grown;
        }
        (*out)[(*n)++] = (int32_t)v;
        s = end;
        if (*s == ',')
            s++;
    }
    if (*n == 0)
        return err_set_param(e, ERR_INVALID, "prompt-ids", "--prompt-ids: no ids given");
    return true;
}

int cmd_generate(int argc, char **argv)
{
    const char *path = NULL, *prompt = NULL, *prompt_ids = NULL;
    long max_tokens = 128, seed = 0;
    double temperature = 0.8;
    bool ids = false;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--ids") == 0) {
            ids = true;
            continue;
        }
        if (!v)
            goto usage;
        if (strcmp(a, "--model") == 0)
            path = v;
        else if (strcmp(a, "--prompt") == 0)
            prompt = v;
        else if (strcmp(a, "--prompt-ids") == 0)
            prompt_ids = v;
        else if (strcmp(a, "--max-tokens") == 0)
            max_tokens = strtol(v, NULL, 10);
        else if (strcmp(a, "--temperature") == 0)
            temperature = strtod(v, NULL);
        else if (strcmp(a, "--seed") == 0)
            seed = strtol(v, NULL, 10);
        else
            goto usage;
        i++;
    }
    if (!path || (!prompt == !prompt_ids) || max_tokens < 1 || temperature < 0 || temperature > 2)
        goto usage;

    struct err e = {0};
    int rc = 1;
    void *buf = NULL;
    struct gguf_file *g = NULL;
    struct threadpool *tp = NULL;
    struct model *m = NULL;
    struct tokenizer *tok = NULL;
    struct sched *s = NULL;
    int32_t *ids_in = NULL;
    size_t n_in = 0;
    pthread_mutex_t tp_lock = PTHREAD_MUTEX_INITIALIZER;
    struct gen_state st = {.ids = ids};
    pthread_mutex_init(&st.lock, NULL);
    pthread_cond_init(&st.cond, NULL);

    if (strcmp(path, "builtin:demo") == 0) {
        size_t len;
        if (!demo_model_gguf(&buf, &len, &e) || !gguf_open_memory(buf, len, &g, &e))
            goto out;
    } else if (!gguf_open(path, &g, &e)) {
        goto out;
    }
    if (!threadpool_create(0, &tp, &e) || !model_load(g, tp, &m, &e) ||
        !tokenizer_load(g, &tok, &e))
        goto out;
    if (prompt_ids ? !parse_ids(prompt_ids, &ids_in, &n_in, &e)
                   : !tokenizer_encode(tok, prompt, strlen(prompt), TOKENIZER_ADD_SPECIAL, &ids_in,
                                       &n_in, &e))
        goto out;
    struct sched_options so = {.max_running = 1, .max_batch_tokens = 512, .max_queue = 1,
                               .kv_cache_bytes = 0, .n_ctx = 0};
    /* Enough KV memory for one sequence of the whole context. */
    so.kv_cache_bytes = (uint64_t)2 * m->hp.n_layer * m->hp.n_head_kv * m->hp.head_dim *
                        sizeof(float) * (m->hp.n_ctx_train + 64);
    if (n_in + (size_t)max_tokens > m->hp.n_ctx_train)
        max_tokens = (long)m->hp.n_ctx_train - (long)n_in;
    if (max_tokens < 1) {
        err_set(&e, ERR_INVALID, "the prompt (%zu tokens) fills the context (%u)", n_in,
                m->hp.n_ctx_train);
        goto out;
    }
    if (!sched_start(m, tok, tp, &tp_lock, &so, &s, &e))
        goto out;
    struct sched_request q = {.prompt = ids_in, .n_prompt = n_in, .n_choices = 1,
                              .max_tokens = (int)max_tokens, .weight = 1, .on_event = on_event,
                              .user = &st};
    sampler_params_default(&q.sampling);
    q.sampling.temperature = (float)temperature;
    q.sampling.seed = (uint64_t)seed;
    uint64_t id;
    if (!sched_submit(s, &q, 1, &id, &e))
        goto out;
    pthread_mutex_lock(&st.lock);
    while (!st.done)
        pthread_cond_wait(&st.cond, &st.lock);
    pthread_mutex_unlock(&st.lock);
    printf("\n");
    e = st.err;
    rc = e.code == ERR_OK ? 0 : 1;
out:
    sched_stop(s);
    tokenizer_free(tok);
    model_free(m);
    threadpool_destroy(tp);
    gguf_close(g);
    free(buf);
    free(ids_in);
    if (rc != 0)
        return cli_fail(&e);
    return 0;
usage:
    fprintf(stderr, "usage: maasd generate --model PATH|builtin:demo (--prompt TEXT | --prompt-ids "
                    "1,2,3) [--max-tokens N] [--temperature T] [--seed S] [--ids]\n");
    return 2;
}

/*
 * models.h — the models this daemon serves, by id.
 *
 * Contract
 *   models_load() opens every model of the configuration (`--model ID=PATH`,
 *   or the built-in demo model for PATH "builtin:demo"): it maps the GGUF
 *   file, loads weights and tokenizer, recognises the chat template, and
 *   starts the model's scheduler thread. A model that fails to load fails
 *   start-up with a message naming the model id and the cause.
 *   models_find() is a lookup by id (loop thread).
 *
 * Ownership
 *   struct models owns everything it loaded; models_free() stops the
 *   schedulers (delivering their final events) and unmaps the files.
 */
#ifndef MAASD_MODELS_H
#define MAASD_MODELS_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "engine/err.h"
#include "engine/scheduler.h"
#include "server/config.h"

struct gguf_file;
struct model;
struct tokenizer;
struct chat_template;
struct threadpool;

struct served_model {
    char id[64];
    char path[CONFIG_PATH_MAX];
    int64_t created;                 /* unix seconds: when it was loaded */
    struct gguf_file *gguf;
    void *gguf_buffer;               /* the demo model's in-memory GGUF, else NULL */
    struct model *model;
    struct tokenizer *tok;
    struct sched *sched;
    int n_ctx;                       /* context per sequence */
    int n_vocab;
    int n_embd;
    struct chat_template *tmpl;      /* from tokenizer.chat_template */
};

struct models {
    struct served_model *items;
    int n;
    struct threadpool *tp;           /* compute threads, shared by every model */
    pthread_mutex_t tp_lock;         /* one forward pass at a time on the pool */
};

bool models_load(const struct config *cfg, struct models *out, struct err *e);
void models_free(struct models *ms);
struct served_model *models_find(struct models *ms, const char *id);

#endif

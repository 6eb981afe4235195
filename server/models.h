/*
 * models.h — the models this daemon serves, by name.
 *
 * Names
 *   - a configured model (`--model ID=PATH`) is served as ID;
 *   - a registered model version (admin API, server/model_registry.h) is
 *     served as "<id>@<version>", and plain "<id>" means its highest
 *     loaded version;
 *   - an alias ("chat") names one registered version and can be switched.
 *   models_find() resolves in that order: alias, exact name, id.
 *
 * Lifetimes and zero-downtime switches (loop thread)
 *   A served_model is reference-counted: the table holds one reference
 *   while the model is listed, and every call in flight holds one
 *   (models_acquire / models_release, taken by server/inference.c for the
 *   whole call). Switching an alias or unloading a version only changes
 *   what new calls resolve to; calls already running finish on the version
 *   they started with, and the version's memory is released when its last
 *   call ends. No request fails because of a switch.
 *
 * Loading
 *   At start-up models_load() loads the configured models (a failure stops
 *   start-up, naming the model) and then every registered version marked
 *   loaded (a failure is logged and reported by models_failed(): /readyz
 *   answers 503 until it is fixed or unloaded). At run time
 *   models_load_async() loads a file on a worker thread (the loop keeps
 *   serving; weights are packed single-threaded so inference keeps the
 *   compute pool), after checking that the weights and the KV cache fit
 *   in MemAvailable.
 *
 * Ownership
 *   struct models owns every served_model; models_free() stops the
 *   schedulers (delivering their final events) and unmaps the files.
 */
#ifndef MAASD_MODELS_H
#define MAASD_MODELS_H

#include <pthread.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "engine/err.h"
#include "engine/scheduler.h"
#include "server/config.h"
#include "server/model_registry.h"

struct gguf_file;
struct model;
struct tokenizer;
struct chat_template;
struct threadpool;

struct served_model {
    char name[MODEL_NAME_MAX];       /* what clients call it */
    char model_id[MODEL_ID_MAX];
    int version;                     /* 0 for a configured model */
    char path[CONFIG_PATH_MAX];
    int64_t created;                 /* unix seconds: when it was loaded */
    int refs;                        /* loop thread; see above */
    struct gguf_file *gguf;
    void *gguf_buffer;               /* the demo model's in-memory GGUF, else NULL */
    struct model *model;
    struct tokenizer *tok;
    struct chat_template *tmpl;      /* from tokenizer.chat_template */
    struct sched *sched;
    int n_ctx;                       /* context per sequence */
    int n_vocab;
    int n_embd;
    uint64_t memory_bytes;           /* weights + KV cache, as admitted by the memory check */
    struct served_model *next_alive; /* every model not yet destroyed (models.alive) */
};

struct model_alias {
    char alias[MODEL_ID_MAX];
    struct served_model *target;
};

struct model_failure {
    char name[MODEL_NAME_MAX];
    struct err err;
};

struct models {
    struct served_model **items;     /* listed, in load order */
    int n, cap;
    struct model_alias *aliases;
    int n_aliases;
    struct model_failure *failed;    /* registered versions that did not load */
    int n_failed;
    struct threadpool *tp;           /* compute threads, shared by every model */
    pthread_mutex_t tp_lock;         /* one forward pass at a time on the pool */
    struct config cfg;               /* scheduler settings for every model */
    uv_loop_t *loop;
    int loading;                     /* async loads under way */
    struct served_model *alive;      /* listed or retired-but-in-use */
};

bool models_load(const struct config *cfg, uv_loop_t *loop, sqlite3 *db_read, struct models *out,
                 struct err *e);
/* Shutdown, first step: stop every scheduler, so that each delivers the
 * final events of what it still held; the calls can then finish. */
void models_stop(struct models *ms);
/* Shutdown, last step, after every call has ended. */
void models_free(struct models *ms);

/* Resolve a name as described above; NULL when nothing matches. */
struct served_model *models_find(struct models *ms, const char *name);
/* Listed models by exact name (aliases and ids not resolved). */
struct served_model *models_find_exact(struct models *ms, const char *name);

void models_acquire(struct served_model *m);
void models_release(struct models *ms, struct served_model *m);

/* Load `path` as "<model_id>@<version>" on a worker thread. done() runs on
 * the loop thread with the loaded model (not yet listed: list it with
 * models_list()) or NULL and the error: ERR_CONFLICT when it does not fit
 * in memory, the loader's error otherwise. */
typedef void (*models_loaded_fn)(void *arg, struct served_model *m, const struct err *e);
void models_load_async(struct models *ms, const char *model_id, int version, const char *path,
                       models_loaded_fn done, void *arg);
/* List a loaded model (takes the table's reference). */
void models_list(struct models *ms, struct served_model *m);
/* Unlist; the memory goes when the last call using it ends. */
void models_retire(struct models *ms, struct served_model *m);
/* Point `alias` at a listed registered model (create or move). */
void models_alias_set(struct models *ms, const char *alias, struct served_model *target);
/* The alias naming m, or NULL. */
const char *models_alias_of(const struct models *ms, const struct served_model *m);
/* A failed start-up load is forgotten (the version was unloaded). */
void models_forget_failure(struct models *ms, const char *name);

#endif

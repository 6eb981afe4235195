/* writer.c — see writer.h. */
#include "server/writer.h"

#include <pthread.h>
#include <stdlib.h>
#include <time.h>

#include "server/log.h"
#include "server/store.h"

/* A batch is bounded so one transaction never holds the write lock long
 * enough to starve a CLI writer past its busy timeout. */
#define WRITER_MAX_BATCH 512

struct writer_job {
    writer_job_fn job;
    writer_done_fn done;
    void *arg;
    struct err err;
    struct writer_job *next;
};

struct writer {
    sqlite3 *db;
    struct mailbox *mb;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    struct writer_job *head, *tail;
    bool stopping;
    struct writer_stats stats;
};

static uint64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* Runs on the loop thread: report one job's outcome. */
static void deliver(void *p)
{
    struct writer_job *j = p;
    if (j->done)
        j->done(j->arg, j->err.code == ERR_OK ? NULL : &j->err);
    free(j);
}

static void run_batch(struct writer *w, struct writer_job *batch)
{
    struct err e = {0};
    bool began = store_exec(w->db, "BEGIN IMMEDIATE", &e);
    for (struct writer_job *j = batch; j; j = j->next) {
        if (!began) {
            j->err = e;
            continue;
        }
        struct err je = {0};
        store_exec(w->db, "SAVEPOINT job", &je);
        if (je.code == ERR_OK && j->job(w->db, j->arg, &je)) {
            store_exec(w->db, "RELEASE job", &je);
        } else {
            if (je.code == ERR_OK)
                err_set(&je, ERR_INTERNAL, "writer job failed without an error");
            sqlite3_exec(w->db, "ROLLBACK TO job; RELEASE job", NULL, NULL, NULL);
        }
        j->err = je;
    }
    uint64_t t0 = now_us();
    if (began && !store_exec(w->db, "COMMIT", &e)) {
        sqlite3_exec(w->db, "ROLLBACK", NULL, NULL, NULL);
        for (struct writer_job *j = batch; j; j = j->next)
            if (j->err.code == ERR_OK)
                j->err = e;
    }
    if (!began || e.code != ERR_OK)
        log_line(LOG_ERROR, "database write failed", LF_STR("error", e.msg), LF_END);

    pthread_mutex_lock(&w->lock);
    w->stats.last_commit_us = now_us() - t0;
    w->stats.batches++;
    for (struct writer_job *j = batch; j; j = j->next) {
        w->stats.backlog--;
        if (j->err.code == ERR_OK)
            w->stats.jobs_done++;
        else
            w->stats.jobs_failed++;
    }
    pthread_mutex_unlock(&w->lock);

    for (struct writer_job *j = batch, *next; j; j = next) {
        next = j->next;
        mailbox_post(w->mb, deliver, j);
    }
}

static void *writer_main(void *p)
{
    struct writer *w = p;
    pthread_mutex_lock(&w->lock);
    for (;;) {
        while (!w->head && !w->stopping)
            pthread_cond_wait(&w->cond, &w->lock);
        if (!w->head && w->stopping)
            break;
        struct writer_job *batch = w->head, *last = batch;
        for (int n = 1; n < WRITER_MAX_BATCH && last->next; n++)
            last = last->next;
        w->head = last->next;
        if (!w->head)
            w->tail = NULL;
        last->next = NULL;
        pthread_mutex_unlock(&w->lock);
        run_batch(w, batch);
        pthread_mutex_lock(&w->lock);
    }
    pthread_mutex_unlock(&w->lock);
    return NULL;
}

bool writer_start(const char *db_path, struct mailbox *mb, struct writer **out, struct err *e)
{
    struct writer *w = calloc(1, sizeof *w);
    if (!w)
        return err_set(e, ERR_NOMEM, "out of memory");
    if (!store_open(db_path, STORE_READWRITE, &w->db, e)) {
        free(w);
        return false;
    }
    w->mb = mb;
    pthread_mutex_init(&w->lock, NULL);
    pthread_cond_init(&w->cond, NULL);
    if (pthread_create(&w->thread, NULL, writer_main, w) != 0) {
        store_close(w->db);
        free(w);
        return err_set(e, ERR_IO, "cannot start the database writer thread");
    }
    *out = w;
    return true;
}

void writer_submit(struct writer *w, writer_job_fn job, writer_done_fn done, void *arg)
{
    struct writer_job *j = calloc(1, sizeof *j);
    if (!j)
        abort(); /* dropping a ledger write silently is worse than stopping */
    j->job = job;
    j->done = done;
    j->arg = arg;
    pthread_mutex_lock(&w->lock);
    if (w->tail)
        w->tail->next = j;
    else
        w->head = j;
    w->tail = j;
    w->stats.backlog++;
    pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&w->lock);
}

void writer_get_stats(struct writer *w, struct writer_stats *out)
{
    pthread_mutex_lock(&w->lock);
    *out = w->stats;
    pthread_mutex_unlock(&w->lock);
}

void writer_stop(struct writer *w)
{
    if (!w)
        return;
    pthread_mutex_lock(&w->lock);
    w->stopping = true;
    pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&w->lock);
    pthread_join(w->thread, NULL);
    store_close(w->db);
    pthread_mutex_destroy(&w->lock);
    pthread_cond_destroy(&w->cond);
    free(w);
}

/* threadpool.c — see threadpool.h.
 *
 * A run is published as a generation number. Tasks are claimed from one
 * 64-bit word holding (generation << 32 | next task) with compare-and-swap,
 * so a worker that wakes up late — after the run it saw has ended, or even
 * during a later run — can never claim a task that is not from the run whose
 * job it read. The caller therefore waits only for tasks to complete, never
 * for workers to wake up: a descheduled worker (the machine is shared) costs
 * nothing unless it holds a task. */
#include "engine/threadpool.h"

#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* Waiting: spin with `pause` briefly, then yield the CPU between checks (a
 * thread we wait for may need this core), then sleep. A decode step's loops
 * follow each other within microseconds, so workers rarely sleep while the
 * engine is busy; between requests they sleep and cost nothing. */
#define SPIN_PAUSES 2000
#define YIELD_NS 300000

struct worker {
    pthread_t thread;
    struct threadpool *tp;
    int id;
};

struct threadpool {
    int n_threads;
    struct worker *workers;       /* n_threads - 1 */

    /* The current job; written before `generation` is published. */
    _Atomic(threadpool_fn) fn;
    _Atomic(void *) ctx;
    _Atomic uint32_t n_tasks;

    _Atomic uint64_t claim;       /* generation << 32 | next task */
    _Atomic uint32_t generation;  /* futex word the workers wait on */
    _Atomic uint32_t done;        /* tasks completed in this generation; futex word */
    _Atomic int workers_sleeping;
    _Atomic int caller_sleeping;
    _Atomic bool stop;
};

static void futex_wait(_Atomic uint32_t *word, uint32_t expected)
{
    syscall(SYS_futex, (uint32_t *)word, FUTEX_WAIT_PRIVATE, expected, NULL, NULL, 0);
}

static void futex_wake(_Atomic uint32_t *word, int n)
{
    syscall(SYS_futex, (uint32_t *)word, FUTEX_WAKE_PRIVATE, n, NULL, NULL, 0);
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Wait while *word == value; returns the new value. `sleeping` counts the
 * threads inside futex_wait so that wakers only make the syscall when
 * needed (seq-cst: either the waker sees the count or we see the change). */
static uint32_t wait_while(_Atomic uint32_t *word, uint32_t value, _Atomic int *sleeping)
{
    uint32_t now;
    for (int i = 0; i < SPIN_PAUSES; i++) {
        if ((now = atomic_load(word)) != value)
            return now;
        __builtin_ia32_pause();
    }
    uint64_t start = now_ns();
    for (;;) {
        if ((now = atomic_load(word)) != value)
            return now;
        if (now_ns() - start < YIELD_NS) {
            sched_yield();
            continue;
        }
        atomic_fetch_add(sleeping, 1);
        if (atomic_load(word) == value)
            futex_wait(word, value);
        atomic_fetch_sub(sleeping, 1);
        start = now_ns();
    }
}

/* Claim and run tasks of generation `gen` until none is left. */
static void run_tasks(struct threadpool *tp, uint32_t gen, threadpool_fn fn, void *ctx,
                      uint32_t n_tasks, int thread)
{
    uint64_t s = atomic_load(&tp->claim);
    for (;;) {
        if ((uint32_t)(s >> 32) != gen || (uint32_t)s >= n_tasks)
            return;
        if (!atomic_compare_exchange_weak(&tp->claim, &s, s + 1))
            continue;
        fn(ctx, (int)(uint32_t)s, thread);
        uint32_t done = atomic_fetch_add(&tp->done, 1) + 1;
        if (done == n_tasks && atomic_load(&tp->caller_sleeping))
            futex_wake(&tp->done, 1);
        s = atomic_load(&tp->claim);
    }
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct threadpool *tp = w->tp;
    uint32_t seen = 0;
    for (;;) {
        seen = wait_while(&tp->generation, seen, &tp->workers_sleeping);
        if (atomic_load(&tp->stop))
            return NULL;
        /* The job may already be over, or replaced: run_tasks() only claims
         * tasks of generation `seen`, whose job fields these are. */
        run_tasks(tp, seen, atomic_load(&tp->fn), atomic_load(&tp->ctx), atomic_load(&tp->n_tasks),
                  w->id);
    }
}

int threadpool_cpu_count(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : (int)n;
}

bool threadpool_create(int n_threads, struct threadpool **out, struct err *e)
{
    *out = NULL;
    if (n_threads < 0 || n_threads > 1024)
        return err_set_param(e, ERR_INVALID, "threads", "thread count %d is out of range (0..1024)",
                             n_threads);
    if (n_threads == 0)
        n_threads = threadpool_cpu_count();
    struct threadpool *tp = calloc(1, sizeof *tp);
    if (!tp)
        return err_set(e, ERR_NOMEM, "out of memory for the thread pool");
    tp->n_threads = n_threads;
    if (n_threads > 1) {
        tp->workers = calloc((size_t)n_threads - 1, sizeof *tp->workers);
        if (!tp->workers) {
            free(tp);
            return err_set(e, ERR_NOMEM, "out of memory for the thread pool");
        }
    }
    for (int i = 0; i < n_threads - 1; i++) {
        struct worker *w = &tp->workers[i];
        w->tp = tp;
        w->id = i + 1;
        int rc = pthread_create(&w->thread, NULL, worker_main, w);
        if (rc != 0) {
            tp->n_threads = i + 1; /* destroy joins only the started ones */
            threadpool_destroy(tp);
            return err_set(e, ERR_NOMEM, "cannot start worker thread %d: %s", i + 1, strerror(rc));
        }
    }
    *out = tp;
    return true;
}

void threadpool_destroy(struct threadpool *tp)
{
    if (!tp)
        return;
    atomic_store(&tp->stop, true);
    atomic_fetch_add(&tp->generation, 1);
    futex_wake(&tp->generation, INT_MAX);
    for (int i = 0; i < tp->n_threads - 1; i++)
        pthread_join(tp->workers[i].thread, NULL);
    free(tp->workers);
    free(tp);
}

int threadpool_size(const struct threadpool *tp)
{
    return tp->n_threads;
}

void threadpool_run(struct threadpool *tp, threadpool_fn fn, void *ctx, int n_tasks)
{
    if (n_tasks <= 0)
        return;
    if (tp->n_threads == 1 || n_tasks == 1) {
        for (int t = 0; t < n_tasks; t++)
            fn(ctx, t, 0);
        return;
    }
    uint32_t gen = atomic_load(&tp->generation) + 1;
    if (gen == 0) /* 0 is what a new worker has "seen" */
        gen = 1;
    /* Close the claim word to every earlier generation BEFORE the job fields
     * change: a late worker of the previous run may read this run's n_tasks
     * while the word still carried the previous generation, and would then
     * claim (and count as done) a task that run never had. With the word
     * already on `gen`, no late worker can claim anything, and no worker of
     * `gen` claims before the claim is opened below. */
    atomic_store(&tp->claim, ((uint64_t)gen << 32) | UINT32_MAX);
    atomic_store(&tp->fn, fn);
    atomic_store(&tp->ctx, ctx);
    atomic_store(&tp->n_tasks, (uint32_t)n_tasks);
    atomic_store(&tp->done, 0);
    atomic_store(&tp->claim, (uint64_t)gen << 32);
    atomic_store(&tp->generation, gen);
    if (atomic_load(&tp->workers_sleeping) > 0)
        futex_wake(&tp->generation, INT_MAX);

    run_tasks(tp, gen, fn, ctx, (uint32_t)n_tasks, 0);

    uint32_t d;
    while ((d = atomic_load(&tp->done)) != (uint32_t)n_tasks)
        wait_while(&tp->done, d, &tp->caller_sleeping);
}

/* threadpool.c — see threadpool.h. */
#include "engine/threadpool.h"

#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* How long a waiting thread spins before it sleeps. A decode step's loops
 * follow each other within microseconds, so workers rarely sleep while the
 * engine is busy; between requests they sleep and cost nothing. */
#define SPIN_NS 200000

struct worker {
    pthread_t thread;
    struct threadpool *tp;
    int id;
};

struct threadpool {
    int n_threads;
    struct worker *workers;       /* n_threads - 1 */

    /* One run at a time: published before `generation` is bumped. */
    threadpool_fn fn;
    void *ctx;
    int n_tasks;

    _Atomic uint32_t generation;  /* futex word the workers wait on */
    _Atomic int sleepers;         /* workers inside futex_wait */
    _Atomic int next_task;
    _Atomic uint32_t pending;     /* workers not done with this generation; futex word */
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

static void run_tasks(struct threadpool *tp, int thread)
{
    for (;;) {
        int t = atomic_fetch_add_explicit(&tp->next_task, 1, memory_order_relaxed);
        if (t >= tp->n_tasks)
            return;
        tp->fn(tp->ctx, t, thread);
    }
}

/* Spin, then sleep, until *word differs from `value`; returns the new value. */
static uint32_t wait_change(_Atomic uint32_t *word, uint32_t value, _Atomic int *sleep_flag)
{
    uint64_t start = 0;
    for (unsigned spin = 0;; spin++) {
        uint32_t now = atomic_load(word);
        if (now != value)
            return now;
        if ((spin & 255) != 255) {
            __builtin_ia32_pause();
            continue;
        }
        uint64_t t = now_ns();
        if (!start)
            start = t;
        if (t - start < SPIN_NS)
            continue;
        atomic_fetch_add(sleep_flag, 1);
        if (atomic_load(word) == value)
            futex_wait(word, value);
        atomic_fetch_sub(sleep_flag, 1);
    }
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct threadpool *tp = w->tp;
    uint32_t seen = 0;
    for (;;) {
        seen = wait_change(&tp->generation, seen, &tp->sleepers);
        if (atomic_load(&tp->stop))
            return NULL;
        run_tasks(tp, w->id);
        /* Seq-cst against the caller's increment of caller_sleeping in
         * wait_change(): either it sees pending change or we see it asleep. */
        if (atomic_fetch_sub(&tp->pending, 1) == 1 && atomic_load(&tp->caller_sleeping))
            futex_wake(&tp->pending, 1);
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
    tp->fn = fn;
    tp->ctx = ctx;
    tp->n_tasks = n_tasks;
    atomic_store(&tp->next_task, 0);
    atomic_store(&tp->pending, (uint32_t)(tp->n_threads - 1));
    atomic_fetch_add(&tp->generation, 1);
    if (atomic_load(&tp->sleepers) > 0)
        futex_wake(&tp->generation, INT_MAX);

    run_tasks(tp, 0);

    uint32_t p;
    while ((p = atomic_load(&tp->pending)) != 0)
        wait_change(&tp->pending, p, &tp->caller_sleeping);
}

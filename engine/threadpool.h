/*
 * threadpool.h — a persistent pool of worker threads for the engine's
 * data-parallel loops (matrix products, attention).
 *
 * Why: a forward pass runs a few hundred parallel loops per token, and
 * starting a thread costs milliseconds here. The workers are started once and
 * wait between loops: they spin briefly (a decode step's loops follow each
 * other within microseconds), then yield, then sleep on a futex, so an idle
 * engine costs no CPU.
 *
 * Contract
 *   threadpool_run(tp, fn, ctx, n) calls fn(ctx, task, thread) exactly once
 *   for every task in [0, n) and returns when all calls have returned. Tasks
 *   are claimed dynamically, so a core that is busy with something else
 *   simply claims fewer, and the caller never waits for a worker that has
 *   not woken up (only for tasks in progress); `thread` is in
 *   [0, threadpool_size()) and is stable for the duration of one call, so it
 *   can index per-thread scratch. The caller's thread takes part as thread 0.
 *
 *   Which thread runs which task is not deterministic: results must not
 *   depend on it (the engine's kernels compute every output element with the
 *   same arithmetic whatever the split).
 *
 * Threads
 *   One caller at a time: threadpool_run() is not reentrant and must not be
 *   called from inside a task, nor from two threads at once. The engine's
 *   single scheduler thread owns the pool.
 *
 * Ownership
 *   threadpool_destroy() joins the workers; it must not race a run().
 */
#ifndef MAASD_THREADPOOL_H
#define MAASD_THREADPOOL_H

#include <stdbool.h>

#include "engine/err.h"

struct threadpool;

typedef void (*threadpool_fn)(void *ctx, int task, int thread);

/* n_threads counts the caller; 0 means the number of online CPUs. */
bool threadpool_create(int n_threads, struct threadpool **out, struct err *e);
void threadpool_destroy(struct threadpool *tp);

int threadpool_size(const struct threadpool *tp);

void threadpool_run(struct threadpool *tp, threadpool_fn fn, void *ctx, int n_tasks);

/* Number of online CPUs (at least 1). */
int threadpool_cpu_count(void);

#endif

/*
 * writer.h — the daemon's single database-writer thread.
 *
 * Why: SQLite allows one writer at a time, and a commit with synchronous=FULL
 * costs an fsync. One thread that owns the only writing connection and
 * commits queued jobs in batches (group commit) gives the daemon one writer
 * path, keeps fsyncs off the event loop, and amortises them under load.
 *
 * Contract
 *   writer_submit() queues a job from the loop thread. The writer thread runs
 *   queued jobs in order, several per transaction, each inside its own
 *   SAVEPOINT: a job that fails is rolled back alone and its error reported;
 *   the others commit. After the COMMIT (or its failure, which fails every
 *   job of the batch), each job's done() runs on the loop thread through the
 *   mailbox, in submission order. done() is called exactly once per job.
 *
 *   writer_stop() finishes every queued job, then closes the connection and
 *   joins the thread; submitting after stop is a bug.
 *
 * Ownership
 *   `arg` belongs to the submitter; done() is the place to free it.
 */
#ifndef MAASD_WRITER_H
#define MAASD_WRITER_H

#include <sqlite3.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/err.h"
#include "server/mailbox.h"

typedef bool (*writer_job_fn)(sqlite3 *db, void *arg, struct err *e);
typedef void (*writer_done_fn)(void *arg, const struct err *e);

struct writer;

struct writer_stats {
    uint64_t jobs_done;
    uint64_t jobs_failed;
    uint64_t batches;
    uint64_t last_commit_us;   /* duration of the most recent COMMIT */
    size_t backlog;            /* queued, not yet committed */
};

/* Opens its own read-write connection to db_path. */
bool writer_start(const char *db_path, struct mailbox *mb, struct writer **out, struct err *e);
void writer_submit(struct writer *w, writer_job_fn job, writer_done_fn done, void *arg);
void writer_get_stats(struct writer *w, struct writer_stats *out);
void writer_stop(struct writer *w);

#endif

/*
 * mailbox.h — run a function on the event-loop thread, from any thread.
 *
 * This is the one way results cross back to the loop: the scheduler's token
 * events, the database writer's commits and the test routes' delayed replies
 * all post here. It wraps a uv_async_t and a mutex-protected FIFO, because
 * uv_async_send() coalesces wake-ups and carries no payload.
 *
 * Contract
 *   mailbox_post() may be called from any thread, including the loop thread;
 *   each posted fn(arg) runs exactly once, on the loop thread, in post order.
 *   After mailbox_close() has been called (loop thread), posts are still
 *   accepted and run by mailbox_drain(): nothing posted is ever lost, so the
 *   owner of `arg` can always count on its fn running.
 *
 * Ownership
 *   The mailbox owns its queue nodes; `arg` stays owned by the poster (fn
 *   typically frees it).
 */
#ifndef MAASD_MAILBOX_H
#define MAASD_MAILBOX_H

#include <pthread.h>
#include <uv.h>

typedef void (*mailbox_fn)(void *arg);

struct mailbox_item;

struct mailbox {
    uv_async_t async;
    pthread_mutex_t lock;
    struct mailbox_item *head, *tail;
    int closing;
};

int mailbox_init(struct mailbox *mb, uv_loop_t *loop);
void mailbox_post(struct mailbox *mb, mailbox_fn fn, void *arg);
/* Run everything queued now (loop thread). */
void mailbox_drain(struct mailbox *mb);
/* Close the async handle (loop thread); the loop must run once more. */
void mailbox_close(struct mailbox *mb);

#endif

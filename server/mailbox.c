/* mailbox.c — see mailbox.h. */
#include "server/mailbox.h"

#include <stdlib.h>

struct mailbox_item {
    mailbox_fn fn;
    void *arg;
    struct mailbox_item *next;
};

static void on_async(uv_async_t *h) { mailbox_drain(h->data); }

int mailbox_init(struct mailbox *mb, uv_loop_t *loop)
{
    mb->head = mb->tail = NULL;
    mb->closing = 0;
    pthread_mutex_init(&mb->lock, NULL);
    mb->async.data = mb;
    return uv_async_init(loop, &mb->async, on_async);
}

void mailbox_post(struct mailbox *mb, mailbox_fn fn, void *arg)
{
    struct mailbox_item *it = malloc(sizeof *it);
    if (!it)
        abort(); /* losing a completion would lose billing data; fail loudly */
    it->fn = fn;
    it->arg = arg;
    it->next = NULL;
    pthread_mutex_lock(&mb->lock);
    if (mb->tail)
        mb->tail->next = it;
    else
        mb->head = it;
    mb->tail = it;
    int closing = mb->closing;
    pthread_mutex_unlock(&mb->lock);
    if (!closing)
        uv_async_send(&mb->async);
}

void mailbox_drain(struct mailbox *mb)
{
    for (;;) {
        pthread_mutex_lock(&mb->lock);
        struct mailbox_item *list = mb->head;
        mb->head = mb->tail = NULL;
        pthread_mutex_unlock(&mb->lock);
        if (!list)
            return;
        while (list) {
            struct mailbox_item *next = list->next;
            list->fn(list->arg);
            free(list);
            list = next;
        }
    }
}

void mailbox_close(struct mailbox *mb)
{
    pthread_mutex_lock(&mb->lock);
    mb->closing = 1;
    pthread_mutex_unlock(&mb->lock);
    uv_close((uv_handle_t *)&mb->async, NULL);
}

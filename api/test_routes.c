/*
 * test_routes.c — the /_test/ routes, served only with --test-routes.
 *
 * They exercise, without a model, the exact mechanism inference uses: work
 * on another thread, results posted back through the mailbox (uv_async_t),
 * a suspended request resumed with its answer, and a chunked stream fed
 * piece by piece. The end-to-end tests use them for the asynchronous path,
 * streaming, disconnects and graceful shutdown.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api/api.h"
#include "server/daemon.h"

/* Shared by the worker thread and the request; freed by whoever leaves
 * last. Only the loop thread touches `req` and `refs`. */
struct test_job {
    struct http_request *req;   /* NULL once the request has closed */
    struct mailbox *mb;
    int refs;
    long ms;
    int chunks, sent;
};

static void job_unref(struct test_job *j)
{
    if (--j->refs == 0)
        free(j);
}

static void on_req_close(struct http_request *r, void *arg, bool aborted)
{
    (void)r;
    (void)aborted;
    struct test_job *j = arg;
    j->req = NULL;
    job_unref(j);
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static long query_long(struct http_request *r, const char *name, long def, long max)
{
    const char *v = http_request_query(r, name);
    if (!v)
        return def;
    long n = strtol(v, NULL, 10);
    return n < 0 ? 0 : n > max ? max : n;
}

static struct test_job *job_new(struct api_call *c)
{
    struct test_job *j = calloc(1, sizeof *j);
    if (!j)
        abort();
    j->req = c->req;
    j->mb = &c->d->mailbox;
    j->refs = 2;   /* the request and the worker */
    http_request_on_close(c->req, on_req_close, j);
    return j;
}

static void start_worker(void *(*fn)(void *), struct test_job *j)
{
    pthread_t t;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    if (pthread_create(&t, &attr, fn, j) != 0)
        abort();
    pthread_attr_destroy(&attr);
}

/* --- /_test/slow?ms=N: answers after N ms, computed "elsewhere" --- */

static void slow_done(void *arg)
{
    struct test_job *j = arg;
    if (j->req) {
        char body[96];
        int n = snprintf(body, sizeof body, "{\"slept_ms\":%ld}\n", j->ms);
        http_respond(j->req, 200, "application/json", body, (size_t)n);
    }
    job_unref(j);
}

static void *slow_worker(void *arg)
{
    struct test_job *j = arg;
    sleep_ms(j->ms);
    mailbox_post(j->mb, slow_done, j);
    return NULL;
}

void api_test_slow(struct api_call *c)
{
    struct test_job *j = job_new(c);
    j->ms = query_long(c->req, "ms", 100, 600000);
    http_request_suspend(c->req);
    start_worker(slow_worker, j);
}

/* --- /_test/stream?chunks=N&ms=M: N server-sent events, M ms apart --- */

static void stream_chunk(void *arg)
{
    struct test_job *j = arg;
    if (j->req) {
        if (j->sent < j->chunks) {
            char ev[64];
            int n = snprintf(ev, sizeof ev, "data: {\"chunk\":%d}\n\n", j->sent);
            http_stream_write(j->req, ev, (size_t)n);
        } else {
            http_stream_write(j->req, "data: [DONE]\n\n", 14);
            http_stream_end(j->req);
        }
    }
    j->sent++;
    if (j->sent > j->chunks)
        job_unref(j);
}

static void *stream_worker(void *arg)
{
    struct test_job *j = arg;
    for (int i = 0; i <= j->chunks; i++) {
        if (i > 0)
            sleep_ms(j->ms);
        mailbox_post(j->mb, stream_chunk, j);
    }
    return NULL;
}

void api_test_stream(struct api_call *c)
{
    struct test_job *j = job_new(c);
    j->chunks = (int)query_long(c->req, "chunks", 5, 10000);
    j->ms = query_long(c->req, "ms", 20, 60000);
    http_stream_start(c->req, 200, "text/event-stream");
    start_worker(stream_worker, j);
}

/* --- /_test/echo: JSON in, the same JSON out (body parsing and limits) --- */

void api_test_echo(struct api_call *c)
{
    size_t len;
    const char *body = http_request_body(c->req, &len);
    cJSON *json = cJSON_ParseWithLength(body, len);
    if (!json) {
        struct err e;
        err_set(&e, ERR_INVALID, "request body is not valid JSON");
        api_respond_error(c->req, &e);
        return;
    }
    api_respond_json(c->req, 200, json);
}

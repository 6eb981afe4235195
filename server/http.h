/*
 * http.h — the HTTP front end: libmicrohttpd driven by the libuv loop.
 *
 * Design (docs/architecture.md has the picture)
 *   MHD runs without threads of its own, in epoll mode. Its epoll fd is
 *   watched by a uv_poll_t and its next timeout by a uv_timer_t, so every
 *   HTTP callback runs on the loop thread, interleaved with everything else
 *   the loop does. A handler must never block: work that takes time
 *   (inference, large database reads) suspends the request and answers later
 *   from the loop thread, after the result crossed back through the mailbox.
 *
 * Request lifecycle (all on the loop thread)
 *   1. headers arrive: the request is created, its id chosen (a sane
 *      X-Request-Id is honoured, else one is generated) and
 *      handlers.on_headers() decides whether the route exists and the body is
 *      acceptable (it may respond at once with an error);
 *   2. the body is buffered up to max_body_bytes (over it: 413 through
 *      handlers.on_error());
 *   3. handlers.on_request() runs with the whole body. It either responds
 *      now (http_respond*), or suspends and responds later, or starts a
 *      stream (http_stream_*), feeding it until http_stream_end();
 *   4. when the response has been sent or the client went away, the
 *      on_close callback (if set) runs with aborted=true/false, one JSON log
 *      line is written, and the request is freed.
 *
 * Ownership and lifetimes
 *   struct http_request belongs to this module. A handler may keep the
 *   pointer until its on_close callback runs, and must not touch it after.
 *   Bodies passed to http_respond() are copied. Per-request handler state is
 *   attached with http_request_set_state() and freed by this module.
 *
 * Disconnects
 *   A suspended request (no bytes flowing) has its socket watched for a peer
 *   hang-up, so a client that leaves is noticed at once: on_close runs with
 *   aborted=true and work for it can be cancelled.
 */
#ifndef MAASD_HTTP_H
#define MAASD_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "engine/err.h"

struct tls;
struct http_server;
struct http_request;

struct http_handlers {
    /* Headers complete, body not yet read. Return true to read the body and
     * continue; return false after responding (e.g. 404, 405, 415). */
    bool (*on_headers)(struct http_request *r, void *ctx);
    /* Body complete. Respond now, or suspend / stream and respond later. */
    void (*on_request)(struct http_request *r, void *ctx);
    /* Render an error the HTTP layer itself detected (413). */
    void (*on_error)(struct http_request *r, const struct err *e, void *ctx);
    /* The request ended (before on_close's log line and the free): its
     * final status (499 when the client left first) and duration, for
     * metrics. May be NULL. */
    void (*on_done)(struct http_request *r, unsigned status, double seconds, void *ctx);
    void *ctx;
};

struct http_options {
    const char *host;             /* numeric or name; "0.0.0.0", "::1" */
    int port;                     /* 0 = ephemeral */
    unsigned max_connections;
    unsigned connection_timeout_s;
    uint64_t max_body_bytes;
    struct tls *tls;              /* HTTPS with these credentials (server/tls.h); NULL: HTTP */
};

bool http_server_start(uv_loop_t *loop, const struct http_options *opt,
                       const struct http_handlers *h, struct http_server **out,
                       struct err *e);
int http_server_port(const struct http_server *s);     /* the bound port */
/* Requests received and not yet finished (for shutdown and metrics). */
unsigned http_server_in_flight(const struct http_server *s);
/* Stop accepting connections; requests in flight go on. Responses sent from
 * now on carry "Connection: close". */
void http_server_quiesce(struct http_server *s);
/* Stop: requests still in flight are aborted (their on_close runs with
 * aborted=true); close the listening socket and the uv handles. The loop
 * must run once more to finish closing; `on_closed` is then called. */
void http_server_stop(struct http_server *s, void (*on_closed)(void *arg), void *arg);

/* --- the request --- */
const char *http_request_method(const struct http_request *r);
const char *http_request_path(const struct http_request *r);   /* without the query */
const char *http_request_id(const struct http_request *r);
/* Case-insensitive; NULL when absent. Valid for the request's lifetime. */
const char *http_request_header(struct http_request *r, const char *name);
/* URL-decoded query argument; NULL when absent. */
const char *http_request_query(struct http_request *r, const char *name);
/* Every value of a repeated query argument (`a[]=x&a[]=y`), up to max, in
 * order; returns how many were stored. */
size_t http_request_query_all(struct http_request *r, const char *name, const char **out,
                              size_t max);
/* The body (NUL-terminated for convenience; may contain NULs). */
const char *http_request_body(const struct http_request *r, size_t *len);
/* Whether the client connected from a loopback address (127.0.0.0/8, ::1,
 * or an IPv4-mapped 127.x). */
bool http_request_peer_loopback(struct http_request *r);
/* Monotonic time the request's headers arrived, in ns. */
uint64_t http_request_start_ns(const struct http_request *r);

void http_request_set_state(struct http_request *r, void *state, void (*free_fn)(void *));
void *http_request_state(const struct http_request *r);
/* Called once, when the request ends: aborted=true when the client went
 * away or the server stopped before the response was complete. */
void http_request_on_close(struct http_request *r,
                           void (*fn)(struct http_request *r, void *arg, bool aborted),
                           void *arg);

/* --- responding --- */
/* Extra response header, before the response starts; copied. */
void http_response_header(struct http_request *r, const char *name, const char *value);
/* A complete response. May be called while the handler runs or later (loop
 * thread) after http_request_suspend(). */
void http_respond(struct http_request *r, unsigned status, const char *content_type,
                  const char *body, size_t len);
/* Take ownership of a malloc'ed body instead of copying it. */
void http_respond_owned(struct http_request *r, unsigned status, const char *content_type,
                        char *body, size_t len);
/* The handler will respond later; call before returning from on_request. */
void http_request_suspend(struct http_request *r);

/* Chunked streaming (Transfer-Encoding: chunked). Start sends the status
 * and headers; write queues bytes (copied) and wakes the connection; end
 * finishes the stream once everything queued has been sent. */
void http_stream_start(struct http_request *r, unsigned status, const char *content_type);
void http_stream_write(struct http_request *r, const char *data, size_t len);
void http_stream_end(struct http_request *r);
/* Bytes queued but not yet handed to the socket (flow control). */
size_t http_stream_pending(const struct http_request *r);

#endif

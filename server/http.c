/* http.c — see http.h. Everything in this file runs on the loop thread. */
#include "server/http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "server/log.h"
#include "server/tls.h"

struct header {
    char *name, *value;
};

enum req_phase {
    PHASE_HEADERS,    /* created, body not started */
    PHASE_BODY,       /* reading the body */
    PHASE_HANDLED,    /* handed to on_request */
    PHASE_QUEUED,     /* MHD has our response */
};

struct http_request {
    struct http_server *srv;
    struct MHD_Connection *conn;
    struct http_request *prev, *next;   /* in-flight list */
    char id[72];
    char method[16];
    char *path;
    uint64_t start_ns;
    enum req_phase phase;

    char *body;
    size_t body_len, body_cap;
    bool body_rejected;               /* 413 queued; ignore further upload */

    struct header *headers;           /* response headers to add */
    size_t n_headers;
    struct MHD_Response *pending;     /* built, waiting to be queued */
    unsigned status;
    uint64_t bytes_out;

    bool suspended;
    bool client_gone;
    uv_poll_t *hangup_watch;

    /* streaming */
    bool streaming, stream_ended;
    char *sbuf;
    size_t slen, soff, scap;

    void *state;
    void (*state_free)(void *);
    void (*on_close)(struct http_request *, void *, bool);
    void *on_close_arg;
    bool closed_notified;
};

struct http_server {
    uv_loop_t *loop;
    struct MHD_Daemon *mhd;
    struct http_handlers h;
    struct http_options opt;
    int listen_fd;
    int port;
    uv_poll_t epoll_watch;
    uv_timer_t timer;
    struct http_request *in_flight;
    unsigned n_in_flight;
    bool quiescing;
    bool stopping;
    int handles_open;
    void (*on_closed)(void *);
    void *on_closed_arg;
};

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---- driving MHD from the loop ------------------------------------------------ */

static void on_timer(uv_timer_t *t);

/* After MHD did anything, ask it when it next needs to run. A timeout of 0
 * means work is pending (data already read, a connection resumed). */
static void rearm(struct http_server *s)
{
    if (s->stopping)
        return;
    MHD_UNSIGNED_LONG_LONG to = 0;
    if (MHD_get_timeout(s->mhd, &to) == MHD_YES)
        uv_timer_start(&s->timer, on_timer, to, 0);
    else
        uv_timer_stop(&s->timer);
}

static void run_mhd(struct http_server *s)
{
    if (s->stopping)
        return;
    MHD_run(s->mhd);
    rearm(s);
}

static void on_timer(uv_timer_t *t) { run_mhd(t->data); }

static void on_epoll_ready(uv_poll_t *p, int status, int events)
{
    (void)status;
    (void)events;
    run_mhd(p->data);
}

/* ---- hang-up detection for suspended requests ---------------------------------- */

static void free_handle(uv_handle_t *h) { free(h); }

static void notify_close(struct http_request *r, bool aborted)
{
    if (r->closed_notified)
        return;
    r->closed_notified = true;
    if (r->on_close)
        r->on_close(r, r->on_close_arg, aborted);
}

static void unwatch_hangup(struct http_request *r)
{
    if (!r->hangup_watch)
        return;
    uv_poll_stop(r->hangup_watch);
    uv_close((uv_handle_t *)r->hangup_watch, free_handle);
    r->hangup_watch = NULL;
}

static void resume(struct http_request *r)
{
    if (!r->suspended)
        return;
    unwatch_hangup(r);
    r->suspended = false;
    MHD_resume_connection(r->conn);
    /* MHD's inter-thread channel wakes the epoll fd too; the timer makes the
     * next MHD_run happen on this loop iteration regardless. */
    uv_timer_start(&r->srv->timer, on_timer, 0, 0);
}

static void on_hangup(uv_poll_t *p, int status, int events)
{
    struct http_request *r = p->data;
    if (status < 0 || (events & UV_DISCONNECT)) {
        r->client_gone = true;
        notify_close(r, true);
        resume(r); /* let MHD see the closed socket and clean up */
    }
}

static void suspend(struct http_request *r)
{
    if (r->suspended)
        return;
    MHD_suspend_connection(r->conn);
    r->suspended = true;
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (!ci)
        return;
    uv_poll_t *w = malloc(sizeof *w);
    if (!w || uv_poll_init_socket(r->srv->loop, w, ci->connect_fd) != 0) {
        free(w);
        return; /* without the watch a hang-up is noticed at the next write */
    }
    w->data = r;
    if (uv_poll_start(w, UV_DISCONNECT, on_hangup) != 0) {
        uv_close((uv_handle_t *)w, free_handle);
        return;
    }
    r->hangup_watch = w;
}

/* ---- responses ------------------------------------------------------------------- */

static void add_headers(struct http_request *r, struct MHD_Response *resp,
                        const char *content_type)
{
    if (content_type)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    MHD_add_response_header(resp, "X-Request-Id", r->id);
    for (size_t i = 0; i < r->n_headers; i++)
        MHD_add_response_header(resp, r->headers[i].name, r->headers[i].value);
    if (r->srv->quiescing)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
}

static void set_pending(struct http_request *r, struct MHD_Response *resp, unsigned status)
{
    if (!resp)
        abort(); /* MHD only fails here on allocation failure */
    if (r->pending || r->phase == PHASE_QUEUED) {
        /* A second response is a handler bug; keep the first. */
        log_line(LOG_ERROR, "handler responded twice", LF_STR("request_id", r->id), LF_END);
        MHD_destroy_response(resp);
        return;
    }
    r->pending = resp;
    r->status = status;
    resume(r);
}

void http_respond_owned(struct http_request *r, unsigned status, const char *content_type,
                        char *body, size_t len)
{
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
    if (resp)
        add_headers(r, resp, content_type);
    r->bytes_out = len;
    set_pending(r, resp, status);
}

void http_respond(struct http_request *r, unsigned status, const char *content_type,
                  const char *body, size_t len)
{
    char *copy = malloc(len ? len : 1);
    if (!copy)
        abort();
    memcpy(copy, body, len);
    http_respond_owned(r, status, content_type, copy, len);
}

void http_response_header(struct http_request *r, const char *name, const char *value)
{
    struct header *nh = realloc(r->headers, (r->n_headers + 1) * sizeof *nh);
    if (!nh)
        abort();
    r->headers = nh;
    nh[r->n_headers].name = strdup(name);
    nh[r->n_headers].value = strdup(value);
    if (!nh[r->n_headers].name || !nh[r->n_headers].value)
        abort();
    r->n_headers++;
}

void http_request_suspend(struct http_request *r)
{
    if (!r->pending && r->phase != PHASE_QUEUED)
        suspend(r);
}

/* MHD pulls stream bytes from here. With nothing to send yet, the connection
 * is suspended (the one safe place besides the access handler, per MHD) and
 * http_stream_write() resumes it. */
static ssize_t stream_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)pos;
    struct http_request *r = cls;
    if (r->client_gone)
        return MHD_CONTENT_READER_END_WITH_ERROR;
    if (r->soff < r->slen) {
        size_t n = r->slen - r->soff;
        if (n > max)
            n = max;
        memcpy(buf, r->sbuf + r->soff, n);
        r->soff += n;
        r->bytes_out += n;
        if (r->soff == r->slen)
            r->soff = r->slen = 0;
        return (ssize_t)n;
    }
    if (r->stream_ended)
        return MHD_CONTENT_READER_END_OF_STREAM;
    if (r->srv->stopping)
        return MHD_CONTENT_READER_END_WITH_ERROR;
    suspend(r);
    return 0;
}

void http_stream_start(struct http_request *r, unsigned status, const char *content_type)
{
    r->streaming = true;
    struct MHD_Response *resp =
        MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16 * 1024, stream_reader, r, NULL);
    if (resp) {
        add_headers(r, resp, content_type);
        /* Proxies must not buffer a token stream. */
        MHD_add_response_header(resp, "Cache-Control", "no-cache");
        MHD_add_response_header(resp, "X-Accel-Buffering", "no");
    }
    set_pending(r, resp, status);
}

void http_stream_write(struct http_request *r, const char *data, size_t len)
{
    if (r->client_gone || r->stream_ended || len == 0)
        return;
    if (r->slen + len > r->scap) {
        size_t cap = r->scap ? r->scap : 4096;
        while (cap < r->slen + len)
            cap *= 2;
        char *nb = realloc(r->sbuf, cap);
        if (!nb)
            abort();
        r->sbuf = nb;
        r->scap = cap;
    }
    memcpy(r->sbuf + r->slen, data, len);
    r->slen += len;
    if (r->phase == PHASE_QUEUED)
        resume(r);
}

void http_stream_end(struct http_request *r)
{
    r->stream_ended = true;
    if (r->phase == PHASE_QUEUED)
        resume(r);
}

size_t http_stream_pending(const struct http_request *r) { return r->slen - r->soff; }

/* ---- MHD callbacks --------------------------------------------------------------- */

static bool sane_request_id(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 64)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || c == '.' || c == ':'))
            return false;
    }
    return true;
}

static void new_request_id(char *out, size_t size)
{
    unsigned char rnd[12];
    if (getrandom(rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd) {
        /* Uniqueness matters, secrecy does not: fall back to time. */
        uint64_t t = mono_ns();
        memcpy(rnd, &t, sizeof t);
        memset(rnd + 8, 0, 4);
    }
    int n = snprintf(out, size, "req_");
    for (size_t i = 0; i < sizeof rnd && (size_t)n + 2 < size; i++)
        n += snprintf(out + n, size - (size_t)n, "%02x", rnd[i]);
}

static struct http_request *request_new(struct http_server *s, struct MHD_Connection *conn,
                                        const char *url, const char *method)
{
    struct http_request *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->srv = s;
    r->conn = conn;
    r->start_ns = mono_ns();
    snprintf(r->method, sizeof r->method, "%s", method);
    r->path = strdup(url);
    if (!r->path) {
        free(r);
        return NULL;
    }
    const char *rid = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-Request-Id");
    if (rid && sane_request_id(rid))
        snprintf(r->id, sizeof r->id, "%s", rid);
    else
        new_request_id(r->id, sizeof r->id);
    r->next = s->in_flight;
    if (s->in_flight)
        s->in_flight->prev = r;
    s->in_flight = r;
    s->n_in_flight++;
    return r;
}

static void request_free(struct http_request *r)
{
    struct http_server *s = r->srv;
    if (r->prev)
        r->prev->next = r->next;
    else
        s->in_flight = r->next;
    if (r->next)
        r->next->prev = r->prev;
    s->n_in_flight--;
    unwatch_hangup(r);
    if (r->pending)
        MHD_destroy_response(r->pending);
    if (r->state_free)
        r->state_free(r->state);
    for (size_t i = 0; i < r->n_headers; i++) {
        free(r->headers[i].name);
        free(r->headers[i].value);
    }
    free(r->headers);
    free(r->body);
    free(r->sbuf);
    free(r->path);
    free(r);
}

static enum MHD_Result queue_pending(struct http_request *r)
{
    struct MHD_Response *resp = r->pending;
    r->pending = NULL;
    r->phase = PHASE_QUEUED;
    enum MHD_Result rc = MHD_queue_response(r->conn, r->status, resp);
    MHD_destroy_response(resp);
    return rc;
}

static bool append_body(struct http_request *r, const char *data, size_t len)
{
    if (r->body_len + len + 1 > r->body_cap) {
        size_t cap = r->body_cap ? r->body_cap : 4096;
        while (cap < r->body_len + len + 1)
            cap *= 2;
        char *nb = realloc(r->body, cap);
        if (!nb)
            return false;
        r->body = nb;
        r->body_cap = cap;
    }
    memcpy(r->body + r->body_len, data, len);
    r->body_len += len;
    r->body[r->body_len] = '\0';
    return true;
}

static void reject_too_large(struct http_request *r)
{
    struct err e;
    err_set(&e, ERR_TOO_LARGE, "request body is larger than the limit of %llu bytes",
            (unsigned long long)r->srv->opt.max_body_bytes);
    r->body_rejected = true;
    r->srv->h.on_error(r, &e, r->srv->h.ctx);
}

static enum MHD_Result on_access(void *cls, struct MHD_Connection *conn, const char *url,
                                 const char *method, const char *version,
                                 const char *upload_data, size_t *upload_data_size,
                                 void **con_cls)
{
    (void)version;
    struct http_server *s = cls;
    struct http_request *r = *con_cls;

    if (!r) {
        r = request_new(s, conn, url, method);
        if (!r)
            return MHD_NO;
        *con_cls = r;
        if (s->stopping)
            return MHD_NO;
        if (!s->h.on_headers(r, s->h.ctx))
            return r->pending ? queue_pending(r) : MHD_NO;
        const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                                     MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (cl && strtoull(cl, NULL, 10) > s->opt.max_body_bytes) {
            reject_too_large(r);
            return queue_pending(r);
        }
        r->phase = PHASE_BODY;
        return MHD_YES;
    }

    if (r->phase == PHASE_QUEUED || r->client_gone) {
        /* Resumed after a hang-up, or more upload after an early answer. */
        *upload_data_size = 0;
        return r->client_gone ? MHD_NO : MHD_YES;
    }

    if (*upload_data_size > 0) {
        if (!r->body_rejected) {
            if (r->body_len + *upload_data_size > s->opt.max_body_bytes) {
                reject_too_large(r);
            } else if (!append_body(r, upload_data, *upload_data_size)) {
                *upload_data_size = 0;
                return MHD_NO;
            }
        }
        *upload_data_size = 0;
        return MHD_YES;
    }

    if (r->pending)
        return queue_pending(r);

    if (r->phase == PHASE_BODY) {
        r->phase = PHASE_HANDLED;
        if (!r->body && !append_body(r, "", 0))
            return MHD_NO;
        s->h.on_request(r, s->h.ctx);
        if (r->pending)
            return queue_pending(r);
        if (!r->suspended) {
            /* The handler neither answered nor suspended: a bug. */
            struct err e;
            err_set(&e, ERR_INTERNAL, "the handler did not respond");
            s->h.on_error(r, &e, s->h.ctx);
            return queue_pending(r);
        }
        return MHD_YES;
    }
    return MHD_YES;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)conn;
    struct http_request *r = *con_cls;
    if (!r)
        return;
    *con_cls = NULL;
    bool aborted = toe != MHD_REQUEST_TERMINATED_COMPLETED_OK || r->client_gone;
    notify_close(r, aborted);
    double ms = (double)(mono_ns() - r->start_ns) / 1e6;
    if (r->srv->h.on_done)
        r->srv->h.on_done(r, aborted ? 499 : r->status, ms / 1e3, r->srv->h.ctx);
    log_line(LOG_INFO, "request", LF_STR("request_id", r->id), LF_STR("method", r->method),
             LF_STR("path", r->path), LF_INT("status", r->status), LF_INT("bytes", r->bytes_out),
             LF_F64("duration_ms", ms), LF_BOOL("aborted", aborted), LF_END);
    request_free(r);
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t n = strlen(msg);
    while (n > 0 && msg[n - 1] == '\n')
        msg[--n] = '\0';
    log_line(LOG_DEBUG, "libmicrohttpd", LF_STR("detail", msg), LF_END);
}

/* TLS: bind each new connection's GnuTLS session to the credentials, so
 * the certificate callback finds what to serve (server/tls.h). */
static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode code)
{
    (void)socket_context;
    struct http_server *s = cls;
    if (code != MHD_CONNECTION_NOTIFY_STARTED || !s->opt.tls)
        return;
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_GNUTLS_SESSION);
    if (ci && ci->tls_session)
        tls_session_bind(s->opt.tls, ci->tls_session);
}

/* ---- server lifecycle ------------------------------------------------------------- */

static bool open_listener(struct http_server *s, struct err *e)
{
    char port[16];
    snprintf(port, sizeof port, "%d", s->opt.port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    int rc = getaddrinfo(s->opt.host, port, &hints, &res);
    if (rc != 0)
        return err_set_param(e, ERR_INVALID, "listen", "--listen: cannot resolve '%s': %s",
                             s->opt.host, gai_strerror(rc));
    int fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        freeaddrinfo(res);
        return err_set(e, ERR_IO, "socket: %s", strerror(errno));
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, res->ai_addr, res->ai_addrlen) != 0 || listen(fd, 512) != 0) {
        int err = errno;
        close(fd);
        freeaddrinfo(res);
        return err_set_param(e, ERR_IO, "listen", "cannot listen on %s:%d: %s", s->opt.host,
                             s->opt.port, strerror(err));
    }
    freeaddrinfo(res);
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    getsockname(fd, (struct sockaddr *)&ss, &sl);
    s->port = ss.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port)
                                       : ntohs(((struct sockaddr_in *)&ss)->sin_port);
    s->listen_fd = fd;
    return true;
}

bool http_server_start(uv_loop_t *loop, const struct http_options *opt,
                       const struct http_handlers *h, struct http_server **out, struct err *e)
{
    struct http_server *s = calloc(1, sizeof *s);
    if (!s)
        return err_set(e, ERR_NOMEM, "out of memory");
    s->loop = loop;
    s->h = *h;
    s->opt = *opt;
    s->listen_fd = -1;
    if (!open_listener(s, e)) {
        free(s);
        return false;
    }
    unsigned flags = MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
    if (opt->tls) {
        if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES ||
            MHD_is_feature_supported(MHD_FEATURE_HTTPS_CERT_CALLBACK) != MHD_YES) {
            close(s->listen_fd);
            free(s);
            return err_set_param(e, ERR_UNSUPPORTED, "tls-cert",
                                 "--tls-cert: this libmicrohttpd was built without TLS "
                                 "(GnuTLS) support; install one with it or terminate TLS "
                                 "in a proxy");
        }
        flags |= MHD_USE_TLS;
    }
    /* Without TLS the certificate option is simply not passed: MHD reads
     * options until MHD_OPTION_END, so the list ends early then. */
    s->mhd = MHD_start_daemon(
        flags, 0, NULL, NULL, on_access, s,
        MHD_OPTION_LISTEN_SOCKET, s->listen_fd,
        MHD_OPTION_CONNECTION_LIMIT, opt->max_connections,
        MHD_OPTION_CONNECTION_TIMEOUT, opt->connection_timeout_s,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
        MHD_OPTION_NOTIFY_CONNECTION, on_connection, s,
        MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, s,
        opt->tls ? MHD_OPTION_HTTPS_CERT_CALLBACK : MHD_OPTION_END, &tls_retrieve_cert,
        MHD_OPTION_END);
    if (!s->mhd) {
        close(s->listen_fd);
        free(s);
        return err_set(e, ERR_IO, "libmicrohttpd failed to start (epoll unavailable?)");
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->mhd, MHD_DAEMON_INFO_EPOLL_FD);
    uv_timer_init(loop, &s->timer);
    s->timer.data = s;
    uv_poll_init(loop, &s->epoll_watch, di->epoll_fd);
    s->epoll_watch.data = s;
    uv_poll_start(&s->epoll_watch, UV_READABLE, on_epoll_ready);
    s->handles_open = 2;
    rearm(s);
    *out = s;
    return true;
}

int http_server_port(const struct http_server *s) { return s->port; }

unsigned http_server_in_flight(const struct http_server *s) { return s->n_in_flight; }

void http_server_quiesce(struct http_server *s)
{
    if (s->quiescing)
        return;
    s->quiescing = true;
    MHD_socket fd = MHD_quiesce_daemon(s->mhd);
    if (fd != MHD_INVALID_SOCKET)
        close(fd);
}

static void on_handle_closed(uv_handle_t *h)
{
    struct http_server *s = h->data;
    if (--s->handles_open > 0)
        return;
    void (*cb)(void *) = s->on_closed;
    void *arg = s->on_closed_arg;
    free(s);
    if (cb)
        cb(arg);
}

void http_server_stop(struct http_server *s, void (*on_closed)(void *arg), void *arg)
{
    s->on_closed = on_closed;
    s->on_closed_arg = arg;
    http_server_quiesce(s);
    /* Abort what is still running, then let MHD close every connection; it
     * calls on_completed for each, which frees the requests. */
    for (struct http_request *r = s->in_flight; r; r = r->next) {
        notify_close(r, true);
        r->client_gone = true;
        resume(r);
    }
    s->stopping = true;
    uv_poll_stop(&s->epoll_watch);
    uv_timer_stop(&s->timer);
    MHD_stop_daemon(s->mhd);
    s->mhd = NULL;
    uv_close((uv_handle_t *)&s->epoll_watch, on_handle_closed);
    uv_close((uv_handle_t *)&s->timer, on_handle_closed);
}

/* ---- request accessors ------------------------------------------------------------- */

const char *http_request_method(const struct http_request *r) { return r->method; }
const char *http_request_path(const struct http_request *r) { return r->path; }
const char *http_request_id(const struct http_request *r) { return r->id; }
uint64_t http_request_start_ns(const struct http_request *r) { return r->start_ns; }

bool http_request_peer_loopback(struct http_request *r)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    if (!ci || !ci->client_addr)
        return false;
    const struct sockaddr *sa = ci->client_addr;
    if (sa->sa_family == AF_INET)
        return (ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr) >> 24) == 127;
    if (sa->sa_family == AF_INET6) {
        const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
        if (IN6_IS_ADDR_LOOPBACK(a))
            return true;
        return IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127;
    }
    return false;
}

const char *http_request_header(struct http_request *r, const char *name)
{
    return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name);
}

const char *http_request_query(struct http_request *r, const char *name)
{
    return MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, name);
}

struct query_collect {
    const char *name;
    const char **out;
    size_t max, n;
};

static enum MHD_Result collect_value(void *cls, enum MHD_ValueKind kind, const char *key,
                                     const char *value)
{
    (void)kind;
    struct query_collect *q = cls;
    if (key && value && strcmp(key, q->name) == 0 && q->n < q->max)
        q->out[q->n++] = value;
    return MHD_YES;
}

size_t http_request_query_all(struct http_request *r, const char *name, const char **out,
                              size_t max)
{
    struct query_collect q = {name, out, max, 0};
    MHD_get_connection_values(r->conn, MHD_GET_ARGUMENT_KIND, collect_value, &q);
    return q.n;
}

const char *http_request_body(const struct http_request *r, size_t *len)
{
    if (len)
        *len = r->body_len;
    return r->body ? r->body : "";
}

void http_request_set_state(struct http_request *r, void *state, void (*free_fn)(void *))
{
    if (r->state_free)
        r->state_free(r->state);
    r->state = state;
    r->state_free = free_fn;
}

void *http_request_state(const struct http_request *r) { return r->state; }

void http_request_on_close(struct http_request *r,
                           void (*fn)(struct http_request *, void *, bool), void *arg)
{
    r->on_close = fn;
    r->on_close_arg = arg;
}

/* stop.c — see stop.h for the contract. */
#include "engine/stop.h"

#include <stdlib.h>
#include <string.h>

struct stop_matcher {
    char stops[STOP_MAX_SEQUENCES][STOP_MAX_BYTES];
    size_t lens[STOP_MAX_SEQUENCES];
    int n;
    bool stopped;
    /* buf[head..len) is the text held back; buf[0..head) was emitted by the
     * previous call and is dropped at the next one. */
    char *buf;
    size_t head, len, cap;
};

bool stop_check(const char *const *stops, int n_stops, struct err *e)
{
    if (n_stops < 0 || n_stops > STOP_MAX_SEQUENCES)
        return err_set_param(e, ERR_INVALID, "stop", "at most %d stop sequences are allowed",
                             STOP_MAX_SEQUENCES);
    for (int i = 0; i < n_stops; i++) {
        if (!stops[i])
            return err_set_param(e, ERR_INVALID, "stop", "stop sequences must be strings");
        if (strlen(stops[i]) > STOP_MAX_BYTES)
            return err_set_param(e, ERR_INVALID, "stop",
                                 "each stop sequence must be at most %d bytes",
                                 STOP_MAX_BYTES);
    }
    return true;
}

struct stop_matcher *stop_new(const char *const *stops, int n_stops, struct err *e)
{
    if (!stop_check(stops, n_stops, e))
        return NULL;
    struct stop_matcher *m = calloc(1, sizeof *m);
    if (!m) {
        err_set(e, ERR_NOMEM, "stop: out of memory");
        return NULL;
    }
    for (int i = 0; i < n_stops; i++) {
        size_t len = strlen(stops[i]);
        if (len == 0)
            continue;
        memcpy(m->stops[m->n], stops[i], len);
        m->lens[m->n++] = len;
    }
    return m;
}

void stop_free(struct stop_matcher *m)
{
    if (!m)
        return;
    free(m->buf);
    free(m);
}

/* Bytes of the UTF-8 sequence a lead byte starts; 1 for ASCII and for bytes
 * that cannot start a sequence (emitted as they are). */
static size_t utf8_seq_len(unsigned char c)
{
    if (c >= 0xc2 && c <= 0xdf)
        return 2;
    if (c >= 0xe0 && c <= 0xef)
        return 3;
    if (c >= 0xf0 && c <= 0xf4)
        return 4;
    return 1;
}

/* Move `end` back so that s[0..end) does not end inside a character that
 * the bytes up to `end` leave incomplete. */
static size_t utf8_boundary(const char *s, size_t end)
{
    for (size_t k = 1; k <= 3 && k <= end; k++) {
        unsigned char c = (unsigned char)s[end - k];
        if ((c & 0xc0) == 0x80)
            continue; /* a continuation byte: look further back */
        return utf8_seq_len(c) > k ? end - k : end;
    }
    return end;
}

/* Longest proper prefix of a stop string that is a suffix of s[0..len). */
static size_t held_suffix(const struct stop_matcher *m, const char *s, size_t len)
{
    size_t best = 0;
    for (int i = 0; i < m->n; i++) {
        size_t k = m->lens[i] - 1;
        if (k > len)
            k = len;
        for (; k > best; k--)
            if (memcmp(s + len - k, m->stops[i], k) == 0)
                break;
        if (k > best)
            best = k;
    }
    return best;
}

bool stop_push(struct stop_matcher *m, const char *chunk, size_t len, struct stop_out *out,
               struct err *e)
{
    *out = (struct stop_out){.text = "", .index = -1, .stopped = m->stopped};
    if (m->stopped)
        return true;
    size_t held = m->len - m->head;
    if (held + len == 0)
        return true;
    if (held + len > m->cap) {
        size_t cap = m->cap ? m->cap : 64;
        while (cap < held + len)
            cap *= 2;
        char *b = malloc(cap);
        if (!b)
            return err_set(e, ERR_NOMEM, "stop: out of memory");
        if (held)
            memcpy(b, m->buf + m->head, held);
        free(m->buf);
        m->buf = b;
        m->cap = cap;
    } else if (m->head) {
        memmove(m->buf, m->buf + m->head, held);
    }
    if (len)
        memcpy(m->buf + held, chunk, len);
    m->head = 0;
    m->len = held + len;

    /* The stop that completes first; at equal ends the one starting first. */
    size_t best_start = 0, best_end = (size_t)-1;
    int best = -1;
    for (int i = 0; i < m->n; i++) {
        const char *p = memmem(m->buf, m->len, m->stops[i], m->lens[i]);
        if (!p)
            continue;
        size_t start = (size_t)(p - m->buf), end = start + m->lens[i];
        if (end < best_end || (end == best_end && start < best_start)) {
            best = i;
            best_start = start;
            best_end = end;
        }
    }
    if (best >= 0) {
        m->stopped = true;
        *out = (struct stop_out){.text = m->buf, .len = best_start, .stopped = true,
                                 .index = best};
        m->head = m->len = 0;
        return true;
    }

    size_t emit = utf8_boundary(m->buf, m->len - held_suffix(m, m->buf, m->len));
    out->text = m->buf;
    out->len = emit;
    m->head = emit;
    return true;
}

void stop_flush(struct stop_matcher *m, struct stop_out *out)
{
    *out = (struct stop_out){.text = "", .index = -1, .stopped = m->stopped};
    if (m->stopped || !m->buf)
        return;
    out->text = m->buf + m->head;
    out->len = m->len - m->head;
    m->head = m->len = 0;
}

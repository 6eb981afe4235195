/* test_stop.c — stop sequences over chunked text (engine/stop.c). */
#include "tests/unit/testutil.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/stop.h"

/* Everything a matcher emitted, concatenated, and how it ended. */
struct run {
    char text[4096];
    size_t len;
    bool stopped;
    int index;
};

static struct stop_matcher *make(const char *const *stops, int n)
{
    struct err e = {0};
    struct stop_matcher *m = stop_new(stops, n, &e);
    if (!m)
        fail_msg("stop_new: %s", e.msg);
    return m;
}

static void take(struct run *r, const struct stop_out *o)
{
    assert_true(r->len + o->len <= sizeof r->text);
    memcpy(r->text + r->len, o->text, o->len);
    r->len += o->len;
    if (o->stopped) {
        r->stopped = true;
        if (o->index >= 0)
            r->index = o->index;
    }
}

static void push(struct stop_matcher *m, struct run *r, const char *s, size_t len,
                 struct stop_out *o)
{
    struct err e = {0};
    struct stop_out tmp;
    if (!o)
        o = &tmp;
    if (!stop_push(m, s, len, o, &e))
        fail_msg("stop_push: %s", e.msg);
    take(r, o);
}

static void pushs(struct stop_matcher *m, struct run *r, const char *s, const char *want)
{
    struct stop_out o;
    push(m, r, s, strlen(s), &o);
    if (o.len != strlen(want) || memcmp(o.text, want, o.len) != 0)
        fail_msg("pushed '%s': emitted '%.*s', expected '%s'", s, (int)o.len, o.text, want);
}

static void test_check(void **state)
{
    (void)state;
    const char *five[] = {"a", "b", "c", "d", "e"};
    struct err e = {0};
    assert_true(stop_check(five, 4, &e));
    assert_false(stop_check(five, 5, &e));
    assert_int_equal(e.code, ERR_INVALID);
    assert_string_equal(e.param, "stop");
    char long_stop[STOP_MAX_BYTES + 2];
    memset(long_stop, 'x', sizeof long_stop);
    long_stop[STOP_MAX_BYTES + 1] = 0;
    const char *one[] = {long_stop};
    struct err e2 = {0};
    assert_null(stop_new(one, 1, &e2));
    assert_string_equal(e2.param, "stop");
    long_stop[STOP_MAX_BYTES] = 0;
    struct stop_matcher *m = make(one, 1);
    stop_free(m);
    stop_free(NULL);
}

static void test_single_chunk(void **state)
{
    (void)state;
    const char *stops[] = {"END"};
    struct stop_matcher *m = make(stops, 1);
    struct run r = {.index = -1};
    struct stop_out o;
    push(m, &r, "hello END world", 15, &o);
    assert_true(o.stopped);
    assert_int_equal(o.index, 0);
    assert_int_equal(r.len, 6);
    assert_memory_equal(r.text, "hello ", 6);
    /* after a stop: nothing, whatever comes */
    push(m, &r, "more", 4, &o);
    assert_true(o.stopped);
    assert_int_equal(o.len, 0);
    stop_flush(m, &o);
    assert_int_equal(o.len, 0);
    stop_free(m);
}

static void test_split_over_chunks(void **state)
{
    (void)state;
    const char *stops[] = {"END"};
    struct stop_matcher *m = make(stops, 1);
    struct run r = {.index = -1};
    pushs(m, &r, "hel", "hel");
    pushs(m, &r, "lo E", "lo "); /* "E" could start END */
    pushs(m, &r, "", "");        /* empty chunks are fine */
    pushs(m, &r, "N", "");
    pushs(m, &r, "X", "ENX");    /* false alarm: released */
    pushs(m, &r, " E", " ");
    pushs(m, &r, "ND tail", "");
    assert_true(r.stopped);
    assert_int_equal(r.len, strlen("hello ENX "));
    assert_memory_equal(r.text, "hello ENX ", r.len);
    stop_free(m);
}

static void test_overlapping_prefix(void **state)
{
    (void)state;
    const char *stops[] = {"aab"};
    struct stop_matcher *m = make(stops, 1);
    struct run r = {.index = -1};
    pushs(m, &r, "a", "");
    pushs(m, &r, "a", "");
    pushs(m, &r, "a", "a"); /* "aaa": only the last two can still start "aab" */
    pushs(m, &r, "b", "");
    assert_true(r.stopped);
    assert_int_equal(r.len, 1);
    assert_memory_equal(r.text, "a", 1);
    stop_free(m);
}

static void test_flush_releases_held_text(void **state)
{
    (void)state;
    const char *stops[] = {"cd", "", "xyz"}; /* the empty one is ignored */
    struct stop_matcher *m = make(stops, 3);
    struct run r = {.index = -1};
    pushs(m, &r, "abc", "ab");
    pushs(m, &r, "x", "c");
    struct stop_out o;
    stop_flush(m, &o);
    assert_false(o.stopped);
    assert_int_equal(o.len, 1);
    assert_memory_equal(o.text, "x", 1);
    stop_flush(m, &o);
    assert_int_equal(o.len, 0);
    stop_free(m);
}

static void test_first_to_complete_wins(void **state)
{
    (void)state;
    const char *stops[] = {"abcd", "bc", "c"};
    struct stop_matcher *m = make(stops, 3);
    struct run r = {.index = -1};
    push(m, &r, "xabcd", 5, NULL);
    /* "bc" and "c" both end at 4; "bc" starts first */
    assert_true(r.stopped);
    assert_int_equal(r.index, 1);
    assert_int_equal(r.len, 2);
    assert_memory_equal(r.text, "xa", 2);
    stop_free(m);
}

static void test_utf8_is_never_split(void **state)
{
    (void)state;
    struct stop_matcher *m = make(NULL, 0);
    struct run r = {.index = -1};
    /* 中 = e4 b8 ad, é = c3 a9, 😀 = f0 9f 98 80 */
    pushs(m, &r, "ab\xe4\xb8", "ab");
    pushs(m, &r, "\xad", "\xe4\xb8\xad");
    pushs(m, &r, "\xc3", "");
    pushs(m, &r, "\xa9\xf0\x9f", "\xc3\xa9");
    pushs(m, &r, "\x98", "");
    pushs(m, &r, "\x80!", "\xf0\x9f\x98\x80!");
    /* invalid bytes pass through as they are */
    pushs(m, &r, "\xff\x80", "\xff\x80");
    /* an incomplete character at the end is flushed as is */
    pushs(m, &r, "z\xe4", "z");
    struct stop_out o;
    stop_flush(m, &o);
    assert_int_equal(o.len, 1);
    assert_memory_equal(o.text, "\xe4", 1);
    stop_free(m);

    /* a multi-byte stop, pushed byte by byte, after a multi-byte prefix */
    const char *stops[] = {"\xe4\xb8\xad\xe6\x96\x87"}; /* 中文 */
    m = make(stops, 1);
    struct run r2 = {.index = -1};
    const char text[] = "\xc3\xa9\xe4\xb8\xad\xe4\xb8\xad\xe6\x96\x87!";
    for (size_t i = 0; i + 1 < sizeof text; i++)
        push(m, &r2, text + i, 1, NULL);
    assert_true(r2.stopped);
    assert_int_equal(r2.len, 5);
    assert_memory_equal(r2.text, "\xc3\xa9\xe4\xb8\xad", 5);
    stop_free(m);
}

/* ---- property: chunking never changes the result -------------------------------- */

static uint32_t rnd(uint32_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 17;
    *x ^= *x << 5;
    return *x;
}

/* Pieces of valid UTF-8 that make overlaps likely. */
static const char *const pieces[] = {"a", "b", "a", "b", "c", "\xc3\xa9", "\xe4\xb8\xad"};
#define N_PIECES (sizeof pieces / sizeof pieces[0])

static size_t random_text(uint32_t *x, char *out, size_t n_pieces)
{
    size_t len = 0;
    for (size_t i = 0; i < n_pieces; i++) {
        const char *p = pieces[rnd(x) % N_PIECES];
        memcpy(out + len, p, strlen(p));
        len += strlen(p);
    }
    out[len] = 0;
    return len;
}

/* What the whole text gives: the stop that completes first. */
static void reference(const char *text, size_t len, char stops[][16], int n, struct run *r)
{
    *r = (struct run){.index = -1};
    for (size_t end = 1; end <= len; end++) {
        size_t best_start = 0;
        int best = -1;
        for (int i = 0; i < n; i++) {
            size_t sl = strlen(stops[i]);
            if (sl && sl <= end && memcmp(text + end - sl, stops[i], sl) == 0 &&
                (best < 0 || end - sl < best_start)) {
                best = i;
                best_start = end - sl;
            }
        }
        if (best >= 0) {
            memcpy(r->text, text, best_start);
            r->len = best_start;
            r->stopped = true;
            r->index = best;
            return;
        }
    }
    memcpy(r->text, text, len);
    r->len = len;
}

static bool is_boundary(const char *s, size_t pos)
{
    return ((unsigned char)s[pos] & 0xc0) != 0x80;
}

static void test_random_chunkings(void **state)
{
    (void)state;
    uint32_t x = 12345;
    for (int iter = 0; iter < 3000; iter++) {
        char text[512];
        size_t len = random_text(&x, text, 1 + rnd(&x) % 60);
        char stops[STOP_MAX_SEQUENCES][16];
        const char *sp[STOP_MAX_SEQUENCES];
        int n = (int)(rnd(&x) % (STOP_MAX_SEQUENCES + 1));
        for (int i = 0; i < n; i++) {
            random_text(&x, stops[i], 1 + rnd(&x) % 4);
            sp[i] = stops[i];
        }
        struct run want;
        reference(text, len, stops, n, &want);

        struct stop_matcher *m = make(sp, n);
        struct run got = {.index = -1};
        size_t pos = 0, longest = 0;
        for (int i = 0; i < n; i++)
            if (strlen(stops[i]) > longest)
                longest = strlen(stops[i]);
        while (pos < len && !got.stopped) {
            size_t chunk = rnd(&x) % 6; /* 0..5 bytes: empty chunks, split characters */
            if (chunk > len - pos)
                chunk = len - pos;
            struct stop_out o;
            push(m, &got, text + pos, chunk, &o);
            pos += chunk;
            /* emitted text ends on a character boundary of the full text */
            if (!got.stopped && got.len < len && !is_boundary(text, got.len))
                fail_msg("iteration %d: emitted text ends inside a character", iter);
            /* and holds back no more than a stop prefix plus a partial character */
            if (!got.stopped && pos - got.len > (longest ? longest - 1 : 0) + 3)
                fail_msg("iteration %d: holding back %zu bytes", iter, pos - got.len);
        }
        struct stop_out o;
        stop_flush(m, &o);
        take(&got, &o);
        stop_free(m);
        if (got.stopped != want.stopped || got.index != want.index || got.len != want.len ||
            memcmp(got.text, want.text, got.len) != 0)
            fail_msg("iteration %d: text '%s', %d stops: got %zu bytes (stopped %d, index %d), "
                     "want %zu (stopped %d, index %d)",
                     iter, text, n, got.len, got.stopped, got.index, want.len, want.stopped,
                     want.index);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_check),
        cmocka_unit_test(test_single_chunk),
        cmocka_unit_test(test_split_over_chunks),
        cmocka_unit_test(test_overlapping_prefix),
        cmocka_unit_test(test_flush_releases_held_text),
        cmocka_unit_test(test_first_to_complete_wins),
        cmocka_unit_test(test_utf8_is_never_split),
        cmocka_unit_test(test_random_chunkings),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

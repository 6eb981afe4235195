/* test_idempotency.c — the Idempotency-Key state machine
 * (server/idempotency.c) on a real database and the real writer thread:
 * NEW → IN_FLIGHT → REPLAY, MISMATCH, abandon, streamed responses,
 * expiry and purge, per-customer scope. */
#include "tests/unit/testutil.h"

#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "server/idempotency.h"
#include "server/mailbox.h"
#include "server/sq.h"
#include "server/store.h"
#include "server/writer.h"
#include "tests/unit/tenancy_fixture.h"

#define DAY 86400000LL

struct env {
    struct fixture f;
    uv_loop_t loop;
    struct mailbox mb;
    struct writer *w;
    sqlite3 *ro;
    struct idempotency *idem;
};

static void env_open(struct env *v)
{
    memset(v, 0, sizeof *v);
    fixture_open(&v->f);
    struct err e = {0};
    uv_loop_init(&v->loop);
    mailbox_init(&v->mb, &v->loop);
    assert_true(writer_start(v->f.db_path, &v->mb, &v->w, &e));
    assert_true(store_open(v->f.db_path, STORE_READONLY, &v->ro, &e));
    v->idem = idempotency_new(DAY);
}

/* Let every queued write commit and its completion run. */
static bool noop(sqlite3 *db, void *arg, struct err *e)
{
    (void)db;
    (void)arg;
    (void)e;
    return true;
}

static void flag(void *arg, const struct err *e)
{
    (void)e;
    *(bool *)arg = true;
}

static void settle(struct env *v)
{
    bool done = false;
    writer_submit(v->w, noop, flag, &done);
    while (!done)
        uv_run(&v->loop, UV_RUN_ONCE);
}

static void env_close(struct env *v)
{
    settle(v);
    writer_stop(v->w);
    mailbox_close(&v->mb);
    uv_run(&v->loop, UV_RUN_DEFAULT);
    uv_loop_close(&v->loop);
    idempotency_free(v->idem);
    store_close(v->ro);
    fixture_close(&v->f);
}

static enum idempotency_outcome begin(struct env *v, const char *customer, const char *key,
                                      const char *body, int64_t now, struct idempotency_replay *r,
                                      struct err *e)
{
    uint8_t h[IDEMPOTENCY_HASH_LEN];
    idempotency_request_hash("POST", "/v1/chat/completions", body, strlen(body), h);
    enum idempotency_outcome o;
    err_clear(e);
    if (!idempotency_begin(v->idem, v->ro, v->w, customer, key, h, now, &o, r, e))
        fail_msg("begin failed: %s", e->msg);
    return o;
}

static int64_t rows(struct env *v, const char *where)
{
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM idempotency_keys WHERE %s", where);
    int64_t n = -1;
    struct err e = {0};
    assert_true(sq_int(v->f.db, sql, &n, NULL, &e, SQ_END));
    return n;
}

static void test_state_machine(void **state)
{
    (void)state;
    struct env v;
    env_open(&v);
    struct err e;
    struct idempotency_replay r;
    int64_t now = store_now_ms();
    assert_int_equal(begin(&v, "cus_a", "k1", "{\"x\":1}", now, &r, &e), IDEMPOTENCY_NEW);
    /* While running: the same request is 409, another request with the key 422. */
    assert_int_equal(begin(&v, "cus_a", "k1", "{\"x\":1}", now, &r, &e), IDEMPOTENCY_IN_FLIGHT);
    assert_int_equal(e.code, ERR_CONFLICT);
    assert_int_equal(begin(&v, "cus_a", "k1", "{\"x\":2}", now, &r, &e), IDEMPOTENCY_MISMATCH);
    assert_int_equal(e.code, ERR_UNPROCESSABLE);
    /* The key is per customer. */
    assert_int_equal(begin(&v, "cus_b", "k1", "{\"x\":1}", now, &r, &e), IDEMPOTENCY_NEW);
    settle(&v);
    assert_int_equal(rows(&v, "status = 'in_flight'"), 2);

    idempotency_complete(v.idem, v.w, "cus_a", "k1", 200, "{\"answer\":42}", 13, now);
    /* Before the commit: replayed from memory. */
    assert_int_equal(begin(&v, "cus_a", "k1", "{\"x\":1}", now, &r, &e), IDEMPOTENCY_REPLAY);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "{\"answer\":42}");
    free(r.body);
    settle(&v);
    /* After it: from the database, and nothing left in memory for the key. */
    assert_int_equal(idempotency_in_flight(v.idem), 1); /* cus_b's */
    assert_int_equal(begin(&v, "cus_a", "k1", "{\"x\":1}", now + 1000, &r, &e), IDEMPOTENCY_REPLAY);
    assert_int_equal(r.len, 13);
    assert_memory_equal(r.body, "{\"answer\":42}", 13);
    free(r.body);
    assert_int_equal(begin(&v, "cus_a", "k1", "{\"x\":3}", now + 1000, &r, &e), IDEMPOTENCY_MISMATCH);

    /* Abandoned: the key is free again. */
    idempotency_abandon(v.idem, v.w, "cus_b", "k1");
    settle(&v);
    assert_int_equal(rows(&v, "customer_id = 'cus_b'"), 0);
    assert_int_equal(begin(&v, "cus_b", "k1", "{\"x\":9}", now, &r, &e), IDEMPOTENCY_NEW);
    /* A streamed response is never kept: a retry is told so (409). */
    idempotency_complete(v.idem, v.w, "cus_b", "k1", 200, NULL, 0, now);
    settle(&v);
    assert_int_equal(rows(&v, "customer_id = 'cus_b' AND response_body IS NULL AND status = 'done'"), 1);
    assert_int_equal(begin(&v, "cus_b", "k1", "{\"x\":9}", now, &r, &e), IDEMPOTENCY_IN_FLIGHT);
    assert_int_equal(e.code, ERR_CONFLICT);
    assert_non_null(strstr(e.msg, "streamed"));
    env_close(&v);
}

static void test_expiry_and_purge(void **state)
{
    (void)state;
    struct env v;
    env_open(&v);
    struct err e;
    struct idempotency_replay r;
    int64_t now = store_now_ms();
    assert_int_equal(idempotency_retention(v.idem), DAY);
    assert_int_equal(begin(&v, "cus_a", "k", "{}", now, &r, &e), IDEMPOTENCY_NEW);
    idempotency_complete(v.idem, v.w, "cus_a", "k", 200, "{}", 2, now);
    settle(&v);
    assert_int_equal(rows(&v, "expires_at - created_at = 86400000"), 1);
    assert_int_equal(begin(&v, "cus_a", "k", "{}", now + DAY - 1, &r, &e), IDEMPOTENCY_REPLAY);
    free(r.body);
    /* Past the window: the old response is gone, the key runs anew. */
    assert_int_equal(begin(&v, "cus_a", "k", "{\"other\":1}", now + DAY, &r, &e), IDEMPOTENCY_NEW);
    idempotency_abandon(v.idem, v.w, "cus_a", "k");
    settle(&v);
    /* The purge deletes what expired, nothing else. */
    assert_int_equal(begin(&v, "cus_a", "old", "{}", now, &r, &e), IDEMPOTENCY_NEW);
    idempotency_complete(v.idem, v.w, "cus_a", "old", 200, "{}", 2, now);
    assert_int_equal(begin(&v, "cus_a", "fresh", "{}", now + DAY, &r, &e), IDEMPOTENCY_NEW);
    idempotency_complete(v.idem, v.w, "cus_a", "fresh", 201, "{}", 2, now + DAY);
    settle(&v);
    int n = 0;
    fixture_begin(&v.f);
    assert_true(idempotency_purge(v.f.db, now + DAY, &n, &e));
    fixture_commit(&v.f);
    assert_int_equal(n, 1);
    assert_int_equal(rows(&v, "key = 'fresh'"), 1);
    /* A restart forgets attempts that were in flight. */
    assert_int_equal(begin(&v, "cus_a", "dying", "{}", now, &r, &e), IDEMPOTENCY_NEW);
    settle(&v);
    fixture_begin(&v.f);
    assert_true(idempotency_recover(v.f.db, &e));
    fixture_commit(&v.f);
    assert_int_equal(rows(&v, "status = 'in_flight'"), 0);
    env_close(&v);
}

static void test_malformed_keys(void **state)
{
    (void)state;
    struct env v;
    env_open(&v);
    uint8_t h[IDEMPOTENCY_HASH_LEN] = {0};
    enum idempotency_outcome o;
    struct idempotency_replay r;
    struct err e = {0};
    char long_key[300];
    memset(long_key, 'a', sizeof long_key - 1);
    long_key[sizeof long_key - 1] = '\0';
    const char *bad[] = {"", "has space", long_key, "tab\tkey"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_false(idempotency_begin(v.idem, v.ro, v.w, "cus_a", bad[i], h, 0, &o, &r, &e));
        assert_int_equal(e.code, ERR_INVALID);
        assert_string_equal(e.param, "Idempotency-Key");
    }
    /* Different method, path or body: different requests. */
    uint8_t a[32], b[32], c[32];
    idempotency_request_hash("POST", "/a", "{}", 2, a);
    idempotency_request_hash("POST", "/b", "{}", 2, b);
    idempotency_request_hash("POST", "/a", "{ }", 3, c);
    assert_memory_not_equal(a, b, 32);
    assert_memory_not_equal(a, c, 32);
    env_close(&v);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_state_machine),
        cmocka_unit_test(test_expiry_and_purge),
        cmocka_unit_test(test_malformed_keys),
    };
    return cmocka_run_group_tests_name("idempotency", tests, NULL, NULL);
}

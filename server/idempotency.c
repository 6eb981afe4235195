/* idempotency.c — see idempotency.h. */
#include "server/idempotency.h"

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/randid.h"
#include "server/sq.h"

#define BUCKETS 256

struct entry {
    char customer[RANDID_MAX];
    char key[IDEMPOTENCY_KEY_MAX + 1];
    uint8_t hash[IDEMPOTENCY_HASH_LEN];
    bool done;               /* completed, commit pending */
    bool kept;               /* done with a stored body */
    unsigned status;
    char *body;
    size_t len;
    struct entry *next;
};

struct idempotency {
    int64_t retention_ms;
    struct entry *buckets[BUCKETS];
    size_t n;
};

struct idempotency *idempotency_new(int64_t retention_ms)
{
    struct idempotency *idem = calloc(1, sizeof *idem);
    if (idem)
        idem->retention_ms = retention_ms < IDEMPOTENCY_MIN_RETENTION_MS
                                 ? IDEMPOTENCY_MIN_RETENTION_MS : retention_ms;
    return idem;
}

void idempotency_free(struct idempotency *idem)
{
    if (!idem)
        return;
    for (int i = 0; i < BUCKETS; i++) {
        for (struct entry *en = idem->buckets[i], *next; en; en = next) {
            next = en->next;
            free(en->body);
            free(en);
        }
    }
    free(idem);
}

int64_t idempotency_retention(const struct idempotency *idem) { return idem->retention_ms; }
size_t idempotency_in_flight(const struct idempotency *idem) { return idem->n; }

void idempotency_request_hash(const char *method, const char *path, const char *body, size_t len,
                              uint8_t out[IDEMPOTENCY_HASH_LEN])
{
    gnutls_hash_hd_t h;
    if (gnutls_hash_init(&h, GNUTLS_DIG_SHA256) != 0)
        abort();
    gnutls_hash(h, method, strlen(method) + 1);
    gnutls_hash(h, path, strlen(path) + 1);
    gnutls_hash(h, body, len);
    gnutls_hash_deinit(h, out);
}

static unsigned bucket_of(const char *customer, const char *key)
{
    unsigned h = 2166136261u;
    for (const unsigned char *s = (const unsigned char *)customer; *s; s++)
        h = (h ^ *s) * 16777619u;
    for (const unsigned char *s = (const unsigned char *)key; *s; s++)
        h = (h ^ *s) * 16777619u;
    return h % BUCKETS;
}

static struct entry **find(struct idempotency *idem, const char *customer, const char *key)
{
    struct entry **pp = &idem->buckets[bucket_of(customer, key)];
    for (; *pp; pp = &(*pp)->next)
        if (strcmp((*pp)->customer, customer) == 0 && strcmp((*pp)->key, key) == 0)
            return pp;
    return pp;
}

static void drop(struct idempotency *idem, const char *customer, const char *key)
{
    struct entry **pp = find(idem, customer, key);
    struct entry *en = *pp;
    if (!en)
        return;
    *pp = en->next;
    free(en->body);
    free(en);
    idem->n--;
}

static bool key_ok(const char *key)
{
    size_t n = strlen(key);
    if (n == 0 || n > IDEMPOTENCY_KEY_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if (key[i] < 0x21 || key[i] > 0x7e)
            return false;
    return true;
}

static bool mismatch(enum idempotency_outcome *outcome, struct err *e)
{
    *outcome = IDEMPOTENCY_MISMATCH;
    err_set_param(e, ERR_UNPROCESSABLE, "Idempotency-Key",
                  "This Idempotency-Key was already used with a different request; keys can "
                  "only be reused with the same method, path and body");
    return true;
}

static bool not_kept(enum idempotency_outcome *outcome, struct err *e)
{
    *outcome = IDEMPOTENCY_IN_FLIGHT;
    err_set_param(e, ERR_CONFLICT, "Idempotency-Key",
                  "The request with this Idempotency-Key has completed, but its response was "
                  "streamed and is not kept for replay; use a new key to run it again");
    return true;
}

/* ---- writer jobs ------------------------------------------------------------------ */

struct job {
    struct idempotency *idem;
    char customer[RANDID_MAX];
    char key[IDEMPOTENCY_KEY_MAX + 1];
    uint8_t hash[IDEMPOTENCY_HASH_LEN];
    unsigned status;
    char *body;
    size_t len;
    int64_t now;
};

static struct job *job_new(struct idempotency *idem, const char *customer, const char *key)
{
    struct job *j = calloc(1, sizeof *j);
    if (!j)
        abort();
    j->idem = idem;
    snprintf(j->customer, sizeof j->customer, "%s", customer);
    snprintf(j->key, sizeof j->key, "%s", key);
    return j;
}

static void job_free(void *arg, const struct err *e)
{
    (void)e;
    struct job *j = arg;
    free(j->body);
    free(j);
}

static bool run_begin(sqlite3 *db, void *arg, struct err *e)
{
    struct job *j = arg;
    return sq_exec(db,
                   "INSERT INTO idempotency_keys (customer_id, key, request_hash, status, "
                   "created_at, expires_at) VALUES (?1, ?2, ?3, 'in_flight', ?4, ?5) "
                   "ON CONFLICT (customer_id, key) DO UPDATE SET request_hash = excluded.request_hash, "
                   "status = 'in_flight', response_status = NULL, response_body = NULL, "
                   "created_at = excluded.created_at, expires_at = excluded.expires_at",
                   NULL, e, SQ_TEXT(j->customer), SQ_TEXT(j->key), SQ_BLOB(j->hash, sizeof j->hash),
                   SQ_INT(j->now), SQ_INT(j->now + j->idem->retention_ms), SQ_END);
}

static bool run_complete(sqlite3 *db, void *arg, struct err *e)
{
    struct job *j = arg;
    return idempotency_store_done(db, j->customer, j->key, j->hash, j->status, j->body, j->len,
                                  j->now, j->idem->retention_ms, e);
}

static void complete_done(void *arg, const struct err *e)
{
    struct job *j = arg;
    /* Committed (or failed: then a retry simply runs anew). */
    drop(j->idem, j->customer, j->key);
    job_free(j, e);
}

static bool run_abandon(sqlite3 *db, void *arg, struct err *e)
{
    struct job *j = arg;
    return sq_exec(db,
                   "DELETE FROM idempotency_keys WHERE customer_id = ? AND key = ? AND "
                   "status = 'in_flight'",
                   NULL, e, SQ_TEXT(j->customer), SQ_TEXT(j->key), SQ_END);
}

/* ---- the state machine ------------------------------------------------------------ */

static bool from_db(sqlite3 *db, const char *customer, const char *key,
                    const uint8_t hash[IDEMPOTENCY_HASH_LEN], int64_t now,
                    enum idempotency_outcome *outcome, struct idempotency_replay *replay,
                    struct err *e)
{
    sqlite3_stmt *st;
    if (!sq_prepare(db,
                    "SELECT request_hash, coalesce(response_status, 0), response_body FROM "
                    "idempotency_keys WHERE customer_id = ? AND key = ? AND status = 'done' AND "
                    "expires_at > ?",
                    &st, e, SQ_TEXT(customer), SQ_TEXT(key), SQ_INT(now), SQ_END))
        return false;
    int rc = sqlite3_step(st);
    bool ok = true;
    if (rc == SQLITE_ROW) {
        const void *h = sqlite3_column_blob(st, 0);
        if (sqlite3_column_bytes(st, 0) != IDEMPOTENCY_HASH_LEN ||
            memcmp(h, hash, IDEMPOTENCY_HASH_LEN) != 0) {
            mismatch(outcome, e);
        } else if (sqlite3_column_type(st, 2) == SQLITE_NULL) {
            not_kept(outcome, e);
        } else {
            size_t len = (size_t)sqlite3_column_bytes(st, 2);
            replay->body = malloc(len + 1);
            if (!replay->body)
                abort();
            memcpy(replay->body, sqlite3_column_blob(st, 2), len);
            replay->body[len] = '\0';
            replay->len = len;
            replay->status = (unsigned)sqlite3_column_int(st, 1);
            *outcome = IDEMPOTENCY_REPLAY;
        }
    } else if (rc != SQLITE_DONE) {
        ok = sq_fail(db, "reading idempotency keys", e);
    }
    sqlite3_finalize(st);
    return ok;
}

bool idempotency_begin(struct idempotency *idem, sqlite3 *db_read, struct writer *w,
                       const char *customer, const char *key,
                       const uint8_t hash[IDEMPOTENCY_HASH_LEN], int64_t now,
                       enum idempotency_outcome *outcome, struct idempotency_replay *replay,
                       struct err *e)
{
    memset(replay, 0, sizeof *replay);
    *outcome = IDEMPOTENCY_NEW;
    if (!key_ok(key))
        return err_set_param(e, ERR_INVALID, "Idempotency-Key",
                             "Idempotency-Key must be 1 to %d visible ASCII characters",
                             IDEMPOTENCY_KEY_MAX);
    struct entry *en = *find(idem, customer, key);
    if (en) {
        if (memcmp(en->hash, hash, IDEMPOTENCY_HASH_LEN) != 0)
            return mismatch(outcome, e);
        if (!en->done) {
            *outcome = IDEMPOTENCY_IN_FLIGHT;
            err_set_param(e, ERR_CONFLICT, "Idempotency-Key",
                          "A request with this Idempotency-Key is still being processed; "
                          "retry later");
            return true;
        }
        if (!en->kept)
            return not_kept(outcome, e);
        replay->body = malloc(en->len + 1);
        if (!replay->body)
            abort();
        memcpy(replay->body, en->body, en->len);
        replay->body[en->len] = '\0';
        replay->len = en->len;
        replay->status = en->status;
        *outcome = IDEMPOTENCY_REPLAY;
        return true;
    }
    if (!from_db(db_read, customer, key, hash, now, outcome, replay, e))
        return false;
    if (*outcome != IDEMPOTENCY_NEW)
        return true;
    en = calloc(1, sizeof *en);
    if (!en)
        abort();
    snprintf(en->customer, sizeof en->customer, "%s", customer);
    snprintf(en->key, sizeof en->key, "%s", key);
    memcpy(en->hash, hash, IDEMPOTENCY_HASH_LEN);
    struct entry **slot = &idem->buckets[bucket_of(customer, key)];
    en->next = *slot;
    *slot = en;
    idem->n++;
    if (w) {
        struct job *j = job_new(idem, customer, key);
        memcpy(j->hash, hash, IDEMPOTENCY_HASH_LEN);
        j->now = now;
        writer_submit(w, run_begin, job_free, j);
    }
    return true;
}

void idempotency_complete(struct idempotency *idem, struct writer *w, const char *customer,
                          const char *key, unsigned status, const char *body, size_t len,
                          int64_t now)
{
    struct entry *en = *find(idem, customer, key);
    if (!en)
        return;
    en->done = true;
    en->kept = body != NULL;
    en->status = status;
    if (body) {
        en->body = malloc(len + 1);
        if (!en->body)
            abort();
        memcpy(en->body, body, len);
        en->body[len] = '\0';
        en->len = len;
    }
    struct job *j = job_new(idem, customer, key);
    memcpy(j->hash, en->hash, IDEMPOTENCY_HASH_LEN);
    j->status = status;
    j->now = now;
    if (body) {
        j->body = malloc(len + 1);
        if (!j->body)
            abort();
        memcpy(j->body, body, len);
        j->len = len;
    }
    writer_submit(w, run_complete, complete_done, j);
}

void idempotency_abandon(struct idempotency *idem, struct writer *w, const char *customer,
                         const char *key)
{
    drop(idem, customer, key);
    if (w)
        writer_submit(w, run_abandon, job_free, job_new(idem, customer, key));
}

void idempotency_forget(struct idempotency *idem, const char *customer, const char *key)
{
    drop(idem, customer, key);
}

bool idempotency_store_done(sqlite3 *db, const char *customer, const char *key,
                            const uint8_t hash[IDEMPOTENCY_HASH_LEN], unsigned status,
                            const char *body, size_t len, int64_t now, int64_t retention_ms,
                            struct err *e)
{
    struct sq_arg b = body ? SQ_BLOB(body, len) : SQ_NULL;
    return sq_exec(db,
                   "INSERT INTO idempotency_keys (customer_id, key, request_hash, status, "
                   "response_status, response_body, created_at, expires_at) VALUES "
                   "(?1, ?2, ?3, 'done', ?4, ?5, ?6, ?6 + ?7) ON CONFLICT (customer_id, key) DO "
                   "UPDATE SET status = 'done', response_status = excluded.response_status, "
                   "response_body = excluded.response_body, "
                   "expires_at = idempotency_keys.created_at + ?7",
                   NULL, e, SQ_TEXT(customer), SQ_TEXT(key), SQ_BLOB(hash, IDEMPOTENCY_HASH_LEN),
                   SQ_INT(status), b, SQ_INT(now), SQ_INT(retention_ms), SQ_END);
}

bool idempotency_purge(sqlite3 *db, int64_t now, int *n_deleted, struct err *e)
{
    return sq_exec(db, "DELETE FROM idempotency_keys WHERE expires_at <= ?", n_deleted, e,
                   SQ_INT(now), SQ_END);
}

bool idempotency_recover(sqlite3 *db, struct err *e)
{
    return sq_exec(db, "DELETE FROM idempotency_keys WHERE status = 'in_flight'", NULL, e, SQ_END);
}

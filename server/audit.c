/* audit.c — see audit.h. */
#include "server/audit.h"

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/sq.h"

static const char genesis[AUDIT_HASH_HEX] =
    "0000000000000000000000000000000000000000000000000000000000000000";

struct buf {
    char *p;
    size_t len, cap;
    bool failed;
};

static void buf_put(struct buf *b, const char *s, size_t n)
{
    if (b->failed)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 512;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *np = realloc(b->p, cap);
        if (!np) {
            b->failed = true;
            return;
        }
        b->p = np;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void field(struct buf *b, const char *s)
{
    char len[32];
    if (!s) {
        buf_put(b, "-\n", 2);
        return;
    }
    size_t n = strlen(s);
    int k = snprintf(len, sizeof len, "%zu:", n);
    buf_put(b, len, (size_t)k);
    buf_put(b, s, n);
    buf_put(b, "\n", 1);
}

static void field_int(struct buf *b, int64_t v)
{
    char num[32];
    snprintf(num, sizeof num, "%" PRId64, v);
    field(b, num);
}

/* hash = SHA-256(prev_hash hex || canonical content), as hex. */
static bool row_hash(const char *prev, int64_t seq, int64_t at, const char *actor,
                     const char *action, const char *target, const char *before,
                     const char *after, char out[AUDIT_HASH_HEX], struct err *e)
{
    struct buf b = {0};
    buf_put(&b, prev, strlen(prev));
    field_int(&b, seq);
    field_int(&b, at);
    field(&b, actor);
    field(&b, action);
    field(&b, target);
    field(&b, before);
    field(&b, after);
    unsigned char d[32];
    bool ok = !b.failed && gnutls_hash_fast(GNUTLS_DIG_SHA256, b.p, b.len, d) == 0;
    free(b.p);
    if (!ok)
        return err_set(e, ERR_NOMEM, "cannot hash the audit row");
    for (int i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", d[i]);
    return true;
}

bool audit_append(sqlite3 *db, const char *actor, const char *action, const char *target,
                  const char *before_json, const char *after_json, int64_t at, struct err *e)
{
    sqlite3_stmt *st;
    if (!sq_prepare(db, "SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1", &st, e,
                    SQ_END))
        return false;
    int64_t seq = 1;
    char prev[AUDIT_HASH_HEX];
    memcpy(prev, genesis, sizeof prev);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        seq = sqlite3_column_int64(st, 0) + 1;
        snprintf(prev, sizeof prev, "%s", (const char *)sqlite3_column_text(st, 1));
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return sq_fail(db, "reading the audit log", e);
    char hash[AUDIT_HASH_HEX];
    if (!row_hash(prev, seq, at, actor, action, target, before_json, after_json, hash, e))
        return false;
    return sq_exec(db,
                   "INSERT INTO audit_log (seq, at, actor, action, target, before_json, "
                   "after_json, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                   NULL, e, SQ_INT(seq), SQ_INT(at), SQ_TEXT(actor), SQ_TEXT(action),
                   SQ_TEXT(target), SQ_TEXT(before_json), SQ_TEXT(after_json), SQ_TEXT(prev),
                   SQ_TEXT(hash), SQ_END);
}

static const char *col(sqlite3_stmt *st, int i)
{
    return (const char *)sqlite3_column_text(st, i);
}

bool audit_verify(sqlite3 *db, struct audit_verify_result *out, struct err *e)
{
    memset(out, 0, sizeof *out);
    sqlite3_stmt *st;
    if (!sq_prepare(db,
                    "SELECT seq, at, actor, action, target, before_json, after_json, "
                    "prev_hash, hash FROM audit_log ORDER BY seq",
                    &st, e, SQ_END))
        return false;
    char prev[AUDIT_HASH_HEX];
    memcpy(prev, genesis, sizeof prev);
    int64_t want_seq = 1;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        int64_t seq = sqlite3_column_int64(st, 0);
        const char *stored_prev = col(st, 7), *stored = col(st, 8);
        char hash[AUDIT_HASH_HEX];
        if (!row_hash(prev, seq, sqlite3_column_int64(st, 1), col(st, 2), col(st, 3),
                      col(st, 4), col(st, 5), col(st, 6), hash, e)) {
            sqlite3_finalize(st);
            return false;
        }
        out->rows++;
        const char *why = NULL;
        if (seq != want_seq)
            why = "a row is missing before this one";
        else if (!stored_prev || strcmp(stored_prev, prev) != 0)
            why = "prev_hash does not match the previous row's hash";
        else if (!stored || strcmp(stored, hash) != 0)
            why = "the row's content does not match its hash (edited)";
        if (why) {
            out->first_bad_seq = seq != want_seq ? want_seq : seq;
            snprintf(out->reason, sizeof out->reason, "%s", why);
            break;
        }
        memcpy(prev, hash, sizeof prev);
        memcpy(out->last_hash, hash, sizeof prev);
        want_seq++;
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return sq_fail(db, "reading the audit log", e);
    return true;
}

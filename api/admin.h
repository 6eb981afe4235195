/*
 * admin.h — what the /admin/v1 handlers (api/admin_*.c) share.
 *
 * Writes
 *   A handler never writes the database itself: it passes a job (a store
 *   call from server/customers.h etc.) to admin_write(), which suspends the
 *   request, runs the job on the writer thread inside the writer's
 *   transaction, and answers from the loop thread once it committed: 200
 *   with the JSON the job left in w->result, or the job's error. A client
 *   that leaves early does not stop the write.
 *
 * Idempotency-Key
 *   Honoured on every admin POST, scoped to the calling key's customer:
 *   the stored response is written in the same transaction as the change
 *   (server/idempotency.h), so a retry can never apply it twice. A replay
 *   carries `Idempotent-Replayed: true`. A new key's secret is never
 *   stored: the replay of a key issue or rotation shows the key without
 *   its secret.
 *
 * Reads
 *   Gets and lists run on the loop thread on the read-only connection:
 *   each is an indexed point read or one page (at most 100 rows) of an
 *   index, which is cheap.
 */
#ifndef MAASD_API_ADMIN_H
#define MAASD_API_ADMIN_H

#include <cJSON.h>
#include <sqlite3.h>

#include "api/api.h"
#include "server/apikey.h"

struct admin_write;
typedef bool (*admin_job_fn)(sqlite3 *db, struct admin_write *w, struct err *e);

struct admin_write {
    /* Inputs of the job, filled by admin_write() from the call. */
    admin_job_fn job;
    char actor[64];
    int64_t now;
    char id[256];                       /* the route's {id} */
    cJSON *body;                        /* the parsed body (owned; may be an empty object) */
    uint8_t pepper[APIKEY_PEPPER_LEN];
    /* Set by the job, on the writer thread. */
    char *result;                       /* JSON text of the answer (malloc'ed) */
    char secret[APIKEY_LEN + 1];        /* a new key's secret, added to the answer only */
    /* Private to admin_common.c. */
    struct http_request *req;
    struct daemon_ctx *d;
    int refs;
    bool idempotent;
    char idem_customer[RANDID_MAX];
    char idem_key[256];
    uint8_t idem_hash[32];
    int64_t idem_retention_ms;
    char *response;
};

/* Run `job` for this call as described above. The body (an empty body is
 * {}) must be a JSON object, else 400. */
void admin_write(struct api_call *c, admin_job_fn job);

/* Answer a read: 200 with `json` (text, freed here) or `list` (consumed)
 * when ok, else the error. */
void admin_answer(struct api_call *c, bool ok, char *json, cJSON *list, const struct err *e);

/* Respond with a JSON text (not consumed). */
void admin_respond_text(struct http_request *r, unsigned status, const char *json);
/* `limit` (1..100, default 20) and `after` from the query; responds 400
 * and returns false when limit is malformed. */
bool admin_page(struct api_call *c, int *limit, const char **after);

/* ERR_NOT_FOUND (404) unless the customer exists: lists under an unknown
 * customer are an error, not an empty page. */
bool admin_customer_exists(sqlite3 *db, const char *customer_id, struct err *e);

/* Body fields for jobs: absent → NULL/false (no error); present with the
 * wrong type → ERR_INVALID naming the field. */
bool admin_field_str(const cJSON *body, const char *name, const char **out, struct err *e);
bool admin_field_int(const cJSON *body, const char *name, int64_t *out, bool *present,
                     struct err *e);
bool admin_field_bool(const cJSON *body, const char *name, bool *out, struct err *e);

#endif

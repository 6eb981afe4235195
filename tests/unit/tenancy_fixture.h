/*
 * tenancy_fixture.h — a real, migrated SQLite database in a fresh temp dir
 * for the tenancy unit tests, plus shortcuts for the rows most tests need.
 * Every helper fails the running cmocka test on error.
 */
#ifndef MAASD_TENANCY_FIXTURE_H
#define MAASD_TENANCY_FIXTURE_H

#include <sqlite3.h>
#include <stdint.h>

#include "server/apikey.h"

struct fixture {
    char dir[4096];
    char db_path[4200];
    sqlite3 *db;                         /* read-write */
    uint8_t pepper[APIKEY_PEPPER_LEN];
};

void fixture_open(struct fixture *f);
void fixture_close(struct fixture *f);
/* BEGIN IMMEDIATE / COMMIT around store calls, as the CLI and writer do. */
void fixture_begin(struct fixture *f);
void fixture_commit(struct fixture *f);
/* A customer; its id into out (>= 40 bytes). */
void fixture_customer(struct fixture *f, const char *name, char *out);
/* A key with `scopes` for the customer: id and secret out. */
void fixture_key(struct fixture *f, const char *customer, unsigned scopes, char *id_out,
                 char *secret_out);
/* A subscription of the customer to `plan`, created at `now`. */
void fixture_subscribe(struct fixture *f, const char *customer, const char *plan, int64_t now);
/* The value of a string field of a JSON text (static buffer). */
const char *fixture_json_str(const char *json, const char *field);
int64_t fixture_json_int(const char *json, const char *field);

#endif

/*
 * apikey.h — API key secrets: their format, their hash, their scopes.
 *
 * Format
 *   "mk_live_" + 24 base62 characters of randomness (142 bits, GnuTLS's
 *   key-level generator) + 6 base62 characters of checksum: the first four
 *   bytes of SHA-256 over everything before it, as a fixed-width base62
 *   number. 38 characters in all. The checksum lets a malformed or mistyped
 *   key be refused before any database lookup, and lets secret scanners
 *   recognise a real key.
 *
 * Storage
 *   The database never holds a secret: only HMAC-SHA-256(pepper, secret),
 *   where the pepper is a 32-byte server-side secret kept outside the
 *   database (server/pepper.h). A stolen database alone cannot be used to
 *   test guesses offline. The display prefix ("mk_live_abcd…wxyz") is what
 *   lists and logs may show.
 *
 *   Lookups are by the HMAC (an attacker cannot steer it toward a stored
 *   value) and the stored and computed HMACs are then compared with
 *   apikey_hash_equal(), whose time does not depend on where they differ.
 *
 * Scopes
 *   A bit set: inference (the /v1 inference routes), usage:read (the key's
 *   own customer's usage), admin (/admin/v1), finance (finance reports).
 *   Stored as a JSON array of names in api_keys.scopes.
 *
 * Contract: pure functions, any thread. Nothing here logs or keeps a key.
 */
#ifndef MAASD_APIKEY_H
#define MAASD_APIKEY_H

#include <cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/err.h"

#define APIKEY_PREFIX "mk_live_"
#define APIKEY_PREFIX_LEN 8
#define APIKEY_RANDOM_LEN 24
#define APIKEY_CHECK_LEN 6
#define APIKEY_LEN (APIKEY_PREFIX_LEN + APIKEY_RANDOM_LEN + APIKEY_CHECK_LEN)
#define APIKEY_HASH_LEN 32
#define APIKEY_PEPPER_LEN 32
#define APIKEY_DISPLAY_MAX 32

enum apikey_scope {
    SCOPE_INFERENCE = 1u << 0,
    SCOPE_USAGE_READ = 1u << 1,
    SCOPE_ADMIN = 1u << 2,
    SCOPE_FINANCE = 1u << 3,
};
#define SCOPE_ALL (SCOPE_INFERENCE | SCOPE_USAGE_READ | SCOPE_ADMIN | SCOPE_FINANCE)

/* A new secret into out[APIKEY_LEN + 1]. */
bool apikey_generate(char *out, struct err *e);

/* Prefix, length, alphabet and checksum; ERR_UNAUTHENTICATED when wrong
 * (the message never repeats the key). */
bool apikey_check_format(const char *key, size_t len, struct err *e);

/* HMAC-SHA-256 of the key under the pepper. */
bool apikey_hash(const uint8_t pepper[APIKEY_PEPPER_LEN], const char *key, size_t len,
                 uint8_t out[APIKEY_HASH_LEN], struct err *e);

/* Constant-time equality of two hashes. */
bool apikey_hash_equal(const uint8_t a[APIKEY_HASH_LEN], const uint8_t b[APIKEY_HASH_LEN]);

/* "mk_live_" + first 4 random characters + "…" + last 4 characters. */
void apikey_display(const char *key, char out[APIKEY_DISPLAY_MAX]);

/* "inference,usage:read" (commas and/or spaces) into a bit set; unknown
 * names are ERR_INVALID with param "scopes". An empty list is refused. */
bool apikey_scopes_parse(const char *list, unsigned *out, struct err *e);
/* A JSON array of scope names (cJSON) into a bit set; same rules. */
bool apikey_scopes_from_json(const cJSON *array, unsigned *out, struct err *e);
/* The bit set as a JSON array text, e.g. ["inference","usage:read"];
 * malloc'ed. */
char *apikey_scopes_json(unsigned scopes);
/* Name of one scope bit. */
const char *apikey_scope_name(unsigned bit);

#endif

/*
 * pepper.h — the server-side secret that API key hashes are keyed with.
 *
 * What and why
 *   api_keys.hash is HMAC-SHA-256(pepper, secret). The pepper lives in a
 *   file, never in the database, so a copy of the database (a backup, a
 *   stolen disk image) is not enough to test guessed keys. The file holds
 *   64 hexadecimal characters (32 bytes) and a newline, mode 0600.
 *
 *   Setting: --key-pepper-file PATH (MAASD_KEY_PEPPER_FILE); default
 *   "<database path>.pepper", next to the database.
 *
 *   LOSING THE FILE INVALIDATES EVERY API KEY. Back it up separately from
 *   the database. For that reason a missing pepper is only ever created
 *   when the database holds no API key at all (a first start); otherwise
 *   opening fails with a message saying to restore it.
 *
 * Contract
 *   Creation is atomic (written to a temporary file, then link(2)ed into
 *   place), so a daemon and a CLI command starting together agree on one
 *   pepper. A file readable or writable by group or others is refused.
 */
#ifndef MAASD_PEPPER_H
#define MAASD_PEPPER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/err.h"
#include "server/apikey.h"

/* `configured` if non-empty, else "<db_path>.pepper". */
bool pepper_path(const char *configured, const char *db_path, char *out, size_t size,
                 struct err *e);

/* Load the pepper at `path`. When the file does not exist: create it if
 * `may_create` (*created = true), else fail with ERR_CORRUPT. */
bool pepper_open(const char *path, bool may_create, uint8_t out[APIKEY_PEPPER_LEN],
                 bool *created, struct err *e);

#endif

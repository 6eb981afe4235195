/*
 * model_registry.h — the registered models and their aliases, in the
 * database (migrations/0005_model_registry.sql).
 *
 * Contract
 *   Plain store operations on a sqlite3 connection: the writer thread calls
 *   the mutating ones inside its transaction (each writes its audit row in
 *   that transaction), the daemon reads the rows at start-up. What is
 *   actually loaded in memory is server/models.h's business; these rows are
 *   the desired state that survives restarts.
 *
 *   Names: a model id is 1..48 characters of letters, digits and - _ . ;
 *   a registered version is served as "<id>@<version>". An alias has the
 *   same syntax as an id and may not equal a registered model id.
 */
#ifndef MAASD_MODEL_REGISTRY_H
#define MAASD_MODEL_REGISTRY_H

#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>

#include "engine/err.h"

#define MODEL_ID_MAX 49
#define MODEL_NAME_MAX 64   /* "<id>@<version>" */

struct model_version_row {
    char model_id[MODEL_ID_MAX];
    int version;
    char path[1024];
    bool loaded;
};

struct model_alias_row {
    char alias[MODEL_ID_MAX];
    char model_id[MODEL_ID_MAX];
    int version;
};

/* Letters, digits, - _ . ; 1..48 characters. ERR_INVALID naming `param`. */
bool model_registry_check_id(const char *id, const char *param, struct err *e);
/* "<id>@<version>" -> parts; false (ERR_INVALID) when malformed. */
bool model_registry_parse_name(const char *name, char id[MODEL_ID_MAX], int *version,
                               struct err *e);

/* A new version of `model_id` (1 + the highest so far), loaded = 1. */
bool model_registry_add(sqlite3 *db, const char *actor, const char *model_id, const char *path,
                        int64_t now, int *version, struct err *e);
/* Desired state of an existing version; ERR_NOT_FOUND when unknown. */
bool model_registry_set_loaded(sqlite3 *db, const char *actor, const char *model_id,
                               int version, bool loaded, int64_t now, struct err *e);
/* Create or move an alias; ERR_INVALID when it names a model id. */
bool model_registry_set_alias(sqlite3 *db, const char *actor, const char *alias,
                              const char *model_id, int version, int64_t now, struct err *e);

/* Every row, in (model_id, version) order; *rows is malloc'ed. */
bool model_registry_versions(sqlite3 *db, struct model_version_row **rows, int *n,
                             struct err *e);
bool model_registry_aliases(sqlite3 *db, struct model_alias_row **rows, int *n, struct err *e);

#endif

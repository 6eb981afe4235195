-- 0005_model_registry: models registered through the admin API, with
-- versions and aliases. Models given with --model are not here: they are
-- the configuration's, served as given, for the simple case.

-- One row per (model, version): a GGUF file served as "<id>@<version>".
-- `loaded` is the desired state: at start-up the daemon loads every row
-- with loaded = 1.
CREATE TABLE model_versions (
    model_id    TEXT NOT NULL CHECK (length(model_id) BETWEEN 1 AND 48),
    version     INTEGER NOT NULL CHECK (version >= 1),
    path        TEXT NOT NULL,
    loaded      INTEGER NOT NULL CHECK (loaded IN (0, 1)),
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    PRIMARY KEY (model_id, version)
);

-- alias -> one model version; switched atomically (one row update).
CREATE TABLE model_aliases (
    alias       TEXT PRIMARY KEY CHECK (length(alias) BETWEEN 1 AND 48),
    model_id    TEXT NOT NULL,
    version     INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    FOREIGN KEY (model_id, version) REFERENCES model_versions (model_id, version)
);

-- 0001_init: the instance itself.
-- schema_migrations is created by the migrator (server/migrate.c) before any
-- migration runs; every later table arrives in its own numbered file.

CREATE TABLE instance (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    instance_id TEXT NOT NULL,          -- random, identifies this database in logs and backups
    created_at  INTEGER NOT NULL        -- ms since epoch, UTC
);

INSERT INTO instance (id, instance_id, created_at)
VALUES (1, lower(hex(randomblob(16))), CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER));

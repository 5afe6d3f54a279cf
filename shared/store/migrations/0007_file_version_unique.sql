-- A file's version number is unique within its version chain (the root's id, or the
-- file's own for a root), enforced here rather than by the luck of assemblies not
-- overlapping. Numbers that earlier concurrent assemblies made collide are renumbered
-- first, in their existing order (version, then creation time), so the index can be
-- built on an existing installation.
WITH ranked AS (
    SELECT id, row_number() OVER (PARTITION BY COALESCE(parent_id, id) ORDER BY version, created_at, id) AS n
    FROM files
)
UPDATE files f SET version = ranked.n FROM ranked WHERE f.id = ranked.id AND f.version <> ranked.n;

CREATE UNIQUE INDEX files_chain_version ON files ((COALESCE(parent_id, id)), version);

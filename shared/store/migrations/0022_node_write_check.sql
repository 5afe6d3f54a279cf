-- Each node agent also checks that a file can be written at its storage root (created,
-- written, fdatasynced, removed) and reports why not in its /health answer: a root
-- remounted read-only, made immutable or on a failing disk keeps its free space, so the
-- space probe alone kept placing new copies there, where each failed and retried
-- (operator trial of stop 31). `writable` is NULL until an agent that
-- checks has answered, and follows each answer (a failed write is not a slow network:
-- no second try is waited for).
ALTER TABLE node_status
    ADD COLUMN writable BOOLEAN,
    ADD COLUMN write_error TEXT,
    ADD COLUMN write_checked_at TIMESTAMPTZ;

-- What the admin page and the CLI show of a node's past: when a probe last found it up
-- (a down node's `checked_at` is only the time of the last failed probe), every up/down
-- transition with its reason, and free-space samples for the trend. All written by the
-- monitor's one probe upsert (`ferry_store::node_status::record`).
ALTER TABLE node_status ADD COLUMN last_up_at TIMESTAMPTZ;
UPDATE node_status SET last_up_at = checked_at WHERE up;

CREATE TABLE node_events (
    id      BIGSERIAL PRIMARY KEY,
    node_id INTEGER NOT NULL REFERENCES nodes (id) ON DELETE CASCADE,
    at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    up      BOOLEAN NOT NULL,
    -- Why the probe counted it down (NULL when it came up).
    reason  TEXT
);
CREATE INDEX node_events_node ON node_events (node_id, at DESC);

CREATE TABLE node_space (
    node_id     INTEGER NOT NULL REFERENCES nodes (id) ON DELETE CASCADE,
    at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    free_bytes  BIGINT NOT NULL CHECK (free_bytes >= 0),
    total_bytes BIGINT NOT NULL CHECK (total_bytes >= 0),
    PRIMARY KEY (node_id, at)
);

-- The admin listings page through every user's uploads and files, newest first.
CREATE INDEX uploads_created ON uploads (created_at DESC, id);
CREATE INDEX files_created ON files (created_at DESC, id);

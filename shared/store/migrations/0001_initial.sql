-- Ferry's initial schema. PostgreSQL is the source of truth; RabbitMQ only carries work.

CREATE TABLE users (
    id            BIGSERIAL PRIMARY KEY,
    username      TEXT NOT NULL UNIQUE CHECK (length(username) BETWEEN 1 AND 150),
    password_hash TEXT NOT NULL,
    is_admin      BOOLEAN NOT NULL DEFAULT FALSE,
    quota_bytes   BIGINT CHECK (quota_bytes IS NULL OR quota_bytes >= 0),
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE nodes (
    id          SERIAL PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$'),
    ssh_host    TEXT NOT NULL,
    ssh_port    INTEGER NOT NULL CHECK (ssh_port BETWEEN 1 AND 65535),
    ssh_user    TEXT NOT NULL,
    root_path   TEXT NOT NULL CHECK (root_path LIKE '/%'),
    public_url  TEXT NOT NULL,
    region      TEXT NOT NULL DEFAULT '',
    lat         DOUBLE PRECISION NOT NULL DEFAULT 0,
    lon         DOUBLE PRECISION NOT NULL DEFAULT 0,
    state       TEXT NOT NULL DEFAULT 'active' CHECK (state IN ('active', 'draining', 'disabled')),
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE node_status (
    node_id     INTEGER PRIMARY KEY REFERENCES nodes (id) ON DELETE CASCADE,
    up          BOOLEAN NOT NULL,
    free_bytes  BIGINT NOT NULL DEFAULT 0,
    total_bytes BIGINT NOT NULL DEFAULT 0,
    rtt_ms      DOUBLE PRECISION,
    error       TEXT,
    checked_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE uploads (
    id           UUID PRIMARY KEY,
    user_id      BIGINT NOT NULL REFERENCES users (id),
    filename     TEXT NOT NULL,
    parent_id    UUID,
    total_size   BIGINT CHECK (total_size IS NULL OR total_size >= 0),
    "offset"     BIGINT NOT NULL DEFAULT 0 CHECK ("offset" >= 0),
    md5          TEXT,
    status       TEXT NOT NULL DEFAULT 'uploading'
                 CHECK (status IN ('uploading', 'assembling', 'complete', 'failed', 'expired')),
    error        TEXT,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at   TIMESTAMPTZ NOT NULL,
    completed_at TIMESTAMPTZ
);
CREATE INDEX uploads_user ON uploads (user_id, created_at DESC);
CREATE INDEX uploads_open_expiry ON uploads (expires_at) WHERE status = 'uploading';

CREATE TABLE upload_chunks (
    upload_id   UUID NOT NULL REFERENCES uploads (id) ON DELETE CASCADE,
    "offset"    BIGINT NOT NULL CHECK ("offset" >= 0),
    size        BIGINT NOT NULL CHECK (size > 0),
    received_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (upload_id, "offset")
);

CREATE TABLE files (
    id          UUID PRIMARY KEY,
    user_id     BIGINT NOT NULL REFERENCES users (id),
    filename    TEXT NOT NULL,
    size        BIGINT NOT NULL CHECK (size >= 0),
    md5         TEXT NOT NULL,
    sha256      TEXT NOT NULL,
    parent_id   UUID REFERENCES files (id),
    version     INTEGER NOT NULL DEFAULT 1,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    deleted_at  TIMESTAMPTZ
);
CREATE INDEX files_user_live ON files (user_id, created_at DESC) WHERE deleted_at IS NULL;
CREATE INDEX files_parent ON files (parent_id) WHERE parent_id IS NOT NULL;

CREATE TABLE replicas (
    file_id     UUID NOT NULL REFERENCES files (id) ON DELETE CASCADE,
    node_id     INTEGER NOT NULL REFERENCES nodes (id),
    state       TEXT NOT NULL DEFAULT 'pending'
                CHECK (state IN ('pending', 'copying', 'present', 'failed', 'deleting')),
    attempts    INTEGER NOT NULL DEFAULT 0,
    last_error  TEXT,
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (file_id, node_id)
);
CREATE INDEX replicas_node ON replicas (node_id, state);

-- Transactional outbox: written in the same transaction as the state it describes,
-- relayed to RabbitMQ with publisher confirms, deleted once confirmed.
CREATE TABLE outbox (
    id           BIGSERIAL PRIMARY KEY,
    exchange     TEXT NOT NULL,
    routing_key  TEXT NOT NULL,
    message_id   UUID NOT NULL,
    payload      JSONB NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);

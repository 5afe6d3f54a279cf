-- Job records: one row per job, keyed by the AMQP message_id the outbox publishes it
-- with (kept across retries, re-enqueues and replays), so an operator can answer
-- "which worker did what to which upload, how long did it take, why did it fail".
CREATE TABLE jobs (
    id          UUID PRIMARY KEY,
    -- The job's name: assemble, replicate, verify, delete, drop_replica.
    kind        TEXT NOT NULL,
    -- The queue it travels on (routing key on ferry.jobs): assemble, replicate, delete.
    queue       TEXT NOT NULL,
    -- The message body, so the job can be re-enqueued or replayed as it was.
    payload     JSONB NOT NULL,
    -- The upload (= file) and node the job is about.
    file_id     UUID NOT NULL,
    node_id     INT,
    -- queued, active, retrying, done, dead, cancelled.
    state       TEXT NOT NULL DEFAULT 'queued',
    -- Earlier failed attempts when the current one started.
    attempt     INT NOT NULL DEFAULT 0,
    worker_id   TEXT,
    queued_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    started_at  TIMESTAMPTZ,
    finished_at TIMESTAMPTZ,
    -- Last change of state: what the reconciler measures staleness from.
    state_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- Last error (of a retry, or the reason it was dead-lettered).
    error       TEXT,
    -- Times the reconciler re-enqueued it (message lost: purged queue, broker-made dead letter).
    requeues    INT NOT NULL DEFAULT 0,
    -- Operator actions on a dead letter.
    replays     INT NOT NULL DEFAULT 0,
    replayed_at TIMESTAMPTZ,
    discarded_at TIMESTAMPTZ
);
CREATE INDEX jobs_file ON jobs (file_id, queued_at);
CREATE INDEX jobs_queued_at ON jobs (queued_at DESC);
CREATE INDEX jobs_open ON jobs (state_at) WHERE state IN ('queued', 'active', 'retrying');
CREATE INDEX jobs_dead ON jobs (state_at) WHERE state = 'dead';
CREATE INDEX jobs_finished ON jobs (finished_at) WHERE state IN ('done', 'cancelled');

-- Worker inventory: each ferry-worker registers at start and heartbeats.
CREATE TABLE workers (
    id           TEXT PRIMARY KEY,
    host         TEXT NOT NULL,
    pid          INT NOT NULL,
    version      TEXT NOT NULL,
    queues       TEXT[] NOT NULL,
    concurrency  INT NOT NULL,
    started_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    heartbeat_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- Set by a clean shutdown.
    stopped_at   TIMESTAMPTZ,
    in_flight    UUID[] NOT NULL DEFAULT '{}'
);

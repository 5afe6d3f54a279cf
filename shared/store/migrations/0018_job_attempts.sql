-- A job's attempts that did not succeed, one row each, kept beside the job record:
-- `failed` (an error; retried later), `dead` (the last one, given up), `lost` (its
-- worker went quiet and the reconciler re-enqueued the job). The job's own row still
-- describes its running or last attempt; an attempt is copied here when it ends
-- without success, so a job that succeeds the first time writes nothing more, and a
-- replay (which starts the attempt count again) keeps the history: `replay` says which
-- run of the job each attempt belonged to. Pruned with its job.
CREATE TABLE job_attempts (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    job_id      UUID NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    -- The job's `replays` when the attempt ran: 0 before any replay.
    replay      INT NOT NULL,
    -- The attempt's number within that run, from 0.
    attempt     INT NOT NULL,
    worker_id   TEXT,
    started_at  TIMESTAMPTZ,
    ended_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- failed, dead, lost.
    outcome     TEXT NOT NULL,
    error       TEXT
);
CREATE INDEX job_attempts_job ON job_attempts (job_id, id);

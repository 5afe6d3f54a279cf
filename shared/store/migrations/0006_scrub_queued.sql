-- When a scrub (verify job) was queued for the replica and has not finished yet (NULL:
-- none outstanding). The monitor queues a replica's next scrub only after the last one
-- finished, and keeps the number outstanding bounded, so scrubbing never floods the
-- replicate queue that repairs share with it.
ALTER TABLE replicas ADD COLUMN scrub_queued_at TIMESTAMPTZ;
CREATE INDEX replicas_scrub_queued ON replicas (scrub_queued_at) WHERE scrub_queued_at IS NOT NULL;

-- When a retrying job's next attempt is due, and how many attempts its kind gets, as
-- the worker that scheduled the retry knew them (its retry tier's delay from the
-- failure, `worker.policy.<kind>.max_attempts`): `ferry jobs show`, `ferry jobs ls`
-- and the admin page say "attempt 5 of 8, next at ..." instead of leaving the operator
-- to work it out from the tiers. Shown only while the job is `retrying`.
ALTER TABLE jobs
    ADD COLUMN retry_at TIMESTAMPTZ,
    ADD COLUMN max_attempts INT;

-- Indexes that let the monitor's periodic statements walk to the rows they want instead
-- of reading whole tables every round (measured at 1,000,000 files, 2,000,000 replicas
-- and 2,000,000 job records):
--
-- - the scrub claim orders present replicas by COALESCE(verified_at, updated_at); the
--   index of migration 3 was on verified_at alone, so the claim read and sorted every
--   replica (0.24-0.70 s per round, now about 1 ms);
-- - the job pruning selects finished records by COALESCE(finished_at, state_at); the
--   index of migration 8 was on finished_at alone, so every round read every record
--   (0.26 s, now 0.1 ms when nothing is due).
--
-- Building them reads each table once (about 0.6 s each at the sizes above), holding off
-- writes to it meanwhile.
DROP INDEX replicas_scrub;
CREATE INDEX replicas_scrub ON replicas ((COALESCE(verified_at, updated_at))) WHERE state = 'present';
DROP INDEX jobs_finished;
CREATE INDEX jobs_finished ON jobs ((COALESCE(finished_at, state_at))) WHERE state IN ('done', 'cancelled');

-- The monitor re-checks the files of the replicas that failed last every round (a copy
-- found corrupt is made again at once, not when the sweep's turn comes): the newest
-- failed rows, from a small index of failed rows only.
CREATE INDEX replicas_failed ON replicas (updated_at DESC) WHERE state = 'failed';

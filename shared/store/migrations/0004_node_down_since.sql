-- When a node's probes started failing (NULL while up): replicas on a node down for
-- longer than the grace period stop counting, and the repair copies them elsewhere.
ALTER TABLE node_status ADD COLUMN down_since TIMESTAMPTZ;

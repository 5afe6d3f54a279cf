-- Queues an operator paused (`ferry queues pause <queue>`): workers stop consuming them
-- within a heartbeat (5 s), finish what they hold, and start again on resume. Messages
-- wait in RabbitMQ meanwhile.
CREATE TABLE paused_queues (
    queue     TEXT PRIMARY KEY,
    paused_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- Who paused it (the operator's login on the CLI host, or an admin's name).
    paused_by TEXT NOT NULL DEFAULT ''
);

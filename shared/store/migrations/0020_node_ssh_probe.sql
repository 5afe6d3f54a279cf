-- The monitor also checks each node's sshd, which every copy to the node goes through:
-- a node agent that answers while its sshd does not is up for downloads but takes no
-- new copy. `ssh_up` is NULL until the first check, and turns false only after
-- `ssh_failures` reaches 2 consecutive failed checks (one slow banner under load is not
-- an outage).
ALTER TABLE node_status
    ADD COLUMN ssh_up BOOLEAN,
    ADD COLUMN ssh_error TEXT,
    ADD COLUMN ssh_checked_at TIMESTAMPTZ,
    ADD COLUMN ssh_failures INT NOT NULL DEFAULT 0;

-- The monitor also checks each node's sshd, which every copy to the node goes through:
-- a node agent that answers while its sshd does not is up for downloads but takes no
-- new copy. NULL until the first check.
ALTER TABLE node_status
    ADD COLUMN ssh_up BOOLEAN,
    ADD COLUMN ssh_error TEXT,
    ADD COLUMN ssh_checked_at TIMESTAMPTZ;

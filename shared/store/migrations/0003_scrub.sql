-- When each replica's bytes were last checked against the file's sha256 on its node.
ALTER TABLE replicas ADD COLUMN verified_at TIMESTAMPTZ;
UPDATE replicas SET verified_at = updated_at WHERE state = 'present';
CREATE INDEX replicas_scrub ON replicas (verified_at) WHERE state = 'present';

-- Chunks are written in place into one staging file per upload; the writer of the
-- next chunk holds a lease (token + expiry) so two writers never overlap.
ALTER TABLE uploads ADD COLUMN writer UUID, ADD COLUMN writer_until TIMESTAMPTZ;

-- Running md5/sha256 state of an upload, advanced with each chunk, so completion
-- needs no second read of the file.
ALTER TABLE uploads ADD COLUMN md5_state BYTEA, ADD COLUMN sha256_state BYTEA;

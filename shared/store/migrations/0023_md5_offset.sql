-- The running md5 lags behind the upload's offset (api/src/upload/running_md5.rs): the
-- row records the newest md5 state known at each chunk's record and how many bytes it
-- covers. Every state stored so far covers the whole offset.
ALTER TABLE uploads ADD COLUMN md5_offset BIGINT NOT NULL DEFAULT 0;
UPDATE uploads SET md5_offset = "offset" WHERE md5_state IS NOT NULL;
ALTER TABLE uploads ADD CONSTRAINT uploads_md5_offset_within CHECK (md5_offset BETWEEN 0 AND "offset");

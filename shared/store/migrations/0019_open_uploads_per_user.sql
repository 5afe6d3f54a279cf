-- A user's open uploads, counted when they begin another (at most
-- `storage.max_open_uploads_per_user` of them): without it the count walked every
-- upload the user ever made (`uploads_user`).
CREATE INDEX uploads_user_open ON uploads (user_id) WHERE status = 'uploading';

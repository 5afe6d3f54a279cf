-- The tus protocol's Upload-Metadata header as the client sent it at creation
-- (comma-separated `key base64value` pairs, validated and bounded by the API), so
-- HEAD can echo it back as tus 1.0 asks. NULL for uploads of the chunked protocol.
ALTER TABLE uploads ADD COLUMN metadata TEXT;

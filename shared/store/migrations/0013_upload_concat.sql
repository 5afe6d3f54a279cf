-- tus concatenation: `partial` for an upload that is a part of a later final upload
-- (it never becomes a file by itself), or the `Upload-Concat: final;<urls>` header of a
-- final upload as recorded (echoed by HEAD). NULL for every other upload.
ALTER TABLE uploads ADD COLUMN concat TEXT;

-- The counting triggers of migration 14 move `users.used_bytes` at commit instead of at
-- each row change (deferred constraint triggers, same functions). Run immediately, the
-- first row change of a transaction locked the user's row until its commit, so every
-- transaction of one user that changes its use -- an upload's insert, and since the API
-- records verified files itself, the whole file-recording transaction -- ran one at a
-- time: 16 parallel single-request uploads of one user took ~100 ms each (p50) and
-- their intake fell to ~100 files/s. Deferred, the row is taken for the moment of the
-- commit only; the quota check, which must see the committed use of the others, locks
-- the row itself as the last statement before the commit and adds its own
-- transaction's new use (`ferry_store::users::lock_quota_left`).

DROP TRIGGER uploads_count_use ON uploads;
DROP TRIGGER files_count_use ON files;

CREATE CONSTRAINT TRIGGER uploads_count_use
    AFTER INSERT OR DELETE OR UPDATE OF status, total_size, "offset", user_id ON uploads
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION ferry_count_upload_use();

CREATE CONSTRAINT TRIGGER files_count_use
    AFTER INSERT OR DELETE OR UPDATE OF deleted_at, size, user_id ON files
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION ferry_count_file_use();

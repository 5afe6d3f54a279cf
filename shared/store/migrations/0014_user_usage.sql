-- Bytes each user has in use, kept by triggers in the very transactions that change it,
-- so the quota check reads one row (`users.used_bytes`) instead of summing the user's
-- live files and scanning all their uploads ever made: that sum ran twice per upload and
-- grew with the user's history (the bench's 1,000 small uploads took 3.7, 7.2, then
-- 10.3 s on successive runs for the same user).
--
-- In use, as before: every live file's size (`deleted_at IS NULL`), plus every open
-- upload (`uploading` or `assembling`) at its declared length, or at the bytes received
-- so far while the length is deferred (tus `Upload-Defer-Length`).

-- Writers wait for this migration's commit: none can change a user's use between the
-- recount below and the triggers taking over.
LOCK TABLE uploads, files IN SHARE MODE;

ALTER TABLE users ADD COLUMN used_bytes BIGINT NOT NULL DEFAULT 0;

-- What one upload row adds to its user's use.
CREATE FUNCTION ferry_upload_use(status TEXT, total_size BIGINT, received BIGINT) RETURNS BIGINT
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN status IN ('uploading', 'assembling') THEN COALESCE(total_size, received) ELSE 0 END
$$;

-- What one file row adds to its user's use.
CREATE FUNCTION ferry_file_use(deleted_at TIMESTAMPTZ, size BIGINT) RETURNS BIGINT
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN deleted_at IS NULL THEN size ELSE 0 END
$$;

-- Moves `users.used_bytes` by what a row change did to its users' use (`before` of
-- `old_user`, `after` of `new_user`; a NULL user for the side an INSERT or DELETE
-- lacks): one UPDATE of the user's row when the use changed, none when it did not (a
-- lease renewal), two when a row changed hands. The UPDATE holds the user's row until
-- the transaction ends, as the quota check's own lock does.
CREATE FUNCTION ferry_move_use(old_user BIGINT, before BIGINT, new_user BIGINT, after BIGINT) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF old_user IS NOT DISTINCT FROM new_user THEN
        IF after <> before THEN
            UPDATE users SET used_bytes = used_bytes + (after - before) WHERE id = new_user;
        END IF;
        RETURN;
    END IF;
    IF old_user IS NOT NULL AND before <> 0 THEN
        UPDATE users SET used_bytes = used_bytes - before WHERE id = old_user;
    END IF;
    IF new_user IS NOT NULL AND after <> 0 THEN
        UPDATE users SET used_bytes = used_bytes + after WHERE id = new_user;
    END IF;
END
$$;

-- One trigger function per table: PL/pgSQL resolves `NEW.<field>` when it plans an
-- expression, so one function cannot name fields only one of the tables has.
CREATE FUNCTION ferry_count_upload_use() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM ferry_move_use(NULL, 0, NEW.user_id, ferry_upload_use(NEW.status, NEW.total_size, NEW."offset"));
    ELSIF TG_OP = 'DELETE' THEN
        PERFORM ferry_move_use(OLD.user_id, ferry_upload_use(OLD.status, OLD.total_size, OLD."offset"), NULL, 0);
    ELSE
        PERFORM ferry_move_use(OLD.user_id, ferry_upload_use(OLD.status, OLD.total_size, OLD."offset"),
                               NEW.user_id, ferry_upload_use(NEW.status, NEW.total_size, NEW."offset"));
    END IF;
    RETURN NULL;
END
$$;

CREATE FUNCTION ferry_count_file_use() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM ferry_move_use(NULL, 0, NEW.user_id, ferry_file_use(NEW.deleted_at, NEW.size));
    ELSIF TG_OP = 'DELETE' THEN
        PERFORM ferry_move_use(OLD.user_id, ferry_file_use(OLD.deleted_at, OLD.size), NULL, 0);
    ELSE
        PERFORM ferry_move_use(OLD.user_id, ferry_file_use(OLD.deleted_at, OLD.size),
                               NEW.user_id, ferry_file_use(NEW.deleted_at, NEW.size));
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER uploads_count_use
    AFTER INSERT OR DELETE OR UPDATE OF status, total_size, "offset", user_id ON uploads
    FOR EACH ROW EXECUTE FUNCTION ferry_count_upload_use();

CREATE TRIGGER files_count_use
    AFTER INSERT OR DELETE OR UPDATE OF deleted_at, size, user_id ON files
    FOR EACH ROW EXECUTE FUNCTION ferry_count_file_use();

UPDATE users u SET used_bytes =
      (SELECT COALESCE(SUM(ferry_file_use(deleted_at, size)), 0) FROM files WHERE user_id = u.id)
    + (SELECT COALESCE(SUM(ferry_upload_use(status, total_size, "offset")), 0) FROM uploads WHERE user_id = u.id);

-- Issue 15 items 7 and 14. Accounts can be disabled, and every token and admin session
-- names the token generation it was issued under: a password change, a logout or
-- disabling moves the generation on, which ends them all at once.
ALTER TABLE users ADD COLUMN token_generation INTEGER NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN disabled_at TIMESTAMPTZ;

-- Usernames are unique whatever their letter case (`Admin` beside `admin` was allowed).
-- A later account whose name collides is renamed `<name>-<id>`, so none is lost.
UPDATE users u SET username = u.username || '-' || u.id
 WHERE EXISTS (SELECT 1 FROM users o WHERE lower(o.username) = lower(u.username) AND o.id < u.id);
CREATE UNIQUE INDEX users_username_lower ON users (lower(username));

//! The `users` table: accounts, their password hashes (argon2id) and quotas. The
//! account rules (name shape, password length, hashing) live here so the admin page,
//! `ferry-api user-add` and the `ferry` CLI apply the same ones.

use crate::cached::Cached;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHasher, SaltString};
use argon2::Argon2;
use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use ferry_shared::types::{ByteSize, UserId};

use crate::convert::{size_from_db, size_to_db};
use crate::search::{Paging, Search};
use crate::{StoreError, UploadState};

/// Why an account could not be written.
#[derive(Debug, thiserror::Error)]
pub enum UserError {
    #[error("username must be 1-150 letters, digits or @.+-_, with at least one letter or digit")]
    BadUsername,
    /// Another account has the same name but for letter case (`Admin` beside `admin`).
    #[error("username {0} is taken (usernames are unique whatever their letter case)")]
    Taken(String),
    /// A user with live files, open uploads, or node copies of deleted files still being
    /// removed is disabled, not deleted: their data stays owned.
    #[error(
        "user {0} still has files, open uploads, or deleted files whose node copies are still being removed: \
         disable the account instead, or delete the files and cancel the uploads first"
    )]
    HasData(String),
    /// Disabling or deleting the last enabled administrator would leave nobody to
    /// operate Ferry from the admin page or API.
    #[error("user {0} is the last enabled administrator: make another administrator first")]
    LastAdmin(String),
    #[error("password must be at least 8 characters")]
    ShortPassword,
    #[error("hashing the password failed: {0}")]
    Hash(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Argon2id with the crate's default (OWASP-recommended) parameters and a random salt,
/// in PHC string form.
pub fn hash_password(password: &str) -> Result<String, argon2::password_hash::Error> {
    let salt = SaltString::generate(&mut OsRng);
    Ok(Argon2::default().hash_password(password.as_bytes(), &salt)?.to_string())
}

fn check_password(password: &str) -> Result<String, UserError> {
    if password.chars().count() < 8 {
        return Err(UserError::ShortPassword);
    }
    hash_password(password).map_err(|e| UserError::Hash(e.to_string()))
}

/// Creates `username`, or resets its password and admin flag when it exists
/// (idempotent, so `deploy/dev up` can run it every time: the same password and flag
/// again change nothing and end no token; a change ends them all). Returns the id.
pub async fn upsert(c: &impl GenericClient, username: &str, password: &str, admin: bool) -> Result<UserId, UserError> {
    let valid = (1..=150).contains(&username.len())
        && username.bytes().all(|b| b.is_ascii_alphanumeric() || b"@.+-_".contains(&b))
        && username.bytes().any(|b| b.is_ascii_alphanumeric());
    if !valid {
        return Err(UserError::BadUsername);
    }
    // Unique whatever the case (a unique index on lower(username) enforces it too).
    let same = c
        .query_opt_cached(
            "SELECT username FROM users WHERE lower(username) = lower($1) AND username <> $1",
            &[&username],
        )
        .await
        .map_err(StoreError::from)?;
    if let Some(row) = same {
        return Err(UserError::Taken(row.try_get("username").map_err(StoreError::from)?));
    }
    // Re-running with what is stored already (`deploy/dev up`, a compose bootstrap on
    // every start) changes nothing, so the user's tokens and sessions stay valid; a new
    // password or admin flag ends them.
    let existing = c
        .query_opt_cached("SELECT id, password_hash, is_admin FROM users WHERE username = $1", &[&username])
        .await
        .map_err(StoreError::from)?;
    if let Some(row) = existing {
        let stored: String = row.try_get("password_hash").map_err(StoreError::from)?;
        let was_admin: bool = row.try_get("is_admin").map_err(StoreError::from)?;
        let same_password = argon2::password_hash::PasswordHash::new(&stored).is_ok_and(|parsed| {
            argon2::password_hash::PasswordVerifier::verify_password(
                &argon2::Argon2::default(),
                password.as_bytes(),
                &parsed,
            )
            .is_ok()
        });
        if same_password && was_admin == admin {
            return Ok(UserId(row.try_get("id").map_err(StoreError::from)?));
        }
    }
    let hash = check_password(password)?;
    let row = c
        .query_one_cached(
            "INSERT INTO users (username, password_hash, is_admin) VALUES ($1, $2, $3)
             ON CONFLICT (username) DO UPDATE SET password_hash = EXCLUDED.password_hash, is_admin = EXCLUDED.is_admin,
                token_generation = users.token_generation + 1
             RETURNING id",
            &[&username, &hash, &admin],
        )
        .await
        .map_err(StoreError::from)?;
    Ok(UserId(row.try_get("id").map_err(StoreError::from)?))
}

/// Sets a new password for an existing user, keeping their admin flag; every token and
/// admin session issued before stops working (the token generation moves on). Returns
/// false when there is no such user.
pub async fn set_password(c: &impl GenericClient, username: &str, password: &str) -> Result<bool, UserError> {
    let hash = check_password(password)?;
    let updated = c
        .execute_cached(
            "UPDATE users SET password_hash = $2, token_generation = token_generation + 1 WHERE username = $1",
            &[&username, &hash],
        )
        .await
        .map_err(StoreError::from)?;
    Ok(updated == 1)
}

/// Ends every token and admin session of `user` (logout): the token generation moves
/// on, and tokens carry the generation they were issued under.
pub async fn revoke_tokens(c: &impl GenericClient, user: UserId) -> Result<(), StoreError> {
    c.execute_cached("UPDATE users SET token_generation = token_generation + 1 WHERE id = $1", &[&user.0]).await?;
    Ok(())
}

/// Disables (or enables again) `username`: a disabled user cannot log in, and every
/// token and admin session they hold stops working at once. Returns false when there
/// is no such user; [`UserError::LastAdmin`] for the last enabled administrator (checked
/// by a statement just before the change, under no lock: two administrators disabling
/// each other in the same instant could still both pass).
pub async fn set_disabled(c: &impl GenericClient, username: &str, disabled: bool) -> Result<bool, UserError> {
    if disabled {
        refuse_last_admin(c, username).await?;
    }
    let updated = c
        .execute_cached(
            "UPDATE users SET disabled_at = CASE WHEN $2 THEN COALESCE(disabled_at, now()) END,
                token_generation = token_generation + 1
             WHERE username = $1",
            &[&username, &disabled],
        )
        .await
        .map_err(StoreError::from)?;
    Ok(updated == 1)
}

/// [`UserError::LastAdmin`] when `username` is an enabled administrator and no other
/// enabled administrator exists.
async fn refuse_last_admin(c: &impl GenericClient, username: &str) -> Result<(), UserError> {
    let last = c
        .query_one_cached(
            "SELECT EXISTS (SELECT 1 FROM users WHERE username = $1 AND is_admin AND disabled_at IS NULL)
                AND NOT EXISTS (SELECT 1 FROM users WHERE username <> $1 AND is_admin AND disabled_at IS NULL) AS last",
            &[&username],
        )
        .await
        .map_err(StoreError::from)?;
    if last.try_get::<_, bool>("last").map_err(StoreError::from)? {
        return Err(UserError::LastAdmin(username.to_owned()));
    }
    Ok(())
}

/// Deletes `username` with what is left of its data: the rows of its deleted files
/// (tombstones: a deleted file keeps its row so its node copies can be removed) and
/// of its ended uploads (complete, failed, expired), in one statement. Refused with
/// [`UserError::HasData`] while the user holds anything more: a live file, an upload
/// still uploading or assembling, or a deleted file whose node copies are still being
/// removed (a replica row left; its delete job ends that within a minute or so); such
/// an account is disabled instead. Refused with [`UserError::LastAdmin`] for the last
/// enabled administrator. Their tokens die with the row. Returns false when there is
/// no such user.
///
/// Staging bytes are not touched: an ended upload's are reclaimed by its delete job,
/// or else by the workers' staging sweep, which removes an old directory whose upload
/// row is gone.
pub async fn delete(c: &impl GenericClient, username: &str) -> Result<bool, UserError> {
    refuse_last_admin(c, username).await?;
    // One statement, one snapshot: the deletes run only if nothing holds the account.
    // An upload begun after the snapshot is caught by the foreign keys at the end of
    // the statement (23503), and reported the same way.
    let row = c
        .query_one_cached(
            "WITH target AS (SELECT id FROM users WHERE username = $1),
                  held AS (
                      SELECT EXISTS (SELECT 1 FROM files f JOIN target t ON t.id = f.user_id
                                     WHERE f.deleted_at IS NULL
                                        OR EXISTS (SELECT 1 FROM replicas r WHERE r.file_id = f.id))
                          OR EXISTS (SELECT 1 FROM uploads p JOIN target t ON t.id = p.user_id
                                     WHERE p.status = ANY($2)) AS held),
                  gone_uploads AS (DELETE FROM uploads WHERE user_id IN (SELECT id FROM target)
                                   AND NOT (SELECT held FROM held) RETURNING 1),
                  gone_files AS (DELETE FROM files WHERE user_id IN (SELECT id FROM target)
                                 AND NOT (SELECT held FROM held) RETURNING 1),
                  gone_user AS (DELETE FROM users WHERE id IN (SELECT id FROM target)
                                AND NOT (SELECT held FROM held) RETURNING 1)
             SELECT EXISTS (SELECT 1 FROM target) AS found, (SELECT held FROM held) AS held,
                    (SELECT count(*) FROM gone_files) AS files, (SELECT count(*) FROM gone_uploads) AS uploads",
            &[&username, &[UploadState::Uploading, UploadState::Assembling].as_slice()],
        )
        .await;
    let row = match row {
        Ok(row) => row,
        Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::FOREIGN_KEY_VIOLATION) => {
            return Err(UserError::HasData(username.to_owned()));
        }
        Err(e) => return Err(StoreError::from(e).into()),
    };
    if !row.try_get::<_, bool>("found").map_err(StoreError::from)? {
        return Ok(false);
    }
    if row.try_get::<_, bool>("held").map_err(StoreError::from)? {
        return Err(UserError::HasData(username.to_owned()));
    }
    let files: i64 = row.try_get("files").map_err(StoreError::from)?;
    let uploads: i64 = row.try_get("uploads").map_err(StoreError::from)?;
    tracing::info!(user = %username, files.deleted_rows = files, uploads.ended_rows = uploads, "user deleted");
    Ok(true)
}

/// What a login checks.
#[derive(Debug, Clone)]
pub struct Credentials {
    pub id: UserId,
    pub password_hash: String,
    pub is_admin: bool,
    /// Disabled accounts cannot log in.
    pub disabled: bool,
    /// The generation a token issued now carries.
    pub token_generation: i32,
}

pub async fn credentials(c: &impl GenericClient, username: &str) -> Result<Option<Credentials>, StoreError> {
    let row = c
        .query_opt_cached(
            "SELECT id, password_hash, is_admin, disabled_at IS NOT NULL AS disabled, token_generation
             FROM users WHERE username = $1",
            &[&username],
        )
        .await?;
    row.map(|r| {
        Ok(Credentials {
            id: UserId(r.try_get("id")?),
            password_hash: r.try_get("password_hash")?,
            is_admin: r.try_get("is_admin")?,
            disabled: r.try_get("disabled")?,
            token_generation: r.try_get("token_generation")?,
        })
    })
    .transpose()
}

/// An account's name, admin flag, what a token must match to stay valid, and its
/// storage use as of the read.
#[derive(Debug, Clone)]
pub struct Account {
    pub username: String,
    pub is_admin: bool,
    pub disabled: bool,
    /// Moves on at every password change, logout, disabling: a token issued under an
    /// older generation is refused.
    pub token_generation: i32,
    /// The account's own quota (`users.quota_bytes`); `None`: the configured default.
    pub quota: Option<ByteSize>,
    /// Bytes in use (`users.used_bytes`, see [`quota_left`]).
    pub used: ByteSize,
}

impl Account {
    /// Bytes the account may still store as of the read: its quota (or
    /// `default_quota`) minus its use, never below zero (an administrator may lower a
    /// quota under what is in use). [`quota_left`] reads an account for this.
    pub fn quota_left(&self, default_quota: ByteSize) -> ByteSize {
        ByteSize(self.quota.unwrap_or(default_quota).0.saturating_sub(self.used.0))
    }
}

/// The account `id` (one row read: every authenticated request reads it).
///
/// Errors: [`StoreError::Corrupt`] for a negative quota or use (the schema's checks
/// and the usage triggers keep both at zero or more).
pub async fn account(c: &impl GenericClient, id: UserId) -> Result<Option<Account>, StoreError> {
    let row = c
        .query_opt_cached(
            "SELECT username, is_admin, disabled_at IS NOT NULL AS disabled, token_generation, quota_bytes,
                    used_bytes
             FROM users WHERE id = $1",
            &[&id.0],
        )
        .await?;
    row.map(|r| {
        Ok(Account {
            username: r.try_get("username")?,
            is_admin: r.try_get("is_admin")?,
            disabled: r.try_get("disabled")?,
            token_generation: r.try_get("token_generation")?,
            quota: r
                .try_get::<_, Option<i64>>("quota_bytes")?
                .map(|q| size_from_db("users.quota_bytes", q))
                .transpose()?,
            used: size_from_db("users.used_bytes", r.try_get("used_bytes")?)?,
        })
    })
    .transpose()
}

/// Whether an account named `username` exists.
pub async fn exists(c: &impl GenericClient, username: &str) -> Result<bool, StoreError> {
    Ok(c.query_opt_cached("SELECT 1 FROM users WHERE username = $1", &[&username]).await?.is_some())
}

/// A user as the admin page and the CLI list them.
#[derive(Debug, Clone)]
pub struct UserSummary {
    pub id: UserId,
    pub username: String,
    pub is_admin: bool,
    /// Disabled: cannot log in, holds no valid token.
    pub disabled: bool,
    /// `None`: the configured default applies.
    pub quota: Option<ByteSize>,
    pub created_at: DateTime<Utc>,
    /// Live files and their total size.
    pub files: i64,
    pub stored: ByteSize,
}

impl UserSummary {
    /// The user as JSON (`ferry users list --json`, `GET /admin/api/users`):
    /// `quota_bytes` null when the configured default applies.
    pub fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "id": self.id,
            "username": self.username,
            "is_admin": self.is_admin,
            "disabled": self.disabled,
            "quota_bytes": self.quota,
            "files": self.files,
            "stored_bytes": self.stored,
            "created_at": self.created_at,
        })
    }
}

/// Users matching `search` (`name`: a piece of the username; `user`: the exact name;
/// `id_prefix`: the exact numeric id; `from`/`to`: created) and, when given, `disabled`, by id: one page with each user's
/// live files' count and size, and how many match in all.
pub async fn search(
    c: &impl GenericClient,
    search: &Search,
    disabled: Option<bool>,
    paging: Paging,
) -> Result<(i64, Vec<UserSummary>), StoreError> {
    let filter = "WHERE ($1::text IS NULL OR u.username = $1) AND ($2::text IS NULL OR u.username ILIKE $2)
           AND ($3::date IS NULL OR u.created_at >= $3::date) AND ($4::date IS NULL OR u.created_at < $4::date + 1)
           AND ($5::bool IS NULL OR (u.disabled_at IS NOT NULL) = $5) AND ($6::text IS NULL OR u.id::text = $6)";
    let name = search.name_pattern();
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 8] =
        [&search.user, &name, &search.from, &search.to, &disabled, &search.id_prefix, &paging.limit, &paging.offset];
    let total: i64 =
        c.query_one_cached(&format!("SELECT count(*) AS n FROM users u {filter}"), &params[..6]).await?.try_get("n")?;
    let rows = c
        .query_cached(
            &format!(
                "SELECT u.id, u.username, u.is_admin, u.disabled_at IS NOT NULL AS disabled, u.quota_bytes,
                    u.created_at, count(f.id) AS files, COALESCE(sum(f.size), 0)::BIGINT AS stored
                 FROM users u LEFT JOIN files f ON f.user_id = u.id AND f.deleted_at IS NULL
                 {filter} GROUP BY u.id ORDER BY u.id LIMIT $7 OFFSET $8"
            ),
            &params,
        )
        .await?;
    let users = rows
        .iter()
        .map(|r| {
            Ok(UserSummary {
                id: UserId(r.try_get("id")?),
                username: r.try_get("username")?,
                is_admin: r.try_get("is_admin")?,
                disabled: r.try_get("disabled")?,
                quota: r
                    .try_get::<_, Option<i64>>("quota_bytes")?
                    .map(|q| size_from_db("users.quota_bytes", q))
                    .transpose()?,
                created_at: r.try_get("created_at")?,
                files: r.try_get("files")?,
                stored: size_from_db("stored", r.try_get("stored")?)?,
            })
        })
        .collect::<Result<_, StoreError>>()?;
    Ok((total, users))
}

/// Sets `username`'s quota (`None`: the configured default applies again). It bounds
/// new uploads only: what is stored stays. Returns false when there is no such user.
pub async fn set_quota(c: &impl GenericClient, username: &str, quota: Option<ByteSize>) -> Result<bool, StoreError> {
    let quota = quota.map(|q| size_to_db("quota", q)).transpose()?;
    let updated =
        c.execute_cached("UPDATE users SET quota_bytes = $2 WHERE username = $1", &[&username, &quota]).await?;
    Ok(updated == 1)
}

/// The authoritative quota check of a transaction that records a new upload, taken
/// LAST, just before the commit: quota minus the committed use of everything else
/// (`users.used_bytes`) minus `own`, this transaction's new use, negative when it would
/// overdraw the quota. `used_bytes` is moved by deferred triggers on `uploads` and
/// `files` at each transaction's commit (migrations 14, 15), so the check reads one row
/// however many files the user has, and adds its own rows itself.
///
/// Locks the user's row (`FOR NO KEY UPDATE`) until the transaction ends: concurrent new
/// uploads of one user take turns here, each seeing the use committed before it, and
/// together they never exceed the quota (ten parallel first chunks used to pass the
/// same check at once). Taken last, the lock is held only for this check and the
/// commit; other transactions that change the user's use (a worker recording a file,
/// a chunk of a deferred-length upload) take the row only at their commit.
pub async fn lock_quota_left(
    tx: &deadpool_postgres::Transaction<'_>,
    user: UserId,
    default_quota: ByteSize,
    own: ByteSize,
) -> Result<i64, StoreError> {
    let row = tx
        .query_one_cached(
            "SELECT COALESCE(quota_bytes, $2) - used_bytes - $3 AS left FROM users WHERE id = $1 FOR NO KEY UPDATE",
            &[&user.0, &i64::try_from(default_quota.0).unwrap_or(i64::MAX), &size_to_db("own use", own)?],
        )
        .await?;
    Ok(row.try_get("left")?)
}

/// Bytes `user` may still store: their quota (or `default_quota`) minus what is in use
/// (`users.used_bytes`: live files, and open uploads at their declared size or the
/// bytes received so far), never below zero; zero for an account that does not exist.
/// The account's one read, the formula [`Account::quota_left`]'s.
pub async fn quota_left(c: &impl GenericClient, user: UserId, default_quota: ByteSize) -> Result<ByteSize, StoreError> {
    Ok(account(c, user).await?.map_or(ByteSize(0), |a| a.quota_left(default_quota)))
}

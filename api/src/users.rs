//! Creating and updating accounts from the command line (`ferry-api user-add`).

use deadpool_postgres::Pool;

#[derive(Debug, thiserror::Error)]
pub enum UserError {
    #[error("username must be 1-150 letters, digits or @.+-_")]
    BadUsername,
    #[error("password must be at least 8 characters")]
    ShortPassword,
    #[error("hashing the password failed: {0}")]
    Hash(String),
    #[error(transparent)]
    Db(#[from] ferry_store::StoreError),
}

/// Creates `username`, or resets its password and admin flag when it exists
/// (idempotent, so `deploy/dev up` can run it every time).
pub async fn upsert(pool: &Pool, username: &str, password: &str, admin: bool) -> Result<i64, UserError> {
    let valid = (1..=150).contains(&username.len())
        && username.bytes().all(|b| b.is_ascii_alphanumeric() || b"@.+-_".contains(&b));
    if !valid {
        return Err(UserError::BadUsername);
    }
    if password.chars().count() < 8 {
        return Err(UserError::ShortPassword);
    }
    let hash = crate::auth::hash_password(password).map_err(|e| UserError::Hash(e.to_string()))?;
    let client = pool.get().await.map_err(ferry_store::StoreError::from)?;
    let row = client
        .query_one(
            "INSERT INTO users (username, password_hash, is_admin) VALUES ($1, $2, $3)
             ON CONFLICT (username) DO UPDATE SET password_hash = EXCLUDED.password_hash, is_admin = EXCLUDED.is_admin
             RETURNING id",
            &[&username, &hash, &admin],
        )
        .await
        .map_err(ferry_store::StoreError::from)?;
    Ok(row.get(0))
}

/// Sets a new password for an existing user, keeping their admin flag. Returns false
/// when there is no such user.
pub async fn set_password(pool: &Pool, username: &str, password: &str) -> Result<bool, UserError> {
    if password.chars().count() < 8 {
        return Err(UserError::ShortPassword);
    }
    let hash = crate::auth::hash_password(password).map_err(|e| UserError::Hash(e.to_string()))?;
    let client = pool.get().await.map_err(ferry_store::StoreError::from)?;
    let updated = client
        .execute("UPDATE users SET password_hash = $2 WHERE username = $1", &[&username, &hash])
        .await
        .map_err(ferry_store::StoreError::from)?;
    Ok(updated == 1)
}

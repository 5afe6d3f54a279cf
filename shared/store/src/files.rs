//! The `files` table: verified files (same id as their upload) and version chains.

use std::collections::HashMap;

use crate::cached::Cached;
use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use ferry_shared::types::{ByteSize, FileId, NodeId, UserId};

use crate::convert::{size_from_db, size_to_db};
use crate::search::{Paging, Search};
use crate::{NodeState, ReplicaState, StoreError};

/// A new file row, written by the assembly.
#[derive(Debug, Clone)]
pub struct NewFile<'a> {
    pub id: FileId,
    pub user: UserId,
    pub filename: &'a str,
    pub size: ByteSize,
    /// Hex digests of the verified bytes.
    pub md5: &'a str,
    pub sha256: &'a str,
    /// Root of the version chain, if any.
    pub parent: Option<FileId>,
    pub version: i32,
}

/// Inserts the file; a row with the same id already there is kept (redelivery).
pub async fn insert(c: &impl GenericClient, f: &NewFile<'_>) -> Result<(), StoreError> {
    c.execute_cached(
        "INSERT INTO files (id, user_id, filename, size, md5, sha256, parent_id, version)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (id) DO NOTHING",
        &[
            &f.id.0,
            &f.user.0,
            &f.filename,
            &size_to_db("file size", f.size)?,
            &f.md5,
            &f.sha256,
            &f.parent.map(|p| p.0),
            &f.version,
        ],
    )
    .await?;
    Ok(())
}

/// `id` if it is a live (not deleted) file, its row locked (`FOR UPDATE`) for the rest
/// of the transaction.
pub async fn lock_live(c: &impl GenericClient, id: FileId) -> Result<Option<FileId>, StoreError> {
    let row =
        c.query_opt_cached("SELECT id FROM files WHERE id = $1 AND deleted_at IS NULL FOR UPDATE", &[&id.0]).await?;
    row.map(|r| Ok(FileId(r.try_get("id")?))).transpose()
}

/// The version a new file in `root`'s chain gets: one past the chain's highest.
pub async fn next_version(c: &impl GenericClient, root: FileId) -> Result<i32, StoreError> {
    let row = c
        .query_one_cached(
            "SELECT COALESCE(MAX(version), 1) + 1 AS next FROM files WHERE id = $1 OR parent_id = $1",
            &[&root.0],
        )
        .await?;
    Ok(row.try_get("next")?)
}

/// Locks the file row (`FOR UPDATE`) for the rest of the transaction: one drop of a
/// surplus replica per file at a time.
pub async fn lock(c: &impl GenericClient, id: FileId) -> Result<(), StoreError> {
    c.execute_cached("SELECT 1 FROM files WHERE id = $1 FOR UPDATE", &[&id.0]).await?;
    Ok(())
}

/// A file row as clients see it.
#[derive(Debug, Clone)]
pub struct File {
    pub id: FileId,
    pub user: UserId,
    pub filename: String,
    pub size: ByteSize,
    pub md5: String,
    pub sha256: String,
    pub parent: Option<FileId>,
    pub version: i32,
    pub created_at: DateTime<Utc>,
    pub deleted_at: Option<DateTime<Utc>>,
}

pub(crate) const FILE_COLUMNS: &str =
    "f.id, f.user_id, f.filename, f.size, f.md5, f.sha256, f.parent_id, f.version, f.created_at, f.deleted_at";

impl File {
    pub(crate) fn from_row(r: &tokio_postgres::Row) -> Result<File, StoreError> {
        Ok(File {
            id: FileId(r.try_get("id")?),
            user: UserId(r.try_get("user_id")?),
            filename: r.try_get("filename")?,
            size: size_from_db("files.size", r.try_get("size")?)?,
            md5: r.try_get("md5")?,
            sha256: r.try_get("sha256")?,
            parent: r.try_get::<_, Option<uuid::Uuid>>("parent_id")?.map(FileId),
            version: r.try_get("version")?,
            created_at: r.try_get("created_at")?,
            deleted_at: r.try_get("deleted_at")?,
        })
    }
}

/// How many live version-chain roots `user` has (what the listing pages through).
pub async fn count_roots(c: &impl GenericClient, user: UserId) -> Result<i64, StoreError> {
    let row = c
        .query_one_cached(
            "SELECT count(*) AS n FROM files WHERE user_id = $1 AND deleted_at IS NULL AND parent_id IS NULL",
            &[&user.0],
        )
        .await?;
    Ok(row.try_get("n")?)
}

/// A page of `user`'s live roots, newest first.
pub async fn roots_page(
    c: &impl GenericClient,
    user: UserId,
    limit: i64,
    offset: i64,
) -> Result<Vec<File>, StoreError> {
    let rows = c
        .query_cached(
            &format!(
                "SELECT {FILE_COLUMNS} FROM files f WHERE f.user_id = $1 AND f.deleted_at IS NULL AND f.parent_id IS NULL
                 ORDER BY f.created_at DESC, f.id LIMIT $2 OFFSET $3"
            ),
            &[&user.0, &limit, &offset],
        )
        .await?;
    rows.iter().map(File::from_row).collect()
}

/// The newest `newest` live versions (children) of each of `roots`, oldest first, and
/// how many live versions each root has in all (roots without any are absent): a
/// listing stays bounded however long a chain grows ([`versions_page`] pages through
/// all of them).
pub async fn versions_of(
    c: &impl GenericClient,
    roots: &[FileId],
    user: UserId,
    newest: i64,
) -> Result<(Vec<File>, HashMap<FileId, i64>), StoreError> {
    let ids: Vec<uuid::Uuid> = roots.iter().map(|f| f.0).collect();
    let rows = c
        .query_cached(
            &format!(
                "SELECT * FROM (
                     SELECT {FILE_COLUMNS}, count(*) OVER (PARTITION BY f.parent_id) AS versions_total,
                            row_number() OVER (PARTITION BY f.parent_id ORDER BY f.version DESC, f.created_at DESC)
                                AS newest_rank
                     FROM files f WHERE f.parent_id = ANY($1) AND f.user_id = $2 AND f.deleted_at IS NULL
                 ) v
                 WHERE newest_rank <= $3 ORDER BY version, created_at"
            ),
            &[&ids, &user.0, &newest],
        )
        .await?;
    let mut totals = HashMap::new();
    let mut files = Vec::with_capacity(rows.len());
    for row in &rows {
        let file = File::from_row(row)?;
        if let Some(parent) = file.parent {
            totals.insert(parent, row.try_get::<_, i64>("versions_total")?);
        }
        files.push(file);
    }
    Ok((files, totals))
}

/// One page of `root`'s live versions, oldest first (`limit` from `offset`), and how
/// many there are; both empty when `root` is not a live file of `user`'s.
pub async fn versions_page(
    c: &impl GenericClient,
    root: FileId,
    user: UserId,
    limit: i64,
    offset: i64,
) -> Result<(i64, Vec<File>), StoreError> {
    let count: i64 = c
        .query_one_cached(
            "SELECT count(*) AS n FROM files WHERE parent_id = $1 AND user_id = $2 AND deleted_at IS NULL",
            &[&root.0, &user.0],
        )
        .await?
        .try_get("n")?;
    let rows = c
        .query_cached(
            &format!(
                "SELECT {FILE_COLUMNS} FROM files f WHERE f.parent_id = $1 AND f.user_id = $2 AND f.deleted_at IS NULL
                 ORDER BY f.version, f.created_at, f.id LIMIT $3 OFFSET $4"
            ),
            &[&root.0, &user.0, &limit, &offset],
        )
        .await?;
    Ok((count, rows.iter().map(File::from_row).collect::<Result<_, _>>()?))
}

/// `user`'s live file `id`.
pub async fn get_live(c: &impl GenericClient, id: FileId, user: UserId) -> Result<Option<File>, StoreError> {
    let row = c
        .query_opt_cached(
            &format!("SELECT {FILE_COLUMNS} FROM files f WHERE f.id = $1 AND f.user_id = $2 AND f.deleted_at IS NULL"),
            &[&id.0, &user.0],
        )
        .await?;
    row.map(|r| File::from_row(&r)).transpose()
}

/// The root of `id`'s version chain, if `id` is a live file of `user`.
pub async fn chain_root(c: &impl GenericClient, id: FileId, user: UserId) -> Result<Option<FileId>, StoreError> {
    let row = c
        .query_opt_cached(
            "SELECT COALESCE(parent_id, id) AS root FROM files WHERE id = $1 AND user_id = $2 AND deleted_at IS NULL",
            &[&id.0, &user.0],
        )
        .await?;
    row.map(|r| Ok(FileId(r.try_get("root")?))).transpose()
}

/// Hides `user`'s file `id` and, for a root, its versions; marks their replicas
/// `deleting`. Returns the files hidden (empty when `id` is not a live file of
/// `user`).
pub async fn soft_delete(c: &impl GenericClient, id: FileId, user: UserId) -> Result<Vec<FileId>, StoreError> {
    let rows = c
        .query_cached(
            "UPDATE files SET deleted_at = now()
             WHERE user_id = $2 AND deleted_at IS NULL AND (id = $1 OR parent_id = $1)
             RETURNING id",
            &[&id.0, &user.0],
        )
        .await?;
    let deleted: Vec<uuid::Uuid> = rows.iter().map(|r| r.try_get("id")).collect::<Result<_, _>>()?;
    if !deleted.contains(&id.0) {
        return Ok(Vec::new());
    }
    c.execute_cached(
        "UPDATE replicas SET state = $2, updated_at = now() WHERE file_id = ANY($1)",
        &[&deleted, &ReplicaState::Deleting],
    )
    .await?;
    Ok(deleted.into_iter().map(FileId).collect())
}

/// A file with its owner's name (and, for listings, its present replicas).
#[derive(Debug, Clone)]
pub struct Owned {
    pub file: File,
    pub username: String,
    /// Present replicas.
    pub present: i64,
}

impl Owned {
    /// The file as JSON (`ferry files ls --json`, `GET /admin/api/files`): sizes in
    /// bytes, times RFC 3339, `replicas` the count of present copies.
    pub fn json(&self) -> serde_json::Value {
        let f = &self.file;
        serde_json::json!({
            "id": f.id,
            "user": self.username,
            "filename": f.filename,
            "size": f.size,
            "md5": f.md5,
            "sha256": f.sha256,
            "version": f.version,
            "parent": f.parent,
            "created_at": f.created_at,
            "deleted_at": f.deleted_at,
            "replicas": self.present,
        })
    }
}

fn owned_from_row(r: &tokio_postgres::Row) -> Result<Owned, StoreError> {
    Ok(Owned { file: File::from_row(r)?, username: r.try_get("username")?, present: r.try_get("present")? })
}

const OWNED: &str = "SELECT f.id, f.user_id, f.filename, f.size, f.md5, f.sha256, f.parent_id, f.version, f.created_at,
        f.deleted_at, u.username,
        (SELECT count(*) FROM replicas r WHERE r.file_id = f.id AND r.state = $1) AS present
     FROM files f JOIN users u ON u.id = f.user_id";

/// Any user's file `id`, deleted or not.
pub async fn get_any(c: &impl GenericClient, id: FileId) -> Result<Option<Owned>, StoreError> {
    let row = c.query_opt_cached(&format!("{OWNED} WHERE f.id = $2"), &[&ReplicaState::Present, &id.0]).await?;
    row.map(|r| owned_from_row(&r)).transpose()
}

/// Every user's files matching `search`, newest first (`deleted`: `Some(false)` live
/// ones only, `Some(true)` deleted ones only, `None` both): one page and how many match.
pub async fn search(
    c: &impl GenericClient,
    search: &Search,
    deleted: Option<bool>,
    paging: Paging,
) -> Result<(i64, Vec<Owned>), StoreError> {
    // The same six conditions, numbered from `$first` on.
    let filter = |first: usize| {
        let p: Vec<String> = (first..first + 6).map(|n| format!("${n}")).collect();
        format!(
            "WHERE ({0}::text IS NULL OR u.username = {0}) AND ({1}::text IS NULL OR f.filename ILIKE {1})
               AND ({2}::text IS NULL OR f.id::text LIKE {2}) AND ({3}::date IS NULL OR f.created_at >= {3}::date)
               AND ({4}::date IS NULL OR f.created_at < {4}::date + 1)
               AND ({5}::bool IS NULL OR (f.deleted_at IS NOT NULL) = {5})",
            p[0], p[1], p[2], p[3], p[4], p[5]
        )
    };
    let (name, id) = (search.name_pattern(), search.id_pattern());
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 9] = [
        &ReplicaState::Present,
        &search.user,
        &name,
        &id,
        &search.from,
        &search.to,
        &deleted,
        &paging.limit,
        &paging.offset,
    ];
    let total: i64 = c
        .query_one_cached(
            &format!("SELECT count(*) AS n FROM files f JOIN users u ON u.id = f.user_id {}", filter(1)),
            &params[1..7],
        )
        .await?
        .try_get("n")?;
    let rows = c
        .query_cached(&format!("{OWNED} {} ORDER BY f.created_at DESC, f.id LIMIT $8 OFFSET $9", filter(2)), &params)
        .await?;
    Ok((total, rows.iter().map(owned_from_row).collect::<Result<_, _>>()?))
}

/// Every version of the chain `root` (any user's, deleted ones too), oldest first.
pub async fn chain_any(c: &impl GenericClient, root: FileId) -> Result<Vec<Owned>, StoreError> {
    let rows = c
        .query_cached(
            &format!("{OWNED} WHERE f.id = $2 OR f.parent_id = $2 ORDER BY f.version, f.created_at"),
            &[&ReplicaState::Present, &root.0],
        )
        .await?;
    rows.iter().map(owned_from_row).collect()
}

/// Where a download can be sent: the file's sha256 and its present replicas on nodes
/// that are not disabled.
#[derive(Debug, Clone)]
pub struct DownloadSources {
    pub sha256: String,
    /// The name the client gave the file (sent back in `Content-Disposition`).
    pub filename: String,
    pub replicas: Vec<ReplicaLocation>,
}

/// A node holding a present copy.
#[derive(Debug, Clone)]
pub struct ReplicaLocation {
    pub node: NodeId,
    pub public_url: String,
    /// Degrees.
    pub lat: f64,
    pub lon: f64,
}

/// Live file `id` with its download sources, if it is `owner`'s (any owner's for
/// `None`: a signed link already names the file it grants); `None` when there is no
/// such file.
pub async fn download_sources(
    c: &impl GenericClient,
    id: FileId,
    owner: Option<UserId>,
) -> Result<Option<DownloadSources>, StoreError> {
    let rows = c
        .query_cached(
            "SELECT f.sha256, f.filename, n.id AS node_id, n.public_url, n.lat, n.lon
             FROM files f
             LEFT JOIN replicas r ON r.file_id = f.id AND r.state = $3
             LEFT JOIN nodes n ON n.id = r.node_id AND n.state <> $4
             WHERE f.id = $1 AND ($2::bigint IS NULL OR f.user_id = $2) AND f.deleted_at IS NULL",
            &[&id.0, &owner.map(|u| u.0), &ReplicaState::Present, &NodeState::Disabled],
        )
        .await?;
    let Some(first) = rows.first() else { return Ok(None) };
    let sha256 = first.try_get("sha256")?;
    let filename = first.try_get("filename")?;
    let mut replicas = Vec::new();
    for r in &rows {
        if let Some(node) = r.try_get::<_, Option<i32>>("node_id")? {
            replicas.push(ReplicaLocation {
                node: NodeId(node),
                public_url: r.try_get("public_url")?,
                lat: r.try_get("lat")?,
                lon: r.try_get("lon")?,
            });
        }
    }
    Ok(Some(DownloadSources { sha256, filename, replicas }))
}

//! Consistent online backups. One read transaction sees one committed state and does not
//! block the writer, so copying every table from it into a fresh redb file gives a snapshot
//! that never contains half a commit, taken while writes go on. Updates not folded yet live
//! in the in-memory journal: the backup takes them with its snapshot and carries them in its
//! `journal` table, folded when the backup is opened.

use std::path::Path;

use redb::{Database, Key, ReadableDatabase, ReadableTable, TableDefinition, Value};

use super::journal::{JOURNAL, Journal};
use super::{
    ADMINS, BLOB_MENTIONS, BLOB_REFS, BLOB_USAGE, BLOBS, DISABLED, DOCS, LOG, LOG_BASE, META,
    REVOKED, SESSIONS, USERS,
};
use crate::store::error::StoreError;

/// `key → value` facts about the backup itself (the JWT secret travels here, so tokens keep
/// working after a restore).
pub const BACKUP_INFO: TableDefinition<&str, &str> = TableDefinition::new("backup_info");

fn copy<K: Key + 'static, V: Value + 'static>(
    from: &redb::ReadTransaction,
    to: &redb::WriteTransaction,
    table: TableDefinition<K, V>,
) -> Result<u64, StoreError> {
    let mut dest = to.open_table(table).map_err(StoreError::unavailable)?;
    // A file from an older build (backed up offline, before this build opened it) lacks the
    // tables added since: they are empty, not an error, and the next start creates them.
    let source = match from.open_table(table) {
        Ok(source) => source,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(0),
        Err(e) => return Err(StoreError::unavailable(e)),
    };
    let mut rows = 0;
    for row in source.iter().map_err(StoreError::unavailable)? {
        let (k, v) = row.map_err(StoreError::unavailable)?;
        dest.insert(k.value(), v.value())
            .map_err(StoreError::unavailable)?;
        rows += 1;
    }
    Ok(rows)
}

/// Writes a snapshot of `db` to `dest` (which must not exist yet) with `info` in its
/// `backup_info` table, durably. Returns the number of rows copied.
///
/// # Errors
/// `Unavailable` on any storage error; `dest` is then removed.
pub fn snapshot(
    db: &Database,
    dest: &Path,
    info: &[(&str, &str)],
    journal: Option<&Journal>,
) -> Result<u64, StoreError> {
    if dest.exists() {
        return Err(StoreError::Unavailable(format!(
            "{} already exists",
            dest.display()
        )));
    }
    let result = (|| {
        let out = Database::create(dest).map_err(StoreError::unavailable)?;
        let (read, unfolded) = match journal {
            Some(journal) => journal.snapshot_all(db)?,
            None => (
                db.begin_read().map_err(StoreError::unavailable)?,
                Vec::new(),
            ),
        };
        let write = out.begin_write().map_err(StoreError::unavailable)?;
        let mut rows = 0;
        rows += copy(&read, &write, META)?;
        super::durable::new_identity(&write)?;
        rows += copy(&read, &write, USERS)?;
        rows += copy(&read, &write, DOCS)?;
        rows += copy(&read, &write, LOG)?;
        rows += copy(&read, &write, LOG_BASE)?;
        rows += copy(&read, &write, JOURNAL)?;
        {
            let mut table = write.open_table(JOURNAL).map_err(StoreError::unavailable)?;
            for (seq, row) in &unfolded {
                table.insert(seq, &**row).map_err(StoreError::unavailable)?;
                rows += 1;
            }
        }
        rows += copy(&read, &write, REVOKED)?;
        rows += copy(&read, &write, SESSIONS)?;
        rows += copy(&read, &write, DISABLED)?;
        rows += copy(&read, &write, ADMINS)?;
        rows += copy(&read, &write, BLOBS)?;
        rows += copy(&read, &write, BLOB_REFS)?;
        rows += copy(&read, &write, BLOB_USAGE)?;
        rows += copy(&read, &write, BLOB_MENTIONS)?;
        rows += copy(&read, &write, super::schema::AUDIT)?;
        rows += copy(&read, &write, super::feed::FEED)?;
        rows += copy(&read, &write, super::hooks::WEBHOOKS)?;
        rows += copy(&read, &write, super::sharing::SHARES)?;
        rows += copy(&read, &write, super::sharing::SHARED_WITH)?;
        {
            let mut facts = write
                .open_table(BACKUP_INFO)
                .map_err(StoreError::unavailable)?;
            for (k, v) in info {
                facts.insert(*k, *v).map_err(StoreError::unavailable)?;
            }
        }
        write.commit().map_err(StoreError::unavailable)?;
        Ok(rows)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(dest);
    }
    result
}

/// Opens a backup file and returns its `backup_info`, checking it is a Hearth data file this
/// build can read.
///
/// # Errors
/// `Unavailable` with the reason when the file is not a usable backup.
pub fn verify(path: &Path) -> Result<Vec<(String, String)>, StoreError> {
    let db =
        Database::open(path).map_err(|e| StoreError::Unavailable(format!("not a backup: {e}")))?;
    let read = db.begin_read().map_err(StoreError::unavailable)?;
    let meta = read
        .open_table(META)
        .map_err(|e| StoreError::Unavailable(format!("not a Hearth data file: {e}")))?;
    let version = meta
        .get("schema_version")
        .map_err(StoreError::unavailable)?
        .map(|v| v.value())
        .ok_or_else(|| StoreError::unavailable("no schema version"))?;
    if version > super::SCHEMA_VERSION {
        return Err(StoreError::Unavailable(format!(
            "backup has schema {version}; this build reads up to {}",
            super::SCHEMA_VERSION
        )));
    }
    for table in [USERS, DOCS, LOG_BASE] {
        read.open_table(table)
            .map_err(|e| StoreError::Unavailable(format!("incomplete backup: {e}")))?;
    }
    let facts = read
        .open_table(BACKUP_INFO)
        .map_err(|e| StoreError::Unavailable(format!("not a backup: {e}")))?;
    let mut info = Vec::new();
    for row in facts.iter().map_err(StoreError::unavailable)? {
        let (k, v) = row.map_err(StoreError::unavailable)?;
        info.push((k.value().to_owned(), v.value().to_owned()));
    }
    Ok(info)
}

/// Snapshot of the data file at `db_path` when no server holds it.
///
/// # Errors
/// `Unavailable` when the file is in use (say so: the server can do it online) or fails.
pub fn offline_snapshot(
    db_path: &Path,
    dest: &Path,
    info: &[(&str, &str)],
) -> Result<u64, StoreError> {
    let db = Database::open(db_path).map_err(|e| match e {
        redb::DatabaseError::DatabaseAlreadyOpen => StoreError::Unavailable(format!(
            "{} is in use by a running server: back it up online with --url and --token",
            db_path.display()
        )),
        other => StoreError::unavailable(other),
    })?;
    // A server that crashed may hold acknowledged updates only in its log: fold them first.
    // Refused, as a start is, when the log is damaged.
    let mut log = super::durable::DurableLog::open(&db, db_path, None, false)?;
    // Still stopped: mark it clean again, as the server's stop had.
    log.stop(&db)?;
    snapshot(&db, dest, info, None)
}

/// Marks the (stopped) data file at `db_path` as cleanly stopped: it needs no log.
///
/// # Errors
/// `Unavailable`.
pub fn mark_clean(db_path: &Path) -> Result<(), StoreError> {
    let db = Database::open(db_path).map_err(StoreError::unavailable)?;
    let txn = db.begin_write().map_err(StoreError::unavailable)?;
    super::durable::mark_clean(&txn)?;
    txn.commit().map_err(StoreError::unavailable)
}

/// True when a server (or anything) holds the data file's lock.
pub fn in_use(db_path: &Path) -> bool {
    db_path.exists()
        && matches!(
            Database::open(db_path),
            Err(redb::DatabaseError::DatabaseAlreadyOpen)
        )
}

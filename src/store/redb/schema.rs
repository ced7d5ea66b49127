//! The data file's layout: its tables, its schema version and how a file is brought up to
//! it, and the decoding every reader shares.

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use super::{journal, sharing};
use crate::store::error::StoreError;
use crate::store::model::{Document, Flag, LogEntry, Version};

pub(super) const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
pub(super) const USERS: TableDefinition<&str, &[u8]> = TableDefinition::new("users");
pub(super) const DOCS: TableDefinition<&str, &[u8]> = TableDefinition::new("docs");
/// `(username, version) → LogEntry` JSON: every retained committed version.
pub(super) const LOG: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("changelog");
/// `username → Document` JSON: the document just before its oldest retained log entry, so
/// every retained version can be rebuilt by replaying the log forward from here.
pub(super) const LOG_BASE: TableDefinition<&str, &[u8]> = TableDefinition::new("changelog_base");
pub(super) const REVOKED: TableDefinition<&str, u64> = TableDefinition::new("revoked_sessions");
/// `username → ()`: disabled accounts, few, loaded at start.
pub(super) const DISABLED: TableDefinition<&str, ()> = TableDefinition::new("disabled_users");
/// `(username, session id) → SessionRecord` JSON: issued sessions, for listing and revoking.
pub(super) const SESSIONS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("sessions");
/// `username → ()`: accounts made admins with `hearth user grant-admin`.
pub(super) const ADMINS: TableDefinition<&str, ()> = TableDefinition::new("admin_users");
/// `sha256 → BlobRecord` JSON: every blob someone references.
pub(super) const BLOBS: TableDefinition<&str, &[u8]> = TableDefinition::new("blobs");
/// `(username, sha256) → size`: who holds which blob.
pub(super) const BLOB_REFS: TableDefinition<(&str, &str), u64> = TableDefinition::new("blob_refs");
/// `username → bytes`: the sum of the sizes of the blobs an account references.
pub(super) const BLOB_USAGE: TableDefinition<&str, u64> = TableDefinition::new("blob_usage");
/// `(document, sha256, by) → ()`: `by`, holding the blob, wrote its hash into `document`
/// (the blob read rule, PROTOCOL.md "Blobs").
/// The audit log: sequence number → the line's JSON (`store/audit.rs`).
pub(super) const AUDIT: TableDefinition<u64, &[u8]> = TableDefinition::new("audit");
pub(super) const BLOB_MENTIONS: TableDefinition<(&str, &str, &str), ()> =
    TableDefinition::new("blob_mentions");

/// The table holding accounts with `flag` set.
pub(super) fn flag_table(flag: Flag) -> TableDefinition<'static, &'static str, ()> {
    match flag {
        Flag::Disabled => DISABLED,
        Flag::Admin => ADMINS,
    }
}

/// Bumped when the on-disk layout changes; a newer file is refused rather than misread.
/// 2: updates go to the journal first (`journal.rs`); a build that reads only `docs` would
/// serve stale documents from such a file, so it must refuse it.
/// 3: acknowledged updates may be only in the write-ahead log after a crash (`wal.rs`); a
/// build that does not replay it would lose them.
/// 4: named documents (`owner/name` keys in `docs` and `changelog`) and the sharing index
/// (`sharing.rs`), built from every document when a file of version 3 or less is opened.
pub(super) const SCHEMA_VERSION: u64 = 4;

pub(super) fn init_schema(db: &Database) -> Result<(), StoreError> {
    let txn = db.begin_write().map_err(StoreError::unavailable)?;
    {
        let mut meta = txn.open_table(META).map_err(StoreError::unavailable)?;
        let found = meta
            .get("schema_version")
            .map_err(StoreError::unavailable)?
            .map(|v| v.value());
        let upgrade = match found {
            Some(v) if v > SCHEMA_VERSION => {
                return Err(StoreError::Unavailable(format!(
                    "data file has schema version {v}; this build reads up to {SCHEMA_VERSION}"
                )));
            }
            Some(v) if v == SCHEMA_VERSION => false,
            // Older files lack tables, which are created below, and the sharing index.
            Some(_) | None => {
                meta.insert("schema_version", SCHEMA_VERSION)
                    .map_err(StoreError::unavailable)?;
                found.is_some()
            }
        };
        // Create every table up front so readers never meet a missing one.
        txn.open_table(USERS).map_err(StoreError::unavailable)?;
        txn.open_table(DOCS).map_err(StoreError::unavailable)?;
        txn.open_table(LOG).map_err(StoreError::unavailable)?;
        txn.open_table(LOG_BASE).map_err(StoreError::unavailable)?;
        txn.open_table(journal::JOURNAL)
            .map_err(StoreError::unavailable)?;
        txn.open_table(REVOKED).map_err(StoreError::unavailable)?;
        txn.open_table(SESSIONS).map_err(StoreError::unavailable)?;
        txn.open_table(DISABLED).map_err(StoreError::unavailable)?;
        txn.open_table(ADMINS).map_err(StoreError::unavailable)?;
        txn.open_table(BLOBS).map_err(StoreError::unavailable)?;
        txn.open_table(BLOB_REFS).map_err(StoreError::unavailable)?;
        txn.open_table(BLOB_USAGE)
            .map_err(StoreError::unavailable)?;
        txn.open_table(BLOB_MENTIONS)
            .map_err(StoreError::unavailable)?;
        txn.open_table(AUDIT).map_err(StoreError::unavailable)?;
        sharing::create(&txn)?;
        if upgrade {
            index_sharing(&txn)?;
        }
    }
    txn.commit().map_err(StoreError::unavailable)
}

/// Builds the sharing index from every stored document (a file from before it existed). Rows
/// the file's log still holds are indexed when recovery folds them.
fn index_sharing(txn: &redb::WriteTransaction) -> Result<(), StoreError> {
    let mut shared = Vec::new();
    {
        let docs = txn.open_table(DOCS).map_err(StoreError::unavailable)?;
        for row in docs.iter().map_err(StoreError::unavailable)? {
            let (k, v) = row.map_err(StoreError::unavailable)?;
            let doc: Document = decode(v.value(), k.value())?;
            if !doc.metadata.collaborators.is_empty() || !doc.metadata.readers.is_empty() {
                shared.push((k.value().to_owned(), doc));
            }
        }
    }
    for (key, doc) in shared {
        sharing::reindex(txn, &key, Some(&doc))?;
    }
    Ok(())
}

pub(super) fn decode<T: serde::de::DeserializeOwned>(
    bytes: &[u8],
    what: &str,
) -> Result<T, StoreError> {
    serde_json::from_slice(bytes)
        .map_err(|e| StoreError::Unavailable(format!("corrupt record {what}: {e}")))
}

pub(super) fn read_json<T: serde::de::DeserializeOwned>(
    db: &Database,
    table: TableDefinition<&str, &[u8]>,
    key: &str,
) -> Result<Option<T>, StoreError> {
    let txn = db.begin_read().map_err(StoreError::unavailable)?;
    let table = txn.open_table(table).map_err(StoreError::unavailable)?;
    let Some(bytes) = table.get(key).map_err(StoreError::unavailable)? else {
        return Ok(None);
    };
    decode(bytes.value(), key).map(Some)
}

/// Log entries of `name` in `from..=to`, oldest first, at most `limit`.
pub(super) fn read_log(
    log: &impl ReadableTable<(&'static str, u64), &'static [u8]>,
    name: &str,
    from: Version,
    to: Version,
    limit: usize,
) -> Result<Vec<LogEntry>, StoreError> {
    let mut entries = Vec::new();
    if from > to {
        return Ok(entries);
    }
    for row in log
        .range((name, from)..=(name, to))
        .map_err(StoreError::unavailable)?
        .take(limit)
    {
        let (_, bytes) = row.map_err(StoreError::unavailable)?;
        entries.push(decode(bytes.value(), name)?);
    }
    Ok(entries)
}

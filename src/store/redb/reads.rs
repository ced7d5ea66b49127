//! The reads behind the `Backend` methods that are more than a lookup, each run by
//! `RedbBackend::read` on tokio's blocking pool in one read transaction.

use std::path::Path;

use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata};

use super::journal::Journal;
use super::schema::{
    BLOBS, DOCS, LOG, LOG_BASE, REVOKED, SESSIONS, USERS, decode, flag_table, read_log,
};
use crate::store::backend::{History, Listed, StoreStats};
use crate::store::error::StoreError;
use crate::store::model::{
    BlobRecord, Document, Flag, LogEntry, SessionRecord, UserRecord, Version,
};

/// `Backend::history`: one read transaction, so base and entries agree even while the
/// writer trims; entries not folded yet come from the journal's snapshot.
pub(super) fn history(
    db: &Database,
    journal: &Journal,
    name: &str,
    from: Version,
    to: Version,
    limit: usize,
    with_base: bool,
) -> Result<History, StoreError> {
    // One read transaction: base and entries agree even while the writer trims.
    let (txn, unfolded) = journal.snapshot(db, name)?;
    let log = txn.open_table(LOG).map_err(StoreError::unavailable)?;
    let (base, from) = if with_base {
        let bases = txn.open_table(LOG_BASE).map_err(StoreError::unavailable)?;
        let base: Option<Document> = match bases.get(name).map_err(StoreError::unavailable)? {
            Some(bytes) => Some(decode(bytes.value(), name)?),
            None => None,
        };
        let start = base.as_ref().map_or(from, |b| b.version() + 1);
        (base, start)
    } else {
        (None, from)
    };
    let mut logged = log
        .range((name, 0)..=(name, u64::MAX))
        .map_err(StoreError::unavailable)?;
    let oldest = logged
        .next()
        .transpose()
        .map_err(StoreError::unavailable)?
        .map(|(k, _)| k.value().1);
    let newest = match logged.next_back() {
        Some(row) => Some(row.map_err(StoreError::unavailable)?.0.value().1),
        None => oldest,
    };
    drop(logged);
    let mut entries = read_log(&log, name, from, to, limit)?;
    // Entries not folded yet are newer than every logged one; any the snapshot also
    // holds (a fold committed meanwhile) are skipped.
    let unfolded: Vec<LogEntry> = unfolded
        .into_iter()
        .filter(|e| newest.is_none_or(|n| e.version > n))
        .collect();
    let oldest = oldest.or_else(|| unfolded.first().map(|e| e.version));
    let room = limit.saturating_sub(entries.len());
    entries.extend(
        unfolded
            .into_iter()
            .filter(|e| e.version >= from && e.version <= to)
            .take(room),
    );
    Ok(History {
        base,
        oldest,
        entries,
    })
}

/// `Backend::documents`: one snapshot, the journal's rows for it, and each document's
/// metadata (its `userdata` skipped, not built). A document with unfolded updates is rebuilt
/// to its newest version and measured.
pub(super) fn documents(
    db: &Database,
    journal: &Journal,
    owner: &str,
    after: &str,
    limit: usize,
) -> Result<Vec<Listed>, StoreError> {
    let (first, end) = crate::names::named_range(owner);
    let start = if after.is_empty() {
        first
    } else {
        format!("{owner}/{after}")
    };
    let (txn, unfolded) = journal.snapshot_between(db, &start, &end)?;
    let docs = txn.open_table(DOCS).map_err(StoreError::unavailable)?;
    let log = txn.open_table(LOG).map_err(StoreError::unavailable)?;
    let mut out = Vec::new();
    for row in docs
        .range(start.as_str()..end.as_str())
        .map_err(StoreError::unavailable)?
    {
        let (key, value) = row.map_err(StoreError::unavailable)?;
        let key = key.value();
        if key == start {
            continue; // `after` itself, or `owner/` (never a key)
        }
        let listed = match unfolded.get(key) {
            None => Listed::from_row(key, value.value())?,
            Some(entries) => {
                let Some(doc) = super::journal::document(&docs, &log, key, entries)? else {
                    continue;
                };
                let size = crate::store::apply::serialized_len(&doc)? as u64;
                Listed::of(&doc.metadata, size)?
            }
        };
        out.push(listed);
        if out.len() >= limit {
            break;
        }
    }
    Ok(out)
}

/// `Backend::flagged`.
pub(super) fn flagged(db: &Database, flag: Flag) -> Result<Vec<String>, StoreError> {
    let txn = db.begin_read().map_err(StoreError::unavailable)?;
    let table = txn
        .open_table(flag_table(flag))
        .map_err(StoreError::unavailable)?;
    let mut out = Vec::new();
    for row in table.iter().map_err(StoreError::unavailable)? {
        out.push(row.map_err(StoreError::unavailable)?.0.value().to_owned());
    }
    Ok(out)
}

/// `Backend::users`: a page of accounts, and how many there are. A search reads every
/// name (keys only; records are decoded for the page alone).
pub(super) fn users(
    db: &Database,
    offset: usize,
    limit: usize,
    search: &str,
) -> Result<(Vec<UserRecord>, u64), StoreError> {
    let txn = db.begin_read().map_err(StoreError::unavailable)?;
    let table = txn.open_table(USERS).map_err(StoreError::unavailable)?;
    let mut out = Vec::new();
    if search.is_empty() {
        let total = table.len().map_err(StoreError::unavailable)?;
        for row in table
            .iter()
            .map_err(StoreError::unavailable)?
            .skip(offset)
            .take(limit)
        {
            let (name, bytes) = row.map_err(StoreError::unavailable)?;
            out.push(decode(bytes.value(), name.value())?);
        }
        return Ok((out, total));
    }
    let mut total = 0u64;
    for row in table.iter().map_err(StoreError::unavailable)? {
        let (name, bytes) = row.map_err(StoreError::unavailable)?;
        if !name.value().contains(search) {
            continue;
        }
        if total >= offset as u64 && out.len() < limit {
            out.push(decode(bytes.value(), name.value())?);
        }
        total += 1;
    }
    Ok((out, total))
}

/// `Backend::stats`.
pub(super) fn stats(
    db: &Database,
    journal: &Journal,
    path: &Path,
) -> Result<StoreStats, StoreError> {
    let txn = db.begin_read().map_err(StoreError::unavailable)?;
    let count = |n: Result<u64, redb::StorageError>| n.map_err(StoreError::unavailable);
    Ok(StoreStats {
        users: count(
            txn.open_table(USERS)
                .map_err(StoreError::unavailable)?
                .len(),
        )?,
        documents: count(txn.open_table(DOCS).map_err(StoreError::unavailable)?.len())?,
        log_entries: count(txn.open_table(LOG).map_err(StoreError::unavailable)?.len())?
            + journal.len() as u64,
        blobs: count(
            txn.open_table(BLOBS)
                .map_err(StoreError::unavailable)?
                .len(),
        )?,
        blob_bytes: {
            let blobs = txn.open_table(BLOBS).map_err(StoreError::unavailable)?;
            let mut sum = 0u64;
            for row in blobs.iter().map_err(StoreError::unavailable)? {
                let (sha, bytes) = row.map_err(StoreError::unavailable)?;
                sum += decode::<BlobRecord>(bytes.value(), sha.value())?.size;
            }
            sum
        },
        data_bytes: std::fs::metadata(path).map_or(0, |m| m.len()),
    })
}

/// `Backend::sessions`: the account's unexpired sessions.
pub(super) fn sessions(db: &Database, name: &str) -> Result<Vec<SessionRecord>, StoreError> {
    let now = crate::sys::unix_now();
    let txn = db.begin_read().map_err(StoreError::unavailable)?;
    let table = txn.open_table(SESSIONS).map_err(StoreError::unavailable)?;
    let mut out = Vec::new();
    for row in table.range((name, "")..).map_err(StoreError::unavailable)? {
        let (key, bytes) = row.map_err(StoreError::unavailable)?;
        if key.value().0 != name {
            break;
        }
        let session: SessionRecord = decode(bytes.value(), name)?;
        if session.expires > now {
            out.push(session);
        }
    }
    Ok(out)
}

/// `Backend::revoked`: revocations not yet expired.
pub(super) fn revoked(db: &Database) -> Result<Vec<(String, u64)>, StoreError> {
    let now = crate::sys::unix_now();
    let txn = db.begin_read().map_err(StoreError::unavailable)?;
    let table = txn.open_table(REVOKED).map_err(StoreError::unavailable)?;
    let mut out = Vec::new();
    for row in table.iter().map_err(StoreError::unavailable)? {
        let (sid, exp) = row.map_err(StoreError::unavailable)?;
        if exp.value() > now {
            out.push((sid.value().to_owned(), exp.value()));
        }
    }
    Ok(out)
}

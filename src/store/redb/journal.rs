//! The updates made durable by the write-ahead log and not yet folded into `changelog` and
//! `docs`, in memory, by document and in commit order. Owned by `durable.rs`, read by every
//! reader.
//!
//! Why not write `changelog` and `docs` per batch: keyed by (name, version), a batch of
//! updates to many documents dirtied one leaf per document, all rewritten and fsynced; a log
//! record dirties one page, and a fold every [`FOLD_AT`] rows writes each document's pages once.
//!
//! A document is therefore its `docs` row, then its `changelog` entries after that, then its
//! rows here. Only the writer changes this journal:
//! - it adds a batch's rows *after* their log record is durable, before anyone is answered;
//! - a fold commits, then drops the rows it moved, bumping `folds` in between.
//!
//! A reader opens its snapshot, then copies a document's rows, and starts over if `folds`
//! moved meanwhile. So its rows hold everything its snapshot lacks; they may repeat versions
//! the snapshot already holds (a fold committed, its rows not dropped yet), which readers
//! skip by version.
//!
//! The redb table `journal` remains for rows that travel in a backup (and in files of earlier
//! builds): they are folded when the file is opened (`recover`).

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use redb::{Database, ReadTransaction, ReadableTable, TableDefinition, WriteTransaction};

use super::{DOCS, LOG, decode, read_log, sharing};
use crate::store::apply::replay_into;
use crate::store::error::StoreError;
use crate::store::model::{Document, LogEntry, Version};

/// `seq → [name length: u16 LE][name][version: u64 LE][entry JSON]`: rows carried by a
/// backup, or left by an earlier build; folded at open.
pub const JOURNAL: TableDefinition<u64, &[u8]> = TableDefinition::new("journal");

/// Journal rows past which the writer folds right after a batch instead of waiting for idle.
/// Smaller folds cost the same in total but hold up more batches (BENCHMARKS.md, "Changes
/// measured": fold size).
pub const FOLD_AT: usize = 8192;

/// A journal row's bytes, shared between the journal and readers copying them.
pub type RowBytes = Arc<[u8]>;

/// The rows committed and not folded yet, in commit order and by document.
#[derive(Default)]
struct Rows {
    all: VecDeque<(u64, RowBytes)>,
    by_name: HashMap<String, Vec<RowBytes>>,
}

/// The writer's sequence counter and the rows not folded yet.
#[derive(Default)]
pub struct Journal {
    rows: Mutex<Rows>,
    /// Folds committed; readers retry when it moves under them.
    folds: AtomicU64,
    next: AtomicU64,
}

/// One decoded journal row.
pub struct Row<'a> {
    pub name: &'a str,
    pub version: Version,
    pub entry: &'a [u8],
}

pub fn encode_row(name: &str, version: Version, entry: &[u8]) -> Result<Vec<u8>, StoreError> {
    let len = u16::try_from(name.len()).map_err(|_| StoreError::unavailable("name too long"))?;
    let mut out = Vec::with_capacity(2 + name.len() + 8 + entry.len());
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(&version.to_le_bytes());
    out.extend_from_slice(entry);
    Ok(out)
}

pub fn decode_row(bytes: &[u8]) -> Result<Row<'_>, StoreError> {
    let corrupt = || StoreError::unavailable("corrupt journal row");
    let (len, rest) = bytes.split_first_chunk::<2>().ok_or_else(corrupt)?;
    let len = usize::from(u16::from_le_bytes(*len));
    let name = rest.get(..len).ok_or_else(corrupt)?;
    let name = std::str::from_utf8(name).map_err(|_| corrupt())?;
    let (version, entry) = rest[len..].split_first_chunk::<8>().ok_or_else(corrupt)?;
    Ok(Row {
        name,
        version: u64::from_le_bytes(*version),
        entry,
    })
}

impl Journal {
    fn rows(&self) -> MutexGuard<'_, Rows> {
        // Every change under the lock is a push or a drain of whole rows: a panic cannot
        // leave them torn.
        self.rows
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// `name`'s rows, decoded, oldest first (writer side, or with a snapshot: see
    /// `snapshot`).
    ///
    /// # Errors
    /// `Unavailable` on a corrupt row.
    pub fn entries(&self, name: &str) -> Result<Vec<LogEntry>, StoreError> {
        // Copied under the lock, decoded outside it: the writer adds rows under it.
        let rows = self.rows().by_name.get(name).cloned().unwrap_or_default();
        rows.iter()
            .map(|bytes| decode::<LogEntry>(decode_row(bytes)?.entry, name))
            .collect()
    }

    /// A read snapshot and `name`'s rows not in it (see the module doc for why the order).
    ///
    /// # Errors
    /// `Unavailable`.
    pub fn snapshot(
        &self,
        db: &Database,
        name: &str,
    ) -> Result<(ReadTransaction, Vec<LogEntry>), StoreError> {
        self.consistent(db, || self.entries(name))
    }

    /// A read snapshot and the rows not in it of the documents whose keys lie strictly
    /// between `after` and `before`, decoded, by key (a listing of one account's documents).
    ///
    /// # Errors
    /// `Unavailable`, or a corrupt row.
    pub fn snapshot_between(
        &self,
        db: &Database,
        after: &str,
        before: &str,
    ) -> Result<(ReadTransaction, HashMap<String, Vec<LogEntry>>), StoreError> {
        let (txn, rows) = self.consistent(db, || {
            Ok(self
                .rows()
                .by_name
                .iter()
                .filter(|(k, _)| k.as_str() > after && k.as_str() < before)
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect::<Vec<_>>())
        })?;
        let mut out = HashMap::with_capacity(rows.len());
        for (name, rows) in rows {
            let entries = rows
                .iter()
                .map(|bytes| decode::<LogEntry>(decode_row(bytes)?.entry, &name))
                .collect::<Result<Vec<_>, _>>()?;
            out.insert(name, entries);
        }
        Ok((txn, out))
    }

    /// A read snapshot and the rows not in it after sequence `after`, at most `limit`, in
    /// commit order (the change feed: only those are copied).
    ///
    /// # Errors
    /// `Unavailable`.
    pub fn snapshot_after(
        &self,
        db: &Database,
        after: u64,
        limit: usize,
    ) -> Result<(ReadTransaction, Vec<(u64, RowBytes)>), StoreError> {
        self.consistent(db, || {
            let rows = self.rows();
            let start = rows.all.partition_point(|(seq, _)| *seq <= after);
            Ok(rows.all.range(start..).take(limit).cloned().collect())
        })
    }

    /// The newest sequence number handed out and made durable, if any row is unfolded.
    pub fn newest(&self) -> Option<u64> {
        self.rows().all.back().map(|(seq, _)| *seq)
    }

    /// A read snapshot and every row not in it, in commit order (for a backup).
    ///
    /// # Errors
    /// `Unavailable`.
    pub fn snapshot_all(
        &self,
        db: &Database,
    ) -> Result<(ReadTransaction, Vec<(u64, RowBytes)>), StoreError> {
        self.consistent(db, || Ok(self.rows().all.iter().cloned().collect()))
    }

    fn consistent<T>(
        &self,
        db: &Database,
        read: impl Fn() -> Result<T, StoreError>,
    ) -> Result<(ReadTransaction, T), StoreError> {
        use redb::ReadableDatabase;
        loop {
            let folds = self.folds.load(Ordering::SeqCst);
            let txn = db.begin_read().map_err(StoreError::unavailable)?;
            let found = read()?;
            if self.folds.load(Ordering::SeqCst) == folds {
                return Ok((txn, found));
            }
        }
    }

    /// Numbers sequences from `first` on (at open: past every cursor already in the feed).
    pub fn start_at(&self, first: u64) {
        self.next.store(first, Ordering::SeqCst);
    }

    /// The next sequence number (writer only): the order of rows in the log and in a fold,
    /// and the change feed's cursor.
    pub fn next_seq(&self) -> u64 {
        self.next.fetch_add(1, Ordering::SeqCst)
    }

    /// These rows are durable (their log record is fsynced): readers may see them now.
    pub fn add(&self, batch: Vec<(String, u64, RowBytes)>) {
        let mut rows = self.rows();
        for (name, seq, bytes) in batch {
            rows.all.push_back((seq, bytes.clone()));
            rows.by_name.entry(name).or_default().push(bytes);
        }
    }

    /// Every row, in commit order (writer only, for a fold).
    pub fn all(&self) -> Vec<(u64, RowBytes)> {
        self.rows().all.iter().cloned().collect()
    }

    /// Rows not folded yet.
    pub fn len(&self) -> usize {
        self.rows().all.len()
    }

    /// A fold of every row committed: drop them. Only the writer adds rows and folds, on one
    /// thread, so nothing was added since it took them.
    pub fn folded(&self) {
        self.folds.fetch_add(1, Ordering::SeqCst);
        *self.rows() = Rows::default();
    }
}

/// `rows` (a snapshot's unfolded ones, in commit order) as change-feed items (`feed.rs`):
/// `None` for a row of another account than `owner`'s, passed over undecoded.
///
/// # Errors
/// `Unavailable` on a corrupt row.
pub fn feed_items(
    rows: &[(u64, RowBytes)],
    owner: Option<&str>,
) -> Result<Vec<(u64, Option<crate::store::backend::FeedItem>)>, StoreError> {
    rows.iter()
        .map(|(seq, bytes)| {
            let row = decode_row(bytes)?;
            if owner.is_some_and(|o| crate::names::owner_of(row.name) != o) {
                return Ok((*seq, None));
            }
            let item = crate::store::backend::FeedItem {
                cursor: *seq,
                key: row.name.to_owned(),
                version: row.version,
                entry: Some(decode(row.entry, row.name)?),
            };
            Ok((*seq, Some(item)))
        })
        .collect()
}

/// The newest committed version of `name`: its checkpoint in `docs`, then the log entries
/// after it, then `unfolded` (its journal rows).
///
/// # Errors
/// `Unavailable` on a storage error, or an entry that does not follow (a corrupt store).
pub fn document(
    docs: &impl ReadableTable<&'static str, &'static [u8]>,
    log: &impl ReadableTable<(&'static str, u64), &'static [u8]>,
    name: &str,
    unfolded: &[LogEntry],
) -> Result<Option<Document>, StoreError> {
    let Some(bytes) = docs.get(name).map_err(StoreError::unavailable)? else {
        return Ok(None);
    };
    let mut doc: Document = decode(bytes.value(), name)?;
    drop(bytes);
    let logged = read_log(log, name, doc.version() + 1, Version::MAX, usize::MAX)?;
    for entry in logged.iter().chain(unfolded) {
        // Skipped by version: `unfolded` may repeat what a fold just put in the log.
        if entry.version > doc.version() {
            replay_into(&mut doc, entry).map_err(|e| {
                StoreError::Unavailable(format!("change log of {name} does not replay: {e}"))
            })?;
        }
    }
    Ok(Some(doc))
}

/// Moves `rows` into `changelog` and checkpoints each document they touch in `docs`, within
/// `txn` (the caller commits it durably). `recovering`: rows may repeat what the file already
/// holds (a backup taken while a fold committed), so rows at or below a document's
/// checkpoint are skipped. Returns the documents folded.
///
/// # Errors
/// `Unavailable`; nothing is then committed.
pub fn fold_into(
    txn: &WriteTransaction,
    rows: &[(u64, RowBytes)],
    newest_docs: Option<&HashMap<String, Arc<Document>>>,
    recovering: bool,
) -> Result<Vec<String>, StoreError> {
    let mut log = txn.open_table(LOG).map_err(StoreError::unavailable)?;
    let mut docs = txn.open_table(DOCS).map_err(StoreError::unavailable)?;
    let mut newest: HashMap<&str, Version> = HashMap::new();
    let mut floor: HashMap<&str, Version> = HashMap::new();
    // Documents whose folded rows may have changed their access lists: their sharing rows
    // are rewritten. A false positive (a key named `readers` in the data) only costs that.
    let mut reshared: HashSet<&str> = HashSet::new();
    // Where each row is, for the change feed (`feed.rs`): its cursor is its sequence number.
    let mut places = Vec::with_capacity(rows.len());
    for (seq, bytes) in rows {
        let row = decode_row(bytes)?;
        if recovering {
            let checkpoint = match floor.get(row.name) {
                Some(v) => *v,
                None => {
                    let v = match docs.get(row.name).map_err(StoreError::unavailable)? {
                        Some(b) => decode::<Document>(b.value(), row.name)?.version(),
                        None => continue,
                    };
                    floor.insert(row.name, v);
                    v
                }
            };
            if row.version <= checkpoint {
                continue;
            }
        }
        log.insert((row.name, row.version), row.entry)
            .map_err(StoreError::unavailable)?;
        places.push((*seq, row.name, row.version));
        if mentions_access(row.entry) {
            reshared.insert(row.name);
        }
        // Rows come in commit order: the last one seen for a name is its newest.
        newest.insert(row.name, row.version);
    }
    super::feed::record(txn, places.into_iter())?;
    let mut folded = Vec::with_capacity(newest.len());
    for (name, version) in newest {
        folded.push(name.to_owned());
        // The writer holds the newest version of each document it committed since the last
        // fold; others (at open) are rebuilt from the checkpoint and the entries just moved
        // into the log.
        let doc = match newest_docs.and_then(|n| n.get(name)) {
            Some(doc) if doc.version() == version => doc.clone(),
            _ => match document(&docs, &log, name, &[])? {
                Some(doc) => Arc::new(doc),
                None => continue,
            },
        };
        let bytes = serde_json::to_vec(&*doc).map_err(StoreError::unavailable)?;
        docs.insert(name, bytes.as_slice())
            .map_err(StoreError::unavailable)?;
        if reshared.contains(name) {
            sharing::reindex(txn, name, Some(&doc))?;
        }
    }
    Ok(folded)
}

/// True when a change-log entry (JSON) may set access lists. Every folded row is scanned, on
/// the writer thread, so with searchers built once: ≈ 0.1 ms per fold of 8,192 rows, against
/// 0.7–1 ms for a byte-window scan or searchers built per call (BENCHMARKS.md).
pub fn mentions_access(entry: &[u8]) -> bool {
    use memchr::memmem::Finder;
    static FINDERS: std::sync::OnceLock<[Finder<'static>; 2]> = std::sync::OnceLock::new();
    FINDERS
        .get_or_init(|| {
            [
                Finder::new(b"\"collaborators\""),
                Finder::new(b"\"readers\""),
            ]
        })
        .iter()
        .any(|f| f.find(entry).is_some())
}

/// The rows of the redb `journal` table (a backup's, or an earlier build's), in order.
///
/// # Errors
/// `Unavailable`.
pub fn stored_rows(db: &Database) -> Result<Vec<(u64, RowBytes)>, StoreError> {
    use redb::ReadableDatabase;
    let txn = db.begin_read().map_err(StoreError::unavailable)?;
    let table = txn.open_table(JOURNAL).map_err(StoreError::unavailable)?;
    let mut out = Vec::new();
    for row in table.iter().map_err(StoreError::unavailable)? {
        let (seq, bytes) = row.map_err(StoreError::unavailable)?;
        out.push((seq.value(), RowBytes::from(bytes.value())));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Entries that set access lists are found; others are not (a key named so in the data
    /// counts too: it only costs a reindex).
    #[test]
    fn entries_that_may_set_access_lists_are_found() {
        assert!(mentions_access(
            br#"{"version":2,"op":{"collaborators":["bob"]}}"#
        ));
        assert!(mentions_access(br#"{"version":2,"op":{"readers":[]}}"#));
        assert!(!mentions_access(
            br#"{"version":2,"op":{"merge":{"reader":1}}}"#
        ));
        assert!(!mentions_access(b""));
    }

    fn row(name: &str, version: Version) -> RowBytes {
        let entry = format!(
            r#"{{"version":{version},"op":{{"merge":{{"n":{version}}}}},"at":"2026-01-01T00:00:00.000Z","by":"{name}"}}"#
        );
        RowBytes::from(encode_row(name, version, entry.as_bytes()).unwrap())
    }

    /// Rows are found by document in commit order, and a fold drops them all.
    #[test]
    fn rows_are_found_by_document_until_folded() {
        let journal = Journal::default();
        let mut batch = Vec::new();
        for (name, version) in [("ann", 1), ("bob", 1), ("ann", 2)] {
            batch.push((name.to_owned(), journal.next_seq(), row(name, version)));
        }
        journal.add(batch);
        journal.add(vec![("ann".into(), journal.next_seq(), row("ann", 3))]);
        let versions = |name| -> Vec<Version> {
            journal
                .entries(name)
                .unwrap()
                .iter()
                .map(|e| e.version)
                .collect()
        };
        assert_eq!(versions("ann"), [1, 2, 3]);
        assert_eq!(versions("bob"), [1]);
        assert_eq!(journal.len(), 4);
        let seqs: Vec<u64> = journal.all().iter().map(|(seq, _)| *seq).collect();
        assert_eq!(seqs, [0, 1, 2, 3], "commit order");

        journal.folded();
        assert!(versions("ann").is_empty());
        assert_eq!(journal.len(), 0);
        assert!(journal.all().is_empty());
    }
}

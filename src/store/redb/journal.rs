//! The update journal: where an update's durable record goes first.
//!
//! Why: an update used to write its whole document into `docs` and its entry into
//! `changelog`, keyed by (name, version). With 50 writers on 50 documents a batch then dirtied
//! one log leaf per document plus the `docs` pages, all rewritten and fsynced: measured, the
//! log insert alone cost a third of the throughput, and a 4 KB document cost a 4 KB page per
//! update. An update now appends one row to `journal`, keyed by a global sequence number, so
//! a batch dirties the last leaf or two whatever documents it touches. The writer folds the
//! journal into `changelog` and `docs` (each document as of its newest folded version) once
//! it holds [`FOLD_AT`] rows or the writer is idle, in a non-durable transaction: a crash
//! before the next durable commit only leaves those rows in the journal, where they were.
//!
//! A document is therefore its `docs` row (a checkpoint), then its `changelog` entries after
//! that, then its journal rows. Readers find a document's journal rows through an in-memory
//! index (name → sequence numbers) that only the writer changes:
//! - the writer adds rows to the index *before* committing them, and removes folded rows only
//!   *after* the fold committed, bumping `folds` in between;
//! - a reader opens its snapshot, then reads the index, and starts over if `folds` moved
//!   meanwhile.
//!
//! So the index a reader uses lists every journal row of its snapshot; it may list rows the
//! snapshot does not hold (not committed yet, or already folded), which are simply not found.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};

use redb::{
    Database, Durability, ReadTransaction, ReadableDatabase, ReadableTable, TableDefinition,
};

use super::{DOCS, LOG, decode, read_log};
use crate::store::apply::replay_into;
use crate::store::backend::LatestDoc;
use crate::store::error::StoreError;
use crate::store::model::{Document, LogEntry, Version};

/// `seq → [name length: u16 LE][name][version: u64 LE][entry JSON]`.
pub const JOURNAL: TableDefinition<u64, &[u8]> = TableDefinition::new("journal");

/// Journal rows past which the writer folds right after a batch instead of waiting for idle.
/// Measured with 50 writers: a fold of 8192 rows takes ≈ 12 ms and folds of 512 or 2048
/// cost the same in total, but more folds hold up more batches (p99 4.4 and 6.1 ms against
/// 3.0 ms here). Startup indexes at most this many rows, in a few milliseconds.
pub const FOLD_AT: usize = 8192;

/// The writer's sequence counter and the readers' index of journal rows.
pub struct Journal {
    index: Mutex<HashMap<String, Vec<u64>>>,
    /// Folds committed; readers retry when it moves under them.
    folds: AtomicU64,
    next: AtomicU64,
    rows: AtomicUsize,
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
    /// Indexes the rows a previous run left (at most a fold's worth, plus a crash's batch).
    ///
    /// # Errors
    /// `Unavailable` on a storage error or a corrupt row.
    pub fn load(db: &Database) -> Result<Journal, StoreError> {
        let txn = db.begin_read().map_err(StoreError::unavailable)?;
        let table = txn.open_table(JOURNAL).map_err(StoreError::unavailable)?;
        let mut index: HashMap<String, Vec<u64>> = HashMap::new();
        let mut next = 0;
        let mut rows = 0;
        for row in table.iter().map_err(StoreError::unavailable)? {
            let (seq, bytes) = row.map_err(StoreError::unavailable)?;
            let row = decode_row(bytes.value())?;
            index
                .entry(row.name.to_owned())
                .or_default()
                .push(seq.value());
            next = seq.value() + 1;
            rows += 1;
        }
        Ok(Journal {
            index: Mutex::new(index),
            folds: AtomicU64::new(0),
            next: AtomicU64::new(next),
            rows: AtomicUsize::new(rows),
        })
    }

    fn index(&self) -> MutexGuard<'_, HashMap<String, Vec<u64>>> {
        // Every change to the map is a single push or retain: a panic cannot leave it torn.
        self.index
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The journal rows indexed for `name` (writer side, or with a snapshot: see `snapshot`).
    pub fn seqs(&self, name: &str) -> Vec<u64> {
        self.index().get(name).cloned().unwrap_or_default()
    }

    /// A read snapshot and `name`'s journal rows in it (see the module doc for why the order).
    ///
    /// # Errors
    /// `Unavailable`.
    pub fn snapshot(
        &self,
        db: &Database,
        name: &str,
    ) -> Result<(ReadTransaction, Vec<u64>), StoreError> {
        loop {
            let folds = self.folds.load(Ordering::SeqCst);
            let txn = db.begin_read().map_err(StoreError::unavailable)?;
            let seqs = self.seqs(name);
            if self.folds.load(Ordering::SeqCst) == folds {
                return Ok((txn, seqs));
            }
        }
    }

    /// The next sequence number (writer only). Never reused, even after a failed commit, so a
    /// stale index entry can never point at another document's row.
    pub fn next_seq(&self) -> u64 {
        self.next.fetch_add(1, Ordering::SeqCst)
    }

    /// These rows are about to be committed: index them first.
    pub fn stage(&self, rows: &[(String, u64)]) {
        let mut index = self.index();
        for (name, seq) in rows {
            index.entry(name.clone()).or_default().push(*seq);
        }
        self.rows.fetch_add(rows.len(), Ordering::SeqCst);
    }

    /// The commit of staged rows failed: forget them.
    pub fn unstage(&self, rows: &[(String, u64)]) {
        let mut index = self.index();
        for (name, seq) in rows {
            if let Some(seqs) = index.get_mut(name) {
                seqs.retain(|s| s != seq);
                if seqs.is_empty() {
                    index.remove(name);
                }
            }
        }
        self.rows.fetch_sub(rows.len(), Ordering::SeqCst);
    }

    /// Rows committed and not folded yet.
    pub fn len(&self) -> usize {
        self.rows.load(Ordering::SeqCst)
    }

    /// A fold up to `upto` committed.
    fn folded(&self, upto: u64) {
        self.folds.fetch_add(1, Ordering::SeqCst);
        let mut index = self.index();
        let mut left = 0;
        index.retain(|_, seqs| {
            seqs.retain(|s| *s > upto);
            left += seqs.len();
            !seqs.is_empty()
        });
        self.rows.store(left, Ordering::SeqCst);
    }
}

/// `name`'s journal rows among `seqs`, oldest first.
///
/// # Errors
/// `Unavailable` on a storage error or a corrupt row.
pub fn entries(
    journal: &impl ReadableTable<u64, &'static [u8]>,
    name: &str,
    seqs: &[u64],
) -> Result<Vec<LogEntry>, StoreError> {
    let mut out = Vec::with_capacity(seqs.len());
    for seq in seqs {
        let Some(bytes) = journal.get(*seq).map_err(StoreError::unavailable)? else {
            continue;
        };
        let row = decode_row(bytes.value())?;
        if row.name == name {
            out.push(decode::<LogEntry>(row.entry, name)?);
        }
    }
    out.sort_by_key(|e| e.version);
    Ok(out)
}

/// The newest committed version of `name`: its checkpoint in `docs`, then the log entries
/// after it, then its journal rows.
///
/// # Errors
/// `Unavailable` on a storage error, or an entry that does not follow (a corrupt store).
pub fn document(
    docs: &impl ReadableTable<&'static str, &'static [u8]>,
    log: &impl ReadableTable<(&'static str, u64), &'static [u8]>,
    journal: &impl ReadableTable<u64, &'static [u8]>,
    name: &str,
    seqs: &[u64],
) -> Result<Option<Document>, StoreError> {
    let Some(bytes) = docs.get(name).map_err(StoreError::unavailable)? else {
        return Ok(None);
    };
    let mut doc: Document = decode(bytes.value(), name)?;
    drop(bytes);
    let logged = read_log(log, name, doc.version() + 1, Version::MAX, usize::MAX)?;
    for entry in logged.iter().chain(&entries(journal, name, seqs)?) {
        if entry.version > doc.version() {
            replay_into(&mut doc, entry).map_err(|e| {
                StoreError::Unavailable(format!("change log of {name} does not replay: {e}"))
            })?;
        }
    }
    Ok(Some(doc))
}

/// Moves every journal row into `changelog` and checkpoints each document it touched, in one
/// non-durable transaction (the next durable commit carries it).
///
/// # Errors
/// `Unavailable`; the journal is then left as it was.
pub fn fold(db: &Database, journal: &Journal, latest: &LatestDoc) -> Result<(), StoreError> {
    let mut txn = db.begin_write().map_err(StoreError::unavailable)?;
    txn.set_durability(Durability::None)
        .map_err(StoreError::unavailable)?;
    let upto = {
        let mut rows = txn.open_table(JOURNAL).map_err(StoreError::unavailable)?;
        let mut log = txn.open_table(LOG).map_err(StoreError::unavailable)?;
        let mut docs = txn.open_table(DOCS).map_err(StoreError::unavailable)?;
        let mut newest: HashMap<String, Version> = HashMap::new();
        let mut upto = None;
        for row in rows.iter().map_err(StoreError::unavailable)? {
            let (seq, bytes) = row.map_err(StoreError::unavailable)?;
            let row = decode_row(bytes.value())?;
            log.insert((row.name, row.version), row.entry)
                .map_err(StoreError::unavailable)?;
            // Rows come in commit order: the last one seen for a name is its newest.
            match newest.get_mut(row.name) {
                Some(v) => *v = row.version,
                None => {
                    newest.insert(row.name.to_owned(), row.version);
                }
            }
            upto = Some(seq.value());
        }
        let Some(upto) = upto else {
            drop((rows, log, docs));
            return txn.abort().map_err(StoreError::unavailable);
        };
        for (name, version) in &newest {
            // The store's cache holds the newest version of hot documents; others are rebuilt
            // from the checkpoint and the entries just moved into the log.
            let doc = match latest(name) {
                Some(doc) if doc.version() == *version => doc,
                _ => match document(&docs, &log, &rows, name, &[])? {
                    Some(doc) => std::sync::Arc::new(doc),
                    None => continue,
                },
            };
            let bytes = serde_json::to_vec(&*doc).map_err(StoreError::unavailable)?;
            docs.insert(name.as_str(), bytes.as_slice())
                .map_err(StoreError::unavailable)?;
        }
        rows.retain_in(0..=upto, |_, _| false)
            .map_err(StoreError::unavailable)?;
        upto
    };
    txn.commit().map_err(StoreError::unavailable)?;
    journal.folded(upto);
    Ok(())
}

//! Durability for documents, in one place: the write-ahead log (`wal.rs`), the updates it
//! holds that the data file does not yet (kept in memory, by document: `journal.rs`), and the
//! fold that moves them into `changelog` and `docs` (a checkpoint, after which the log
//! starts over). Nothing else in the backend sees log offsets, generations, the `wal_clean`
//! mark or the legacy `journal` table.
//!
//! Contract, for the writer (the only one that calls `&mut self` methods, one at a time):
//! - [`DurableLog::commit`] returns only once the batch is durable, and before it returns
//!   readers cannot see it; when it fails, nothing of the batch is durable or visible.
//! - A document is its `docs` checkpoint, then its `changelog` entries, then its
//!   [`DurableLog::unfolded`] rows: readers take a snapshot, then the rows (see `journal.rs`
//!   for the order that makes this consistent).
//! - [`DurableLog::stop`] is the last call; after a clean one, the next start needs no log.
//!
//! Why redb does not carry this itself: a durable redb commit of one update rewrites six or
//! seven scattered pages (0.45 ms here) where one log record costs one (0.14 ms); and a
//! non-durable redb commit per batch, made durable at each fold, still paid a transaction
//! and a table insert per batch, a quarter of the writer's CPU under 50 writers
//! (BENCHMARKS.md, "Changes measured").

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use redb::{Database, WriteTransaction};

use super::journal::{self, Journal, RowBytes};
use super::wal::{self, Wal};
use crate::store::error::StoreError;
use crate::store::faults::Faults;
use crate::store::model::{Document, Version};

/// One update as the log takes it: the document, its new version, its change-log entry
/// (JSON), and the version it made.
pub(super) struct UpdateRow {
    pub name: String,
    pub version: Version,
    pub entry: Vec<u8>,
    pub doc: Arc<Document>,
}

pub(super) struct DurableLog {
    wal: Wal,
    unfolded: Arc<Journal>,
    /// The newest version of every document with unfolded updates. The writer applies the
    /// next update to it and a fold writes it to `docs`, so neither parses the document from
    /// disk; a document not here is exactly what `docs` and `changelog` hold.
    newest: HashMap<String, Arc<Document>>,
    /// `wal_clean` is 0 in the data file: set before the log is first written to, so that a
    /// log lost after that is seen as a loss (`recovery.rs`). Not at open: a start with
    /// nothing to fold makes no commit.
    marked_running: bool,
}

impl DurableLog {
    /// Opens the log of the data file at `path`, refusing a damaged one unless `accept_loss`
    /// (`recovery.rs`), and folds whatever the data file lacks, so the log starts empty.
    ///
    /// # Errors
    /// `Unavailable`: the log is damaged, or storage fails.
    pub fn open(
        db: &Database,
        path: &Path,
        faults: Option<Arc<Faults>>,
        accept_loss: bool,
    ) -> Result<DurableLog, StoreError> {
        let (wal, marked_running) = super::recovery::recover(db, path, faults, accept_loss)?;
        let unfolded = Arc::new(Journal::default());
        unfolded.start_at(super::feed::next_cursor(db)?);
        Ok(DurableLog {
            wal,
            unfolded,
            newest: HashMap::new(),
            marked_running,
        })
    }

    /// The updates not folded yet, for readers (and for a backup, which carries them).
    pub fn unfolded(&self) -> Arc<Journal> {
        self.unfolded.clone()
    }

    /// `name`'s updates not folded yet, oldest first.
    ///
    /// # Errors
    /// `Unavailable` on a corrupt row.
    pub fn unfolded_entries(
        &self,
        name: &str,
    ) -> Result<Vec<crate::store::model::LogEntry>, StoreError> {
        self.unfolded.entries(name)
    }

    /// The newest committed version of `name`, if it has updates not folded yet.
    pub fn newest(&self, name: &str) -> Option<&Arc<Document>> {
        self.newest.get(name)
    }

    /// Whether anything waits for a fold.
    pub fn holds_unfolded(&self) -> bool {
        self.unfolded.len() > 0 || self.wal.pending()
    }

    /// Updates waiting for a fold.
    pub fn unfolded_len(&self) -> usize {
        self.unfolded.len()
    }

    /// Starts a batch: the redb transaction for its writes other than updates (accounts,
    /// sessions, blobs), if `others`. Before the first batch of a run, records in the data file
    /// that the log is in use (this takes the write lock itself, hence here and not later).
    ///
    /// # Errors
    /// `Unavailable`.
    pub fn begin(
        &mut self,
        db: &Database,
        others: bool,
    ) -> Result<Option<WriteTransaction>, StoreError> {
        self.mark_running(db)?;
        if !others {
            return Ok(None);
        }
        db.begin_write().map(Some).map_err(StoreError::unavailable)
    }

    /// Makes one batch durable: `updates` (in commit order) as one log record, fsynced, then
    /// `others` (from [`DurableLog::begin`]), which commits durably in redb. A batch too
    /// large for the log, or with `fold_now`, is folded with every unfolded update in one
    /// checkpoint instead. Returns the documents folded into `changelog` (for trimming).
    ///
    /// # Errors
    /// `Unavailable`: nothing of the batch is durable, and no reader sees any of it.
    pub fn commit(
        &mut self,
        db: &Database,
        others: Option<WriteTransaction>,
        updates: Vec<UpdateRow>,
        fold_now: bool,
    ) -> Result<Vec<String>, StoreError> {
        let mut rows = Vec::with_capacity(updates.len());
        let mut docs = Vec::with_capacity(updates.len());
        for u in updates {
            let row = journal::encode_row(&u.name, u.version, &u.entry)?;
            rows.push((u.name, self.unfolded.next_seq(), RowBytes::from(row)));
            docs.push(u.doc);
        }
        let logged = rows.is_empty()
            || (!fold_now
                && self
                    .wal
                    .append(rows.iter().map(|(_, seq, row)| (*seq, &**row)))?);
        if logged {
            if let Some(txn) = others
                && let Err(e) = txn.commit()
            {
                // Its record must not be replayed at the next start: callers are told it
                // failed.
                if !rows.is_empty()
                    && let Err(r) = self.wal.retract()
                {
                    tracing::error!(error = %r, "a failed batch stays in the write-ahead log");
                }
                return Err(StoreError::unavailable(e));
            }
            for ((name, _, _), doc) in rows.iter().zip(docs) {
                // The same few documents again and again: no new key for those.
                match self.newest.get_mut(name.as_str()) {
                    Some(slot) => *slot = doc,
                    None => {
                        self.newest.insert(name.clone(), doc);
                    }
                }
            }
            self.unfolded.add(rows);
            return Ok(Vec::new());
        }
        // Too large for the log, or asked to (`fold_now`: it changes who a document is shared
        // with, and the sharing index is written by folds): folded at once. Its documents are rebuilt from disk by the
        // fold (the versions in `docs` are not durable until it commits, so `newest` must not
        // hold them before).
        let extra = rows.into_iter().map(|(_, seq, row)| (seq, row)).collect();
        self.checkpoint(db, others, extra)
    }

    /// Folds every unfolded update into `changelog` and `docs` in one durable commit, after
    /// which the log starts over. With `force`, commits even with nothing to fold (to make a
    /// non-durable trim durable). Returns the documents folded.
    ///
    /// # Errors
    /// `Unavailable`; the log and the unfolded rows then still hold every update.
    pub fn fold(&mut self, db: &Database, force: bool) -> Result<Vec<String>, StoreError> {
        if !force && !self.holds_unfolded() {
            return Ok(Vec::new());
        }
        self.checkpoint(db, None, Vec::new())
    }

    /// A clean stop: folds everything, then records in the data file that the log holds
    /// nothing it needs, so the next start does not need the log.
    ///
    /// # Errors
    /// `Unavailable`; the next start then replays (and checks) the log.
    pub fn stop(&mut self, db: &Database) -> Result<(), StoreError> {
        self.fold(db, false)?;
        wal::checkpoint_with(db, &mut self.wal, |txn| {
            super::recovery::set_clean(txn, true)
        })
    }

    fn mark_running(&mut self, db: &Database) -> Result<(), StoreError> {
        if self.marked_running {
            return Ok(());
        }
        wal::checkpoint_with(db, &mut self.wal, |txn| {
            super::recovery::set_clean(txn, false)
        })
        .inspect_err(|e| tracing::error!(error = %e, "cannot mark the data file as running"))?;
        self.marked_running = true;
        Ok(())
    }

    /// The unfolded rows, and `extra` (a batch too large for the log), into `changelog` and
    /// `docs` in `txn` (or a transaction of its own), committed durably with the log's next
    /// generation.
    fn checkpoint(
        &mut self,
        db: &Database,
        txn: Option<WriteTransaction>,
        extra: Vec<(u64, RowBytes)>,
    ) -> Result<Vec<String>, StoreError> {
        let mut rows = self.unfolded.all();
        let held = !rows.is_empty();
        rows.extend(extra);
        // A new write transaction commits durably (redb's default).
        let txn = match txn {
            Some(txn) => txn,
            None => db.begin_write().map_err(StoreError::unavailable)?,
        };
        let folded = journal::fold_into(&txn, &rows, Some(&self.newest), false)?;
        let next = self.wal.begin_checkpoint(&txn)?;
        txn.commit().map_err(StoreError::unavailable)?;
        self.wal.checkpointed(next);
        if held {
            self.unfolded.folded();
        }
        self.newest.clear();
        Ok(folded)
    }
}

/// Gives a copy of the data file (a backup) a log identity of its own, so no log written for
/// the original is ever replayed into it, and marks it stopped cleanly: it carries its
/// unfolded updates itself, in its `journal` table.
///
/// # Errors
/// `Unavailable`.
pub(super) fn new_identity(txn: &WriteTransaction) -> Result<(), StoreError> {
    super::recovery::new_identity(txn)
}

/// Marks a stopped data file as stopped cleanly: its log holds nothing it needs.
///
/// # Errors
/// `Unavailable`.
pub(super) fn mark_clean(txn: &WriteTransaction) -> Result<(), StoreError> {
    super::recovery::set_clean(txn, true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::redb::{DOCS, decode, schema::init_schema};
    use redb::ReadableDatabase;

    fn version(name: &str, v: Version) -> UpdateRow {
        let mut doc = Document::new(name, "2026-01-01T00:00:00.000Z");
        doc.metadata.version = v;
        let entry = format!(
            r#"{{"version":{v},"op":{{"merge":{{"n":{v}}}}},"at":"2026-01-01T00:00:00.000Z","by":"{name}"}}"#
        );
        UpdateRow {
            name: name.to_owned(),
            version: v,
            entry: entry.into_bytes(),
            doc: Arc::new(doc),
        }
    }

    fn stored_version(db: &Database, name: &str) -> Option<Version> {
        let txn = db.begin_read().unwrap();
        let docs = txn.open_table(DOCS).unwrap();
        let bytes = docs.get(name).unwrap()?;
        Some(decode::<Document>(bytes.value(), name).unwrap().version())
    }

    /// What the writer relies on instead of the cache: after a commit the log holds the
    /// version it made (the very `Arc`), and its rows are unfolded; a fold writes exactly that
    /// version to `docs` and lets go of both, so the writer then reads the document from disk.
    #[test]
    fn the_newest_version_is_held_until_a_fold_writes_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let db = Database::create(&path).unwrap();
        init_schema(&db).unwrap();
        let mut log = DurableLog::open(&db, &path, None, false).unwrap();
        assert!(!log.holds_unfolded());

        let (v1, v2) = (version("ann", 1), version("ann", 2));
        let newest = v2.doc.clone();
        let txn = log.begin(&db, false).unwrap();
        assert!(
            txn.is_none(),
            "a batch of updates needs no redb transaction"
        );
        assert!(
            log.commit(&db, txn, vec![v1, v2], false)
                .unwrap()
                .is_empty()
        );
        assert!(Arc::ptr_eq(log.newest("ann").unwrap(), &newest));
        assert!(log.newest("bob").is_none());
        let versions: Vec<Version> = log
            .unfolded_entries("ann")
            .unwrap()
            .iter()
            .map(|e| e.version)
            .collect();
        assert_eq!(versions, [1, 2]);
        assert_eq!(
            stored_version(&db, "ann"),
            None,
            "nothing in `docs` before the fold"
        );

        assert_eq!(log.fold(&db, false).unwrap(), ["ann"]);
        assert_eq!(stored_version(&db, "ann"), Some(2));
        assert!(log.newest("ann").is_none());
        assert!(log.unfolded_entries("ann").unwrap().is_empty());
        assert!(!log.holds_unfolded());
        assert!(
            log.fold(&db, false).unwrap().is_empty(),
            "nothing left to fold"
        );
    }
}

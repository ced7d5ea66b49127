//! What happens at open before anything else: the write-ahead log is checked and replayed
//! into the data file, or the start is refused.
//!
//! Only a torn *last* record may be dropped: it was never acknowledged (each record is
//! fsynced before its batch is answered, and before the next is written). Everything else
//! that makes acknowledged updates unreadable refuses the start with a message naming the
//! file, the offset and what is at stake, as etcd's WAL does:
//! - a record that fails its check with valid records of the same generation after it;
//! - a log missing, or shorter than the log always is, after a stop that was not clean
//!   (`wal_clean` in the data file is 1 only after a clean stop's last checkpoint).
//!
//! `hearth recover --accept-loss` is the way through: it keeps what is readable and drops
//! the rest, and since clients may have seen versions that are now gone, it moves every
//! document's version on by [`LOSS_GAP`], with a fresh change-log base: a version number is
//! never handed out twice, and anyone resuming from before gets a `resync`.

use std::path::Path;
use std::sync::Arc;

use redb::{Database, ReadableDatabase, ReadableTable, WriteTransaction};

use super::META;

use super::journal::{self, RowBytes};
use super::wal::{self, FileState, Scanned, WAL_BYTES};
use super::{DOCS, LOG, LOG_BASE, decode};
use crate::store::error::StoreError;
use crate::store::faults::Faults;
use crate::store::model::Document;

/// The fewest bytes one update takes in the log (a record's share plus a row): bounds how
/// many versions a lost stretch of log can have held.
const MIN_ROW_BYTES: u64 = 32;
/// How far every version moves on after an accepted loss: more than a whole log can hold.
pub const LOSS_GAP: u64 = WAL_BYTES / MIN_ROW_BYTES;

/// Why a log cannot be trusted.
enum Damage {
    /// Valid records of this generation follow a bad one.
    Middle {
        at: u64,
        later_at: u64,
        records: usize,
        rows: usize,
    },
    Missing,
    Short(u64),
}

impl Damage {
    fn describe(&self, log: &Path) -> String {
        let log = log.display();
        match self {
            Damage::Middle {
                at,
                later_at,
                records,
                rows,
            } => format!(
                "the write-ahead log {log} is damaged at offset {at}: the record there fails its check, \
                 yet {records} valid records ({rows} acknowledged updates) of the same generation follow from offset {later_at}. \
                 Those updates, and whatever the damaged record held, would be lost"
            ),
            Damage::Missing => format!(
                "the write-ahead log {log} is missing, and the server did not stop cleanly: \
                 every update acknowledged since the last checkpoint would be lost"
            ),
            Damage::Short(len) => format!(
                "the write-ahead log {log} is {len} bytes, shorter than the {WAL_BYTES} it is made with, \
                 and the server did not stop cleanly: updates acknowledged since the last checkpoint may be lost"
            ),
        }
    }
}

/// Opens the write-ahead log of the data file at `path`, checks it, and folds every row the
/// file lacks (the log's, and any a backup carries in its `journal` table) in one checkpoint,
/// so the writer starts with an empty journal and an empty log. With `accept_loss`, damage
/// is logged and dropped instead of refused. The second value says whether `wal_clean` is
/// now 0; if not, the writer sets it before it first appends (`Committer::commit`): a start
/// with nothing to fold makes no commit (f), restart to ready).
///
/// # Errors
/// `Unavailable`: the log is damaged (and `accept_loss` is off), or storage fails.
pub(crate) fn recover(
    db: &Database,
    path: &Path,
    faults: Option<Arc<Faults>>,
    accept_loss: bool,
) -> Result<(wal::Wal, bool), StoreError> {
    let log = wal::path(path);
    let state = wal::Wal::inspect(&log)
        .map_err(|e| StoreError::Unavailable(format!("{}: {e}", log.display())))?;
    let (clean, had_log) = stopped_cleanly(db)?;
    let trusted = clean || !had_log;
    let early = match state {
        FileState::Missing if !trusted => Some(Damage::Missing),
        FileState::Short(len) if !trusted => Some(Damage::Short(len)),
        _ => None,
    };
    if let Some(damage) = &early {
        refuse_or_warn(damage, &log, accept_loss)?;
    }
    // Read the log only when it may hold something: not after a clean stop (its records
    // are all older than the last checkpoint), and not for a data file that never had one
    // (no record can carry its id). A trusted log is then simply written over from offset 0.
    let (mut wal, scanned) = wal::Wal::open(db, &log, faults, !trusted)?;
    let Scanned {
        rows: replayed,
        records,
        end,
        torn,
        later,
    } = scanned;
    let mut damage = early;
    if let Some(later) = &later {
        let middle = Damage::Middle {
            at: end,
            later_at: later.offset,
            records: later.records,
            rows: later.rows.len(),
        };
        refuse_or_warn(&middle, &log, accept_loss)?;
        damage = Some(middle);
    } else if torn {
        tracing::warn!(
            log = %log.display(), offset = end,
            "discarded a torn record at the end of the write-ahead log: it was being written when the server stopped, and was never acknowledged"
        );
    }
    let mut rows: Vec<(u64, RowBytes)> = journal::stored_rows(db)?;
    let stored = rows.len();
    rows.extend(replayed);
    if rows.is_empty() && damage.is_none() {
        return Ok((wal, false));
    }
    if !rows.is_empty() {
        tracing::warn!(
            log = %log.display(), records, logged = rows.len() - stored, stored,
            "folding updates the data file lacks (from the write-ahead log, and from a backup's journal)"
        );
    }
    wal::checkpoint_with(db, &mut wal, |txn| {
        journal::fold_into(txn, &rows, None, true)?;
        // Their logs are trimmed the next time each document is written.
        txn.open_table(journal::JOURNAL)
            .map_err(StoreError::unavailable)?
            .retain(|_, _| false)
            .map_err(StoreError::unavailable)?;
        if damage.is_some() {
            let moved = move_versions_on(txn)?;
            tracing::warn!(
                documents = moved,
                gap = LOSS_GAP,
                "loss accepted: every document's version moved on, so no version number is handed out twice; watchers and resuming clients get a resync"
            );
        }
        // From now until a clean stop, the log holds what the data file lacks.
        set_clean(txn, false)
    })?;
    Ok((wal, true))
}

/// A backup is another data file: give it its own log id, so no log written for the
/// original is ever replayed into it, and mark it clean: it holds everything itself (its
/// unfolded rows travel in its `journal` table), so it opens without any log.
///
/// # Errors
/// `Unavailable`.
pub fn new_identity(txn: &WriteTransaction) -> Result<(), StoreError> {
    let mut meta = txn.open_table(META).map_err(StoreError::unavailable)?;
    meta.insert(wal::ID, rand::random::<u64>())
        .map_err(StoreError::unavailable)?;
    meta.insert(wal::GENERATION, 0)
        .map_err(StoreError::unavailable)?;
    meta.insert(wal::CLEAN, 1)
        .map_err(StoreError::unavailable)?;
    Ok(())
}

/// Whether the data file was left by a clean stop (its log holds nothing it needs), and
/// whether it has ever had a log at all (a new file has no id yet).
///
/// # Errors
/// `Unavailable`.
pub fn stopped_cleanly(db: &Database) -> Result<(bool, bool), StoreError> {
    let txn = db.begin_read().map_err(StoreError::unavailable)?;
    let meta = txn.open_table(META).map_err(StoreError::unavailable)?;
    let had_log = wal::meta_u64(&meta, wal::ID)?.is_some();
    Ok((wal::meta_u64(&meta, wal::CLEAN)? == Some(1), had_log))
}

/// Records in `txn` whether the server is stopped cleanly: 0 from start (before the log is
/// written to), 1 in the last checkpoint of a clean stop.
///
/// # Errors
/// `Unavailable`.
pub fn set_clean(txn: &WriteTransaction, clean: bool) -> Result<(), StoreError> {
    txn.open_table(META)
        .map_err(StoreError::unavailable)?
        .insert(wal::CLEAN, u64::from(clean))
        .map_err(StoreError::unavailable)?;
    Ok(())
}

fn refuse_or_warn(damage: &Damage, log: &Path, accept_loss: bool) -> Result<(), StoreError> {
    let what = damage.describe(log);
    if accept_loss {
        tracing::warn!("{what}. Accepted (--accept-loss): starting with what is readable.");
        return Ok(());
    }
    tracing::error!("{what}. Refusing to start.");
    Err(StoreError::Unavailable(format!(
        "{what}. Refusing to start; keep a copy of the data directory, then run `hearth recover --accept-loss` to start with what is readable"
    )))
}

/// Moves every document's version on by [`LOSS_GAP`] and makes that version its change-log
/// base (the entries before it go): versions clients saw before a loss are never reused, and
/// a watcher resuming from any of them finds the log does not reach back and is resynced.
fn move_versions_on(txn: &WriteTransaction) -> Result<usize, StoreError> {
    let mut docs = txn.open_table(DOCS).map_err(StoreError::unavailable)?;
    let mut bases = txn.open_table(LOG_BASE).map_err(StoreError::unavailable)?;
    let mut log = txn.open_table(LOG).map_err(StoreError::unavailable)?;
    let mut names = Vec::new();
    for row in docs.iter().map_err(StoreError::unavailable)? {
        let (name, _) = row.map_err(StoreError::unavailable)?;
        names.push(name.value().to_owned());
    }
    for name in &names {
        let Some(bytes) = docs.get(name.as_str()).map_err(StoreError::unavailable)? else {
            continue;
        };
        let mut doc: Document = decode(bytes.value(), name)?;
        drop(bytes);
        doc.metadata.version += LOSS_GAP;
        let bytes = serde_json::to_vec(&doc).map_err(StoreError::unavailable)?;
        docs.insert(name.as_str(), bytes.as_slice())
            .map_err(StoreError::unavailable)?;
        bases
            .insert(name.as_str(), bytes.as_slice())
            .map_err(StoreError::unavailable)?;
        log.retain_in((name.as_str(), 0)..=(name.as_str(), u64::MAX), |_, _| false)
            .map_err(StoreError::unavailable)?;
    }
    Ok(names.len())
}

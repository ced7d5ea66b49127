//! The writer's housekeeping: folding the journal into redb (a checkpoint, which empties the
//! write-ahead log) and trimming the change logs that folds fed, every half-second while
//! writes come and once more when they stop.
//!
//! Why its own module: the writer thread's loop (`writer.rs`) decides *when*; this holds
//! *what*, which is most of the code and none of the loop's latency reasoning.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use redb::{Database, Durability, ReadableTable, Table};

use super::journal::{self, FOLD_AT, Journal, RowBytes};
use super::wal::Wal;
use super::writer::WriterConfig;
use super::{LOG, LOG_BASE, decode};
use crate::store::apply::replay_into;
use crate::store::backend::LatestDoc;
use crate::store::error::StoreError;
use crate::store::model::Document;
use crate::sys::rfc3339_millis;

/// How often, at most, the change log of recently written documents is trimmed.
const TRIM_INTERVAL: Duration = Duration::from_millis(500);
/// Documents trimmed per round, so a trim never holds up writes for long.
const TRIM_BATCH: usize = 256;

/// How long the writer may wait for a job before its half-second housekeeping is due. While
/// writes keep coming that is not on a timer but right after one of them is published (see
/// [`Folding::housekeep`]): a timer falls anywhere between two writes, and a write arriving
/// during the fold's durable commit (1–3 ms) waited for it. Measured (`perf record`, c) 1000
/// after b), one update every ≈ 51 ms): with the fold on the timer, about one update per run
/// met one and was acknowledged in 3–4.5 ms against ≈ 1.1. Only once writes have stopped
/// for `TRIM_INTERVAL` does the timer fold.
pub(super) fn trim_wait(last_trim: Instant, last_commit: Option<Instant>) -> Duration {
    let due = TRIM_INTERVAL.saturating_sub(last_trim.elapsed());
    let quiet = last_commit.map_or(Duration::ZERO, |c| {
        TRIM_INTERVAL.saturating_sub(c.elapsed())
    });
    due.max(quiet)
}

/// What a fold needs besides the log and the dirty set.
pub(super) struct Folding<'a> {
    pub db: &'a Database,
    pub journal: &'a Journal,
    pub latest: &'a LatestDoc,
    pub metrics: &'a crate::metrics::Metrics,
    pub cfg: &'a WriterConfig,
}

impl Folding<'_> {
    /// Folds a full journal, and trims and checkpoints when the half-second is up. Called
    /// only when no batch's watchers are waiting to be told: a fold is a durable commit of
    /// 1–3 ms, and their changes would wait for it.
    /// False when a fold failed.
    pub(super) fn housekeep(
        &self,
        wal: &mut Wal,
        dirty: &mut HashSet<String>,
        last_trim: &mut Instant,
    ) -> bool {
        let mut ok = true;
        if self.journal.len() >= FOLD_AT {
            ok &= self.fold(wal, dirty, false);
        }
        if last_trim.elapsed() >= TRIM_INTERVAL && (!dirty.is_empty() || wal.pending()) {
            ok &= self.fold(wal, dirty, true);
            *last_trim = Instant::now();
        }
        ok
    }

    /// Folds the journal into the change log and `docs` in one durable commit, which empties
    /// the write-ahead log (a checkpoint), and marks the documents folded for trimming. With
    /// `trim` (the half-second housekeeping) it first trims the logs that earlier folds fed
    /// (trimming only ever sees folded entries) without an fsync, and the checkpoint, made
    /// even with nothing to fold, carries that too: one durable commit per round. A failure
    /// is logged and retried later: the log and the journal still hold every row. False when
    /// it failed.
    pub(super) fn fold(&self, wal: &mut Wal, dirty: &mut HashSet<String>, trim: bool) -> bool {
        let Folding {
            db,
            journal,
            latest,
            metrics,
            cfg,
        } = *self;
        let force = trim && trim_logs(db, dirty, cfg);
        if journal.len() == 0 && !force && !wal.pending() {
            return true;
        }
        let started = Instant::now();
        match checkpoint(db, None, wal, journal, Vec::new(), latest) {
            Ok(folded) => {
                dirty.extend(folded);
                metrics
                    .checkpoint_seconds
                    .observe(started.elapsed().as_secs_f64());
                true
            }
            Err(e) => {
                tracing::warn!(error = %e, "folding the journal failed");
                false
            }
        }
    }
}

/// Folds the journal, and `extra` rows (a batch too large for the log), into the change log
/// and `docs` in `txn` (or a transaction of its own) committed durably: a checkpoint, after
/// which the log starts over. Returns the documents folded.
///
/// # Errors
/// `Unavailable`; the journal and the log then still hold every row.
pub(super) fn checkpoint(
    db: &Database,
    txn: Option<redb::WriteTransaction>,
    wal: &mut Wal,
    journal: &Journal,
    extra: Vec<(u64, RowBytes)>,
    latest: &LatestDoc,
) -> Result<Vec<String>, StoreError> {
    let mut rows = journal.all();
    let held = !rows.is_empty();
    rows.extend(extra);
    // A new write transaction commits durably (redb's default).
    let txn = match txn {
        Some(txn) => txn,
        None => db.begin_write().map_err(StoreError::unavailable)?,
    };
    let folded = journal::fold_into(&txn, &rows, Some(latest), false)?;
    let next = wal.begin_checkpoint(&txn)?;
    txn.commit().map_err(StoreError::unavailable)?;
    wal.checkpointed(next);
    if held {
        journal.folded();
    }
    Ok(folded)
}

/// Trims the log of up to [`TRIM_BATCH`] dirty documents in one non-durable transaction (a
/// checkpoint right after makes it durable). Failures are logged, not fatal: an untrimmed log is
/// only bigger. True when it committed.
fn trim_logs(db: &Database, dirty: &mut HashSet<String>, cfg: &WriterConfig) -> bool {
    if dirty.is_empty() {
        return false;
    }
    let names: Vec<String> = dirty.iter().take(TRIM_BATCH).cloned().collect();
    for name in &names {
        dirty.remove(name);
    }
    let cutoff = cfg
        .max_age
        .map(|age| rfc3339_millis(crate::sys::since_epoch().saturating_sub(age).as_millis()));
    let result = (|| -> Result<(), StoreError> {
        let mut txn = db.begin_write().map_err(StoreError::unavailable)?;
        txn.set_durability(Durability::None)
            .map_err(StoreError::unavailable)?;
        {
            let mut log = txn.open_table(LOG).map_err(StoreError::unavailable)?;
            let mut bases = txn.open_table(LOG_BASE).map_err(StoreError::unavailable)?;
            for name in &names {
                trim_one(&mut log, &mut bases, name, cfg.retain, cutoff.as_deref())?;
            }
        }
        txn.commit().map_err(StoreError::unavailable)
    })();
    match result {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!(error = %e, "trimming the change log failed");
            false
        }
    }
}

/// Folds the entries to drop into the base snapshot, then deletes them.
fn trim_one(
    log: &mut Table<'_, (&'static str, u64), &'static [u8]>,
    bases: &mut Table<'_, &'static str, &'static [u8]>,
    name: &str,
    retain: u64,
    cutoff: Option<&str>,
) -> Result<(), StoreError> {
    let Some(mut base) = (match bases.get(name).map_err(StoreError::unavailable)? {
        Some(bytes) => Some(decode::<Document>(bytes.value(), name)?),
        None => None,
    }) else {
        return Ok(());
    };
    let newest = log
        .range((name, 0)..=(name, u64::MAX))
        .map_err(StoreError::unavailable)?
        .next_back()
        .transpose()
        .map_err(StoreError::unavailable)?
        .map(|(k, _)| k.value().1);
    let Some(newest) = newest else {
        return Ok(());
    };
    // Versions below `keep_from` go, and older ones past the age cutoff. Walk from the
    // oldest entry and stop at the first one kept: a round costs what it drops, not what the
    // log holds.
    let keep_from = (newest + 1).saturating_sub(retain);
    let mut dropped = 0;
    for row in log
        .range((name, base.version() + 1)..=(name, newest))
        .map_err(StoreError::unavailable)?
    {
        let (_, bytes) = row.map_err(StoreError::unavailable)?;
        let entry: crate::store::model::LogEntry = decode(bytes.value(), name)?;
        let too_old = cutoff.is_some_and(|c| entry.at.as_str() < c);
        if entry.version >= keep_from && !too_old {
            break;
        }
        replay_into(&mut base, &entry)?;
        dropped += 1;
    }
    if dropped == 0 {
        return Ok(());
    }
    let bytes = serde_json::to_vec(&base).map_err(StoreError::unavailable)?;
    bases
        .insert(name, bytes.as_slice())
        .map_err(StoreError::unavailable)?;
    let upto = base.version();
    log.retain_in((name, 0)..=(name, upto), |_, _| false)
        .map_err(StoreError::unavailable)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::{TRIM_INTERVAL, trim_wait};

    /// The timer fold waits both for the half-second since the last trim and for writes to
    /// have stopped that long; while writes keep coming it never comes due on the timer.
    #[test]
    fn the_timer_fold_waits_for_writes_to_stop() {
        let long_ago = Instant::now()
            .checked_sub(TRIM_INTERVAL * 4)
            .expect("a clock four half-seconds old");
        assert_eq!(trim_wait(long_ago, None), Duration::ZERO, "idle and due");
        assert_eq!(trim_wait(long_ago, Some(long_ago)), Duration::ZERO);
        let just_now = Instant::now();
        let wait = trim_wait(long_ago, Some(just_now));
        assert!(
            wait > TRIM_INTERVAL / 2 && wait <= TRIM_INTERVAL,
            "due, but a write just committed: wait for quiet ({wait:?})"
        );
        let wait = trim_wait(just_now, None);
        assert!(
            wait > TRIM_INTERVAL / 2 && wait <= TRIM_INTERVAL,
            "just trimmed ({wait:?})"
        );
    }
}

//! The writer's housekeeping: folding unfolded updates into redb (through [`DurableLog`])
//! and trimming the change logs that folds fed, every half-second while writes come and
//! once more when they stop.
//!
//! Why its own module: the writer thread's loop (`writer.rs`) decides *when*; this holds
//! *what*, which is most of the code and none of the loop's latency reasoning.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use redb::{Database, Durability, ReadableTable, Table};

use super::durable::DurableLog;
use super::journal::FOLD_AT;
use super::{LOG, LOG_BASE, WriterConfig, decode};
use crate::store::apply::replay_into;
use crate::store::error::StoreError;
use crate::store::model::Document;
use crate::sys::rfc3339_millis;

/// How often, at most, the change log of recently written documents is trimmed.
const TRIM_INTERVAL: Duration = Duration::from_millis(500);
/// Documents trimmed per round, so a trim never holds up writes for long.
const TRIM_BATCH: usize = 256;

/// How long the writer may wait for a job before its half-second housekeeping is due. While
/// writes keep coming that is not on a timer but right after one of them is published (see
/// [`Housekeeping::housekeep`]): a timer falls anywhere between two writes, and a write
/// arriving during the fold's durable commit (1–3 ms) would wait for it. Only once writes
/// have stopped for `TRIM_INTERVAL` does the timer fold.
pub(super) fn trim_wait(last_trim: Instant, last_commit: Option<Instant>) -> Duration {
    let due = TRIM_INTERVAL.saturating_sub(last_trim.elapsed());
    let quiet = last_commit.map_or(Duration::ZERO, |c| {
        TRIM_INTERVAL.saturating_sub(c.elapsed())
    });
    due.max(quiet)
}

/// What housekeeping needs from the writer, borrowed for one round.
pub(super) struct Housekeeping<'a> {
    pub db: &'a Database,
    pub log: &'a mut DurableLog,
    pub metrics: &'a crate::metrics::Metrics,
    pub cfg: &'a WriterConfig,
    /// Documents folded into the change log since their log was last trimmed.
    pub dirty: &'a mut HashSet<String>,
}

impl Housekeeping<'_> {
    /// Folds a full journal, and trims and checkpoints when the half-second is up. Called
    /// only when no batch's watchers are waiting to be told: a fold is a durable commit of
    /// 1–3 ms, and their changes would wait for it. False when a fold failed.
    pub(super) fn housekeep(&mut self, last_trim: &mut Instant) -> bool {
        let mut ok = true;
        if self.log.unfolded_len() >= FOLD_AT {
            ok &= self.fold(false);
        }
        if last_trim.elapsed() >= TRIM_INTERVAL
            && (!self.dirty.is_empty() || self.log.holds_unfolded())
        {
            ok &= self.fold(true);
            *last_trim = Instant::now();
        }
        ok
    }

    /// Folds the unfolded updates (one durable commit, a checkpoint) and marks the documents
    /// folded for trimming. With `trim` (the half-second housekeeping) it first trims the
    /// logs that earlier folds fed (trimming only ever sees folded entries) without an fsync,
    /// and the checkpoint, made even with nothing to fold, carries that too: one durable
    /// commit per round. A failure is logged and retried later: the log still holds every
    /// update. False when it failed.
    pub(super) fn fold(&mut self, trim: bool) -> bool {
        let force = trim && trim_logs(self.db, self.dirty, self.cfg);
        if !force && !self.log.holds_unfolded() {
            return true;
        }
        let started = Instant::now();
        match self.log.fold(self.db, force) {
            Ok(folded) => {
                self.dirty.extend(folded);
                self.metrics
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
        .retention
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
                if let Some((keep, aged)) = cfg.retention.of(name) {
                    let cutoff = cutoff.as_deref().filter(|_| aged);
                    trim_one(&mut log, &mut bases, name, keep, cutoff)?;
                }
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

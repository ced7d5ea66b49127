//! The writer thread: group commit, and trimming the change log when idle.
//!
//! Every queued write is drained into one batch (up to `max_batch`) made durable by one fsync:
//! its updates' journal rows are one record of the write-ahead log, any other writes one
//! durable redb transaction. Each write is checked against the state left by the ones before
//! it. The commit hook (cache, then hub) runs for each committed version in commit order
//! after the fsync: the cache before anyone is answered, the hub after (`publish.rs`: a
//! moment after, following a quiet spell).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use redb::{Database, Durability, ReadableTable, Table};

use super::journal::{self, FOLD_AT, Journal, RowBytes};
use super::publish::Unpublished;
use super::tables::Tables;
use super::wal::Wal;
use super::{Job, LOG, LOG_BASE, Outcome, decode};
use crate::store::apply::{Limits, replay_into};
use crate::store::backend::{CommitHook, Committed, LatestDoc, Stage, Write};
use crate::store::error::StoreError;
use crate::store::model::{Document, now_rfc3339, rfc3339_millis};

/// How often, at most, the change log of recently written documents is trimmed.
const TRIM_INTERVAL: Duration = Duration::from_millis(500);
/// Documents trimmed per round, so a trim never holds up writes for long.
const TRIM_BATCH: usize = 256;
/// Tunables for the writer.
#[derive(Clone, Copy, Debug)]
pub struct WriterConfig {
    pub limits: Limits,
    /// Most writes folded into one transaction.
    pub max_batch: usize,
    /// Log entries kept per document (`CHANGELOG_RETAIN`).
    pub retain: u64,
    /// Entries older than this are trimmed even if among the newest `retain`
    /// (`CHANGELOG_MAX_AGE`); `None` keeps them regardless of age.
    pub max_age: Option<Duration>,
}

// Everything the thread borrows from its owner, passed once at spawn.
#[allow(clippy::too_many_arguments)]
pub(super) fn run(
    db: &Database,
    rx: &Receiver<Job>,
    cfg: &WriterConfig,
    hook: &CommitHook,
    latest: &LatestDoc,
    journal: &Journal,
    wal: &mut Wal,
    healthy: &std::sync::atomic::AtomicBool,
    metrics: &crate::metrics::Metrics,
) {
    let mut jobs = Vec::with_capacity(cfg.max_batch);
    // Documents folded into the change log since their log was last trimmed.
    let mut dirty: HashSet<String> = HashSet::new();
    let mut last_trim = Instant::now();
    let mut last_commit: Option<Instant> = None;
    let mut unpublished = Unpublished::default();
    loop {
        let housekeeping = !dirty.is_empty() || journal.len() > 0 || wal.pending();
        let publish_in = unpublished.due_in();
        let first = if !housekeeping && publish_in.is_none() {
            match rx.recv() {
                Ok(job) => job,
                Err(_) => return,
            }
        } else {
            let trim_in = if housekeeping {
                trim_wait(last_trim, last_commit)
            } else {
                Duration::MAX
            };
            match rx.recv_timeout(publish_in.map_or(trim_in, |p| p.min(trim_in))) {
                Ok(job) => job,
                Err(RecvTimeoutError::Timeout) => {
                    unpublished.publish(hook, false);
                    if unpublished.due_in().is_none() {
                        let store = Folding {
                            db,
                            journal,
                            latest,
                            metrics,
                            cfg,
                        };
                        store.housekeep(wal, &mut dirty, &mut last_trim);
                    }
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => {
                    unpublished.publish(hook, true);
                    // Shutting down: leave nothing for the next start to replay.
                    if housekeeping {
                        fold(db, journal, wal, latest, metrics, &mut dirty, None);
                    }
                    return;
                }
            }
        };
        jobs.push(first);
        while jobs.len() < cfg.max_batch {
            match rx.try_recv() {
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
        let started = Instant::now();
        let outcomes = match commit_batch(db, &mut jobs, cfg, latest, journal, wal, &mut dirty) {
            Ok(outcomes) => {
                metrics
                    .commit_seconds
                    .observe(started.elapsed().as_secs_f64());
                #[allow(clippy::cast_precision_loss)] // batch sizes are far below 2^52
                metrics.batch_size.observe(jobs.len() as f64);
                healthy.store(true, std::sync::atomic::Ordering::SeqCst);
                outcomes
            }
            Err(e) => {
                healthy.store(false, std::sync::atomic::Ordering::SeqCst);
                // Nothing in this batch is durable: say so to every caller, acknowledge none.
                tracing::error!(error = %e, batch = jobs.len(), "commit failed");
                jobs.iter().map(|_| Err(e.clone())).collect()
            }
        };
        let committed: Vec<Arc<Committed>> = outcomes.iter().flatten().flatten().cloned().collect();
        for c in &committed {
            metrics.commits.inc();
            hook(c, Stage::Durable);
        }
        for (job, outcome) in jobs.drain(..).zip(outcomes) {
            // The caller may have gone away (its socket closed); the write stands regardless.
            let _ = job.reply.send((outcome, job.retired));
        }
        last_commit = Some(Instant::now());
        unpublished.add(committed);
        unpublished.publish(hook, false);
        if unpublished.due_in().is_none() {
            let store = Folding {
                db,
                journal,
                latest,
                metrics,
                cfg,
            };
            store.housekeep(wal, &mut dirty, &mut last_trim);
        }
    }
}

/// How long the writer may wait for a job before its half-second housekeeping is due. While
/// writes keep coming that is not on a timer but right after one of them is published (see
/// [`Folding::housekeep`]): a timer falls anywhere between two writes, and a write arriving
/// during the fold's durable commit (1–3 ms) waited for it. Measured (`perf record`, c) 1000
/// after b), one update every ≈ 51 ms): with the fold on the timer, about one update per run
/// met one and was acknowledged in 3–4.5 ms against ≈ 1.1. Only once writes have stopped
/// for `TRIM_INTERVAL` does the timer fold.
fn trim_wait(last_trim: Instant, last_commit: Option<Instant>) -> Duration {
    let due = TRIM_INTERVAL.saturating_sub(last_trim.elapsed());
    let quiet = last_commit.map_or(Duration::ZERO, |c| {
        TRIM_INTERVAL.saturating_sub(c.elapsed())
    });
    due.max(quiet)
}

/// What a fold needs besides the log and the dirty set.
struct Folding<'a> {
    db: &'a Database,
    journal: &'a Journal,
    latest: &'a LatestDoc,
    metrics: &'a crate::metrics::Metrics,
    cfg: &'a WriterConfig,
}

impl Folding<'_> {
    /// Folds a full journal, and trims and checkpoints when the half-second is up. Called
    /// only when no batch's watchers are waiting to be told: a fold is a durable commit of
    /// 1–3 ms, and their changes would wait for it.
    fn housekeep(&self, wal: &mut Wal, dirty: &mut HashSet<String>, last_trim: &mut Instant) {
        let Folding {
            db,
            journal,
            latest,
            metrics,
            cfg,
        } = *self;
        if journal.len() >= FOLD_AT {
            fold(db, journal, wal, latest, metrics, dirty, None);
        }
        if last_trim.elapsed() >= TRIM_INTERVAL && (!dirty.is_empty() || wal.pending()) {
            fold(db, journal, wal, latest, metrics, dirty, Some(cfg));
            *last_trim = Instant::now();
        }
    }
}

/// One batch, made durable by one fsync. `Err` only for storage failures, which fail every
/// write in it; a refused update is an `Ok` outcome's `Err`.
///
/// Updates need no redb transaction: their rows go to the write-ahead log and then to the
/// in-memory journal (`journal.rs` says why). Other writes commit in one durable redb
/// transaction after the log record. A record too large for the log is folded with the
/// journal in one durable commit instead, which is a checkpoint.
fn commit_batch(
    db: &Database,
    jobs: &mut [Job],
    cfg: &WriterConfig,
    cached: &LatestDoc,
    journal: &Journal,
    wal: &mut Wal,
    dirty: &mut HashSet<String>,
) -> Result<Vec<Outcome>, StoreError> {
    let only_updates = jobs.iter().all(|j| matches!(j.write, Write::Update(..)));
    let txn = if only_updates {
        None
    } else {
        Some(db.begin_write().map_err(StoreError::unavailable)?)
    };
    let mut outcomes = Vec::with_capacity(jobs.len());
    let mut wrote = false;
    let rows = {
        let mut tables = Tables {
            db,
            txn: txn.as_ref(),
            read: None,
            users: None,
            docs: None,
            log: None,
            journal,
            rows: Vec::new(),
            bases: None,
            revoked: None,
            sessions: None,
            blobs: None,
            latest: HashMap::new(),
            cached,
            now: now_rfc3339(),
        };
        for job in jobs {
            let outcome = tables.apply(&mut job.write, &mut job.retired, &cfg.limits)?;
            wrote |= outcome.is_ok();
            outcomes.push(outcome);
        }
        tables.rows
    };
    if !wrote {
        // Every write was refused: nothing to make durable.
        if let Some(txn) = txn {
            txn.abort().map_err(StoreError::unavailable)?;
        }
        return Ok(outcomes);
    }
    let logged =
        rows.is_empty() || wal.append(rows.iter().map(|(_, seq, row)| (*seq, row.as_slice())))?;
    let rows: Vec<(String, u64, RowBytes)> = rows
        .into_iter()
        .map(|(name, seq, row)| (name, seq, RowBytes::from(row)))
        .collect();
    if logged {
        if let Some(txn) = txn
            && let Err(e) = txn.commit()
        {
            if !rows.is_empty()
                && let Err(r) = wal.retract()
            {
                tracing::error!(error = %r, "a failed batch stays in the write-ahead log");
            }
            return Err(StoreError::unavailable(e));
        }
        journal.add(rows);
        return Ok(outcomes);
    }
    // Too large for the log: this batch and the journal become one checkpoint.
    let extra = rows.into_iter().map(|(_, seq, row)| (seq, row)).collect();
    dirty.extend(checkpoint(db, txn, wal, journal, extra, cached)?);
    Ok(outcomes)
}

/// Folds the journal, and `extra` rows (a batch too large for the log), into the change log
/// and `docs` in `txn` (or a transaction of its own) committed durably: a checkpoint, after
/// which the log starts over. Returns the documents folded.
///
/// # Errors
/// `Unavailable`; the journal and the log then still hold every row.
fn checkpoint(
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

/// Folds the journal into the change log and `docs` in one durable commit, which empties the
/// write-ahead log (a checkpoint), and marks the documents folded for trimming. With `trim`
/// (the writer's half-second housekeeping) it first trims the logs that earlier folds fed
/// (trimming only ever sees folded entries) without an fsync, and the checkpoint, made even
/// with nothing to fold, carries that too: one durable commit per round. A failure is logged
/// and retried later: the log and the journal still hold every row.
fn fold(
    db: &Database,
    journal: &Journal,
    wal: &mut Wal,
    latest: &LatestDoc,
    metrics: &crate::metrics::Metrics,
    dirty: &mut HashSet<String>,
    trim: Option<&WriterConfig>,
) {
    let force = trim.is_some_and(|cfg| trim_logs(db, dirty, cfg));
    if journal.len() == 0 && !force && !wal.pending() {
        return;
    }
    let started = Instant::now();
    match checkpoint(db, None, wal, journal, Vec::new(), latest) {
        Ok(folded) => {
            dirty.extend(folded);
            metrics
                .checkpoint_seconds
                .observe(started.elapsed().as_secs_f64());
        }
        Err(e) => tracing::warn!(error = %e, "folding the journal failed"),
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
    let cutoff = cfg.max_age.map(|age| {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        rfc3339_millis(now.saturating_sub(age).as_millis())
    });
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

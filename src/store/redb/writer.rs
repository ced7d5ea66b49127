//! The writer thread: group commit, and when to fold the journal and trim the change log
//! (`housekeeping.rs` holds how).
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
use std::time::{Duration, Instant};

use redb::Database;

use super::housekeeping::{Folding, checkpoint, trim_wait};
use super::journal::{Journal, RowBytes};
use super::publish::Unpublished;
use super::tables::Tables;
use super::wal::Wal;
use super::{Job, Outcome};
use crate::store::apply::Limits;
use crate::store::backend::{CommitHook, Committed, LatestDoc, Stage, Write};
use crate::store::error::StoreError;
use crate::store::model::now_rfc3339;

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
    let folding = Folding {
        db,
        journal,
        latest,
        metrics,
        cfg,
    };
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
                        folding.housekeep(wal, &mut dirty, &mut last_trim);
                    }
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => {
                    unpublished.publish(hook, true);
                    // Shutting down: leave nothing for the next start to replay.
                    if housekeeping {
                        folding.fold(wal, &mut dirty, false);
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
            folding.housekeep(wal, &mut dirty, &mut last_trim);
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

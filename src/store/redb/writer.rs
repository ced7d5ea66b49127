//! The writer thread: group commit, and when to fold and trim the change log
//! (`housekeeping.rs` holds how).
//!
//! Every queued write is drained into one batch (up to `max_batch`) made durable by one fsync
//! ([`DurableLog::commit`]). Each write is checked against the state left by the ones before
//! it. Each committed version goes to [`Commits`] in commit order after the fsync: the
//! cache before anyone is answered, the hub after (`publish.rs`: a moment after, following a
//! quiet spell).
//!
//! That state — the log, the fold and trim bookkeeping, what awaits publishing — is a
//! [`Committer`] behind a mutex rather than the thread's locals, because a caller that finds
//! the writer idle commits its update with it on its own thread (`queue.rs` says when and
//! why) and then wakes the thread to publish it.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use redb::Database;

use super::WriterConfig;
use super::durable::DurableLog;
use super::housekeeping::{Housekeeping, trim_wait};
use super::jobs::{Job, Outcome, refuse};
use super::publish::Unpublished;
use super::tables::Tables;
use crate::metrics::Metrics;
use crate::store::backend::{Committed, Write};
use crate::store::commits::Commits;
use crate::store::error::StoreError;
use crate::sys::now_rfc3339;

/// What commits: the writer thread's state between batches. It sits behind a mutex so that a
/// caller finding the writer idle can commit its own update on its own thread
/// (`queue.rs` says when and why); whoever holds the lock is the writer.
pub(super) struct Committer {
    /// The data file, and getting back to one that commits after storage failed.
    pub healing: super::healing::Healing,
    pub cfg: WriterConfig,
    pub commits: Commits,
    pub log: DurableLog,
    pub healthy: Arc<AtomicBool>,
    pub metrics: Arc<Metrics>,
    pub state: WriterState,
}

/// What the writer keeps track of between batches.
pub(super) struct WriterState {
    /// Documents folded into the change log since their log was last trimmed.
    dirty: HashSet<String>,
    last_trim: Instant,
    last_commit: Option<Instant>,
    unpublished: Unpublished,
}

impl Default for WriterState {
    fn default() -> Self {
        WriterState {
            dirty: HashSet::new(),
            last_trim: Instant::now(),
            last_commit: None,
            unpublished: Unpublished::default(),
        }
    }
}

/// How long after the last commit the writer counts as idle, so that a caller may commit
/// itself (`queue::Writer::commit_here`). In a busy stream the queue is better: batches share
/// an fsync, and b) (50 writers) fell from ≈ 51k to ≈ 42k updates/s when every caller that
/// found the writer momentarily free committed alone.
const QUIET: Duration = Duration::from_millis(5);

/// What the writer thread's queue carries.
#[allow(clippy::large_enum_variant)] // jobs are what it carries; a wake is the rare one
pub(super) enum Msg {
    Job(Job),
    /// Someone else committed: look again at what is due (publishing, housekeeping).
    Wake,
}

/// The committer, shared by the writer thread and idle-time callers; `None` once the writer
/// has stopped.
pub(super) type CommitterSlot = Mutex<Option<Committer>>;

/// The writer thread: waits for jobs, and between them for its timers.
pub(super) fn run(
    shared: &CommitterSlot,
    rx: &Receiver<Msg>,
    in_flight: &AtomicUsize,
    max_batch: usize,
) {
    let mut jobs = Vec::with_capacity(max_batch);
    loop {
        let wait = match lock(shared).as_ref() {
            Some(c) => c.wait(),
            None => return,
        };
        let received = match wait {
            None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
            Some(wait) => rx.recv_timeout(wait),
        };
        match received {
            Ok(Msg::Job(job)) => jobs.push(job),
            Ok(Msg::Wake) | Err(RecvTimeoutError::Timeout) => {
                if let Some(c) = lock(shared).as_mut() {
                    c.catch_up();
                }
                continue;
            }
            Err(RecvTimeoutError::Disconnected) => {
                let mut guard = lock(shared);
                if let Some(c) = guard.as_mut() {
                    c.stop();
                }
                // Lets go of the file: `close` waits for the last handle.
                *guard = None;
                return;
            }
        }
        while jobs.len() < max_batch {
            match rx.try_recv() {
                Ok(Msg::Job(job)) => jobs.push(job),
                Ok(Msg::Wake) => {}
                Err(_) => break,
            }
        }
        let n = jobs.len();
        match lock(shared).as_mut() {
            Some(c) => {
                c.commit(&mut jobs);
                c.catch_up();
            }
            None => jobs.clear(),
        }
        in_flight.fetch_sub(n, Ordering::SeqCst);
    }
}

/// The committer. A thread that panicked holding it may have left it half-changed: it is
/// then dropped, and every later write fails as if the writer had stopped.
pub(super) fn lock(shared: &CommitterSlot) -> MutexGuard<'_, Option<Committer>> {
    shared.lock().unwrap_or_else(|poisoned| {
        let mut guard = poisoned.into_inner();
        *guard = None;
        guard
    })
}

impl Committer {
    /// Commits one update on its caller's thread, a tokio worker: `block_in_place` hands
    /// the worker's other tasks to another thread for the fsync's while.
    pub(super) fn commit_here(&mut self, job: Job) {
        tokio::task::block_in_place(|| self.commit(&mut vec![job]));
        self.metrics.commits_here.inc();
    }

    /// Whether no commit has ended for [`QUIET`].
    pub(super) fn quiet(&self) -> bool {
        self.state.last_commit.is_none_or(|t| t.elapsed() >= QUIET)
    }

    /// How long the writer may sleep before something is due; `None`: until a job comes.
    fn wait(&self) -> Option<Duration> {
        let housekeeping = self.untidy();
        let publish_in = self.state.unpublished.due_in();
        let heal_in = self.healing.due_in();
        if !housekeeping && publish_in.is_none() {
            return heal_in;
        }
        let trim_in = if housekeeping {
            trim_wait(self.state.last_trim, self.state.last_commit)
        } else {
            Duration::MAX
        };
        let due = publish_in.map_or(trim_in, |p| p.min(trim_in));
        Some(heal_in.map_or(due, |h| h.min(due)))
    }

    /// The data file, unless it is being reopened after a failure.
    fn db(&self) -> Option<Arc<Database>> {
        super::healing::current(&self.healing.slot)
    }

    /// Whether anything is left to fold or trim.
    fn untidy(&self) -> bool {
        !self.state.dirty.is_empty() || self.log.holds_unfolded()
    }

    /// What housekeeping borrows for a round, with the time of the last trim.
    fn housekeeping<'a>(&'a mut self, db: &'a Database) -> (Housekeeping<'a>, &'a mut Instant) {
        let Committer {
            cfg,
            log,
            metrics,
            state,
            ..
        } = self;
        let round = Housekeeping {
            db,
            log,
            metrics,
            cfg,
            dirty: &mut state.dirty,
        };
        (round, &mut state.last_trim)
    }

    /// Shutting down: tell every watcher, and leave nothing for the next start to replay.
    /// A clean stop ends with a checkpoint that records it (`wal_clean`): the next start
    /// then knows the log holds nothing it needs, and a missing log is no loss.
    fn stop(&mut self) {
        let commits = &self.commits;
        self.state
            .unpublished
            .publish(|c| commits.answered(c), true);
        let Some(db) = self.db() else {
            tracing::warn!("stopping without a data file; the next start replays the log");
            return;
        };
        if let Err(e) = self.log.stop(&db) {
            tracing::warn!(error = %e, "could not stop cleanly; the next start replays and checks the write-ahead log");
        }
    }

    /// Publishes what is due and, once nothing waits, housekeeps: after each batch, after
    /// a timer, and when woken after someone else's commit.
    fn catch_up(&mut self) {
        let commits = &self.commits;
        self.state
            .unpublished
            .publish(|c| commits.answered(c), false);
        if self.healing.suspect {
            if !self.healing.try_heal() {
                return;
            }
            self.healthy.store(true, Ordering::SeqCst);
        }
        if self.state.unpublished.due_in().is_none()
            && let Some(db) = self.db()
        {
            let (mut round, last_trim) = self.housekeeping(&db);
            if !round.housekeep(last_trim) {
                self.failed();
            }
        }
    }

    /// Storage failed: unhealthy until `healing` sees a commit go through.
    fn failed(&mut self) {
        self.healthy.store(false, Ordering::SeqCst);
        self.healing.suspect = true;
    }

    /// Commits `jobs` as one batch and answers each (emptying `jobs`); their watchers are
    /// told later ([`Unpublished`]).
    fn commit(&mut self, jobs: &mut Vec<Job>) {
        let Some(db) = self.db() else {
            refuse(
                jobs,
                &StoreError::unavailable("the data file is being reopened"),
            );
            return;
        };
        // A deletion must leave no row of its account in the journal (`Tables::delete_user`
        // refuses if one is left, should this fold fail): rare enough for a checkpoint.
        if jobs
            .iter()
            .any(|j| matches!(j.write, Write::DeleteUser { .. } | Write::DeleteDoc { .. }))
        {
            let (mut round, _) = self.housekeeping(&db);
            if !round.fold(false) {
                self.failed();
            }
        }
        let started = Instant::now();
        let outcomes = match commit_batch(&db, jobs, &self.cfg, &mut self.log) {
            Ok((outcomes, folded)) => {
                self.state.dirty.extend(folded);
                self.metrics
                    .commit_seconds
                    .observe(started.elapsed().as_secs_f64());
                #[allow(clippy::cast_precision_loss)] // batch sizes are far below 2^52
                self.metrics.batch_size.observe(jobs.len() as f64);
                // Healthy again only once a check of the data file itself commits
                // (`healing.rs`): a batch that only touched the log says nothing of it.
                if !self.healing.suspect {
                    self.healthy.store(true, Ordering::SeqCst);
                }
                outcomes
            }
            Err(e) => {
                self.failed();
                // Nothing in this batch is durable: say so to every caller, acknowledge none.
                tracing::error!(error = %e, batch = jobs.len(), "commit failed");
                jobs.iter().map(|_| Err(e.clone())).collect()
            }
        };
        let committed: Vec<Arc<Committed>> = outcomes.iter().flatten().flatten().cloned().collect();
        for c in &committed {
            self.metrics.commits.inc();
            self.commits.durable(c);
        }
        for (job, outcome) in jobs.drain(..).zip(outcomes) {
            // The caller may have gone away (its socket closed); the write stands regardless.
            let _ = job.reply.send((outcome, job.retired));
        }
        self.state.last_commit = Some(Instant::now());
        self.state.unpublished.add(committed);
    }
}

/// One batch, made durable by one fsync. `Err` only for storage failures, which fail every
/// write in it; a refused update is an `Ok` outcome's `Err`. Also returns the documents the
/// batch folded into the change log (a batch too large for the log is folded).
fn commit_batch(
    db: &Database,
    jobs: &mut [Job],
    cfg: &WriterConfig,
    log: &mut DurableLog,
) -> Result<(Vec<Outcome>, Vec<String>), StoreError> {
    let only_updates = jobs.iter().all(|j| matches!(j.write, Write::Update(..)));
    let txn = log.begin(db, !only_updates)?;
    let mut outcomes = Vec::with_capacity(jobs.len());
    let mut wrote = false;
    let (updates, fold_now) = {
        let mut tables = Tables {
            db,
            txn: txn.as_ref(),
            read: None,
            users: None,
            docs: None,
            log: None,
            durable: &*log,
            updates: Vec::new(),
            bases: None,
            revoked: None,
            sessions: None,
            blobs: None,
            latest: HashMap::new(),
            deleted: HashSet::new(),
            fold_now: false,
            now: now_rfc3339(),
        };
        for job in jobs {
            let outcome = tables.apply(&mut job.write, &mut job.retired, &cfg.limits)?;
            wrote |= outcome.is_ok();
            outcomes.push(outcome);
        }
        (tables.updates, tables.fold_now)
    };
    if !wrote {
        // Every write was refused: nothing to make durable.
        if let Some(txn) = txn {
            txn.abort().map_err(StoreError::unavailable)?;
        }
        return Ok((outcomes, Vec::new()));
    }
    let folded = log.commit(db, txn, updates, fold_now)?;
    Ok((outcomes, folded))
}

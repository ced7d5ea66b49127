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

use redb::{Database, Durability, ReadTransaction, ReadableDatabase, ReadableTable, Table};

use super::blobs::BlobTables;
use super::journal::{self, FOLD_AT, Journal, RowBytes};
use super::publish::Unpublished;
use super::wal::Wal;
use super::{DOCS, Job, LOG, LOG_BASE, Outcome, REVOKED, SESSIONS, USERS, decode, flag_table};
use crate::store::apply::{Limits, apply, replay_into};
use crate::store::backend::{CommitHook, Committed, LatestDoc, Stage, Write};
use crate::store::error::StoreError;
use crate::store::model::{Document, UserRecord, now_rfc3339, rfc3339_millis};

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
                TRIM_INTERVAL.saturating_sub(last_trim.elapsed())
            } else {
                Duration::MAX
            };
            match rx.recv_timeout(publish_in.map_or(trim_in, |p| p.min(trim_in))) {
                Ok(job) => job,
                Err(RecvTimeoutError::Timeout) => {
                    unpublished.publish(hook, false);
                    if housekeeping && last_trim.elapsed() >= TRIM_INTERVAL {
                        fold(db, journal, wal, latest, metrics, &mut dirty, Some(cfg));
                        last_trim = Instant::now();
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
        unpublished.add(committed);
        unpublished.publish(hook, false);
        if journal.len() >= FOLD_AT {
            fold(db, journal, wal, latest, metrics, &mut dirty, None);
        }
        if last_trim.elapsed() >= TRIM_INTERVAL && (!dirty.is_empty() || wal.pending()) {
            fold(db, journal, wal, latest, metrics, &mut dirty, Some(cfg));
            last_trim = Instant::now();
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

/// The batch's tables, opened on first use: an update to a cached document touches none of
/// them (opening and closing all ten per batch was about a sixth of the writer's CPU per
/// commit, perf on a).
struct Tables<'t> {
    db: &'t Database,
    /// The batch's write transaction: only batches with writes other than updates have one.
    txn: Option<&'t redb::WriteTransaction>,
    /// For reading documents that are not cached, when there is no write transaction.
    read: Option<ReadTransaction>,
    users: Option<Table<'t, &'static str, &'static [u8]>>,
    docs: Option<Table<'t, &'static str, &'static [u8]>>,
    log: Option<Table<'t, (&'static str, u64), &'static [u8]>>,
    journal: &'t Journal,
    /// Journal rows written by this batch: (document, sequence, row).
    rows: Vec<(String, u64, Vec<u8>)>,
    bases: Option<Table<'t, &'static str, &'static [u8]>>,
    revoked: Option<Table<'t, &'static str, u64>>,
    sessions: Option<Table<'t, (&'static str, &'static str), &'static [u8]>>,
    blobs: Option<BlobTables<'t>>,
    /// Documents as left by earlier writes of this batch (saves re-parsing them).
    latest: HashMap<String, Arc<Document>>,
    /// Committed documents kept in memory by the store: parsing a document from its bytes
    /// for every update was most of the writer's time.
    cached: &'t LatestDoc,
    now: String,
}

/// The batch's write transaction: every write but an update has one.
fn write_txn(txn: Option<&redb::WriteTransaction>) -> Result<&redb::WriteTransaction, StoreError> {
    txn.ok_or_else(|| StoreError::unavailable("no write transaction"))
}

/// `slot`'s table, opened in `txn` on first use.
fn open<'s, 't, K: redb::Key + 'static, V: redb::Value + 'static>(
    txn: Option<&'t redb::WriteTransaction>,
    slot: &'s mut Option<Table<'t, K, V>>,
    table: redb::TableDefinition<'static, K, V>,
) -> Result<&'s mut Table<'t, K, V>, StoreError> {
    if slot.is_none() {
        *slot = Some(
            write_txn(txn)?
                .open_table(table)
                .map_err(StoreError::unavailable)?,
        );
    }
    slot.as_mut()
        .ok_or_else(|| StoreError::unavailable("table not open"))
}

impl<'t> Tables<'t> {
    /// Applies one write. The outer `Err` is a storage failure (fails the batch); the inner
    /// one a refusal (this write only).
    fn apply(
        &mut self,
        write: &mut Write,
        retired: &mut Option<Arc<Document>>,
        limits: &Limits,
    ) -> Result<Outcome, StoreError> {
        match write {
            Write::Update(update, prepared) => {
                let Some(current) = self.current(&update.target)? else {
                    return Ok(Err(StoreError::Unauthorized));
                };
                // `apply` is pure and writes nothing, so if a bug in it (or in a patch library)
                // panics, only this update fails: the writer thread, and every other writer's
                // update, must survive any input.
                let attempt = match prepared.take() {
                    Some(p) if Arc::ptr_eq(&p.base, &current) => Ok(Ok(p.applied)),
                    _ => std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        apply(&current, update, limits, &self.now)
                    })),
                };
                let applied = match attempt {
                    Ok(Ok(applied)) => applied,
                    Ok(Err(refused)) => return Ok(Err(refused)),
                    Err(_) => {
                        tracing::error!(target = %update.target, "applying an update panicked");
                        return Ok(Err(StoreError::Invalid(
                            "this update cannot be applied".into(),
                        )));
                    }
                };
                // One append to the journal; the document and its log entry are written
                // when the journal is folded (journal.rs).
                let name = update.target.as_str();
                let row = journal::encode_row(name, applied.entry.version, &applied.entry_json)?;
                let seq = self.journal.next_seq();
                self.rows.push((update.target.clone(), seq, row));
                let doc = Arc::new(applied.doc);
                self.latest.insert(update.target.clone(), doc.clone());
                *retired = Some(current);
                Ok(Ok(Some(Arc::new(Committed {
                    doc,
                    entry: Some(applied.entry),
                    created: applied.created,
                }))))
            }
            Write::CreateUser { user, doc, session } => {
                let name = user.username.as_str();
                if self.user_exists(name)? {
                    return Ok(Err(StoreError::UsernameTaken));
                }
                let record = serde_json::to_vec(user).map_err(StoreError::unavailable)?;
                let bytes = serde_json::to_vec(doc).map_err(StoreError::unavailable)?;
                open(self.txn, &mut self.users, USERS)?
                    .insert(name, record.as_slice())
                    .map_err(StoreError::unavailable)?;
                open(self.txn, &mut self.docs, DOCS)?
                    .insert(name, bytes.as_slice())
                    .map_err(StoreError::unavailable)?;
                // Version 0 is where replaying the log starts.
                open(self.txn, &mut self.bases, LOG_BASE)?
                    .insert(name, bytes.as_slice())
                    .map_err(StoreError::unavailable)?;
                if let Some(session) = session {
                    self.put_session(session)?;
                }
                let doc = Arc::new(doc.clone());
                self.latest.insert(user.username.clone(), doc.clone());
                Ok(Ok(Some(Arc::new(Committed {
                    doc,
                    entry: None,
                    created: true,
                }))))
            }
            Write::SetFlag { username, flag, on } => {
                if !self.user_exists(username)? {
                    return Ok(Err(StoreError::Unauthorized));
                }
                // Flags are rare writes: open their table only when one comes.
                let mut table = write_txn(self.txn)?
                    .open_table(flag_table(*flag))
                    .map_err(StoreError::unavailable)?;
                if *on {
                    table.insert(username.as_str(), ())
                } else {
                    table.remove(username.as_str()).map(|_| None)
                }
                .map_err(StoreError::unavailable)?;
                Ok(Ok(None))
            }
            Write::SetPassword { username, hash } => {
                let Some(mut user) = self.user(username)? else {
                    return Ok(Err(StoreError::Unauthorized));
                };
                user.password_hash = Some(hash.clone());
                let record = serde_json::to_vec(&user).map_err(StoreError::unavailable)?;
                open(self.txn, &mut self.users, USERS)?
                    .insert(username.as_str(), record.as_slice())
                    .map_err(StoreError::unavailable)?;
                Ok(Ok(None))
            }
            Write::BlobAdd {
                username,
                sha256,
                size,
                content_type,
                quota,
            } => {
                if !self.user_exists(username)? {
                    return Ok(Err(StoreError::Unauthorized));
                }
                let now = self.now.clone();
                let added =
                    self.blobs()?
                        .add(username, sha256, *size, content_type, *quota, &now)?;
                Ok(added.map(|()| None))
            }
            Write::BlobRemove { username, sha256 } => {
                Ok(self.blobs()?.remove(username, sha256)?.map(|()| None))
            }
            Write::Session(session) => {
                self.put_session(session)?;
                Ok(Ok(None))
            }
            Write::Revoke {
                username,
                sid,
                expires,
            } => {
                open(self.txn, &mut self.revoked, REVOKED)?
                    .insert(sid.as_str(), *expires)
                    .map_err(StoreError::unavailable)?;
                open(self.txn, &mut self.sessions, SESSIONS)?
                    .remove((username.as_str(), sid.as_str()))
                    .map_err(StoreError::unavailable)?;
                Ok(Ok(None))
            }
        }
    }

    fn blobs(&mut self) -> Result<&mut BlobTables<'t>, StoreError> {
        if self.blobs.is_none() {
            self.blobs = Some(BlobTables::open(write_txn(self.txn)?)?);
        }
        self.blobs
            .as_mut()
            .ok_or_else(|| StoreError::unavailable("table not open"))
    }

    fn user_exists(&mut self, name: &str) -> Result<bool, StoreError> {
        Ok(self.latest.contains_key(name)
            || open(self.txn, &mut self.users, USERS)?
                .get(name)
                .map_err(StoreError::unavailable)?
                .is_some())
    }

    fn user(&mut self, name: &str) -> Result<Option<UserRecord>, StoreError> {
        match open(self.txn, &mut self.users, USERS)?
            .get(name)
            .map_err(StoreError::unavailable)?
        {
            Some(bytes) => Ok(Some(decode(bytes.value(), name)?)),
            None => Ok(None),
        }
    }

    fn put_session(
        &mut self,
        session: &crate::store::model::SessionRecord,
    ) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec(session).map_err(StoreError::unavailable)?;
        open(self.txn, &mut self.sessions, SESSIONS)?
            .insert(
                (session.username.as_str(), session.id.as_str()),
                bytes.as_slice(),
            )
            .map_err(StoreError::unavailable)?;
        Ok(())
    }

    fn current(&mut self, name: &str) -> Result<Option<Arc<Document>>, StoreError> {
        if let Some(doc) = self.latest.get(name) {
            return Ok(Some(doc.clone()));
        }
        if let Some(doc) = (self.cached)(name) {
            return Ok(Some(doc));
        }
        let unfolded = self.journal.entries(name)?;
        let doc = if let Some(txn) = self.txn {
            let docs = open(Some(txn), &mut self.docs, DOCS)?;
            let log = open(Some(txn), &mut self.log, LOG)?;
            journal::document(&*docs, &*log, name, &unfolded)?
        } else {
            // Only the writer commits, so a snapshot taken now holds every commit so far.
            if self.read.is_none() {
                self.read = Some(self.db.begin_read().map_err(StoreError::unavailable)?);
            }
            let read = self
                .read
                .as_ref()
                .ok_or_else(|| StoreError::unavailable("no snapshot"))?;
            let docs = read.open_table(DOCS).map_err(StoreError::unavailable)?;
            let log = read.open_table(LOG).map_err(StoreError::unavailable)?;
            journal::document(&docs, &log, name, &unfolded)?
        };
        Ok(doc.map(Arc::new))
    }
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

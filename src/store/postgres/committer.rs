//! Group commit for PostgreSQL: one task per node takes every update waiting and commits
//! them in one transaction, so N concurrent updates cost one `COMMIT` (one WAL flush) and
//! six round trips, not N of each. Measured in BENCHMARKS.md ("Cluster").

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use deadpool_postgres::{Pool, Transaction};
use tokio::sync::{mpsc, oneshot};

use super::{decode, encode, int, pg};
use crate::store::apply::{Limits, apply, replay_into};
use crate::store::backend::Committed;
use crate::store::commits::Commits;
use crate::store::error::StoreError;
use crate::store::model::{Document, LogEntry, ShareChange, Update, Version, share_changes};
use crate::store::ops::committed_as;
use crate::sys::now_rfc3339;

/// Updates waiting beyond this make callers wait (backpressure).
pub const QUEUE: usize = 4096;
/// Most updates folded into one transaction.
const MAX_BATCH: usize = 512;
/// The change log of a document is trimmed at most every this many versions.
const TRIM_EVERY: u64 = 32;

pub struct Job {
    pub update: Update,
    pub reply: oneshot::Sender<Result<Option<Arc<Committed>>, StoreError>>,
}

pub struct Committer {
    pub pool: Pool,
    pub s: String,
    pub channel: String,
    pub limits: Limits,
    pub retention: crate::store::Retention,
    pub commits: Commits,
    pub healthy: Arc<AtomicBool>,
    pub metrics: Arc<crate::metrics::Metrics>,
}

type Outcome = Result<Arc<Committed>, StoreError>;

impl Committer {
    pub async fn run(self, mut rx: mpsc::Receiver<Job>) {
        let mut jobs = Vec::new();
        while let Some(first) = rx.recv().await {
            jobs.push(first);
            while jobs.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(job) => jobs.push(job),
                    Err(_) => break,
                }
            }
            let started = Instant::now();
            match self.commit(&jobs).await {
                Ok(outcomes) => {
                    self.healthy.store(true, Ordering::SeqCst);
                    self.metrics
                        .commit_seconds
                        .observe(started.elapsed().as_secs_f64());
                    #[allow(clippy::cast_precision_loss)] // batch sizes are small
                    self.metrics.batch_size.observe(jobs.len() as f64);
                    // In commit order, as with redb: cache, answers, then watchers.
                    let committed: Vec<Arc<Committed>> =
                        outcomes.iter().flatten().cloned().collect();
                    for c in &committed {
                        self.metrics.commits.inc();
                        self.commits.durable(c);
                    }
                    for (job, outcome) in jobs.drain(..).zip(outcomes) {
                        let _ = job.reply.send(outcome.map(Some));
                    }
                    for c in &committed {
                        self.commits.answered(c);
                    }
                }
                Err(e) => {
                    // Nothing in the batch committed: acknowledge none of it.
                    self.healthy.store(false, Ordering::SeqCst);
                    tracing::error!(error = %e, batch = jobs.len(), "postgres commit failed");
                    for job in jobs.drain(..) {
                        let _ = job.reply.send(Err(e.clone()));
                    }
                }
            }
        }
    }

    /// One transaction for the batch. `Err` fails every update in it; a refused update is
    /// an `Err` in its own slot.
    async fn commit(&self, jobs: &[Job]) -> Result<Vec<Outcome>, StoreError> {
        let s = &self.s;
        let mut client = self.pool.get().await.map_err(pg)?;
        let tx = client.transaction().await.map_err(pg)?;
        let mut targets: Vec<&str> = jobs.iter().map(|j| j.update.target.as_str()).collect();
        targets.sort_unstable();
        targets.dedup();
        let stmt = tx
            .prepare_cached(&format!(
                "SELECT username, body FROM {s}.docs WHERE username = ANY($1) ORDER BY username FOR UPDATE"
            ))
            .await
            .map_err(pg)?;
        let mut latest: HashMap<String, Arc<Document>> = HashMap::new();
        for row in tx.query(&stmt, &[&targets]).await.map_err(pg)? {
            let name: String = row.get(0);
            let doc: Document = decode(&row.get::<_, String>(1), &name)?;
            latest.insert(name, Arc::new(doc));
        }
        let now = now_rfc3339();
        let mut outcomes = Vec::with_capacity(jobs.len());
        // Per document: the newest version and its serialized body (what the row becomes).
        let mut rows: HashMap<&str, (Version, String)> = HashMap::new();
        let (mut log_names, mut log_versions, mut log_entries): (Vec<String>, _, Vec<String>) =
            (Vec::new(), Vec::new(), Vec::new());
        let mut trims = Vec::new();
        // Documents whose lists an update set (their `shares` rows are rewritten from the
        // batch's last version of each), and whose access changed for whom.
        let mut reshared: Vec<(String, Arc<Document>)> = Vec::new();
        let mut notices: Vec<(String, ShareChange)> = Vec::new();
        for job in jobs {
            let update = &job.update;
            let Some(current) = latest.get(&update.target).cloned() else {
                outcomes.push(Err(StoreError::Unauthorized));
                continue;
            };
            if let Some((op_id, after)) = crate::store::ops::lookup(update, &current) {
                // This batch's entries first, then the log as committed (the row lock above
                // waited for any other node's commit of this document).
                let mut found = None;
                for (name, entry) in log_names.iter().zip(&log_entries) {
                    if *name == update.target && found.is_none() {
                        found = committed_as(entry.as_bytes(), &update.by, op_id)?;
                    }
                }
                if found.is_none() {
                    found = committed_op(&tx, s, update, op_id, after).await?;
                }
                if let Some(version) = found {
                    outcomes.push(Err(StoreError::AlreadyApplied { version }));
                    continue;
                }
            }
            // As in the redb writer: a panic in pure update logic fails this update only.
            let attempt = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                apply(&current, update, &self.limits, &now)
            }));
            let applied = match attempt {
                Ok(Ok(applied)) => applied,
                Ok(Err(refused)) => {
                    outcomes.push(Err(refused));
                    continue;
                }
                Err(_) => {
                    tracing::error!(target = %update.target, "applying an update panicked");
                    outcomes.push(Err(StoreError::Invalid(
                        "this update cannot be applied".into(),
                    )));
                    continue;
                }
            };
            let version = applied.entry.version;
            rows.insert(update.target.as_str(), (version, encode(&applied.doc)?));
            log_names.push(update.target.clone());
            log_versions.push(int(version));
            log_entries.push(String::from_utf8(applied.entry_json).map_err(pg)?);
            if let Some((retain, _)) = self.retention.of(&update.target)
                && version % TRIM_EVERY.min(retain) == 0
            {
                trims.push((update.target.clone(), version, retain));
            }
            let doc = Arc::new(applied.doc);
            let shares = if update.collaborators.is_some() || update.readers.is_some() {
                reshared.push((update.target.clone(), doc.clone()));
                share_changes(Some(&current), Some(&doc))
            } else {
                Vec::new()
            };
            notices.extend(shares.iter().map(|c| (update.target.clone(), c.clone())));
            latest.insert(update.target.clone(), doc.clone());
            outcomes.push(Ok(Arc::new(Committed {
                doc,
                entry: Some(applied.entry),
                created: applied.created,
                shares,
            })));
        }
        if rows.is_empty() {
            // Every update was refused: nothing to write, no WAL flush.
            tx.rollback().await.map_err(pg)?;
            return Ok(outcomes);
        }
        let (mut names, mut versions, mut bodies) = (Vec::new(), Vec::new(), Vec::new());
        for (name, (version, body)) in rows {
            names.push(name.to_owned());
            versions.push(int(version));
            bodies.push(body);
        }
        let stmt = tx
            .prepare_cached(&format!(
                "UPDATE {s}.docs AS d SET version = u.version, body = u.body
                 FROM unnest($1::text[], $2::bigint[], $3::text[]) AS u(username, version, body)
                 WHERE d.username = u.username"
            ))
            .await
            .map_err(pg)?;
        tx.execute(&stmt, &[&names, &versions, &bodies])
            .await
            .map_err(pg)?;
        let stmt = tx
            .prepare_cached(&format!(
                "INSERT INTO {s}.changelog (username, version, entry)
                 SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[])"
            ))
            .await
            .map_err(pg)?;
        tx.execute(&stmt, &[&log_names, &log_versions, &log_entries])
            .await
            .map_err(pg)?;
        for (name, version, retain) in trims {
            trim(&tx, s, retain, &name, version).await?;
        }
        for (key, _) in &reshared {
            if let Some(doc) = latest.get(key) {
                super::sharing::reindex(&tx, s, key, Some(doc)).await?;
            }
        }
        for (key, change) in &notices {
            super::sharing::notify(&tx, &self.channel, key, std::slice::from_ref(change)).await?;
        }
        // Last before the commit: the feed's lock is held from here to the commit only.
        super::feed::record(&tx, s, &log_names, &log_versions).await?;
        // One notification per document, with its newest version: listeners read what
        // they have not seen from the log anyway.
        let payloads: Vec<String> = names
            .iter()
            .zip(&versions)
            .map(|(name, version)| serde_json::json!({"c": name, "v": version}).to_string())
            .collect();
        let stmt = tx
            .prepare_cached("SELECT pg_notify($1, p) FROM unnest($2::text[]) AS p")
            .await
            .map_err(pg)?;
        tx.execute(&stmt, &[&self.channel, &payloads])
            .await
            .map_err(pg)?;
        tx.commit().await.map_err(pg)?;
        Ok(outcomes)
    }
}

/// The version `update.by`'s operation `op_id` made on `update.target` after `after`, from
/// the committed log (`store/ops.rs`).
async fn committed_op(
    tx: &Transaction<'_>,
    s: &str,
    update: &Update,
    op_id: &str,
    after: Version,
) -> Result<Option<Version>, StoreError> {
    let stmt = tx
        .prepare_cached(&format!(
            "SELECT entry FROM {s}.changelog
             WHERE username = $1 AND version > $2 AND strpos(entry, $3) > 0 ORDER BY version"
        ))
        .await
        .map_err(pg)?;
    let rows = tx
        .query(&stmt, &[&update.target, &int(after), &op_id])
        .await
        .map_err(pg)?;
    for row in rows {
        if let Some(version) = committed_as(row.get::<_, &str>(0).as_bytes(), &update.by, op_id)? {
            return Ok(Some(version));
        }
    }
    Ok(None)
}

/// Folds entries older than the newest `retain` into the base snapshot, inside the
/// update's transaction (every few versions, so the cost is spread thin).
async fn trim(
    tx: &Transaction<'_>,
    s: &str,
    retain: u64,
    name: &str,
    newest: Version,
) -> Result<(), StoreError> {
    let upto = newest.saturating_sub(retain);
    let Some(row) = tx
        .query_opt(
            &format!("SELECT body FROM {s}.changelog_base WHERE username = $1 FOR UPDATE"),
            &[&name],
        )
        .await
        .map_err(pg)?
    else {
        return Ok(());
    };
    let mut base: Document = decode(&row.get::<_, String>(0), name)?;
    if base.version() >= upto {
        return Ok(());
    }
    let rows = tx
        .query(
            &format!(
                "SELECT entry FROM {s}.changelog WHERE username = $1 AND version > $2 AND version <= $3 ORDER BY version"
            ),
            &[&name, &int(base.version()), &int(upto)],
        )
        .await
        .map_err(pg)?;
    for row in rows {
        let entry: LogEntry = decode(&row.get::<_, String>(0), name)?;
        replay_into(&mut base, &entry)?;
    }
    tx.execute(
        &format!("UPDATE {s}.changelog_base SET body = $2 WHERE username = $1"),
        &[&name, &encode(&base)?],
    )
    .await
    .map_err(pg)?;
    tx.execute(
        &format!("DELETE FROM {s}.changelog WHERE username = $1 AND version <= $2"),
        &[&name, &int(base.version())],
    )
    .await
    .map_err(pg)?;
    Ok(())
}

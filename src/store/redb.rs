//! The embedded default backend: one redb file, one writer thread, group commit.
//!
//! redb allows one write transaction at a time and each durable commit costs an fsync, so
//! every pending write is drained into a single transaction: N updates, one fsync. Each is
//! checked against the state left by the ones before it in the same batch. The thread is a
//! plain OS thread because redb's API blocks; reads run on tokio's blocking pool.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{SystemTime, UNIX_EPOCH};

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition};
use tokio::sync::{mpsc, oneshot};

use super::apply::{Limits, apply};
use super::backend::{Backend, CommitHook, Committed, Write};
use super::error::StoreError;
use super::model::{Document, UserRecord, now_rfc3339};

const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const USERS: TableDefinition<&str, &[u8]> = TableDefinition::new("users");
const DOCS: TableDefinition<&str, &[u8]> = TableDefinition::new("docs");
/// `(username, version) → LogEntry` JSON: every committed version, in the same transaction.
const LOG: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("changelog");
const REVOKED: TableDefinition<&str, u64> = TableDefinition::new("revoked_sessions");

/// Bumped when the on-disk layout changes; a newer file is refused rather than misread.
const SCHEMA_VERSION: u64 = 1;

/// Writes waiting for the writer beyond this make callers wait (backpressure, not memory).
const QUEUE: usize = 4096;

type Reply = oneshot::Sender<Result<Option<Arc<Committed>>, StoreError>>;

struct Job {
    write: Write,
    reply: Reply,
}

pub struct RedbBackend {
    db: Arc<Database>,
    tx: Mutex<Option<mpsc::Sender<Job>>>,
    writer: Mutex<Option<JoinHandle<()>>>,
}

/// Tunables for the writer.
#[derive(Clone, Copy, Debug)]
pub struct WriterConfig {
    pub limits: Limits,
    /// Most writes folded into one transaction.
    pub max_batch: usize,
}

impl RedbBackend {
    /// Opens (or creates) the database file and starts the writer thread.
    ///
    /// # Errors
    /// The file is locked by another process, unreadable, or from a newer Hearth.
    pub fn open(path: &Path, cfg: WriterConfig, hook: CommitHook) -> Result<Self, StoreError> {
        let db = Database::create(path).map_err(|e| match e {
            redb::DatabaseError::DatabaseAlreadyOpen => {
                StoreError::Unavailable(format!("{} is in use by another process", path.display()))
            }
            other => StoreError::unavailable(other),
        })?;
        init_schema(&db)?;
        let db = Arc::new(db);
        let (tx, rx) = mpsc::channel(QUEUE);
        let writer_db = db.clone();
        let writer = std::thread::Builder::new()
            .name("hearth-writer".into())
            .spawn(move || writer_loop(&writer_db, rx, cfg, &hook))
            .map_err(StoreError::unavailable)?;
        Ok(RedbBackend {
            db,
            tx: Mutex::new(Some(tx)),
            writer: Mutex::new(Some(writer)),
        })
    }

    async fn read<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Database) -> Result<T, StoreError> + Send + 'static,
    {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || f(&db))
            .await
            .map_err(StoreError::unavailable)?
    }
}

fn init_schema(db: &Database) -> Result<(), StoreError> {
    let txn = db.begin_write().map_err(StoreError::unavailable)?;
    {
        let mut meta = txn.open_table(META).map_err(StoreError::unavailable)?;
        let found = meta
            .get("schema_version")
            .map_err(StoreError::unavailable)?
            .map(|v| v.value());
        match found {
            Some(v) if v > SCHEMA_VERSION => {
                return Err(StoreError::Unavailable(format!(
                    "data file has schema version {v}; this build reads up to {SCHEMA_VERSION}"
                )));
            }
            Some(_) => {}
            None => {
                meta.insert("schema_version", SCHEMA_VERSION)
                    .map_err(StoreError::unavailable)?;
            }
        }
        // Create every table up front so readers never meet a missing one.
        txn.open_table(USERS).map_err(StoreError::unavailable)?;
        txn.open_table(DOCS).map_err(StoreError::unavailable)?;
        txn.open_table(LOG).map_err(StoreError::unavailable)?;
        txn.open_table(REVOKED).map_err(StoreError::unavailable)?;
    }
    txn.commit().map_err(StoreError::unavailable)
}

fn read_json<T: serde::de::DeserializeOwned>(
    db: &Database,
    table: TableDefinition<&str, &[u8]>,
    key: &str,
) -> Result<Option<T>, StoreError> {
    let txn = db.begin_read().map_err(StoreError::unavailable)?;
    let table = txn.open_table(table).map_err(StoreError::unavailable)?;
    let Some(bytes) = table.get(key).map_err(StoreError::unavailable)? else {
        return Ok(None);
    };
    serde_json::from_slice(bytes.value())
        .map(Some)
        .map_err(|e| StoreError::Unavailable(format!("corrupt record {key:?}: {e}")))
}

impl Backend for RedbBackend {
    fn document<'a>(
        &'a self,
        username: &'a str,
    ) -> BoxFuture<'a, Result<Option<Document>, StoreError>> {
        let name = username.to_owned();
        self.read(move |db| read_json(db, DOCS, &name)).boxed()
    }

    fn user<'a>(
        &'a self,
        username: &'a str,
    ) -> BoxFuture<'a, Result<Option<UserRecord>, StoreError>> {
        let name = username.to_owned();
        self.read(move |db| read_json(db, USERS, &name)).boxed()
    }

    fn write(&self, write: Write) -> BoxFuture<'_, Result<Option<Arc<Committed>>, StoreError>> {
        async move {
            let tx = self
                .tx
                .lock()
                .map_err(StoreError::unavailable)?
                .clone()
                .ok_or_else(|| StoreError::unavailable("store is closed"))?;
            let (reply, rx) = oneshot::channel();
            tx.send(Job { write, reply })
                .await
                .map_err(|_| StoreError::unavailable("writer stopped"))?;
            rx.await
                .map_err(|_| StoreError::unavailable("writer stopped"))?
        }
        .boxed()
    }

    fn revoked(&self) -> BoxFuture<'_, Result<Vec<(String, u64)>, StoreError>> {
        self.read(|db| {
            let now = unix_now();
            let txn = db.begin_read().map_err(StoreError::unavailable)?;
            let table = txn.open_table(REVOKED).map_err(StoreError::unavailable)?;
            let mut out = Vec::new();
            for row in table.iter().map_err(StoreError::unavailable)? {
                let (sid, exp) = row.map_err(StoreError::unavailable)?;
                if exp.value() > now {
                    out.push((sid.value().to_owned(), exp.value()));
                }
            }
            Ok(out)
        })
        .boxed()
    }

    fn close(&self) -> BoxFuture<'_, ()> {
        async move {
            // Dropping the sender lets the writer drain what is queued and then stop.
            if let Ok(mut tx) = self.tx.lock() {
                tx.take();
            }
            let handle = self.writer.lock().ok().and_then(|mut w| w.take());
            if let Some(handle) = handle {
                let joined = tokio::task::spawn_blocking(move || handle.join()).await;
                if !matches!(joined, Ok(Ok(()))) {
                    tracing::error!("writer thread ended abnormally");
                }
            }
        }
        .boxed()
    }
}

pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn writer_loop(db: &Database, mut rx: mpsc::Receiver<Job>, cfg: WriterConfig, hook: &CommitHook) {
    let mut jobs = Vec::with_capacity(cfg.max_batch);
    while let Some(first) = rx.blocking_recv() {
        jobs.push(first);
        while jobs.len() < cfg.max_batch {
            match rx.try_recv() {
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
        let outcomes = match commit_batch(db, &jobs, &cfg) {
            Ok(outcomes) => outcomes,
            Err(e) => {
                // Nothing in this batch is durable: say so to every caller, acknowledge none.
                tracing::error!(error = %e, batch = jobs.len(), "commit failed");
                jobs.iter().map(|_| Err(e.clone())).collect()
            }
        };
        for committed in outcomes.iter().flatten().flatten() {
            hook(committed);
        }
        for (job, outcome) in jobs.drain(..).zip(outcomes) {
            // The caller may have gone away (its socket closed); the write stands regardless.
            let _ = job.reply.send(outcome);
        }
    }
}

type Outcome = Result<Option<Arc<Committed>>, StoreError>;

/// One write transaction for the whole batch. `Err` only for storage failures, which abort
/// the transaction and so every write in it; a refused update is an `Ok` outcome's `Err`.
fn commit_batch(
    db: &Database,
    jobs: &[Job],
    cfg: &WriterConfig,
) -> Result<Vec<Outcome>, StoreError> {
    let mut txn = db.begin_write().map_err(StoreError::unavailable)?;
    txn.set_durability(Durability::Immediate)
        .map_err(StoreError::unavailable)?;
    let now = now_rfc3339();
    let mut outcomes = Vec::with_capacity(jobs.len());
    let mut wrote = false;
    {
        let mut users = txn.open_table(USERS).map_err(StoreError::unavailable)?;
        let mut docs = txn.open_table(DOCS).map_err(StoreError::unavailable)?;
        let mut log = txn.open_table(LOG).map_err(StoreError::unavailable)?;
        let mut revoked = txn.open_table(REVOKED).map_err(StoreError::unavailable)?;
        // Documents as left by earlier writes of this batch.
        let mut latest: HashMap<String, Arc<Document>> = HashMap::new();

        for job in jobs {
            let outcome = match &job.write {
                Write::Update(update) => {
                    let current = match latest.get(&update.target) {
                        Some(doc) => Some(doc.clone()),
                        None => match docs
                            .get(update.target.as_str())
                            .map_err(StoreError::unavailable)?
                        {
                            Some(bytes) => Some(Arc::new(
                                serde_json::from_slice::<Document>(bytes.value())
                                    .map_err(StoreError::unavailable)?,
                            )),
                            None => None,
                        },
                    };
                    match current {
                        None => Err(StoreError::Unauthorized),
                        Some(current) => match apply(&current, update, &cfg.limits, &now) {
                            Err(refused) => Err(refused),
                            Ok(applied) => {
                                let name = update.target.as_str();
                                docs.insert(name, applied.bytes.as_slice())
                                    .map_err(StoreError::unavailable)?;
                                let entry = serde_json::to_vec(&applied.entry)
                                    .map_err(StoreError::unavailable)?;
                                log.insert((name, applied.entry.version), entry.as_slice())
                                    .map_err(StoreError::unavailable)?;
                                wrote = true;
                                let doc = Arc::new(applied.doc);
                                latest.insert(update.target.clone(), doc.clone());
                                Ok(Some(Arc::new(Committed {
                                    doc,
                                    entry: Some(applied.entry),
                                })))
                            }
                        },
                    }
                }
                Write::CreateUser { user, doc } => {
                    let name = user.username.as_str();
                    let exists = latest.contains_key(name)
                        || users.get(name).map_err(StoreError::unavailable)?.is_some();
                    if exists {
                        Err(StoreError::UsernameTaken)
                    } else {
                        let record = serde_json::to_vec(user).map_err(StoreError::unavailable)?;
                        let bytes = serde_json::to_vec(doc).map_err(StoreError::unavailable)?;
                        users
                            .insert(name, record.as_slice())
                            .map_err(StoreError::unavailable)?;
                        docs.insert(name, bytes.as_slice())
                            .map_err(StoreError::unavailable)?;
                        wrote = true;
                        let doc = Arc::new(doc.clone());
                        latest.insert(user.username.clone(), doc.clone());
                        Ok(Some(Arc::new(Committed { doc, entry: None })))
                    }
                }
                Write::Revoke { sid, expires } => {
                    revoked
                        .insert(sid.as_str(), *expires)
                        .map_err(StoreError::unavailable)?;
                    wrote = true;
                    Ok(None)
                }
            };
            outcomes.push(outcome);
        }
    }
    if wrote {
        txn.commit().map_err(StoreError::unavailable)?;
    } else {
        // Every write was refused: skip the fsync.
        txn.abort().map_err(StoreError::unavailable)?;
    }
    Ok(outcomes)
}

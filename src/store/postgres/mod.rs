//! The cluster backend: every node keeps its documents, accounts, sessions, change log and
//! blob metadata in one PostgreSQL database (`STORE=postgres`, `DATABASE_URL`).
//!
//! Updates go through one committer per node (`committer.rs`), which folds whatever is
//! waiting into one transaction: lock the documents' rows (`SELECT … FOR UPDATE`, in name
//! order so batches of different nodes cannot deadlock), apply each update in Rust against
//! exactly what is stored (the same pure `apply` the redb writer uses, so the version
//! check, access rules and limits are the same), write documents and change-log entries
//! with one statement each, `pg_notify` the other nodes, `COMMIT`, and only then run the
//! cache and reply, then the hub (`commits.rs`). Because the notification is part of the transaction, a commit is
//! never announced unless it happened and never happens unannounced, even if the node dies
//! right after. Other writes (accounts, sessions, flags, blobs) are rare and short: one
//! transaction each on the pool (`writes.rs`). Reads are one short query each (`reads.rs`);
//! what remains here is connecting and wiring the `Backend` methods to both.

mod committer;
mod feed;
mod named;
mod reads;
mod schema;
mod sharing;
mod writes;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use deadpool_postgres::Pool;
use futures_util::FutureExt;
use futures_util::future::BoxFuture;

use super::apply::Limits;
use super::backend::{Backend, History, Listed, StoreStats, Write, Written};
use super::commits::Commits;
use super::error::StoreError;
use super::model::{BlobRecord, BlobRef, Document, Flag, SessionRecord, UserRecord, Version};
pub use schema::valid_schema;

/// How to reach the database.
#[derive(Clone, Debug)]
pub struct PgConfig {
    pub url: String,
    /// Tables live in this schema; it also names the notification channel.
    pub schema: String,
    pub pool_size: usize,
    pub limits: Limits,
    /// How much of each change log is kept (the age limit is not applied here).
    pub retention: crate::store::Retention,
}

pub struct PgBackend {
    pool: Pool,
    s: String,
    channel: String,
    commits: Commits,
    /// Updates go to this node's committer, which folds whatever is waiting into one
    /// transaction; `None` once closed.
    updates: std::sync::Mutex<Option<tokio::sync::mpsc::Sender<committer::Job>>>,
    committer: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
    healthy: Arc<AtomicBool>,
    /// Writes hold a read guard; `close` takes the write guard, so it waits for them.
    gate: tokio::sync::RwLock<bool>,
    metrics: Arc<crate::metrics::Metrics>,
}

/// The committer applies each update to rows it has locked, so there is no replaced version
/// it could hand back for recycling.
fn written(committed: Option<Arc<super::Committed>>) -> Written {
    Written {
        committed,
        replaced: None,
    }
}

pub(super) fn pg(e: impl std::fmt::Display) -> StoreError {
    StoreError::unavailable(e)
}

pub(super) fn decode<T: serde::de::DeserializeOwned>(
    text: &str,
    what: &str,
) -> Result<T, StoreError> {
    serde_json::from_str(text)
        .map_err(|e| StoreError::Unavailable(format!("corrupt record {what}: {e}")))
}

pub(super) fn encode(value: &impl serde::Serialize) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(pg)
}

#[allow(clippy::cast_possible_wrap)] // versions and sizes stay far below 2^63
pub(super) fn int(n: u64) -> i64 {
    n as i64
}

#[allow(clippy::cast_sign_loss)] // stored from u64
fn uint(n: i64) -> u64 {
    n.max(0) as u64
}

fn flag_name(flag: Flag) -> &'static str {
    match flag {
        Flag::Disabled => "disabled",
        Flag::Admin => "admin",
    }
}

/// The NOTIFY channel of a schema: nodes of one cluster share it, other clusters (and test
/// runs) in the same database do not hear each other.
pub fn channel(schema: &str) -> String {
    format!("hearth_{schema}")
}

impl PgBackend {
    /// Connects, migrates the schema and returns the backend.
    ///
    /// # Errors
    /// The database cannot be reached or migrated.
    pub async fn connect(
        cfg: PgConfig,
        commits: Commits,
        metrics: Arc<crate::metrics::Metrics>,
    ) -> Result<PgBackend, StoreError> {
        if !valid_schema(&cfg.schema) {
            return Err(StoreError::Unavailable(format!(
                "DATABASE_SCHEMA {:?} is not a plain lowercase identifier",
                cfg.schema
            )));
        }
        let pool = schema::pool(&cfg.url, cfg.pool_size)?;
        {
            let mut client = pool.get().await.map_err(pg)?;
            schema::migrate(&mut client, &cfg.schema)
                .await
                .map_err(StoreError::Unavailable)?;
        }
        let healthy = Arc::new(AtomicBool::new(true));
        let (tx, rx) = tokio::sync::mpsc::channel(committer::QUEUE);
        let task = tokio::spawn(
            committer::Committer {
                pool: pool.clone(),
                s: cfg.schema.clone(),
                channel: channel(&cfg.schema),
                limits: cfg.limits,
                retention: cfg.retention,
                commits: commits.clone(),
                healthy: healthy.clone(),
                metrics: metrics.clone(),
            }
            .run(rx),
        );
        Ok(PgBackend {
            pool,
            s: cfg.schema.clone(),
            channel: channel(&cfg.schema),
            commits,
            updates: std::sync::Mutex::new(Some(tx)),
            committer: std::sync::Mutex::new(Some(task)),
            healthy,
            gate: tokio::sync::RwLock::new(true),
            metrics,
        })
    }

    async fn query_text(&self, sql: &str, key: &str) -> Result<Option<String>, StoreError> {
        let client = self.pool.get().await.map_err(pg)?;
        let stmt = client.prepare_cached(sql).await.map_err(pg)?;
        Ok(client
            .query_opt(&stmt, &[&key])
            .await
            .map_err(pg)?
            .map(|r| r.get(0)))
    }
}

impl Backend for PgBackend {
    fn document<'a>(
        &'a self,
        username: &'a str,
    ) -> BoxFuture<'a, Result<Option<Document>, StoreError>> {
        async move {
            let sql = format!("SELECT body FROM {}.docs WHERE username = $1", self.s);
            match self.query_text(&sql, username).await? {
                Some(text) => decode(&text, username).map(Some),
                None => Ok(None),
            }
        }
        .boxed()
    }

    fn shared(&self) -> bool {
        true
    }

    fn version<'a>(
        &'a self,
        username: &'a str,
    ) -> BoxFuture<'a, Result<Option<Version>, StoreError>> {
        async move {
            let client = self.pool.get().await.map_err(pg)?;
            let stmt = client
                .prepare_cached(&format!(
                    "SELECT version FROM {}.docs WHERE username = $1",
                    self.s
                ))
                .await
                .map_err(pg)?;
            Ok(client
                .query_opt(&stmt, &[&username])
                .await
                .map_err(pg)?
                .map(|r| uint(r.get(0))))
        }
        .boxed()
    }

    fn user<'a>(
        &'a self,
        username: &'a str,
    ) -> BoxFuture<'a, Result<Option<UserRecord>, StoreError>> {
        async move {
            let sql = format!("SELECT record FROM {}.users WHERE username = $1", self.s);
            match self.query_text(&sql, username).await? {
                Some(text) => decode(&text, username).map(Some),
                None => Ok(None),
            }
        }
        .boxed()
    }

    fn history<'a>(
        &'a self,
        username: &'a str,
        from: Version,
        to: Version,
        limit: usize,
        with_base: bool,
    ) -> BoxFuture<'a, Result<History, StoreError>> {
        self.select_history(username, from, to, limit, with_base)
            .boxed()
    }

    fn write(&self, write: Write) -> BoxFuture<'_, Result<Written, StoreError>> {
        async move {
            let open = self.gate.read().await;
            if !*open {
                return Err(StoreError::unavailable("store is closed"));
            }
            let result = match write {
                Write::Update(update, _) => {
                    let sender = self
                        .updates
                        .lock()
                        .map_err(pg)?
                        .clone()
                        .ok_or_else(|| StoreError::unavailable("store is closed"))?;
                    let (reply, answer) = tokio::sync::oneshot::channel();
                    sender
                        .send(committer::Job { update, reply })
                        .await
                        .map_err(|_| StoreError::unavailable("committer stopped"))?;
                    answer
                        .await
                        .map_err(|_| StoreError::unavailable("committer stopped"))?
                }
                other => self.other(other).await,
            };
            if let Err(StoreError::Unavailable(cause)) = &result {
                tracing::error!(%cause, "postgres write failed");
            }
            result.map(written)
        }
        .boxed()
    }

    fn submit(
        &self,
        write: Write,
    ) -> Result<BoxFuture<'static, Result<Written, StoreError>>, Box<Write>> {
        let Write::Update(update, prepared) = write else {
            return Err(Box::new(write));
        };
        // Queued only while the store is open; `close` lets the committer finish the queue.
        let open = self.gate.try_read().is_ok_and(|open| *open);
        let sender = self.updates.lock().ok().and_then(|u| u.clone());
        let Some(sender) = sender.filter(|_| open) else {
            return Err(Box::new(Write::Update(update, prepared)));
        };
        let (reply, answer) = tokio::sync::oneshot::channel();
        if let Err(e) = sender.try_send(committer::Job { update, reply }) {
            return Err(Box::new(Write::Update(e.into_inner().update, prepared)));
        }
        Ok(async move {
            let result = answer
                .await
                .map_err(|_| StoreError::unavailable("committer stopped"))?;
            if let Err(StoreError::Unavailable(cause)) = &result {
                tracing::error!(%cause, "postgres write failed");
            }
            result.map(written)
        }
        .boxed())
    }

    fn flagged(&self, flag: Flag) -> BoxFuture<'_, Result<Vec<String>, StoreError>> {
        self.select_flagged(flag).boxed()
    }

    fn audit(
        &self,
        before: Option<u64>,
        limit: usize,
    ) -> BoxFuture<'_, Result<super::backend::AuditRows, StoreError>> {
        self.select_audit(before, limit).boxed()
    }

    fn webhooks(&self) -> BoxFuture<'_, Result<Vec<Vec<u8>>, StoreError>> {
        feed::webhooks(&self.pool, &self.s).boxed()
    }

    fn feed(
        &self,
        after: u64,
        limit: usize,
        owner: Option<String>,
    ) -> BoxFuture<'_, Result<super::backend::FeedPage, StoreError>> {
        async move { feed::read(&self.pool, &self.s, after, limit, owner.as_deref()).await }.boxed()
    }

    fn blob<'a>(
        &'a self,
        sha256: &'a str,
    ) -> BoxFuture<'a, Result<Option<BlobRecord>, StoreError>> {
        async move {
            let sql = format!("SELECT record FROM {}.blobs WHERE sha256 = $1", self.s);
            match self.query_text(&sql, sha256).await? {
                Some(text) => decode(&text, sha256).map(Some),
                None => Ok(None),
            }
        }
        .boxed()
    }

    fn holds_blob<'a>(
        &'a self,
        sha256: &'a str,
        users: Vec<String>,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        self.select_holds_blob(sha256, users).boxed()
    }

    fn mentioned_by<'a>(
        &'a self,
        doc: &'a str,
        sha256: &'a str,
    ) -> BoxFuture<'a, Result<Vec<String>, StoreError>> {
        self.select_mentioned_by(doc, sha256).boxed()
    }

    fn user_blobs<'a>(
        &'a self,
        username: &'a str,
        offset: usize,
        limit: usize,
    ) -> BoxFuture<'a, Result<(Vec<BlobRef>, u64), StoreError>> {
        self.select_user_blobs(username, offset, limit).boxed()
    }

    fn users<'a>(
        &'a self,
        offset: usize,
        limit: usize,
        search: &'a str,
    ) -> BoxFuture<'a, Result<(Vec<UserRecord>, u64), StoreError>> {
        self.select_users(offset, limit, search).boxed()
    }

    fn documents<'a>(
        &'a self,
        owner: &'a str,
        after: &'a str,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<Listed>, StoreError>> {
        self.select_documents(owner, after, limit).boxed()
    }

    fn shared_with<'a>(
        &'a self,
        user: &'a str,
        after: &'a str,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<(String, crate::store::Access)>, StoreError>> {
        self.select_shared_with(user, after, limit).boxed()
    }

    fn stats(&self) -> BoxFuture<'_, Result<StoreStats, StoreError>> {
        self.select_stats().boxed()
    }

    fn sessions<'a>(
        &'a self,
        username: &'a str,
    ) -> BoxFuture<'a, Result<Vec<SessionRecord>, StoreError>> {
        self.select_sessions(username).boxed()
    }

    fn revoked(&self) -> BoxFuture<'_, Result<Vec<(String, u64)>, StoreError>> {
        self.select_revoked().boxed()
    }

    fn backup(
        &self,
        _dest: std::path::PathBuf,
        _info: Vec<(String, String)>,
    ) -> BoxFuture<'_, Result<u64, StoreError>> {
        async {
            Err(StoreError::Unavailable(
                "STORE=postgres: back up the database with pg_dump".into(),
            ))
        }
        .boxed()
    }

    fn healthy(&self) -> bool {
        self.healthy.load(Ordering::SeqCst)
    }

    fn close(&self) -> BoxFuture<'_, ()> {
        async move {
            // Waits for writes in flight, then refuses new ones.
            *self.gate.write().await = false;
            let sender = self.updates.lock().ok().and_then(|mut u| u.take());
            drop(sender);
            let task = self.committer.lock().ok().and_then(|mut t| t.take());
            if let Some(task) = task {
                let _ = task.await;
            }
            self.pool.close();
        }
        .boxed()
    }
}

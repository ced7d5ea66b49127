//! The cluster backend: every node keeps its documents, accounts, sessions, change log and
//! blob metadata in one PostgreSQL database (`STORE=postgres`, `DATABASE_URL`).
//!
//! Updates go through one committer per node (`committer.rs`), which folds whatever is
//! waiting into one transaction: lock the documents' rows (`SELECT … FOR UPDATE`, in name
//! order so batches of different nodes cannot deadlock), apply each update in Rust against
//! exactly what is stored (the same pure `apply` the redb writer uses, so the version
//! check, access rules and limits are the same), write documents and change-log entries
//! with one statement each, `pg_notify` the other nodes, `COMMIT`, and only then run the
//! commit hook and reply. Because the notification is part of the transaction, a commit is
//! never announced unless it happened and never happens unannounced, even if the node dies
//! right after. Other writes (accounts, sessions, flags, blobs) are rare and short: one
//! transaction each on the pool (`writes.rs`). What remains here is connecting and the
//! reads: one short query each, one per `Backend` method.

mod committer;
mod schema;
mod writes;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use deadpool_postgres::{Pool, Transaction};
use futures_util::FutureExt;
use futures_util::future::BoxFuture;

use super::apply::Limits;
use super::backend::{Backend, CommitHook, Committed, History, StoreStats, Write};
use super::error::StoreError;
use super::model::{BlobRecord, BlobRef, Document, Flag, SessionRecord, UserRecord, Version};
pub use schema::valid_schema;

/// Longest wait for a pooled connection, or for a new one to connect.
const POOL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// How to reach the database.
#[derive(Clone, Debug)]
pub struct PgConfig {
    pub url: String,
    /// Tables live in this schema; it also names the notification channel.
    pub schema: String,
    pub pool_size: usize,
    pub limits: Limits,
    /// Change-log entries kept per document.
    pub retain: u64,
}

pub struct PgBackend {
    pool: Pool,
    s: String,
    channel: String,
    hook: CommitHook,
    /// Updates go to this node's committer, which folds whatever is waiting into one
    /// transaction; `None` once closed.
    updates: std::sync::Mutex<Option<tokio::sync::mpsc::Sender<committer::Job>>>,
    committer: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
    healthy: Arc<AtomicBool>,
    /// Writes hold a read guard; `close` takes the write guard, so it waits for them.
    gate: tokio::sync::RwLock<bool>,
    metrics: Arc<crate::metrics::Metrics>,
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
        hook: CommitHook,
        metrics: Arc<crate::metrics::Metrics>,
    ) -> Result<PgBackend, StoreError> {
        if !valid_schema(&cfg.schema) {
            return Err(StoreError::Unavailable(format!(
                "DATABASE_SCHEMA {:?} is not a plain lowercase identifier",
                cfg.schema
            )));
        }
        let mut pool_cfg = deadpool_postgres::Config::new();
        pool_cfg.url = Some(cfg.url.clone());
        pool_cfg.manager = Some(deadpool_postgres::ManagerConfig {
            recycling_method: deadpool_postgres::RecyclingMethod::Fast,
        });
        let mut pool = deadpool_postgres::PoolConfig::new(cfg.pool_size.max(1));
        // An unreachable database must fail requests (503), not hang them: connecting to a
        // black-holed address would otherwise wait for TCP's own minutes-long timeout.
        pool.timeouts = deadpool_postgres::Timeouts {
            wait: Some(POOL_TIMEOUT),
            create: Some(POOL_TIMEOUT),
            recycle: Some(POOL_TIMEOUT),
        };
        pool_cfg.pool = Some(pool);
        let pool = pool_cfg
            .create_pool(
                Some(deadpool_postgres::Runtime::Tokio1),
                tokio_postgres::NoTls,
            )
            .map_err(pg)?;
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
                retain: cfg.retain.max(1),
                hook: hook.clone(),
                healthy: healthy.clone(),
                metrics: metrics.clone(),
            }
            .run(rx),
        );
        Ok(PgBackend {
            pool,
            s: cfg.schema.clone(),
            channel: channel(&cfg.schema),
            hook,
            updates: std::sync::Mutex::new(Some(tx)),
            committer: std::sync::Mutex::new(Some(task)),
            healthy,
            gate: tokio::sync::RwLock::new(true),
            metrics,
        })
    }

    /// The JWT secret every node of the cluster shares: generated once, kept in the database.
    ///
    /// # Errors
    /// `Unavailable`.
    pub async fn shared_secret(&self) -> Result<String, StoreError> {
        let client = self.pool.get().await.map_err(pg)?;
        let s = &self.s;
        let fresh = crate::auth::random_secret();
        client
            .execute(
                &format!(
                    "INSERT INTO {s}.meta (key, value) VALUES ('jwt_secret', $1) ON CONFLICT (key) DO NOTHING"
                ),
                &[&fresh],
            )
            .await
            .map_err(pg)?;
        let row = client
            .query_one(
                &format!("SELECT value FROM {s}.meta WHERE key = 'jwt_secret'"),
                &[],
            )
            .await
            .map_err(pg)?;
        Ok(row.get(0))
    }

    async fn notify(
        &self,
        tx: &Transaction<'_>,
        payload: serde_json::Value,
    ) -> Result<(), StoreError> {
        let stmt = tx
            .prepare_cached("SELECT pg_notify($1, $2)")
            .await
            .map_err(pg)?;
        tx.execute(&stmt, &[&self.channel, &payload.to_string()])
            .await
            .map_err(pg)?;
        Ok(())
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
        async move {
            let s = &self.s;
            let mut client = self.pool.get().await.map_err(pg)?;
            // One snapshot: base and entries agree even while another node trims.
            let tx = client
                .build_transaction()
                .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()
                .await
                .map_err(pg)?;
            let (base, from) = if with_base {
                let base: Option<Document> = match tx
                    .query_opt(
                        &format!("SELECT body FROM {s}.changelog_base WHERE username = $1"),
                        &[&username],
                    )
                    .await
                    .map_err(pg)?
                {
                    Some(row) => Some(decode(&row.get::<_, String>(0), username)?),
                    None => None,
                };
                let start = base.as_ref().map_or(from, |b| b.version() + 1);
                (base, start)
            } else {
                (None, from)
            };
            let oldest: Option<i64> = tx
                .query_one(
                    &format!("SELECT min(version) FROM {s}.changelog WHERE username = $1"),
                    &[&username],
                )
                .await
                .map_err(pg)?
                .get(0);
            let mut entries = Vec::new();
            if from <= to {
                let stmt = tx
                    .prepare_cached(&format!(
                        "SELECT entry FROM {s}.changelog WHERE username = $1 AND version >= $2 AND version <= $3 ORDER BY version LIMIT $4"
                    ))
                    .await
                    .map_err(pg)?;
                let limit = i64::try_from(limit).unwrap_or(i64::MAX);
                for row in tx
                    .query(&stmt, &[&username, &int(from), &int(to.min(i64::MAX as u64)), &limit])
                    .await
                    .map_err(pg)?
                {
                    entries.push(decode(&row.get::<_, String>(0), username)?);
                }
            }
            tx.commit().await.map_err(pg)?;
            Ok(History {
                base,
                oldest: oldest.map(uint),
                entries,
            })
        }
        .boxed()
    }

    fn write(&self, write: Write) -> BoxFuture<'_, Result<Option<Arc<Committed>>, StoreError>> {
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
            result
        }
        .boxed()
    }

    fn submit(
        &self,
        write: Write,
    ) -> Result<BoxFuture<'static, Result<Option<Arc<Committed>>, StoreError>>, Box<Write>> {
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
            result
        }
        .boxed())
    }

    fn flagged(&self, flag: Flag) -> BoxFuture<'_, Result<Vec<String>, StoreError>> {
        async move {
            let client = self.pool.get().await.map_err(pg)?;
            let rows = client
                .query(
                    &format!("SELECT username FROM {}.flags WHERE flag = $1", self.s),
                    &[&flag_name(flag)],
                )
                .await
                .map_err(pg)?;
            Ok(rows.iter().map(|r| r.get(0)).collect())
        }
        .boxed()
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
        async move {
            let client = self.pool.get().await.map_err(pg)?;
            let row = client
                .query_opt(
                    &format!(
                        "SELECT 1 FROM {}.blob_refs WHERE sha256 = $1 AND username = ANY($2) LIMIT 1",
                        self.s
                    ),
                    &[&sha256, &users],
                )
                .await
                .map_err(pg)?;
            Ok(row.is_some())
        }
        .boxed()
    }

    fn user_blobs<'a>(
        &'a self,
        username: &'a str,
        offset: usize,
        limit: usize,
    ) -> BoxFuture<'a, Result<(Vec<BlobRef>, u64), StoreError>> {
        async move {
            let s = &self.s;
            let client = self.pool.get().await.map_err(pg)?;
            let rows = client
                .query(
                    &format!(
                        "SELECT sha256, size FROM {s}.blob_refs WHERE username = $1 ORDER BY sha256 OFFSET $2 LIMIT $3"
                    ),
                    &[
                        &username,
                        &i64::try_from(offset).unwrap_or(i64::MAX),
                        &i64::try_from(limit).unwrap_or(i64::MAX),
                    ],
                )
                .await
                .map_err(pg)?;
            let used = client
                .query_opt(
                    &format!("SELECT bytes FROM {s}.blob_usage WHERE username = $1"),
                    &[&username],
                )
                .await
                .map_err(pg)?
                .map_or(0, |r| uint(r.get(0)));
            let refs = rows
                .iter()
                .map(|r| BlobRef {
                    sha256: r.get(0),
                    size: uint(r.get(1)),
                })
                .collect();
            Ok((refs, used))
        }
        .boxed()
    }

    fn users(
        &self,
        offset: usize,
        limit: usize,
    ) -> BoxFuture<'_, Result<(Vec<UserRecord>, u64), StoreError>> {
        async move {
            let s = &self.s;
            let client = self.pool.get().await.map_err(pg)?;
            let rows = client
                .query(
                    &format!("SELECT username, record FROM {s}.users ORDER BY username OFFSET $1 LIMIT $2"),
                    &[
                        &i64::try_from(offset).unwrap_or(i64::MAX),
                        &i64::try_from(limit).unwrap_or(i64::MAX),
                    ],
                )
                .await
                .map_err(pg)?;
            let total: i64 = client
                .query_one(&format!("SELECT count(*) FROM {s}.users"), &[])
                .await
                .map_err(pg)?
                .get(0);
            let mut out = Vec::with_capacity(rows.len());
            for row in rows {
                let name: String = row.get(0);
                out.push(decode(&row.get::<_, String>(1), &name)?);
            }
            Ok((out, uint(total)))
        }
        .boxed()
    }

    fn stats(&self) -> BoxFuture<'_, Result<StoreStats, StoreError>> {
        async move {
            let s = &self.s;
            let client = self.pool.get().await.map_err(pg)?;
            let row = client
                .query_one(
                    &format!(
                        "SELECT (SELECT count(*) FROM {s}.users), (SELECT count(*) FROM {s}.docs),
                                (SELECT count(*) FROM {s}.changelog), (SELECT count(*) FROM {s}.blobs),
                                (SELECT coalesce(sum((record::json->>'size')::bigint), 0)::bigint FROM {s}.blobs),
                                (SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0)::bigint
                                   FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                                  WHERE n.nspname = '{s}' AND c.relkind = 'r')"
                    ),
                    &[],
                )
                .await
                .map_err(pg)?;
            Ok(StoreStats {
                users: uint(row.get(0)),
                documents: uint(row.get(1)),
                log_entries: uint(row.get(2)),
                blobs: uint(row.get(3)),
                blob_bytes: uint(row.get(4)),
                data_bytes: uint(row.get(5)),
            })
        }
        .boxed()
    }

    fn sessions<'a>(
        &'a self,
        username: &'a str,
    ) -> BoxFuture<'a, Result<Vec<SessionRecord>, StoreError>> {
        async move {
            let client = self.pool.get().await.map_err(pg)?;
            let rows = client
                .query(
                    &format!(
                        "SELECT record FROM {}.sessions WHERE username = $1 AND expires > $2 ORDER BY id",
                        self.s
                    ),
                    &[&username, &int(crate::auth::unix_now())],
                )
                .await
                .map_err(pg)?;
            rows.iter()
                .map(|r| decode(&r.get::<_, String>(0), username))
                .collect()
        }
        .boxed()
    }

    fn revoked(&self) -> BoxFuture<'_, Result<Vec<(String, u64)>, StoreError>> {
        async move {
            let client = self.pool.get().await.map_err(pg)?;
            let rows = client
                .query(
                    &format!(
                        "SELECT sid, expires FROM {}.revoked WHERE expires > $1",
                        self.s
                    ),
                    &[&int(crate::auth::unix_now())],
                )
                .await
                .map_err(pg)?;
            Ok(rows.iter().map(|r| (r.get(0), uint(r.get(1)))).collect())
        }
        .boxed()
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

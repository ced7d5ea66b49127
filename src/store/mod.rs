//! The store: committed documents, accounts and revocations, with a cache in front.
//!
//! `Store` is what commands and HTTP handlers call. It owns the cache (`cache.rs`) and gives
//! the backend [`Commits`], where each committed version goes (`commits.rs`); where bytes
//! live is the [`Backend`]'s business.

pub mod apply;
pub mod audit;
pub mod backend;
mod bounds;
mod cache;
mod collections;
mod commits;
pub mod error;
pub mod faults;
mod history;
mod hooks;
mod listed;
pub mod mentions;
pub mod model;
pub mod ops;
pub mod paths;
pub mod postgres;
mod records;
mod recycle;
pub mod redb;
pub mod streams;
#[cfg(test)]
mod testing;
mod usage;

use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use futures_util::future::BoxFuture;

pub use self::apply::{Fields, Limits};
pub use self::backend::{
    Backend, BlobAdd, Committed, History, Listed, Prepared, StoreStats, Write, Written,
};
use self::cache::DocCache;
pub use self::collections::{NewDoc, SharedDoc};
pub use self::commits::{Commits, Publish};
pub use self::error::StoreError;
pub use self::history::{Replay, Retention};
pub use self::model::{
    Access, BlobRecord, BlobRef, Document, Edit, Flag, LastUpdate, LogEntry, Metadata, Op, Scope,
    SessionRecord, ShareChange, Update, UserRecord, Version,
};
use self::redb::{RedbBackend, WriterConfig};

/// Where documents are cached and how commits are announced.
pub struct StoreConfig {
    pub path: std::path::PathBuf,
    pub limits: Limits,
    /// Named documents an account may own (`MAX_DOCUMENTS_PER_ACCOUNT`).
    pub max_documents: usize,
    /// Bytes an account's documents may hold together (`MAX_ACCOUNT_BYTES`).
    pub max_account_bytes: u64,
    pub max_batch: usize,
    pub cache_size: u64,
    pub cache_max_age: Duration,
    /// The data file's page cache (redb), bytes.
    pub page_cache_bytes: usize,
    /// How much of each change log is kept.
    pub retention: history::Retention,
    /// Simulated storage faults (tests and drills); `None` in normal operation.
    pub faults: Option<Arc<faults::Faults>>,
    pub metrics: Arc<crate::metrics::Metrics>,
    /// `Some`: cluster mode, everything in PostgreSQL (`STORE=postgres`); `path` unused.
    pub postgres: Option<PgSettings>,
    /// Start even if the write-ahead log is damaged, dropping what cannot be read
    /// (`hearth recover --accept-loss`).
    pub accept_wal_loss: bool,
}

/// Where the cluster's database is.
#[derive(Clone, Debug)]
pub struct PgSettings {
    pub url: String,
    pub schema: String,
    pub pool_size: usize,
}

#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    backend: Box<dyn Backend>,
    limits: Limits,
    max_documents: usize,
    /// Where deletions of named documents are announced (commits go there from the backend).
    commits: Commits,
    /// Bytes per account across its documents (`usage.rs`); `commits` keeps it current.
    usage: Arc<usage::AccountUsage>,
    cache: DocCache,
    /// Versions replaced by updates, parked for the document's next update to edit in place.
    recycler: recycle::Recycler,
    metrics: Arc<crate::metrics::Metrics>,
    /// Accounts being deleted: updates to them are refused from the moment the deletion
    /// starts, so none can reach the writer after it (`delete_user`).
    deleting: dashmap::DashSet<String>,
    /// How many are being deleted: updates check the set only when this is not zero.
    deletions: std::sync::atomic::AtomicUsize,
}

impl Store {
    /// Opens the redb backend. `hub` hears of every committed version in commit order, after
    /// the cache holds it and its writer was answered; `None` where nobody watches.
    ///
    /// # Errors
    /// The data file cannot be opened; see [`RedbBackend::open`].
    pub fn open(cfg: &StoreConfig, hub: Option<Arc<dyn Publish>>) -> Result<Store, StoreError> {
        let (cache, commits) = Store::parts(cfg, hub);
        let backend = RedbBackend::open(
            redb::DataFile {
                path: cfg.path.clone(),
                faults: cfg.faults.clone(),
                page_cache: cfg.page_cache_bytes,
            },
            WriterConfig {
                limits: cfg.limits,
                max_batch: cfg.max_batch,
                retention: cfg.retention,
            },
            commits.clone(),
            cfg.metrics.clone(),
            cfg.accept_wal_loss,
        )?;
        Ok(Store::assemble(cfg, cache, commits, Box::new(backend)))
    }

    /// Connects to PostgreSQL (cluster mode) and migrates its schema. Also returns the JWT
    /// secret the cluster shares, kept in the database.
    ///
    /// # Errors
    /// The database cannot be reached or migrated.
    pub async fn open_postgres(
        cfg: &StoreConfig,
        pg: &PgSettings,
        hub: Option<Arc<dyn Publish>>,
    ) -> Result<(Store, String), StoreError> {
        let (cache, commits) = Store::parts(cfg, hub);
        let backend = postgres::PgBackend::connect(
            postgres::PgConfig {
                url: pg.url.clone(),
                schema: pg.schema.clone(),
                pool_size: pg.pool_size,
                limits: cfg.limits,
                retention: cfg.retention,
            },
            commits.clone(),
            cfg.metrics.clone(),
        )
        .await?;
        let secret = backend.shared_secret().await?;
        Ok((
            Store::assemble(cfg, cache, commits, Box::new(backend)),
            secret,
        ))
    }

    /// The cache and where commits go, which the backend is opened with.
    fn parts(cfg: &StoreConfig, hub: Option<Arc<dyn Publish>>) -> (DocCache, Commits) {
        let cache = DocCache::new(cfg.cache_size, cfg.cache_max_age);
        let usage = Arc::new(usage::AccountUsage::new(
            cfg.max_account_bytes,
            cfg.limits.max_doc_bytes,
        ));
        (cache.clone(), Commits::new(cache, hub, usage))
    }

    fn assemble(
        cfg: &StoreConfig,
        cache: DocCache,
        commits: Commits,
        backend: Box<dyn Backend>,
    ) -> Store {
        Store {
            inner: Arc::new(Inner {
                backend,
                limits: cfg.limits,
                max_documents: cfg.max_documents,
                usage: commits.usage(),
                commits,
                cache,
                recycler: recycle::Recycler::default(),
                metrics: cfg.metrics.clone(),
                deleting: dashmap::DashSet::new(),
                deletions: std::sync::atomic::AtomicUsize::new(0),
            }),
        }
    }

    /// Another node committed `version` of `username`: forget any older cached copy, and make
    /// sure a read that started before now cannot put one back (the epoch rule).
    pub fn invalidate_older(&self, username: &str, version: Version) {
        self.inner.cache.invalidate_older(username, version);
    }

    /// Forgets every cached document (after missing notifications for a while).
    pub fn invalidate_all(&self) {
        self.inner.cache.invalidate_all();
    }

    /// The latest committed document of `username`, from the cache when it can be.
    ///
    /// # Errors
    /// `Unavailable` when storage fails.
    pub async fn document(&self, username: &str) -> Result<Option<Arc<Document>>, StoreError> {
        if let Some(doc) = self.inner.cache.get(username) {
            if !self.inner.backend.shared() {
                self.inner.metrics.cache_hits.inc();
                return Ok(Some(doc));
            }
            // In cluster mode another node may have committed since: one indexed lookup of
            // the version keeps reads current (a fetch after an ack on any node sees it)
            // without moving the document itself.
            match self.inner.backend.version(username).await? {
                // Deleted on another node.
                None => self.inner.cache.forget(username),
                Some(v) if v == doc.version() => {
                    self.inner.metrics.cache_hits.inc();
                    return Ok(Some(doc));
                }
                Some(v) => self.invalidate_older(username, v),
            }
        }
        self.inner.metrics.cache_misses.inc();
        let backend = &self.inner.backend;
        self.inner
            .cache
            .load(username, || backend.document(username))
            .await
    }

    /// # Errors
    /// `Unavailable` when storage fails.
    pub async fn user(&self, username: &str) -> Result<Option<UserRecord>, StoreError> {
        self.inner.backend.user(username).await
    }

    /// Applies `update` to the cached latest version, if there is one and the update applies,
    /// so the writer need not (see [`Prepared`]). A refusal here is left for the writer to
    /// give against the true latest version.
    fn prepare(&self, update: &Update) -> Option<Box<Prepared>> {
        // PostgreSQL's committer applies against rows it has locked; it has no use for this.
        if self.inner.backend.shared() {
            return None;
        }
        let base = self.inner.cache.get(&update.target)?;
        let working = self
            .inner
            .recycler
            .take(&update.target, &base, &self.inner.cache);
        let now = crate::sys::now_rfc3339();
        // A panic in `apply` (or a patch library) must not take the session down; the writer
        // then applies the update itself, under its own guard.
        let applied = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            apply::apply_to(&base, working, update, &self.inner.limits, &now)
        }))
        .ok()?
        .ok()?;
        Some(Box::new(Prepared { base, applied }))
    }

    /// Commits `update` if it is still based on the current version; returns the new document.
    ///
    /// # Errors
    /// `Unauthorized`, `VersionMismatch`, `TooLarge`, `Invalid`, or `Unavailable`.
    pub async fn commit(&self, update: Update) -> Result<Arc<Committed>, StoreError> {
        let (_, outcome) = self.submit(update);
        outcome.await
    }

    /// Queues `update` behind every update queued before it and returns whether it was
    /// queued, with the wait for its outcome. Updates queued this way are applied in call
    /// order, exactly as if each caller had waited for the previous one, but a burst from one
    /// socket can share one fsync. When the backend cannot queue it at once (a full queue, or
    /// a backend without one), the update is queued only when the future is first polled:
    /// the caller must then await it before submitting anything else.
    pub fn submit(
        &self,
        update: Update,
    ) -> (bool, BoxFuture<'static, Result<Arc<Committed>, StoreError>>) {
        if self
            .inner
            .deletions
            .load(std::sync::atomic::Ordering::SeqCst)
            > 0
            && self
                .inner
                .deleting
                .contains(crate::names::owner_of(&update.target))
        {
            return (true, async { Err(StoreError::Unauthorized) }.boxed());
        }
        let hashes = update
            .edit
            .as_ref()
            .map(mentions::blob_hashes)
            .unwrap_or_default();
        let update = match self.check_named(update) {
            Ok(update) => update,
            Err(refused) => return refused,
        };
        if !hashes.is_empty() {
            // A writer sharing a blob it holds: recorded before the update commits, so that
            // a reader never sees the hash without the right to fetch it. Rare (attaching a
            // file), so such an update is not queued.
            let store = self.clone();
            let outcome = async move {
                store.record_mentions(&update, hashes).await?;
                store.submit_plain(update).1.await
            };
            return (false, outcome.boxed());
        }
        self.submit_plain(update)
    }

    /// Records, for each of `hashes` that `update.by` holds, that they wrote it into the
    /// document. Reads first and writes only what is new: a hash the writer does not hold,
    /// or one already recorded (a document re-saved whole), costs a read, never a durable
    /// commit, so hex strings in updates cannot be used to make the writer fsync.
    async fn record_mentions(
        &self,
        update: &Update,
        hashes: Vec<String>,
    ) -> Result<(), StoreError> {
        let by = vec![update.by.clone()];
        for sha256 in hashes {
            let known = self
                .inner
                .backend
                .mentioned_by(&update.target, &sha256)
                .await?;
            if known.contains(&update.by)
                || !self.inner.backend.holds_blob(&sha256, by.clone()).await?
            {
                continue;
            }
            let mention = Write::BlobMention {
                doc: update.target.clone(),
                sha256,
                by: update.by.clone(),
            };
            match self.inner.backend.write(mention).await {
                // Not the writer's blob: a mention by anyone else shares nothing.
                Ok(_) | Err(StoreError::NotFound) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// [`Store::submit`] once mentions are recorded.
    fn submit_plain(
        &self,
        update: Update,
    ) -> (bool, BoxFuture<'static, Result<Arc<Committed>, StoreError>>) {
        let prepared = self.prepare(&update);
        let (queued, outcome) = match self.inner.backend.submit(Write::Update(update, prepared)) {
            Ok(outcome) => (true, outcome),
            Err(write) => {
                let store = self.clone();
                (
                    false,
                    async move { store.inner.backend.write(*write).await }.boxed(),
                )
            }
        };
        let store = self.clone();
        let outcome = async move {
            let written = outcome.await?;
            let committed = written
                .committed
                .ok_or_else(|| StoreError::unavailable("update returned no document"))?;
            if let Some(replaced) = written.replaced {
                store.inner.recycler.park(replaced, &committed);
            }
            // On the caller's task, not the writer's: the account's bytes (`usage.rs`).
            if committed.doc.metadata.name.is_some() {
                store.inner.usage.committed(&committed.doc);
            }
            Ok(committed)
        };
        (queued, outcome.boxed())
    }

    /// Deletes an account and everything it owns ([`Write::DeleteUser`]). Updates to it are
    /// refused from now on, before the deletion is queued: the writer applies writes in the
    /// order they were queued, so none can land after it, and the cache forgets the document
    /// before the refusal lifts.
    ///
    /// # Errors
    /// `NotFound`, `Unavailable`.
    pub async fn delete_user(&self, username: &str) -> Result<(), StoreError> {
        use std::sync::atomic::Ordering::SeqCst;
        // Counted before the name is added, and uncounted after it is removed, so a reader
        // of a zero count never misses a name in the set.
        self.inner.deletions.fetch_add(1, SeqCst);
        self.inner.deleting.insert(username.to_owned());
        // Its named documents go with it: their watchers and sharees are told after.
        let named = self.named_documents(username).await;
        let result = self
            .inner
            .backend
            .write(Write::DeleteUser {
                username: username.to_owned(),
            })
            .await;
        if result.is_ok() {
            self.inner.cache.forget(username);
            self.inner.usage.forget(username);
            self.named_gone(named.unwrap_or_default());
        }
        self.inner.deleting.remove(username);
        self.inner.deletions.fetch_sub(1, SeqCst);
        result.map(|_| ())
    }

    /// A consistent snapshot into the new file `dest`, taken while writes go on.
    ///
    /// # Errors
    /// `Unavailable`.
    pub async fn backup(
        &self,
        dest: std::path::PathBuf,
        info: Vec<(String, String)>,
    ) -> Result<u64, StoreError> {
        self.inner.backend.backup(dest, info).await
    }

    /// False after a commit failed, until one succeeds again: readiness reports it.
    pub fn healthy(&self) -> bool {
        self.inner.backend.healthy()
    }

    /// Finishes queued writes; later writes fail with `Unavailable`.
    pub async fn close(&self) {
        self.inner.backend.close().await;
    }
}

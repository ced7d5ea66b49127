//! The embedded default backend: one redb file, one writer thread, group commit.
//!
//! redb allows one write transaction at a time and each durable commit costs an fsync, so
//! every pending write is drained into a single transaction: N updates, one fsync (see
//! `writer.rs`). The writer is a plain OS thread because redb's API blocks; reads run on
//! tokio's blocking pool. An update arriving while the writer is idle is committed by its
//! caller instead, with the writer's own state, so that a lone update is not handed from
//! thread to thread (`queue.rs`).

mod audit;
pub mod backup;
mod blobs;
mod direct;
mod durable;
mod healing;
pub use self::healing::DataFile;
mod feed;
mod hooks;
mod housekeeping;
mod jobs;
mod journal;
mod publish;
mod queue;
mod reads;
mod recovery;
mod retries;
mod schema;
mod sharing;
mod tables;
pub mod wal;
mod writer;

use std::sync::{Arc, Mutex};

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use redb::{Database, ReadableDatabase};

use super::backend::{Backend, History, Listed, StoreStats, Write, Written};
use super::commits::Commits;
use super::error::StoreError;
use super::model::{BlobRecord, BlobRef, Document, Flag, SessionRecord, UserRecord, Version};
use schema::{
    ADMINS, BLOB_MENTIONS, BLOB_REFS, BLOB_USAGE, BLOBS, DISABLED, DOCS, LOG, LOG_BASE, META,
    REVOKED, SCHEMA_VERSION, SESSIONS, USERS, decode, flag_table, init_schema, read_json, read_log,
};

/// Tunables for the writer.
#[derive(Clone, Copy, Debug)]
pub struct WriterConfig {
    pub limits: super::apply::Limits,
    /// Most writes folded into one transaction.
    pub max_batch: usize,
    /// How much of each log is kept.
    pub retention: crate::store::Retention,
}

pub struct RedbBackend {
    path: std::path::PathBuf,
    /// Set by the writer after each commit attempt.
    healthy: Arc<std::sync::atomic::AtomicBool>,
    /// Taken out by `close`, so the file is released when shutdown returns even if some task
    /// still holds a `Store` clone; reads after that fail with `Unavailable`.
    db: healing::FileSlot,
    journal: Arc<journal::Journal>,
    writer: queue::Writer,
}

impl RedbBackend {
    /// Opens (or creates) the database file, checks and replays its write-ahead log
    /// (`recovery.rs`; with `accept_loss`, damage is dropped rather than refused) and starts
    /// the writer thread.
    ///
    /// # Errors
    /// The file is locked by another process, unreadable, or from a newer Hearth; its log is
    /// damaged.
    #[allow(clippy::too_many_arguments)] // the parts a backend is made of, each once
    pub fn open(
        file: DataFile,
        cfg: WriterConfig,
        commits: Commits,
        metrics: Arc<crate::metrics::Metrics>,
        accept_loss: bool,
    ) -> Result<Self, StoreError> {
        let path = file.path.clone();
        let db = file.open()?;
        init_schema(&db)?;
        let log = durable::DurableLog::open(&db, &file.path, file.faults.clone(), accept_loss)?;
        let journal = log.unfolded();
        let slot: healing::FileSlot = Arc::new(Mutex::new(Some(Arc::new(db))));
        let healthy = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let max_batch = cfg.max_batch;
        let committer = writer::Committer {
            healing: healing::Healing::new(file, slot.clone()),
            cfg,
            commits,
            log,
            healthy: healthy.clone(),
            metrics,
            state: writer::WriterState::default(),
        };
        let writer = queue::Writer::start(committer, max_batch)?;
        Ok(RedbBackend {
            path,
            healthy,
            db: slot,
            journal,
            writer,
        })
    }

    async fn read<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Database) -> Result<T, StoreError> + Send + 'static,
    {
        let db = self
            .db
            .lock()
            .map_err(StoreError::unavailable)?
            .clone()
            .ok_or_else(|| {
                StoreError::unavailable("the data file is closed (or being reopened)")
            })?;
        tokio::task::spawn_blocking(move || f(&db))
            .await
            .map_err(StoreError::unavailable)?
    }
}

impl Backend for RedbBackend {
    fn document<'a>(
        &'a self,
        username: &'a str,
    ) -> BoxFuture<'a, Result<Option<Document>, StoreError>> {
        let name = username.to_owned();
        let journal = self.journal.clone();
        self.read(move |db| {
            let (txn, unfolded) = journal.snapshot(db, &name)?;
            let open = |e: redb::TableError| StoreError::unavailable(e);
            journal::document(
                &txn.open_table(DOCS).map_err(open)?,
                &txn.open_table(LOG).map_err(open)?,
                &name,
                &unfolded,
            )
        })
        .boxed()
    }

    fn user<'a>(
        &'a self,
        username: &'a str,
    ) -> BoxFuture<'a, Result<Option<UserRecord>, StoreError>> {
        let name = username.to_owned();
        self.read(move |db| read_json(db, USERS, &name)).boxed()
    }

    fn history<'a>(
        &'a self,
        username: &'a str,
        from: Version,
        to: Version,
        limit: usize,
        with_base: bool,
    ) -> BoxFuture<'a, Result<History, StoreError>> {
        let name = username.to_owned();
        let journal = self.journal.clone();
        self.read(move |db| reads::history(db, &journal, &name, from, to, limit, with_base))
            .boxed()
    }

    fn write(&self, write: Write) -> BoxFuture<'_, Result<Written, StoreError>> {
        self.writer.write(write).boxed()
    }

    fn submit(
        &self,
        write: Write,
    ) -> Result<BoxFuture<'static, Result<Written, StoreError>>, Box<Write>> {
        self.writer.submit(write)
    }

    fn flagged(&self, flag: Flag) -> BoxFuture<'_, Result<Vec<String>, StoreError>> {
        self.read(move |db| reads::flagged(db, flag)).boxed()
    }

    fn audit(
        &self,
        before: Option<u64>,
        limit: usize,
    ) -> BoxFuture<'_, Result<super::backend::AuditRows, StoreError>> {
        self.read(move |db| audit::page(db, before, limit)).boxed()
    }

    fn webhooks(&self) -> BoxFuture<'_, Result<Vec<Vec<u8>>, StoreError>> {
        self.read(hooks::all).boxed()
    }

    fn feed(
        &self,
        after: u64,
        limit: usize,
        owner: Option<String>,
    ) -> BoxFuture<'_, Result<super::backend::FeedPage, StoreError>> {
        let journal = self.journal.clone();
        self.read(move |db| {
            let (txn, unfolded) = journal.snapshot_after(db, after, limit)?;
            let pending = journal::feed_items(&unfolded, owner.as_deref())?;
            let mut page = feed::read(&txn, after, limit, owner.as_deref(), pending)?;
            page.newest = page.newest.max(journal.newest());
            Ok(page)
        })
        .boxed()
    }

    fn blob<'a>(
        &'a self,
        sha256: &'a str,
    ) -> BoxFuture<'a, Result<Option<BlobRecord>, StoreError>> {
        let sha = sha256.to_owned();
        self.read(move |db| read_json(db, BLOBS, &sha)).boxed()
    }

    fn holds_blob<'a>(
        &'a self,
        sha256: &'a str,
        users: Vec<String>,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        let sha = sha256.to_owned();
        self.read(move |db| {
            let txn = db.begin_read().map_err(StoreError::unavailable)?;
            blobs::holds(&txn, &sha, &users)
        })
        .boxed()
    }

    fn mentioned_by<'a>(
        &'a self,
        doc: &'a str,
        sha256: &'a str,
    ) -> BoxFuture<'a, Result<Vec<String>, StoreError>> {
        let (doc, sha) = (doc.to_owned(), sha256.to_owned());
        self.read(move |db| {
            let txn = db.begin_read().map_err(StoreError::unavailable)?;
            blobs::mentioned_by(&txn, &doc, &sha)
        })
        .boxed()
    }

    fn user_blobs<'a>(
        &'a self,
        username: &'a str,
        offset: usize,
        limit: usize,
    ) -> BoxFuture<'a, Result<(Vec<BlobRef>, u64), StoreError>> {
        let name = username.to_owned();
        self.read(move |db| {
            let txn = db.begin_read().map_err(StoreError::unavailable)?;
            blobs::of_user(&txn, &name, offset, limit)
        })
        .boxed()
    }

    fn users<'a>(
        &'a self,
        offset: usize,
        limit: usize,
        search: &'a str,
    ) -> BoxFuture<'a, Result<(Vec<UserRecord>, u64), StoreError>> {
        let search = search.to_owned();
        self.read(move |db| reads::users(db, offset, limit, &search))
            .boxed()
    }

    fn documents<'a>(
        &'a self,
        owner: &'a str,
        after: &'a str,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<Listed>, StoreError>> {
        let (owner, after) = (owner.to_owned(), after.to_owned());
        let journal = self.journal.clone();
        self.read(move |db| reads::documents(db, &journal, &owner, &after, limit))
            .boxed()
    }

    fn shared_with<'a>(
        &'a self,
        user: &'a str,
        after: &'a str,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<(String, crate::store::Access)>, StoreError>> {
        let (user, after) = (user.to_owned(), after.to_owned());
        self.read(move |db| {
            let txn = db.begin_read().map_err(StoreError::unavailable)?;
            sharing::shared_with(&txn, &user, &after, limit)
        })
        .boxed()
    }

    fn stats(&self) -> BoxFuture<'_, Result<StoreStats, StoreError>> {
        let path = self.path.clone();
        let journal = self.journal.clone();
        self.read(move |db| reads::stats(db, &journal, &path))
            .boxed()
    }

    fn sessions<'a>(
        &'a self,
        username: &'a str,
    ) -> BoxFuture<'a, Result<Vec<SessionRecord>, StoreError>> {
        let name = username.to_owned();
        self.read(move |db| reads::sessions(db, &name)).boxed()
    }

    fn revoked(&self) -> BoxFuture<'_, Result<Vec<(String, u64)>, StoreError>> {
        self.read(reads::revoked).boxed()
    }

    fn backup(
        &self,
        dest: std::path::PathBuf,
        info: Vec<(String, String)>,
    ) -> BoxFuture<'_, Result<u64, StoreError>> {
        let journal = self.journal.clone();
        self.read(move |db| {
            let info: Vec<(&str, &str)> =
                info.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            backup::snapshot(db, &dest, &info, Some(&journal))
        })
        .boxed()
    }

    fn healthy(&self) -> bool {
        self.healthy.load(std::sync::atomic::Ordering::SeqCst)
    }

    fn close(&self) -> BoxFuture<'_, ()> {
        async move {
            self.writer.close().await;
            // Wait for reads in flight (each holds a clone for a few microseconds), then
            // drop the last handle: that closes the file and releases its lock.
            let db = self.db.lock().ok().and_then(|mut db| db.take());
            if let Some(db) = db {
                let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
                while Arc::strong_count(&db) > 1 && std::time::Instant::now() < deadline {
                    tokio::time::sleep(std::time::Duration::from_millis(1)).await;
                }
                drop(db);
            }
        }
        .boxed()
    }
}

//! The seam between the store's logic (cache, ordering, fanout hook) and where bytes live.
//!
//! Small and object-safe on purpose: a PostgreSQL backend for cluster mode implements these
//! same methods, and nothing above this trait changes. Each method states its guarantee.

use std::sync::Arc;

use futures_util::future::BoxFuture;

use super::error::StoreError;
use super::model::{
    BlobRecord, BlobRef, Document, Flag, LogEntry, SessionRecord, Update, UserRecord, Version,
};

/// An update applied ahead of the writer, on the caller's thread, to `base`: the cached
/// latest version when the update arrived. The writer commits `applied` as it is when `base`
/// is still the latest version, and applies the update afresh otherwise. Why: on a 4 KB
/// document, cloning the tree, patching, measuring depth and size and freeing the old tree
/// were most of the single writer thread's time (REST PUT, BENCHMARKS.md), work that any
/// core can do.
pub struct Prepared {
    pub base: Arc<Document>,
    pub applied: super::apply::Applied,
}

impl std::fmt::Debug for Prepared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prepared")
            .field("base", &self.base.version())
            .field("version", &self.applied.entry.version)
            .finish()
    }
}

/// That `username` holds a reference to blob `sha256` (whose bytes are already durable in
/// the blob directory). Recording it is a no-op if the account already does; it is refused
/// with `QuotaExceeded` if the account's references would then add up to more than `quota`
/// bytes.
#[derive(Debug)]
pub struct BlobAdd {
    pub username: String,
    pub sha256: String,
    pub size: u64,
    pub content_type: String,
    pub quota: u64,
}

/// A write for the backend's single writer.
#[derive(Debug)]
pub enum Write {
    /// Create an account, its document (version 0 at a signup; as it was, with its version
    /// and access lists, for an import) and (optionally) its first session; `UsernameTaken`
    /// if the name exists. The document's history starts at its version.
    CreateUser {
        user: UserRecord,
        doc: Document,
        session: Option<SessionRecord>,
    },
    /// Record a newly issued session.
    Session(SessionRecord),
    /// Check and apply an update (access, version, limits) against the latest state. The
    /// caller may have applied it already to the cached document ([`Prepared`]).
    Update(Update, Option<Box<Prepared>>),
    /// Set or clear an account flag; `Unauthorized` if there is no such user.
    SetFlag {
        username: String,
        flag: Flag,
        on: bool,
    },
    /// Replace an account's password hash; `Unauthorized` if there is no such user.
    SetPassword { username: String, hash: String },
    /// Record a blob reference ([`BlobAdd`]).
    BlobAdd(BlobAdd),
    /// Record that `by` wrote the hash `sha256` into `doc`: what lets readers of `doc` read
    /// the blob (PROTOCOL.md "Blobs"). `NotFound` unless `by` holds a reference to it.
    BlobMention {
        doc: String,
        sha256: String,
        by: String,
    },
    /// Drop `username`'s reference to `sha256`; the blob's row goes with its last reference.
    /// `NotFound` if the account holds none.
    BlobRemove { username: String, sha256: String },
    /// Remove an account and everything it owns: its record, document, change log,
    /// sessions, flags and blob references (a blob's row goes with its last reference).
    /// `NotFound` if there is no such user. The caller revokes its sessions first and stops
    /// updates to it (`Store::delete_user`); the backend makes sure no update committed
    /// before it survives it.
    DeleteUser { username: String },
    /// Create a named document (`doc`, version 0, its key `owner/name`): `Unauthorized` if
    /// its owner does not exist, `AlreadyExists` if the key does, `TooManyDocuments` if the
    /// owner holds `max_docs` named documents already.
    CreateDoc { doc: Document, max_docs: usize },
    /// Remove a named document, its change log and its blob mentions; `NotFound` if there
    /// is none. The store tells its watchers ([`super::Publish::deleted`]).
    DeleteDoc { key: String },
    /// Append a line to the audit log (`store/audit.rs`): its JSON.
    Audit(Vec<u8>),
    /// Store webhook `id`'s record (its JSON), or remove it (`None`) (`webhooks/`). With
    /// `expect`, only over that very record: `VersionMismatch` if it changed or is gone
    /// (a deliverer's progress must never bring back a webhook removed meanwhile).
    Webhook {
        id: String,
        record: Option<Vec<u8>>,
        expect: Option<Vec<u8>>,
    },
    /// Forget a session and remember its id as revoked until its token would have expired.
    Revoke {
        username: String,
        sid: String,
        expires: u64,
    },
}

/// One committed version in the change feed: where it is and, while the change log still
/// holds it, what it did.
#[derive(Debug, Clone)]
pub struct FeedItem {
    pub cursor: u64,
    pub key: String,
    pub version: Version,
    /// `None`: no longer in the log (trimmed, or its document deleted since).
    pub entry: Option<LogEntry>,
}

/// A page of the change feed.
#[derive(Debug, Default)]
pub struct FeedPage {
    pub items: Vec<FeedItem>,
    /// The oldest cursor still kept, if any.
    pub oldest: Option<u64>,
    /// The newest cursor handed out, if any (where a new consumer starts "from now").
    pub newest: Option<u64>,
    /// The last cursor this page looked at: where the next page starts (with an owner's
    /// filter, past changes that were not theirs).
    pub through: u64,
}

/// Audit lines as stored: `(seq, the line's JSON)`.
pub type AuditRows = Vec<(u64, Vec<u8>)>;

/// A version that is durably committed: what the cache stores and the hub publishes.
#[derive(Debug)]
pub struct Committed {
    pub doc: Arc<Document>,
    /// The change-log entry; `None` for the version-0 document a signup creates.
    pub entry: Option<LogEntry>,
    /// A path edit created its key.
    pub created: bool,
    /// Whose access this version gave or took (a new named document's lists, an update of
    /// the lists); empty for nearly every version.
    pub shares: Vec<super::model::ShareChange>,
}

pub use super::listed::Listed;

/// Counts for `GET /v1/admin/stats`.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct StoreStats {
    pub users: u64,
    pub documents: u64,
    pub log_entries: u64,
    pub blobs: u64,
    pub blob_bytes: u64,
    /// What the store occupies: the redb file, or the schema's tables in PostgreSQL.
    pub data_bytes: u64,
}

/// What a write did: the version it committed (`None` for writes that make none) and, for
/// an update, the version it replaced. That one comes back to the caller to be freed, or
/// recycled (`store/recycle.rs`), on the caller's thread: freeing a document's tree was most
/// of the writer thread's time on PUTs of 100-key documents, and every commit waits for that
/// one thread.
#[derive(Default)]
pub struct Written {
    pub committed: Option<Arc<Committed>>,
    pub replaced: Option<Arc<Document>>,
}

/// A slice of one document's change log.
#[derive(Debug, Default)]
pub struct History {
    pub base: Option<Document>,
    /// The oldest version still in the log, if any.
    pub oldest: Option<Version>,
    pub entries: Vec<LogEntry>,
}

pub trait Backend: Send + Sync + 'static {
    /// The latest committed document of `username`, or `None` if there is no such user.
    fn document<'a>(
        &'a self,
        username: &'a str,
    ) -> BoxFuture<'a, Result<Option<Document>, StoreError>>;

    /// Whether other processes commit to the same data (cluster mode): then a cached
    /// document must be checked with [`Backend::version`] before it is served.
    fn shared(&self) -> bool {
        false
    }

    /// The committed version of `username`'s document as the shared database has it;
    /// `Ok(None)` where [`Backend::shared`] is false.
    fn version<'a>(
        &'a self,
        _username: &'a str,
    ) -> BoxFuture<'a, Result<Option<Version>, StoreError>> {
        Box::pin(async { Ok(None) })
    }

    /// The account record of `username`, or `None`.
    fn user<'a>(
        &'a self,
        username: &'a str,
    ) -> BoxFuture<'a, Result<Option<UserRecord>, StoreError>>;

    /// Log entries of `username` with versions in `from..=to`, oldest first, at most `limit`,
    /// read in one consistent snapshot. With `with_base`, also the base snapshot (the document
    /// just before the oldest retained entry), and then entries start right after the base
    /// whatever `from` says, so every version up to `to` can be rebuilt.
    fn history<'a>(
        &'a self,
        username: &'a str,
        from: Version,
        to: Version,
        limit: usize,
        with_base: bool,
    ) -> BoxFuture<'a, Result<History, StoreError>>;

    /// Applies `write` and resolves only once it is durable (it survives `kill -9`) and
    /// [`super::Commits::durable`] has run for it (the cache holds it).
    fn write(&self, write: Write) -> BoxFuture<'_, Result<Written, StoreError>>;

    /// Queues `write` now, in call order, and returns the wait for its outcome; or hands the
    /// write back when it cannot be queued at once (then call [`Backend::write`]). Lets a
    /// socket send its next update while the previous one commits: queued in order, they are
    /// applied in order and can share one fsync. Backends without such a queue keep the
    /// default.
    ///
    /// # Errors
    /// The write itself, when it was not queued.
    fn submit(
        &self,
        write: Write,
    ) -> Result<BoxFuture<'static, Result<Written, StoreError>>, Box<Write>> {
        Err(Box::new(write))
    }

    /// Accounts with `flag` set (short lists, read at start).
    fn flagged(&self, flag: Flag) -> BoxFuture<'_, Result<Vec<String>, StoreError>>;

    /// Audit lines with sequence numbers below `before` (all when `None`), newest first, at
    /// most `limit`.
    fn audit(
        &self,
        before: Option<u64>,
        limit: usize,
    ) -> BoxFuture<'_, Result<AuditRows, StoreError>>;

    /// Every webhook's record (`webhooks/`).
    fn webhooks(&self) -> BoxFuture<'_, Result<Vec<Vec<u8>>, StoreError>>;

    /// The change feed: committed versions after cursor `after`, in commit order, looking at
    /// at most `limit` of them; with `owner`, only that account's documents' (the others
    /// are passed over without being read) (`store/redb/feed.rs`, `store/postgres/feed.rs`).
    fn feed(
        &self,
        after: u64,
        limit: usize,
        owner: Option<String>,
    ) -> BoxFuture<'_, Result<FeedPage, StoreError>>;

    /// The blob `sha256`, if anyone holds a reference to it.
    fn blob<'a>(&'a self, sha256: &'a str)
    -> BoxFuture<'a, Result<Option<BlobRecord>, StoreError>>;

    /// Whether any of `users` holds a reference to `sha256`.
    fn holds_blob<'a>(
        &'a self,
        sha256: &'a str,
        users: Vec<String>,
    ) -> BoxFuture<'a, Result<bool, StoreError>>;

    /// Who recorded writing `sha256` into `doc` ([`Write::BlobMention`]).
    fn mentioned_by<'a>(
        &'a self,
        doc: &'a str,
        sha256: &'a str,
    ) -> BoxFuture<'a, Result<Vec<String>, StoreError>>;

    /// The blobs `username` references, in hash order from `offset`, at most `limit`, and the
    /// bytes they add up to (what counts against the quota).
    fn user_blobs<'a>(
        &'a self,
        username: &'a str,
        offset: usize,
        limit: usize,
    ) -> BoxFuture<'a, Result<(Vec<BlobRef>, u64), StoreError>>;

    /// Accounts whose names contain `search` ("" for all), in name order from `offset`, at
    /// most `limit`, and how many there are.
    fn users<'a>(
        &'a self,
        offset: usize,
        limit: usize,
        search: &'a str,
    ) -> BoxFuture<'a, Result<(Vec<UserRecord>, u64), StoreError>>;

    /// `owner`'s named documents whose names sort after `after` ("" for the first page), in
    /// name order, at most `limit`: each one's latest metadata and serialized size.
    fn documents<'a>(
        &'a self,
        owner: &'a str,
        after: &'a str,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<Listed>, StoreError>>;

    /// Keys of the documents shared with `user` that sort after `after` ("" first), in key
    /// order, at most `limit`, with the role each grants.
    fn shared_with<'a>(
        &'a self,
        user: &'a str,
        after: &'a str,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<(String, super::model::Access)>, StoreError>>;

    /// Row counts and the data file's size, for operators.
    fn stats(&self) -> BoxFuture<'_, Result<StoreStats, StoreError>>;

    /// The sessions of `username` that are neither revoked nor expired.
    fn sessions<'a>(
        &'a self,
        username: &'a str,
    ) -> BoxFuture<'a, Result<Vec<SessionRecord>, StoreError>>;

    /// Revoked session ids whose tokens have not yet expired, as `(sid, expires)`.
    fn revoked(&self) -> BoxFuture<'_, Result<Vec<(String, u64)>, StoreError>>;

    /// Writes a consistent snapshot of everything to `dest` (a new file) with `info` facts
    /// in it, without stopping writers; returns the rows copied.
    fn backup(
        &self,
        dest: std::path::PathBuf,
        info: Vec<(String, String)>,
    ) -> BoxFuture<'_, Result<u64, StoreError>>;

    /// False while storage is failing (the last commit attempt failed).
    fn healthy(&self) -> bool;

    /// Finishes every write already accepted, then refuses new ones with `Unavailable`.
    fn close(&self) -> BoxFuture<'_, ()>;
}

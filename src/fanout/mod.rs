//! Live fanout: one ring of recent changes per watched document.
//!
//! The writer publishes each committed version here, in commit order. A change is serialized
//! at most once per distinct view (the whole document, or one set of fields) and the bytes are
//! shared by every watcher wanting that view: with 10,000 watchers of one document, one
//! serialization instead of 10,000.

pub mod bell;
pub mod publisher;
mod ring;
pub mod watcher;

use std::sync::{Arc, Mutex, OnceLock};

use axum::extract::ws::Utf8Bytes;
use dashmap::DashMap;

pub use ring::Lagged;
use ring::{Reader, Ring};

use crate::frame::{Reply, View, encode};
use crate::store::{Committed, Document, Fields, LogEntry, Version};

/// What a watch receives with each version.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Mode {
    /// The operation and the resulting document (projected onto the watch's fields; with
    /// fields, the operation is left out since it speaks of the whole document).
    #[default]
    Full,
    /// Only the operation, `at` and `by`: for clients that apply changes themselves.
    Ops,
}

/// The `change` frame for one version as one watch wants it. The single place change frames
/// are built, for live changes and for replayed history alike.
pub fn change_frame(
    doc: &Arc<Document>,
    entry: Option<&LogEntry>,
    fields: Option<&Fields>,
    mode: Mode,
) -> Utf8Bytes {
    let key = doc.key();
    let reply = match (mode, fields) {
        (Mode::Ops, _) => Reply::change(&key, entry, doc.version(), None),
        (Mode::Full, None) => Reply::change(
            &key,
            entry,
            doc.version(),
            Some(View::new(doc.clone(), None)),
        ),
        (Mode::Full, Some(f)) => Reply::change(
            &key,
            None,
            doc.version(),
            Some(View::new(doc.clone(), Some(f))),
        ),
    };
    encode(None, &reply)
}

/// A committed version on its way to watchers.
pub struct Change {
    committed: Arc<Committed>,
    /// Not a version: the document was deleted, and its watches end.
    deleted: bool,
    full: OnceLock<Utf8Bytes>,
    ops: OnceLock<Utf8Bytes>,
    views: Mutex<Vec<(Fields, Utf8Bytes)>>,
}

impl Change {
    pub fn doc(&self) -> &Arc<Document> {
        &self.committed.doc
    }

    pub fn version(&self) -> Version {
        self.committed.doc.version()
    }

    pub fn is_deletion(&self) -> bool {
        self.deleted
    }

    /// True when this version set the access lists: only then can a watcher have lost access,
    /// so forwarders check access on these versions only, not on every delivery.
    pub fn changes_access(&self) -> bool {
        self.committed
            .entry
            .as_ref()
            .is_some_and(|e| e.op.collaborators.is_some() || e.op.readers.is_some())
    }

    /// The `change` frame for a watcher asking for `fields` (or everything) in `mode`,
    /// serialized by the first watcher that asks and shared with the rest.
    pub fn frame(&self, fields: Option<&Fields>, mode: Mode) -> Utf8Bytes {
        let entry = self.committed.entry.as_ref();
        let encode_view = || change_frame(self.doc(), entry, fields, mode);
        if mode == Mode::Ops {
            return self.ops.get_or_init(encode_view).clone();
        }
        let Some(fields) = fields else {
            return self.full.get_or_init(encode_view).clone();
        };
        // A poisoned lock only means another watcher panicked mid-push; the memo is still
        // valid (entries are pushed whole), so carry on with it.
        let mut views = self.views.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, bytes)) = views.iter().find(|(f, _)| f == fields) {
            return bytes.clone();
        }
        let bytes = encode_view();
        views.push((fields.clone(), bytes.clone()));
        bytes
    }
}

/// The set of watched documents. Cheap to clone.
#[derive(Clone)]
pub struct Hub {
    inner: Arc<HubInner>,
}

/// One watched document: its ring, and the newest version sent on it. In cluster mode a
/// version can reach a node twice (from its own writer, then from the database's notification) or
/// late; sending only newer versions keeps each channel increasing, and watchers fill any gap
/// from the change log.
struct Topic {
    ring: Arc<Ring<Arc<Change>>>,
    last: std::sync::atomic::AtomicU64,
}

struct HubInner {
    topics: DashMap<String, Topic>,
    /// Changes a watcher may fall behind before it is resynced (`WATCH_BUFFER`).
    capacity: usize,
    /// Bytes of documents a watcher may fall behind by before it is resynced
    /// (`WATCH_BUFFER_BYTES`).
    max_bytes: usize,
    /// Rung at every commit, watched or not: the change feed's followers wait on it.
    bell: bell::Bell,
}

/// What a change held for watchers costs: its document's size (the serialized bound it
/// carries, else measured). The frames made from it are about as large again; the setting
/// is documented in those terms.
fn weigh(change: &Arc<Change>) -> usize {
    let doc = change.doc();
    doc.size_bound()
        .unwrap_or_else(|| crate::store::apply::serialized_len(&**doc).unwrap_or(0))
}

impl Hub {
    pub fn new(capacity: usize, max_bytes: usize) -> Self {
        Hub {
            inner: Arc::new(HubInner {
                topics: DashMap::new(),
                capacity: capacity.max(1),
                max_bytes,
                bell: bell::Bell::default(),
            }),
        }
    }

    /// Rung after every commit this node hears of (`bell.rs`).
    pub fn bell(&self) -> &bell::Bell {
        &self.inner.bell
    }

    /// Starts receiving every version of `username`'s document published from now on.
    /// Subscribe *before* reading the snapshot: then nothing can fall between the two.
    pub fn subscribe(&self, username: &str) -> Subscription {
        let rx = self
            .inner
            .topics
            .entry(username.to_owned())
            .or_insert_with(|| Topic {
                ring: Ring::new(self.inner.capacity, self.inner.max_bytes, weigh),
                last: std::sync::atomic::AtomicU64::new(0),
            })
            .ring
            .subscribe();
        Subscription {
            rx: Some(rx),
            hub: self.clone(),
            topic: username.to_owned(),
        }
    }

    /// Delivers a committed version to its document's watchers, if it has any.
    pub fn publish(&self, committed: &Arc<Committed>) {
        self.inner.bell.ring();
        if let Some(topic) = self.inner.topics.get(committed.doc.key().as_ref()) {
            let version = committed.doc.version();
            let seen = topic
                .last
                .fetch_max(version, std::sync::atomic::Ordering::SeqCst);
            if seen >= version {
                return;
            }
            let change = Arc::new(Change {
                committed: committed.clone(),
                deleted: false,
                full: OnceLock::new(),
                ops: OnceLock::new(),
                views: Mutex::new(Vec::new()),
            });
            // `false` only means every watcher left since the lookup; nobody to tell.
            topic.ring.send(change);
        }
    }

    /// Ends every watch of document `key`: it was deleted. The topic goes at once, so that
    /// a document created again under the name starts a fresh one.
    pub fn end(&self, key: &str) {
        if let Some((_, topic)) = self.inner.topics.remove(key) {
            // Watchers look only at `deleted`; the document is a stand-in.
            let stand_in = Document::new(crate::names::owner_of(key), "");
            topic.ring.send(Arc::new(Change {
                committed: Arc::new(Committed {
                    doc: Arc::new(stand_in),
                    entry: None,
                    created: false,
                    shares: Vec::new(),
                }),
                deleted: true,
                full: OnceLock::new(),
                ops: OnceLock::new(),
                views: Mutex::new(Vec::new()),
            }));
        }
    }

    /// Live watches across all documents.
    pub fn watchers(&self) -> usize {
        self.inner
            .topics
            .iter()
            .map(|t| t.value().ring.readers())
            .sum()
    }

    /// Whether `username`'s document has watchers here, and the newest version sent to them.
    pub fn watched(&self, username: &str) -> Option<Version> {
        self.inner
            .topics
            .get(username)
            .map(|t| t.last.load(std::sync::atomic::Ordering::SeqCst))
    }

    /// The documents watched here.
    pub fn watched_documents(&self) -> Vec<String> {
        self.inner.topics.iter().map(|t| t.key().clone()).collect()
    }

    /// Documents with at least one watcher.
    pub fn topics(&self) -> usize {
        self.inner.topics.len()
    }

    fn release(&self, topic: &str) {
        self.inner
            .topics
            .remove_if(topic, |_, t| t.ring.readers() == 0);
    }
}

/// A watcher's receiver. Dropping it removes the document's channel once nobody is left,
/// so disconnected watchers leave nothing behind.
pub struct Subscription {
    rx: Option<Reader<Arc<Change>>>,
    hub: Hub,
    topic: String,
}

impl Subscription {
    /// Waits for the next change, then appends every change waiting to `out`, oldest first.
    ///
    /// # Errors
    /// `Lagged` when this watcher fell more than the buffer behind (resync it).
    pub async fn recv_many(&mut self, out: &mut Vec<Arc<Change>>) -> Result<usize, Lagged> {
        match self.rx.as_mut() {
            Some(rx) => rx.recv_many(out).await,
            // Only while being dropped; nothing is waiting for it then.
            None => std::future::pending().await,
        }
    }

    /// Drops every change waiting here and goes on from the next one published. For a
    /// resync: call it *before* reading the snapshot, and nothing falls between the two.
    /// Why: after a lag the receiver stands at the oldest change kept, and a watcher that has
    /// just been sent a newer snapshot would walk up to `WATCH_BUFFER` stale changes one by
    /// one, which under a fast writer was most of the fanout thread's time (perf, d) with a
    /// pipelining writer).
    pub fn skip_to_latest(&mut self) {
        if let Some(rx) = self.rx.as_mut() {
            rx.skip_to_latest();
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        // The receiver must be gone before the count is checked.
        drop(self.rx.take());
        self.hub.release(&self.topic);
    }
}

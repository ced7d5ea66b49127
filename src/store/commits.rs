//! Where a backend sends each version it committed, in commit order: into the document cache
//! once it is durable, to the hub's watchers once its writers were answered.
//!
//! This is the one way data leaves a backend besides the reply to each caller. It is a
//! concrete type the backend calls, not a channel, because only the thread that committed
//! knows the order and the moment: the cache must hold a version before its writer's ack goes
//! out (a client that got its ack reads what it wrote, and so does anyone it tells), and a
//! thread hand-off on the way to the watchers would put a scheduler wake-up on every change's
//! path on a 2-core machine. It is not a closure either: what happens to a commit is named
//! here, in one place, rather than assembled by whoever opened the store.

use std::sync::Arc;

use super::backend::Committed;
use super::cache::DocCache;
use super::model::{Document, ShareChange};
use super::usage::AccountUsage;

/// Tells watchers of a commit: the hub (`fanout`) implements it. A trait the store defines
/// and the layer after it implements, so that the store does not depend on that layer.
pub trait Publish: Send + Sync + 'static {
    fn publish(&self, committed: &Arc<Committed>);

    /// Named document `doc` (as it was last) was deleted: its watches end, and `shares`
    /// (everyone it was shared with) lose it.
    fn deleted(&self, doc: &Arc<Document>, shares: &[ShareChange]);
}

/// The cache and, for a serving process, the hub. Cheap to clone.
#[derive(Clone)]
pub struct Commits {
    cache: DocCache,
    /// Bytes per account: told of deletions here; of commits by the store, on the caller's
    /// task (`Store::submit`), so that the writer thread does not pay for it.
    usage: Arc<AccountUsage>,
    /// `None` for a store opened by an offline command (`hearth user`, restore): nobody
    /// watches there.
    hub: Option<Arc<dyn Publish>>,
}

impl Commits {
    pub(super) fn new(
        cache: DocCache,
        hub: Option<Arc<dyn Publish>>,
        usage: Arc<AccountUsage>,
    ) -> Commits {
        Commits { cache, usage, hub }
    }

    pub(super) fn usage(&self) -> Arc<AccountUsage> {
        self.usage.clone()
    }

    /// `committed` is durable and nobody has been answered yet. The caller must call this in
    /// commit order, from the one place that commits (a writer thread, a group committer).
    pub fn durable(&self, committed: &Arc<Committed>) {
        self.cache.insert_committed(&committed.doc);
    }

    /// `committed`'s writers have been answered: its watchers are told. Same order as
    /// [`Commits::durable`], and after it for each version.
    pub fn answered(&self, committed: &Arc<Committed>) {
        if let Some(hub) = &self.hub {
            hub.publish(committed);
        }
    }

    /// Named document `doc` is gone: the cache forgets it, then its watchers are told.
    pub(super) fn deleted(&self, doc: &Arc<Document>, shares: &[ShareChange]) {
        self.cache.forget(&doc.key());
        self.usage.deleted(doc.owner(), &doc.key());
        if let Some(hub) = &self.hub {
            hub.deleted(doc, shares);
        }
    }
}

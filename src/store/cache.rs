//! The document cache in front of every backend, and the rule that keeps it from going back
//! in time.
//!
//! The cache never holds anything that did not commit and never goes back in time: the
//! writer inserts each committed version (`commits.rs`), and a reader that loaded a document from disk
//! inserts it only if no commit happened meanwhile. The *epoch*, bumped after each durable
//! commit before the cache is touched, is how the reader knows.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use moka::ops::compute::Op as CacheOp;
use moka::sync::Cache;

use super::error::StoreError;
use super::model::{Document, Version};

/// Latest committed documents by key (`owner` or `owner/name`). Cheap to clone; clones share the cache.
#[derive(Clone)]
pub(super) struct DocCache {
    docs: Cache<String, Arc<Document>>,
    /// Bumped by the writer after each durable commit, before it touches the cache. A reader
    /// that saw the same value before and after its disk read knows its copy is not stale.
    epoch: Arc<AtomicU64>,
}

impl DocCache {
    pub(super) fn new(capacity: u64, max_age: Duration) -> DocCache {
        DocCache {
            docs: Cache::builder()
                .max_capacity(capacity)
                .time_to_idle(max_age)
                .build(),
            epoch: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Caches a version the writer just made durable. A plain insert, not `put_newer`'s
    /// per-key compute (which cost the writer thread): one writer commits in version order,
    /// and a reader's older copy cannot stick (it checks the epoch after its insert).
    /// Callers: [`super::commits::Commits::durable`] only.
    pub(super) fn insert_committed(&self, doc: &Arc<Document>) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
        self.docs.insert(doc.key().into_owned(), doc.clone());
    }

    pub(super) fn get(&self, username: &str) -> Option<Arc<Document>> {
        self.docs.get(username)
    }

    /// Runs the cache's housekeeping now: it lets go of replaced versions only then.
    pub(super) fn release_replaced(&self) {
        self.docs.run_pending_tasks();
    }

    /// Forgets `username`'s copy if it is older than `version`, and makes sure a read that
    /// started before now cannot put one back.
    pub(super) fn invalidate_older(&self, username: &str, version: Version) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
        self.forget_older(username, version);
    }

    /// Forgets `username`'s document outright (its account was deleted), so that no read
    /// that started before now can put it back either.
    pub(super) fn forget(&self, username: &str) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
        self.docs.invalidate(username);
    }

    pub(super) fn invalidate_all(&self) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
        self.docs.invalidate_all();
    }

    /// Reads `username` from disk with `read` and caches the copy, unless a commit may have
    /// made it stale. `read` is called only after the epoch is noted.
    ///
    /// # Errors
    /// `read`'s.
    pub(super) async fn load<F, Fut>(
        &self,
        username: &str,
        read: F,
    ) -> Result<Option<Arc<Document>>, StoreError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Option<Document>, StoreError>>,
    {
        let before = self.epoch.load(Ordering::SeqCst);
        let Some(doc) = read().await? else {
            return Ok(None);
        };
        let doc = Arc::new(doc);
        self.put_newer(&doc, || self.epoch.load(Ordering::SeqCst) == before);
        // The writer inserts without the per-key lock, so a commit may have landed between
        // the check above and this copy's insert: then take the copy back out (a newer one
        // that goes with it only costs a miss).
        if self.epoch.load(Ordering::SeqCst) != before {
            self.forget_older(username, doc.version() + 1);
        }
        Ok(Some(doc))
    }

    /// Removes `username`'s cached copy if it is older than `version`, under the per-key lock.
    fn forget_older(&self, username: &str, version: Version) {
        self.docs
            .entry_by_ref(username)
            .and_compute_with(|cached| match cached {
                Some(c) if c.value().version() < version => CacheOp::Remove,
                _ => CacheOp::Nop,
            });
    }

    /// Inserts `doc` unless the cache already holds the same or a newer version, or
    /// `still_fresh` says a commit may have made `doc` stale. Runs under the cache's per-key
    /// lock; the writer's inserts do not take it, which is why `load` checks the epoch again
    /// after.
    fn put_newer(&self, doc: &Arc<Document>, still_fresh: impl FnOnce() -> bool) {
        self.docs
            .entry_by_ref(doc.key().as_ref())
            .and_compute_with(|cached| {
                let newer = cached.is_none_or(|c| c.value().version() < doc.version());
                if newer && still_fresh() {
                    CacheOp::Put(doc.clone())
                } else {
                    CacheOp::Nop
                }
            });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing::merged;
    use serde_json::json;

    fn next(doc: &Document) -> Arc<Document> {
        merged(doc, &json!({})).doc.clone()
    }

    fn cache() -> DocCache {
        DocCache::new(100, Duration::from_secs(3600))
    }

    #[tokio::test]
    async fn a_disk_read_is_cached_when_nothing_committed_meanwhile() {
        let cache = cache();
        let v0 = Document::new("ann", "t0");
        let read = cache.load("ann", || async { Ok(Some(v0.clone())) }).await;
        assert_eq!(read.ok().flatten().map(|d| d.version()), Some(0));
        assert_eq!(cache.get("ann").map(|d| d.version()), Some(0));
    }

    /// A reader that read v0, raced by the commit of v1 and then v1's eviction, must not put
    /// v0 back: the next reader would see the document go back in time.
    #[tokio::test]
    async fn a_disk_read_raced_by_a_commit_is_not_cached() {
        let cache = cache();
        let v0 = Document::new("ann", "t0");
        let v1 = next(&v0);
        let read = cache
            .load("ann", || async {
                cache.insert_committed(&v1);
                assert_eq!(cache.get("ann").map(|d| d.version()), Some(1));
                cache.docs.invalidate("ann");
                Ok(Some(v0.clone()))
            })
            .await;
        assert_eq!(read.ok().flatten().map(|d| d.version()), Some(0));
        assert!(cache.get("ann").is_none(), "the stale copy stayed out");
    }

    #[tokio::test]
    async fn a_disk_read_never_replaces_a_newer_copy() {
        let cache = cache();
        let v0 = Document::new("ann", "t0");
        cache.insert_committed(&next(&v0));
        let _ = cache.load("ann", || async { Ok(Some(v0.clone())) }).await;
        assert_eq!(cache.get("ann").map(|d| d.version()), Some(1));
    }

    #[test]
    fn invalidating_older_versions_keeps_the_current_one() {
        let cache = cache();
        cache.insert_committed(&next(&Document::new("ann", "t0")));
        cache.invalidate_older("ann", 1);
        assert_eq!(cache.get("ann").map(|d| d.version()), Some(1));
        cache.invalidate_older("ann", 2);
        assert!(cache.get("ann").is_none());
    }
}

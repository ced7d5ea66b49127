//! Replaced versions kept for recycling: the next update of the same document edits one of
//! them in place instead of copying the whole tree of the latest version.
//!
//! Why: a new version must not disturb readers of the old one, so an edit of one key of a
//! 100-key document copies all 100 keys and later frees the version it replaced, tree and
//! all: most of what a REST PUT costs beyond HTTP. A version an update replaces comes back
//! from the backend with its answer ([`super::backend::Written`]), and the store parks it
//! here with the commit that replaced it. The next update of that document takes it and, if nothing else holds
//! it by then, replays that commit's log entry into it (the same replay that rebuilds
//! versions from the change log, so the result is the latest version exactly) and edits the
//! result in place. Anything unexpected (a newer version in between, someone still reading
//! the old one) simply means nothing to recycle: the update copies, as before.
//!
//! Bounded: at most `CAPACITY` parked versions, each of at most `MAX_BYTES` (by the size
//! bound it carries), so at most 32 MiB kept past its time, plus as much again for the
//! versions that replaced them should the cache evict those first (it normally holds them);
//! when full, all are dropped at once (cheap, and a server with more busy documents than
//! that just copies).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde_json::{Map, Value};

use super::apply::replay_into;
use super::backend::Committed;
use super::cache::DocCache;
use super::model::Document;

/// Most versions parked at once.
const CAPACITY: usize = 256;
/// Largest version parked (serialized size bound): larger ones are copied and freed.
const MAX_BYTES: usize = 128 * 1024;
/// From this size (bound) up, a parked version still held by the cache is worth the cache's
/// housekeeping to free it; a smaller one is cheaper to copy. (Sequential updates of a tiny
/// document lost ≈ 0.02 ms each to the housekeeping, a) p50.)
const RELEASE_BYTES: usize = 1024;

/// A replaced version and the commit that replaced it.
struct Parked {
    old: Arc<Document>,
    next: Arc<Committed>,
}

#[derive(Default)]
pub(super) struct Recycler {
    parked: Mutex<HashMap<String, Parked>>,
}

impl Recycler {
    /// Parks `old`, which `next` replaced. Others may still hold it (the cache lets go of a
    /// replaced version only at its next housekeeping): it is recycled only if they have let
    /// go by the time the document's next update comes.
    pub(super) fn park(&self, old: Arc<Document>, next: &Arc<Committed>) {
        let small = next.doc.bounds.bytes().is_some_and(|b| b <= MAX_BYTES);
        if next.entry.is_none() || !small {
            return;
        }
        let name = next.doc.key().into_owned();
        let spare = Parked {
            old,
            next: next.clone(),
        };
        let dropped = {
            let mut parked = self.parked.lock().unwrap_or_else(|p| p.into_inner());
            let dropped = if parked.len() >= CAPACITY && !parked.contains_key(&name) {
                std::mem::take(&mut *parked)
            } else {
                HashMap::new()
            };
            parked.insert(name, spare);
            dropped
        };
        // Freed outside the lock.
        drop(dropped);
    }

    /// `userdata` equal to `latest`'s, owned by the caller, if a parked version of that
    /// document can be brought up to exactly `latest`. The cache is asked to let go of the
    /// versions it replaced when that is what holds a large one (see `RELEASE_BYTES`).
    pub(super) fn take(
        &self,
        name: &str,
        latest: &Arc<Document>,
        cache: &DocCache,
    ) -> Option<Map<String, Value>> {
        let spare = self
            .parked
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(name)?;
        if !Arc::ptr_eq(&spare.next.doc, latest) {
            return None;
        }
        let entry = spare.next.entry.as_ref()?;
        let mut doc = match Arc::try_unwrap(spare.old) {
            Ok(doc) => doc,
            // Held by us and by one more: the cache's pending housekeeping, which
            // `release_replaced` ends. Held by more (a watch's ring, a reader), that would
            // not free it.
            Err(old)
                if Arc::strong_count(&old) == 2
                    && latest.bounds.bytes().is_some_and(|b| b >= RELEASE_BYTES) =>
            {
                cache.release_replaced();
                Arc::try_unwrap(old).ok()?
            }
            Err(_) => return None,
        };
        replay_into(&mut doc, entry).ok()?;
        (doc.version() == latest.version()).then_some(doc.userdata)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing::merged;
    use serde_json::json;
    use std::time::Duration;

    fn commit(doc: &Document, patch: Value) -> Arc<Committed> {
        merged(doc, &patch)
    }

    /// A parked version comes back as exactly the latest one, once; one someone still holds,
    /// or one that a newer commit has passed, never does.
    #[test]
    fn a_spare_is_the_latest_version_or_nothing() {
        let recycler = Recycler::default();
        let cache = DocCache::new(16, Duration::from_secs(60));
        let v0 = Arc::new(Document::new("ann", "t0"));
        let v1 = commit(&v0, json!({"a": {"b": 1}, "c": [1, 2]}));
        let v2 = commit(&v1.doc, json!({"a": {"b": null, "d": 2}}));

        recycler.park(v1.doc.clone(), &v2);
        assert!(
            recycler.take("ann", &v2.doc, &cache).is_none(),
            "still held elsewhere: not recycled"
        );

        let held = Arc::new((*v1.doc).clone());
        recycler.park(held, &v2);
        assert_eq!(
            recycler.take("ann", &v2.doc, &cache),
            Some(v2.doc.userdata.clone()),
            "replayed up to the latest"
        );
        assert!(
            recycler.take("ann", &v2.doc, &cache).is_none(),
            "taken once"
        );

        let v3 = commit(&v2.doc, json!({"e": true}));
        recycler.park(Arc::new((*v1.doc).clone()), &v2);
        assert!(
            recycler.take("ann", &v3.doc, &cache).is_none(),
            "a newer version came in between"
        );
    }
}

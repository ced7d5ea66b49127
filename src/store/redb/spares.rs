//! Replaced versions kept for recycling: the next update of the same document edits one of
//! them in place instead of copying the whole tree of the latest version.
//!
//! Why: a REST PUT of one key of a 100-key document copied all 100 keys (the new version
//! must not disturb readers of the old one) and later freed the version it replaced, tree
//! and all; copying and freeing were most of what a PUT cost beyond HTTP (callgrind, g)). A
//! version the writer replaces goes back to its caller, which parks it here with the commit
//! that replaced it. The next update of that document takes it and, if nothing else holds
//! it by then, replays that commit's log entry into it (the same replay that rebuilds
//! versions from the change log, so the result is the latest version exactly) and edits the
//! result in place. Anything unexpected (a newer version in between, someone still reading
//! the old one) simply means no spare: the update copies, as before.
//!
//! Bounded: at most `CAPACITY` parked versions, each of at most `MAX_BYTES` (by the size
//! bound it carries), so at most 32 MiB kept past its time, plus as much again for the
//! versions that replaced them should the cache evict those first (it normally holds them);
//! when full, all are dropped at once (cheap, and a server with more busy documents than
//! that just copies).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde_json::{Map, Value};

use crate::store::apply::replay_into;
use crate::store::backend::Committed;
use crate::store::model::Document;

/// Most versions parked at once.
const CAPACITY: usize = 256;
/// Largest version parked (serialized size bound): larger ones are copied and freed.
const MAX_BYTES: usize = 128 * 1024;
/// From this size (bound) up, a parked version still held by the cache is worth the cache's
/// housekeeping to free it; a smaller one is cheaper to copy. (Sequential updates of a tiny
/// document lost ≈ 0.02 ms each to the housekeeping, a) p50.)
const SETTLE_BYTES: usize = 1024;

/// A replaced version and the commit that replaced it.
struct Spare {
    old: Arc<Document>,
    next: Arc<Committed>,
}

#[derive(Default)]
pub(super) struct Spares {
    parked: Mutex<HashMap<String, Spare>>,
}

impl Spares {
    /// Parks `old`, which `next` replaced. Others may still hold it (the cache lets go of a
    /// replaced version only at its next housekeeping): it is recycled only if they have let
    /// go by the time the document's next update comes.
    pub(super) fn park(&self, old: Arc<Document>, next: &Arc<Committed>) {
        let small = next.doc.bounds.bytes().is_some_and(|b| b <= MAX_BYTES);
        if next.entry.is_none() || !small {
            return;
        }
        let name = next.doc.owner().to_owned();
        let spare = Spare {
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
    /// document can be brought up to exactly `latest`. `settle` makes the cache let go of
    /// the versions it replaced (see `SETTLE_BYTES`).
    pub(super) fn take(
        &self,
        name: &str,
        latest: &Arc<Document>,
        settle: &dyn Fn(),
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
            // Held by us and by one more: the cache's pending housekeeping, which `settle`
            // ends. Held by more (a watch's ring, a reader), settling would not free it.
            Err(old)
                if Arc::strong_count(&old) == 2
                    && latest.bounds.bytes().is_some_and(|b| b >= SETTLE_BYTES) =>
            {
                settle();
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

    fn commit(doc: &Document, patch: Value) -> Arc<Committed> {
        merged(doc, &patch)
    }

    /// A parked version comes back as exactly the latest one, once; one someone still holds,
    /// or one that a newer commit has passed, never does.
    #[test]
    fn a_spare_is_the_latest_version_or_nothing() {
        let spares = Spares::default();
        let v0 = Arc::new(Document::new("ann", "t0"));
        let v1 = commit(&v0, json!({"a": {"b": 1}, "c": [1, 2]}));
        let v2 = commit(&v1.doc, json!({"a": {"b": null, "d": 2}}));

        spares.park(v1.doc.clone(), &v2);
        assert!(
            spares.take("ann", &v2.doc, &|| ()).is_none(),
            "still held elsewhere: not recycled"
        );

        let held = Arc::new((*v1.doc).clone());
        spares.park(held, &v2);
        assert_eq!(
            spares.take("ann", &v2.doc, &|| ()),
            Some(v2.doc.userdata.clone()),
            "replayed up to the latest"
        );
        assert!(spares.take("ann", &v2.doc, &|| ()).is_none(), "taken once");

        let v3 = commit(&v2.doc, json!({"e": true}));
        spares.park(Arc::new((*v1.doc).clone()), &v2);
        assert!(
            spares.take("ann", &v3.doc, &|| ()).is_none(),
            "a newer version came in between"
        );
    }
}

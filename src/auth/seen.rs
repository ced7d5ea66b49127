//! When each session was last used, for the admin's view of an account. Kept in memory, on
//! each node, since it started: storing it would turn every request into a durable write.

use std::sync::atomic::{AtomicU64, Ordering};

use dashmap::DashMap;

/// How long an unused session's last use is remembered (longer than any token lives
/// unrefreshed), so the map holds only sessions in use.
pub const REMEMBERED: u64 = 30 * 24 * 3600;

#[derive(Default)]
pub struct Seen {
    at: DashMap<String, AtomicU64>,
}

impl Seen {
    /// Session `sid` was used now. The common case, a session seen before, takes a shard's
    /// read lock and an atomic store, no allocation.
    pub fn touch(&self, sid: &str) {
        let now = crate::sys::unix_now();
        if let Some(at) = self.at.get(sid) {
            at.store(now, Ordering::Relaxed);
            return;
        }
        self.at.insert(sid.to_owned(), AtomicU64::new(now));
    }

    /// Unix seconds of the session's last use on this node, if it was used since start.
    pub fn last(&self, sid: &str) -> Option<u64> {
        self.at.get(sid).map(|at| at.load(Ordering::Relaxed))
    }

    /// Forgets sessions unused for [`REMEMBERED`].
    pub fn sweep(&self) {
        let cutoff = crate::sys::unix_now().saturating_sub(REMEMBERED);
        self.at.retain(|_, at| at.load(Ordering::Relaxed) >= cutoff);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_and_forgets() {
        let seen = Seen::default();
        assert_eq!(seen.last("s1"), None);
        seen.touch("s1");
        let at = seen.last("s1").unwrap();
        assert!(at + 5 >= crate::sys::unix_now());
        seen.at.insert("old".into(), AtomicU64::new(1));
        seen.sweep();
        assert_eq!(seen.last("old"), None);
        assert_eq!(seen.last("s1"), Some(at));
    }
}

//! The change feed's doorbell: rung after every commit (this node's, and in a cluster the
//! others' as their notifications arrive), so that feed followers and webhook deliverers that
//! caught up wake at once instead of polling. A ring with nobody listening is one atomic load,
//! which is what the writers of a busy server pay.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::{Notify, futures::OwnedNotified};

#[derive(Default)]
pub struct Bell {
    notify: Arc<Notify>,
    listening: Arc<AtomicUsize>,
}

impl Bell {
    pub fn ring(&self) {
        if self.listening.load(Ordering::SeqCst) > 0 {
            self.notify.notify_waiters();
        }
    }

    /// Listens from now on. Call it *before* reading the feed: a commit after the read then
    /// rings a listener already there (one before the read, the read sees).
    pub fn listen(&self) -> Listener {
        self.listening.fetch_add(1, Ordering::SeqCst);
        let mut rung = Box::pin(self.notify.clone().notified_owned());
        rung.as_mut().enable();
        Listener {
            rung,
            listening: self.listening.clone(),
        }
    }
}

/// One wait for the next ring.
pub struct Listener {
    rung: Pin<Box<OwnedNotified>>,
    listening: Arc<AtomicUsize>,
}

impl Listener {
    /// Until the bell rings, or `at_most` (the safety net for a notification lost with a
    /// cluster connection, which the next read then catches up on).
    pub async fn wait(mut self, at_most: Duration) {
        let _ = tokio::time::timeout(at_most, self.rung.as_mut()).await;
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.listening.fetch_sub(1, Ordering::SeqCst);
    }
}

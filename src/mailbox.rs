//! A small multi-producer, single-consumer queue for per-socket traffic (outbound frames,
//! control messages).
//!
//! Why not tokio's mpsc: every tokio channel allocates a block of 32 slots when it is
//! created. A socket has two (its outbound queue and its control queue), and those blocks
//! were ≈ 2.6 KiB of an idle socket's ≈ 9 KiB (BENCHMARKS.md, e). Here the buffer is a
//! `VecDeque` that allocates only when something is queued and is released once drained,
//! so an idle socket pays for an `Arc` and a `Notify`, nothing more. Traffic per socket is
//! light (a few frames per change), so a mutex held for a push or a pop costs nothing that
//! shows.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;

/// A drained buffer with more capacity than this is released rather than kept.
const KEEP_CAPACITY: usize = 8;

struct Queue<T> {
    items: Mutex<VecDeque<T>>,
    notify: Notify,
    senders: AtomicUsize,
    receiver_gone: AtomicBool,
    /// Most items queued at once (`usize::MAX`: unbounded).
    cap: usize,
}

impl<T> Queue<T> {
    fn items(&self) -> MutexGuard<'_, VecDeque<T>> {
        // A panic while holding the lock cannot leave the deque half-changed.
        self.items
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

pub struct Sender<T> {
    shared: Arc<Queue<T>>,
}

pub struct Receiver<T> {
    shared: Arc<Queue<T>>,
}

/// A queue holding at most `cap` items.
pub fn channel<T>(cap: usize) -> (Sender<T>, Receiver<T>) {
    let shared = Arc::new(Queue {
        items: Mutex::new(VecDeque::new()),
        notify: Notify::new(),
        senders: AtomicUsize::new(1),
        receiver_gone: AtomicBool::new(false),
        cap: cap.max(1),
    });
    (
        Sender {
            shared: shared.clone(),
        },
        Receiver { shared },
    )
}

impl<T> Sender<T> {
    /// Queues `item` unless the queue is full or the receiver is gone (then it comes back).
    ///
    /// # Errors
    /// The item, when it could not be queued.
    pub fn try_send(&self, item: T) -> Result<(), T> {
        if self.shared.receiver_gone.load(Ordering::Acquire) {
            return Err(item);
        }
        {
            let mut items = self.shared.items();
            if items.len() >= self.shared.cap {
                return Err(item);
            }
            items.push_back(item);
        }
        self.shared.notify.notify_one();
        Ok(())
    }

    /// Nothing queued right now.
    pub fn is_empty(&self) -> bool {
        self.shared.items().is_empty()
    }
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        self.shared.senders.fetch_add(1, Ordering::AcqRel);
        Sender {
            shared: self.shared.clone(),
        }
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        if self.shared.senders.fetch_sub(1, Ordering::AcqRel) == 1 {
            // The last sender: wake the receiver so it sees the end.
            self.shared.notify.notify_one();
        }
    }
}

impl<T> Receiver<T> {
    /// The next item; `None` once every sender is gone and the queue is empty.
    pub async fn recv(&mut self) -> Option<T> {
        loop {
            if let Some(item) = self.try_recv() {
                return Some(item);
            }
            if self.shared.senders.load(Ordering::Acquire) == 0 {
                return self.try_recv();
            }
            // `notify_one` leaves a permit when nobody waits, so an item pushed between the
            // check above and this await is not missed.
            self.shared.notify.notified().await;
        }
    }

    /// Waits until something is queued, without taking it: `false` once every sender is
    /// gone and nothing is left. Lets the consumer take a lock before it takes items.
    pub async fn ready(&mut self) -> bool {
        loop {
            if !self.shared.items().is_empty() {
                return true;
            }
            if self.shared.senders.load(Ordering::Acquire) == 0 {
                return !self.shared.items().is_empty();
            }
            self.shared.notify.notified().await;
        }
    }

    /// The next item if one is queued now.
    pub fn try_recv(&mut self) -> Option<T> {
        let mut items = self.shared.items();
        let item = items.pop_front();
        if items.is_empty() && items.capacity() > KEEP_CAPACITY {
            *items = VecDeque::new();
        }
        item
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        self.shared.receiver_gone.store(true, Ordering::Release);
        // Queued items may hold resources (outbound permits): release them now.
        let drained: VecDeque<T> = std::mem::take(&mut *self.shared.items());
        drop(drained);
    }
}

#[cfg(test)]
mod tests {
    use super::channel;

    #[tokio::test]
    async fn delivers_in_order_bounds_and_ends() {
        let (tx, mut rx) = channel(2);
        let tx2 = tx.clone();
        assert!(tx.try_send(1).is_ok());
        assert!(tx2.try_send(2).is_ok());
        assert_eq!(tx.try_send(3), Err(3), "full");
        assert_eq!(rx.recv().await, Some(1));
        assert_eq!(rx.recv().await, Some(2));
        let waiter = tokio::spawn(async move { rx.recv().await });
        tokio::task::yield_now().await;
        assert!(tx.try_send(4).is_ok());
        assert_eq!(waiter.await.ok().flatten(), Some(4));
        assert_eq!(
            tx.try_send(6),
            Err(6),
            "the receiver was dropped with the task"
        );
        assert_eq!(tx2.try_send(5), Err(5));
    }

    #[tokio::test]
    async fn ends_when_the_last_sender_goes() {
        let (tx, mut rx) = channel::<u8>(4);
        let waiter = tokio::spawn(async move { rx.recv().await });
        tokio::task::yield_now().await;
        drop(tx);
        assert_eq!(waiter.await.ok().flatten(), None);
    }

    /// `ready` waits for an item without taking it (the writer loop takes items only under
    /// the socket's lock), and reports the end once senders are gone and nothing is left.
    #[tokio::test]
    async fn ready_waits_without_taking() {
        let (tx, mut rx) = channel::<u8>(4);
        assert!(tx.is_empty());
        let waiter = tokio::spawn(async move {
            let ready = rx.ready().await;
            (ready, rx)
        });
        tokio::task::yield_now().await;
        assert!(tx.try_send(7).is_ok());
        let (ready, mut rx) = waiter.await.expect("waiter");
        assert!(ready);
        assert!(!tx.is_empty(), "ready took nothing");
        assert!(rx.ready().await, "still ready: the item is there");
        assert_eq!(rx.try_recv(), Some(7));
        assert!(tx.is_empty());
        drop(tx);
        assert!(!rx.ready().await, "no senders, nothing queued");
    }
}

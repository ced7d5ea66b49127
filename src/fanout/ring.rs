//! One document's recent changes, read by each of its watchers at its own pace.
//!
//! Why not `tokio::sync::broadcast`: it allocates every slot when the channel is made, ≈ 40
//! bytes each, so a buffer deep enough to let a watcher fall a few hundred changes behind
//! without a resync cost that much for every watched document, busy or not. Here a change is
//! kept only while some watcher has not read it yet (the deque grows with the backlog and is
//! released once drained), and a watcher takes everything waiting in one call: a fanout
//! thread catching up reads a burst under one lock instead of one lock per change.
//!
//! A watcher more than `cap` changes behind, or behind by more than `max_bytes` of changes
//! (their weight, as the ring's `weigh` says), loses the oldest ones and is told how many
//! (`Lagged`); the caller then resyncs it. The bound in bytes is what keeps a stalled watcher
//! of a large document cheap: 1024 versions of a 100 KB document are 100 MB, and four such
//! watchers took a server from 18 MB to 1.8 GB.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;

/// A drained deque with more capacity than this is released rather than kept.
const KEEP_CAPACITY: usize = 16;

/// The changes a watcher missed, oldest first, when it fell more than `cap` behind.
#[derive(Debug, PartialEq, Eq)]
pub struct Lagged(pub u64);

pub struct Ring<T> {
    state: Mutex<State<T>>,
    notify: Notify,
    cap: usize,
    max_bytes: usize,
    weigh: fn(&T) -> usize,
}

struct State<T> {
    slots: VecDeque<Slot<T>>,
    /// The sequence number of `slots[0]`; the next change sent gets `head + slots.len()`.
    head: u64,
    readers: usize,
    /// The weight of every value kept.
    bytes: usize,
}

struct Slot<T> {
    value: T,
    weight: usize,
    /// Readers that have not taken this value yet; at 0 it is dropped.
    unread: usize,
}

impl<T> State<T> {
    fn end(&self) -> u64 {
        self.head + self.slots.len() as u64
    }

    /// A reader at `from` will not read what it has not read yet: release its claims.
    fn release(&mut self, from: u64) {
        let start = from.saturating_sub(self.head);
        for slot in self
            .slots
            .iter_mut()
            .skip(usize::try_from(start).unwrap_or(usize::MAX))
        {
            slot.unread -= 1;
        }
        self.trim();
    }

    /// Drops the front value.
    fn pop(&mut self) {
        if let Some(slot) = self.slots.pop_front() {
            self.bytes -= slot.weight;
            self.head += 1;
        }
    }

    /// Drops the values every reader has taken.
    fn trim(&mut self) {
        while self.slots.front().is_some_and(|s| s.unread == 0) {
            self.pop();
        }
        if self.slots.is_empty() && self.slots.capacity() > KEEP_CAPACITY {
            self.slots = VecDeque::new();
        }
    }
}

impl<T: Clone> Ring<T> {
    /// A ring keeping at most `cap` unread changes weighing at most `max_bytes` together by
    /// `weigh` (but always the newest one).
    pub fn new(cap: usize, max_bytes: usize, weigh: fn(&T) -> usize) -> Arc<Ring<T>> {
        Arc::new(Ring {
            state: Mutex::new(State {
                slots: VecDeque::new(),
                head: 0,
                readers: 0,
                bytes: 0,
            }),
            notify: Notify::new(),
            cap: cap.max(1),
            max_bytes,
            weigh,
        })
    }

    fn state(&self) -> MutexGuard<'_, State<T>> {
        // Every change under the lock is completed before it is released (no user code runs
        // under it), so a poisoned lock still guards a consistent state.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A reader that receives everything sent from now on.
    pub fn subscribe(self: &Arc<Self>) -> Reader<T> {
        let mut state = self.state();
        state.readers += 1;
        Reader {
            pos: state.end(),
            ring: self.clone(),
        }
    }

    /// Sends `value` to every reader; `false` when there are none.
    pub fn send(&self, value: T) -> bool {
        // Weighed outside the lock: a value without a carried size bound is measured.
        let weight = (self.weigh)(&value);
        {
            let mut state = self.state();
            if state.readers == 0 {
                return false;
            }
            let unread = state.readers;
            state.bytes += weight;
            state.slots.push_back(Slot {
                value,
                weight,
                unread,
            });
            while state.slots.len() > self.cap
                || (state.bytes > self.max_bytes && state.slots.len() > 1)
            {
                // The readers still holding it are the ones that fell too far behind.
                state.pop();
            }
        }
        self.notify.notify_waiters();
        true
    }

    pub fn readers(&self) -> usize {
        self.state().readers
    }
}

/// One watcher's place in a ring.
pub struct Reader<T: Clone> {
    ring: Arc<Ring<T>>,
    /// The sequence number of the next value to take.
    pos: u64,
}

impl<T: Clone> Reader<T> {
    /// Appends everything waiting to `out`, oldest first: the count taken, possibly 0.
    ///
    /// # Errors
    /// `Lagged` when values this reader had not taken were dropped; it then stands at the
    /// oldest value still kept.
    pub fn try_recv_many(&mut self, out: &mut Vec<T>) -> Result<usize, Lagged> {
        let mut state = self.ring.state();
        if self.pos < state.head {
            let missed = state.head - self.pos;
            self.pos = state.head;
            return Err(Lagged(missed));
        }
        let start = usize::try_from(self.pos - state.head).unwrap_or(usize::MAX);
        let mut taken = 0;
        for slot in state.slots.iter_mut().skip(start) {
            out.push(slot.value.clone());
            slot.unread -= 1;
            taken += 1;
        }
        self.pos += taken as u64;
        state.trim();
        Ok(taken)
    }

    /// Waits until something is sent, then takes everything waiting (at least one value).
    ///
    /// # Errors
    /// As [`Reader::try_recv_many`].
    pub async fn recv_many(&mut self, out: &mut Vec<T>) -> Result<usize, Lagged> {
        // Counted against the task's budget, as tokio's own channels are: a forwarder that
        // always finds changes waiting still lets the other forwarders on its thread run.
        tokio::task::coop::consume_budget().await;
        let ring = self.ring.clone();
        loop {
            // Registered before looking, so a value sent in between still wakes us.
            let notified = ring.notify.notified();
            let mut notified = std::pin::pin!(notified);
            notified.as_mut().enable();
            match self.try_recv_many(out)? {
                0 => notified.await,
                n => return Ok(n),
            }
        }
    }

    /// Gives up everything waiting and goes on from the next value sent.
    pub fn skip_to_latest(&mut self) {
        let mut state = self.ring.state();
        state.release(self.pos);
        self.pos = state.end();
    }
}

impl<T: Clone> Drop for Reader<T> {
    fn drop(&mut self) {
        let mut state = self.ring.state();
        state.release(self.pos);
        state.readers -= 1;
    }
}

#[cfg(test)]
mod tests {
    use super::{Lagged, Ring};

    #[tokio::test]
    async fn each_reader_gets_every_value_once_and_values_go_once_read() {
        let ring = Ring::new(8, usize::MAX, |_| 0);
        assert!(!ring.send(0), "nobody listens yet");
        let mut a = ring.subscribe();
        let mut b = ring.subscribe();
        assert!(ring.send(1) && ring.send(2));
        let mut got = Vec::new();
        assert_eq!(a.recv_many(&mut got).await, Ok(2));
        assert_eq!(got, [1, 2]);
        assert_eq!(ring.state().slots.len(), 2, "b has not read them");
        got.clear();
        assert_eq!(b.try_recv_many(&mut got), Ok(2));
        assert_eq!(ring.state().slots.len(), 0, "read by both, dropped");
        assert_eq!(a.try_recv_many(&mut got), Ok(0));

        let waiter = tokio::spawn(async move {
            let mut got = Vec::new();
            a.recv_many(&mut got).await.map(|_| got)
        });
        tokio::task::yield_now().await;
        assert!(ring.send(3));
        assert_eq!(waiter.await.ok(), Some(Ok(vec![3])), "woken by the send");
        assert_eq!(ring.readers(), 1, "the waiter's reader went with its task");
        assert_eq!(ring.state().slots.len(), 1, "3 is still b's");
        drop(b);
        assert_eq!(
            ring.state().slots.len(),
            0,
            "a leaving reader frees its share"
        );
    }

    #[test]
    fn a_reader_too_far_behind_is_told_and_can_skip_ahead() {
        let ring = Ring::new(3, usize::MAX, |_| 0);
        let mut slow = ring.subscribe();
        let mut fast = ring.subscribe();
        let mut got = Vec::new();
        for v in 1..=5 {
            ring.send(v);
            assert_eq!(fast.try_recv_many(&mut got), Ok(1));
        }
        assert_eq!(ring.state().slots.len(), 3, "only `cap` are kept");
        assert_eq!(slow.try_recv_many(&mut got), Err(Lagged(2)));
        slow.skip_to_latest();
        assert_eq!(ring.state().slots.len(), 0, "nobody needs 3..5 any more");
        ring.send(6);
        got.clear();
        assert_eq!(slow.try_recv_many(&mut got), Ok(1));
        assert_eq!(got, [6]);
    }

    /// However many versions `cap` allows, no more than `max_bytes` of them are kept for a
    /// reader that has stopped: a stalled watcher of a large document costs O(max_bytes).
    #[test]
    fn the_kept_backlog_is_bounded_in_bytes_too() {
        let ring = Ring::new(1024, 1000, |v: &u64| usize::try_from(*v).unwrap());
        let mut stalled = ring.subscribe();
        for _ in 0..100 {
            ring.send(300);
        }
        assert_eq!(ring.state().slots.len(), 3, "3 × 300 bytes fit in 1000");
        assert_eq!(ring.state().bytes, 900);
        assert_eq!(stalled.try_recv_many(&mut Vec::new()), Err(Lagged(97)));
        ring.send(5000);
        assert_eq!(
            ring.state().slots.len(),
            1,
            "the newest is kept, however heavy"
        );
        let mut got = Vec::new();
        assert_eq!(stalled.try_recv_many(&mut got), Err(Lagged(3)));
        assert_eq!(stalled.try_recv_many(&mut got), Ok(1));
        assert_eq!(got, [5000]);
        assert_eq!(ring.state().bytes, 0, "read and released");
    }
}

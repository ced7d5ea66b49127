//! How a write reaches the committer: through the writer thread's queue, where a burst
//! shares one fsync, or, when the writer is idle, on the caller's own thread.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use tokio::sync::oneshot;

use super::jobs::{Job, Outcome, Retired, job};
use super::writer::{self, Committer, CommitterSlot, Msg};
use crate::store::backend::{Write, Written};
use crate::store::error::StoreError;

/// Writes waiting for the writer beyond this make callers wait (backpressure, not memory).
const QUEUE: usize = 4096;

/// The writer thread, its queue, and the committer it shares with idle-time callers.
pub(super) struct Writer {
    tx: Mutex<Option<SyncSender<Msg>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
    committer: Arc<CommitterSlot>,
    /// Jobs sent to the writer and not yet answered: a caller commits itself only at zero,
    /// so nothing it submits can overtake what it queued before.
    in_flight: Arc<AtomicUsize>,
}

impl Writer {
    /// Starts the writer thread on `committer`.
    ///
    /// # Errors
    /// `Unavailable` if the thread cannot be started.
    pub(super) fn start(committer: Committer, max_batch: usize) -> Result<Self, StoreError> {
        let committer = Arc::new(Mutex::new(Some(committer)));
        let (tx, rx) = sync_channel(QUEUE);
        let in_flight = Arc::new(AtomicUsize::new(0));
        let thread = {
            let committer = committer.clone();
            let in_flight = in_flight.clone();
            std::thread::Builder::new()
                .name("hearth-writer".into())
                .spawn(move || writer::run(&committer, &rx, &in_flight, max_batch))
                .map_err(StoreError::unavailable)?
        };
        Ok(Writer {
            tx: Mutex::new(Some(tx)),
            thread: Mutex::new(Some(thread)),
            committer,
            in_flight,
        })
    }

    fn sender(&self) -> Result<SyncSender<Msg>, StoreError> {
        self.tx
            .lock()
            .map_err(StoreError::unavailable)?
            .clone()
            .ok_or_else(|| StoreError::unavailable("store is closed"))
    }

    /// Commits `write`, waiting for room in the queue if need be.
    pub(super) async fn write(&self, write: Write) -> Result<Written, StoreError> {
        let write = match self.submit(write) {
            Ok(outcome) => return outcome.await,
            Err(write) => *write,
        };
        let tx = self.sender()?;
        let (job, rx) = job(write);
        // The queue was full: wait for room off the async workers.
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        let in_flight = self.in_flight.clone();
        tokio::task::spawn_blocking(move || {
            tx.send(Msg::Job(job)).map_err(|_| {
                in_flight.fetch_sub(1, Ordering::SeqCst);
            })
        })
        .await
        .map_err(StoreError::unavailable)?
        .map_err(|()| StoreError::unavailable("writer stopped"))?;
        answer(rx).await
    }

    /// Queues `write` for the writer, or commits it here and now when the writer is idle;
    /// gives it back if the queue is full or gone (see `Backend::submit`).
    #[allow(clippy::type_complexity)] // the future of an answer, or the write handed back
    pub(super) fn submit(
        &self,
        write: Write,
    ) -> Result<BoxFuture<'static, Result<Written, StoreError>>, Box<Write>> {
        let Ok(tx) = self.sender() else {
            return Err(Box::new(write));
        };
        let (job, rx) = job(write);
        let mut job = Some(job);
        self.commit_here(&mut job, &tx);
        let Some(job) = job else {
            return Ok(answer(rx).boxed());
        };
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        match tx.try_send(Msg::Job(job)) {
            Ok(()) => Ok(answer(rx).boxed()),
            Err(TrySendError::Full(Msg::Job(job)) | TrySendError::Disconnected(Msg::Job(job))) => {
                self.in_flight.fetch_sub(1, Ordering::SeqCst);
                Err(Box::new(job.write))
            }
            Err(_) => unreachable!("only a job was sent"),
        }
    }

    /// Commits an update on the caller's own thread when the writer is idle, rather than
    /// handing it over, taking it out of `job`. Leaves it when the writer is busy, has work
    /// queued or committed in the last few milliseconds (then the queue keeps the order and
    /// shares the fsync), for other writes, and outside a multi-threaded runtime.
    ///
    /// Why: a quiet update otherwise waits for a sleeping writer thread to wake, and its
    /// watchers for a second hand-off back; committed here, its change reaches watchers about
    /// 0.1 ms sooner (BENCHMARKS.md, "Changes measured", `commit_here`).
    ///
    /// Why it is safe on a runtime worker: `block_in_place` hands the worker's other tasks to
    /// another thread for the commit's fsync (≈ 0.2–0.5 ms), so no task waits on it; the
    /// committer is taken with `try_lock` only, so an async caller never blocks on the writer
    /// thread; and nothing may be in flight, so this update cannot overtake one queued before.
    /// Its watchers are still told by the writer thread, `PUBLISH_DELAY` later.
    fn commit_here(&self, job: &mut Option<Job>, tx: &SyncSender<Msg>) {
        let multi_thread = tokio::runtime::Handle::try_current()
            .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
        let update = job
            .as_ref()
            .is_some_and(|j| matches!(j.write, Write::Update(..)));
        if !multi_thread || !update || self.in_flight.load(Ordering::SeqCst) != 0 {
            return;
        }
        let Ok(mut guard) = self.committer.try_lock() else {
            return;
        };
        let Some(committer) = guard.as_mut().filter(|c| c.quiet()) else {
            return;
        };
        let Some(job) = job.take() else {
            return;
        };
        committer.commit_here(job);
        drop(guard);
        // The writer publishes it, and housekeeps after; it may be asleep with no timer.
        let _ = tx.try_send(Msg::Wake);
    }

    /// Lets the writer drain what is queued and stop, and waits for it.
    pub(super) async fn close(&self) {
        if let Ok(mut tx) = self.tx.lock() {
            tx.take();
        }
        let handle = self.thread.lock().ok().and_then(|mut w| w.take());
        if let Some(handle) = handle {
            let joined = tokio::task::spawn_blocking(move || handle.join()).await;
            if !matches!(joined, Ok(Ok(()))) {
                tracing::error!("writer thread ended abnormally");
            }
        }
    }
}

/// The writer's answer to one job.
async fn answer(rx: oneshot::Receiver<(Outcome, Retired)>) -> Result<Written, StoreError> {
    let (outcome, replaced) = rx
        .await
        .map_err(|_| StoreError::unavailable("writer stopped"))?;
    Ok(Written {
        committed: outcome?,
        replaced,
    })
}

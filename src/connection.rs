//! The write half of a socket: the only code that writes to it, and the queue in front of it.
//!
//! The queue is bounded in **bytes** (`OUTBOUND_BUFFER`), not frames: a frame holds a permit
//! for its size until it is written, so a socket never holds more than that in memory however
//! large its frames. The loop feeds every frame that is ready and then flushes once, so a
//! burst costs one syscall rather than one each. A close request jumps the queue: a socket
//! being closed for falling behind must not wait behind the very backlog that got it closed.
//!
//! Replies skip the queue when it is empty: the session writes them itself
//! ([`Outbound::reply`]). Why: the writer loops and watch forwarders of a busy document run
//! by the thousand, and a reply that had to wait for its socket's writer task to be scheduled
//! waited behind all of them, so a writer's ack took as long as the previous fanout (measured:
//! 1–10 ms per update under 1000 watchers, with the commit itself under 1 ms).

use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use futures_util::stream::BoxStream;
use futures_util::{SinkExt, StreamExt};
use tokio::sync::{Mutex, OwnedSemaphorePermit, Semaphore, TryAcquireError, oneshot};

use crate::mailbox;

/// Close codes Hearth uses (besides the standard ones).
pub mod close {
    pub const GOING_AWAY: u16 = 1001;
    pub const PROTOCOL_ERROR: u16 = 1002;
    pub const INVALID_DATA: u16 = 1007;
    pub const TOO_BIG: u16 = 1009;
    pub const SLOW_CONSUMER: u16 = 4008;
    pub const IDLE: u16 = 4009;
}

/// Why a frame could not be queued.
#[derive(Debug, PartialEq, Eq)]
pub enum QueueError {
    /// The queue stayed full for the whole timeout.
    Full,
    /// The socket is gone.
    Closed,
}

type Queued = (Message, OwnedSemaphorePermit);

/// A socket's write half: a WebSocket's, or a socket.io connection's (`socketio`), which
/// turns frames into its own packets.
pub type BoxSink = std::pin::Pin<Box<dyn futures_util::Sink<Message, Error = axum::Error> + Send>>;

/// The write half, shared by its writer loop and (for replies) its session.
pub type Sink = Arc<Mutex<BoxSink>>;

/// What a session runs over: frames in, frames out, as a WebSocket carries them. Boxed so
/// that one session code serves `/ws` and socket.io (a call through a pointer per write,
/// nothing against the syscall it leads to).
pub struct Transport {
    pub sink: BoxSink,
    pub stream: BoxStream<'static, Result<Message, axum::Error>>,
}

impl From<WebSocket> for Transport {
    fn from(socket: WebSocket) -> Self {
        let (sink, stream) = socket.split();
        Transport {
            sink: Box::pin(sink),
            stream: stream.boxed(),
        }
    }
}

/// Pushed frames (presence) a socket may have waiting for room in its queue.
pub const MAX_WAITING_PUSHES: usize = 1024;

/// The sending side of a socket's queue. Cheap to clone.
#[derive(Clone)]
pub struct Outbound {
    tx: mailbox::Sender<Queued>,
    budget: Arc<Semaphore>,
    max: usize,
    sink: Sink,
    /// Pushes that found no room, in order ([`Outbound::push`]): one per socket, so a socket
    /// watching many documents holds at most [`MAX_WAITING_PUSHES`] in all.
    waiting: Arc<std::sync::Mutex<Waiting>>,
}

#[derive(Default)]
struct Waiting {
    frames: std::collections::VecDeque<Utf8Bytes>,
    /// A task is feeding `frames` to the queue: new ones go behind them, never past.
    draining: bool,
}

impl Outbound {
    /// A queue holding at most `bytes` in front of `sink`, and the receiver the writer drains.
    pub fn new(bytes: usize, sink: Sink) -> (Outbound, mailbox::Receiver<Queued>) {
        let max = bytes.clamp(1, Semaphore::MAX_PERMITS);
        // Bounded by the byte budget; every queued item holds at least one permit.
        let (tx, rx) = mailbox::channel(usize::MAX);
        let out = Outbound {
            tx,
            budget: Arc::new(Semaphore::new(max)),
            max,
            sink,
            waiting: Arc::default(),
        };
        (out, rx)
    }

    /// Sends a reply: written right away when nothing is queued and the writer is not
    /// writing (order is kept: anything queued later goes after it), queued otherwise.
    ///
    /// # Errors
    /// As [`Outbound::send_now`].
    pub async fn reply(&self, frame: Utf8Bytes, wait: Duration) -> Result<(), QueueError> {
        self.send_now([frame], wait).await
    }

    /// Sends frames in order, all in one write when nothing is queued and the writer is not
    /// writing, queued otherwise. A peer that does not take the bytes within `wait` is
    /// `Full`, as a full queue would be. Watch changes come this way a batch at a time (every
    /// change waiting for the watcher): that saves the writer task's wakeup, and the batch
    /// still shares one `send`. (Written one change at a time, saturation fell from 514k to
    /// 100k deliveries/s: a syscall per change instead of one per burst.)
    ///
    /// # Errors
    /// `Full`, or `Closed` when the socket is gone.
    pub async fn send_now<I>(&self, frames: I, wait: Duration) -> Result<(), QueueError>
    where
        I: IntoIterator<Item = Utf8Bytes>,
        I::IntoIter: Send,
    {
        // Checked again under the lock: the writer takes items only while holding it.
        if self.tx.is_empty()
            && let Ok(mut sink) = self.sink.try_lock()
            && self.tx.is_empty()
        {
            let write = async {
                for frame in frames {
                    sink.feed(Message::Text(frame)).await?;
                }
                sink.flush().await
            };
            let mut write = std::pin::pin!(write);
            // Nearly every write completes at once (the socket has room): only one that
            // does not arms a timer.
            let first = std::future::poll_fn(|cx| Poll::Ready(write.as_mut().poll(cx))).await;
            let done = match first {
                Poll::Ready(done) => done,
                Poll::Pending => match tokio::time::timeout(wait, write).await {
                    Ok(done) => done,
                    Err(_) => return Err(QueueError::Full),
                },
            };
            return done.map_err(|_| QueueError::Closed);
        }
        for frame in frames {
            self.send_timeout(frame, wait).await?;
        }
        Ok(())
    }

    fn permits(&self, frame: &Utf8Bytes) -> u32 {
        // A frame larger than the whole budget waits for all of it.
        u32::try_from(frame.len().clamp(1, self.max)).unwrap_or(u32::MAX)
    }

    /// Queues a text frame, waiting at most `wait` for room.
    ///
    /// # Errors
    /// `Full` after `wait`, `Closed` when the socket is gone.
    pub async fn send_timeout(&self, frame: Utf8Bytes, wait: Duration) -> Result<(), QueueError> {
        let needed = self.permits(&frame);
        // Room now (the usual case) needs no timer.
        let permit = match self.budget.clone().try_acquire_many_owned(needed) {
            Ok(permit) => permit,
            Err(TryAcquireError::Closed) => return Err(QueueError::Closed),
            Err(TryAcquireError::NoPermits) => {
                let room = self.budget.clone().acquire_many_owned(needed);
                match tokio::time::timeout(wait, room).await {
                    Ok(Ok(permit)) => permit,
                    Ok(Err(_)) => return Err(QueueError::Closed),
                    Err(_) => return Err(QueueError::Full),
                }
            }
        };
        self.tx
            .try_send((Message::Text(frame), permit))
            .map_err(|_| QueueError::Closed)
    }

    /// Queues a pushed frame (presence) without ever waiting, as a push made under a lock
    /// must: now if it fits and nothing waits, else behind what waits, fed to the queue in
    /// order by a task as room comes, each frame for at most `wait` (a watch waits as long).
    /// False when [`MAX_WAITING_PUSHES`] wait already. `stuck` runs if the queue stayed full
    /// for `wait`, or that many wait: the socket is to be closed then.
    pub fn push<F>(&self, frame: Utf8Bytes, wait: Duration, stuck: &F) -> bool
    where
        F: Fn() + Clone + Send + 'static,
    {
        let mut w = self.waiting();
        if !w.draining {
            let needed = self.permits(&frame);
            if let Ok(permit) = self.budget.clone().try_acquire_many_owned(needed) {
                return self.tx.try_send((Message::Text(frame), permit)).is_ok();
            }
        }
        if w.frames.len() >= MAX_WAITING_PUSHES {
            stuck();
            return false;
        }
        w.frames.push_back(frame);
        if !w.draining {
            w.draining = true;
            tokio::spawn(self.clone().drain(wait, stuck.clone()));
        }
        true
    }

    fn waiting(&self) -> std::sync::MutexGuard<'_, Waiting> {
        self.waiting
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Feeds the waiting pushes to the queue in order, each waiting at most `wait` for room.
    async fn drain(self, wait: Duration, stuck: impl Fn()) {
        loop {
            let next = {
                let mut w = self.waiting();
                let next = w.frames.pop_front();
                w.draining = next.is_some();
                next
            };
            let Some(frame) = next else { return };
            match self.send_timeout(frame, wait).await {
                Ok(()) => {}
                // `draining` stays set: nothing more is queued for a socket being closed.
                Err(QueueError::Full) => {
                    self.waiting().frames.clear();
                    return stuck();
                }
                Err(QueueError::Closed) => return,
            }
        }
    }

    /// Queues a control frame (a ping) if there is room now; never waits.
    pub fn try_send_control(&self, msg: Message) {
        if let Ok(permit) = self.budget.clone().try_acquire_owned() {
            // A closed queue means the socket is ending; nothing to ping then.
            let _ = self.tx.try_send((msg, permit));
        }
    }
}

pub async fn write_loop(
    sink: Sink,
    mut rx: mailbox::Receiver<Queued>,
    mut close_rx: oneshot::Receiver<(u16, &'static str)>,
) {
    loop {
        tokio::select! {
            biased;
            close = &mut close_rx => {
                let mut sink = sink.lock().await;
                if let Ok((code, reason)) = close {
                    let frame = CloseFrame { code, reason: Utf8Bytes::from_static(reason) };
                    // The peer may already be gone; nothing more to do either way.
                    let _ = sink.send(Message::Close(Some(frame))).await;
                }
                let _ = sink.close().await;
                return;
            }
            ready = rx.ready() => {
                let mut sink = sink.lock().await;
                if !ready {
                    let _ = sink.close().await;
                    return;
                }
                // Items are taken only under the lock, so a reply written directly (which
                // checks for an empty queue under the same lock) can never overtake them.
                while let Some((msg, permit)) = rx.try_recv() {
                    if sink.feed(msg).await.is_err() {
                        return;
                    }
                    drop(permit);
                }
                if sink.flush().await.is_err() {
                    return;
                }
            }
        }
    }
}

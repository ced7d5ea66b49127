//! The forwarder behind every watch: takes one document's changes from its subscription
//! and pushes what the watcher may see to a socket's queue or an SSE stream, resyncing a
//! watcher that fell behind and ending the watch when its access goes.
//!
//! Why here and not with the `watch` command: it runs for the watch's whole life on the
//! output runtime and serves WebSocket and SSE alike (`start` too); the command only asks.
//!
//! Atomic start: subscribe to the hub first, then read the snapshot; changes at or below the
//! snapshot's version are skipped. Since the writer updates the cache before it publishes,
//! the snapshot is never older than a change published before the subscription: no gap, no
//! duplicate. Resuming (`since`) replays the change log up to that snapshot, then goes live
//! from the same subscription.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::Utf8Bytes;
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::SendTimeoutError;

use super::{Change, Mode, Subscription, change_frame};
use crate::auth::Control;
use crate::connection::{Outbound, QueueError, close};
use crate::error::Error;
use crate::frame::{ErrorBody, Reply, View, encode};
use crate::state::AppState;
use crate::store::{Access, Fields, Replay, Store, Version};

/// A watch request, however it arrived (WebSocket `watch`, or an SSE stream).
pub struct WatchRequest {
    pub viewer: String,
    pub target: String,
    pub fields: Option<Fields>,
    pub since: Option<Version>,
    /// Which life of a named document `since` counts in (`metadata.incarnation`); a resume
    /// into another one gets a resync.
    pub incarnation: Option<String>,
    pub mode: Mode,
    /// An admin's watch through the admin API: reads whatever the document's lists say.
    pub as_admin: bool,
}

impl WatchRequest {
    fn may_read(&self, doc: &crate::store::Document) -> bool {
        self.as_admin || doc.access(&self.viewer) >= Access::Read
    }
}

/// What a new watch starts with: the reply to send, then the forwarder to run.
pub struct Started<T> {
    pub reply: Reply,
    /// The watched document's incarnation (named documents), for SSE event ids.
    pub incarnation: Option<String>,
    pub watcher: Watcher<T>,
}

/// Subscribes, reads the snapshot, checks access and prepares any replay.
///
/// # Errors
/// `Unauthorized` (no such user or no read access), `Unavailable`.
pub async fn start<T: WatchSink>(
    state: &AppState,
    req: WatchRequest,
    out: Output<T>,
) -> Result<Started<T>, Error> {
    let subscription = state.hub.subscribe(&req.target);
    let doc = state
        .store
        .document(&req.target)
        .await?
        .filter(|d| req.may_read(d))
        .ok_or(Error::Unauthorized)?;
    let current = doc.version();
    let incarnation = doc.metadata.incarnation.clone();
    let mut backlog = Vec::new();
    let reply = match req.since {
        None => Reply::data(View::new(doc, req.fields.as_ref()), true),
        Some(since) => {
            let with_data = req.mode == Mode::Full;
            // From 0 without an incarnation is from the start of whichever life the document
            // is in: nothing was seen of it (a stream's reader starts so). Given one, it must
            // be this life's.
            let fresh = since == 0 && req.incarnation.is_none();
            let replay = if !fresh && doc.metadata.incarnation != req.incarnation {
                Replay::Gap // the document was deleted and created again since
            } else if since <= current {
                state
                    .store
                    .replay(&req.target, since, current, with_data)
                    .await?
            } else {
                Replay::Gap // the client is ahead of us (e.g. after a restore)
            };
            match replay {
                Replay::Gap => {
                    let mut reply = Reply::data(View::new(doc, req.fields.as_ref()), true);
                    if let Reply::Data { resync, .. } = &mut reply {
                        *resync = true;
                    }
                    reply
                }
                Replay::Versions(versions) => {
                    for (entry, data) in versions {
                        let frame = match &data {
                            Some(d) => change_frame(d, Some(&entry), req.fields.as_ref(), req.mode),
                            None => encode(
                                None,
                                &Reply::change(&req.target, Some(&entry), entry.version, None),
                            ),
                        };
                        backlog.push(Push {
                            frame,
                            version: Some(entry.version),
                            kind: PushKind::Change,
                        });
                    }
                    let (username, name) = crate::frame::split_key(&req.target);
                    Reply::Watching {
                        username,
                        name,
                        since,
                        version: current,
                    }
                }
            }
        }
    };
    Ok(Started {
        reply,
        incarnation,
        watcher: Watcher {
            subscription,
            backlog,
            last: current,
            req,
            out,
            store: state.store.clone(),
        },
    })
}

/// One frame a watch sends, with what SSE needs to label it.
pub struct Push {
    pub frame: Utf8Bytes,
    /// The document version it brings (the SSE event id).
    pub version: Option<Version>,
    pub kind: PushKind,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PushKind {
    Change,
    Resync,
    /// The watch ended (access revoked); nothing follows.
    Ended,
}

/// Where a watcher's frames go: a socket's queue, or an SSE stream's channel.
pub trait WatchSink: Send + Sync + 'static {
    /// Sends `pushes` in order, waiting at most `wait` for room for each.
    fn push(
        &self,
        pushes: Vec<Push>,
        wait: Duration,
    ) -> impl Future<Output = Result<(), QueueError>> + Send;
}

impl WatchSink for Outbound {
    fn push(
        &self,
        pushes: Vec<Push>,
        wait: Duration,
    ) -> impl Future<Output = Result<(), QueueError>> + Send {
        self.send_now(pushes.into_iter().map(|p| p.frame), wait)
    }
}

impl WatchSink for mpsc::Sender<Push> {
    async fn push(&self, pushes: Vec<Push>, wait: Duration) -> Result<(), QueueError> {
        for push in pushes {
            self.send_timeout(push, wait).await.map_err(|e| match e {
                SendTimeoutError::Timeout(_) => QueueError::Full,
                SendTimeoutError::Closed(_) => QueueError::Closed,
            })?;
        }
        Ok(())
    }
}

/// Where a watcher's frames go, and what to do when that queue stays full.
pub struct Output<T> {
    pub sink: T,
    pub metrics: std::sync::Arc<crate::metrics::Metrics>,
    /// Told to close the socket (4008) when the queue stays full; `None` simply ends the watch.
    pub control: Option<crate::mailbox::Sender<Control>>,
    pub slow: Duration,
}

/// Forwards one document's changes to one consumer until the watch ends.
pub struct Watcher<T> {
    subscription: Subscription,
    /// Replayed history, sent before anything live.
    backlog: Vec<Push>,
    last: Version,
    req: WatchRequest,
    out: Output<T>,
    store: Store,
}

enum Step {
    Continue,
    Stop,
}

impl<T: WatchSink> Watcher<T> {
    pub fn target(&self) -> &str {
        &self.req.target
    }

    pub async fn run(mut self) {
        let backlog = std::mem::take(&mut self.backlog);
        if let Step::Stop = self.push_all(backlog).await {
            return;
        }
        let mut changes = Vec::new();
        loop {
            if self.subscription.recv_many(&mut changes).await.is_err() {
                if let Step::Stop = self.resync().await {
                    return;
                }
                continue;
            }
            if let Step::Stop = self.forward(&mut changes).await {
                return;
            }
        }
    }

    /// Sends what `changes` brings this watcher, emptying it. The usual case, each the next
    /// version with access unchanged, goes out as one batch (one socket write for a watcher
    /// that fell behind); anything else takes the slow path after the batch so far.
    async fn forward(&mut self, changes: &mut Vec<Arc<Change>>) -> Step {
        let mut batch = Vec::new();
        for change in changes.drain(..) {
            if change.is_deletion() {
                if let Step::Stop = self.push_all(std::mem::take(&mut batch)).await {
                    return Step::Stop;
                }
                return self.ended(Error::NotFound, "deleted").await;
            }
            let version = change.version();
            if version <= self.last {
                continue;
            }
            if version == self.last + 1
                && let Some(push) = self.next(&change)
            {
                batch.push(push);
                continue;
            }
            if let Step::Stop = self.push_all(std::mem::take(&mut batch)).await {
                return Step::Stop;
            }
            let step = if version == self.last + 1 {
                self.revoked().await // `next` refused it: it took this viewer's access
            } else {
                // Versions this watcher has not seen (in cluster mode, a notification that
                // came late or was missed): read them from the change log, in order.
                self.fill(&change).await
            };
            if let Step::Stop = step {
                return Step::Stop;
            }
        }
        self.push_all(batch).await
    }

    /// The frame for `change`, the version right after the last one sent, counted as sent;
    /// `None` when that version took the viewer's access away.
    fn next(&mut self, change: &Change) -> Option<Push> {
        if change.changes_access() && !self.req.may_read(change.doc()) {
            return None;
        }
        self.last = change.version();
        Some(Push {
            frame: change.frame(self.req.fields.as_ref(), self.req.mode),
            version: Some(self.last),
            kind: PushKind::Change,
        })
    }

    /// Sends the versions between the last one sent and `change` from the change log, then
    /// `change`; a log trimmed past them means a resync instead.
    async fn fill(&mut self, change: &Change) -> Step {
        let upto = change.version() - 1;
        let replay = self
            .store
            .replay(&self.req.target, self.last, upto, true)
            .await;
        let versions = match replay {
            Ok(Replay::Versions(versions)) => versions,
            Ok(Replay::Gap) => return self.resync().await,
            Err(e) => {
                tracing::error!(error = %e, target = %self.req.target, "reading missed versions failed");
                return self.resync().await;
            }
        };
        for (entry, doc) in versions {
            let Some(doc) = doc else {
                return self.resync().await;
            };
            let sets_access = entry.op.collaborators.is_some() || entry.op.readers.is_some();
            if sets_access && !self.req.may_read(&doc) {
                return self.revoked().await;
            }
            let frame = change_frame(&doc, Some(&entry), self.req.fields.as_ref(), self.req.mode);
            self.last = entry.version;
            if let Step::Stop = self
                .push(Push {
                    frame,
                    version: Some(self.last),
                    kind: PushKind::Change,
                })
                .await
            {
                return Step::Stop;
            }
        }
        if self.last + 1 == change.version() {
            match self.next(change) {
                Some(push) => self.push(push).await,
                None => self.revoked().await,
            }
        } else {
            self.resync().await
        }
    }

    async fn resync(&mut self) -> Step {
        self.subscription.skip_to_latest();
        let doc = match self.store.document(&self.req.target).await {
            Ok(Some(doc)) => doc,
            Ok(None) => return self.revoked().await,
            Err(e) => {
                tracing::error!(error = %e, target = %self.req.target, "resync read failed");
                return Step::Stop;
            }
        };
        if !self.req.may_read(&doc) {
            return self.revoked().await;
        }
        // Never go backwards: a read that is not newer than what was sent has nothing to add,
        // and the next change this watcher receives fills any gap from the change log.
        if doc.version() <= self.last {
            return Step::Continue;
        }
        self.last = doc.version();
        let frame = encode(
            None,
            &Reply::resync(View::new(doc, self.req.fields.as_ref())),
        );
        self.push(Push {
            frame,
            version: Some(self.last),
            kind: PushKind::Resync,
        })
        .await
    }

    /// The viewer lost access: end this watch with an error saying so.
    async fn revoked(&mut self) -> Step {
        self.ended(Error::Unauthorized, "access revoked").await
    }

    /// Ends this watch with a pushed `error` naming the document and why.
    async fn ended(&mut self, error: Error, detail: &str) -> Step {
        self.out
            .metrics
            .errors
            .with_label_values(&[error.code()])
            .inc();
        let mut body = ErrorBody::from(&error);
        body.target = Some(self.req.target.clone());
        body.detail = Some(detail.into());
        let frame = encode(None, &Reply::Error(body));
        self.push(Push {
            frame,
            version: None,
            kind: PushKind::Ended,
        })
        .await;
        Step::Stop
    }

    async fn push(&mut self, push: Push) -> Step {
        self.push_all(vec![push]).await
    }

    /// Sends frames in order; a consumer whose queue stays full past the timeout is cut off.
    async fn push_all(&mut self, pushes: Vec<Push>) -> Step {
        if pushes.is_empty() {
            return Step::Continue;
        }
        let count = |kind| pushes.iter().filter(|p| p.kind == kind).count() as u64;
        let (changes, resyncs) = (count(PushKind::Change), count(PushKind::Resync));
        match self.out.sink.push(pushes, self.out.slow).await {
            Ok(()) => {
                self.out.metrics.deliveries.inc_by(changes + resyncs);
                self.out.metrics.resyncs.inc_by(resyncs);
                Step::Continue
            }
            Err(QueueError::Full) => {
                self.out.metrics.slow_consumers.inc();
                if let Some(control) = &self.out.control {
                    // If the control queue is full the socket is being closed already.
                    let _ = control.try_send(Control::Close(close::SLOW_CONSUMER, "slow consumer"));
                }
                Step::Stop
            }
            Err(QueueError::Closed) => Step::Stop,
        }
    }
}

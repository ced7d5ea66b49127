//! `watch` and `unwatch`, and the forwarder that pushes each committed version to a watcher.
//!
//! Atomic start: subscribe to the hub first, then read the snapshot; changes at or below the
//! snapshot's version are skipped. Since the writer updates the cache before it publishes,
//! the snapshot is never older than a change published before the subscription: no gap, no
//! duplicate.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::Message;
use serde::Deserialize;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::SendTimeoutError;

use super::read::parse_fields;
use crate::auth::Control;
use crate::connection::close;
use crate::error::Error;
use crate::fanout::Subscription;
use crate::frame::{ErrorBody, Reply, View, encode};
use crate::session::Session;
use crate::store::{Access, Document, Fields, Store, Version};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Watch {
    target: Option<String>,
    fields: Option<Vec<String>>,
}

impl Watch {
    pub async fn apply(self, session: &mut Session) -> Result<Reply, Error> {
        let (me, target) = session.target(self.target)?;
        let fields = parse_fields(self.fields.as_deref())?;
        session.watches.retain(|_, h| !h.is_finished());
        let limit = session.state.limits.max_watches;
        if session.watches.len() >= limit && !session.watches.contains_key(&target) {
            return Err(Error::TooManyWatches(limit));
        }
        let subscription = session.state.hub.subscribe(&target);
        let doc = session
            .state
            .store
            .document(&target)
            .await?
            .filter(|d| d.access(&me) >= Access::Read)
            .ok_or(Error::Unauthorized)?;
        // Replacing an existing watch of the same document drops (and so stops) the old one
        // when the new one is inserted.
        session.pending_watch = Some(Watcher {
            subscription,
            last: doc.version(),
            viewer: me,
            target,
            fields: fields.clone(),
            out: session.out.clone(),
            control: session.control.clone(),
            store: session.state.store.clone(),
            slow: session.state.limits.slow_consumer_timeout,
        });
        Ok(Reply::data(View::new(doc, fields.as_ref()), true))
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Unwatch {
    target: Option<String>,
}

impl Unwatch {
    pub fn apply(self, session: &mut Session) -> Result<Reply, Error> {
        let (_, target) = session.target(self.target)?;
        session.watches.remove(&target);
        Ok(Reply::Unwatch { username: target })
    }
}

/// Forwards one document's changes to one socket until the watch ends.
pub struct Watcher {
    subscription: Subscription,
    last: Version,
    viewer: String,
    target: String,
    fields: Option<Fields>,
    out: mpsc::Sender<Message>,
    control: mpsc::Sender<Control>,
    store: Store,
    slow: Duration,
}

enum Step {
    Continue,
    Stop,
}

impl Watcher {
    pub fn target(&self) -> &str {
        &self.target
    }

    pub async fn run(mut self) {
        loop {
            let step = match self.subscription.recv().await {
                Ok(change) if change.version() <= self.last => Step::Continue,
                Ok(change) if change.version() == self.last + 1 => {
                    if change.doc().access(&self.viewer) < Access::Read {
                        self.revoked().await
                    } else {
                        let frame = change.frame(self.fields.as_ref());
                        self.last = change.version();
                        self.push(Message::Text(frame)).await
                    }
                }
                // A gap (should not happen) or falling behind: send the newest state instead.
                Ok(_) | Err(RecvError::Lagged(_)) => self.resync().await,
                Err(RecvError::Closed) => Step::Stop,
            };
            if let Step::Stop = step {
                return;
            }
        }
    }

    async fn resync(&mut self) -> Step {
        let doc = match self.store.document(&self.target).await {
            Ok(Some(doc)) => doc,
            Ok(None) => return self.revoked().await,
            Err(e) => {
                tracing::error!(error = %e, target = %self.target, "resync read failed");
                return Step::Stop;
            }
        };
        if doc.access(&self.viewer) < Access::Read {
            return self.revoked().await;
        }
        self.last = doc.version();
        let frame = self.resync_frame(doc);
        self.push(Message::Text(frame)).await
    }

    fn resync_frame(&self, doc: Arc<Document>) -> axum::extract::ws::Utf8Bytes {
        encode(
            None,
            &Reply::change(View::new(doc, self.fields.as_ref()), true),
        )
    }

    /// The viewer lost access: end this watch with an error saying so.
    async fn revoked(&mut self) -> Step {
        let mut body = ErrorBody::from(&Error::Unauthorized);
        body.target = Some(self.target.clone());
        body.detail = Some("access revoked".into());
        self.push(Message::Text(encode(None, &Reply::Error(body))))
            .await;
        Step::Stop
    }

    /// Queues a frame; a socket whose queue stays full past the timeout is closed (4008).
    async fn push(&mut self, msg: Message) -> Step {
        match self.out.send_timeout(msg, self.slow).await {
            Ok(()) => Step::Continue,
            Err(SendTimeoutError::Timeout(_)) => {
                // If the control queue is full the socket is being closed already.
                let _ = self
                    .control
                    .try_send(Control::Close(close::SLOW_CONSUMER, "slow consumer"));
                Step::Stop
            }
            Err(SendTimeoutError::Closed(_)) => Step::Stop,
        }
    }
}

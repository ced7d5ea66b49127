//! `watch` and `unwatch`: starting a watch (the forwarder that then pushes each committed
//! version is `fanout/watcher.rs`).
//!
//! Atomic start: subscribe to the hub first, then read the snapshot; changes at or below the
//! snapshot's version are skipped. Since the writer updates the cache before it publishes,
//! the snapshot is never older than a change published before the subscription: no gap, no
//! duplicate. Resuming (`since`) replays the change log up to that snapshot, then goes live
//! from the same subscription.

use serde::Deserialize;

use super::read::parse_fields;
use crate::error::Error;
pub use crate::fanout::watcher::{Output, Push, PushKind, WatchRequest, WatchSink, Watcher};
use crate::fanout::{Mode, change_frame};
use crate::frame::{Reply, View, encode};
use crate::session::Session;
use crate::state::AppState;
use crate::store::{Access, Replay, Version};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Watch {
    target: Option<String>,
    fields: Option<Vec<String>>,
    /// The last version the client has; replay from the next one.
    since: Option<Version>,
    #[serde(default)]
    mode: WatchMode,
}

#[derive(Debug, Default, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WatchMode {
    #[default]
    Full,
    Ops,
}

impl From<WatchMode> for Mode {
    fn from(m: WatchMode) -> Mode {
        match m {
            WatchMode::Full => Mode::Full,
            WatchMode::Ops => Mode::Ops,
        }
    }
}

/// What a new watch starts with: the reply to send, then the forwarder to run.
pub struct Started<T> {
    pub reply: Reply,
    pub watcher: Watcher<T>,
}

impl Watch {
    pub async fn apply(self, session: &mut Session) -> Result<Reply, Error> {
        let (me, target) = session.target(self.target)?;
        let fields = parse_fields(self.fields.as_deref())?;
        if fields.is_some() && matches!(self.mode, WatchMode::Ops) {
            return Err(Error::BadRequest(
                "mode \"ops\" sends whole-document operations; it cannot be combined with fields"
                    .into(),
            ));
        }
        session.watches.retain(|_, h| !h.is_finished());
        let limit = session.state.limits.max_watches;
        if session.watches.len() >= limit && !session.watches.contains_key(&target) {
            return Err(Error::TooManyWatches(limit));
        }
        let request = WatchRequest {
            viewer: me,
            target,
            fields,
            since: self.since,
            mode: self.mode.into(),
        };
        let out = Output {
            sink: session.out.clone(),
            metrics: session.state.metrics.clone(),
            control: Some(session.control.clone()),
            slow: session.state.limits.slow_consumer_timeout,
        };
        let started = start(&session.state, request, out).await?;
        // Replacing an existing watch of the same document drops (and so stops) the old one
        // when the new one is inserted, after the reply is queued.
        session.pending_watch = Some(started.watcher);
        Ok(started.reply)
    }
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
        .filter(|d| d.access(&req.viewer) >= Access::Read)
        .ok_or(Error::Unauthorized)?;
    let current = doc.version();
    let mut backlog = Vec::new();
    let reply = match req.since {
        None => Reply::data(View::new(doc, req.fields.as_ref()), true),
        Some(since) => {
            let with_data = req.mode == Mode::Full;
            let replay = if since <= current {
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
                    Reply::Watching {
                        username: req.target.clone(),
                        since,
                        version: current,
                    }
                }
            }
        }
    };
    Ok(Started {
        reply,
        watcher: Watcher::new(
            subscription,
            backlog,
            current,
            req,
            out,
            state.store.clone(),
        ),
    })
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

//! `watch` and `unwatch` over WebSocket: checking the request and the socket's watch limit.
//! Starting a watch and forwarding its changes (shared with SSE) is `fanout/watcher.rs`.

use serde::Deserialize;

use super::read::parse_fields;
use crate::error::Error;
use crate::fanout::Mode;
use crate::fanout::watcher::{Output, WatchRequest, start};
use crate::frame::Reply;
use crate::session::Session;
use crate::store::Version;

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

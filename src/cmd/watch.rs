//! `watch` and `unwatch` over WebSocket: checking the request and the socket's watch limit.
//! Starting a watch and forwarding its changes (shared with SSE) is `fanout/watcher.rs`.

use serde::Deserialize;

use super::read::parse_fields;
use super::{Context, Effect, Outcome};
use crate::error::Error;
use crate::fanout::Mode;
use crate::fanout::watcher::{Output, WatchRequest, start};
use crate::frame::Reply;
use crate::store::Version;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Watch {
    target: Option<String>,
    fields: Option<Vec<String>>,
    /// The last version the client has; replay from the next one.
    since: Option<Version>,
    /// With `since` on a named document: the `incarnation` its versions were counted in.
    incarnation: Option<String>,
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
    pub async fn apply(self, cx: &Context<'_>) -> Result<Outcome, Error> {
        let (me, target) = cx.target(self.target)?;
        let fields = parse_fields(self.fields.as_deref())?;
        if fields.is_some() && matches!(self.mode, WatchMode::Ops) {
            return Err(Error::BadRequest(
                "mode \"ops\" sends whole-document operations; it cannot be combined with fields"
                    .into(),
            ));
        }
        let limit = cx.state.limits.max_watches;
        let live = cx.watches.values().filter(|h| !h.is_finished()).count();
        if live >= limit && !cx.watches.contains_key(&target) {
            return Err(Error::TooManyWatches(limit));
        }
        let request = WatchRequest {
            viewer: me,
            target,
            fields,
            since: self.since,
            incarnation: self.incarnation,
            mode: self.mode.into(),
            as_admin: false,
        };
        let out = Output {
            sink: cx.out.clone(),
            metrics: cx.state.metrics.clone(),
            control: Some(cx.control.clone()),
            slow: cx.state.limits.slow_consumer_timeout,
        };
        let started = start(cx.state, request, out).await?;
        Ok(Outcome::then(
            started.reply,
            Effect::Watch(Box::new(started.watcher)),
        ))
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Unwatch {
    target: Option<String>,
}

impl Unwatch {
    pub fn apply(self, cx: &Context<'_>) -> Result<Outcome, Error> {
        // `unwatch` of the change feed (`feed`) stops it.
        if self.target.as_deref() == Some(super::feed::KEY) {
            let me = cx.user()?.sub.clone();
            let reply = Reply::Unwatch {
                username: me,
                name: Some(super::feed::KEY.to_owned()),
            };
            return Ok(Outcome::then(
                reply,
                Effect::Unwatch(super::feed::KEY.into()),
            ));
        }
        let (_, target) = cx.target(self.target)?;
        let (username, name) = crate::frame::split_key(&target);
        let reply = Reply::Unwatch { username, name };
        Ok(Outcome::then(reply, Effect::Unwatch(target)))
    }
}

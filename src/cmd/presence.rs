//! `presence`: who is looking at a document, and saying that I am (`presence/` keeps it).

use std::sync::Arc;

use serde::Deserialize;
use serde_json::value::RawValue;

use super::{Context, Effect, Outcome};
use crate::auth::Control;
use crate::connection::close;
use crate::error::Error;
use crate::frame::{Reply, split_key};
use crate::presence::{MAX_STATE_BYTES, Refusal};
use crate::store::Access;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PresenceCmd {
    target: Option<String>,
    #[serde(default)]
    action: Action,
    /// With `join`: what to show of me (≤ 1 KiB of JSON; `{}` when left out).
    state: Option<Box<RawValue>>,
}

#[derive(Debug, Default, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Action {
    /// Who is present (and, on a socket watching the document, pushes from now on).
    #[default]
    List,
    /// I am present, with `state`; again to change the state.
    Join,
    /// I am no longer present (still hearing who is).
    Leave,
}

impl PresenceCmd {
    pub async fn apply(self, cx: &Context<'_>) -> Result<Outcome, Error> {
        let (me, target) = cx.target(self.target)?;
        // Anyone who may read the document may ask; strangers learn nothing, as for `fetch`.
        cx.state
            .store
            .document(&target)
            .await?
            .filter(|d| d.access(&me) >= Access::Read)
            .ok_or(Error::Unauthorized)?;
        let watching = cx.watches.get(&target).is_some_and(|h| !h.is_finished());
        let presence = &cx.state.presence;
        if watching {
            let wait = cx.state.limits.slow_consumer_timeout;
            presence.listen(&target, &me, cx.conn, || {
                let (out, control) = (cx.out.clone(), cx.control.clone());
                // The queue stays full, or too much waits: the socket is not reading, and goes
                // as a watch's would.
                let stuck = move || {
                    let _ = control.try_send(Control::Close(close::SLOW_CONSUMER, "too slow"));
                };
                Arc::new(move |frame| out.push(frame.clone(), wait, &stuck))
            });
        }
        match self.action {
            Action::List => {}
            Action::Join => {
                if !watching {
                    return Err(Error::BadRequest(
                        "watch the document first: presence is for sockets that watch it".into(),
                    ));
                }
                let state = match self.state {
                    Some(state) => state,
                    None => RawValue::from_string("{}".into())
                        .map_err(|e| Error::BadRequest(e.to_string()))?,
                };
                presence
                    .join(&target, &me, cx.conn, state)
                    .map_err(|refused| match refused {
                        Refusal::TooLarge => Error::TooLarge {
                            limit: MAX_STATE_BYTES,
                        },
                        Refusal::RateLimited => Error::RateLimited { retry_after: 1 },
                    })?;
            }
            Action::Leave => presence.leave(&target, cx.conn),
        }
        let (username, name) = split_key(&target);
        let (present, seq) = presence.list(&target);
        let reply = Reply::Presence {
            username,
            name,
            present,
            seq,
        };
        Ok(match watching {
            true => Outcome::then(reply, Effect::Present(target)),
            false => Outcome::reply(reply),
        })
    }
}

//! `append` and `read`: a stream's events over the socket (`streams.rs`). Watching one is
//! `watch` with its target: each event arrives as a `change` whose `op.append` holds it.

use serde::Deserialize;
use serde_json::Value;

use super::Context;
use crate::error::Error;
use crate::frame::{Reply, split_key};
use crate::streams::{self, DEFAULT_PAGE, Position};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Append {
    /// The stream: `owner/~name`.
    target: String,
    event: Value,
    #[serde(rename = "opId")]
    op_id: Option<String>,
}

impl Append {
    pub async fn apply(self, cx: &Context<'_>) -> Result<Reply, Error> {
        let (me, target) = cx.target(Some(self.target))?;
        cx.user()?.can_write()?;
        let (seq, id) = streams::append(cx.state, &me, &target, self.event, self.op_id).await?;
        let (username, name) = split_key(&target);
        Ok(Reply::Appended {
            username,
            name: name.unwrap_or_default(),
            seq,
            event_id: id,
        })
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Read {
    target: String,
    /// After this sequence number or event id (exclusive).
    from: Option<Value>,
    /// Up to this one (inclusive).
    to: Option<Value>,
    limit: Option<usize>,
}

impl Read {
    pub async fn apply(self, cx: &Context<'_>) -> Result<Reply, Error> {
        let (me, target) = cx.target(Some(self.target))?;
        let from = self.from.as_ref().map(Position::parse).transpose()?;
        let to = self.to.as_ref().map(Position::parse).transpose()?;
        let limit = self.limit.unwrap_or(DEFAULT_PAGE);
        let page = streams::read(cx.state, &me, &target, from, to, limit).await?;
        let (username, name) = split_key(&target);
        Ok(Reply::Events {
            username,
            name: name.unwrap_or_default(),
            page,
        })
    }
}

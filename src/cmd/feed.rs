//! `feed`: the change feed pushed to an admin's socket (`feed.rs`), from a cursor on.

use serde::Deserialize;

use super::{Context, Effect, Outcome};
use crate::error::Error;
use crate::frame::Reply;

/// Where the socket's feed is kept among its watches, so that `unwatch`, signing out and
/// closing end it as they end watches.
pub const KEY: &str = "~feed";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Feed {
    /// The cursor of the last change already handled (none: from the oldest kept).
    after: Option<u64>,
}

impl Feed {
    pub fn apply(self, cx: &Context<'_>) -> Result<Outcome, Error> {
        let me = cx.user()?;
        if me.scope != crate::store::Scope::Full || !cx.state.auth.flags.is_admin(&me.sub) {
            return Err(Error::Forbidden);
        }
        let after = self.after.unwrap_or(0);
        Ok(Outcome::then(Reply::Feeding { after }, Effect::Feed(after)))
    }
}

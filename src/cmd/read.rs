//! `fetch`: the document, or some fields of it.

use serde::Deserialize;

use super::Context;
use crate::error::Error;
use crate::frame::{Reply, View};
use crate::store::{Access, Fields};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fetch {
    target: Option<String>,
    fields: Option<Vec<String>>,
}

impl Fetch {
    pub async fn apply(self, cx: &Context<'_>) -> Result<Reply, Error> {
        let (me, target) = cx.target(self.target)?;
        let fields = parse_fields(self.fields.as_deref())?;
        let doc = cx
            .state
            .store
            .document(&target)
            .await?
            .filter(|d| d.access(&me) >= Access::Read)
            .ok_or(Error::Unauthorized)?;
        Ok(Reply::data(View::new(doc, fields.as_ref()), false))
    }
}

/// # Errors
/// `BadRequest` for empty segments, too many or too long paths.
pub fn parse_fields(fields: Option<&[String]>) -> Result<Option<Fields>, Error> {
    fields
        .map(Fields::parse)
        .transpose()
        .map_err(Error::BadRequest)
}

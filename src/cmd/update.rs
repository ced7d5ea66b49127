//! `update`: replace, merge-patch or JSON-patch a document at a known version, and/or change
//! who may access it.

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use serde::de::Error as _;
use serde::{Deserialize, Deserializer};
use serde_json::Value;

use super::Context;
use crate::error::Error;
use crate::frame::Reply;
use crate::names;
use crate::store::{Edit, Update, Version};

/// Longest `collaborators` or `readers` list: Hearth shares with a household or a small team.
pub const MAX_ACCESS_LIST: usize = 256;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateCmd {
    target: Option<String>,
    data: UpdateData,
    #[serde(default)]
    patch: PatchMode,
    /// The client's id for this operation: a retry of one that committed is answered with
    /// the version it made, not applied again (`store/ops.rs`).
    #[serde(rename = "opId")]
    op_id: Option<String>,
}

/// Extra fields (`username`, `createdAt`, ...) are ignored here on purpose: clients often send
/// back the metadata they fetched.
#[derive(Debug, Deserialize)]
struct UpdateData {
    metadata: UpdateMeta,
    userdata: Option<Value>,
}

#[derive(Debug, Deserialize)]
struct UpdateMeta {
    version: Version,
    collaborators: Option<Vec<String>>,
    readers: Option<Vec<String>>,
}

#[derive(Debug, Default, Clone, Copy, PartialEq)]
enum PatchMode {
    #[default]
    Replace,
    Merge,
    JsonPatch,
}

impl<'de> Deserialize<'de> for PatchMode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Value::deserialize(d)? {
            Value::Null | Value::Bool(false) => Ok(PatchMode::Replace),
            Value::Bool(true) => Ok(PatchMode::Merge),
            Value::String(s) if s == "replace" => Ok(PatchMode::Replace),
            Value::String(s) if s == "merge" => Ok(PatchMode::Merge),
            Value::String(s) if s == "json-patch" => Ok(PatchMode::JsonPatch),
            _ => Err(D::Error::custom(
                "patch must be false, true, \"merge\" or \"json-patch\"",
            )),
        }
    }
}

impl UpdateCmd {
    /// Runs the update on its own, waiting for its reply. (A socket's loop submits updates
    /// itself, so that several may be queued.)
    pub async fn apply(self, cx: &Context<'_>) -> Result<Reply, Error> {
        let (_, reply) = self.submit(cx)?;
        reply.await
    }

    /// Queues the update behind the socket's earlier ones and returns the wait for its reply,
    /// and whether it was queued (if not, await it before reading on: see `Store::submit`).
    ///
    /// # Errors
    /// What `check` refuses.
    pub fn submit(self, cx: &Context<'_>) -> Result<(bool, Pending), Error> {
        let update = self.check(cx)?;
        let target = update.target.clone();
        // Only the owner may change the lists (the store refuses anyone else, and that
        // refusal comes first: strangers learn nothing about which names exist).
        if names::owner_of(&update.target) == update.by
            && (update.collaborators.is_some() || update.readers.is_some())
        {
            // Sharing is rare; checking the names needs the store, so such an update is
            // committed on its own rather than queued.
            let store = cx.state.store.clone();
            let reply = async move {
                known_accounts(&store, &update).await?;
                version_reply(&target, store.commit(update).await)
            };
            return Ok((false, reply.boxed()));
        }
        let (queued, outcome) = cx.state.store.submit(update);
        let reply = async move { version_reply(&target, outcome.await) };
        Ok((queued, reply.boxed()))
    }

    /// Who may send it and whether it is well formed; the document's own checks (version,
    /// access, size) are the store's.
    fn check(self, cx: &Context<'_>) -> Result<Update, Error> {
        let (me, target) = cx.target(self.target)?;
        cx.user()?.can_write()?;
        if let Some(userdata) = &self.data.userdata {
            crate::error::check_depth(userdata, cx.state.limits.max_depth)?;
        }
        let edit = self
            .data
            .userdata
            .map(|u| edit(self.patch, u))
            .transpose()?;
        if let Some(op_id) = &self.op_id {
            crate::store::ops::validate(op_id).map_err(Error::BadRequest)?;
        }
        let collaborators = access_list("collaborators", self.data.metadata.collaborators)?;
        let readers = access_list("readers", self.data.metadata.readers)?;
        if edit.is_none() && collaborators.is_none() && readers.is_none() {
            return Err(Error::BadRequest(
                "nothing to update: give userdata, collaborators or readers".into(),
            ));
        }
        Ok(Update {
            target,
            by: me,
            base: Some(self.data.metadata.version),
            edit,
            collaborators,
            readers,
            op_id: self.op_id,
            as_admin: false,
        })
    }
}

/// The `version` reply: the version committed, or the one a retried operation made the
/// first time (answered exactly as then).
fn version_reply(
    target: &str,
    outcome: Result<std::sync::Arc<crate::store::Committed>, crate::store::StoreError>,
) -> Result<Reply, Error> {
    let version = match outcome {
        Ok(committed) => committed.doc.version(),
        Err(crate::store::StoreError::AlreadyApplied { version }) => version,
        Err(e) => return Err(e.into()),
    };
    let (username, name) = crate::frame::split_key(target);
    Ok(Reply::Version {
        username,
        name,
        version,
    })
}

/// An update's reply, once its commit is done.
pub type Pending = BoxFuture<'static, Result<Reply, Error>>;

fn edit(mode: PatchMode, userdata: Value) -> Result<Edit, Error> {
    let object = |v: Value| match v {
        Value::Object(map) => Ok(map),
        _ => Err(Error::BadRequest("userdata must be a JSON object".into())),
    };
    Ok(match mode {
        PatchMode::Replace => Edit::Replace(object(userdata)?),
        PatchMode::Merge => Edit::Merge(object(userdata)?),
        PatchMode::JsonPatch => Edit::JsonPatch(serde_json::from_value(userdata).map_err(|e| {
            Error::BadRequest(format!(
                "with patch \"json-patch\", userdata is an RFC 6902 array: {e}"
            ))
        })?),
    })
}

pub(super) fn access_list(
    name: &str,
    list: Option<Vec<String>>,
) -> Result<Option<Vec<String>>, Error> {
    let Some(list) = list else { return Ok(None) };
    if list.len() > MAX_ACCESS_LIST {
        return Err(Error::BadRequest(format!(
            "{name} holds at most {MAX_ACCESS_LIST} usernames"
        )));
    }
    for user in &list {
        names::validate(user).map_err(|why| Error::BadRequest(format!("{name}: {why}")))?;
    }
    Ok(Some(list))
}

/// Access lists name existing accounts only: otherwise whoever later signs up under a
/// mistyped name (`typo-friend-92157`) would read or write the document.
///
/// # Errors
/// `UnknownUsers` naming each missing account; `Unavailable`.
pub(super) async fn known_accounts(
    store: &crate::store::Store,
    update: &Update,
) -> Result<(), Error> {
    let mut listed: Vec<String> = update.collaborators.clone().unwrap_or_default();
    listed.extend(update.readers.clone().unwrap_or_default());
    let mut unknown: Vec<String> = Vec::new();
    for name in &listed {
        if !unknown.contains(name) && store.user(name).await?.is_none() {
            unknown.push(name.clone());
        }
    }
    if unknown.is_empty() {
        Ok(())
    } else {
        Err(Error::UnknownUsers(unknown))
    }
}

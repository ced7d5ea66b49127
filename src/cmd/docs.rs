//! `create`, `delete` and `list`: an account's named documents. Reading, updating and
//! watching one is what the other commands do, given `target: "owner/name"`.

use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::Context;
use super::update::{access_list, known_accounts};
use crate::error::Error;
use crate::frame::{Reply, View};
use crate::names::Target;
use crate::store::{Listed, NewDoc, SharedDoc, Update};

/// Most entries of either list in one `list` reply, and the default.
pub const MAX_LIST_PAGE: usize = 500;

/// The caller's own named document given as `name` or as `target: "me/name"`.
///
/// # Errors
/// `BadRequest` for a missing or invalid name; `Unauthorized` for another user's space.
fn own_doc(
    cx: &Context<'_>,
    name: Option<String>,
    target: Option<String>,
) -> Result<Target, Error> {
    let me = &cx.user()?.sub;
    let target = match (name, target) {
        (Some(name), None) => {
            crate::names::validate_doc(&name).map_err(Error::BadRequest)?;
            Target {
                owner: me.clone(),
                name: Some(name),
            }
        }
        (None, Some(target)) => Target::parse(&target).ok_or(Error::Unauthorized)?,
        _ => {
            return Err(Error::BadRequest(
                "give the document's name, or its target \"owner/name\"".into(),
            ));
        }
    };
    if target.name.is_none() {
        return Err(Error::BadRequest(
            "the default document is the account's own; name a document".into(),
        ));
    }
    if target.owner != *me {
        return Err(Error::Unauthorized);
    }
    Ok(target)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Create {
    name: Option<String>,
    target: Option<String>,
    userdata: Option<Map<String, Value>>,
    collaborators: Option<Vec<String>>,
    readers: Option<Vec<String>>,
}

impl Create {
    pub async fn apply(self, cx: &Context<'_>) -> Result<Reply, Error> {
        cx.user()?.can_write()?;
        let target = own_doc(cx, self.name, self.target)?;
        let collaborators = access_list("collaborators", self.collaborators)?.unwrap_or_default();
        let readers = access_list("readers", self.readers)?.unwrap_or_default();
        let probe = Update {
            target: target.key(),
            by: target.owner.clone(),
            base: None,
            edit: None,
            collaborators: Some(collaborators.clone()),
            readers: Some(readers.clone()),
            op_id: None,
            as_admin: false,
        };
        known_accounts(&cx.state.store, &probe).await?;
        let doc = cx
            .state
            .store
            .create_doc(NewDoc {
                owner: target.owner,
                name: target.name.unwrap_or_default(),
                userdata: self.userdata.unwrap_or_default(),
                collaborators,
                readers,
            })
            .await?;
        Ok(Reply::data(View::new(doc, None), false))
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Delete {
    name: Option<String>,
    target: Option<String>,
}

impl Delete {
    pub async fn apply(self, cx: &Context<'_>) -> Result<Reply, Error> {
        cx.user()?.can_write()?;
        let target = own_doc(cx, self.name, self.target)?;
        cx.state.store.delete_doc(&target.key()).await?;
        Ok(Reply::Deleted {
            username: target.owner,
            name: target.name.unwrap_or_default(),
        })
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct List {
    /// The last `name` of the previous page of `documents`.
    after: Option<String>,
    /// The last key (`owner` or `owner/name`) of the previous page of `shared`.
    shared_after: Option<String>,
    limit: Option<usize>,
}

impl List {
    pub async fn apply(self, cx: &Context<'_>) -> Result<Reply, Error> {
        let me = cx.user()?.sub.clone();
        let limit = self.limit.unwrap_or(MAX_LIST_PAGE).clamp(1, MAX_LIST_PAGE);
        let page = list(
            &cx.state.store,
            &me,
            self.after.as_deref().unwrap_or(""),
            self.shared_after.as_deref().unwrap_or(""),
            limit,
        )
        .await?;
        Ok(Reply::List {
            documents: page.documents,
            shared: page.shared,
            next: page.next,
            shared_next: page.shared_next,
        })
    }
}

/// One page of `list`, as the WebSocket and REST forms both answer it.
pub struct Page {
    pub documents: Vec<Listed>,
    pub shared: Vec<Value>,
    pub next: Option<String>,
    pub shared_next: Option<String>,
}

/// # Errors
/// `Unavailable`.
pub async fn list(
    store: &crate::store::Store,
    me: &str,
    after: &str,
    shared_after: &str,
    limit: usize,
) -> Result<Page, Error> {
    let (documents, next) = documents_page(store, me, after, limit).await?;
    let (shared, shared_next) = shared_page(store, me, shared_after, limit).await?;
    Ok(Page {
        documents,
        shared,
        next,
        shared_next,
    })
}

/// `me`'s named documents after `after`, and the `after` of the next page.
///
/// # Errors
/// `Unavailable`.
pub async fn documents_page(
    store: &crate::store::Store,
    me: &str,
    after: &str,
    limit: usize,
) -> Result<(Vec<Listed>, Option<String>), Error> {
    let docs = store.documents(me, after, limit).await?;
    let next = (docs.len() == limit)
        .then(|| docs.last().map(|d| d.name.clone()))
        .flatten();
    Ok((docs, next))
}

/// Documents shared with `me` after key `after`, and the `after` of the next page.
///
/// # Errors
/// `Unavailable`.
pub async fn shared_page(
    store: &crate::store::Store,
    me: &str,
    after: &str,
    limit: usize,
) -> Result<(Vec<Value>, Option<String>), Error> {
    let (shared, next) = store.shared_with(me, after, limit).await?;
    Ok((shared.iter().map(shared_entry).collect(), next))
}

fn shared_entry(s: &SharedDoc) -> Value {
    let m = &s.doc.metadata;
    let mut entry = json!({
        "owner": m.username,
        "role": s.role.role_name(),
        "version": m.version,
        "lastUpdate": m.last_update,
    });
    if let (Some(name), Value::Object(map)) = (&m.name, &mut entry) {
        map.insert("name".into(), Value::String(name.clone()));
    }
    entry
}

//! Webhooks (issue 32): a POST to an owner's URL for each change of their documents and
//! streams (an admin's: of every document), signed with the webhook's secret.
//!
//! A webhook is a consumer of the change feed with a cursor of its own, kept in its record
//! in the store: its deliverer (`deliver.rs`) reads the feed after that cursor, posts each
//! matching change in order, and moves the cursor only once the receiver said 2xx. So the
//! feed is the durable outbox: deliveries survive restarts and `kill -9`, keep their order
//! per webhook, never hold up a commit, and a retry carries the same delivery id (webhook,
//! cursor) for the receiver to drop a duplicate. After [`MAX_FAILURES`] failures in a row
//! the webhook is paused, with the last error, until its owner resumes it.

pub mod address;
pub mod deliver;
pub mod running;
pub mod turn;

use serde::{Deserialize, Serialize};

use crate::store::backend::FeedItem;

/// Failed attempts in a row after which a webhook is paused.
pub const MAX_FAILURES: u32 = 8;
/// Webhooks one account may hold.
pub const MAX_PER_ACCOUNT: usize = 20;

/// A webhook as stored.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Hook {
    pub id: String,
    /// Whose it is: their documents are the ones it sees (all, if `global`).
    pub owner: String,
    /// An admin's, for every document.
    pub global: bool,
    pub url: String,
    /// Document keys it is about (`ann`, `ann/notes`, `ann/~activity`); empty: all of the
    /// owner's (all, if global).
    pub docs: Vec<String>,
    /// `update` (a document's version), `append` (a stream's event); empty: both.
    pub events: Vec<String>,
    /// The HMAC key, shown once, at creation.
    pub secret: String,
    pub created_at: String,
    /// The feed cursor of the last change it handled.
    pub cursor: u64,
    /// Why it is paused, if it is.
    pub paused: Option<String>,
    /// Failed attempts in a row, and the last one's error.
    pub failures: u32,
    pub last_error: Option<String>,
    pub delivered: u64,
}

impl Hook {
    /// Whether the change `item` is one this webhook posts.
    pub fn wants(&self, item: &FeedItem) -> bool {
        let owner = crate::names::owner_of(&item.key);
        if !self.global && owner != self.owner {
            return false;
        }
        if !self.docs.is_empty() && !self.docs.contains(&item.key) {
            return false;
        }
        let kind = match &item.entry {
            Some(e) if e.op.append.is_some() => "append",
            _ => "update",
        };
        self.events.is_empty() || self.events.iter().any(|e| e == kind)
    }

    /// What its owner and the admin API see: everything but the secret.
    pub fn shown(&self) -> serde_json::Value {
        let mut v = serde_json::json!(self);
        if let Some(map) = v.as_object_mut() {
            map.remove("secret");
        }
        v
    }
}

/// The body posted for `item`: `{delivery, webhook, cursor, username, name?, version, at,
/// by, op, opId?}`, or with `resync: true` for a version the log no longer holds.
pub fn payload(hook: &Hook, item: &FeedItem) -> serde_json::Value {
    let (username, name) = crate::frame::split_key(&item.key);
    let mut v = serde_json::json!({
        "delivery": delivery_id(hook, item.cursor),
        "webhook": hook.id,
        "cursor": item.cursor,
        "username": username,
        "version": item.version,
    });
    if let Some(name) = name {
        v["name"] = name.into();
    }
    match &item.entry {
        Some(e) => {
            v["at"] = e.at.clone().into();
            v["by"] = e.by.clone().into();
            v["op"] = serde_json::json!(e.op);
            if let Some(op_id) = &e.op_id {
                v["opId"] = op_id.clone().into();
            }
        }
        None => v["resync"] = true.into(),
    }
    v
}

/// The same on every attempt of one change: the receiver's key for dropping duplicates.
pub fn delivery_id(hook: &Hook, cursor: u64) -> String {
    format!("{}-{cursor}", hook.id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::model::{Appended, LogEntry, Op};

    fn item(key: &str, append: bool) -> FeedItem {
        let op = Op {
            append: append.then(|| Appended {
                id: "x".into(),
                event: serde_json::json!(1),
            }),
            ..Op::default()
        };
        FeedItem {
            cursor: 7,
            key: key.into(),
            version: 3,
            entry: Some(LogEntry {
                version: 3,
                at: "t".into(),
                by: "ann".into(),
                op,
                op_id: None,
            }),
        }
    }

    #[test]
    fn a_webhook_sees_its_owners_documents_and_kinds() {
        let mut hook = Hook {
            id: "h".into(),
            owner: "ann".into(),
            global: false,
            url: "http://x/".into(),
            docs: vec![],
            events: vec![],
            secret: "s".into(),
            created_at: "t".into(),
            cursor: 0,
            paused: None,
            failures: 0,
            last_error: None,
            delivered: 0,
        };
        assert!(hook.wants(&item("ann", false)));
        assert!(hook.wants(&item("ann/~log", true)));
        assert!(!hook.wants(&item("bob", false)), "not hers");
        hook.events = vec!["append".into()];
        assert!(!hook.wants(&item("ann", false)));
        hook.docs = vec!["ann/~log".into()];
        assert!(hook.wants(&item("ann/~log", true)));
        assert!(!hook.wants(&item("ann/~other", true)));
        hook.global = true;
        hook.docs.clear();
        assert!(
            hook.wants(&item("bob/~x", true)),
            "an admin's sees everyone's"
        );
        assert_eq!(payload(&hook, &item("bob/~x", true))["delivery"], "h-7");
        assert!(hook.shown().get("secret").is_none());
    }
}

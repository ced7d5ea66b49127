//! The wire format: JSON text frames, decoded and encoded here and nowhere else.
//!
//! Decoding has two stages, as in mini-redis: [`Frame::parse`] takes the envelope (`id`,
//! `type`) and leaves the rest as a JSON object for the command to read. The envelope keeps
//! the request's `id` even when the body is invalid, so the error still reaches the request
//! that caused it.

use std::sync::Arc;

use axum::extract::ws::Utf8Bytes;
use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};
use serde_json::{Map, Value};

use crate::error::Error;
use crate::store::{Document, Fields, LogEntry, Op, Version};

/// A decoded client frame.
#[derive(Debug)]
pub struct Frame {
    /// Echoed on every reply; a number or a string.
    pub id: Option<Value>,
    pub kind: String,
    /// Everything except `id` and `type`.
    pub body: Map<String, Value>,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum FrameError {
    #[error("invalid JSON: {0}")]
    Json(String),
    #[error("a frame must be a JSON object")]
    NotObject,
    #[error("a frame needs a string \"type\"")]
    MissingType,
    #[error("\"id\" must be a number or a string")]
    BadId,
}

impl Frame {
    /// # Errors
    /// The frame is not a JSON object with a string `type`; carries the `id` when it could
    /// be read.
    pub fn parse(text: &str) -> Result<Frame, (Option<Value>, FrameError)> {
        let value: Value =
            serde_json::from_str(text).map_err(|e| (None, FrameError::Json(e.to_string())))?;
        let Value::Object(mut body) = value else {
            return Err((None, FrameError::NotObject));
        };
        let id = match body.remove("id") {
            None | Some(Value::Null) => None,
            Some(id @ (Value::Number(_) | Value::String(_))) => Some(id),
            Some(_) => return Err((None, FrameError::BadId)),
        };
        match body.remove("type") {
            Some(Value::String(kind)) => Ok(Frame { id, kind, body }),
            _ => Err((id, FrameError::MissingType)),
        }
    }
}

/// The document part of a `data` or `change` frame: full metadata, and `userdata` either
/// whole or projected onto fields.
#[derive(Debug)]
pub struct View {
    doc: Arc<Document>,
    projected: Option<Map<String, Value>>,
}

impl View {
    pub fn new(doc: Arc<Document>, fields: Option<&Fields>) -> View {
        let projected = fields.map(|f| f.project(&doc.userdata));
        View { doc, projected }
    }
}

impl Serialize for View {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(2))?;
        map.serialize_entry("metadata", &self.doc.metadata)?;
        map.serialize_entry(
            "userdata",
            self.projected.as_ref().unwrap_or(&self.doc.userdata),
        )?;
        map.end()
    }
}

/// Every frame the server sends.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Reply {
    /// Reply to `signup`, `login` and `auth`.
    Auth {
        username: String,
        token: String,
    },
    /// Reply to `update`: the version it committed.
    Version {
        username: String,
        /// A named document's name (`username` is its owner); absent for the default one.
        #[serde(skip_serializing_if = "Option::is_none")]
        name: Option<String>,
        version: Version,
    },
    /// Reply to `fetch`, and to `watch` (then `watching` is true) with the snapshot the
    /// watch starts from; `resync` when a `since` could not be honoured.
    Data {
        username: String,
        /// A named document's name (`username` is its owner); absent for the default one.
        #[serde(skip_serializing_if = "Option::is_none")]
        name: Option<String>,
        version: Version,
        data: View,
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        watching: bool,
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        resync: bool,
    },
    /// Reply to `watch` with `since`: the versions `since + 1 ..= version` follow at once as
    /// `change` frames, then live ones.
    Watching {
        username: String,
        /// A named document's name (`username` is its owner); absent for the default one.
        #[serde(skip_serializing_if = "Option::is_none")]
        name: Option<String>,
        since: Version,
        version: Version,
    },
    /// A committed version pushed to a watcher: what changed (`op`, `at`, `by`) and the
    /// resulting document (`data`), either of which a watch may leave out. `resync` marks a
    /// snapshot sent because the watcher fell behind: versions before it were skipped.
    Change {
        username: String,
        /// A named document's name (`username` is its owner); absent for the default one.
        #[serde(skip_serializing_if = "Option::is_none")]
        name: Option<String>,
        version: Version,
        #[serde(skip_serializing_if = "Option::is_none")]
        at: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        by: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        op: Option<Op>,
        #[serde(skip_serializing_if = "Option::is_none")]
        data: Option<View>,
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        resync: bool,
    },
    /// Reply to `logout`.
    Logout {},
    /// Reply to `password`: the new password is in force and `ended` other sessions of the
    /// account were signed out.
    Password {
        ended: usize,
    },
    /// Pushed to every socket of a user a document was just shared with.
    Shared {
        owner: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        name: Option<String>,
        role: &'static str,
    },
    /// Pushed when that ends.
    Unshared {
        owner: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        name: Option<String>,
    },
    /// Reply to `create` is `data`; to `delete`, this.
    Deleted {
        username: String,
        name: String,
    },
    /// Reply to `list`.
    List {
        documents: Vec<crate::store::Listed>,
        shared: Vec<serde_json::Value>,
        /// Pass as `after` for the next page of `documents`, `sharedAfter` for `shared`;
        /// absent on the last page.
        #[serde(skip_serializing_if = "Option::is_none")]
        next: Option<String>,
        #[serde(rename = "sharedNext", skip_serializing_if = "Option::is_none")]
        shared_next: Option<String>,
    },
    /// Reply to `unwatch`.
    Unwatch {
        username: String,
        /// A named document's name (`username` is its owner); absent for the default one.
        #[serde(skip_serializing_if = "Option::is_none")]
        name: Option<String>,
    },
    /// Reply to `presence`: who is present on the document, longest there first.
    Presence {
        username: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        name: Option<String>,
        present: Vec<crate::presence::Person>,
        /// The room's change count this list is as of: a push with a higher `seq` came
        /// after it, even when it arrives first.
        seq: u64,
    },
    /// Reply to `append`: the event's place in the stream (`eventId`: `id` is the request's).
    Appended {
        username: String,
        name: String,
        seq: Version,
        #[serde(rename = "eventId")]
        event_id: String,
    },
    /// Reply to `feed`: `feed` pushes follow, from after this cursor.
    Feeding {
        after: u64,
    },
    /// Reply to `read`: a page of a stream's events.
    Events {
        username: String,
        name: String,
        #[serde(flatten)]
        page: crate::store::streams::Page,
    },
    Error(ErrorBody),
}

impl Reply {
    /// The frame's `type`, for metrics labels.
    pub fn kind(&self) -> &'static str {
        match self {
            Reply::Auth { .. } => "auth",
            Reply::Version { .. } => "version",
            Reply::Data { .. } => "data",
            Reply::Watching { .. } => "watching",
            Reply::Change { .. } => "change",
            Reply::Logout {} => "logout",
            Reply::Password { .. } => "password",
            Reply::Unwatch { .. } => "unwatch",
            Reply::Shared { .. } => "shared",
            Reply::Unshared { .. } => "unshared",
            Reply::Deleted { .. } => "deleted",
            Reply::List { .. } => "list",
            Reply::Presence { .. } => "presence",
            Reply::Appended { .. } => "appended",
            Reply::Events { .. } => "events",
            Reply::Feeding { .. } => "feeding",
            Reply::Error(_) => "error",
        }
    }

    /// A `change` frame for one committed version. `entry` supplies `at`, `by` and `op`;
    /// `data` the resulting document (at least one of the two must be given).
    pub fn change(
        key: &str,
        entry: Option<&LogEntry>,
        version: Version,
        data: Option<View>,
    ) -> Reply {
        let (username, name) = split_key(key);
        Reply::Change {
            username,
            name,
            version,
            at: entry.map(|e| e.at.clone()),
            by: entry.map(|e| e.by.clone()),
            op: entry.map(|e| e.op.clone()),
            data,
            resync: false,
        }
    }

    /// The newest state sent instead of versions a watcher missed.
    pub fn resync(data: View) -> Reply {
        Reply::Change {
            username: data.doc.owner().to_owned(),
            name: data.doc.metadata.name.clone(),
            version: data.doc.version(),
            at: None,
            by: None,
            op: None,
            data: Some(data),
            resync: true,
        }
    }

    pub fn data(data: View, watching: bool) -> Reply {
        Reply::Data {
            username: data.doc.owner().to_owned(),
            name: data.doc.metadata.name.clone(),
            version: data.doc.version(),
            data,
            watching,
            resync: false,
        }
    }
}

/// A document key (`owner` or `owner/name`) as frames carry it: `username` and `name`.
pub fn split_key(key: &str) -> (String, Option<String>) {
    match key.split_once('/') {
        Some((owner, name)) => (owner.to_owned(), Some(name.to_owned())),
        None => (key.to_owned(), None),
    }
}

#[derive(Debug, Serialize)]
pub struct ErrorBody {
    pub code: &'static str,
    pub message: String,
    /// The current version, with `version_mismatch`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<Version>,
    /// Seconds to wait, with `rate_limited`.
    #[serde(rename = "retryAfter", skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<u64>,
    /// The document concerned, on errors pushed outside a request (a watch that ended).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// Why, when the code alone does not say (`token revoked`, `access revoked`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// The names that do not exist, with `unknown_users`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub users: Option<Vec<String>>,
}

impl From<&Error> for ErrorBody {
    fn from(e: &Error) -> Self {
        ErrorBody {
            code: e.code(),
            message: e.to_string(),
            version: match e {
                Error::VersionMismatch { current } => Some(*current),
                _ => None,
            },
            retry_after: match e {
                Error::RateLimited { retry_after } => Some(*retry_after),
                _ => None,
            },
            target: None,
            detail: None,
            users: match e {
                Error::UnknownUsers(names) => Some(names.clone()),
                _ => None,
            },
        }
    }
}

#[derive(Serialize)]
struct Envelope<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a Value>,
    #[serde(flatten)]
    reply: &'a Reply,
}

/// Serializes a server frame, with the request's `id` when it answers one.
pub fn encode(id: Option<&Value>, reply: &Reply) -> Utf8Bytes {
    match serde_json::to_string(&Envelope { id, reply }) {
        Ok(text) => text.into(),
        // Only reachable if a map key were not a string; our types never produce one.
        Err(e) => {
            tracing::error!(error = %e, "encoding a frame failed");
            Utf8Bytes::from_static(
                r#"{"type":"error","code":"internal","message":"internal error"}"#,
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn envelope_keeps_id_when_type_is_missing() {
        let (id, err) = Frame::parse(r#"{"id": 7, "x": 1}"#).unwrap_err();
        assert_eq!(id, Some(json!(7)));
        assert_eq!(err, FrameError::MissingType);
        assert_eq!(Frame::parse("[1]").unwrap_err().1, FrameError::NotObject);
        assert_eq!(
            Frame::parse(r#"{"id":{},"type":"x"}"#).unwrap_err().1,
            FrameError::BadId
        );
    }

    #[test]
    fn encodes_id_first_and_omits_false_flags() {
        let text = encode(
            Some(&json!("a1")),
            &Reply::Version {
                username: "ann".into(),
                name: None,
                version: 3,
            },
        );
        assert_eq!(
            text.as_str(),
            r#"{"id":"a1","type":"version","username":"ann","version":3}"#
        );
        let doc = Arc::new(Document::new("ann", "t"));
        let text = encode(
            None,
            &Reply::change("ann", None, 0, Some(View::new(doc, None))),
        );
        let v: Value = serde_json::from_str(text.as_str()).unwrap();
        assert_eq!(v["type"], "change");
        assert!(v.get("resync").is_none());
        assert_eq!(v["data"]["metadata"]["version"], 0);
    }
}

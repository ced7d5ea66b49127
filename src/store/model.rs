//! Pure domain types: what a document is, who may touch it, and what an update asks for.
//!
//! Nothing here does I/O, so the same types serve the redb backend, the cache, the hub and
//! (later) other backends without conversion.

use std::num::NonZeroU32;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A document's version: 0 at signup, +1 per committed update.
pub type Version = u64;

/// A JSON document, exactly as clients see it: an account's default document (addressed by
/// its owner's name) or one of its named documents (`owner/name`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Document {
    pub metadata: Metadata,
    pub userdata: Map<String, Value>,
    /// Set only by `apply` on the version it makes; anything else that changes a document
    /// must reset it (`Bounds::default()`).
    #[serde(skip)]
    pub(super) bounds: Bounds,
}

/// Upper bounds on a document's serialized size and nesting depth, carried from each version
/// to the next so an update need not serialize and walk the whole document to check the
/// limits: for a merge or a path edit, the next version is at most as deep as the deeper of
/// the two, and larger by less than the edit's own log entry (`bounds::next_bounds`). The
/// size bound is re-measured once it passes twice the size last measured
/// (`bounds::drift_limit`), so it stays close enough to size documents by. `None` is unknown
/// (a document read from disk, or rebuilt from the log): the next update measures exactly. Never part of equality or of
/// the stored JSON.
#[derive(Clone, Copy, Debug, Default)]
pub struct Bounds {
    bytes: Option<NonZeroU32>,
    depth: Option<NonZeroU32>,
    /// The size last measured exactly, which `bytes` grew from (0: never).
    measured: u32,
}

impl Bounds {
    /// Bounds of `bytes` and `depth`, grown from a size last measured at `measured`; a
    /// figure past `u32` (or zero) is kept as unknown.
    pub fn new(bytes: usize, depth: usize, measured: usize) -> Bounds {
        let narrow = |n: usize| u32::try_from(n).ok().and_then(NonZeroU32::new);
        Bounds {
            bytes: narrow(bytes),
            depth: narrow(depth),
            measured: u32::try_from(measured).unwrap_or(0),
        }
    }

    pub fn measured(self) -> usize {
        self.measured as usize
    }

    pub fn bytes(self) -> Option<usize> {
        self.bytes.map(|n| n.get() as usize)
    }

    pub fn depth(self) -> Option<usize> {
        self.depth.map(|n| n.get() as usize)
    }
}

impl PartialEq for Bounds {
    fn eq(&self, _: &Bounds) -> bool {
        true
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Metadata {
    /// The owner.
    pub username: String,
    /// A named document's name; `None` for the account's default document, whose stored and
    /// sent JSON is exactly what it was before named documents existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Which life of `owner/name` this is: a fresh random id at each `create`, so that a
    /// client resuming with `since` after the document was deleted and created again gets
    /// a resync, never a version of the other one. `None` for default documents (their
    /// name cannot be reused while the account lives).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incarnation: Option<String>,
    pub version: Version,
    /// Read and write access to `userdata`.
    pub collaborators: Vec<String>,
    /// Read-only access. Beyond the seed; kept next to `collaborators` so one check covers both.
    #[serde(default)]
    pub readers: Vec<String>,
    pub created_at: String,
    pub last_update: LastUpdate,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LastUpdate {
    pub at: String,
    pub by: String,
}

/// What a user may do with a document. Ordered: each level includes the ones below it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Access {
    None,
    Read,
    Write,
    Owner,
}

impl Access {
    /// The role as clients see it in `list` and `shared` frames.
    pub fn role_name(self) -> &'static str {
        match self {
            Access::Owner => "owner",
            Access::Write => "write",
            Access::Read | Access::None => "read",
        }
    }
}

impl Document {
    /// A fresh document at version 0. `lastUpdate` is set to the creation so clients never
    /// have to handle a missing value.
    pub fn new(username: &str, now: &str) -> Self {
        Document {
            metadata: Metadata {
                username: username.to_owned(),
                name: None,
                incarnation: None,
                version: 0,
                collaborators: Vec::new(),
                readers: Vec::new(),
                created_at: now.to_owned(),
                last_update: LastUpdate {
                    at: now.to_owned(),
                    by: username.to_owned(),
                },
            },
            userdata: Map::new(),
            bounds: Bounds::default(),
        }
    }

    /// A document brought from elsewhere as it was (`hearth import`).
    pub fn imported(metadata: Metadata, userdata: Map<String, Value>) -> Self {
        Document {
            metadata,
            userdata,
            bounds: Bounds::default(),
        }
    }

    pub fn version(&self) -> Version {
        self.metadata.version
    }

    /// An upper bound on the serialized size, when this version carries one (versions made
    /// by an update do; versions read from storage may not).
    pub fn size_bound(&self) -> Option<usize> {
        self.bounds.bytes()
    }

    /// A fresh named document `owner/name` at version 0, in a new incarnation.
    pub fn named(owner: &str, name: &str, now: &str, incarnation: String) -> Self {
        let mut doc = Document::new(owner, now);
        doc.metadata.name = Some(name.to_owned());
        doc.metadata.incarnation = Some(incarnation);
        doc
    }

    pub fn owner(&self) -> &str {
        &self.metadata.username
    }

    /// Where the document is kept and watched: the owner's name for the default document,
    /// `owner/name` for a named one (usernames hold no `/`, so the two never meet).
    pub fn key(&self) -> std::borrow::Cow<'_, str> {
        match &self.metadata.name {
            None => std::borrow::Cow::Borrowed(&self.metadata.username),
            Some(name) => std::borrow::Cow::Owned(format!("{}/{}", self.metadata.username, name)),
        }
    }

    pub fn access(&self, user: &str) -> Access {
        let m = &self.metadata;
        if m.username == user {
            Access::Owner
        } else if m.collaborators.iter().any(|c| c == user) {
            Access::Write
        } else if m.readers.iter().any(|r| r == user) {
            Access::Read
        } else {
            Access::None
        }
    }
}

/// That a document is now shared with `user` as `role` (`Access::Read` or `Write`), or no
/// longer (`None`): what `shared` and `unshared` pushes tell that user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShareChange {
    pub user: String,
    pub role: Option<Access>,
}

impl Document {
    /// Each user the document is shared with and their role; a name on both lists is a
    /// collaborator.
    pub fn shared_with(&self) -> Vec<(&str, Access)> {
        let m = &self.metadata;
        let mut out: Vec<(&str, Access)> = m
            .collaborators
            .iter()
            .map(|u| (u.as_str(), Access::Write))
            .collect();
        for r in &m.readers {
            if !m.collaborators.contains(r) {
                out.push((r.as_str(), Access::Read));
            }
        }
        out.retain(|(u, _)| *u != m.username);
        out
    }
}

/// Whose access changed from `before` to `after` (either may be absent: created, deleted).
pub fn share_changes(before: Option<&Document>, after: Option<&Document>) -> Vec<ShareChange> {
    let old = before.map(Document::shared_with).unwrap_or_default();
    let new = after.map(Document::shared_with).unwrap_or_default();
    let mut out = Vec::new();
    for (user, role) in &new {
        if !old.contains(&(*user, *role)) {
            out.push(ShareChange {
                user: (*user).to_owned(),
                role: Some(*role),
            });
        }
    }
    for (user, _) in &old {
        if !new.iter().any(|(u, _)| u == user) {
            out.push(ShareChange {
                user: (*user).to_owned(),
                role: None,
            });
        }
    }
    out
}

/// How an update changes `userdata`.
#[derive(Clone, Debug, PartialEq)]
pub enum Edit {
    /// Replace `userdata` entirely.
    Replace(Map<String, Value>),
    /// RFC 7386 JSON merge patch: deep, `null` deletes.
    Merge(Map<String, Value>),
    /// RFC 6902 JSON Patch: the precise option.
    JsonPatch(json_patch::Patch),
    /// Edits at key paths (REST), applied in order, all or none.
    Paths(Vec<super::paths::PathEdit>),
    /// One event appended to a stream (`store/streams.rs`); the only edit a stream takes.
    Append(Value),
}

/// One requested change to one document, checked and applied by the store's writer.
#[derive(Clone, Debug)]
pub struct Update {
    /// The document's key ([`Document::key`]): its owner, or `owner/name`.
    pub target: String,
    /// Who asks; access is checked against the document as it is when the write happens.
    pub by: String,
    /// The version the client last saw; the update commits only if it is still current.
    /// `None` (REST without `If-Match`) commits on top of whatever is current.
    pub base: Option<Version>,
    pub edit: Option<Edit>,
    pub collaborators: Option<Vec<String>>,
    pub readers: Option<Vec<String>>,
    /// The client's id for this operation (`opId`, an `Idempotency-Key`): kept in the log
    /// entry, so a retry of an update that committed is answered with the version it made
    /// instead of being applied twice (`store/ops.rs`).
    pub op_id: Option<String>,
    /// An admin's edit through the admin API (`/v1/admin/doc`): allowed as a collaborator's
    /// write whatever the document's lists say, and recorded `by` the admin like any other.
    /// Never set from a client's frame.
    pub as_admin: bool,
}

impl Update {
    /// What `by` may do to `doc`: its own access, or a collaborator's for an admin's edit
    /// (an admin may change the data, never who may see it).
    pub fn access(&self, doc: &Document) -> Access {
        let own = doc.access(&self.by);
        if self.as_admin {
            own.max(Access::Write)
        } else {
            own
        }
    }
}

/// What a committed version did, as kept in the change log and sent to clients that apply
/// changes incrementally.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Op {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replace: Option<Map<String, Value>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub merge: Option<Map<String, Value>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub json_patch: Option<json_patch::Patch>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub collaborators: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub readers: Option<Vec<String>>,
    /// A stream's event (`store/streams.rs`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub append: Option<Appended>,
}

/// One appended event as its log entry holds it (`op.append`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Appended {
    /// SHA-256 (hex) of the event's canonical JSON and its sequence number.
    pub id: String,
    pub event: Value,
}

/// One row of the change log: `(username, version) → LogEntry`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LogEntry {
    pub version: Version,
    pub at: String,
    pub by: String,
    pub op: Op,
    /// The update's `opId`, if it carried one (after `op`: entries without one are stored
    /// and sent exactly as before).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub op_id: Option<String>,
}

/// An account. The document lives apart so reads of data never touch password hashes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UserRecord {
    pub username: String,
    /// PHC-format argon2id hash; `None` for generated accounts that only hold a token.
    pub password_hash: Option<String>,
    pub created_at: String,
}

/// A per-account flag an operator sets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flag {
    /// Tokens refused, sockets closed, logins refused.
    Disabled,
    /// May use `/v1/admin` (besides the accounts named in `ADMIN_USERS`).
    Admin,
}

/// A stored blob: its bytes live in a file named by `sha256`; this row says how big it is,
/// what type it was uploaded as, and how many accounts hold a reference to it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BlobRecord {
    pub size: u64,
    pub content_type: String,
    pub refs: u64,
    pub created_at: String,
}

/// One account's reference to a blob, as `GET /v1/blobs` lists it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BlobRef {
    pub sha256: String,
    pub size: u64,
}

/// What a token may do. `Read` tokens fetch and watch; every write is `forbidden`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    #[default]
    Full,
    Read,
    /// An integration's token: reads the change feed (if its account is an admin's) and
    /// nothing else (`http/feed.rs`).
    Feed,
}

impl Scope {
    pub fn is_full(&self) -> bool {
        *self == Scope::Full
    }
}

/// A signed-in session (one issued token), listed by `GET /v1/sessions`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionRecord {
    pub id: String,
    pub username: String,
    pub created_at: String,
    /// Unix seconds.
    pub expires: u64,
    pub scope: Scope,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_levels() {
        let mut d = Document::new("ann", "t");
        d.metadata.collaborators = vec!["bob".into()];
        d.metadata.readers = vec!["cat".into()];
        assert_eq!(d.access("ann"), Access::Owner);
        assert_eq!(d.access("bob"), Access::Write);
        assert_eq!(d.access("cat"), Access::Read);
        assert_eq!(d.access("dan"), Access::None);
    }
}

//! Event streams (seed 002, Apie's event store): append-only sequences of JSON events.
//!
//! A stream is a named document whose name starts with `~` (`ann/~activity`), not a second
//! store beside the documents. So it is owned, shared (collaborators append, readers read),
//! watched from a position with no gap and no duplicate, replayed over SSE with
//! `Last-Event-ID`, deleted, backed up and spread across a cluster's nodes by what already
//! does all that for documents. Each append is one version: its log entry holds the event
//! (`op.append`), its version is the event's sequence number, and the document itself stays
//! a two-field summary, so a stream of a million events is a small document with a long log.
//! Streams' logs are exempt from `CHANGELOG_RETAIN`/`CHANGELOG_MAX_AGE`: events go only with
//! the stream, or past `STREAM_RETAIN` (off by default).

use serde::Serialize;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

pub use super::model::Appended;
use super::model::{LogEntry, Version};

/// What marks a document name as a stream's.
pub const MARK: char = '~';

/// Whether the document at `key` (`owner/name`) is a stream.
pub fn is_stream(key: &str) -> bool {
    key.split_once('/')
        .is_some_and(|(_, name)| name.starts_with(MARK))
}

/// An event's id: SHA-256 over its canonical bytes (serde_json's: keys sorted, no spaces),
/// a newline and its position, so equal events at different places differ.
pub fn id_of(bytes: &[u8], seq: Version) -> String {
    let mut hasher = Sha256::new();
    hasher.update(bytes);
    hasher.update(b"\n");
    hasher.update(seq.to_string().as_bytes());
    hex(&hasher.finalize())
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::with_capacity(64), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// The stream document's `userdata` once event `id` is at `seq`.
pub fn summary(id: &str, seq: Version) -> Map<String, Value> {
    match json!({"lastId": id, "lastSeq": seq}) {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

/// One event as every surface shows it.
#[derive(Clone, Debug, Serialize)]
pub struct Event {
    pub seq: Version,
    pub id: String,
    pub at: String,
    pub by: String,
    pub event: Value,
}

impl Event {
    /// The event a log entry holds, if it is one (not a change of who may read).
    pub fn from_entry(entry: LogEntry) -> Option<Event> {
        let Appended { id, event } = entry.op.append?;
        Some(Event {
            seq: entry.version,
            id,
            at: entry.at,
            by: entry.by,
            event,
        })
    }
}

/// A page of events: those after `from` up to `to`, and where the next page starts.
#[derive(Debug, Serialize)]
pub struct Page {
    pub events: Vec<Event>,
    /// The stream's newest sequence number.
    pub seq: Version,
    /// The oldest event still kept (`STREAM_RETAIN`), if the log was ever trimmed; a reader
    /// whose position is older missed the events between.
    pub oldest: Option<Version>,
    /// The `from` of the following page (the last event's sequence number), or null.
    pub next: Option<Version>,
}

/// Whether `text` is an event id (64 lower-case hex digits) rather than a sequence number.
pub fn looks_like_id(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_depend_on_content_and_position_not_key_order() {
        let a: Value = serde_json::from_str(r#"{"b":1,"a":2}"#).unwrap();
        let b: Value = serde_json::from_str(r#"{"a":2,"b":1}"#).unwrap();
        let id_at = |v: &Value, seq| id_of(&serde_json::to_vec(v).unwrap(), seq);
        let id = id_at(&a, 1);
        assert_eq!(id, id_at(&b, 1));
        assert_ne!(id, id_at(&a, 2));
        assert!(looks_like_id(&id));
        assert!(!looks_like_id("12"));
        assert!(is_stream("ann/~activity"));
        assert!(!is_stream("ann/activity"));
        assert!(!is_stream("ann"));
    }
}

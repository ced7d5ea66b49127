//! Event streams for every surface (the `append` and `read` frames, `/v1/users/{u}/streams`,
//! Apie's `/events`): appending, reading a range, finding one event. How they are stored,
//! as documents whose log is their events, is `store/streams.rs`.

use std::sync::Arc;

use serde_json::Value;

use crate::error::Error;
use crate::state::AppState;
use crate::store::model::Access;
pub use crate::store::streams::{Event, Page};
use crate::store::streams::{is_stream, looks_like_id};
use crate::store::{Document, Edit, NewDoc, StoreError, Update, Version};

/// Events per `read` page unless asked otherwise, and the most one page holds.
pub const DEFAULT_PAGE: usize = 100;
pub const MAX_PAGE: usize = 1000;
/// Log entries read at a time while looking for an event by id.
const SCAN_PAGE: usize = 1000;

/// A position in a stream as a client names it: a sequence number or an event id.
#[derive(Clone, Debug, PartialEq)]
pub enum Position {
    Seq(Version),
    Id(String),
}

impl Position {
    /// `"12"`, `12` or an id.
    ///
    /// # Errors
    /// `BadRequest` for anything else.
    pub fn parse(value: &Value) -> Result<Position, Error> {
        match value {
            Value::Number(n) => n.as_u64().map(Position::Seq),
            Value::String(s) => Position::parse_str(s).ok(),
            _ => None,
        }
        .ok_or_else(Position::refused)
    }

    /// # Errors
    /// `BadRequest`.
    pub fn parse_str(text: &str) -> Result<Position, Error> {
        if looks_like_id(text) {
            return Ok(Position::Id(text.to_owned()));
        }
        text.parse()
            .map(Position::Seq)
            .map_err(|_| Position::refused())
    }

    fn refused() -> Error {
        Error::BadRequest("a position is a sequence number or an event id (64 hex digits)".into())
    }
}

/// The stream at `key` as `viewer` may see it: `Unauthorized` for anything that is not a
/// stream they may read (as for documents, a stranger learns nothing).
async fn readable(state: &AppState, viewer: &str, key: &str) -> Result<Arc<Document>, Error> {
    if !is_stream(key) {
        return Err(Error::Unauthorized);
    }
    state
        .store
        .document(key)
        .await?
        .filter(|d| d.access(viewer) >= Access::Read)
        .ok_or(Error::Unauthorized)
}

/// Appends `event` to the stream at `key` as `by`: its sequence number and id. The owner's
/// first append creates the stream. With `op_id`, a retry of an append that committed is
/// answered with the event it made, not appended again.
///
/// # Errors
/// `Unauthorized` (not a stream `by` may append to), `BadRequest`, `TooLarge`,
/// `TooManyDocuments` (creating it), `Unavailable`.
pub async fn append(
    state: &AppState,
    by: &str,
    key: &str,
    event: Value,
    op_id: Option<String>,
) -> Result<(Version, String), Error> {
    let target = crate::names::Target::parse(key).ok_or(Error::Unauthorized)?;
    if !is_stream(key) {
        return Err(Error::Unauthorized);
    }
    crate::error::check_depth(&event, state.limits.max_depth)?;
    if let Some(op_id) = &op_id {
        crate::store::ops::validate(op_id).map_err(Error::BadRequest)?;
    }
    let update = Update {
        target: key.to_owned(),
        by: by.to_owned(),
        base: None,
        edit: Some(Edit::Append(event)),
        collaborators: None,
        readers: None,
        op_id,
        as_admin: false,
    };
    let mut outcome = state.store.commit(update.clone()).await;
    // The owner's first append: the stream does not exist yet (the common case, one that
    // does, pays no lookup for this).
    if matches!(outcome, Err(StoreError::Unauthorized))
        && target.owner == by
        && state.store.document(key).await?.is_none()
    {
        let created = state
            .store
            .create_doc(NewDoc {
                owner: target.owner.clone(),
                name: target.name.clone().unwrap_or_default(),
                userdata: serde_json::Map::new(),
                collaborators: Vec::new(),
                readers: Vec::new(),
            })
            .await;
        match created {
            Ok(_) | Err(StoreError::AlreadyExists) => {}
            Err(e) => return Err(e.into()),
        }
        outcome = state.store.commit(update).await;
    }
    match outcome {
        Ok(committed) => {
            let entry = committed.entry.as_ref().and_then(|e| e.op.append.as_ref());
            let id = entry.map(|a| a.id.clone()).ok_or(Error::Internal)?;
            Ok((committed.doc.version(), id))
        }
        Err(StoreError::AlreadyApplied { version }) => {
            let history = state.store.changes(key, version, version, 1).await?;
            let id = history
                .entries
                .into_iter()
                .find_map(|e| e.op.append.map(|a| a.id))
                .ok_or(Error::Internal)?;
            Ok((version, id))
        }
        Err(e) => Err(e.into()),
    }
}

/// The events after `from` (exclusive; none: from the start) up to `to` (inclusive; none:
/// the newest), at most `limit`.
///
/// # Errors
/// `Unauthorized`, `NotFound` (an id not in the stream), `BadRequest`, `Unavailable`.
pub async fn read(
    state: &AppState,
    viewer: &str,
    key: &str,
    from: Option<Position>,
    to: Option<Position>,
    limit: usize,
) -> Result<Page, Error> {
    let doc = readable(state, viewer, key).await?;
    let newest = doc.version();
    let after = match from {
        None => 0,
        Some(p) => resolve(state, key, newest, p).await?,
    };
    let upto = match to {
        None => newest,
        Some(p) => resolve(state, key, newest, p).await?.min(newest),
    };
    let limit = limit.clamp(1, MAX_PAGE);
    let mut events = Vec::new();
    let mut oldest = None;
    let mut cursor = after + 1;
    // Entries that are not events (a change of who may read) take no place in a page.
    while cursor <= upto && events.len() < limit {
        let history = state
            .store
            .changes(key, cursor, upto, limit - events.len())
            .await?;
        oldest = oldest.or(history.oldest);
        let Some(last) = history.entries.last().map(|e| e.version) else {
            break;
        };
        events.extend(history.entries.into_iter().filter_map(Event::from_entry));
        cursor = last + 1;
    }
    let next = match events.last() {
        Some(last) if events.len() == limit && last.seq < upto => Some(last.seq),
        _ => None,
    };
    Ok(Page {
        events,
        seq: newest,
        oldest,
        next,
    })
}

/// One event by id or sequence number.
///
/// # Errors
/// `Unauthorized`, `NotFound`, `Unavailable`.
pub async fn get(state: &AppState, viewer: &str, key: &str, at: Position) -> Result<Event, Error> {
    let doc = readable(state, viewer, key).await?;
    let seq = resolve(state, key, doc.version(), at).await?;
    let history = state.store.changes(key, seq, seq, 1).await?;
    history
        .entries
        .into_iter()
        .find_map(Event::from_entry)
        .ok_or(Error::NotFound)
}

/// The sequence number of a position in a stream `viewer` may read.
///
/// # Errors
/// `Unauthorized`, `NotFound`, `Unavailable`.
pub async fn seq_of(
    state: &AppState,
    viewer: &str,
    key: &str,
    at: Position,
) -> Result<Version, Error> {
    let doc = readable(state, viewer, key).await?;
    resolve(state, key, doc.version(), at).await
}

/// A position's sequence number. An id is looked for in the log, newest pages last: a
/// byte search per entry would be cheaper, but the log pages come parsed, and a stream's
/// reader names the id it saw last, usually near the end.
async fn resolve(
    state: &AppState,
    key: &str,
    newest: Version,
    at: Position,
) -> Result<Version, Error> {
    let id = match at {
        Position::Seq(seq) => return Ok(seq),
        Position::Id(id) => id,
    };
    let mut upto = newest;
    while upto > 0 {
        let from = upto.saturating_sub(SCAN_PAGE as u64 - 1).max(1);
        let history = state.store.changes(key, from, upto, SCAN_PAGE).await?;
        if let Some(entry) = history
            .entries
            .iter()
            .find(|e| e.op.append.as_ref().is_some_and(|a| a.id == id))
        {
            return Ok(entry.version);
        }
        if history.oldest.is_some_and(|o| o >= from) || from == 1 {
            break;
        }
        upto = from - 1;
    }
    Err(Error::NotFound)
}

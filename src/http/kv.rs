//! Flat key-value entries kept in a named document, for the key-value surfaces (Kopano kvs,
//! Rivet): each key is one top-level member of `userdata`, whatever slashes it holds, so
//! `profile` and `profile/bio` are two independent keys, and each value keeps its content
//! type. Every write is an ordinary versioned update, so these documents can be watched,
//! shared, resumed and backed up like any other.
//!
//! An entry is stored as Kopano returns it, less the key:
//! `{"content_type": "application/json", "value": <the JSON>}`, or for any other type
//! `{"content_type": "image/png", "value": "<Base64 of the bytes>"}`: byte for byte.

use axum::body::Bytes;
use axum::http::{HeaderMap, header};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Map, Value, json};

use super::error::ApiError;
use crate::auth::Claims;
use crate::error::Error;
use crate::state::AppState;
use crate::store::paths::PathEdit;
use crate::store::{Committed, Document, Edit, NewDoc, StoreError, Update};

pub const JSON: &str = "application/json";
/// Longest key, in bytes.
pub const MAX_KEY: usize = 1024;

/// A value as it arrived: its bytes and content type (`application/octet-stream` if none).
pub fn entry_from(headers: &HeaderMap, bytes: &Bytes) -> Result<Value, ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/octet-stream")
        .trim()
        .to_owned();
    entry(&content_type, bytes)
}

/// The stored form of `bytes` of `content_type`.
///
/// # Errors
/// `bad_request` for a body declared JSON that is not.
pub fn entry(content_type: &str, bytes: &[u8]) -> Result<Value, ApiError> {
    let value = if is_json(content_type) {
        serde_json::from_slice(bytes)
            .map_err(|e| ApiError(Error::BadRequest(format!("invalid JSON body: {e}"))))?
    } else {
        Value::String(BASE64.encode(bytes))
    };
    Ok(json!({"content_type": content_type, "value": value}))
}

/// The stored form of a value already in envelope form (a Kopano batch entry): JSON as it
/// is, anything else Base64 text, checked.
///
/// # Errors
/// `bad_request` for a non-JSON value that is not Base64 text.
pub fn entry_of_value(content_type: &str, value: Value) -> Result<Value, ApiError> {
    if !is_json(content_type) {
        let valid = value.as_str().is_some_and(|t| BASE64.decode(t).is_ok());
        if !valid {
            return Err(Error::BadRequest("a value that is not JSON is Base64 text".into()).into());
        }
    }
    Ok(json!({"content_type": content_type, "value": value}))
}

pub fn is_json(content_type: &str) -> bool {
    content_type
        .split(';')
        .next()
        .is_some_and(|t| t.trim().eq_ignore_ascii_case(JSON))
}

/// A stored entry's content type and bytes (JSON re-serialized; others decoded).
pub fn raw_of(entry: &Value) -> Option<(String, Vec<u8>)> {
    let content_type = entry.get("content_type")?.as_str()?.to_owned();
    let value = entry.get("value")?;
    let bytes = if is_json(&content_type) {
        serde_json::to_vec(value).ok()?
    } else {
        BASE64.decode(value.as_str()?).ok()?
    };
    Some((content_type, bytes))
}

/// A key as given, checked: non-empty, not too long.
pub fn checked_key(key: &str) -> Result<String, ApiError> {
    if key.is_empty() || key.len() > MAX_KEY {
        return Err(Error::BadRequest(format!("a key is 1 to {MAX_KEY} bytes")).into());
    }
    Ok(key.to_owned())
}

/// The entries of `doc` whose keys start with `prefix`, in key order.
pub fn entries_with<'a>(doc: &'a Document, prefix: &str) -> Vec<(&'a String, &'a Value)> {
    let mut out: Vec<(&String, &Value)> = doc
        .userdata
        .iter()
        .filter(|(k, _)| k.starts_with(prefix))
        .collect();
    out.sort_by(|a, b| a.0.cmp(b.0));
    out
}

/// `edits` to document `doc_key` by the caller, at whatever version is current.
fn paths_update(claims: &Claims, doc_key: String, edits: Vec<PathEdit>) -> Update {
    Update {
        target: doc_key,
        by: claims.sub.clone(),
        base: None,
        edit: Some(Edit::Paths(edits)),
        collaborators: None,
        readers: None,
        op_id: None,
        as_admin: false,
    }
}

/// Removes entry `key` from document `doc_key`.
///
/// # Errors
/// `not_found` (no such entry), `unauthorized` (no such document, or not the caller's to
/// write), `forbidden` (a read-only token).
pub async fn delete_entry(
    state: &AppState,
    claims: &Claims,
    doc_key: String,
    key: &str,
) -> Result<std::sync::Arc<Committed>, ApiError> {
    claims.can_write()?;
    let edit = PathEdit::Delete {
        path: vec![checked_key(key)?],
    };
    Ok(state
        .store
        .commit(paths_update(claims, doc_key, vec![edit]))
        .await?)
}

/// Commits `edits` (each on one top-level key) to the caller's own named document `name`,
/// creating the document first if it does not exist yet.
///
/// # Errors
/// What the update or the create refuse with.
pub async fn write_own(
    state: &AppState,
    claims: &Claims,
    owner: &str,
    name: &str,
    edits: Vec<PathEdit>,
) -> Result<std::sync::Arc<Committed>, ApiError> {
    claims.can_write()?;
    let key = format!("{owner}/{name}");
    let update = paths_update(claims, key.clone(), edits);
    match state.store.commit(update.clone()).await {
        Err(StoreError::Unauthorized)
            if owner == claims.sub && state.store.document(&key).await?.is_none() =>
        {
            let created = state
                .store
                .create_doc(NewDoc {
                    owner: owner.to_owned(),
                    name: name.to_owned(),
                    userdata: Map::new(),
                    collaborators: Vec::new(),
                    readers: Vec::new(),
                })
                .await;
            match created {
                Ok(_) | Err(StoreError::AlreadyExists) => Ok(state.store.commit(update).await?),
                Err(e) => Err(e.into()),
            }
        }
        other => Ok(other?),
    }
}

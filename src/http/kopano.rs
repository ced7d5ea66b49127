//! Kopano kvs (seed `001`): `/api/kvs/v1/kv/user/{collection}/{key…}` on the caller's own
//! space. A collection is the caller's named document `{collection}`, created by its first
//! PUT; a key is one flat entry in it (`kv.rs`). Kopano's envelope, its `raw`, `recurse` and
//! `batch` parameters, and its statuses (DELETE 200, then 404), with Hearth's Bearer tokens.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::IntoParams;

use super::auth::Caller;
use super::body;
use super::data::readable;
use super::error::ApiError;
use super::kv::{
    checked_key, delete_entry, entries_with, entry_from, entry_of_value, raw_of, write_own,
};
use crate::error::Error;
use crate::state::AppState;
use crate::store::paths::PathEdit;

/// Entries a `recurse=1` read returns at most (Kopano's figure).
const MAX_RECURSE: usize = 500;

#[derive(Debug, Default, Deserialize, IntoParams)]
pub struct KvQuery {
    /// `1`: the stored value itself, not the envelope.
    raw: Option<String>,
    /// `1`: every entry whose key starts with this one.
    recurse: Option<String>,
    /// `1` (PUT): a JSON array of `{key, value, content_type}` entries, in one version.
    batch: Option<String>,
}

fn on(flag: Option<&String>) -> bool {
    matches!(flag.map(String::as_str), Some("1" | "true"))
}

/// `collection/key…` → the collection (a document name) and the key within it ("" if none).
fn split(path: &str) -> Result<(String, String), ApiError> {
    let (collection, key) = path.split_once('/').unwrap_or((path, ""));
    crate::names::validate_doc(collection).map_err(|why| ApiError(Error::BadRequest(why)))?;
    if collection.starts_with(crate::store::streams::MARK) {
        return Err(Error::BadRequest("a collection name does not start with ~".into()).into());
    }
    Ok((collection.to_owned(), key.to_owned()))
}

/// Reads one entry (`{key, value, content_type}`, or the stored value with `raw=1`), or with
/// `recurse=1` every entry under the key (at most 500).
#[utoipa::path(get, path = "/api/kvs/v1/kv/user/{key}", params(("key" = String, Path, description = "collection/key/path"), KvQuery),
    responses((status = 200), (status = 404)), tag = "kopano")]
pub async fn get(
    State(state): State<AppState>,
    Caller(claims): Caller,
    Path(path): Path<String>,
    Query(q): Query<KvQuery>,
) -> Result<Response, ApiError> {
    let (collection, key) = split(&path)?;
    // No such collection: no such key either (but a storage failure stays one).
    let doc = readable(&state, &claims.sub, &format!("{}/{collection}", claims.sub))
        .await
        .map_err(|e| match e.0 {
            Error::Unauthorized => ApiError(Error::NotFound),
            _ => e,
        })?;
    let envelope = |k: &String, v: &Value| json!({"key": format!("{collection}/{k}"), "value": v["value"], "content_type": v["content_type"]});
    if on(q.recurse.as_ref()) {
        let found: Vec<Value> = entries_with(&doc, &key)
            .into_iter()
            .take(MAX_RECURSE)
            .map(|(k, v)| envelope(k, v))
            .collect();
        return Ok(Json(found).into_response());
    }
    let stored = doc.userdata.get(&key).ok_or(Error::NotFound)?;
    if on(q.raw.as_ref()) {
        let (content_type, bytes) = raw_of(stored).ok_or(Error::Internal)?;
        return Ok(([(header::CONTENT_TYPE, content_type)], bytes).into_response());
    }
    Ok(Json(envelope(&key, stored)).into_response())
}

/// One batch entry.
#[derive(Debug, Deserialize)]
struct BatchEntry {
    key: String,
    value: Value,
    #[serde(default = "octets")]
    content_type: String,
}

fn octets() -> String {
    "application/octet-stream".into()
}

/// Creates or replaces an entry (its body, with its content type), or with `batch=1` every
/// entry of a JSON array in one version; the collection is created by its first write.
#[utoipa::path(put, path = "/api/kvs/v1/kv/user/{key}", params(("key" = String, Path, description = "collection/key/path"), KvQuery),
    request_body = String, responses((status = 200), (status = 400), (status = 403), (status = 409, description = "too_many_documents"), (status = 413)), tag = "kopano")]
pub async fn put(
    State(state): State<AppState>,
    Caller(claims): Caller,
    Path(path): Path<String>,
    Query(q): Query<KvQuery>,
    headers: HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let (collection, key) = split(&path)?;
    let bytes = body::raw(raw, state.limits.max_message_size)?;
    let edits = if on(q.batch.as_ref()) {
        let entries: Vec<BatchEntry> = serde_json::from_slice(&bytes).map_err(|e| {
            ApiError(Error::BadRequest(format!(
                "a batch is a JSON array of {{key, value, content_type}}: {e}"
            )))
        })?;
        let mut edits = Vec::with_capacity(entries.len());
        for e in entries {
            let within = batch_key(&collection, &key, &e.key);
            edits.push(PathEdit::Put {
                path: vec![checked_key(&within)?],
                value: entry_of_value(&e.content_type, e.value)?,
            });
        }
        if edits.is_empty() {
            return Err(Error::BadRequest("an empty batch".into()).into());
        }
        edits
    } else {
        vec![PathEdit::Put {
            path: vec![checked_key(&key)?],
            value: entry_from(&headers, &bytes)?,
        }]
    };
    let me = claims.sub.clone();
    write_own(&state, &claims, &me, &collection, edits).await?;
    Ok(StatusCode::OK.into_response())
}

/// A batch entry's key within the collection. Entries name keys as `recurse=1` returns them
/// (`collection/…`) or relative to the URL's prefix; either way they land under that prefix.
fn batch_key(collection: &str, prefix: &str, key: &str) -> String {
    let key = key
        .strip_prefix(collection)
        .and_then(|k| k.strip_prefix('/'))
        .unwrap_or(key);
    if prefix.is_empty() || key == prefix || key.starts_with(&format!("{prefix}/")) {
        key.to_owned()
    } else {
        format!("{prefix}/{key}")
    }
}

/// Removes an entry: 200, then 404.
#[utoipa::path(delete, path = "/api/kvs/v1/kv/user/{key}", params(("key" = String, Path, description = "collection/key/path")),
    responses((status = 200), (status = 404)), tag = "kopano")]
pub async fn delete(
    State(state): State<AppState>,
    Caller(claims): Caller,
    Path(path): Path<String>,
) -> Result<Response, ApiError> {
    let (collection, key) = split(&path)?;
    let doc_key = format!("{}/{collection}", claims.sub);
    match delete_entry(&state, &claims, doc_key, &key).await {
        Ok(_) => Ok(StatusCode::OK.into_response()),
        // No such collection: no such key either.
        Err(ApiError(Error::Unauthorized)) => Err(Error::NotFound.into()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::batch_key;

    #[test]
    fn batch_keys_land_under_the_prefix() {
        assert_eq!(batch_key("notes", "", "notes/a"), "a");
        assert_eq!(batch_key("notes", "", "a/b"), "a/b");
        assert_eq!(batch_key("notes", "sub", "notes/sub/a"), "sub/a");
        assert_eq!(batch_key("notes", "sub", "a"), "sub/a");
        assert_eq!(batch_key("notes", "sub", "notes/other"), "sub/other");
        assert_eq!(batch_key("notes", "sub", "subway"), "sub/subway");
        assert_eq!(batch_key("notes", "sub", "sub"), "sub");
    }
}

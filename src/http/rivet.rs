//! Rivet (seed `000`): `/store/{user}/{key…}` is Rivet's flat key space, kept in the user's
//! named document `store` (created by its first write): `profile` and `profile/bio` are two
//! independent keys, values are raw bytes with their content type, returned byte for byte.
//! Being a document, the key space is versioned, watchable (`{user}/store`) and shareable.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use utoipa::IntoParams;

use super::auth::Caller;
use super::body::{self, etag};
use super::data::{MAX_PAGE, readable};
use super::error::ApiError;
use super::kv::{checked_key, delete_entry, entries_with, entry_from, raw_of, write_own};
use crate::error::Error;
use crate::state::AppState;
use crate::store::paths::PathEdit;

/// The document holding a user's Rivet keys.
pub const STORE: &str = "store";

/// Keys listed per page unless `limit` says otherwise.
const DEFAULT_LIMIT: usize = 100;

#[derive(Debug, Deserialize, IntoParams)]
pub struct ListQuery {
    limit: Option<usize>,
    /// The last key of the previous page.
    offset: Option<String>,
    /// Only keys starting with this.
    prefix: Option<String>,
}

/// Rivet's list: the user's keys in order, after `offset`, at most `limit`;
/// `{keys, next_offset}` (`null` on the last page).
#[utoipa::path(get, path = "/store/{user}", params(("user" = String, Path), ListQuery), responses((status = 200), (status = 404)), tag = "rivet")]
pub async fn store_list(
    State(state): State<AppState>,
    Caller(claims): Caller,
    Path(user): Path<String>,
    Query(q): Query<ListQuery>,
) -> Result<Response, ApiError> {
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_PAGE);
    let doc = match readable(&state, &claims.sub, &format!("{user}/{STORE}")).await {
        Ok(doc) => doc,
        // Nothing written yet: an empty key space (to its owner; others learn nothing).
        Err(_) if user == claims.sub => {
            return Ok(Json(json!({"keys": [], "next_offset": null})).into_response());
        }
        Err(e) => return Err(e),
    };
    let after = q.offset.unwrap_or_default();
    let keys: Vec<&String> = entries_with(&doc, q.prefix.as_deref().unwrap_or(""))
        .into_iter()
        .map(|(k, _)| k)
        .filter(|k| after.is_empty() || k.as_str() > after.as_str())
        .take(limit + 1)
        .collect();
    let more = keys.len() > limit;
    let page: Vec<&String> = keys.into_iter().take(limit).collect();
    let next = if more { page.last().copied() } else { None };
    let mut response = Json(json!({"keys": page, "next_offset": next})).into_response();
    response
        .headers_mut()
        .insert(header::ETAG, etag(doc.version()));
    Ok(response)
}

/// Rivet's read: the value's bytes, with the content type it was stored with.
#[utoipa::path(get, path = "/store/{user}/{key}", params(("user" = String, Path), ("key" = String, Path)), responses((status = 200), (status = 404)), tag = "rivet")]
pub async fn store_get(
    State(state): State<AppState>,
    Caller(claims): Caller,
    Path((user, key)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let doc = readable(&state, &claims.sub, &format!("{user}/{STORE}")).await?;
    let stored = doc.userdata.get(&key).ok_or(Error::NotFound)?;
    let (content_type, bytes) = raw_of(stored).ok_or(Error::Internal)?;
    let mut response = ([(header::CONTENT_TYPE, content_type)], bytes).into_response();
    response
        .headers_mut()
        .insert(header::ETAG, etag(doc.version()));
    Ok(response)
}

/// Rivet's create: as PUT, but 201 when the key did not exist before.
#[utoipa::path(post, path = "/store/{user}/{key}", params(("user" = String, Path), ("key" = String, Path)), request_body = String,
    responses((status = 200), (status = 201), (status = 400), (status = 403), (status = 404)), tag = "rivet")]
pub async fn store_post(
    state: State<AppState>,
    caller: Caller,
    path: Path<(String, String)>,
    headers: HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    store_write(state, caller, path, headers, raw, StatusCode::CREATED).await
}

/// Rivet's write: the raw body, kept with its `Content-Type` (200).
#[utoipa::path(put, path = "/store/{user}/{key}", params(("user" = String, Path), ("key" = String, Path)), request_body = String,
    responses((status = 200), (status = 400), (status = 403), (status = 404)), tag = "rivet")]
pub async fn store_put(
    state: State<AppState>,
    caller: Caller,
    path: Path<(String, String)>,
    headers: HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    store_write(state, caller, path, headers, raw, StatusCode::OK).await
}

async fn store_write(
    State(state): State<AppState>,
    Caller(claims): Caller,
    Path((user, key)): Path<(String, String)>,
    headers: HeaderMap,
    raw: Result<Bytes, BytesRejection>,
    if_new: StatusCode,
) -> Result<Response, ApiError> {
    let bytes = body::raw(raw, state.limits.max_message_size)?;
    let value = entry_from(&headers, &bytes)?;
    let edit = PathEdit::Put {
        path: vec![checked_key(&key)?],
        value,
    };
    let committed = write_own(&state, &claims, &user, STORE, vec![edit]).await?;
    let status = if committed.created {
        if_new
    } else {
        StatusCode::OK
    };
    Ok(super::data::with_etag(
        committed.doc.version(),
        status,
        &json!({"key": key, "version": committed.doc.version()}),
    ))
}

/// Rivet's delete: 200, then 404.
#[utoipa::path(delete, path = "/store/{user}/{key}", params(("user" = String, Path), ("key" = String, Path)), responses((status = 200), (status = 404)), tag = "rivet")]
pub async fn store_delete(
    State(state): State<AppState>,
    Caller(claims): Caller,
    Path((user, key)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let c = delete_entry(&state, &claims, format!("{user}/{STORE}"), &key).await?;
    Ok(super::data::with_etag(
        c.doc.version(),
        StatusCode::OK,
        &json!({"key": key, "version": c.doc.version()}),
    ))
}

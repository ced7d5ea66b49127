//! Rivet's paths (`/store/{user}/{key...}`), mapped onto the same data and rules as the
//! REST view: Rivet's users keep working unchanged.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::auth::Caller;
use super::body::{self, etag, key_path};
use super::data::{DEFAULT_LEAVES, KeysQuery, MAX_PAGE, leaves, page, readable, with_etag, write};
use super::error::ApiError;
use crate::error::Error;
use crate::state::AppState;
use crate::store::paths::{PathEdit, lookup_in};

/// Rivet's list: every leaf key of the user's data, paged.
#[utoipa::path(get, path = "/store/{user}", params(("user" = String, Path), KeysQuery), responses((status = 200)), tag = "rivet")]
pub async fn store_list(
    State(state): State<AppState>,
    Caller(claims): Caller,
    Path(user): Path<String>,
    Query(q): Query<KeysQuery>,
) -> Result<Response, ApiError> {
    let doc = readable(&state, &claims.sub, &user).await?;
    let limit = q.limit.unwrap_or(DEFAULT_LEAVES).clamp(1, MAX_PAGE);
    let keys: Vec<String> = leaves(&doc.userdata).into_iter().map(|(k, _)| k).collect();
    let (page, next) = page(keys, q.offset.unwrap_or(0), limit);
    Ok(with_etag(
        doc.version(),
        StatusCode::OK,
        &json!({"keys": page, "next_offset": next}),
    ))
}

/// Rivet's read: strings come back raw (as they were stored), anything else as JSON.
#[utoipa::path(get, path = "/store/{user}/{key}", params(("user" = String, Path), ("key" = String, Path)), responses((status = 200), (status = 404)), tag = "rivet")]
pub async fn store_get(
    State(state): State<AppState>,
    Caller(claims): Caller,
    Path((user, key)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let path = key_path(&key)?;
    let doc = readable(&state, &claims.sub, &user).await?;
    let value = lookup_in(&doc.userdata, &path).ok_or(Error::NotFound)?;
    let mut response = match value {
        Value::String(s) => (
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            s.clone(),
        )
            .into_response(),
        other => Json(other).into_response(),
    };
    response
        .headers_mut()
        .insert(header::ETAG, etag(doc.version()));
    Ok(response)
}

/// Rivet's POST: the same write as PUT.
#[utoipa::path(post, path = "/store/{user}/{key}", params(("user" = String, Path), ("key" = String, Path)), request_body = String,
    responses((status = 200), (status = 201), (status = 400), (status = 403), (status = 404)), tag = "rivet")]
pub async fn store_post(
    state: State<AppState>,
    caller: Caller,
    path: Path<(String, String)>,
    headers: HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    store_put(state, caller, path, headers, raw).await
}

/// Rivet's write (PUT or POST): a JSON body (`Content-Type: application/json`) is stored as
/// JSON, anything else as a UTF-8 string. 201 when the key did not exist.
#[utoipa::path(put, path = "/store/{user}/{key}", params(("user" = String, Path), ("key" = String, Path)), request_body = String,
    responses((status = 200), (status = 201), (status = 400), (status = 403), (status = 404)), tag = "rivet")]
pub async fn store_put(
    State(state): State<AppState>,
    Caller(claims): Caller,
    Path((user, key)): Path<(String, String)>,
    headers: HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let bytes = body::raw(raw, state.limits.max_message_size)?;
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    let value = if is_json {
        serde_json::from_slice(&bytes)
            .map_err(|e| ApiError(Error::BadRequest(format!("invalid JSON body: {e}"))))?
    } else {
        Value::String(
            String::from_utf8(bytes.to_vec())
                .map_err(|_| ApiError(Error::BadRequest("values are UTF-8 text or JSON".into())))?,
        )
    };
    let path = key_path(&key)?;
    if path.is_empty() {
        return Err(Error::BadRequest("a key is needed".into()).into());
    }
    write(
        &state,
        &claims,
        &user,
        &headers,
        vec![PathEdit::Put { path, value }],
        StatusCode::CREATED,
    )
    .await
}

/// Rivet's delete.
#[utoipa::path(delete, path = "/store/{user}/{key}", params(("user" = String, Path), ("key" = String, Path)), responses((status = 200), (status = 404)), tag = "rivet")]
pub async fn store_delete(
    State(state): State<AppState>,
    Caller(claims): Caller,
    Path((user, key)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let path = key_path(&key)?;
    if path.is_empty() {
        return Err(Error::BadRequest("a key is needed".into()).into());
    }
    write(
        &state,
        &claims,
        &user,
        &headers,
        vec![PathEdit::Delete { path }],
        StatusCode::OK,
    )
    .await
}

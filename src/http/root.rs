//! The whole-`userdata` forms of the key-path routes (`/data` and `/keys` without a path):
//! the same handlers as `data.rs`'s, each with an OpenAPI entry of its own, since one handler
//! can be described at one path only.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;

use super::auth::Caller;
use super::data::{self, DataPath, KeysQuery};
use super::error::ApiError;
use crate::state::AppState;

/// Replaces the whole `userdata` (a JSON object).
#[utoipa::path(put, path = "/v1/users/{user}/data", params(("user" = String, Path), ("If-Match" = Option<String>, Header), ("Idempotency-Key" = Option<String>, Header, description = "an operation id: a retry of a write that committed is answered with its version, not applied again")),
    request_body = serde_json::Value, responses((status = 200), (status = 400), (status = 403), (status = 404), (status = 412), (status = 413)), tag = "data")]
pub async fn put(
    state: State<AppState>,
    caller: Caller,
    path: Path<DataPath>,
    headers: HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    data::put_data(state, caller, path, headers, raw).await
}

/// Merge-patches the whole `userdata` (RFC 7386).
#[utoipa::path(patch, path = "/v1/users/{user}/data", params(("user" = String, Path), ("If-Match" = Option<String>, Header), ("Idempotency-Key" = Option<String>, Header, description = "an operation id: a retry of a write that committed is answered with its version, not applied again")),
    request_body = serde_json::Value, responses((status = 200), (status = 403), (status = 404), (status = 412), (status = 413)), tag = "data")]
pub async fn patch(
    state: State<AppState>,
    caller: Caller,
    path: Path<DataPath>,
    headers: HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    data::patch_data(state, caller, path, headers, raw).await
}

/// Clears `userdata`.
#[utoipa::path(delete, path = "/v1/users/{user}/data", params(("user" = String, Path), ("If-Match" = Option<String>, Header), ("Idempotency-Key" = Option<String>, Header, description = "an operation id: a retry of a write that committed is answered with its version, not applied again")),
    responses((status = 200), (status = 403), (status = 404), (status = 412)), tag = "data")]
pub async fn delete(
    state: State<AppState>,
    caller: Caller,
    path: Path<DataPath>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    data::delete_data(state, caller, path, headers).await
}

/// The top-level keys of `userdata` (or, with `recurse=1`, every leaf).
#[utoipa::path(get, path = "/v1/users/{user}/keys", params(("user" = String, Path), KeysQuery),
    responses((status = 200), (status = 404)), tag = "data")]
pub async fn keys(
    state: State<AppState>,
    caller: Caller,
    path: Path<DataPath>,
    query: Query<KeysQuery>,
) -> Result<Response, ApiError> {
    data::keys(state, caller, path, query).await
}

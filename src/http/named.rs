//! The default document's routes again under `/v1/users/{user}/docs/{name}`: the same
//! handlers (they take the name from the path), each with an OpenAPI entry of its own,
//! since one handler can be described at one path only.

use std::convert::Infallible;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::response::sse::{Event, Sse};
use futures_util::Stream;

use super::auth::{Caller, ClientIp};
use super::changes::{self, ChangesQuery, EventsQuery};
use super::data::{self, DataPath, KeysQuery};
use super::error::ApiError;
use super::root;
use crate::state::AppState;

type Body = Result<Bytes, BytesRejection>;

/// A named document's `userdata`.
#[utoipa::path(get, path = "/v1/users/{user}/docs/{name}/data", params(("user" = String, Path), ("name" = String, Path)),
    responses((status = 200), (status = 404)), tag = "documents")]
pub async fn get_root(
    s: State<AppState>,
    c: Caller,
    p: Path<DataPath>,
) -> Result<Response, ApiError> {
    data::get_root(s, c, p).await
}

/// Replaces a named document's `userdata`.
#[utoipa::path(put, path = "/v1/users/{user}/docs/{name}/data", params(("user" = String, Path), ("name" = String, Path), ("If-Match" = Option<String>, Header), ("Idempotency-Key" = Option<String>, Header, description = "an operation id: a retry of a write that committed is answered with its version, not applied again")),
    request_body = serde_json::Value, responses((status = 200), (status = 400), (status = 403), (status = 404), (status = 412), (status = 413)), tag = "documents")]
pub async fn put_root(
    s: State<AppState>,
    c: Caller,
    p: Path<DataPath>,
    h: HeaderMap,
    b: Body,
) -> Result<Response, ApiError> {
    root::put(s, c, p, h, b).await
}

/// Merge-patches a named document's `userdata`.
#[utoipa::path(patch, path = "/v1/users/{user}/docs/{name}/data", params(("user" = String, Path), ("name" = String, Path), ("If-Match" = Option<String>, Header), ("Idempotency-Key" = Option<String>, Header, description = "an operation id: a retry of a write that committed is answered with its version, not applied again")),
    request_body = serde_json::Value, responses((status = 200), (status = 403), (status = 404), (status = 412), (status = 413)), tag = "documents")]
pub async fn patch_root(
    s: State<AppState>,
    c: Caller,
    p: Path<DataPath>,
    h: HeaderMap,
    b: Body,
) -> Result<Response, ApiError> {
    root::patch(s, c, p, h, b).await
}

/// Clears a named document's `userdata`.
#[utoipa::path(delete, path = "/v1/users/{user}/docs/{name}/data", params(("user" = String, Path), ("name" = String, Path), ("If-Match" = Option<String>, Header), ("Idempotency-Key" = Option<String>, Header, description = "an operation id: a retry of a write that committed is answered with its version, not applied again")),
    responses((status = 200), (status = 403), (status = 404), (status = 412)), tag = "documents")]
pub async fn delete_root(
    s: State<AppState>,
    c: Caller,
    p: Path<DataPath>,
    h: HeaderMap,
) -> Result<Response, ApiError> {
    root::delete(s, c, p, h).await
}

/// The value at a key path of a named document.
#[utoipa::path(get, path = "/v1/users/{user}/docs/{name}/data/{path}", params(("user" = String, Path), ("name" = String, Path), ("path" = String, Path)),
    responses((status = 200), (status = 404)), tag = "documents")]
pub async fn get_data(
    s: State<AppState>,
    c: Caller,
    p: Path<DataPath>,
) -> Result<Response, ApiError> {
    data::get_data(s, c, p).await
}

/// Sets the value at a key path of a named document.
#[utoipa::path(put, path = "/v1/users/{user}/docs/{name}/data/{path}", params(("user" = String, Path), ("name" = String, Path), ("path" = String, Path), ("If-Match" = Option<String>, Header), ("Idempotency-Key" = Option<String>, Header, description = "an operation id: a retry of a write that committed is answered with its version, not applied again")),
    request_body = serde_json::Value, responses((status = 200), (status = 201), (status = 403), (status = 404), (status = 412), (status = 413)), tag = "documents")]
pub async fn put_data(
    s: State<AppState>,
    c: Caller,
    p: Path<DataPath>,
    h: HeaderMap,
    b: Body,
) -> Result<Response, ApiError> {
    data::put_data(s, c, p, h, b).await
}

/// Merge-patches at a key path of a named document.
#[utoipa::path(patch, path = "/v1/users/{user}/docs/{name}/data/{path}", params(("user" = String, Path), ("name" = String, Path), ("path" = String, Path), ("If-Match" = Option<String>, Header), ("Idempotency-Key" = Option<String>, Header, description = "an operation id: a retry of a write that committed is answered with its version, not applied again")),
    request_body = serde_json::Value, responses((status = 200), (status = 403), (status = 404), (status = 412), (status = 413)), tag = "documents")]
pub async fn patch_data(
    s: State<AppState>,
    c: Caller,
    p: Path<DataPath>,
    h: HeaderMap,
    b: Body,
) -> Result<Response, ApiError> {
    data::patch_data(s, c, p, h, b).await
}

/// Removes the value at a key path of a named document.
#[utoipa::path(delete, path = "/v1/users/{user}/docs/{name}/data/{path}", params(("user" = String, Path), ("name" = String, Path), ("path" = String, Path), ("If-Match" = Option<String>, Header), ("Idempotency-Key" = Option<String>, Header, description = "an operation id: a retry of a write that committed is answered with its version, not applied again")),
    responses((status = 200), (status = 403), (status = 404), (status = 412)), tag = "documents")]
pub async fn delete_data(
    s: State<AppState>,
    c: Caller,
    p: Path<DataPath>,
    h: HeaderMap,
) -> Result<Response, ApiError> {
    data::delete_data(s, c, p, h).await
}

/// The top-level keys of a named document (or every leaf, `recurse=1`).
#[utoipa::path(get, path = "/v1/users/{user}/docs/{name}/keys", params(("user" = String, Path), ("name" = String, Path), KeysQuery),
    responses((status = 200), (status = 404)), tag = "documents")]
pub async fn root_keys(
    s: State<AppState>,
    c: Caller,
    p: Path<DataPath>,
    q: Query<KeysQuery>,
) -> Result<Response, ApiError> {
    root::keys(s, c, p, q).await
}

/// Child keys at a path of a named document.
#[utoipa::path(get, path = "/v1/users/{user}/docs/{name}/keys/{path}", params(("user" = String, Path), ("name" = String, Path), ("path" = String, Path), KeysQuery),
    responses((status = 200), (status = 404)), tag = "documents")]
pub async fn keys(
    s: State<AppState>,
    c: Caller,
    p: Path<DataPath>,
    q: Query<KeysQuery>,
) -> Result<Response, ApiError> {
    data::keys(s, c, p, q).await
}

/// Applies every operation or none to a named document, as one version.
#[utoipa::path(post, path = "/v1/users/{user}/docs/{name}/batch", params(("user" = String, Path), ("name" = String, Path), ("If-Match" = Option<String>, Header), ("Idempotency-Key" = Option<String>, Header, description = "an operation id: a retry of a write that committed is answered with its version, not applied again")),
    request_body = Vec<data::BatchOp>, responses((status = 200), (status = 400), (status = 403), (status = 404), (status = 412)), tag = "documents")]
pub async fn batch(
    s: State<AppState>,
    c: Caller,
    p: Path<DataPath>,
    h: HeaderMap,
    b: Body,
) -> Result<Response, ApiError> {
    data::batch(s, c, p, h, b).await
}

/// A named document's change log (`{username, name, incarnation, version, oldest, changes, next}`).
#[utoipa::path(get, path = "/v1/users/{user}/docs/{name}/changes", params(("user" = String, Path), ("name" = String, Path), ChangesQuery),
    responses((status = 200), (status = 404)), tag = "documents")]
pub async fn changes(
    s: State<AppState>,
    c: Caller,
    p: Path<DataPath>,
    q: Query<ChangesQuery>,
) -> Result<Response, ApiError> {
    changes::changes(s, c, p, q).await
}

/// A named document's changes as Server-Sent Events; event ids are `version:incarnation`.
#[utoipa::path(get, path = "/v1/users/{user}/docs/{name}/events", params(("user" = String, Path), ("name" = String, Path), EventsQuery, ("Last-Event-ID" = Option<String>, Header)),
    responses((status = 200, description = "text/event-stream"), (status = 404)), tag = "documents")]
pub async fn events(
    s: State<AppState>,
    ip: ClientIp,
    c: Caller,
    p: Path<DataPath>,
    q: Query<EventsQuery>,
    h: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    changes::events(s, ip, c, p, q, h).await
}

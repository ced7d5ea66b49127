//! The REST view of documents: key paths into `userdata`, as Firebase's REST API does.
//! Every write is an update like any WebSocket `update`: one committed version, fanned out to
//! watchers. Every response carries the document's version as `ETag`.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::{IntoParams, ToSchema};

use super::auth::Caller;
use super::body::{self, etag, if_match, key_path};
use super::error::ApiError;
use crate::auth::Claims;
use crate::error::Error;
use crate::names;
use crate::state::AppState;
use crate::store::paths::{PathEdit, lookup_in};
use crate::store::{Access, Document, Edit, Update, Version};

/// Children listed per page unless `limit` says otherwise.
const DEFAULT_KEYS: usize = 100;
/// Leaves per page of `recurse=1` unless `limit` says otherwise (Kopano's cap).
pub(super) const DEFAULT_LEAVES: usize = 500;
/// The most either may return in one page.
pub(super) const MAX_PAGE: usize = 1000;
/// Operations in one batch.
pub const MAX_BATCH_OPS: usize = 1000;

/// The document `user` (a key: `owner` or `owner/name`) if `caller` may read it;
/// `unauthorized` (404) otherwise, the same for documents that do not exist.
pub async fn readable(
    state: &AppState,
    caller: &str,
    user: &str,
) -> Result<Arc<Document>, ApiError> {
    if !names::Target::valid(user) {
        return Err(Error::Unauthorized.into());
    }
    state
        .store
        .document(user)
        .await?
        .filter(|d| d.access(caller) >= Access::Read)
        .ok_or_else(|| Error::Unauthorized.into())
}

/// A JSON response carrying the document version as `ETag`. Takes a reference so reads
/// serialize straight from the cached document, without copying it into a `Value` first.
pub(super) fn with_etag(
    version: Version,
    status: StatusCode,
    body: &impl serde::Serialize,
) -> Response {
    let mut response = (status, Json(body)).into_response();
    response.headers_mut().insert(header::ETAG, etag(version));
    response
}

/// The whole document, metadata included.
#[utoipa::path(get, path = "/v1/users/{user}", params(("user" = String, Path)),
    responses((status = 200, description = "{metadata, userdata}; ETag is the version"), (status = 404)), tag = "data")]
pub async fn document(
    State(state): State<AppState>,
    Caller(claims): Caller,
    Path(p): Path<DataPath>,
) -> Result<Response, ApiError> {
    let doc = readable(&state, &claims.sub, &p.key()?).await?;
    Ok(with_etag(doc.version(), StatusCode::OK, &*doc))
}

async fn read_at(
    state: &AppState,
    claims: &Claims,
    user: &str,
    raw_path: &str,
) -> Result<Response, ApiError> {
    let path = key_path(raw_path)?;
    let doc = readable(state, &claims.sub, user).await?;
    if path.is_empty() {
        return Ok(with_etag(doc.version(), StatusCode::OK, &doc.userdata));
    }
    let value = lookup_in(&doc.userdata, &path).ok_or(Error::NotFound)?;
    Ok(with_etag(doc.version(), StatusCode::OK, value))
}

/// The whole `userdata`.
#[utoipa::path(get, path = "/v1/users/{user}/data", params(("user" = String, Path)), responses((status = 200), (status = 404)), tag = "data")]
pub async fn get_root(
    State(state): State<AppState>,
    Caller(claims): Caller,
    Path(p): Path<DataPath>,
) -> Result<Response, ApiError> {
    read_at(&state, &claims, &p.key()?, "").await
}

/// The value at a key path (`profile/address/billing` is `userdata.profile.address.billing`).
#[utoipa::path(get, path = "/v1/users/{user}/data/{path}", params(("user" = String, Path), ("path" = String, Path, description = "slash-separated key path")),
    responses((status = 200), (status = 404, description = "unauthorized, or not_found")), tag = "data")]
pub async fn get_data(
    State(state): State<AppState>,
    Caller(claims): Caller,
    Path(p): Path<DataPath>,
) -> Result<Response, ApiError> {
    read_at(&state, &claims, &p.key()?, p.path.as_deref().unwrap_or("")).await
}

/// Commits path edits as `claims`, honouring `If-Match`; answers `{username, version}`.
pub(super) async fn write(
    state: &AppState,
    claims: &Claims,
    user: &str,
    headers: &HeaderMap,
    edits: Vec<PathEdit>,
    created_status: StatusCode,
) -> Result<Response, ApiError> {
    claims.can_write()?;
    if !names::Target::valid(user) {
        return Err(Error::Unauthorized.into());
    }
    for edit in &edits {
        if let PathEdit::Put { value, .. } | PathEdit::Patch { patch: value, .. } = edit {
            crate::error::check_depth(value, state.limits.max_depth)?;
        }
    }
    let outcome = state
        .store
        .commit(Update {
            target: user.to_owned(),
            by: claims.sub.clone(),
            base: if_match(headers)?,
            edit: Some(Edit::Paths(edits)),
            collaborators: None,
            readers: None,
            op_id: body::idempotency_key(headers)?,
            as_admin: false,
        })
        .await;
    written(user, outcome, created_status)
}

/// How REST answers a write to `key`: `{username, version}` with the version as ETag, and
/// `created_status` when a path edit created its key. A retry of a write that committed
/// (same `Idempotency-Key`) gets the version it made, 200 and `Idempotent-Replayed: true`.
///
/// # Errors
/// The store's refusal.
pub(super) fn written(
    key: &str,
    outcome: Result<Arc<crate::store::Committed>, crate::store::StoreError>,
    created_status: StatusCode,
) -> Result<Response, ApiError> {
    let (version, status, replayed) = match outcome {
        Ok(c) if c.created => (c.doc.version(), created_status, false),
        Ok(c) => (c.doc.version(), StatusCode::OK, false),
        Err(crate::store::StoreError::AlreadyApplied { version }) => {
            (version, StatusCode::OK, true)
        }
        Err(e) => return Err(e.into()),
    };
    let mut response = with_etag(version, status, &doc_ref(key, version));
    if replayed {
        response.headers_mut().insert(
            "idempotent-replayed",
            axum::http::HeaderValue::from_static("true"),
        );
    }
    Ok(response)
}

/// `{username, version}`, with `name` for a named document: what REST writes answer.
pub(super) fn doc_ref(key: &str, version: Version) -> Value {
    let (username, name) = crate::frame::split_key(key);
    match name {
        None => json!({"username": username, "version": version}),
        Some(name) => json!({"username": username, "name": name, "version": version}),
    }
}

/// The path parameters every document route may have: the owner, a named document's name
/// (`/v1/users/{user}/docs/{name}/…`) and a key path.
#[derive(Deserialize, IntoParams)]
pub struct DataPath {
    user: String,
    name: Option<String>,
    path: Option<String>,
}

impl DataPath {
    /// The document's key; a name that cannot exist is `unauthorized`, as an unknown user is.
    pub fn key(&self) -> Result<String, ApiError> {
        self.target().map(|t| t.key())
    }

    /// The document's owner and name, checked as [`DataPath::key`] is.
    pub fn target(&self) -> Result<names::Target, ApiError> {
        let target = names::Target {
            owner: self.user.clone(),
            name: self.name.clone(),
        };
        if !names::Target::valid(&target.key()) {
            return Err(Error::Unauthorized.into());
        }
        Ok(target)
    }
}

/// Sets the value at a key path (201 when the key was absent, 200 otherwise).
#[utoipa::path(put, path = "/v1/users/{user}/data/{path}", params(("user" = String, Path), ("path" = String, Path), ("If-Match" = Option<String>, Header, description = "\"<version>\": write only at that version")),
    request_body = Value, responses((status = 200), (status = 201), (status = 403), (status = 404), (status = 412, description = "version_mismatch"), (status = 413)), tag = "data")]
pub async fn put_data(
    State(state): State<AppState>,
    Caller(claims): Caller,
    Path(p): Path<DataPath>,
    headers: HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let value: Value = body::json(raw, state.limits.max_message_size)?;
    let path = key_path(p.path.as_deref().unwrap_or(""))?;
    write(
        &state,
        &claims,
        &p.key()?,
        &headers,
        vec![PathEdit::Put { path, value }],
        StatusCode::CREATED,
    )
    .await
}

/// Applies a JSON merge patch (RFC 7386) at a key path.
#[utoipa::path(patch, path = "/v1/users/{user}/data/{path}", params(("user" = String, Path), ("path" = String, Path), ("If-Match" = Option<String>, Header), ("Idempotency-Key" = Option<String>, Header, description = "an operation id: a retry of a write that committed is answered with its version, not applied again")),
    request_body = Value, responses((status = 200), (status = 403), (status = 404), (status = 412), (status = 413)), tag = "data")]
pub async fn patch_data(
    State(state): State<AppState>,
    Caller(claims): Caller,
    Path(p): Path<DataPath>,
    headers: HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let patch: Value = body::json(raw, state.limits.max_message_size)?;
    let path = key_path(p.path.as_deref().unwrap_or(""))?;
    write(
        &state,
        &claims,
        &p.key()?,
        &headers,
        vec![PathEdit::Patch { path, patch }],
        StatusCode::OK,
    )
    .await
}

/// Removes the value at a key path (404 `not_found` when absent; the empty path clears
/// `userdata`).
#[utoipa::path(delete, path = "/v1/users/{user}/data/{path}", params(("user" = String, Path), ("path" = String, Path), ("If-Match" = Option<String>, Header), ("Idempotency-Key" = Option<String>, Header, description = "an operation id: a retry of a write that committed is answered with its version, not applied again")),
    responses((status = 200), (status = 403), (status = 404), (status = 412)), tag = "data")]
pub async fn delete_data(
    State(state): State<AppState>,
    Caller(claims): Caller,
    Path(p): Path<DataPath>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let path = key_path(p.path.as_deref().unwrap_or(""))?;
    write(
        &state,
        &claims,
        &p.key()?,
        &headers,
        vec![PathEdit::Delete { path }],
        StatusCode::OK,
    )
    .await
}

/// One operation of a batch.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchOp {
    /// `put`, `patch` or `delete`.
    op: String,
    /// Slash-separated key path; empty for the whole userdata.
    #[serde(default)]
    path: String,
    #[serde(default)]
    value: Option<Value>,
}

/// Applies every operation or none, as one version.
#[utoipa::path(post, path = "/v1/users/{user}/batch", params(("user" = String, Path), ("If-Match" = Option<String>, Header), ("Idempotency-Key" = Option<String>, Header, description = "an operation id: a retry of a write that committed is answered with its version, not applied again")),
    request_body = Vec<BatchOp>, responses((status = 200), (status = 400), (status = 403), (status = 404), (status = 412)), tag = "data")]
pub async fn batch(
    State(state): State<AppState>,
    Caller(claims): Caller,
    Path(p): Path<DataPath>,
    headers: HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let user = p.key()?;
    let ops: Vec<BatchOp> = body::json(raw, state.limits.max_message_size)?;
    if ops.is_empty() || ops.len() > MAX_BATCH_OPS {
        return Err(
            Error::BadRequest(format!("a batch holds 1 to {MAX_BATCH_OPS} operations")).into(),
        );
    }
    let mut edits = Vec::with_capacity(ops.len());
    for op in ops {
        let path = key_path(&op.path)?;
        let need = |v: Option<Value>| {
            v.ok_or_else(|| ApiError(Error::BadRequest(format!("{} needs a value", op.op))))
        };
        edits.push(match op.op.as_str() {
            "put" => PathEdit::Put {
                path,
                value: need(op.value)?,
            },
            "patch" => PathEdit::Patch {
                path,
                patch: need(op.value)?,
            },
            "delete" => PathEdit::Delete { path },
            other => {
                return Err(Error::BadRequest(format!(
                    "unknown batch op {other:?}: put, patch or delete"
                ))
                .into());
            }
        });
    }
    write(&state, &claims, &user, &headers, edits, StatusCode::OK).await
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct KeysQuery {
    /// Only keys starting with this.
    prefix: Option<String>,
    pub(super) limit: Option<usize>,
    pub(super) offset: Option<usize>,
    /// `1`: every leaf below, as `{key, value}`.
    recurse: Option<String>,
}

/// Child keys at a path, sorted (`{keys, next_offset}`), or with `recurse=1` every leaf below
/// (`{entries: [{key, value}], next_offset}`); `next_offset` is null on the last page.
#[utoipa::path(get, path = "/v1/users/{user}/keys/{path}", params(("user" = String, Path), ("path" = String, Path), KeysQuery),
    responses((status = 200), (status = 404)), tag = "data")]
pub async fn keys(
    State(state): State<AppState>,
    Caller(claims): Caller,
    Path(p): Path<DataPath>,
    Query(q): Query<KeysQuery>,
) -> Result<Response, ApiError> {
    let path = key_path(p.path.as_deref().unwrap_or(""))?;
    let doc = readable(&state, &claims.sub, &p.key()?).await?;
    // `None`: the whole userdata; looked up in place, nothing copied.
    let found = if path.is_empty() {
        None
    } else {
        Some(lookup_in(&doc.userdata, &path).ok_or(Error::NotFound)?)
    };
    let offset = q.offset.unwrap_or(0);
    let prefix = q.prefix.unwrap_or_default();
    let recurse = matches!(q.recurse.as_deref(), Some("1" | "true"));
    let body = if recurse {
        let limit = q.limit.unwrap_or(DEFAULT_LEAVES).clamp(1, MAX_PAGE);
        let mut all = match found {
            None => leaves(&doc.userdata),
            Some(Value::Object(map)) if !map.is_empty() => leaves(map),
            Some(leaf) => vec![(String::new(), leaf)],
        };
        all.retain(|(k, _)| k.starts_with(&prefix));
        let (page, next) = page(all, offset, limit);
        let entries: Vec<Entry<'_>> = page
            .into_iter()
            .map(|(key, value)| Entry { key, value })
            .collect();
        json!({"entries": entries, "next_offset": next})
    } else {
        let limit = q.limit.unwrap_or(DEFAULT_KEYS).clamp(1, MAX_PAGE);
        let named = |map: &serde_json::Map<String, Value>| -> Vec<String> {
            map.keys()
                .filter(|k| k.starts_with(&prefix))
                .cloned()
                .collect()
        };
        let children: Vec<String> = match found {
            None => named(&doc.userdata),
            Some(Value::Object(map)) => named(map),
            Some(Value::Array(items)) => (0..items.len())
                .map(|i| i.to_string())
                .filter(|k| k.starts_with(&prefix))
                .collect(),
            Some(_) => Vec::new(),
        };
        let (page, next) = page(children, offset, limit);
        json!({"keys": page, "next_offset": next})
    };
    Ok(with_etag(doc.version(), StatusCode::OK, &body))
}

/// `items[offset..offset+limit]` and the offset of the next page, if any.
pub(super) fn page<T>(items: Vec<T>, offset: usize, limit: usize) -> (Vec<T>, Option<usize>) {
    let total = items.len();
    let page: Vec<T> = items.into_iter().skip(offset).take(limit).collect();
    let next = (offset + page.len() < total).then_some(offset + page.len());
    (page, next)
}

/// One leaf of a `recurse=1` listing, borrowed from the document.
#[derive(serde::Serialize)]
struct Entry<'a> {
    key: String,
    value: &'a Value,
}

/// Leaves (anything but a non-empty object) below `map`, keyed by slash-joined path, in
/// sorted order. Borrowed: listing never copies the document.
pub(super) fn leaves(map: &serde_json::Map<String, Value>) -> Vec<(String, &Value)> {
    fn walk<'a>(
        map: &'a serde_json::Map<String, Value>,
        prefix: &mut String,
        out: &mut Vec<(String, &'a Value)>,
    ) {
        for (k, v) in map {
            let len = prefix.len();
            if !prefix.is_empty() {
                prefix.push('/');
            }
            prefix.push_str(k);
            match v {
                Value::Object(inner) if !inner.is_empty() => walk(inner, prefix, out),
                leaf => out.push((prefix.clone(), leaf)),
            }
            prefix.truncate(len);
        }
    }
    let mut out = Vec::new();
    walk(map, &mut String::new(), &mut out);
    out
}

//! The admin API's view into an account and its data, for the dashboard and for scripts:
//! one account at a glance, any document (whatever its lists say), its change log, its
//! changes live, and an admin's edit. An admin reading someone's data is an action like any
//! other: each read and edit leaves a line in the audit log.
//!
//! Documents are named by key in the query (`?key=ann` or `?key=ann/notes`), not the path,
//! so a document called `changes` cannot collide with a route.

use std::convert::Infallible;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::Stream;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::auth::{Caller, ClientIp, require_admin};
use super::body::{self, if_match};
use super::changes::{ChangesQuery, EventsQuery};
use super::data::{with_etag, written};
use super::error::ApiError;
use crate::auth::Claims;
use crate::error::Error;
use crate::names::Target;
use crate::state::AppState;
use crate::store::{Document, Edit, Update};

/// Named documents listed on an account's page; more are a script's to page through
/// (`GET /v1/users/{user}/docs` as the owner).
const DOCS_SHOWN: usize = 200;
/// Blobs listed on an account's page.
const BLOBS_SHOWN: usize = 50;

/// One account: `{username, createdAt, disabled, admin, documents: [{name, size, version,
/// lastUpdate, …}], moreDocuments, sessions: [{id, createdAt, expires, scope, lastUsed,
/// open}], blobs: {list, used, quota}}`. `lastUsed` is when this node last saw the session's
/// token (null: not since it started); `open`, its sockets and streams here now.
#[utoipa::path(get, path = "/v1/admin/users/{user}", params(("user" = String, Path)),
    responses((status = 200, description = "{username, createdAt, disabled, admin, documents, moreDocuments, sessions, blobs: {list, used, quota}}"), (status = 403), (status = 404)), tag = "admin")]
pub async fn account(
    State(state): State<AppState>,
    Caller(claims): Caller,
    Path(user): Path<String>,
) -> Result<Json<Value>, ApiError> {
    require_admin(&state, &claims)?;
    let record = state.store.user(&user).await?.ok_or(Error::NotFound)?;
    let mut documents = Vec::new();
    if let Some(doc) = state.store.document(&user).await? {
        documents.push(summary(&doc));
    }
    let named = state.store.documents(&user, "", DOCS_SHOWN).await?;
    let more = named.len() == DOCS_SHOWN;
    documents.extend(named.iter().map(|d| json!(d)));
    let sessions: Vec<Value> = state
        .store
        .sessions(&user)
        .await?
        .into_iter()
        .filter(|s| !state.auth.sockets.is_revoked(&s.id))
        .map(|s| {
            let mut v = json!(s);
            v["lastUsed"] = json!(state.auth.seen.last(&s.id));
            v["open"] = json!(state.auth.sockets.open(&s.id));
            v
        })
        .collect();
    let (blobs, used) = state.store.user_blobs(&user, 0, BLOBS_SHOWN).await?;
    Ok(Json(json!({
        "username": record.username,
        "createdAt": record.created_at,
        "disabled": state.auth.flags.is_disabled(&user),
        "admin": state.auth.flags.is_admin(&user),
        "documents": documents,
        "moreDocuments": more,
        "sessions": sessions,
        "blobs": {"list": blobs, "used": used, "quota": state.blobs.quota},
    })))
}

/// A default document's entry in the shape of a named one's (`Listed`): metadata and size.
fn summary(doc: &Document) -> Value {
    let mut v = json!(doc.metadata);
    v["size"] = json!(serde_json::to_vec(doc).map_or(0, |b| b.len()));
    v
}

/// Ends every session of the account: its sockets and streams close, its tokens stop
/// working. `{ended}`.
#[utoipa::path(delete, path = "/v1/admin/users/{user}/sessions", params(("user" = String, Path)),
    responses((status = 200, description = "{ended}"), (status = 403), (status = 404)), tag = "admin")]
pub async fn end_sessions(
    State(state): State<AppState>,
    Caller(claims): Caller,
    Path(user): Path<String>,
) -> Result<Json<Value>, ApiError> {
    require_admin(&state, &claims)?;
    state.store.user(&user).await?.ok_or(Error::NotFound)?;
    let mut ended = 0;
    for s in state.store.sessions(&user).await? {
        if !state.auth.sockets.is_revoked(&s.id) {
            crate::accounts::revoke(&state, &user, &s.id, s.expires, 0).await?;
            ended += 1;
        }
    }
    super::audit::record(&state, &claims, "end_sessions", Some(&user)).await?;
    Ok(Json(json!({ "ended": ended })))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct DocKey {
    /// The document: `owner`, or `owner/name`.
    key: String,
}

impl DocKey {
    fn target(&self) -> Result<String, ApiError> {
        Target::parse(&self.key)
            .map(|t| t.key())
            .ok_or_else(|| Error::BadRequest("key is owner or owner/name".into()).into())
    }
}

/// The admin's check and the document, which must exist.
async fn inspected(
    state: &AppState,
    claims: &Claims,
    key: &DocKey,
) -> Result<std::sync::Arc<Document>, ApiError> {
    require_admin(state, claims)?;
    let target = key.target()?;
    Ok(state
        .store
        .document(&target)
        .await?
        .ok_or(Error::NotFound)?)
}

/// Any document, metadata included (`ETag`: its version), whoever it is shared with.
#[utoipa::path(get, path = "/v1/admin/doc", params(DocKey),
    responses((status = 200, description = "{metadata, userdata}"), (status = 400), (status = 403), (status = 404)), tag = "admin")]
pub async fn document(
    State(state): State<AppState>,
    Caller(claims): Caller,
    Query(key): Query<DocKey>,
) -> Result<Response, ApiError> {
    let doc = inspected(&state, &claims, &key).await?;
    super::audit::record(&state, &claims, "read_document", Some(&doc.key())).await?;
    Ok(with_etag(doc.version(), StatusCode::OK, &*doc))
}

/// A page of any document's change log, as `GET /v1/users/{user}/changes` gives it.
#[utoipa::path(get, path = "/v1/admin/doc/changes", params(DocKey, ChangesQuery),
    responses((status = 200, description = "{username, version, oldest, changes, next}"), (status = 403), (status = 404)), tag = "admin")]
pub async fn changes(
    State(state): State<AppState>,
    Caller(claims): Caller,
    Query(key): Query<DocKey>,
    Query(q): Query<ChangesQuery>,
) -> Result<Response, ApiError> {
    let doc = inspected(&state, &claims, &key).await?;
    super::audit::record(&state, &claims, "read_changes", Some(&doc.key())).await?;
    super::changes::page(&state, &doc, &q).await
}

/// Any document's changes live, as `GET /v1/users/{user}/events` streams them (its query
/// and `Last-Event-ID` too). Ends when the admin's token does, not when the lists change.
#[utoipa::path(get, path = "/v1/admin/doc/events", params(DocKey, EventsQuery),
    responses((status = 200, description = "text/event-stream"), (status = 403), (status = 404)), tag = "admin")]
pub async fn events(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    Caller(claims): Caller,
    Query(key): Query<DocKey>,
    Query(q): Query<EventsQuery>,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let doc = inspected(&state, &claims, &key).await?;
    let target = doc.key().into_owned();
    super::audit::record(&state, &claims, "watch_document", Some(&target)).await?;
    super::changes::stream_events(state, ip, claims, target, q, headers, true).await
}

/// An admin's edit: the document's `userdata` replaced by the body, as an ordinary versioned
/// update `by` the admin (its log entry and `lastUpdate` say so, and watchers see it). Needs
/// `If-Match`, the version the admin saw: an edit never overwrites a change it did not see.
/// The access lists are the owner's; this cannot change them.
#[utoipa::path(put, path = "/v1/admin/doc", params(DocKey, ("If-Match" = String, Header)), request_body = Value,
    responses((status = 200, description = "{username, version}"), (status = 400), (status = 403), (status = 404), (status = 412), (status = 413)), tag = "admin")]
pub async fn edit(
    State(state): State<AppState>,
    Caller(claims): Caller,
    Query(key): Query<DocKey>,
    headers: HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let doc = inspected(&state, &claims, &key).await?;
    let base = if_match(&headers)?.ok_or_else(|| {
        Error::BadRequest("If-Match is required: an admin edits the version they saw".into())
    })?;
    let userdata: Map<String, Value> = match body::json(raw, state.limits.max_message_size)? {
        Value::Object(map) => map,
        _ => return Err(Error::BadRequest("the body is userdata: a JSON object".into()).into()),
    };
    // Depth and size are the store's to check, as for every update.
    let target = doc.key().into_owned();
    let outcome = state
        .store
        .commit(Update {
            target: target.clone(),
            by: claims.sub.clone(),
            base: Some(base),
            edit: Some(Edit::Replace(userdata)),
            collaborators: None,
            readers: None,
            op_id: None,
            as_admin: true,
        })
        .await;
    let response = written(&target, outcome, StatusCode::OK)?;
    super::audit::record(&state, &claims, "edit_document", Some(&target)).await?;
    Ok(response.into_response())
}

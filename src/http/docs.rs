//! Named documents over HTTP: listing them, "shared with me", and creating, reading,
//! replacing and deleting one. Their data, keys, batches and change log are the default
//! document's routes under `/v1/users/{user}/docs/{name}` (`named.rs`).

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use utoipa::IntoParams;

use super::auth::Caller;
use super::body::{self, if_match};
use super::data::{DataPath, doc_ref, with_etag, written};
use super::error::ApiError;
use crate::cmd::docs::{MAX_LIST_PAGE, documents_page, shared_page};
use crate::error::Error;
use crate::state::AppState;
use crate::store::{Edit, NewDoc, StoreError, Update};

#[derive(Debug, Deserialize, IntoParams)]
pub struct ListQuery {
    /// The last name (or, for `/v1/me/shared`, key) of the previous page.
    after: Option<String>,
    /// At most this many (and at most 500).
    limit: Option<usize>,
}

fn page_size(limit: Option<usize>) -> usize {
    limit.unwrap_or(MAX_LIST_PAGE).clamp(1, MAX_LIST_PAGE)
}

/// The caller's named documents (only the owner may list them): `{documents, next}`.
#[utoipa::path(get, path = "/v1/users/{user}/docs", params(("user" = String, Path), ListQuery),
    responses((status = 200, description = "{documents: [{size, username, name, incarnation, version, collaborators, readers, createdAt, lastUpdate}], next}: each entry a document's metadata and size"), (status = 404)), tag = "documents")]
pub async fn list_docs(
    State(state): State<AppState>,
    Caller(claims): Caller,
    Path(user): Path<String>,
    Query(q): Query<ListQuery>,
) -> Result<Response, ApiError> {
    if user != claims.sub {
        return Err(Error::Unauthorized.into());
    }
    let limit = page_size(q.limit);
    let (documents, next) =
        documents_page(&state.store, &user, q.after.as_deref().unwrap_or(""), limit).await?;
    /// Written straight from the entries (`json!` would parse each back into a tree).
    #[derive(serde::Serialize)]
    struct Page {
        documents: Vec<crate::store::Listed>,
        next: Option<String>,
    }
    Ok(Json(Page { documents, next }).into_response())
}

/// Documents others share with the caller: `{shared: [{owner, name, role, version, lastUpdate}], next}`.
#[utoipa::path(get, path = "/v1/me/shared", params(ListQuery),
    responses((status = 200, description = "{shared, next}")), tag = "documents")]
pub async fn shared(
    State(state): State<AppState>,
    Caller(claims): Caller,
    Query(q): Query<ListQuery>,
) -> Result<Response, ApiError> {
    let limit = page_size(q.limit);
    let (shared, next) = shared_page(
        &state.store,
        &claims.sub,
        q.after.as_deref().unwrap_or(""),
        limit,
    )
    .await?;
    Ok(Json(json!({"shared": shared, "next": next})).into_response())
}

/// A named document, metadata included (`ETag`: its version).
#[utoipa::path(get, path = "/v1/users/{user}/docs/{name}", params(("user" = String, Path), ("name" = String, Path)),
    responses((status = 200), (status = 404)), tag = "documents")]
pub async fn get_doc(
    state: State<AppState>,
    caller: Caller,
    path: Path<DataPath>,
) -> Result<Response, ApiError> {
    super::data::document(state, caller, path).await
}

/// Creates the named document with this `userdata` (201; owner only), or replaces the
/// `userdata` of the one there (200; anyone who may write it, `If-Match` honoured).
#[utoipa::path(put, path = "/v1/users/{user}/docs/{name}", params(("user" = String, Path), ("name" = String, Path), ("If-Match" = Option<String>, Header), ("Idempotency-Key" = Option<String>, Header, description = "an operation id: a retry of a write that committed is answered with its version, not applied again")),
    request_body = Value, responses((status = 200), (status = 201), (status = 400), (status = 403), (status = 404), (status = 409, description = "too_many_documents"), (status = 412), (status = 413)), tag = "documents")]
pub async fn put_doc(
    State(state): State<AppState>,
    Caller(claims): Caller,
    Path(p): Path<DataPath>,
    headers: HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    claims.can_write()?;
    let target = p.target()?;
    let key = target.key();
    // Size and depth are the store's to check, for a create as for an update.
    let userdata: Map<String, Value> = match body::json(raw, state.limits.max_message_size)? {
        Value::Object(map) => map,
        _ => return Err(Error::BadRequest("the body is userdata: a JSON object".into()).into()),
    };
    let base = if_match(&headers)?;
    if target.owner == claims.sub && base.is_none() {
        let created = state
            .store
            .create_doc(NewDoc {
                owner: target.owner.clone(),
                name: target.name.clone().unwrap_or_default(),
                userdata: userdata.clone(),
                collaborators: Vec::new(),
                readers: Vec::new(),
            })
            .await;
        match created {
            Ok(doc) => {
                return Ok(with_etag(
                    0,
                    StatusCode::CREATED,
                    &doc_ref(&key, doc.version()),
                ));
            }
            Err(StoreError::AlreadyExists) => {}
            Err(e) => return Err(e.into()),
        }
    }
    let outcome = state
        .store
        .commit(Update {
            target: key.clone(),
            by: claims.sub.clone(),
            base,
            edit: Some(Edit::Replace(userdata)),
            collaborators: None,
            readers: None,
            op_id: body::idempotency_key(&headers)?,
            as_admin: false,
        })
        .await;
    written(&key, outcome, StatusCode::OK)
}

/// Deletes a named document and its change log (owner only). Its watchers are told.
#[utoipa::path(delete, path = "/v1/users/{user}/docs/{name}", params(("user" = String, Path), ("name" = String, Path)),
    responses((status = 200, description = "{username, name, deleted: true}"), (status = 403), (status = 404)), tag = "documents")]
pub async fn delete_doc(
    State(state): State<AppState>,
    Caller(claims): Caller,
    Path(p): Path<DataPath>,
) -> Result<Response, ApiError> {
    claims.can_write()?;
    let target = p.target()?;
    let key = target.key();
    if target.owner != claims.sub {
        // Someone else's document: whether it exists is not theirs to learn.
        return Err(Error::Unauthorized.into());
    }
    state.store.delete_doc(&key).await?;
    Ok(
        Json(json!({"username": target.owner, "name": target.name, "deleted": true}))
            .into_response(),
    )
}

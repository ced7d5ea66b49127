//! Event streams over HTTP (`streams.rs`): append, read a range (JSON, or SSE that resumes
//! with `Last-Event-ID`), and one event by id. `name` in these paths is the stream's name
//! without its `~`: `POST /v1/users/ann/streams/activity` appends to `ann/~activity`.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::auth::{Caller, ClientIp};
use super::body;
use super::changes::EventsQuery;
use super::error::ApiError;
use crate::auth::Claims;
use crate::error::Error;
use crate::state::AppState;
use crate::streams::{self, DEFAULT_PAGE, Position};

#[derive(Debug, Deserialize)]
pub struct StreamPath {
    user: String,
    name: String,
    at: Option<String>,
}

impl StreamPath {
    /// The stream's document key, `user/~name`.
    fn key(&self) -> Result<String, ApiError> {
        if self.name.starts_with(crate::store::streams::MARK)
            || crate::names::validate_doc(&self.name).is_err()
            || !crate::names::plausible(&self.user)
        {
            return Err(Error::Unauthorized.into());
        }
        Ok(format!("{}/~{}", self.user, self.name))
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct RangeQuery {
    /// After this sequence number or event id (exclusive).
    from: Option<String>,
    /// Up to this one (inclusive).
    to: Option<String>,
    limit: Option<usize>,
}

/// Appends the body (any JSON value) to the stream; the owner's first append creates it.
/// 201 `{seq, id}`. `Idempotency-Key` makes a retry answer with the event it made.
#[utoipa::path(post, path = "/v1/users/{user}/streams/{name}", params(("user" = String, Path), ("name" = String, Path), ("Idempotency-Key" = Option<String>, Header)),
    request_body = Value, responses((status = 201, description = "{seq, id}"), (status = 400), (status = 403), (status = 404), (status = 413)), tag = "streams")]
pub async fn append(
    State(state): State<AppState>,
    Caller(claims): Caller,
    Path(p): Path<StreamPath>,
    headers: HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    claims.can_write()?;
    let key = p.key()?;
    let event: Value = body::json(raw, state.limits.max_message_size)?;
    appended(&state, &claims, &key, event, &headers).await
}

/// Appends `event` as `claims`: 201 `{seq, id}`.
pub(super) async fn appended(
    state: &AppState,
    claims: &Claims,
    key: &str,
    event: Value,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    let op_id = body::idempotency_key(headers)?;
    let (seq, id) = streams::append(state, &claims.sub, key, event, op_id).await?;
    Ok((StatusCode::CREATED, Json(json!({"seq": seq, "id": id}))).into_response())
}

fn position(text: Option<&str>) -> Result<Option<Position>, ApiError> {
    Ok(text.map(Position::parse_str).transpose()?)
}

/// The events after `from` up to `to`: `{events: [{seq, id, at, by, event}], seq, oldest,
/// next}`. Asked for `text/event-stream`, the events after `from` (or `Last-Event-ID`) and
/// then each new one as it commits, as `change` frames whose `op.append` holds the event.
#[utoipa::path(get, path = "/v1/users/{user}/streams/{name}", params(("user" = String, Path), ("name" = String, Path), RangeQuery),
    responses((status = 200, description = "{events, seq, oldest, next}, or text/event-stream"), (status = 404)), tag = "streams")]
pub async fn read(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    Caller(claims): Caller,
    Path(p): Path<StreamPath>,
    Query(q): Query<RangeQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let key = p.key()?;
    let wants_sse = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/event-stream"));
    if wants_sse {
        let since = match position(q.from.as_deref())? {
            Some(at) => streams::seq_of(&state, &claims.sub, &key, at).await?,
            None => 0,
        };
        let doc = state
            .store
            .document(&key)
            .await?
            .ok_or(Error::Unauthorized)?;
        let query = EventsQuery {
            since: Some(since),
            incarnation: doc.metadata.incarnation.clone(),
            mode: Some("ops".into()),
            ..EventsQuery::default()
        };
        let sse = super::changes::stream_events(state, ip, claims, key, query, headers, false);
        return Ok(sse.await?.into_response());
    }
    ranged(&state, &claims, &key, &q).await
}

/// A page of events as `read` answers it in JSON.
async fn ranged(
    state: &AppState,
    claims: &Claims,
    key: &str,
    q: &RangeQuery,
) -> Result<Response, ApiError> {
    Ok(Json(page(state, claims, key, q).await?).into_response())
}

/// The page of events `q` asks for.
pub(super) async fn page(
    state: &AppState,
    claims: &Claims,
    key: &str,
    q: &RangeQuery,
) -> Result<streams::Page, ApiError> {
    let from = position(q.from.as_deref())?;
    let to = position(q.to.as_deref())?;
    let limit = q.limit.unwrap_or(DEFAULT_PAGE);
    Ok(streams::read(state, &claims.sub, key, from, to, limit).await?)
}

/// One event, by id or sequence number: `{seq, id, at, by, event}`.
#[utoipa::path(get, path = "/v1/users/{user}/streams/{name}/{at}", params(("user" = String, Path), ("name" = String, Path), ("at" = String, Path, description = "an event id or sequence number")),
    responses((status = 200, description = "{seq, id, at, by, event}"), (status = 404)), tag = "streams")]
pub async fn event(
    State(state): State<AppState>,
    Caller(claims): Caller,
    Path(p): Path<StreamPath>,
) -> Result<Response, ApiError> {
    let key = p.key()?;
    let at = Position::parse_str(p.at.as_deref().unwrap_or(""))?;
    let event = streams::get(&state, &claims.sub, &key, at).await?;
    Ok(Json(event).into_response())
}

//! Apie's paths (seed 002), for its clients as they are: the caller's default event stream
//! (`ann/~events`) at `/events`, and blobs at `/storage/`, with HTTP Basic on every request
//! (a session token works too).
//!
//! | Apie | here |
//! |---|---|
//! | `PUT /events` (a JSON event) | 201 `{seq, id}` |
//! | `GET /events[?from=ID][&to=ID]` | a JSON array of `{seq, id, at, by, event}`, after `from`, up to `to` (at most 1000; `Link: <…>; rel="next"` when more follow) |
//! | `GET /events/ID` | one event |
//! | `PUT /storage/` (any body; curl's `-T file …/storage/` puts to `/storage/file`) | the blob: `{sha256, size, contentType}` |
//! | `GET`, `DELETE /storage/SHA256` | its bytes; removing the caller's copy |

use axum::body::{Body, Bytes};
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::auth::{Caller, ClientIp};
use super::error::ApiError;
use super::streams::RangeQuery;
use crate::auth::Claims;
use crate::auth::basic::{self, Verified};
use crate::error::Error;
use crate::state::AppState;
use crate::store::Scope;

/// The caller by HTTP Basic, or by a token as everywhere else. A refusal carries
/// `WWW-Authenticate`, so curl and browsers know to send credentials.
pub struct BasicOrToken(pub Claims);

impl FromRequestParts<AppState> for BasicOrToken {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let given = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(basic::parse);
        let result = match given {
            Some((username, password)) => {
                let ip = ClientIp::from_request_parts(parts, state)
                    .await
                    .map_err(IntoResponse::into_response)?
                    .0;
                basic_claims(state, ip, &username, &password)
                    .await
                    .map_err(ApiError)
            }
            None => super::auth::caller(state, &parts.headers, parts.uri.query()).await,
        };
        result.map(BasicOrToken).map_err(|e| {
            let mut response = e.into_response();
            if response.status() == StatusCode::UNAUTHORIZED {
                response.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Basic realm=\"hearth\""),
                );
            }
            response
        })
    }
}

/// Checks a Basic credential: from memory if it verified lately and the account's password
/// is still the one it was checked against; otherwise argon2, counted against the login
/// limits like any login.
async fn basic_claims(
    state: &AppState,
    ip: std::net::IpAddr,
    username: &str,
    password: &str,
) -> Result<Claims, Error> {
    let cache = &state.auth.basic;
    let key = cache.key(username, password);
    let current =
        || async { Ok::<_, Error>(state.store.user(username).await?.map(|u| u.password_hash)) };
    let remembered = match cache.get(&key) {
        Some(v) if current().await? == Some(v.hash.clone()) => true,
        Some(_) => {
            cache.forget(&key);
            false
        }
        None => false,
    };
    if !remembered {
        crate::accounts::confirm_password(state, ip, username, Some(password.to_owned()))
            .await
            .map_err(|e| match e {
                Error::InvalidToken => Error::InvalidCredentials, // no such account
                e => e,
            })?;
        let hash = current().await?.ok_or(Error::InvalidCredentials)?;
        cache.remember(
            key,
            Verified {
                username: username.to_owned(),
                hash,
            },
        );
    }
    if state.auth.flags.is_disabled(username) {
        return Err(Error::InvalidCredentials);
    }
    let now = crate::sys::unix_now();
    Ok(Claims {
        sub: username.to_owned(),
        sid: "basic".into(),
        iat: now,
        exp: now + basic::REMEMBER.as_secs(),
        scope: Scope::Full,
    })
}

fn events_key(claims: &Claims) -> String {
    format!("{}/~events", claims.sub)
}

/// `PUT /events`: appends the JSON body to the caller's default stream.
#[utoipa::path(put, path = "/events", request_body = Value, responses((status = 201, description = "{seq, id}"), (status = 401)), tag = "apie")]
pub async fn put_event(
    State(state): State<AppState>,
    BasicOrToken(claims): BasicOrToken,
    headers: HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    claims.can_write()?;
    let event: Value = super::body::json(raw, state.limits.max_message_size)?;
    super::streams::appended(&state, &claims, &events_key(&claims), event, &headers).await
}

/// `GET /events`: the caller's events after `from`, up to `to`, as a JSON array. A stream
/// never appended to is an empty one here.
#[utoipa::path(get, path = "/events", params(RangeQuery), responses((status = 200, description = "[{seq, id, at, by, event}]"), (status = 401)), tag = "apie")]
pub async fn events(
    State(state): State<AppState>,
    BasicOrToken(claims): BasicOrToken,
    Query(q): Query<RangeQuery>,
) -> Result<Response, ApiError> {
    let key = events_key(&claims);
    if state.store.document(&key).await?.is_none() {
        return Ok(axum::Json(Vec::<Value>::new()).into_response());
    }
    let page = super::streams::page(&state, &claims, &key, &q).await?;
    let mut response = axum::Json(&page.events).into_response();
    if let Some(last) = page.events.last().filter(|_| page.next.is_some())
        && let Ok(link) =
            HeaderValue::from_str(&format!("</events?from={}>; rel=\"next\"", last.id))
    {
        response.headers_mut().insert(header::LINK, link);
    }
    Ok(response)
}

/// `GET /events/{id}`: one of the caller's events.
#[utoipa::path(get, path = "/events/{id}", params(("id" = String, Path)), responses((status = 200, description = "{seq, id, at, by, event}"), (status = 401), (status = 404)), tag = "apie")]
pub async fn event(
    State(state): State<AppState>,
    BasicOrToken(claims): BasicOrToken,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let at = crate::streams::Position::parse_str(&id)?;
    let event = crate::streams::get(&state, &claims.sub, &events_key(&claims), at).await?;
    Ok(axum::Json(event).into_response())
}

/// `PUT /storage/`: the body as a blob.
#[utoipa::path(put, path = "/storage/", request_body(content = Vec<u8>, content_type = "application/octet-stream"), responses((status = 201, description = "{sha256, size, contentType}"), (status = 200), (status = 401), (status = 413)), tag = "apie")]
pub async fn put_blob(
    state: State<AppState>,
    BasicOrToken(claims): BasicOrToken,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    super::blobs::upload(state, Caller(claims), headers, body).await
}

/// `PUT /storage/{name}`: what `curl -T file …/storage/` sends (curl names the file in the
/// URL). A hash there is the blob's, checked against the body; any other name is ignored.
#[utoipa::path(put, path = "/storage/{sha256}", params(("sha256" = String, Path, description = "a hash, or the file name curl puts there")), request_body(content = Vec<u8>, content_type = "application/octet-stream"), responses((status = 201), (status = 200), (status = 400), (status = 401), (status = 413)), tag = "apie")]
pub async fn put_named_blob(
    state: State<AppState>,
    BasicOrToken(claims): BasicOrToken,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    if crate::blobs::is_hash(&name) {
        return super::blobs::upload_named(state, Caller(claims), Path(name), headers, body).await;
    }
    super::blobs::upload(state, Caller(claims), headers, body).await
}

/// `GET /storage/{sha256}`.
#[utoipa::path(get, path = "/storage/{sha256}", params(("sha256" = String, Path)), responses((status = 200), (status = 401), (status = 404)), tag = "apie")]
pub async fn get_blob(
    state: State<AppState>,
    BasicOrToken(claims): BasicOrToken,
    sha256: Path<String>,
    via: Query<super::blobs::Via>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    super::blobs::download(state, Caller(claims), sha256, via, headers).await
}

/// `DELETE /storage/{sha256}`.
#[utoipa::path(delete, path = "/storage/{sha256}", params(("sha256" = String, Path)), responses((status = 204), (status = 401), (status = 404)), tag = "apie")]
pub async fn delete_blob(
    state: State<AppState>,
    BasicOrToken(claims): BasicOrToken,
    sha256: Path<String>,
) -> Result<StatusCode, ApiError> {
    super::blobs::delete(state, Caller(claims), sha256).await
}

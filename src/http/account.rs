//! Sessions over HTTP: sign up, log in (JSON or HTTP Basic), log out, who am I, and the
//! list of one's sessions. Rivet's `GET /login` and `GET /logout` work too.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use super::auth::{Caller, ClientIp};
use super::body;
use super::error::ApiError;
use crate::accounts;
use crate::error::Error;
use crate::state::AppState;
use crate::store::Scope;

/// Signup and login bodies; HTTP Basic credentials may stand in for the names.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Credentials {
    username: Option<String>,
    password: Option<String>,
    /// `"read"` issues a read-only token.
    #[serde(default)]
    #[schema(value_type = Option<String>, example = "read")]
    scope: Scope,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TokenBody {
    username: String,
    token: String,
}

/// Body (when present) merged with Basic credentials from the header.
fn credentials(
    headers: &HeaderMap,
    raw: Result<Bytes, BytesRejection>,
    limit: usize,
) -> Result<Credentials, ApiError> {
    let bytes = body::raw(raw, limit)?;
    let mut creds: Credentials = if bytes.iter().all(u8::is_ascii_whitespace) {
        Credentials::default()
    } else {
        serde_json::from_slice(&bytes)
            .map_err(|e| ApiError(Error::BadRequest(format!("invalid JSON body: {e}"))))?
    };
    if let Some((user, pass)) = basic(headers) {
        creds.username.get_or_insert(user);
        creds.password.get_or_insert(pass);
    }
    Ok(creds)
}

/// `Authorization: Basic …` as (username, password).
fn basic(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    crate::auth::basic::parse(value)
}

fn issued(status: StatusCode, issued: accounts::Issued) -> Response {
    let mut response = (
        status,
        Json(TokenBody {
            username: issued.username,
            token: issued.token.clone(),
        }),
    )
        .into_response();
    if let Ok(v) = issued.token.parse() {
        response.headers_mut().insert("x-session-token", v);
    }
    response
}

/// Create an account (generated name when no credentials are given) and a session.
#[utoipa::path(post, path = "/v1/signup", request_body(content = Credentials, description = "or HTTP Basic; empty for a generated name"),
    responses((status = 201, body = TokenBody), (status = 400), (status = 409, description = "username_taken")), tag = "sessions")]
pub async fn signup(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let creds = credentials(&headers, raw, state.limits.max_message_size)?;
    let out = accounts::signup(&state, ip, creds.username, creds.password, creds.scope).await?;
    Ok(issued(StatusCode::CREATED, out))
}

/// Log in with a password (JSON body or HTTP Basic).
#[utoipa::path(post, path = "/v1/login", request_body(content = Credentials, description = "or HTTP Basic"),
    responses((status = 200, body = TokenBody), (status = 401, description = "invalid_credentials")), tag = "sessions")]
pub async fn login(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let creds = credentials(&headers, raw, state.limits.max_message_size)?;
    let (Some(user), Some(pass)) = (creds.username, creds.password) else {
        return Err(Error::InvalidCredentials.into());
    };
    let out = accounts::login(&state, ip, &user, &pass, creds.scope).await?;
    Ok(issued(StatusCode::OK, out))
}

/// Rivet's `GET /login` with HTTP Basic credentials.
#[utoipa::path(get, path = "/login", responses((status = 200, body = TokenBody), (status = 401)), tag = "rivet")]
pub async fn rivet_login(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (user, pass) = basic(&headers).ok_or(Error::InvalidCredentials)?;
    let out = accounts::login(&state, ip, &user, &pass, Scope::Full).await?;
    Ok(issued(StatusCode::OK, out))
}

/// Revoke the presented token everywhere; live sockets using it are told and signed out.
#[utoipa::path(post, path = "/v1/logout", responses((status = 204), (status = 401)), tag = "sessions")]
pub async fn logout(
    State(state): State<AppState>,
    Caller(claims): Caller,
) -> Result<StatusCode, ApiError> {
    accounts::revoke(&state, &claims.sub, &claims.sid, claims.exp, 0).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Rivet's `GET /logout`: revokes the presented token, or with HTTP Basic credentials every
/// session of that user.
#[utoipa::path(get, path = "/logout", responses((status = 204), (status = 401)), tag = "rivet")]
pub async fn rivet_logout(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    if let Some((user, pass)) = basic(&headers) {
        // Checking the password opens a session too; it is revoked with the rest.
        accounts::login(&state, ip, &user, &pass, Scope::Full).await?;
        for session in state.store.sessions(&user).await? {
            accounts::revoke(&state, &user, &session.id, session.expires, 0).await?;
        }
        return Ok(StatusCode::NO_CONTENT);
    }
    let claims = super::auth::caller(&state, &headers, None).await?;
    accounts::revoke(&state, &claims.sub, &claims.sid, claims.exp, 0).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Who the token belongs to.
#[utoipa::path(get, path = "/v1/me", responses((status = 200, description = "{username, scope, session, expires}"), (status = 401)), tag = "sessions")]
pub async fn me(Caller(claims): Caller) -> Json<serde_json::Value> {
    Json(json!({
        "username": claims.sub,
        "scope": claims.scope,
        "session": claims.sid,
        "expires": claims.exp,
    }))
}

/// The caller's live sessions (not revoked, not expired); `current` marks this one.
#[utoipa::path(get, path = "/v1/sessions", responses((status = 200, description = "{sessions: [{id, createdAt, expires, scope, current}]}")), tag = "sessions")]
pub async fn sessions(
    State(state): State<AppState>,
    Caller(claims): Caller,
) -> Result<Json<serde_json::Value>, ApiError> {
    let list: Vec<serde_json::Value> = state
        .store
        .sessions(&claims.sub)
        .await?
        .into_iter()
        .filter(|s| !state.auth.sockets.is_revoked(&s.id))
        .map(|s| {
            let current = s.id == claims.sid;
            let mut v = json!(s);
            v["current"] = json!(current);
            v
        })
        .collect();
    Ok(Json(json!({ "sessions": list })))
}

/// Revoke one of the caller's sessions.
#[utoipa::path(delete, path = "/v1/sessions/{id}", params(("id" = String, Path)), responses((status = 204), (status = 403), (status = 404)), tag = "sessions")]
pub async fn delete_session(
    State(state): State<AppState>,
    Caller(claims): Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    claims.can_write()?;
    let session = state
        .store
        .sessions(&claims.sub)
        .await?
        .into_iter()
        .find(|s| s.id == id)
        .ok_or(Error::NotFound)?;
    accounts::revoke(&state, &claims.sub, &session.id, session.expires, 0).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A new token for the presented one's session, valid `TOKEN_TTL` from now.
#[utoipa::path(post, path = "/v1/refresh", responses((status = 200, body = TokenBody), (status = 401)), tag = "sessions")]
pub async fn refresh(
    State(state): State<AppState>,
    Caller(claims): Caller,
) -> Result<Response, ApiError> {
    let out = accounts::refresh(&state, &claims).await?;
    Ok(issued(StatusCode::OK, out))
}

/// `POST /v1/me/password`'s body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordChange {
    /// The current password; may be left out only by an account that has none.
    old: Option<String>,
    new: String,
}

/// Change one's own password; every other session of the account ends.
#[utoipa::path(post, path = "/v1/me/password", request_body = PasswordChange,
    responses((status = 200, description = "{ended}: other sessions signed out"), (status = 400), (status = 401, description = "invalid_credentials: wrong old password"), (status = 429)), tag = "sessions")]
pub async fn change_password(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    Caller(claims): Caller,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let bytes = body::raw(raw, state.limits.max_message_size)?;
    let change: PasswordChange = serde_json::from_slice(&bytes)
        .map_err(|e| ApiError(Error::BadRequest(format!("invalid JSON body: {e}"))))?;
    let ended = accounts::change_password(&state, ip, &claims, change.old, change.new).await?;
    Ok(Json(json!({ "ended": ended })))
}

/// `DELETE /v1/me`'s body: the password, when the account has one.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Confirm {
    password: Option<String>,
}

/// Delete one's own account: document, change log, sessions and blob references go, the
/// name leaves every access list, live sockets are closed (4004). An account with a
/// password must give it (JSON body or HTTP Basic); attempts count as logins.
#[utoipa::path(delete, path = "/v1/me", request_body(content = Confirm, description = "or HTTP Basic"),
    responses((status = 200, description = "{sessions, blobs, unshared}"), (status = 401, description = "invalid_credentials"), (status = 403), (status = 429)), tag = "sessions")]
pub async fn delete_me(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    Caller(claims): Caller,
    headers: HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Json<accounts::Deleted>, ApiError> {
    claims.can_write()?;
    let bytes = body::raw(raw, state.limits.max_message_size)?;
    let mut confirm: Confirm = if bytes.iter().all(u8::is_ascii_whitespace) {
        Confirm::default()
    } else {
        serde_json::from_slice(&bytes)
            .map_err(|e| ApiError(Error::BadRequest(format!("invalid JSON body: {e}"))))?
    };
    if let Some((_, pass)) = basic(&headers) {
        confirm.password.get_or_insert(pass);
    }
    accounts::confirm_password(&state, ip, &claims.sub, confirm.password).await?;
    let report =
        accounts::delete_account(&state.store, &state.auth, Some(&state.blobs), &claims.sub)
            .await?;
    Ok(Json(report))
}

/// Everything the account holds, as one JSON download: the default document, its retained
/// change log, each named document with its own, its sessions and the list of its blobs
/// (fetch each from `/v1/blobs/{sha256}`).
#[utoipa::path(get, path = "/v1/me/export", responses((status = 200, description = "{username, createdAt, exportedAt, document, changes, oldestRetained, documents: [{document, changes, oldestRetained}], sessions, blobs}"), (status = 401)), tag = "sessions")]
pub async fn export(
    State(state): State<AppState>,
    Caller(claims): Caller,
) -> Result<Response, ApiError> {
    let name = claims.sub.as_str();
    let user = state.store.user(name).await?.ok_or(Error::InvalidToken)?;
    let doc = state
        .store
        .document(name)
        .await?
        .ok_or(Error::InvalidToken)?;
    let history = state
        .store
        .changes(name, 0, doc.version(), usize::MAX)
        .await?;
    let mut blobs = Vec::new();
    loop {
        let (page, _) = state.store.user_blobs(name, blobs.len(), 1000).await?;
        if page.is_empty() {
            break;
        }
        blobs.extend(page);
    }
    let sessions = state.store.sessions(name).await?;
    let mut named = Vec::new();
    for listed in state.store.documents(name, "", usize::MAX).await? {
        let key = format!("{name}/{}", listed.name);
        // Deleted meanwhile: not part of the account any more.
        let Some(doc) = state.store.document(&key).await? else {
            continue;
        };
        let history = state
            .store
            .changes(&key, 0, doc.version(), usize::MAX)
            .await?;
        named.push(json!({"document": &*doc, "oldestRetained": history.oldest, "changes": history.entries}));
    }
    let body = json!({
        "username": name,
        "createdAt": user.created_at,
        "exportedAt": crate::sys::now_rfc3339(),
        "document": &*doc,
        "oldestRetained": history.oldest,
        "changes": history.entries,
        "documents": named,
        "sessions": sessions,
        "blobs": blobs,
    });
    let mut response = Json(body).into_response();
    if let Ok(v) = format!("attachment; filename=\"hearth-{name}.json\"").parse() {
        response
            .headers_mut()
            .insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(response)
}

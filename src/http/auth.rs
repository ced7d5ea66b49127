//! Who is calling: the session token from `Authorization: Bearer`, `X-Session-Token` (as
//! Rivet's clients send it) or `?token=` (for EventSource, which cannot set headers; URLs end
//! up in logs, so prefer a header everywhere else).

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::HeaderMap;
use axum::http::request::Parts;

use super::error::ApiError;
use crate::auth::Claims;
use crate::error::Error;
use crate::state::AppState;

/// A verified caller.
pub struct Caller(pub Claims);

/// The client's address for per-address limits and logs: the peer, or the address a trusted
/// proxy forwarded for (`proxies.rs`).
pub struct ClientIp(pub IpAddr);

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip())
            .ok_or(Error::Internal)?;
        Ok(ClientIp(crate::proxies::client_ip(
            &state.limits.trusted_proxies,
            peer,
            &parts.headers,
        )))
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        caller(state, &parts.headers, parts.uri.query())
            .await
            .map(Caller)
    }
}

/// The verified claims of the token the request carries.
///
/// # Errors
/// `auth_required` without a token, `invalid_token` with a bad one or one whose account does
/// not exist.
pub async fn caller(
    state: &AppState,
    headers: &HeaderMap,
    query: Option<&str>,
) -> Result<Claims, ApiError> {
    let token = presented(headers, query)?;
    Ok(crate::accounts::check_token(state, &token).await?)
}

/// A caller of the change feed: any admin token, feed-scoped ones (`scope: "feed"`, made for
/// integrations) included.
pub struct FeedCaller(pub Claims);

impl FromRequestParts<AppState> for FeedCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = presented(&parts.headers, parts.uri.query())?;
        let claims = crate::accounts::check_any_token(state, &token).await?;
        let allowed = matches!(
            claims.scope,
            crate::store::Scope::Full | crate::store::Scope::Feed
        );
        if !allowed || !state.auth.flags.is_admin(&claims.sub) {
            return Err(Error::Forbidden.into());
        }
        Ok(FeedCaller(claims))
    }
}

/// The token a request carries, trimmed.
fn presented(headers: &HeaderMap, query: Option<&str>) -> Result<String, ApiError> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let token = header("authorization")
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .or_else(|| header("x-session-token"))
        .map(str::to_owned)
        .or_else(|| query_token(query));
    let token = token.ok_or(Error::AuthRequired)?;
    Ok(token.trim().to_owned())
}

fn query_token(query: Option<&str>) -> Option<String> {
    query?
        .split('&')
        .find_map(|pair| pair.strip_prefix("token="))
        .map(str::to_owned)
}

/// Admins (`ADMIN_USERS`, or granted) holding a full-scope token pass; everyone else is
/// `forbidden`.
///
/// # Errors
/// `Forbidden`.
pub fn require_admin(
    state: &crate::state::AppState,
    claims: &crate::auth::Claims,
) -> Result<(), ApiError> {
    if claims.scope == crate::store::Scope::Full && state.auth.flags.is_admin(&claims.sub) {
        Ok(())
    } else {
        Err(crate::error::Error::Forbidden.into())
    }
}

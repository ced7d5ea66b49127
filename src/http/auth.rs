//! Who is calling: the session token from `Authorization: Bearer`, `X-Session-Token` (as
//! Rivet's clients send it) or `?token=` (for EventSource, which cannot set headers; URLs end
//! up in logs, so prefer a header everywhere else).

use axum::extract::FromRequestParts;
use axum::http::HeaderMap;
use axum::http::request::Parts;

use super::error::ApiError;
use crate::auth::Claims;
use crate::error::Error;
use crate::state::AppState;

/// A verified caller.
pub struct Caller(pub Claims);

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        caller(state, &parts.headers, parts.uri.query()).map(Caller)
    }
}

/// The verified claims of the token the request carries.
///
/// # Errors
/// `auth_required` without a token, `invalid_token` with a bad one.
pub fn caller(
    state: &AppState,
    headers: &HeaderMap,
    query: Option<&str>,
) -> Result<Claims, ApiError> {
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
    Ok(state.auth.verify(token.trim())?)
}

fn query_token(query: Option<&str>) -> Option<String> {
    query?
        .split('&')
        .find_map(|pair| pair.strip_prefix("token="))
        .map(str::to_owned)
}

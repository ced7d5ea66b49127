//! Who is present on a document, over HTTP (`presence/` keeps it; the WebSocket `presence`
//! frame and SSE's `?presence=1` push its changes).

use axum::Json;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};

use super::auth::Caller;
use super::data::{DataPath, readable};
use super::error::ApiError;
use crate::frame::{Reply, split_key};
use crate::state::AppState;

/// `{type: "presence", username, present: [{username, connections, state, since}], seq}`.
#[utoipa::path(get, path = "/v1/users/{user}/presence", params(("user" = String, Path)),
    responses((status = 200, description = "{type, username, present: [{username, connections, state, since}], seq}"), (status = 404)), tag = "presence")]
pub async fn present(
    State(state): State<AppState>,
    Caller(claims): Caller,
    Path(p): Path<DataPath>,
) -> Result<Response, ApiError> {
    let key = p.key()?;
    readable(&state, &claims.sub, &key).await?;
    let (username, name) = split_key(&key);
    let (present, seq) = state.presence.list(&key);
    let reply = Reply::Presence {
        username,
        name,
        present,
        seq,
    };
    Ok(Json(reply).into_response())
}

/// The same for a named document: `{type, username, name, present}`.
#[utoipa::path(get, path = "/v1/users/{user}/docs/{name}/presence", params(("user" = String, Path), ("name" = String, Path)),
    responses((status = 200, description = "{type, username, name, present}"), (status = 404)), tag = "presence")]
pub async fn named_present(
    s: State<AppState>,
    c: Caller,
    p: Path<DataPath>,
) -> Result<Response, ApiError> {
    present(s, c, p).await
}

//! The audit log over HTTP: every admin action records a line (`record`), and admins read
//! them (`GET /v1/admin/audit`), newest first.

use axum::Json;
use axum::extract::{Query, State};
use serde::Deserialize;
use serde_json::{Value, json};

use super::auth::{Caller, require_admin};
use super::error::ApiError;
use crate::auth::Claims;
use crate::state::AppState;

const DEFAULT_PAGE: usize = 100;
const MAX_PAGE: usize = 1000;

/// Records that the admin `claims` did `action` to `target`. Called once the action has
/// succeeded; a failure to record is the request's failure (503), so no action goes
/// unrecorded without the admin being told.
///
/// # Errors
/// `Unavailable`.
pub async fn record(
    state: &AppState,
    claims: &Claims,
    action: &str,
    target: Option<&str>,
) -> Result<(), ApiError> {
    state.store.audit(&claims.sub, action, target).await?;
    Ok(())
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct AuditQuery {
    /// Lines before this `seq` (the `next` of the previous page).
    before: Option<u64>,
    limit: Option<usize>,
}

/// The audit log, newest first: `{lines: [{seq, at, by, action, target?}], next}`.
#[utoipa::path(get, path = "/v1/admin/audit", params(AuditQuery), responses((status = 200, description = "{lines: [{seq, at, by, action, target?}], next}: pass next as before for older lines"), (status = 403)), tag = "admin")]
pub async fn lines(
    State(state): State<AppState>,
    Caller(claims): Caller,
    Query(q): Query<AuditQuery>,
) -> Result<Json<Value>, ApiError> {
    require_admin(&state, &claims)?;
    let limit = q.limit.unwrap_or(DEFAULT_PAGE).clamp(1, MAX_PAGE);
    let lines = state.store.audit_lines(q.before, limit).await?;
    let next = (lines.len() == limit)
        .then(|| lines.last().map(|l| l.seq))
        .flatten();
    Ok(Json(json!({"lines": lines, "next": next})))
}

//! Webhooks over HTTP: owners register them on their documents and streams
//! (`/v1/me/webhooks`), admins on every document (`/v1/admin/webhooks`). The secret is shown
//! once, in the answer that creates it.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use super::auth::{Caller, require_admin};
use super::error::ApiError;
use crate::auth::Claims;
use crate::error::Error;
use crate::state::AppState;
use crate::webhooks::deliver::{all, save};
use crate::webhooks::{Hook, MAX_PER_ACCOUNT, address};

/// What a new webhook is given.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewHook {
    /// Where to post: an http(s) URL on a public address (`WEBHOOK_ALLOW_PRIVATE`).
    url: String,
    /// Which documents or streams: names of yours (`notes`, `~activity`; the default
    /// document is your username) or keys (`ann/notes`). None: all of yours.
    docs: Option<Vec<String>>,
    /// `update`, `append`; none: both.
    events: Option<Vec<String>>,
}

async fn create(
    state: &AppState,
    claims: &Claims,
    new: NewHook,
    global: bool,
) -> Result<Value, ApiError> {
    claims.can_write()?;
    address::resolve(&new.url, state.config.webhook_allow_private)
        .await
        .map_err(Error::BadRequest)?;
    let me = &claims.sub;
    let mut docs = Vec::new();
    for d in new.docs.unwrap_or_default() {
        let key = if d.contains('/') || d == *me || global {
            d
        } else {
            format!("{me}/{d}")
        };
        let target = crate::names::Target::parse(&key)
            .ok_or_else(|| Error::BadRequest(format!("{key:?} is not a document")))?;
        if !global && target.owner != *me {
            return Err(Error::BadRequest(format!("{key:?} is not yours")).into());
        }
        docs.push(target.key());
    }
    let events = new.events.unwrap_or_default();
    if let Some(bad) = events
        .iter()
        .find(|e| !matches!(e.as_str(), "update" | "append"))
    {
        return Err(Error::BadRequest(format!("unknown event {bad:?}: update or append")).into());
    }
    let hooks = all(state).await?;
    if hooks.iter().filter(|h| h.owner == *me).count() >= MAX_PER_ACCOUNT {
        return Err(
            Error::BadRequest(format!("at most {MAX_PER_ACCOUNT} webhooks per account")).into(),
        );
    }
    // From now on: the newest cursor handed out is where it starts.
    let start = state.store.feed(u64::MAX - 1, 1).await?.newest.unwrap_or(0);
    let hook = Hook {
        id: crate::sys::random_hex(8),
        owner: me.clone(),
        global,
        url: new.url,
        docs,
        events,
        secret: crate::sys::random_hex(32),
        created_at: crate::sys::now_rfc3339(),
        cursor: start,
        paused: None,
        failures: 0,
        last_error: None,
        delivered: 0,
    };
    save(state, &hook, None).await?;
    let mut shown = hook.shown();
    shown["secret"] = json!(hook.secret);
    Ok(shown)
}

/// Registers a webhook on your documents and streams: 201 with its `secret` (shown only
/// now).
#[utoipa::path(post, path = "/v1/me/webhooks", request_body = NewHook,
    responses((status = 201, description = "{id, url, docs, events, secret, cursor, …}"), (status = 400)), tag = "webhooks")]
pub async fn register(
    State(state): State<AppState>,
    Caller(claims): Caller,
    Json(new): Json<NewHook>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    Ok((
        StatusCode::CREATED,
        Json(create(&state, &claims, new, false).await?),
    ))
}

/// Your webhooks, with how each is doing: `{webhooks: [{id, url, docs, events, cursor,
/// paused, failures, lastError, delivered, …}]}` (no secrets).
#[utoipa::path(get, path = "/v1/me/webhooks", responses((status = 200)), tag = "webhooks")]
pub async fn mine(
    State(state): State<AppState>,
    Caller(claims): Caller,
) -> Result<Json<Value>, ApiError> {
    let hooks: Vec<Value> = all(&state)
        .await?
        .iter()
        .filter(|h| h.owner == claims.sub && !h.global)
        .map(Hook::shown)
        .collect();
    Ok(Json(json!({ "webhooks": hooks })))
}

/// The webhook `id` if `claims` may change it: its owner's, or any for an admin.
async fn owned(state: &AppState, claims: &Claims, id: &str) -> Result<Hook, ApiError> {
    claims.can_write()?;
    let admin = require_admin(state, claims).is_ok();
    all(state)
        .await?
        .into_iter()
        .find(|h| h.id == id && (admin || (h.owner == claims.sub && !h.global)))
        .ok_or_else(|| Error::NotFound.into())
}

/// Removes a webhook; nothing more is posted.
#[utoipa::path(delete, path = "/v1/me/webhooks/{id}", params(("id" = String, Path)), responses((status = 204), (status = 404)), tag = "webhooks")]
pub async fn remove(
    State(state): State<AppState>,
    Caller(claims): Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let hook = owned(&state, &claims, &id).await?;
    state.webhooks.stop(&hook.id);
    state.store.save_webhook(&hook.id, None, None).await?;
    audit_if_admin(&state, &claims, &hook, "remove_webhook").await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Resumes a paused webhook from the change it failed on.
#[utoipa::path(post, path = "/v1/me/webhooks/{id}/resume", params(("id" = String, Path)), responses((status = 200), (status = 404)), tag = "webhooks")]
pub async fn resume(
    State(state): State<AppState>,
    Caller(claims): Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let mut hook = owned(&state, &claims, &id).await?;
    let was = hook.clone();
    state.webhooks.stop(&hook.id);
    hook.paused = None;
    hook.failures = 0;
    // Over the record read, so a webhook removed meanwhile (on any node) stays removed.
    save(&state, &hook, Some(&was)).await?;
    audit_if_admin(&state, &claims, &hook, "resume_webhook").await?;
    Ok(Json(hook.shown()))
}

/// An admin acting on a webhook not their own (or a global one) leaves an audit line.
async fn audit_if_admin(
    state: &AppState,
    claims: &Claims,
    hook: &Hook,
    action: &str,
) -> Result<(), ApiError> {
    if hook.global || hook.owner != claims.sub {
        super::audit::record(state, claims, action, Some(&hook.id)).await?;
    }
    Ok(())
}

/// An admin's webhook, on every document: 201 with its secret.
#[utoipa::path(post, path = "/v1/admin/webhooks", request_body = NewHook, responses((status = 201), (status = 400), (status = 403)), tag = "admin")]
pub async fn register_global(
    State(state): State<AppState>,
    Caller(claims): Caller,
    Json(new): Json<NewHook>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    require_admin(&state, &claims)?;
    let created = create(&state, &claims, new, true).await?;
    let id = created["id"].as_str().unwrap_or_default().to_owned();
    super::audit::record(&state, &claims, "create_webhook", Some(&id)).await?;
    Ok((StatusCode::CREATED, Json(created)))
}

/// Every webhook, everyone's (no secrets).
#[utoipa::path(get, path = "/v1/admin/webhooks", responses((status = 200), (status = 403)), tag = "admin")]
pub async fn every(
    State(state): State<AppState>,
    Caller(claims): Caller,
) -> Result<Json<Value>, ApiError> {
    require_admin(&state, &claims)?;
    let hooks: Vec<Value> = all(&state).await?.iter().map(Hook::shown).collect();
    Ok(Json(json!({ "webhooks": hooks })))
}

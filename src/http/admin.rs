//! The admin API (`/v1/admin`), for admins (`ADMIN_USERS` or granted) holding a full-scope
//! token: server stats, backups, and managing accounts. The account operations are the same
//! functions `hearth user ...` runs on a stopped server's data dir (`accounts.rs`).

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use super::auth::{Caller, require_admin};
use super::error::ApiError;
use crate::accounts;
use crate::auth::Claims;
use crate::error::Error;
use crate::state::AppState;

const DEFAULT_PAGE: usize = 100;
const MAX_PAGE: usize = 1000;

/// Counts of users, documents and change-log entries, and live connections.
#[utoipa::path(get, path = "/v1/admin/stats", responses((status = 200, description = "{users, documents, logEntries, blobs, blobBytes, dataBytes, connections, sessions, watches, commits, commitsPerSecond}"), (status = 403)), tag = "admin")]
pub async fn stats(
    State(state): State<AppState>,
    Caller(claims): Caller,
) -> Result<Json<Value>, ApiError> {
    require_admin(&state, &claims)?;
    let store = state.store.stats().await?;
    let m = &state.metrics;
    Ok(Json(json!({
        "users": store.users,
        "documents": store.documents,
        "logEntries": store.log_entries,
        "blobs": store.blobs,
        "blobBytes": store.blob_bytes,
        "connections": m.connections.get(),
        "sessions": m.sessions.get(),
        "watches": state.hub.watchers(),
        "commits": m.commits.get(),
        "commitsPerSecond": (m.commit_rate.per_second() * 10.0).round() / 10.0,
        "dataBytes": store.data_bytes,
    })))
}

/// This node at a glance, for the dashboard: its name and store, whether it is ready, the
/// counts `stats` gives, and the last hour of its own metrics sampled every 10 s (oldest
/// first; rates per second between samples).
#[utoipa::path(get, path = "/v1/admin/overview", responses((status = 200, description = "{node, store, ready, stats: {…}, samples: [{at, connections, sessions, watches, commitsPerSecond, deliveriesPerSecond, errorsPerSecond: {code: n}, cacheHitRate}]}"), (status = 403)), tag = "admin")]
pub async fn overview(state: State<AppState>, caller: Caller) -> Result<Json<Value>, ApiError> {
    let Json(stats) = stats(state.clone(), caller).await?;
    let State(state) = state;
    Ok(Json(json!({
        "node": &*state.presence.node,
        "store": state.store.kind(),
        "ready": state.store.healthy() && !state.shutdown.is_cancelled(),
        "stats": stats,
        "samples": state.overview.samples(),
    })))
}

/// The settings in force on this node, by their environment names, secrets masked:
/// `{settings: {HOST: …, JWT_SECRET: "(set)", DATABASE_URL: "postgres://hearth:•••@db/…", …}}`.
#[utoipa::path(get, path = "/v1/admin/settings", responses((status = 200, description = "{settings: {NAME: value}}; secrets show as \"(set)\", a database URL without its password"), (status = 403)), tag = "admin")]
pub async fn settings(
    State(state): State<AppState>,
    Caller(claims): Caller,
) -> Result<Json<Value>, ApiError> {
    require_admin(&state, &claims)?;
    Ok(Json(json!({"settings": masked_settings(&state.config)})))
}

/// Every setting as `NAME: value`, with what must never leave the server replaced.
fn masked_settings(config: &crate::config::Config) -> serde_json::Map<String, Value> {
    let Ok(Value::Object(fields)) = serde_json::to_value(config) else {
        return serde_json::Map::new();
    };
    fields
        .into_iter()
        .map(|(name, value)| {
            let value = match (name.as_str(), value) {
                // Empty is unset: the secret is then generated (and kept in DATA_DIR).
                ("jwt_secret" | "legacy_jwt_secret", Value::String(s)) if s.is_empty() => {
                    Value::Null
                }
                ("jwt_secret" | "legacy_jwt_secret", Value::String(_)) => json!("(set)"),
                ("database_url", Value::String(url)) => json!(without_password(&url)),
                (_, value) => value,
            };
            (name.to_uppercase(), value)
        })
        .collect()
}

/// `scheme://user:secret@host/…` without its secret.
fn without_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "(set)".into();
    };
    match rest.split_once('@') {
        Some((user, host)) => match user.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:•••@{host}"),
            None => format!("{scheme}://{user}@{host}"),
        },
        None => format!("{scheme}://{rest}"),
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct Page {
    offset: Option<usize>,
    limit: Option<usize>,
    /// Only names containing this (names are lower case, and so is a search).
    q: Option<String>,
}

/// Users in name order: `{users: [{username, createdAt, disabled, admin}], total, next_offset}`;
/// with `q`, those whose names contain it (`total` counts the matches).
#[utoipa::path(get, path = "/v1/admin/users", params(Page), responses((status = 200), (status = 403)), tag = "admin")]
pub async fn users(
    State(state): State<AppState>,
    Caller(claims): Caller,
    Query(page): Query<Page>,
) -> Result<Json<Value>, ApiError> {
    require_admin(&state, &claims)?;
    let offset = page.offset.unwrap_or(0);
    let limit = page.limit.unwrap_or(DEFAULT_PAGE).clamp(1, MAX_PAGE);
    // Names are lower case: a search is too.
    let search = page.q.as_deref().unwrap_or("").trim().to_lowercase();
    let (users, total) = state.store.users(offset, limit, &search).await?;
    let next = (((offset + users.len()) as u64) < total).then_some(offset + users.len());
    let list: Vec<Value> = users
        .into_iter()
        .map(|u| {
            let disabled = state.auth.flags.is_disabled(&u.username);
            let admin = state.auth.flags.is_admin(&u.username);
            json!({"username": u.username, "createdAt": u.created_at, "disabled": disabled, "admin": admin})
        })
        .collect();
    Ok(Json(
        json!({"users": list, "total": total, "next_offset": next}),
    ))
}

/// Takes a snapshot into the server's backups directory: `{file, rows}`.
#[utoipa::path(post, path = "/v1/admin/backup", responses((status = 200, description = "{file, rows}"), (status = 403)), tag = "admin")]
pub async fn backup_to_dir(
    State(state): State<AppState>,
    Caller(claims): Caller,
) -> Result<Json<Value>, ApiError> {
    require_admin(&state, &claims)?;
    tokio::fs::create_dir_all(&state.backups.dir)
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "cannot create the backups directory");
            ApiError(Error::Unavailable)
        })?;
    let path = state.backups.next_path("manual-");
    let rows = state
        .store
        .backup(path.clone(), state.backups.info())
        .await?;
    let file = path.display().to_string();
    super::audit::record(&state, &claims, "backup", Some(&file)).await?;
    Ok(Json(json!({"file": file, "rows": rows})))
}

/// Streams a fresh consistent snapshot (a redb file) taken without stopping writers; what
/// `hearth backup --url` downloads.
#[utoipa::path(get, path = "/v1/admin/backup", responses((status = 200, description = "application/octet-stream: a redb file"), (status = 403)), tag = "admin")]
pub async fn backup_download(
    State(state): State<AppState>,
    Caller(claims): Caller,
) -> Result<axum::response::Response, ApiError> {
    require_admin(&state, &claims)?;
    let fail = |e: std::io::Error| {
        tracing::error!(error = %e, "backup download failed");
        ApiError(Error::Unavailable)
    };
    tokio::fs::create_dir_all(&state.backups.dir)
        .await
        .map_err(fail)?;
    let path = state.backups.next_path(".download-");
    state
        .store
        .backup(path.clone(), state.backups.info())
        .await?;
    let file = tokio::fs::File::open(&path).await.map_err(fail)?;
    let len = file.metadata().await.map_err(fail)?.len();
    super::audit::record(&state, &claims, "backup_download", None).await?;
    // The open handle keeps the bytes; the name can go now, so nothing is left behind.
    tokio::fs::remove_file(&path).await.map_err(fail)?;
    Ok(send_file(file, len))
}

/// A file's bytes as they are read, its length announced (the page shows progress by it).
pub(super) fn send_file(file: tokio::fs::File, len: u64) -> axum::response::Response {
    use axum::response::IntoResponse;
    let body = axum::body::Body::from_stream(tokio_util::io::ReaderStream::new(file));
    (
        [
            (
                axum::http::header::CONTENT_TYPE,
                "application/octet-stream".to_owned(),
            ),
            (axum::http::header::CONTENT_LENGTH, len.to_string()),
        ],
        body,
    )
        .into_response()
}

/// Disables an account: its tokens stop working at once and its sockets close (4003).
#[utoipa::path(post, path = "/v1/admin/users/{user}/disable", params(("user" = String, Path)), responses((status = 204), (status = 403), (status = 404)), tag = "admin")]
pub async fn disable(
    State(state): State<AppState>,
    Caller(claims): Caller,
    Path(user): Path<String>,
) -> Result<StatusCode, ApiError> {
    set_disabled(&state, &claims, &user, true).await
}

/// Deletes an account and everything it owns; its sockets close (4004) and its name leaves
/// every access list.
#[utoipa::path(delete, path = "/v1/admin/users/{user}", params(("user" = String, Path)), responses((status = 200, description = "{sessions, blobs, unshared}"), (status = 403), (status = 404)), tag = "admin")]
pub async fn delete_user(
    State(state): State<AppState>,
    Caller(claims): Caller,
    Path(user): Path<String>,
) -> Result<Json<accounts::Deleted>, ApiError> {
    require_admin(&state, &claims)?;
    let report =
        accounts::delete_account(&state.store, &state.auth, Some(&state.blobs), &user).await?;
    super::audit::record(&state, &claims, "delete_user", Some(&user)).await?;
    Ok(Json(report))
}

/// Enables a disabled account again.
#[utoipa::path(post, path = "/v1/admin/users/{user}/enable", params(("user" = String, Path)), responses((status = 204), (status = 403), (status = 404)), tag = "admin")]
pub async fn enable(
    State(state): State<AppState>,
    Caller(claims): Caller,
    Path(user): Path<String>,
) -> Result<StatusCode, ApiError> {
    set_disabled(&state, &claims, &user, false).await
}

async fn set_disabled(
    state: &AppState,
    claims: &Claims,
    user: &str,
    disabled: bool,
) -> Result<StatusCode, ApiError> {
    require_admin(state, claims)?;
    accounts::set_disabled(&state.store, &state.auth, user, disabled).await?;
    let action = if disabled { "disable" } else { "enable" };
    super::audit::record(state, claims, action, Some(user)).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    username: String,
    password: String,
}

/// Creates an account with a password (no session is opened): `{username}`.
#[utoipa::path(post, path = "/v1/admin/users", request_body = NewUser, responses((status = 201), (status = 400), (status = 403), (status = 409)), tag = "admin")]
pub async fn create_user(
    State(state): State<AppState>,
    Caller(claims): Caller,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    require_admin(&state, &claims)?;
    let new: NewUser = super::body::json(body, state.limits.max_message_size)?;
    accounts::create(&state.store, &state.auth, &new.username, new.password).await?;
    super::audit::record(&state, &claims, "create_user", Some(&new.username)).await?;
    Ok((StatusCode::CREATED, Json(json!({"username": new.username}))))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewPassword {
    password: String,
}

/// Sets a new password and revokes every session of the account: `{revokedSessions}`.
#[utoipa::path(post, path = "/v1/admin/users/{user}/password", params(("user" = String, Path)), request_body = NewPassword, responses((status = 200), (status = 400), (status = 403), (status = 404)), tag = "admin")]
pub async fn reset_password(
    State(state): State<AppState>,
    Caller(claims): Caller,
    Path(user): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    require_admin(&state, &claims)?;
    let new: NewPassword = super::body::json(body, state.limits.max_message_size)?;
    let revoked = accounts::reset_password(&state.store, &state.auth, &user, new.password).await?;
    super::audit::record(&state, &claims, "reset_password", Some(&user)).await?;
    Ok(Json(json!({"revokedSessions": revoked})))
}

/// Makes the account an admin (persisted; `ADMIN_USERS` names more).
#[utoipa::path(post, path = "/v1/admin/users/{user}/admin", params(("user" = String, Path)), responses((status = 204), (status = 403), (status = 404)), tag = "admin")]
pub async fn grant_admin(
    State(state): State<AppState>,
    Caller(claims): Caller,
    Path(user): Path<String>,
) -> Result<StatusCode, ApiError> {
    require_admin(&state, &claims)?;
    accounts::set_admin(&state.store, &state.auth, &user, true).await?;
    super::audit::record(&state, &claims, "grant_admin", Some(&user)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Withdraws a grant made with `POST .../admin` (accounts in `ADMIN_USERS` stay admins).
#[utoipa::path(delete, path = "/v1/admin/users/{user}/admin", params(("user" = String, Path)), responses((status = 204), (status = 403), (status = 404)), tag = "admin")]
pub async fn revoke_admin(
    State(state): State<AppState>,
    Caller(claims): Caller,
    Path(user): Path<String>,
) -> Result<StatusCode, ApiError> {
    require_admin(&state, &claims)?;
    accounts::set_admin(&state.store, &state.auth, &user, false).await?;
    super::audit::record(&state, &claims, "revoke_admin", Some(&user)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// One personal-backend user file, as `hearth import personal-backend` sends it.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct SeedFile {
    name: String,
    /// The file's text: `{metadata, userdata}`.
    content: String,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SeedFiles {
    files: Vec<SeedFile>,
}

/// Imports personal-backend user files (`.data/<username>.json`) as accounts with their
/// documents as they were: `{imported, present, skipped: [[file, why]], dropped: [[user,
/// collaborator]]}` (PROTOCOL.md, "socket.io"; `hearth import personal-backend`).
#[utoipa::path(post, path = "/v1/admin/import/personal-backend", request_body = SeedFiles, responses((status = 200), (status = 400), (status = 403)), tag = "admin")]
pub async fn import_personal_backend(
    State(state): State<AppState>,
    Caller(claims): Caller,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<crate::ops::import::Report>, ApiError> {
    use crate::ops::import;
    require_admin(&state, &claims)?;
    let files: SeedFiles = super::body::json(body, state.limits.max_message_size)?;
    let (mut accounts, mut skipped) = (Vec::new(), Vec::new());
    for f in files.files {
        match import::parse(&f.name, f.content.as_bytes(), state.store.max_doc_bytes()) {
            Ok(a) => accounts.push(a),
            Err(why) => skipped.push((f.name, why)),
        }
    }
    let mut report = import::import(&state.store, accounts, |_, _| {}).await?;
    report.skipped.extend(skipped);
    super::audit::record(&state, &claims, "import", None).await?;
    Ok(Json(report))
}

#[cfg(test)]
mod tests {
    use super::without_password;

    #[test]
    fn database_urls_lose_their_password() {
        assert_eq!(
            without_password("postgres://h:s3cret@db:5432/x"),
            "postgres://h:•••@db:5432/x"
        );
        assert_eq!(without_password("postgres://h@db/x"), "postgres://h@db/x");
        assert_eq!(without_password("postgres://db/x"), "postgres://db/x");
        assert_eq!(without_password("host=db password=s3cret"), "(set)");
    }
}

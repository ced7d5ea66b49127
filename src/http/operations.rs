//! What an operator checks without a terminal: the snapshots in the backups directory
//! (scheduled and manual), each downloadable, and the warnings and errors this node logged.

use axum::Json;
use axum::extract::{Path, State};
use axum::response::Response;
use serde_json::{Value, json};

use super::auth::{Caller, require_admin};
use super::error::ApiError;
use crate::error::Error;
use crate::state::AppState;

/// The snapshots in the backups directory, newest first: `{dir, interval, keep, backups:
/// [{name, bytes, modified, scheduled}]}` (`interval` in seconds, 0: none scheduled).
/// Downloads in progress (their files are unnamed at once) are not listed.
#[utoipa::path(get, path = "/v1/admin/backups", responses((status = 200, description = "{dir, interval, keep, backups: [{name, bytes, modified, scheduled}]}"), (status = 403)), tag = "admin")]
pub async fn backups(
    State(state): State<AppState>,
    Caller(claims): Caller,
) -> Result<Json<Value>, ApiError> {
    require_admin(&state, &claims)?;
    let mut list = Vec::new();
    match tokio::fs::read_dir(&state.backups.dir).await {
        Ok(mut dir) => {
            while let Ok(Some(entry)) = dir.next_entry().await {
                let name = entry.file_name().to_string_lossy().into_owned();
                if !is_backup_name(&name) {
                    continue;
                }
                let Ok(meta) = entry.metadata().await else {
                    continue;
                };
                let modified = meta
                    .modified()
                    .ok()
                    .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                    .map_or(0, |d| d.as_secs());
                let scheduled = name.starts_with("scheduled-");
                list.push(json!({"name": name, "bytes": meta.len(), "modified": modified, "scheduled": scheduled}));
            }
        }
        // No directory yet: no backup was ever taken.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            tracing::error!(error = %e, "cannot list the backups directory");
            return Err(Error::Unavailable.into());
        }
    }
    list.sort_by(|a, b| b["name"].as_str().cmp(&a["name"].as_str()));
    let config = &state.config;
    Ok(Json(json!({
        "dir": state.backups.dir.display().to_string(),
        "interval": config.backup_interval,
        "keep": config.backup_keep,
        "backups": list,
    })))
}

/// A snapshot's file name as the server makes them (`scheduled-…`, `manual-…`, ending
/// `.redb`): nothing else in the directory is served, and no name leaves it.
fn is_backup_name(name: &str) -> bool {
    (name.starts_with("scheduled-") || name.starts_with("manual-"))
        && name.ends_with(".redb")
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
        && !name.contains("..")
}

/// One snapshot from the list, as a download.
#[utoipa::path(get, path = "/v1/admin/backups/{name}", params(("name" = String, Path)),
    responses((status = 200, description = "application/octet-stream: a redb file"), (status = 403), (status = 404)), tag = "admin")]
pub async fn backup_file(
    State(state): State<AppState>,
    Caller(claims): Caller,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    require_admin(&state, &claims)?;
    if !is_backup_name(&name) {
        return Err(Error::NotFound.into());
    }
    let file = match tokio::fs::File::open(state.backups.dir.join(&name)).await {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(Error::NotFound.into()),
        Err(e) => {
            tracing::error!(error = %e, "cannot open a backup");
            return Err(Error::Unavailable.into());
        }
    };
    let len = file
        .metadata()
        .await
        .map_err(|_| ApiError(Error::Unavailable))?
        .len();
    super::audit::record(&state, &claims, "backup_download", Some(&name)).await?;
    Ok(super::admin::send_file(file, len))
}

/// The last warnings and errors this node logged, newest first: `{lines: [{at, level,
/// target, message}]}` (kept in memory, 200 of them).
#[utoipa::path(get, path = "/v1/admin/logs", responses((status = 200, description = "{lines: [{at, level, target, message}]}"), (status = 403)), tag = "admin")]
pub async fn logs(
    State(state): State<AppState>,
    Caller(claims): Caller,
) -> Result<Json<Value>, ApiError> {
    require_admin(&state, &claims)?;
    let mut lines = crate::logging::recent();
    lines.reverse();
    Ok(Json(json!({ "lines": lines })))
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_the_servers_own_snapshot_names() {
        assert!(super::is_backup_name(
            "scheduled-2026-12-07T10-00-00Z-0a1b2c3d.redb"
        ));
        assert!(super::is_backup_name("manual-x.redb"));
        for bad in [
            ".download-x.redb",
            "manual-../../etc/passwd.redb",
            "manual-x.redb.tmp",
            "scheduled-a/b.redb",
            "hearth.redb",
        ] {
            assert!(!super::is_backup_name(bad), "{bad}");
        }
    }
}

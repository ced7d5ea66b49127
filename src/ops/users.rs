//! `hearth user create|list|disable|enable|reset-password|grant-admin|revoke-admin|delete`.
//!
//! Each works two ways: through a running server (`--url`/`HEARTH_URL` and an admin's
//! `--token`/`HEARTH_TOKEN`, calling `/v1/admin/...`), or on a stopped server's data dir, by
//! opening the store and running the same `accounts` functions the admin API runs. A data dir
//! in use by a server is refused with a hint to pass `--url`.

use std::sync::Arc;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::accounts;
use crate::auth::Auth;
use crate::config::Config;
use crate::error::Error;
use crate::store::{Flag, Store};

/// What to do to accounts.
#[derive(Debug, Clone)]
pub enum Action {
    Create { name: String, password: String },
    List,
    Disable(String),
    Enable(String),
    ResetPassword { name: String, password: String },
    GrantAdmin(String),
    RevokeAdmin(String),
    Delete(String),
}

/// Where to do it.
pub enum Target<'a> {
    /// A running server and an admin's token.
    Server { url: &'a str, token: &'a str },
    /// A stopped server's data dir.
    DataDir(&'a Config),
}

/// Runs `action` and returns what to print.
///
/// # Errors
/// A message for people.
pub async fn run(action: Action, target: Target<'_>) -> Result<String, String> {
    match target {
        Target::Server { url, token } => online(action, url, token).await,
        Target::DataDir(config) => offline(action, config).await,
    }
}

/// The store of a stopped server's data dir (refused while a server uses it), or in cluster
/// mode the database, with the JWT secret.
///
/// # Errors
/// A message for people.
pub(crate) async fn open_offline(config: &Config) -> Result<(Store, String), String> {
    let metrics = Arc::new(crate::metrics::Metrics::new());
    let store_config = crate::server::store_config(config, metrics);
    // In cluster mode the database is the shared truth and running nodes hear of every
    // change (revocations and flags are notified), so there is no "stopped" to require.
    let (store, secret) = if let Some(pg) = config.postgres() {
        Store::open_postgres(&store_config, &pg, None)
            .await
            .map_err(|e| e.to_string())?
    } else {
        let path = super::db_path(config);
        if super::backup::in_use(&path) {
            return Err(format!(
                "{} is in use by a running server: pass --url and --token (or HEARTH_URL and HEARTH_TOKEN) to go through it",
                path.display()
            ));
        }
        std::fs::create_dir_all(&config.data_dir).map_err(|e| e.to_string())?;
        let secret = crate::auth::load_secret(config.jwt_secret.as_deref(), &config.data_dir)
            .map_err(|e| format!("reading the JWT secret: {e}"))?;
        let store = tokio::task::spawn_blocking(move || Store::open(&store_config, None))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
        (store, String::from_utf8_lossy(&secret).into_owned())
    };
    Ok((store, secret))
}

async fn offline(action: Action, config: &Config) -> Result<String, String> {
    let (store, secret) = open_offline(config).await?;
    let auth = Auth::new(secret.as_bytes(), config.token_ttl, config.admins());
    let blobs =
        crate::blobs::Blobs::open(config.blob_dir(), config.blob_max_size, config.blob_quota)
            .map_err(|e| format!("blob directory: {e}"))?;
    let result = offline_action(action, &store, &auth, &blobs).await;
    store.close().await;
    result.map_err(|e| e.to_string())
}

async fn offline_action(
    action: Action,
    store: &Store,
    auth: &Auth,
    blobs: &crate::blobs::Blobs,
) -> Result<String, Error> {
    Ok(match action {
        Action::Create { name, password } => {
            accounts::create(store, auth, &name, password).await?;
            format!("created {name}")
        }
        Action::List => {
            let disabled = store.flagged(Flag::Disabled).await?;
            let admins = store.flagged(Flag::Admin).await?;
            let mut out = String::from("USERNAME\tCREATED\tDISABLED\tADMIN\n");
            let mut offset = 0;
            loop {
                let (users, total) = store.users(offset, 1000, "").await?;
                for u in &users {
                    let admin = admins.contains(&u.username) || auth.flags.is_admin(&u.username);
                    let off = disabled.contains(&u.username);
                    out.push_str(&format!(
                        "{}\t{}\t{off}\t{admin}\n",
                        u.username, u.created_at
                    ));
                }
                offset += users.len();
                if users.is_empty() || offset as u64 >= total {
                    break;
                }
            }
            out.trim_end().to_owned()
        }
        Action::Disable(name) => {
            accounts::set_disabled(store, auth, &name, true).await?;
            format!("disabled {name}")
        }
        Action::Enable(name) => {
            accounts::set_disabled(store, auth, &name, false).await?;
            format!("enabled {name}")
        }
        Action::ResetPassword { name, password } => {
            let n = accounts::reset_password(store, auth, &name, password).await?;
            format!("password of {name} reset; {n} sessions revoked")
        }
        Action::GrantAdmin(name) => {
            accounts::set_admin(store, auth, &name, true).await?;
            format!("{name} is an admin")
        }
        Action::RevokeAdmin(name) => {
            accounts::set_admin(store, auth, &name, false).await?;
            admin_note(&name, auth.flags.is_configured_admin(&name))
        }
        Action::Delete(name) => {
            let report = accounts::delete_account(store, auth, Some(blobs), &name).await?;
            deleted_note(&name, report.sessions, report.blobs, report.unshared)
        }
    })
}

fn deleted_note(name: &str, sessions: usize, blobs: usize, unshared: usize) -> String {
    format!(
        "deleted {name}: {sessions} sessions revoked, {blobs} blob references dropped, removed from {unshared} access lists"
    )
}

fn admin_note(name: &str, configured: bool) -> String {
    if configured {
        format!("{name} is no longer granted admin, but stays one: ADMIN_USERS names it")
    } else {
        format!("{name} is no longer an admin")
    }
}

async fn online(action: Action, url: &str, token: &str) -> Result<String, String> {
    let call = |method: &'static str, path: String, body: Option<Value>| {
        request(url, token, method, path, body)
    };
    Ok(match action {
        Action::Create { name, password } => {
            let body = json!({"username": name, "password": password});
            call("POST", "/v1/admin/users".into(), Some(body)).await?;
            format!("created {name}")
        }
        Action::List => {
            let mut out = String::from("USERNAME\tCREATED\tDISABLED\tADMIN\n");
            let mut offset = 0u64;
            loop {
                let page = call(
                    "GET",
                    format!("/v1/admin/users?offset={offset}&limit=1000"),
                    None,
                )
                .await?;
                let users = page["users"].as_array().cloned().unwrap_or_default();
                for u in &users {
                    out.push_str(&format!(
                        "{}\t{}\t{}\t{}\n",
                        u["username"].as_str().unwrap_or("?"),
                        u["createdAt"].as_str().unwrap_or("?"),
                        u["disabled"],
                        u["admin"]
                    ));
                }
                match page["next_offset"].as_u64() {
                    Some(next) if !users.is_empty() => offset = next,
                    _ => break,
                }
            }
            out.trim_end().to_owned()
        }
        Action::Disable(name) => {
            call("POST", format!("/v1/admin/users/{name}/disable"), None).await?;
            format!("disabled {name}")
        }
        Action::Enable(name) => {
            call("POST", format!("/v1/admin/users/{name}/enable"), None).await?;
            format!("enabled {name}")
        }
        Action::ResetPassword { name, password } => {
            let body = json!({"password": password});
            let reply = call(
                "POST",
                format!("/v1/admin/users/{name}/password"),
                Some(body),
            )
            .await?;
            format!(
                "password of {name} reset; {} sessions revoked",
                reply["revokedSessions"]
            )
        }
        Action::GrantAdmin(name) => {
            call("POST", format!("/v1/admin/users/{name}/admin"), None).await?;
            format!("{name} is an admin")
        }
        Action::RevokeAdmin(name) => {
            call("DELETE", format!("/v1/admin/users/{name}/admin"), None).await?;
            format!("{name} is no longer granted admin (ADMIN_USERS still counts)")
        }
        Action::Delete(name) => {
            let r = call("DELETE", format!("/v1/admin/users/{name}"), None).await?;
            let n = |k: &str| usize::try_from(r[k].as_u64().unwrap_or(0)).unwrap_or(0);
            deleted_note(&name, n("sessions"), n("blobs"), n("unshared"))
        }
    })
}

/// One HTTP/1.1 request with `Connection: close`; the JSON answer (or `null` for none).
/// Hand-rolled on purpose: the CLI talks to one known server on a local address, and an
/// HTTP client crate would grow the binary for four lines of protocol.
pub(crate) async fn request(
    url: &str,
    token: &str,
    method: &str,
    path: String,
    body: Option<Value>,
) -> Result<Value, String> {
    let host = url
        .strip_prefix("http://")
        .ok_or("--url must start with http:// (use a local address or a proxy for TLS)")?
        .trim_end_matches('/');
    let mut stream = tokio::net::TcpStream::connect(host)
        .await
        .map_err(|e| format!("connecting to {host}: {e}"))?;
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream
        .write_all(format!("{head}{body}").as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut answer = Vec::new();
    stream
        .read_to_end(&mut answer)
        .await
        .map_err(|e| e.to_string())?;
    let answer = String::from_utf8_lossy(&answer);
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    let status = head.split_whitespace().nth(1).unwrap_or("");
    let json: Value = serde_json::from_str(body.trim()).unwrap_or(Value::Null);
    if status.starts_with('2') {
        Ok(json)
    } else {
        let message = json["message"].as_str().unwrap_or(body.trim());
        Err(format!("server answered {status}: {message}"))
    }
}

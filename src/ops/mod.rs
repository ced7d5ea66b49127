//! Operator commands run by the `hearth` binary: `backup`, `restore` and `user`.

pub mod import;
pub mod users;

use std::path::{Path, PathBuf};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

use crate::config::Config;
use crate::store::redb::backup;

/// The data file inside a data dir.
pub fn db_path(config: &Config) -> PathBuf {
    config.data_dir.join("hearth.redb")
}

/// Backups and restores here are of the embedded redb store; PostgreSQL has its own tools.
fn refuse_postgres(config: &Config) -> Result<(), String> {
    if config.postgres().is_some() {
        return Err("STORE=postgres: back up and restore the database with pg_dump and pg_restore; hearth backup/restore handle the embedded redb store".into());
    }
    Ok(())
}

/// Offline backup of a stopped server's data dir into `to`; returns rows copied.
///
/// # Errors
/// A message for people: the file is in use, missing, or `to` exists.
pub fn backup_offline(config: &Config, to: &Path) -> Result<u64, String> {
    refuse_postgres(config)?;
    let secret = crate::auth::load_secret(config.jwt_secret.as_deref(), &config.data_dir)
        .map_err(|e| format!("reading the JWT secret: {e}"))?;
    let secret = String::from_utf8_lossy(&secret).into_owned();
    let created = crate::sys::now_rfc3339();
    let info = [
        ("jwt_secret", secret.as_str()),
        ("created_at", created.as_str()),
    ];
    backup::offline_snapshot(&db_path(config), to, &info).map_err(|e| e.to_string())
}

/// Downloads a fresh snapshot from a running server (`GET /v1/admin/backup`, admin token)
/// into `to`, printing progress to stderr; returns bytes written.
///
/// # Errors
/// A message for people.
pub async fn backup_online(url: &str, token: &str, to: &Path) -> Result<u64, String> {
    let host = url
        .strip_prefix("http://")
        .ok_or("--url must start with http:// (use a local address or a proxy for TLS)")?
        .trim_end_matches('/');
    let stream = tokio::net::TcpStream::connect(host)
        .await
        .map_err(|e| format!("connecting to {host}: {e}"))?;
    let mut stream = BufReader::new(stream);
    let request = format!(
        "GET /v1/admin/backup HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
    );
    stream
        .get_mut()
        .write_all(request.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut status = String::new();
    stream
        .read_line(&mut status)
        .await
        .map_err(|e| e.to_string())?;
    let mut length = None;
    loop {
        let mut line = String::new();
        stream
            .read_line(&mut line)
            .await
            .map_err(|e| e.to_string())?;
        if line.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse::<u64>().ok();
        }
    }
    if !status.starts_with("HTTP/1.1 200") {
        let mut body = String::new();
        let _ = stream.read_to_string(&mut body).await;
        return Err(format!(
            "server answered {}: {}",
            status.trim(),
            body.trim()
        ));
    }
    let length = length.ok_or("no Content-Length in the answer")?;
    let partial = to.with_extension("partial");
    let mut file = tokio::fs::File::create(&partial)
        .await
        .map_err(|e| format!("{}: {e}", partial.display()))?;
    let mut buf = vec![0u8; 1 << 20];
    let mut done = 0u64;
    while done < length {
        let n = stream.read(&mut buf).await.map_err(|e| e.to_string())?;
        if n == 0 {
            return Err(format!("connection closed after {done} of {length} bytes"));
        }
        file.write_all(&buf[..n]).await.map_err(|e| e.to_string())?;
        done += n as u64;
        if done % (64 << 20) < n as u64 {
            eprintln!("backup: {} of {} MiB", done >> 20, length >> 20);
        }
    }
    file.sync_all().await.map_err(|e| e.to_string())?;
    tokio::fs::rename(&partial, to)
        .await
        .map_err(|e| e.to_string())?;
    Ok(done)
}

/// Restores `from` into the data dir: verifies the file, refuses a data dir in use, replaces
/// the data file atomically and writes the JWT secret that travelled with the backup.
///
/// # Errors
/// A message for people.
pub fn restore(config: &Config, from: &Path) -> Result<(), String> {
    restore_file(config, from)?;
    // The restored file holds everything itself: it needs no log (backups of older builds
    // do not say so themselves).
    backup::mark_clean(&db_path(config)).map_err(|e| e.to_string())
}

/// `hearth recover --accept-loss`: opens the stopped server's store once, dropping what a
/// damaged write-ahead log makes unreadable (logged at WARN), and stops it cleanly.
///
/// # Errors
/// A message for people: without `accept_loss`, in use, or still failing.
pub async fn recover(config: &Config, accept_loss: bool) -> Result<(), String> {
    refuse_postgres(config)?;
    if !accept_loss {
        return Err(
            "recover drops acknowledged updates a damaged log holds: say --accept-loss to go ahead"
                .into(),
        );
    }
    let path = db_path(config);
    if backup::in_use(&path) {
        return Err(format!(
            "{} is in use by a running server: stop it first",
            path.display()
        ));
    }
    let mut config = config.clone();
    config.accept_wal_loss = true;
    let metrics = std::sync::Arc::new(crate::metrics::Metrics::new());
    let store_config = crate::server::store_config(&config, metrics);
    let store = tokio::task::spawn_blocking(move || crate::store::Store::open(&store_config, None))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    store.close().await;
    Ok(())
}

fn restore_file(config: &Config, from: &Path) -> Result<(), String> {
    refuse_postgres(config)?;
    let info = backup::verify(from).map_err(|e| format!("{}: {e}", from.display()))?;
    let target = db_path(config);
    if backup::in_use(&target) {
        return Err(format!(
            "{} is in use by a running server: stop it before restoring",
            target.display()
        ));
    }
    std::fs::create_dir_all(&config.data_dir).map_err(|e| e.to_string())?;
    let staging = target.with_extension("restoring");
    std::fs::copy(from, &staging).map_err(|e| format!("copying: {e}"))?;
    std::fs::File::open(&staging)
        .and_then(|f| f.sync_all())
        .map_err(|e| e.to_string())?;
    // The old file's write-ahead log must not be replayed into the restored one (it would not
    // be anyway: the backup has its own log id), and an empty log is simply recreated.
    let wal = crate::store::redb::wal::path(&target);
    if wal.exists() {
        std::fs::remove_file(&wal).map_err(|e| format!("removing {}: {e}", wal.display()))?;
    }
    std::fs::rename(&staging, &target).map_err(|e| e.to_string())?;
    if let Some((_, secret)) = info.iter().find(|(k, _)| k == "jwt_secret") {
        crate::auth::write_private(&config.data_dir.join("jwt_secret"), secret)
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

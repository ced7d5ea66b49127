//! A damaged write-ahead log is refused, not cut short (issue 26, points 1–3): a byte flipped
//! mid-log, a truncated log, a log deleted after a crash. Only a torn last record is dropped.
//! `hearth recover --accept-loss` starts with what is readable and never hands out a version
//! number twice.

use std::path::{Path, PathBuf};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::common::{hearth_cli, spawn_hearth};

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn request(ws: &mut Ws, frame: Value) -> Value {
    ws.send(Message::text(frame.to_string())).await.unwrap();
    loop {
        if let Some(Ok(Message::Text(t))) = ws.next().await {
            return serde_json::from_str(t.as_str()).unwrap();
        }
    }
}

fn log_of(dir: &Path) -> PathBuf {
    dir.join("hearth.redb.wal")
}

/// `(offset, payload length)` of each record from the start of the log.
fn records(log: &Path) -> Vec<(usize, usize)> {
    let bytes = std::fs::read(log).unwrap();
    let mut out = Vec::new();
    let mut at = 0;
    while at + 24 <= bytes.len() {
        let len = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        if len == 0 {
            break;
        }
        out.push((at, len));
        at += 24 + len;
    }
    out
}

fn flip(log: &Path, offset: usize) {
    let mut bytes = std::fs::read(log).unwrap();
    bytes[offset] ^= 0x5a;
    std::fs::write(log, bytes).unwrap();
}

/// A server on `dir` that takes 20 updates, one record each, and is killed at once (before
/// its housekeeping folds the log). Returns the token.
async fn crash_after_updates(dir: &Path) -> String {
    let (mut child, addr) = spawn_hearth(dir, &[]).await;
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws"))
        .await
        .unwrap();
    let auth = request(&mut ws, json!({"type": "signup"})).await;
    let token = auth["token"].as_str().unwrap().to_owned();
    for v in 0..20 {
        let r = request(
            &mut ws,
            json!({"type": "update", "patch": true,
                "data": {"metadata": {"version": v}, "userdata": {"n": v}}}),
        )
        .await;
        assert_eq!(r["version"], v + 1, "{r}");
    }
    child.kill().await.unwrap();
    token
}

/// Starts the binary on `dir` expecting it to refuse: what it printed.
async fn refused_start(dir: &Path) -> String {
    let out = tokio::time::timeout(
        Duration::from_secs(20),
        tokio::process::Command::new(env!("CARGO_BIN_EXE_hearth"))
            .env("PORT", "0")
            .env("HOST", "127.0.0.1")
            .env("DATA_DIR", dir)
            .env_remove("JWT_SECRET")
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("a damaged log stops the start rather than serving")
    .unwrap();
    assert!(!out.status.success(), "the start was refused");
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

async fn fetch(addr: &str, token: &str) -> Value {
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws"))
        .await
        .unwrap();
    request(&mut ws, json!({"type": "auth", "token": token})).await;
    request(&mut ws, json!({"type": "fetch"})).await
}

#[tokio::test]
async fn a_byte_flipped_mid_log_refuses_the_start_until_the_loss_is_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let token = crash_after_updates(dir.path()).await;
    let log = log_of(dir.path());
    let found = records(&log);
    assert!(found.len() >= 10, "updates are in the log: {}", found.len());
    let (offset, _) = found[4];
    flip(&log, offset + 30);
    let before = std::fs::read(&log).unwrap();

    let said = refused_start(dir.path()).await;
    assert!(said.contains("hearth.redb.wal"), "{said}");
    assert!(said.contains(&format!("offset {offset}")), "{said}");
    assert!(said.contains("would be lost"), "{said}");
    assert!(said.contains("recover --accept-loss"), "{said}");
    assert_eq!(
        std::fs::read(&log).unwrap(),
        before,
        "a refused start changes nothing"
    );

    let refused = hearth_cli(&["recover"], dir.path(), "").await;
    assert!(!refused.ok, "not without --accept-loss");
    let recovered = hearth_cli(&["recover", "--accept-loss"], dir.path(), "").await;
    assert!(recovered.ok, "{}{}", recovered.stdout, recovered.stderr);
    let said = format!("{}{}", recovered.stdout, recovered.stderr);
    assert!(said.contains("Accepted"), "{said}");
    assert!(said.contains("moved on"), "{said}");

    let (mut child, addr) = spawn_hearth(dir.path(), &[]).await;
    let doc = fetch(&addr, &token).await;
    let version = doc["version"].as_u64().unwrap();
    assert!(
        version > 20,
        "no version clients saw (1..=20) is reused: now {version}"
    );
    assert_eq!(
        doc["data"]["userdata"]["n"], 3,
        "the records before the damage"
    );
    // A watcher resuming from a version it saw before the loss gets a resync.
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws"))
        .await
        .unwrap();
    request(&mut ws, json!({"type": "auth", "token": token})).await;
    let watch = request(&mut ws, json!({"type": "watch", "since": 20})).await;
    assert_eq!(watch["resync"], true, "{watch}");
    assert_eq!(watch["version"], version);
    child.kill().await.unwrap();
}

#[tokio::test]
async fn a_missing_or_truncated_log_after_a_crash_refuses_the_start() {
    let dir = tempfile::tempdir().unwrap();
    crash_after_updates(dir.path()).await;
    let log = log_of(dir.path());
    let whole = std::fs::read(&log).unwrap();

    std::fs::write(&log, &whole[..1000]).unwrap();
    let said = refused_start(dir.path()).await;
    assert!(said.contains("1000 bytes"), "{said}");

    std::fs::remove_file(&log).unwrap();
    let said = refused_start(dir.path()).await;
    assert!(said.contains("missing"), "{said}");
    assert!(!log.exists(), "a refused start does not make a new log");

    // Put back, it starts and every acknowledged version is there.
    std::fs::write(&log, &whole).unwrap();
    let (mut child, _) = spawn_hearth(dir.path(), &[]).await;
    child.kill().await.unwrap();
}

#[tokio::test]
async fn after_a_clean_stop_the_log_is_not_needed() {
    let dir = tempfile::tempdir().unwrap();
    let (child, addr) = spawn_hearth(dir.path(), &[]).await;
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws"))
        .await
        .unwrap();
    let token = request(&mut ws, json!({"type": "signup"})).await["token"]
        .as_str()
        .unwrap()
        .to_owned();
    request(
        &mut ws,
        json!({"type": "update", "data": {"metadata": {"version": 0}, "userdata": {"kept": 1}}}),
    )
    .await;
    drop(ws);
    let pid = child.id().unwrap();
    // SIGTERM: a clean stop.
    std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    let mut child = child;
    tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .unwrap()
        .unwrap();
    std::fs::remove_file(log_of(dir.path())).unwrap();
    let (mut child, addr) = spawn_hearth(dir.path(), &[]).await;
    let doc = fetch(&addr, &token).await;
    assert_eq!(doc["version"], 1);
    assert_eq!(doc["data"]["userdata"]["kept"], 1);
    child.kill().await.unwrap();
}

#[tokio::test]
async fn a_torn_last_record_is_dropped_with_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let token = crash_after_updates(dir.path()).await;
    let log = log_of(dir.path());
    let found = records(&log);
    let (offset, len) = *found.last().unwrap();
    flip(&log, offset + 24 + len - 1);
    let (mut child, addr) = spawn_hearth(dir.path(), &[]).await;
    let doc = fetch(&addr, &token).await;
    assert_eq!(
        doc["version"].as_u64().unwrap(),
        19,
        "everything but the torn last record"
    );
    child.kill().await.unwrap();
}

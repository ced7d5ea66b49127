//! Restarts and shutdown: what is acknowledged stays, sockets are told goodbye.

use serde_json::json;

use crate::common::{TestServer, assert_error};

#[tokio::test]
async fn documents_versions_and_tokens_survive_a_restart() {
    let server = TestServer::start().await;
    let (mut c, name, token) = server.user().await;
    for v in 0..5u64 {
        c.request(json!({"type": "update", "data": {"metadata": {"version": v}, "userdata": {"v": v}}, "patch": true}))
            .await;
    }
    let secret = server.dir.path().join("jwt_secret");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&secret).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "the generated secret is private");
    }
    let (mut gone, _, revoked) = server.user().await;
    gone.request(json!({"type": "logout"})).await;

    let server = server.restart().await;
    let mut c = server.client().await;
    let authed = c.request(json!({"type": "auth", "token": token})).await;
    assert_eq!(
        authed["username"],
        name.as_str(),
        "token still valid: {authed}"
    );
    let data = c.request(json!({"type": "fetch"})).await;
    assert_eq!(data["version"], 5);
    assert_eq!(data["data"]["userdata"], json!({"v": 4}));
    assert_error(
        &c.request(json!({"type": "auth", "token": revoked})).await,
        "invalid_token",
    );
}

#[tokio::test]
async fn graceful_shutdown_closes_sockets_with_1001() {
    let mut server = TestServer::start().await;
    let (mut a, _, _) = server.user().await;
    let (mut b, bob, token) = server.user().await;
    b.request(json!({"type": "watch"})).await;
    // An endless SSE response must not hold shutdown hostage either.
    let url = format!("http://{}/v1/users/{bob}/events", server.addr);
    let mut sse = crate::common::Sse::open(&url, &token, None).await;
    assert_eq!(sse.next().await.unwrap().data["type"], "data");
    let stop = tokio::spawn(async move {
        server.shutdown().await;
        server
    });
    assert_eq!(a.closed_with().await, 1001);
    assert_eq!(b.closed_with().await, 1001);
    assert!(sse.next().await.is_none(), "the SSE stream ends");
    let server = tokio::time::timeout(std::time::Duration::from_secs(10), stop)
        .await
        .expect("shutdown finishes")
        .unwrap();
    // Nothing listens any more.
    assert!(tokio::net::TcpStream::connect(server.addr).await.is_err());
}

#[tokio::test]
async fn a_second_server_cannot_open_a_data_dir_in_use() {
    let server = TestServer::start().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let err = hearth::start(server.config.clone(), listener).await.err();
    let msg = err.expect("refused").to_string();
    assert!(msg.contains("in use"), "{msg}");
}

#[tokio::test]
async fn log_format_json_writes_one_object_per_line() {
    use tokio::io::{AsyncBufReadExt, BufReader};
    let dir = tempfile::tempdir().unwrap();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_hearth"))
        .env("PORT", "0")
        .env("DATA_DIR", dir.path())
        .env("LOG_FORMAT", "json")
        .env("RUST_LOG", "info")
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut seen = Vec::new();
    while let Ok(Ok(Some(line))) =
        tokio::time::timeout(std::time::Duration::from_secs(10), lines.next_line()).await
    {
        let v: serde_json::Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("{line:?}: {e}"));
        assert!(v["timestamp"].is_string() && v["level"].is_string(), "{v}");
        let message = v["fields"]["message"].as_str().unwrap_or("").to_owned();
        seen.push(message.clone());
        if message == "hearth is listening" {
            assert!(
                v["fields"]["addr"]
                    .as_str()
                    .unwrap()
                    .starts_with("127.0.0.1:")
            );
            break;
        }
    }
    assert!(seen.iter().any(|m| m == "hearth is listening"), "{seen:?}");
    child.kill().await.unwrap();
}

/// A data file from before the journal (schema 1: no `journal` table) opens, is upgraded in
/// place, and keeps its documents, versions and tokens; updates then go to the journal.
#[tokio::test]
async fn a_schema_1_data_file_is_upgraded_in_place() {
    use redb::{ReadableDatabase, ReadableTableMetadata, TableDefinition, TableHandle};
    const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
    const JOURNAL: TableDefinition<u64, &[u8]> = TableDefinition::new("journal");

    let mut server = TestServer::start().await;
    let (mut c, _, token) = server.user().await;
    for v in 0..3u64 {
        let r = c
            .request(json!({"type": "update", "patch": true, "data": {"metadata": {"version": v}, "userdata": {"n": v}}}))
            .await;
        assert_eq!(r["version"], v + 1, "{r}");
    }
    // Idle past the trim interval: the journal is folded into the log and the documents.
    tokio::time::sleep(std::time::Duration::from_millis(900)).await;
    server.shutdown().await;

    // Make it a schema-1 file: no journal table, version 1.
    let path = server.dir.path().join("hearth.redb");
    {
        let db = redb::Database::open(&path).expect("open");
        let read = db.begin_read().expect("read");
        let rows = read
            .open_table(JOURNAL)
            .expect("journal")
            .len()
            .expect("len");
        assert_eq!(rows, 0, "folded while idle");
        drop(read);
        let txn = db.begin_write().expect("write");
        assert!(txn.delete_table(JOURNAL).expect("delete"));
        txn.open_table(META)
            .expect("meta")
            .insert("schema_version", 1)
            .expect("version");
        txn.commit().expect("commit");
        let read = db.begin_read().expect("read");
        assert!(
            !read
                .list_tables()
                .expect("tables")
                .any(|t| t.name() == "journal"),
            "a schema-1 file has no journal"
        );
    }

    let TestServer { dir, config, .. } = server;
    let mut server = TestServer::start_in(dir, config).await;
    let mut c = server.client().await;
    c.request(json!({"type": "auth", "token": token})).await;
    let doc = c.request(json!({"type": "fetch"})).await;
    assert_eq!(doc["data"]["metadata"]["version"], 3, "{doc}");
    assert_eq!(doc["data"]["userdata"], json!({"n": 2}));
    let r = c
        .request(json!({"type": "update", "patch": true, "data": {"metadata": {"version": 3}, "userdata": {"n": 3}}}))
        .await;
    assert_eq!(r["version"], 4, "{r}");
    server.shutdown().await;
    let db = redb::Database::open(&path).expect("open");
    let read = db.begin_read().expect("read");
    let version = read
        .open_table(META)
        .expect("meta")
        .get("schema_version")
        .expect("get")
        .map(|v| v.value());
    assert_eq!(version, Some(4), "upgraded to the current schema");
}

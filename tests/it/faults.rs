//! Storage faults through a failing redb storage backend: the batch that hit the fault is
//! answered `unavailable`, nothing unacknowledged shows up later, readiness goes false, the
//! server keeps serving reads and does not crash.

use std::sync::Arc;

use hearth::store::faults::Faults;
use serde_json::json;

use crate::common::{TestServer, assert_error};

async fn ready(server: &TestServer) -> u16 {
    reqwest::get(format!("http://{}/readyz", server.addr))
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn failing_commits_are_never_acknowledged() {
    let faults = Arc::new(Faults::default());
    let server = TestServer::start_with(|c| c.faults = Some(faults.clone())).await;
    let (mut ann, name, token) = server.user().await;
    let ok = ann.request(json!({"type": "update", "data": {"metadata": {"version": 0}, "userdata": {"kept": true}}})).await;
    assert_eq!(ok["version"], 1);
    assert_eq!(ready(&server).await, 200);
    let mut watcher = server.client().await;
    watcher
        .request(json!({"type": "auth", "token": token}))
        .await;
    watcher.request(json!({"type": "watch"})).await;

    faults.fail_writes(true);
    let failed = ann.request(json!({"type": "update", "data": {"metadata": {"version": 1}, "userdata": {"lost": true}}})).await;
    assert_error(&failed, "unavailable");
    let http = reqwest::Client::new();
    let resp = http
        .put(format!("http://{}/v1/users/{name}/data/lost", server.addr))
        .bearer_auth(&token)
        .body("true")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 503);
    assert_eq!(
        ready(&server).await,
        503,
        "readiness reports failing storage"
    );

    // Reads still work and show only what committed; watchers saw nothing.
    let data = ann.request(json!({"type": "fetch"})).await;
    assert_eq!(data["version"], 1);
    assert_eq!(data["data"]["userdata"], json!({"kept": true}));
    assert!(
        watcher
            .quiet_for(std::time::Duration::from_millis(100))
            .await,
        "no change for a failed commit"
    );
    // The server is alive for others.
    let mut other = server.client().await;
    assert_eq!(
        other.request(json!({"type": "fetch"})).await["code"],
        "auth_required"
    );

    // After a restart on healthy storage: only what was acknowledged.
    faults.fail_writes(false);
    let server = server.restart().await;
    let mut c = server.client().await;
    c.request(json!({"type": "auth", "token": token})).await;
    let data = c.request(json!({"type": "fetch"})).await;
    assert_eq!(data["version"], 1);
    assert_eq!(data["data"]["userdata"], json!({"kept": true}));
    assert_eq!(ready(&server).await, 200);
    let next = c.request(json!({"type": "update", "data": {"metadata": {"version": 1}, "userdata": {"again": true}}})).await;
    assert_eq!(next["version"], 2);
}

/// A full disk as a server with a pre-allocated log meets it: the data file's writes fail,
/// the log's succeed. Readiness stays 503 while the data file cannot commit (an update that
/// only touched the log proves nothing), and once the disk has room again the server reopens
/// the file by itself: accounts can be created and the journal folds, without a restart.
#[tokio::test]
async fn a_full_disk_heals_without_a_restart() {
    let faults = Arc::new(Faults::default());
    let server = TestServer::start_with(|c| c.faults = Some(faults.clone())).await;
    let (mut ann, _, token) = server.user().await;

    faults.fail_data_file(true);
    let mut c = server.client().await;
    let refused = c.request(json!({"type": "signup"})).await;
    assert_error(&refused, "unavailable");
    assert_eq!(ready(&server).await, 503);
    // Updates go to the log, which still takes them; the data file is still broken.
    let logged = ann
        .request(
            json!({"type": "update", "data": {"metadata": {"version": 0}, "userdata": {"n": 1}}}),
        )
        .await;
    assert_eq!(logged["version"], 1, "{logged}");
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    assert_eq!(
        ready(&server).await,
        503,
        "not ready while the data file cannot commit"
    );

    faults.fail_data_file(false);
    let mut healed = false;
    for _ in 0..100 {
        if ready(&server).await == 200 {
            healed = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(healed, "ready again once the disk has room");
    let mut d = server.client().await;
    assert_eq!(
        d.request(json!({"type": "signup"})).await["type"],
        "auth",
        "the data file commits again"
    );
    let more = ann
        .request(
            json!({"type": "update", "data": {"metadata": {"version": 1}, "userdata": {"n": 2}}}),
        )
        .await;
    assert_eq!(more["version"], 2);

    // Everything acknowledged survives a restart.
    let server = server.restart().await;
    let mut e = server.client().await;
    e.request(json!({"type": "auth", "token": token})).await;
    let doc = e.request(json!({"type": "fetch"})).await;
    assert_eq!(doc["version"], 2);
    assert_eq!(doc["data"]["userdata"]["n"], 2);
}

//! Resuming watches from a version: replay, then live; resync when the log was trimmed.

use std::time::Duration;

use serde_json::json;

use crate::common::{Client, TestServer, assert_error};

async fn bump(c: &mut Client, version: u64, patch: serde_json::Value) {
    let r = c
        .request(json!({"type": "update", "patch": true, "data": {"metadata": {"version": version}, "userdata": patch}}))
        .await;
    assert_eq!(r["version"], version + 1, "{r}");
}

#[tokio::test]
async fn since_replays_missed_versions_with_data_and_ops_then_goes_live() {
    let server = TestServer::start().await;
    let (mut owner, ann, token) = server.user().await;
    bump(&mut owner, 0, json!({"a": 1})).await;
    bump(&mut owner, 1, json!({"b": {"c": 2}})).await;
    owner
        .request(json!({"type": "update", "data": {"metadata": {"version": 2}, "userdata": [{"op": "add", "path": "/d", "value": [1]}]}, "patch": "json-patch"}))
        .await;
    owner
        .request(json!({"type": "update", "data": {"metadata": {"version": 3}, "userdata": {"fresh": true}}}))
        .await;

    let mut w = server.client().await;
    w.request(json!({"type": "auth", "token": token})).await;
    let reply = w.request(json!({"type": "watch", "since": 1})).await;
    assert_eq!(
        reply,
        json!({"id": reply["id"], "type": "watching", "username": ann, "since": 1, "version": 4})
    );

    let v2 = w.next_push().await;
    assert_eq!(v2["type"], "change");
    assert_eq!(v2["version"], 2);
    assert_eq!(v2["op"], json!({"merge": {"b": {"c": 2}}}));
    assert_eq!(v2["by"], ann.as_str());
    assert_eq!(v2["data"]["userdata"], json!({"a": 1, "b": {"c": 2}}));
    assert_eq!(v2["data"]["metadata"]["version"], 2);
    let v3 = w.next_push().await;
    assert_eq!(v3["version"], 3);
    assert_eq!(v3["op"]["jsonPatch"][0]["op"], "add");
    assert_eq!(
        v3["data"]["userdata"],
        json!({"a": 1, "b": {"c": 2}, "d": [1]})
    );
    let v4 = w.next_push().await;
    assert_eq!(v4["version"], 4);
    assert_eq!(v4["op"], json!({"replace": {"fresh": true}}));
    assert_eq!(v4["data"]["userdata"], json!({"fresh": true}));
    // The replayed v4 equals what a fetch says.
    let fetched = owner.request(json!({"type": "fetch"})).await;
    assert_eq!(v4["data"], fetched["data"]);

    bump(&mut owner, 4, json!({"live": 1})).await;
    let v5 = w.next_push().await;
    assert_eq!(v5["version"], 5);
    assert_eq!(v5["op"], json!({"merge": {"live": 1}}));

    // Nothing missed: since = current replays nothing and goes live.
    let mut w2 = server.client().await;
    w2.request(json!({"type": "auth", "token": token})).await;
    let reply = w2.request(json!({"type": "watch", "since": 5})).await;
    assert_eq!(reply["type"], "watching");
    assert!(w2.quiet_for(Duration::from_millis(100)).await);
}

#[tokio::test]
async fn ops_mode_sends_operations_only() {
    let server = TestServer::start().await;
    let (mut owner, _, _) = server.user().await;
    bump(&mut owner, 0, json!({"a": 1})).await;
    let reply = owner
        .request(json!({"type": "watch", "since": 0, "mode": "ops"}))
        .await;
    assert_eq!(reply["type"], "watching");
    let v1 = owner.next_push().await;
    assert_eq!(v1["version"], 1);
    assert_eq!(v1["op"], json!({"merge": {"a": 1}}));
    assert!(v1.get("data").is_none(), "{v1}");
    assert!(v1["at"].is_string());
    bump(&mut owner, 1, json!({"a": 2})).await;
    let v2 = owner.next_push().await;
    assert_eq!(v2["op"], json!({"merge": {"a": 2}}));
    assert!(v2.get("data").is_none());
    assert_error(
        &owner
            .request(json!({"type": "watch", "mode": "ops", "fields": ["a"]}))
            .await,
        "bad_request",
    );
    assert_error(
        &owner
            .request(json!({"type": "watch", "mode": "diff"}))
            .await,
        "bad_request",
    );
}

#[tokio::test]
async fn a_trimmed_log_answers_since_with_a_resync_snapshot() {
    let server = TestServer::start_with(|c| c.changelog_retain = 5).await;
    let (mut owner, _, token) = server.user().await;
    for v in 0..20 {
        bump(&mut owner, v, json!({"n": v})).await;
    }
    // Trimming runs in the writer when idle; within a second the log starts at 16.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let mut w = loop {
        let mut w = server.client().await;
        w.request(json!({"type": "auth", "token": token})).await;
        let reply = w.request(json!({"type": "watch", "since": 3})).await;
        if reply["resync"] == true {
            assert_eq!(reply["type"], "data");
            assert_eq!(reply["watching"], true);
            assert_eq!(reply["version"], 20);
            assert_eq!(reply["data"]["userdata"]["n"], 19);
            break w;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "log never trimmed: {reply}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // Within retention, resume still replays, rebuilt from the trimmed log's base.
    let reply = w.request(json!({"type": "watch", "since": 17})).await;
    assert_eq!(reply["type"], "watching");
    for v in 18..=20 {
        let change = w.next_push().await;
        assert_eq!(change["version"], v);
        assert_eq!(change["data"]["userdata"]["n"], v - 1);
    }
    // A client from the future (say, after a restore) is resynced too.
    let reply = w.request(json!({"type": "watch", "since": 99})).await;
    assert_eq!(reply["resync"], true);
    assert_eq!(reply["version"], 20);
}

#[tokio::test]
async fn resume_works_across_a_restart() {
    let server = TestServer::start().await;
    let (mut owner, _, token) = server.user().await;
    for v in 0..6 {
        bump(&mut owner, v, json!({"n": v})).await;
    }
    let server = server.restart().await;
    let mut w = server.client().await;
    w.request(json!({"type": "auth", "token": token})).await;
    let reply = w.request(json!({"type": "watch", "since": 2})).await;
    assert_eq!(reply["type"], "watching");
    for v in 3..=6 {
        assert_eq!(w.next_push().await["version"], v);
    }
}

/// Updates are journaled first and folded into the log and the document later (the writer
/// folds when idle). With no cache, every read and every update rebuilds the document from
/// storage, across folded and unfolded versions, before and after a restart.
#[tokio::test]
async fn documents_and_history_span_folded_and_journaled_versions() {
    let server = TestServer::start_with(|c| c.cache_size = 0).await;
    let (mut owner, _, token) = server.user().await;
    for v in 0..5 {
        bump(&mut owner, v, json!({"n": v, "first": true})).await;
    }
    // Idle past the trim interval: the first five are folded.
    tokio::time::sleep(Duration::from_millis(900)).await;
    for v in 5..10 {
        bump(&mut owner, v, json!({"n": v})).await;
    }
    let check = |server: TestServer, token: String| async move {
        let mut w = server.client().await;
        w.request(json!({"type": "auth", "token": token})).await;
        let doc = w.request(json!({"type": "fetch"})).await;
        assert_eq!(doc["data"]["metadata"]["version"], 10, "{doc}");
        assert_eq!(doc["data"]["userdata"], json!({"n": 9, "first": true}));
        let reply = w.request(json!({"type": "watch", "since": 0})).await;
        assert_eq!(reply["type"], "watching", "{reply}");
        for v in 1..=10u64 {
            let change = w.next_push().await;
            assert_eq!(change["version"], v, "{change}");
            assert_eq!(change["data"]["userdata"]["n"], v - 1, "{change}");
        }
        server
    };
    let server = check(server, token.clone()).await;
    assert!(
        server.state().metrics.cache_misses.get() > 0,
        "with no cache, reads went to storage"
    );
    let server = server.restart().await;
    let mut server = check(server, token.clone()).await;
    let mut again = server.client().await;
    again.request(json!({"type": "auth", "token": token})).await;
    bump(&mut again, 10, json!({"n": 10})).await;
    server.shutdown().await;
}

//! Operation ids (`opId`, `Idempotency-Key`): an update retried after its answer was lost is
//! answered with the version it made and applied once — mid-batch, unfolded, folded, after a
//! restart, over REST, and (in `cluster.rs`) from another node.

use std::time::Duration;

use serde_json::{Value, json};

use crate::common::{TestServer, assert_error, http_get};

fn merge(version: u64, userdata: Value, op_id: &str) -> Value {
    json!({"type": "update", "patch": "merge", "opId": op_id,
        "data": {"metadata": {"version": version}, "userdata": userdata}})
}

/// The change log of `user`'s default document: each entry's `(version, opId)`.
async fn log(server: &TestServer, user: &str, token: &str) -> Vec<(u64, Option<String>)> {
    let url = format!("http://{}/v1/users/{user}/changes?from=1", server.addr);
    let (status, body) = http_get(&url, token).await;
    assert_eq!(status, 200, "{body}");
    body["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .map(|e| {
            let op = e["opId"].as_str().map(str::to_owned);
            (e["version"].as_u64().expect("version"), op)
        })
        .collect()
}

#[tokio::test]
async fn a_retry_gets_the_first_answer_and_is_applied_once() {
    let server = TestServer::start().await;
    let (mut c, ann, token) = server.user().await;
    let r = c.request(merge(0, json!({"milk": 1}), "op-1")).await;
    assert_eq!(
        (r["type"].as_str(), r["version"].as_u64()),
        (Some("version"), Some(1))
    );
    let r = c.request(merge(1, json!({"eggs": 6}), "op-2")).await;
    assert_eq!(r["version"], 2, "{r}");
    // The same operation again, as a client that never saw the answer sends it: based on
    // version 0, now stale. Answered as the first time, nothing applied.
    let r = c.request(merge(0, json!({"milk": 1}), "op-1")).await;
    assert_eq!(
        (r["type"].as_str(), r["version"].as_u64()),
        (Some("version"), Some(1)),
        "{r}"
    );
    // Both at once on one socket (one batch, or the batch's own rows): one version each.
    c.send(merge(2, json!({"tea": true}), "op-3")).await;
    c.send(merge(2, json!({"tea": true}), "op-3")).await;
    let (a, b) = (c.recv().await, c.recv().await);
    assert_eq!(
        (a["version"].as_u64(), b["version"].as_u64()),
        (Some(3), Some(3)),
        "{a} {b}"
    );
    // A new operation on a stale base is still refused as stale.
    assert_error(
        &c.request(merge(0, json!({"x": 1}), "op-4")).await,
        "version_mismatch",
    );
    let doc = c.request(json!({"type": "fetch"})).await;
    assert_eq!(doc["version"], 3);
    assert_eq!(
        doc["data"]["userdata"],
        json!({"milk": 1, "eggs": 6, "tea": true})
    );
    // Past the store's idle fold (0.5 s), the ids are found in the folded log too.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let r = c.request(merge(1, json!({"eggs": 6}), "op-2")).await;
    assert_eq!(r["version"], 2, "{r}");
    let expect: Vec<(u64, Option<String>)> = vec![
        (1, Some("op-1".into())),
        (2, Some("op-2".into())),
        (3, Some("op-3".into())),
    ];
    assert_eq!(
        log(&server, &ann, &token).await,
        expect,
        "each operation once, in order"
    );

    // And after a restart.
    let server = server.restart().await;
    let mut c = server.client().await;
    c.request(json!({"type": "auth", "token": token})).await;
    let r = c.request(merge(0, json!({"milk": 1}), "op-1")).await;
    assert_eq!(r["version"], 1, "{r}");
    assert_eq!(c.request(json!({"type": "fetch"})).await["version"], 3);
}

#[tokio::test]
async fn the_answer_lost_with_the_socket() {
    let server = TestServer::start().await;
    let (mut watcher, ann, token) = server.user().await;
    watcher.request(json!({"type": "watch"})).await;
    // Sent, and the socket closed without reading: the server commits regardless.
    let mut gone = server.client().await;
    gone.request(json!({"type": "auth", "token": token})).await;
    gone.send(merge(0, json!({"milk": 1}), "lost-1")).await;
    drop(gone);
    let push = watcher.next_push().await;
    assert_eq!(
        (push["type"].as_str(), push["version"].as_u64()),
        (Some("change"), Some(1))
    );
    // The client comes back and sends it again.
    let mut back = server.client().await;
    back.request(json!({"type": "auth", "token": token})).await;
    let r = back.request(merge(0, json!({"milk": 1}), "lost-1")).await;
    assert_eq!(r["version"], 1, "{r}");
    assert!(
        watcher.quiet_for(Duration::from_millis(300)).await,
        "no second change"
    );
    assert_eq!(
        log(&server, &ann, &token).await,
        vec![(1, Some("lost-1".into()))]
    );
}

#[tokio::test]
async fn ids_belong_to_their_author_and_are_checked() {
    let server = TestServer::start().await;
    let (mut ann, ann_name, _) = server.user().await;
    let (mut bob, bob_name, _) = server.user().await;
    let share = json!({"type": "update", "data": {"metadata": {"version": 0, "collaborators": [bob_name]}}});
    assert_eq!(ann.request(share).await["version"], 1);
    let r = ann.request(merge(1, json!({"a": 1}), "same")).await;
    assert_eq!(r["version"], 2);
    // Bob's operation with the same id is his own: stale, not ann's answer.
    let mut bobs = merge(1, json!({"b": 1}), "same");
    bobs["target"] = json!(ann_name);
    assert_error(&bob.request(bobs.clone()).await, "version_mismatch");
    bobs["data"]["metadata"]["version"] = json!(2);
    assert_eq!(bob.request(bobs).await["version"], 3);
    for bad in [
        json!(""),
        json!("has space"),
        json!("x".repeat(65)),
        json!(7),
    ] {
        let mut frame = merge(3, json!({"c": 1}), "x");
        frame["opId"] = bad;
        assert_error(&ann.request(frame).await, "bad_request");
    }
    assert_eq!(ann.request(json!({"type": "fetch"})).await["version"], 3);
}

#[tokio::test]
async fn rest_writes_take_an_idempotency_key() {
    let server = TestServer::start().await;
    let (_c, ann, token) = server.user().await;
    let put = |key: &'static str| {
        let url = format!("http://{}/v1/users/{ann}/data/list/milk", server.addr);
        let token = token.clone();
        async move {
            let r = reqwest::Client::new()
                .put(url)
                .bearer_auth(token)
                .header("Idempotency-Key", key)
                .json(&json!(2))
                .send()
                .await
                .expect("put");
            let replayed = r.headers().get("idempotent-replayed").is_some();
            let status = r.status().as_u16();
            (
                status,
                replayed,
                r.json::<Value>().await.unwrap_or(Value::Null),
            )
        }
    };
    let (status, replayed, body) = put("k-1").await;
    assert_eq!(
        (status, replayed, &body["version"]),
        (201, false, &json!(1)),
        "{body}"
    );
    let (status, replayed, body) = put("k-1").await;
    assert_eq!(
        (status, replayed, &body["version"]),
        (200, true, &json!(1)),
        "{body}"
    );
    let (status, _, body) = put("k-2").await;
    assert_eq!((status, &body["version"]), (200, &json!(2)), "{body}");
    let (status, _, body) = put("not a key").await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        log(&server, &ann, &token).await,
        vec![(1, Some("k-1".into())), (2, Some("k-2".into()))]
    );
}

#[tokio::test]
async fn the_same_operation_from_two_sockets_at_once_lands_once() {
    let server = TestServer::start().await;
    let (_c, ann, token) = server.user().await;
    let mut clients = Vec::new();
    for _ in 0..4 {
        let mut c = server.client().await;
        c.request(json!({"type": "auth", "token": token})).await;
        clients.push(c);
    }
    // Every socket sends it before any answer comes: a client and its resend racing.
    for c in &mut clients {
        c.send(merge(0, json!({"milk": 1}), "race-1")).await;
    }
    for c in &mut clients {
        let r = c.recv().await;
        assert_eq!(
            (r["type"].as_str(), r["version"].as_u64()),
            (Some("version"), Some(1)),
            "{r}"
        );
    }
    assert_eq!(
        log(&server, &ann, &token).await,
        vec![(1, Some("race-1".into()))]
    );
}

//! The change log over HTTP: paging history, and SSE streams that resume by themselves.

use serde_json::{Value, json};

use crate::common::{Client, Sse, TestServer};

async fn bump(c: &mut Client, version: u64, n: u64) {
    let r = c
        .request(json!({"type": "update", "patch": true, "data": {"metadata": {"version": version}, "userdata": {"n": n}}}))
        .await;
    assert_eq!(r["version"], version + 1, "{r}");
}

async fn get(server: &TestServer, path: &str, token: Option<&str>) -> (u16, Value, Option<String>) {
    let mut req = reqwest::Client::new().get(format!("http://{}{path}", server.addr));
    if let Some(t) = token {
        req = req.header("X-Session-Token", t);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let etag = resp
        .headers()
        .get("etag")
        .map(|v| v.to_str().unwrap().to_owned());
    (status, resp.json().await.unwrap_or(Value::Null), etag)
}

#[tokio::test]
async fn changes_are_paged_from_to_with_the_same_access_rules() {
    let server = TestServer::start().await;
    let (mut owner, ann, token) = server.user().await;
    for v in 0..25 {
        bump(&mut owner, v, v).await;
    }
    let (status, page, etag) = get(
        &server,
        &format!("/v1/users/{ann}/changes?limit=10"),
        Some(&token),
    )
    .await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(etag.as_deref(), Some("\"25\""));
    assert_eq!(page["version"], 25);
    assert_eq!(page["oldest"], 1);
    let changes = page["changes"].as_array().unwrap();
    assert_eq!(changes.len(), 10);
    assert_eq!(changes[0]["version"], 1);
    assert_eq!(changes[0]["op"], json!({"merge": {"n": 0}}));
    assert_eq!(changes[0]["by"], ann.as_str());
    assert!(changes[0]["at"].is_string());
    assert_eq!(page["next"], 11);

    // Walk every page: each version exactly once, in order.
    let mut seen = Vec::new();
    let mut from = Some(1u64);
    while let Some(f) = from {
        let (_, page, _) = get(
            &server,
            &format!("/v1/users/{ann}/changes?from={f}&limit=7"),
            Some(&token),
        )
        .await;
        seen.extend(
            page["changes"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c["version"].as_u64().unwrap()),
        );
        from = page["next"].as_u64();
    }
    assert_eq!(seen, (1..=25).collect::<Vec<_>>());

    let (_, page, _) = get(
        &server,
        &format!("/v1/users/{ann}/changes?from=20&to=22"),
        Some(&token),
    )
    .await;
    let versions: Vec<u64> = page["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["version"].as_u64().unwrap())
        .collect();
    assert_eq!(versions, vec![20, 21, 22]);
    assert_eq!(page["next"], Value::Null);

    // Strangers and unknown users look alike; no token is 401.
    let (_, _, stranger) = server.user().await;
    let (s1, e1, _) = get(
        &server,
        &format!("/v1/users/{ann}/changes"),
        Some(&stranger),
    )
    .await;
    let (s2, e2, _) = get(&server, "/v1/users/nobody-here/changes", Some(&stranger)).await;
    assert_eq!((s1, s2), (404, 404));
    assert_eq!(e1, e2);
    assert_eq!(e1["code"], "unauthorized");
    let (s, e, _) = get(&server, &format!("/v1/users/{ann}/changes"), None).await;
    assert_eq!(s, 401);
    assert_eq!(e["code"], "auth_required");
    let (s, e, _) = get(&server, &format!("/v1/users/{ann}/changes"), Some("forged")).await;
    assert_eq!(s, 401);
    assert_eq!(e["code"], "invalid_token");
}

#[tokio::test]
async fn sse_streams_changes_and_resumes_with_last_event_id() {
    let server = TestServer::start().await;
    let (mut owner, ann, token) = server.user().await;
    bump(&mut owner, 0, 0).await;
    let url = format!("http://{}/v1/users/{ann}/events", server.addr);

    let mut sse = Sse::open(&url, &token, None).await;
    let first = sse.next().await.unwrap();
    assert_eq!(first.id.as_deref(), Some("1"));
    assert_eq!(first.data["type"], "data");
    assert_eq!(first.data["data"]["userdata"]["n"], 0);
    bump(&mut owner, 1, 1).await;
    bump(&mut owner, 2, 2).await;
    for v in 2..=3u64 {
        let e = sse.next().await.unwrap();
        assert_eq!(e.id, Some(v.to_string()));
        assert_eq!(e.data["type"], "change");
        assert_eq!(e.data["version"], v);
        assert_eq!(e.data["data"]["userdata"]["n"], v - 1);
    }
    // The browser goes away; three versions happen; it comes back with Last-Event-ID: 3.
    drop(sse);
    for v in 3..6 {
        bump(&mut owner, v, v).await;
    }
    let mut sse = Sse::open(&url, &token, Some("3")).await;
    let opening = sse.next().await.unwrap();
    assert_eq!(opening.data["type"], "watching");
    assert_eq!(opening.id, None, "the replay has not arrived yet");
    for v in 4..=6u64 {
        let e = sse.next().await.unwrap();
        assert_eq!(e.id, Some(v.to_string()), "{:?}", e.data);
        assert_eq!(e.data["version"], v);
    }
    bump(&mut owner, 6, 6).await;
    assert_eq!(sse.next().await.unwrap().data["version"], 7);
    crate::common::eventually("one watcher: the live stream", || {
        server.state().hub.watchers() == 1
    })
    .await;
    drop(sse);
    crate::common::eventually("closed stream unsubscribes", || {
        server.state().hub.watchers() == 0
    })
    .await;
}

#[tokio::test]
async fn revoking_access_or_the_token_ends_the_sse_stream() {
    let server = TestServer::start().await;
    let (mut owner, ann, _) = server.user().await;
    let (mut reader, bob, bob_token) = server.user().await;
    owner
        .request(json!({"type": "update", "data": {"metadata": {"version": 0, "readers": [bob]}}}))
        .await;
    let url = format!("http://{}/v1/users/{ann}/events", server.addr);
    let mut sse = Sse::open(&url, &bob_token, None).await;
    assert_eq!(sse.next().await.unwrap().data["type"], "data");
    owner
        .request(json!({"type": "update", "data": {"metadata": {"version": 1, "readers": []}}}))
        .await;
    let ended = sse.next().await.unwrap();
    assert_eq!(ended.data["type"], "error");
    assert_eq!(ended.data["code"], "unauthorized");
    assert_eq!(ended.data["detail"], "access revoked");
    assert!(sse.next().await.is_none(), "the stream ends");

    // Logging the token out ends a stream of one's own document as well.
    let url = format!("http://{}/v1/users/{bob}/events", server.addr);
    let mut own = Sse::open(&url, &bob_token, None).await;
    assert_eq!(own.next().await.unwrap().data["type"], "data");
    reader.request(json!({"type": "logout"})).await;
    assert!(own.next().await.is_none(), "logout ends the stream");
}

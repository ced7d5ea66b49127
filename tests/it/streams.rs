//! Event streams (issue 32): append-only, shared like documents, read by range and by id,
//! watched from a position with no gap and no duplicate, over the socket, REST and SSE;
//! kept whatever CHANGELOG_RETAIN says, trimmed only by STREAM_RETAIN; across a restart.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::common::{Client, Sse, TestServer, assert_error, http};

async fn append(c: &mut Client, target: &str, event: Value) -> Value {
    c.request(json!({"type": "append", "target": target, "event": event}))
        .await
}

fn seqs(events: &Value) -> Vec<u64> {
    events
        .as_array()
        .expect("events")
        .iter()
        .map(|e| e["seq"].as_u64().unwrap())
        .collect()
}

#[tokio::test]
async fn appended_events_are_read_by_range_and_id_and_shared_like_documents() {
    let server = TestServer::start().await;
    let (mut ann, _) = server.named_user("ann").await;
    let (mut bob, _) = server.named_user("bob").await;
    let (mut cat, _) = server.named_user("cat").await;

    // The owner's first append creates the stream.
    let r = append(&mut ann, "ann/~activity", json!({"did": "wake"})).await;
    assert_eq!(
        (r["type"].as_str(), r["seq"].as_u64()),
        (Some("appended"), Some(1)),
        "{r}"
    );
    let first_id = r["eventId"].as_str().unwrap().to_owned();
    assert_eq!(first_id.len(), 64);
    for n in 2..=5 {
        let r = append(&mut ann, "ann/~activity", json!({"n": n})).await;
        assert_eq!(r["seq"], n, "{r}");
    }
    // The same event at another place has another id.
    let again = append(&mut ann, "ann/~activity", json!({"did": "wake"})).await;
    assert_ne!(again["eventId"].as_str().unwrap(), first_id);

    // A stranger learns nothing; nobody appends to someone else's stream uninvited, nor
    // creates one in their name.
    assert_error(
        &append(&mut bob, "ann/~activity", json!(1)).await,
        "unauthorized",
    );
    assert_error(
        &append(&mut bob, "ann/~other", json!(1)).await,
        "unauthorized",
    );
    // Nor in the name of an account nobody registered (whoever signs up as it later finds
    // nothing there).
    assert_error(
        &append(&mut bob, "nobody-yet/~x", json!(1)).await,
        "unauthorized",
    );
    let r = bob
        .request(json!({"type": "read", "target": "nobody-yet/~x"}))
        .await;
    assert_error(&r, "unauthorized");
    let r = bob
        .request(json!({"type": "read", "target": "ann/~activity"}))
        .await;
    assert_error(&r, "unauthorized");

    // Shared as a document is: bob may append, cat may read.
    let r = ann
        .request(json!({"type": "update", "target": "ann/~activity", "data": {"metadata": {"version": 6, "collaborators": ["bob"], "readers": ["cat"]}}}))
        .await;
    assert_eq!(r["version"], 7, "{r}");
    let r = append(&mut bob, "ann/~activity", json!({"from": "bob"})).await;
    assert_eq!(r["seq"], 8, "{r}");
    assert_error(
        &append(&mut cat, "ann/~activity", json!(1)).await,
        "unauthorized",
    );

    // The whole stream: the sharing version is not an event.
    let r = cat
        .request(json!({"type": "read", "target": "ann/~activity"}))
        .await;
    assert_eq!(r["type"], "events", "{r}");
    assert_eq!(seqs(&r["events"]), [1, 2, 3, 4, 5, 6, 8]);
    assert_eq!(r["events"][0]["event"], json!({"did": "wake"}));
    assert_eq!(r["events"][0]["by"], "ann");
    assert_eq!(r["events"][6]["by"], "bob");
    assert_eq!(r["seq"], 8);
    // Ranges: after an id, up to a sequence number; pages.
    let r = cat
        .request(json!({"type": "read", "target": "ann/~activity", "from": first_id, "to": 4}))
        .await;
    assert_eq!(seqs(&r["events"]), [2, 3, 4]);
    let r = cat
        .request(json!({"type": "read", "target": "ann/~activity", "limit": 3}))
        .await;
    assert_eq!(
        (seqs(&r["events"]), r["next"].clone()),
        (vec![1, 2, 3], json!(3))
    );
    let r = cat
        .request(json!({"type": "read", "target": "ann/~activity", "from": 3, "limit": 3}))
        .await;
    assert_eq!(
        (seqs(&r["events"]), r["next"].clone()),
        (vec![4, 5, 6], json!(6))
    );
    let r = cat
        .request(json!({"type": "read", "target": "ann/~activity", "from": 6, "limit": 3}))
        .await;
    assert_eq!(
        (seqs(&r["events"]), r["next"].clone()),
        (vec![8], Value::Null)
    );
    let unknown = "0".repeat(64);
    let r = cat
        .request(json!({"type": "read", "target": "ann/~activity", "from": unknown}))
        .await;
    assert_error(&r, "not_found");
    let r = cat
        .request(json!({"type": "read", "target": "ann/~activity", "from": "soon"}))
        .await;
    assert_error(&r, "bad_request");

    // Never rewritten: a stream takes no update of its data; a document takes no append.
    let r = ann
        .request(json!({"type": "update", "target": "ann/~activity", "data": {"metadata": {"version": 8}, "userdata": {"x": 1}}}))
        .await;
    assert_error(&r, "bad_request");
    let r = ann
        .request(json!({"type": "create", "target": "ann/notes", "userdata": {}}))
        .await;
    assert!(r["type"] != "error", "{r}");
    assert_error(
        &append(&mut ann, "ann/notes", json!(1)).await,
        "unauthorized",
    );
    // Events are held to a document's limits.
    let deep = (0..70).fold(json!(1), |v, _| json!([v]));
    assert_error(
        &append(&mut ann, "ann/~activity", deep).await,
        "bad_request",
    );
}

#[tokio::test]
async fn a_watch_from_any_position_replays_then_follows_with_no_gap_or_duplicate() {
    let server = TestServer::start().await;
    let (mut ann, _) = server.named_user("ann").await;
    let (mut reader, _) = server.named_user("reader").await;
    for n in 1..=3 {
        append(&mut ann, "ann/~feed", json!({"n": n})).await;
    }
    ann.request(json!({"type": "update", "target": "ann/~feed", "data": {"metadata": {"version": 3, "readers": ["reader"]}}}))
        .await;
    // From the start, with no incarnation needed.
    let r = reader
        .request(json!({"type": "watch", "target": "ann/~feed", "since": 0, "mode": "ops"}))
        .await;
    assert_eq!(r["type"], "watching", "{r}");
    let mut got = Vec::new();
    let writer = tokio::spawn(async move {
        for n in 4..=20 {
            append(&mut ann, "ann/~feed", json!({"n": n})).await;
        }
        ann
    });
    while got.len() < 20 {
        let push = reader.next_push().await;
        assert_eq!(push["type"], "change", "{push}");
        if let Some(event) = push["op"]["append"]["event"]["n"].as_u64() {
            got.push(event);
        }
    }
    writer.await.unwrap();
    assert_eq!(
        got,
        (1..=20).collect::<Vec<_>>(),
        "every event once, in order"
    );
}

#[tokio::test]
async fn rest_appends_once_per_key_reads_ranges_and_streams_sse_that_resumes() {
    let server = TestServer::start().await;
    let (_ann, token) = server.named_user("ann").await;
    let base = format!("http://{}/v1/users/ann/streams/log", server.addr);
    let post = |event: Value, key: Option<&'static str>| {
        let (base, token) = (base.clone(), token.clone());
        async move {
            let mut req = reqwest::Client::new()
                .post(&base)
                .bearer_auth(token)
                .json(&event);
            if let Some(k) = key {
                req = req.header("Idempotency-Key", k);
            }
            let resp = req.send().await.unwrap();
            (resp.status().as_u16(), resp.json::<Value>().await.unwrap())
        }
    };
    let (status, first) = post(json!({"a": 1}), Some("op-1")).await;
    assert_eq!((status, first["seq"].clone()), (201, json!(1)), "{first}");
    // A retry with the same key is the same event, not a second one.
    let (_, retry) = post(json!({"a": 1}), Some("op-1")).await;
    assert_eq!(retry, first);
    for n in 2..=4 {
        post(json!({"a": n}), None).await;
    }
    let (status, page) = http(
        Method::GET,
        &format!("{base}?from=1&to=3"),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(seqs(&page["events"]), [2, 3]);
    let id = first["id"].as_str().unwrap();
    let (status, one) = http(Method::GET, &format!("{base}/{id}"), Some(&token), None).await;
    assert_eq!(
        (status, one["event"].clone(), one["seq"].clone()),
        (200, json!({"a": 1}), json!(1))
    );
    let (_, by_seq) = http(Method::GET, &format!("{base}/4"), Some(&token), None).await;
    assert_eq!(by_seq["event"], json!({"a": 4}));
    let (status, _) = http(
        Method::GET,
        &format!("{base}/{}", "f".repeat(64)),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(status, 404);
    let (status, _) = http(
        Method::POST,
        &format!("http://{}/v1/users/ann/streams/~x", server.addr),
        Some(&token),
        Some(json!(1)),
    )
    .await;
    assert_eq!(status, 404, "a name is given without its ~");

    // SSE from a position, then live; a reconnect with Last-Event-ID resumes after it.
    let sse_open = |last: Option<String>| {
        let (base, token) = (base.clone(), token.clone());
        async move {
            let mut req = reqwest::Client::new()
                .get(format!("{base}?from=2"))
                .bearer_auth(token)
                .header("Accept", "text/event-stream");
            if let Some(id) = last {
                req = req.header("Last-Event-ID", id);
            }
            Sse::from_response(req.send().await.unwrap()).await
        }
    };
    let mut sse = sse_open(None).await;
    let opening = sse.next().await.unwrap();
    assert_eq!(opening.data["type"], "watching", "{:?}", opening.data);
    let mut ids = Vec::new();
    for want in [3, 4] {
        let e = sse.next().await.unwrap();
        assert_eq!(e.data["op"]["append"]["event"]["a"], want, "{:?}", e.data);
        ids.push(e.id.clone().unwrap());
    }
    post(json!({"a": 5}), None).await;
    let live = sse.next().await.unwrap();
    assert_eq!(live.data["op"]["append"]["event"]["a"], 5);
    drop(sse);
    post(json!({"a": 6}), None).await;
    let mut resumed = sse_open(Some(ids[1].clone())).await;
    resumed.next().await.unwrap(); // `watching`
    let next = resumed.next().await.unwrap();
    assert_eq!(
        next.data["op"]["append"]["event"]["a"], 5,
        "resumes right after event 4"
    );
}

/// A stream's log is its data: CHANGELOG_RETAIN (here 2) never trims it; STREAM_RETAIN
/// does, and a reader from before what is kept is told where the stream now starts.
#[tokio::test]
async fn streams_keep_their_events_past_the_change_log_limit_and_across_a_restart() {
    let server = TestServer::start_with(|c| {
        c.changelog_retain = 2;
        c.stream_retain = 10;
    })
    .await;
    let (mut ann, _) = server.named_user("ann").await;
    for n in 1..=8 {
        append(&mut ann, "ann/~kept", json!(n)).await;
    }
    // The trim runs after writes pause; give it the time it takes.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let r = ann
        .request(json!({"type": "read", "target": "ann/~kept"}))
        .await;
    assert_eq!(seqs(&r["events"]), (1..=8).collect::<Vec<_>>(), "{r}");
    let server = server.restart().await;
    let mut ann = server.client().await;
    let r = ann
        .request(json!({"type": "login", "username": "ann", "password": "correct horse"}))
        .await;
    assert_eq!(r["type"], "auth");
    for n in 9..=25 {
        append(&mut ann, "ann/~kept", json!(n)).await;
    }
    let mut last = Value::Null;
    for _ in 0..50 {
        last = ann
            .request(json!({"type": "read", "target": "ann/~kept"}))
            .await;
        if last["oldest"].as_u64().is_some_and(|o| o > 1) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let oldest = last["oldest"].as_u64().expect("trimmed: oldest reported");
    // At least the newest 10 are kept (a trim runs every few versions, not every one).
    assert!(oldest > 1 && oldest <= 16, "{last}");
    assert_eq!(seqs(&last["events"]).first(), Some(&oldest));
    assert_eq!(seqs(&last["events"]).last(), Some(&25));
}

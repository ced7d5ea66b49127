//! Presence (issue 31): who is on a document, pushed to its watchers in order, ended by
//! everything that ends a connection's interest.

use std::time::Duration;

use serde_json::{Value, json};

use crate::common::{Client, TestServer, assert_error, http_get};

async fn authed(server: &TestServer, token: &str) -> Client {
    let mut c = server.client().await;
    let r = c.request(json!({"type": "auth", "token": token})).await;
    assert_eq!(r["type"], "auth", "{r}");
    c
}

/// A socket of `token`'s user watching `target` and present on it with `state`.
async fn present(server: &TestServer, token: &str, target: &str, state: Value) -> Client {
    let mut c = authed(server, token).await;
    let r = c.request(json!({"type": "watch", "target": target})).await;
    assert_eq!(r["type"], "data", "{r}");
    let r = c
        .request(json!({"type": "presence", "target": target, "action": "join", "state": state}))
        .await;
    assert_eq!(r["type"], "presence", "{r}");
    // Its own arrival is pushed to it too (it listens from the moment it asks).
    let own = next(&mut c).await;
    assert!(own.0 == "join" || own.0 == "update", "{own:?}");
    c
}

/// Ann (her client, name and token) and Bob (name and token), a reader of her document.
async fn ann_and_reader(server: &TestServer) -> (Client, String, String, String, String) {
    let (mut ann, ann_name, ann_token) = server.user().await;
    let (_bob, bob_name, bob_token) = server.user().await;
    let share =
        json!({"type": "update", "data": {"metadata": {"version": 0, "readers": [bob_name]}}});
    assert_eq!(ann.request(share).await["version"], 1);
    (ann, ann_name, ann_token, bob_name, bob_token)
}

/// A socket of `token`'s user that watches `target` and joins its presence, then reads
/// nothing: the kernel keeps about 4 KiB for it, so the server backs up quickly.
async fn silent(server: &TestServer, token: &str, target: &str) -> crate::common::RawWs {
    let mut ws = crate::common::RawWs::connect_with(server, Some(4096)).await;
    let frames = [
        json!({"type": "auth", "token": token, "id": 1}),
        json!({"type": "watch", "target": target, "id": 2}),
        json!({"type": "presence", "target": target, "action": "join", "id": 3}),
    ];
    for frame in frames {
        ws.send_frame(0x1, frame.to_string().as_bytes()).await;
    }
    ws
}

/// The next presence push: `(event, user, connections, state)`.
async fn next(c: &mut Client) -> (String, String, Value, Value) {
    loop {
        let p = c.next_push().await;
        if p["type"] == "presence" {
            return (
                p["event"].as_str().unwrap().to_owned(),
                p["user"].as_str().unwrap().to_owned(),
                p["connections"].clone(),
                p["state"].clone(),
            );
        }
    }
}

#[tokio::test]
async fn joins_updates_and_leaves_reach_every_watcher_in_order() {
    let server = TestServer::start().await;
    let (mut ann, ann_name, ann_token, bob_name, bob_token) = ann_and_reader(&server).await;
    let mut watcher = present(&server, &ann_token, &ann_name, json!({"typing": false})).await;

    let mut bob = present(&server, &bob_token, &ann_name, json!({"typing": true})).await;
    assert_eq!(
        next(&mut watcher).await,
        (
            "join".into(),
            bob_name.clone(),
            json!(1),
            json!({"typing": true})
        )
    );
    let r = bob
        .request(json!({"type": "presence", "target": ann_name, "action": "join", "state": {"typing": false, "field": "notes"}}))
        .await;
    let people: Vec<&str> = r["present"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["username"].as_str().unwrap())
        .collect();
    assert_eq!(
        people,
        vec![ann_name.as_str(), bob_name.as_str()],
        "longest there first: {r}"
    );
    assert_eq!(
        next(&mut watcher).await,
        (
            "update".into(),
            bob_name.clone(),
            json!(1),
            json!({"typing": false, "field": "notes"})
        )
    );
    // A second socket of Bob's: one person, two connections.
    let bob2 = present(
        &server,
        &bob_token,
        &ann_name,
        json!({"typing": false, "field": "notes"}),
    )
    .await;
    assert_eq!(next(&mut watcher).await.2, json!(2));
    drop(bob2);
    assert_eq!(next(&mut watcher).await.2, json!(1));
    // Anyone who may read the document may ask, over REST too.
    let url = format!("http://{}/v1/users/{ann_name}/presence", server.addr);
    let (status, body) = http_get(&url, &bob_token).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["present"].as_array().unwrap().len(), 2, "{body}");
    // Unwatching ends it.
    bob.request(json!({"type": "unwatch", "target": ann_name}))
        .await;
    assert_eq!(
        next(&mut watcher).await,
        ("leave".into(), bob_name.clone(), Value::Null, Value::Null)
    );
    let (_, body) = http_get(&url, &ann_token).await;
    assert_eq!(body["present"].as_array().unwrap().len(), 1, "{body}");
    // Presence is never a version.
    assert_eq!(ann.request(json!({"type": "fetch"})).await["version"], 1);
}

#[tokio::test]
async fn sign_out_revocation_and_closing_end_presence() {
    let server = TestServer::start().await;
    let (mut ann, ann_name, ann_token) = server.user().await;
    let (_bob, bob_name, bob_token) = server.user().await;
    let (_cat, cat_name, cat_token) = server.user().await;
    let (_dan, dan_name, dan_token) = server.user().await;
    let share = json!({"type": "update", "data": {"metadata": {"version": 0, "collaborators": [bob_name, cat_name, dan_name]}}});
    assert_eq!(ann.request(share).await["version"], 1);
    let mut watcher = present(&server, &ann_token, &ann_name, json!({})).await;
    let mut bob = present(&server, &bob_token, &ann_name, json!({})).await;
    assert_eq!(next(&mut watcher).await.0, "join");
    let mut cat = present(&server, &cat_token, &ann_name, json!({})).await;
    assert_eq!(next(&mut watcher).await.0, "join");

    // Bob loses access: gone at once, and his socket hears nothing more of the room.
    let revoke = json!({"type": "update", "data": {"metadata": {"version": 1, "collaborators": [cat_name, dan_name]}}});
    assert_eq!(ann.request(revoke).await["version"], 2);
    assert_eq!(
        next(&mut watcher).await,
        ("leave".into(), bob_name.clone(), Value::Null, Value::Null)
    );
    // Cat signs out.
    cat.request(json!({"type": "logout"})).await;
    assert_eq!(
        next(&mut watcher).await,
        ("leave".into(), cat_name.clone(), Value::Null, Value::Null)
    );
    // A socket that just goes away (no close frame) ends it as well.
    let gone = present(&server, &dan_token, &ann_name, json!({})).await;
    assert_eq!(next(&mut watcher).await.0, "join");
    drop(gone);
    assert_eq!(
        next(&mut watcher).await,
        ("leave".into(), dan_name.clone(), Value::Null, Value::Null)
    );
    let mut heard = Vec::new();
    while !bob.quiet_for(Duration::from_millis(200)).await {
        heard.push(bob.next_push().await);
    }
    // Bob heard the room until he lost access, and nothing of it since, not even his leaving.
    let revoked = heard.iter().position(|p| p["detail"] == "access revoked");
    let since: Vec<&Value> = heard.iter().skip(revoked.expect("told")).collect();
    assert!(since.iter().all(|p| p["type"] != "presence"), "{heard:?}");
    assert!(
        !heard
            .iter()
            .any(|p| p["event"] == "leave" && p["user"] == bob_name.as_str()),
        "{heard:?}"
    );
}

#[tokio::test]
async fn strangers_limits_and_rules() {
    let server = TestServer::start().await;
    let (mut ann, ann_name, ann_token) = server.user().await;
    let (mut eve, _, _) = server.user().await;
    assert_error(
        &eve.request(json!({"type": "presence", "target": ann_name}))
            .await,
        "unauthorized",
    );
    // Only a socket that watches may be present.
    assert_error(
        &ann.request(json!({"type": "presence", "action": "join"}))
            .await,
        "bad_request",
    );
    let mut c = present(&server, &ann_token, &ann_name, json!({"n": 0})).await;
    let big = json!({"text": "x".repeat(1100)});
    assert_error(
        &c.request(json!({"type": "presence", "action": "join", "state": big}))
            .await,
        "too_large",
    );
    let mut limited = false;
    for n in 0..12 {
        let r = c
            .request(json!({"type": "presence", "action": "join", "state": {"n": n}}))
            .await;
        if r["type"] == "error" {
            assert_eq!(r["code"], "rate_limited", "{r}");
            limited = true;
            break;
        }
    }
    assert!(limited, "ten state changes a second at most");
    assert_error(
        &c.request(json!({"type": "presence", "action": "dance"}))
            .await,
        "bad_request",
    );
    // Leaving keeps the socket listening; the list no longer has it.
    let r = c
        .request(json!({"type": "presence", "action": "leave"}))
        .await;
    assert_eq!(r["present"], json!([]), "{r}");
}

#[tokio::test]
async fn sse_streams_carry_presence_when_asked() {
    let server = TestServer::start().await;
    let (_ann, ann_name, ann_token) = server.user().await;
    let base = format!("http://{}/v1/users/{ann_name}/events", server.addr);
    let mut plain = crate::common::Sse::open(&base, &ann_token, None).await;
    let mut with = crate::common::Sse::open(&format!("{base}?presence=1"), &ann_token, None).await;
    assert_eq!(plain.next().await.unwrap().data["type"], "data");
    assert_eq!(with.next().await.unwrap().data["type"], "data");
    let list = with.next().await.unwrap();
    assert_eq!(
        (list.data["type"].as_str(), &list.data["present"]),
        (Some("presence"), &json!([]))
    );
    assert!(list.id.is_none(), "presence is not a version");
    let _here = present(&server, &ann_token, &ann_name, json!({"typing": true})).await;
    let pushed = with.next().await.unwrap();
    assert_eq!(
        (pushed.data["event"].as_str(), &pushed.data["state"]),
        (Some("join"), &json!({"typing": true}))
    );
    assert!(pushed.id.is_none());
    // The plain stream sees only versions.
    let mut ann = server.client().await;
    ann.request(json!({"type": "auth", "token": ann_token}))
        .await;
    ann.request(
        json!({"type": "update", "data": {"metadata": {"version": 0}, "userdata": {"a": 1}}}),
    )
    .await;
    assert_eq!(plain.next().await.unwrap().data["type"], "change");
}

#[tokio::test]
async fn a_client_that_vanishes_is_gone_at_the_idle_timeout() {
    let server = TestServer::start_with(|c| {
        c.ping_interval = 100;
        c.idle_timeout = 500;
    })
    .await;
    let (_ann, _, token) = server.user().await;
    let mut watcher = authed(&server, &token).await;
    watcher.request(json!({"type": "watch"})).await;
    watcher.request(json!({"type": "presence"})).await;
    // A client that announces itself and then never answers again (its machine slept).
    let mut silent = crate::common::RawWs::connect(&server).await;
    for frame in [
        json!({"type": "auth", "token": token}),
        json!({"type": "watch"}),
        json!({"type": "presence", "action": "join", "state": {"me": "asleep"}}),
    ] {
        silent.send_frame(0x1, frame.to_string().as_bytes()).await;
    }
    let joined = std::time::Instant::now();
    let mut events = Vec::new();
    // The watcher keeps answering pings while it waits (`next` reads).
    while events
        .last()
        .is_none_or(|e: &(String, String, Value, Value)| e.0 != "leave")
    {
        let e = tokio::time::timeout(Duration::from_secs(5), next(&mut watcher))
            .await
            .expect("the silent client's presence ends");
        events.push(e);
    }
    // Its one person: joined (or the connection count rose), then left at the timeout.
    assert!(
        events.iter().any(|e| e.3 == json!({"me": "asleep"})),
        "{events:?}"
    );
    assert!(
        joined.elapsed() >= Duration::from_millis(400),
        "not before the idle timeout"
    );
}

/// A client that joins and never reads again: presence pushes back up on its socket, and it
/// is closed (its seat leaves) instead of the server queueing for it without end.
#[tokio::test]
async fn a_client_that_never_reads_is_closed_not_queued_for() {
    // Room for a round of pushes (40 × 1 KiB) for sockets that read, not for one that never does.
    let server = TestServer::start_with(|c| c.outbound_buffer = 96 * 1024).await;
    let (_ann, ann_name, ann_token, bob_name, bob_token) = ann_and_reader(&server).await;
    let mut watcher = present(&server, &ann_token, &ann_name, json!({})).await;
    let _silent = silent(&server, &bob_token, &ann_name).await;
    assert_eq!(
        next(&mut watcher).await,
        ("join".into(), bob_name.clone(), json!(1), json!({}))
    );
    // Ann's other tabs change their state as fast as allowed, with a full kilobyte each.
    let mut setters = Vec::new();
    for _ in 0..40 {
        setters.push(present(&server, &ann_token, &ann_name, json!({})).await);
    }
    let big = "x".repeat(1000);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let mut gone = false;
    'rounds: while tokio::time::Instant::now() < deadline {
        for (i, s) in setters.iter_mut().enumerate() {
            let r = s
                .request(json!({"type": "presence", "target": ann_name, "action": "join", "state": {"i": i, "pad": big}}))
                .await;
            assert_eq!(r["type"], "presence", "{r}");
            s.drain_pushes();
        }
        // The watcher reads on; Bob's leaving is what is waited for.
        let until = tokio::time::Instant::now() + Duration::from_millis(110);
        while let Ok(e) = tokio::time::timeout_at(until, next(&mut watcher)).await {
            if e.0 == "leave" && e.1 == bob_name {
                gone = true;
                break 'rounds;
            }
        }
    }
    assert!(gone, "the silent client was closed and its presence ended");
}

/// A reply's list is taken before the reply is queued, so a push sent in between can reach
/// the client first. `seq` lets it tell: every join numbered up to the reply's `seq` is in
/// its list and none after (the race behind a client that showed someone joined as absent).
#[tokio::test]
async fn a_list_and_the_pushes_racing_it_agree_by_seq() {
    let server = TestServer::start().await;
    let (mut ann, ann_name, ann_token) = server.user().await;
    let mut guests = Vec::new();
    for _ in 0..6 {
        let (_c, name, token) = server.user().await;
        guests.push((name, token));
    }
    let readers: Vec<&str> = guests.iter().map(|(n, _)| n.as_str()).collect();
    let share = json!({"type": "update", "data": {"metadata": {"version": 0, "readers": readers}}});
    assert_eq!(ann.request(share).await["version"], 1);
    let mut watcher = authed(&server, &ann_token).await;
    let r = watcher
        .request(json!({"type": "watch", "target": ann_name}))
        .await;
    assert_eq!(r["type"], "data", "{r}");
    let first = watcher
        .request(json!({"type": "presence", "target": ann_name}))
        .await;
    assert_eq!(first["seq"], 0, "an empty room: {first}");
    let mut joiners = Vec::new();
    for (name, token) in guests.clone() {
        let (server, target) = (&server, ann_name.clone());
        joiners.push(async move { present(server, &token, &target, json!({"who": name})).await });
    }
    let joined = futures_util::future::join_all(joiners);
    let listed = async {
        tokio::time::sleep(Duration::from_millis(2)).await;
        watcher
            .request(json!({"type": "presence", "target": ann_name}))
            .await
    };
    let (_sockets, list) = tokio::join!(joined, listed);
    let at = list["seq"].as_u64().expect("a list carries seq");
    let listed: Vec<&str> = list["present"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["username"].as_str().unwrap())
        .collect();
    let mut last = 0;
    for _ in 0..guests.len() {
        let p = loop {
            let p = watcher.next_push().await;
            if p["type"] == "presence" {
                break p;
            }
        };
        assert_eq!(p["event"], "join", "{p}");
        let seq = p["seq"].as_u64().expect("a push carries seq");
        assert!(seq > last, "pushes number on: {seq} after {last}");
        last = seq;
        let user = p["user"].as_str().unwrap();
        assert_eq!(
            listed.contains(&user),
            seq <= at,
            "{user} at {seq}, list at {at}: {list}"
        );
    }
    assert!(last >= guests.len() as u64);
}

/// A socket whose queue is full for a while (here: taking in large changes) is not closed
/// for presence, as its watch is not: what did not fit waits, in order, and arrives once it
/// reads again. Bob's socket reads nothing while Ann writes twenty large versions and her 20
/// tabs join and change their state; then it hears exactly what Ann's reading watcher heard.
#[tokio::test]
async fn a_socket_that_pauses_hears_every_presence_push_in_order_later() {
    let server = TestServer::start_with(|c| c.outbound_buffer = 8 * 1024).await;
    let (mut ann, ann_name, ann_token, bob_name, bob_token) = ann_and_reader(&server).await;
    let mut watcher = present(&server, &ann_token, &ann_name, json!({})).await;
    let paused = silent(&server, &bob_token, &ann_name).await;
    assert_eq!(next(&mut watcher).await.1, bob_name, "Bob is in");
    // Far more than the kernel's buffers and the queue hold for a socket that is not reading.
    let big = "x".repeat(500_000);
    for v in 1..21 {
        let r = ann
            .request(json!({"type": "update", "data": {"metadata": {"version": v}, "userdata": {"big": big, "v": v}}}))
            .await;
        assert_eq!(r["version"], v + 1, "{r}");
    }
    let mut tabs = Vec::new();
    for _ in 0..20 {
        tabs.push(present(&server, &ann_token, &ann_name, json!({})).await);
    }
    // Twenty kilobytes of presence, where the queue holds eight.
    let pad = "x".repeat(900);
    for (i, tab) in tabs.iter_mut().enumerate() {
        let r = tab
            .request(json!({"type": "presence", "target": ann_name, "action": "join", "state": {"i": i, "pad": pad}}))
            .await;
        assert_eq!(r["type"], "presence", "{r}");
        tab.drain_pushes();
    }
    // What the reading watcher heard since Bob joined, to the last tab's change.
    let mut heard = Vec::new();
    loop {
        let p = watcher.next_push().await;
        if p["type"] == "presence" {
            heard.push(p["seq"].clone());
            if p["state"]["i"] == 19 {
                break;
            }
        }
    }
    let mut bob = paused.into_client().await;
    let mut got = Vec::new();
    while got.last() != heard.last() {
        let p = bob.next_push().await;
        assert_ne!(p["type"], "error", "{p}");
        if p["type"] == "presence" && p.get("event").is_some() {
            got.push(p["seq"].clone());
        }
    }
    assert_eq!(
        got[got.len() - heard.len()..],
        heard[..],
        "the same, in order"
    );
    // Still open, and answering.
    let r = bob
        .request(json!({"type": "presence", "target": ann_name}))
        .await;
    assert_eq!(r["type"], "presence", "{r}");
}

/// An SSE stream with presence whose queue is full when a presence push comes is ended, not
/// left without presence from then on (it was dropped from the room without a word): its
/// client reconnects with `Last-Event-ID` and gets a fresh list.
#[tokio::test]
async fn an_sse_stream_too_far_behind_for_presence_ends() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // Long enough that the watch's own wait for room cannot be what ends the stream here.
    let server = TestServer::start_with(|c| c.slow_consumer_timeout = 120_000).await;
    let (mut ann, ann_name, ann_token) = server.user().await;
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut stream = socket.connect(server.addr).await.unwrap();
    let request = format!(
        "GET /v1/users/{ann_name}/events?presence=1 HTTP/1.1\r\nHost: localhost\r\n\
         Authorization: Bearer {ann_token}\r\nAccept: text/event-stream\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    // It reads nothing while large versions fill every buffer on the way, then presence comes.
    let big = "x".repeat(500_000);
    for v in 0..20 {
        let r = ann
            .request(json!({"type": "update", "data": {"metadata": {"version": v}, "userdata": {"big": big, "v": v}}}))
            .await;
        assert_eq!(r["version"], v + 1, "{r}");
    }
    let mut tabs = Vec::new();
    for i in 0..20 {
        tabs.push(present(&server, &ann_token, &ann_name, json!({"i": i})).await);
    }
    for round in 0..4 {
        for (i, tab) in tabs.iter_mut().enumerate() {
            let r = tab
                .request(json!({"type": "presence", "target": ann_name, "action": "join", "state": {"round": round, "i": i}}))
                .await;
            assert_eq!(r["type"], "presence", "{r}");
            tab.drain_pushes();
        }
    }
    // The stream ends (Connection: close), long before the watch would give up.
    let mut body = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(20), stream.read_to_end(&mut body)).await;
    assert!(read.is_ok(), "the stream ended");
    let text = String::from_utf8_lossy(&body);
    assert!(
        text.starts_with("HTTP/1.1 200"),
        "{}",
        &text[..200.min(text.len())]
    );
    assert!(text.contains("\"present\""), "it had its list");
}

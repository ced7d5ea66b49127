//! Webhooks (issue 32) against a receiver on 127.0.0.1: signed, in order, only the owner's
//! changes; a receiver down for a while then back gets everything once per delivery id;
//! pausing after failures and resuming; `kill -9` with deliveries pending loses none;
//! private addresses refused unless the operator allows them.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use hmac::{Hmac, Mac};
use reqwest::Method;
use serde_json::{Value, json};
use sha2::Sha256;

use crate::common::{Client, TestServer, http, spawn_hearth};

/// One delivery as the receiver saw it.
#[derive(Clone, Debug)]
struct Got {
    id: String,
    signature: String,
    body: Bytes,
    json: Value,
}

struct Receiver {
    url: String,
    got: Arc<Mutex<Vec<Got>>>,
    up: Arc<AtomicBool>,
}

impl Receiver {
    async fn start() -> Receiver {
        let got: Arc<Mutex<Vec<Got>>> = Arc::default();
        let up = Arc::new(AtomicBool::new(true));
        let (g, u) = (got.clone(), up.clone());
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |headers: HeaderMap, body: Bytes| {
                let (g, u) = (g.clone(), u.clone());
                async move {
                    if !u.load(Ordering::SeqCst) {
                        return StatusCode::SERVICE_UNAVAILABLE;
                    }
                    let header = |n: &str| {
                        headers
                            .get(n)
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("")
                            .to_owned()
                    };
                    g.lock().unwrap().push(Got {
                        id: header("x-hearth-delivery"),
                        signature: header("x-hearth-signature"),
                        json: serde_json::from_slice(&body).unwrap_or(Value::Null),
                        body,
                    });
                    StatusCode::OK
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Receiver { url, got, up }
    }

    fn got(&self) -> Vec<Got> {
        self.got.lock().unwrap().clone()
    }

    async fn until(&self, n: usize) -> Vec<Got> {
        for _ in 0..200 {
            let got = self.got();
            if got.len() >= n {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "{} deliveries, wanted {n}: {:?}",
            self.got().len(),
            self.got()
        );
    }
}

fn signed(secret: &str, got: &Got) -> bool {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(&got.body);
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    got.signature == format!("sha256={hex}")
}

async fn merge(c: &mut Client, target: &str, version: u64, n: u64) {
    let r = c
        .request(json!({"type": "update", "target": target, "patch": true, "data": {"metadata": {"version": version}, "userdata": {"n": n}}}))
        .await;
    assert_eq!(r["version"], version + 1, "{r}");
}

async fn register(base: &str, token: &str, body: Value) -> (u16, Value) {
    http(
        Method::POST,
        &format!("{base}/v1/me/webhooks"),
        Some(token),
        Some(body),
    )
    .await
}

/// `DELETE /v1/me/webhooks/{id}`'s status.
async fn remove(base: &str, token: &str, id: &str) -> u16 {
    let url = format!("{base}/v1/me/webhooks/{id}");
    http(Method::DELETE, &url, Some(token), None).await.0
}

fn fast(c: &mut hearth::Config) {
    c.webhook_allow_private = true;
    c.webhook_retry_ms = 5;
}

#[tokio::test]
async fn deliveries_are_signed_in_order_and_only_the_owners() {
    let server = TestServer::start_with(fast).await;
    let receiver = Receiver::start().await;
    let (mut ann, token) = server.named_user("ann").await;
    let (mut bob, _) = server.named_user("bob").await;
    let base = format!("http://{}", server.addr);
    let (status, hook) = register(&base, &token, json!({"url": receiver.url})).await;
    assert_eq!(status, 201, "{hook}");
    let secret = hook["secret"].as_str().unwrap().to_owned();
    let (_, appends) = register(
        &base,
        &token,
        json!({"url": receiver.url, "docs": ["~log"], "events": ["append"]}),
    )
    .await;
    // Shown once: the list has no secrets.
    let (_, list) = http(
        Method::GET,
        &format!("{base}/v1/me/webhooks"),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(list["webhooks"].as_array().unwrap().len(), 2);
    assert!(!list.to_string().contains(&secret));

    for v in 0..5 {
        merge(&mut ann, "ann", v, v).await;
        merge(&mut bob, "bob", v, v).await; // not hers: never posted
    }
    for i in 0..2 {
        ann.request(json!({"type": "append", "target": "ann/~log", "event": {"i": i}}))
            .await;
    }
    let got = receiver.until(9).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let got_all = receiver.got();
    assert_eq!(
        got_all.len(),
        9,
        "7 to the first hook, 2 to the second: {got_all:?}"
    );
    let first: Vec<&Got> = got
        .iter()
        .filter(|g| g.json["webhook"] == hook["id"])
        .collect();
    assert_eq!(first.len(), 7);
    assert!(first.iter().all(|g| g.json["username"] == "ann"));
    assert!(
        first.iter().all(|g| signed(&secret, g)),
        "signatures verify"
    );
    assert!(!signed("not the secret", first[0]));
    let cursors: Vec<u64> = first
        .iter()
        .map(|g| g.json["cursor"].as_u64().unwrap())
        .collect();
    assert!(
        cursors.windows(2).all(|w| w[0] < w[1]),
        "in order: {cursors:?}"
    );
    assert_eq!(first[0].json["op"], json!({"merge": {"n": 0}}));
    assert_eq!(first[0].id, first[0].json["delivery"].as_str().unwrap());
    let second: Vec<&Got> = got_all
        .iter()
        .filter(|g| g.json["webhook"] == appends["id"])
        .collect();
    assert_eq!(second.len(), 2);
    assert_eq!(second[1].json["op"]["append"]["event"], json!({"i": 1}));

    // Nobody else's to delete; deleting stops it.
    let (_, bob_token) = server.named_user("bob2").await;
    let id = hook["id"].as_str().unwrap();
    assert_eq!(remove(&base, &bob_token, id).await, 404);
    assert_eq!(remove(&base, &token, id).await, 204);
    merge(&mut ann, "ann", 5, 5).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(receiver.got().len(), 9, "deleted: nothing more");
}

#[tokio::test]
async fn a_receiver_down_then_back_gets_everything_once_and_a_paused_hook_resumes() {
    let server = TestServer::start_with(fast).await;
    let receiver = Receiver::start().await;
    receiver.up.store(false, Ordering::SeqCst);
    let (mut ann, token) = server.named_user("ann").await;
    let base = format!("http://{}", server.addr);
    let (_, hook) = register(&base, &token, json!({"url": receiver.url})).await;
    let id = hook["id"].as_str().unwrap().to_owned();
    for v in 0..10 {
        merge(&mut ann, "ann", v, v).await;
    }
    // Down long enough to fail 8 times in a row (5 ms, doubling): paused, and says why.
    let mut shown = Value::Null;
    for _ in 0..100 {
        shown = http(
            Method::GET,
            &format!("{base}/v1/me/webhooks"),
            Some(&token),
            None,
        )
        .await
        .1;
        if !shown["webhooks"][0]["paused"].is_null() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let me = &shown["webhooks"][0];
    assert!(me["paused"].as_str().unwrap().contains("failed"), "{shown}");
    assert_eq!(me["lastError"], "the receiver answered HTTP 503");
    assert_eq!(me["delivered"], 0);
    receiver.up.store(true, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert!(receiver.got().is_empty(), "paused: nothing until resumed");
    let (status, _) = http(
        Method::POST,
        &format!("{base}/v1/me/webhooks/{id}/resume"),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(status, 200);
    let got = receiver.until(10).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let got = if receiver.got().len() > got.len() {
        receiver.got()
    } else {
        got
    };
    let ids: Vec<&str> = got.iter().map(|g| g.id.as_str()).collect();
    let unique: HashSet<&str> = ids.iter().copied().collect();
    assert_eq!((ids.len(), unique.len()), (10, 10), "each once: {ids:?}");
    let versions: Vec<u64> = got
        .iter()
        .map(|g| g.json["version"].as_u64().unwrap())
        .collect();
    assert_eq!(versions, (1..=10).collect::<Vec<_>>(), "in order");
}

#[tokio::test]
async fn private_addresses_are_refused_unless_allowed() {
    let server = TestServer::start().await;
    let (_ann, token) = server.named_user("ann").await;
    let base = format!("http://{}", server.addr);
    for url in [
        "http://127.0.0.1:9/hook",
        "http://169.254.169.254/latest",
        "http://[::1]:9/",
        "ftp://example.com/",
    ] {
        let (status, body) = register(&base, &token, json!({"url": url})).await;
        assert_eq!(
            (status, body["code"].as_str()),
            (400, Some("bad_request")),
            "{url}: {body}"
        );
    }
    let (status, _) = register(
        &base,
        &token,
        json!({"url": "http://127.0.0.1:9/", "docs": ["bob/notes"]}),
    )
    .await;
    assert_eq!(status, 400);
    // A host that does not resolve is refused at registration, not retried forever.
    let (status, body) = register(
        &base,
        &token,
        json!({"url": "http://no-such-host.invalid/hook"}),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("does not resolve"),
        "{body}"
    );
}

/// `kill -9` of the server with every delivery still pending: after the restart, each
/// arrives (the feed and the webhook's cursor are durable), in order.
#[tokio::test]
async fn kill_9_with_deliveries_pending_loses_none() {
    let receiver = Receiver::start().await;
    receiver.up.store(false, Ordering::SeqCst);
    let dir = tempfile::tempdir().unwrap();
    let envs = [("WEBHOOK_ALLOW_PRIVATE", "1"), ("WEBHOOK_RETRY_MS", "50")];
    let (mut child, addr) = spawn_hearth(dir.path(), &envs).await;
    let base = format!("http://{addr}");
    let mut ann = Client::connect(&format!("ws://{addr}/ws")).await;
    let r = ann
        .request(json!({"type": "signup", "username": "ann", "password": "correct horse"}))
        .await;
    let token = r["token"].as_str().unwrap().to_owned();
    let (status, _) = register(&base, &token, json!({"url": receiver.url})).await;
    assert_eq!(status, 201);
    for v in 0..20 {
        merge(&mut ann, "ann", v, v).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    child.kill().await.unwrap();
    receiver.up.store(true, Ordering::SeqCst);
    let (_child, _addr) = spawn_hearth(dir.path(), &envs).await;
    let got = receiver.until(20).await;
    let unique: HashSet<String> = got.iter().map(|g| g.id.clone()).collect();
    assert_eq!(unique.len(), 20, "none lost");
    let versions: Vec<u64> = got
        .iter()
        .map(|g| g.json["version"].as_u64().unwrap())
        .collect();
    assert_eq!(
        versions,
        (1..=20).collect::<Vec<_>>(),
        "in order, none twice"
    );
}

/// In a cluster one node at a time delivers (an advisory lock): each change is posted once,
/// not once per node, and when that node stops another takes over from its progress.
#[tokio::test]
async fn a_cluster_delivers_each_change_once_and_another_node_takes_over() {
    let Some(mut nodes) = TestServer::cluster(2, fast).await else {
        return;
    };
    let receiver = Receiver::start().await;
    let (mut ann, token) = nodes[0].named_user("ann").await;
    let base = format!("http://{}", nodes[1].addr);
    let (status, hook) = register(&base, &token, json!({"url": receiver.url})).await;
    assert_eq!(status, 201, "{hook}");
    let mut ann1 = nodes[1].client().await;
    ann1.request(json!({"type": "auth", "token": token})).await;
    for v in 0..6 {
        let c = if v % 2 == 0 { &mut ann } else { &mut ann1 };
        merge(c, "ann", v, v).await;
    }
    receiver.until(6).await;
    // Time for a second deliverer, were there one, to post its copies.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let ids: Vec<String> = receiver.got().iter().map(|g| g.id.clone()).collect();
    assert_eq!(ids.len(), 6, "each change once: {ids:?}");
    let turns: Vec<i64> = nodes
        .iter()
        .map(|n| n.state().metrics.webhook_turn.get())
        .collect();
    assert_eq!(turns.iter().sum::<i64>(), 1, "one node delivers: {turns:?}");
    let holder = turns.iter().position(|t| *t == 1).unwrap_or(0);
    let other = 1 - holder;

    // The delivering node stops; the other one's writes still reach the receiver.
    nodes[holder].shutdown().await;
    let mut writer = nodes[other].client().await;
    writer
        .request(json!({"type": "auth", "token": token}))
        .await;
    for v in 6..9 {
        merge(&mut writer, "ann", v, v).await;
    }
    let mut delivered = HashSet::new();
    for _ in 0..200 {
        delivered = receiver.got().iter().map(|g| g.id.clone()).collect();
        if delivered.len() >= 9 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(delivered.len(), 9, "every change, by id: {delivered:?}");
    assert_eq!(nodes[other].state().metrics.webhook_turn.get(), 1);
}

/// A deliverer stores its progress only over the record it read: a webhook removed
/// meanwhile (on any node) stays removed, and a changed one is not written over.
#[tokio::test]
async fn progress_is_never_stored_over_a_removed_or_changed_webhook() {
    let server = TestServer::start_with(|c| {
        c.webhook_delivery = false;
        c.webhook_allow_private = true;
    })
    .await;
    let (_ann, token) = server.named_user("ann").await;
    let base = format!("http://{}", server.addr);
    let (status, hook) = register(&base, &token, json!({"url": "http://127.0.0.1:9/"})).await;
    assert_eq!(status, 201, "{hook}");
    let id = hook["id"].as_str().unwrap();
    let store = &server.state().store;
    let read = || async { store.webhooks().await.unwrap() };
    let stored = read().await.pop().expect("one record");
    let mut progressed: Value = serde_json::from_slice(&stored).unwrap();
    progressed["cursor"] = json!(99);
    let progressed = serde_json::to_vec(&progressed).unwrap();
    // Over something else: refused, nothing changes.
    let stale = store
        .save_webhook(id, Some(progressed.clone()), Some(b"{}".to_vec()))
        .await;
    assert!(
        matches!(
            stale,
            Err(hearth::store::StoreError::VersionMismatch { .. })
        ),
        "{stale:?}"
    );
    assert_eq!(read().await, vec![stored.clone()]);
    // Over the record read: stored.
    store
        .save_webhook(id, Some(progressed.clone()), Some(stored.clone()))
        .await
        .expect("saved over the record it read");
    assert_eq!(read().await, vec![progressed.clone()]);
    // Removed, then a late save of progress: it stays removed.
    assert_eq!(remove(&base, &token, id).await, 204);
    let late = store
        .save_webhook(id, Some(progressed.clone()), Some(progressed))
        .await;
    assert!(late.is_err(), "{late:?}");
    assert!(read().await.is_empty(), "removed stays removed");
}

/// A delivering node that goes quiet without closing its connection (frozen, or cut off by
/// the network) loses the turn: PostgreSQL ends its session once it stops querying, and
/// another node takes over. Here the holder simply never checks its turn again.
#[tokio::test]
async fn a_quiet_holder_loses_the_turn_to_another_node() {
    use hearth::webhooks::turn::Turn;
    let Some(url) = crate::common::database_url() else {
        eprintln!(
            "\n*** SKIPPED: needs PostgreSQL; set TEST_DATABASE_URL (scripts/test does) ***\n"
        );
        return;
    };
    let pg = hearth::store::PgSettings {
        url,
        schema: crate::common::fresh_schema(),
        pool_size: 1,
    };
    let stop = tokio_util::sync::CancellationToken::new();
    let quiet = Turn::take(Some(&pg), &stop).await.expect("the turn");
    let asked = std::time::Instant::now();
    let next = tokio::time::timeout(Duration::from_secs(40), Turn::take(Some(&pg), &stop))
        .await
        .expect("another node took over")
        .expect("the turn");
    assert!(
        asked.elapsed() >= Duration::from_secs(5),
        "not while the holder's session lived: {:?}",
        asked.elapsed()
    );
    // The quiet one finds out at its next check.
    tokio::time::timeout(Duration::from_secs(10), quiet.lost())
        .await
        .expect("the quiet holder sees it lost the turn");
    drop(next);
}

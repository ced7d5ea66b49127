//! Chaos, bounded: writers race on one document, watchers are cut off at random and resume
//! with `since`, and the server restarts twice. Every watcher must see every version once.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use rand::Rng;
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message;

use crate::common::TestServer;

const TARGET: u64 = 2000;
const WRITERS: usize = 4;
const WATCHERS: usize = 5;
const MIN_DROPS: usize = 20;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Connects (retrying while the server restarts) and signs in.
async fn connect(url: &watch::Receiver<String>, token: &str) -> Ws {
    loop {
        let target = url.borrow().clone();
        if let Ok(Ok((mut ws, _))) = tokio::time::timeout(
            Duration::from_secs(2),
            tokio_tungstenite::connect_async(&target),
        )
        .await
        {
            let auth = json!({"id": 0, "type": "auth", "token": token}).to_string();
            if ws.send(Message::text(auth)).await.is_ok()
                && let Some(reply) = next_json(&mut ws).await
                && reply["type"] == "auth"
            {
                return ws;
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn next_json(ws: &mut Ws) -> Option<Value> {
    loop {
        match tokio::time::timeout(Duration::from_secs(5), ws.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => return serde_json::from_str(t.as_str()).ok(),
            Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => {}
            _ => return None,
        }
    }
}

/// Commits until the document reaches `TARGET`, reconnecting as needed.
async fn writer(url: watch::Receiver<String>, token: String, version: Arc<AtomicU64>) {
    let mut ws = connect(&url, &token).await;
    let mut id = 1u64;
    loop {
        let base = version.load(Ordering::SeqCst);
        if base >= TARGET {
            return;
        }
        id += 1;
        let frame = json!({"id": id, "type": "update", "patch": true,
            "data": {"metadata": {"version": base}, "userdata": {"last": base + 1}}});
        let reply = match ws.send(Message::text(frame.to_string())).await {
            Ok(()) => next_json(&mut ws).await,
            Err(_) => None,
        };
        match reply {
            Some(r) if r["type"] == "version" || r["code"] == "version_mismatch" => {
                version.fetch_max(r["version"].as_u64().unwrap_or(0), Ordering::SeqCst);
            }
            _ => {
                ws = connect(&url, &token).await;
                let fetch = json!({"id": 1, "type": "fetch"}).to_string();
                if ws.send(Message::text(fetch)).await.is_ok()
                    && let Some(r) = next_json(&mut ws).await
                {
                    version.fetch_max(r["version"].as_u64().unwrap_or(0), Ordering::SeqCst);
                }
            }
        }
    }
}

/// Watches with random disconnects; returns every version seen, in order, and the drop count.
async fn watcher(
    url: watch::Receiver<String>,
    token: String,
    mode: &'static str,
) -> (Vec<u64>, usize) {
    let mut seen: Vec<u64> = Vec::new();
    let mut drops = 0;
    loop {
        let mut ws = connect(&url, &token).await;
        let since = seen.last().copied().unwrap_or(0);
        let frame = json!({"id": 1, "type": "watch", "since": since, "mode": mode});
        if ws.send(Message::text(frame.to_string())).await.is_err() {
            continue;
        }
        // Cut off after a random number of changes, until enough drops happened.
        let budget = if drops < MIN_DROPS + 5 {
            rand::rng().random_range(5..80)
        } else {
            u64::MAX
        };
        let mut got = 0;
        while let Some(v) = next_json(&mut ws).await {
            match v["type"].as_str() {
                Some("watching") => assert_eq!(v["since"], since),
                Some("change") => {
                    assert!(
                        v.get("resync").is_none(),
                        "resync was never needed here: {v}"
                    );
                    let version = v["version"].as_u64().unwrap();
                    assert_eq!(
                        version,
                        seen.last().copied().unwrap_or(0) + 1,
                        "gap or duplicate"
                    );
                    if mode == "full" {
                        // Rebuilt from the log for replayed versions: must match what was written.
                        assert_eq!(v["data"]["userdata"]["last"], version, "{v}");
                    }
                    seen.push(version);
                    if version == TARGET {
                        return (seen, drops);
                    }
                    got += 1;
                    if got >= budget {
                        break;
                    }
                }
                _ => panic!("unexpected frame {v}"),
            }
        }
        drops += 1;
        drop(ws);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watchers_resume_without_gaps_through_drops_and_restarts() {
    let server = TestServer::start_with(|c| {
        c.watch_buffer = 4096;
        c.shutdown_grace = 2000;
    })
    .await;
    let (_, _, token) = server.user().await;
    let (url_tx, url_rx) = watch::channel(server.url());
    let version = Arc::new(AtomicU64::new(0));

    let run = async {
        let writers: Vec<_> = (0..WRITERS)
            .map(|_| tokio::spawn(writer(url_rx.clone(), token.clone(), version.clone())))
            .collect();
        let watchers: Vec<_> = (0..WATCHERS)
            .map(|i| {
                let mode = if i % 2 == 0 { "full" } else { "ops" };
                tokio::spawn(watcher(url_rx.clone(), token.clone(), mode))
            })
            .collect();

        let mut server = server;
        for at in [TARGET / 3, 2 * TARGET / 3] {
            while version.load(Ordering::SeqCst) < at {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            server = server.restart().await;
            url_tx.send_replace(server.url());
        }
        for w in writers {
            w.await.unwrap();
        }
        for w in watchers {
            let (seen, drops) = w.await.unwrap();
            assert_eq!(seen, (1..=TARGET).collect::<Vec<_>>());
            assert!(drops >= MIN_DROPS, "only {drops} drops");
        }
        server
    };
    tokio::time::timeout(Duration::from_secs(120), run)
        .await
        .expect("chaos run finishes in time");
}

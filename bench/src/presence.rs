//! i) Presence at scale (issue 31): `n` watchers of one document, measured in four phases on
//! one server:
//! 1. changes alone: 50 updates 50 ms apart, each watcher timing each `change` (the c)
//!    shape, through ordinary client sockets rather than c)'s lean reader);
//! 2. the join burst: every watcher announces itself at once; timed until every watcher has
//!    heard every join (n² pushes);
//! 3. changes again, once the burst has settled: does the document's change p99 hold?
//! 4. presence updates: one more socket changes its state 30 times, 150 ms apart (under
//!    the rate limit), and every watcher times each `update` push, to compare with a change's.
//!
//! Every latency is the receiving task's wall clock against the send time carried in the
//! frame (`t`, Unix µs), so changes and presence pushes are measured the same way.

use std::time::{Duration, Instant};

use futures_util::future::join_all;
use serde_json::json;
use tokio::sync::{mpsc, watch};

use crate::client::Conn;
use crate::scenarios::{Metrics, metrics, url};
use crate::stats::Stats;
use crate::watchers::unix_us;

const UPDATES: u64 = 50;
const SETS: u64 = 30;

/// What a watcher task reports: (kind, latency µs) per frame it timed, and when it had
/// heard `n` joins.
enum Seen {
    Change(u64),
    Presence(u64),
    AllJoined(Instant),
}

pub async fn presence(addr: &str, n: usize) -> Metrics {
    let (mut writer, _, token) = Conn::signup(&url(addr)).await;
    // The watchers: one account (the owner's), many sockets, as a household app's tabs.
    let mut conns = Vec::with_capacity(n);
    for chunk in (0..n).collect::<Vec<_>>().chunks(100) {
        conns.extend(
            join_all(chunk.iter().map(|_| async {
                let mut c = Conn::connect(&url(addr)).await;
                c.auth(&token).await;
                let r = c.request(json!({"type": "watch"})).await;
                assert_eq!(r["type"], "data", "{r}");
                let r = c.request(json!({"type": "presence"})).await;
                assert_eq!(r["type"], "presence", "{r}");
                c
            }))
            .await,
        );
    }
    let (tx, mut rx) = mpsc::unbounded_channel();
    // Cancel-safe, unlike a barrier: each task's select drops the wait on every frame.
    let (join_now, joining) = watch::channel(false);
    let mut tasks = Vec::new();
    for (i, mut c) in conns.into_iter().enumerate() {
        let (tx, mut joining) = (tx.clone(), joining.clone());
        tasks.push(tokio::spawn(async move {
            let mut heard_all = false;
            let mut phase_join = false;
            loop {
                tokio::select! {
                    _ = joining.changed(), if !phase_join => {
                        phase_join = true;
                        c.send(json!({"type": "presence", "action": "join", "state": {"i": i}})).await;
                    }
                    frame = c.next_frame() => {
                        let now = unix_us();
                        match frame["type"].as_str() {
                            Some("change") => {
                                let t = frame["data"]["userdata"]["t"].as_u64().unwrap_or(0);
                                let _ = tx.send(Seen::Change(now.saturating_sub(t)));
                            }
                            // One account's n sockets are one person: the first join is a
                            // `join`, each later one an `update` of its connection count.
                            Some("presence") if frame["event"] != "leave" => {
                                if !heard_all && frame["connections"].as_u64() == Some(n as u64) {
                                    heard_all = true;
                                    let _ = tx.send(Seen::AllJoined(Instant::now()));
                                }
                                if let Some(t) = frame["state"]["t"].as_u64() {
                                    let _ = tx.send(Seen::Presence(now.saturating_sub(t)));
                                }
                            }
                            Some("error") => panic!("{frame}"),
                            _ => {}
                        }
                    }
                }
            }
        }));
    }
    drop(tx);
    let mut version = 0;
    // 1. Changes alone.
    let mut before = changes(&mut writer, &mut version, &mut rx).await;
    // 2. The join burst.
    let burst = Instant::now();
    let _ = join_now.send(true);
    let mut settled = 0;
    let mut last = burst;
    while settled < n {
        match tokio::time::timeout(Duration::from_secs(60), rx.recv()).await {
            Ok(Some(Seen::AllJoined(at))) => {
                settled += 1;
                last = last.max(at);
            }
            Ok(Some(_)) => {}
            _ => panic!("the join burst did not settle in 60 s ({settled} of {n})"),
        }
    }
    let burst_ms = last.duration_since(burst).as_secs_f64() * 1e3;
    tokio::time::sleep(Duration::from_millis(500)).await;
    while rx.try_recv().is_ok() {}
    // 3. Changes again.
    let mut after = changes(&mut writer, &mut version, &mut rx).await;
    // 4. Presence updates from one more socket of the same account.
    let mut setter = Conn::connect(&url(addr)).await;
    setter.auth(&token).await;
    setter.request(json!({"type": "watch"})).await;
    for _ in 0..SETS {
        let r = setter
            .request(json!({"type": "presence", "action": "join", "state": {"t": unix_us()}}))
            .await;
        assert_eq!(r["type"], "presence", "{r}");
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut pushed = Stats::default();
    while let Ok(seen) = rx.try_recv() {
        if let Seen::Presence(us) = seen {
            pushed.add(Duration::from_micros(us));
        }
    }
    for t in tasks {
        t.abort();
    }
    metrics(&[
        ("watchers", n as f64),
        ("change_p50_ms", before.ms(50.0)),
        ("change_p99_ms", before.ms(99.0)),
        ("join_burst_ms", burst_ms),
        ("change_after_burst_p50_ms", after.ms(50.0)),
        ("change_after_burst_p99_ms", after.ms(99.0)),
        ("presence_update_p50_ms", pushed.ms(50.0)),
        ("presence_update_p99_ms", pushed.ms(99.0)),
        ("presence_updates_timed", pushed.len() as f64),
    ])
}

/// [`UPDATES`] changes 50 ms apart from `version` on, and how long they took to reach the
/// watchers (whatever else the watchers reported meanwhile is dropped).
async fn changes(
    writer: &mut Conn,
    version: &mut u64,
    rx: &mut mpsc::UnboundedReceiver<Seen>,
) -> Stats {
    for _ in 0..UPDATES {
        writer.update(*version, json!({"t": unix_us()})).await;
        *version += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut stats = Stats::default();
    while let Ok(seen) = rx.try_recv() {
        if let Seen::Change(us) = seen {
            stats.add(Duration::from_micros(us));
        }
    }
    stats
}

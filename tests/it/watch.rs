//! watch / unwatch: snapshots, ordered changes, fields, cleanup, lagging watchers.

use std::time::Duration;

use serde_json::json;

use crate::common::{Client, TestServer, assert_error, eventually};

async fn set(
    c: &mut Client,
    target: &str,
    version: u64,
    userdata: serde_json::Value,
) -> serde_json::Value {
    c.request(json!({"type": "update", "target": target, "data": {"metadata": {"version": version}, "userdata": userdata}, "patch": true}))
        .await
}

#[tokio::test]
async fn watch_gives_a_snapshot_then_every_version_in_order() {
    let server = TestServer::start().await;
    let (mut owner, ann, _) = server.user().await;
    let (mut watcher, bob, _) = server.user().await;
    owner
        .request(json!({"type": "update", "data": {"metadata": {"version": 0, "readers": [bob]}, "userdata": {"n": 0}}}))
        .await;

    let snap = watcher
        .request(json!({"type": "watch", "target": ann}))
        .await;
    assert_eq!(snap["type"], "data");
    assert_eq!(snap["watching"], true);
    assert_eq!(snap["version"], 1);
    assert_eq!(snap["data"]["userdata"], json!({"n": 0}));

    for n in 1..=20u64 {
        assert_eq!(
            set(&mut owner, &ann, n, json!({"n": n})).await["version"],
            n + 1
        );
    }
    for n in 1..=20u64 {
        let change = watcher.next_push().await;
        assert_eq!(change["type"], "change", "{change}");
        assert_eq!(change["username"], ann.as_str());
        assert_eq!(change["version"], n + 1);
        assert_eq!(change["data"]["metadata"]["version"], n + 1);
        assert_eq!(change["data"]["userdata"]["n"], n);
        assert!(change.get("resync").is_none());
    }

    let bye = watcher
        .request(json!({"type": "unwatch", "target": ann}))
        .await;
    assert_eq!(bye["type"], "unwatch");
    assert_eq!(bye["username"], ann.as_str());
    set(&mut owner, &ann, 21, json!({"n": 99})).await;
    assert!(
        watcher.quiet_for(Duration::from_millis(150)).await,
        "no change after unwatch"
    );
}

#[tokio::test]
async fn watching_with_fields_gets_the_same_shape() {
    let server = TestServer::start().await;
    let (mut c, me, _) = server.user().await;
    let snap = c
        .request(json!({"type": "watch", "fields": ["a.b", "c"]}))
        .await;
    assert_eq!(snap["data"]["userdata"], json!({}));
    set(
        &mut c,
        &me,
        0,
        json!({"a": {"b": 1, "z": 0}, "c": 2, "d": 3}),
    )
    .await;
    let change = c.next_push().await;
    assert_eq!(change["data"]["userdata"], json!({"a": {"b": 1}, "c": 2}));
    assert_eq!(change["data"]["metadata"]["version"], 1);

    // A second watch of the same document replaces the first (new fields).
    let snap = c.request(json!({"type": "watch", "fields": ["d"]})).await;
    assert_eq!(snap["data"]["userdata"], json!({"d": 3}));
    set(&mut c, &me, 1, json!({"d": 4})).await;
    let change = c.next_push().await;
    assert_eq!(change["data"]["userdata"], json!({"d": 4}));
    assert!(
        c.quiet_for(Duration::from_millis(100)).await,
        "the replaced watch is gone"
    );
    assert_eq!(server.state().hub.watchers(), 1);
}

#[tokio::test]
async fn disconnected_watchers_leave_nothing_behind() {
    let server = TestServer::start().await;
    let (mut owner, ann, _) = server.user().await;
    let mut readers = Vec::new();
    let mut names = Vec::new();
    for _ in 0..5 {
        let (c, name, _) = server.user().await;
        readers.push(c);
        names.push(name);
    }
    owner
        .request(json!({"type": "update", "data": {"metadata": {"version": 0, "readers": names}}}))
        .await;
    for c in &mut readers {
        c.request(json!({"type": "watch", "target": ann})).await;
        c.request(json!({"type": "watch"})).await;
    }
    assert_eq!(server.state().hub.watchers(), 10);
    assert_eq!(server.state().hub.topics(), 6);
    for c in readers.drain(..3) {
        c.close().await;
    }
    eventually("hub drops closed watchers", || {
        server.state().hub.watchers() == 4
    })
    .await;
    // Dropped without a close handshake, too.
    drop(readers);
    eventually("hub back to zero", || server.state().hub.watchers() == 0).await;
    eventually("topics removed", || server.state().hub.topics() == 0).await;
    // Publishing to a document nobody watches is fine.
    assert_eq!(
        set(&mut owner, &ann, 1, json!({"x": 1})).await["version"],
        2
    );
}

#[tokio::test]
async fn too_many_watches_is_refused() {
    let server = TestServer::start_with(|c| c.max_watches = 2).await;
    let (mut a, ann, _) = server.user().await;
    let (mut b, bob, _) = server.user().await;
    let (mut c, cat, _) = server.user().await;
    let (mut w, dan, _) = server.user().await;
    for (client, version) in [(&mut a, 0), (&mut b, 0), (&mut c, 0)] {
        client
            .request(json!({"type": "update", "data": {"metadata": {"version": version, "readers": [dan]}}}))
            .await;
    }
    assert_eq!(
        w.request(json!({"type": "watch", "target": ann})).await["type"],
        "data"
    );
    assert_eq!(
        w.request(json!({"type": "watch", "target": bob})).await["type"],
        "data"
    );
    assert_error(
        &w.request(json!({"type": "watch", "target": cat})).await,
        "too_many_watches",
    );
    // Re-watching one already watched is fine, and unwatching makes room.
    assert_eq!(
        w.request(json!({"type": "watch", "target": bob})).await["type"],
        "data"
    );
    w.request(json!({"type": "unwatch", "target": ann})).await;
    assert_eq!(
        w.request(json!({"type": "watch", "target": cat})).await["type"],
        "data"
    );
}

/// A watcher that stops reading falls behind; when it reads again it gets a `resync`
/// snapshot instead of the versions it missed, and versions never go backwards.
#[tokio::test]
async fn a_lagging_watcher_is_resynced_not_skipped_silently() {
    lagging_watcher_is_resynced(|c| c.watch_buffer = 2).await;
}

/// The same with versions to spare (`WATCH_BUFFER` 1024) but few bytes (`WATCH_BUFFER_BYTES`
/// 64 KiB): what a stalled watcher holds is bounded by bytes too, so it is resynced.
#[tokio::test]
async fn a_lagging_watcher_is_resynced_past_the_byte_bound() {
    lagging_watcher_is_resynced(|c| {
        c.watch_buffer = 1024;
        c.watch_buffer_bytes = 64 * 1024;
    })
    .await;
}

/// 300 versions of ≈ 16 KiB to a watcher that reads only after the last: it must get at
/// least one `resync`, and every version it gets in between is contiguous.
async fn lagging_watcher_is_resynced(bound: impl FnOnce(&mut hearth::Config)) {
    let server = TestServer::start_with(|c| {
        c.outbound_buffer = 16 * 1024;
        c.slow_consumer_timeout = 60_000;
        bound(c);
    })
    .await;
    let (mut owner, ann, token) = server.user().await;
    let mut watcher = server.client().await;
    watcher
        .request(json!({"type": "auth", "token": token}))
        .await;
    watcher.request(json!({"type": "watch"})).await;
    // ~16 KiB per change: a few hundred fill every buffer between server and test.
    let pad = "x".repeat(16 * 1024);
    let total = 300u64;
    for v in 0..total {
        let r = set(&mut owner, &ann, v, json!({"pad": pad, "v": v})).await;
        assert_eq!(r["version"], v + 1);
    }
    let mut last = 0;
    let mut resyncs = 0;
    while last < total {
        let change = watcher.next_push().await;
        assert_eq!(change["type"], "change");
        let v = change["version"].as_u64().unwrap();
        if change["resync"] == true {
            resyncs += 1;
            assert!(v > last, "resync moves forward");
        } else {
            assert_eq!(v, last + 1, "without resync, versions are contiguous");
        }
        assert_eq!(change["data"]["userdata"]["v"], v - 1);
        last = v;
    }
    assert!(
        resyncs > 0,
        "the watcher fell behind, so it must have been resynced"
    );
}

/// Watches started while a writer is committing: the first change after each snapshot is
/// exactly the next version, never a duplicate and never a gap.
#[tokio::test]
async fn watch_start_is_atomic_with_concurrent_commits() {
    let server = TestServer::start().await;
    let (mut owner, ann, token) = server.user().await;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let stop = stop.clone();
        let ann = ann.clone();
        tokio::spawn(async move {
            let mut v = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let r = set(&mut owner, &ann, v, json!({"v": v})).await;
                v = r["version"].as_u64().expect("committed");
            }
            v
        })
    };
    let mut watcher = server.client().await;
    watcher
        .request(json!({"type": "auth", "token": token}))
        .await;
    for _ in 0..30 {
        let snap = watcher.request(json!({"type": "watch"})).await;
        let base = snap["version"].as_u64().unwrap();
        let mut next = base + 1;
        for _ in 0..3 {
            let change = watcher.next_push().await;
            if change["version"].as_u64().unwrap() < next {
                continue; // from the watch this one replaced, already queued
            }
            assert_eq!(change["version"], next, "after snapshot {base}: {change}");
            assert!(change.get("resync").is_none());
            next += 1;
        }
        watcher.request(json!({"type": "unwatch"})).await;
        // Drain whatever the ended watch had queued.
        while !watcher.quiet_for(Duration::from_millis(5)).await {
            watcher.next_push().await;
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    assert!(writer.await.unwrap() > 30);
}

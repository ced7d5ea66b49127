//! update: replace, merge patch, JSON Patch, version checks, limits, races.

use serde_json::{Value, json};

use crate::common::{Client, TestServer, assert_error};

async fn update(c: &mut Client, version: u64, userdata: Value, patch: Value) -> Value {
    c.request(json!({
        "type": "update",
        "data": {"metadata": {"version": version}, "userdata": userdata},
        "patch": patch,
    }))
    .await
}

async fn userdata(c: &mut Client) -> Value {
    c.request(json!({"type": "fetch"})).await["data"]["userdata"].clone()
}

#[tokio::test]
async fn replace_merge_and_json_patch() {
    let server = TestServer::start().await;
    let (mut c, name, _) = server.user().await;

    let v1 = update(
        &mut c,
        0,
        json!({"a": {"b": 1, "c": 2}, "d": [1, 2]}),
        json!(false),
    )
    .await;
    assert_eq!(
        v1,
        json!({"id": v1["id"], "type": "version", "username": name, "version": 1})
    );

    let v2 = update(
        &mut c,
        1,
        json!({"a": {"c": null, "e": {"f": 3}}, "g": "h"}),
        json!(true),
    )
    .await;
    assert_eq!(v2["version"], 2);
    assert_eq!(
        userdata(&mut c).await,
        json!({"a": {"b": 1, "e": {"f": 3}}, "d": [1, 2], "g": "h"})
    );

    let v3 = update(&mut c, 2, json!({"d": null}), json!("merge")).await;
    assert_eq!(v3["version"], 3);
    assert_eq!(
        userdata(&mut c).await,
        json!({"a": {"b": 1, "e": {"f": 3}}, "g": "h"})
    );

    let ops = json!([
        {"op": "add", "path": "/list", "value": [1]},
        {"op": "add", "path": "/list/-", "value": 2},
        {"op": "replace", "path": "/a/b", "value": 10},
        {"op": "remove", "path": "/g"},
    ]);
    let v4 = update(&mut c, 3, ops, json!("json-patch")).await;
    assert_eq!(v4["version"], 4, "{v4}");
    assert_eq!(
        userdata(&mut c).await,
        json!({"a": {"b": 10, "e": {"f": 3}}, "list": [1, 2]})
    );

    // A failing `test` op applies nothing, not even the ops before it.
    let failing = json!([
        {"op": "replace", "path": "/a/b", "value": 99},
        {"op": "test", "path": "/a/b", "value": 12345},
    ]);
    assert_error(
        &update(&mut c, 4, failing, json!("json-patch")).await,
        "bad_request",
    );
    let v5 = update(&mut c, 4, json!({}), json!(false)).await;
    assert_eq!(v5["version"], 5, "the failed patch did not take a version");

    let fetched = c.request(json!({"type": "fetch"})).await;
    assert_eq!(
        fetched["data"]["metadata"]["lastUpdate"]["by"],
        name.as_str()
    );
    assert_eq!(fetched["data"]["metadata"]["version"], 5);
}

#[tokio::test]
async fn stale_versions_get_version_mismatch_with_the_current_version() {
    let server = TestServer::start().await;
    let (mut c, _, _) = server.user().await;
    update(&mut c, 0, json!({"x": 1}), json!(false)).await;
    let stale = update(&mut c, 0, json!({"x": 2}), json!(false)).await;
    assert_error(&stale, "version_mismatch");
    assert_eq!(stale["message"], "version mismatch");
    assert_eq!(stale["version"], 1);
    let ahead = update(&mut c, 7, json!({"x": 2}), json!(false)).await;
    assert_error(&ahead, "version_mismatch");
    assert_eq!(userdata(&mut c).await, json!({"x": 1}));
}

#[tokio::test]
async fn invalid_updates_are_bad_requests_and_change_nothing() {
    let server = TestServer::start_with(|c| c.max_depth = 8).await;
    let (mut c, _, _) = server.user().await;
    let cases = [
        json!({"type": "update", "data": {"metadata": {"version": 0}}}),
        json!({"type": "update", "data": {"metadata": {}, "userdata": {}}}),
        json!({"type": "update", "data": {"metadata": {"version": -1}, "userdata": {}}}),
        json!({"type": "update", "data": {"metadata": {"version": "0"}, "userdata": {}}}),
        json!({"type": "update", "data": {"metadata": {"version": 0}, "userdata": [1]}}),
        json!({"type": "update", "data": {"metadata": {"version": 0}, "userdata": 5}, "patch": true}),
        json!({"type": "update", "data": {"metadata": {"version": 0}, "userdata": {}}, "patch": "xml"}),
        json!({"type": "update", "data": {"metadata": {"version": 0}, "userdata": {"op": "add"}}, "patch": "json-patch"}),
        json!({"type": "update", "data": {"metadata": {"version": 0}, "userdata": [{"op": "replace", "path": "", "value": 1}]}, "patch": "json-patch"}),
        json!({"type": "update", "data": {"metadata": {"version": 0}, "userdata": {"a":{"b":{"c":{"d":{"e":{"f":{"g":{"h":{"i":{}}}}}}}}}}}}),
        json!({"type": "update", "data": {"metadata": {"version": 0, "collaborators": ["Not Valid"]}}}),
        json!({"type": "update", "data": {"metadata": {"version": 0, "readers": "bob"}}}),
    ];
    for frame in cases {
        let reply = c.request(frame.clone()).await;
        assert_error(&reply, "bad_request");
    }
    let data = c.request(json!({"type": "fetch"})).await;
    assert_eq!(data["version"], 0);
    assert_eq!(data["data"]["userdata"], json!({}));
}

#[tokio::test]
async fn oversize_update_leaves_fetch_disk_and_version_unchanged() {
    let server = TestServer::start_with(|c| c.max_data_size_json = 2048).await;
    let (mut c, _, token) = server.user().await;
    update(&mut c, 0, json!({"keep": "me"}), json!(false)).await;
    let big = update(&mut c, 1, json!({"blob": "x".repeat(4000)}), json!(true)).await;
    assert_error(&big, "too_large");
    let data = c.request(json!({"type": "fetch"})).await;
    assert_eq!(data["version"], 1);
    assert_eq!(data["data"]["userdata"], json!({"keep": "me"}));

    let server = server.restart().await;
    let mut c = server.client().await;
    c.request(json!({"type": "auth", "token": token})).await;
    let data = c.request(json!({"type": "fetch"})).await;
    assert_eq!(data["version"], 1, "disk holds version 1");
    assert_eq!(data["data"]["userdata"], json!({"keep": "me"}));
    // And the next version is 2: nothing was half-written.
    assert_eq!(
        update(&mut c, 1, json!({"n": 1}), json!(true)).await["version"],
        2
    );
}

#[tokio::test]
async fn fifty_racing_updates_from_one_version_have_one_winner() {
    let server = TestServer::start().await;
    let (mut owner, name, token) = server.user().await;
    update(&mut owner, 0, json!({"n": 0}), json!(false)).await;

    let mut tasks = Vec::new();
    for i in 0..50 {
        let url = server.url();
        let token = token.clone();
        tasks.push(tokio::spawn(async move {
            let mut c = Client::connect(&url).await;
            c.request(json!({"type": "auth", "token": token})).await;
            let reply = update(&mut c, 1, json!({"n": i}), json!(true)).await;
            (i, reply)
        }));
    }
    let mut winners = Vec::new();
    for t in tasks {
        let (i, reply) = t.await.unwrap();
        match reply["type"].as_str() {
            Some("version") => {
                assert_eq!(reply["version"], 2);
                winners.push(i);
            }
            _ => {
                assert_error(&reply, "version_mismatch");
                assert_eq!(reply["version"], 2);
            }
        }
    }
    assert_eq!(winners.len(), 1, "exactly one winner");
    let data = owner.request(json!({"type": "fetch"})).await;
    assert_eq!(data["version"], 2);
    assert_eq!(data["data"]["userdata"]["n"], winners[0]);
    assert_eq!(data["username"], name.as_str());
}

#[tokio::test]
async fn fields_select_paths_in_the_same_shape() {
    let server = TestServer::start().await;
    let (mut c, _, _) = server.user().await;
    update(
        &mut c,
        0,
        json!({"a": {"b": 1, "x": 2}, "c": "foo", "d": {"e": {"f": true}}}),
        json!(false),
    )
    .await;
    let data = c
        .request(json!({"type": "fetch", "fields": ["a.b", "c", "d.e.f", "nope.nope"]}))
        .await;
    assert_eq!(
        data["data"]["userdata"],
        json!({"a": {"b": 1}, "c": "foo", "d": {"e": {"f": true}}})
    );
    assert_eq!(data["data"]["metadata"]["version"], 1);
    let empty = c.request(json!({"type": "fetch", "fields": []})).await;
    assert_eq!(empty["data"]["userdata"], json!({}));
    assert_error(
        &c.request(json!({"type": "fetch", "fields": ["a..b"]}))
            .await,
        "bad_request",
    );
}

/// A client may send updates without waiting for each reply (the socket queues them to the
/// store while earlier ones commit). Results and replies must be exactly those of running the
/// frames one at a time: in order, a stale version refused in its place, a malformed frame
/// answered in its place, and a read after the burst seeing all of it. 40 frames is more
/// than a socket queues at once, so the burst also waits for room part way.
#[tokio::test]
async fn a_burst_of_updates_is_answered_in_order_as_if_sent_one_at_a_time() {
    let server = TestServer::start().await;
    let (mut c, _, _) = server.user().await;
    let batches = || server.state().metrics.batch_size.get_sample_count();
    let batches_before = batches();
    let mut expected = Vec::new();
    let mut version = 0u64;
    for k in 1..=40u64 {
        // Frame 20 names a version that is long gone.
        let base = if k == 20 { 5 } else { version };
        c.send(json!({
            "id": k,
            "type": "update",
            "data": {"metadata": {"version": base}, "userdata": {"i": k}},
            "patch": true,
        }))
        .await;
        if k == 20 {
            expected.push((k, None));
        } else {
            version += 1;
            expected.push((k, Some(version)));
        }
        if k == 25 {
            c.send(json!({"id": 100, "type": "update", "data": {}}))
                .await;
            expected.push((100, None));
        }
    }
    c.send(json!({"id": 200, "type": "fetch"})).await;

    for (id, version) in expected {
        let reply = c.recv().await;
        assert_eq!(reply["id"], id, "replies come in the order sent: {reply}");
        match (id, version) {
            (_, Some(v)) => {
                assert_eq!(reply["type"], "version", "{reply}");
                assert_eq!(reply["version"], v);
            }
            (20, None) => {
                assert_error(&reply, "version_mismatch");
                assert_eq!(
                    reply["version"], 19,
                    "the version when frame 20 was applied"
                );
            }
            _ => assert_error(&reply, "bad_request"),
        }
    }
    let fetched = c.recv().await;
    assert_eq!(fetched["id"], 200);
    assert_eq!(fetched["version"], 39);
    assert_eq!(fetched["data"]["userdata"]["i"], 40);
    // Queued together, they shared commits: one at a time would take 39 or more.
    let used = batches() - batches_before;
    assert!(used < 39, "{used} commits for 39 updates sent at once");
}

/// With the writer idle, a session commits its update on its own thread (on a multi-threaded
/// runtime, as the server runs; the tests' default runtime never does). Nothing else may
/// differ: the update is answered, told to a watcher (by the writer thread, woken for it),
/// ordered before a burst that follows, and still there after a restart. (PostgreSQL's
/// committer has no such path: there the rest still holds.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_to_an_idle_writer_is_committed_by_its_session_alike() {
    let server = TestServer::start().await;
    let (mut owner, _, token) = server.user().await;
    let mut watcher = server.client().await;
    watcher
        .request(json!({"type": "auth", "token": token}))
        .await;
    let snap = watcher.request(json!({"type": "watch"})).await;
    assert_eq!(snap["version"], 0, "{snap}");
    let here = || server.state().metrics.commits_here.get();
    // Idle: nothing committed for longer than the writer's quiet spell.
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    let before = here();
    let reply = owner
        .request(json!({"type": "update", "patch": true, "data": {"metadata": {"version": 0}, "userdata": {"n": 0}}}))
        .await;
    assert_eq!(reply["version"], 1, "{reply}");
    let embedded = server.config.store != hearth::config::StoreKind::Postgres;
    assert_eq!(
        here(),
        before + u64::from(embedded),
        "committed on the session's thread"
    );
    let change = watcher.next_push().await;
    assert_eq!(
        (change["type"].clone(), change["version"].clone()),
        (json!("change"), json!(1))
    );

    for n in 1..=10u64 {
        owner
            .send(json!({"id": n, "type": "update", "patch": true, "data": {"metadata": {"version": n}, "userdata": {"n": n}}}))
            .await;
    }
    for n in 1..=10u64 {
        let reply = owner.recv().await;
        assert_eq!(reply["id"], n, "in the order sent: {reply}");
        assert_eq!(reply["version"], n + 1, "{reply}");
    }
    for n in 1..=10u64 {
        let change = watcher.next_push().await;
        assert_eq!(change["version"], n + 1, "{change}");
        assert_eq!(change["data"]["userdata"]["n"], n);
    }

    let server = server.restart().await;
    let mut c = server.client().await;
    c.request(json!({"type": "auth", "token": token})).await;
    let data = c.request(json!({"type": "fetch"})).await;
    assert_eq!(data["version"], 11, "{data}");
    assert_eq!(data["data"]["userdata"], json!({"n": 10}));
}

//! Cluster mode: several nodes on one PostgreSQL schema (`TEST_DATABASE_URL`; skipped loudly
//! without it). Watchers on any node see every node's commits in order, exactly once;
//! racing updates across nodes have one winner; logout, disable and access changes act on
//! every node; a node killed with `kill -9` loses nothing acknowledged.

use std::time::Duration;

use serde_json::{Value, json};

use crate::common::{
    Client, TestServer, assert_error, database_url, fresh_schema, http, http_get, spawn_hearth,
};

async fn authed(node: &TestServer, token: &str) -> Client {
    let mut c = node.client().await;
    let r = c.request(json!({"type": "auth", "token": token})).await;
    assert_eq!(r["type"], "auth", "{r}");
    c
}

/// Collects the versions of `n` change pushes, checking each one's content.
async fn versions(watcher: &mut Client, n: usize) -> Vec<u64> {
    let mut seen = Vec::new();
    while seen.len() < n {
        let push = watcher.next_push().await;
        assert_eq!(push["type"], "change", "{push}");
        let v = push["version"].as_u64().unwrap();
        assert_eq!(
            push["data"]["userdata"]["n"], v,
            "content matches version {v}"
        );
        seen.push(v);
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watchers_on_every_node_see_every_nodes_commits_in_order() {
    let Some(nodes) = TestServer::cluster(3, |_| {}).await else {
        return;
    };
    let (_ann, token) = nodes[0].named_user("ann").await;
    let mut watchers = Vec::new();
    for node in &nodes {
        let mut w = authed(node, &token).await;
        let r = w.request(json!({"type": "watch"})).await;
        assert_eq!(r["watching"], true, "{r}");
        watchers.push(w);
    }
    // Writers on all three nodes take turns: each update goes through another node.
    let mut writers = Vec::new();
    for node in &nodes {
        writers.push(authed(node, &token).await);
    }
    for v in 0..30u64 {
        let i = usize::try_from(v).unwrap() % 3;
        let r = writers[i]
            .request(json!({"type": "update", "data": {"metadata": {"version": v}, "userdata": {"n": v + 1}}}))
            .await;
        assert_eq!(r["version"], v + 1, "{r}");
        // A read on another node right after the ack already sees it.
        let read = writers[(i + 1) % 3].request(json!({"type": "fetch"})).await;
        assert_eq!(
            read["version"],
            v + 1,
            "read-after-ack across nodes: {read}"
        );
    }
    for w in &mut watchers {
        assert_eq!(versions(w, 30).await, (1..=30).collect::<Vec<_>>());
        assert!(
            w.quiet_for(Duration::from_millis(200)).await,
            "no duplicates"
        );
    }
    // REST reads on any node see the newest version.
    for node in &nodes {
        let (_, doc) = http_get(&format!("http://{}/v1/users/ann", node.addr), &token).await;
        assert_eq!(doc["metadata"]["version"], 30, "{doc}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_updates_from_one_version_across_nodes_have_exactly_one_winner() {
    let Some(nodes) = TestServer::cluster(3, |_| {}).await else {
        return;
    };
    let (_ann, token) = nodes[0].named_user("ann").await;
    let mut clients = Vec::new();
    for i in 0..50 {
        clients.push(authed(&nodes[i % 3], &token).await);
    }
    let tasks: Vec<_> = clients
        .into_iter()
        .enumerate()
        .map(|(i, mut c)| {
            tokio::spawn(async move {
                c.request(json!({"type": "update", "data": {"metadata": {"version": 0}, "userdata": {"winner": i}}}))
                    .await
            })
        })
        .collect();
    let mut wins = 0;
    for t in tasks {
        let r = t.await.unwrap();
        if r["type"] == "version" {
            assert_eq!(r["version"], 1);
            wins += 1;
        } else {
            assert_error(&r, "version_mismatch");
            assert_eq!(r["version"], 1, "the loser learns the current version");
        }
    }
    assert_eq!(wins, 1);
    let mut c = authed(&nodes[2], &token).await;
    let doc = c.request(json!({"type": "fetch"})).await;
    assert_eq!(doc["version"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_disable_and_unsharing_act_on_every_node() {
    let Some(nodes) = TestServer::cluster(2, |c| c.admin_users = Some("boss".into())).await else {
        return;
    };
    let (a, b) = (&nodes[0], &nodes[1]);
    let (_boss, boss) = a.named_user("boss").await;
    let (mut ann_a, ann) = a.named_user("ann").await;
    let (_bob, bob) = a.named_user("bob").await;

    // Logout on node A: the same token's socket on node B is told, and B refuses it.
    let mut ann_b = authed(b, &ann).await;
    ann_b.request(json!({"type": "watch"})).await;
    let r = ann_a.request(json!({"type": "logout"})).await;
    assert_eq!(r["type"], "logout");
    let told = ann_b.next_push().await;
    assert_error(&told, "invalid_token");
    let me = |node: &TestServer| format!("http://{}/v1/me", node.addr);
    assert_eq!(http_get(&me(b), &ann).await.0, 401);

    // Unsharing on A ends bob's watch on B.
    let (_, login) = http(
        reqwest::Method::POST,
        &format!("http://{}/v1/login", a.addr),
        None,
        Some(json!({"username": "ann", "password": "correct horse"})),
    )
    .await;
    let ann = login["token"].as_str().unwrap().to_owned();
    let mut owner = authed(a, &ann).await;
    let r = owner
        .request(json!({"type": "update", "data": {"metadata": {"version": 0, "readers": ["bob"]}, "userdata": {"n": 1}}}))
        .await;
    assert_eq!(r["version"], 1, "{r}");
    let mut bob_b = authed(b, &bob).await;
    let r = bob_b
        .request(json!({"type": "watch", "target": "ann"}))
        .await;
    assert_eq!(r["watching"], true, "{r}");
    let r = owner
        .request(json!({"type": "update", "data": {"metadata": {"version": 1, "readers": []}, "userdata": {"n": 2}}}))
        .await;
    assert_eq!(r["version"], 2, "{r}");
    let ended = bob_b.next_push().await;
    assert_error(&ended, "unauthorized");
    assert_eq!(ended["detail"], "access revoked");

    // An admin disables bob on A: his socket on B closes (4003), B refuses his token.
    let disable = format!("http://{}/v1/admin/users/bob/disable", a.addr);
    let (status, _) = http(reqwest::Method::POST, &disable, Some(&boss), None).await;
    assert_eq!(status, 204);
    assert_eq!(bob_b.closed_with().await, 4003);
    assert_eq!(http_get(&me(b), &bob).await.0, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_killed_under_load_loses_nothing_acknowledged() {
    let Some((mut doomed, doomed_addr, survivor, _dir)) =
        doomed_and_survivor(&[("DATABASE_POOL", "4")]).await
    else {
        return;
    };
    let doomed_url = format!("ws://{doomed_addr}/ws");

    // Three writers on the doomed node; for each, a watcher there and one on the survivor.
    let mut writers = Vec::new();
    let mut clients = Vec::new();
    for _ in 0..3 {
        let mut c = Client::connect(&doomed_url).await;
        let r = c.request(json!({"type": "signup"})).await;
        let name = r["username"].as_str().unwrap().to_owned();
        let token = r["token"].as_str().unwrap().to_owned();
        let mut far = Client::connect(&doomed_url).await;
        far.request(json!({"type": "auth", "token": token})).await;
        far.request(json!({"type": "watch"})).await;
        let mut near = authed(&survivor, &token).await;
        near.request(json!({"type": "watch"})).await;
        writers.push((name, token, far, near));
        clients.push(c);
    }
    let acked = std::sync::Arc::new(std::sync::Mutex::new(vec![0u64; 3]));
    let mut tasks = Vec::new();
    for (i, mut c) in clients.into_iter().enumerate() {
        let acked = acked.clone();
        tasks.push(tokio::spawn(async move {
            let mut v = 0u64;
            loop {
                c.send(json!({"id": v, "type": "update", "data": {"metadata": {"version": v}, "userdata": {"n": v + 1}}}))
                    .await;
                match tokio::time::timeout(Duration::from_secs(2), c.recv_or_close()).await {
                    Ok(Some(r)) if r["type"] == "version" => {
                        v = r["version"].as_u64().unwrap();
                        acked.lock().unwrap()[i] = v;
                    }
                    _ => return, // the node died
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(700)).await;
    doomed.start_kill().unwrap();
    let _ = doomed.wait().await;
    for t in tasks {
        t.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.iter().all(|&v| v > 3),
        "the writers got going: {acked:?}"
    );

    for (i, (name, token, mut far, mut near)) in writers.into_iter().enumerate() {
        // Every acknowledged update is there, on the surviving node.
        let mut c = authed(&survivor, &token).await;
        let doc = c.request(json!({"type": "fetch"})).await;
        let mut version = doc["version"].as_u64().unwrap();
        assert!(
            version >= acked[i],
            "{name}: acked {} but found {version}",
            acked[i]
        );
        // The writer carries on there.
        for _ in 0..5 {
            let r = c
                .request(json!({"type": "update", "data": {"metadata": {"version": version}, "userdata": {"n": version + 1}}}))
                .await;
            version = r["version"].as_u64().expect("committed");
        }
        // The survivor's watcher saw every version once, in order.
        let seen = versions(&mut near, usize::try_from(version).unwrap()).await;
        assert_eq!(seen, (1..=version).collect::<Vec<_>>(), "{name}");
        // The dead node's watcher resumes on the survivor with `since`: no gap, no dup.
        let mut got = Vec::new();
        while let Some(push) = far.next_push_or_close().await {
            got.push(push["version"].as_u64().unwrap());
        }
        let last = got.last().copied().unwrap_or(0);
        let mut resumed = authed(&survivor, &token).await;
        let r = resumed
            .request(json!({"type": "watch", "since": last}))
            .await;
        assert_eq!(r["type"], "watching", "{r}");
        got.extend(versions(&mut resumed, usize::try_from(version - last).unwrap()).await);
        assert_eq!(
            got,
            (1..=version).collect::<Vec<_>>(),
            "{name}: resumed without gap"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_listen_connection_reconnects_and_catches_up() {
    let Some(nodes) = TestServer::cluster(2, |_| {}).await else {
        return;
    };
    let (a, b) = (&nodes[0], &nodes[1]);
    let (_ann, token) = a.named_user("ann").await;
    let mut watcher = authed(a, &token).await;
    watcher.request(json!({"type": "watch"})).await;
    let mut writer = authed(b, &token).await;
    let mut version = 0u64;
    bump(&mut writer, version).await;
    version += 1;
    assert_eq!(versions(&mut watcher, 1).await, vec![1]);

    // Cut node A's LISTEN connection (every node of this cluster listens on its channel; the
    // two nodes' connections are told apart by what they last ran, so cut both).
    let url = database_url().expect("cluster tests have a database");
    let (admin, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(conn);
    let channel = format!("LISTEN \"hearth_{}\"", a.config.database_schema);
    let cut = admin
        .execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query = $1",
            &[&channel],
        )
        .await
        .expect("terminate");
    assert!(cut >= 1, "found the listening connections");
    // Commits while node A is not listening: it must catch up when it is back.
    for _ in 0..5 {
        bump(&mut writer, version).await;
        version += 1;
    }
    assert_eq!(versions(&mut watcher, 5).await, (2..=6).collect::<Vec<_>>());
    // And it is listening again.
    bump(&mut writer, version).await;
    assert_eq!(versions(&mut watcher, 1).await, vec![7]);
    assert!(
        watcher.quiet_for(Duration::from_millis(200)).await,
        "no duplicates"
    );
}

/// Updates the document from `v` to `v + 1` and checks it committed.
async fn bump(writer: &mut Client, v: u64) {
    let r = writer
        .request(json!({"type": "update", "data": {"metadata": {"version": v}, "userdata": {"n": v + 1}}}))
        .await;
    assert_eq!(r["version"], v + 1, "{r}");
}

/// Named documents across nodes: sharing is pushed to the sharee's socket on another node,
/// a write on one node reaches a watcher on the other, and a deletion on one node ends the
/// watch on the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn named_documents_share_and_delete_across_nodes() {
    let Some(nodes) = TestServer::cluster(2, |_| {}).await else {
        return;
    };
    let (mut ann, _) = nodes[0].named_user("ann").await;
    let (_, bob_token) = nodes[1].named_user("bob").await;
    let mut bob = authed(&nodes[1], &bob_token).await;
    bob.request(json!({"type": "list"})).await;
    let created = ann
        .request(json!({"type": "create", "name": "groceries", "collaborators": ["bob"]}))
        .await;
    assert_eq!(created["version"], 0, "{created}");
    assert_eq!(
        bob.next_push().await,
        json!({"type": "shared", "owner": "ann", "name": "groceries", "role": "write"})
    );
    let list = bob.request(json!({"type": "list"})).await;
    assert_eq!(list["shared"][0]["name"], "groceries", "{list}");

    let w = bob
        .request(json!({"type": "watch", "target": "ann/groceries"}))
        .await;
    assert_eq!(w["watching"], true, "{w}");
    let r = ann
        .request(
            json!({"type": "update", "target": "ann/groceries", "patch": true,
            "data": {"metadata": {"version": 0}, "userdata": {"n": 1}}}),
        )
        .await;
    assert_eq!(r["version"], 1, "{r}");
    let change = bob.next_push().await;
    assert_eq!(
        (change["name"].as_str(), change["version"].as_u64()),
        (Some("groceries"), Some(1))
    );

    let d = ann
        .request(json!({"type": "delete", "name": "groceries"}))
        .await;
    assert_eq!(d["type"], "deleted", "{d}");
    let two = [bob.next_push().await, bob.next_push().await];
    assert!(
        two.iter()
            .any(|p| p["type"] == "error" && p["detail"] == "deleted"),
        "{two:?}"
    );
    assert!(two.iter().any(|p| p["type"] == "unshared"), "{two:?}");
    assert_error(
        &bob.request(json!({"type": "fetch", "target": "ann/groceries"}))
            .await,
        "unauthorized",
    );
}

/// An operation committed through one node and retried through another (its client moved
/// there after losing the answer) is answered with its first version and applied once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_through_another_node_is_applied_once() {
    let Some(nodes) = TestServer::cluster(2, |_| {}).await else {
        return;
    };
    let (_ann, token) = nodes[0].named_user("ann").await;
    let update = json!({"type": "update", "opId": "moved-1", "patch": "merge",
        "data": {"metadata": {"version": 0}, "userdata": {"n": 1}}});
    let mut first = authed(&nodes[0], &token).await;
    assert_eq!(first.request(update.clone()).await["version"], 1);
    let mut second = authed(&nodes[1], &token).await;
    let r = second.request(update).await;
    assert_eq!(
        (r["type"].as_str(), r["version"].as_u64()),
        (Some("version"), Some(1)),
        "{r}"
    );
    let url = format!("http://{}/v1/users/ann/changes?from=1", nodes[1].addr);
    let (status, body) = http_get(&url, &token).await;
    assert_eq!(status, 200, "{body}");
    let ops: Vec<&Value> = body["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["opId"])
        .collect();
    assert_eq!(ops, vec![&json!("moved-1")], "{body}");
}

/// Presence is the same on every node: a join on one node is pushed to watchers on the
/// other, and a node killed with `kill -9` loses its presences on the survivor within the
/// documented time (`presence/remote.rs`: 6 s of silence, swept every second).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_crosses_nodes_and_a_killed_nodes_presence_goes() {
    let Some((mut doomed, doomed_addr, survivor, _dir)) = doomed_and_survivor(&[]).await else {
        return;
    };
    let (_ann, token) = survivor.named_user("ann").await;
    let mut here = authed(&survivor, &token).await;
    watch_and(&mut here, "list").await;
    // Present through the other node: the survivor's watcher is told.
    let mut there = Client::connect(&format!("ws://{doomed_addr}/ws")).await;
    assert_eq!(
        there.request(json!({"type": "auth", "token": token})).await["type"],
        "auth"
    );
    watch_and(&mut there, "join").await;
    let push = loop {
        let p = here.next_push().await;
        if p["type"] == "presence" {
            break p;
        }
    };
    assert_eq!(
        (push["event"].as_str(), push["user"].as_str()),
        (Some("join"), Some("ann")),
        "{push}"
    );
    assert_eq!(push["state"], json!({"where": "here"}));
    let url_here = format!("http://{}/v1/users/ann/presence", survivor.addr);
    assert_eq!(
        http_get(&url_here, &token).await.1["present"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // The other node dies without a word.
    let killed = std::time::Instant::now();
    doomed.start_kill().unwrap();
    doomed.wait().await.unwrap();
    let push = tokio::time::timeout(Duration::from_secs(12), async {
        loop {
            let p = here.next_push().await;
            if p["type"] == "presence" {
                break p;
            }
        }
    })
    .await
    .expect("the dead node's presence goes");
    assert_eq!(push["event"], "leave", "{push}");
    let took = killed.elapsed();
    assert!(
        took <= Duration::from_secs(8),
        "gone within NODE_TIMEOUT + a sweep: {took:?}"
    );
    assert_eq!(http_get(&url_here, &token).await.1["present"], json!([]));
}

/// Watches the caller's document on `c`, then sends `presence` with `action`.
async fn watch_and(c: &mut Client, action: &str) {
    let frames = [
        json!({"type": "watch"}),
        json!({"type": "presence", "action": action, "state": {"where": "here"}}),
    ];
    for f in frames {
        let r = c.request(f).await;
        assert_ne!(r["type"], "error", "{r}");
    }
}

/// A node that stops cleanly says goodbye: its presences leave every other node at once,
/// not after the silence timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_stops_takes_its_presence_with_it() {
    let Some(mut nodes) = TestServer::cluster(2, |_| {}).await else {
        return;
    };
    let (_ann, token) = nodes[0].named_user("ann").await;
    let mut here = authed(&nodes[0], &token).await;
    watch_and(&mut here, "list").await;
    let mut there = authed(&nodes[1], &token).await;
    watch_and(&mut there, "join").await;
    assert_eq!(next_presence(&mut here).await["event"], "join");
    let stopped = std::time::Instant::now();
    let mut leaving = nodes.pop().unwrap();
    leaving.shutdown().await;
    let p = tokio::time::timeout(Duration::from_secs(3), next_presence(&mut here))
        .await
        .expect("gone well before the silence timeout");
    assert_eq!(p["event"], "leave", "{p}");
    assert!(stopped.elapsed() < Duration::from_secs(3));
}

/// The next `presence` push on `c`, other pushes passed over.
async fn next_presence(c: &mut Client) -> Value {
    loop {
        let p = c.next_push().await;
        if p["type"] == "presence" {
            return p;
        }
    }
}

/// Deleting an account through one node closes its sockets on every node with 4004, as on
/// the node that deleted it, not merely signed out there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_an_account_closes_its_sockets_on_every_node() {
    let Some(nodes) = TestServer::cluster(2, |_| {}).await else {
        return;
    };
    let (mut on_a, token) = nodes[0].named_user("ann").await;
    let mut on_b = authed(&nodes[1], &token).await;
    on_b.request(json!({"type": "watch"})).await;
    let (status, body) = http(
        reqwest::Method::DELETE,
        &format!("http://{}/v1/me", nodes[0].addr),
        Some(&token),
        Some(json!({"password": "correct horse"})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(on_a.closed_with().await, 4004);
    assert_eq!(
        on_b.closed_with().await,
        4004,
        "closed on the other node too"
    );
}

/// Two nodes on one fresh schema: the `hearth` binary in a process of its own (so it can be
/// killed with `kill -9`; `extra` settings added), and one in this process. `None` (after
/// saying so loudly) without `TEST_DATABASE_URL`.
async fn doomed_and_survivor(
    extra: &[(&str, &str)],
) -> Option<(tokio::process::Child, String, TestServer, tempfile::TempDir)> {
    let Some(url) = database_url() else {
        eprintln!("\n*** SKIPPED: cluster test needs PostgreSQL; set TEST_DATABASE_URL ***\n");
        return None;
    };
    let schema = fresh_schema();
    let dir = tempfile::tempdir().unwrap();
    let mut envs = vec![
        ("STORE", "postgres"),
        ("DATABASE_URL", url.as_str()),
        ("DATABASE_SCHEMA", schema.as_str()),
    ];
    envs.extend_from_slice(extra);
    let (doomed, addr) = spawn_hearth(dir.path(), &envs).await;
    let survivor = TestServer::start_with(|c| crate::common::use_postgres(c, &url, &schema)).await;
    Some((doomed, addr, survivor, dir))
}

/// The same operation sent through two nodes at once (a resend racing the original):
/// one commit, both answered with its version.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_operation_through_two_nodes_at_once_lands_once() {
    let Some(nodes) = TestServer::cluster(2, |_| {}).await else {
        return;
    };
    let (_ann, token) = nodes[0].named_user("ann").await;
    let update = json!({"type": "update", "opId": "race-2", "patch": "merge",
        "data": {"metadata": {"version": 0}, "userdata": {"n": 1}}});
    for _ in 0..5 {
        // Fresh sockets each round; the document moves on, so each round uses a new base.
        let (mut a, mut b) = (
            authed(&nodes[0], &token).await,
            authed(&nodes[1], &token).await,
        );
        let version = a.request(json!({"type": "fetch"})).await["version"]
            .as_u64()
            .unwrap();
        let mut frame = update.clone();
        frame["opId"] = json!(format!("race-{version}"));
        frame["data"]["metadata"]["version"] = json!(version);
        let (ra, rb) = tokio::join!(a.request(frame.clone()), b.request(frame));
        assert_eq!(ra["version"], version + 1, "{ra}");
        assert_eq!(rb["version"], version + 1, "{rb}");
    }
    let url = format!("http://{}/v1/users/ann/changes?from=1", nodes[1].addr);
    let (_, body) = http_get(&url, &token).await;
    assert_eq!(body["changes"].as_array().unwrap().len(), 5, "{body}");
}
